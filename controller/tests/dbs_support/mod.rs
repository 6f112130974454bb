//! Shared set-up of the database driver tests: the local services, unique names, and a
//! PostgreSQL database where passwords are actually checked.
//!
//! This machine's PostgreSQL trusts every local connection (`host all all 127.0.0.1/32
//! trust`): a login with any password succeeds, so a login check against it could never fail.
//! [`postgres_password_database`] therefore adds, once, two rules at the top of pg_hba.conf
//! for one throwaway database only (`sealops_authcheck`): `postgres` stays trusted there (it
//! is the tests' admin), every other user must give its SCRAM password. It then proves the
//! rule is in force (a wrong password must be refused) before any test relies on it.

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PG_DATABASE: &str = "sealops_authcheck";
const HBA_MARKER: &str = "# sealops tests: password auth in sealops_authcheck";

/// A name no other test (or test run) uses: `prefix` + pid + counter + randomness.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u32 = rand::random();
    format!(
        "{prefix}{}_{n}_{:06x}",
        std::process::id(),
        random & 0xff_ffff
    )
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn reachable(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// Whether the service on `port` is up, starting it with `start` if not. Down and not
/// startable: a panic under CI=true, else `false` and the caller skips, saying so.
pub fn ensure_service(name: &str, port: u16, start: &str) -> bool {
    if reachable(port) {
        return true;
    }
    eprintln!("{name} is not answering on 127.0.0.1:{port}; starting it: {start}");
    let status = Command::new("sh").arg("-c").arg(start).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reachable(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let message =
        format!("{name} on 127.0.0.1:{port} is down and `{start}` ({status:?}) did not start it");
    if in_ci() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    false
}

pub fn postgres_up() -> bool {
    ensure_service(
        "PostgreSQL",
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    )
}

pub fn mariadb_up() -> bool {
    ensure_service(
        "MariaDB",
        3306,
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    )
}

pub fn redis_up() -> bool {
    ensure_service(
        "Redis",
        6379,
        "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    )
}

/// `psql` as the trusted superuser; panics with its stderr on failure.
pub fn psql(database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Makes [`PG_DATABASE`] a database where passwords are checked (see the module comment) and
/// proves it; `false` when PostgreSQL is down outside CI.
pub fn postgres_password_database() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if !postgres_up() {
            return false;
        }
        let hba_file = psql("test", "SHOW hba_file");
        let hba = std::fs::read_to_string(&hba_file).expect("read pg_hba.conf (the tests run as root here)");
        if !hba.contains(HBA_MARKER) {
            // First match wins: these lines must come before the file's `trust` rules.
            let rules = format!(
                "{HBA_MARKER}\nhost {PG_DATABASE} postgres 127.0.0.1/32 trust\nhost {PG_DATABASE} all 127.0.0.1/32 scram-sha-256\n"
            );
            // Replaced atomically (a reader never sees half a file), with the original's owner
            // and mode: the server reads it as `postgres`.
            use std::os::unix::fs::MetadataExt;
            let metadata = std::fs::metadata(&hba_file).expect("stat pg_hba.conf");
            let staged = format!("{hba_file}.sealops-tests.{}", std::process::id());
            std::fs::write(&staged, format!("{rules}{hba}")).expect("write pg_hba.conf");
            std::fs::set_permissions(&staged, metadata.permissions()).expect("chmod");
            std::os::unix::fs::chown(&staged, Some(metadata.uid()), Some(metadata.gid()))
                .expect("chown");
            std::fs::rename(&staged, &hba_file).expect("replace pg_hba.conf");
            psql("test", "SELECT pg_reload_conf()");
        }
        let exists = || {
            psql("test", &format!("SELECT count(*) FROM pg_database WHERE datname = '{PG_DATABASE}'")) == "1"
        };
        if !exists() {
            // Another test process may create it at the same moment; either way it exists after.
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
                .arg(format!("CREATE DATABASE {PG_DATABASE}"))
                .output();
            assert!(exists(), "cannot create database {PG_DATABASE}");
        }
        // Prove it: a wrong password must be refused there (the reload is asynchronous).
        let probe = unique("sealops_t_probe_");
        psql(PG_DATABASE, &format!("CREATE ROLE {probe} LOGIN PASSWORD 'right-password'"));
        let refused = |password: &str| {
            let output = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", &probe, "-d", PG_DATABASE, "-w", "-Atc", "SELECT 1"])
                .env("PGPASSWORD", password)
                .output()
                .expect("psql runs");
            !output.status.success()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut enforced = refused("wrong-password");
        while !enforced && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            enforced = refused("wrong-password");
        }
        let accepted = !refused("right-password");
        psql(PG_DATABASE, &format!("DROP ROLE {probe}"));
        assert!(
            enforced && accepted,
            "pg_hba.conf rules for {PG_DATABASE} are not in force (wrong password refused: {enforced}, right one accepted: {accepted}); login checks would be meaningless"
        );
        true
    })
}

/// `mariadb` as root (empty password over TCP); panics with stderr on failure.
pub fn mariadb(sql: &str) -> String {
    let output = Command::new("mariadb")
        .args([
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
        ])
        .output()
        .expect("mariadb client runs");
    assert!(
        output.status.success(),
        "mariadb {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Hostile user names: quotes of every kind, backslashes, statement terminators, comments and
/// non-ASCII (an emoji only where the database can store it: MySQL user names are utf8mb3).
/// Short enough for every database's limit (PostgreSQL 63 bytes, MySQL 32 characters).
pub fn hostile_names(prefix: &str, emoji: bool) -> Vec<String> {
    let non_ascii = if emoji {
        "é-ü-🔑 $$ /*"
    } else {
        "é-ü-ß $$ /*"
    };
    [
        "a\"; DROP TABLE s; --",
        "b'); DROP TABLE s; --",
        "c\\' OR 1=1 #",
        "d`x`\\\"y",
        non_ascii,
    ]
    .iter()
    .map(|s| format!("{prefix}{s}"))
    .collect()
}

/// Hostile passwords: the same, and more.
pub fn hostile_passwords() -> Vec<String> {
    [
        "p'; DROP TABLE s; --",
        "p\"; DROP TABLE s; --",
        "back\\slash\\' ' \\",
        "$$ dollar $tag$ `tick` /* c */ -- c",
        "ünïcødé 🔑 spaces and\ttab",
        "'",
        "\\",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}
