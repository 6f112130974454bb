//! Database credentials in outputs: leases of dynamic roles and static roles' rotated passwords.
//!
//! Two places use them, and only the reconcile writes outputs:
//! - The plan asks [`Creds::values`] for an output's `username` and `password`: the target's
//!   current lease (or a new one, issued now), or a static role's current password (rotated now
//!   if it never was).
//! - The lease task ([`Creds::tick`], beside the reconcile loop) renews leases at about
//!   two-thirds of their life, marks for replacement those that cannot be renewed far enough,
//!   revokes replaced, dropped and expired ones (retrying with backoff), and rotates static
//!   roles on schedule. Whenever a target's credentials change the target is marked dirty and the
//!   reconcile loop is woken, and the reconcile renders it again.
//!
//! A credential is in the store (its password sealed to the controller's own identity) before
//! the database has it, and leaves the store only after the database confirmed the revocation,
//! so a restart knows every user it created. A replaced lease is revoked only after the apply
//! that wrote its successor, plus a grace period for consumers to reload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use sealops_core::audit::{Event, Outcome as AuditOutcome, RecordDraft};
use sealops_core::backend::{Backend, DynamicRole, RotationTarget, StaticRole};
use sealops_core::backend::{CredentialKind, Credentials};
use sealops_core::keys::{AgeIdentities, Recipient, open_sealed, seal_to};
use sealops_core::secret::SecretValue;
use sha2::Digest as _;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::audit::Audit;
use crate::dbs::{Admin, Database as _, Driver};
use crate::leases::{Lease, LeaseState, LeaseStore, Renewal, StaticCredential};
use crate::rotation::{self, PendingRotation, Step};
use crate::status::{
    CredentialsStatus, LeaseStatus, Metrics, OperationLabel, RotationStatus, StateLabel, Status,
};

/// A backend of the applied commit with its admin password opened, and its driver.
pub struct Connected {
    pub backend: Backend,
    admin: SecretValue,
    pub driver: Arc<Driver>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("backend", &self.backend.name)
            .finish_non_exhaustive()
    }
}

pub use sealops_core::clock::unix_now;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Spreads renewals of leases issued together: a fixed fraction per lease id.
fn jitter(id: &str) -> f64 {
    let digest = sha2::Sha256::digest(id.as_bytes());
    f64::from(digest[0]) / 255.0
}

/// The leases and rotations of one controller.
pub struct Creds {
    pub store: Arc<LeaseStore>,
    own: Recipient,
    identities: Arc<AgeIdentities>,
    connected: Mutex<BTreeMap<String, Arc<Connected>>>,
    /// A plan has loaded the backends (until then nothing is revoked: its driver is unknown).
    loaded: AtomicBool,
    /// The last reconcile applied (or found nothing to do): outputs can follow a rotation.
    applying: AtomicBool,
    /// Targets and static roles (`<backend>/static-creds/<role>`) whose outputs must be
    /// rendered again.
    /// Each with the generation it was marked at: a mark made while a plan ran survives that
    /// plan's [`Creds::clean`].
    dirty: Mutex<BTreeMap<String, u64>>,
    generation: std::sync::atomic::AtomicU64,
    /// Wakes the reconcile loop.
    pub wake: Arc<Notify>,
    /// Wakes the lease task (leases retired by an apply are revoked now, not at its next pass).
    pub task_wake: Arc<Notify>,
    grace: Duration,
    audit: Arc<Audit>,
    status: Arc<Status>,
    /// One rotation at a time: the plan and the lease task may both want one.
    rotating: tokio::sync::Mutex<()>,
    /// Why the last renewal or rotation of a lease or role failed.
    errors: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Revocations in flight at once (the benchmark: 16 revoke 1,000 leases in about a second on
/// each of the three databases, the lease store's commits being the limit).
const REVOKE_CONCURRENCY: usize = 16;

/// Values by key: of one manifest, or of one credentials output.
pub type Values = BTreeMap<String, SecretValue>;

impl Creds {
    pub fn new(
        store: LeaseStore,
        identities: Arc<AgeIdentities>,
        grace: Duration,
        audit: Arc<Audit>,
        status: Arc<Status>,
    ) -> Option<Self> {
        let own = identities.iter().next()?.recipient().clone();
        Some(Self {
            store: Arc::new(store),
            own,
            identities,
            connected: Mutex::default(),
            loaded: AtomicBool::new(false),
            applying: AtomicBool::new(false),
            dirty: Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            task_wake: Arc::new(Notify::new()),
            grace,
            audit,
            status,
            rotating: tokio::sync::Mutex::new(()),
            errors: Mutex::default(),
        })
    }

    /// The backend `name` with its admin password: the connected one when nothing changed
    /// (its connections are kept), else a new driver. After `rotate-root` the password the
    /// controller set replaces the one sealed in the repository.
    pub fn connect(&self, backend: Backend, admin: SecretValue) -> Arc<Connected> {
        let admin = self
            .store
            .get_static(&root_id(&backend.name))
            .ok()
            .flatten()
            .filter(|root| root.username == backend.connection.username)
            .and_then(|root| open_sealed(&self.identities, &root.sealed_password))
            .unwrap_or(admin);
        let mut connected = self.connected.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = connected.get(&backend.name)
            && existing.backend == backend
            && existing.admin.expose() == admin.expose()
        {
            return existing.clone();
        }
        let driver = Arc::new(Driver::new(
            &backend,
            Admin::from_backend(&backend, admin.clone()),
        ));
        let fresh = Arc::new(Connected {
            backend,
            admin,
            driver,
        });
        connected.insert(fresh.backend.name.clone(), fresh.clone());
        fresh
    }

    /// Whether reconciles apply: scheduled rotations wait while they fail.
    pub fn set_applying(&self, applying: bool) {
        self.applying.store(applying, Ordering::SeqCst);
    }

    /// Every backend of the planned commit was connected.
    pub fn loaded(&self) {
        self.loaded.store(true, Ordering::SeqCst);
    }

    fn backend(&self, name: &str) -> Option<Arc<Connected>> {
        self.connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Call after the store shows the change: the reconcile it wakes reads the store.
    fn mark_dirty(&self, what: String) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what, generation);
        self.wake.notify_one();
    }

    /// Targets and static roles to render again, with their generations.
    pub fn dirty(&self) -> BTreeMap<String, u64> {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `rendered` (as [`Creds::dirty`] gave them to a plan) reached the outputs; marks made
    /// since stay.
    pub fn clean(&self, rendered: &BTreeMap<String, u64>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        dirty.retain(|what, generation| rendered.get(what) != Some(generation));
    }

    fn record(&self, draft: RecordDraft) {
        if let Err(e) = self.audit.record(vec![draft]) {
            tracing::error!(error = %e, "cannot journal a credentials record");
        }
        self.status.report_audit(&self.audit);
    }

    fn count(&self, operation: &str, ok: bool) {
        self.status
            .metrics
            .lease_operations
            .get_or_create(&OperationLabel {
                operation: operation.to_owned(),
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    fn draft(event: Event, outcome: AuditOutcome, path: &str, target: Option<&str>) -> RecordDraft {
        let mut draft = RecordDraft::new(event, outcome);
        draft.path = Some(path.to_owned());
        draft.target = target.map(str::to_owned);
        draft
    }

    /// The `username` and `password` an output of `target` shows for `credentials`, from
    /// `connected`. Blocks on the runtime for database work (the plan runs on a blocking thread).
    pub async fn obtain(
        &self,
        target: &str,
        credentials: &Credentials,
        connected: &Arc<Connected>,
    ) -> Result<(Values, Option<String>), String> {
        match credentials.kind {
            CredentialKind::Dynamic => {
                let role = connected
                    .backend
                    .dynamic_role(&credentials.role)
                    .ok_or_else(|| format!("{} is not a dynamic role", credentials.path()))?
                    .clone();
                let (username, password, id) = self
                    .current_lease(target, connected, credentials, &role)
                    .await?;
                Ok((pair(username, password), Some(id)))
            }
            CredentialKind::Static => {
                let role = connected
                    .backend
                    .static_role(&credentials.role)
                    .ok_or_else(|| format!("{} is not a static role", credentials.path()))?
                    .clone();
                let (username, password) = self
                    .current_static(connected, &credentials.path(), &role)
                    .await?;
                Ok((pair(username, password), None))
            }
        }
    }

    /// The newest usable lease of `target` for the role, else a new one.
    async fn current_lease(
        &self,
        target: &str,
        connected: &Arc<Connected>,
        credentials: &Credentials,
        role: &DynamicRole,
    ) -> Result<(String, SecretValue, String), String> {
        let now = unix_now();
        let prefix = format!("{}/", credentials.path());
        let leases = self.store.list(&prefix).map_err(|e| e.to_string())?;
        let current = leases
            .iter()
            .filter(|l| {
                l.target == target
                    && l.state == LeaseState::Active
                    && !l.replace
                    && l.expires_at > now
            })
            .max_by_key(|l| l.issued_at);
        if let Some(lease) = current {
            if let Some(password) = open_sealed(&self.identities, &lease.sealed_password) {
                return Ok((lease.username.clone(), password, lease.id.clone()));
            }
            tracing::warn!(
                lease = lease.id,
                "a lease's password does not open with this controller's identities; issuing new credentials"
            );
        }
        self.issue(target, connected, credentials, role, now).await
    }

    async fn issue(
        &self,
        target: &str,
        connected: &Arc<Connected>,
        credentials: &Credentials,
        role: &DynamicRole,
        now: i64,
    ) -> Result<(String, SecretValue, String), String> {
        let backend = &connected.backend;
        let username = role.username_template().render(
            &credentials.role,
            &backend.name,
            backend.plugin.username_limit(),
            now as u64,
        )?;
        let password = role.password_policy.generate();
        let lease = Lease::issued(
            &backend.name,
            &credentials.role,
            &username,
            target,
            now,
            role.default_ttl(),
            role.max_ttl(),
            seal_to(&self.own, &password),
        );
        // Known before it exists: a crash after the database created the user still leaves a
        // lease to revoke it. `Issuing` until the database answered, so a crash before then
        // never hands out credentials that may not exist (the lease is revoked instead).
        let mut lease = lease;
        lease.state = LeaseState::Issuing;
        self.store.put(&lease).map_err(|e| e.to_string())?;
        match connected
            .driver
            .create(role, &username, &password, at(lease.expires_at))
            .await
        {
            Ok(()) => {
                let stored = self
                    .store
                    .update(&lease.id, |l| {
                        let issuing = l.state == LeaseState::Issuing;
                        if issuing {
                            l.state = LeaseState::Active;
                        }
                        issuing
                    })
                    .map_err(|e| e.to_string())?;
                if stored.is_none_or(|l| l.state != LeaseState::Active) {
                    return Err(format!(
                        "issuing {}: the lease was revoked while the database created the user",
                        credentials.path()
                    ));
                }
                self.count("issue", true);
                // Its renewal is due before the lease task's next planned pass.
                self.task_wake.notify_one();
                self.record(Self::draft(
                    Event::LeaseIssued,
                    AuditOutcome::Ok,
                    &lease.id,
                    Some(target),
                ));
                Ok((username, password, lease.id))
            }
            Err(e) => {
                self.count("issue", false);
                let problem = format!("issuing {}: {e}", credentials.path());
                let mut draft = Self::draft(
                    Event::LeaseIssued,
                    AuditOutcome::Failed,
                    &lease.id,
                    Some(target),
                );
                draft.reason = Some(problem.clone());
                self.record(draft);
                // Whatever part of the user exists is dropped by the revoker (if this write
                // fails, the lease stays `Issuing` and is revoked after ISSUING_TIMEOUT).
                let _ = self.store.update(&lease.id, |l| {
                    l.state = LeaseState::Revoking;
                    l.revoke_after = now;
                    true
                });
                Err(problem)
            }
        }
    }

    /// The password a static role's account has now: finishing a rotation a crash
    /// interrupted, or rotating for the first time.
    async fn current_static(
        &self,
        connected: &Arc<Connected>,
        id: &str,
        role: &StaticRole,
    ) -> Result<(String, SecretValue), String> {
        let _one = self.rotating.lock().await;
        if let Some(pending) = self.pending_rotation(id)? {
            self.finish_rotation(connected, role, pending).await?;
        }
        if let Some(current) = self.store.get_static(id).map_err(|e| e.to_string())?
            && current.username == role.username
            && let Some(password) = open_sealed(&self.identities, &current.sealed_password)
        {
            return Ok((current.username, password));
        }
        self.rotate_locked(connected, id, role).await?;
        let current = self
            .store
            .get_static(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id}: rotated, but the store has no password"))?;
        let password = open_sealed(&self.identities, &current.sealed_password)
            .ok_or_else(|| format!("{id}: the stored password does not open"))?;
        Ok((current.username, password))
    }

    fn pending_rotation(&self, id: &str) -> Result<Option<PendingRotation>, String> {
        Ok(rotation::pending(&self.store)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|p| p.id == id))
    }

    /// Rotates `id` now (`sealops rotate`, or on schedule): a static role
    /// (`<backend>/static-creds/<role>`) or a backend's admin (`<backend>/rotate-root`).
    pub async fn rotate(&self, id: &str) -> Result<(), String> {
        let target = RotationTarget::parse(id)?;
        let connected = self.backend(target.backend()).ok_or_else(|| {
            format!(
                "backend {:?} is not in the applied commit (backends/{}.yaml)",
                target.backend(),
                target.backend()
            )
        })?;
        let role = match &target {
            RotationTarget::Static { backend, role } => connected
                .backend
                .static_role(role)
                .ok_or_else(|| format!("{id}: backend {backend} has no static role {role:?}"))?
                .clone(),
            RotationTarget::Root { .. } => admin_role(&connected.backend),
        };
        let _one = self.rotating.lock().await;
        if let Some(pending) = self.pending_rotation(id)? {
            self.finish_rotation(&connected, &role, pending).await?;
        }
        self.rotate_locked(&connected, id, &role).await
    }

    async fn rotate_locked(
        &self,
        connected: &Arc<Connected>,
        id: &str,
        role: &StaticRole,
    ) -> Result<(), String> {
        let password = role.password_policy.generate();
        self.record(Self::draft(
            Event::RotationStarted,
            AuditOutcome::Ok,
            id,
            None,
        ));
        let pending = rotation::record(&self.store, &self.own, id, &role.username, &password)
            .map_err(|e| e.to_string())?;
        self.finish_rotation(connected, role, pending).await
    }

    /// Finishes a recorded rotation: the database gets the password, then it becomes the
    /// role's current password (durable), then the outputs holding it are rendered again.
    async fn finish_rotation(
        &self,
        connected: &Arc<Connected>,
        role: &StaticRole,
        pending: PendingRotation,
    ) -> Result<(), String> {
        let id = pending.id.clone();
        let current = StaticCredential {
            id: id.clone(),
            username: pending.username.clone(),
            sealed_password: pending.sealed_password.clone(),
            rotated_at: unix_now(),
        };
        let store = &self.store;
        let root = id == root_id(&connected.backend.name);
        let result = rotation::finish(
            connected.driver.as_ref(),
            role,
            store,
            &self.identities,
            pending,
            |password| {
                store.put_static(&current).map_err(|e| e.to_string())?;
                if root {
                    // From now on the driver logs in with the password only we know.
                    self.connect(connected.backend.clone(), password.clone());
                } else {
                    self.mark_dirty(id.clone());
                }
                Ok(())
            },
        )
        .await
        .map_err(|e| e.to_string());
        Metrics::count(
            &self.status.metrics.rotations,
            if result.is_ok() { "ok" } else { "failed" },
        );
        let mut draft = Self::draft(
            Event::RotationCompleted,
            if result.is_ok() {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
            &id,
            None,
        );
        draft.reason = result.as_ref().err().cloned();
        self.record(draft);
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => errors.remove(&id),
            Err(e) => errors.insert(id.clone(), e.clone()),
        };
        result
    }

    /// After an apply: the leases the plan rendered are the targets' current ones. Leases of
    /// planned targets that were replaced are revoked after the grace period; leases no applied
    /// target wants (a dropped target or output, or a target whose plan was refused and which
    /// is gone since) at once.
    pub fn applied(
        &self,
        planned: &BTreeSet<String>,
        applied_targets: &BTreeSet<String>,
        used: &BTreeMap<String, BTreeSet<String>>,
    ) {
        let Ok(leases) = self.store.list("") else {
            return;
        };
        let now = unix_now();
        for lease in leases {
            if lease.state != LeaseState::Active {
                continue;
            }
            let target_planned = planned.contains(&lease.target);
            let gone = !applied_targets.contains(&lease.target);
            if !gone && !target_planned {
                continue;
            }
            let used_by_target = used.get(&lease.target);
            if used_by_target.is_some_and(|ids| ids.contains(&lease.id)) {
                continue;
            }
            let role_path = format!("{}/creds/{}", lease.backend, lease.role);
            let still_wanted = !gone
                && used_by_target.is_some_and(|ids| {
                    ids.iter()
                        .any(|id| id.starts_with(&format!("{role_path}/")))
                });
            let revoke_after = if still_wanted {
                now + self.grace.as_secs() as i64
            } else {
                now
            };
            let retired = self.store.update(&lease.id, |l| {
                let active = l.state == LeaseState::Active;
                if active {
                    l.state = LeaseState::Revoking;
                    l.revoke_after = revoke_after;
                }
                active
            });
            if let Err(e) = retired {
                tracing::warn!(error = %e, "cannot retire a lease");
            }
            self.task_wake.notify_one();
        }
    }

    /// One pass of the lease task at `now`: renewals, replacements, revocations, due
    /// rotations. Returns how long to sleep before the next pass.
    pub async fn tick(&self) -> Duration {
        let now = unix_now();
        let mut next = now + 60;
        let leases = match self.store.list("") {
            Ok(leases) => leases,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the lease store");
                return Duration::from_secs(1);
            }
        };
        for lease in &leases {
            if lease.state != LeaseState::Active || lease.replace {
                continue;
            }
            let Some(connected) = self.backend(&lease.backend) else {
                continue;
            };
            let Some(role) = connected.backend.dynamic_role(&lease.role) else {
                continue;
            };
            match lease.renewal(now, role.default_ttl(), jitter(&lease.id)) {
                Renewal::Wait(when) => next = next.min(when),
                Renewal::Extend(until) => {
                    // A failure is retried at the next pass, until the lease expires.
                    let _ = self.renew(&connected, role, lease, until).await;
                    next = next.min(now + 1);
                }
                Renewal::Reissue | Renewal::Expired => {
                    let marked = self.store.update(&lease.id, |l| {
                        let mark = l.state == LeaseState::Active && !l.replace;
                        if mark {
                            l.replace = true;
                        }
                        mark
                    });
                    if marked.is_ok_and(|l| l.is_some_and(|l| l.replace)) {
                        self.mark_dirty(lease.target.clone());
                    }
                }
            }
            next = next.min(lease.expires_at);
        }
        if self.loaded.load(Ordering::SeqCst) {
            self.revoke_due(now).await;
            self.rotate_due(now).await;
        }
        self.publish();
        let soonest = self
            .store
            .list("")
            .map(|all| {
                all.iter()
                    .filter(|l| l.state == LeaseState::Revoking)
                    .map(|l| l.revoke_after)
                    .min()
                    .unwrap_or(i64::MAX)
            })
            .unwrap_or(now + 1);
        let wake_at = next.min(soonest).max(now + 1);
        Duration::from_secs((wake_at - now).clamp(1, 60) as u64)
    }

    async fn renew(
        &self,
        connected: &Connected,
        role: &DynamicRole,
        lease: &Lease,
        until: i64,
    ) -> Result<(), String> {
        let result = connected
            .driver
            .renew(role, &lease.username, at(until))
            .await
            .map_err(|e| format!("renewing {}: {e}", lease.id));
        self.count("renew", result.is_ok());
        let mut draft = Self::draft(
            Event::LeaseRenewed,
            if result.is_ok() {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
            &lease.id,
            Some(&lease.target),
        );
        draft.reason = result.as_ref().err().cloned();
        self.record(draft);
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => {
                errors.remove(&lease.id);
                drop(errors);
                // Only a lease still active: it may have been retired meanwhile.
                self.store
                    .update(&lease.id, |l| {
                        let active = l.state == LeaseState::Active;
                        if active {
                            l.expires_at = until.max(l.expires_at).min(l.max_expires_at);
                            l.last_error = None;
                        }
                        active
                    })
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => {
                tracing::warn!(lease = lease.id, error = %e, "renewal failed; retried until the lease expires, then replaced");
                errors.insert(lease.id.clone(), e.clone());
            }
        }
        result
    }

    /// Revokes the leases due now, if the backends are loaded (`run --once`).
    pub async fn revoke_due_now(&self) {
        if self.loaded.load(Ordering::SeqCst) {
            self.revoke_due(unix_now()).await;
            self.publish();
        }
    }

    /// Revokes the leases due now; a failure is retried with backoff.
    async fn revoke_due(&self, now: i64) {
        let due = match self.store.revocations_due(now) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the lease store");
                return;
            }
        };
        for lease in &due {
            if lease.state == LeaseState::Active {
                // Expired in place: the target needs new credentials.
                self.mark_dirty(lease.target.clone());
            }
        }
        self.revoke(due, now).await;
    }

    /// Revokes `leases` (a sweep with bounded concurrency), counts and records each answer;
    /// returns the ids revoked and the problems of the rest (kept, with their backoff).
    async fn revoke(&self, leases: Vec<Lease>, now: i64) -> (Vec<String>, Vec<String>) {
        if leases.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let report = crate::revoke::sweep(&self.store, leases, now, REVOKE_CONCURRENCY, |lease| {
            let connected = self.backend(&lease.backend)?;
            let role = connected.backend.dynamic_role(&lease.role)?.clone();
            Some((connected.driver.clone(), role))
        })
        .await;
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "cannot record revocations; they are retried");
                return (Vec::new(), vec![e.to_string()]);
            }
        };
        let mut drafts = Vec::new();
        for lease in &report.revoked {
            self.count("revoke", true);
            drafts.push(Self::draft(
                Event::LeaseRevoked,
                AuditOutcome::Ok,
                &lease.id,
                Some(&lease.target),
            ));
        }
        for failed in &report.failed {
            self.count("revoke", false);
            tracing::warn!(lease = failed.lease.id, error = %failed.problem, "revocation failed; retried with backoff");
            let mut draft = Self::draft(
                Event::LeaseRevoked,
                AuditOutcome::Failed,
                &failed.lease.id,
                Some(&failed.lease.target),
            );
            draft.reason = Some(failed.problem.clone());
            drafts.push(draft);
        }
        if let Err(e) = self.audit.record(drafts) {
            tracing::error!(error = %e, "cannot journal revocation records");
        }
        self.status.report_audit(&self.audit);
        (
            report.revoked.into_iter().map(|l| l.id).collect(),
            report
                .failed
                .into_iter()
                .map(|f| format!("{}: {}", f.lease.id, f.problem))
                .collect(),
        )
    }

    /// Rotations a crash left unfinished, and static roles whose schedule is due.
    async fn rotate_due(&self, now: i64) {
        let connected: Vec<Arc<Connected>> = self
            .connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let statics: BTreeMap<String, StaticCredential> = match self.store.statics() {
            Ok(all) => all.into_iter().map(|c| (c.id.clone(), c)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the static roles");
                return;
            }
        };
        let pending: BTreeMap<String, PendingRotation> = match rotation::pending(&self.store) {
            Ok(all) => all.into_iter().map(|p| (p.id.clone(), p)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the recorded rotations");
                return;
            }
        };
        for connected in connected {
            for (name, role) in &connected.backend.roles {
                let sealops_core::backend::Role::Static(role) = role else {
                    continue;
                };
                let id = format!("{}/static-creds/{name}", connected.backend.name);
                // Only roles in use: one a target rendered (its first rotation happened then),
                // or one a crash interrupted. A role no output reads is never touched, so an
                // account whose target is not merged yet (or selects another node) keeps its
                // password. Scheduled rotations also wait while reconciles fail: the outputs
                // could not follow.
                let scheduled = self.applying.load(Ordering::SeqCst)
                    && next_rotation(role, statics.get(&id)).is_some_and(|when| when <= now);
                if !pending.contains_key(&id) && !scheduled {
                    continue;
                }
                let _one = self.rotating.lock().await;
                let result = match self.pending_rotation(&id) {
                    Ok(Some(pending)) => self.finish_rotation(&connected, role, pending).await,
                    // Still due now that no one else rotates (the plan or the API may have)?
                    Ok(None)
                        if next_rotation(
                            role,
                            self.store.get_static(&id).ok().flatten().as_ref(),
                        )
                        .is_none_or(|when| when > now) =>
                    {
                        Ok(())
                    }
                    Ok(None) => self.rotate_locked(&connected, &id, role).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(role = id, error = %e, "rotation failed; retried at the next pass");
                }
            }
            // A rotate-root a crash interrupted: finished with the old admin password's driver
            // (or, if the database already has the new one, by logging in with it).
            let root = root_id(&connected.backend.name);
            if pending.contains_key(&root) {
                let _one = self.rotating.lock().await;
                if let Ok(Some(pending)) = self.pending_rotation(&root) {
                    let role = admin_role(&connected.backend);
                    if let Err(e) = self.finish_rotation(&connected, &role, pending).await {
                        tracing::warn!(backend = connected.backend.name, error = %e, "rotate-root failed; retried at the next pass");
                    }
                }
            }
        }
    }

    /// Renews the leases selected now (`sealops lease renew`) by their role's TTL.
    pub async fn renew_now(&self, selected: Vec<Lease>) -> Result<Vec<Lease>, String> {
        let now = unix_now();
        let mut renewed = Vec::new();
        for lease in selected {
            if lease.state != LeaseState::Active {
                continue;
            }
            let connected = self.backend(&lease.backend).ok_or_else(|| {
                format!("{}: backend {:?} is not loaded", lease.id, lease.backend)
            })?;
            let role = connected
                .backend
                .dynamic_role(&lease.role)
                .ok_or_else(|| format!("{}: no dynamic role {:?}", lease.id, lease.role))?
                .clone();
            let until = (now + role.default_ttl().as_secs() as i64).min(lease.max_expires_at);
            self.renew(&connected, &role, &lease, until).await?;
            if let Ok(Some(stored)) = self.store.get(&lease.id) {
                renewed.push(stored);
            }
        }
        self.publish();
        Ok(renewed)
    }

    /// Revokes the leases selected now (`sealops lease revoke`); their targets get new
    /// credentials at the next reconcile.
    pub async fn revoke_now(&self, selected: Vec<Lease>) -> Result<Vec<String>, String> {
        let now = unix_now();
        let mut retiring = Vec::with_capacity(selected.len());
        let mut targets = BTreeSet::new();
        for lease in selected {
            if lease.state == LeaseState::Active {
                targets.insert(lease.target.clone());
            }
            let stored = self
                .store
                .update(&lease.id, |l| {
                    l.state = LeaseState::Revoking;
                    l.revoke_after = now;
                    true
                })
                .map_err(|e| e.to_string())?;
            retiring.extend(stored);
        }
        // Only now that no lease of theirs is current: a reconcile woken earlier would render
        // the old credentials again.
        for target in targets {
            self.mark_dirty(target);
        }
        let (revoked, failures) = self.revoke(retiring, now).await;
        self.publish();
        if failures.is_empty() {
            Ok(revoked)
        } else {
            Err(format!(
                "revoked {}; {} failed and are retried with backoff: {}",
                revoked.len(),
                failures.len(),
                failures.join("; ")
            ))
        }
    }

    /// Answers a command of the local API.
    pub async fn answer(&self, command: crate::api::Command) {
        use crate::api::{Command, Selector};
        let select = |selector: &Selector| -> Result<Vec<Lease>, String> {
            let (prefix, exact) = match selector {
                Selector::Id(id) => (id.as_str(), true),
                Selector::Prefix(prefix) => (prefix.as_str(), false),
            };
            let found = self.store.list(prefix).map_err(|e| e.to_string())?;
            Ok(found
                .into_iter()
                .filter(|l| !exact || l.id == prefix)
                .collect())
        };
        match command {
            Command::Renew { selector, reply } => {
                let result = match select(&selector) {
                    Ok(leases) => self.renew_now(leases).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::Revoke { selector, reply } => {
                let result = match select(&selector) {
                    Ok(leases) => self.revoke_now(leases).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::Rotate { path, reply } => {
                let _ = reply.send(self.rotate(&path).await);
                self.publish();
            }
        }
    }

    /// Updates `/status` and the lease gauges from the store.
    pub fn publish(&self) {
        let Ok(leases) = self.store.list("") else {
            return;
        };
        let statics = self.store.statics().unwrap_or_default();
        let pending = rotation::pending(&self.store).unwrap_or_default();
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut counts: BTreeMap<&str, i64> = [
            ("active", 0),
            ("replacing", 0),
            ("revoking", 0),
            ("revoke-failing", 0),
        ]
        .into();
        let leases: Vec<LeaseStatus> = leases
            .iter()
            .map(|l| {
                let state = match (l.state, l.replace) {
                    (LeaseState::Issuing, _) => "issuing",
                    (LeaseState::Active, false) => "active",
                    (LeaseState::Active, true) => "replacing",
                    (LeaseState::Revoking, _) => "revoking",
                };
                *counts.entry(state).or_default() += 1;
                if l.revoke_attempts > 0 {
                    *counts.entry("revoke-failing").or_default() += 1;
                }
                LeaseStatus {
                    id: l.id.clone(),
                    target: l.target.clone(),
                    state: state.to_owned(),
                    expires_at: l.expires_at,
                    max_expires_at: l.max_expires_at,
                    revoke_after: (l.state == LeaseState::Revoking).then_some(l.revoke_after),
                    revoke_attempts: l.revoke_attempts,
                    last_error: l.last_error.clone().or_else(|| errors.get(&l.id).cloned()),
                }
            })
            .collect();
        for (state, count) in counts {
            self.status
                .metrics
                .leases
                .get_or_create(&StateLabel {
                    state: state.to_owned(),
                })
                .set(count);
        }
        let connected = self.connected.lock().unwrap_or_else(|e| e.into_inner());
        let mut rotations = Vec::new();
        for backend in connected.values() {
            for (name, role) in &backend.backend.roles {
                let sealops_core::backend::Role::Static(role) = role else {
                    continue;
                };
                let path = format!("{}/static-creds/{name}", backend.backend.name);
                let current = statics.iter().find(|c| c.id == path);
                rotations.push(RotationStatus {
                    username: role.username.clone(),
                    rotated_at: current.map(|c| c.rotated_at),
                    next_rotation: next_rotation(role, current),
                    pending: pending.iter().find(|p| p.id == path).map(|p| {
                        match p.step {
                            Step::Recorded => "recorded",
                            Step::Changed => "changed",
                        }
                        .to_owned()
                    }),
                    last_error: errors.get(&path).cloned(),
                    path,
                });
            }
        }
        drop(connected);
        self.status.update(|doc| {
            doc.credentials = CredentialsStatus { leases, rotations };
        });
    }
}

/// The rotation id of a backend's admin password.
fn root_id(backend: &str) -> String {
    RotationTarget::Root {
        backend: backend.to_owned(),
    }
    .path()
}

/// The backend's admin account as a static role: its password set with the dialect's default
/// statement (ALTER ROLE / ALTER USER / ACL SETUSER resetpass), by the admin itself. Never
/// rotated on a schedule: only `sealops rotate <backend>/rotate-root` does.
fn admin_role(backend: &Backend) -> StaticRole {
    StaticRole {
        username: backend.connection.username.clone(),
        rotation_period: None,
        schedule: None,
        rotation_statements: Vec::new(),
        password_policy: Default::default(),
    }
}

/// When a static role is due next: never rotated means now.
fn next_rotation(role: &StaticRole, current: Option<&StaticCredential>) -> Option<i64> {
    let current = current?;
    let schedule = role.schedule().ok()?;
    let last = UNIX_EPOCH + Duration::from_secs(current.rotated_at.max(0) as u64);
    schedule
        .next_after(last)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}

fn pair(username: String, password: SecretValue) -> Values {
    BTreeMap::from([
        (
            "username".to_owned(),
            SecretValue::new(username.into_bytes()),
        ),
        ("password".to_owned(), password),
    ])
}
