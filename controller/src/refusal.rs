//! Why a commit or a reconcile was refused: the vocabulary every stage reports problems in,
//! and `/status` and the metrics show.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use serde::Serialize;

/// Why a commit (or a reconcile) was refused; a metric label and a status field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The signature did not verify (unsigned, unknown key, …).
    Verification,
    /// Signed, but the signer may not make the change.
    Authorisation,
    /// A manifest or target does not parse or is malformed.
    Schema,
    /// A value does not open with the controller's identities.
    Decryption,
    /// A target's identity lacks `read` on a secret it materialises.
    Policy,
    /// An output path is outside the roots, a link, or otherwise refused.
    Output,
    /// A hook is not on the local allow-list, failed or timed out.
    Hook,
    /// The branch head no longer descends from the applied commit.
    ForcePush,
    /// The remote could not be fetched.
    Fetch,
    /// Reading the repository failed.
    Repository,
    /// The audit journal cannot record the action, so the action does not happen.
    Audit,
    /// A database of a backend did not issue credentials or set a password (retried).
    Database,
}

impl Reason {
    /// The name `/status` uses (its serde name), so a metric label matches the status field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::Authorisation => "authorisation",
            Self::Schema => "schema",
            Self::Decryption => "decryption",
            Self::Policy => "policy",
            Self::Output => "output",
            Self::Hook => "hook",
            Self::ForcePush => "force-push",
            Self::Fetch => "fetch",
            Self::Repository => "repository",
            Self::Audit => "audit",
            Self::Database => "database",
        }
    }
}

// By hand: the derive would label with the Rust variant name (`ForcePush`), not the name
// `/status` and the documentation use (`force-push`).
impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// A refusal: which commit, which path, why (no values, ever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Full commit id, when the refusal concerns a commit.
    pub commit: Option<String>,
    /// Repository path (or output path) concerned.
    pub path: Option<String>,
    pub reason: Reason,
    /// Human-readable explanation with the fix.
    pub message: String,
}
