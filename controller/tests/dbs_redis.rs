//! The Redis driver against the real local Redis: ACL users issued, logging in, revoked,
//! rotated, with hostile passwords passed as single arguments.

use crate::dbs_support;

use std::process::Command;
use std::time::Duration;

use crate::dbs_support::{hostile_passwords, unique};
use sealops_controller::dbs::{Admin, Database, DbError, Driver};
use sealops_core::backend::Backend;
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

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
  reader:
    dynamic:
      creation_statements: ["+@read", "+ping", "~cache:*"]
      default_ttl: 1h
      max_ttl: 24h
  app:
    static:
      username: placeholder
      rotation_period: 24h
"#;
    Backend::parse(text, "backends/cache.yaml").expect("test backend parses")
}

fn driver(backend: &Backend) -> Driver {
    // The default user is `nopass` on this machine: any password authenticates it.
    Driver::new(
        backend,
        Admin::from_backend(backend, SecretValue::from("unused")),
    )
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn user_exists(name: &str) -> bool {
    !redis_cli(&["ACL", "GETUSER", name]).is_empty()
}

#[tokio::test]
async fn issued_credentials_log_in_and_revoked_ones_do_not() {
    if !dbs_support::redis_up() {
        return;
    }
    let backend = backend();
    let role = backend.dynamic_role("reader").unwrap();
    let db = driver(&backend);
    let name = role
        .username_template()
        .render("reader", &backend.name, backend.plugin.username_limit(), 0)
        .unwrap();
    let password = role.password_policy.generate();

    db.create(role, &name, &password, in_an_hour())
        .await
        .expect("create");
    db.login(&name, &password)
        .await
        .expect("the issued credential logs in");
    let refused = db
        .login(&name, &SecretValue::from("wrong"))
        .await
        .unwrap_err();
    assert!(
        refused.is_login_refused(),
        "a wrong password is refused: {refused}"
    );
    // The rules were applied as given.
    let acl = redis_cli(&["ACL", "LIST"]);
    let line = acl.lines().find(|l| l.contains(&name)).expect("listed");
    assert!(
        line.contains("~cache:*") && line.contains("+@read"),
        "{line}"
    );

    let again = db
        .create(role, &name, &password, in_an_hour())
        .await
        .unwrap_err();
    assert!(
        matches!(again, DbError::User { .. }),
        "an existing user is not taken over: {again}"
    );

    db.revoke(role, &name).await.expect("revoke");
    assert!(!user_exists(&name));
    let after = db.login(&name, &password).await.unwrap_err();
    assert!(
        after.is_login_refused(),
        "revoked credentials are refused: {after}"
    );
    db.revoke(role, &name)
        .await
        .expect("revoking again is harmless");
}

#[tokio::test]
async fn hostile_passwords_and_names_are_single_arguments() {
    if !dbs_support::redis_up() {
        return;
    }
    let backend = backend();
    let role = backend.dynamic_role("reader").unwrap();
    let db = driver(&backend);
    let mut passwords = hostile_passwords();
    // ACL words: if split, these would grant everything or switch auth off.
    passwords.push("x nopass allkeys +@all".into());
    passwords.push("pw\r\nACL SETUSER evil on nopass +@all\r\n".into());
    for password in &passwords {
        let name = unique("sealops_t_r_");
        let password = SecretValue::from(password.as_str());
        db.create(role, &name, &password, in_an_hour())
            .await
            .expect("create");
        db.login(&name, &password)
            .await
            .expect("the hostile password was stored literally");
        let wrong = db.login(&name, &SecretValue::from("x")).await.unwrap_err();
        assert!(
            wrong.is_login_refused(),
            "nopass was not smuggled in: {wrong}"
        );
        let line = redis_cli(&["ACL", "LIST"]);
        let line = line.lines().find(|l| l.contains(&name)).expect("listed");
        assert!(
            !line.contains("+@all") && !line.contains("nopass"),
            "{line}"
        );
        db.revoke(role, &name).await.expect("revoke");
    }
    assert!(
        !user_exists("evil"),
        "no user was created by a smuggled command"
    );
}

#[tokio::test]
async fn static_set_password_replaces_the_old_one() {
    if !dbs_support::redis_up() {
        return;
    }
    let backend = backend();
    let role = backend.static_role("app").unwrap();
    let db = driver(&backend);
    let account = unique("sealops_t_rs_");
    redis_cli(&[
        "ACL",
        "SETUSER",
        &account,
        "on",
        ">old-password-1234",
        "+ping",
    ]);
    let old = SecretValue::from("old-password-1234");
    db.login(&account, &old)
        .await
        .expect("the old password works before rotation");

    let new = SecretValue::from("new 'pass' \"word\" \\ 🔑");
    db.set_password(role, &account, &new)
        .await
        .expect("set_password");
    db.login(&account, &new)
        .await
        .expect("the new password logs in");
    let refused = db.login(&account, &old).await.unwrap_err();
    assert!(
        refused.is_login_refused(),
        "the old password is refused: {refused}"
    );
    redis_cli(&["ACL", "DELUSER", &account]);

    let missing = db.set_password(role, &account, &new).await.unwrap_err();
    assert!(
        matches!(missing, DbError::User { .. }),
        "a missing account is not created: {missing}"
    );
}
