//! The revocation sweep: revoke every lease that is due, several at once, and tell the store
//! what the database answered.
//!
//! The store is touched for a lease only after its database answered (or after it turned out
//! there is no database to ask): a lease leaves the store only once the revocation was
//! confirmed, and a failure is recorded with its backoff ([`LeaseStore::revocation_failed`]) so
//! the next sweep retries it. A controller killed mid-sweep therefore loses nothing: a lease
//! whose user was dropped but not yet removed from the store is revoked again at the next
//! sweep, which is why revocation statements should be idempotent (`DROP ROLE IF EXISTS`).
//!
//! Why a [`JoinSet`] of at most `concurrency` tasks rather than one task per lease: a thousand
//! expired leases after an outage must not open a thousand connections to one database at once.
//! The store writes are made by the sweep itself, one at a time as answers arrive, because redb
//! serialises write transactions anyway; each is one commit (fsync), which bounds how fast a
//! sweep can go whatever `concurrency` is.

use std::collections::HashMap;
use std::sync::Arc;

use sealops_core::backend::DynamicRole;
use tokio::task::JoinSet;

use crate::dbs::Database;
use crate::leases::{Lease, LeaseError, LeaseStore};

/// A lease whose revocation failed; it stays in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeFailed {
    /// The lease as now stored: `Revoking`, with `revoke_attempts`, `revoke_after` (the
    /// backoff) and `last_error` updated.
    pub lease: Lease,
    /// Why, as recorded in `last_error` (never holds a password).
    pub problem: String,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Confirmed by the database and removed from the store, in the order the answers came.
    pub revoked: Vec<Lease>,
    /// Kept, to be retried after their backoff.
    pub failed: Vec<RevokeFailed>,
}

/// The problem recorded for a lease whose backend or role is not known to the controller: it
/// names both and what to do, since nobody else can revoke that user.
pub fn unresolvable_problem(lease: &Lease) -> String {
    format!(
        "cannot revoke user {:?}: backend {:?} with dynamic role {:?} is not loaded (backends/{}.yaml is missing, the role was removed from it, or its admin password cannot be unsealed); restore it and the revocation is retried, or drop the user in the database by hand and remove the lease",
        lease.username, lease.backend, lease.role, lease.backend
    )
}

/// Revokes every lease in `due` with up to `concurrency` database operations at once (0 is
/// taken as 1).
///
/// For each lease, `resolve` gives the driver of its backend and its dynamic role; `None`
/// records the lease as failed with [`unresolvable_problem`]. A revocation the database
/// confirmed removes the lease from the store; one that failed is recorded with
/// [`LeaseStore::revocation_failed`] at `now`, with the driver's error (which never holds a
/// password) as the problem.
///
/// Returns an error only when the store cannot be written; revocations still running then are
/// abandoned (their tasks aborted) and their leases stay in the store as they were, to be
/// retried by the next sweep.
pub async fn sweep<D>(
    store: &LeaseStore,
    due: Vec<Lease>,
    now: i64,
    concurrency: usize,
    resolve: impl Fn(&Lease) -> Option<(Arc<D>, DynamicRole)>,
) -> Result<SweepReport, LeaseError>
where
    D: Database + 'static,
{
    let limit = concurrency.max(1);
    let mut report = SweepReport::default();
    let mut waiting = due.into_iter();
    let mut running: JoinSet<Result<(), String>> = JoinSet::new();
    // The lease of each running task, so that even a task that panicked is accounted for.
    let mut in_flight: HashMap<tokio::task::Id, Lease> = HashMap::new();

    loop {
        while running.len() < limit {
            let Some(lease) = waiting.next() else { break };
            let Some((driver, role)) = resolve(&lease) else {
                let problem = unresolvable_problem(&lease);
                let kept = store.revocation_failed(&lease, now, &problem)?;
                report.failed.push(RevokeFailed {
                    lease: kept,
                    problem,
                });
                continue;
            };
            let username = lease.username.clone();
            let handle = running.spawn(async move {
                driver
                    .revoke(&role, &username)
                    .await
                    .map_err(|e| e.to_string())
            });
            in_flight.insert(handle.id(), lease);
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (id, answer) = match joined {
            Ok((id, answer)) => (id, answer),
            // The payload of a panic is not passed on: it is not ours to vouch that it holds
            // no secret.
            Err(e) => (
                e.id(),
                Err("the database driver panicked while revoking (a bug in sealops); retried after the backoff".to_owned()),
            ),
        };
        let lease = in_flight
            .remove(&id)
            .expect("every task's lease is recorded when it is spawned");
        match answer {
            Ok(()) => {
                store.remove(&lease.id)?;
                report.revoked.push(lease);
            }
            Err(problem) => {
                let kept = store.revocation_failed(&lease, now, &problem)?;
                report.failed.push(RevokeFailed {
                    lease: kept,
                    problem,
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use sealops_core::backend::StaticRole;
    use sealops_core::secret::SecretValue;
    use time::OffsetDateTime;

    use super::*;
    use crate::dbs::DbError;
    use crate::leases::LeaseState;

    /// A database that counts how many revocations run at once, checks that the store still
    /// holds each lease while the database is being asked, and refuses users named `bad-*`.
    struct Fake {
        store: Arc<LeaseStore>,
        running: AtomicUsize,
        most: AtomicUsize,
        asked: Mutex<Vec<String>>,
    }

    impl Database for Fake {
        async fn create(
            &self,
            _: &DynamicRole,
            _: &str,
            _: &SecretValue,
            _: OffsetDateTime,
        ) -> Result<(), DbError> {
            unreachable!("a sweep only revokes")
        }

        async fn revoke(&self, _: &DynamicRole, name: &str) -> Result<(), DbError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            self.asked.lock().unwrap().push(name.to_owned());
            // Untouched while the database is being asked.
            let stored = self
                .store
                .get(&Lease::id_for("fake", "reader", name))
                .unwrap();
            assert!(
                stored.is_some_and(|l| l.state == LeaseState::Active && l.revoke_attempts == 0),
                "{name} was changed before the database answered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if name.starts_with("bad-") {
                return Err(DbError::User {
                    plugin: sealops_core::backend::Plugin::Redis,
                    username: name.to_owned(),
                    problem: "refused by the fake".into(),
                });
            }
            Ok(())
        }

        async fn renew(&self, _: &DynamicRole, _: &str, _: OffsetDateTime) -> Result<(), DbError> {
            unreachable!()
        }

        async fn set_password(
            &self,
            _: &StaticRole,
            _: &str,
            _: &SecretValue,
        ) -> Result<(), DbError> {
            unreachable!()
        }

        async fn login(&self, _: &str, _: &SecretValue) -> Result<(), DbError> {
            unreachable!()
        }
    }

    fn role() -> DynamicRole {
        DynamicRole {
            creation_statements: vec!["+ping".into()],
            revocation_statements: Vec::new(),
            renew_statements: Vec::new(),
            default_ttl: "1h".into(),
            max_ttl: "1h".into(),
            username_template: None,
            password_policy: Default::default(),
        }
    }

    fn expired(backend: &str, username: &str) -> Lease {
        Lease::issued(
            backend,
            "reader",
            username,
            "app",
            0,
            Duration::from_secs(60),
            Duration::from_secs(60),
            String::new(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_concurrency_and_the_store_follows_the_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LeaseStore::open(dir.path()).unwrap());
        let fake = Arc::new(Fake {
            store: Arc::clone(&store),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            asked: Mutex::new(Vec::new()),
        });
        let mut due = Vec::new();
        for i in 0..40 {
            due.push(expired("fake", &format!("ok-{i:02}")));
        }
        due.push(expired("fake", "bad-1"));
        due.push(expired("gone", "orphan"));
        for lease in &due {
            store.put(lease).unwrap();
        }

        let report = sweep(&store, due, 100, 4, |lease| {
            (lease.backend == "fake").then(|| (Arc::clone(&fake), role()))
        })
        .await
        .unwrap();

        assert_eq!(report.revoked.len(), 40);
        assert!(
            fake.most.load(Ordering::SeqCst) <= 4,
            "at most 4 at once, saw {}",
            fake.most.load(Ordering::SeqCst)
        );
        assert!(
            fake.most.load(Ordering::SeqCst) > 1,
            "revocations overlapped"
        );
        assert_eq!(
            fake.asked.lock().unwrap().len(),
            41,
            "the orphan is never sent"
        );
        let left: Vec<Lease> = store.list("").unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        for lease in &left {
            assert_eq!(lease.state, LeaseState::Revoking);
            assert_eq!(lease.revoke_attempts, 1);
            assert_eq!(lease.revoke_after, 101, "first backoff is 1 s");
        }
        let problems: HashMap<&str, &str> = report
            .failed
            .iter()
            .map(|f| (f.lease.username.as_str(), f.problem.as_str()))
            .collect();
        assert!(problems["bad-1"].contains("refused by the fake"));
        assert!(
            problems["orphan"].contains("\"gone\"") && problems["orphan"].contains("\"reader\""),
            "{}",
            problems["orphan"]
        );
        let stored = store
            .get(&Lease::id_for("gone", "reader", "orphan"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.last_error.as_deref(), Some(problems["orphan"]));
    }

    #[tokio::test]
    async fn nothing_due_is_an_empty_report() {
        let dir = tempfile::tempdir().unwrap();
        let store = LeaseStore::open(dir.path()).unwrap();
        let report = sweep::<Fake>(&store, Vec::new(), 0, 0, |_| None)
            .await
            .unwrap();
        assert_eq!(report, SweepReport::default());
    }
}
