//! `.sealops/config.yaml`: recipients, defaults for new manifests, trust and audit settings.

use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, Recipient};
use crate::manifest::{FormatVersion, Scope};
use crate::yaml::FileError;

/// The repository's sealops configuration (schema: `schemas/config.v1.json`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops repository configuration (format v1)",
    description = "Lives at .sealops/config.yaml. See docs/format.md."
)]
pub struct Config {
    /// Format version; `v1`.
    pub sealops: FormatVersion,
    /// This repository's identity: 32 lowercase hex digits (128 random bits) that
    /// `sealops init` writes. Approval statements name it, so a statement signed for another
    /// repository never counts here. Changing it is a governed `sys/config` change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Public keys every session key is wrapped to: cluster keys and offline break-glass keys.
    #[serde(default)]
    pub recipients: Vec<RecipientEntry>,
    /// Defaults for new manifests.
    #[serde(default)]
    pub defaults: Defaults,
    /// Trust settings for governed changes.
    #[serde(default)]
    pub trust: Trust,
    /// Where the controller writes its audit trail.
    #[serde(default)]
    pub audit: Audit,
}

/// One recipient of every seal session.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecipientEntry {
    /// A short name people recognise (e.g. `prod-cluster`, `break-glass-1`).
    pub name: String,
    /// The X25519 public key, `age1…`.
    pub key: String,
    /// What the key is for; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RecipientRole>,
}

/// What a recipient key is for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientRole {
    /// A controller (cluster or node) that decrypts to materialise secrets.
    Cluster,
    /// An offline key kept for emergencies.
    BreakGlass,
    /// A person (an administrator who may rewrap or edit).
    Person,
}

/// Defaults applied to manifests created by `sealops seal`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `strict`, `under:<dir>` or `repository`.
    #[serde(default = "strict")]
    pub scope: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { scope: strict() }
    }
}

fn strict() -> String {
    "strict".to_owned()
}

/// Trust settings: how many approvals a governed change needs, how long an approval counts,
/// and how far a commit's date may run ahead of the judge's clock.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// Distinct principals with `sudo` on the matching `sys/` path that must approve a change to
    /// policies, identities, targets, backends, recipients or signers.
    #[serde(default = "two")]
    pub required_approvals: u32,
    /// An approval counts only while it is younger than this when the commit it approves is
    /// judged (first seen by the controller; now for `sealops check`), e.g. `14d`, `36h`.
    #[serde(default = "fourteen_days")]
    pub approval_max_age: String,
    /// Commits (and approvals) dated further than this ahead of the judge's clock are refused,
    /// e.g. `5m`.
    #[serde(default = "five_minutes")]
    pub max_clock_skew: String,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            required_approvals: two(),
            approval_max_age: fourteen_days(),
            max_clock_skew: five_minutes(),
        }
    }
}

impl Trust {
    /// `approval_max_age` in seconds (validated on load).
    pub fn approval_max_age_seconds(&self) -> i64 {
        duration_seconds(&self.approval_max_age).expect("validated when the config was loaded")
    }

    /// `max_clock_skew` in seconds (validated on load).
    pub fn max_clock_skew_seconds(&self) -> i64 {
        duration_seconds(&self.max_clock_skew).expect("validated when the config was loaded")
    }
}

fn duration_seconds(text: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 14d, 36h or 5m: {e}"))?;
    i64::try_from(duration.as_secs()).map_err(|_| format!("{text:?} is too long"))
}

fn two() -> u32 {
    2
}

fn fourteen_days() -> String {
    "14d".to_owned()
}

fn five_minutes() -> String {
    "5m".to_owned()
}

/// A `repository_id`: 32 lowercase hex digits.
pub fn check_repository_id(id: &str) -> Result<(), String> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "repository_id {id:?} must be 32 lowercase hex digits (run `sealops init` in the repository to add one)"
        ))
    }
}

/// A fresh random `repository_id`.
pub fn new_repository_id() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Audit trail settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The branch audit records are committed to; never the synced branch.
    #[serde(default = "audit_branch")]
    pub branch: String,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            branch: audit_branch(),
        }
    }
}

fn audit_branch() -> String {
    "sealops/audit".to_owned()
}

/// A recipient with its parsed key.
#[derive(Clone, Debug)]
pub struct NamedRecipient {
    pub name: String,
    pub recipient: Recipient,
}

impl Config {
    /// A configuration with these recipients and every default.
    pub fn new(recipients: Vec<RecipientEntry>) -> Self {
        Self {
            sealops: FormatVersion::V1,
            repository_id: Some(new_repository_id()),
            recipients,
            defaults: Defaults::default(),
            trust: Trust::default(),
            audit: Audit::default(),
        }
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        crate::yaml::from_str_validated(text, file, Self::validate)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let mut names = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for entry in &self.recipients {
            let recipient = Recipient::from_str(&entry.key)
                .map_err(|e| ("recipients", format!("recipient {}: {e}", entry.name)))?;
            if !names.insert(entry.name.as_str()) {
                return Err((
                    "recipients",
                    format!("recipient name {:?} is used twice", entry.name),
                ));
            }
            if !ids.insert(recipient.id().clone()) {
                return Err((
                    "recipients",
                    format!("recipient {} repeats a key already listed", entry.name),
                ));
            }
        }
        Scope::parse(&self.defaults.scope).map_err(|e| ("defaults", e))?;
        if self.trust.required_approvals == 0 {
            return Err((
                "trust",
                "trust.required_approvals must be at least 1".to_owned(),
            ));
        }
        duration_seconds(&self.trust.approval_max_age)
            .map_err(|e| ("trust", format!("trust.approval_max_age: {e}")))?;
        duration_seconds(&self.trust.max_clock_skew)
            .map_err(|e| ("trust", format!("trust.max_clock_skew: {e}")))?;
        if let Some(id) = &self.repository_id {
            check_repository_id(id).map_err(|e| ("repository_id", e))?;
        }
        Ok(())
    }

    /// The recipients, parsed (validated on load).
    pub fn recipients(&self) -> Vec<NamedRecipient> {
        self.recipients
            .iter()
            .map(|entry| NamedRecipient {
                name: entry.name.clone(),
                recipient: Recipient::from_str(&entry.key)
                    .expect("validated when the config was loaded"),
            })
            .collect()
    }

    /// `name (age1…)` of the recipient with this key id, or the bare key id when unknown.
    pub fn describe_key_id(&self, id: &KeyId) -> String {
        self.recipients()
            .into_iter()
            .find(|r| r.recipient.id() == id)
            .map(|r| format!("{} ({})", r.name, r.recipient))
            .unwrap_or_else(|| format!("unknown key id {id}"))
    }

    /// The YAML text of this configuration.
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self).expect("the config serialises");
        format!(
            "# sealops repository configuration (docs/format.md).\n# Recipients: every seal session is wrapped to all of them.\n{body}"
        )
    }

    /// The default scope for new manifests.
    pub fn default_scope(&self) -> Scope {
        Scope::parse(&self.defaults.scope).expect("validated when the config was loaded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn round_trips_through_yaml() {
        let (identity, _) = generate();
        let config = Config::new(vec![RecipientEntry {
            name: "prod".into(),
            key: identity.recipient().to_string(),
            role: Some(RecipientRole::Cluster),
        }]);
        let text = config.to_yaml();
        assert_eq!(Config::parse(&text, "c.yaml").expect("parses"), config);
    }

    #[test]
    fn bad_recipient_names_the_line() {
        let text = "sealops: v1\nrecipients:\n  - name: prod\n    key: age1nope\n";
        let err = Config::parse(text, ".sealops/config.yaml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".sealops/config.yaml:2: recipient prod"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = Config::parse("sealops: v1\nrecipeints: []\n", "c.yaml").unwrap_err();
        assert!(err.to_string().contains("recipeints"), "{err}");
        assert_eq!(err.location.line, Some(2));
    }
}
