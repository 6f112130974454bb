//! The audit trail: append-only, hash-chained, signed records of what a controller did.
//!
//! Which API to use when:
//! - A controller writes with an [`AuditLog`]: [`AuditLog::record`] builds the next record of its
//!   chain (never a value: values appear only as [`Fingerprinter`] fingerprints), and
//!   [`AuditLog::seal`] signs the records since the last seal with the controller's Ed25519 key.
//!   Both return the exact lines to append, to the journal first and to the audit branch later.
//! - Anyone checks a trail with [`verify_files`]: every controller's chain must be gapless, every
//!   record covered by a valid seal, and the trail must end where the controller's signed head
//!   says it does.
//!
//! Layout on the audit branch: `audit/YYYY/MM/DD/<controller>.jsonl` (one line per record or
//! seal), `audit/keys/<controller>.pub` (the controller's public key) and
//! `audit/heads/<controller>.json` (its newest seal: dropping the last batch is detected).

mod branch;
mod journal;
pub mod layout;
mod record;
pub mod registry;
mod verify;

pub use branch::{Appended, append_commit, chain_tree_in, other_chains_in, trail_in_tree};
pub use journal::{Journal, JournalError};
pub use record::{
    AuditKeys, AuditLog, Event, Fingerprinter, GENESIS, Line, Outcome, Record, RecordDraft, Seal,
    SealBody, decode_public_key, encode_public_key, line_hash,
};
pub use registry::{KeyStanding, Registry};
pub use verify::{ChainReport, Problem, TrailFile, Verified, Witness, verify_trail};
