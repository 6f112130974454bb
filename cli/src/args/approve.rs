//! The arguments of `sealops approve` and `sealops approvals`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Files to approve as they are in the work tree (a missing file approves its deletion).
    #[arg(value_name = "PATH", conflicts_with = "range")]
    pub paths: Vec<String>,
    /// Approve every administrative change the commits of BASE..HEAD make, at each commit.
    #[arg(long, value_name = "BASE..HEAD")]
    pub range: Option<String>,
    /// The principal to approve as (default: the only principal .sealops/allowed_signers
    /// grants the key).
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// What the administrative changes of BASE..HEAD have, and what they still need.
    #[command(
        after_help = "Signers are trusted as committed at BASE unless --trusted-signers is given. \
Exit 1 when an approval is missing.\n\nExamples:\n  sealops approvals status --base origin/main\n  \
sealops approvals status --base main --head feature --trusted-signers /etc/sealops/allowed_signers"
    )]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_name = "REF")]
    pub base: String,
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub head: String,
    /// Signers trusted at the base (default: .sealops/allowed_signers as committed at BASE).
    #[arg(long, value_name = "FILE")]
    pub trusted_signers: Option<PathBuf>,
}
