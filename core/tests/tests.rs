//! The library's integration tests, in one test binary (one link step), one module per area.
//! A new test goes into the module of the API it exercises; a new area gets a file here and a
//! `mod` line below. `signing_support` and `fixtures` are shared set-up, not tests.

mod fixtures;
mod signing_support;

mod authz_range;
mod manifest_roundtrip;
mod msrv;
mod policy_identity;
mod policy_props;
mod policy_semantics;
mod policy_vault_cases;
mod signing_allowed_signers_props;
mod signing_approval;
mod signing_approval_props;
mod signing_commit;
mod signing_openssh_compat;
mod sops_fixtures;
mod sops_props;
mod sops_roundtrip;
mod tamper;
