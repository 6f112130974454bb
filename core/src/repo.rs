//! The user's repository: where it is, its configuration, and where manifests live.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::keys::Recipient;
use crate::manifest::{Manifest, SecretPath};
use crate::seal::RecipientNames;
use crate::yaml::FileError;

/// Path of the configuration file, relative to the repository root.
pub const CONFIG_FILE: &str = ".sealops/config.yaml";
/// Path of the signers file, relative to the repository root.
pub const SIGNERS_FILE: &str = ".sealops/allowed_signers";
/// Path of the controllers' audit-key registry, relative to the repository root.
pub const CONTROLLERS_FILE: &str = ".sealops/controllers.yaml";
/// The folders of the repository convention.
pub const FOLDERS: [&str; 5] = ["secrets", "policies", "identities", "targets", "backends"];

/// Errors finding or reading a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "no sealops repository at {start} or any parent (looked for {CONFIG_FILE}): run `sealops init` there, or pass --repo DIR"
    )]
    NotFound { start: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] FileError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not under {secrets}: manifests live below the secrets/ folder")]
    OutsideSecrets { path: PathBuf, secrets: PathBuf },
    #[error("{path}: {problem}")]
    BadPath { path: PathBuf, problem: String },
    #[error(
        "{file}: the manifest declares path {declared} but lives at secrets/{location}.yaml; a moved or copied manifest must be sealed again at its new path (nothing was changed)"
    )]
    Misplaced {
        file: String,
        declared: SecretPath,
        location: SecretPath,
    },
}

/// An opened repository: its root and configuration.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
    pub config: Config,
}

impl Repository {
    /// Finds the repository containing `start` (like git: walks up to the first directory with
    /// `.sealops/config.yaml`).
    pub fn discover(start: &Path) -> Result<Self, RepoError> {
        let start = std::path::absolute(start).map_err(|source| RepoError::Io {
            path: start.to_owned(),
            source,
        })?;
        let mut dir = Some(start.as_path());
        while let Some(candidate) = dir {
            if candidate.join(CONFIG_FILE).is_file() {
                return Self::open(candidate);
            }
            dir = candidate.parent();
        }
        Err(RepoError::NotFound { start })
    }

    /// Opens the repository rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, RepoError> {
        let path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => RepoError::NotFound {
                start: root.to_owned(),
            },
            _ => RepoError::Io {
                path: path.clone(),
                source,
            },
        })?;
        let config = Config::parse(&text, &path.display().to_string())?;
        // Canonical, so paths git reports (its work tree is canonical) compare equal to ours.
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        Ok(Self { root, config })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// The file of a secret: `secrets/<path>.yaml`.
    pub fn manifest_file(&self, path: &SecretPath) -> PathBuf {
        self.secrets_dir().join(format!("{path}.yaml"))
    }

    /// The secret path of a manifest file below `secrets/`.
    pub fn secret_path_of(&self, file: &Path) -> Result<SecretPath, RepoError> {
        let absolute = canonical_lenient(file).map_err(|source| RepoError::Io {
            path: file.to_owned(),
            source,
        })?;
        let secrets = self.secrets_dir();
        let relative = absolute
            .strip_prefix(&secrets)
            .map_err(|_| RepoError::OutsideSecrets {
                path: file.to_owned(),
                secrets: secrets.clone(),
            })?;
        let text = relative.to_string_lossy();
        SecretPath::parse(&text).map_err(|problem| RepoError::BadPath {
            path: file.to_owned(),
            problem,
        })
    }

    /// The current recipients, in configuration order.
    pub fn recipients(&self) -> Vec<Recipient> {
        self.config
            .recipients()
            .into_iter()
            .map(|r| r.recipient)
            .collect()
    }

    /// Names for the recipients, for messages.
    pub fn recipient_names(&self) -> RecipientNames {
        RecipientNames::new(&self.config.recipients())
    }

    /// A path relative to the repository root, for messages.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Reads the manifest of `path`; `None` when it does not exist yet.
    pub fn read_manifest(&self, path: &SecretPath) -> Result<Option<Manifest>, RepoError> {
        let file = self.manifest_file(path);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let display = self.display_path(&file);
                let manifest = Manifest::parse(&text, &display)?;
                if &manifest.path != path {
                    return Err(RepoError::Misplaced {
                        file: display,
                        declared: manifest.path,
                        location: path.clone(),
                    });
                }
                Ok(Some(manifest))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RepoError::Io { path: file, source }),
        }
    }

    /// Writes a manifest to `secrets/<path>.yaml` atomically, creating folders as needed.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), RepoError> {
        let file = self.manifest_file(&manifest.path);
        let write_error = |source| RepoError::Write {
            path: file.clone(),
            source,
        };
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        crate::fsutil::write_atomic(&file, manifest.to_yaml().as_bytes(), 0o644)
            .map_err(write_error)
    }

    /// Whether `err` means "there is no repository here" (as opposed to a broken one).
    pub fn is_not_found(err: &RepoError) -> bool {
        matches!(err, RepoError::NotFound { .. })
    }

    /// Every manifest file below `dir` (a directory inside `secrets/`), sorted.
    pub fn manifests_under(dir: &Path) -> Result<Vec<PathBuf>, RepoError> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            let entries = std::fs::read_dir(&current).map_err(|source| RepoError::Io {
                path: current.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| RepoError::Io {
                    path: current.clone(),
                    source,
                })?;
                let file_type = entry.file_type().map_err(|source| RepoError::Io {
                    path: entry.path(),
                    source,
                })?;
                let path = entry.path();
                if file_type.is_dir() {
                    pending.push(path);
                } else if file_type.is_file() && path.extension().is_some_and(|e| e == "yaml") {
                    found.push(path);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The canonical form of `path`, or of its parent joined with its name when the file itself does
/// not exist (a staged file deleted from the work tree).
fn canonical_lenient(path: &Path) -> std::io::Result<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Ok(canonical);
    }
    let absolute = std::path::absolute(path)?;
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => Ok(std::fs::canonicalize(parent)
            .unwrap_or_else(|_| parent.to_owned())
            .join(name)),
        _ => Ok(absolute),
    }
}
