//! The audit trail: append-only, hash-chained, signed records of what a controller did.
//!
//! Which API to use when:
//! - A controller writes with an [`AuditLog`]: [`AuditLog::record`] builds the next record of its
//!   chain (never a value: values appear only as [`Fingerprinter`] fingerprints), and
//!   [`AuditLog::seal`] signs the records since the last seal with the controller's Ed25519 key.
//!   Both return the exact lines to append, to the journal first and to the audit branch later.
//! - A controller adds its lines to the branch with [`append_commit`], built on the chain it
//!   last pushed itself (never on what the branch claims).
//! - Anyone checks a trail with [`verify_trail`]: every chain must be gapless, every record
//!   covered by a valid, chained seal, every key registered for its controller in the
//!   [`Registry`] (`.sealops/controllers.yaml`), every registered key must have a trail, and the
//!   trail must reach every [`Witness`].
//!
//! Layout on the audit branch: see [`layout`].

mod branch;
mod journal;
pub mod layout;
mod record;
pub mod registry;
mod verify;

pub use branch::{
    Appended, MAX_BATCH_FILE_BYTES, MAX_SMALL_FILE_BYTES, TrailReadError, append_commit,
    blob_within, chain_tree_in, other_chains_in, read_batch, trail_entries, trail_in_tree,
    verify_branch,
};
pub use journal::{Journal, JournalError};
pub use record::{
    AuditKeys, AuditLog, Event, Fingerprinter, GENESIS, Line, Outcome, Record, RecordDraft, Seal,
    SealBody, decode_public_key, encode_public_key, line_hash,
};
pub use registry::{KeyStanding, Registry};
pub use verify::{
    ChainReport, LoadBatch, Problem, TrailFile, Verified, Witness, verify_trail, verify_trail_with,
};
