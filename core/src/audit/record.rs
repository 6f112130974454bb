//! Records, seals, and the writer that chains and signs them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `prev` of a controller's first record.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    CommitVerified,
    CommitRefused,
    OutputWritten,
    OutputRemoved,
    AccessDenied,
    HookRun,
    KeyLoaded,
    LeaseIssued,
    LeaseRenewed,
    LeaseRevoked,
    RotationStarted,
    RotationCompleted,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

/// One audit record (schema `schemas/audit-record.v1.json`). Never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops audit record (format v1)",
    description = "One line of audit/YYYY/MM/DD/<controller>.jsonl on the audit branch. See docs/audit.md."
)]
pub struct Record {
    /// `<controller>-<seq>`.
    pub id: String,
    /// Position in the controller's chain, from 1, without gaps.
    pub seq: u64,
    /// UTC, RFC 3339 with all nine digits of nanoseconds (one width: times sort as text).
    pub time: String,
    pub controller: String,
    pub node: String,
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Secret path (or output path for output events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Key names concerned (never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Key name → `hmac-sha256:<hex>` of its value under the controller's audit key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fingerprints: BTreeMap<String, String>,
    /// `sha256:<hex>` of the previous line of this controller's chain ([`GENESIS`] first).
    pub prev: String,
}

/// A signature over a batch of records: the chain up to `last_hash` is the controller's, and
/// this seal follows `prev_seal`. Seals chain like records, so a witness holding any later seal
/// can tell that a suffix of the trail was dropped or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    pub seal: SealBody,
    /// `ed25519:<base64>` over [`SealBody::message`].
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealBody {
    pub controller: String,
    pub first_seq: u64,
    /// The last record covered. Records count from 1 without gaps, so this is also the number
    /// of records of the chain so far.
    pub last_seq: u64,
    /// Hash of the record `last_seq`.
    pub last_hash: String,
    /// `sha256:<hex>` of the previous seal's line in this chain ([`GENESIS`] for the first).
    pub prev_seal: String,
    /// When the batch was sealed (the same format as records' times).
    pub time: String,
    /// `ed25519:<base64>` public key.
    pub public_key: String,
}

impl SealBody {
    /// The signed bytes: every field, so none can be changed without the key.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "sealops-audit/v2\0{}\0{}\0{}\0{}\0{}\0{}\0{}",
            self.controller,
            self.first_seq,
            self.last_seq,
            self.last_hash,
            self.prev_seal,
            self.time,
            self.public_key
        )
        .into_bytes()
    }
}

impl Seal {
    /// Whether the signature is `public_key`'s over the body (the key named in the body).
    pub fn signature_verifies(&self) -> bool {
        let Some(key) = decode_public_key(&self.seal.public_key) else {
            return false;
        };
        let Some(bytes) = self
            .signature
            .strip_prefix("ed25519:")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        key.verify_strict(
            &self.seal.message(),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .is_ok()
    }
}

/// A line of a trail file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Record(Box<Record>),
    Seal(Seal),
}

/// `sha256:<hex>` of a line's bytes (without the newline).
pub fn line_hash(line: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(line.as_bytes())))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Encodes a public key as it appears in seals and `audit/keys/<controller>.pub`.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    format!("ed25519:{}", b64(key.as_bytes()))
}

/// Decodes `ed25519:<base64>`.
pub fn decode_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim().strip_prefix("ed25519:")?)
        .ok()?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

/// Computes value fingerprints with a controller's audit HMAC key.
#[derive(Clone)]
pub struct Fingerprinter(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter([redacted])")
    }
}

impl Fingerprinter {
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// `hmac-sha256:<hex>` of `value` as the value of `key` in `secret_path`.
    pub fn fingerprint(&self, secret_path: &str, key: &str, value: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_ref()).expect("any key length");
        mac.update(secret_path.as_bytes());
        mac.update(b"\0");
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(value);
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// A controller's audit keys: Ed25519 for seals, HMAC for fingerprints. Kept in the state
/// directory (`audit.key`, mode 0600): 32 bytes of seed then 32 bytes of HMAC key, hex.
pub struct AuditKeys {
    pub signing: SigningKey,
    pub fingerprints: Fingerprinter,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field("public", &encode_public_key(&self.signing.verifying_key()))
            .finish_non_exhaustive()
    }
}

impl AuditKeys {
    /// Loads `path`, or creates it (0600) with fresh keys when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is not an audit key file (64 bytes, hex); restore it from backup — a new key starts a new chain",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 64]);
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
                let text = Zeroizing::new(format!("{}\n", hex::encode(&bytes[..])));
                crate::fsutil::create_new(path, text.as_bytes(), 0o600)?;
                Ok(Self::parse(&text).expect("just written"))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the key file's text (for `sealops audit fingerprint`).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).ok()?);
        if bytes.len() != 64 {
            return None;
        }
        let seed: [u8; 32] = bytes[..32].try_into().ok()?;
        let mac: [u8; 32] = bytes[32..].try_into().ok()?;
        Some(Self {
            signing: SigningKey::from_bytes(&seed),
            fingerprints: Fingerprinter::new(mac),
        })
    }

    pub fn public_key(&self) -> String {
        encode_public_key(&self.signing.verifying_key())
    }
}

/// RFC 3339 in UTC with all nine digits of nanoseconds, so records' times have one width and
/// sort as text in time order.
pub fn record_time(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("formats")
}

/// What a record says, before it is placed in the chain.
#[derive(Debug, Clone)]
pub struct RecordDraft {
    pub event: Event,
    pub outcome: Outcome,
    pub commit: Option<String>,
    pub path: Option<String>,
    pub keys: Vec<String>,
    pub target: Option<String>,
    pub identity: Option<String>,
    pub reason: Option<String>,
    pub fingerprints: BTreeMap<String, String>,
}

impl RecordDraft {
    pub fn new(event: Event, outcome: Outcome) -> Self {
        Self {
            event,
            outcome,
            commit: None,
            path: None,
            keys: Vec::new(),
            target: None,
            identity: None,
            reason: None,
            fingerprints: BTreeMap::new(),
        }
    }
}

/// Places records in one controller's chain and seals batches.
#[derive(Debug)]
pub struct AuditLog {
    controller: String,
    node: String,
    keys: AuditKeys,
    next_seq: u64,
    last_hash: String,
    /// Hash of the newest seal's line ([`GENESIS`] before the first).
    last_seal: String,
    /// First record not yet covered by a seal.
    unsealed_from: Option<u64>,
}

impl AuditLog {
    /// Continues a chain whose last line (record or seal) was `last` (`None`: a new chain).
    pub fn resume(controller: &str, node: &str, keys: AuditKeys, last: Option<&[String]>) -> Self {
        let mut log = Self {
            controller: controller.to_owned(),
            node: node.to_owned(),
            keys,
            next_seq: 1,
            last_hash: GENESIS.to_owned(),
            last_seal: GENESIS.to_owned(),
            unsealed_from: None,
        };
        for line in last.into_iter().flatten() {
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Record(record)) => {
                    log.next_seq = record.seq + 1;
                    log.last_hash = line_hash(line);
                    log.unsealed_from.get_or_insert(record.seq);
                }
                // A seal alone (the journal keeps the newest one after a push) says where the
                // chain stands.
                Ok(Line::Seal(seal)) => {
                    log.next_seq = seal.seal.last_seq + 1;
                    log.last_hash = seal.seal.last_hash.clone();
                    log.last_seal = line_hash(line);
                    log.unsealed_from = None;
                }
                Err(_) => {}
            }
        }
        log
    }

    pub fn keys(&self) -> &AuditKeys {
        &self.keys
    }

    /// The next record's line (JSON, no newline).
    pub fn record(&mut self, draft: RecordDraft) -> String {
        let time = record_time(time::OffsetDateTime::now_utc());
        let record = Record {
            id: format!("{}-{}", self.controller, self.next_seq),
            seq: self.next_seq,
            time,
            controller: self.controller.clone(),
            node: self.node.clone(),
            event: draft.event,
            commit: draft.commit,
            path: draft.path,
            keys: draft.keys,
            target: draft.target,
            identity: draft.identity,
            outcome: draft.outcome,
            reason: draft.reason,
            fingerprints: draft.fingerprints,
            prev: self.last_hash.clone(),
        };
        let line = serde_json::to_string(&record).expect("a record serialises");
        self.last_hash = line_hash(&line);
        self.unsealed_from.get_or_insert(self.next_seq);
        self.next_seq += 1;
        line
    }

    /// A seal over every record since the last seal; `None` when there is none.
    pub fn seal(&mut self) -> Option<String> {
        let first_seq = self.unsealed_from.take()?;
        let body = SealBody {
            controller: self.controller.clone(),
            first_seq,
            last_seq: self.next_seq - 1,
            last_hash: self.last_hash.clone(),
            prev_seal: self.last_seal.clone(),
            time: record_time(time::OffsetDateTime::now_utc()),
            public_key: self.keys.public_key(),
        };
        let signature = self.keys.signing.sign(&body.message());
        let seal = Seal {
            seal: body,
            signature: format!("ed25519:{}", b64(&signature.to_bytes())),
        };
        let line = serde_json::to_string(&seal).expect("a seal serialises");
        self.last_seal = line_hash(&line);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_times_have_nine_digits_and_read_back_as_rfc3339() {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_874_722_680_000_000)
            .expect("a time");
        let text = record_time(at);
        assert_eq!(text, "2026-11-28T14:05:22.680000000Z");
        let back =
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        assert_eq!(back, at);
        let later = record_time(at + time::Duration::nanoseconds(1));
        assert!(later > text, "{later} sorts after {text}");
    }
}
