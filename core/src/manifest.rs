//! The sealed manifest, format v1: types, parsing and canonical YAML.
//!
//! One value per line, keys sorted, sessions sorted, so changing one value changes one line and
//! two pull requests that touch different keys merge with plain git. `docs/format.md` is the
//! user-facing description; [`ManifestDoc`] is the schema (`schemas/sealed-secret.v1.json`).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::keys::KeyId;
use crate::value::{SealedValue, SessionId};
use crate::yaml::{FileError, Location};

/// The only format version this build reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FormatVersion {
    #[serde(rename = "v1")]
    V1,
}

/// A secret's path below `secrets/`, without `.yaml` (e.g. `apps/payments/db`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretPath(String);

impl SecretPath {
    /// Validates a path: `/`-separated segments of `[A-Za-z0-9._-]`, no `.`/`..`, no `.yaml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.strip_suffix(".yaml").unwrap_or(text);
        if text.is_empty() {
            return Err("a secret path cannot be empty".into());
        }
        for segment in text.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(format!(
                    "invalid secret path {text:?}: segments must be non-empty and not `.` or `..` (e.g. apps/payments/db)"
                ));
            }
            if let Some(bad) = segment.chars().find(|c| !is_name_char(*c)) {
                return Err(format!(
                    "invalid secret path {text:?}: {bad:?} is not allowed (use letters, digits, `.`, `_`, `-` and `/`)"
                ));
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path policies use: `secrets/<path>`.
    pub fn policy_path(&self) -> String {
        format!("secrets/{}", self.0)
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks a key name: Kubernetes Secret key rules (`[A-Za-z0-9._-]`, 1–253 characters).
pub fn validate_key_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 253 {
        return Err(format!(
            "invalid key name {key:?}: must be 1 to 253 characters"
        ));
    }
    if let Some(bad) = key.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "invalid key name {key:?}: {bad:?} is not allowed (use letters, digits, `.`, `_` and `-`)"
        ));
    }
    Ok(())
}

/// What a manifest's ciphertexts are bound to, besides key name and session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Bound to the manifest's own path (default): a ciphertext opens only in this manifest.
    Strict,
    /// Bound to a directory: the manifest may live anywhere below it.
    Under(String),
    /// Bound to the repository only: the manifest may live at any path.
    Repository,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "strict" => Ok(Self::Strict),
            "repository" => Ok(Self::Repository),
            _ => match text.strip_prefix("under:") {
                Some(dir) => SecretPath::parse(dir).map(|p| Self::Under(p.0)),
                None => Err(format!(
                    "invalid scope {text:?}: expected `strict`, `under:<dir>` or `repository`"
                )),
            },
        }
    }

    /// The string the associated data binds every value of the manifest at `path` to.
    pub fn binding(&self, path: &SecretPath) -> String {
        match self {
            Self::Strict => format!("path:{path}"),
            Self::Under(dir) => format!("under:{dir}"),
            Self::Repository => "repository".to_owned(),
        }
    }

    /// Whether a manifest with this scope may live at `path`.
    pub fn permits(&self, path: &SecretPath) -> bool {
        match self {
            Self::Strict | Self::Repository => true,
            Self::Under(dir) => path
                .as_str()
                .strip_prefix(dir.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Strict => f.write_str("strict"),
            Self::Under(dir) => write!(f, "under:{dir}"),
            Self::Repository => f.write_str("repository"),
        }
    }
}

/// One seal session: its key wrapped to recipients (an armored age file) and their key ids in
/// stanza order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub recipients: Vec<KeyId>,
    /// HMAC by an identity holder who created or vetted the session (see `seal`); sessions
    /// without one are never reused for new values.
    pub endorsement: Option<String>,
    pub envelope: String,
}

/// A sealed manifest in memory. Ciphertexts only: opening needs an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub path: SecretPath,
    pub scope: Scope,
    pub data: BTreeMap<String, SealedValue>,
    pub plain: BTreeMap<String, String>,
    pub sessions: BTreeMap<SessionId, Session>,
}

/// The on-disk shape of a sealed manifest (v1); the JSON Schema is generated from it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops sealed secret (format v1)",
    description = "Secret values sealed with sealops. Key names are readable; values under `data` are encrypted. See docs/format.md."
)]
pub struct ManifestDoc {
    /// Format version; this build reads and writes `v1`.
    pub sealops: FormatVersion,
    /// The secret's path below `secrets/`, without `.yaml`. Strict-scope ciphertexts are bound to it.
    pub path: String,
    /// `strict` (default: values open only at `path`), `under:<dir>` (anywhere below dir) or `repository`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Sealed values: `sealed:v1:<session id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
    #[serde(default)]
    #[schemars(extend(
        "propertyNames" = {"pattern": "^[A-Za-z0-9._-]{1,253}$"},
        "additionalProperties" = {"type": "string", "pattern": "^sealed:v1:[0-9a-f]{12}:[A-Za-z0-9_-]+$"}
    ))]
    pub data: BTreeMap<String, String>,
    /// Non-secret values, stored in clear.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9._-]{1,253}$"}))]
    pub plain: BTreeMap<String, String>,
    /// Seal sessions by id (12 hex digits): each session key wrapped with age to recipients.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": "^[0-9a-f]{12}$"}))]
    pub sessions: BTreeMap<String, SessionDoc>,
}

/// One seal session as written in a manifest.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDoc {
    /// Key ids (first 16 hex digits of SHA-256 of the `age1…` recipient) in stanza order.
    pub recipients: Vec<String>,
    /// HMAC-SHA256 (hex) by a recipient's identity: the session was created by an identity
    /// holder, so another identity holder may seal new values under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub endorsement: Option<String>,
    /// The session key as an ASCII-armored age file, openable with `age -d -i IDENTITY`.
    pub key: String,
}

fn default_scope() -> String {
    "strict".to_owned()
}

/// A newer (or foreign) format version gets a message that says what to do.
fn check_version(text: &str, file: &str) -> Result<(), FileError> {
    for (index, line) in text.lines().enumerate() {
        if let Some(version) = line.strip_prefix("sealops:").map(str::trim)
            && !version.is_empty()
            && version != "v1"
        {
            return Err(FileError {
                location: Location {
                    file: file.to_owned(),
                    line: Some(index as u64 + 1),
                    column: None,
                },
                problem: format!(
                    "unsupported format version {version}: this build of sealops reads and writes v1; upgrade sealops to read this file"
                ),
            });
        }
    }
    Ok(())
}

impl Manifest {
    /// An empty manifest for `path`.
    pub fn new(path: SecretPath, scope: Scope) -> Self {
        Self {
            path,
            scope,
            data: BTreeMap::new(),
            plain: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }

    /// Parses manifest text; `file` names it in errors, which carry line and column.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        check_version(text, file)?;
        let doc: ManifestDoc = crate::yaml::from_str(text, file)?;
        let at = |section: &str, key: Option<&str>, problem: String| FileError {
            location: Location {
                file: file.to_owned(),
                line: crate::yaml::find_line(text, section, key),
                column: None,
            },
            problem,
        };
        let path = SecretPath::parse(&doc.path).map_err(|e| at("path", None, e))?;
        let scope = Scope::parse(&doc.scope).map_err(|e| at("scope", None, e))?;
        if !scope.permits(&path) {
            return Err(at(
                "scope",
                None,
                format!("scope {scope} does not include the manifest's path {path}"),
            ));
        }
        let mut sessions = BTreeMap::new();
        for (id, session) in doc.sessions {
            let sid = SessionId::parse(&id).ok_or_else(|| {
                at(
                    "sessions",
                    Some(&id),
                    format!("session id {id:?} is not 12 lowercase hex digits"),
                )
            })?;
            let recipients = session
                .recipients
                .iter()
                .map(|r| {
                    KeyId::parse(r).ok_or_else(|| {
                        at("sessions", Some(&id), format!("session {id}: recipient key id {r:?} is not 16 lowercase hex digits"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if recipients.is_empty() {
                return Err(at(
                    "sessions",
                    Some(&id),
                    format!("session {id} has no recipients"),
                ));
            }
            if let Some(tag) = &session.endorsement
                && (tag.len() != 64 || !tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            {
                return Err(at(
                    "sessions",
                    Some(&id),
                    format!("session {id}: endorsement is not 64 lowercase hex digits"),
                ));
            }
            sessions.insert(
                sid,
                Session {
                    recipients,
                    endorsement: session.endorsement,
                    envelope: session.key,
                },
            );
        }
        let mut data = BTreeMap::new();
        for (key, value) in doc.data {
            validate_key_name(&key).map_err(|e| at("data", Some(&key), e))?;
            let sealed = SealedValue::parse(&value)
                .map_err(|e| at("data", Some(&key), format!("key {key}: {e}")))?;
            if !sessions.contains_key(sealed.session()) {
                return Err(at(
                    "data",
                    Some(&key),
                    format!(
                        "key {key} is sealed under session {} which is not in `sessions` (a session entry was removed or lost in a merge)",
                        sealed.session()
                    ),
                ));
            }
            data.insert(key, sealed);
        }
        for key in doc.plain.keys() {
            validate_key_name(key).map_err(|e| at("plain", Some(key), e))?;
            if data.contains_key(key) {
                return Err(at(
                    "plain",
                    Some(key),
                    format!("key {key} is both sealed (under data) and plain; keep one"),
                ));
            }
        }
        Ok(Self {
            path,
            scope,
            data,
            plain: doc.plain,
            sessions,
        })
    }

    /// The canonical YAML text: deterministic, one value per line, so diffs stay minimal.
    pub fn to_yaml(&self) -> String {
        let mut out =
            String::with_capacity(256 + 120 * self.data.len() + 400 * self.sessions.len());
        out.push_str("# Sealed with sealops (docs/format.md). Values under `data` are encrypted; change them with `sealops set` or `sealops edit`.\n");
        out.push_str("sealops: v1\n");
        let _ = writeln!(out, "path: {}", crate::yaml::scalar(self.path.as_str()));
        let _ = writeln!(
            out,
            "scope: {}",
            crate::yaml::scalar(&self.scope.to_string())
        );
        if self.data.is_empty() {
            out.push_str("data: {}\n");
        } else {
            out.push_str("data:\n");
            for (key, value) in &self.data {
                let _ = writeln!(out, "  {}: {value}", crate::yaml::scalar(key));
            }
        }
        if !self.plain.is_empty() {
            out.push_str("plain:\n");
            for (key, value) in &self.plain {
                let quoted = serde_json::to_string(value).expect("a string serialises");
                let _ = writeln!(out, "  {}: {quoted}", crate::yaml::scalar(key));
            }
        }
        if self.sessions.is_empty() {
            out.push_str("sessions: {}\n");
        } else {
            out.push_str("sessions:\n");
            for (id, session) in &self.sessions {
                let ids: Vec<&str> = session.recipients.iter().map(KeyId::as_str).collect();
                let _ = writeln!(out, "  {id}:\n    recipients: [{}]", ids.join(", "));
                if let Some(tag) = &session.endorsement {
                    let _ = writeln!(out, "    endorsement: {tag}");
                }
                out.push_str("    key: |\n");
                for line in session.envelope.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        out
    }

    /// The string every value's associated data binds to (see [`Scope::binding`]).
    pub fn scope_binding(&self) -> String {
        self.scope.binding(&self.path)
    }

    /// Every key, sealed or plain, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let mut keys: Vec<&str> = self
            .data
            .keys()
            .chain(self.plain.keys())
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.into_iter()
    }

    /// Keys sealed under `session`.
    pub fn keys_in_session(&self, session: &SessionId) -> Vec<&str> {
        self.data
            .iter()
            .filter(|(_, v)| v.session() == session)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Drops sessions no value uses any more.
    pub fn drop_unused_sessions(&mut self) {
        let used: std::collections::BTreeSet<&SessionId> =
            self.data.values().map(SealedValue::session).collect();
        let unused: Vec<SessionId> = self
            .sessions
            .keys()
            .filter(|id| !used.contains(id))
            .cloned()
            .collect();
        for id in unused {
            self.sessions.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        assert_eq!(
            SecretPath::parse("apps/db.yaml").expect("valid").as_str(),
            "apps/db"
        );
        assert_eq!(
            SecretPath::parse("apps/db").expect("valid").policy_path(),
            "secrets/apps/db"
        );
        for bad in ["", "/abs", "a//b", "a/../b", "a b", "a/", "./a"] {
            assert!(SecretPath::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn scopes() {
        let path = SecretPath::parse("apps/payments/db").expect("valid");
        assert_eq!(
            Scope::parse("strict").expect("valid").binding(&path),
            "path:apps/payments/db"
        );
        let under = Scope::parse("under:apps/payments").expect("valid");
        assert!(under.permits(&path));
        assert!(!under.permits(&SecretPath::parse("apps/paymentsX/db").expect("valid")));
        assert!(Scope::parse("wide").is_err());
    }

    #[test]
    fn keys_that_yaml_would_misread_are_quoted() {
        assert_eq!(crate::yaml::scalar("DB_PASSWORD"), "DB_PASSWORD");
        assert_eq!(crate::yaml::scalar("yes"), "\"yes\"");
        assert_eq!(crate::yaml::scalar("1"), "\"1\"");
        assert_eq!(crate::yaml::scalar(".env"), "\".env\"");
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let text = "sealops: v1\npath: apps/db\nextra: 1\n";
        let err = Manifest::parse(text, "secrets/apps/db.yaml").unwrap_err();
        assert_eq!(err.location.line, Some(3), "{err}");
        assert!(
            err.to_string().starts_with("secrets/apps/db.yaml:3"),
            "{err}"
        );
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn plaintext_in_data_is_refused_with_its_line() {
        let text = "sealops: v1\npath: apps/db\ndata:\n  PASSWORD: hunter2\n";
        let err = Manifest::parse(text, "f.yaml").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("key PASSWORD"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the plaintext must not be echoed: {message}"
        );
    }

    #[test]
    fn unsupported_version_is_named() {
        let err = Manifest::parse("sealops: v9\npath: a\n", "f.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml:1: unsupported format version v9: this build of sealops reads and writes v1; upgrade sealops to read this file"
        );
    }
}
