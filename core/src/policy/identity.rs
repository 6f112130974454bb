//! Identities (`identities/*.yaml`): who holds which policies, and `who-can`.
//!
//! Humans are signer principals (as in `allowed_signers`); services are the names targets use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::eval::{Acl, AclError, Decision, Request};
use super::parse::{LoadError, Policy};
use crate::manifest::FormatVersion;
use crate::yaml::FileError;

/// One identity file (schema: `schemas/identity.v1.json`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sealops identity (format v1)",
    description = "Lives at identities/<name>.yaml: maps an identity to the policies it holds. See docs/policy.md."
)]
pub struct IdentityDoc {
    /// Format version; `v1`.
    pub sealops: FormatVersion,
    /// A signer principal (e.g. `alice@example.com`, as in allowed_signers) or a service name
    /// (as targets name it).
    pub name: String,
    /// Whether this is a person who signs commits or a service that receives secrets.
    pub kind: IdentityKind,
    /// Names of the policies this identity holds (`policies/<name>.hcl`, or the policy's
    /// `name` attribute). `root` is Vault's built-in policy that grants everything.
    pub policies: Vec<String>,
    /// What this identity is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl IdentityDoc {
    /// The policies this identity holds, as `find` defines them by name (`root`, Vault's
    /// built-in, needs no definition); `Err` names the first policy nobody defines. The one
    /// way both the repository loader and the commit-tree loader (authz) build an identity's
    /// ACL.
    pub fn held_policies<'p>(
        &self,
        find: impl Fn(&str) -> Option<&'p Policy>,
    ) -> Result<Vec<Policy>, String> {
        self.policies
            .iter()
            .map(|name| {
                let name = name.trim().to_lowercase();
                if name == "root" {
                    Ok(Policy::root())
                } else {
                    find(&name).cloned().ok_or(name)
                }
            })
            .collect()
    }
}

/// What an identity is.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// A person: a signer principal.
    Human,
    /// A service: a name targets use to receive secrets.
    Service,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Service => "service",
        }
    }
}

/// Errors loading identities or policies, or combining them.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Yaml(#[from] FileError),
    #[error(transparent)]
    Policy(#[from] LoadError),
    #[error("{path}: identity {name:?} is already defined in {first}; each identity has one file")]
    DuplicateIdentity {
        name: String,
        path: PathBuf,
        first: PathBuf,
    },
    #[error("{path}: policy {name:?} is already defined in {first}; policy names must be unique")]
    DuplicatePolicy {
        name: String,
        path: PathBuf,
        first: PathBuf,
    },
    #[error(
        "{path}: identity {identity:?} holds policy {policy:?}, which no file in the policies folder defines; add policies/{policy}.hcl or fix the name"
    )]
    UnknownPolicy {
        identity: String,
        policy: String,
        path: PathBuf,
    },
    #[error("{path}: identity {identity:?}: {source}")]
    Acl {
        identity: String,
        path: PathBuf,
        #[source]
        source: AclError,
    },
}

/// Files in `dir` ending in one of `extensions`, sorted; none when `dir` does not exist.
fn files_in(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, IdentityError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(IdentityError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| IdentityError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let matches = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e));
        if matches && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every policy of a repository's `policies/` folder, by name.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: BTreeMap<String, (Policy, PathBuf)>,
}

impl PolicySet {
    /// Loads `*.hcl` and `*.json` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, IdentityError> {
        let mut set = Self::default();
        for path in files_in(dir, &["hcl", "json"])? {
            let policy = Policy::load(&path)?;
            if let Some((_, first)) = set.policies.get(&policy.name) {
                return Err(IdentityError::DuplicatePolicy {
                    name: policy.name.clone(),
                    path,
                    first: first.clone(),
                });
            }
            set.policies.insert(policy.name.clone(), (policy, path));
        }
        Ok(set)
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name).map(|(policy, _)| policy)
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// Every identity (principal: a person who signs or a service that receives secrets) of a
/// repository's `identities/` folder. Not to be confused with [`crate::keys::AgeIdentities`],
/// the age keys a process decrypts with.
#[derive(Debug, Default)]
pub struct Principals {
    identities: Vec<(IdentityDoc, PathBuf)>,
}

impl Principals {
    /// Loads `*.yaml` / `*.yml` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, IdentityError> {
        let mut set = Self::default();
        for path in files_in(dir, &["yaml", "yml"])? {
            let text = std::fs::read_to_string(&path).map_err(|source| IdentityError::Io {
                path: path.clone(),
                source,
            })?;
            let doc: IdentityDoc = crate::yaml::from_str(&text, &path.display().to_string())?;
            if let Some((_, first)) = set.identities.iter().find(|(d, _)| d.name == doc.name) {
                return Err(IdentityError::DuplicateIdentity {
                    name: doc.name,
                    path,
                    first: first.clone(),
                });
            }
            set.identities.push((doc, path));
        }
        Ok(set)
    }

    pub fn identities(&self) -> impl Iterator<Item = &IdentityDoc> {
        self.identities.iter().map(|(doc, _)| doc)
    }

    /// The ACL of one identity: all its policies together.
    pub fn acl_of(&self, doc: &IdentityDoc, policies: &PolicySet) -> Result<Acl, IdentityError> {
        let path = self
            .identities
            .iter()
            .find(|(d, _)| d.name == doc.name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let held = doc
            .held_policies(|name| policies.get(name))
            .map_err(|policy| IdentityError::UnknownPolicy {
                identity: doc.name.clone(),
                policy,
                path: path.clone(),
            })?;
        Acl::new(&held).map_err(|source| IdentityError::Acl {
            identity: doc.name.clone(),
            path,
            source,
        })
    }

    /// Every identity whose policies allow `request`, with the decision for each.
    pub fn who_can(
        &self,
        policies: &PolicySet,
        request: &Request,
    ) -> Result<Vec<(&IdentityDoc, Decision)>, IdentityError> {
        let mut allowed = Vec::new();
        for (doc, _) in &self.identities {
            let decision = self.acl_of(doc, policies)?.check(request);
            if decision.allowed {
                allowed.push((doc, decision));
            }
        }
        Ok(allowed)
    }
}

/// File name of the identity schema in `schemas/`.
pub fn identity_schema_name() -> &'static str {
    "identity.v1.json"
}
