//! Judging `BASE..HEAD` commit by commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use git2::{Commit, Oid, Repository, Sort, Tree};
use serde_json::{Map, Value};

use super::authority::{Authority, AuthorityError, blob_text};
use super::governed::{Governed, config_sys_paths, governed_path};
use crate::gittree::Trees;
use crate::manifest::Manifest;
use crate::policy::{Operation, Request};
use crate::repo::{CONFIG_FILE, SIGNERS_FILE};
use crate::signing::AllowedSigners;
use crate::signing::approval::{ApprovalSet, ApprovedContent};
use crate::signing::commit::{CommitRejection, CommitVerdict, verify_commit};
use crate::signing::sshsig::SignedBy;

/// Trust for the range's base, from outside the repository (the controller's local
/// configuration, or in CI the protected base branch).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The signers trusted at the base. Later commits are judged under these until an
    /// authorised commit changes `.sealops/allowed_signers`.
    pub signers: AllowedSigners,
    /// When set, only these principals count: as commit signers and as approvers.
    pub pinned_principals: Option<BTreeSet<String>>,
}

/// Errors that stop the judgement (not verdicts on a commit).
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("cannot read {what}: {source}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "the base commit {commit} does not define a usable authority: {source}; fix it on the base branch first"
    )]
    BaseAuthority {
        commit: Oid,
        #[source]
        source: AuthorityError,
    },
}

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// The capability a secret change needs.
    pub fn operation(self) -> Operation {
        match self {
            Self::Added => Operation::Create,
            Self::Modified => Operation::Update,
            Self::Deleted => Operation::Delete,
        }
    }
}

/// One path a commit introduces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChange {
    pub path: String,
    pub kind: ChangeKind,
    pub governed: Governed,
    /// The resulting content (what approvals bind).
    pub content: ApprovedContent,
    /// For secrets: the key names added, changed or removed (values never).
    pub keys: Vec<String>,
}

/// What is missing for a commit to be authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationKind {
    /// The signature did not verify (unsigned, unknown key, expired key, wrong content, …).
    NotVerified(CommitRejection),
    /// Signed by a key whose principals are not pinned by the bootstrap.
    NotPinned { principals: Vec<String> },
    /// No signer principal's policies allow the operation on the secret.
    MissingCapability {
        principals: Vec<String>,
        policy_path: String,
        operation: Operation,
        keys: Vec<String>,
        reasons: Vec<String>,
    },
    /// Too few distinct principals with `sudo` approved the resulting content.
    ApprovalsShort {
        sys_path: String,
        required: u32,
        approvers: Vec<String>,
        sudoers: Vec<String>,
    },
    /// A manifest in the change cannot be read, so its key names cannot be checked.
    UnreadableManifest { problem: String },
    /// The commit leaves policies, identities, config or signers unreadable.
    BrokenAuthority { problem: String },
    /// The commit removes an approval statement; approvals are append-only.
    ApprovalRemoved,
}

/// One reason a commit is not authorised, with the commit and path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub commit: Oid,
    pub path: Option<String>,
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "commit {}", short(self.commit))?;
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ViolationKind::NotVerified(why) => write!(f, "{why}"),
            ViolationKind::NotPinned { principals } => write!(
                f,
                "signed as {} but the bootstrap pins other principals; only pinned principals may sign",
                principals.join(", ")
            ),
            ViolationKind::MissingCapability {
                principals,
                policy_path,
                operation,
                keys,
                reasons,
            } => {
                let who = if principals.is_empty() {
                    "no principal".to_owned()
                } else {
                    principals.join(", ")
                };
                write!(f, "signer {who} lacks {operation} on {policy_path}")?;
                if !keys.is_empty() {
                    write!(f, " (keys {})", keys.join(", "))?;
                }
                if !reasons.is_empty() {
                    write!(f, ": {}", reasons.join("; "))?;
                }
                f.write_str("; a principal whose policies grant it must sign the commit")
            }
            ViolationKind::ApprovalsShort {
                sys_path,
                required,
                approvers,
                sudoers,
            } => {
                write!(
                    f,
                    "needs {required} approvals by distinct principals with sudo on {sys_path}, has {}",
                    approvers.len()
                )?;
                if !approvers.is_empty() {
                    write!(f, " ({})", approvers.join(", "))?;
                }
                if sudoers.is_empty() {
                    f.write_str("; nobody holds sudo there")
                } else {
                    write!(f, "; ask {} to run `sealops approve`", sudoers.join(", "))
                }
            }
            ViolationKind::UnreadableManifest { problem } => {
                write!(
                    f,
                    "cannot read the manifest to check its key names: {problem}"
                )
            }
            ViolationKind::BrokenAuthority { problem } => write!(
                f,
                "leaves the trust configuration unreadable ({problem}); later commits are judged under the previous one"
            ),
            ViolationKind::ApprovalRemoved => f.write_str(
                "removes an approval statement; approvals are append-only (a removed approval could be added back later to approve old content again): keep the file",
            ),
        }
    }
}

/// The judgement of one commit.
#[derive(Debug, Clone)]
pub struct CommitReport {
    pub commit: Oid,
    /// First line of the message.
    pub summary: String,
    pub parents: Vec<Oid>,
    /// Who signed, when the signature verified.
    pub signer: Option<SignedBy>,
    /// What the commit introduces (for a merge: paths matching no parent).
    pub changes: Vec<PathChange>,
    pub violations: Vec<Violation>,
    /// The approvals counted for each administrative change (met or not).
    pub approvals: Vec<ApprovalCount>,
}

/// Who approved one administrative change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalCount {
    pub path: String,
    /// The content approvals must name.
    pub content: ApprovedContent,
    pub sys_path: String,
    pub required: u32,
    /// Counted principals: the commit's signer (when it holds sudo) first, then approvers.
    pub approvers: Vec<String>,
    /// Everyone holding sudo on `sys_path`: who may still approve.
    pub sudoers: Vec<String>,
}

/// The judgement of a range, oldest commit first.
#[derive(Debug, Clone)]
pub struct RangeReport {
    pub base: Oid,
    pub head: Oid,
    pub commits: Vec<CommitReport>,
}

impl RangeReport {
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.commits.iter().flat_map(|c| c.violations.iter())
    }

    /// Whether every commit is authorised.
    pub fn is_authorised(&self) -> bool {
        self.violations().next().is_none()
    }
}

fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_owned()
}

/// The trust in force after a commit.
#[derive(Clone)]
struct State {
    signers: Rc<AllowedSigners>,
    authority: Rc<Authority>,
}

type AuthorityKey = (Option<Oid>, Option<Oid>, Option<Oid>);

struct Judge<'r, 't> {
    repo: &'r Repository,
    /// Trees read while judging the range, each once (a commit and its parent share most).
    trees: &'t Trees<'r>,
    bootstrap: &'t Bootstrap,
    bootstrap_signers: Rc<AllowedSigners>,
    head_tree: Tree<'r>,
    authorities: HashMap<AuthorityKey, Result<Rc<Authority>, AuthorityError>>,
    states: HashMap<Oid, State>,
    /// The trusted state every commit outside the range stands for: the bootstrap signers and
    /// the base's authority. An older ancestor's (possibly revoked) authority never counts.
    base_state: Option<State>,
    /// The base's tree: content equal to it is trusted.
    base_tree: Option<Oid>,
    /// Commits of the range judged so far.
    judged: std::collections::HashSet<Oid>,
}

fn git_error(what: impl Into<String>) -> impl FnOnce(git2::Error) -> AuthzError {
    let what = what.into();
    move |source| AuthzError::Git { what, source }
}

fn entry_id(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    tree.get_path(Path::new(path)).ok().map(|e| e.id())
}

/// Judges every commit in `base..head` (reachable from `head`, not from `base`), parents
/// first. Commits outside the range are trusted; the first commits are judged under
/// `bootstrap.signers` and the policies, identities and trust settings of their parent's tree.
pub fn authorise_range(
    repo: &Repository,
    base: Oid,
    head: Oid,
    bootstrap: &Bootstrap,
) -> Result<RangeReport, AuthzError> {
    authorise_range_in(&Trees::new(repo), base, head, bootstrap)
}

/// [`authorise_range`] reading trees through `trees`, so a caller that goes on to read the same
/// commits (the controller, which then materialises the head) reads each tree once.
pub fn authorise_range_in(
    trees: &Trees<'_>,
    base: Oid,
    head: Oid,
    bootstrap: &Bootstrap,
) -> Result<RangeReport, AuthzError> {
    let repo = trees.repo();
    let head_commit = repo
        .find_commit(head)
        .map_err(git_error(format!("commit {head}")))?;
    let head_tree = head_commit.tree().map_err(git_error("the head tree"))?;
    let mut judge = Judge {
        repo,
        trees,
        bootstrap,
        bootstrap_signers: Rc::new(bootstrap.signers.clone()),
        head_tree,
        authorities: HashMap::new(),
        states: HashMap::new(),
        base_state: None,
        base_tree: None,
        judged: std::collections::HashSet::new(),
    };
    let base_commit = repo
        .find_commit(base)
        .map_err(git_error(format!("commit {base}")))?;
    let base_tree = base_commit.tree().map_err(git_error("the base tree"))?;
    let base_authority =
        judge
            .authority_of(&base_tree)
            .map_err(|source| AuthzError::BaseAuthority {
                commit: base,
                source,
            })?;
    judge.base_state = Some(State {
        signers: judge.bootstrap_signers.clone(),
        authority: base_authority,
    });
    judge.base_tree = Some(base_tree.id());

    let walk_error = git_error(format!("commits {base}..{head}"));
    let mut walk = repo.revwalk().map_err(git_error("commits"))?;
    let order = || -> Result<Vec<Oid>, git2::Error> {
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        walk.push(head)?;
        walk.hide(base)?;
        walk.collect()
    };
    let order = order().map_err(walk_error)?;
    let mut commits = Vec::with_capacity(order.len());
    for oid in order {
        commits.push(judge.commit(oid)?);
    }
    Ok(RangeReport {
        base,
        head,
        commits,
    })
}

impl<'r> Judge<'r, '_> {
    fn authority_of(&mut self, tree: &Tree<'_>) -> Result<Rc<Authority>, AuthorityError> {
        let key = (
            entry_id(tree, "policies"),
            entry_id(tree, "identities"),
            entry_id(tree, CONFIG_FILE),
        );
        if let Some(found) = self.authorities.get(&key) {
            return found.clone();
        }
        let loaded = Authority::from_tree(self.repo, tree).map(Rc::new);
        self.authorities.insert(key, loaded.clone());
        loaded
    }

    /// The state after a parent: recorded when the parent was judged in the range; a parent
    /// outside the range (an ancestor of the base) stands for the base's trusted state.
    fn state_after(&mut self, parent: &Commit<'_>) -> Result<State, AuthzError> {
        if let Some(state) = self.states.get(&parent.id()) {
            return Ok(state.clone());
        }
        Ok(self
            .base_state
            .clone()
            .expect("set before any commit is judged"))
    }

    fn commit(&mut self, oid: Oid) -> Result<CommitReport, AuthzError> {
        let repo = self.repo;
        let commit = repo
            .find_commit(oid)
            .map_err(git_error(format!("commit {oid}")))?;
        let tree = commit.tree().map_err(git_error(format!("tree of {oid}")))?;
        let parents: Vec<Commit<'_>> = commit.parents().collect();
        let mut parent_states = Vec::with_capacity(parents.len());
        for parent in &parents {
            parent_states.push(self.state_after(parent)?);
        }
        // A commit without parents (an orphan history) is judged under the base's state, never
        // under the authority its own tree claims.
        self.judged.insert(oid);
        let state = match parent_states.first() {
            Some(state) => state.clone(),
            None => self
                .base_state
                .clone()
                .expect("set before any commit is judged"),
        };
        let parent_trees: Vec<Tree<'_>> = parents
            .iter()
            .map(|p| p.tree().map_err(git_error(format!("tree of {}", p.id()))))
            .collect::<Result<_, _>>()?;

        let mut report = CommitReport {
            commit: oid,
            summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                .into_owned(),
            parents: parents.iter().map(Commit::id).collect(),
            signer: None,
            changes: self.introduced(&parents, &parent_trees, &tree)?,
            violations: Vec::new(),
            approvals: Vec::new(),
        };
        let violation = |path: Option<&str>, kind| Violation {
            commit: oid,
            path: path.map(str::to_owned),
            kind,
        };

        let verdict = verify_commit(repo, oid, &state.signers).map_err(|e| {
            git_error(format!("signature of {oid}"))(git2::Error::from_str(&e.to_string()))
        })?;
        let signer = match verdict {
            CommitVerdict::Verified(signed) => signed,
            CommitVerdict::NotVerified(why) => {
                report
                    .violations
                    .push(violation(None, ViolationKind::NotVerified(why)));
                self.states.insert(oid, state);
                return Ok(report);
            }
        };
        let principals: Vec<String> = signer
            .principals
            .iter()
            .filter(|p| self.pinned(p))
            .cloned()
            .collect();
        report.signer = Some(signer.clone());
        if principals.is_empty() {
            report.violations.push(violation(
                None,
                ViolationKind::NotPinned {
                    principals: signer.principals.clone(),
                },
            ));
            self.states.insert(oid, state);
            return Ok(report);
        }

        let mut approvals: Option<ApprovalSet> = None;
        for change in &report.changes {
            match &change.governed {
                Governed::Secret { policy_path } => {
                    if let Some(kind) = self.secret_violation(
                        &state,
                        &principals,
                        change,
                        policy_path,
                        parent_trees.first(),
                        &tree,
                    ) {
                        report.violations.push(violation(Some(&change.path), kind));
                    }
                }
                Governed::Admin { sys_path } => {
                    let sys_paths = if change.path == CONFIG_FILE {
                        let old = parent_trees
                            .first()
                            .and_then(|t| blob_text(repo, t, CONFIG_FILE).ok().flatten());
                        let new = blob_text(repo, &tree, CONFIG_FILE).ok().flatten();
                        config_sys_paths(old.as_deref(), new.as_deref())
                    } else {
                        vec![sys_path.clone()]
                    };
                    if approvals.is_none() {
                        approvals = Some(self.approvals(&tree, &state.signers)?);
                    }
                    let set = approvals.as_ref().expect("loaded above");
                    for sys_path in sys_paths {
                        let count = self.approval_count(
                            &state,
                            &signer,
                            &principals,
                            set,
                            change,
                            &sys_path,
                        );
                        if count.approvers.len() < count.required as usize {
                            report.violations.push(violation(
                                Some(&change.path),
                                ViolationKind::ApprovalsShort {
                                    sys_path: count.sys_path.clone(),
                                    required: count.required,
                                    approvers: count.approvers.clone(),
                                    sudoers: count.sudoers.clone(),
                                },
                            ));
                        }
                        report.approvals.push(count);
                    }
                }
                Governed::Approval if change.kind == ChangeKind::Deleted => {
                    report.violations.push(violation(
                        Some(&change.path),
                        ViolationKind::ApprovalRemoved,
                    ));
                }
                Governed::Approval | Governed::Ungoverned => {}
            }
        }

        let after = if report.violations.is_empty() {
            self.next_state(&state, &parents, &parent_states, &tree, &mut report)
        } else {
            state
        };
        self.states.insert(oid, after);
        Ok(report)
    }

    fn pinned(&self, principal: &str) -> bool {
        self.bootstrap
            .pinned_principals
            .as_ref()
            .is_none_or(|pinned| pinned.contains(principal))
    }

    /// Approval files of the commit's tree and of the head's tree (approvals usually land
    /// after the change they approve), verified under the signers in force.
    fn approvals(
        &self,
        tree: &Tree<'_>,
        signers: &AllowedSigners,
    ) -> Result<ApprovalSet, AuthzError> {
        let load = |t: &Tree<'_>| {
            ApprovalSet::load(self.repo, t, signers).map_err(|e| AuthzError::Git {
                what: "approvals".to_owned(),
                source: git2::Error::from_str(&e.to_string()),
            })
        };
        let mut set = load(tree)?;
        if tree.id() != self.head_tree.id() {
            let head = load(&self.head_tree)?;
            for (file, approval) in head.verified {
                if !set.verified.iter().any(|(f, _)| *f == file) {
                    set.verified.push((file, approval));
                }
            }
        }
        // An approval already in the base approved an earlier change: it must not approve this
        // range's changes (a revert to old, once-approved content needs new approvals).
        if let Some(base_tree) = self.base_tree.and_then(|id| self.repo.find_tree(id).ok()) {
            set.verified
                .retain(|(file, _)| base_tree.get_path(Path::new(file)).is_err());
        }
        Ok(set)
    }

    fn secret_violation(
        &self,
        state: &State,
        principals: &[String],
        change: &PathChange,
        policy_path: &str,
        old_tree: Option<&Tree<'_>>,
        new_tree: &Tree<'_>,
    ) -> Option<ViolationKind> {
        let operation = change.kind.operation();
        let data = match secret_parameters(self.trees, change, old_tree, new_tree) {
            Ok(data) => data,
            Err(problem) => return Some(ViolationKind::UnreadableManifest { problem }),
        };
        let request = Request {
            path: policy_path.to_owned(),
            operation: Some(operation),
            data,
            wrap_ttl: None,
        };
        let mut reasons = Vec::new();
        for principal in principals {
            match state.authority.check(principal, &request) {
                Some(decision) if decision.allowed => return None,
                Some(decision) => reasons.push(format!(
                    "{principal}: {}",
                    decision
                        .denial
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "denied".to_owned())
                )),
                None => reasons.push(format!(
                    "{principal}: no identities/*.yaml names this principal"
                )),
            }
        }
        Some(ViolationKind::MissingCapability {
            principals: principals.to_vec(),
            policy_path: policy_path.to_owned(),
            operation,
            keys: change.keys.clone(),
            reasons,
        })
    }

    fn approval_count(
        &self,
        state: &State,
        signer: &SignedBy,
        principals: &[String],
        set: &ApprovalSet,
        change: &PathChange,
        sys_path: &str,
    ) -> ApprovalCount {
        let authority = &state.authority;
        let mut approvers: Vec<String> = Vec::new();
        let mut keys: BTreeSet<String> = BTreeSet::new();
        if let Some(principal) = principals.iter().find(|p| authority.has_sudo(p, sys_path)) {
            approvers.push(principal.clone());
            keys.insert(signer.fingerprint.clone());
        }
        let eligible = |a: &crate::signing::approval::Approver| {
            self.pinned(&a.principal) && authority.has_sudo(&a.principal, sys_path)
        };
        for approver in set.approvers_of_where(&change.path, &change.content, eligible) {
            let counts =
                !approvers.contains(&approver.principal) && !keys.contains(&approver.fingerprint);
            if counts {
                keys.insert(approver.fingerprint.clone());
                approvers.push(approver.principal);
            }
        }
        ApprovalCount {
            path: change.path.clone(),
            content: change.content,
            sys_path: sys_path.to_owned(),
            required: authority.required_approvals(),
            approvers,
            sudoers: authority.sudoers(sys_path),
        }
    }

    /// The trust after an authorised commit: its own policies and settings, and its signers
    /// file when it introduced a change to it (else the signers of the parent it matches).
    fn next_state(
        &mut self,
        state: &State,
        parents: &[Commit<'_>],
        parent_states: &[State],
        tree: &Tree<'_>,
        report: &mut CommitReport,
    ) -> State {
        let oid = report.commit;
        let authority = match self.authority_of(tree) {
            Ok(authority) => authority,
            Err(error) => {
                report.violations.push(Violation {
                    commit: oid,
                    path: Some(error.file.clone()),
                    kind: ViolationKind::BrokenAuthority {
                        problem: error.problem,
                    },
                });
                return state.clone();
            }
        };
        let blob = entry_id(tree, SIGNERS_FILE);
        let inherited = parents.iter().zip(parent_states).find(|(parent, _)| {
            parent
                .tree()
                .ok()
                .is_some_and(|t| entry_id(&t, SIGNERS_FILE) == blob)
        });
        let signers = match (inherited, parents.is_empty()) {
            (Some((_, parent_state)), _) => parent_state.signers.clone(),
            (None, true) => state.signers.clone(),
            (None, false) => match blob_text(self.repo, tree, SIGNERS_FILE) {
                Ok(Some(text)) => match AllowedSigners::parse(&text, SIGNERS_FILE) {
                    Ok(signers) => Rc::new(signers),
                    Err(e) => {
                        report.violations.push(Violation {
                            commit: oid,
                            path: Some(SIGNERS_FILE.to_owned()),
                            kind: ViolationKind::BrokenAuthority {
                                problem: e.to_string(),
                            },
                        });
                        return state.clone();
                    }
                },
                Ok(None) => {
                    Rc::new(AllowedSigners::parse("", SIGNERS_FILE).expect("an empty file parses"))
                }
                Err(e) => {
                    report.violations.push(Violation {
                        commit: oid,
                        path: Some(SIGNERS_FILE.to_owned()),
                        kind: ViolationKind::BrokenAuthority { problem: e.problem },
                    });
                    return state.clone();
                }
            },
        };
        State { signers, authority }
    }

    /// The paths `tree` introduces relative to its first parent. For a merge, a path is not
    /// introduced when its content equals a parent judged in this range (it was judged when that
    /// side introduced it) or the base (trusted); content taken from an older ancestor of the
    /// base is judged like any change, so a merge cannot bring back revoked content.
    fn introduced(
        &self,
        parents: &[Commit<'_>],
        parent_trees: &[Tree<'_>],
        tree: &Tree<'_>,
    ) -> Result<Vec<PathChange>, AuthzError> {
        let first = parent_trees.first();
        let base_tree = self.base_tree.and_then(|id| self.repo.find_tree(id).ok());
        let trusted_sources: Vec<&Tree<'_>> = parents
            .iter()
            .zip(parent_trees)
            .filter(|(p, _)| self.judged.contains(&p.id()))
            .map(|(_, t)| t)
            .chain(base_tree.as_ref())
            .collect();
        let found = self
            .trees
            .changes(first, tree)
            .map_err(git_error("a diff"))?;
        let mut changes = Vec::new();
        for change in found.iter() {
            let (kind, content) = match change.new {
                None => (ChangeKind::Deleted, ApprovedContent::Deleted),
                Some(id) if change.old.is_none() => (ChangeKind::Added, ApprovedContent::Blob(id)),
                Some(id) => (ChangeKind::Modified, ApprovedContent::Blob(id)),
            };
            let path = change.path.clone();
            let new_id = self.trees.id(tree, &path);
            if parents.len() > 1
                && trusted_sources
                    .iter()
                    .any(|t| self.trees.id(t, &path) == new_id)
            {
                continue;
            }
            changes.push(PathChange {
                governed: governed_path(&path),
                keys: Vec::new(),
                path,
                kind,
                content,
            });
        }
        for change in &mut changes {
            if matches!(change.governed, Governed::Secret { .. }) {
                change.keys = changed_keys(self.trees, &change.path, first, tree);
            }
        }
        Ok(changes)
    }
}

fn manifest_at(
    trees: &Trees<'_>,
    tree: Option<&Tree<'_>>,
    path: &str,
) -> Result<Option<Manifest>, String> {
    let Some(tree) = tree else { return Ok(None) };
    match trees.blob(tree, path).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))?;
            Manifest::parse(&text, path)
                .map(Some)
                .map_err(|e| e.to_string())
        }
    }
}

/// A manifest's value as written: sealed values compare by their ciphertext.
#[derive(PartialEq)]
enum Written<'m> {
    Sealed(&'m crate::value::SealedValue),
    Plain(&'m str),
}

/// `(key, value)` of a manifest.
fn entries(manifest: Option<&Manifest>) -> BTreeMap<&str, Written<'_>> {
    let mut map = BTreeMap::new();
    if let Some(m) = manifest {
        for (k, v) in &m.data {
            map.insert(k.as_str(), Written::Sealed(v));
        }
        for (k, v) in &m.plain {
            map.insert(k.as_str(), Written::Plain(v));
        }
    }
    map
}

/// Key names added, changed or removed between the two versions (unreadable ones: none).
fn changed_keys(
    trees: &Trees<'_>,
    path: &str,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
) -> Vec<String> {
    let old = manifest_at(trees, old, path).ok().flatten();
    let new = manifest_at(trees, Some(new), path).ok().flatten();
    let (old, new) = (entries(old.as_ref()), entries(new.as_ref()));
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| (*k).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The request parameters of a secret change: each changed key name, with its value when it
/// is plain and `null` when it is sealed or removed (sealed values are not visible, so value
/// lists in policies constrain plain values only). A deletion has none.
fn secret_parameters(
    trees: &Trees<'_>,
    change: &PathChange,
    old_tree: Option<&Tree<'_>>,
    new_tree: &Tree<'_>,
) -> Result<Option<Map<String, Value>>, String> {
    if change.kind == ChangeKind::Deleted {
        return Ok(None);
    }
    if !change.path.ends_with(".yaml") {
        return Err("only sealed manifests (*.yaml) belong under secrets/".to_owned());
    }
    // The old side was accepted before; only the new side must parse here.
    let new = manifest_at(trees, Some(new_tree), &change.path)?;
    let _ = old_tree;
    let mut data = Map::new();
    for key in &change.keys {
        let value = new
            .as_ref()
            .and_then(|m| m.plain.get(key))
            .map_or(Value::Null, |v| Value::String(v.clone()));
        data.insert(key.clone(), value);
    }
    Ok(Some(data))
}
