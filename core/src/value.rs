//! One sealed value: XChaCha20-Poly1305 under a session key.
//!
//! Written on one line as `sealed:v1:<session id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The
//! associated data binds the ciphertext to the format version, the manifest's scope (its path
//! when strict), the key name and the session, so a ciphertext copied to another key, manifest
//! or scope fails to open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::envelope::SessionKey;
use crate::secret::SecretValue;

/// Random identifier of a seal session: 12 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 12 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of every sealed value of format v1.
pub const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A parsed sealed value (ciphertext, not secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedValue {
    session: SessionId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Why a string is not a sealed value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueFormatError {
    #[error(
        "not a sealed value (it does not start with `{PREFIX}`); a plaintext may have been written where a sealed value belongs: seal it with `sealops set`, or move it under `plain:` if it is not secret"
    )]
    NotSealed,
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
}

impl SealedValue {
    /// Parses `sealed:v1:<session>:<payload>`.
    pub fn parse(text: &str) -> Result<Self, ValueFormatError> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or(ValueFormatError::NotSealed)?;
        let (session, payload) = rest.split_once(':').ok_or(ValueFormatError::Malformed(
            "missing `:` after the session id",
        ))?;
        let session = SessionId::parse(session).ok_or(ValueFormatError::Malformed(
            "the session id is not 12 lowercase hex digits",
        ))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| ValueFormatError::Malformed("the payload is not unpadded base64url"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(ValueFormatError::Malformed("the payload is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        Ok(Self {
            session,
            nonce: nonce.try_into().expect("split at NONCE_LEN"),
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Encrypts `plaintext` under `key` for `(scope, key_name, session)`.
    pub fn seal(
        key: &SessionKey,
        session: &SessionId,
        scope_binding: &str,
        key_name: &str,
        plaintext: &SecretValue,
    ) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(scope_binding, key_name, session);
        let ciphertext = cipher(key)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        Self {
            session: session.clone(),
            nonce,
            ciphertext,
        }
    }

    /// Decrypts; `None` when the key, scope, key name or session do not match, or a bit changed.
    pub fn open(
        &self,
        key: &SessionKey,
        scope_binding: &str,
        key_name: &str,
    ) -> Option<SecretValue> {
        let aad = associated_data(scope_binding, key_name, &self.session);
        cipher(key)
            .decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(SecretValue::new)
    }

    /// The session whose key encrypts this value.
    pub fn session(&self) -> &SessionId {
        &self.session
    }
}

impl fmt::Display for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Vec::with_capacity(NONCE_LEN + self.ciphertext.len());
        payload.extend_from_slice(&self.nonce);
        payload.extend_from_slice(&self.ciphertext);
        write!(
            f,
            "{PREFIX}{}:{}",
            self.session,
            URL_SAFE_NO_PAD.encode(payload)
        )
    }
}

fn cipher(key: &SessionKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.expose().into())
}

/// `"sealops/v1" 0x00 scope 0x00 key 0x00 session`: none of the parts may contain NUL.
fn associated_data(scope_binding: &str, key_name: &str, session: &SessionId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + scope_binding.len() + key_name.len());
    for part in ["sealops/v1", scope_binding, key_name, session.as_str()] {
        aad.extend_from_slice(part.as_bytes());
        aad.push(0);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> SessionId {
        SessionId::parse("0123456789ab").expect("valid")
    }

    #[test]
    fn round_trip_and_bindings() {
        let key = SessionKey::generate();
        let value = SecretValue::from("s3cret");
        let sealed = SealedValue::seal(&key, &sid(), "path:apps/db", "PASSWORD", &value);
        let text = sealed.to_string();
        assert!(text.starts_with("sealed:v1:0123456789ab:"));
        let parsed = SealedValue::parse(&text).expect("parses");
        assert_eq!(parsed.open(&key, "path:apps/db", "PASSWORD"), Some(value));
        assert_eq!(parsed.open(&key, "path:apps/other", "PASSWORD"), None);
        assert_eq!(parsed.open(&key, "path:apps/db", "USER"), None);
        assert_eq!(
            parsed.open(&SessionKey::generate(), "path:apps/db", "PASSWORD"),
            None
        );
    }

    #[test]
    fn plaintext_is_not_a_sealed_value() {
        assert_eq!(
            SealedValue::parse("hunter2"),
            Err(ValueFormatError::NotSealed)
        );
        assert!(matches!(
            SealedValue::parse("sealed:v1:0123456789ab:!!"),
            Err(ValueFormatError::Malformed(_))
        ));
    }
}
