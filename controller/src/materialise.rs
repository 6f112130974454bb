//! From a plan to files on disk, and what the reconcile keeps between plans.
//!
//! [`apply`] writes a [`Plan`]'s outputs atomically, removes outputs of removed targets, and
//! runs the hooks of changed outputs, journalling each step before it happens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::Oid;
use rayon::prelude::*;
use sealops_core::audit::{Event, Outcome as AuditOutcome, RecordDraft};
use sealops_core::controller_config::RemovedOutputs;

use crate::context::ReconcileContext;
use crate::output;
use crate::plan::{Plan, PlannedWrite};
use crate::refusal::{Reason, Refusal};
use crate::state::{InProgress, PendingHook, StateFile};
use crate::status::{TargetState, TargetStatus};

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
    context: &ReconcileContext,
    plan: &Plan,
    state: &StateFile,
    first_records: Vec<RecordDraft>,
) -> Result<ApplyReport, Refusal> {
    let mut report = ApplyReport::default();
    let commit = plan.commit.to_string();
    let changed = changed_writes(plan, &commit)?;
    report.unchanged = (plan.writes.len() - changed.len()) as u64;
    let removals = resolved_removals(context, plan, &commit, &mut report);
    let mut records = first_records;
    records.extend(change_records(&commit, &changed, &removals));
    let recorded = context.audit.record(records);
    context.status.report_audit(&context.audit);
    recorded.map_err(|e| {
        refusal(
            &commit,
            state.path(),
            Reason::Audit,
            format!("{e}; no output was written"),
        )
    })?;
    let mut hooks = begin_apply(state, &commit, &changed, &removals, &mut report)?;
    write_outputs(context, &commit, &changed)?;
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
                &commit,
                path,
                Reason::Output,
                format!("removing an output of target {target}: {e}"),
            )
        })?;
        report.removed += 1;
    }
    run_hooks(context, plan.commit, state, hooks, &mut report);
    if let Err(e) = state.finish_apply() {
        report.problems.push(refusal(
            &commit,
            state.path(),
            Reason::Output,
            e.to_string(),
        ));
    }
    Ok(report)
}

fn refusal(commit: &str, path: &Path, reason: Reason, message: String) -> Refusal {
    Refusal {
        commit: Some(commit.to_owned()),
        path: Some(path.display().to_string()),
        reason,
        message,
    }
}

/// The planned writes whose file differs from what is on disk (content, mode or owner).
fn changed_writes<'p>(plan: &'p Plan, commit: &str) -> Result<Vec<&'p PlannedWrite>, Refusal> {
    let differs: Vec<bool> = plan
        .writes
        .par_iter()
        .map(|w| {
            output::in_place(&w.destination, &w.content, w.mode, w.ownership)
                .map(|same| !same)
                .map_err(|e| {
                    refusal(
                        commit,
                        &w.destination,
                        Reason::Output,
                        format!("target {}: {e}", w.target),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(plan
        .writes
        .iter()
        .zip(&differs)
        .filter_map(|(w, d)| d.then_some(w))
        .collect())
}

/// The plan's removals, each re-checked against the allowed roots (none when removed outputs
/// are kept); a path that fails the check is reported and left.
fn resolved_removals<'p>(
    context: &ReconcileContext,
    plan: &'p Plan,
    commit: &str,
    report: &mut ApplyReport,
) -> Vec<(&'p String, PathBuf)> {
    let mut removals = Vec::new();
    if context.removed_outputs != RemovedOutputs::Delete {
        return removals;
    }
    for (target, path) in &plan.removals {
        // The state file is local, but a path is re-checked against the roots before a
        // removal all the same.
        let resolved = match path.to_str().map(|text| context.roots.resolve(text)) {
            Some(Ok(resolved)) => resolved,
            Some(Err(e)) => {
                report.problems.push(refusal(
                    commit,
                    path,
                    Reason::Output,
                    format!(
                        "not removing an output of removed target {target}: {e}; remove it by hand"
                    ),
                ));
                continue;
            }
            None => continue,
        };
        removals.push((target, resolved));
    }
    removals
}

/// A record per output to write or remove.
fn change_records(
    commit: &str,
    changed: &[&PlannedWrite],
    removals: &[(&String, PathBuf)],
) -> Vec<RecordDraft> {
    let mut records = Vec::with_capacity(changed.len() + removals.len());
    for w in changed {
        let mut draft = RecordDraft::new(Event::OutputWritten, AuditOutcome::Ok);
        draft.commit = Some(commit.to_owned());
        draft.path = Some(w.secret.clone());
        draft.keys = w.keys.clone();
        draft.target = Some(w.target.clone());
        draft.identity = Some(w.identity.clone());
        draft.fingerprints = w.fingerprints.clone();
        draft.reason = Some(format!("written to {}", w.destination.display()));
        records.push(draft);
    }
    for (target, path) in removals {
        let mut draft = RecordDraft::new(Event::OutputRemoved, AuditOutcome::Ok);
        draft.commit = Some(commit.to_owned());
        draft.target = Some((*target).clone());
        draft.reason = Some(format!("removed {}", path.display()));
        records.push(draft);
    }
    records
}

/// Records the apply in the state directory before anything is written, with the hooks it
/// will owe; returns those an interrupted apply still owes.
fn begin_apply(
    state: &StateFile,
    commit: &str,
    changed: &[&PlannedWrite],
    removals: &[(&String, PathBuf)],
    report: &mut ApplyReport,
) -> Result<BTreeSet<PendingHook>, Refusal> {
    let owed = match state.interrupted_apply() {
        Ok(owed) => owed.map(|o| o.hooks).unwrap_or_default(),
        Err(e) => {
            report.problems.push(refusal(
                commit,
                state.path(),
                Reason::Output,
                format!("{e}; hooks an interrupted apply owed may not have run"),
            ));
            BTreeSet::new()
        }
    };
    if changed.is_empty() && removals.is_empty() && owed.is_empty() {
        return Ok(owed);
    }
    let record = InProgress {
        commit: commit.to_owned(),
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
            .chain(owed.iter().cloned())
            .collect(),
    };
    state.begin_apply(&record).map_err(|e| {
        refusal(
            commit,
            state.path(),
            Reason::Output,
            format!("{e}; no output is written until the apply can be recorded"),
        )
    })?;
    Ok(owed)
}

/// Files are independent: written in parallel (each one atomically), stopping at the first
/// failure, which leaves the state file at the previous commit so the next reconcile redoes it.
fn write_outputs(
    context: &ReconcileContext,
    commit: &str,
    changed: &[&PlannedWrite],
) -> Result<(), Refusal> {
    changed
        .par_iter()
        .map(|write| {
            context
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
                        commit,
                        &write.destination,
                        Reason::Output,
                        format!("target {}: {e}", write.target),
                    )
                })
        })
        .collect::<Result<Vec<()>, Refusal>>()?;
    Ok(())
}

/// Runs each hook once (those of changed outputs and those an interrupted apply owed) and
/// journals what each did; failures are reported, not fatal.
fn run_hooks(
    context: &ReconcileContext,
    commit: Oid,
    state: &StateFile,
    hooks: BTreeSet<PendingHook>,
    report: &mut ApplyReport,
) {
    let commit_text = commit.to_string();
    let mut hook_records = Vec::new();
    for PendingHook { target, hook: name } in hooks {
        let Some(spec) = context.hooks.get(&name) else {
            report.problems.push(Refusal {
                commit: Some(commit_text.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!(
                    "target {target}: hook {name} (owed by an interrupted apply) is no longer on this controller's allow-list; not run"
                ),
            });
            continue;
        };
        report.hooks_run += 1;
        let result = crate::hooks::run(&name, spec, &target, commit);
        let mut draft = RecordDraft::new(
            Event::HookRun,
            if result.is_ok() {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
        );
        draft.commit = Some(commit_text.clone());
        draft.target = Some(target.clone());
        if let Err(problem) = result {
            draft.reason = Some(format!("hook {name}: {problem}"));
            report.problems.push(Refusal {
                commit: Some(commit_text.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!("target {target}: hook {name}: {problem}"),
            });
        } else {
            draft.reason = Some(format!("hook {name}"));
        }
        hook_records.push(draft);
    }
    let recorded = context.audit.record(hook_records);
    context.status.report_audit(&context.audit);
    if let Err(e) = recorded {
        report.problems.push(refusal(
            &commit_text,
            state.path(),
            Reason::Audit,
            format!("recording hooks: {e}"),
        ));
    }
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
