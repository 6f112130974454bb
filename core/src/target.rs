//! Targets (`targets/*.yaml`): what is materialised where, for which identity, on which node.
//!
//! A target names a service identity (its policies must grant `read` on every secret it
//! materialises), a node selector (which controllers act on it), and outputs: each renders one
//! secret (or one key of it) in a format and is written to a destination path under the
//! controller's allowed output roots.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::{CredentialKind, Credentials};
use crate::manifest::{FormatVersion, SecretPath};
use crate::yaml::{FileError, Location};

/// One target file (schema: `schemas/target.v1.json`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops target (format v1)",
    description = "Lives at targets/<name>.yaml: what a controller materialises, for which identity. See docs/controller.md."
)]
pub struct Target {
    /// Format version; `v1`.
    pub sealops: FormatVersion,
    /// The service identity outputs are materialised for (`identities/<name>.yaml`).
    pub identity: String,
    /// Labels a controller's node must carry (all of them) to act on this target; empty = every node.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// What to write.
    pub outputs: Vec<Output>,
}

/// One output file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The secret's path below secrets/ (e.g. `apps/payments/db`). Give exactly one of
    /// `secret`, `dynamic` and `static`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// Dynamic database credentials, `<backend>/creds/<role>`: a user issued for this target
    /// with a lease, renewed and replaced by the controller. Keys `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<String>,
    /// A static role's rotated account, `<backend>/static-creds/<role>`. Keys `username` and
    /// `password`.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_creds: Option<String>,
    /// With `format: raw`, the one key whose value is the file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How the values are rendered.
    pub format: OutputFormat,
    /// Destination file (absolute, or relative to the first allowed output root); must lie under
    /// an output root the controller's local configuration allows.
    pub path: String,
    /// Octal permission bits, as a string (default "0600").
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Owner (user name or uid); default: the controller's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group (group name or gid); default: the controller's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For `format: template`: a minijinja template; `{{ KEY }}` is a value, and a missing key is
    /// an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// For `format: kubernetes-secret`: the Secret's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesMeta>,
    /// Hook names (from the controller's local allow-list) run when this output's content changed.
    #[serde(default)]
    pub on_change: Vec<String>,
}

/// How an output renders values.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One value's bytes, exactly (needs `key`).
    Raw,
    /// `KEY='value'` lines.
    Dotenv,
    /// A JSON object of every key.
    Json,
    /// A YAML mapping of every key.
    Yaml,
    /// A minijinja template (`template`).
    Template,
    /// A Kubernetes `v1 Secret` manifest with base64 `data`.
    KubernetesSecret,
}

/// Metadata of a rendered Kubernetes Secret.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The Secret's `type` (default `Opaque`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

fn default_mode() -> String {
    "0600".to_owned()
}

impl Target {
    /// Parses and validates a target file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        let target: Target = crate::yaml::from_str(text, file)?;
        let at = |problem: String| FileError {
            location: Location {
                file: file.to_owned(),
                line: crate::yaml::find_line(text, "outputs", None),
                column: None,
            },
            problem,
        };
        for (index, output) in target.outputs.iter().enumerate() {
            let n = index + 1;
            output
                .source()
                .map_err(|e| at(format!("output {n}: {e}")))?;
            output
                .mode_bits()
                .map_err(|e| at(format!("output {n}: {e}")))?;
            match output.format {
                OutputFormat::Raw if output.key.is_none() => {
                    return Err(at(format!(
                        "output {n}: format raw needs `key` (the value to write)"
                    )));
                }
                OutputFormat::Template if output.template.is_none() => {
                    return Err(at(format!("output {n}: format template needs `template`")));
                }
                OutputFormat::KubernetesSecret if output.kubernetes.is_none() => {
                    return Err(at(format!(
                        "output {n}: format kubernetes-secret needs `kubernetes.name`"
                    )));
                }
                _ => {}
            }
            if let Some(key) = &output.key {
                crate::manifest::validate_key_name(key)
                    .map_err(|e| at(format!("output {n}: {e}")))?;
            }
        }
        Ok(target)
    }

    /// Whether a node with `labels` acts on this target.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl Output {
    /// The permission bits of `mode`.
    pub fn mode_bits(&self) -> Result<u32, String> {
        let digits = self.mode.trim_start_matches("0o");
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!(
                    "mode {:?} is not octal permission bits like \"0600\"",
                    self.mode
                )
            })
    }

    /// Where the values come from: exactly one of `secret`, `dynamic` and `static`.
    pub fn source(&self) -> Result<Source, String> {
        match (
            self.secret.is_empty(),
            &self.dynamic,
            &self.static_creds,
        ) {
            (false, None, None) => SecretPath::parse(&self.secret)
                .map(Source::Secret)
                .map_err(|e| e.to_string()),
            (true, Some(path), None) => {
                Credentials::parse(path, CredentialKind::Dynamic).map(Source::Credentials)
            }
            (true, None, Some(path)) => {
                Credentials::parse(path, CredentialKind::Static).map(Source::Credentials)
            }
            (true, None, None) => Err(
                "give `secret` (a sealed secret), `dynamic: <backend>/creds/<role>` or `static: <backend>/static-creds/<role>`"
                    .into(),
            ),
            _ => Err("give only one of `secret`, `dynamic` and `static`".into()),
        }
    }

    /// The credentials, for an output of a database role. Cheap for an output of a secret
    /// (the reconcile asks this of every output of every target it looks at).
    pub fn credentials(&self) -> Option<Credentials> {
        match (&self.dynamic, &self.static_creds) {
            (Some(path), None) => Credentials::parse(path, CredentialKind::Dynamic).ok(),
            (None, Some(path)) => Credentials::parse(path, CredentialKind::Static).ok(),
            _ => None,
        }
    }
}

/// Where an output's values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Secret(SecretPath),
    Credentials(Credentials),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let text = "sealops: v1\nidentity: payments\nnode_selector: {env: prod}\noutputs:\n  - secret: apps/payments/db\n    format: dotenv\n    path: payments/db.env\n";
        let target = Target::parse(text, "targets/payments.yaml").expect("parses");
        assert_eq!(target.outputs[0].mode_bits(), Ok(0o600));
        assert!(target.selects(&BTreeMap::from([("env".into(), "prod".into())])));
        assert!(!target.selects(&BTreeMap::new()));
        let raw =
            "sealops: v1\nidentity: p\noutputs:\n  - secret: a\n    format: raw\n    path: x\n";
        let err = Target::parse(raw, "t.yaml").unwrap_err();
        assert!(err.to_string().contains("format raw needs `key`"), "{err}");
        let bad_mode = "sealops: v1\nidentity: p\noutputs:\n  - secret: a\n    format: json\n    path: x\n    mode: rw\n";
        assert!(
            Target::parse(bad_mode, "t.yaml")
                .unwrap_err()
                .to_string()
                .contains("octal")
        );
    }

    #[test]
    fn outputs_of_database_credentials() {
        let text = "sealops: v1\nidentity: p\noutputs:\n  - dynamic: pg/creds/app\n    format: dotenv\n    path: a.env\n  - static: pg/static-creds/billing\n    format: raw\n    key: password\n    path: b\n";
        let target = Target::parse(text, "t.yaml").expect("parses");
        let dynamic = target.outputs[0].credentials().expect("credentials");
        assert_eq!(dynamic.path(), "pg/creds/app");
        assert_eq!(dynamic.kind, CredentialKind::Dynamic);
        assert_eq!(
            target.outputs[1].credentials().map(|c| c.path()),
            Some("pg/static-creds/billing".into())
        );
        assert!(matches!(
            target.outputs[0].source(),
            Ok(Source::Credentials(_))
        ));
        for (bad, expected) in [
            (
                "dynamic: pg/static-creds/app",
                "is not <backend>/creds/<role>",
            ),
            (
                "static: pg/creds/app",
                "is not <backend>/static-creds/<role>",
            ),
            ("dynamic: pg/creds/a/b", "is not <backend>/creds/<role>"),
            ("dynamic: \"pg/creds/a b\"", "role"),
            ("secret: a\n    dynamic: pg/creds/app", "only one of"),
        ] {
            let text = format!(
                "sealops: v1\nidentity: p\noutputs:\n  - {bad}\n    format: json\n    path: x\n"
            );
            let err = Target::parse(&text, "t.yaml").unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
        let none = "sealops: v1\nidentity: p\noutputs:\n  - format: json\n    path: x\n";
        assert!(
            Target::parse(none, "t.yaml")
                .unwrap_err()
                .to_string()
                .contains("give `secret`")
        );
    }
}
