//! `sealops policy …`: Vault-syntax ACL policies (placeholder until the policy engine lands).

use clap::{Args, Subcommand};

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files (not implemented yet).
    Check,
}

pub fn run(_args: PolicyArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`sealops policy` is not implemented yet")
}
