//! The controller's local configuration (`sealops-controller --config FILE`).
//!
//! It holds everything the repository must not be able to widen: where secrets may be written,
//! which hooks may run, which identities decrypt, and the bootstrap of trust. Schema:
//! `schemas/controller.v1.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::FormatVersion;
use crate::yaml::FileError;

/// The controller's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops controller configuration (format v1)",
    description = "Local to the machine running sealops-controller; nothing in the repository can widen it. See docs/controller.md."
)]
pub struct ControllerConfig {
    /// Format version; `v1`.
    pub sealops: FormatVersion,
    /// The repository to follow.
    pub repository: RepositorySource,
    /// How often to fetch a remote (with jitter), and the period of full resyncs.
    #[serde(default)]
    pub poll: Poll,
    /// Identity files (age-keygen format, mode 0600). Several may be given so old manifests
    /// keep opening during key renewal.
    pub identity_files: Vec<PathBuf>,
    /// Where the controller keeps its state (last applied commit, journal, leases).
    pub state_dir: PathBuf,
    /// This node: targets select nodes by labels.
    #[serde(default)]
    pub node: Node,
    /// Directories outputs may be written under; a target naming a path elsewhere is refused.
    pub output_roots: Vec<PathBuf>,
    /// Commands targets may run after their outputs changed, by name.
    #[serde(default)]
    pub hooks: BTreeMap<String, Hook>,
    /// Bootstrap of trust: whose signatures count, before the repository says anything.
    pub trust: TrustBootstrap,
    /// HTTP endpoints (health, readiness, metrics, status, webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// What happens to the outputs of a target that was removed.
    #[serde(default)]
    pub removed_outputs: RemovedOutputs,
    /// Accept a branch whose new head does not descend from the applied commit, judging the new
    /// history from `trust.initial_commit` (required for it). Weakens rollback protection:
    /// `check-config` reports it.
    #[serde(default)]
    pub allow_force_push: bool,
    /// The audit trail this controller writes back to the repository.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Leases of dynamic database credentials.
    #[serde(default)]
    pub leases: LeaseSettings,
    /// The local API `sealops lease …` and `sealops rotate` talk to (loopback only).
    #[serde(default)]
    pub api: ApiSettings,
}

/// How leases of dynamic credentials are handled (see docs/backends.md).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// How long replaced credentials stay valid after their successor reached the outputs, so
    /// consumers can reload (e.g. `1m`).
    #[serde(default = "one_minute")]
    pub revoke_grace: ConfigDuration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            revoke_grace: one_minute(),
        }
    }
}

fn one_minute() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

/// The controller's local, authenticated API for leases and rotation. It changes credentials on
/// demand, so it listens on loopback only and every request carries the token from `token_file`.
/// The controller writes `<state_dir>/api.json` (its address and token file) for the CLI.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Serve the API (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A loopback address with a port (`127.0.0.1:9751`, `[::1]:9751`); port 0 picks a free
    /// port, which the CLI finds in `<state_dir>/api.json`.
    #[serde(default = "any_loopback_port")]
    pub listen: String,
    /// The bearer token's file (mode 0600; created with a random token when missing).
    /// Default: `<state_dir>/api.token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            enabled: yes(),
            listen: any_loopback_port(),
            token_file: None,
        }
    }
}

fn any_loopback_port() -> String {
    "127.0.0.1:0".to_owned()
}

impl ApiSettings {
    /// `token_file`, else `<state_dir>/api.token`.
    pub fn token_file(&self, state_dir: &std::path::Path) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| state_dir.join(crate::lease_api::DEFAULT_TOKEN_FILE))
    }

    /// The listen address, which must be a loopback IP address with a port.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        let address: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "api.listen {:?} is not an IP address with a port: use 127.0.0.1:0 (any free port) or e.g. 127.0.0.1:9751",
                self.listen
            )
        })?;
        // The API renews, revokes and rotates credentials: it must not be reachable from
        // another machine, whatever the firewall says.
        if !address.ip().is_loopback() {
            return Err(format!(
                "api.listen {:?} is not a loopback address: the lease API serves this machine only; use 127.0.0.1:PORT or [::1]:PORT (port 0 = any free port)",
                self.listen
            ));
        }
        Ok(address)
    }
}

/// Writing the audit trail back: records are journalled in the state directory before the
/// action they describe, then pushed in batches to the audit branch named by the repository's
/// `.sealops/config.yaml` (`audit.branch`, default `sealops/audit`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// This controller's name in the trail (file names, record ids); default: the node name.
    /// Letters, digits, `.`, `_` and `-`; unique among the controllers of a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<String>,
    /// How often journalled records are pushed.
    #[serde(default = "ten_seconds")]
    pub push_interval: ConfigDuration,
    /// Push as soon as this many records wait, without waiting for the interval.
    #[serde(default = "thousand")]
    pub batch_size: usize,
    /// More destinations of the trail beside the journal, like Vault's audit devices: every
    /// line the journal takes (records and seals, the same JSON text: fingerprints, never a
    /// value) is also written to each sink, in the same group. A sink is local to this machine
    /// and is not the audit branch: it holds no history from before it was configured, and
    /// `sealops audit verify` reads the branch only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<AuditSink>,
    /// Which destinations must take a group of records for the action it describes to proceed.
    #[serde(default)]
    pub require: AuditRequire,
    /// What tampering with the audit branch does beyond the alarm (status `audit.state:
    /// tampered`, the `sealops_audit_tampered` metric, an error log): `report` (default) or
    /// `block`, which also fails `/readyz` until the controller restarts.
    #[serde(default)]
    pub on_tamper: OnTamper,
}

/// `audit.on_tamper`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnTamper {
    /// Alarm (status, metric, log) and restore what the branch lost.
    #[default]
    Report,
    /// The same, and `/readyz` fails: a load balancer or rollout stops on it.
    Block,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            controller_id: None,
            push_interval: ten_seconds(),
            batch_size: thousand(),
            sinks: Vec::new(),
            require: AuditRequire::default(),
            on_tamper: OnTamper::default(),
        }
    }
}

/// One more destination of every audit line: `file: /var/log/sealops/audit.jsonl` or
/// `stdout: true`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditSink {
    /// An absolute path: an append-only JSON-lines file, created with mode 0600 (an existing
    /// file keeps its mode), opened with `O_APPEND` and fsynced once per group of lines. A file
    /// renamed away (log rotation) is replaced by a new one at the next group.
    File(PathBuf),
    /// `true`: one JSON line per record and seal on standard output, for log shippers (Loki,
    /// Splunk, journald); the controller's logs go to standard error. With it, `run --once`
    /// prints its status document on standard error instead of standard output.
    Stdout(bool),
}

impl AuditSink {
    /// The sink's name in metrics, logs and errors: `file:<path>` or `stdout`.
    pub fn name(&self) -> String {
        match self {
            Self::File(path) => format!("file:{}", path.display()),
            Self::Stdout(_) => "stdout".to_owned(),
        }
    }
}

/// Which destinations must take a group of audit records before the action they describe
/// proceeds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuditRequire {
    /// The journal (the default): a sink that fails is logged and counted
    /// (`sealops_audit_sink_writes_total{result="failed"}`), the action proceeds.
    #[default]
    Journal,
    /// The journal or at least one sink. Records only a sink took are not on the audit branch
    /// (see docs/audit.md).
    Any,
    /// The journal and every sink; otherwise the action is refused (reason `audit`).
    All,
}

fn ten_seconds() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}
fn thousand() -> usize {
    1000
}

/// A local checkout, or a remote fetched over file://, https:// or ssh://.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepositorySource {
    /// A local git repository (watched for ref changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A remote URL (`file://`, `git://`, `https://`, `ssh://`), fetched with the `git` command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The branch to follow.
    #[serde(default = "main_branch")]
    pub branch: String,
    /// For https: a file holding the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// For ssh: the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_file: Option<PathBuf>,
}

fn main_branch() -> String {
    "main".to_owned()
}

/// Polling and resync periods, as durations like `30s`, `5m`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    #[serde(default = "thirty_seconds")]
    pub interval: ConfigDuration,
    #[serde(default = "five_seconds")]
    pub jitter: ConfigDuration,
    /// A full resync at this period catches anything an event missed.
    #[serde(default = "ten_minutes")]
    pub resync: ConfigDuration,
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            interval: thirty_seconds(),
            jitter: five_seconds(),
            resync: ten_minutes(),
        }
    }
}

fn thirty_seconds() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn five_seconds() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}
fn ten_minutes() -> ConfigDuration {
    ConfigDuration::from_secs(600)
}

/// This node's name and labels.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A command a target may run after its output changed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// Killed after this long.
    #[serde(default = "thirty_seconds")]
    pub timeout: ConfigDuration,
}

/// Whose signatures count, from local configuration only.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustBootstrap {
    /// An allowed_signers file trusted for the first commit the controller applies; later
    /// changes to the repository's signers must be approved under the signers already trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_signers_file: Option<PathBuf>,
    /// Principals trusted regardless of the repository's allowed_signers (their keys still come
    /// from `allowed_signers_file`).
    #[serde(default)]
    pub pinned_principals: Vec<String>,
    /// The commit trust starts from: the controller applies it as it is and judges every later
    /// commit. Without it, the branch's first commit is the anchor only when one of
    /// `pinned_principals` signed it; with neither, a fresh state directory applies nothing (any
    /// key in `allowed_signers_file` could sign a new root commit). A force-push is re-judged
    /// only from this commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_commit: Option<String>,
    /// Refuse unsigned commits (default true). Turning it off is for local experiments only.
    #[serde(default = "yes")]
    pub require_signed: bool,
}

fn yes() -> bool {
    true
}

/// HTTP listener.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address to listen on, e.g. `127.0.0.1:9750`.
    pub listen: String,
    /// File holding the webhook HMAC secret; without it the webhook endpoint is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
}

/// What to do with outputs of removed targets.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RemovedOutputs {
    #[default]
    Delete,
    Keep,
}

impl ControllerConfig {
    /// Parses and validates the text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        let config: Self = crate::yaml::from_str(text, file).map_err(|mut e| {
            // A value refused while reading (a duration, say) is named by its key as well as
            // its line: `poll.interval: "soon" is not a duration`.
            if let Some(path) = e
                .location
                .line
                .and_then(|line| crate::yaml::key_path_at(text, line))
            {
                e.problem = format!("{path}: {}", e.problem);
            }
            e
        })?;
        crate::yaml::validated(config, text, file, Self::validate)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match (&self.repository.path, &self.repository.url) {
            (Some(_), Some(_)) => {
                return Err((
                    "repository",
                    "give repository.path or repository.url, not both".into(),
                ));
            }
            (None, None) => {
                return Err((
                    "repository",
                    "give repository.path (a local checkout) or repository.url".into(),
                ));
            }
            (None, Some(url))
                if !["file://", "git://", "https://", "ssh://"]
                    .iter()
                    .any(|s| url.starts_with(s)) =>
            {
                return Err((
                    "repository",
                    format!(
                        "repository.url {url:?} must start with file://, git://, https:// or ssh://"
                    ),
                ));
            }
            _ => {}
        }
        if let Some(id) = &self.audit.controller_id
            && !valid_controller_id(id)
        {
            return Err((
                "audit",
                format!(
                    "audit.controller_id {id:?}: use letters, digits, '.', '_' and '-' (it names files on the audit branch)"
                ),
            ));
        }
        self.validate_audit_sinks().map_err(|e| ("audit", e))?;
        self.api.listen_addr().map_err(|e| ("api", e))?;
        if self.audit.batch_size == 0 {
            return Err(("audit", "audit.batch_size must be at least 1".into()));
        }
        if self.identity_files.is_empty() {
            return Err((
                "identity_files",
                "at least one identity file is needed to decrypt".into(),
            ));
        }
        if self.output_roots.is_empty() {
            return Err((
                "output_roots",
                "at least one output root is needed (outputs are written only below them)".into(),
            ));
        }
        if let Some(root) = self.output_roots.iter().find(|r| !r.is_absolute()) {
            return Err((
                "output_roots",
                format!("output root {} must be an absolute path", root.display()),
            ));
        }
        for (name, hook) in &self.hooks {
            if hook.command.is_empty() {
                return Err(("hooks", format!("hook {name}: command is empty")));
            }
        }
        if let Some(commit) = &self.trust.initial_commit
            && (commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err((
                "trust",
                format!("trust.initial_commit {commit:?} must be a full 40-digit commit id"),
            ));
        }
        if self.trust.require_signed && self.trust.allowed_signers_file.is_none() {
            return Err((
                "trust",
                "trust.allowed_signers_file is required while trust.require_signed is true (the bootstrap of trust is local, never the repository alone)".into(),
            ));
        }
        Ok(())
    }
}

impl ControllerConfig {
    fn validate_audit_sinks(&self) -> Result<(), String> {
        let journal = self.state_dir.join("audit-journal.jsonl");
        let mut seen = std::collections::BTreeSet::new();
        for sink in &self.audit.sinks {
            match sink {
                AuditSink::File(path) if !path.is_absolute() => {
                    return Err(format!(
                        "audit.sinks: file {} must be an absolute path",
                        path.display()
                    ));
                }
                AuditSink::File(path) if *path == journal => {
                    return Err(format!(
                        "audit.sinks: file {} is the audit journal; give the sink its own file",
                        path.display()
                    ));
                }
                AuditSink::Stdout(false) => {
                    return Err(
                        "audit.sinks: `stdout: false` is not a sink; remove the entry (or write `stdout: true`)"
                            .to_owned(),
                    );
                }
                _ => {}
            }
            if !seen.insert(sink.name()) {
                return Err(format!("audit.sinks: {} is listed twice", sink.name()));
            }
        }
        Ok(())
    }
}

/// A controller id names files on the audit branch: no separators, no dot-only names.
pub fn valid_controller_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id.chars().any(|c| c != '.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl ControllerConfig {
    /// This controller's name in the audit trail: `audit.controller_id`, else the node name,
    /// else the host name (characters a file name cannot carry become `-`).
    pub fn controller_id(&self) -> String {
        if let Some(id) = &self.audit.controller_id {
            return id.clone();
        }
        let name = if self.node.name.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default()
        } else {
            self.node.name.clone()
        };
        let id: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(100)
            .collect();
        if valid_controller_id(&id) {
            id
        } else {
            "controller".to_owned()
        }
    }
}

/// A duration in the configuration, written like `30s`, `5m`, `1h30m` or `2d`, and checked
/// when the file is read (the error names the file and line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    pub const fn from_secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ConfigDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit, repeated (30s, 5m, 1h30m, 2d).",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$"
        })
    }
}

/// `30s`, `5m`, `1h30m`…
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 30s or 5m ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "sealops: v1\nrepository:\n  path: /srv/infra\nidentity_files: [/etc/sealops/cluster.key]\nstate_dir: /var/lib/sealops\noutput_roots: [/run/sealops]\ntrust:\n  allowed_signers_file: /etc/sealops/allowed_signers\n";

    #[test]
    fn minimal_config_has_defaults() {
        let config = ControllerConfig::parse(MINIMAL, "c.yaml").expect("parses");
        assert_eq!(config.repository.branch, "main");
        assert_eq!(config.poll.interval.get(), Duration::from_secs(30));
        assert!(config.trust.require_signed);
        assert_eq!(config.removed_outputs, RemovedOutputs::Delete);
        assert!(config.api.enabled);
        assert_eq!(config.api.listen, "127.0.0.1:0");
        assert_eq!(
            config.api.token_file(&config.state_dir),
            PathBuf::from("/var/lib/sealops/api.token")
        );
    }

    #[test]
    fn a_duration_is_checked_when_the_file_is_read() {
        let text = format!("{MINIMAL}poll:\n  interval: soon\n");
        let err = ControllerConfig::parse(&text, "c.yaml")
            .expect_err("not a duration")
            .to_string();
        assert!(
            err.contains("c.yaml") && err.contains("\"soon\" is not a duration"),
            "{err}"
        );
        let text = format!("{MINIMAL}hooks:\n  reload:\n    command: [true]\n    timeout: 1h30m\n");
        let config = ControllerConfig::parse(&text, "c.yaml").expect("parses");
        assert_eq!(
            config.hooks["reload"].timeout.get(),
            Duration::from_secs(5400)
        );
    }

    #[test]
    fn api_listens_on_loopback_only() {
        for good in ["127.0.0.1:9751", "127.0.0.2:0", "[::1]:9751"] {
            let text = format!("{MINIMAL}api:\n  listen: \"{good}\"\n");
            let config = ControllerConfig::parse(&text, "c.yaml").expect(good);
            assert_eq!(config.api.listen, good);
        }
        for (bad, says) in [
            ("0.0.0.0:9751", "not a loopback address"),
            ("[::]:9751", "not a loopback address"),
            ("192.0.2.1:9751", "not a loopback address"),
            ("localhost:9751", "not an IP address with a port"),
            ("127.0.0.1", "not an IP address with a port"),
        ] {
            let text = format!("{MINIMAL}api:\n  listen: \"{bad}\"\n");
            let err = ControllerConfig::parse(&text, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("api.listen") && err.contains(says),
                "{bad}: {err}"
            );
            assert!(err.contains("127.0.0.1:"), "{bad}: names the fix: {err}");
        }
        let text =
            format!("{MINIMAL}api:\n  enabled: false\n  token_file: /etc/sealops/api.token\n");
        let config = ControllerConfig::parse(&text, "c.yaml").expect("parses");
        assert!(!config.api.enabled);
        assert_eq!(
            config.api.token_file(&config.state_dir),
            PathBuf::from("/etc/sealops/api.token")
        );
    }

    #[test]
    fn audit_sinks_and_what_they_require() {
        let config = ControllerConfig::parse(MINIMAL, "c.yaml").expect("parses");
        assert!(config.audit.sinks.is_empty());
        assert_eq!(config.audit.require, AuditRequire::Journal);
        let text = format!(
            "{MINIMAL}audit:\n  sinks:\n    - file: /var/log/sealops/audit.jsonl\n    - stdout: true\n  require: all\n"
        );
        let config = ControllerConfig::parse(&text, "c.yaml").expect("parses");
        assert_eq!(
            config.audit.sinks,
            [
                AuditSink::File(PathBuf::from("/var/log/sealops/audit.jsonl")),
                AuditSink::Stdout(true)
            ]
        );
        assert_eq!(config.audit.require, AuditRequire::All);
        assert_eq!(
            config
                .audit
                .sinks
                .iter()
                .map(AuditSink::name)
                .collect::<Vec<_>>(),
            ["file:/var/log/sealops/audit.jsonl", "stdout"]
        );
        let any = format!("{MINIMAL}audit:\n  require: any\n");
        assert_eq!(
            ControllerConfig::parse(&any, "c.yaml")
                .expect("parses")
                .audit
                .require,
            AuditRequire::Any
        );
        for (sinks, says) in [
            ("    - file: audit.jsonl\n", "must be an absolute path"),
            (
                "    - file: /var/lib/sealops/audit-journal.jsonl\n",
                "is the audit journal",
            ),
            ("    - stdout: false\n", "not a sink"),
            ("    - stdout: true\n    - stdout: true\n", "listed twice"),
            ("    - syslog: true\n", "syslog"),
        ] {
            let text = format!("{MINIMAL}audit:\n  sinks:\n{sinks}");
            let err = ControllerConfig::parse(&text, "c.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{sinks}: {err}");
        }
        let err = ControllerConfig::parse(&format!("{MINIMAL}audit:\n  require: some\n"), "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("some"), "{err}");
    }

    #[test]
    fn errors_name_the_section() {
        let both = MINIMAL.replace(
            "  path: /srv/infra\n",
            "  path: /srv/infra\n  url: file:///x\n",
        );
        let err = ControllerConfig::parse(&both, "c.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml:2: give repository.path or repository.url, not both"
        );
        let relative = MINIMAL.replace("[/run/sealops]", "[run/sealops]");
        assert!(
            ControllerConfig::parse(&relative, "c.yaml")
                .unwrap_err()
                .to_string()
                .contains("must be an absolute path")
        );
        let unsigned = MINIMAL.replace(
            "  allowed_signers_file: /etc/sealops/allowed_signers\n",
            "  pinned_principals: []\n",
        );
        assert!(
            ControllerConfig::parse(&unsigned, "c.yaml")
                .unwrap_err()
                .to_string()
                .contains("allowed_signers_file is required")
        );
        let bad = format!("{MINIMAL}poll:\n  interval: soon\n");
        assert!(
            ControllerConfig::parse(&bad, "c.yaml")
                .unwrap_err()
                .to_string()
                .contains("poll.interval")
        );
    }
}
