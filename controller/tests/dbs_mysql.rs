//! The MySQL/MariaDB driver against the real local MariaDB: issue, login, revoke, static
//! rotation, injection, and undoing a creation that failed part-way.

use crate::dbs_support;

use std::time::Duration;

use crate::dbs_support::{hostile_names, hostile_passwords, mariadb, unique};
use sealops_controller::dbs::{Admin, Database, DbError, Driver};
use sealops_core::backend::Backend;
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

fn backend() -> Backend {
    let text = r#"sealops: v1
name: maria
plugin: mysql
connection:
  host: 127.0.0.1
  port: 3306
  database: test
  username: root
  password: {secret: infra/maria/admin, key: password}
allowed_roles: ["*"]
roles:
  readonly:
    dynamic:
      creation_statements:
        - CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'
        - GRANT SELECT ON test.* TO '{{name}}'@'%'
      revocation_statements: ["DROP USER IF EXISTS '{{name}}'@'%'"]
      default_ttl: 1h
      max_ttl: 24h
  broken:
    dynamic:
      creation_statements:
        - CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'
        - GRANT SELECT ON test.* TO '{{name}}'@'%' IDENTIFIED BY '{{password}}' NONSENSE
      revocation_statements: ["DROP USER IF EXISTS '{{name}}'@'%'"]
      default_ttl: 1h
      max_ttl: 1h
  app:
    static:
      username: placeholder
      rotation_period: 24h
"#;
    Backend::parse(text, "backends/maria.yaml").expect("test backend parses")
}

fn driver(backend: &Backend) -> Driver {
    // root has an empty password over TCP on this machine.
    Driver::new(backend, Admin::from_backend(backend, SecretValue::from("")))
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

fn user_exists(name: &str) -> bool {
    let escaped = name.replace('\\', "\\\\").replace('\'', "''");
    mariadb(&format!(
        "SELECT count(*) FROM mysql.user WHERE User = '{escaped}' AND Host = '%'"
    )) == "1"
}

#[tokio::test]
async fn issued_credentials_log_in_and_revoked_ones_do_not() {
    if !dbs_support::mariadb_up() {
        return;
    }
    let backend = backend();
    let role = backend.dynamic_role("readonly").unwrap();
    let db = driver(&backend);
    let name = role
        .username_template()
        .render(
            "readonly",
            &backend.name,
            backend.plugin.username_limit(),
            0,
        )
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

    db.revoke(role, &name).await.expect("revoke");
    assert!(!user_exists(&name));
    let after = db.login(&name, &password).await.unwrap_err();
    assert!(
        after.is_login_refused(),
        "revoked credentials are refused: {after}"
    );
}

#[tokio::test]
async fn static_set_password_replaces_the_old_one() {
    if !dbs_support::mariadb_up() {
        return;
    }
    let backend = backend();
    let role = backend.static_role("app").unwrap();
    let db = driver(&backend);
    let account = unique("st_");
    mariadb(&format!(
        "CREATE USER '{account}'@'%' IDENTIFIED BY 'old-password-1234'"
    ));
    let old = SecretValue::from("old-password-1234");
    db.login(&account, &old)
        .await
        .expect("the old password works before rotation");

    let new = role.password_policy.generate();
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
    mariadb(&format!("DROP USER '{account}'@'%'"));
}

#[tokio::test]
async fn hostile_names_and_passwords_cannot_escape_their_quotes() {
    if !dbs_support::mariadb_up() {
        return;
    }
    let backend = backend();
    let role = backend.dynamic_role("readonly").unwrap();
    let db = driver(&backend);
    // The table the hostile strings try to drop (the admin session's database is `test`).
    mariadb("CREATE TABLE IF NOT EXISTS test.s (x int)");
    let passwords = hostile_passwords();
    let prefix = format!("t{}", std::process::id() % 100_000);
    for (i, name) in hostile_names(&prefix, false).iter().enumerate() {
        let password = SecretValue::from(passwords[i % passwords.len()].as_str());
        db.create(role, name, &password, in_an_hour())
            .await
            .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
        assert!(user_exists(name), "the user is named literally {name:?}");
        db.login(name, &password)
            .await
            .unwrap_or_else(|e| panic!("login as {name:?} with the hostile password: {e}"));
        db.revoke(role, name).await.expect("revoke");
        assert!(!user_exists(name));
    }
    let account = unique("sh_");
    mariadb(&format!("CREATE USER '{account}'@'%'"));
    let app = backend.static_role("app").unwrap();
    for password in &passwords {
        let password = SecretValue::from(password.as_str());
        db.set_password(app, &account, &password)
            .await
            .expect("set_password");
        db.login(&account, &password)
            .await
            .expect("the hostile password was stored literally");
    }
    mariadb(&format!("DROP USER '{account}'@'%'"));
    assert_eq!(
        mariadb(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'test' AND table_name = 's'"
        ),
        "1",
        "the sentinel table survived"
    );
}

#[tokio::test]
async fn a_failed_creation_is_undone_and_never_shows_the_password() {
    if !dbs_support::mariadb_up() {
        return;
    }
    let backend = backend();
    let role = backend.dynamic_role("broken").unwrap();
    let db = driver(&backend);
    let name = unique("sb_");
    let password = SecretValue::from("Sup3r-Secret-Value");
    let err = db
        .create(role, &name, &password, in_an_hour())
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            DbError::Statement {
                index: 1,
                message: None,
                ..
            }
        ),
        "{shown}"
    );
    assert!(shown.contains("1064"), "the error number is kept: {shown}");
    assert!(
        !shown.contains("Sup3r"),
        "the password never appears: {shown}"
    );
    assert!(
        !user_exists(&name),
        "the user the first statement created was dropped"
    );
}

#[tokio::test]
async fn names_mysql_cannot_store_are_refused_before_anything_runs() {
    let backend = backend();
    let role = backend.dynamic_role("readonly").unwrap();
    let db = driver(&backend);
    let password = SecretValue::from("irrelevant-password");
    let err = db
        .create(role, "v-🔑-x", &password, in_an_hour())
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::User { .. }), "{err}");
}
