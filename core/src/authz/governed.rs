//! Which authority governs a repository path.

use std::collections::BTreeMap;

use git2::{Repository, Tree};

use crate::config::Config;
use crate::repo::{CONFIG_FILE, CONTROLLERS_FILE, SIGNERS_FILE};
use crate::signing::approval::{APPROVALS_DIR, ApprovalError, ApprovedContent, changes_between};

/// What a changed path needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Governed {
    /// `secrets/<path>.yaml`: the signer needs create/update/delete on `policy_path`.
    Secret { policy_path: String },
    /// An administrative file: `required_approvals` principals with `sudo` on `sys_path`.
    Admin { sys_path: String },
    /// An approval statement: it carries its own signature and authorises nothing by itself.
    Approval,
    /// Anything else (README, docs): a verified signature is enough.
    Ungoverned,
}

/// The authority that governs `path` (relative to the repository root). `.sealops/config.yaml`
/// maps to `sys/config` here; [`governed_changes`] splits it into `sys/recipients`,
/// `sys/trust` and `sys/config` by what changed.
pub fn governed_path(path: &str) -> Governed {
    let admin = |sys_path: String| Governed::Admin { sys_path };
    if path == SIGNERS_FILE {
        return admin("sys/signers".to_owned());
    }
    if path == CONFIG_FILE {
        return admin("sys/config".to_owned());
    }
    if path == CONTROLLERS_FILE {
        // The trust root of audit keys: who may seal the audit trail.
        return admin("sys/controllers".to_owned());
    }
    if path
        .strip_prefix(APPROVALS_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Governed::Approval;
    }
    let Some((top, rest)) = path.split_once('/') else {
        return Governed::Ungoverned;
    };
    match top {
        "secrets" => {
            if let Some(secret) = rest.strip_suffix(".yaml") {
                Governed::Secret {
                    policy_path: format!("secrets/{secret}"),
                }
            } else {
                // Only manifests belong under secrets/; anything else there is judged as the
                // secret it pretends to be, so nobody can slip files in ungoverned.
                Governed::Secret {
                    policy_path: format!("secrets/{rest}"),
                }
            }
        }
        "policies" => admin(format!("sys/policy/{}", strip_ext(rest, &["hcl", "json"]))),
        "identities" => admin(format!(
            "sys/identities/{}",
            strip_ext(rest, &["yaml", "yml"])
        )),
        "targets" => admin(format!("sys/targets/{}", strip_ext(rest, &["yaml", "yml"]))),
        "backends" => admin(format!(
            "sys/backends/{}",
            strip_ext(rest, &["yaml", "yml"])
        )),
        _ => Governed::Ungoverned,
    }
}

fn strip_ext<'a>(name: &'a str, extensions: &[&str]) -> &'a str {
    extensions
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")))
        .unwrap_or(name)
}

/// The `sys/…` paths a change of `.sealops/config.yaml` from `old` to `new` touches:
/// `sys/recipients` (recipients), `sys/trust` (trust settings), `sys/config` (anything else,
/// or a file that does not parse).
pub fn config_sys_paths(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let parse = |text: Option<&str>| text.map(|t| Config::parse(t, CONFIG_FILE));
    match (parse(old), parse(new)) {
        (Some(Ok(old)), Some(Ok(new))) => {
            let mut paths = Vec::new();
            if old.recipients != new.recipients {
                paths.push("sys/recipients".to_owned());
            }
            if old.trust != new.trust {
                paths.push("sys/trust".to_owned());
            }
            if old.defaults != new.defaults
                || old.audit != new.audit
                || old.sealops != new.sealops
                || old.repository_id != new.repository_id
            {
                paths.push("sys/config".to_owned());
            }
            paths
        }
        _ => vec![
            "sys/recipients".to_owned(),
            "sys/trust".to_owned(),
            "sys/config".to_owned(),
        ],
    }
}

/// The governed changes between two trees: each changed path with its resulting content and
/// what governs it (approval statements themselves are left out). This is what
/// `sealops approve` signs and what the checker looks approvals up by.
pub fn governed_changes(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
) -> Result<BTreeMap<String, (ApprovedContent, Governed)>, ApprovalError> {
    Ok(changes_between(repo, old, new)?
        .into_iter()
        .filter_map(|(path, content)| {
            let governed = governed_path(&path);
            (governed != Governed::Approval).then_some((path, (content, governed)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_authority() {
        let admin = |p: &str| Governed::Admin {
            sys_path: p.to_owned(),
        };
        assert_eq!(
            governed_path("secrets/apps/db.yaml"),
            Governed::Secret {
                policy_path: "secrets/apps/db".to_owned()
            }
        );
        assert_eq!(governed_path("policies/dev.hcl"), admin("sys/policy/dev"));
        assert_eq!(governed_path("policies/dev.json"), admin("sys/policy/dev"));
        assert_eq!(
            governed_path("identities/alice.yaml"),
            admin("sys/identities/alice")
        );
        assert_eq!(
            governed_path("targets/prod.yaml"),
            admin("sys/targets/prod")
        );
        assert_eq!(governed_path("backends/pg.yaml"), admin("sys/backends/pg"));
        assert_eq!(
            governed_path(".sealops/allowed_signers"),
            admin("sys/signers")
        );
        assert_eq!(governed_path(".sealops/config.yaml"), admin("sys/config"));
        assert_eq!(
            governed_path(".sealops/controllers.yaml"),
            admin("sys/controllers")
        );
        assert_eq!(
            governed_path(".sealops/approvals/ab.approval"),
            Governed::Approval
        );
        assert_eq!(governed_path("README.md"), Governed::Ungoverned);
        assert_eq!(governed_path("docs/x.md"), Governed::Ungoverned);
    }

    #[test]
    fn config_changes_split_by_section() {
        let base = "sealops: v1\nrecipients:\n  - name: prod\n    key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n";
        let trust = format!("{base}trust:\n  required_approvals: 1\n");
        assert_eq!(config_sys_paths(Some(base), Some(&trust)), ["sys/trust"]);
        let other = base.replace("prod", "staging");
        assert_eq!(
            config_sys_paths(Some(base), Some(&other)),
            ["sys/recipients"]
        );
        assert_eq!(config_sys_paths(Some(base), Some("nonsense: [")).len(), 3);
    }
}
