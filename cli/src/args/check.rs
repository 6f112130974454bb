//! The arguments of `sealops check`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The commit the change is judged against (in CI: the protected target branch).
    #[arg(long, value_name = "REF")]
    pub base: String,
    /// The last commit of the change.
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub head: String,
    /// Signers trusted at the base (default: .sealops/allowed_signers as committed at BASE,
    /// which in CI is the protected branch, not the pull request).
    #[arg(long, value_name = "FILE")]
    pub trusted_signers: Option<PathBuf>,
    /// Only these principals count as signers and approvers (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub pin: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = CheckFormat::Text)]
    pub output: CheckFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
    Markdown,
    Sarif,
}
