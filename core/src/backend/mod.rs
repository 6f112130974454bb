//! Database backends (`backends/*.yaml`): where dynamic and static credentials come from.
//!
//! A backend names a database (PostgreSQL, MySQL/MariaDB or Redis), how the controller reaches
//! it as an administrator — the admin password is a sealed value in a manifest, referenced by
//! secret path and key, never written here — and its roles:
//! - dynamic roles create a user per lease from Vault-style statements ([`template`]), with a
//!   generated name ([`username`]) and password ([`password`]), a default and a maximum TTL;
//! - static roles rotate the password of an existing account on a [`schedule`].
//!
//! Everything that can be checked without a database is checked by [`Backend::parse`], so a
//! backend that parses never fails later on a template, a TTL or a username length.
//! Schema: `schemas/backend.v1.json`; see docs/backends.md.

pub mod password;
pub mod schedule;
pub mod template;
pub mod username;

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::{FormatVersion, SecretPath};
use crate::yaml::FileError;
pub use password::PasswordPolicy;
pub use schedule::Schedule;
use template::{Dialect, Statement, Var};
pub use username::UsernameTemplate;

/// One backend file (schema: `schemas/backend.v1.json`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops database backend (format v1)",
    description = "Lives at backends/<name>.yaml: a database the controller issues dynamic credentials for and rotates static ones in. See docs/backends.md."
)]
pub struct Backend {
    /// Format version; `v1`.
    pub sealops: FormatVersion,
    /// The backend's name, used in paths: `<name>/creds/<role>`, `<name>/static-creds/<role>`.
    pub name: String,
    /// Which database this is.
    pub plugin: Plugin,
    /// How the controller connects as an administrator.
    pub connection: Connection,
    /// Roles that may use this connection (`"*"`: all). A role not listed is refused.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Roles by name.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
}

/// The database kind.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Plugin {
    Postgresql,
    /// MySQL and MariaDB.
    Mysql,
    /// Redis ACL users (Redis 6 and later).
    Redis,
}

impl Plugin {
    /// The SQL dialect of its statements; `None` for Redis (ACL rules, not SQL).
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Self::Postgresql => Some(Dialect::Postgres),
            Self::Mysql => Some(Dialect::Mysql),
            Self::Redis => None,
        }
    }

    /// The longest user name the database keeps: PostgreSQL truncates identifiers to 63 bytes
    /// (NAMEDATALEN - 1); MySQL's limit is 32 characters; Redis has none, 64 keeps names sane.
    pub fn username_limit(self) -> usize {
        match self {
            Self::Postgresql => 63,
            Self::Mysql => 32,
            Self::Redis => 64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Redis => "redis",
        }
    }
}

impl std::fmt::Display for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The administrator connection.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    /// The database to connect to (required for PostgreSQL, optional for MySQL, absent for
    /// Redis, whose ACL users are server-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The administrator's user name.
    pub username: String,
    /// Where the administrator's password is sealed.
    pub password: SecretRef,
}

/// A value sealed in a manifest: `secrets/<secret>.yaml`, key `key`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's path below secrets/ (e.g. `infra/postgres/admin`).
    pub secret: String,
    /// The key holding the value.
    pub key: String,
}

/// A role: a new user per lease, or an existing account whose password is rotated.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Dynamic(DynamicRole),
    Static(StaticRole),
}

/// A role that creates a user per lease.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DynamicRole {
    /// SQL creating the user (`{{name}}`, `{{password}}`, `{{expiration}}`, each inside the
    /// quotes it belongs in); for Redis, ACL rules such as `+@read` and `~cache:*`.
    pub creation_statements: Vec<String>,
    /// SQL dropping the user (`{{name}}`); required for SQL databases, absent for Redis (the
    /// user is deleted with ACL DELUSER).
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    /// SQL run when a lease is renewed (`{{name}}`, `{{expiration}}`); default: nothing.
    #[serde(default)]
    pub renew_statements: Vec<String>,
    /// Lease length, e.g. `1h`.
    pub default_ttl: String,
    /// A lease is never renewed past this long after it was issued.
    pub max_ttl: String,
    /// The generated user name; default `v-{{role}}-{{random 8}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_template: Option<String>,
    /// How generated passwords look.
    #[serde(default)]
    pub password_policy: PasswordPolicy,
}

/// A role that rotates an existing account's password.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticRole {
    /// The existing account.
    pub username: String,
    /// Rotate this long after the last rotation, e.g. `24h` (or give `schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// Rotate on a 5-field cron schedule in UTC, e.g. `0 3 * * SUN` (or give `rotation_period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// SQL setting the password (`{{name}}` or `{{username}}`, `{{password}}`); default:
    /// `ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}'` (PostgreSQL),
    /// `ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'` (MySQL). Absent for Redis.
    #[serde(default)]
    pub rotation_statements: Vec<String>,
    /// How generated passwords look.
    #[serde(default)]
    pub password_policy: PasswordPolicy,
}

/// Which statements of a role, and so which variables they may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    Creation,
    Revocation,
    Renew,
    Rotation,
}

impl StatementKind {
    pub fn field(self) -> &'static str {
        match self {
            Self::Creation => "creation_statements",
            Self::Revocation => "revocation_statements",
            Self::Renew => "renew_statements",
            Self::Rotation => "rotation_statements",
        }
    }

    /// The variables Vault allows in these statements.
    pub fn variables(self) -> &'static [Var] {
        match self {
            Self::Creation => &[Var::Name, Var::Password, Var::Expiration],
            Self::Revocation => &[Var::Name],
            Self::Renew => &[Var::Name, Var::Expiration],
            Self::Rotation => &[Var::Name, Var::Username, Var::Password],
        }
    }
}

const DEFAULT_ROTATION_POSTGRES: &str = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'";
const DEFAULT_ROTATION_MYSQL: &str = "ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'";

/// Parses every entry of `texts` into statements (an entry may hold several, `;`-separated).
pub fn parse_statements(
    texts: &[String],
    dialect: Dialect,
    kind: StatementKind,
) -> Result<Vec<Statement>, String> {
    let mut statements = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let parsed = template::parse(text, dialect, kind.variables())
            .map_err(|e| format!("{}[{index}]: {e}", kind.field()))?;
        statements.extend(parsed);
    }
    Ok(statements)
}

impl Backend {
    /// Parses and validates a backend file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        crate::yaml::from_str_validated(text, file, Self::validate)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        check_name(&self.name).map_err(|e| ("name", format!("name: {e}")))?;
        self.validate_connection()
            .map_err(|e| ("connection", format!("connection.{e}")))?;
        for allowed in &self.allowed_roles {
            if allowed != "*" && !self.roles.contains_key(allowed) {
                return Err((
                    "allowed_roles",
                    format!(
                        "allowed_roles names {allowed:?}, which is not a role of this backend: define it under roles or remove it"
                    ),
                ));
            }
        }
        for (name, role) in &self.roles {
            check_name(name).map_err(|e| ("roles", format!("roles.{name}: {e}")))?;
            if !self.role_allowed(name) {
                return Err((
                    "roles",
                    format!(
                        "role {name:?} is not in allowed_roles: add it there (or \"*\") to let it use this connection"
                    ),
                ));
            }
            let checked = match role {
                Role::Dynamic(role) => self.validate_dynamic(name, role),
                Role::Static(role) => self.validate_static(role),
            };
            checked.map_err(|e| ("roles", format!("roles.{name}.{e}")))?;
        }
        Ok(())
    }

    fn validate_connection(&self) -> Result<(), String> {
        let c = &self.connection;
        if c.host.is_empty()
            || c.host
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(format!("host {:?} must be a host name or address", c.host));
        }
        if c.port == 0 {
            return Err("port must be 1 to 65535".into());
        }
        if c.username.is_empty() || c.username.contains('\0') {
            return Err("username must be a non-empty user name".into());
        }
        match (self.plugin, &c.database) {
            (Plugin::Postgresql, None) => {
                return Err("database is required for postgresql (e.g. database: postgres)".into());
            }
            (Plugin::Redis, Some(_)) => {
                return Err(
                    "database: Redis ACL users are server-wide; remove database for plugin redis"
                        .into(),
                );
            }
            (_, Some(db)) if db.is_empty() || db.contains('\0') => {
                return Err("database must be a non-empty name".into());
            }
            _ => {}
        }
        SecretPath::parse(&c.password.secret).map_err(|e| format!("password.secret: {e}"))?;
        crate::manifest::validate_key_name(&c.password.key)
            .map_err(|e| format!("password.key: {e}"))?;
        Ok(())
    }

    fn validate_dynamic(&self, name: &str, role: &DynamicRole) -> Result<(), String> {
        let default_ttl = parse_ttl(&role.default_ttl).map_err(|e| format!("default_ttl: {e}"))?;
        let max_ttl = parse_ttl(&role.max_ttl).map_err(|e| format!("max_ttl: {e}"))?;
        if max_ttl < default_ttl {
            return Err(format!(
                "max_ttl ({}) is shorter than default_ttl ({}): raise max_ttl or lower default_ttl",
                role.max_ttl, role.default_ttl
            ));
        }
        if role.creation_statements.is_empty() {
            return Err(
                "creation_statements: at least one statement (or ACL rule) is needed".into(),
            );
        }
        match self.plugin.dialect() {
            Some(dialect) => {
                parse_statements(&role.creation_statements, dialect, StatementKind::Creation)?;
                if role.revocation_statements.is_empty() {
                    return Err(
                        "revocation_statements: needed for SQL databases (a lease that cannot be revoked outlives its TTL), e.g. DROP ROLE IF EXISTS \"{{name}}\""
                            .into(),
                    );
                }
                parse_statements(
                    &role.revocation_statements,
                    dialect,
                    StatementKind::Revocation,
                )?;
                parse_statements(&role.renew_statements, dialect, StatementKind::Renew)?;
            }
            None => {
                for (index, rule) in role.creation_statements.iter().enumerate() {
                    template::check_acl_rule(rule)
                        .map_err(|e| format!("creation_statements[{index}]: {e}"))?;
                }
                for (field, list) in [
                    ("revocation_statements", &role.revocation_statements),
                    ("renew_statements", &role.renew_statements),
                ] {
                    if !list.is_empty() {
                        return Err(format!(
                            "{field}: Redis users are revoked with ACL DELUSER and have no expiry to renew; remove {field}"
                        ));
                    }
                }
            }
        }
        let text = role
            .username_template
            .as_deref()
            .unwrap_or(username::DEFAULT);
        UsernameTemplate::parse(text)
            .map_err(|e| format!("username_template: {e}"))?
            .check_fits(name, &self.name, self.plugin.username_limit())
            .map_err(|e| format!("username_template: {e}"))?;
        role.password_policy
            .validate()
            .map_err(|e| format!("password_policy: {e}"))?;
        Ok(())
    }

    fn validate_static(&self, role: &StaticRole) -> Result<(), String> {
        let limit = self.plugin.username_limit();
        if role.username.is_empty() || role.username.contains('\0') || role.username.len() > limit {
            return Err(format!(
                "username must be the existing account's name, 1 to {limit} bytes for {}",
                self.plugin
            ));
        }
        if self.plugin == Plugin::Mysql && role.username.chars().any(|c| u32::from(c) > 0xFFFF) {
            return Err(
                "username: MySQL user names are utf8mb3 and cannot hold characters outside the Basic Multilingual Plane (such as emoji)"
                    .into(),
            );
        }
        if self.plugin == Plugin::Redis && role.username.chars().any(char::is_whitespace) {
            return Err("username: Redis user names cannot contain spaces".into());
        }
        role.schedule().map_err(|e| e.to_string())?;
        match self.plugin.dialect() {
            Some(dialect) => {
                parse_statements(&role.rotation_statements, dialect, StatementKind::Rotation)?;
            }
            None if !role.rotation_statements.is_empty() => {
                return Err(
                    "rotation_statements: Redis passwords are set with ACL SETUSER; remove rotation_statements"
                        .into(),
                );
            }
            None => {}
        }
        role.password_policy
            .validate()
            .map_err(|e| format!("password_policy: {e}"))?;
        Ok(())
    }

    /// Whether `role` may use this connection (`allowed_roles`).
    pub fn role_allowed(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// The dynamic role `name`, if there is one.
    pub fn dynamic_role(&self, name: &str) -> Option<&DynamicRole> {
        match self.roles.get(name) {
            Some(Role::Dynamic(role)) => Some(role),
            _ => None,
        }
    }

    /// The static role `name`, if there is one.
    pub fn static_role(&self, name: &str) -> Option<&StaticRole> {
        match self.roles.get(name) {
            Some(Role::Static(role)) => Some(role),
            _ => None,
        }
    }

    /// The secret path of the admin password (validated when parsed).
    pub fn admin_password_path(&self) -> SecretPath {
        SecretPath::parse(&self.connection.password.secret).expect("validated when parsed")
    }
}

impl DynamicRole {
    pub fn default_ttl(&self) -> Duration {
        parse_ttl(&self.default_ttl).expect("validated when parsed")
    }

    pub fn max_ttl(&self) -> Duration {
        parse_ttl(&self.max_ttl).expect("validated when parsed")
    }

    pub fn username_template(&self) -> UsernameTemplate {
        let text = self
            .username_template
            .as_deref()
            .unwrap_or(username::DEFAULT);
        UsernameTemplate::parse(text).expect("validated when parsed")
    }

    /// The statements of `kind` in `dialect` (validated when parsed).
    pub fn statements(&self, dialect: Dialect, kind: StatementKind) -> Vec<Statement> {
        let texts = match kind {
            StatementKind::Creation => &self.creation_statements,
            StatementKind::Revocation => &self.revocation_statements,
            StatementKind::Renew => &self.renew_statements,
            StatementKind::Rotation => return Vec::new(),
        };
        parse_statements(texts, dialect, kind).expect("validated when parsed")
    }
}

impl StaticRole {
    /// The rotation schedule; exactly one of `rotation_period` and `schedule` is given.
    pub fn schedule(&self) -> Result<Schedule, String> {
        match (&self.rotation_period, &self.schedule) {
            (Some(period), None) => {
                Schedule::period(period).map_err(|e| format!("rotation_period: {e}"))
            }
            (None, Some(cron)) => Schedule::cron(cron).map_err(|e| format!("schedule: {e}")),
            (Some(_), Some(_)) => Err("give rotation_period or schedule, not both".into()),
            (None, None) => {
                Err("give rotation_period (e.g. 24h) or schedule (e.g. \"0 3 * * SUN\")".into())
            }
        }
    }

    /// The rotation statements in `dialect`, or the default for it (validated when parsed).
    pub fn statements(&self, dialect: Dialect) -> Vec<Statement> {
        let default;
        let texts = if self.rotation_statements.is_empty() {
            default = vec![
                match dialect {
                    Dialect::Postgres => DEFAULT_ROTATION_POSTGRES,
                    Dialect::Mysql => DEFAULT_ROTATION_MYSQL,
                }
                .to_owned(),
            ];
            &default
        } else {
            &self.rotation_statements
        };
        parse_statements(texts, dialect, StatementKind::Rotation).expect("validated when parsed")
    }
}

/// Backend and role names appear in paths and user names: ASCII letters, digits, `_` and `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(format!(
            "{name:?} must be 1 to 64 ASCII letters, digits, '_' or '-' (it is used in paths and user names)"
        ));
    }
    Ok(())
}

/// Which kind of database role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialKind {
    /// A user per lease (`<backend>/creds/<role>`).
    Dynamic,
    /// An existing account whose password rotates (`<backend>/static-creds/<role>`).
    Static,
}

impl CredentialKind {
    fn segment(self) -> &'static str {
        match self {
            Self::Dynamic => "creds",
            Self::Static => "static-creds",
        }
    }
}

/// A database role an output reads, by backend (`backends/<backend>.yaml`) and role name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credentials {
    pub kind: CredentialKind,
    pub backend: String,
    pub role: String,
}

impl Credentials {
    /// Parses `<backend>/creds/<role>` or `<backend>/static-creds/<role>`.
    pub fn parse(text: &str, kind: CredentialKind) -> Result<Self, String> {
        let shape = format!("<backend>/{}/<role>", kind.segment());
        let parts: Vec<&str> = text.split('/').collect();
        let [backend, segment, role] = parts.as_slice() else {
            return Err(format!("{text:?} is not {shape}"));
        };
        if *segment != kind.segment() {
            return Err(format!("{text:?} is not {shape}"));
        }
        check_name(backend).map_err(|e| format!("{text:?}: the backend name {e}"))?;
        check_name(role).map_err(|e| format!("{text:?}: the role name {e}"))?;
        Ok(Self {
            kind,
            backend: (*backend).to_owned(),
            role: (*role).to_owned(),
        })
    }

    /// `<backend>/creds/<role>` or `<backend>/static-creds/<role>`: also the path policies
    /// grant `read` on.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.backend, self.kind.segment(), self.role)
    }
}

/// What `sealops rotate` rotates: a static role's account, or a backend's admin (`rotate-root`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationTarget {
    /// `<backend>/static-creds/<role>`.
    Static { backend: String, role: String },
    /// `<backend>/rotate-root`: the admin password of the backend's connection.
    Root { backend: String },
}

impl RotationTarget {
    /// Parses `<backend>/static-creds/<role>` or `<backend>/rotate-root`.
    pub fn parse(path: &str) -> Result<Self, String> {
        if let Some(backend) = path.strip_suffix("/rotate-root") {
            check_name(backend).map_err(|e| format!("{path:?}: the backend name {e}"))?;
            return Ok(Self::Root {
                backend: backend.to_owned(),
            });
        }
        Credentials::parse(path, CredentialKind::Static)
            .map(|c| Self::Static {
                backend: c.backend,
                role: c.role,
            })
            .map_err(|e| {
                format!("{e}: rotate <backend>/static-creds/<role> or <backend>/rotate-root")
            })
    }

    /// The backend it belongs to.
    pub fn backend(&self) -> &str {
        match self {
            Self::Static { backend, .. } | Self::Root { backend } => backend,
        }
    }

    /// `<backend>/static-creds/<role>` or `<backend>/rotate-root`: also the id of its
    /// rotation records.
    pub fn path(&self) -> String {
        match self {
            Self::Static { backend, role } => format!("{backend}/static-creds/{role}"),
            Self::Root { backend } => format!("{backend}/rotate-root"),
        }
    }
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = crate::controller_config::parse_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("{text:?} must be at least 1s"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = r#"sealops: v1
name: main-pg
plugin: postgresql
connection:
  host: 127.0.0.1
  port: 5432
  database: app
  username: sealops_admin
  password: {secret: infra/pg/admin, key: password}
allowed_roles: [readonly, app]
roles:
  readonly:
    dynamic:
      creation_statements:
        - CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";
      revocation_statements:
        - DROP ROLE IF EXISTS "{{name}}"
      renew_statements:
        - ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'
      default_ttl: 1h
      max_ttl: 24h
      password_policy: {length: 24, symbols: 2}
  app:
    static:
      username: app
      schedule: "0 3 * * SUN"
"#;

    #[test]
    fn parses_a_postgres_backend() {
        let backend = Backend::parse(PG, "backends/main-pg.yaml").expect("parses");
        let role = backend.dynamic_role("readonly").expect("dynamic");
        assert_eq!(role.default_ttl(), Duration::from_secs(3600));
        assert_eq!(
            role.statements(Dialect::Postgres, StatementKind::Creation)
                .len(),
            2
        );
        assert_eq!(
            role.password_policy.uppercase, 1,
            "unset minimums keep their default"
        );
        let app = backend.static_role("app").expect("static");
        assert!(matches!(app.schedule(), Ok(Schedule::Cron(_))));
        assert_eq!(app.statements(Dialect::Postgres).len(), 1);
        assert_eq!(backend.admin_password_path().to_string(), "infra/pg/admin");
    }

    fn err(text: &str) -> String {
        Backend::parse(text, "backends/main-pg.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_field_and_fix() {
        let e = err(&PG.replace("max_ttl: 24h", "max_ttl: 10m"));
        assert!(e.starts_with("backends/main-pg.yaml:"), "{e}");
        assert!(
            e.contains(
                "roles.readonly.max_ttl (10m) is shorter than default_ttl (1h): raise max_ttl"
            ),
            "{e}"
        );

        let e = err(&PG.replace("allowed_roles: [readonly, app]", "allowed_roles: [app]"));
        assert!(
            e.contains("role \"readonly\" is not in allowed_roles: add it"),
            "{e}"
        );

        let e = err(&PG.replace("VALID UNTIL '{{expiration}}'", "VALID UNTIL '{{expires}}'"));
        assert!(
            e.contains(
                "roles.readonly.creation_statements[0]: `{{expires}}` is not a variable here"
            ),
            "{e}"
        );

        let e = err(&PG.replace(
            "DROP ROLE IF EXISTS \"{{name}}\"",
            "DROP ROLE IF EXISTS {{name}}",
        ));
        assert!(
            e.contains("revocation_statements[0]: {{name}} at character 20 is outside quotes"),
            "{e}"
        );

        let e = err(&PG.replace("  database: app\n", ""));
        assert!(
            e.contains("connection.database is required for postgresql"),
            "{e}"
        );

        let e = err(&PG.replace(
            "schedule: \"0 3 * * SUN\"",
            "rotation_period: 1h\n      schedule: \"0 3 * * SUN\"",
        ));
        assert!(
            e.contains("roles.app.give rotation_period or schedule, not both"),
            "{e}"
        );

        let e = err(&PG.replace("plugin: postgresql", "plugin: oracle"));
        assert!(e.contains("oracle"), "{e}");

        let e = err(&PG.replace(
            "      default_ttl: 1h\n",
            "      default_ttl: 1h\n      ttl: 2h\n",
        ));
        assert!(e.contains("ttl"), "{e}");
    }

    #[test]
    fn redis_roles_are_acl_rules() {
        let redis = "sealops: v1\nname: cache\nplugin: redis\nconnection:\n  host: 127.0.0.1\n  port: 6379\n  username: default\n  password: {secret: infra/redis, key: password}\nallowed_roles: ['*']\nroles:\n  reader:\n    dynamic:\n      creation_statements: ['+@read', '~cache:*']\n      default_ttl: 5m\n      max_ttl: 1h\n";
        let backend = Backend::parse(redis, "backends/cache.yaml").expect("parses");
        assert!(backend.role_allowed("reader"));
        let e = err(&redis.replace("'+@read'", "'>secret'"));
        assert!(e.contains("manages"), "{e}");
        let e = err(&redis.replace(
            "      max_ttl: 1h\n",
            "      max_ttl: 1h\n      revocation_statements: [x]\n",
        ));
        assert!(e.contains("ACL DELUSER"), "{e}");
    }

    #[test]
    fn mysql_usernames_must_fit_32_characters() {
        let mysql = PG
            .replace("plugin: postgresql", "plugin: mysql")
            .replace("VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";", "")
            .replace("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'", "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'")
            .replace("ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'", "SELECT '{{expiration}}'");
        Backend::parse(&mysql, "b.yaml").expect("parses");
        let long = mysql.replace(
            "      default_ttl: 1h\n",
            "      default_ttl: 1h\n      username_template: \"{{random 20}}-{{unix_time}}-x\"\n",
        );
        assert!(err(&long).contains("limit of 32"), "{}", err(&long));
    }

    #[test]
    fn rotation_targets() {
        assert_eq!(
            RotationTarget::parse("main-pg/static-creds/app_1"),
            Ok(RotationTarget::Static {
                backend: "main-pg".into(),
                role: "app_1".into()
            })
        );
        assert_eq!(
            RotationTarget::parse("main-pg/rotate-root").map(|t| t.path()),
            Ok("main-pg/rotate-root".into())
        );
        for bad in [
            "main-pg/creds/app",
            "main-pg/static-creds",
            "main-pg/static-creds/",
            "/static-creds/app",
            "main-pg/static-creds/app/extra",
            "../static-creds/app",
            "main pg/static-creds/app",
            "../rotate-root",
            "",
        ] {
            let e = RotationTarget::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("rotate") || e.contains("backend"), "{e}");
        }
    }
}
