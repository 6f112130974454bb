//! Reconcile logic of `sealops-controller`.
//!
//! The controller is not implemented yet; this crate reserves its place in the workspace so the
//! binary, its tests and its documentation have a home from the start.

/// The controller's version, as shown by `sealops-controller --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
