//! `sealops`: seal secrets into reviewable git manifests.

mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "sealops",
    version,
    about = "Git-native secrets management with Vault's discipline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Vault-syntax ACL policies.
    Policy(cmd::policy::PolicyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(args) => cmd::policy::run(args),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            Outcome::Error.into()
        }
    }
}
