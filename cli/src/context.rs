//! Shared steps of repository commands: finding the repository, loading identities, and
//! turning the user's TARGET arguments into manifest files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sealops_core::keys::AgeIdentities;
use sealops_core::manifest::{Manifest, SecretPath};
use sealops_core::repo::Repository;

use crate::args::GlobalArgs;

/// The environment variable naming an identity file.
pub const IDENTITY_ENV: &str = "SEALOPS_IDENTITY_FILE";

/// Finds the repository from `--repo` or the current directory.
pub fn repository(global: &GlobalArgs) -> anyhow::Result<Repository> {
    let start = match &global.repo {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    Ok(Repository::discover(&start)?)
}

/// Which identities a command wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityNeed {
    /// Fail without one (reveal, edit, rewrap).
    Required,
    /// Use one if any source has it (seal: to reuse sessions).
    Optional,
    /// Only `--identity` or the environment variable (verify: opening is opt-in).
    ExplicitOnly,
}

/// `~/.config/sealops/identity.txt`.
pub fn default_identity_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".config/sealops/identity.txt"))
}

/// Loads identities from `--identity`, else `$SEALOPS_IDENTITY_FILE`, else the default file.
pub fn identities(global: &GlobalArgs, need: IdentityNeed) -> anyhow::Result<AgeIdentities> {
    let mut files: Vec<PathBuf> = global.identity.clone();
    if files.is_empty()
        && let Some(from_env) = std::env::var_os(IDENTITY_ENV).filter(|v| !v.is_empty())
    {
        files.push(PathBuf::from(from_env));
    }
    if files.is_empty()
        && need != IdentityNeed::ExplicitOnly
        && let Some(default) = default_identity_file().filter(|f| f.is_file())
    {
        files.push(default);
    }
    let mut set = AgeIdentities::new();
    for file in &files {
        set.extend(AgeIdentities::load(file)?);
    }
    if set.is_empty() && need == IdentityNeed::Required {
        bail!(
            "no identity: pass --identity FILE, set {IDENTITY_ENV}, or create ~/.config/sealops/identity.txt with `sealops keygen`"
        );
    }
    Ok(set)
}

/// A manifest file to work on, and its secret path when it sits below the repository's secrets/.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub file: PathBuf,
    pub display: String,
    pub location: Option<SecretPath>,
}

impl ManifestFile {
    /// Reads and parses the manifest, refusing one whose declared path differs from where it
    /// lives below secrets/ (a moved or copied manifest: its values are bound to the old path).
    pub fn read(&self) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("cannot read {}", self.display))?;
        let manifest = Manifest::parse(&text, &self.display)?;
        if let Some(location) = &self.location
            && location != &manifest.path
        {
            return Err(sealops_core::repo::RepoError::Misplaced {
                file: self.display.clone(),
                declared: manifest.path,
                location: location.clone(),
            }
            .into());
        }
        Ok(manifest)
    }
}

/// Resolves TARGET arguments: a secret path (manifest or folder below secrets/) when the
/// repository has one, else an existing file or directory. Directories expand to every manifest
/// below them, sorted. Also says whether any directory was expanded.
pub fn resolve_targets(
    repo: Option<&Repository>,
    targets: &[String],
) -> anyhow::Result<(Vec<ManifestFile>, bool)> {
    let mut files = Vec::new();
    let mut expanded = false;
    for target in targets {
        let in_secrets = repo.and_then(|repo| {
            let secret = SecretPath::parse(target.trim_end_matches('/')).ok()?;
            let file = repo.manifest_file(&secret);
            let dir = repo.secrets_dir().join(secret.as_str());
            if file.is_file() {
                Some(file)
            } else if dir.is_dir() {
                Some(dir)
            } else {
                None
            }
        });
        let on_disk = Path::new(target);
        let path = match in_secrets {
            Some(path) => path,
            None if on_disk.exists() => on_disk.to_owned(),
            None => match repo {
                Some(repo) => bail!(
                    "no manifest secrets/{}.yaml in {} (create it with `sealops seal {} …`)",
                    target.trim_end_matches('/'),
                    repo.root().display(),
                    target.trim_end_matches('/')
                ),
                None => bail!(
                    "{target}: no such file or directory, and no sealops repository to look it up in"
                ),
            },
        };
        let found = if path.is_dir() {
            expanded = true;
            let found = Repository::manifests_under(&path)?;
            if found.is_empty() {
                bail!("{target}: no manifests (*.yaml) in {}", path.display());
            }
            found
        } else {
            vec![path]
        };
        for file in found {
            files.push(describe(repo, file));
        }
    }
    Ok((files, expanded))
}

/// Every manifest of the repository.
pub fn all_manifests(repo: &Repository) -> anyhow::Result<Vec<ManifestFile>> {
    let secrets = repo.secrets_dir();
    if !secrets.is_dir() {
        return Ok(Vec::new());
    }
    Ok(Repository::manifests_under(&secrets)?
        .into_iter()
        .map(|file| describe(Some(repo), file))
        .collect())
}

fn describe(repo: Option<&Repository>, file: PathBuf) -> ManifestFile {
    let location = repo.and_then(|r| r.secret_path_of(&file).ok());
    let display = match repo {
        Some(r) => r.display_path(&std::path::absolute(&file).unwrap_or_else(|_| file.clone())),
        None => file.display().to_string(),
    };
    ManifestFile {
        file,
        display,
        location,
    }
}

/// Parses a secret path argument.
pub fn secret_path(text: &str) -> anyhow::Result<SecretPath> {
    SecretPath::parse(text).map_err(anyhow::Error::msg)
}
