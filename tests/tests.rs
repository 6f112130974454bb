//! Every end-to-end test of sealops, in one test binary (one link step), one module per area.
//! They run the real `sealops` and `sealops-controller` binaries against real git repositories,
//! the real `age` CLI and the local PostgreSQL, MariaDB and Redis.
//!
//! Where a new test goes: beside the tests of the command or controller feature it exercises,
//! in the module below that names it; a new area gets a new file here and a `mod` line in this
//! list. Shared set-up (a temporary world, a signed repository, a running controller) lives in
//! `common/`; nothing there is a test.
//!
//! Run one area with `cargo test -p sealops-cli --test e2e controller_audit::`.

mod common;
/// Database credentials helpers shared by the credentials and rotation-crash modules.
#[path = "common/credentials.rs"]
mod credentials;
/// The controller crate's database test support (starts and reaches the local databases).
#[path = "../controller/tests/dbs_support/mod.rs"]
mod dbs_support;

// The `sealops` CLI.
mod age_interop;
mod approve_cli;
mod audit_cli;
mod check_plan;
mod cli;
mod git_diff;
mod git_integration;
mod lease_cli;
mod policy_cli;
mod policy_eval_cases;
mod sops_cli;

// The controller.
mod audit_attacks;
mod authz_attacks;
mod controller_audit;
mod controller_crash;
mod controller_credentials;
mod controller_local;
mod controller_remote;
mod controller_rotation_crash;
mod controller_security;
