//! Redis ACL users (Redis 6 and later).
//!
//! Every command is an argument vector (`ACL SETUSER <name> reset on ><password> <rules…>`),
//! never a string to be split, so a user name or password cannot become another argument
//! whatever it holds. Redis has no expiry for ACL users: renewing is a no-op and the lease
//! store revokes (`ACL DELUSER`) at expiry.
//!
//! Each operation opens its own connection and authenticates with `AUTH`: a connection that
//! survived a server restart would have lost its authentication, and issuing is rare enough
//! that the extra round trip does not matter.

use redis::aio::MultiplexedConnection;
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, Value};
use sealops_core::backend::{DynamicRole, Plugin, StatementKind, StaticRole};
use sealops_core::secret::SecretValue;
use time::OffsetDateTime;

use super::{Admin, Database, DbError, bounded};

const PLUGIN: Plugin = Plugin::Redis;

/// The Redis driver of one backend.
#[derive(Debug)]
pub struct Redis {
    admin: Admin,
}

impl Redis {
    pub fn new(admin: Admin) -> Self {
        Self { admin }
    }

    fn info(&self) -> Result<ConnectionInfo, DbError> {
        ConnectionAddr::Tcp(self.admin.host.clone(), self.admin.port)
            .into_connection_info()
            .map_err(|e| self.connect_error(&self.admin.username, &e))
    }

    fn connect_error(&self, username: &str, e: &RedisError) -> DbError {
        DbError::Connect {
            plugin: PLUGIN,
            address: self.admin.address(),
            username: username.to_owned(),
            reason: e.to_string(),
        }
    }

    /// A connection authenticated as `username`.
    async fn connect_as(
        &self,
        username: &str,
        password: &SecretValue,
    ) -> Result<MultiplexedConnection, DbError> {
        let client = Client::open(self.info()?).map_err(|e| self.connect_error(username, &e))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| self.connect_error(username, &e))?;
        let auth: Result<Value, RedisError> = redis::cmd("AUTH")
            .arg(username)
            .arg(password.expose())
            .query_async(&mut conn)
            .await;
        match auth {
            Ok(_) => Ok(conn),
            Err(e) if e.code() == Some("WRONGPASS") => Err(DbError::LoginRefused {
                plugin: PLUGIN,
                address: self.admin.address(),
                username: username.to_owned(),
                code: "WRONGPASS".into(),
            }),
            Err(e) => Err(self.connect_error(username, &e)),
        }
    }

    async fn admin(&self) -> Result<MultiplexedConnection, DbError> {
        self.connect_as(&self.admin.username, &self.admin.password)
            .await
    }

    async fn user_exists(
        &self,
        conn: &mut MultiplexedConnection,
        username: &str,
    ) -> Result<bool, DbError> {
        let user: Value = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(username)
            .query_async(conn)
            .await
            .map_err(|e| command_error("ACL GETUSER", username, &e, true))?;
        Ok(!matches!(user, Value::Nil))
    }
}

/// An error of an ACL command; `with_message` is false when the command carried a password
/// (Redis quotes the offending SETUSER argument in its errors).
fn command_error(
    operation: &'static str,
    username: &str,
    e: &RedisError,
    with_message: bool,
) -> DbError {
    DbError::Command {
        plugin: PLUGIN,
        operation,
        username: username.to_owned(),
        code: e.code().unwrap_or("client").to_owned(),
        message: with_message.then(|| e.to_string()),
    }
}

impl Database for Redis {
    async fn create(
        &self,
        role: &DynamicRole,
        name: &str,
        password: &SecretValue,
        _expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "create", async {
            let mut conn = self.admin().await?;
            // SETUSER on an existing user would take it over (names are random, but a
            // collision must fail, not merge).
            if self.user_exists(&mut conn, name).await? {
                return Err(DbError::User {
                    plugin: PLUGIN,
                    username: name.to_owned(),
                    problem: "already exists; not taking it over".into(),
                });
            }
            let mut command = redis::cmd("ACL");
            command.arg("SETUSER").arg(name).arg("reset").arg("on");
            let mut secret = Vec::with_capacity(password.len() + 1);
            secret.push(b'>');
            secret.extend_from_slice(password.expose());
            let secret = zeroize::Zeroizing::new(secret);
            command.arg(&secret[..]);
            for rule in &role.creation_statements {
                command.arg(rule);
            }
            let result: Result<Value, RedisError> = command.query_async(&mut conn).await;
            result.map_err(|e| DbError::Statement {
                plugin: PLUGIN,
                kind: StatementKind::Creation,
                index: 0,
                code: e.code().unwrap_or("client").to_owned(),
                message: None,
            })?;
            Ok(())
        })
        .await
    }

    async fn revoke(&self, _role: &DynamicRole, name: &str) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "revoke", async {
            let mut conn = self.admin().await?;
            // Returns how many users were deleted; 0 (already gone) is success.
            let _: i64 = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(name)
                .query_async(&mut conn)
                .await
                .map_err(|e| command_error("ACL DELUSER", name, &e, true))?;
            Ok(())
        })
        .await
    }

    async fn renew(
        &self,
        _role: &DynamicRole,
        _name: &str,
        _expiration: OffsetDateTime,
    ) -> Result<(), DbError> {
        Ok(())
    }

    async fn set_password(
        &self,
        _role: &StaticRole,
        username: &str,
        password: &SecretValue,
    ) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "set_password", async {
            let mut conn = self.admin().await?;
            // SETUSER would create a missing user: a static role's account must exist.
            if !self.user_exists(&mut conn, username).await? {
                return Err(DbError::User {
                    plugin: PLUGIN,
                    username: username.to_owned(),
                    problem: "does not exist; a static role rotates an existing account".into(),
                });
            }
            let mut secret = Vec::with_capacity(password.len() + 1);
            secret.push(b'>');
            secret.extend_from_slice(password.expose());
            let secret = zeroize::Zeroizing::new(secret);
            // One command: the old password stops working exactly when the new one starts.
            let _: Value = redis::cmd("ACL")
                .arg("SETUSER")
                .arg(username)
                .arg("resetpass")
                .arg(&secret[..])
                .query_async(&mut conn)
                .await
                .map_err(|e| command_error("ACL SETUSER", username, &e, false))?;
            Ok(())
        })
        .await
    }

    async fn login(&self, username: &str, password: &SecretValue) -> Result<(), DbError> {
        bounded(PLUGIN, &self.admin, "login", async {
            let mut conn = self.connect_as(username, password).await?;
            let _: Value = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| command_error("PING", username, &e, true))?;
            Ok(())
        })
        .await
    }
}
