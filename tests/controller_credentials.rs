//! Dynamic and static database credentials through the real controller, on the real local
//! PostgreSQL, MariaDB and Redis: issued credentials log in and reach the outputs; replaced,
//! expired and revoked ones stop logging in; a restart revokes what expired meanwhile; a
//! database that is down while a lease is revoked is retried until it is back.

use crate::common;
use crate::dbs_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::credentials::{
    Creds, mariadb_login, mariadb_users, postgres_login, postgres_users, read_creds, redis_login,
    wait, wait_status,
};

use crate::common::controller::Fleet;
use crate::common::controller::kit::{self, Running};
use crate::dbs_support::{PG_DATABASE, unique};

fn pg_role_exists(name: &str) -> bool {
    let escaped = name.replace('\'', "''");
    dbs_support::psql(
        PG_DATABASE,
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{escaped}'"),
    ) == "1"
}

/// The fleet's repository plus a backend, its admin password, a policy granting `paths` to
/// the payments identity, and a target with one JSON output per path.
fn with_backend(fleet: &Fleet, backend: &str, outputs: &[(&str, &str)]) {
    let name = backend
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .expect("the backend has a name");
    fleet.write_sealed(
        &format!("infra/{name}/admin"),
        &[("password", "unused-by-trust")],
    );
    fleet.write(&format!("backends/{name}.yaml"), backend);
    let mut policy = common::controller::PAYMENTS_POLICY.to_owned();
    let mut target = "sealops: v1\nidentity: payments\noutputs:\n".to_owned();
    for (path, output) in outputs {
        policy.push_str(&format!(
            "path \"{path}\" {{ capabilities = [\"read\"] }}\n"
        ));
        let kind = if path.contains("/static-creds/") {
            "static"
        } else {
            "dynamic"
        };
        target.push_str(&format!(
            "  - {kind}: {path}\n    format: json\n    path: {output}\n"
        ));
    }
    fleet.write("policies/payments-runtime.hcl", &policy);
    fleet.write("targets/payments.yaml", &target);
    fleet.commit("a database backend and credentials for payments");
}

fn pg_backend(tag: &str, ttl: &str, max_ttl: &str) -> String {
    format!(
        r#"sealops: v1
name: pg
plugin: postgresql
connection:
  host: 127.0.0.1
  port: 5432
  database: {PG_DATABASE}
  username: postgres
  password: {{secret: infra/pg/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'
      revocation_statements:
        - DROP ROLE IF EXISTS "{{{{name}}}}"
      renew_statements:
        - ALTER ROLE "{{{{name}}}}" VALID UNTIL '{{{{expiration}}}}'
      default_ttl: {ttl}
      max_ttl: {max_ttl}
      username_template: "{tag}-{{{{random 8}}}}"
"#
    )
}

fn status_leases(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["credentials"]["leases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn spawn(fleet: &Fleet, grace: &str) -> Running {
    kit::spawn(fleet, &format!("leases:\n  revoke_grace: {grace}\n"))
}

#[test]
fn postgres_dynamic_credentials_are_issued_renewed_replaced_and_revoked() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let tag = unique("t").replace('_', "-");
    let fleet = kit::single_approver_fleet();
    with_backend(
        &fleet,
        &pg_backend(&tag, "6s", "14s"),
        &[("pg/creds/app", "payments/pg.json")],
    );
    let mut controller = spawn(&fleet, "1s");
    let mut first = None;
    wait(&controller, "credentials in the output", || {
        first = read_creds(&fleet, "payments/pg.json");
        first.is_some()
    });
    let first = first.expect("read");
    assert!(first.username.starts_with(&tag), "{first:?}");
    assert!(postgres_login(&first), "issued credentials log in");
    let wrong = Creds {
        password: "wrong".into(),
        ..first.clone()
    };
    assert!(!postgres_login(&wrong), "the database checks passwords");

    // Renewed at about two-thirds of the TTL (its expiry moves later), never past max_ttl,
    // then replaced.
    let first_lease = |s: &serde_json::Value| {
        status_leases(s).into_iter().find(|l| {
            l["state"] == "active"
                && l["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&first.username))
        })
    };
    let issued = wait_status(&mut controller, "the lease in /status", |s| {
        first_lease(s).is_some()
    });
    let issued = first_lease(&issued).expect("listed");
    let issued_expiry = issued["expires_at"].as_i64().expect("expires_at");
    let max = issued["max_expires_at"].as_i64().expect("max_expires_at");
    let renewed = wait_status(&mut controller, "the lease renewed", |s| {
        first_lease(s).is_some_and(|l| l["expires_at"].as_i64() > Some(issued_expiry))
    });
    let renewed = first_lease(&renewed).expect("listed");
    assert!(
        renewed["expires_at"].as_i64() <= Some(max),
        "renewed past max_ttl: {renewed}"
    );
    let mut second = None;
    kit::wait_until("replacement credentials after max_ttl", || {
        let now = read_creds(&fleet, "payments/pg.json");
        let replaced = now.as_ref().is_some_and(|c| c.username != first.username);
        if replaced {
            second = now;
        } else {
            let status = controller.status();
            for l in status_leases(&status) {
                if let (Some(exp), Some(lmax)) =
                    (l["expires_at"].as_i64(), l["max_expires_at"].as_i64())
                {
                    assert!(exp <= lmax, "a lease renewed past max_ttl: {l}");
                }
            }
        }
        replaced
    });
    let second = second.expect("read");
    assert!(postgres_login(&second), "the replacement logs in");
    wait(
        &controller,
        "the replaced user revoked after the grace period",
        || !pg_role_exists(&first.username),
    );
    assert!(
        !postgres_login(&first),
        "replaced credentials no longer log in"
    );
    let renewed: Vec<_> = std::fs::read_to_string(&controller.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("renewal failed"))
        .map(str::to_owned)
        .collect();
    assert!(renewed.is_empty(), "{renewed:?}");

    // Stopped past the lease's expiry: the restart revokes it at once and issues anew.
    assert_eq!(controller.terminate(), 0, "{}", controller.log());
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        pg_role_exists(&second.username),
        "nobody revoked it while stopped"
    );
    let mut controller = spawn(&fleet, "1s");
    wait(
        &controller,
        "the expired lease revoked after the restart",
        || !pg_role_exists(&second.username),
    );
    wait(&controller, "new credentials after the restart", || {
        read_creds(&fleet, "payments/pg.json")
            .is_some_and(|c| c.username != second.username && postgres_login(&c))
    });

    // The target drops the output: its lease is revoked, and no user of this run is left.
    fleet.write("targets/payments.yaml", common::controller::PAYMENTS_TARGET);
    fleet.commit("payments no longer reads database credentials");
    wait(&controller, "every user of this test revoked", || {
        postgres_users(&tag).is_empty()
    });
    let status = wait_status(&mut controller, "no leases left", |s| {
        status_leases(s).is_empty()
    });
    assert!(!status.to_string().contains(&second.password));
    let log = controller.log();
    for secret in [&first.password, &second.password] {
        assert!(!log.contains(secret.as_str()), "the log holds a password");
    }
    assert_eq!(controller.terminate(), 0);
}

fn mariadb_user_exists(name: &str) -> bool {
    dbs_support::mariadb(&format!(
        "SELECT count(*) FROM mysql.user WHERE user = '{name}'"
    )) != "0"
}

#[test]
fn mariadb_static_rotation_and_dynamic_users_with_a_real_admin_password() {
    if !dbs_support::mariadb_up() {
        return;
    }
    // Short names: MySQL user names hold 32 characters.
    let tag = format!("m{:08x}", rand::random::<u32>());
    let admin = format!("{tag}_adm");
    let account = format!("{tag}_st");
    dbs_support::mariadb(&format!(
        "CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-pw-{tag}'; GRANT ALL ON *.* TO '{admin}'@'%' WITH GRANT OPTION; CREATE USER '{account}'@'%' IDENTIFIED BY 'initial-{tag}'"
    ));
    let fleet = kit::single_approver_fleet();
    let backend = format!(
        r#"sealops: v1
name: maria
plugin: mysql
connection:
  host: 127.0.0.1
  port: 3306
  database: test
  username: {admin}
  password: {{secret: infra/maria/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    dynamic:
      creation_statements:
        - CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'
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
    fleet.write_sealed(
        "infra/maria/admin",
        &[("password", &format!("admin-pw-{tag}"))],
    );
    fleet.write("backends/maria.yaml", &backend);
    let mut policy = common::controller::PAYMENTS_POLICY.to_owned();
    policy.push_str("path \"maria/creds/app\" { capabilities = [\"read\"] }\npath \"maria/static-creds/st\" { capabilities = [\"read\"] }\n");
    fleet.write("policies/payments-runtime.hcl", &policy);
    fleet.write(
        "targets/payments.yaml",
        "sealops: v1\nidentity: payments\noutputs:\n  - dynamic: maria/creds/app\n    format: json\n    path: payments/maria.json\n  - static: maria/static-creds/st\n    format: json\n    path: payments/static.json\n",
    );
    fleet.commit("MariaDB credentials for payments");
    let mut controller = spawn(&fleet, "1s");
    let mut dynamic = None;
    let mut first = None;
    wait(&controller, "both outputs written", || {
        dynamic = read_creds(&fleet, "payments/maria.json");
        first = read_creds(&fleet, "payments/static.json");
        dynamic.is_some() && first.is_some()
    });
    let (dynamic, first) = (dynamic.expect("read"), first.expect("read"));
    assert!(mariadb_login(&dynamic), "issued credentials log in");
    assert_eq!(first.username, account);
    assert!(mariadb_login(&first), "the rotated password logs in");
    let initial = Creds {
        username: account.clone(),
        password: format!("initial-{tag}"),
    };
    assert!(
        !mariadb_login(&initial),
        "the first rotation replaced the initial password"
    );

    // Rotated on demand through the local API.
    let rotate = fleet
        .world
        .sealops()
        .args(["rotate", "maria/static-creds/st", "--state-dir"])
        .arg(&fleet.state)
        .output()
        .expect("sealops rotate runs");
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let mut second = None;
    wait(
        &controller,
        "the rotated password reaching the output",
        || {
            second =
                read_creds(&fleet, "payments/static.json").filter(|c| c.password != first.password);
            second.is_some()
        },
    );
    let second = second.expect("read");
    assert!(
        mariadb_login(&second),
        "the output's password logs in after rotation"
    );
    assert!(
        !mariadb_login(&first),
        "the previous password no longer does"
    );

    // Listed, renewed and revoked through the local API; the target gets new credentials.
    let sealops = |args: &[&str]| {
        let out = fleet
            .world
            .sealops()
            .args(args)
            .arg("--state-dir")
            .arg(&fleet.state)
            .output()
            .expect("sealops runs");
        assert!(
            out.status.success(),
            "sealops {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let listed = sealops(&["lease", "list", "--json"]);
    assert!(listed.contains(&dynamic.username), "{listed}");
    assert!(
        !listed.contains(&dynamic.password),
        "the API shows no password"
    );
    let renewed = sealops(&["lease", "renew", "--prefix", "maria/creds/app/"]);
    assert!(renewed.contains(&dynamic.username), "{renewed}");
    let revoked = sealops(&["lease", "revoke", "--prefix", "maria/creds/app/"]);
    assert!(revoked.contains(&dynamic.username), "{revoked}");
    assert!(
        !mariadb_user_exists(&dynamic.username),
        "revoked before the command returned"
    );
    assert!(
        !mariadb_login(&dynamic),
        "revoked credentials no longer log in"
    );
    let mut reissued = None;
    wait(
        &controller,
        "new credentials for the target after the revocation",
        || {
            reissued = read_creds(&fleet, "payments/maria.json")
                .filter(|c| c.username != dynamic.username);
            reissued.is_some()
        },
    );
    let reissued = reissued.expect("read");
    assert!(mariadb_login(&reissued));

    let status = wait_status(&mut controller, "the rotation in /status", |s| {
        s["credentials"]["rotations"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["path"] == "maria/static-creds/st" && r["rotated_at"].is_i64())
        })
    });
    assert!(!status.to_string().contains(&second.password));
    let (_, metrics) = controller.get("/metrics");
    assert!(
        metrics.contains("sealops_rotations_total{result=\"ok\"}"),
        "{metrics}"
    );
    for series in [
        "sealops_lease_operations_total{operation=\"issue\",result=\"ok\"} 2",
        "sealops_lease_operations_total{operation=\"revoke\",result=\"ok\"} 1",
        "sealops_lease_operations_total{operation=\"renew\",result=\"ok\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }

    // rotate-root: the admin password sealed in the repository stops working; the controller
    // carries on with the one it set, also after a restart.
    let admin_creds = Creds {
        username: admin.clone(),
        password: format!("admin-pw-{tag}"),
    };
    assert!(mariadb_login(&admin_creds));
    sealops(&["rotate", "maria/rotate-root"]);
    assert!(
        !mariadb_login(&admin_creds),
        "the old admin password no longer logs in"
    );
    assert_eq!(controller.terminate(), 0);
    let mut controller = spawn(&fleet, "1s");
    wait(&controller, "the API after the restart", || {
        fleet.state.join("api.json").exists()
    });
    sealops(&["lease", "revoke", "--prefix", "maria/creds/app/"]);
    assert!(!mariadb_user_exists(&reissued.username));
    let mut after_root = None;
    wait(
        &controller,
        "credentials issued with the rotated admin password",
        || {
            after_root = read_creds(&fleet, "payments/maria.json")
                .filter(|c| c.username != reissued.username);
            after_root.is_some()
        },
    );
    let reissued = after_root.expect("read");
    assert!(mariadb_login(&reissued));

    fleet.write("targets/payments.yaml", common::controller::PAYMENTS_TARGET);
    fleet.commit("payments no longer reads database credentials");
    wait(&controller, "the dynamic user revoked", || {
        !mariadb_user_exists(&reissued.username)
    });
    assert!(!mariadb_login(&reissued));
    assert_eq!(controller.terminate(), 0);
    let left: Vec<String> = mariadb_users(&tag)
        .into_iter()
        .filter(|u| u != &admin && u != &account)
        .collect();
    assert!(left.is_empty(), "orphaned users: {left:?}");
    let log = controller.log();
    for secret in [
        &first.password,
        &second.password,
        &dynamic.password,
        &reissued.password,
    ] {
        assert!(!log.contains(secret.as_str()), "the log holds a password");
    }
    dbs_support::mariadb(&format!(
        "DROP USER IF EXISTS '{admin}'@'%'; DROP USER IF EXISTS '{account}'@'%'"
    ));
}

/// A Redis server of this test's own, so it can be stopped and started.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.up();
        redis
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "admin-pw",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        let port = self.port;
        kit::wait_until("the private Redis to answer", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

#[test]
fn redis_down_during_revocation_is_retried_until_it_is_back() {
    if !dbs_support::redis_up() {
        return;
    }
    let port = kit::free_port();
    let mut redis = PrivateRedis::start(port);
    let fleet = kit::single_approver_fleet();
    let backend = format!(
        r#"sealops: v1
name: cache
plugin: redis
connection:
  host: 127.0.0.1
  port: {port}
  username: default
  password: {{secret: infra/cache/admin, key: password}}
allowed_roles: ["*"]
roles:
  reader:
    dynamic:
      creation_statements: ["+@read", "+ping", "+acl|whoami", "~cache:*"]
      default_ttl: 1h
      max_ttl: 2h
"#
    );
    fleet.write_sealed("infra/cache/admin", &[("password", "admin-pw")]);
    fleet.write("backends/cache.yaml", &backend);
    let mut policy = common::controller::PAYMENTS_POLICY.to_owned();
    policy.push_str("path \"cache/creds/reader\" { capabilities = [\"read\"] }\n");
    fleet.write("policies/payments-runtime.hcl", &policy);
    fleet.write(
        "targets/payments.yaml",
        "sealops: v1\nidentity: payments\noutputs:\n  - dynamic: cache/creds/reader\n    format: json\n    path: payments/cache.json\n",
    );
    fleet.commit("Redis credentials for payments");
    let mut controller = spawn(&fleet, "1s");
    let mut issued = None;
    wait(&controller, "credentials in the output", || {
        issued = read_creds(&fleet, "payments/cache.json");
        issued.is_some()
    });
    let issued = issued.expect("read");
    assert!(redis_login(port, &issued), "issued credentials log in");

    // Down, then the target stops using the credentials: revocation fails and is retried.
    redis.down();
    fleet.write("targets/payments.yaml", common::controller::PAYMENTS_TARGET);
    fleet.commit("payments no longer reads Redis credentials");
    let status = wait_status(&mut controller, "a failed revocation reported", |s| {
        status_leases(s)
            .iter()
            .any(|l| l["state"] == "revoking" && l["revoke_attempts"].as_u64() >= Some(2))
    });
    let lease = &status_leases(&status)[0];
    assert!(
        lease["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&port.to_string())),
        "the error names the database: {lease}"
    );
    let (_, metrics) = controller.get("/metrics");
    assert!(
        metrics.contains("sealops_leases{state=\"revoke-failing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealops_lease_operations_total{operation=\"revoke\",result=\"failed\"}"),
        "{metrics}"
    );

    // Back: the next attempt revokes it and the lease is gone.
    redis.up();
    wait_status(
        &mut controller,
        "the lease revoked once Redis is back",
        |s| status_leases(s).is_empty(),
    );
    assert!(!redis_login(port, &issued));
    assert_eq!(controller.terminate(), 0);
    if std::env::var("SHOW_LOG").is_ok() {
        eprintln!("{}", controller.log());
    }
    assert!(!controller.log().contains(&issued.password));
}
