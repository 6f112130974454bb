//! The sealops library: sealed manifests, crypto, repository layout and (as they land) policy,
//! git, audit and rotation. The `sealops` CLI and `sealops-controller` are thin binaries over it.
//!
//! Which API to use when:
//! - Load keys with [`keys::AgeIdentities::load`]; parse recipients with `"age1…".parse::<keys::Recipient>()`.
//! - Read a manifest with [`manifest::Manifest::parse`], write it with
//!   [`manifest::Manifest::to_yaml`] through [`fsutil::write_atomic`].
//! - Change values with the methods in [`seal`] (`seal_values`, `reveal`, `rewrap`, …).
//! - Find the repository and its manifests with [`repo::Repository`]; it owns the path ↔
//!   secret-path mapping and the `.sealops/config.yaml` it loaded.
//!
//! - The controller's lease API on the wire (paths, bodies, answers, `api.json`) is
//!   [`lease_api`], for the controller that serves it and the CLI that calls it.
//!
//! Secrets in memory are [`secret::SecretValue`] / [`envelope::SessionKey`]: zeroed on drop,
//! `[redacted]` in `Debug`.

pub mod audit;
pub mod authz;
pub mod backend;
pub mod clock;
pub mod config;
pub mod controller_config;
pub mod envelope;
pub mod fsutil;
pub mod gitsetup;
pub mod gittree;
pub mod keys;
pub mod lease_api;
pub mod manifest;
pub mod merge;
pub mod policy;
pub mod render;
pub mod repo;
pub mod review;
pub mod schema;
pub mod seal;
pub mod secret;
pub mod signing;
pub mod sops;
pub mod target;
pub mod value;
pub mod yaml;
