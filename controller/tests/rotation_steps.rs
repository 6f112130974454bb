//! Static rotation's write-ahead protocol against the real local PostgreSQL, MariaDB and Redis:
//! whatever point a controller dies at, the restart's `finish` leaves the account's password
//! equal to what the outputs hold, and the old password stops working only once the new one is
//! recorded.

use crate::dbs_support;

use std::path::Path;
use std::process::Command;

use crate::dbs_support::{PG_DATABASE, mariadb, psql, unique};
use sealops_controller::dbs::{Admin, Database, Driver};
use sealops_controller::leases::LeaseStore;
use sealops_controller::rotation::{self, Step};
use sealops_core::backend::Backend;
use sealops_core::keys::{AgeIdentities, generate};
use sealops_core::secret::SecretValue;

fn backend(plugin: &str, port: u16, database: &str, username: &str) -> Backend {
    let text = format!(
        r#"sealops: v1
name: db
plugin: {plugin}
connection:
  host: 127.0.0.1
  port: {port}
{database}  username: {username}
  password: {{secret: infra/db/admin, key: password}}
allowed_roles: ["*"]
roles:
  app:
    static:
      username: placeholder
      rotation_period: 24h
"#
    );
    Backend::parse(&text, "backends/db.yaml").expect("test backend parses")
}

fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The output a target would hold: the password, in a file.
fn output(dir: &Path) -> SecretValue {
    SecretValue::from(std::fs::read_to_string(dir.join("password")).expect("output"))
}

fn write_output(dir: &Path, password: &SecretValue) -> Result<(), String> {
    std::fs::write(dir.join("password"), password.expose_str().expect("utf-8"))
        .map_err(|e| e.to_string())
}

/// Where a run is killed, as far as the protocol can tell afterwards.
#[derive(Debug, Clone, Copy)]
enum Crash {
    BeforeRecord,
    AfterRecord,
    AfterDatabaseChanged,
    AfterStepChanged,
    AfterOutputsWritten,
}

/// One database: its backend, and how to create and drop an account outside sealops.
struct Server {
    backend: Backend,
    prefix: &'static str,
    create: fn(&str, &str),
    drop: fn(&str),
}

#[tokio::test]
async fn redis_a_restart_after_a_crash_at_any_step_leaves_the_outputs_password_working() {
    if !dbs_support::redis_up() {
        return;
    }
    crash_at_every_step(Server {
        backend: backend("redis", 6379, "", "default"),
        prefix: "sealops_t_rot_",
        create: |account, old| {
            redis_cli(&["ACL", "SETUSER", account, "on", &format!(">{old}"), "+ping"]);
        },
        drop: |account| {
            redis_cli(&["ACL", "DELUSER", account]);
        },
    })
    .await;
}

#[tokio::test]
async fn postgres_a_restart_after_a_crash_at_any_step_leaves_the_outputs_password_working() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    crash_at_every_step(Server {
        backend: backend(
            "postgresql",
            5432,
            &format!("  database: {PG_DATABASE}\n"),
            "postgres",
        ),
        prefix: "sealops_t_rot_",
        create: |account, old| {
            psql(
                PG_DATABASE,
                &format!("CREATE ROLE {account} LOGIN PASSWORD '{old}'"),
            );
        },
        drop: |account| {
            psql(PG_DATABASE, &format!("DROP ROLE {account}"));
        },
    })
    .await;
}

#[tokio::test]
async fn mariadb_a_restart_after_a_crash_at_any_step_leaves_the_outputs_password_working() {
    if !dbs_support::mariadb_up() {
        return;
    }
    crash_at_every_step(Server {
        backend: backend("mysql", 3306, "  database: test\n", "root"),
        prefix: "rot_",
        create: |account, old| {
            mariadb(&format!(
                "CREATE USER '{account}'@'%' IDENTIFIED BY '{old}'"
            ));
        },
        drop: |account| {
            mariadb(&format!("DROP USER '{account}'@'%'"));
        },
    })
    .await;
}

async fn crash_at_every_step(server: Server) {
    let backend = &server.backend;
    let role = backend.static_role("app").expect("role");
    // Admin passwords: Redis's default user and MariaDB's root take none here, and PostgreSQL
    // trusts the admin in its password-checking database (see dbs_support).
    let db = Driver::new(backend, Admin::from_backend(backend, SecretValue::from("")));
    let (identity, text) = generate();
    let identities = AgeIdentities::parse(&text, "test identity").expect("identity");
    let own = identity.recipient().clone();

    for crash in [
        Crash::BeforeRecord,
        Crash::AfterRecord,
        Crash::AfterDatabaseChanged,
        Crash::AfterStepChanged,
        Crash::AfterOutputsWritten,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let account = unique(server.prefix);
        let old = SecretValue::from(format!("old-{account}-password"));
        (server.create)(&account, old.expose_str().expect("utf-8"));
        write_output(dir.path(), &old).expect("output");
        let new = role.password_policy.generate();
        let id = format!("cache/static-creds/app/{account}");

        // The run that is killed.
        {
            let store = LeaseStore::open(dir.path()).expect("store");
            if !matches!(crash, Crash::BeforeRecord) {
                let pending =
                    rotation::record(&store, &own, &id, &account, &new).expect("recorded");
                match crash {
                    Crash::BeforeRecord | Crash::AfterRecord => {}
                    Crash::AfterDatabaseChanged => {
                        db.set_password(role, &account, &new).await.expect("set");
                    }
                    Crash::AfterStepChanged => {
                        let refused =
                            rotation::finish(&db, role, &store, &identities, pending, |_| {
                                Err("killed before the outputs were written".into())
                            })
                            .await;
                        assert!(refused.is_err());
                        assert_eq!(
                            rotation::pending(&store).expect("pending")[0].step,
                            Step::Changed
                        );
                    }
                    Crash::AfterOutputsWritten => {
                        db.set_password(role, &account, &new).await.expect("set");
                        write_output(dir.path(), &new).expect("output");
                    }
                }
            }
        }

        // The restart: the store is reopened from disk and every recorded rotation finished.
        let store = LeaseStore::open(dir.path()).expect("store reopens");
        for pending in rotation::pending(&store).expect("pending") {
            rotation::finish(&db, role, &store, &identities, pending, |password| {
                write_output(dir.path(), password)
            })
            .await
            .unwrap_or_else(|e| panic!("{crash:?}: {e}"));
        }
        assert!(rotation::pending(&store).expect("pending").is_empty());
        db.login(&account, &output(dir.path()))
            .await
            .unwrap_or_else(|e| panic!("{crash:?}: the outputs' password does not log in: {e}"));
        let expected = if matches!(crash, Crash::BeforeRecord) {
            &old
        } else {
            &new
        };
        assert_eq!(output(dir.path()).expose(), expected.expose(), "{crash:?}");
        if !matches!(crash, Crash::BeforeRecord) {
            let refused = db.login(&account, &old).await.unwrap_err();
            assert!(
                refused.is_login_refused(),
                "{crash:?}: the old password still works"
            );
        }
        // Nothing in the store reveals the password.
        let raw = std::fs::read(dir.path().join(sealops_controller::leases::FILE)).expect("store");
        assert!(
            !raw.windows(new.expose().len()).any(|w| w == new.expose()),
            "{crash:?}: the new password is in the store in clear"
        );
        (server.drop)(&account);
    }
}
