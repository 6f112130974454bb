//! Session keys and their age envelopes.
//!
//! A session key is 32 random bytes that encrypts values. It is wrapped with age to every
//! recipient, as an ordinary ASCII-armored age file, so `age -d -i IDENTITY` opens it too
//! (break-glass, interop). The manifest lists the recipients' key ids in stanza order; opening
//! uses that list to try exactly one stanza, so the cost is one X25519 operation.

use std::cell::Cell;
use std::fmt;
use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age_core::format::{FileKey, Stanza};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::{Identity, Recipient};

/// Length of a session key in bytes.
pub const SESSION_KEY_LEN: usize = 32;

/// The symmetric key of one seal session, zeroed on drop.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; SESSION_KEY_LEN]>);

impl SessionKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; SESSION_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8; SESSION_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// Why an envelope did not open.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope lists {listed} recipients but holds {stanzas} age stanzas")]
    StanzaCount { listed: usize, stanzas: usize },
    #[error("the age envelope is malformed or was altered: {0}")]
    Malformed(String),
    #[error(
        "the stanza for this identity does not open with it (the envelope was altered, or written for another key)"
    )]
    WrongKey,
    #[error("the envelope holds {0} bytes, not a {SESSION_KEY_LEN}-byte session key")]
    BadLength(usize),
    #[error("cannot wrap to no recipients")]
    NoRecipients,
}

const X25519_TAG: &str = "X25519";

/// Counts the X25519 stanzas of an armored age file without opening it.
pub fn count_x25519_stanzas(armored: &str) -> Result<usize, EnvelopeError> {
    let mut binary = Vec::new();
    ArmoredReader::new(armored.as_bytes())
        .read_to_end(&mut binary)
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let header_end = binary
        .windows(4)
        .position(|w| w == b"\n---")
        .ok_or_else(|| EnvelopeError::Malformed("no header MAC line".to_owned()))?;
    let header = std::str::from_utf8(&binary[..header_end])
        .map_err(|_| EnvelopeError::Malformed("the header is not text".to_owned()))?;
    if !header.starts_with("age-encryption.org/v1\n") {
        return Err(EnvelopeError::Malformed("not an age v1 file".to_owned()));
    }
    Ok(header
        .lines()
        .filter(|l| l.starts_with("-> X25519 "))
        .count())
}

/// Wraps a session key to every recipient, in order, as an armored age file.
pub fn wrap(key: &SessionKey, recipients: &[Recipient]) -> Result<String, EnvelopeError> {
    if recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r.age() as &dyn age::Recipient))
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let mut armored = Vec::with_capacity(512 + 100 * recipients.len());
    let io = |e: std::io::Error| EnvelopeError::Malformed(e.to_string());
    let armor = ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor).map_err(io)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io)?;
    writer.write_all(key.expose()).map_err(io)?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(io)?;
    Ok(String::from_utf8(armored).expect("age armor is ASCII"))
}

/// Opens an envelope with the identity whose stanza is at `stanza_index` of `listed` stanzas.
pub fn unwrap(
    armored: &str,
    stanza_index: usize,
    listed: usize,
    identity: &Identity,
) -> Result<SessionKey, EnvelopeError> {
    let directed = DirectedIdentity {
        key: identity.age(),
        index: stanza_index,
        seen_stanzas: Cell::new(None),
    };
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(armored.as_bytes()))
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let result = decryptor.decrypt(std::iter::once(&directed as &dyn age::Identity));
    if let Some(stanzas) = directed.seen_stanzas.get()
        && stanzas != listed
    {
        return Err(EnvelopeError::StanzaCount { listed, stanzas });
    }
    let mut reader = result.map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => EnvelopeError::WrongKey,
        other => EnvelopeError::Malformed(other.to_string()),
    })?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(SESSION_KEY_LEN));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let bytes: [u8; SESSION_KEY_LEN] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadLength(plaintext.len()))?;
    Ok(SessionKey::from_bytes(bytes))
}

/// An age identity that tries only the stanza the manifest says is ours.
struct DirectedIdentity<'a> {
    key: &'a age::x25519::Identity,
    index: usize,
    seen_stanzas: Cell<Option<usize>>,
}

impl age::Identity for DirectedIdentity<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.key.unwrap_stanza(stanza)
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        // age appends a random "grease" stanza; only X25519 stanzas are listed in the manifest.
        let x25519: Vec<&Stanza> = stanzas.iter().filter(|s| s.tag == X25519_TAG).collect();
        self.seen_stanzas.set(Some(x25519.len()));
        self.key.unwrap_stanza(x25519.get(self.index)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn round_trip_with_each_recipient() {
        let (a, _) = generate();
        let (b, _) = generate();
        let key = SessionKey::generate();
        let armored = wrap(&key, &[a.recipient().clone(), b.recipient().clone()]).expect("wraps");
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert_eq!(count_x25519_stanzas(&armored).expect("counts"), 2);
        for (index, identity) in [&a, &b].into_iter().enumerate() {
            let opened = unwrap(&armored, index, 2, identity).expect("opens");
            assert_eq!(opened.expose(), key.expose());
        }
    }

    #[test]
    fn wrong_index_or_identity_does_not_open() {
        let (a, _) = generate();
        let (b, _) = generate();
        let key = SessionKey::generate();
        let armored = wrap(&key, &[a.recipient().clone(), b.recipient().clone()]).expect("wraps");
        assert!(matches!(
            unwrap(&armored, 1, 2, &a),
            Err(EnvelopeError::WrongKey)
        ));
        assert!(matches!(
            unwrap(&armored, 0, 3, &a),
            Err(EnvelopeError::StanzaCount {
                listed: 3,
                stanzas: 2
            })
        ));
    }

    #[test]
    fn debug_hides_session_key() {
        assert_eq!(
            format!("{:?}", SessionKey::generate()),
            "SessionKey([redacted])"
        );
    }
}
