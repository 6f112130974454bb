//! Git integration: `textconv` (diffs for reviewers), `merge-driver` (key-level merges),
//! `git-setup` (attributes and drivers) and `precommit` (refuse plaintext and private keys).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use sealops_core::manifest::Manifest;

use crate::args::{GlobalArgs, MergeDriverArgs, TextconvArgs};
use crate::context::{self, IdentityNeed};
use crate::exit::Outcome;
use crate::output;

pub fn textconv(global: &GlobalArgs, args: TextconvArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let display = args.file.display().to_string();
    let manifest = match Manifest::parse(&text, &display) {
        Ok(manifest) => manifest,
        Err(e) => {
            // Not a manifest (or mid-conflict): show it as it is, with the reason.
            output::stdout(format!("(not a valid sealops manifest: {e})\n{text}").as_bytes())?;
            return Ok(Outcome::Success);
        }
    };
    // Plaintext only when an identity opens it and the reader asked for it or sits at a terminal.
    let may_reveal = args.reveal || std::io::stdout().is_terminal();
    let revealed = if may_reveal {
        let identities = context::identities(global, IdentityNeed::Optional)?;
        let names = context::repository(global)
            .map(|r| r.recipient_names())
            .unwrap_or_default();
        (!identities.is_empty())
            .then(|| manifest.reveal(&display, &identities, &names).ok())
            .flatten()
    } else {
        None
    };
    output::stdout(sealops_core::review::render(&manifest, revealed.as_ref()).as_bytes())?;
    Ok(Outcome::Success)
}

pub fn merge_driver(args: MergeDriverArgs) -> anyhow::Result<Outcome> {
    let name = args
        .path
        .clone()
        .unwrap_or_else(|| args.ours.display().to_string());
    let read = |path: &Path, side: &str| -> anyhow::Result<Option<Manifest>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{name}: cannot read the {side} version"))?;
        if text.trim().is_empty() && side == "base" {
            return Ok(None);
        }
        Ok(Some(Manifest::parse(&text, &format!("{name} ({side})"))?))
    };
    let (base, ours, theirs) = match (
        read(&args.base, "base"),
        read(&args.ours, "ours"),
        read(&args.theirs, "theirs"),
    ) {
        (Ok(base), Ok(Some(ours)), Ok(Some(theirs))) => (base, ours, theirs),
        (b, o, t) => {
            for error in [b.err(), o.err(), t.err()].into_iter().flatten() {
                eprintln!("sealops merge-driver: {error:#}");
            }
            eprintln!(
                "sealops merge-driver: {name}: cannot merge at key level; resolve it by hand"
            );
            return Ok(Outcome::Problems);
        }
    };
    let merged = sealops_core::merge::merge(base.as_ref(), &ours, &theirs);
    sealops_core::fsutil::write_atomic(&args.ours, merged.text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", args.ours.display()))?;
    if merged.conflicts.is_empty() {
        return Ok(Outcome::Success);
    }
    for conflict in &merged.conflicts {
        eprintln!("sealops merge-driver: {name}: conflict: {conflict}");
    }
    Ok(Outcome::Problems)
}

pub fn git_setup(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let changes = sealops_core::gitsetup::configure(repo.root(), "sealops")?;
    if changes.is_empty() {
        eprintln!("git is already set up for sealops");
    }
    for change in changes {
        eprintln!("set {change}");
    }
    Ok(Outcome::Success)
}

pub fn precommit(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let recipients = repo.config.recipients();
    let mut problems = Vec::new();
    for staged in sealops_core::gitsetup::staged_files(repo.root())? {
        let display = repo.display_path(&staged.path);
        let text = String::from_utf8_lossy(&staged.content);
        if text.contains("AGE-SECRET-KEY-1") || text.contains("age-secret-key-1") {
            problems.push(format!(
                "{display}: holds a private key (AGE-SECRET-KEY-1…); unstage it with `git restore --staged {display}` and keep identities out of the repository"
            ));
            continue;
        }
        if !staged.path.starts_with(repo.secrets_dir()) {
            continue;
        }
        if staged.path.extension().is_none_or(|e| e != "yaml")
            && staged.path.file_name().is_none_or(|n| n != ".gitkeep")
        {
            problems.push(format!(
                "{display}: only sealed manifests (*.yaml) belong under secrets/; seal this file's content with `sealops seal … --from-file`"
            ));
            continue;
        }
        let Ok(location) = repo.secret_path_of(&staged.path) else {
            continue;
        };
        match Manifest::parse(&text, &display) {
            Err(e) => problems.push(e.to_string()),
            Ok(manifest) => problems.extend(
                manifest
                    .verify(
                        Some(&location),
                        &recipients,
                        &sealops_core::keys::AgeIdentities::new(),
                    )
                    .into_iter()
                    .map(|p| format!("{display}: {p}")),
            ),
        }
    }
    if problems.is_empty() {
        return Ok(Outcome::Success);
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    eprintln!(
        "sealops precommit: {} problems; the commit was refused",
        problems.len()
    );
    Ok(Outcome::Problems)
}
