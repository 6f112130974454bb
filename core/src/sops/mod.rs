//! SOPS interoperability: read SOPS-encrypted files (age recipients) and write files that the
//! real `sops` tool and Flux's kustomize-controller decrypt.
//!
//! Which API to use when:
//! - `sealops reveal FILE -o json` on a SOPS file: [`detect`] the format from the text and file
//!   name, then [`decrypt`] with the caller's [`AgeIdentities`](crate::keys::AgeIdentities) and
//!   [`MacCheck::Verify`]; print [`Decrypted::to_json_pretty`] (keeps the file's key order).
//! - `sealops import-sops`: [`decrypt`], then [`flatten`] each document into manifest keys
//!   (`[A-Za-z0-9._-]{1,253}`) and string values; [`FlatDocument::types`] lists the
//!   non-string scalars so they can be recorded and restored by [`unflatten`].
//! - `sealops export-sops`: build a [`Document`] ([`unflatten`] of the manifest's values) and
//!   [`encrypt`] it to age [`Recipient`](crate::keys::Recipient)s. The result is checked by
//!   decrypting it again before it is returned; write it with `fsutil::write_atomic`.
//!
//! Formats ([`SopsFormat`]) and the shape of [`Decrypted::document`]:
//! YAML and JSON give the document tree (a JSON array for multi-document YAML); dotenv a flat
//! object; INI an object of sections; the binary store `{"data": "..."}`.
//!
//! What is checked: every value is AES-256-GCM with its key path as associated data (a value
//! moved to another key does not decrypt); the MAC (SHA-512 over all values, or only the
//! encrypted ones with `mac_only_encrypted`) must match unless [`MacCheck::Ignore`]. Errors
//! name the file and the key path, never a value. Encrypted comments are decrypted when the
//! rule encrypts their map; a comment that is a well-formed `ENC[...]` and fails to
//! authenticate is an error (SOPS itself would keep it as text).
//!
//! Not supported (refused with a message that says so): Shamir key groups, comment regex
//! rules, non-age master keys (files that also list PGP/KMS keys open through their age keys).
//!
//! The flattening rule is described in [`flatten`] and in `docs/sops.md`.

mod document;
mod flatten;
mod metadata;
mod stores;
mod tree;
mod value;

use std::fmt;

use zeroize::Zeroizing;

pub use document::Document;
pub use flatten::{FlatDocument, FlattenError, ScalarKind, flatten, unflatten};
pub use metadata::WRITTEN_VERSION;
pub use value::{EncryptedValue, ValueError, ValueType};

use crate::keys::{AgeIdentities, Recipient};
use metadata::{AgeEntry, Metadata};
use tree::{CryptRule, Node, Walker};

/// The SOPS store a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SopsFormat {
    Yaml,
    Json,
    Dotenv,
    Ini,
    /// A binary (or plain text) file stored as JSON `{"data": ENC[...], "sops": {...}}`.
    Binary,
}

/// Whether a wrong MAC is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacCheck {
    Verify,
    /// Like `sops --ignore-mac`: for recovering a file whose MAC is known to be stale.
    Ignore,
}

/// The 32-byte data key of a SOPS file, zeroed on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// The key bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A SOPS file error: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {kind}")]
pub struct SopsError {
    pub file: String,
    pub kind: SopsErrorKind,
}

/// What went wrong. Never contains a decrypted value.
#[derive(Debug, thiserror::Error)]
pub enum SopsErrorKind {
    #[error("cannot parse the file: {0}")]
    Parse(String),
    #[error("no `sops` metadata found: this is not a SOPS-encrypted file")]
    NoMetadata,
    #[error("invalid sops metadata: {0}")]
    Metadata(String),
    #[error(
        "the file has no age recipients (sops.age is empty); sealops opens only age-encrypted SOPS files"
    )]
    NoAgeRecipients,
    #[error(
        "none of the identities ({tried}) opens the data key ({failures}); use an identity of one of the file's sops.age recipients"
    )]
    DataKey { tried: String, failures: String },
    #[error("value at {path}: {source}")]
    Value {
        path: String,
        #[source]
        source: ValueError,
    },
    #[error("value at {path} should be encrypted by the file's rules but is {found} in clear")]
    NotEncrypted { path: String, found: &'static str },
    #[error(
        "the file has no MAC (sops.mac); it may have been edited by hand — pass --ignore-mac to open it anyway"
    )]
    MissingMac,
    #[error("the MAC cannot be decrypted ({0}): sops.mac or sops.lastmodified was altered")]
    MacUnreadable(ValueError),
    #[error(
        "MAC mismatch: the values do not match the MAC recorded when the file was encrypted (the file was altered); pass --ignore-mac only if you trust the change"
    )]
    MacMismatch,
    #[error("cannot write as SOPS: {0}")]
    Unrepresentable(String),
    #[error("cannot encrypt to no recipients")]
    NoRecipients,
}

/// A decrypted SOPS file.
pub struct Decrypted {
    documents: Vec<Document>,
    format: SopsFormat,
    data_key: DataKey,
    mac_verified: bool,
    version: String,
    recipients: Vec<String>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("format", &self.format)
            .field("documents", &self.documents)
            .field("mac_verified", &self.mac_verified)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Decrypted {
    /// Every document (YAML files may hold several; other formats hold one).
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// The document: the tree for one document, a list of them for multi-document YAML.
    pub fn document(&self) -> Document {
        match self.documents.as_slice() {
            [one] => one.clone(),
            many => Document::List(many.to_vec()),
        }
    }

    /// [`Self::document`] as a `serde_json::Value` (key order kept only with serde_json's
    /// `preserve_order` feature; [`Self::to_json_pretty`] always keeps it).
    pub fn to_json_value(&self) -> serde_json::Value {
        self.document().to_json_value()
    }

    /// [`Self::document`] as pretty JSON in file order. Holds plaintext: zeroed on drop.
    pub fn to_json_pretty(&self) -> Zeroizing<String> {
        let mut text = serde_json::to_string_pretty(&self.document()).expect("documents serialise");
        text.push('\n');
        Zeroizing::new(text)
    }

    pub fn format(&self) -> SopsFormat {
        self.format
    }

    /// The file's data key (to compare with other tools; never print it).
    pub fn data_key(&self) -> &DataKey {
        &self.data_key
    }

    /// False only when [`MacCheck::Ignore`] was given and the MAC did not match.
    pub fn mac_verified(&self) -> bool {
        self.mac_verified
    }

    /// `sops.version` of the file.
    pub fn sops_version(&self) -> &str {
        &self.version
    }

    /// The `age1…` recipients listed in the file.
    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }
}

/// The SOPS format of `text`, or `None` when it is not a SOPS file (no `sops` metadata).
/// `file_name` picks between formats that share syntax (`.env`, `.ini`, `.json`, `.yaml`);
/// JSON with only `data` and `sops` keys is the binary store.
pub fn detect(text: &str, file_name: &str) -> Option<SopsFormat> {
    let lower = file_name.to_ascii_lowercase();
    let extension = lower.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    let has_flat = |prefix: &str| {
        text.lines()
            .any(|line| line.trim_start().starts_with(prefix) && line.contains("mac"))
    };
    match extension {
        "env" if has_flat("sops_mac=") => return Some(SopsFormat::Dotenv),
        "ini" if text.lines().any(|l| l.trim() == "[sops]") => return Some(SopsFormat::Ini),
        _ => {}
    }
    if let Ok(stored) = stores::read_json(text) {
        if stored.metadata.is_some() {
            let data_only = matches!(&stored.branches[..], [Node::Map(entries)]
                if entries.len() == 1 && matches!(&entries[0], tree::Entry::Pair(k, _) if k == "data"));
            let json_extension = extension == "json";
            return Some(if data_only && !json_extension {
                SopsFormat::Binary
            } else {
                SopsFormat::Json
            });
        }
        return None;
    }
    if let Ok(stored) = stores::read_yaml(text)
        && stored.metadata.is_some()
    {
        return Some(SopsFormat::Yaml);
    }
    if has_flat("sops_mac=") && stores::read_dotenv(text).is_ok() {
        return Some(SopsFormat::Dotenv);
    }
    if text.lines().any(|l| l.trim() == "[sops]")
        && stores::read_ini(text).is_ok_and(|s| s.metadata.is_some())
    {
        return Some(SopsFormat::Ini);
    }
    None
}

fn read(text: &str, format: SopsFormat) -> Result<stores::Stored, SopsErrorKind> {
    match format {
        SopsFormat::Yaml => stores::read_yaml(text),
        SopsFormat::Json | SopsFormat::Binary => stores::read_json(text),
        SopsFormat::Dotenv => stores::read_dotenv(text),
        SopsFormat::Ini => stores::read_ini(text),
    }
}

/// Decrypts a SOPS file. `file` names it in errors.
pub fn decrypt(
    text: &str,
    file: &str,
    format: SopsFormat,
    identities: &AgeIdentities,
    mac_check: MacCheck,
) -> Result<Decrypted, SopsError> {
    decrypt_kind(text, format, identities, mac_check).map_err(|kind| SopsError {
        file: file.to_owned(),
        kind,
    })
}

fn decrypt_kind(
    text: &str,
    format: SopsFormat,
    identities: &AgeIdentities,
    mac_check: MacCheck,
) -> Result<Decrypted, SopsErrorKind> {
    let stored = read(text, format)?;
    let metadata = Metadata::from_node(stored.metadata.as_ref().ok_or(SopsErrorKind::NoMetadata)?)?;
    let data_key = metadata.data_key(identities)?;
    let mut walker = Walker::new(&metadata.rule, &data_key, metadata.mac_only_encrypted);
    let mut branches = stored.branches;
    for branch in &mut branches {
        walker.decrypt_document(branch)?;
    }
    let computed = walker.mac();
    let mac_verified = match (&metadata.mac, mac_check) {
        (Some(mac), _) => {
            let stored_mac = match EncryptedValue::parse(mac)
                .and_then(|v| v.decrypt(&data_key, &metadata.last_modified))
            {
                Ok(plain) => Some(plain),
                Err(e) if mac_check == MacCheck::Verify => {
                    return Err(SopsErrorKind::MacUnreadable(e));
                }
                Err(_) => None,
            };
            let matches = stored_mac.is_some_and(|plain| plain.as_slice() == computed.as_bytes());
            if !matches && mac_check == MacCheck::Verify {
                return Err(SopsErrorKind::MacMismatch);
            }
            matches
        }
        (None, MacCheck::Verify) => return Err(SopsErrorKind::MissingMac),
        (None, MacCheck::Ignore) => false,
    };
    Ok(Decrypted {
        documents: branches.iter().map(Node::to_document).collect(),
        format,
        data_key,
        mac_verified,
        version: metadata.version.clone(),
        recipients: metadata.age.iter().map(|a| a.recipient.clone()).collect(),
    })
}

/// How [`encrypt`] writes a file.
#[derive(Clone, Debug)]
pub struct EncryptOptions {
    /// Keys ending with this suffix (and everything below them) stay in clear.
    pub unencrypted_suffix: String,
    /// Instead of the suffix: encrypt only values below a key matching this regex (Flux
    /// Secrets use `^(data|stringData)$` so that `kind`/`metadata` stay readable).
    pub encrypted_regex: Option<String>,
    /// Hash only encrypted values into the MAC (SOPS 3.9+ `mac_only_encrypted`).
    pub mac_only_encrypted: bool,
    /// `lastmodified` to record (RFC 3339, UTC); `None` means now.
    pub last_modified: Option<String>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            unencrypted_suffix: "_unencrypted".to_owned(),
            encrypted_regex: None,
            mac_only_encrypted: false,
            last_modified: None,
        }
    }
}

/// Encrypts documents to age recipients as a SOPS file of `format`. YAML takes one or more
/// documents (each a map); the other formats take exactly one: JSON a map, dotenv a flat map
/// of scalars, the binary store `{"data": "..."}`. INI is read-only.
///
/// The written file is decrypted again with the fresh data key and its MAC verified before
/// it is returned.
pub fn encrypt(
    documents: &[Document],
    format: SopsFormat,
    recipients: &[Recipient],
    options: &EncryptOptions,
) -> Result<String, SopsErrorKind> {
    if recipients.is_empty() {
        return Err(SopsErrorKind::NoRecipients);
    }
    match (format, documents) {
        (SopsFormat::Ini, _) => {
            return Err(SopsErrorKind::Unrepresentable(
                "sealops writes SOPS YAML, JSON, dotenv and binary files, not INI".into(),
            ));
        }
        (SopsFormat::Yaml, docs) if !docs.is_empty() => {}
        (_, [_]) => {}
        (_, docs) => {
            return Err(SopsErrorKind::Unrepresentable(format!(
                "{format:?} holds exactly one document, got {}",
                docs.len()
            )));
        }
    }
    for document in documents {
        let Document::Map(entries) = document else {
            return Err(SopsErrorKind::Unrepresentable(format!(
                "a SOPS document must be a map at the top, not a {}",
                document.kind()
            )));
        };
        if entries.iter().any(|(k, _)| k == "sops") {
            return Err(SopsErrorKind::Unrepresentable(
                "a top-level key named `sops` would collide with SOPS's metadata".into(),
            ));
        }
        if format == SopsFormat::Binary
            && !(entries.len() == 1
                && matches!(&entries[0], (k, Document::String(_)) if k == "data"))
        {
            return Err(SopsErrorKind::Unrepresentable(
                "the binary store holds exactly {\"data\": \"…\"}".into(),
            ));
        }
    }
    let data_key = DataKey::generate();
    let rule = match &options.encrypted_regex {
        Some(pattern) => CryptRule::EncryptedRegex(regex::Regex::new(pattern).map_err(|e| {
            SopsErrorKind::Unrepresentable(format!(
                "encrypted_regex {pattern:?} is not a valid regular expression: {e}"
            ))
        })?),
        None => CryptRule::UnencryptedSuffix(options.unencrypted_suffix.clone()),
    };
    let mut walker = Walker::new(&rule, &data_key, options.mac_only_encrypted);
    let mut branches: Vec<Node> = documents.iter().map(Node::from_document).collect();
    for branch in &mut branches {
        walker.encrypt_document(branch)?;
    }
    let mac = walker.mac();
    let last_modified = match &options.last_modified {
        Some(text) => text.clone(),
        None => crate::clock::now_rfc3339_seconds(),
    };
    let sealed_mac =
        EncryptedValue::encrypt(mac.as_bytes(), ValueType::Str, &data_key, &last_modified);
    let metadata = Metadata {
        age: recipients
            .iter()
            .map(|r| AgeEntry {
                recipient: r.as_str().to_owned(),
                enc: metadata::wrap(&data_key, r),
            })
            .collect(),
        last_modified,
        mac: Some(sealed_mac.format()),
        rule,
        mac_only_encrypted: options.mac_only_encrypted,
        version: WRITTEN_VERSION.to_owned(),
    };
    let metadata_node = metadata.to_node();
    let text = match format {
        SopsFormat::Yaml => stores::write_yaml(&branches, &metadata_node),
        SopsFormat::Json | SopsFormat::Binary => stores::write_json(&branches[0], &metadata_node),
        SopsFormat::Dotenv => stores::write_dotenv(&branches[0], &metadata_node)?,
        SopsFormat::Ini => unreachable!("refused above"),
    };
    self_check(&text, format, &data_key, documents)?;
    Ok(text)
}

/// Reads back what [`encrypt`] wrote with the data key it used: the MAC verifies and the
/// values are the ones given.
fn self_check(
    text: &str,
    format: SopsFormat,
    data_key: &DataKey,
    documents: &[Document],
) -> Result<(), SopsErrorKind> {
    let stored = read(text, format)?;
    let metadata = Metadata::from_node(stored.metadata.as_ref().ok_or(SopsErrorKind::NoMetadata)?)?;
    let mut walker = Walker::new(&metadata.rule, data_key, metadata.mac_only_encrypted);
    let mut branches = stored.branches;
    for branch in &mut branches {
        walker.decrypt_document(branch)?;
    }
    let computed = walker.mac();
    let stored_mac = EncryptedValue::parse(metadata.mac.as_deref().unwrap_or_default())
        .and_then(|v| v.decrypt(data_key, &metadata.last_modified))
        .map_err(SopsErrorKind::MacUnreadable)?;
    if stored_mac.as_slice() != computed.as_bytes() {
        return Err(SopsErrorKind::MacMismatch);
    }
    let read_back: Vec<Document> = branches.iter().map(Node::to_document).collect();
    let expected: Vec<Document> = documents
        .iter()
        .map(|d| match format {
            // dotenv stores every value as a string.
            SopsFormat::Dotenv => flatten::stringify_scalars(d),
            _ => d.clone(),
        })
        .collect();
    if read_back != expected {
        return Err(SopsErrorKind::Unrepresentable(
            "the written file does not read back to the same document (a value this format cannot hold exactly)".into(),
        ));
    }
    Ok(())
}
