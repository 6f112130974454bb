//! `sealops-controller`: keeps a machine's secrets in line with the verified state of a branch.
//!
//! Built so far: `check-config`. `run` is not implemented yet and says so.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sealops-controller",
    version,
    about = "The sealops sync controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow the repository and materialise its secrets (not implemented yet).
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One reconcile, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Check the local configuration and everything it names on this machine.
    #[command(
        after_help = "Exit codes: 0 ready, 1 problems found, 2 the file does not parse.\n\n\
Example:\n  sealops-controller check-config --config /etc/sealops/controller.yaml"
    )]
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { .. } => {
            eprintln!(
                "sealops-controller {}: `run` is not implemented yet (only check-config and --version work)",
                sealops_controller::VERSION
            );
            ExitCode::from(2)
        }
        Command::CheckConfig { config } => match sealops_controller::check::load(&config) {
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
            Ok(parsed) => {
                let problems = sealops_controller::check::problems(&parsed);
                for problem in &problems {
                    eprintln!("{}: {problem}", config.display());
                }
                if problems.is_empty() {
                    eprintln!("{}: ready", config.display());
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
        },
    }
}
