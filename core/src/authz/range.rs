//! Judging `BASE..HEAD` commit by commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::rc::Rc;

use git2::{Commit, Oid, Repository, Sort, Tree};
use serde_json::{Map, Value};

use super::authority::{
    Authority, AuthorityError, AuthorityFiles, authority_files, blob_text, is_authority_file,
};
use super::governed::{Governed, config_sys_paths, governed_path};
use crate::gittree::Trees;
use crate::manifest::Manifest;
use crate::policy::{Operation, Request};
use crate::repo::{CONFIG_FILE, SIGNERS_FILE};
use crate::signing::APPROVAL_NAMESPACE;
use crate::signing::AllowedSigners;
use crate::signing::allowed_signers::Timestamp;
use crate::signing::approval::{ApprovalSet, ApprovedContent, VerifiedBlobs, statement_ids};
use crate::signing::commit::{CommitRejection, CommitVerdict, SeenAt, verify_commit_seen};
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
    /// The judge's clock: key validity, approval age and future dates are judged at the time
    /// each commit was first seen.
    pub clock: Clock,
}

/// When the judge first saw each commit. The controller records the time it first fetched a
/// commit and passes it here, so a verdict does not change when it judges the commit again
/// later; `sealops check` judges everything at its own clock's now.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    now: i64,
    first_seen: HashMap<Oid, i64>,
}

impl Clock {
    /// The system clock's now for every commit.
    pub fn system() -> Self {
        Self::at(crate::clock::unix_now())
    }

    /// `now` (Unix seconds) for every commit.
    pub fn at(now: i64) -> Self {
        Self {
            now,
            first_seen: HashMap::new(),
        }
    }

    /// Commits first seen earlier than now, with when (Unix seconds).
    pub fn with_first_seen(mut self, seen: impl IntoIterator<Item = (Oid, i64)>) -> Self {
        self.first_seen.extend(seen);
        self
    }

    /// Now, Unix seconds.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// When `commit` was first seen: its recorded time, else now.
    pub fn seen(&self, commit: Oid) -> i64 {
        self.first_seen
            .get(&commit)
            .copied()
            .unwrap_or(self.now)
            .min(self.now)
    }
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
    /// The parent the change is measured against: the first parent, or, for a merge that keeps
    /// a parent's stale copy, the parent whose newer content it discards (`None` for a root).
    pub against: Option<Oid>,
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
                    "needs {required} {} by distinct principals with sudo on {sys_path}, has {}",
                    if *required == 1 { "approval" } else { "approvals" },
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
    /// When each counted approval statement was made (Unix seconds), by principal; the
    /// commit's own signer has none.
    pub approved_at: BTreeMap<String, i64>,
    /// `trust.approval_max_age` in force, in seconds: an approval stops counting this long
    /// after it was made.
    pub max_age_seconds: i64,
    /// Approvals of exactly this content by eligible principals that do not count, with why
    /// (expired, spent, another repository, a key no longer valid).
    pub not_counted: Vec<String>,
    /// The statement ids ([`crate::signing::approval::statement_id`]) of the counted approvals.
    pub counted_statements: Vec<String>,
    /// Every statement that approves exactly this content here, counted or not (the signer's
    /// own, a second one by a counted principal): all are used once the commit is authorised.
    pub statements: Vec<String>,
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
    /// The authority files trusted here: the base's, changed only by authorised commits of the
    /// range. A commit on top of an old ancestor of the base carries that ancestor's (perhaps
    /// revoked) policies in its tree; they never become the authority its descendants are
    /// judged under.
    files: Rc<AuthorityFiles>,
}

struct Judge<'r, 't> {
    repo: &'r Repository,
    /// Trees read while judging the range, each once (a commit and its parent share most).
    trees: &'t Trees<'r>,
    bootstrap: &'t Bootstrap,
    bootstrap_signers: Rc<AllowedSigners>,
    head_tree: Tree<'r>,
    authorities: HashMap<AuthorityFiles, Result<Rc<Authority>, AuthorityError>>,
    states: HashMap<Oid, State>,
    /// The trusted state every commit outside the range stands for: the bootstrap signers and
    /// the base's authority. An older ancestor's (possibly revoked) authority never counts.
    base_state: Option<State>,
    /// The statements of every approval file in the base: spent, whatever their file names.
    spent: Option<std::collections::HashSet<String>>,
    /// `(statement, path)` pairs that approved a change of an authorised commit of the range:
    /// used once, they do not approve that path again later in the range.
    used: std::collections::HashSet<(String, String)>,
    /// Every `(path, content)` a commit of the range changes: a statement counts only when
    /// every change it lists is made in the range, never for a subset of them.
    realised: std::collections::HashSet<(String, ApprovedContent)>,
    /// Statements an earlier pass found counted although some change they list was made by no
    /// authorised commit.
    excluded: &'t std::collections::HashSet<String>,
    /// The changes each statement seen lists, by statement id.
    statement_changes: HashMap<String, Vec<(String, ApprovedContent)>>,
    /// Violations known from earlier passes (a commit judged on the trust of a branch it is
    /// merged with): added to its report before its trust is carried on.
    rebased_violations: Found,
    /// Judging commits again on another branch's trust.
    rebasing: bool,
    /// Approval blobs verified per signers file (keyed by the `Rc`'s address, which the entry
    /// keeps alive so the address is not reused).
    verified_blobs: HashMap<usize, (Rc<AllowedSigners>, VerifiedBlobs)>,
    /// The repository id approvals must name while the configuration sets none: derived from
    /// the base's first commit, so it differs between unrelated repositories.
    legacy_repository_id: String,
    /// Merge bases of pairs of commits (merges need them to tell a side's change from a stale
    /// copy), as tree ids.
    merge_bases: HashMap<(Oid, Oid), Rc<Vec<Oid>>>,
}

fn git_error(what: impl Into<String>) -> impl FnOnce(git2::Error) -> AuthzError {
    let what = what.into();
    move |source| AuthzError::Git { what, source }
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
    // A statement counts only when every change it lists is made by an authorised commit of
    // the range, and a commit is authorised only when it also is on the trust of every branch
    // it is merged with. Both depend on which commits are authorised, so each pass feeds the
    // statements found wanting and the violations found by those comparisons into the next,
    // until a pass finds nothing new: a commit found violating never changes the trust in
    // force after it. Both only grow, so this ends; the bound is a backstop.
    let mut excluded = std::collections::HashSet::new();
    let mut forced: HashMap<Oid, Vec<Violation>> = HashMap::new();
    for _ in 0..MAX_PASSES {
        let (report, wanting, found) =
            judge_range(trees, base, head, bootstrap, &excluded, &forced)?;
        let mut grew = false;
        for id in wanting {
            grew |= excluded.insert(id);
        }
        for (oid, violations) in found {
            let known = forced.entry(oid).or_default();
            for violation in violations {
                if !known.contains(&violation) {
                    known.push(violation);
                    grew = true;
                }
            }
        }
        if !grew {
            return Ok(report);
        }
    }
    Ok(judge_range(trees, base, head, bootstrap, &excluded, &forced)?.0)
}

/// How many times a range is judged at most while statements and violations are still found.
const MAX_PASSES: usize = 32;

/// Violations found for commits, by commit.
type Found = HashMap<Oid, Vec<Violation>>;

/// One pass over the range, with the statements `excluded` and the violations `forced` known
/// from earlier passes; returns the report, the counted statements some of whose changes no
/// authorised commit made, and the violations of commits judged on the other side's trust.
fn judge_range(
    trees: &Trees<'_>,
    base: Oid,
    head: Oid,
    bootstrap: &Bootstrap,
    excluded: &std::collections::HashSet<String>,
    forced: &Found,
) -> Result<(RangeReport, Vec<String>, Found), AuthzError> {
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
        spent: None,
        used: std::collections::HashSet::new(),
        realised: std::collections::HashSet::new(),
        excluded,
        statement_changes: HashMap::new(),
        rebased_violations: forced.clone(),
        rebasing: false,
        verified_blobs: HashMap::new(),
        legacy_repository_id: String::new(),
        merge_bases: HashMap::new(),
    };
    let base_commit = repo
        .find_commit(base)
        .map_err(git_error(format!("commit {base}")))?;
    let base_tree = base_commit.tree().map_err(git_error("the base tree"))?;
    let base_error = |source| AuthzError::BaseAuthority {
        commit: base,
        source,
    };
    let base_files = authority_files(repo, &base_tree).map_err(base_error)?;
    let base_authority = judge.authority_from(&base_files).map_err(base_error)?;
    judge.base_state = Some(State {
        signers: judge.bootstrap_signers.clone(),
        authority: base_authority,
        files: Rc::new(base_files),
    });
    judge.legacy_repository_id = legacy_repository_id(repo, base)
        .map_err(git_error(format!("the first commit of {base}")))?;
    judge.spent = Some(
        statement_ids(repo, &base_tree).map_err(|e| AuthzError::Git {
            what: "the base's approvals".to_owned(),
            source: git2::Error::from_str(&e.to_string()),
        })?,
    );

    let walk_error = git_error(format!("commits {base}..{head}"));
    let mut walk = repo.revwalk().map_err(git_error("commits"))?;
    let order = || -> Result<Vec<Oid>, git2::Error> {
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        walk.push(head)?;
        walk.hide(base)?;
        walk.collect()
    };
    let order = order().map_err(walk_error)?;
    for &oid in &order {
        judge.realise(oid)?;
    }

    // Then every merge compares its sides: the commits only one parent has are judged again as
    // if made on the other parent's trust, whichever parent is first (the attacker chooses the
    // order). A side commit thus also answers to the trust of the branch it is merged into, as
    // `sealops check` judged its pull request against the target branch: a capability granted
    // and revoked again there cannot be used by a branch made from the granting commit.
    let mut commits = Vec::with_capacity(order.len());
    for &oid in &order {
        commits.push(judge.commit(oid)?);
    }
    let mut found: Found = HashMap::new();
    for report in commits.iter().filter(|c| c.parents.len() > 1) {
        for (i, &side) in report.parents.iter().enumerate() {
            for (j, &other) in report.parents.iter().enumerate() {
                if i == j {
                    continue;
                }
                let mut walk = repo.revwalk().map_err(git_error("commits"))?;
                let group = || -> Result<Vec<Oid>, git2::Error> {
                    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
                    walk.push(side)?;
                    walk.hide(other)?;
                    walk.hide(base)?;
                    walk.collect()
                };
                let group = group().map_err(git_error(format!("commits {other}..{side}")))?;
                if group.is_empty() {
                    continue;
                }
                let trusted = judge
                    .states
                    .get(&other)
                    .cloned()
                    .unwrap_or_else(|| judge.base_state.clone().expect("set above"));
                for (oid, violations) in judge.judge_rebased(&group, trusted)? {
                    let known: &mut Vec<Violation> = found.entry(oid).or_default();
                    for violation in violations {
                        if !known.contains(&violation) {
                            known.push(violation);
                        }
                    }
                }
            }
        }
    }

    // What authorised commits made, and the counted statements some of whose changes none made.
    // A commit's changes are its whole diff, or for a merge what it made itself; what a merge
    // took cleanly from a side, the side's commits made.
    let made: std::collections::HashSet<(String, ApprovedContent)> = commits
        .iter()
        .filter(|c| c.violations.is_empty())
        .flat_map(|c| c.changes.iter().map(|ch| (ch.path.clone(), ch.content)))
        .collect();
    let mut wanting = Vec::new();
    for report in commits.iter().filter(|c| c.violations.is_empty()) {
        for count in &report.approvals {
            for id in &count.counted_statements {
                let lists = judge.statement_changes.get(id);
                if lists.is_some_and(|l| l.iter().any(|change| !made.contains(change))) {
                    wanting.push(id.clone());
                }
            }
        }
    }
    Ok((
        RangeReport {
            base,
            head,
            commits,
        },
        wanting,
        found,
    ))
}

/// The repository id approvals name in a repository whose configuration sets no
/// `repository_id`: derived from the first commit of `commit`'s history (following first
/// parents), so statements made in an unrelated repository never match it.
pub fn legacy_repository_id(repo: &Repository, commit: Oid) -> Result<String, git2::Error> {
    let mut root = repo.find_commit(commit)?;
    while let Some(parent) = root.parents().next() {
        root = parent;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(
        format!("sealops repository rooted at {}\n", root.id()).as_bytes(),
    );
    Ok(hex::encode(&digest[..16]))
}

impl<'r> Judge<'r, '_> {
    fn authority_from(&mut self, files: &AuthorityFiles) -> Result<Rc<Authority>, AuthorityError> {
        if let Some(found) = self.authorities.get(files) {
            return found.clone();
        }
        let loaded = Authority::from_files(self.repo, files).map(Rc::new);
        self.authorities.insert(files.clone(), loaded.clone());
        loaded
    }

    /// Judges the commits `group` (parents first) as if made on the trust `trusted`: parents
    /// outside the group stand for it. Returns their violations; nothing else of this pass is
    /// kept.
    fn judge_rebased(
        &mut self,
        group: &[Oid],
        trusted: State,
    ) -> Result<Vec<(Oid, Vec<Violation>)>, AuthzError> {
        let states = std::mem::take(&mut self.states);
        let base = self.base_state.replace(trusted);
        let used = self.used.clone();
        self.rebasing = true;
        let mut result = Ok(Vec::new());
        for &oid in group {
            match self.commit(oid) {
                Ok(report) if !report.violations.is_empty() => {
                    if let Ok(found) = &mut result {
                        found.push((oid, report.violations));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.states = states;
        self.base_state = base;
        self.used = used;
        self.rebasing = false;
        result
    }

    /// Records what commit `oid` changes relative to each parent.
    fn realise(&mut self, oid: Oid) -> Result<(), AuthzError> {
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(git_error(format!("commit {oid}")))?;
        let tree = commit.tree().map_err(git_error(format!("tree of {oid}")))?;
        let parent_trees: Vec<Tree<'_>> = commit
            .parents()
            .map(|p| p.tree())
            .collect::<Result<_, _>>()
            .map_err(git_error(format!("the parents of {oid}")))?;
        let olds: Vec<Option<&Tree<'_>>> = if parent_trees.is_empty() {
            vec![None]
        } else {
            parent_trees.iter().map(Some).collect()
        };
        for old in olds {
            let found = self
                .trees
                .changes(old, &tree)
                .map_err(git_error("a diff"))?;
            for change in found.iter() {
                let content = change
                    .new
                    .map_or(ApprovedContent::Deleted, ApprovedContent::Blob);
                self.realised.insert((change.path.clone(), content));
            }
        }
        Ok(())
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

        let (changes, signers_source) =
            self.introduced(&parents, &parent_trees, &parent_states, &tree)?;
        let mut report = CommitReport {
            commit: oid,
            summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                .into_owned(),
            parents: parents.iter().map(Commit::id).collect(),
            signer: None,
            changes,
            violations: Vec::new(),
            approvals: Vec::new(),
        };
        let violation = |path: Option<&str>, kind| Violation {
            commit: oid,
            path: path.map(str::to_owned),
            kind,
        };

        let seen = SeenAt {
            time: self.bootstrap.clock.seen(oid),
            max_skew_seconds: state.authority.trust().max_clock_skew_seconds(),
        };
        let verdict = verify_commit_seen(repo, oid, &state.signers, seen).map_err(|e| {
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
                        // Compared with the configuration trusted at that parent (not its tree,
                        // which may be an old ancestor's), so every section that differs from
                        // what is in force is judged.
                        let against = parents
                            .iter()
                            .position(|p| Some(p.id()) == change.against)
                            .and_then(|i| parent_states.get(i))
                            .unwrap_or(&state);
                        let old = against.files.get(CONFIG_FILE).and_then(|id| {
                            repo.find_blob(*id)
                                .ok()
                                .and_then(|b| String::from_utf8(b.content().to_vec()).ok())
                        });
                        let new = blob_text(repo, &tree, CONFIG_FILE).ok().flatten();
                        config_sys_paths(old.as_deref(), new.as_deref())
                    } else {
                        vec![sys_path.clone()]
                    };
                    if approvals.is_none() {
                        approvals = Some(self.approvals(&tree, &state, seen.time)?);
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

        if let Some(rebased) = self.rebased_violations.get(&oid) {
            for violation in rebased {
                if !report.violations.contains(violation) {
                    report.violations.push(violation.clone());
                }
            }
        }
        let after = if report.violations.is_empty() {
            for count in &report.approvals {
                for statement in &count.statements {
                    self.used.insert((statement.clone(), count.path.clone()));
                }
            }
            self.next_state(&state, signers_source, &parent_states, &tree, &mut report)
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
    /// after the change they approve), verified under the signers in force. Only statements
    /// that can count for a commit first seen at `seen` are kept in `verified`; the others are
    /// reported in `rejected` with why.
    fn approvals(
        &mut self,
        tree: &Tree<'_>,
        state: &State,
        seen: i64,
    ) -> Result<ApprovalSet, AuthzError> {
        // Verified once per blob and signers file: a range loads the approvals of many trees.
        let cache = self
            .verified_blobs
            .entry(Rc::as_ptr(&state.signers) as usize)
            .or_insert_with(|| (state.signers.clone(), VerifiedBlobs::default()));
        let mut load = |t: &Tree<'_>| {
            ApprovalSet::load_cached(self.repo, t, &state.signers, &mut cache.1).map_err(|e| {
                AuthzError::Git {
                    what: "approvals".to_owned(),
                    source: git2::Error::from_str(&e.to_string()),
                }
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
        // Statements name the repository in force: the `repository_id` trusted at the parent,
        // or, while none is set, the id derived from the base's first commit. Never the id the
        // judged commit sets itself: that could be another repository's, copied with its
        // approvals.
        let repository = state
            .authority
            .repository_id()
            .unwrap_or(&self.legacy_repository_id)
            .to_owned();
        let now = self.bootstrap.clock.now();
        let trust = state.authority.trust();
        let (max_age, skew) = (
            trust.approval_max_age_seconds(),
            trust.max_clock_skew_seconds(),
        );
        let spent = self
            .spent
            .as_ref()
            .expect("set before any commit is judged");
        let mut kept = Vec::with_capacity(set.verified.len());
        for (file, approval) in std::mem::take(&mut set.verified) {
            let statement = &approval.statement;
            let created = statement.created();
            self.statement_changes
                .entry(approval.id.clone())
                .or_insert_with(|| {
                    statement
                        .changes()
                        .iter()
                        .map(|(path, content)| (path.clone(), *content))
                        .collect()
                });
            let unrealised = statement
                .changes()
                .iter()
                .find(|(path, content)| !self.realised.contains(&((*path).clone(), **content)));
            let problem = if spent.contains(&approval.id) {
                // Already in the base (under any name): it approved an earlier change, so a
                // revert to old, once-approved content needs new approvals.
                Some("its statement is already in the base, where it approved an earlier change; approvals are used once: approve again".to_owned())
            } else if self.excluded.contains(&approval.id) {
                Some("it approves changes together, and no authorised commit of the range makes all of them (one was refused): approve the changes made here".to_owned())
            } else if let Some((path, _)) = unrealised {
                Some(format!(
                    "it approves a change of {path} that this range does not make; a statement approves its changes together, never a part of them: approve the changes made here"
                ))
            } else if repository != statement.repository() {
                Some(format!(
                    "it was made for repository {}, this repository is {repository}; approvals do not carry over between repositories",
                    statement.repository()
                ))
            } else if created > now.saturating_add(skew) {
                // Made after the commit was first seen is fine (approvals may follow a refused
                // change); made in the judge's future is not.
                Some(format!(
                    "it is dated {}, in the future of this judge's clock ({}); fix the approver's clock and approve again",
                    Timestamp(created),
                    Timestamp(now)
                ))
            } else if seen.saturating_sub(created) > max_age {
                Some(format!(
                    "it was made {} and is older than trust.approval_max_age ({}) when the commit was first seen ({}): approve again",
                    Timestamp(created),
                    trust.approval_max_age,
                    Timestamp(seen)
                ))
            } else if seen > created
                && let Err(rejection) = state.signers.check_principal(
                    statement.principal(),
                    &approval.key,
                    APPROVAL_NAMESPACE,
                    seen,
                )
            {
                Some(format!(
                    "its key was no longer valid when the commit was first seen: {rejection}"
                ))
            } else {
                None
            };
            match problem {
                None => kept.push((file, approval)),
                Some(problem) => set.not_counted.push((file, approval, problem)),
            }
        }
        set.verified = kept;
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
        let statement_of = |file: &str| {
            set.verified
                .iter()
                .find(|(f, _)| f == file)
                .map(|(_, approval)| approval)
        };
        // Re-judging on another branch's trust asks only whether that trust allows the change:
        // which statements are used up is decided once, in the commits' own order.
        let used_here = |file: &str| {
            !self.rebasing
                && statement_of(file)
                    .is_some_and(|a| self.used.contains(&(a.id.clone(), change.path.clone())))
        };
        let mut approved_at = BTreeMap::new();
        let mut counted_statements = Vec::new();
        let statements: Vec<String> = set
            .verified
            .iter()
            .filter(|(_, a)| a.statement.changes().get(&change.path) == Some(&change.content))
            .map(|(_, a)| a.id.clone())
            .collect();
        let unused = |a: &crate::signing::approval::Approver| eligible(a) && !used_here(&a.file);
        for approver in set.approvers_of_where(&change.path, &change.content, unused) {
            let counts =
                !approvers.contains(&approver.principal) && !keys.contains(&approver.fingerprint);
            if counts {
                keys.insert(approver.fingerprint.clone());
                if let Some(approval) = statement_of(&approver.file) {
                    approved_at.insert(approver.principal.clone(), approval.statement.created());
                    counted_statements.push(approval.id.clone());
                }
                approvers.push(approver.principal);
            }
        }
        let mut not_counted: Vec<String> = set
            .approvers_of_where(&change.path, &change.content, |a| {
                eligible(a) && used_here(&a.file)
            })
            .into_iter()
            .map(|a| {
                format!(
                    "{} ({}): it already approved an earlier change of this path in the range; approvals are used once: approve again",
                    a.principal, a.file
                )
            })
            .collect();
        not_counted.extend(
            set.not_counted
                .iter()
                .filter(|(_, approval, _)| {
                    approval.statement.changes().get(&change.path) == Some(&change.content)
                        && eligible(&crate::signing::approval::Approver {
                            principal: approval.statement.principal().to_owned(),
                            fingerprint: approval.fingerprint.clone(),
                            file: String::new(),
                        })
                })
                .map(|(file, approval, problem)| {
                    format!("{} ({file}): {problem}", approval.statement.principal())
                }),
        );
        ApprovalCount {
            path: change.path.clone(),
            content: change.content,
            sys_path: sys_path.to_owned(),
            required: authority.required_approvals(),
            approvers,
            approved_at,
            max_age_seconds: authority.trust().approval_max_age_seconds(),
            not_counted,
            counted_statements,
            statements,
            sudoers: authority.sudoers(sys_path),
        }
    }

    /// The trust after an authorised commit. Its authority files are the parent's trusted ones
    /// with the commit's own (judged) changes; for a merge, its tree's, every path of which was
    /// either judged or taken cleanly from a parent that trusted it. Its signers are those of
    /// the parent its `.sealops/allowed_signers` came from (`signers_source`), or the file's
    /// content when the commit changed it.
    fn next_state(
        &mut self,
        state: &State,
        signers_source: Option<usize>,
        parent_states: &[State],
        tree: &Tree<'_>,
        report: &mut CommitReport,
    ) -> State {
        let oid = report.commit;
        let broken = |report: &mut CommitReport, error: AuthorityError| {
            report.violations.push(Violation {
                commit: oid,
                path: Some(error.file.clone()),
                kind: ViolationKind::BrokenAuthority {
                    problem: error.problem,
                },
            });
        };
        let touched = report
            .changes
            .iter()
            .any(|change| is_authority_file(&change.path));
        let files = if parent_states.len() > 1 || parent_states.is_empty() {
            match authority_files(self.repo, tree) {
                Ok(files) => Rc::new(files),
                Err(error) => {
                    broken(report, error);
                    return state.clone();
                }
            }
        } else if touched {
            let mut files = (*state.files).clone();
            for change in report.changes.iter().filter(|c| is_authority_file(&c.path)) {
                match change.content {
                    ApprovedContent::Blob(id) => files.insert(change.path.clone(), id),
                    ApprovedContent::Deleted => files.remove(&change.path),
                };
            }
            Rc::new(files)
        } else {
            state.files.clone()
        };
        let authority = if Rc::ptr_eq(&files, &state.files) {
            state.authority.clone()
        } else {
            match self.authority_from(&files) {
                Ok(authority) => authority,
                Err(error) => {
                    broken(report, error);
                    return state.clone();
                }
            }
        };
        let signers = match (signers_source, parent_states.is_empty()) {
            (_, true) => state.signers.clone(),
            (Some(parent), false) => parent_states[parent].signers.clone(),
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
                    broken(report, e);
                    return state.clone();
                }
            },
        };
        State {
            signers,
            authority,
            files,
        }
    }

    /// The trees of the merge bases of two commits (several after criss-cross merges; none
    /// for unrelated histories).
    fn merge_base_trees(&mut self, a: Oid, b: Oid) -> Result<Rc<Vec<Oid>>, AuthzError> {
        let key = if a < b { (a, b) } else { (b, a) };
        if let Some(found) = self.merge_bases.get(&key) {
            return Ok(found.clone());
        }
        let bases = match self.repo.merge_bases(a, b) {
            Ok(bases) => bases.iter().copied().collect::<Vec<_>>(),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Vec::new(),
            Err(e) => return Err(git_error(format!("the merge bases of {a} and {b}"))(e)),
        };
        let trees = bases
            .into_iter()
            .map(|base| {
                self.repo
                    .find_commit(base)
                    .map(|c| c.tree_id())
                    .map_err(git_error(format!("commit {base}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trees = Rc::new(trees);
        self.merge_bases.insert(key, trees.clone());
        Ok(trees)
    }

    /// The paths a commit introduces, and which parent's signers carry over (`None` when the
    /// commit changes `.sealops/allowed_signers` itself).
    ///
    /// A commit with one parent introduces its diff. A merge follows a three-way merge's own
    /// logic, path by path: its content is taken cleanly from parent `i` when `i` has it and
    /// every other parent either has it too or did not change the path since its merge bases
    /// with `i` while `i` did. Such content was judged where `i`'s side made it. Anything else
    /// is the merger's own change and is judged as one: a conflict resolution, an "evil
    /// merge", or a stale copy (a side's unchanged old state, or a first parent older than
    /// another parent) that would revert what the other side changed.
    fn introduced(
        &mut self,
        parents: &[Commit<'_>],
        parent_trees: &[Tree<'_>],
        parent_states: &[State],
        tree: &Tree<'_>,
    ) -> Result<(Vec<PathChange>, Option<usize>), AuthzError> {
        let first = parent_trees.first();
        let mut changes = Vec::new();
        if parents.len() <= 1 {
            let found = self
                .trees
                .changes(first, tree)
                .map_err(git_error("a diff"))?;
            for change in found.iter() {
                changes.push(path_change(
                    &change.path,
                    change.old,
                    change.new,
                    parents.first().map(Commit::id),
                ));
            }
            let signers_source = (!changes.iter().any(|c| c.path == SIGNERS_FILE)).then_some(0);
            self.fill_keys(&mut changes, parents, parent_trees, tree);
            return Ok((changes, signers_source));
        }

        let mut paths = BTreeSet::new();
        for parent_tree in parent_trees {
            let found = self
                .trees
                .changes(Some(parent_tree), tree)
                .map_err(git_error("a diff"))?;
            paths.extend(found.iter().map(|c| c.path.clone()));
        }
        // Authority files whose content a parent's tree holds but that parent does not trust
        // (it sits on an old ancestor of the base) are judged too, even where every parent's
        // tree agrees: otherwise a merge would make revoked policies the authority in force.
        let merged_files = authority_files(self.repo, tree).map_err(|e| AuthzError::Git {
            what: "the authority files of a merge".to_owned(),
            source: git2::Error::from_str(&e.to_string()),
        })?;
        for state in parent_states {
            for path in state.files.keys().chain(merged_files.keys()) {
                if state.files.get(path) != merged_files.get(path) {
                    paths.insert(path.clone());
                }
            }
        }
        let mut signers_source = Some(0);
        for path in paths {
            let merged = self.trees.id(tree, &path);
            let held: Vec<Option<Oid>> = parent_trees
                .iter()
                .map(|t| self.trees.id(t, &path))
                .collect();
            let authority_path = is_authority_file(&path);
            let trusted: Vec<Option<Oid>> = parent_states
                .iter()
                .map(|state| state.files.get(&path).copied())
                .collect();
            let mut source = None;
            for (i, content) in held.iter().enumerate() {
                if *content != merged || (authority_path && trusted[i] != merged) {
                    continue;
                }
                let mut clean = true;
                for (j, other) in held.iter().enumerate() {
                    if j == i || *other == merged {
                        continue;
                    }
                    let bases = self.merge_base_trees(parents[i].id(), parents[j].id())?;
                    // A three-way merge takes `i`'s content only when `i` changed the path
                    // since every merge base it shares with `j` and `j` did not: when both
                    // changed it, taking one side discards the other's change (a conflict
                    // resolution). With no merge base (unrelated histories) nothing shows
                    // that either did.
                    let mut at_bases = Vec::with_capacity(bases.len());
                    for &base in bases.iter() {
                        let base = self.trees.tree(base).map_err(git_error("a merge base"))?;
                        at_bases.push(self.trees.id(&base, &path));
                    }
                    let i_changed = !at_bases.is_empty() && at_bases.iter().all(|at| at != content);
                    // `j` holds what a merge base held: nothing newer than what `i` moved on
                    // from (after criss-cross merges the bases differ, as git's virtual base
                    // would show).
                    let j_unchanged = at_bases.iter().any(|at| at == other);
                    if !(i_changed && j_unchanged) {
                        clean = false;
                        break;
                    }
                }
                if clean {
                    source = Some(i);
                    break;
                }
            }
            if path == SIGNERS_FILE {
                signers_source = source;
            }
            if source.is_some() {
                continue;
            }
            // The merger's own change, judged against every parent whose content it discards
            // (authority files: what that parent trusts), so no parent's change is undone
            // unjudged.
            let before = if authority_path { &trusted } else { &held };
            for (j, old) in before.iter().enumerate() {
                if *old != merged {
                    changes.push(path_change(&path, *old, merged, Some(parents[j].id())));
                }
            }
        }
        self.fill_keys(&mut changes, parents, parent_trees, tree);
        // One judgement per distinct change: parents that held the same old content need it once.
        changes.dedup_by(|b, a| a.path == b.path && a.kind == b.kind && a.keys == b.keys);
        Ok((changes, signers_source))
    }

    fn fill_keys(
        &self,
        changes: &mut [PathChange],
        parents: &[Commit<'_>],
        parent_trees: &[Tree<'_>],
        tree: &Tree<'_>,
    ) {
        for change in changes {
            if matches!(change.governed, Governed::Secret { .. }) {
                let against = parents
                    .iter()
                    .position(|p| Some(p.id()) == change.against)
                    .and_then(|i| parent_trees.get(i));
                change.keys = changed_keys(self.trees, &change.path, against, tree);
            }
        }
    }
}

/// A path whose content goes from `old` to `new` (blob ids; `None` = absent).
fn path_change(path: &str, old: Option<Oid>, new: Option<Oid>, against: Option<Oid>) -> PathChange {
    let (kind, content) = match new {
        None => (ChangeKind::Deleted, ApprovedContent::Deleted),
        Some(id) if old.is_none() => (ChangeKind::Added, ApprovedContent::Blob(id)),
        Some(id) => (ChangeKind::Modified, ApprovedContent::Blob(id)),
    };
    PathChange {
        governed: governed_path(path),
        keys: Vec::new(),
        path: path.to_owned(),
        kind,
        content,
        against,
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
