//! Dynamic credentials against the real local databases: how fast they are issued and how fast
//! a backlog of expired leases is revoked, against the floors of what each step must cost.
//!
//! `cargo bench -p sealops-controller --bench leases` prints, in one run:
//! - the floors: one X25519 unwrap (sealing a password to the controller is one X25519 wrap,
//!   the same work), one lease-store commit (redb, fsync), removing 1,000 leases one commit
//!   each (a sweep's store work without any database), and per database one admin login
//!   (connect, authenticate, one trivial command): the round trip every operation pays at least;
//! - for each of PostgreSQL, MariaDB and Redis (a database that is down is skipped, saying so):
//!   - issuing N credentials (200; `SEALOPS_BENCH_ISSUES=N`) the way the controller will:
//!     username and password generated, the password sealed to the controller's own recipient,
//!     the lease committed to the store (before the database: a crash then leaves a lease to
//!     revoke, never an unknown user), then the user created. Credentials per second
//!     sequentially and 8 at once, per-issue latency p50/p99/max, and the p50 of each step;
//!   - one [`revoke::sweep`] of 1,000 expired leases (`SEALOPS_BENCH_REVOKES=N`), at concurrency
//!     1 and 16 (users and leases made anew for each run), checked afterwards: the store is
//!     empty and sample users no longer log in.
//!
//! Every user it creates has a name starting with `v-bench-<pid>-`; whatever is left of them
//! when a database's part ends (or panics) is dropped and counted. PostgreSQL runs in the
//! tests' `sealops_authcheck` database, where passwords are checked (see
//! `tests/dbs_support`), so "no longer logs in" means something there.

#[path = "../tests/dbs_support/mod.rs"]
mod dbs_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use age::{Identity as _, Recipient as _};
use sealops_controller::dbs::{Admin, Database, Driver};
use sealops_controller::leases::{Lease, LeaseStore};
use sealops_controller::revoke;
use sealops_core::backend::{Backend, DynamicRole, Plugin};
use sealops_core::keys::{Recipient, generate, seal_to};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

const ISSUE_CONCURRENCY: usize = 8;
const REVOKE_CONCURRENCY: [usize; 2] = [1, 16];
/// How many users are created at once while a revocation run is set up (not measured).
const SETUP_CONCURRENCY: usize = 8;
const UNWRAPS: usize = 1_000;
const FLOOR_RUNS: usize = 50;
const ROLE: &str = "bench";
const TTL: Duration = Duration::from_secs(3600);

fn count_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a count")),
        Err(_) => default,
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// The value below which `p` of `sorted` lie (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The prefix of every user this run creates (and so of what cleaning up may drop).
fn prefix() -> String {
    format!("v-bench-{}-", std::process::id())
}

/// One X25519 unwrap (ECDH + HKDF + ChaCha20-Poly1305 of a 16-byte file key), as in
/// `benches/reconcile.rs`: median of 5 runs of 1,000.
fn unwrap_limit() -> Duration {
    let (_, identity_text) = generate();
    let age_identity: age::x25519::Identity = identity_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("key line")
        .parse()
        .expect("identity");
    let file_key = age_core::format::FileKey::new(Box::new([7u8; 16]));
    let (stanzas, _) = age_identity
        .to_public()
        .wrap_file_key(&file_key)
        .expect("wraps");
    let stanza = &stanzas[0];
    let unwrap = || {
        age_identity
            .unwrap_stanza(stanza)
            .expect("matches")
            .expect("opens");
    };
    for _ in 0..100 {
        unwrap();
    }
    let total = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..UNWRAPS {
                    unwrap();
                }
                start.elapsed()
            })
            .collect(),
    );
    total / UNWRAPS as u32
}

/// The store's floors on this disk: one commit (a `put` of a lease with a sealed password),
/// p50 of `count`; and removing those `count` leases one commit each, as a sweep does, in all.
fn store_floors(recipient: &Recipient, count: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LeaseStore::open(dir.path()).expect("store");
    let sealed = seal_to(recipient, &SecretValue::from("x".repeat(32)));
    let mut ids = Vec::with_capacity(count);
    let times = (0..count)
        .map(|i| {
            let lease = Lease::issued(
                "floor",
                ROLE,
                &format!("u{i}"),
                "bench",
                now(),
                TTL,
                TTL,
                sealed.clone(),
            );
            ids.push(lease.id.clone());
            let start = Instant::now();
            store.put(&lease).expect("put");
            start.elapsed()
        })
        .collect();
    let start = Instant::now();
    for id in &ids {
        store.remove(id).expect("remove");
    }
    (median(times), start.elapsed())
}

/// One database under test.
struct Db {
    label: &'static str,
    backend: Backend,
    admin: Admin,
    driver: Arc<Driver>,
}

impl Db {
    fn new(label: &'static str, yaml: &str, admin_password: &str) -> Self {
        let backend = Backend::parse(yaml, "backends/bench.yaml").expect("bench backend parses");
        let admin = Admin::from_backend(&backend, SecretValue::from(admin_password));
        let driver = Arc::new(Driver::new(&backend, admin.clone()));
        Self {
            label,
            backend,
            admin,
            driver,
        }
    }

    fn role(&self) -> &DynamicRole {
        self.backend.dynamic_role(ROLE).expect("bench role")
    }

    fn resolve(&self) -> impl Fn(&Lease) -> Option<(Arc<Driver>, DynamicRole)> + '_ {
        move |lease| {
            (lease.backend == self.backend.name && lease.role == ROLE)
                .then(|| (Arc::clone(&self.driver), self.role().clone()))
        }
    }
}

fn postgres() -> Db {
    let yaml = format!(
        r#"sealops: v1
name: bench-pg
plugin: postgresql
connection:
  host: 127.0.0.1
  port: 5432
  database: {}
  username: postgres
  password: {{secret: infra/pg/admin, key: password}}
allowed_roles: ["*"]
roles:
  {ROLE}:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'
        - GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{{{name}}}}"
      revocation_statements:
        - REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{{{name}}}}"; DROP ROLE IF EXISTS "{{{{name}}}}"
      renew_statements:
        - ALTER ROLE "{{{{name}}}}" VALID UNTIL '{{{{expiration}}}}'
      default_ttl: 1h
      max_ttl: 24h
      username_template: "{}{{{{random 10}}}}"
"#,
        dbs_support::PG_DATABASE,
        prefix()
    );
    // Trusted as postgres in sealops_authcheck: the admin password is not looked at.
    Db::new("PostgreSQL", &yaml, "")
}

fn mariadb() -> Db {
    let yaml = format!(
        r#"sealops: v1
name: bench-maria
plugin: mysql
connection:
  host: 127.0.0.1
  port: 3306
  database: test
  username: root
  password: {{secret: infra/maria/admin, key: password}}
allowed_roles: ["*"]
roles:
  {ROLE}:
    dynamic:
      creation_statements:
        - CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'
        - GRANT SELECT ON test.* TO '{{{{name}}}}'@'%'
      revocation_statements: ["DROP USER IF EXISTS '{{{{name}}}}'@'%'"]
      default_ttl: 1h
      max_ttl: 24h
      username_template: "{}{{{{random 10}}}}"
"#,
        prefix()
    );
    // root has an empty password over TCP on this machine.
    Db::new("MariaDB", &yaml, "")
}

fn redis() -> Db {
    let yaml = format!(
        r#"sealops: v1
name: bench-redis
plugin: redis
connection:
  host: 127.0.0.1
  port: 6379
  username: default
  password: {{secret: infra/redis/admin, key: password}}
allowed_roles: ["*"]
roles:
  {ROLE}:
    dynamic:
      creation_statements: ["+@read", "+ping", "~cache:*"]
      default_ttl: 1h
      max_ttl: 24h
      username_template: "{}{{{{random 10}}}}"
"#,
        prefix()
    );
    // The default user is `nopass` on this machine.
    Db::new("Redis", &yaml, "unused")
}

/// Drops every user whose name starts with this run's prefix when dropped itself, panics
/// included, so that no run leaves users behind; says how many it found.
struct Leftovers {
    label: &'static str,
    plugin: Plugin,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        match drop_leftovers(self.plugin) {
            Ok(0) => println!("{}: cleanup: no user of this run is left", self.label),
            Ok(n) => println!(
                "{}: cleanup: dropped {n} users this run left behind",
                self.label
            ),
            Err(e) => println!(
                "{}: cleanup FAILED: {e}; drop the users named {}* by hand",
                self.label,
                prefix()
            ),
        }
    }
}

/// Runs a client tool; its stdout, or why not (never panics: it runs from `Drop`).
fn tool(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn drop_leftovers(plugin: Plugin) -> Result<usize, String> {
    let prefix = prefix();
    let pick = |listing: String| -> Vec<String> {
        listing
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    };
    // Names are ours: the prefix, then lowercase letters and digits. Nothing to escape.
    match plugin {
        Plugin::Postgresql => {
            let psql = |sql: &str| {
                tool(
                    "psql",
                    &[
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        dbs_support::PG_DATABASE,
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-Atc",
                        sql,
                    ],
                )
            };
            let names = pick(psql("SELECT rolname FROM pg_roles")?);
            for chunk in names.chunks(100) {
                // DROP OWNED also revokes the role's grants in this database.
                let sql: String = chunk
                    .iter()
                    .map(|n| format!("DROP OWNED BY \"{n}\"; DROP ROLE \"{n}\";"))
                    .collect();
                psql(&sql)?;
            }
            Ok(names.len())
        }
        Plugin::Mysql => {
            let mariadb = |sql: &str| {
                tool(
                    "mariadb",
                    &[
                        "-h",
                        "127.0.0.1",
                        "-P",
                        "3306",
                        "-u",
                        "root",
                        "-N",
                        "-B",
                        "-e",
                        sql,
                    ],
                )
            };
            let names = pick(mariadb("SELECT User FROM mysql.user WHERE Host = '%'")?);
            for chunk in names.chunks(100) {
                let users: Vec<String> = chunk.iter().map(|n| format!("'{n}'@'%'")).collect();
                mariadb(&format!("DROP USER IF EXISTS {}", users.join(", ")))?;
            }
            Ok(names.len())
        }
        Plugin::Redis => {
            let redis = |args: &[&str]| {
                let mut all = vec!["-h", "127.0.0.1", "-p", "6379"];
                all.extend_from_slice(args);
                tool("redis-cli", &all)
            };
            let names = pick(redis(&["ACL", "USERS"])?);
            for chunk in names.chunks(100) {
                let mut args = vec!["ACL", "DELUSER"];
                args.extend(chunk.iter().map(String::as_str));
                redis(&args)?;
            }
            Ok(names.len())
        }
    }
}

/// What one issue cost, step by step.
struct Issued {
    username: String,
    password: SecretValue,
    generate: Duration,
    seal: Duration,
    put: Duration,
    create: Duration,
    total: Duration,
}

/// Issues one credential as the controller will: name and password, the password sealed to
/// the controller, the lease committed, then the user created. `issued_at` in the past makes
/// a lease that is already expired (the database user stays valid for `TTL` from now, so a
/// login shows whether it was revoked).
async fn issue(db: &Db, store: &Arc<LeaseStore>, recipient: &Recipient, issued_at: i64) -> Issued {
    let start = Instant::now();
    let role = db.role();
    let username = role
        .username_template()
        .render(
            ROLE,
            &db.backend.name,
            db.backend.plugin.username_limit(),
            issued_at as u64,
        )
        .expect("name");
    let password = role.password_policy.generate();
    let generated = Instant::now();
    let sealed = seal_to(recipient, &password);
    let sealed_at = Instant::now();
    let lease = Lease::issued(
        &db.backend.name,
        ROLE,
        &username,
        "bench",
        issued_at,
        TTL,
        TTL * 24,
        sealed,
    );
    // A redb commit blocks on fsync: off the async workers, as the controller must do it.
    let writer = Arc::clone(store);
    tokio::task::spawn_blocking(move || writer.put(&lease))
        .await
        .expect("put task")
        .expect("lease recorded");
    let put_at = Instant::now();
    let until = OffsetDateTime::now_utc() + TTL;
    db.driver
        .create(role, &username, &password, until)
        .await
        .unwrap_or_else(|e| panic!("{}: create: {e}", db.label));
    let created = Instant::now();
    Issued {
        username,
        password,
        generate: generated - start,
        seal: sealed_at - generated,
        put: put_at - sealed_at,
        create: created - put_at,
        total: created - start,
    }
}

/// Issues `count` credentials with `concurrency` at once; the wall time and each issue.
async fn issue_many(
    db: &Arc<Db>,
    store: &Arc<LeaseStore>,
    recipient: &Recipient,
    issued_at: i64,
    count: usize,
    concurrency: usize,
) -> (Duration, Vec<Issued>) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (db, store, recipient, next) = (
            Arc::clone(db),
            Arc::clone(store),
            recipient.clone(),
            Arc::clone(&next),
        );
        workers.spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                mine.push(issue(&db, &store, &recipient, issued_at).await);
            }
            mine
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = workers.join_next().await {
        all.extend(done.expect("issuing task"));
    }
    (start.elapsed(), all)
}

/// Revokes everything in `store` (due by then or not) and checks it all went.
async fn revoke_all(db: &Db, store: &LeaseStore) {
    let far = now() + 10 * 86_400;
    let report = revoke::sweep(
        store,
        store.revocations_due(far).expect("due"),
        far,
        8,
        db.resolve(),
    )
    .await
    .expect("store");
    assert!(
        report.failed.is_empty(),
        "{}: {:?}",
        db.label,
        report.failed
    );
    assert!(store.list("").expect("list").is_empty());
}

/// A user no longer logs in (refused, not unreachable).
async fn assert_refused(db: &Db, username: &str, password: &SecretValue) {
    match db.driver.login(username, password).await {
        Err(e) if e.is_login_refused() => {}
        Err(e) => panic!("{}: login after revocation: {e}", db.label),
        Ok(()) => panic!(
            "{}: {username} still logs in after its revocation",
            db.label
        ),
    }
}

async fn bench_database(db: Db, recipient: &Recipient, issues: usize, revokes: usize) {
    let _leftovers = Leftovers {
        label: db.label,
        plugin: db.backend.plugin,
    };
    let db = Arc::new(db);
    let label = db.label;

    // The floor: an admin login, the least any operation costs (a fresh connection each).
    let admin_password = db.admin.password.clone();
    for _ in 0..5 {
        db.driver
            .login(&db.admin.username, &admin_password)
            .await
            .unwrap_or_else(|e| panic!("{label}: admin login: {e}"));
    }
    let mut floor = Vec::with_capacity(FLOOR_RUNS);
    for _ in 0..FLOOR_RUNS {
        let start = Instant::now();
        db.driver
            .login(&db.admin.username, &admin_password)
            .await
            .expect("admin login");
        floor.push(start.elapsed());
    }
    println!(
        "{label} at {}: round-trip floor (a fresh admin login: connect, authenticate, one trivial command) p50 {:.2} ms",
        db.admin.address(),
        ms(median(floor))
    );

    // Issuing.
    for concurrency in [1, ISSUE_CONCURRENCY] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LeaseStore::open(dir.path()).expect("store"));
        let (wall, issued) = issue_many(&db, &store, recipient, now(), issues, concurrency).await;
        assert_eq!(issued.len(), issues);
        assert_eq!(store.list("").expect("list").len(), issues);
        // One sample logs in: the credentials are real.
        let sample = &issued[issued.len() / 2];
        db.driver
            .login(&sample.username, &sample.password)
            .await
            .unwrap_or_else(|e| panic!("{label}: an issued credential does not log in: {e}"));
        let mut totals: Vec<Duration> = issued.iter().map(|i| i.total).collect();
        totals.sort();
        let p50 = |f: fn(&Issued) -> Duration| median(issued.iter().map(f).collect());
        println!(
            "{label}: issue {issues} at concurrency {concurrency}: {:.0} credentials/s; per issue p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; step p50: name+password {:.1} µs, seal {:.1} µs, store put {:.2} ms, database create {:.2} ms",
            issues as f64 / wall.as_secs_f64(),
            ms(percentile(&totals, 0.5)),
            ms(percentile(&totals, 0.99)),
            ms(*totals.last().expect("issued")),
            p50(|i| i.generate).as_secs_f64() * 1e6,
            p50(|i| i.seal).as_secs_f64() * 1e6,
            ms(p50(|i| i.put)),
            ms(p50(|i| i.create)),
        );
        revoke_all(&db, &store).await;
        assert_refused(&db, &sample.username, &sample.password).await;
    }

    // Revoking a backlog of expired leases.
    for concurrency in REVOKE_CONCURRENCY {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LeaseStore::open(dir.path()).expect("store"));
        let setup = Instant::now();
        let issued_at = now() - 2 * TTL.as_secs() as i64;
        let (_, issued) = issue_many(
            &db,
            &store,
            recipient,
            issued_at,
            revokes,
            SETUP_CONCURRENCY,
        )
        .await;
        let setup = setup.elapsed();
        let samples: Vec<&Issued> = [0, issued.len() / 2, issued.len() - 1]
            .iter()
            .map(|&i| &issued[i])
            .collect();
        for sample in &samples {
            db.driver
                .login(&sample.username, &sample.password)
                .await
                .unwrap_or_else(|e| panic!("{label}: logs in before the sweep: {e}"));
        }

        let at = now();
        let start = Instant::now();
        let due = store.revocations_due(at).expect("due");
        assert_eq!(due.len(), revokes, "every lease has expired");
        let report = revoke::sweep(&store, due, at, concurrency, db.resolve())
            .await
            .expect("store");
        let elapsed = start.elapsed();

        assert!(
            report.failed.is_empty(),
            "{label}: {} revocations failed, first: {:?}",
            report.failed.len(),
            report.failed.first().map(|f| &f.problem)
        );
        assert_eq!(report.revoked.len(), revokes);
        assert!(
            store.list("").expect("list").is_empty(),
            "the store is empty"
        );
        for sample in &samples {
            assert_refused(&db, &sample.username, &sample.password).await;
        }
        println!(
            "{label}: revoke {revokes} expired leases, one sweep at concurrency {concurrency}: {:.2} s, {:.0} leases/s ({:.2} ms each; set-up of {revokes} users and leases took {:.1} s)",
            elapsed.as_secs_f64(),
            revokes as f64 / elapsed.as_secs_f64(),
            ms(elapsed) / revokes as f64,
            setup.as_secs_f64(),
        );
    }
}

/// Whether a database is up (started if it can be, a notice printed when it is skipped), and
/// the database.
type Candidate = (fn() -> bool, fn() -> Db);

fn main() {
    let issues = count_from_env("SEALOPS_BENCH_ISSUES", 200);
    let revokes = count_from_env("SEALOPS_BENCH_REVOKES", 1_000);
    assert!(issues > 0 && revokes > 0, "counts must be positive");

    let (identity, _) = generate();
    let recipient = identity.recipient().clone();
    let unwrap = unwrap_limit();
    let (commit, removals) = store_floors(&recipient, revokes);
    println!(
        "floors: one X25519 unwrap {:.1} µs (sealing a password is one X25519 wrap, the same work); one lease-store commit (redb, fsync) p50 {:.2} ms → at most {:.0} leases put per second, whatever the concurrency; removing {revokes} leases one commit each (what a sweep does, no database) {:.2} s = {:.0} leases/s",
        unwrap.as_secs_f64() * 1e6,
        ms(commit),
        1.0 / commit.as_secs_f64(),
        removals.as_secs_f64(),
        revokes as f64 / removals.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let databases: [Candidate; 3] = [
        (dbs_support::postgres_password_database, postgres),
        (dbs_support::mariadb_up, mariadb),
        (dbs_support::redis_up, redis),
    ];
    for (up, make) in databases {
        // Prints why when it skips a database.
        if !up() {
            continue;
        }
        runtime.block_on(bench_database(make(), &recipient, issues, revokes));
    }
}
