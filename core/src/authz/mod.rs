//! Authorised changes: who may change what, judged commit by commit over a range.
//!
//! A sealed manifest proves nothing about who wrote it (anyone with the public key can seal);
//! a change is legitimate when the right people signed it. This module is the one place that
//! decides it, so `sealops check` (CI, on a pull request) and the controller (before applying a
//! commit) run the same code.
//!
//! Which API to use when:
//! - Judge `BASE..HEAD` with [`authorise_range`], giving the [`Bootstrap`] trust for the base:
//!   the controller passes its locally configured allowed signers; CI passes the signers file
//!   of the protected base branch (or `--trusted-signers`). The answer is a [`RangeReport`]:
//!   one [`CommitReport`] per commit, each with its [`Violation`]s.
//! - Map a repository path to what governs it with [`governed_path`] (`secrets/…` → a secret's
//!   policy path; `policies/…`, `identities/…`, … → an administrative `sys/…` path).
//! - Show reviewers what a range does with [`plan`], check the files it changes with
//!   [`check_structure`], and find leaked plaintext or private keys in any of its commits with
//!   [`scan_range`].
//! - List what an approval of a change must cover with [`governed_changes`].
//!
//! The rules (see `docs/review.md`):
//! - a change to `secrets/<path>.yaml` needs a signer whose identity's policies grant `create`,
//!   `update` or `delete` on `secrets/<path>`, with the changed key names as parameters;
//! - a change to an administrative file needs `required_approvals` distinct principals with
//!   `sudo` on its `sys/…` path: the commit's signer plus approval statements (see
//!   [`crate::signing::approval`]) over the exact resulting content;
//! - every commit is judged under the signers, policies, identities and trust settings of its
//!   parent, never under what it changes itself; signers come from the bootstrap until an
//!   authorised commit changes `.sealops/allowed_signers`;
//! - a merge is judged on what it introduces: paths whose content matches no parent.

mod authority;
mod governed;
mod range;
mod review;

pub use authority::{Authority, AuthorityError};
pub use governed::{Governed, governed_changes, governed_path};
pub use range::{
    ApprovalCount, AuthzError, Bootstrap, ChangeKind, Clock, CommitReport, PathChange, RangeReport,
    Violation, ViolationKind, authorise_range, authorise_range_in, legacy_repository_id,
};
pub use review::{
    DecisionChange, FileProblem, Plan, SecretChange, check_structure, plan, scan_range,
};
