//! The arguments of `sealops policy fmt|check|eval|who-can`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Rewrite policy files in canonical layout (or, with --check, report the ones that are not).
    #[command(after_help = "Examples:
  sealops policy fmt policies/*.hcl
  sealops policy fmt --check policies/deploy.hcl   # exit 1 if it would change

Formatting never changes what a policy grants; comments above blocks and attributes are kept.")]
    Fmt(FmtArgs),
    /// Parse policy files and report every problem, with file and line.
    #[command(after_help = "Examples:
  sealops policy check                 # every policies/*.hcl and *.json
  sealops policy check policies/deploy.hcl other.hcl
  sealops policy check some/dir

Exit 0 when all parse, 1 when any has a problem.")]
    Check(CheckArgs),
    /// Evaluate a request against a holder's policies, as Vault would.
    #[command(after_help = r#"Examples:
  echo '{"path": "secrets/apps/db", "operation": "update", "data": {"password": "x"}}' \
    | sealops policy eval --policy policies/deploy.hcl --policy policies/base.hcl --request - -o json
  sealops policy eval --policy p.hcl --request req.json

The request is JSON: {"path": "...", "operation": "create|read|update|patch|delete|list|recover",
"data": {...optional parameters...}}; without "operation" only capabilities are computed.
All --policy files together are one holder's policies. With -o json, prints
{"allowed", "root_privs", "capabilities", "granting_policies", "matched"} and exits 0 whether
allowed or not; a policy that does not parse exits 2."#)]
    Eval(EvalArgs),
    /// Evaluate like `eval`, and explain it: which rules matched, which won and why.
    #[command(after_help = r#"Examples:
  echo '{"path": "secrets/apps/db", "operation": "read"}' \
    | sealops policy explain --policy policies/deploy.hcl --request -"#)]
    Explain(EvalArgs),
    /// List the identities whose policies allow OPERATION on PATH.
    #[command(after_help = "Examples:
  sealops policy who-can read secrets/apps/payments/db
  sealops policy who-can update secrets/apps/payments/db --repo ../infra
  sealops policy who-can sudo sys/policy/deploy      # `sudo` lists holders of sudo (approvers)

Identities come from identities/*.yaml, policies from policies/*.hcl and *.json.")]
    WhoCan(WhoCanArgs),
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Report files that are not canonical instead of rewriting them (exit 1 if any).
    #[arg(long)]
    pub check: bool,
    /// Policy files (.hcl or .json) or directories holding them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files or directories (default: policies/).
    pub paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A policy file; repeat for every policy the holder has.
    #[arg(long = "policy", required = true)]
    pub policies: Vec<PathBuf>,
    /// The request as JSON, in a file or `-` for standard input.
    #[arg(long)]
    pub request: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct WhoCanArgs {
    /// create, read, update, patch, delete, list, recover — or sudo.
    pub operation: String,
    /// The policy path, e.g. secrets/apps/db or sys/policy/deploy.
    pub path: String,
    /// Repository root holding identities/ and policies/.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: OutputFormat,
}
