//! PostgreSQL: roles created, altered and dropped by the role's statements, in a transaction.
//!
//! One admin connection per backend, behind a mutex (a transaction needs the client to
//! itself), reopened when it was closed. Statements go through the simple query protocol:
//! `CREATE ROLE … PASSWORD` cannot take bind parameters, which is why values are escaped by
//! [`sealops_core::backend::template`] for the quotes the template wrote. That escaping
//! assumes `standard_conforming_strings = on` (the default since 9.1); a server with it off is
//! refused rather than escaped for.

use sealops_core::backend::template::{Dialect, Escaping, Rendered, Values};
use sealops_core::backend::{DynamicRole, Plugin, StatementKind, StaticRole};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{Admin, Database, DbError, bounded, render_all};

const PLUGIN: Plugin = Plugin::Postgresql;

/// The PostgreSQL driver of one backend.
#[derive(Debug)]
pub struct Postgres {
    admin: Admin,
    client: Mutex<Option<Client>>,
}

/// `VALID UNTIL` accepts this; UTC so the value means the same on every server.
pub fn format_expiration(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

impl Postgres {
    pub fn new(admin: Admin) -> Self {
        Self {
            admin,
            client: Mutex::new(None),
        }
    }

    fn config(&self, username: &str, password: &SecretValue) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.admin.host)
            .port(self.admin.port)
            .user(username)
            .password(password.expose())
            .dbname(self.admin.database.as_deref().unwrap_or("postgres"))
            .application_name("sealops-controller")
            .connect_timeout(self.admin.timeout);
        config
    }

    async fn open(&self, username: &str, password: &SecretValue) -> Result<Client, DbError> {
        let (client, connection) = self
            .config(username, password)
            .connect(NoTls)
            .await
            .map_err(|e| match e.code() {
                Some(code) if is_login_refusal(code) => DbError::LoginRefused {
                    plugin: PLUGIN,
                    address: self.admin.address(),
                    username: username.to_owned(),
                    code: code.code().to_owned(),
                },
                // Connection errors name the host and the server's reason, never the password.
                _ => DbError::Connect {
                    plugin: PLUGIN,
                    address: self.admin.address(),
                    username: username.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the next operation
            // sees a closed client and reconnects.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `rendered` in one transaction on the admin connection.
    async fn run(&self, kind: StatementKind, rendered: &[Rendered]) -> Result<(), DbError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let client = self
                .open(&self.admin.username, &self.admin.password)
                .await?;
            let row = client
                .simple_query("SHOW standard_conforming_strings")
                .await
                .map_err(|e| self.connect_error(e))?;
            let on = row.iter().any(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0) == Some("on"),
                _ => false,
            });
            if !on {
                return Err(DbError::Unsafe {
                    plugin: PLUGIN,
                    address: self.admin.address(),
                    problem: "standard_conforming_strings is off, so backslashes in '…' literals are escapes; turn it on (the default) for the role that sealops connects as".into(),
                });
            }
            *guard = Some(client);
        }
        let client = guard.as_mut().expect("connected above");
        let mut attempt = 1;
        loop {
            let result = Self::transaction(client, rendered).await;
            match result {
                Err(TransactionError::Statement(e, _))
                    if attempt < ATTEMPTS && is_transient(&e) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                other => {
                    if client.is_closed() {
                        *guard = None;
                    }
                    return other.map_err(|e| match e {
                        TransactionError::Statement(e, index) => {
                            statement_error(kind, index, &rendered[index], &e)
                        }
                        TransactionError::Connection(e) => self.connect_error(e),
                    });
                }
            }
        }
    }

    /// One attempt: every statement, then commit (dropping the transaction rolls it back).
    async fn transaction(
        client: &mut Client,
        rendered: &[Rendered],
    ) -> Result<(), TransactionError> {
        let transaction = client
            .transaction()
            .await
            .map_err(TransactionError::Connection)?;
        for (index, statement) in rendered.iter().enumerate() {
            transaction
                .batch_execute(statement.sql())
                .await
                .map_err(|e| TransactionError::Statement(e, index))?;
        }
        transaction
            .commit()
            .await
            .map_err(TransactionError::Connection)
    }

    /// Whether the role `name` exists (asked on a connection of its own).
    async fn role_exists(&self, name: &str) -> Result<bool, DbError> {
        let client = self
            .open(&self.admin.username, &self.admin.password)
            .await?;
        let rows = client
            .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(|e| self.connect_error(e))?;
        Ok(!rows.is_empty())
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> DbError {
        DbError::Connect {
            plugin: PLUGIN,
            address: self.admin.address(),
            username: self.admin.username.clone(),
            reason: e.to_string(),
        }
    }
}

/// Tries of one operation when PostgreSQL reports a conflict with a concurrent transaction.
const ATTEMPTS: u64 = 4;

enum TransactionError {
    Statement(tokio_postgres::Error, usize),
    Connection(tokio_postgres::Error),
}

/// Conflicts that succeed when retried: serialization failures, deadlocks, and the catalog
/// race of two concurrent `GRANT`s on one table ("tuple concurrently updated", XX000), which
/// two controllers issuing credentials at once do hit.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            *db.code() == SqlState::T_R_SERIALIZATION_FAILURE
                || *db.code() == SqlState::T_R_DEADLOCK_DETECTED
                || (*db.code() == SqlState::INTERNAL_ERROR
                    && db.message() == "tuple concurrently updated")
        }
        None => false,
    }
}

fn is_login_refusal(code: &SqlState) -> bool {
    // 28P01 wrong password (also sent for unknown roles and expired VALID UNTIL under password
    // authentication), 28000 no such role / not permitted to log in (NOLOGIN, trust auth).
    *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
}

fn statement_error(
    kind: StatementKind,
    index: usize,
    statement: &Rendered,
    e: &tokio_postgres::Error,
) -> DbError {
    DbError::Statement {
        plugin: PLUGIN,
        kind,
        index,
        code: e
            .code()
            .map_or_else(|| "no SQLSTATE".to_owned(), |c| c.code().to_owned()),
        message: (!statement.carries_secret()).then(|| match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        }),
    }
}

impl Database for Postgres {
    async fn create(
        &self,
        role: &DynamicRole,
        name: &str,
        password: &SecretValue,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        let expiration = format_expiration(expiration);
        let values = Values {
            name: Some(name),
            password: Some(password),
            expiration: Some(&expiration),
        };
        let statements = role.statements(Dialect::Postgres, StatementKind::Creation);
        let rendered = render_all(PLUGIN, &statements, &values, Escaping::Postgres)?;
        bounded(
            PLUGIN,
            &self.admin,
            "create",
            self.run(StatementKind::Creation, &rendered),
        )
        .await
    }

    async fn revoke(&self, role: &DynamicRole, name: &str) -> Result<(), DbError> {
        let values = Values {
            name: Some(name),
            ..Values::default()
        };
        let statements = role.statements(Dialect::Postgres, StatementKind::Revocation);
        let rendered = render_all(PLUGIN, &statements, &values, Escaping::Postgres)?;
        let result = bounded(
            PLUGIN,
            &self.admin,
            "revoke",
            self.run(StatementKind::Revocation, &rendered),
        )
        .await;
        match result {
            // undefined_object: if it is the role that is missing, it is revoked already (the
            // database confirmed a revocation, then a crash came before the lease was
            // forgotten; `REVOKE … FROM "{{name}}"` fails on a missing role). Any other missing
            // object is a failure: the user may still be there.
            Err(DbError::Statement { code, .. })
                if code == "42704" && !self.role_exists(name).await? =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn renew(
        &self,
        role: &DynamicRole,
        name: &str,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        let statements = role.statements(Dialect::Postgres, StatementKind::Renew);
        if statements.is_empty() {
            return Ok(());
        }
        let expiration = format_expiration(expiration);
        let values = Values {
            name: Some(name),
            expiration: Some(&expiration),
            ..Values::default()
        };
        let rendered = render_all(PLUGIN, &statements, &values, Escaping::Postgres)?;
        bounded(
            PLUGIN,
            &self.admin,
            "renew",
            self.run(StatementKind::Renew, &rendered),
        )
        .await
    }

    async fn set_password(
        &self,
        role: &StaticRole,
        username: &str,
        password: &SecretValue,
    ) -> Result<(), DbError> {
        let values = Values {
            name: Some(username),
            password: Some(password),
            ..Values::default()
        };
        let statements = role.statements(Dialect::Postgres);
        let rendered = render_all(PLUGIN, &statements, &values, Escaping::Postgres)?;
        bounded(
            PLUGIN,
            &self.admin,
            "set_password",
            self.run(StatementKind::Rotation, &rendered),
        )
        .await
    }

    async fn login(&self, username: &str, password: &SecretValue) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "login", async {
            let client = self.open(username, password).await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| DbError::Connect {
                    plugin: PLUGIN,
                    address: self.admin.address(),
                    username: username.to_owned(),
                    reason: e.to_string(),
                })?;
            Ok(())
        })
        .await
    }
}
