//! `sealops audit verify|log|fingerprint`: read the audit branch. All checking is in
//! `sealops_core::audit`; this module finds the branch and renders.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use sealops_core::audit::{self, Line, Record, Registry, Seal, TrailFile};
use sealops_core::repo::CONTROLLERS_FILE;

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
    /// Check every chain against the registered audit keys and any witnesses; name the first
    /// broken line of each.
    #[command(
        after_help = "Keys are trusted only as registered in .sealops/controllers.yaml of the checkout (or \
--registry FILE, a copy pinned locally): a trail under any other key is reported as forged or replaced, and a \
registered key with no trail as deleted. A clean cut (the last batches removed with the head set back) leaves a \
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
    /// The registry of audit keys to trust instead of the checkout's .sealops/controllers.yaml.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// A seal the branch must reach: a controller's /status URL (http only), or a file holding
    /// its /status document or the seal itself. Repeatable.
    #[arg(long, value_name = "URL|FILE")]
    pub witness: Vec<String>,
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
        AuditCommand::Verify(verify_args) => verify(global, args.branch.as_deref(), verify_args),
        AuditCommand::Log(log) => log_records(global, args.branch.as_deref(), log),
        AuditCommand::Fingerprint(fp) => fingerprint(global, fp),
    }
}

fn verify(global: &GlobalArgs, branch: Option<&str>, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let (registry_file, registry_text) = match &args.registry {
        Some(file) => (
            file.display().to_string(),
            Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            ),
        ),
        None => {
            let file = repo.root().join(CONTROLLERS_FILE);
            match std::fs::read_to_string(&file) {
                Ok(text) => (CONTROLLERS_FILE.to_owned(), Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (CONTROLLERS_FILE.to_owned(), None)
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", file.display()));
                }
            }
        }
    };
    let registry = match &registry_text {
        Some(text) => Registry::parse(text, &registry_file)?,
        None => Registry::default(),
    };
    let witnesses = args
        .witness
        .iter()
        .map(|from| read_witness(from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (branch, files) = trail(global, branch)?;
    let verified = audit::verify_trail(&files, &registry, &witnesses);
    let mut out = String::new();
    if registry_text.is_none() {
        out.push_str(&format!(
            "{registry_file}: missing, so no audit key is trusted; register each controller's key (`sealops-controller audit-key` prints the entry)\n"
        ));
    }
    for chain in &verified.chains {
        out.push_str(&format!(
            "{}: {} records, chain and seals intact, key {} registered{}\n",
            chain.controller,
            chain.records,
            short_key(&chain.public_key),
            if witnesses
                .iter()
                .any(|w| w.seal.seal.controller == chain.controller
                    && w.seal.seal.public_key == chain.public_key)
            {
                ", reaches its witness"
            } else {
                ""
            }
        ));
    }
    for problem in &verified.problems {
        out.push_str(&format!("{}: BROKEN at {problem}\n", problem.controller));
    }
    if verified.chains.is_empty() && verified.problems.is_empty() {
        out.push_str(&format!("{branch}: no audit records yet\n"));
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(if verified.is_intact() {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

fn short_key(key: &str) -> String {
    key.get(..20)
        .map_or_else(|| key.to_owned(), |k| format!("{k}…"))
}

/// A witness seal from a URL (a controller's `/status`) or a file (a `/status` document, or
/// the seal itself).
fn read_witness(from: &str) -> anyhow::Result<audit::Witness> {
    let text = if from.starts_with("http://") {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        agent
            .get(from)
            .call()
            .and_then(|mut r| r.body_mut().with_config().limit(1 << 20).read_to_string())
            .with_context(|| format!("cannot read the witness from {from}"))?
    } else if from.contains("://") {
        anyhow::bail!(
            "witness {from}: only http:// URLs (a controller's /status on loopback) or files are read"
        );
    } else {
        std::fs::read_to_string(from).with_context(|| format!("cannot read witness {from}"))?
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("witness {from} is not JSON (a /status document or a seal)"))?;
    let seal = value
        .get("audit")
        .and_then(|a| a.get("witness"))
        .filter(|w| !w.is_null())
        .unwrap_or(&value);
    let seal: Seal = serde_json::from_value(seal.clone()).with_context(|| {
        format!(
            "witness {from} holds no seal (a /status document with audit.witness, or a seal line)"
        )
    })?;
    Ok(audit::Witness {
        seal,
        source: from.to_owned(),
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
