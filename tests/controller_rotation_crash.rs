//! kill -9 of the real controller while it rotates static passwords and issues dynamic users,
//! on the real PostgreSQL, MariaDB and Redis: at least 100 trials in all. After every restart
//! the password in the outputs logs in (no lockout), and every dynamic user the database holds
//! is a lease the controller knows; at the end, revoking them leaves no user behind.

use crate::common;
use crate::dbs_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::controller::Fleet;
use crate::common::controller::kit::{self, Running};
use crate::credentials::{
    Creds, mariadb_login, mariadb_users, postgres_login, postgres_users, read_creds, redis_cli,
    redis_login, redis_users, wait,
};
use crate::dbs_support::PG_DATABASE;

/// Trials per database (three databases: 102 in all).
const TRIALS: usize = 34;

#[derive(Clone, Copy)]
enum Kind {
    Postgres,
    Mariadb,
    Redis,
}

/// One database under test: its backend file and the accounts the test made.
struct Db {
    kind: Kind,
    name: &'static str,
    backend: String,
    /// The sealed admin password (PostgreSQL trusts 127.0.0.1 and Redis's default user has
    /// none on this machine, so theirs is not checked; MariaDB's test admin has a real one).
    admin_password: String,
    /// The static role's account, and the test's admin where it made one.
    accounts: Vec<String>,
}

impl Db {
    fn login(&self, c: &Creds) -> bool {
        match self.kind {
            Kind::Postgres => postgres_login(c),
            Kind::Mariadb => mariadb_login(c),
            Kind::Redis => redis_login(6379, c),
        }
    }

    /// The dynamic users of this test (`<tag>-…`).
    fn users(&self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag}-");
        match self.kind {
            Kind::Postgres => postgres_users(&prefix),
            Kind::Mariadb => mariadb_users(&prefix),
            Kind::Redis => redis_users(6379, &prefix),
        }
    }

    fn drop_accounts(&self) {
        for account in &self.accounts {
            match self.kind {
                Kind::Postgres => {
                    dbs_support::psql(PG_DATABASE, &format!("DROP ROLE IF EXISTS \"{account}\""));
                }
                Kind::Mariadb => {
                    dbs_support::mariadb(&format!("DROP USER IF EXISTS '{account}'@'%'"));
                }
                Kind::Redis => {
                    redis_cli(6379, &["ACL", "DELUSER", account]);
                }
            }
        }
    }
}

fn postgres(tag: &str) -> Option<Db> {
    if !dbs_support::postgres_password_database() {
        return None;
    }
    let account = format!("{tag}_st");
    dbs_support::psql(
        PG_DATABASE,
        &format!("CREATE ROLE \"{account}\" LOGIN PASSWORD 'initial'"),
    );
    let backend = format!(
        r#"sealops: v1
name: db
plugin: postgresql
connection:
  host: 127.0.0.1
  port: 5432
  database: {PG_DATABASE}
  username: postgres
  password: {{secret: infra/db/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'
      revocation_statements: ['DROP ROLE IF EXISTS "{{{{name}}}}"']
      default_ttl: 1h
      max_ttl: 2h
      username_template: "{tag}-{{{{random 8}}}}"
  st:
    static:
      username: {account}
      rotation_period: 1h
"#
    );
    Some(Db {
        kind: Kind::Postgres,
        name: "PostgreSQL",
        backend,
        admin_password: "unchecked".into(),
        accounts: vec![account],
    })
}

fn mariadb(tag: &str) -> Option<Db> {
    if !dbs_support::mariadb_up() {
        return None;
    }
    let account = format!("{tag}_st");
    let admin = format!("{tag}_adm");
    dbs_support::mariadb(&format!(
        "CREATE USER '{account}'@'%' IDENTIFIED BY 'initial'; CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-{tag}'; GRANT ALL ON *.* TO '{admin}'@'%' WITH GRANT OPTION"
    ));
    let backend = format!(
        r#"sealops: v1
name: db
plugin: mysql
connection:
  host: 127.0.0.1
  port: 3306
  database: test
  username: {admin}
  password: {{secret: infra/db/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    dynamic:
      creation_statements: ["CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'"]
      revocation_statements: ["DROP USER IF EXISTS '{{{{name}}}}'@'%'"]
      default_ttl: 1h
      max_ttl: 2h
      username_template: "{tag}-{{{{random 8}}}}"
  st:
    static:
      username: {account}
      rotation_period: 1h
"#
    );
    Some(Db {
        kind: Kind::Mariadb,
        name: "MariaDB",
        backend,
        admin_password: format!("admin-{tag}"),
        accounts: vec![account, admin],
    })
}

fn redis(tag: &str) -> Option<Db> {
    if !dbs_support::redis_up() {
        return None;
    }
    let account = format!("{tag}_st");
    redis_cli(
        6379,
        &[
            "ACL",
            "SETUSER",
            &account,
            "on",
            ">initial",
            "+ping",
            "+acl|whoami",
        ],
    );
    let backend = format!(
        r#"sealops: v1
name: db
plugin: redis
connection:
  host: 127.0.0.1
  port: 6379
  username: default
  password: {{secret: infra/db/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    dynamic:
      creation_statements: ["+ping", "+acl|whoami"]
      default_ttl: 1h
      max_ttl: 2h
      username_template: "{tag}-{{{{random 8}}}}"
  st:
    static:
      username: {account}
      rotation_period: 1h
"#
    );
    Some(Db {
        kind: Kind::Redis,
        name: "Redis",
        backend,
        admin_password: "unchecked".into(),
        accounts: vec![account],
    })
}

fn fleet_for(db: &Db) -> Fleet {
    let fleet = kit::single_approver_fleet();
    fleet.write_sealed("infra/db/admin", &[("password", &db.admin_password)]);
    fleet.write("backends/db.yaml", &db.backend);
    let mut policy = common::controller::PAYMENTS_POLICY.to_owned();
    policy.push_str("path \"db/creds/app\" { capabilities = [\"read\"] }\npath \"db/static-creds/st\" { capabilities = [\"read\"] }\n");
    fleet.write("policies/payments-runtime.hcl", &policy);
    fleet.write(
        "targets/payments.yaml",
        "sealops: v1\nidentity: payments\noutputs:\n  - dynamic: db/creds/app\n    format: json\n    path: payments/dynamic.json\n  - static: db/static-creds/st\n    format: json\n    path: payments/static.json\n",
    );
    fleet.commit("credentials for payments");
    fleet
}

/// The usernames of the leases the controller knows (through its API).
fn known_leases(fleet: &Fleet) -> Vec<String> {
    let out = fleet
        .world
        .sealops()
        .args(["lease", "list", "--json", "--state-dir"])
        .arg(&fleet.state)
        .output()
        .expect("sealops runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lease list JSON");
    let leases = json
        .get("leases")
        .and_then(|l| l.as_array())
        .or_else(|| json.as_array())
        .cloned()
        .unwrap_or_default();
    leases
        .iter()
        .filter_map(|l| l["username"].as_str().map(str::to_owned))
        .collect()
}

/// A controller that has recovered: in sync, no rotation pending, and the outputs' passwords
/// log in. Returns the static credentials in the outputs.
fn recovered(fleet: &Fleet, db: &Db, controller: &mut Running) -> Creds {
    let mut found = None;
    wait(controller, "recovery: outputs that log in", || {
        let (Some(static_creds), Some(dynamic)) = (
            read_creds(fleet, "payments/static.json"),
            read_creds(fleet, "payments/dynamic.json"),
        ) else {
            return false;
        };
        let status = kit::http_get(controller.port, "/status")
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        // Until the first reconcile published the static role (empty before), a rotation the
        // kill interrupted may still be finishing.
        let pending = status.as_ref().is_none_or(|s| {
            s["credentials"]["rotations"]
                .as_array()
                .is_none_or(|r| r.is_empty() || r.iter().any(|r| !r["pending"].is_null()))
        });
        if pending || !db.login(&static_creds) || !db.login(&dynamic) {
            return false;
        }
        found = Some(static_creds);
        true
    });
    found.expect("found")
}

fn trials(db: Db, tag: &str) {
    let fleet = fleet_for(&db);
    let mut controller = kit::spawn(&fleet, "leases:\n  revoke_grace: 1s\n");
    recovered(&fleet, &db, &mut controller);
    // How long `sealops rotate` takes from start to answer here: kills are spread over that
    // window, so they land between the protocol's steps rather than before or after it.
    let started = std::time::Instant::now();
    let timed = Command::new(common::SEALOPS)
        .env("HOME", &fleet.world.home)
        .args(["rotate", "db/static-creds/st", "--state-dir"])
        .arg(&fleet.state)
        .output()
        .expect("sealops rotate runs");
    assert!(
        timed.status.success(),
        "{}",
        String::from_utf8_lossy(&timed.stderr)
    );
    let window = started.elapsed().as_micros().max(1_000) as u64;
    let mut last = recovered(&fleet, &db, &mut controller);
    let mut kills_during_rotate = 0;
    // Kills that landed after the rotation began and before the API answered: the command
    // failed, yet after recovery the password had changed.
    let mut kills_mid_rotation = 0;
    for trial in 0..TRIALS {
        // Half the trials kill mid-rotation (the API asked for one), half at a random moment
        // of a fresh start (recovery, the first reconcile, a dynamic issue).
        let delay = if trial % 2 == 0 {
            Duration::from_micros(rand::random::<u64>() % (window * 3 / 2))
        } else {
            Duration::from_millis(rand::random::<u64>() % 120)
        };
        let mut unanswered = false;
        if trial % 2 == 0 {
            let mut rotate = Command::new(common::SEALOPS)
                .env("HOME", &fleet.world.home)
                .args(["rotate", "db/static-creds/st", "--state-dir"])
                .arg(&fleet.state)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sealops rotate starts");
            std::thread::sleep(delay);
            let _ = controller.child.kill();
            let _ = controller.child.wait();
            let answered = rotate.wait().is_ok_and(|s| s.success());
            kills_during_rotate += 1;
            unanswered = !answered;
        } else {
            drop(controller);
            controller = kit::spawn(&fleet, "leases:\n  revoke_grace: 1s\n");
            std::thread::sleep(delay);
            let _ = controller.child.kill();
            let _ = controller.child.wait();
        }
        controller = kit::spawn(&fleet, "leases:\n  revoke_grace: 1s\n");
        let now = recovered(&fleet, &db, &mut controller);
        assert!(
            db.login(&now),
            "{} trial {trial}: the outputs' password logs in",
            db.name
        );
        if now.password != last.password {
            if unanswered {
                kills_mid_rotation += 1;
            }
            assert!(
                !db.login(&last),
                "{} trial {trial}: the replaced password still logs in",
                db.name
            );
        }
        last = now;
        // Every dynamic user in the database is a lease the controller knows.
        let known = known_leases(&fleet);
        for user in db.users(tag) {
            assert!(
                known.contains(&user),
                "{} trial {trial}: user {user} exists but no lease names it (orphaned); leases: {known:?}",
                db.name
            );
        }
    }
    // Revoking every lease leaves no dynamic user of this test behind.
    fleet.write("targets/payments.yaml", common::controller::PAYMENTS_TARGET);
    fleet.commit("payments no longer reads database credentials");
    wait(&controller, "every dynamic user revoked", || {
        db.users(tag).is_empty()
    });
    assert_eq!(controller.terminate(), 0, "{}", controller.log());
    db.drop_accounts();
    eprintln!(
        "{}: rotate takes {window} µs end to end; {TRIALS} trials, {kills_during_rotate} killed after asking for a rotation, {kills_mid_rotation} of them mid-rotation (unanswered, yet rotated); the outputs' password always logged in",
        db.name
    );
}

fn tag() -> String {
    format!("k{:08x}", rand::random::<u32>())
}

#[test]
fn kill_9_during_rotation_on_postgres() {
    let tag = tag();
    if let Some(db) = postgres(&tag) {
        trials(db, &tag);
    }
}

#[test]
fn kill_9_during_rotation_on_mariadb() {
    let tag = tag();
    if let Some(db) = mariadb(&tag) {
        trials(db, &tag);
    }
}

#[test]
fn kill_9_during_rotation_on_redis() {
    let tag = tag();
    if let Some(db) = redis(&tag) {
        trials(db, &tag);
    }
}
