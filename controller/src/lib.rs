//! Reconcile logic of `sealops-controller`.
//!
//! Which module to use when:
//! - [`run`] drives everything: [`run::Controller::reconcile`] is one level-triggered
//!   reconcile; [`run::run`] is the loop with its triggers, HTTP server and shutdown.
//! - [`desired`] chooses the commit to apply (the newest authorised one).
//! - [`plan`] plans a commit in named stages (targets, checks, decryption, credentials,
//!   rendering); [`materialise`] applies the plan; [`output`] writes one file safely under the
//!   allowed roots; [`hooks`] runs an allowed hook. [`context`] is what a reconcile carries to
//!   the next; [`refusal`] is what every stage reports a problem in.
//! - [`source`] reads a local checkout or fetches a remote; [`state`] persists the applied
//!   commit; [`status`] and [`http`] report.
//! - [`audit`] journals records and pushes them; [`audit_guard`] checks the audit branch against
//!   what this controller pushed before every push.
//! - [`leases`] keeps the leases of dynamic credentials; [`api`] is the local, authenticated
//!   API that lists them and hands renew, revoke and rotate requests to the lease task.

pub mod api;
pub mod audit;
pub mod audit_guard;
pub mod audit_sink;
pub mod backoff;
pub mod check;
pub mod context;
pub mod creds;
pub mod dbs;
pub mod desired;
pub mod hooks;
pub mod http;
pub mod leases;
pub mod materialise;
pub mod output;
pub mod plan;
pub mod refusal;
pub mod revoke;
pub mod rotation;
pub mod run;
pub mod source;
pub mod state;
pub mod status;

/// The controller's version, as shown by `sealops-controller --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
