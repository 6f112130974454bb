//! What the controller reports: the state behind `/status`, `/readyz` and `/metrics`.
//!
//! One [`Status`] is shared (behind an `Arc`) by the reconcile loop, which updates it, and the
//! HTTP endpoints, which read it. Nothing in here ever holds a secret value: only commit ids,
//! paths, target names and reasons.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::audit_sink::SinkLabel;
use crate::refusal::{Reason, Refusal};

/// The commit outputs currently reflect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub commit: String,
    /// When this controller applied it (RFC 3339).
    pub applied_at: String,
    /// The commit's committer time (Unix seconds).
    pub commit_time: i64,
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    InSync,
    Refused,
    /// Its node selector does not match this node.
    NotSelected,
}

/// Whether the audit branch holds only what this controller's own writes explain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditState {
    #[default]
    Ok,
    /// Something only another writer explains (see `tampering`); stays until a restart.
    Tampered,
}

/// One target's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    pub state: TargetState,
    /// Destination files (absolute paths).
    pub outputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last reconcile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastReconcile {
    pub finished_at: String,
    pub duration_seconds: f64,
    /// `applied`, `unchanged` or `refused`.
    pub result: String,
    /// Outputs written (content changed) by it.
    pub outputs_written: u64,
}

/// The audit trail's push state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditStatus {
    pub branch: String,
    /// Records journalled and not yet on the audit branch.
    pub records_waiting: u64,
    /// When the last push attempt finished, and its error if it failed.
    pub last_push_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_push_error: Option<String>,
    pub state: AuditState,
    /// This controller's audit public key (`ed25519:<base64>`).
    pub public_key: String,
    /// Whether the applied commit's `.sealops/controllers.yaml` registers that key.
    pub key_registered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_problem: Option<String>,
    /// Records of this controller's chain the audit branch confirmed (the witness's
    /// `last_seq`).
    pub sealed_records: u64,
    /// The newest seal the branch confirmed: keep it elsewhere and pass it to
    /// `sealops audit verify --witness` to prove the branch was not cut since.
    pub witness: Option<sealops_core::audit::Seal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<crate::audit::Tampering>,
}

/// The document served at `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusDoc {
    pub version: &'static str,
    pub node: String,
    pub branch: String,
    /// The newest commit seen on the branch.
    pub head: Option<String>,
    pub applied: Option<Applied>,
    pub targets: BTreeMap<String, TargetStatus>,
    /// Refusals of the newest reconcile (empty when it applied cleanly).
    pub refusals: Vec<Refusal>,
    /// The most recent refusal or error, kept until a later reconcile applies cleanly.
    pub last_error: Option<Refusal>,
    pub last_reconcile: Option<LastReconcile>,
    pub audit: AuditStatus,
    /// Leases of dynamic credentials and static rotations.
    pub credentials: CredentialsStatus,
}

/// Every lease and static role this controller manages (never a password).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CredentialsStatus {
    pub leases: Vec<LeaseStatus>,
    pub rotations: Vec<RotationStatus>,
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseStatus {
    pub id: String,
    pub target: String,
    /// `active`, `replacing` (new credentials are on their way) or `revoking`.
    pub state: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub max_expires_at: i64,
    /// For `revoking`: the next attempt (Unix seconds), failed attempts and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_after: Option<i64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub revoke_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One static role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationStatus {
    /// `<backend>/static-creds/<role>`.
    pub path: String,
    pub username: String,
    /// The last completed rotation (Unix seconds), if any.
    pub rotated_at: Option<i64>,
    /// The next scheduled rotation (Unix seconds).
    pub next_rotation: Option<i64>,
    /// A rotation recorded and not finished: `recorded` or `changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Labels of `sealops_reconciles_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Labels of `sealops_reconcile_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Reason,
}

/// Labels of `sealops_leases`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Labels of `sealops_lease_operations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
    pub result: String,
}

/// Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    pub reconciles: Family<ResultLabel, Counter>,
    pub failures: Family<ReasonLabel, Counter>,
    pub duration: Histogram,
    pub last_applied_commit_time: Gauge,
    pub last_applied_time: Gauge,
    pub outputs_written: Counter,
    pub outputs_removed: Counter,
    pub hooks_run: Family<ResultLabel, Counter>,
    pub webhooks: Family<ResultLabel, Counter>,
    pub fetches: Family<ResultLabel, Counter>,
    pub audit_pushes: Family<ResultLabel, Counter>,
    pub audit_records_pushed: Counter,
    pub audit_records_waiting: Gauge,
    pub audit_sealed_records: Gauge,
    pub audit_tampered: Gauge,
    pub audit_key_registered: Gauge,
    pub audit_sink_writes: Family<SinkLabel, Counter>,
    pub leases: Family<StateLabel, Gauge>,
    pub lease_operations: Family<OperationLabel, Counter>,
    pub rotations: Family<ResultLabel, Counter>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Self {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            last_applied_commit_time: Gauge::default(),
            last_applied_time: Gauge::default(),
            outputs_written: Counter::default(),
            outputs_removed: Counter::default(),
            hooks_run: Family::default(),
            webhooks: Family::default(),
            fetches: Family::default(),
            audit_pushes: Family::default(),
            audit_records_pushed: Counter::default(),
            audit_records_waiting: Gauge::default(),
            audit_sealed_records: Gauge::default(),
            audit_tampered: Gauge::default(),
            audit_key_registered: Gauge::default(),
            audit_sink_writes: Family::default(),
            leases: Family::default(),
            lease_operations: Family::default(),
            rotations: Family::default(),
            registry: Registry::with_prefix("sealops"),
        };
        // Registered in this order, the order of the text exposition.
        metrics.register_reconcile_metrics();
        metrics.register_audit_metrics();
        metrics.register_credential_metrics();
        metrics
    }

    /// Reconciles, what they wrote and ran, and what triggered them.
    fn register_reconcile_metrics(&mut self) {
        self.registry.register(
            "reconciles",
            "Reconciles by result (applied, unchanged, refused)",
            self.reconciles.clone(),
        );
        self.registry.register(
            "reconcile_failures",
            "Refused commits and failed reconciles by reason",
            self.failures.clone(),
        );
        self.registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            self.duration.clone(),
        );
        self.registry.register(
            "last_applied_commit_timestamp_seconds",
            "Committer time of the applied commit",
            self.last_applied_commit_time.clone(),
        );
        self.registry.register(
            "last_applied_timestamp_seconds",
            "When the applied commit was applied",
            self.last_applied_time.clone(),
        );
        self.registry.register(
            "outputs_written",
            "Output files whose content changed",
            self.outputs_written.clone(),
        );
        self.registry.register(
            "outputs_removed",
            "Output files removed with their target",
            self.outputs_removed.clone(),
        );
        self.registry
            .register("hook_runs", "Hooks run by result", self.hooks_run.clone());
        self.registry.register(
            "webhooks",
            "Webhook requests by result (accepted, rejected)",
            self.webhooks.clone(),
        );
        self.registry.register(
            "fetches",
            "Fetches of the remote by result",
            self.fetches.clone(),
        );
    }

    fn register_audit_metrics(&mut self) {
        self.registry.register(
            "audit_pushes",
            "Pushes of the audit branch by result (ok, failed)",
            self.audit_pushes.clone(),
        );
        self.registry.register(
            "audit_lines_pushed",
            "Audit lines (records and seals) pushed to the audit branch",
            self.audit_records_pushed.clone(),
        );
        self.registry.register(
            "audit_records_waiting",
            "Audit records journalled and not yet pushed",
            self.audit_records_waiting.clone(),
        );
        self.registry.register(
            "audit_sealed_records",
            "Records of this controller's audit chain confirmed on the audit branch (the sequence number of its newest pushed seal)",
            self.audit_sealed_records.clone(),
        );
        self.registry.register(
            "audit_tampered",
            "Kinds of tampering with this controller's audit trail seen since start-up (0: none)",
            self.audit_tampered.clone(),
        );
        self.registry.register(
            "audit_key_registered",
            "1 when the applied commit's .sealops/controllers.yaml registers this controller's audit key",
            self.audit_key_registered.clone(),
        );
        self.registry.register(
            "audit_sink_writes",
            "Groups of audit lines written to each audit sink (audit.sinks) by result (ok, failed)",
            self.audit_sink_writes.clone(),
        );
    }

    /// Leases of dynamic credentials and rotations of static ones.
    fn register_credential_metrics(&mut self) {
        self.registry.register(
            "leases",
            "Leases of dynamic credentials by state (active, replacing, revoking, revoke-failing)",
            self.leases.clone(),
        );
        self.registry.register(
            "lease_operations",
            "Lease operations (issue, renew, revoke) by result (ok, failed)",
            self.lease_operations.clone(),
        );
        self.registry.register(
            "rotations",
            "Static password rotations by result (ok, failed)",
            self.rotations.clone(),
        );
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn count(family: &Family<ResultLabel, Counter>, result: &str) {
        family
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }
}

/// Shared state of one controller.
#[derive(Debug)]
pub struct Status {
    doc: Mutex<StatusDoc>,
    ready: AtomicBool,
    audit_tampered: AtomicBool,
    block_on_tamper: AtomicBool,
    pub metrics: Metrics,
}

impl Status {
    pub fn new(node: &str, branch: &str) -> Self {
        Self {
            doc: Mutex::new(StatusDoc {
                version: crate::VERSION,
                node: node.to_owned(),
                branch: branch.to_owned(),
                ..StatusDoc::default()
            }),
            ready: AtomicBool::new(false),
            audit_tampered: AtomicBool::new(false),
            block_on_tamper: AtomicBool::new(false),
            metrics: Metrics::new(),
        }
    }

    /// A copy of the status document.
    pub fn snapshot(&self) -> StatusDoc {
        self.doc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the status document.
    pub fn update(&self, change: impl FnOnce(&mut StatusDoc)) {
        change(&mut self.doc.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Reports the audit trail as it stands: the branch its records go to and the records
    /// waiting in the journal (`/status` `audit` and `sealops_audit_records_waiting`). Called
    /// after every record and every push, so neither is stale while records wait for a push.
    pub fn report_audit(&self, audit: &crate::audit::Audit) {
        // Read before the document's lock is taken: /status never waits on the journal.
        let (branch, waiting) = (audit.branch(), audit.waiting());
        let report = audit.report();
        let witness = report.witness.as_ref().and_then(|w| w.seal());
        let sealed = witness.as_ref().map_or(0, |w| w.seal.last_seq);
        self.metrics.audit_records_waiting.set(waiting as i64);
        self.metrics.audit_sealed_records.set(sealed as i64);
        self.metrics
            .audit_tampered
            .set(report.tampering.len() as i64);
        self.metrics
            .audit_key_registered
            .set(i64::from(report.key_registered == Some(true)));
        self.audit_tampered
            .store(!report.tampering.is_empty(), Ordering::SeqCst);
        self.update(|doc| {
            doc.audit.branch = branch;
            doc.audit.records_waiting = waiting as u64;
            doc.audit.state = if report.tampering.is_empty() {
                AuditState::Ok
            } else {
                AuditState::Tampered
            };
            doc.audit.public_key = report.public_key;
            doc.audit.key_registered = report.key_registered;
            doc.audit.registration_problem = report.registration_problem;
            doc.audit.sealed_records = sealed;
            doc.audit.witness = witness;
            doc.audit.tampering = report.tampering;
        });
    }

    /// Ready once the first reconcile finished (applied or refused, either way it reported).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why `/readyz` fails although the first reconcile finished: the audit branch was
    /// tampered with and `audit.on_tamper` is `block`.
    pub fn blocked_by_tampering(&self) -> bool {
        self.block_on_tamper.load(Ordering::SeqCst) && self.audit_tampered.load(Ordering::SeqCst)
    }

    /// `audit.on_tamper: block`.
    pub fn set_block_on_tamper(&self, block: bool) {
        self.block_on_tamper.store(block, Ordering::SeqCst);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_labels_are_the_status_reason_names() {
        let metrics = Metrics::new();
        for reason in [
            Reason::Verification,
            Reason::Authorisation,
            Reason::Schema,
            Reason::Decryption,
            Reason::Policy,
            Reason::Output,
            Reason::Hook,
            Reason::ForcePush,
            Reason::Fetch,
            Reason::Repository,
            Reason::Audit,
            Reason::Database,
        ] {
            let name = serde_json::to_value(reason).expect("serialises");
            assert_eq!(name, reason.as_str());
            metrics
                .failures
                .get_or_create(&ReasonLabel { reason })
                .inc();
            let label = format!(
                "sealops_reconcile_failures_total{{reason=\"{}\"}} 1",
                reason.as_str()
            );
            assert!(metrics.encode().contains(&label), "{}", metrics.encode());
        }
    }
}
