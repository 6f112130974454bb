//! `sealops approve` and `sealops approvals status`: signed statements over content
//! (`sealops_core::signing::approval`), counted by `sealops_core::authz` as `check` counts them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use git2::{Oid, Sort};
use sealops_core::authz::{self, Bootstrap, Clock, Governed};
use sealops_core::config::Config;
use sealops_core::repo::{CONFIG_FILE, SIGNERS_FILE};
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
use sealops_core::signing::sshsig::SigningKey;
use sealops_core::signing::{APPROVAL_NAMESPACE, AllowedSigners};

use crate::args::GlobalArgs;
use crate::args::approve::{ApprovalsArgs, ApprovalsCommand, ApproveArgs};
use crate::context;
use crate::exit::Outcome;

fn open_git(root: &std::path::Path) -> anyhow::Result<git2::Repository> {
    git2::Repository::discover(root)
        .with_context(|| format!("{} is not inside a git repository", root.display()))
}

fn commit_of<'r>(git: &'r git2::Repository, name: &str) -> anyhow::Result<git2::Commit<'r>> {
    git.revparse_single(name)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| format!("cannot resolve {name:?} to a commit"))
}

/// The one ssh-agent key that `.sealops/allowed_signers` lets approve (as `principal`, when
/// given).
fn agent_key(
    repo: &sealops_core::repo::Repository,
    principal: Option<&str>,
    now: i64,
) -> anyhow::Result<SigningKey> {
    let socket = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .context("no key: pass -i KEY (an SSH private key file), or run ssh-agent (SSH_AUTH_SOCK is not set)")?;
    let signers = AllowedSigners::load(&repo.root().join(SIGNERS_FILE))?;
    let mut usable: Vec<SigningKey> = SigningKey::from_agent(std::path::Path::new(&socket))?
        .into_iter()
        .filter(|key| {
            signers
                .principals_for_key(key.public_key().key_data(), APPROVAL_NAMESPACE, now)
                .is_ok_and(|ps| principal.is_none_or(|p| ps.iter().any(|q| q == p)))
        })
        .collect();
    match usable.len() {
        1 => Ok(usable.remove(0)),
        0 => bail!(
            "none of ssh-agent's keys may approve{} per {SIGNERS_FILE}; pass -i KEY",
            principal.map(|p| format!(" as {p}")).unwrap_or_default()
        ),
        n => bail!("{n} of ssh-agent's keys may approve; choose one with -i KEY or --principal"),
    }
}

/// The signers file as committed at `commit`, or the one given.
pub fn trusted_signers(
    git: &git2::Repository,
    commit: &git2::Commit<'_>,
    name: &str,
    file: Option<&PathBuf>,
) -> anyhow::Result<AllowedSigners> {
    if let Some(path) = file {
        return Ok(AllowedSigners::load(path)?);
    }
    let text = match commit.tree()?.get_path(std::path::Path::new(SIGNERS_FILE)) {
        Ok(entry) => String::from_utf8_lossy(git.find_blob(entry.id())?.content()).into_owned(),
        Err(_) => String::new(),
    };
    Ok(AllowedSigners::parse(
        &text,
        &format!("{SIGNERS_FILE} at {name}"),
    )?)
}

pub fn approve(global: &GlobalArgs, args: ApproveArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let now = sealops_core::clock::unix_now();
    let key = match global.identity.as_slice() {
        [key_file] => SigningKey::load(key_file)?,
        [] => agent_key(&repo, args.principal.as_deref(), now)?,
        _ => bail!("give one SSH private key to approve with (-i KEY), or none to use ssh-agent"),
    };
    let principal = match args.principal {
        Some(p) => p,
        None => {
            let signers = AllowedSigners::load(&repo.root().join(SIGNERS_FILE))?;
            let principals = signers
                .principals_for_key(key.public_key().key_data(), APPROVAL_NAMESPACE, now)
                .with_context(|| format!("{SIGNERS_FILE} does not allow this key to approve"))?;
            match principals.as_slice() {
                [one] => one.clone(),
                many => bail!(
                    "the key may approve as {}; choose one with --principal",
                    many.join(", ")
                ),
            }
        }
    };
    // Each statement names a path once, so successive versions of a path go to successive
    // statements.
    let mut versions: BTreeMap<String, Vec<ApprovedContent>> = BTreeMap::new();
    if let Some(range) = &args.range {
        let git = open_git(repo.root())?;
        let (base, head) = range
            .split_once("..")
            .with_context(|| format!("--range {range:?} is not BASE..HEAD"))?;
        let (base, head) = (commit_of(&git, base)?.id(), commit_of(&git, head)?.id());
        let mut walk = git.revwalk()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        walk.push(head)?;
        walk.hide(base)?;
        for oid in walk {
            let commit = git.find_commit(oid?)?;
            let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
            let changes = authz::governed_changes(&git, parent.as_ref(), &commit.tree()?)?;
            for (path, (content, governed)) in changes {
                if matches!(governed, Governed::Admin { .. }) {
                    let list = versions.entry(path).or_default();
                    if !list.contains(&content) {
                        list.push(content);
                    }
                }
            }
        }
    } else {
        if args.paths.is_empty() {
            bail!("name the files to approve, or give --range BASE..HEAD");
        }
        for path in &args.paths {
            let full = repo.root().join(path);
            let content = match std::fs::read(&full) {
                Ok(bytes) => ApprovedContent::of_bytes(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ApprovedContent::Deleted,
                Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
            };
            versions.insert(path.trim_start_matches("./").to_owned(), vec![content]);
        }
    }
    if versions.is_empty() {
        eprintln!("nothing to approve: the range makes no administrative change");
        return Ok(Outcome::Success);
    }
    // The statements name this repository, as its configuration says (at HEAD of the range, or
    // in the work tree), so they never count in another repository. Without a repository_id,
    // the id derived from the first commit of the history (what the checker expects then).
    let git = open_git(repo.root())?;
    let head = match &args.range {
        Some(range) => range.split_once("..").map_or(range.as_str(), |(_, h)| h),
        None => "HEAD",
    };
    let head = commit_of(&git, head)?;
    let configured = match &args.range {
        Some(_) => match head.tree()?.get_path(std::path::Path::new(CONFIG_FILE)) {
            Ok(entry) => {
                let text =
                    String::from_utf8_lossy(git.find_blob(entry.id())?.content()).into_owned();
                Config::parse(&text, &format!("{CONFIG_FILE} at {}", head.id()))?.repository_id
            }
            Err(_) => None,
        },
        None => repo.config.repository_id.clone(),
    };
    let repository_id = match configured {
        Some(id) => id,
        None => authz::legacy_repository_id(&git, head.id())?,
    };
    let signers = AllowedSigners::load(&repo.root().join(SIGNERS_FILE))?;
    signers
        .check_principal(
            &principal,
            key.public_key().key_data(),
            APPROVAL_NAMESPACE,
            now,
        )
        .with_context(|| format!("{SIGNERS_FILE} does not let this key approve as {principal}"))?;
    let rounds = versions.values().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        let changes = versions
            .iter()
            .filter_map(|(path, list)| list.get(round).map(|c| (path.clone(), *c)));
        let signed =
            ApprovalStatement::new(&repository_id, &principal, now, changes)?.sign(&key)?;
        let target = repo.root().join(signed.repo_path());
        std::fs::create_dir_all(target.parent().expect("approvals folder"))?;
        sealops_core::fsutil::write_atomic(&target, signed.contents.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", target.display()))?;
        crate::output::outln!("{}", signed.repo_path());
    }
    eprintln!("approved as {principal}; commit the files above (signed) to record the approval");
    Ok(Outcome::Success)
}

pub fn approvals(global: &GlobalArgs, args: ApprovalsArgs) -> anyhow::Result<Outcome> {
    let ApprovalsCommand::Status(args) = args.command;
    let repo = context::repository(global)?;
    let git = open_git(repo.root())?;
    let base = commit_of(&git, &args.base)?;
    let head = commit_of(&git, &args.head)?;
    let bootstrap = Bootstrap {
        signers: trusted_signers(&git, &base, &args.base, args.trusted_signers.as_ref())?,
        pinned_principals: None,
        clock: Clock::system(),
    };
    let now = Clock::system().seen(head.id());
    let report = authz::authorise_range(&git, base.id(), head.id(), &bootstrap)?;
    let mut missing = 0;
    let mut out = String::new();
    for commit in &report.commits {
        for count in &commit.approvals {
            let short = &commit.commit.to_string()[..12];
            let have = count.approvers.len();
            let state = if have >= count.required as usize {
                "approved".to_owned()
            } else {
                missing += 1;
                let can: Vec<_> = count
                    .sudoers
                    .iter()
                    .filter(|s| !count.approvers.contains(s))
                    .cloned()
                    .collect();
                format!(
                    "MISSING {} (may approve: {})",
                    count.required as usize - have,
                    can.join(", ")
                )
            };
            let content = match count.content {
                ApprovedContent::Blob(oid) => short_oid(oid),
                ApprovedContent::Deleted => "deleted".to_owned(),
            };
            out.push_str(&format!(
                "{short} {} ({content}) {}: {have}/{} [{}] {state}\n",
                count.path,
                count.sys_path,
                count.required,
                count.approvers.join(", ")
            ));
            for (principal, &created) in &count.approved_at {
                let left = created + count.max_age_seconds - now;
                out.push_str(&format!(
                    "    {principal}: statement made {} ago, {}\n",
                    age(now - created),
                    if left > 0 {
                        format!("stops counting in {}", age(left))
                    } else {
                        "too old for commits seen from now on".to_owned()
                    }
                ));
            }
            for why in &count.not_counted {
                out.push_str(&format!("    not counted: {why}\n"));
            }
        }
    }
    if out.is_empty() {
        out.push_str("no administrative changes in the range\n");
    }
    crate::output::stdout(out.as_bytes())?;
    Ok(if missing == 0 {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

/// A span of seconds as people say it: `3d 4h`, `5h 10m`, `42s`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn short_oid(oid: Oid) -> String {
    format!("blob {}", &oid.to_string()[..12])
}
