//! The arguments of `sealops audit verify|log|fingerprint`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The audit branch (default: audit.branch of .sealops/config.yaml, `sealops/audit`).
    #[arg(long, global = true, value_name = "BRANCH")]
    pub branch: Option<String>,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every chain against the registered audit keys and any witnesses; name the first
    /// broken line of each.
    #[command(
        after_help = "Keys are trusted only as registered in .sealops/controllers.yaml as committed at HEAD (or \
--registry-at REF; never an uncommitted edit), or in --registry FILE, a copy pinned locally: a trail under any \
other key is reported as forged or replaced, and a registered key with no trail as deleted. With --base REF (the \
protected branch, as for `sealops check`) every commit from REF to the registry's commit must be authorised \
(signed, and approved where the policy says so), so an unapproved registry change is refused; without it the \
registry's history is taken on trust and verify says so. A missing registry trusts no key: exit 1. A clean cut (the last batches removed with the head set back) leaves a \
valid, shorter trail: only a witness catches it. Pass the controller's newest seal with --witness: its /status \
URL (http://127.0.0.1:PORT/status), a saved copy of that document, or a file holding the seal.\n\n\
Exit codes: 0 every chain intact, 1 something is broken, missing or unregistered, 2 the branch or a witness cannot be read.\n\n\
Examples:\n  sealops audit verify\n  sealops audit verify --witness http://127.0.0.1:9090/status --witness saved-seal.json"
    )]
    Verify(VerifyArgs),
    /// List records, oldest first, filtered.
    Log(LogArgs),
    /// The fingerprint a value has in the trail (needs the controller's audit key file).
    Fingerprint(FingerprintArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The registry of audit keys to trust instead of the repository's
    /// .sealops/controllers.yaml: a copy pinned locally.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["registry_at", "base"])]
    pub registry: Option<PathBuf>,
    /// The commit whose .sealops/controllers.yaml is trusted.
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub registry_at: String,
    /// A trusted commit (the protected branch): every commit from it to --registry-at must be
    /// authorised, or the registry is not trusted.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// With --base: the signers trusted at the base (default: .sealops/allowed_signers as
    /// committed at BASE), e.g. the controller's own `trust.allowed_signers_file`.
    #[arg(long, value_name = "FILE", requires = "base")]
    pub trusted_signers: Option<PathBuf>,
    /// A seal the branch must reach: a controller's /status URL (http only), or a file holding
    /// its /status document or the seal itself. Repeatable.
    #[arg(long, value_name = "URL|FILE")]
    pub witness: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The registry of audit keys to trust instead of .sealops/controllers.yaml at HEAD: only
    /// records of chains that verify against it are listed.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// Records at or after this time (RFC 3339, e.g. 2026-11-28T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Records before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Records whose path matches this glob (e.g. `apps/payments/*`).
    #[arg(long)]
    pub path: Option<String>,
    /// Records of this target identity.
    #[arg(long = "for-identity", value_name = "NAME")]
    pub for_identity: Option<String>,
    /// Records of this event (e.g. output-written, commit-refused).
    #[arg(long)]
    pub event: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = LogFormat::Table)]
    pub output: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// The secret path (e.g. apps/payments/db).
    pub secret: String,
    /// The key whose value to fingerprint.
    pub key: String,
    /// The controller's audit key file (`<state_dir>/audit.key`).
    #[arg(long, value_name = "FILE")]
    pub audit_key: PathBuf,
}
