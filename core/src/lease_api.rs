//! The controller's lease API on the wire: paths, request bodies, answers and the endpoint
//! file. Shared by the controller that serves it (`sealops_controller::api`) and the CLI that
//! calls it (`sealops lease`, `sealops rotate`), so the two cannot drift apart.
//!
//! A lease's password is never part of any of these types: [`LeaseView`] lists what may be
//! shown, field by field.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The file in the controller's state directory that tells the CLI where the API is.
pub const ENDPOINT_FILE: &str = "api.json";
/// The token file the CLI reads when neither `--token-file` nor [`ENDPOINT_FILE`] names one.
pub const DEFAULT_TOKEN_FILE: &str = "api.token";

/// `GET`: the leases, `?prefix=` to narrow them; answers [`LeaseList`].
pub const LEASES_PATH: &str = "/v1/leases";
/// `POST` a [`SelectRequest`]: renew; answers [`Renewed`].
pub const RENEW_PATH: &str = "/v1/leases/renew";
/// `POST` a [`SelectRequest`]: revoke; answers [`Revoked`].
pub const REVOKE_PATH: &str = "/v1/leases/revoke";
/// `POST` a [`RotateRequest`]: rotate a static credential now; answers [`Rotated`].
pub const ROTATE_PATH: &str = "/v1/rotate";

/// `<state_dir>/api.json`: where the CLI finds the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT` (or `http://[::1]:PORT`).
    pub url: String,
    /// The token's file (absolute).
    pub token_file: PathBuf,
}

/// Whether a lease's credentials are in use or on their way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseState {
    /// Recorded, and the database may be creating the user: never handed to an output. One
    /// left over from a crash is revoked once the controller's issuing timeout has passed.
    Issuing,
    Active,
    /// Replaced or expired: to be revoked (after `revoke_after`).
    Revoking,
}

impl std::fmt::Display for LeaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Issuing => "issuing",
            Self::Active => "active",
            Self::Revoking => "revoking",
        })
    }
}

/// A lease as the API shows it: everything but the sealed password. Fields are listed one by
/// one so that a field added to the stored lease is not shown until someone decides it may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    pub id: String,
    pub backend: String,
    pub role: String,
    pub username: String,
    pub target: String,
    /// Unix seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub state: LeaseState,
    pub revoke_after: i64,
    pub revoke_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub replace: bool,
}

/// Which leases a renew or revoke is about: one by `id`, or every one whose id starts with
/// `prefix` (`""` or `"/"`: all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// What to rotate: `<backend>/static-creds/<role>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    pub path: String,
}

/// The answer to `GET` [`LEASES_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    pub leases: Vec<LeaseView>,
}

/// The answer to [`RENEW_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    pub renewed: Vec<LeaseView>,
}

/// The answer to [`REVOKE_PATH`]: the ids revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: Vec<String>,
}

/// The answer to [`ROTATE_PATH`]: the path rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotated {
    pub rotated: String,
}

/// Every error answer: what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
