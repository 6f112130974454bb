//! The revocation sweep against the real local PostgreSQL and Redis: expired leases are
//! revoked in the database and only then leave the store; a lease whose backend is unknown, or
//! whose database cannot be reached, stays with its backoff and the reason.

use crate::dbs_support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::dbs_support::{PG_DATABASE, psql, unique};
use sealops_controller::dbs::{Admin, Database, Driver};
use sealops_controller::leases::{Lease, LeaseState, LeaseStore};
use sealops_controller::revoke::{self, SweepReport};
use sealops_core::backend::{Backend, DynamicRole};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

fn postgres_backend(port: u16) -> Backend {
    let text = format!(
        r#"sealops: v1
name: pg
plugin: postgresql
connection:
  host: 127.0.0.1
  port: {port}
  database: {PG_DATABASE}
  username: postgres
  password: {{secret: infra/pg/admin, key: password}}
allowed_roles: ["*"]
roles:
  readonly:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'
        - GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{{{name}}}}"
      revocation_statements:
        - REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{{{name}}}}"; DROP ROLE IF EXISTS "{{{{name}}}}"
      default_ttl: 1h
      max_ttl: 24h
      username_template: "sealops_t_sweep_{{{{random 10}}}}"
"#
    );
    Backend::parse(&text, "backends/pg.yaml").expect("test backend parses")
}

fn redis_backend() -> Backend {
    let text = r#"sealops: v1
name: cache
plugin: redis
connection:
  host: 127.0.0.1
  port: 6379
  username: default
  password: {secret: infra/redis/admin, key: password}
allowed_roles: ["*"]
roles:
  reader:
    dynamic:
      creation_statements: ["+ping", "~cache:*"]
      default_ttl: 1h
      max_ttl: 24h
      username_template: "sealops_t_sweep_{{random 10}}"
"#;
    Backend::parse(text, "backends/cache.yaml").expect("test backend parses")
}

fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A lease issued two hours ago for one hour: expired.
fn expired_lease(backend: &str, role: &str, username: &str, now: i64) -> Lease {
    Lease::issued(
        backend,
        role,
        username,
        "payments",
        now - 7200,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
        String::new(),
    )
}

/// One backend's driver and role, as the controller resolves them.
struct Loaded {
    backend: Backend,
    role_name: &'static str,
    driver: Arc<Driver>,
}

impl Loaded {
    fn role(&self) -> &DynamicRole {
        self.backend.dynamic_role(self.role_name).expect("role")
    }

    /// Creates a real user with a lease for it, as the controller would: the lease first.
    async fn issue(&self, store: &LeaseStore, now: i64) -> (String, SecretValue) {
        let role = self.role();
        let name = role
            .username_template()
            .render(
                self.role_name,
                &self.backend.name,
                self.backend.plugin.username_limit(),
                now as u64,
            )
            .expect("name");
        let password = role.password_policy.generate();
        store
            .put(&expired_lease(
                &self.backend.name,
                self.role_name,
                &name,
                now,
            ))
            .expect("lease recorded");
        // Valid in the database for an hour: only the sweep can make the login fail.
        let until = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        self.driver
            .create(role, &name, &password, until)
            .await
            .expect("create");
        self.driver
            .login(&name, &password)
            .await
            .expect("the issued credential logs in before the sweep");
        (name, password)
    }
}

fn resolver(loaded: &[Loaded]) -> impl Fn(&Lease) -> Option<(Arc<Driver>, DynamicRole)> + '_ {
    move |lease| {
        loaded
            .iter()
            .find(|l| l.backend.name == lease.backend && l.role_name == lease.role)
            .map(|l| (Arc::clone(&l.driver), l.role().clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_expired_leases_are_revoked_and_an_unresolvable_one_is_kept() {
    if !dbs_support::postgres_password_database() || !dbs_support::redis_up() {
        return;
    }
    let pg = postgres_backend(5432);
    let redis = redis_backend();
    let loaded = vec![
        Loaded {
            driver: Arc::new(Driver::new(
                &pg,
                Admin::from_backend(&pg, SecretValue::from("")),
            )),
            backend: pg,
            role_name: "readonly",
        },
        Loaded {
            driver: Arc::new(Driver::new(
                &redis,
                Admin::from_backend(&redis, SecretValue::from("unused")),
            )),
            backend: redis,
            role_name: "reader",
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LeaseStore::open(dir.path()).expect("store");
    let now = OffsetDateTime::now_utc().unix_timestamp();

    let mut issued = Vec::new();
    for i in 0..20 {
        let which = &loaded[i % 2];
        let (name, password) = which.issue(&store, now).await;
        issued.push((which, name, password));
    }
    // A lease of a backend the controller no longer has: nobody can revoke it.
    let orphan_name = unique("sealops_t_orphan_");
    store
        .put(&expired_lease("retired-pg", "readonly", &orphan_name, now))
        .expect("orphan recorded");

    let due = store.revocations_due(now).expect("due");
    assert_eq!(due.len(), 21);
    let report: SweepReport = revoke::sweep(&store, due, now, 4, resolver(&loaded))
        .await
        .expect("the store is writable");

    assert_eq!(report.revoked.len(), 20, "failed: {:?}", report.failed);
    let revoked: HashSet<&str> = report.revoked.iter().map(|l| l.username.as_str()).collect();
    for (which, name, password) in &issued {
        assert!(revoked.contains(name.as_str()), "{name} reported revoked");
        let refused = which
            .driver
            .login(name, password)
            .await
            .expect_err("a revoked user no longer logs in");
        assert!(refused.is_login_refused(), "{name}: {refused}");
        assert_eq!(
            store
                .get(&Lease::id_for(&which.backend.name, which.role_name, name))
                .expect("get"),
            None,
            "{name} left the store"
        );
    }
    let escaped: Vec<String> = issued.iter().map(|(_, n, _)| format!("'{n}'")).collect();
    assert_eq!(
        psql(
            PG_DATABASE,
            &format!(
                "SELECT count(*) FROM pg_roles WHERE rolname IN ({})",
                escaped.join(",")
            )
        ),
        "0"
    );
    for (_, name, _) in &issued {
        assert!(
            redis_cli(&["ACL", "GETUSER", name]).is_empty(),
            "{name} is gone from Redis"
        );
    }

    let left = store.list("").expect("list");
    assert_eq!(left.len(), 1, "{left:?}");
    let kept = &left[0];
    assert_eq!(kept.username, orphan_name);
    assert_eq!(kept.state, LeaseState::Revoking);
    assert_eq!(kept.revoke_attempts, 1);
    assert_eq!(
        kept.revoke_after,
        now + 1,
        "retried after the first backoff"
    );
    let problem = kept.last_error.as_deref().expect("why it is kept");
    assert!(
        problem.contains("\"retired-pg\"")
            && problem.contains("\"readonly\"")
            && problem.contains("backends/retired-pg.yaml"),
        "names the backend, the role and where to restore them: {problem}"
    );
    assert_eq!(report.failed.len(), 1);
    assert_eq!(&report.failed[0].lease, kept);
    // Not due again until the backoff is over.
    assert!(store.revocations_due(now).expect("due").is_empty());
}

#[tokio::test]
async fn an_unreachable_database_keeps_the_lease_with_backoff() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let backend = postgres_backend(port);
    let admin_password = "admin-password-that-must-not-show";
    let mut admin = Admin::from_backend(&backend, SecretValue::from(admin_password));
    admin.timeout = Duration::from_secs(2);
    let loaded = vec![Loaded {
        driver: Arc::new(Driver::new(&backend, admin)),
        backend,
        role_name: "readonly",
    }];
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LeaseStore::open(dir.path()).expect("store");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let name = unique("sealops_t_unreachable_");
    let lease = expired_lease("pg", "readonly", &name, now);
    store.put(&lease).expect("lease recorded");

    let started = std::time::Instant::now();
    let report = revoke::sweep(
        &store,
        store.revocations_due(now).expect("due"),
        now,
        8,
        resolver(&loaded),
    )
    .await
    .expect("the store is writable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the admin timeout: {:?}",
        started.elapsed()
    );

    assert!(report.revoked.is_empty());
    assert_eq!(report.failed.len(), 1);
    let kept = store
        .get(&lease.id)
        .expect("get")
        .expect("kept until the database confirms");
    assert_eq!(kept.state, LeaseState::Revoking);
    assert_eq!(kept.revoke_attempts, 1);
    assert_eq!(kept.revoke_after, now + 1);
    let problem = kept.last_error.as_deref().expect("why");
    assert!(
        problem.contains(&format!("127.0.0.1:{port}")),
        "names the address: {problem}"
    );
    assert!(!problem.contains(admin_password), "{problem}");

    // The next attempt, once the backoff is over, fails again and backs off further.
    let again = revoke::sweep(
        &store,
        store.revocations_due(now + 1).expect("due"),
        now + 1,
        8,
        resolver(&loaded),
    )
    .await
    .expect("the store is writable");
    assert_eq!(again.failed.len(), 1);
    let kept = store.get(&lease.id).expect("get").expect("still kept");
    assert_eq!(kept.revoke_attempts, 2);
    assert_eq!(kept.revoke_after, now + 1 + 2);
}
