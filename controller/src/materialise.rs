//! From a plan to files on disk, and what the reconcile keeps between plans.
//!
//! [`apply`] writes a [`Plan`]'s outputs atomically, removes outputs of removed targets, and
//! runs the hooks of changed outputs, journalling each step before it happens. [`Engine`] holds
//! what stays the same from one reconcile to the next; [`Owners`] indexes which target writes
//! each file of the applied state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::Oid;
use rayon::prelude::*;
use sealops_core::audit::{Event, Outcome as AuditOutcome, RecordDraft};
use sealops_core::controller_config::RemovedOutputs;
use sealops_core::keys::IdentitySet;
use sealops_core::seal::EnvelopeCache;
use sealops_core::target::Target;

use crate::audit::Audit;
use crate::creds::Creds;
use crate::hooks::HookSpec;
use crate::output::{self, OutputRoots};
use crate::plan::{Plan, PlannedWrite};
use crate::state::{AppliedState, InProgress, PendingHook, StateFile};
use crate::status::{Reason, Refusal, Status, TargetState, TargetStatus};

/// What stays the same from one reconcile to the next: local configuration, identities and
/// the session keys opened so far.
#[derive(Debug)]
pub struct Engine {
    pub roots: OutputRoots,
    pub node_labels: BTreeMap<String, String>,
    pub hooks: BTreeMap<String, HookSpec>,
    pub identities: Arc<IdentitySet>,
    pub cache: EnvelopeCache,
    pub removed_outputs: RemovedOutputs,
    /// Parsed target files by blob id, so a reconcile parses only target files that changed.
    pub parsed_targets: std::sync::Mutex<HashMap<Oid, Arc<Target>>>,
    /// Every action is journalled here before it happens.
    pub audit: Arc<Audit>,
    /// Where the waiting audit records are reported after each record.
    pub status: Arc<Status>,
    pub owners: std::sync::Mutex<Owners>,
    /// Leases and static roles (absent without an identity to seal their passwords to, or a
    /// lease store; `creds_problem` says why).
    pub creds: Option<Arc<Creds>>,
    pub creds_problem: Option<String>,
}

/// Which target writes each destination of the applied state: the one-writer-per-file check
/// looks destinations up here instead of walking every output on every reconcile.
#[derive(Debug, Default)]
pub struct Owners {
    /// The applied commit the index describes.
    commit: Option<String>,
    pub by_path: HashMap<PathBuf, String>,
}

impl Owners {
    /// Makes the index describe `applied` (rebuilt only when it describes something else: at
    /// start, or after an apply whose state could not be saved).
    pub fn follow(&mut self, applied: Option<&AppliedState>) {
        let Some(applied) = applied else {
            self.commit = None;
            self.by_path.clear();
            return;
        };
        if self.commit.as_deref() == Some(applied.commit.as_str()) {
            return;
        }
        self.by_path.clear();
        for (name, paths) in &applied.outputs {
            for path in paths {
                self.by_path.insert(path.clone(), name.clone());
            }
        }
        self.commit = Some(applied.commit.clone());
    }

    /// `plan` was applied on top of `before`: only its targets change.
    pub fn applied(&mut self, before: Option<&AppliedState>, plan: &Plan) {
        if self.commit.as_deref() != before.map(|b| b.commit.as_str()) {
            self.commit = None; // rebuilt from the state on the next plan
            return;
        }
        for name in plan.outputs.keys().chain(&plan.dropped) {
            for path in before
                .and_then(|b| b.outputs.get(name))
                .into_iter()
                .flatten()
            {
                if self.by_path.get(path) == Some(name) {
                    self.by_path.remove(path);
                }
            }
        }
        for (name, paths) in &plan.outputs {
            for path in paths {
                self.by_path.insert(path.clone(), name.clone());
            }
        }
        self.commit = Some(plan.commit.to_string());
    }
}

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
    /// Hooks that failed or timed out, removals refused (the outputs are written; these are
    /// reported).
    pub problems: Vec<Refusal>,
    pub hooks_run: u64,
}

/// Writes the plan's outputs, removes outputs of removed targets (unless configured to keep
/// them), and runs each changed output's hooks once.
///
/// Order, so that nothing happens unrecorded and nothing owed is forgotten: find which outputs
/// differ from what is on disk; journal `first_records` (e.g. the commit's verification) and a
/// record per output to write or remove, with one fsync — if that fails, nothing is written;
/// record the apply in the state directory (see [`InProgress`]: hooks a killed controller owed
/// run with the next apply); write and remove; run hooks and journal what they did.
pub fn apply(
    engine: &Engine,
    plan: &Plan,
    state: &StateFile,
    first_records: Vec<RecordDraft>,
) -> Result<ApplyReport, Refusal> {
    let mut report = ApplyReport::default();
    let commit = plan.commit.to_string();
    let refusal = |path: &Path, reason: Reason, message: String| Refusal {
        commit: Some(commit.clone()),
        path: Some(path.display().to_string()),
        reason,
        message,
    };
    let differs: Vec<bool> = plan
        .writes
        .par_iter()
        .map(|w| {
            output::in_place(&w.destination, &w.content, w.mode, w.ownership)
                .map(|same| !same)
                .map_err(|e| {
                    refusal(
                        &w.destination,
                        Reason::Output,
                        format!("target {}: {e}", w.target),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let changed: Vec<&PlannedWrite> = plan
        .writes
        .iter()
        .zip(&differs)
        .filter_map(|(w, d)| d.then_some(w))
        .collect();
    report.unchanged = (plan.writes.len() - changed.len()) as u64;
    let mut removals = Vec::new();
    if engine.removed_outputs == RemovedOutputs::Delete {
        for (target, path) in &plan.removals {
            // The state file is local, but a path is re-checked against the roots before a
            // removal all the same.
            let resolved = match path.to_str().map(|text| engine.roots.resolve(text)) {
                Some(Ok(resolved)) => resolved,
                Some(Err(e)) => {
                    report.problems.push(refusal(
                        path,
                        Reason::Output,
                        format!("not removing an output of removed target {target}: {e}; remove it by hand"),
                    ));
                    continue;
                }
                None => continue,
            };
            removals.push((target, resolved));
        }
    }

    let mut records = first_records;
    for w in &changed {
        let mut draft = RecordDraft::new(Event::OutputWritten, AuditOutcome::Ok);
        draft.commit = Some(commit.clone());
        draft.path = Some(w.secret.clone());
        draft.keys = w.keys.clone();
        draft.target = Some(w.target.clone());
        draft.identity = Some(w.identity.clone());
        draft.fingerprints = w.fingerprints.clone();
        draft.reason = Some(format!("written to {}", w.destination.display()));
        records.push(draft);
    }
    for (target, path) in &removals {
        let mut draft = RecordDraft::new(Event::OutputRemoved, AuditOutcome::Ok);
        draft.commit = Some(commit.clone());
        draft.target = Some((*target).clone());
        draft.reason = Some(format!("removed {}", path.display()));
        records.push(draft);
    }
    let recorded = engine.audit.record(records);
    engine.status.report_audit(&engine.audit);
    recorded.map_err(|e| {
        refusal(
            state.path(),
            Reason::Audit,
            format!("{e}; no output was written"),
        )
    })?;

    let owed = match state.interrupted_apply() {
        Ok(owed) => owed.map(|o| o.hooks).unwrap_or_default(),
        Err(e) => {
            report.problems.push(refusal(
                state.path(),
                Reason::Output,
                format!("{e}; hooks an interrupted apply owed may not have run"),
            ));
            BTreeSet::new()
        }
    };
    let mut hooks: BTreeSet<PendingHook> = owed.clone();
    if !changed.is_empty() || !removals.is_empty() || !owed.is_empty() {
        let record = InProgress {
            commit: commit.clone(),
            directories: changed
                .iter()
                .map(|w| w.destination.as_path())
                .chain(removals.iter().map(|(_, path)| path.as_path()))
                .filter_map(|p| p.parent().map(Path::to_owned))
                .collect(),
            hooks: changed
                .iter()
                .flat_map(|w| {
                    w.hooks.iter().map(|hook| PendingHook {
                        target: w.target.clone(),
                        hook: hook.clone(),
                    })
                })
                .chain(owed)
                .collect(),
        };
        state.begin_apply(&record).map_err(|e| {
            refusal(
                state.path(),
                Reason::Output,
                format!("{e}; no output is written until the apply can be recorded"),
            )
        })?;
    }
    // Files are independent: write them in parallel (each one atomically); stop at the first
    // failure, which leaves the state file at the previous commit so the next reconcile redoes it.
    changed
        .par_iter()
        .map(|write| {
            engine
                .roots
                .prepare(&write.destination)
                .and_then(|()| {
                    output::replace(
                        &write.destination,
                        &write.content,
                        write.mode,
                        write.ownership,
                    )
                })
                .map_err(|e| {
                    refusal(
                        &write.destination,
                        Reason::Output,
                        format!("target {}: {e}", write.target),
                    )
                })
        })
        .collect::<Result<Vec<()>, Refusal>>()?;
    for write in &changed {
        report.written += 1;
        for hook in &write.hooks {
            hooks.insert(PendingHook {
                target: write.target.clone(),
                hook: hook.clone(),
            });
        }
    }
    for (target, path) in &removals {
        output::remove(path).map_err(|e| {
            refusal(
                path,
                Reason::Output,
                format!("removing an output of target {target}: {e}"),
            )
        })?;
        report.removed += 1;
    }

    let mut hook_records = Vec::new();
    for PendingHook { target, hook: name } in hooks {
        let Some(spec) = engine.hooks.get(&name) else {
            report.problems.push(Refusal {
                commit: Some(commit.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!(
                    "target {target}: hook {name} (owed by an interrupted apply) is no longer on this controller's allow-list; not run"
                ),
            });
            continue;
        };
        report.hooks_run += 1;
        let result = crate::hooks::run(&name, spec, &target, plan.commit);
        let mut draft = RecordDraft::new(
            Event::HookRun,
            if result.is_ok() {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
        );
        draft.commit = Some(commit.clone());
        draft.target = Some(target.clone());
        if let Err(problem) = result {
            draft.reason = Some(format!("hook {name}: {problem}"));
            report.problems.push(Refusal {
                commit: Some(commit.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!("target {target}: hook {name}: {problem}"),
            });
        } else {
            draft.reason = Some(format!("hook {name}"));
        }
        hook_records.push(draft);
    }
    let recorded = engine.audit.record(hook_records);
    engine.status.report_audit(&engine.audit);
    if let Err(e) = recorded {
        report.problems.push(refusal(
            state.path(),
            Reason::Audit,
            format!("recording hooks: {e}"),
        ));
    }
    if let Err(e) = state.finish_apply() {
        report
            .problems
            .push(refusal(state.path(), Reason::Output, e.to_string()));
    }
    Ok(report)
}

/// Targets whose outputs reflect the applied commit, as the status reports them.
pub fn in_sync_statuses(
    outputs: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeMap<String, TargetStatus> {
    outputs
        .iter()
        .map(|(name, paths)| {
            (
                name.clone(),
                TargetStatus {
                    state: TargetState::InSync,
                    outputs: paths.iter().map(|p| p.display().to_string()).collect(),
                    error: None,
                },
            )
        })
        .collect()
}

/// Brings per-target statuses in line with an applied plan: planned targets are in sync with
/// their new outputs, dropped ones go, unselected ones say so; the rest stay in sync as they
/// were (a target marked refused is in sync again: the applied commit is what it holds).
pub fn update_statuses(statuses: &mut BTreeMap<String, TargetStatus>, plan: &Plan) {
    for name in &plan.dropped {
        statuses.remove(name);
    }
    for status in statuses.values_mut() {
        if status.state == TargetState::Refused {
            status.state = TargetState::InSync;
        }
    }
    statuses.extend(in_sync_statuses(&plan.outputs));
    for name in &plan.not_selected {
        statuses.insert(
            name.clone(),
            TargetStatus {
                state: TargetState::NotSelected,
                outputs: Vec::new(),
                error: None,
            },
        );
    }
}

/// Removes temporary files a killed controller left in the folders of its outputs.
pub fn remove_stale_temp_files<'p>(outputs: impl IntoIterator<Item = &'p Path>) {
    let dirs: BTreeSet<&Path> = outputs.into_iter().collect();
    for dir in dirs {
        sealops_core::fsutil::remove_temp_files(dir);
    }
}
