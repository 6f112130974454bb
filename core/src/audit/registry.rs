//! `.sealops/controllers.yaml`: the trust root for audit keys.
//!
//! A trail is only as trustworthy as the key that sealed it, and a key published on the audit
//! branch itself proves nothing: whoever can push there can publish one. Controllers' keys are
//! registered here instead, in a file governed like the signers (`sys/controllers`: changed
//! only with approvals), or pinned in a verifier's own copy of the file.
//!
//! ```yaml
//! sealops: v1
//! controllers:
//!   - id: node-1
//!     public_key: ed25519:3q2+7w...
//!     valid_until: 2026-12-05T00:00:00Z   # retired: its state directory was lost
//!   - id: node-1
//!     public_key: ed25519:q83v...
//!     valid_from: 2026-12-05T00:00:00Z
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::decode_public_key;
use crate::yaml::FileError;

/// The file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops controllers (format v1)",
    description = ".sealops/controllers.yaml: the audit keys of the controllers that write this repository's audit trail. See docs/audit.md."
)]
pub struct ControllersDoc {
    /// Always `v1`.
    pub sealops: String,
    #[serde(default)]
    pub controllers: Vec<Registration>,
}

/// One controller key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The controller's `audit.controller_id`.
    pub id: String,
    /// `ed25519:<base64>`, as `sealops-controller audit-key` prints it.
    pub public_key: String,
    /// Seals made before this time (RFC 3339) are not accepted under this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Seals made at or after this time (RFC 3339) are not accepted: the key was retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// The registered keys, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: String,
    public_key: String,
    valid_from: Option<OffsetDateTime>,
    valid_until: Option<OffsetDateTime>,
}

/// Whether a seal's key may seal for a controller at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStanding {
    Valid,
    /// Not registered for this controller at all.
    Unregistered,
    /// Registered, but the seal's time is outside the registration.
    OutsideValidity {
        valid_from: Option<String>,
        valid_until: Option<String>,
    },
}

impl Registry {
    /// Parses the file's text; errors name `file`, the line and the fix.
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        let doc: ControllersDoc =
            crate::yaml::from_str_validated(text, file, |doc: &ControllersDoc| {
                if doc.sealops != "v1" {
                    return Err((
                        "sealops",
                        format!(
                            "sealops: {:?} is not a known version; write `sealops: v1`",
                            doc.sealops
                        ),
                    ));
                }
                Ok(())
            })?;
        let mut entries = Vec::with_capacity(doc.controllers.len());
        for (index, registration) in doc.controllers.iter().enumerate() {
            let fail = |problem: String| FileError {
                location: crate::yaml::Location {
                    file: file.to_owned(),
                    line: registration_line(text, index),
                    column: None,
                },
                problem,
            };
            if !crate::controller_config::valid_controller_id(&registration.id) {
                return Err(fail(format!(
                    "controller id {:?}: use letters, digits, '.', '_' and '-' (as in audit.controller_id)",
                    registration.id
                )));
            }
            if decode_public_key(&registration.public_key).is_none() {
                return Err(fail(format!(
                    "public_key of {} is not an `ed25519:<base64>` key; copy it from `sealops-controller audit-key`",
                    registration.id
                )));
            }
            let time = |field: &str, value: &Option<String>| {
                value
                    .as_deref()
                    .map(|t| {
                        OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
                            fail(format!(
                                "{field} {t:?} of {} is not an RFC 3339 time like 2026-12-05T00:00:00Z",
                                registration.id
                            ))
                        })
                    })
                    .transpose()
            };
            let valid_from = time("valid_from", &registration.valid_from)?;
            let valid_until = time("valid_until", &registration.valid_until)?;
            if let (Some(from), Some(until)) = (valid_from, valid_until)
                && from >= until
            {
                return Err(fail(format!(
                    "{}: valid_from is not before valid_until",
                    registration.id
                )));
            }
            let public_key = registration.public_key.trim().to_owned();
            if entries
                .iter()
                .any(|e: &Entry| e.id == registration.id && e.public_key == public_key)
            {
                return Err(fail(format!(
                    "controller {} lists the same key twice",
                    registration.id
                )));
            }
            entries.push(Entry {
                id: registration.id.clone(),
                public_key,
                valid_from,
                valid_until,
            });
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every registered (controller, key), in file order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.id.as_str(), e.public_key.as_str()))
    }

    /// Whether `public_key` is registered for `controller` at all.
    pub fn is_registered(&self, controller: &str, public_key: &str) -> bool {
        self.find(controller, public_key).is_some()
    }

    fn find(&self, controller: &str, public_key: &str) -> Option<&Entry> {
        let public_key = public_key.trim();
        self.entries
            .iter()
            .find(|e| e.id == controller && e.public_key == public_key)
    }

    /// Whether `public_key` may seal for `controller` at `time` (a seal's RFC 3339 time).
    pub fn standing(&self, controller: &str, public_key: &str, time: &str) -> KeyStanding {
        let Some(entry) = self.find(controller, public_key) else {
            return KeyStanding::Unregistered;
        };
        let at = OffsetDateTime::parse(time, &Rfc3339).ok();
        let inside = at.is_some_and(|at| {
            entry.valid_from.is_none_or(|from| at >= from)
                && entry.valid_until.is_none_or(|until| at < until)
        });
        if inside {
            KeyStanding::Valid
        } else {
            let show = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
            KeyStanding::OutsideValidity {
                valid_from: show(entry.valid_from),
                valid_until: show(entry.valid_until),
            }
        }
    }
}

/// The line of the `index`th `- ` entry under `controllers:` (canonical two-space layout).
fn registration_line(text: &str, index: usize) -> Option<u64> {
    let mut inside = false;
    let mut seen = 0;
    for (number, line) in text.lines().enumerate() {
        if !line.starts_with(' ') && !line.starts_with('-') {
            inside = line.split(':').next() == Some("controllers");
            continue;
        }
        if inside && line.trim_start().starts_with("- ") {
            if seen == index {
                return Some(number as u64 + 1);
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

    #[test]
    fn keys_are_valid_in_their_window_only() {
        let text = format!(
            "sealops: v1\ncontrollers:\n  - id: node-1\n    public_key: {KEY}\n    valid_from: 2026-12-01T00:00:00Z\n    valid_until: 2026-12-05T00:00:00Z\n"
        );
        let registry = Registry::parse(&text, "c.yaml").expect("parses");
        assert_eq!(
            registry.standing("node-1", KEY, "2026-12-02T00:00:00.000000000Z"),
            KeyStanding::Valid
        );
        assert!(matches!(
            registry.standing("node-1", KEY, "2026-12-05T00:00:00.000000000Z"),
            KeyStanding::OutsideValidity { .. }
        ));
        assert_eq!(
            registry.standing("node-2", KEY, "2026-12-02T00:00:00.000000000Z"),
            KeyStanding::Unregistered
        );
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let text = "sealops: v1\ncontrollers:\n  - id: node-1\n    public_key: ed25519:AAAA\n";
        let err = Registry::parse(text, ".sealops/controllers.yaml").unwrap_err();
        assert_eq!(err.location.line, Some(3), "{err}");
        assert!(
            err.problem.contains("sealops-controller audit-key"),
            "{err}"
        );
        let twice = format!(
            "sealops: v1\ncontrollers:\n  - id: a\n    public_key: {KEY}\n  - id: a\n    public_key: {KEY}\n"
        );
        let err = Registry::parse(&twice, "c.yaml").unwrap_err();
        assert_eq!(err.location.line, Some(5), "{err}");
    }
}
