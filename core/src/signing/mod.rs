//! Signatures: who signed a commit, and content-bound approvals.
//!
//! Which API to use when:
//! - Parse `.sealops/allowed_signers` (or the locally configured bootstrap copy) with
//!   [`AllowedSigners::load`] / [`AllowedSigners::parse`].
//! - Ask who signed a commit with [`commit::verify_commit`]: git's own SSH signatures
//!   (`gpg.format ssh`, namespace [`GIT_NAMESPACE`]), checked against the allowed signers at the
//!   commit's committer time, as `git verify-commit` does.
//! - Sign arbitrary bytes with [`sshsig::SigningKey`]; verify them with
//!   [`sshsig::verify_as_principal`] (a claimed signer) or [`sshsig::verify_for_principals`]
//!   (who signed).
//! - Approve content with [`approval::ApprovalStatement`] (signed in namespace
//!   [`APPROVAL_NAMESPACE`], stored under `.sealops/approvals/`), and count approvals of one
//!   `(path, blob)` with [`approval::approvals_for`].
//!
//! Which principals may do what is the policy engine's business; this module only says who.

pub mod allowed_signers;
pub mod approval;
pub mod commit;
pub mod pattern;
pub mod sshsig;

pub use allowed_signers::{AllowedSigners, AllowedSignersError, KeyRejection};

/// The SSHSIG namespace git uses for commit and tag signatures.
pub const GIT_NAMESPACE: &str = "git";

/// The SSHSIG namespace of sealops approval statements. Distinct from `git` so that an approval
/// can never be replayed as a commit signature or the other way round.
pub const APPROVAL_NAMESPACE: &str = "sealops-approval";
