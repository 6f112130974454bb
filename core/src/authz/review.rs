//! What a pull request does, for reviewers: the plan (secrets, targets, identities, policy
//! decisions that change), the structure of the changed files, and leaks anywhere in history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use git2::{Oid, Repository, Sort, Tree};
use serde::Serialize;

use super::authority::{Authority, blob_text};
use super::governed::{Governed, governed_path};
use super::range::ChangeKind;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::policy::{IdentityDoc, Policy, Request};
use crate::repo::{CONFIG_FILE, SIGNERS_FILE};
use crate::signing::AllowedSigners;

/// A secret the range changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretChange {
    /// The secret path (`apps/payments/db`).
    pub path: String,
    pub change: ChangeKind,
    /// Key names added, changed or removed; never values.
    pub keys: Vec<String>,
}

/// A capability an identity gains or loses on a policy pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DecisionChange {
    /// `kind:name` (`service:payments`).
    pub identity: String,
    /// `gains` or `loses`.
    pub change: &'static str,
    pub capability: String,
    pub path: String,
}

impl std::fmt::Display for DecisionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} on {}",
            self.identity, self.change, self.capability, self.path
        )
    }
}

/// What merging the range would change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub secrets: Vec<SecretChange>,
    /// Target names whose files change.
    pub targets: Vec<String>,
    /// Identities (`kind:name`) whose files change or that may read a changed secret.
    pub identities: Vec<String>,
    pub decisions: Vec<DecisionChange>,
    /// Why parts of the plan could not be computed.
    pub problems: Vec<String>,
}

/// A problem with one file or commit, for reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    /// The commit it was found in (for leaks), else `None` (the head).
    pub commit: Option<String>,
    pub path: String,
    pub problem: String,
}

fn name_of(rest: &str) -> String {
    Path::new(rest)
        .with_extension("")
        .to_string_lossy()
        .into_owned()
}

/// The plan of `base_tree → head_tree`.
pub fn plan(
    repo: &Repository,
    base_tree: &Tree<'_>,
    head_tree: &Tree<'_>,
) -> Result<Plan, git2::Error> {
    let mut plan = Plan::default();
    let diff = repo.diff_tree_to_tree(Some(base_tree), Some(head_tree), None)?;
    let mut identities = BTreeSet::new();
    let mut changed_policy_paths = BTreeSet::new();
    for delta in diff.deltas() {
        let (change, file) = match delta.status() {
            git2::Delta::Added => (ChangeKind::Added, delta.new_file()),
            git2::Delta::Deleted => (ChangeKind::Deleted, delta.old_file()),
            _ => (ChangeKind::Modified, delta.new_file()),
        };
        let path = String::from_utf8_lossy(file.path_bytes().unwrap_or_default()).into_owned();
        match (governed_path(&path), path.split_once('/')) {
            (Governed::Secret { policy_path }, _) => {
                let read = |tree| {
                    blob_text(repo, tree, &path)
                        .ok()
                        .flatten()
                        .and_then(|t| Manifest::parse(&t, &path).ok())
                };
                let keys = changed_keys(read(base_tree).as_ref(), read(head_tree).as_ref());
                plan.secrets.push(SecretChange {
                    path: policy_path.trim_start_matches("secrets/").to_owned(),
                    change,
                    keys,
                });
                changed_policy_paths.insert(policy_path);
            }
            (_, Some(("targets", rest))) => plan.targets.push(name_of(rest)),
            (_, Some(("identities", _))) => {
                for tree in [base_tree, head_tree] {
                    if let Some(doc) = blob_text(repo, tree, &path)
                        .ok()
                        .flatten()
                        .and_then(|t| crate::yaml::from_str::<IdentityDoc>(&t, &path).ok())
                    {
                        identities.insert(format!("{}:{}", doc.kind.as_str(), doc.name));
                    }
                }
            }
            _ => {}
        }
    }
    let base = Authority::from_tree(repo, base_tree);
    let head = Authority::from_tree(repo, head_tree);
    match (&base, &head) {
        (Ok(base), Ok(head)) => {
            for secret in &changed_policy_paths {
                let request = Request {
                    path: secret.clone(),
                    operation: Some(crate::policy::Operation::Read),
                    ..Request::default()
                };
                for (name, acl) in head.identities() {
                    if acl.check(&request).allowed {
                        identities.insert(name.to_owned());
                    }
                }
            }
            plan.decisions = decision_changes(repo, base, head, base_tree, head_tree);
        }
        (Err(e), _) | (_, Err(e)) => plan
            .problems
            .push(format!("policy decisions not computed: {e}")),
    }
    plan.identities = identities.into_iter().collect();
    Ok(plan)
}

/// Key names whose value was added, changed or removed.
fn changed_keys(old: Option<&Manifest>, new: Option<&Manifest>) -> Vec<String> {
    let entries = |m: Option<&Manifest>| {
        let mut map = BTreeMap::new();
        if let Some(m) = m {
            for (k, v) in &m.data {
                map.insert(k.clone(), format!("sealed {v:?}"));
            }
            for (k, v) in &m.plain {
                map.insert(k.clone(), format!("plain {v}"));
            }
        }
        map
    };
    let (old, new) = (entries(old), entries(new));
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The patterns of every policy file in `tree`.
fn patterns(repo: &Repository, tree: &Tree<'_>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let Ok(entry) = tree.get_path(Path::new("policies")) else {
        return found;
    };
    let Ok(folder) = repo.find_tree(entry.id()) else {
        return found;
    };
    for entry in folder.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = format!("policies/{name}");
        if let Some(policy) = blob_text(repo, tree, &path).ok().flatten().and_then(|t| {
            Policy::parse(&t, &path, &crate::policy::default_name(Path::new(&name))).ok()
        }) {
            found.extend(policy.rules.iter().map(|r| r.pattern.clone()));
        }
    }
    found
}

/// For every identity and every policy pattern of either side, the capabilities that differ.
fn decision_changes(
    repo: &Repository,
    base: &Authority,
    head: &Authority,
    base_tree: &Tree<'_>,
    head_tree: &Tree<'_>,
) -> Vec<DecisionChange> {
    let mut paths = patterns(repo, base_tree);
    paths.extend(patterns(repo, head_tree));
    let before: BTreeMap<&str, _> = base.identities().collect();
    let after: BTreeMap<&str, _> = head.identities().collect();
    let names: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let mut changes = BTreeSet::new();
    for name in names {
        for path in &paths {
            let request = Request {
                path: path.clone(),
                ..Request::default()
            };
            let caps = |acl: Option<&&crate::policy::Acl>| -> BTreeSet<&'static str> {
                acl.map(|acl| acl.check(&request).capabilities)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| *c != "deny")
                    .collect()
            };
            let (old, new) = (caps(before.get(name)), caps(after.get(name)));
            for (set, other, change) in [(&new, &old, "gains"), (&old, &new, "loses")] {
                for capability in set.difference(other) {
                    changes.insert(DecisionChange {
                        identity: name.to_owned(),
                        change,
                        capability: (*capability).to_owned(),
                        path: path.clone(),
                    });
                }
            }
        }
    }
    changes.into_iter().collect()
}

/// Whether `content` at `path` is a leaked secret: a private key anywhere, or anything under
/// `secrets/` that is not a well-formed sealed manifest.
fn leak(path: &str, content: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(content);
    if text.contains("AGE-SECRET-KEY-1") || text.contains("age-secret-key-1") {
        return Some("holds an age private key (AGE-SECRET-KEY-1…); identity files never belong in the repository".to_owned());
    }
    if text.contains("PRIVATE KEY-----") {
        return Some("holds a private key (-----BEGIN … PRIVATE KEY-----)".to_owned());
    }
    if let Governed::Secret { .. } = governed_path(path) {
        if !path.ends_with(".yaml") {
            return Some(
                "a file under secrets/ that is not a sealed manifest: its content is in clear"
                    .to_owned(),
            );
        }
        if let Err(e) = Manifest::parse(&text, path) {
            return Some(format!(
                "not a sealed manifest, so its values may be in clear: {e}"
            ));
        }
    }
    None
}

/// Every leak in any commit of `base..head` (what each commit adds or changes), oldest first:
/// a plaintext removed later in the range is still in history.
pub fn scan_range(
    repo: &Repository,
    base: Oid,
    head: Oid,
) -> Result<Vec<FileProblem>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(head)?;
    walk.hide(base)?;
    let mut found = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), None)?;
        for delta in diff.deltas() {
            if delta.status() == git2::Delta::Deleted {
                continue;
            }
            let file = delta.new_file();
            let path = String::from_utf8_lossy(file.path_bytes().unwrap_or_default()).into_owned();
            let Ok(blob) = repo.find_blob(file.id()) else {
                continue;
            };
            if let Some(problem) = leak(&path, blob.content()) {
                found.push(FileProblem {
                    commit: Some(commit.id().to_string()),
                    path,
                    problem,
                });
            }
        }
    }
    Ok(found)
}

/// Schema and structure of every file that differs between the trees, as it is at the head.
pub fn check_structure(
    repo: &Repository,
    base_tree: &Tree<'_>,
    head_tree: &Tree<'_>,
) -> Result<Vec<FileProblem>, git2::Error> {
    let diff = repo.diff_tree_to_tree(Some(base_tree), Some(head_tree), None)?;
    let mut found = Vec::new();
    for delta in diff.deltas() {
        if delta.status() == git2::Delta::Deleted {
            continue;
        }
        let path =
            String::from_utf8_lossy(delta.new_file().path_bytes().unwrap_or_default()).into_owned();
        let text = match blob_text(repo, head_tree, &path) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(e) => {
                found.push(FileProblem {
                    commit: None,
                    path,
                    problem: e.problem,
                });
                continue;
            }
        };
        let problem = match path.split_once('/') {
            _ if path == CONFIG_FILE => Config::parse(&text, &path).err().map(|e| e.to_string()),
            _ if path == SIGNERS_FILE => AllowedSigners::parse(&text, &path)
                .err()
                .map(|e| e.to_string()),
            Some(("secrets", rest)) if rest.ends_with(".yaml") => {
                match Manifest::parse(&text, &path) {
                    Err(e) => Some(e.to_string()),
                    Ok(m) if m.path.as_str() != rest.trim_end_matches(".yaml") => Some(format!(
                        "the manifest declares path {} but lives at {path}; seal it again at its new path",
                        m.path
                    )),
                    Ok(_) => None,
                }
            }
            Some(("policies", name)) if name.ends_with(".hcl") || name.ends_with(".json") => {
                Policy::parse(&text, &path, &crate::policy::default_name(Path::new(name)))
                    .err()
                    .map(|e| e.to_string())
            }
            Some(("identities", name)) if name.ends_with(".yaml") || name.ends_with(".yml") => {
                crate::yaml::from_str::<IdentityDoc>(&text, &path)
                    .err()
                    .map(|e| e.to_string())
            }
            Some(("targets", name)) if name.ends_with(".yaml") || name.ends_with(".yml") => {
                crate::target::Target::parse(&text, &path)
                    .err()
                    .map(|e| e.to_string())
            }
            Some(("backends", name)) if name.ends_with(".yaml") || name.ends_with(".yml") => {
                crate::backend::Backend::parse(&text, &path)
                    .err()
                    .map(|e| e.to_string())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            found.push(FileProblem {
                commit: None,
                path,
                problem,
            });
        }
    }
    Ok(found)
}
