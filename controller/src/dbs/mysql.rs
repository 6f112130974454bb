//! MySQL and MariaDB: users created, altered and dropped by the role's statements.
//!
//! There is no transaction to run them in: `CREATE USER`, `GRANT` and `ALTER USER` commit
//! implicitly. So a creation that fails part-way is undone by running the role's revocation
//! statements (best effort) before the error is returned: a half-made user must not outlive
//! the failed issue.
//!
//! How quoted text is read depends on the session's `sql_mode` (`NO_BACKSLASH_ESCAPES`,
//! `ANSI_QUOTES`); it is read on the connection that runs the statements, so the escaping
//! always matches the server. The connection's character set is utf8mb4 (`SET NAMES`), so no
//! multi-byte encoding can swallow an escaping backslash.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool};
use sealops_core::backend::template::{Dialect, Escaping, Rendered, Values};
use sealops_core::backend::{DynamicRole, Plugin, StatementKind, StaticRole};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

use super::{Admin, Database, DbError, bounded, render_all};

const PLUGIN: Plugin = Plugin::Mysql;

/// Server error numbers that mean "this credential is not accepted".
const LOGIN_REFUSED: &[u16] = &[
    1044, // ER_DBACCESS_DENIED_ERROR
    1045, // ER_ACCESS_DENIED_ERROR
    1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR (MariaDB, e.g. for a user that does not exist)
    1820, // ER_MUST_CHANGE_PASSWORD
    1862, // ER_MUST_CHANGE_PASSWORD_LOGIN (expired)
    3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
    4151, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
];

/// The MySQL/MariaDB driver of one backend.
pub struct Mysql {
    admin: Admin,
    pool: Pool,
}

impl std::fmt::Debug for Mysql {
    // `Pool` and `Opts` print the password in their Debug output; ours must not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mysql").field("admin", &self.admin).finish()
    }
}

/// MySQL `DATETIME` text, UTC (the server's time zone is not ours to guess).
pub fn format_expiration(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

impl Mysql {
    pub fn new(admin: Admin) -> Self {
        let opts = opts(
            &admin,
            &admin.username,
            &admin.password,
            admin.database.as_deref(),
        );
        Self {
            pool: Pool::new(opts),
            admin,
        }
    }

    async fn conn(&self) -> Result<Conn, DbError> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| login_error(&self.admin, &self.admin.username, e))
    }

    /// The escaping that matches this session's `sql_mode`.
    async fn escaping(&self, conn: &mut Conn) -> Result<Escaping, DbError> {
        let mode: Option<String> = conn
            .query_first("SELECT @@SESSION.sql_mode")
            .await
            .map_err(|e| login_error(&self.admin, &self.admin.username, e))?;
        let mode = mode.unwrap_or_default().to_ascii_uppercase();
        let has = |flag: &str| mode.split(',').any(|m| m.trim() == flag);
        Ok(Escaping::Mysql {
            no_backslash_escapes: has("NO_BACKSLASH_ESCAPES"),
            ansi_quotes: has("ANSI_QUOTES"),
        })
    }

    /// Renders the statements for this session and runs them in order.
    async fn run(
        &self,
        conn: &mut Conn,
        kind: StatementKind,
        statements: &[sealops_core::backend::template::Statement],
        values: &Values<'_>,
    ) -> Result<(), DbError> {
        let escaping = self.escaping(conn).await?;
        let rendered = render_all(PLUGIN, statements, values, escaping)?;
        for (index, statement) in rendered.iter().enumerate() {
            conn.query_drop(statement.sql())
                .await
                .map_err(|e| statement_error(kind, index, statement, e))?;
        }
        Ok(())
    }
}

/// MySQL and MariaDB keep user names in utf8mb3: a character outside the Basic Multilingual
/// Plane (an emoji, say) is stored as `?`, so the user created would not be the one named —
/// it could never be revoked by its name. Refused before anything runs.
fn check_username(username: &str) -> Result<(), DbError> {
    if username.chars().any(|c| u32::from(c) > 0xFFFF) {
        return Err(DbError::User {
            plugin: PLUGIN,
            username: username.to_owned(),
            problem: "holds a character outside the Basic Multilingual Plane, which MySQL user names (utf8mb3) cannot store".into(),
        });
    }
    Ok(())
}

fn opts(admin: &Admin, username: &str, password: &SecretValue, database: Option<&str>) -> Opts {
    let password = password.expose_str().filter(|p| !p.is_empty());
    OptsBuilder::default()
        .ip_or_hostname(admin.host.clone())
        .tcp_port(admin.port)
        .user(Some(username))
        .pass(password)
        .db_name(database)
        // Always the TCP address of the backend, never a local socket it happens to match.
        .prefer_socket(false)
        .init(vec!["SET NAMES utf8mb4"])
        .into()
}

fn login_error(admin: &Admin, username: &str, e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(ref s) if LOGIN_REFUSED.contains(&s.code) => {
            DbError::LoginRefused {
                plugin: PLUGIN,
                address: admin.address(),
                username: username.to_owned(),
                code: s.code.to_string(),
            }
        }
        e => DbError::Connect {
            plugin: PLUGIN,
            address: admin.address(),
            username: username.to_owned(),
            reason: e.to_string(),
        },
    }
}

fn statement_error(
    kind: StatementKind,
    index: usize,
    statement: &Rendered,
    e: mysql_async::Error,
) -> DbError {
    let (code, message) = match &e {
        mysql_async::Error::Server(s) => (s.code.to_string(), s.message.clone()),
        other => ("client".to_owned(), other.to_string()),
    };
    DbError::Statement {
        plugin: PLUGIN,
        kind,
        index,
        code,
        // "… near '<statement text>'": never for a statement that carried a password.
        message: (!statement.carries_secret()).then_some(message),
    }
}

impl Database for Mysql {
    async fn create(
        &self,
        role: &DynamicRole,
        name: &str,
        password: &SecretValue,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "create", async {
            check_username(name)?;
            let mut conn = self.conn().await?;
            let expiration = format_expiration(expiration);
            let values = Values {
                name: Some(name),
                password: Some(password),
                expiration: Some(&expiration),
            };
            let statements = role.statements(Dialect::Mysql, StatementKind::Creation);
            let created = self
                .run(&mut conn, StatementKind::Creation, &statements, &values)
                .await;
            if created.is_err() {
                // DDL committed as it ran: undo what did run. Its own failure (say, the user was
                // never created) is not the error to report.
                let revocation = role.statements(Dialect::Mysql, StatementKind::Revocation);
                let values = Values {
                    name: Some(name),
                    ..Values::default()
                };
                let _ = self
                    .run(&mut conn, StatementKind::Revocation, &revocation, &values)
                    .await;
            }
            created
        })
        .await
    }

    async fn revoke(&self, role: &DynamicRole, name: &str) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "revoke", async {
            check_username(name)?;
            let mut conn = self.conn().await?;
            let values = Values {
                name: Some(name),
                ..Values::default()
            };
            let statements = role.statements(Dialect::Mysql, StatementKind::Revocation);
            self.run(&mut conn, StatementKind::Revocation, &statements, &values)
                .await
        })
        .await
    }

    async fn renew(
        &self,
        role: &DynamicRole,
        name: &str,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        let statements = role.statements(Dialect::Mysql, StatementKind::Renew);
        if statements.is_empty() {
            return Ok(());
        }
        bounded(PLUGIN, &self.admin, "renew", async {
            check_username(name)?;
            let mut conn = self.conn().await?;
            let expiration = format_expiration(expiration);
            let values = Values {
                name: Some(name),
                expiration: Some(&expiration),
                ..Values::default()
            };
            self.run(&mut conn, StatementKind::Renew, &statements, &values)
                .await
        })
        .await
    }

    async fn set_password(
        &self,
        role: &StaticRole,
        username: &str,
        password: &SecretValue,
    ) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "set_password", async {
            check_username(username)?;
            let mut conn = self.conn().await?;
            let values = Values {
                name: Some(username),
                password: Some(password),
                ..Values::default()
            };
            let statements = role.statements(Dialect::Mysql);
            self.run(&mut conn, StatementKind::Rotation, &statements, &values)
                .await
        })
        .await
    }

    async fn login(&self, username: &str, password: &SecretValue) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "login", async {
            check_username(username)?;
            // No database: a dynamic user may have no privilege on the admin's database, and
            // that is not what this checks.
            let opts = opts(&self.admin, username, password, None);
            let mut conn = Conn::new(opts)
                .await
                .map_err(|e| login_error(&self.admin, username, e))?;
            conn.ping()
                .await
                .map_err(|e| login_error(&self.admin, username, e))?;
            let _ = conn.disconnect().await;
            Ok(())
        })
        .await
    }
}
