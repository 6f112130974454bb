//! Leases of dynamic database credentials, kept in `state_dir/leases.redb`.
//!
//! A lease is written (and committed: redb fsyncs each write transaction) before the
//! credentials it describes reach any output, and removed only once the database confirmed the
//! revocation. So after a restart every lease is known: expired ones are revoked at once, and a
//! revocation that failed is retried with exponential backoff until the database answers.
//!
//! What to do when is decided by pure functions of the lease and the time ([`Lease::renewal`],
//! [`revocation_backoff`]); the store only remembers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

/// The store's file in the state directory.
pub const FILE: &str = "leases.redb";

const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const ROTATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("rotations");
const STATIC: TableDefinition<&str, &[u8]> = TableDefinition::new("static");

/// How long an issue may take before a lease still `Issuing` counts as abandoned (a crash
/// between recording it and the database's answer) and is revoked: well past the drivers'
/// operation timeout.
pub const ISSUING_TIMEOUT: i64 = 120;

/// The longest wait between two attempts to revoke.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

pub use sealops_core::lease_api::LeaseState;

/// One issued credential. Its password is kept only sealed (age) to the controller's own
/// identity, so a resync can render the outputs again without issuing new credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// `<backend>/creds/<role>/<username>`.
    pub id: String,
    pub backend: String,
    pub role: String,
    pub username: String,
    /// The target whose outputs hold the credentials.
    pub target: String,
    /// Unix seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    /// `issued_at + max_ttl`: no renewal goes past it.
    pub max_expires_at: i64,
    pub state: LeaseState,
    /// Not revoked before this (a replaced credential's grace period), Unix seconds.
    pub revoke_after: i64,
    pub revoke_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The password, age-encrypted to the controller's own recipient (never shown by the API).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed_password: String,
    /// Set when the lease cannot be renewed far enough: the target gets new credentials at its
    /// next reconcile, and this lease is revoked after the grace period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// The password a static role's account has now (after its last completed rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredential {
    /// `<backend>/static-creds/<role>`.
    pub id: String,
    pub username: String,
    /// Age-encrypted to the controller's own recipient.
    pub sealed_password: String,
    /// Unix seconds.
    pub rotated_at: i64,
}

/// What to do about an active lease at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing yet; look again at this time (Unix seconds).
    Wait(i64),
    /// Extend it to this expiry (within `max_ttl`).
    Extend(i64),
    /// It cannot be extended far enough (max_ttl): issue new credentials, revoke these later.
    Reissue,
    /// Expired: revoke now.
    Expired,
}

impl Lease {
    /// `<backend>/creds/<role>/<username>`.
    pub fn id_for(backend: &str, role: &str, username: &str) -> String {
        format!("{backend}/creds/{role}/{username}")
    }

    /// A lease for credentials issued at `now` to `target`.
    #[allow(clippy::too_many_arguments)]
    pub fn issued(
        backend: &str,
        role: &str,
        username: &str,
        target: &str,
        now: i64,
        ttl: Duration,
        max_ttl: Duration,
        sealed_password: String,
    ) -> Self {
        let max_expires_at = now + max_ttl.as_secs() as i64;
        Self {
            id: Self::id_for(backend, role, username),
            backend: backend.to_owned(),
            role: role.to_owned(),
            username: username.to_owned(),
            target: target.to_owned(),
            issued_at: now,
            expires_at: (now + ttl.as_secs() as i64).min(max_expires_at),
            max_expires_at,
            state: LeaseState::Active,
            revoke_after: 0,
            revoke_attempts: 0,
            last_error: None,
            sealed_password,
            replace: false,
        }
    }

    /// Renew at about two-thirds of the lease's life; `jitter` (0..1) spreads many leases
    /// issued together over the last tenth of that window.
    pub fn renewal(&self, now: i64, ttl: Duration, jitter: f64) -> Renewal {
        if now >= self.expires_at {
            return Renewal::Expired;
        }
        let life = (self.expires_at - self.issued_at).max(1);
        let renew_at =
            self.issued_at + life * 2 / 3 - (life as f64 / 10.0 * jitter.clamp(0.0, 1.0)) as i64;
        if now < renew_at {
            return Renewal::Wait(renew_at);
        }
        let wanted = now + ttl.as_secs() as i64;
        let until = wanted.min(self.max_expires_at);
        // Extending by less than a third of the TTL would only bring the next renewal closer;
        // at max_ttl there is nothing left to extend.
        if until <= self.expires_at || until - now < ttl.as_secs() as i64 / 3 {
            Renewal::Reissue
        } else {
            Renewal::Extend(until)
        }
    }
}

/// How long to wait before the next attempt after `attempts` failed revocations: 1 s, 2 s,
/// 4 s, … up to 10 minutes.
pub fn revocation_backoff(attempts: u32) -> Duration {
    crate::backoff::Backoff::after(Duration::from_secs(1), MAX_BACKOFF, attempts)
}

/// The store cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("lease store {path}: {problem}")]
pub struct LeaseError {
    pub path: PathBuf,
    pub problem: String,
}

/// Every lease this controller holds.
pub struct LeaseStore {
    path: PathBuf,
    db: redb::Database,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LeaseStore {
    /// Opens (or creates) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, LeaseError> {
        let path = state_dir.join(FILE);
        let db = redb::Database::create(&path).map_err(|e| LeaseError {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        let store = Self { path, db };
        // The tables exist from the start, so a read never finds one missing. Created in one
        // transaction, and only when missing: opening a store writes nothing (a controller
        // whose state disk is full must fail at its journal, not here).
        let missing = {
            let txn = store.db.begin_read().map_err(|e| store.fail(e))?;
            [LEASES, ROTATIONS, STATIC]
                .iter()
                .any(|table| txn.open_table(*table).is_err())
        };
        if missing {
            let txn = store.db.begin_write().map_err(|e| store.fail(e))?;
            for table in [LEASES, ROTATIONS, STATIC] {
                txn.open_table(table).map_err(|e| store.fail(e))?;
            }
            txn.commit().map_err(|e| store.fail(e))?;
        }
        Ok(store)
    }

    fn fail(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }

    fn write(
        &self,
        change: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<(), LeaseError>,
    ) -> Result<(), LeaseError> {
        self.write_in(LEASES, change)
    }

    fn write_in(
        &self,
        table: TableDefinition<'_, &str, &[u8]>,
        change: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<(), LeaseError>,
    ) -> Result<(), LeaseError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut opened = txn.open_table(table).map_err(|e| self.fail(e))?;
            change(&mut opened)?;
        }
        txn.commit().map_err(|e| self.fail(e))
    }

    /// Records a rotation step (see [`crate::rotation`]); durable when this returns.
    pub fn put_rotation(&self, id: &str, record: &[u8]) -> Result<(), LeaseError> {
        self.write_in(ROTATIONS, |table| {
            table
                .insert(id, record)
                .map(|_| ())
                .map_err(|e| self.fail(e))
        })
    }

    /// A finished rotation is forgotten.
    pub fn remove_rotation(&self, id: &str) -> Result<(), LeaseError> {
        self.write_in(ROTATIONS, |table| {
            table.remove(id).map(|_| ()).map_err(|e| self.fail(e))
        })
    }

    /// Every rotation recorded and not finished: (id, record).
    pub fn rotations(&self) -> Result<Vec<(String, Vec<u8>)>, LeaseError> {
        self.all_in(ROTATIONS)
    }

    /// Records the password a static role's account has now; durable when this returns.
    pub fn put_static(&self, credential: &StaticCredential) -> Result<(), LeaseError> {
        let bytes = serde_json::to_vec(credential).expect("a credential serialises");
        self.write_in(STATIC, |table| {
            table
                .insert(credential.id.as_str(), bytes.as_slice())
                .map(|_| ())
                .map_err(|e| self.fail(e))
        })
    }

    /// The static roles' current passwords, by id.
    pub fn statics(&self) -> Result<Vec<StaticCredential>, LeaseError> {
        self.all_in(STATIC)?
            .into_iter()
            .map(|(id, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("{id}: {e}")))
            })
            .collect()
    }

    pub fn get_static(&self, id: &str) -> Result<Option<StaticCredential>, LeaseError> {
        Ok(self.statics()?.into_iter().find(|c| c.id == id))
    }

    fn all_in(
        &self,
        definition: TableDefinition<'_, &str, &[u8]>,
    ) -> Result<Vec<(String, Vec<u8>)>, LeaseError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(definition).map_err(|e| self.fail(e))?;
        let mut found = Vec::new();
        for entry in table.range::<&str>(..).map_err(|e| self.fail(e))? {
            let (key, value) = entry.map_err(|e| self.fail(e))?;
            found.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(found)
    }

    /// Records `lease` (new or changed); durable when this returns.
    pub fn put(&self, lease: &Lease) -> Result<(), LeaseError> {
        let bytes = serde_json::to_vec(lease).expect("a lease serialises");
        self.write(|table| {
            table
                .insert(lease.id.as_str(), bytes.as_slice())
                .map(|_| ())
                .map_err(|e| self.fail(e))
        })
    }

    /// Changes the lease `id` in one transaction: `change` sees the stored lease and says
    /// whether it changed it. Returns the lease as stored afterwards (`None`: gone). The lease
    /// task and the reconcile both change leases; read-then-write would let one undo the other.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Lease) -> bool,
    ) -> Result<Option<Lease>, LeaseError> {
        let txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        let updated = {
            let mut table = txn.open_table(LEASES).map_err(|e| self.fail(e))?;
            let stored = match table.get(id).map_err(|e| self.fail(e))? {
                Some(bytes) => Some(
                    serde_json::from_slice::<Lease>(bytes.value())
                        .map_err(|e| self.fail(format!("lease {id}: {e}")))?,
                ),
                None => None,
            };
            match stored {
                Some(mut lease) => {
                    if change(&mut lease) {
                        let bytes = serde_json::to_vec(&lease).expect("a lease serialises");
                        table
                            .insert(id, bytes.as_slice())
                            .map_err(|e| self.fail(e))?;
                    }
                    Some(lease)
                }
                None => None,
            }
        };
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(updated)
    }

    /// Forgets a lease whose credentials the database confirmed revoked.
    pub fn remove(&self, id: &str) -> Result<(), LeaseError> {
        self.write(|table| table.remove(id).map(|_| ()).map_err(|e| self.fail(e)))
    }

    /// The leases whose id starts with `prefix` ("" for all), in id order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Lease>, LeaseError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(LEASES).map_err(|e| self.fail(e))?;
        let mut found = Vec::new();
        for entry in table.range(prefix..).map_err(|e| self.fail(e))? {
            let (key, value) = entry.map_err(|e| self.fail(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            let lease: Lease = serde_json::from_slice(value.value())
                .map_err(|e| self.fail(format!("lease {}: {e}", key.value())))?;
            found.push(lease);
        }
        Ok(found)
    }

    pub fn get(&self, id: &str) -> Result<Option<Lease>, LeaseError> {
        Ok(self.list(id)?.into_iter().find(|l| l.id == id))
    }

    /// Leases to revoke at `now`: active ones that expired, and ones marked for revocation
    /// whose grace period or backoff is over.
    pub fn revocations_due(&self, now: i64) -> Result<Vec<Lease>, LeaseError> {
        Ok(self
            .list("")?
            .into_iter()
            .filter(|l| match l.state {
                LeaseState::Issuing => l.expires_at <= now || l.issued_at + ISSUING_TIMEOUT <= now,
                LeaseState::Active => l.expires_at <= now,
                LeaseState::Revoking => l.revoke_after <= now,
            })
            .collect())
    }

    /// A revocation failed: try again after the backoff, and say why.
    pub fn revocation_failed(
        &self,
        lease: &Lease,
        now: i64,
        problem: &str,
    ) -> Result<Lease, LeaseError> {
        let mut next = lease.clone();
        next.state = LeaseState::Revoking;
        next.revoke_after = now + revocation_backoff(lease.revoke_attempts).as_secs() as i64;
        next.revoke_attempts = lease.revoke_attempts + 1;
        next.last_error = Some(problem.to_owned());
        self.put(&next)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(username: &str, issued: i64, ttl: i64, max_ttl: i64) -> Lease {
        Lease::issued(
            "pg",
            "readonly",
            username,
            "payments",
            issued,
            Duration::from_secs(ttl as u64),
            Duration::from_secs(max_ttl as u64),
            String::new(),
        )
    }

    #[test]
    fn leases_survive_reopening_and_list_by_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LeaseStore::open(dir.path()).expect("opens");
            store.put(&lease("v-a", 0, 60, 600)).expect("put");
            store.put(&lease("v-b", 0, 60, 600)).expect("put");
            let mut other = lease("v-c", 0, 60, 600);
            other.id = Lease::id_for("redis", "cache", "v-c");
            store.put(&other).expect("put");
        }
        let store = LeaseStore::open(dir.path()).expect("reopens");
        let ids: Vec<String> = store
            .list("pg/")
            .expect("list")
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, ["pg/creds/readonly/v-a", "pg/creds/readonly/v-b"]);
        assert_eq!(store.list("").expect("list").len(), 3);
        store.remove("pg/creds/readonly/v-a").expect("remove");
        assert_eq!(store.get("pg/creds/readonly/v-a").expect("get"), None);
        assert!(store.get("pg/creds/readonly/v-b").expect("get").is_some());
    }

    #[test]
    fn renewal_at_two_thirds_within_max_ttl_then_reissue() {
        let ttl = Duration::from_secs(90);
        let l = lease("v-a", 1000, 90, 200);
        assert_eq!(l.renewal(1000, ttl, 0.0), Renewal::Wait(1060));
        assert_eq!(
            l.renewal(1000, ttl, 1.0),
            Renewal::Wait(1051),
            "jitter renews earlier"
        );
        assert_eq!(l.renewal(1060, ttl, 0.0), Renewal::Extend(1150));
        // Near max_ttl the extension is capped, then refused for a new credential.
        let mut late = l.clone();
        late.issued_at = 1100;
        late.expires_at = 1190;
        assert_eq!(late.renewal(1160, ttl, 0.0), Renewal::Extend(1200));
        assert_eq!(late.renewal(1180, ttl, 0.0), Renewal::Reissue);
        assert_eq!(late.renewal(1190, ttl, 0.0), Renewal::Expired);
    }

    #[test]
    fn an_abandoned_issue_comes_due_and_updates_never_resurrect_a_revoking_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LeaseStore::open(dir.path()).expect("opens");
        let mut issuing = lease("v-new", 100, 3600, 7200);
        issuing.state = LeaseState::Issuing;
        store.put(&issuing).expect("put");
        assert!(
            store
                .revocations_due(100 + ISSUING_TIMEOUT - 1)
                .expect("due")
                .is_empty()
        );
        assert_eq!(
            store
                .revocations_due(100 + ISSUING_TIMEOUT)
                .expect("due")
                .len(),
            1
        );

        let id = issuing.id.clone();
        let retired = store
            .update(&id, |l| {
                l.state = LeaseState::Revoking;
                true
            })
            .expect("update")
            .expect("there");
        assert_eq!(retired.state, LeaseState::Revoking);
        // A stale decision (renew an active lease) finds it revoking and leaves it so.
        let after = store
            .update(&id, |l| {
                let active = l.state == LeaseState::Active;
                if active {
                    l.expires_at += 60;
                }
                active
            })
            .expect("update")
            .expect("there");
        assert_eq!(after.state, LeaseState::Revoking);
        assert_eq!(after.expires_at, issuing.expires_at);
        assert_eq!(
            store
                .update("pg/creds/readonly/none", |_| true)
                .expect("update"),
            None
        );
    }

    #[test]
    fn expired_and_failed_revocations_come_due_with_backoff() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LeaseStore::open(dir.path()).expect("opens");
        store.put(&lease("v-old", 0, 60, 600)).expect("put");
        store.put(&lease("v-new", 100, 60, 600)).expect("put");
        let due: Vec<String> = store
            .revocations_due(100)
            .expect("due")
            .into_iter()
            .map(|l| l.username)
            .collect();
        assert_eq!(due, ["v-old"]);

        let old = store
            .get("pg/creds/readonly/v-old")
            .expect("get")
            .expect("there");
        let failed = store
            .revocation_failed(&old, 100, "connection refused")
            .expect("recorded");
        assert_eq!(failed.revoke_after, 101);
        assert!(store.revocations_due(100).expect("due").is_empty());
        let again = store
            .revocation_failed(&failed, 101, "connection refused")
            .expect("recorded");
        assert_eq!(again.revoke_after, 103);
        assert_eq!(again.revoke_attempts, 2);
        assert_eq!(again.last_error.as_deref(), Some("connection refused"));
        assert_eq!(revocation_backoff(30), MAX_BACKOFF);
        // Known after a restart, still due.
        drop(store);
        let store = LeaseStore::open(dir.path()).expect("reopens");
        assert_eq!(store.revocations_due(103).expect("due").len(), 1);
    }
}
