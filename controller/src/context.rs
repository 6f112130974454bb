//! What the reconcile carries from one commit to the next: local configuration, identities,
//! opened sessions, parsed targets, the one-writer index, the audit journal and credentials.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use git2::Oid;
use sealops_core::controller_config::RemovedOutputs;
use sealops_core::keys::AgeIdentities;
use sealops_core::seal::EnvelopeCache;
use sealops_core::target::Target;

use crate::audit::Audit;
use crate::creds::Creds;
use crate::hooks::HookSpec;
use crate::output::OutputRoots;
use crate::state::AppliedState;
use crate::status::Status;

/// What stays the same from one reconcile to the next: local configuration, identities and
/// the session keys opened so far.
#[derive(Debug)]
pub struct ReconcileContext {
    pub roots: OutputRoots,
    pub node_labels: BTreeMap<String, String>,
    pub hooks: BTreeMap<String, HookSpec>,
    pub identities: Arc<AgeIdentities>,
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

    /// A plan of `commit` was applied on top of `before`: only the targets it planned
    /// (`outputs`, with their destinations) and `dropped` change.
    pub fn applied(
        &mut self,
        before: Option<&AppliedState>,
        commit: Oid,
        outputs: &BTreeMap<String, Vec<PathBuf>>,
        dropped: &[String],
    ) {
        if self.commit.as_deref() != before.map(|b| b.commit.as_str()) {
            self.commit = None; // rebuilt from the state on the next plan
            return;
        }
        for name in outputs.keys().chain(dropped) {
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
        for (name, paths) in outputs {
            for path in paths {
                self.by_path.insert(path.clone(), name.clone());
            }
        }
        self.commit = Some(commit.to_string());
    }
}
