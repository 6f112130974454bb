//! `sealops audit verify|log|fingerprint`: read the audit branch. All checking is in
//! `sealops_core::audit`; this module finds the branch and renders.

use std::path::PathBuf;

use anyhow::Context as _;
use sealops_core::audit::{self, Line, Record, Registry, Seal};
use sealops_core::repo::CONTROLLERS_FILE;

use crate::args::GlobalArgs;
use crate::args::audit::{
    AuditArgs, AuditCommand, FingerprintArgs, LogArgs, LogFormat, VerifyArgs,
};
use crate::context;
use crate::exit::Outcome;

/// The audit branch's name, the repository, and the branch's tree.
fn trail(
    global: &GlobalArgs,
    branch: Option<&str>,
) -> anyhow::Result<(String, git2::Repository, git2::Oid)> {
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
    let tree = commit.tree_id();
    drop(commit);
    Ok((branch, git, tree))
}

pub fn run(global: &GlobalArgs, args: AuditArgs) -> anyhow::Result<Outcome> {
    match args.command {
        AuditCommand::Verify(verify_args) => verify(global, args.branch.as_deref(), verify_args),
        AuditCommand::Log(log) => log_records(global, args.branch.as_deref(), log),
        AuditCommand::Fingerprint(fp) => fingerprint(global, fp),
    }
}

/// The registry of audit keys verify trusts, where it came from, and why it might not be
/// trusted.
struct TrustedRegistry {
    registry: Registry,
    /// E.g. `.sealops/controllers.yaml at HEAD (1a2b3c4d)`.
    source: String,
    /// Said before the findings; not a failure.
    notes: Vec<String>,
    /// Reasons the registry cannot be trusted: each makes verify fail.
    problems: Vec<String>,
}

/// Largest registry read from a commit: a few hundred bytes per controller.
const MAX_REGISTRY_BYTES: u64 = 1 << 20;

fn trusted_registry(
    global: &GlobalArgs,
    file: Option<&PathBuf>,
    at: &str,
    base: Option<&str>,
    signers: Option<&PathBuf>,
) -> anyhow::Result<TrustedRegistry> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let source = file.display().to_string();
        return Ok(TrustedRegistry {
            registry: Registry::parse(&text, &source)?,
            source,
            notes: Vec::new(),
            problems: Vec::new(),
        });
    }
    let repo = context::repository(global)?;
    let git = git2::Repository::discover(repo.root())
        .with_context(|| format!("{} is not inside a git repository", repo.root().display()))?;
    let commit = git
        .revparse_single(at)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| {
            format!("cannot resolve {at:?} to a commit; the registry is read from a commit, never from uncommitted files")
        })?;
    let short = &commit.id().to_string()[..8];
    let source = format!("{CONTROLLERS_FILE} at {at} ({short})");
    let mut trusted = TrustedRegistry {
        registry: Registry::default(),
        source: source.clone(),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    match commit.tree()?.get_path(std::path::Path::new(CONTROLLERS_FILE)) {
        Ok(entry) if entry.filemode() != 0o100644 => trusted.problems.push(format!(
            "{source}: not a regular file (mode {:o}): no audit key is trusted",
            entry.filemode()
        )),
        Ok(entry) => match audit::blob_within(&git, entry.id(), MAX_REGISTRY_BYTES)? {
            // Whoever wrote the commit wrote the file: a broken one is a finding, not an error
            // of this command.
            Ok(bytes) => match Registry::parse(&String::from_utf8_lossy(&bytes), &source) {
                Ok(registry) => trusted.registry = registry,
                Err(e) => trusted.problems.push(format!("{e}: no audit key is trusted")),
            },
            Err(size) => trusted.problems.push(format!(
                "{source}: {size} bytes, over the {MAX_REGISTRY_BYTES}-byte limit: not a registry"
            )),
        },
        Err(_) => trusted.problems.push(format!(
            "{source}: missing, so no audit key is trusted and no trail can be verified; register each controller's key (`sealops-controller audit-key` prints the entry) with an approved commit"
        )),
    }
    match base {
        Some(base_name) => {
            let base = git
                .revparse_single(base_name)
                .and_then(|o| o.peel_to_commit())
                .with_context(|| format!("cannot resolve --base {base_name:?} to a commit"))?;
            let bootstrap = sealops_core::authz::Bootstrap {
                signers: super::approve::trusted_signers(&git, &base, base_name, signers)?,
                pinned_principals: None,
                clock: sealops_core::authz::Clock::system(),
            };
            let report =
                sealops_core::authz::authorise_range(&git, base.id(), commit.id(), &bootstrap)?;
            for violation in report.violations().take(5) {
                trusted.problems.push(format!(
                    "{source} is not trusted: {violation} (between --base {base_name} and {at})"
                ));
            }
        }
        None => trusted.notes.push(format!(
            "registry: {source}; whether its changes were approved is not checked (pass --base REF, the protected branch, or --registry FILE)"
        )),
    }
    Ok(trusted)
}

fn verify(global: &GlobalArgs, branch: Option<&str>, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let trusted = trusted_registry(
        global,
        args.registry.as_ref(),
        &args.registry_at,
        args.base.as_deref(),
        args.trusted_signers.as_ref(),
    )?;
    let registry = &trusted.registry;
    let witnesses = args
        .witness
        .iter()
        .map(|from| read_witness(from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (branch, git, tree) = trail(global, branch)?;
    let verified = audit::verify_branch(&git, &git.find_tree(tree)?, registry, &witnesses)?;
    let mut out = String::new();
    for note in &trusted.notes {
        out.push_str(&format!("{note}\n"));
    }
    for problem in &trusted.problems {
        out.push_str(&format!("BROKEN: {problem}\n"));
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
    Ok(if verified.is_intact() && trusted.problems.is_empty() {
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
    let (_, git, tree) = trail(global, branch)?;
    let tree = git.find_tree(tree)?;
    // Only records of chains that verify are listed: anyone who can push to the branch can
    // add files that look like records.
    let trusted = trusted_registry(global, args.registry.as_ref(), "HEAD", None, None)?;
    let mut files = audit::trail_entries(&git, &tree)?;
    let verified = audit::verify_trail_with(&files, &trusted.registry, &[], &|file| {
        audit::read_batch(&git, file).map(std::borrow::Cow::Owned)
    });
    let listed: Vec<String> = verified
        .chains
        .iter()
        .map(|c| audit::layout::chain_dir(&c.controller, &c.public_key) + "/")
        .collect();
    let unverified = files
        .iter()
        .filter(|f| f.path.ends_with(".jsonl") && !listed.iter().any(|d| f.path.starts_with(d)))
        .count();
    if unverified > 0 {
        eprintln!(
            "warning: {unverified} file(s) of the audit branch are not listed: they are not in a chain that verifies against {} (`sealops audit verify` names why)",
            trusted.source
        );
    }
    files.retain(|f| listed.iter().any(|d| f.path.starts_with(d)));
    let mut texts = Vec::new();
    for file in files.iter().filter(|f| f.path.ends_with(".jsonl")) {
        texts.push(
            audit::read_batch(&git, file).map_err(|why| anyhow::anyhow!("{}: {why}", file.path))?,
        );
    }
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
    for text in &texts {
        for line in text.lines() {
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
