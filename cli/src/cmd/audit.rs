//! `sealops audit verify|log|fingerprint`: read the audit branch. All checking is in
//! `sealops_core::audit`; this module finds the branch and renders.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use sealops_core::audit::{self, Line, Record, TrailFile};

use crate::args::GlobalArgs;
use crate::context;
use crate::exit::Outcome;

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
    /// Check every controller's chain, seals and signed head; name the first broken line.
    Verify,
    /// List records, oldest first, filtered.
    Log(LogArgs),
    /// The fingerprint a value has in the trail (needs the controller's audit key file).
    Fingerprint(FingerprintArgs),
}

#[derive(Debug, Args)]
pub struct LogArgs {
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

fn trail(global: &GlobalArgs, branch: Option<&str>) -> anyhow::Result<(String, Vec<TrailFile>)> {
    let repo = context::repository(global)?;
    let branch = branch
        .map(str::to_owned)
        .unwrap_or_else(|| repo.config.audit.branch.clone());
    let git = git2::Repository::discover(repo.root())
        .with_context(|| format!("{} is not inside a git repository", repo.root().display()))?;
    let commit = [
        format!("refs/heads/{branch}"),
        format!("refs/remotes/origin/{branch}"),
    ]
    .iter()
    .find_map(|name| git.find_reference(name).ok()?.peel_to_commit().ok())
    .with_context(|| {
        format!("no audit branch {branch:?} here or at origin; `git fetch origin {branch}` first")
    })?;
    let files = audit::trail_in_tree(&git, &commit.tree()?)?;
    Ok((branch, files))
}

pub fn run(global: &GlobalArgs, args: AuditArgs) -> anyhow::Result<Outcome> {
    match args.command {
        AuditCommand::Verify => verify(global, args.branch.as_deref()),
        AuditCommand::Log(log) => log_records(global, args.branch.as_deref(), log),
        AuditCommand::Fingerprint(fp) => fingerprint(global, fp),
    }
}

fn verify(global: &GlobalArgs, branch: Option<&str>) -> anyhow::Result<Outcome> {
    let (branch, files) = trail(global, branch)?;
    let verified = audit::verify_files(&files);
    let mut out = String::new();
    for (controller, records) in &verified.records {
        out.push_str(&format!(
            "{controller}: {records} records, chain and seals intact\n"
        ));
    }
    for problem in &verified.problems {
        out.push_str(&format!("{}: BROKEN at {problem}\n", problem.controller));
    }
    if verified.records.is_empty() && verified.problems.is_empty() {
        out.push_str(&format!("{branch}: no audit records yet\n"));
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(if verified.is_intact() {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

fn parse_time(text: &str, flag: &str) -> anyhow::Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).with_context(
        || format!("{flag} {text:?} is not an RFC 3339 time like 2026-11-28T00:00:00Z"),
    )
}

fn log_records(
    global: &GlobalArgs,
    branch: Option<&str>,
    args: LogArgs,
) -> anyhow::Result<Outcome> {
    let (_, mut files) = trail(global, branch)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, "--until"))
        .transpose()?;
    let glob = args
        .path
        .as_deref()
        .map(|g| {
            globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
        })
        .transpose()
        .context("--path is not a glob")?;
    let mut records: Vec<Record> = Vec::new();
    for file in files.iter().filter(|f| f.path.ends_with(".jsonl")) {
        for line in file.text.lines() {
            if let Ok(Line::Record(record)) = serde_json::from_str::<Line>(line) {
                records.push(*record);
            }
        }
    }
    records.retain(|r| {
        let at = parse_time(&r.time, "time").ok();
        since.is_none_or(|s| at.is_some_and(|t| t >= s))
            && until.is_none_or(|u| at.is_some_and(|t| t < u))
            && glob
                .as_ref()
                .is_none_or(|g| r.path.as_deref().is_some_and(|p| g.is_match(p)))
            && args
                .for_identity
                .as_ref()
                .is_none_or(|i| r.identity.as_ref() == Some(i))
            && args.event.as_ref().is_none_or(|e| {
                serde_json::to_value(r.event)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    == Some(e.clone())
            })
    });
    records.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    let mut out = String::new();
    match args.output {
        LogFormat::Json => {
            for record in &records {
                out.push_str(&serde_json::to_string(record)?);
                out.push('\n');
            }
        }
        LogFormat::Table => {
            for r in &records {
                let event = serde_json::to_value(r.event)?;
                let outcome = serde_json::to_value(r.outcome)?;
                out.push_str(&format!(
                    "{}  {:<16} {:<18} {:<8} {}{}{}{}\n",
                    r.time,
                    r.id,
                    event.as_str().unwrap_or_default(),
                    outcome.as_str().unwrap_or_default(),
                    r.path.as_deref().unwrap_or("-"),
                    r.target
                        .as_deref()
                        .map(|t| format!(" target={t}"))
                        .unwrap_or_default(),
                    r.commit
                        .as_deref()
                        .map(|c| format!(" commit={}", &c[..c.len().min(12)]))
                        .unwrap_or_default(),
                    r.reason
                        .as_deref()
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default(),
                ));
            }
        }
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(Outcome::Success)
}

fn fingerprint(global: &GlobalArgs, args: FingerprintArgs) -> anyhow::Result<Outcome> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&args.audit_key)
            .with_context(|| format!("cannot read {}", args.audit_key.display()))?,
    );
    let keys = audit::AuditKeys::parse(&text)
        .with_context(|| format!("{} is not an audit key file", args.audit_key.display()))?;
    let repo = context::repository(global)?;
    let path = context::secret_path(&args.secret)?;
    let identities = context::identities(global, context::IdentityNeed::Required)?;
    let manifest_path = repo.manifest_file(&path);
    let file = context::ManifestFile {
        display: repo.display_path(&manifest_path),
        file: manifest_path,
        location: Some(path.clone()),
    };
    let values = super::reveal::open(&file, &identities, &repo.recipient_names())?;
    let value = values
        .get(&args.key)
        .with_context(|| format!("{} has no key {}", args.secret, args.key))?;
    let line = keys
        .fingerprints
        .fingerprint(path.as_str(), &args.key, value.expose());
    crate::output::stdout(format!("{line}\n").as_bytes())?;
    Ok(Outcome::Success)
}
