//! Database credentials as the controller's outputs show them, and the databases' own clients
//! to check them (tests/controller_credentials.rs, tests/controller_rotation_crash.rs). Included
//! with `#[path]` by tests that also include `dbs_support`.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::controller::Fleet;
use crate::common::controller::kit::Running;
use crate::dbs_support::{self, PG_DATABASE};

/// How long a wait may take: a hang guard, never a timing claim.
const HANG_GUARD: Duration = Duration::from_secs(90);

/// A username and password, as an output with `format: json` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub username: String,
    pub password: String,
}

/// The credentials in the JSON output `output` (relative to the output root), if written.
pub fn read_creds(fleet: &Fleet, output: &str) -> Option<Creds> {
    let json: serde_json::Value = serde_json::from_str(&fleet.output(output)?).ok()?;
    Some(Creds {
        username: json["username"].as_str()?.to_owned(),
        password: json["password"].as_str()?.to_owned(),
    })
}

/// Polls `done` until it holds; on the hang guard, fails with the controller's log.
pub fn wait(controller: &Running, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; controller log:\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `/status` until `done` holds for it; on the hang guard, fails with the last document
/// and the controller's log.
pub fn wait_status(
    controller: &mut Running,
    what: &str,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let status = controller.status();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; status {status:#}\ncontroller log:\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the database client runs")
        .success()
}

/// Logs in with psql to the database where passwords are checked (see `dbs_support`).
pub fn postgres_login(c: &Creds) -> bool {
    succeeds(
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                &c.username,
                "-d",
                PG_DATABASE,
            ])
            .args(["-w", "-Atc", "SELECT 1"])
            .env("PGPASSWORD", &c.password),
    )
}

pub fn mariadb_login(c: &Creds) -> bool {
    succeeds(
        Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", &c.username])
            .arg(format!("-p{}", c.password))
            .args(["-N", "-B", "-e", "SELECT 1"]),
    )
}

/// `redis-cli` against the Redis on `port`.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--no-auth-warning",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether Redis on `port` takes the credentials. After a refused AUTH, redis-cli carries on
/// as the default user (which on this machine's shared Redis needs no password), so the check
/// is who the server says we are.
pub fn redis_login(port: u16, c: &Creds) -> bool {
    redis_cli(
        port,
        &[
            "--user",
            &c.username,
            "--pass",
            &c.password,
            "ACL",
            "WHOAMI",
        ],
    ) == c.username
}

/// PostgreSQL roles whose names start with `prefix`.
pub fn postgres_users(prefix: &str) -> Vec<String> {
    dbs_support::psql(
        PG_DATABASE,
        &format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%' ORDER BY 1"),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// MariaDB users whose names start with `prefix`.
pub fn mariadb_users(prefix: &str) -> Vec<String> {
    dbs_support::mariadb(&format!(
        "SELECT user FROM mysql.user WHERE user LIKE '{prefix}%' ORDER BY 1"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Redis ACL users on `port` whose names start with `prefix`.
pub fn redis_users(port: u16, prefix: &str) -> Vec<String> {
    redis_cli(port, &["ACL", "USERS"])
        .lines()
        .filter(|u| u.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}
