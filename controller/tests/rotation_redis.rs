//! Static rotation's write-ahead protocol against the real local Redis: whatever point a
//! controller dies at, the restart's `finish` leaves the account's password equal to what the
//! outputs hold, and the old password stops working only once the new one is recorded.

mod dbs_support;

use std::path::Path;
use std::process::Command;

use dbs_support::unique;
use sealops_controller::dbs::{Admin, Database, Driver};
use sealops_controller::leases::LeaseStore;
use sealops_controller::rotation::{self, Step};
use sealops_core::backend::Backend;
use sealops_core::keys::{IdentitySet, generate};
use sealops_core::secret::SecretValue;

fn backend() -> Backend {
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
  app:
    static:
      username: placeholder
      rotation_period: 24h
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

#[tokio::test]
async fn a_restart_after_a_crash_at_any_step_leaves_the_outputs_password_working() {
    if !dbs_support::redis_up() {
        return;
    }
    let backend = backend();
    let role = backend.static_role("app").expect("role");
    let db = Driver::new(
        &backend,
        Admin::from_backend(&backend, SecretValue::from("unused")),
    );
    let (identity, text) = generate();
    let identities = IdentitySet::parse(&text, "test identity").expect("identity");
    let own = identity.recipient().clone();

    for crash in [
        Crash::BeforeRecord,
        Crash::AfterRecord,
        Crash::AfterDatabaseChanged,
        Crash::AfterStepChanged,
        Crash::AfterOutputsWritten,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let account = unique("sealops_t_rot_");
        let old = SecretValue::from(format!("old-{account}-password"));
        redis_cli(&[
            "ACL",
            "SETUSER",
            &account,
            "on",
            &format!(">{}", old.expose_str().unwrap()),
            "+ping",
        ]);
        write_output(dir.path(), &old).expect("output");
        let new = SecretValue::from(format!("new '{account}' \"pass\" \\ word"));
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
        redis_cli(&["ACL", "DELUSER", &account]);
    }
}
