//! Recipients (public keys) and identities (private keys).
//!
//! Both use age's X25519 encodings, so keys made by `age-keygen` work with sealops and keys made
//! by `sealops keygen` work with `age`. Every recipient has a [`KeyId`]: the first 8 bytes of the
//! SHA-256 of its `age1…` string, in hex. Manifests name recipients by key id so that opening a
//! session costs one X25519 operation, not one per recipient.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Short, stable identifier of a recipient: `hex(sha256("age1…"))[..16]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of an `age1…` recipient string.
    pub fn of(encoded_recipient: &str) -> Self {
        let digest = Sha256::digest(encoded_recipient.as_bytes());
        Self(hex::encode(&digest[..8]))
    }

    /// Parses a key id as written in a manifest (16 lowercase hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An X25519 public key (`age1…`) that sealed values can be wrapped to.
#[derive(Clone)]
pub struct Recipient {
    key: age::x25519::Recipient,
    encoded: String,
    id: KeyId,
}

/// A recipient string that is not an `age1…` X25519 public key.
///
/// The input is echoed only when it looks like a public key: users paste private keys by
/// mistake, and an error message must never print one.
#[derive(Debug, thiserror::Error)]
#[error("invalid recipient{}: expected an age X25519 public key (age1…), as printed by `sealops keygen` or `age-keygen -y`{}",
    shown.as_ref().map(|s| format!(" {s:?}")).unwrap_or_default(),
    if *private { "; this is a private key (AGE-SECRET-KEY-1…): keep it secret and share only its public key" } else { "" })]
pub struct InvalidRecipient {
    shown: Option<String>,
    private: bool,
}

impl InvalidRecipient {
    fn of(text: &str) -> Self {
        let private = text.to_ascii_uppercase().contains("AGE-SECRET-KEY-");
        let shown =
            (!private && text.starts_with("age1") && text.len() <= 100).then(|| text.to_owned());
        Self { shown, private }
    }
}

impl FromStr for Recipient {
    type Err = InvalidRecipient;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let key = age::x25519::Recipient::from_str(text).map_err(|_| InvalidRecipient::of(text))?;
        // Re-encode so that the key id does not depend on how the user typed it.
        let encoded = key.to_string();
        Ok(Self {
            id: KeyId::of(&encoded),
            key,
            encoded,
        })
    }
}

impl Recipient {
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    pub(crate) fn age(&self) -> &age::x25519::Recipient {
        &self.key
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({} id={})", self.encoded, self.id)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for Recipient {}

/// An X25519 private key with the file and line it came from.
pub struct Identity {
    key: age::x25519::Identity,
    recipient: Recipient,
    source: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("recipient", &self.recipient.encoded)
            .field("source", &self.source)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Identity {
    /// The public half of this identity.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    /// Where the identity was loaded from (`file:line`).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn age(&self) -> &age::x25519::Identity {
        &self.key
    }

    /// A MAC key only this identity's holder can compute (for session endorsements).
    pub(crate) fn endorsement_key(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"sealops/v1 session endorsement key\0");
        hasher.update(self.key.to_string().expose_secret().as_bytes());
        Zeroizing::new(hasher.finalize().into())
    }

    fn from_age(key: age::x25519::Identity, source: String) -> Self {
        let recipient = Recipient::from_str(&key.to_public().to_string())
            .expect("the public half of an X25519 identity is a valid recipient");
        Self {
            key,
            recipient,
            source,
        }
    }
}

/// Errors while loading identity files.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read identity file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: not an age X25519 identity; identity files hold AGE-SECRET-KEY-1… lines (from `sealops keygen` or `age-keygen`) and # comments"
    )]
    Malformed { path: String, line: usize },
    #[error("{path}: no identity found (expected AGE-SECRET-KEY-1… lines)")]
    Empty { path: String },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` so only you can read your private key"
    )]
    TooOpen { path: String, mode: u32 },
}

/// Every identity a process holds. Opening a session picks the identity by key id.
#[derive(Debug, Default)]
pub struct AgeIdentities {
    identities: Vec<Identity>,
}

impl AgeIdentities {
    /// An empty set (sealing needs no identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses identity-file text (`age-keygen` format). `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, IdentityError> {
        let mut identities = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                age::x25519::Identity::from_str(line).map_err(|_| IdentityError::Malformed {
                    path: source.to_owned(),
                    line: index + 1,
                })?;
            identities.push(Identity::from_age(key, format!("{source}:{}", index + 1)));
        }
        if identities.is_empty() {
            return Err(IdentityError::Empty {
                path: source.to_owned(),
            });
        }
        Ok(Self { identities })
    }

    /// Loads an identity file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let display = path.display().to_string();
        check_private_mode(path, &display)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            IdentityError::Read {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::parse(&text, &display)
    }

    /// Adds every identity of `other` (several keys may be held during key renewal).
    pub fn extend(&mut self, other: AgeIdentities) {
        for identity in other.identities {
            if self.find(identity.recipient.id()).is_none() {
                self.identities.push(identity);
            }
        }
    }

    /// The identity whose public key has this key id.
    pub fn find(&self, id: &KeyId) -> Option<&Identity> {
        self.identities.iter().find(|i| i.recipient.id() == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.identities.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// `age1…` strings of every identity, for error messages.
    pub fn describe(&self) -> String {
        self.identities
            .iter()
            .map(|i| i.recipient.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path, display: &str) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if metadata.is_file() && mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: display.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _display: &str) -> Result<(), IdentityError> {
    Ok(())
}

/// A new identity and the text of its identity file, in `age-keygen`'s format.
pub fn generate() -> (Identity, Zeroizing<String>) {
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let created = crate::clock::now_rfc3339_seconds();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        key.to_string().expose_secret()
    ));
    (Identity::from_age(key, "generated".to_owned()), text)
}

/// Encrypts a small secret to `recipient` alone (age, armored): how a controller keeps a value
/// only it can read in its own state directory, such as a rotation's new password written
/// before the database is changed.
pub fn seal_to(recipient: &Recipient, plaintext: &crate::secret::SecretValue) -> String {
    age::encrypt_and_armor(recipient.age(), plaintext.expose())
        .expect("encrypting an in-memory value to one X25519 recipient cannot fail")
}

/// Opens what [`seal_to`] sealed, with whichever of `identities` it was sealed to.
pub fn open_sealed(
    identities: &AgeIdentities,
    armored: &str,
) -> Option<crate::secret::SecretValue> {
    identities.iter().find_map(|identity| {
        age::decrypt(identity.age(), armored.as_bytes())
            .ok()
            .map(crate::secret::SecretValue::new)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_sha256_prefix_of_the_recipient_string() {
        let (identity, _) = generate();
        let encoded = identity.recipient().as_str().to_owned();
        let expected = hex::encode(&Sha256::digest(encoded.as_bytes())[..8]);
        assert_eq!(identity.recipient().id().as_str(), expected);
        assert!(KeyId::parse(&expected).is_some());
        assert!(KeyId::parse("XYZ").is_none());
    }

    #[test]
    fn generated_file_parses_back_to_the_same_key() {
        let (identity, text) = generate();
        let set = AgeIdentities::parse(&text, "test").expect("parses");
        let loaded = set
            .find(identity.recipient().id())
            .expect("found by key id");
        assert_eq!(loaded.recipient(), identity.recipient());
        assert_eq!(loaded.source(), "test:3");
        assert!(text.starts_with("# created: "));
    }

    #[test]
    fn malformed_identity_names_file_and_line() {
        let err = AgeIdentities::parse("# comment\n\nnot-a-key\n", "ids.txt").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ids.txt:3: not an age X25519 identity")
        );
    }

    #[test]
    fn debug_of_identity_hides_the_private_key() {
        let (identity, text) = generate();
        let secret_line = text.lines().last().expect("key line");
        assert!(!format!("{identity:?}").contains(secret_line));
    }

    #[test]
    fn invalid_recipient_says_what_is_expected() {
        let err = Recipient::from_str("ssh-ed25519 AAAA").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an age X25519 public key")
        );
    }
}
