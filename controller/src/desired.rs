//! Which commit to apply: the newest commit of the branch that passes the authorisation check.
//!
//! Trust starts at an anchor pinned by the local configuration (`trust.initial_commit`, or the
//! branch's first commit signed by one of `trust.pinned_principals`; never a root commit that
//! merely some trusted key signed, which anyone in `allowed_signers` could make) and moves forward only
//! through authorised commits: each reconcile judges `applied..head` with
//! [`sealops_core::authz::authorise_range`]. A refused commit blocks what follows it until a
//! later commit puts every path it touched back as it was in the applied commit (a revert);
//! nothing a refused commit introduced is ever applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use git2::{Oid, Repository, Tree};
use sealops_core::authz::{Bootstrap, Clock, RangeReport, ViolationKind, authorise_range_in};
use sealops_core::gittree::Trees;
use sealops_core::repo::SIGNERS_FILE;
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::commit::{CommitVerdict, verify_commit};

use crate::refusal::{Reason, Refusal};

/// Local trust settings.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// The local allowed_signers (required unless `require_signed` is off).
    pub signers: Option<AllowedSigners>,
    pub signers_file: Option<PathBuf>,
    pub pinned_principals: Option<BTreeSet<String>>,
    pub initial_commit: Option<Oid>,
    pub require_signed: bool,
    pub allow_force_push: bool,
}

/// Where the previous apply left trust.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub commit: Oid,
    /// The repository's `.sealops/allowed_signers` at `commit` is in force (an authorised commit
    /// changed it since the anchor); otherwise the local file is.
    pub signers_from_repository: bool,
}

/// The decision.
#[derive(Debug)]
pub struct Selection {
    /// The commit to apply; `None` when nothing newer may be applied.
    pub commit: Option<Oid>,
    /// Whether the repository's allowed_signers is in force after `commit`.
    pub signers_from_repository: bool,
    /// Why newer commits were not chosen.
    pub refusals: Vec<Refusal>,
}

fn refusal(commit: Option<Oid>, path: Option<String>, reason: Reason, message: String) -> Refusal {
    Refusal {
        commit: commit.map(|c| c.to_string()),
        path,
        reason,
        message,
    }
}

fn git_refusal(what: &str, error: impl std::fmt::Display) -> Refusal {
    refusal(
        None,
        None,
        Reason::Repository,
        format!("cannot read {what}: {error}"),
    )
}

fn entry(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|e| e.id())
}

fn reason_of(kind: &ViolationKind) -> Reason {
    match kind {
        ViolationKind::NotVerified(_) | ViolationKind::NotPinned { .. } => Reason::Verification,
        ViolationKind::MissingCapability { .. }
        | ViolationKind::ApprovalsShort { .. }
        | ViolationKind::ApprovalRemoved => Reason::Authorisation,
        ViolationKind::UnreadableManifest { .. } | ViolationKind::BrokenAuthority { .. } => {
            Reason::Schema
        }
    }
}

/// When this controller first saw each commit it has not applied yet (Unix seconds), kept in
/// the state directory: key validity, approval age and future dates are judged at that time,
/// so neither a signer's chosen commit date nor a later re-judgement changes the verdict.
pub type FirstSeen = BTreeMap<Oid, i64>;

/// Chooses the commit to apply given the branch `head` and what was applied before. Commits
/// of the judged range not yet in `first_seen` are recorded there as seen `now`; commits no
/// longer in the range are dropped from it.
pub fn select(
    trees: &Trees<'_>,
    trust: &TrustSettings,
    applied: Option<Applied>,
    head: Oid,
    first_seen: &mut FirstSeen,
    now: i64,
) -> Selection {
    match select_inner(trees, trust, applied, head, first_seen, now) {
        Ok(selection) => selection,
        Err(refusal) => Selection {
            commit: None,
            signers_from_repository: applied.is_some_and(|a| a.signers_from_repository),
            refusals: vec![refusal],
        },
    }
}

fn select_inner(
    trees: &Trees<'_>,
    trust: &TrustSettings,
    applied: Option<Applied>,
    head: Oid,
    first_seen: &mut FirstSeen,
    now: i64,
) -> Result<Selection, Refusal> {
    let repo = trees.repo();
    let Start {
        commit: base,
        signers_from_repository: base_from_repository,
        apply: apply_base,
    } = starting_point(repo, trust, applied, head)?;
    if !trust.require_signed {
        // Local experiments only (check-config warns): the head is taken as it is.
        return Ok(Selection {
            commit: (apply_base || base != head).then_some(head),
            signers_from_repository: false,
            refusals: Vec::new(),
        });
    }
    if base == head {
        return Ok(Selection {
            commit: apply_base.then_some(head),
            signers_from_repository: base_from_repository,
            refusals: Vec::new(),
        });
    }
    let base_commit = repo
        .find_commit(base)
        .map_err(|e| git_refusal("the applied commit", e))?;
    let base_tree = base_commit
        .tree()
        .map_err(|e| git_refusal("the applied tree", e))?;
    let signers = if base_from_repository {
        repository_signers(repo, &base_tree, base)?
    } else {
        trust
            .signers
            .clone()
            .expect("require_signed implies a local allowed_signers file")
    };
    let clock =
        Clock::at(now).with_first_seen(record_first_seen(repo, base, head, first_seen, now)?);
    let bootstrap = Bootstrap {
        signers,
        pinned_principals: trust.pinned_principals.clone(),
        clock,
    };
    let report = authorise_range_in(trees, base, head, &bootstrap).map_err(|e| {
        refusal(
            Some(head),
            None,
            Reason::Authorisation,
            format!("cannot judge {base}..{head}: {e}"),
        )
    })?;
    let refusals = range_refusals(&report);
    let ancestry = Ancestry::of(&report, base);
    let chosen = newest_applicable(repo, head, base, &base_tree, &ancestry)?;
    let signers_from_repository = match chosen {
        Some(commit) => {
            let tree = repo
                .find_commit(commit)
                .and_then(|c| c.tree())
                .map_err(|e| git_refusal("a tree", e))?;
            base_from_repository || entry(&tree, SIGNERS_FILE) != entry(&base_tree, SIGNERS_FILE)
        }
        None => base_from_repository,
    };
    Ok(Selection {
        commit: chosen.or(apply_base.then_some(base)),
        signers_from_repository,
        refusals,
    })
}

/// Where judging starts: the applied commit while the branch descends from it, otherwise the
/// trust anchor.
struct Start {
    commit: Oid,
    /// Whether the repository's allowed_signers is in force at `commit`.
    signers_from_repository: bool,
    /// `commit` was not applied before (it is the anchor): it is applied when nothing newer is.
    apply: bool,
}

fn starting_point(
    repo: &Repository,
    trust: &TrustSettings,
    applied: Option<Applied>,
    head: Oid,
) -> Result<Start, Refusal> {
    let descends = |from: Oid| -> bool {
        from == head || repo.graph_descendant_of(head, from).unwrap_or(false)
    };
    match applied {
        Some(previous)
            if repo.find_commit(previous.commit).is_ok() && descends(previous.commit) =>
        {
            Ok(Start {
                commit: previous.commit,
                signers_from_repository: previous.signers_from_repository,
                apply: false,
            })
        }
        Some(previous) if !trust.allow_force_push || trust.initial_commit.is_none() => {
            Err(refusal(
                Some(head),
                None,
                Reason::ForcePush,
                if trust.allow_force_push {
                    format!(
                        "the branch head {head} does not descend from the applied commit {}: the history was rewritten (force-push); outputs stay as they are. allow_force_push re-judges a new history only from trust.initial_commit, which is not set: restore the history, or add `initial_commit: <a reviewed commit of the new history>` under trust: in the local configuration",
                        previous.commit
                    )
                } else {
                    format!(
                        "the branch head {head} does not descend from the applied commit {}: the history was rewritten (force-push); outputs stay as they are. Restore the history, or set allow_force_push: true (with trust.initial_commit) in the local configuration to judge the new history from the trust anchor",
                        previous.commit
                    )
                },
            ))
        }
        _ => Ok(Start {
            commit: anchor(repo, trust, head)?,
            signers_from_repository: false,
            apply: true,
        }),
    }
}

fn range_refusals(report: &RangeReport) -> Vec<Refusal> {
    report
        .violations()
        .map(|v| {
            refusal(
                Some(v.commit),
                v.path.clone(),
                reason_of(&v.kind),
                v.to_string(),
            )
        })
        .collect()
}

/// Per commit of the range, in its topological order: whether it descends from the base,
/// and the paths refused ancestors touched (they must be as in the base for it to be
/// applied). One pass, rather than a graph walk per candidate and refused commit.
struct Ancestry<'r> {
    descends: HashMap<Oid, bool>,
    tainted: HashMap<Oid, Rc<BTreeSet<String>>>,
    /// The refused commits, with the paths each changed.
    violating: HashMap<Oid, Vec<&'r String>>,
}

impl<'r> Ancestry<'r> {
    fn of(report: &'r RangeReport, base: Oid) -> Self {
        let mut descends: HashMap<Oid, bool> = HashMap::new();
        let mut tainted: HashMap<Oid, Rc<BTreeSet<String>>> = HashMap::new();
        let violating: HashMap<Oid, Vec<&String>> = report
            .commits
            .iter()
            .filter(|c| !c.violations.is_empty())
            .map(|c| (c.commit, c.changes.iter().map(|ch| &ch.path).collect()))
            .collect();
        for commit in &report.commits {
            let mut from_base = false;
            let mut paths: Option<Rc<BTreeSet<String>>> = None;
            for parent in &commit.parents {
                from_base |= *parent == base || descends.get(parent).copied().unwrap_or(false);
                let Some(inherited) = tainted.get(parent) else {
                    continue;
                };
                let extra: Vec<&String> = violating.get(parent).cloned().unwrap_or_default();
                paths = Some(match paths {
                    None if extra.is_empty() => inherited.clone(),
                    current => {
                        let mut set: BTreeSet<String> =
                            current.as_deref().cloned().unwrap_or_default();
                        set.extend(inherited.iter().cloned());
                        set.extend(extra.into_iter().cloned());
                        Rc::new(set)
                    }
                });
            }
            descends.insert(commit.commit, from_base);
            tainted.insert(commit.commit, paths.unwrap_or_default());
        }
        Self {
            descends,
            tainted,
            violating,
        }
    }
}

/// Newest first along the first-parent chain down to the base. Only descendants of the base
/// are candidates: a merge whose first parent is older than the base (or off to the side)
/// must not lead the walk to a commit that would roll the outputs back.
fn newest_applicable(
    repo: &Repository,
    head: Oid,
    base: Oid,
    base_tree: &Tree<'_>,
    ancestry: &Ancestry<'_>,
) -> Result<Option<Oid>, Refusal> {
    let mut candidate = head;
    loop {
        if candidate == base || !ancestry.descends.get(&candidate).copied().unwrap_or(false) {
            return Ok(None);
        }
        if !ancestry.violating.contains_key(&candidate) {
            let tree = repo
                .find_commit(candidate)
                .and_then(|c| c.tree())
                .map_err(|e| git_refusal("a tree", e))?;
            let clean = ancestry
                .tainted
                .get(&candidate)
                .is_none_or(|paths| paths.iter().all(|p| entry(&tree, p) == entry(base_tree, p)));
            if clean {
                return Ok(Some(candidate));
            }
        }
        let commit = repo
            .find_commit(candidate)
            .map_err(|e| git_refusal("a commit", e))?;
        match commit.parent_ids().next() {
            Some(parent) => candidate = parent,
            None => return Ok(None),
        }
    }
}

/// Records `now` for the commits of `base..head` not seen before, forgets commits outside the
/// range (applied, or gone with a rewritten history), and returns the range's times.
fn record_first_seen(
    repo: &Repository,
    base: Oid,
    head: Oid,
    first_seen: &mut FirstSeen,
    now: i64,
) -> Result<Vec<(Oid, i64)>, Refusal> {
    let mut walk = repo
        .revwalk()
        .map_err(|e| git_refusal("the commit graph", e))?;
    walk.push(head)
        .and_then(|()| walk.hide(base))
        .map_err(|e| git_refusal("the commit graph", e))?;
    let mut range = Vec::new();
    for oid in walk {
        let oid = oid.map_err(|e| git_refusal("the commit graph", e))?;
        range.push((oid, *first_seen.entry(oid).or_insert(now)));
    }
    let in_range: HashSet<Oid> = range.iter().map(|(oid, _)| *oid).collect();
    first_seen.retain(|oid, _| in_range.contains(oid));
    Ok(range)
}

fn repository_signers(
    repo: &Repository,
    tree: &Tree<'_>,
    at: Oid,
) -> Result<AllowedSigners, Refusal> {
    let text = tree
        .get_path(Path::new(SIGNERS_FILE))
        .ok()
        .and_then(|e| repo.find_blob(e.id()).ok())
        .map(|b| String::from_utf8_lossy(b.content()).into_owned())
        .unwrap_or_default();
    AllowedSigners::parse(&text, SIGNERS_FILE).map_err(|e| {
        refusal(
            Some(at),
            Some(SIGNERS_FILE.to_owned()),
            Reason::Schema,
            format!("the applied commit's {SIGNERS_FILE} does not parse: {e}"),
        )
    })
}

/// The commit trust starts from: `trust.initial_commit`, or the first commit of the branch
/// (following first parents), which one of `trust.pinned_principals` must have signed. Without
/// either, nothing is applied: any key in `allowed_signers` could sign an orphan root commit
/// and make itself the anchor.
fn anchor(repo: &Repository, trust: &TrustSettings, head: Oid) -> Result<Oid, Refusal> {
    if let Some(initial) = trust.initial_commit {
        if initial == head || repo.graph_descendant_of(head, initial).unwrap_or(false) {
            return Ok(initial);
        }
        return Err(refusal(
            Some(head),
            None,
            Reason::Verification,
            format!(
                "trust.initial_commit {initial} is not in the history of the branch head {head}; pin a commit of this branch"
            ),
        ));
    }
    let mut root = repo
        .find_commit(head)
        .map_err(|e| git_refusal("the branch head", e))?;
    while let Some(parent) = root.parents().next() {
        root = parent;
    }
    let root_id = root.id();
    if !trust.require_signed {
        return Ok(root_id);
    }
    if trust.pinned_principals.is_none() {
        return Err(refusal(
            Some(head),
            None,
            Reason::Verification,
            "no trust anchor is pinned, so nothing is applied: any key in allowed_signers could sign a new root commit and make it the anchor. Add `initial_commit: <a commit you reviewed, e.g. the current head of the branch>` under trust: in the local configuration (or `pinned_principals: [<who signed the first commit>]`)".to_owned(),
        ));
    }
    let signers = trust
        .signers
        .as_ref()
        .expect("require_signed implies a local allowed_signers file");
    let source = trust
        .signers_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let verdict = verify_commit(repo, root_id, signers)
        .map_err(|e| git_refusal("the first commit's signature", e))?;
    match verdict {
        CommitVerdict::Verified(signed)
            if trust
                .pinned_principals
                .as_ref()
                .is_none_or(|pinned| signed.principals.iter().any(|p| pinned.contains(p))) =>
        {
            Ok(root_id)
        }
        CommitVerdict::Verified(signed) => Err(refusal(
            Some(root_id),
            None,
            Reason::Verification,
            format!(
                "the branch's first commit (the trust anchor) is signed as {} but trust.pinned_principals names others",
                signed.principals.join(", ")
            ),
        )),
        CommitVerdict::NotVerified(why) => Err(refusal(
            Some(root_id),
            None,
            Reason::Verification,
            format!(
                "the branch's first commit (the trust anchor) is not signed by a key in {source}: {why}; sign it, or pin a trusted commit with trust.initial_commit"
            ),
        )),
    }
}
