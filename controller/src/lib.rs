//! Reconcile logic of `sealops-controller`.
//!
//! Built so far: [`output`], which writes outputs safely under the allowed roots. The reconcile
//! loop, triggers and HTTP endpoints are not implemented yet; the binary says so.

pub mod check;
pub mod status;
pub mod output;

/// The controller's version, as shown by `sealops-controller --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
