//! The policies, human identities and trust settings of one tree: who may do what at a commit.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Repository, Tree};

use crate::config::{Config, Trust};
use crate::policy::{Acl, Decision, IdentityDoc, IdentityKind, Policy, Request};
use crate::repo::{CONFIG_FILE, SIGNERS_FILE};

/// Why a tree's authority could not be read. Names the file and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct AuthorityError {
    pub file: String,
    pub problem: String,
}

/// The access-control lists of the human identities (by signer principal) and the trust
/// settings, as the files of one tree define them.
#[derive(Debug)]
pub struct Authority {
    /// Every identity as `kind:name` (`human:alice@example.com`, `service:payments`); the
    /// human ones are the principals that sign and approve.
    all: BTreeMap<String, Acl>,
    trust: Trust,
    repository_id: Option<String>,
}

/// The files an authority is read from, by repository path, as blob ids: `policies/*.hcl|json`,
/// `identities/*.yaml|yml`, `.sealops/config.yaml` and `.sealops/allowed_signers`. Judging a
/// range keeps one per commit: the content *trusted* there, which for a commit on top of an old
/// ancestor is not what its tree holds (see `range.rs`).
pub type AuthorityFiles = BTreeMap<String, git2::Oid>;

const POLICY_EXTENSIONS: &[&str] = &["hcl", "json"];
const IDENTITY_EXTENSIONS: &[&str] = &["yaml", "yml"];

/// Whether `path` is one of the files an authority is read from.
pub fn is_authority_file(path: &str) -> bool {
    let in_folder = |dir: &str, extensions: &[&str]| {
        path.strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| {
                !name.contains('/')
                    && Path::new(name)
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| extensions.contains(&e))
            })
    };
    path == CONFIG_FILE
        || path == SIGNERS_FILE
        || in_folder("policies", POLICY_EXTENSIONS)
        || in_folder("identities", IDENTITY_EXTENSIONS)
}

/// The authority files of `tree`.
pub fn authority_files(
    repo: &Repository,
    tree: &Tree<'_>,
) -> Result<AuthorityFiles, AuthorityError> {
    let mut files = AuthorityFiles::new();
    for dir in ["policies", "identities"] {
        for (path, id) in entries_in(repo, tree, dir)? {
            if is_authority_file(&path) {
                files.insert(path, id);
            }
        }
    }
    for path in [CONFIG_FILE, SIGNERS_FILE] {
        if let Ok(entry) = tree.get_path(Path::new(path))
            && entry.kind() == Some(ObjectType::Blob)
        {
            files.insert(path.to_owned(), entry.id());
        }
    }
    Ok(files)
}

impl Authority {
    /// Reads `policies/`, `identities/` and `.sealops/config.yaml` from `tree`.
    pub fn from_tree(repo: &Repository, tree: &Tree<'_>) -> Result<Self, AuthorityError> {
        Self::from_files(repo, &authority_files(repo, tree)?)
    }

    /// Reads the policies, identities and configuration named in `files`.
    pub fn from_files(repo: &Repository, files: &AuthorityFiles) -> Result<Self, AuthorityError> {
        let text_of = |path: &str, id: git2::Oid| -> Result<String, AuthorityError> {
            let blob = repo.find_blob(id).map_err(|e| AuthorityError {
                file: path.to_owned(),
                problem: e.message().to_owned(),
            })?;
            std::str::from_utf8(blob.content())
                .map(str::to_owned)
                .map_err(|_| AuthorityError {
                    file: path.to_owned(),
                    problem: "not UTF-8 text".to_owned(),
                })
        };
        let in_dir = |dir: &'static str| {
            files
                .iter()
                .filter(move |(path, _)| {
                    path.strip_prefix(dir)
                        .is_some_and(|rest| rest.starts_with('/'))
                })
                .map(|(path, id)| (path.clone(), *id))
        };
        let mut policies: BTreeMap<String, (Policy, String)> = BTreeMap::new();
        for (file, id) in in_dir("policies") {
            let text = text_of(&file, id)?;
            let name = crate::policy::default_name(Path::new(&file));
            let policy = Policy::parse(&text, &file, &name).map_err(|e| AuthorityError {
                file: file.clone(),
                problem: e.to_string(),
            })?;
            if let Some((_, first)) = policies.get(&policy.name) {
                return Err(AuthorityError {
                    problem: format!(
                        "policy {:?} is already defined in {first}; policy names must be unique",
                        policy.name
                    ),
                    file,
                });
            }
            policies.insert(policy.name.clone(), (policy, file));
        }
        let mut all = BTreeMap::new();
        for (file, id) in in_dir("identities") {
            let text = text_of(&file, id)?;
            let doc: IdentityDoc =
                crate::yaml::from_str(&text, &file).map_err(|e| AuthorityError {
                    file: file.clone(),
                    problem: e.to_string(),
                })?;
            let held = doc
                .held_policies(|name| policies.get(name).map(|(policy, _)| policy))
                .map_err(|name| AuthorityError {
                    file: file.clone(),
                    problem: format!(
                        "identity {:?} holds policy {name:?}, which no file in policies/ defines",
                        doc.name
                    ),
                })?;
            let acl = Acl::new(&held).map_err(|e| AuthorityError {
                file: file.clone(),
                problem: e.to_string(),
            })?;
            let labelled = format!("{}:{}", doc.kind.as_str(), doc.name);
            if all.insert(labelled, acl).is_some() {
                return Err(AuthorityError {
                    problem: format!("identity {:?} is defined twice", doc.name),
                    file,
                });
            }
        }
        let config_text = files
            .get(CONFIG_FILE)
            .map(|id| text_of(CONFIG_FILE, *id))
            .transpose()?;
        let (trust, repository_id) = match config_text {
            Some(text) => {
                let config = Config::parse(&text, CONFIG_FILE).map_err(|e| AuthorityError {
                    file: CONFIG_FILE.to_owned(),
                    problem: e.to_string(),
                })?;
                (config.trust, config.repository_id)
            }
            None => (Trust::default(), None),
        };
        Ok(Self {
            all,
            trust,
            repository_id,
        })
    }

    /// The trust settings of `.sealops/config.yaml` (defaults when absent).
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The repository's `repository_id`, which approval statements must name.
    pub fn repository_id(&self) -> Option<&str> {
        self.repository_id.as_deref()
    }

    /// Approvals a governed change needs (`trust.required_approvals`, at least 1).
    pub fn required_approvals(&self) -> u32 {
        self.trust.required_approvals.max(1)
    }

    /// The decision for the human identity named `principal`; `None` when no identity has that
    /// name (such a signer holds no policies).
    pub fn check(&self, principal: &str, request: &Request) -> Option<Decision> {
        self.all
            .get(&format!("{}:{principal}", IdentityKind::Human.as_str()))
            .map(|acl| acl.check(request))
    }

    /// The decision for the service identity `name` (a target's identity); `None` when no
    /// service identity has that name.
    pub fn check_service(&self, name: &str, request: &Request) -> Option<Decision> {
        self.all
            .get(&format!("{}:{name}", IdentityKind::Service.as_str()))
            .map(|acl| acl.check(request))
    }

    /// Whether `principal` holds `sudo` on `sys_path`.
    pub fn has_sudo(&self, principal: &str, sys_path: &str) -> bool {
        let request = Request {
            path: sys_path.to_owned(),
            ..Request::default()
        };
        self.check(principal, &request)
            .is_some_and(|decision| decision.root_privs)
    }

    /// Every identity as `kind:name` with its access-control list.
    pub fn identities(&self) -> impl Iterator<Item = (&str, &Acl)> {
        self.all.iter().map(|(name, acl)| (name.as_str(), acl))
    }

    /// The principals (human identities) that hold `sudo` on `sys_path`, sorted.
    pub fn sudoers(&self, sys_path: &str) -> Vec<String> {
        let human = format!("{}:", IdentityKind::Human.as_str());
        self.all
            .keys()
            .filter_map(|name| name.strip_prefix(&human))
            .filter(|p| self.has_sudo(p, sys_path))
            .map(str::to_owned)
            .collect()
    }
}

/// The text of the blob at `path` in `tree`, if there is one.
pub(crate) fn blob_text(
    repo: &Repository,
    tree: &Tree<'_>,
    path: &str,
) -> Result<Option<String>, AuthorityError> {
    let git = |e: git2::Error| AuthorityError {
        file: path.to_owned(),
        problem: e.message().to_owned(),
    };
    let entry = match tree.get_path(Path::new(path)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git(e)),
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(None);
    }
    let blob = repo.find_blob(entry.id()).map_err(git)?;
    let text = std::str::from_utf8(blob.content()).map_err(|_| AuthorityError {
        file: path.to_owned(),
        problem: "not UTF-8 text".to_owned(),
    })?;
    Ok(Some(text.to_owned()))
}

/// `(path, blob id)` of the files directly in folder `dir` of `tree`.
fn entries_in(
    repo: &Repository,
    tree: &Tree<'_>,
    dir: &str,
) -> Result<Vec<(String, git2::Oid)>, AuthorityError> {
    let git = |e: git2::Error| AuthorityError {
        file: dir.to_owned(),
        problem: e.message().to_owned(),
    };
    let entry = match tree.get_path(Path::new(dir)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(git(e)),
    };
    let Ok(folder) = repo.find_tree(entry.id()) else {
        return Ok(Vec::new());
    };
    Ok(folder
        .iter()
        .filter(|entry| entry.kind() == Some(ObjectType::Blob))
        .map(|entry| {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            (format!("{dir}/{name}"), entry.id())
        })
        .collect())
}
