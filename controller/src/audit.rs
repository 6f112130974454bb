//! The controller's audit trail: every action is recorded in a local journal before it is
//! done, then pushed in signed batches to the audit branch.
//!
//! Vault's rule: if an event cannot be recorded, the action does not happen. [`Audit::record`]
//! appends a group of records with one fsync and returns only once they are durable; a reconcile
//! whose records cannot be journalled writes nothing ([`crate::refusal::Reason::Audit`]).
//!
//! [`Audit::push`] seals the records journalled since the last seal (the seal is journalled
//! too), commits every journalled line to the audit branch on top of its current tip, and
//! pushes; a rejected push (another controller pushed first) fetches the new tip, rebuilds the
//! commit on it and retries with backoff. Lines leave the journal only after the push was
//! confirmed; the newest seal stays as the anchor the chain continues from after a restart.
//! A replay after a crash between push and acknowledgement adds nothing twice
//! ([`sealops_core::audit::append_commit`] skips what the branch holds).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use git2::{Oid, Repository};
use sealops_core::audit::{
    AuditKeys, AuditLog, Fingerprinter, Journal, RecordDraft, append_commit,
};

use crate::audit_guard::{PUSHED_REF, PushedChain, PushedState, compare, registry_at};
use crate::source::Source;
use sealops_core::repo::CONTROLLERS_FILE;

/// The audit key file in the state directory (Ed25519 seed + HMAC key, 0600).
pub const KEY_FILE: &str = "audit.key";
/// The journal of records not yet pushed.
pub const JOURNAL_FILE: &str = "audit-journal.jsonl";

const PUSH_ATTEMPTS: u32 = 12;
const STALE_REF_LOCK: Duration = Duration::from_secs(30);
/// A ref lock older than this that was there before this process started was left by a killed
/// writer (the controller before a kill -9, or the `git receive-pack` of its push to a remote on
/// this machine): a ref update holds its lock for milliseconds, another controller's included.
const STALE_INHERITED_REF_LOCK: Duration = Duration::from_secs(1);

/// When this process opened its audit trail.
static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// An open trail: the chain and its journal.
#[derive(Debug)]
struct Trail {
    log: AuditLog,
    journal: Journal,
}

/// The controller's audit trail, shared by the reconcile loop (which records) and the pusher.
#[derive(Debug)]
pub struct Audit {
    controller: String,
    node: String,
    state_dir: PathBuf,
    fingerprints: Mutex<Option<Fingerprinter>>,
    /// `Err` while the journal cannot be opened (read-only or full state directory): every
    /// record fails, so every action is refused, until it can.
    trail: Mutex<Result<Trail, String>>,
    /// The branch records are pushed to (from the applied commit's `.sealops/config.yaml`).
    branch: Mutex<String>,
    /// One push at a time (the periodic pusher and the final push at shutdown).
    pushing: Mutex<()>,
    /// More destinations of every journalled line (`audit.sinks`), and what `audit.require`
    /// asks of them.
    sinks: crate::audit_sink::Sinks,
    /// The applied commit (its registry of audit keys).
    applied: Mutex<Option<String>>,
    /// What the checks of the audit branch found.
    report: Mutex<BranchReport>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Nothing was waiting.
    Nothing,
    /// `lines` (records and seals) are on the audit branch and left the journal, after
    /// `attempts` pushes (more than one: another controller pushed first).
    Lines { lines: usize, attempts: u32 },
}

impl Audit {
    /// Opens the trail in `state_dir`. A journal that cannot be opened is not fatal here: the
    /// controller keeps serving status, and refuses every action until it can record it.
    pub fn open(state_dir: &Path, controller: &str, node: &str) -> Self {
        STARTED.get_or_init(std::time::SystemTime::now);
        let audit = Self {
            controller: controller.to_owned(),
            node: node.to_owned(),
            state_dir: state_dir.to_owned(),
            fingerprints: Mutex::new(None),
            trail: Mutex::new(Err("not opened yet".to_owned())),
            branch: Mutex::new("sealops/audit".to_owned()),
            pushing: Mutex::new(()),
            sinks: crate::audit_sink::Sinks::default(),
            applied: Mutex::new(None),
            report: Mutex::new(BranchReport::default()),
        };
        if let Err(e) = audit.reopen() {
            tracing::error!(error = %e, "the audit journal cannot be opened; every action is refused until it can");
        }
        audit.load_witness();
        audit
    }

    /// Also writes every journalled line to `sinks`.
    pub fn with_sinks(mut self, sinks: crate::audit_sink::Sinks) -> Self {
        self.sinks = sinks;
        self
    }

    pub fn controller(&self) -> &str {
        &self.controller
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Result<Trail, String>> {
        self.trail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (Re)opens the key and the journal; `Err` says why they cannot be used.
    fn reopen(&self) -> Result<(), String> {
        let mut trail = self.lock();
        if trail.is_ok() {
            return Ok(());
        }
        let opened = (|| {
            let key_path = self.state_dir.join(KEY_FILE);
            let keys = AuditKeys::load_or_create(&key_path).map_err(|e| {
                format!(
                    "audit key {}: {e}; actions are refused until it can be read",
                    key_path.display()
                )
            })?;
            let journal =
                Journal::open(&self.state_dir.join(JOURNAL_FILE)).map_err(|e| e.to_string())?;
            *self.fingerprints.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(keys.fingerprints.clone());
            let log = AuditLog::resume(&self.controller, &self.node, keys, Some(journal.pending()));
            Ok::<_, String>(Trail { log, journal })
        })();
        let result = opened.as_ref().map(|_| ()).map_err(Clone::clone);
        *trail = opened;
        result
    }

    /// The fingerprinter of this controller's key (`None` while the key cannot be read).
    pub fn fingerprinter(&self) -> Option<Fingerprinter> {
        self.fingerprints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether records can be journalled now (reopening the journal if it could not be).
    pub fn ready(&self) -> Result<(), String> {
        self.reopen()
    }

    /// Journals `drafts` with one fsync; when this returns `Ok` they survive a crash. On `Err`
    /// none of them was recorded and the action they describe must not proceed.
    pub fn record(&self, drafts: Vec<RecordDraft>) -> Result<(), String> {
        if drafts.is_empty() {
            return Ok(());
        }
        self.reopen()?;
        let mut guard = self.lock();
        let trail = guard.as_mut().map_err(|e| e.clone())?;
        let lines: Vec<String> = drafts.into_iter().map(|d| trail.log.record(d)).collect();
        let journalled = trail.journal.append(&lines).map_err(|e| e.to_string());
        if let Err(problem) = &journalled {
            // Reopened before the next record: whatever the failed append left on disk (a
            // partial line, if even the truncation failed) is dropped, and the chain resumes
            // from what the journal really holds.
            *guard = Err(problem.clone());
        }
        // Still under the lock: the sinks get the lines in the chain's order.
        self.sinks.deliver(&lines, journalled)
    }

    /// Records journalled and not yet pushed.
    pub fn waiting(&self) -> usize {
        match &*self.lock() {
            Ok(trail) => trail
                .journal
                .pending()
                .iter()
                .filter(|l| is_record(l))
                .count(),
            Err(_) => 0,
        }
    }

    /// Sets the audit branch (from the applied commit's repository configuration).
    pub fn set_branch(&self, branch: &str) {
        *self.branch.lock().unwrap_or_else(|e| e.into_inner()) = branch.to_owned();
    }

    pub fn branch(&self) -> String {
        self.branch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seals what is unsealed and returns every journalled line with the public key.
    fn batch(&self) -> Result<(Vec<String>, String), String> {
        self.reopen()?;
        let mut guard = self.lock();
        let trail = guard.as_mut().map_err(|e| e.clone())?;
        if let Some(seal) = trail.log.seal() {
            if let Err(e) = trail.journal.append(std::slice::from_ref(&seal)) {
                let problem = e.to_string();
                *guard = Err(problem.clone());
                return Err(problem);
            }
            self.sinks.deliver_seal(&seal);
        }
        Ok((
            trail.journal.pending().to_vec(),
            trail.log.keys().public_key(),
        ))
    }

    /// Lines `0..count` of the journal are on the audit branch: drop them, keeping the last
    /// one (a seal) as the anchor of the chain.
    fn acknowledge(&self, count: usize) -> Result<(), String> {
        let mut guard = self.lock();
        let trail = guard.as_mut().map_err(|e| e.clone())?;
        trail
            .journal
            .acknowledge(count.saturating_sub(1))
            .map_err(|e| e.to_string())
    }

    /// Sets the applied commit, whose `.sealops/controllers.yaml` says which keys are
    /// registered.
    pub fn set_applied(&self, commit: &str) {
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = Some(commit.to_owned());
    }

    /// What the last check of the audit branch found.
    pub fn report(&self) -> BranchReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update_report(&self, change: impl FnOnce(&mut BranchReport)) {
        change(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Reads what this controller last pushed (for `/status` before the first push).
    fn load_witness(&self) {
        let Some(public_key) = self.public_key() else {
            return;
        };
        if let Ok(state) = PushedState::load(&self.state_dir, &public_key) {
            self.update_report(|report| {
                report.public_key = public_key;
                report.witness = state.confirmed;
            });
        }
    }

    fn public_key(&self) -> Option<String> {
        match &*self.lock() {
            Ok(trail) => Some(trail.log.keys().public_key()),
            Err(_) => None,
        }
    }

    /// Notes whether this controller's key is registered at the applied commit.
    fn check_registration(
        &self,
        repo: &Repository,
        public_key: &str,
    ) -> Option<sealops_core::audit::Registry> {
        let applied = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (registry, registered, problem) = match applied.map(|c| registry_at(repo, &c)) {
            None => (None, None, None),
            Some(Ok(Some(registry))) => {
                let registered = registry.is_registered(&self.controller, public_key);
                let problem = (!registered).then(|| format!(
                    "this controller's audit key is not registered in {CONTROLLERS_FILE}: `audit verify` reports its trail as unregistered until an approved change adds it (`sealops-controller audit-key` prints the entry)"
                ));
                (Some(registry), Some(registered), problem)
            }
            Some(Ok(None)) => (
                None,
                Some(false),
                Some(format!(
                    "the repository has no {CONTROLLERS_FILE}: no audit key is registered, so `audit verify` trusts none; register this controller's (`sealops-controller audit-key` prints the entry)"
                )),
            ),
            Some(Err(e)) => (None, None, Some(format!("{CONTROLLERS_FILE}: {e}"))),
        };
        let was = self.report().key_registered;
        if let Some(problem) = &problem
            && was != registered
        {
            tracing::warn!("{problem}");
        }
        self.update_report(|report| {
            report.key_registered = registered;
            report.registration_problem = problem;
        });
        registry
    }

    fn note_tampering(&self, found: Vec<String>) {
        if found.is_empty() {
            return;
        }
        let at = sealops_core::clock::now_rfc3339();
        for finding in &found {
            tracing::error!(finding = %finding, "the audit branch was tampered with");
        }
        self.update_report(|report| {
            report.tamper_detections += found.len() as u64;
            for finding in found {
                if let Some(seen) = report.tampering.iter_mut().find(|t| t.finding == finding) {
                    seen.last_seen = at.clone();
                } else {
                    report.tampering.push(Tampering {
                        first_seen: at.clone(),
                        last_seen: at.clone(),
                        finding,
                    });
                }
            }
        });
    }

    /// Pushes everything journalled to the audit branch of `source`'s repository (blocking:
    /// git and the disk), after checking the branch against what this controller pushed
    /// before: whatever the branch lost is pushed again. Retries a rejected push on the new
    /// tip with backoff.
    pub fn push(&self, source: &Source) -> Result<Pushed, String> {
        let _one_at_a_time = self.pushing.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, public_key) = self.batch()?;
        let mut state = PushedState::load(&self.state_dir, &public_key)?;
        if lines.is_empty() && state.confirmed.is_none() && state.pending.is_none() {
            return Ok(Pushed::Nothing);
        }
        let records = lines.iter().filter(|l| is_record(l)).count();
        let anchor = lines.first().filter(|l| !is_record(l)).cloned();
        let branch = self.branch();
        let publisher = Publisher::new(source, &branch)?;
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(20), Duration::from_secs(2));
        let mut last_problem = String::new();
        for attempt in 1..=PUSH_ATTEMPTS {
            let (repo, tip) = publisher.tip()?;
            let tip_tree = tip
                .map(|t| repo.find_commit(t).and_then(|c| c.tree()))
                .transpose()
                .map_err(|e| format!("reading the audit branch: {}", e.message()))?;
            let registry = self.check_registration(&repo, &public_key);
            let comparison = compare(
                &repo,
                tip.zip(tip_tree.as_ref()),
                &self.controller,
                &public_key,
                &state,
                anchor.as_deref(),
                registry.as_ref(),
            )?;
            self.note_tampering(comparison.tampering);
            if comparison.confirmed_pending || comparison.base != state.confirmed {
                state.confirmed = comparison.base.clone();
                state.pending = None;
                state.save(&self.state_dir)?;
                self.confirmed(&repo, &state);
            }
            let base_tree = state.confirmed.as_ref().and_then(PushedChain::chain_tree);
            let appended =
                append_commit(&repo, tip, &self.controller, &public_key, base_tree, &lines)
                    .map_err(|e| format!("building the audit commit: {}", e.message()))?;
            let Some(appended) = appended else {
                // The branch holds this controller's chain with every journalled line.
                if records > 0 {
                    self.acknowledge(lines.len())?;
                }
                return Ok(Pushed::Nothing);
            };
            let chain = PushedChain {
                commit: appended.commit.to_string(),
                chain_tree: appended.chain_tree.to_string(),
                head: appended.head,
                last_seq: appended.last_seq,
            };
            state.pending = Some(chain.clone());
            state.save(&self.state_dir)?;
            match publisher.update(&repo, tip, appended.commit)? {
                Published::Done => {
                    state.confirmed = Some(chain);
                    state.pending = None;
                    state.save(&self.state_dir)?;
                    self.confirmed(&repo, &state);
                    self.acknowledge(lines.len())?;
                    return Ok(Pushed::Lines {
                        lines: lines.len(),
                        attempts: attempt,
                    });
                }
                Published::Rejected(why) => {
                    last_problem = why;
                    std::thread::sleep(backoff.next_wait_with_jitter());
                }
            }
        }
        Err(format!(
            "pushing to {branch}: still rejected after {PUSH_ATTEMPTS} attempts ({last_problem}); the records stay journalled"
        ))
    }

    /// `state.confirmed` is on the branch: pin its commit and serve it as the witness.
    fn confirmed(&self, repo: &Repository, state: &PushedState) {
        let Some(confirmed) = &state.confirmed else {
            return;
        };
        if let Ok(commit) = Oid::from_str(&confirmed.commit)
            && let Err(e) = repo.reference(PUSHED_REF, commit, true, "sealops audit pushed")
        {
            tracing::warn!(error = %e.message(), "cannot pin the pushed audit commit; git gc could prune what a restore needs");
        }
        self.update_report(|report| {
            report.public_key = state.public_key.clone();
            report.witness = Some(confirmed.clone());
        });
    }
}

/// The registration of this controller's audit key, as an entry of
/// `.sealops/controllers.yaml` (`sealops-controller audit-key`). Creates the state directory
/// (0700) and the key (0600) when they are missing, so the key can be registered before the
/// controller first starts.
pub fn registration_entry(state_dir: &Path, controller: &str) -> Result<String, String> {
    crate::state::StateFile::open(state_dir).map_err(|e| e.to_string())?;
    let path = state_dir.join(KEY_FILE);
    let keys = AuditKeys::load_or_create(&path)
        .map_err(|e| format!("audit key {}: {e}", path.display()))?;
    Ok(format!(
        "  - id: {controller}\n    public_key: {}\n",
        keys.public_key()
    ))
}

/// What the controller knows of its trail on the audit branch (`/status` `audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchReport {
    pub public_key: String,
    /// Whether the applied commit registers this controller's key (`None`: not known yet).
    pub key_registered: Option<bool>,
    pub registration_problem: Option<String>,
    /// The newest seal the branch confirmed: a witness for `sealops audit verify --witness`.
    pub witness: Option<PushedChain>,
    /// What the branch showed that only someone else's write explains, since start-up.
    pub tampering: Vec<Tampering>,
    pub tamper_detections: u64,
}

/// One kind of tampering seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tampering {
    pub finding: String,
    pub first_seen: String,
    pub last_seen: String,
}

/// Whether a journal line is a record (not a seal), without parsing it: this runs after every
/// reconcile over everything not yet pushed. Records and seals are written by this module, a
/// seal always as `{"seal":…`.
fn is_record(line: &str) -> bool {
    !line.starts_with("{\"seal\"")
}

enum Published {
    Done,
    /// Another writer moved the branch first: fetch and try again.
    Rejected(String),
}

/// Where the audit branch lives: the local repository itself, or the remote (through the
/// mirror in the state directory).
enum Publisher<'s> {
    Local {
        path: &'s Path,
        reference: String,
    },
    Remote {
        source: &'s Source,
        url: &'s str,
        mirror: &'s Path,
        branch: String,
    },
}

/// The ref in the mirror holding the audit branch as last fetched.
const AUDIT_REMOTE_REF: &str = "refs/sealops/audit-remote";

impl<'s> Publisher<'s> {
    fn new(source: &'s Source, branch: &str) -> Result<Self, String> {
        if git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            match source {
                Source::Local { path, .. } => Ok(Self::Local {
                    path,
                    reference: format!("refs/heads/{branch}"),
                }),
                Source::Remote { url, mirror, .. } => Ok(Self::Remote {
                    source,
                    url,
                    mirror,
                    branch: branch.to_owned(),
                }),
            }
        } else {
            Err(format!(
                "audit.branch {branch:?} is not a valid branch name; fix .sealops/config.yaml"
            ))
        }
    }

    /// The repository audit commits are built in, and the audit branch's tip (fetched from a
    /// remote first).
    fn tip(&self) -> Result<(Repository, Option<Oid>), String> {
        match self {
            Self::Local { path, reference } => {
                let repo = Repository::open(path)
                    .map_err(|e| format!("opening {}: {}", path.display(), e.message()))?;
                let tip = match repo.find_reference(reference) {
                    Ok(r) => Some(r.target().ok_or("the audit branch is a symbolic ref")?),
                    Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                    Err(e) => return Err(e.message().to_owned()),
                };
                Ok((repo, tip))
            }
            Self::Remote {
                source,
                url,
                mirror,
                branch,
            } => {
                let repo = source.open().map_err(|e| e.to_string())?;
                let tip = self.fetch_tip(&repo, url, mirror, branch)?;
                Ok((repo, tip))
            }
        }
    }

    /// Moves the branch from `tip` to `commit`, unless another writer moved it first.
    fn update(
        &self,
        repo: &Repository,
        tip: Option<Oid>,
        commit: Oid,
    ) -> Result<Published, String> {
        match self {
            Self::Local { reference, .. } => {
                // Compare-and-swap: the branch moves only if it is still where we read it.
                let moved = match tip {
                    Some(tip) => {
                        repo.reference_matching(reference, commit, true, tip, "sealops audit")
                    }
                    None => repo.reference(reference, commit, false, "sealops audit"),
                };
                match moved {
                    Ok(_) => Ok(Published::Done),
                    Err(e)
                        if matches!(
                            e.code(),
                            git2::ErrorCode::Modified
                                | git2::ErrorCode::Exists
                                | git2::ErrorCode::Locked
                        ) =>
                    {
                        remove_stale_ref_lock(&repo.path().join(format!("{reference}.lock")));
                        Ok(Published::Rejected(e.message().to_owned()))
                    }
                    Err(e) => Err(format!("updating {reference}: {}", e.message())),
                }
            }
            Self::Remote {
                url,
                mirror,
                branch,
                ..
            } => {
                // A plain push only fast-forwards: if another controller pushed since the
                // fetch, it is rejected and rebuilt on the new tip.
                let out = self
                    .git(mirror)?
                    .args(["push", "--quiet", "--porcelain"])
                    .arg(url)
                    .arg(format!("{commit}:refs/heads/{branch}"))
                    .output()
                    .map_err(|e| format!("cannot run git: {e}; install git"))?;
                if out.status.success() {
                    return self.read_back(url, mirror, branch, commit);
                }
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if said.contains("[rejected]")
                    || said.contains("non-fast-forward")
                    || said.contains("fetch first")
                    || said.contains("[remote rejected]") && said.contains("lock")
                    || said.contains("cannot lock ref")
                {
                    // A push to a remote on this machine runs `git receive-pack` in this
                    // process group: killed with it, it leaves the ref lock in the remote.
                    if let Some(remote) = local_remote_git_dir(url) {
                        remove_stale_ref_lock(&remote.join(format!("refs/heads/{branch}.lock")));
                    }
                    Ok(Published::Rejected(last_line(&said)))
                } else {
                    Err(format!("git push to {url}: {}", last_line(&said)))
                }
            }
        }
    }

    /// A push is done only once the remote's branch is read back at the pushed commit: a
    /// reported success can still have lost its update (another writer removed the ref lock it
    /// held, or a hook moved the branch back), and records are dropped from the journal only
    /// on a confirmed push. Anything else is retried on the new tip.
    fn read_back(
        &self,
        url: &str,
        mirror: &Path,
        branch: &str,
        commit: Oid,
    ) -> Result<Published, String> {
        let out = self
            .git(mirror)?
            .args(["ls-remote", "--heads"])
            .arg(url)
            .arg(format!("refs/heads/{branch}"))
            .output()
            .map_err(|e| format!("cannot run git: {e}; install git"))?;
        if !out.status.success() {
            return Err(format!(
                "reading {branch} back from {url}: {}",
                last_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        let listed = String::from_utf8_lossy(&out.stdout);
        let tip = listed
            .lines()
            .find(|l| l.ends_with(&format!("\trefs/heads/{branch}")))
            .and_then(|l| l.split('\t').next());
        if tip == Some(commit.to_string().as_str()) {
            Ok(Published::Done)
        } else {
            Ok(Published::Rejected(format!(
                "the push was reported done, but {branch} is at {} on the remote",
                tip.unwrap_or("nothing")
            )))
        }
    }

    fn git(&self, mirror: &Path) -> Result<std::process::Command, String> {
        let Self::Remote { source, .. } = self else {
            unreachable!("only a remote is pushed with git");
        };
        let mut command = std::process::Command::new("git");
        command
            .arg("--git-dir")
            .arg(mirror)
            .envs(
                source
                    .git_env()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|(k, v)| (k, v.as_str())),
            )
            .stdin(std::process::Stdio::null());
        Ok(command)
    }

    /// Fetches the audit branch into the mirror; `None` when the remote has none yet.
    fn fetch_tip(
        &self,
        repo: &Repository,
        url: &str,
        mirror: &Path,
        branch: &str,
    ) -> Result<Option<Oid>, String> {
        let out = self
            .git(mirror)?
            .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
            .arg(url)
            .arg(format!("+refs/heads/{branch}:{AUDIT_REMOTE_REF}"))
            .output()
            .map_err(|e| format!("cannot run git: {e}; install git"))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            if said.contains("couldn't find remote ref") {
                return Ok(None);
            }
            return Err(format!(
                "fetching {branch} from {url}: {}",
                last_line(&said)
            ));
        }
        repo.find_reference(AUDIT_REMOTE_REF)
            .ok()
            .and_then(|r| r.target())
            .map(Some)
            .ok_or_else(|| format!("{AUDIT_REMOTE_REF} missing after a fetch"))
    }
}

/// Removes a ref lock file left by a killed writer. A ref update holds its lock for well under
/// a second: a lock much older than that, or one older than a second that was there before this
/// process started, would refuse every update from now on.
fn remove_stale_ref_lock(lock: &Path) {
    // The link itself, never what it points to: git makes no links, and only the lock's
    // own age says whether a writer left it.
    let modified = std::fs::symlink_metadata(lock)
        .and_then(|m| m.modified())
        .ok();
    let age = modified.and_then(|t| t.elapsed().ok());
    let inherited = modified
        .zip(STARTED.get())
        .is_some_and(|(modified, started)| modified < *started);
    let stale = age
        .is_some_and(|age| age > STALE_REF_LOCK || (inherited && age > STALE_INHERITED_REF_LOCK));
    if stale {
        match std::fs::remove_file(lock) {
            Ok(()) => tracing::warn!(file = %lock.display(), "removed a stale ref lock"),
            Err(e) => {
                tracing::warn!(file = %lock.display(), error = %e, "cannot remove a stale ref lock; remove it by hand")
            }
        }
    }
}

/// The git directory of a remote on this machine (a `file://` URL), if it is one.
fn local_remote_git_dir(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("file://")?;
    let path = path.strip_prefix("localhost").unwrap_or(path);
    // git decodes %XX in a file:// URL; a path read any other way names another directory, so
    // such a URL's lock is left to git and to the operator.
    if path.contains('%') {
        return None;
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return None;
    }
    let dot_git = path.join(".git");
    Some(if dot_git.is_dir() {
        dot_git
    } else {
        path.to_owned()
    })
}

fn last_line(text: &str) -> String {
    text.trim()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && l.trim() != "Done")
        .unwrap_or("failed")
        .to_owned()
}
