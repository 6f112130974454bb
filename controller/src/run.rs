//! The reconcile loop: triggers in, one reconcile at a time, status out.
//!
//! Level-triggered: whatever woke it (a ref change in a local checkout, the poll timer, a
//! webhook), a reconcile compares the branch with what was applied and does what differs. A
//! periodic full resync re-renders every output, so a missed event or a hand-edited output is
//! repaired. Errors back off exponentially up to the poll interval. Reconciles never overlap:
//! the loop awaits each one before it listens again, which also means SIGTERM lets the
//! reconcile in progress finish its writes before the process exits.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use git2::Oid;
use sealops_core::controller_config::{AuditSink, ControllerConfig};
use sealops_core::keys::AgeIdentities;
use sealops_core::seal::EnvelopeCache;
use sealops_core::signing::AllowedSigners;
use tokio::sync::Notify;

use crate::audit::{Audit, Pushed};
use crate::context::ReconcileContext;
use crate::creds::Creds;
use crate::desired::{self, TrustSettings};
use crate::hooks::HookSpec;
use crate::leases::LeaseStore;
use crate::materialise;
use crate::output::OutputRoots;
use crate::refusal::Refusal;
use crate::source::Source;
use crate::state::{AppliedState, StateFile, StateLock};
use crate::status::{Applied, LastReconcile, Metrics, ReasonLabel, Status};
use sealops_core::audit::{Event, Outcome as AuditOutcome, RecordDraft};

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileOutcome {
    /// A newer commit was applied (or a resync repaired outputs).
    Applied,
    /// Nothing to do: outputs match the applied commit, which is the branch head.
    Unchanged,
    /// The newest commit (or the reconcile) was refused; outputs keep their previous content.
    Refused,
    /// Something outside the repository's content failed (fetch, disk); retried with backoff.
    Failed,
}

/// One controller: configuration, identities, state, and the status it reports.
#[derive(Debug)]
pub struct Controller {
    source: Source,
    _lock: StateLock,
    context: ReconcileContext,
    trust: TrustSettings,
    state_file: StateFile,
    applied: Option<AppliedState>,
    /// When each commit not applied yet was first seen (persisted in `seen.json`).
    first_seen: desired::FirstSeen,
    /// The head refused last, so an unchanged refused head is not judged again on every poll.
    refused_head: Option<Oid>,
    pub status: Arc<Status>,
    fetch_timeout: Duration,
    /// The last fetch failed (cleared by a successful one).
    fetch_failure: Option<Refusal>,
    /// Refusals already journalled, so a head judged again is not recorded again.
    recorded_refusals: RecordedRefusals,
}

/// How many journalled refusals [`RecordedRefusals`] remembers.
const REMEMBERED_REFUSALS: usize = 1024;

/// A refusal as it is recorded once: (commit, reason, path).
type RefusalKey = (String, crate::refusal::Reason, Option<String>);

/// The (commit, reason, path) of the newest refusals journalled. A refused head is judged again
/// by every full resync, every reconcile after a failed fetch and every change on the branch
/// above it; its record says the same thing each time, so it is journalled once. In memory
/// only (a restart records each refusal once more), and bounded: the oldest of more than
/// [`REMEMBERED_REFUSALS`] are forgotten and would be recorded again.
#[derive(Debug, Default)]
struct RecordedRefusals {
    order: VecDeque<RefusalKey>,
    keys: HashSet<RefusalKey>,
}

impl RecordedRefusals {
    fn key(refusal: &Refusal) -> Option<RefusalKey> {
        refusal
            .commit
            .clone()
            .map(|commit| (commit, refusal.reason, refusal.path.clone()))
    }

    fn contains(&self, key: &RefusalKey) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: RefusalKey) {
        if self.keys.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > REMEMBERED_REFUSALS
                && let Some(oldest) = self.order.pop_front()
            {
                self.keys.remove(&oldest);
            }
        }
    }
}

impl Controller {
    /// Loads identities, trust and state named by `config`. Errors say which file and why.
    pub fn new(config: &ControllerConfig) -> anyhow::Result<Self> {
        let identities = load_identities(config)?;
        let roots = OutputRoots::new(&config.output_roots).context("output_roots")?;
        let hooks = hook_specs(config);
        let trust = trust_settings(config)?;
        let state_file = StateFile::open(&config.state_dir)?;
        let lock = StateLock::acquire(&config.state_dir)?;
        let source = Source::new(&config.repository, &config.state_dir);
        source.clear_stale_locks();
        let applied = state_file.load()?;
        let first_seen = state_file.load_first_seen()?;
        let interrupted = state_file.interrupted_apply()?;
        if let Some(apply) = &interrupted {
            tracing::warn!(
                commit = apply.commit,
                hooks = apply.hooks.len(),
                "the previous run was killed while applying; its hooks run with the next apply"
            );
        }
        materialise::remove_stale_temp_files(
            applied
                .iter()
                .flat_map(|state| state.outputs.values().flatten())
                .filter_map(|path| path.parent())
                .chain(
                    interrupted
                        .iter()
                        .flat_map(|apply| apply.directories.iter().map(PathBuf::as_path)),
                ),
        );
        let status = Arc::new(Status::new(&config.node.name, &config.repository.branch));
        if let Some(state) = &applied {
            show_last_apply(&status, state);
        }
        let poll = config.poll.interval.get();
        let sinks =
            crate::audit_sink::Sinks::open(&config.audit, status.metrics.audit_sink_writes.clone());
        let audit = Arc::new(
            Audit::open(
                &config.state_dir,
                &config.controller_id(),
                &config.node.name,
            )
            .with_sinks(sinks),
        );
        let identities = Arc::new(identities);
        let (creds, creds_problem) = open_creds(config, &identities, &audit, &status);
        record_keys_loaded(config, &audit);
        // The trail goes where the applied commit's configuration sends it, from the start: a
        // push before the first apply uses it too, and /status says so while records wait.
        if let Some(branch) = applied
            .as_ref()
            .and_then(|state| applied_audit_branch(&source, &state.commit))
        {
            audit.set_branch(&branch);
        }
        if let Some(state) = &applied {
            audit.set_applied(&state.commit);
        }
        status.set_block_on_tamper(
            config.audit.on_tamper == sealops_core::controller_config::OnTamper::Block,
        );
        status.report_audit(&audit);
        Ok(Self {
            source,
            _lock: lock,
            context: ReconcileContext {
                roots,
                node_labels: config.node.labels.clone(),
                hooks,
                identities,
                cache: EnvelopeCache::default(),
                parsed_targets: Default::default(),
                removed_outputs: config.removed_outputs,
                audit,
                status: status.clone(),
                owners: Default::default(),
                creds,
                creds_problem,
            },
            trust,
            state_file,
            applied,
            first_seen,
            refused_head: None,
            status,
            fetch_timeout: poll.max(Duration::from_secs(30)),
            fetch_failure: None,
            recorded_refusals: RecordedRefusals::default(),
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.context.audit
    }

    pub fn creds(&self) -> Option<&Arc<Creds>> {
        self.context.creds.as_ref()
    }

    /// Credentials changed since they were last rendered.
    fn credentials_dirty(&self) -> bool {
        self.context
            .creds
            .as_ref()
            .is_some_and(|c| !c.dirty().is_empty())
    }

    /// Pushes journalled audit records (blocking), counting the result in the metrics.
    pub fn push_audit(audit: &Audit, source: &Source, status: &Status) -> Result<Pushed, String> {
        let result = audit.push(source);
        let metrics = &status.metrics;
        match &result {
            Ok(pushed) => {
                Metrics::count(&metrics.audit_pushes, "ok");
                if let Pushed::Lines { lines, .. } = pushed {
                    metrics.audit_records_pushed.inc_by(*lines as u64);
                }
            }
            Err(e) => {
                Metrics::count(&metrics.audit_pushes, "failed");
                tracing::warn!(error = %e, "audit push failed; the records stay journalled and are pushed later");
            }
        }
        status.report_audit(audit);
        status.update(|doc| {
            doc.audit.last_push_at = Some(now_rfc3339());
            doc.audit.last_push_error = result.as_ref().err().cloned();
        });
        result
    }

    /// Fetches a remote source; a failure is reported and the last fetched state keeps
    /// being served.
    pub async fn fetch(&mut self) -> bool {
        match self.source.fetch(self.fetch_timeout).await {
            Ok(()) => {
                Metrics::count(&self.status.metrics.fetches, "ok");
                self.fetch_failure = None;
                true
            }
            Err(e) => {
                Metrics::count(&self.status.metrics.fetches, "failed");
                tracing::warn!(error = %e, "fetch failed; serving the last applied commit");
                // Reported with the next reconcile, which works on what was fetched before.
                self.fetch_failure = Some(Refusal {
                    commit: None,
                    path: None,
                    reason: crate::refusal::Reason::Fetch,
                    message: e.to_string(),
                });
                false
            }
        }
    }

    /// Journals the decisions among `refusals` not journalled before (each (commit, reason,
    /// path) once); a journal failure is added to them. Every refusal is still reported.
    fn record_refusals(&mut self, refusals: &mut Vec<Refusal>) {
        let mut new_keys = Vec::new();
        let mut drafts = Vec::new();
        for refusal in refusals.iter() {
            let Some(draft) = refusal_record(refusal) else {
                continue;
            };
            let key = RecordedRefusals::key(refusal);
            if let Some(key) = key {
                if self.recorded_refusals.contains(&key) || new_keys.contains(&key) {
                    continue;
                }
                new_keys.push(key);
            }
            drafts.push(draft);
        }
        let recorded = self.context.audit.record(drafts);
        self.status.report_audit(&self.context.audit);
        match recorded {
            Ok(()) => {
                for key in new_keys {
                    self.recorded_refusals.insert(key);
                }
            }
            // Not remembered: the next judgement records them.
            Err(e) => refusals.push(Refusal {
                commit: None,
                path: None,
                reason: crate::refusal::Reason::Audit,
                message: format!("recording refusals: {e}"),
            }),
        }
    }

    fn report(&self, refusals: Vec<Refusal>, log: bool) {
        for refusal in &refusals {
            self.status
                .metrics
                .failures
                .get_or_create(&ReasonLabel {
                    reason: refusal.reason,
                })
                .inc();
            if log {
                tracing::warn!(
                    commit = refusal.commit.as_deref().unwrap_or("-"),
                    path = refusal.path.as_deref().unwrap_or("-"),
                    reason = ?refusal.reason,
                    "refused: {}",
                    refusal.message
                );
            }
        }
        self.status.update(|doc| {
            if let Some(last) = refusals.last() {
                doc.last_error = Some(last.clone());
            }
            doc.refusals = refusals;
        });
    }

    /// One reconcile. `full` re-renders every output (resync); otherwise only what the
    /// change since the applied commit touches.
    pub fn reconcile(&mut self, full: bool) -> ReconcileOutcome {
        let started = Instant::now();
        let outcome = self.reconcile_inner(full);
        let elapsed = started.elapsed();
        let metrics = &self.status.metrics;
        metrics.duration.observe(elapsed.as_secs_f64());
        let result = match outcome.0 {
            ReconcileOutcome::Applied => "applied",
            ReconcileOutcome::Unchanged => "unchanged",
            ReconcileOutcome::Refused => "refused",
            ReconcileOutcome::Failed => "failed",
        };
        Metrics::count(&metrics.reconciles, result);
        self.status.update(|doc| {
            doc.last_reconcile = Some(LastReconcile {
                finished_at: now_rfc3339(),
                duration_seconds: elapsed.as_secs_f64(),
                result: result.to_owned(),
                outputs_written: outcome.1,
            });
        });
        self.status.set_ready();
        outcome.0
    }

    /// Whether the outputs reflect the branch head with nothing refused.
    pub fn in_sync(&self) -> bool {
        use crate::refusal::Reason;
        let doc = self.status.snapshot();
        // A refused commit whose changes a later applied commit reverted is reported, but the
        // outputs are in sync with the head; a failed fetch, write or hook is not.
        doc.head.is_some()
            && doc.head == doc.applied.as_ref().map(|a| a.commit.clone())
            && !doc.refusals.iter().any(|r| {
                matches!(
                    r.reason,
                    Reason::Hook | Reason::Fetch | Reason::Output | Reason::Repository
                )
            })
    }

    fn reconcile_inner(&mut self, full: bool) -> (ReconcileOutcome, u64) {
        let failed = |this: &Self, reason, message: String| {
            this.report(
                vec![Refusal {
                    commit: None,
                    path: None,
                    reason,
                    message,
                }],
                true,
            );
            (ReconcileOutcome::Failed, 0)
        };
        // Nothing happens that cannot be recorded.
        if let Err(e) = self.context.audit.ready() {
            return failed(self, crate::refusal::Reason::Audit, e);
        }
        let repo = match self.source.open() {
            Ok(repo) => repo,
            Err(e) => return failed(self, crate::refusal::Reason::Repository, e.to_string()),
        };
        let head = match self.source.head(&repo) {
            Ok(head) => head,
            Err(e) => return failed(self, crate::refusal::Reason::Repository, e.to_string()),
        };
        self.status.update(|doc| doc.head = Some(head.to_string()));
        let credentials_dirty = self.credentials_dirty();
        if !full
            && self.refused_head == Some(head)
            && self.fetch_failure.is_none()
            && !credentials_dirty
        {
            return (ReconcileOutcome::Refused, 0);
        }
        let previous = self.applied_commit();
        // One reader of trees for the whole reconcile: judging the range and materialising its
        // newest commit read the same trees.
        let trees = sealops_core::gittree::Trees::new(&repo);
        let (selection, chosen) = self.choose_commit(&trees, head, full, credentials_dirty);
        let mut refusals: Vec<Refusal> = self.fetch_failure.iter().cloned().collect();
        refusals.extend(selection.refusals);
        let Some(commit) = chosen else {
            return self.finish_without_apply(head, refusals);
        };
        let is_new = previous.is_none_or(|p| p.commit != commit);
        let full = full || self.applied.is_none();
        let plan = match self.plan_commit(&trees, head, commit, full, &mut refusals) {
            Ok(plan) => plan,
            Err(outcome) => return outcome,
        };
        // Newer commits refused on the way to the one applied.
        self.record_refusals(&mut refusals);
        let mut verified = Vec::new();
        if is_new {
            let mut draft = RecordDraft::new(Event::CommitVerified, AuditOutcome::Ok);
            draft.commit = Some(commit.to_string());
            verified.push(draft);
        }
        let applied = match materialise::apply(&self.context, &plan, &self.state_file, verified) {
            Ok(report) => report,
            Err(refusal) => {
                self.report(vec![refusal], true);
                return (ReconcileOutcome::Failed, 0);
            }
        };
        self.count_applied(&applied);
        let state = match self.save_applied(&plan, commit, selection.signers_from_repository) {
            Ok(state) => state,
            Err(e) => return failed(self, crate::refusal::Reason::Repository, e),
        };
        self.follow_applied_audit_settings(&plan, &state.commit);
        if let Err(e) = self.source.pin_applied(&repo, commit) {
            tracing::warn!(error = %e, "cannot pin the applied commit in the mirror");
        }
        let applied_doc = Applied {
            commit: state.commit.clone(),
            applied_at: state.applied_at.clone(),
            commit_time: state.commit_time,
        };
        self.applied = Some(state);
        self.hand_applied_to_creds(&plan);
        self.refused_head = refusals
            .iter()
            .any(|r| r.reason != crate::refusal::Reason::Fetch)
            .then_some(head);
        self.note_applied(&plan, &applied, full, is_new);
        refusals.extend(applied.problems);
        let clean = refusals.is_empty();
        self.report(refusals, true);
        self.status.update(|doc| {
            doc.applied = Some(applied_doc);
            materialise::update_statuses(&mut doc.targets, &plan);
            if clean {
                doc.last_error = None;
            }
        });
        let outcome = if is_new || applied.written > 0 || applied.removed > 0 {
            ReconcileOutcome::Applied
        } else if clean {
            ReconcileOutcome::Unchanged
        } else {
            ReconcileOutcome::Refused
        };
        (outcome, applied.written)
    }

    /// The applied commit, as the commit selection starts from it.
    fn applied_commit(&self) -> Option<desired::Applied> {
        self.applied.as_ref().and_then(|state| {
            Oid::from_str(&state.commit)
                .ok()
                .map(|commit| desired::Applied {
                    commit,
                    signers_from_repository: state.signers_from_repository,
                })
        })
    }

    /// Judges the commits up to `head`, and chooses the one to materialise: the newest
    /// authorised one, else the applied one when a resync or new credentials ask for it.
    fn choose_commit(
        &mut self,
        trees: &sealops_core::gittree::Trees<'_>,
        head: Oid,
        full: bool,
        credentials_dirty: bool,
    ) -> (desired::Selection, Option<Oid>) {
        let previous = self.applied_commit();
        let seen_before = self.first_seen.clone();
        let now = sealops_core::clock::unix_now();
        let selection = desired::select(
            trees,
            &self.trust,
            previous,
            head,
            &mut self.first_seen,
            now,
        );
        if self.first_seen != seen_before
            && let Err(e) = self.state_file.save_first_seen(&self.first_seen)
        {
            // Not fatal: a commit whose time is lost is seen again later, which only makes
            // its judgement stricter.
            tracing::warn!(error = %e, "cannot record when new commits were first seen");
        }
        let chosen = match (selection.commit, previous) {
            (Some(commit), _) => Some(commit),
            // A resync re-renders the applied commit to repair drifted outputs.
            (None, Some(previous)) if full => Some(previous.commit),
            // New credentials reach the outputs of the applied commit even while a newer
            // commit is refused.
            (None, Some(previous)) if credentials_dirty => Some(previous.commit),
            _ => None,
        };
        (selection, chosen)
    }

    /// Plans `commit`; a refused plan is reported (with `refusals`, the newer commits refused
    /// on the way) and ends the reconcile with the outcome returned.
    fn plan_commit(
        &mut self,
        trees: &sealops_core::gittree::Trees<'_>,
        head: Oid,
        commit: Oid,
        full: bool,
        refusals: &mut Vec<Refusal>,
    ) -> Result<crate::plan::Plan, (ReconcileOutcome, u64)> {
        if full {
            self.context.cache.new_generation();
        }
        match crate::plan::plan(&self.context, trees, commit, self.applied.as_ref(), full) {
            Ok(plan) => {
                if full {
                    // Every session still needed was opened in this generation.
                    self.context.cache.sweep();
                }
                Ok(plan)
            }
            Err(mut refused) => {
                let database = refused
                    .iter()
                    .any(|r| r.reason == crate::refusal::Reason::Database);
                refused.splice(0..0, refusals.drain(..));
                let outcome = self.finish_without_apply(head, refused);
                if database {
                    // Retried with backoff, not until the head changes.
                    self.refused_head = None;
                    if let Some(creds) = &self.context.creds {
                        creds.set_applying(false);
                    }
                    return Err((ReconcileOutcome::Failed, 0));
                }
                Err(outcome)
            }
        }
    }

    /// The applied-time metrics and the log line of an apply.
    fn note_applied(
        &self,
        plan: &crate::plan::Plan,
        applied: &materialise::ApplyReport,
        full: bool,
        is_new: bool,
    ) {
        let commit = plan.commit;
        let metrics = &self.status.metrics;
        metrics.last_applied_commit_time.set(plan.commit_time);
        metrics
            .last_applied_time
            .set(sealops_core::clock::unix_now());
        tracing::info!(
            commit = %commit,
            written = applied.written,
            unchanged = applied.unchanged,
            removed = applied.removed,
            targets_rendered = plan.rendered_targets,
            full,
            "{}",
            if is_new { "applied" } else { "resynced" }
        );
    }

    /// The counters of an apply: outputs written and removed, hooks run and failed.
    fn count_applied(&self, applied: &materialise::ApplyReport) {
        let metrics = &self.status.metrics;
        metrics.outputs_written.inc_by(applied.written);
        metrics.outputs_removed.inc_by(applied.removed);
        let hooks_failed = applied
            .problems
            .iter()
            .filter(|p| p.reason == crate::refusal::Reason::Hook)
            .count() as u64;
        for _ in 0..applied.hooks_run - hooks_failed {
            Metrics::count(&metrics.hooks_run, "ok");
        }
        for _ in 0..hooks_failed {
            Metrics::count(&metrics.hooks_run, "failed");
        }
    }

    /// Records `plan` of `commit` as applied, on disk first. The applied state changes in
    /// place: only the planned targets' entries (with 10,000 outputs, copying the whole map on
    /// every reconcile was most of an incremental one). On a failed save the state is what the
    /// disk holds; the next reconcile starts from it (the outputs written meanwhile are
    /// rewritten or found in place).
    fn save_applied(
        &mut self,
        plan: &crate::plan::Plan,
        commit: Oid,
        signers_from_repository: bool,
    ) -> Result<AppliedState, String> {
        self.context
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .applied(
                self.applied.as_ref(),
                plan.commit,
                &plan.outputs,
                &plan.dropped,
            );
        let mut state = self.applied.take().unwrap_or_default();
        let outputs_changed = !plan.dropped.is_empty()
            || plan
                .outputs
                .iter()
                .any(|(name, paths)| state.outputs.get(name) != Some(paths));
        for name in &plan.dropped {
            state.outputs.remove(name);
        }
        for (name, paths) in &plan.outputs {
            state.outputs.insert(name.clone(), paths.clone());
        }
        state.commit = commit.to_string();
        state.applied_at = now_rfc3339();
        state.commit_time = plan.commit_time;
        state.signers_from_repository = signers_from_repository;
        if let Err(e) = self.state_file.save(&state, outputs_changed) {
            self.applied = self.state_file.load().ok().flatten();
            return Err(e.to_string());
        }
        Ok(state)
    }

    /// The applied commit says where the trail goes and which audit keys are registered.
    fn follow_applied_audit_settings(&self, plan: &crate::plan::Plan, commit: &str) {
        if plan.audit_branch == self.source.branch() {
            tracing::error!(
                branch = plan.audit_branch,
                "audit.branch in .sealops/config.yaml names the synced branch; records keep going to {}",
                self.context.audit.branch()
            );
        } else {
            self.context.audit.set_branch(&plan.audit_branch);
        }
        self.context.audit.set_applied(commit);
        self.status.report_audit(&self.context.audit);
    }

    /// Tells the credentials front door which targets are applied and which leases and
    /// credentials their outputs now hold.
    fn hand_applied_to_creds(&self, plan: &crate::plan::Plan) {
        let Some(creds) = &self.context.creds else {
            return;
        };
        let planned: BTreeSet<String> = plan.outputs.keys().cloned().collect();
        let applied_targets: BTreeSet<String> = self
            .applied
            .iter()
            .flat_map(|state| state.outputs.keys().cloned())
            .collect();
        creds.applied(&planned, &applied_targets, &plan.leases);
        creds.clean(&plan.credentials_rendered);
        creds.set_applying(true);
        creds.publish();
    }

    fn finish_without_apply(
        &mut self,
        head: Oid,
        mut refusals: Vec<Refusal>,
    ) -> (ReconcileOutcome, u64) {
        self.record_refusals(&mut refusals);
        if refusals.is_empty() {
            self.status.update(|doc| doc.refusals.clear());
            return (ReconcileOutcome::Unchanged, 0);
        }
        if refusals
            .iter()
            .any(|r| r.reason != crate::refusal::Reason::Fetch)
        {
            self.refused_head = Some(head);
        }
        let touched: BTreeSet<String> = refusals.iter().filter_map(|r| r.path.clone()).collect();
        self.report(refusals, true);
        self.status.update(|doc| {
            for (name, target) in doc.targets.iter_mut() {
                if touched.contains(&format!("targets/{name}.yaml")) {
                    target.state = crate::status::TargetState::Refused;
                }
            }
        });
        (ReconcileOutcome::Refused, 0)
    }
}

/// `audit.branch` of `commit`'s `.sealops/config.yaml` (the default when it has none), unless it
/// names the synced branch; `None` when the commit cannot be read.
fn applied_audit_branch(source: &Source, commit: &str) -> Option<String> {
    let repo = source.open().ok()?;
    let tree = repo
        .find_commit(Oid::from_str(commit).ok()?)
        .ok()?
        .tree()
        .ok()?;
    let config = tree
        .get_path(std::path::Path::new(sealops_core::repo::CONFIG_FILE))
        .ok()
        .and_then(|entry| repo.find_blob(entry.id()).ok())
        .and_then(|blob| {
            sealops_core::config::Config::parse(
                &String::from_utf8_lossy(blob.content()),
                sealops_core::repo::CONFIG_FILE,
            )
            .ok()
        });
    let branch = config.map_or_else(
        || sealops_core::config::Audit::default().branch,
        |c| c.audit.branch,
    );
    (branch != source.branch()).then_some(branch)
}

use sealops_core::clock::now_rfc3339;

/// Every identity of `config.identity_files`, each named in its error.
fn load_identities(config: &ControllerConfig) -> anyhow::Result<AgeIdentities> {
    let mut identities = AgeIdentities::new();
    for file in &config.identity_files {
        identities.extend(
            AgeIdentities::load(file)
                .with_context(|| format!("loading identity file {}", file.display()))?,
        );
    }
    Ok(identities)
}

/// The local allow-list of hooks.
fn hook_specs(config: &ControllerConfig) -> BTreeMap<String, HookSpec> {
    config
        .hooks
        .iter()
        .map(|(name, hook)| {
            (
                name.clone(),
                HookSpec {
                    command: hook.command.clone(),
                    timeout: hook.timeout.get(),
                },
            )
        })
        .collect()
}

/// Whose signatures count, from the local configuration.
fn trust_settings(config: &ControllerConfig) -> anyhow::Result<TrustSettings> {
    let signers = match &config.trust.allowed_signers_file {
        Some(file) => Some(
            AllowedSigners::load(file)
                .with_context(|| format!("trust.allowed_signers_file {}", file.display()))?,
        ),
        None => None,
    };
    let pinned: BTreeSet<String> = config.trust.pinned_principals.iter().cloned().collect();
    let trust = TrustSettings {
        signers,
        signers_file: config.trust.allowed_signers_file.clone(),
        pinned_principals: (!pinned.is_empty()).then_some(pinned),
        initial_commit: config
            .trust
            .initial_commit
            .as_deref()
            .map(Oid::from_str)
            .transpose()
            .context("trust.initial_commit")?,
        require_signed: config.trust.require_signed,
        allow_force_push: config.allow_force_push,
    };
    if !trust.require_signed {
        tracing::warn!(
            "trust.require_signed is false: commits are applied without verification (local experiments only)"
        );
    }
    Ok(trust)
}

/// `/status` and the metrics as the last apply left them, until a reconcile says otherwise.
fn show_last_apply(status: &Status, state: &AppliedState) {
    status.update(|doc| {
        doc.applied = Some(Applied {
            commit: state.commit.clone(),
            applied_at: state.applied_at.clone(),
            commit_time: state.commit_time,
        });
        doc.targets = materialise::in_sync_statuses(&state.outputs);
    });
    status
        .metrics
        .last_applied_commit_time
        .set(state.commit_time);
}

/// The credentials front door, or why database credentials are unavailable. Like the journal,
/// a lease store that cannot be opened (a read-only or full state disk) refuses what needs it,
/// reported, rather than stopping the controller.
fn open_creds(
    config: &ControllerConfig,
    identities: &Arc<AgeIdentities>,
    audit: &Arc<Audit>,
    status: &Arc<Status>,
) -> (Option<Arc<Creds>>, Option<String>) {
    let grace = config.leases.revoke_grace.get();
    let (creds, problem) = match LeaseStore::open(&config.state_dir) {
        Ok(store) => match Creds::new(
            store,
            identities.clone(),
            grace,
            audit.clone(),
            status.clone(),
        ) {
            Some(creds) => (Some(Arc::new(creds)), None),
            None => (
                None,
                Some("database credentials need an identity to seal their passwords to; give identity_files".to_owned()),
            ),
        },
        Err(e) => {
            tracing::error!(error = %e, "the lease store cannot be opened; outputs of database credentials are refused until it can");
            (None, Some(format!("database credentials are unavailable: {e}")))
        }
    };
    if let Some(creds) = &creds {
        creds.publish();
    }
    (creds, problem)
}

/// Journals which identity files were loaded. A failure is logged: every reconcile is then
/// refused for the same reason until the journal can be written.
fn record_keys_loaded(config: &ControllerConfig, audit: &Audit) {
    let loaded = config
        .identity_files
        .iter()
        .map(|file| {
            let mut draft = RecordDraft::new(Event::KeyLoaded, AuditOutcome::Ok);
            draft.path = Some(file.display().to_string());
            draft
        })
        .collect();
    if let Err(e) = audit.record(loaded) {
        tracing::error!(error = %e, "cannot record the identities loaded");
    }
}

/// The audit record of a refusal: a decision about the repository's content (not a failure
/// of this machine, such as a fetch or the journal itself).
fn refusal_record(refusal: &Refusal) -> Option<RecordDraft> {
    use crate::refusal::Reason;
    let event = match refusal.reason {
        Reason::Policy => Event::AccessDenied,
        Reason::Verification
        | Reason::Authorisation
        | Reason::Schema
        | Reason::Decryption
        | Reason::Output
        | Reason::Hook
        | Reason::ForcePush => Event::CommitRefused,
        // A database failure is recorded by the lease operation that failed.
        Reason::Fetch | Reason::Repository | Reason::Audit | Reason::Database => return None,
    };
    let mut draft = RecordDraft::new(event, AuditOutcome::Refused);
    draft.commit = refusal.commit.clone();
    draft.path = refusal.path.clone();
    draft.reason = Some(format!("{}: {}", refusal.reason.as_str(), refusal.message));
    Some(draft)
}

/// Options of `sealops-controller run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub once: bool,
    pub config_path: PathBuf,
}

/// Runs the controller until SIGTERM/SIGINT (or one reconcile with `once`). Returns whether
/// the outputs are in sync with the branch head.
pub async fn run(config: ControllerConfig, options: RunOptions) -> anyhow::Result<bool> {
    let mut controller = Controller::new(&config)?;
    let status = controller.status.clone();
    let trigger = Arc::new(Notify::new());
    let (interval, jitter, resync) = (
        config.poll.interval.get(),
        config.poll.jitter.get(),
        config.poll.resync.get(),
    );

    if options.once {
        return run_once(controller, &config).await;
    }

    let shutdown = Arc::new(Notify::new());
    let mut servers = Vec::new();
    if let Some(http) = &config.http {
        servers.push(serve_http(http, &status, &trigger, &shutdown).await?);
    }
    let _watcher = match controller.source().watch_dirs()? {
        dirs if dirs.is_empty() => None,
        dirs => Some(watch(&dirs, controller.source(), trigger.clone())?),
    };

    // Audit records are pushed beside the reconcile loop: every push_interval, or as soon as
    // batch_size records wait.
    let pusher = spawn_pusher(&controller, &status, config.audit.push_interval.get());
    let leases = start_leases(&controller, &config, &shutdown, &mut servers).await?;

    // Registered once, before the first reconcile, so a signal arriving mid-reconcile is kept
    // and handled as soon as that reconcile finished.
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut next_resync = Instant::now() + resync;
    let mut full = true;
    let mut fetch_now = true;
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(1), interval);
    loop {
        if fetch_now && controller.source().is_remote() {
            controller.fetch().await;
        }
        let this_full = full;
        let (returned, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = controller.reconcile(this_full);
            (controller, outcome)
        })
        .await?;
        controller = returned;
        full = false;
        if controller.audit().waiting() >= config.audit.batch_size {
            pusher.now.notify_one();
        }
        if this_full {
            next_resync = Instant::now() + resync;
        }
        let wait = if outcome == ReconcileOutcome::Failed {
            backoff.next_wait()
        } else {
            backoff.reset();
            interval + jitter.mul_f64(rand::random::<f64>())
        };
        let poll_at = tokio::time::Instant::now() + wait;
        tokio::select! {
            _ = trigger.notified() => {
                // Debounce: a push or commit moves several files in quick succession.
                tokio::time::sleep(Duration::from_millis(20)).await;
                fetch_now = true;
            }
            _ = tokio::time::sleep_until(poll_at) => { fetch_now = true; }
            _ = tokio::time::sleep_until(next_resync.into()) => { full = true; fetch_now = true; }
            _ = leases.wake.notified() => { fetch_now = false; }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    shut_down(
        controller,
        leases,
        &shutdown,
        servers,
        pusher,
        &config.state_dir,
    )
    .await
}

/// Stops what runs beside the reconcile loop and pushes the audit journal a last time.
/// Returns whether the outputs are in sync with the branch head.
async fn shut_down(
    controller: Controller,
    leases: Leases,
    shutdown: &Notify,
    servers: Vec<ServerTask>,
    pusher: Pusher,
    state_dir: &Path,
) -> anyhow::Result<bool> {
    leases.stop.notify_one();
    if let Some(task) = leases.task {
        let _ = task.await;
    }
    // A stopped controller leaves no address for the CLI to try.
    let _ = std::fs::remove_file(state_dir.join(crate::api::ENDPOINT_FILE));
    tracing::info!("shutting down");
    shutdown.notify_waiters();
    for server in servers {
        let _ = server.await;
    }
    pusher.stop.notify_one();
    let _ = pusher.task.await;
    // A last push, so a clean stop leaves nothing waiting in the journal.
    let controller = tokio::task::spawn_blocking(move || {
        let _ = Controller::push_audit(controller.audit(), controller.source(), &controller.status);
        controller
    })
    .await?;
    Ok(controller.in_sync())
}

/// An HTTP or lease API server, stopped by the `shutdown` notification it was started with.
type ServerTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Leases and rotations beside the reconcile loop.
struct Leases {
    /// Lease changes wake the reconcile loop.
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the lease task and, with `api.enabled`, the lease API that sends it commands (its
/// server joins `servers`).
async fn start_leases(
    controller: &Controller,
    config: &ControllerConfig,
    shutdown: &Arc<Notify>,
    servers: &mut Vec<ServerTask>,
) -> anyhow::Result<Leases> {
    let stop = Arc::new(Notify::new());
    let (commands_tx, commands_rx) = tokio::sync::mpsc::channel(16);
    let wake = controller
        .creds()
        .map(|c| c.wake.clone())
        .unwrap_or_else(|| Arc::new(Notify::new()));
    let task = controller
        .creds()
        .cloned()
        .map(|creds| tokio::spawn(lease_task(creds, commands_rx, stop.clone())));
    if let (true, Some(creds)) = (config.api.enabled, controller.creds()) {
        let (listener, token) = crate::api::bind(&config.api, &config.state_dir).await?;
        tracing::info!(address = %listener.local_addr()?, "lease API listening");
        let state = crate::api::ApiState::new(creds.store.clone(), commands_tx, token);
        let stop = shutdown.clone();
        servers.push(tokio::spawn(crate::api::serve(
            listener,
            state,
            async move { stop.notified().await },
        )));
    } else {
        drop(commands_tx);
    }
    Ok(Leases { wake, stop, task })
}

/// `run --once`: one reconcile, due revocations, a push, and the status document.
async fn run_once(mut controller: Controller, config: &ControllerConfig) -> anyhow::Result<bool> {
    if controller.source().is_remote() {
        controller.fetch().await;
    }
    let controller = tokio::task::spawn_blocking(move || {
        controller.reconcile(true);
        controller
    })
    .await?;
    // Leases due for revocation (expired, replaced past their grace, dropped) are revoked;
    // nothing is renewed or rotated, since no reconcile would follow to write the outputs.
    if let Some(creds) = controller.creds() {
        creds.revoke_due_now().await;
    }
    let controller = tokio::task::spawn_blocking(move || {
        // Best effort: what cannot be pushed now stays journalled for the next run.
        let _ = Controller::push_audit(controller.audit(), controller.source(), &controller.status);
        controller
    })
    .await?;
    // The status document on stdout: what `--once` did and why, for scripts and CI. An
    // audit sink on stdout keeps stdout to audit lines alone: the document goes to stderr.
    let mut doc = serde_json::to_string_pretty(&controller.status.snapshot())?;
    doc.push('\n');
    use std::io::Write as _;
    if config.audit.sinks.contains(&AuditSink::Stdout(true)) {
        let _ = std::io::stderr().write_all(doc.as_bytes());
    } else {
        let _ = std::io::stdout().write_all(doc.as_bytes());
    }
    Ok(controller.in_sync())
}

/// Binds `http.listen` and serves status, metrics and the webhook until `shutdown`.
async fn serve_http(
    http: &sealops_core::controller_config::Http,
    status: &Arc<Status>,
    trigger: &Arc<Notify>,
    shutdown: &Arc<Notify>,
) -> anyhow::Result<ServerTask> {
    let listener = tokio::net::TcpListener::bind(&http.listen)
        .await
        .with_context(|| format!("http.listen {}", http.listen))?;
    tracing::info!(address = %listener.local_addr()?, "HTTP listening");
    let webhook_secret = match &http.webhook_secret_file {
        Some(file) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("http.webhook_secret_file {}", file.display()))?
                .trim()
                .as_bytes()
                .to_vec(),
        )),
        None => None,
    };
    let state = crate::http::HttpState {
        status: status.clone(),
        webhook_secret,
        trigger: trigger.clone(),
    };
    let stop = shutdown.clone();
    Ok(tokio::spawn(crate::http::serve(
        listener,
        state,
        async move { stop.notified().await },
    )))
}

/// The task pushing the audit journal beside the reconcile loop.
struct Pusher {
    /// Asks for a push at once.
    now: Arc<Notify>,
    /// notify_one keeps a permit: the pusher sees the stop even if it was pushing just then.
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Pushes the audit journal every `push_interval`, or at once on [`Pusher::now`], until
/// [`Pusher::stop`]; a failed push waits a whole interval before the next try.
fn spawn_pusher(controller: &Controller, status: &Arc<Status>, push_interval: Duration) -> Pusher {
    let audit = controller.audit().clone();
    let source = controller.source().clone();
    let status = status.clone();
    let (now, stop) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (push_now, stop_pushing) = (now.clone(), stop.clone());
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(push_interval) => {}
                _ = push_now.notified() => {}
                _ = stop_pushing.notified() => break,
            }
            let (audit, source, status) = (audit.clone(), source.clone(), status.clone());
            let pushed = tokio::task::spawn_blocking(move || {
                Controller::push_audit(&audit, &source, &status)
            })
            .await;
            if !matches!(pushed, Ok(Ok(_))) {
                // A failed push is retried at the next interval, not on every reconcile
                // that finds the batch still full.
                tokio::select! {
                    _ = tokio::time::sleep(push_interval) => {}
                    _ = stop_pushing.notified() => break,
                }
            }
        }
    });
    Pusher { now, stop, task }
}

/// Renews, replaces and revokes leases and rotates static roles until `stop`, answering the
/// local API's commands between passes.
async fn lease_task(
    creds: Arc<Creds>,
    mut commands: tokio::sync::mpsc::Receiver<crate::api::Command>,
    stop: Arc<Notify>,
) {
    loop {
        let wait = creds.tick().await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = creds.task_wake.notified() => {}
            Some(command) = commands.recv() => creds.answer(command).await,
            _ = stop.notified() => break,
        }
    }
}

/// Watches a local repository's ref files; wakes the loop when the branch may have moved.
fn watch(
    dirs: &[PathBuf],
    source: &Source,
    trigger: Arc<Notify>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let Source::Local { branch, .. } = source else {
        unreachable!("only local sources are watched");
    };
    let leaf = branch.rsplit('/').next().unwrap_or(branch).to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // inotify reports opens too, and every reconcile opens HEAD and the branch ref: only a
        // write can move the branch, or the loop would wake itself forever.
        use notify::event::{AccessKind, AccessMode, EventKind};
        if matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
        {
            return;
        }
        let relevant = event.paths.iter().any(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|name| name == leaf || name == "packed-refs" || name == "HEAD")
        });
        if relevant {
            trigger.notify_one();
        }
    })?;
    for dir in dirs {
        if dir.is_dir() {
            watcher
                .watch(dir, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("watching {}", dir.display()))?;
        }
    }
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_config(repo: &git2::Repository, config: Option<&str>) -> String {
        let mut builder = repo.treebuilder(None).expect("treebuilder");
        if let Some(text) = config {
            let blob = repo.blob(text.as_bytes()).expect("blob");
            let mut inner = repo.treebuilder(None).expect("treebuilder");
            inner.insert("config.yaml", blob, 0o100644).expect("insert");
            let inner = inner.write().expect("tree");
            builder.insert(".sealops", inner, 0o040000).expect("insert");
        }
        let tree = repo
            .find_tree(builder.write().expect("tree"))
            .expect("tree");
        let who = git2::Signature::now("t", "t@example.invalid").expect("signature");
        repo.commit(None, &who, &who, "c", &tree, &[])
            .expect("commit")
            .to_string()
    }

    #[test]
    fn recorded_refusals_remember_the_newest_1024() {
        use crate::refusal::Reason;
        let key = |n: usize, reason| (format!("{n:040x}"), reason, Some("p".to_owned()));
        let mut recorded = RecordedRefusals::default();
        recorded.insert(key(0, Reason::Verification));
        recorded.insert(key(0, Reason::Verification));
        assert!(recorded.contains(&key(0, Reason::Verification)));
        assert!(
            !recorded.contains(&key(0, Reason::Schema)),
            "another reason is new"
        );
        for n in 1..REMEMBERED_REFUSALS {
            recorded.insert(key(n, Reason::Verification));
        }
        assert_eq!(recorded.order.len(), REMEMBERED_REFUSALS);
        assert!(recorded.contains(&key(0, Reason::Verification)));
        recorded.insert(key(REMEMBERED_REFUSALS, Reason::Verification));
        assert_eq!(recorded.keys.len(), REMEMBERED_REFUSALS);
        assert!(
            !recorded.contains(&key(0, Reason::Verification)),
            "the oldest is forgotten"
        );
        assert!(recorded.contains(&key(1, Reason::Verification)));
    }

    #[test]
    fn the_audit_branch_at_start_is_the_applied_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let source = Source::new(
            &sealops_core::controller_config::RepositorySource {
                path: Some(dir.path().to_owned()),
                url: None,
                branch: "main".to_owned(),
                token_file: None,
                ssh_key_file: None,
            },
            dir.path(),
        );
        let custom = commit_config(
            &repo,
            Some("sealops: v1\naudit:\n  branch: compliance/trail\n"),
        );
        assert_eq!(
            applied_audit_branch(&source, &custom).as_deref(),
            Some("compliance/trail")
        );
        let default = commit_config(&repo, None);
        assert_eq!(
            applied_audit_branch(&source, &default).as_deref(),
            Some("sealops/audit")
        );
        // Never the synced branch (the reconcile refuses it the same way).
        let synced = commit_config(&repo, Some("sealops: v1\naudit:\n  branch: main\n"));
        assert_eq!(applied_audit_branch(&source, &synced), None);
        assert_eq!(applied_audit_branch(&source, &"0".repeat(40)), None);
    }
}
