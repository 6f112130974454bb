//! Database drivers of the dynamic backends: create, revoke and renew users of dynamic roles,
//! set passwords of static roles, and check a credential by logging in with it.
//!
//! Why async (`tokio-postgres`, `mysql_async`, `redis` with tokio) rather than blocking drivers
//! in `spawn_blocking`: the controller already runs on tokio; revoking a thousand expired
//! leases or retrying a database that is down is many concurrent, mostly-waiting operations,
//! which async drivers do without a thread each; and an operation is bounded with
//! `tokio::time::timeout` instead of a blocked thread nobody can interrupt.
//!
//! The trait uses `impl Future + Send` returns (no boxing); [`Driver`] picks the driver for a
//! backend's plugin at run time.
//!
//! Secrets: passwords arrive as [`SecretValue`], statements carrying them are
//! [`Rendered`](sealops_core::backend::template::Rendered) (zeroed, redacted), and a server's
//! error message about a statement that carried a password is never passed on — MySQL's
//! syntax errors quote the statement text ("near '…'"), PostgreSQL's can too — only its
//! error code is.

pub mod mysql;
pub mod postgres;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sealops_core::backend::template::{RenderError, Rendered};
use sealops_core::backend::{Backend, DynamicRole, Plugin, StatementKind, StaticRole};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

/// How long one operation (connect included) may take before it fails with [`DbError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom a driver connects (from a backend's `connection`).
#[derive(Clone)]
pub struct Admin {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub username: String,
    pub password: SecretValue,
    pub timeout: Duration,
}

impl Admin {
    /// The backend's connection with the admin password unsealed by the caller.
    pub fn from_backend(backend: &Backend, password: SecretValue) -> Self {
        let c = &backend.connection;
        Self {
            host: c.host.clone(),
            port: c.port,
            database: c.database.clone(),
            username: c.username.clone(),
            password,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `host:port`, for errors.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A database operation that failed. No variant ever holds a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{plugin} at {address}: cannot connect as {username:?}: {reason}")]
    Connect {
        plugin: Plugin,
        address: String,
        username: String,
        reason: String,
    },
    /// The database refused the credential (wrong password, no such user, expired, locked).
    #[error("{plugin} at {address}: login as {username:?} refused ({code})")]
    LoginRefused {
        plugin: Plugin,
        address: String,
        username: String,
        code: String,
    },
    #[error("{plugin}: {} statement {index} failed ({code}){}", kind.field(), match message {
        Some(m) => format!(": {m}"),
        None => ": the server's message is withheld because the statement carried a password".to_owned(),
    })]
    Statement {
        plugin: Plugin,
        kind: StatementKind,
        /// 0-based, over the statements of `kind` after splitting on `;`.
        index: usize,
        /// SQLSTATE, MySQL error number or Redis error code.
        code: String,
        /// The server's message; `None` when the statement carried a password.
        message: Option<String>,
    },
    #[error("{plugin}: {operation} on {username:?} failed ({code}){}", match message {
        Some(m) => format!(": {m}"),
        None => String::new(),
    })]
    Command {
        plugin: Plugin,
        operation: &'static str,
        username: String,
        code: String,
        message: Option<String>,
    },
    #[error("{plugin}: {source}")]
    Render {
        plugin: Plugin,
        #[source]
        source: RenderError,
    },
    #[error("{plugin} at {address}: {problem}")]
    Unsafe {
        plugin: Plugin,
        address: String,
        problem: String,
    },
    #[error("{plugin}: user {username:?} {problem}")]
    User {
        plugin: Plugin,
        username: String,
        problem: String,
    },
    #[error("{plugin} at {address}: {operation} took longer than {timeout:?}")]
    Timeout {
        plugin: Plugin,
        address: String,
        operation: &'static str,
        timeout: Duration,
    },
}

impl DbError {
    /// Whether the database said no to a credential (as opposed to being unreachable).
    pub fn is_login_refused(&self) -> bool {
        matches!(self, Self::LoginRefused { .. })
    }
}

/// What every driver does. Statements of a role are rendered with its values, each escaped for
/// the server's quoting rules, and run in one transaction where the database has them.
pub trait Database: Send + Sync {
    /// Creates the user `name` of a dynamic role, valid until `expiration`.
    fn create(
        &self,
        role: &DynamicRole,
        name: &str,
        password: &SecretValue,
        expiration: OffsetDateTime,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Removes the user `name` of a dynamic role. Revoking a user that is already gone is
    /// not an error for Redis; for SQL it is what the revocation statements make it
    /// (`DROP ROLE IF EXISTS` makes it idempotent).
    fn revoke(
        &self,
        role: &DynamicRole,
        name: &str,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Extends the user `name` to `expiration` (runs `renew_statements`; none: nothing to do).
    fn renew(
        &self,
        role: &DynamicRole,
        name: &str,
        expiration: OffsetDateTime,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Sets the password of the existing account `username` (a static role, or the admin for
    /// rotate-root with a role whose statements apply to it).
    fn set_password(
        &self,
        role: &StaticRole,
        username: &str,
        password: &SecretValue,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Logs in as `username` with `password` and runs a trivial command; `Ok` means the
    /// database accepted the credential, [`DbError::LoginRefused`] that it did not.
    fn login(
        &self,
        username: &str,
        password: &SecretValue,
    ) -> impl Future<Output = Result<(), DbError>> + Send;
}

/// The driver for a backend's plugin.
#[derive(Debug)]
pub enum Driver {
    Postgres(postgres::Postgres),
    Mysql(mysql::Mysql),
    Redis(redis::Redis),
}

impl Driver {
    /// A driver for `backend`; connects lazily, on the first operation.
    pub fn new(backend: &Backend, admin: Admin) -> Self {
        match backend.plugin {
            Plugin::Postgresql => Self::Postgres(postgres::Postgres::new(admin)),
            Plugin::Mysql => Self::Mysql(mysql::Mysql::new(admin)),
            Plugin::Redis => Self::Redis(redis::Redis::new(admin)),
        }
    }
}

impl Database for Driver {
    async fn create(
        &self,
        role: &DynamicRole,
        name: &str,
        password: &SecretValue,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        match self {
            Self::Postgres(d) => d.create(role, name, password, expiration).await,
            Self::Mysql(d) => d.create(role, name, password, expiration).await,
            Self::Redis(d) => d.create(role, name, password, expiration).await,
        }
    }

    async fn revoke(&self, role: &DynamicRole, name: &str) -> Result<(), DbError> {
        match self {
            Self::Postgres(d) => d.revoke(role, name).await,
            Self::Mysql(d) => d.revoke(role, name).await,
            Self::Redis(d) => d.revoke(role, name).await,
        }
    }

    async fn renew(
        &self,
        role: &DynamicRole,
        name: &str,
        expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        match self {
            Self::Postgres(d) => d.renew(role, name, expiration).await,
            Self::Mysql(d) => d.renew(role, name, expiration).await,
            Self::Redis(d) => d.renew(role, name, expiration).await,
        }
    }

    async fn set_password(
        &self,
        role: &StaticRole,
        username: &str,
        password: &SecretValue,
    ) -> Result<(), DbError> {
        match self {
            Self::Postgres(d) => d.set_password(role, username, password).await,
            Self::Mysql(d) => d.set_password(role, username, password).await,
            Self::Redis(d) => d.set_password(role, username, password).await,
        }
    }

    async fn login(&self, username: &str, password: &SecretValue) -> Result<(), DbError> {
        match self {
            Self::Postgres(d) => d.login(username, password).await,
            Self::Mysql(d) => d.login(username, password).await,
            Self::Redis(d) => d.login(username, password).await,
        }
    }
}

/// Renders every statement, or the first value that cannot be rendered.
pub(crate) fn render_all(
    plugin: Plugin,
    statements: &[sealops_core::backend::template::Statement],
    values: &sealops_core::backend::template::Values<'_>,
    escaping: sealops_core::backend::template::Escaping,
) -> Result<Vec<Rendered>, DbError> {
    statements
        .iter()
        .map(|s| s.render(values, escaping))
        .collect::<Result<_, _>>()
        .map_err(|source| DbError::Render { plugin, source })
}

/// Runs `future` under the admin's timeout.
pub(crate) async fn bounded<T>(
    plugin: Plugin,
    admin: &Admin,
    operation: &'static str,
    future: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(admin.timeout, future)
        .await
        .unwrap_or_else(|_| {
            Err(DbError::Timeout {
                plugin,
                address: admin.address(),
                operation,
                timeout: admin.timeout,
            })
        })
}
