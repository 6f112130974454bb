//! The PostgreSQL driver against the real local server, in a database where passwords are
//! checked (see `dbs_support`): issue, login, revoke, renew, static rotation, injection.

use crate::dbs_support;

use std::time::Duration;

use crate::dbs_support::{PG_DATABASE, hostile_names, hostile_passwords, psql, unique};
use sealops_controller::dbs::{Admin, Database, DbError, Driver};
use sealops_core::backend::Backend;
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

fn backend(extra_roles: &str) -> Backend {
    let text = format!(
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
  readonly:
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
  app:
    static:
      username: placeholder
      rotation_period: 24h
{extra_roles}"#
    );
    Backend::parse(&text, "backends/pg.yaml").expect("test backend parses")
}

fn driver(backend: &Backend) -> Driver {
    // Trusted in sealops_authcheck (see dbs_support); the password is not looked at.
    Driver::new(backend, Admin::from_backend(backend, SecretValue::from("")))
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

fn role_exists(name: &str) -> bool {
    let escaped = name.replace('\'', "''");
    psql(
        PG_DATABASE,
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{escaped}'"),
    ) == "1"
}

#[tokio::test]
async fn issued_credentials_log_in_and_revoked_ones_do_not() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let backend = backend("");
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
    let wrong = SecretValue::from("not-the-password");
    let refused = db.login(&name, &wrong).await.unwrap_err();
    assert!(
        refused.is_login_refused(),
        "a wrong password is refused: {refused}"
    );

    db.revoke(role, &name).await.expect("revoke");
    assert!(!role_exists(&name));
    let after = db.login(&name, &password).await.unwrap_err();
    assert!(
        after.is_login_refused(),
        "revoked credentials are refused: {after}"
    );
    // Revoking again succeeds, though the role's REVOKE names a role that is gone (42704):
    // after a crash between the database's answer and the store, the lease is revoked again.
    db.revoke(role, &name)
        .await
        .expect("revoking a role that is gone is done");
}

#[tokio::test]
async fn renew_extends_valid_until() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let backend = backend("");
    let role = backend.dynamic_role("readonly").unwrap();
    let db = driver(&backend);
    let name = unique("sealops_t_renew_");
    let password = role.password_policy.generate();

    // Issued already expired: password authentication checks VALID UNTIL.
    let past = OffsetDateTime::now_utc() - Duration::from_secs(60);
    db.create(role, &name, &password, past)
        .await
        .expect("create");
    let expired = db.login(&name, &password).await.unwrap_err();
    assert!(
        expired.is_login_refused(),
        "expired credentials are refused: {expired}"
    );

    let until = OffsetDateTime::now_utc() + Duration::from_secs(7200);
    db.renew(role, &name, until).await.expect("renew");
    db.login(&name, &password)
        .await
        .expect("renewed credentials log in");
    let valid_until: i64 = psql(
        PG_DATABASE,
        &format!("SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{name}'"),
    )
    .parse()
    .unwrap();
    assert!(
        (valid_until - until.unix_timestamp()).abs() <= 1,
        "{valid_until} vs {until}"
    );

    db.revoke(role, &name).await.expect("revoke");
}

#[tokio::test]
async fn static_set_password_replaces_the_old_one() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let backend = backend("");
    let role = backend.static_role("app").unwrap();
    let db = driver(&backend);
    let account = unique("sealops_t_static_");
    psql(
        PG_DATABASE,
        &format!("CREATE ROLE {account} LOGIN PASSWORD 'old-password-1234'"),
    );
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
    psql(PG_DATABASE, &format!("DROP ROLE {account}"));
}

#[tokio::test]
async fn hostile_names_and_passwords_cannot_escape_their_quotes() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let backend = backend("");
    let role = backend.dynamic_role("readonly").unwrap();
    let db = driver(&backend);
    // The table the hostile strings try to drop.
    psql(PG_DATABASE, "CREATE TABLE IF NOT EXISTS s (x int)");
    let passwords = hostile_passwords();
    let prefix = format!("t{}", std::process::id() % 100_000);
    for (i, name) in hostile_names(&prefix, true).iter().enumerate() {
        let password = SecretValue::from(passwords[i % passwords.len()].as_str());
        db.create(role, name, &password, in_an_hour())
            .await
            .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
        assert!(role_exists(name), "the role is named literally {name:?}");
        db.login(name, &password)
            .await
            .unwrap_or_else(|e| panic!("login as {name:?} with the hostile password: {e}"));
        db.revoke(role, name).await.expect("revoke");
        assert!(!role_exists(name));
    }
    // Every hostile password on one ordinary name, through static rotation too.
    let account = unique("sealops_t_hostile_");
    psql(PG_DATABASE, &format!("CREATE ROLE {account} LOGIN"));
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
    psql(PG_DATABASE, &format!("DROP ROLE {account}"));
    assert_eq!(
        psql(
            PG_DATABASE,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 's'"
        ),
        "1",
        "the sentinel table survived"
    );
}

#[tokio::test]
async fn a_failed_creation_rolls_back_and_never_shows_the_password() {
    if !dbs_support::postgres_password_database() {
        return;
    }
    let backend = backend(
        r#"  broken:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}'
        - ALTER ROLE "{{name}}" PASSWORD '{{password}}' NONSENSE
      revocation_statements: ['DROP ROLE IF EXISTS "{{name}}"']
      default_ttl: 1h
      max_ttl: 1h
"#,
    );
    let role = backend.dynamic_role("broken").unwrap();
    let db = driver(&backend);
    let name = unique("sealops_t_broken_");
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
    assert!(shown.contains("42601"), "the SQLSTATE is kept: {shown}");
    assert!(
        !shown.contains("Sup3r"),
        "the password never appears: {shown}"
    );
    assert!(
        !role_exists(&name),
        "the first statement was rolled back with the second"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error_within_the_timeout() {
    let backend = backend("");
    let mut admin = Admin::from_backend(&backend, SecretValue::from("admin-secret"));
    admin.port = 1; // nothing listens there
    admin.timeout = Duration::from_secs(5);
    let db = Driver::new(&backend, admin);
    let role = backend.dynamic_role("readonly").unwrap();
    let err = db.revoke(role, "nobody").await.unwrap_err();
    assert!(
        matches!(err, DbError::Connect { .. } | DbError::Timeout { .. }),
        "{err}"
    );
    assert!(!format!("{err} {err:?} {db:?}").contains("admin-secret"));
}
