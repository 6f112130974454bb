//! `sealops-controller`: keeps a machine's secrets in line with the verified state of a branch.
//!
//! A thin binary: parse arguments, load the configuration, hand over to
//! [`sealops_controller::run`], turn errors into messages and exit codes.

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
    /// Follow the repository and materialise its secrets until SIGTERM/SIGINT.
    #[command(
        after_help = "Exit codes: 0 stopped (with --once: every target in sync with the branch head), \
1 with --once: something was refused or failed (see the log), 2 the configuration or an identity cannot be loaded.\n\n\
Examples:\n  sealops-controller run --config /etc/sealops/controller.yaml\n  \
sealops-controller run --config controller.yaml --once --log-format json"
    )]
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One full reconcile, then exit: 0 when every target is in sync, 1 otherwise.
        #[arg(long)]
        once: bool,
        /// Log lines as text or JSON (one object per line).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
        #[arg(long, default_value = "info")]
        log_level: String,
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
    /// Print this controller's audit key as an entry of .sealops/controllers.yaml, creating
    /// the key in the state directory when it is missing.
    #[command(
        after_help = "The entry goes under `controllers:` in .sealops/controllers.yaml; the change is governed as \
sys/controllers and needs approvals like a signer change. Until it is merged, `sealops audit verify` reports this \
controller's trail as signed by an unregistered key. A controller whose state directory was lost has a new key: \
register it beside the old entry (give the old one `valid_until`); the old trail stays valid.\n\n\
Exit codes: 0 printed, 2 the configuration or the key cannot be read.\n\n\
Example:\n  sealops-controller audit-key --config /etc/sealops/controller.yaml >> .sealops/controllers.yaml"
    )]
    AuditKey {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run(config_path: PathBuf, once: bool) -> anyhow::Result<bool> {
    let config = sealops_controller::check::load(&config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(sealops_controller::run::run(
        config,
        sealops_controller::run::RunOptions { once, config_path },
    ))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            config,
            once,
            log_format,
            log_level,
        } => {
            init_logging(log_format, &log_level);
            match run(config, once) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) if once => ExitCode::from(1),
                Ok(false) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::AuditKey { config } => {
            let printed = sealops_controller::check::load(&config).and_then(|parsed| {
                sealops_controller::audit::registration_entry(
                    &parsed.state_dir,
                    &parsed.controller_id(),
                )
                .map_err(anyhow::Error::msg)
            });
            match printed {
                Ok(entry) => {
                    print!("{entry}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(2)
                }
            }
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
