//! The arguments of `sealops lease` and `sealops rotate` (the controller's lease API).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// The state directory of a controller installed as the examples do.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sealops";

/// Where the controller's API is.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The controller's state directory; its api.json gives the API's URL and token file.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "SEALOPS_STATE_DIR",
        default_value = DEFAULT_STATE_DIR
    )]
    pub state_dir: PathBuf,
    /// The API's URL instead of api.json's, e.g. http://127.0.0.1:9751 (loopback only).
    #[arg(long, global = true, value_name = "URL", env = "SEALOPS_API_URL")]
    pub api_url: Option<String>,
    /// The API token's file instead of api.json's (default with --api-url: DIR/api.token).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SEALOPS_API_TOKEN_FILE"
    )]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List leases: id, target, state, time left, last error.
    #[command(
        after_help = "Examples:\n  sealops lease list\n  sealops lease list --prefix main-pg/creds/app/\n  \
sealops lease list --json | jq '.leases[] | select(.state == \"revoking\")'"
    )]
    List(ListArgs),
    /// Renew leases now (within their max TTL) and print them as renewed.
    #[command(
        after_help = "Examples:\n  sealops lease renew main-pg/creds/app/v-app-x1y2\n  sealops lease renew --prefix main-pg/creds/app/"
    )]
    Renew(SelectArgs),
    /// Revoke leases now (the database drops the credentials) and print their ids.
    #[command(
        after_help = "`--prefix /` selects every lease; an empty prefix is refused.\n\n\
Examples:\n  sealops lease revoke main-pg/creds/app/v-app-x1y2\n  sealops lease revoke --prefix main-pg/\n  \
sealops lease revoke --prefix /"
    )]
    Revoke(SelectArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only leases whose id starts with this (e.g. main-pg/ or main-pg/creds/app/).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
    /// The same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// One lease by id, or every lease under a prefix.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SelectArgs {
    /// The lease id, `<backend>/creds/<role>/<username>` (see `sealops lease list`).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Every lease whose id starts with PREFIX; `/` selects every lease.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// `<backend>/static-creds/<role>`, or `<backend>/rotate-root` for the admin password.
    #[arg(value_name = "PATH")]
    pub path: String,
}
