//! Wiring sealops into git: attributes and drivers for diffs and merges, and the staged content
//! the pre-commit check reads.

use std::path::{Path, PathBuf};

/// The `.gitattributes` lines sealops needs.
pub const ATTRIBUTES: &str = "secrets/**/*.yaml diff=sealops merge=sealops\n";

/// Errors talking to git.
#[derive(Debug, thiserror::Error)]
pub enum GitSetupError {
    #[error("{path} is not inside a git repository (run `git init` first): {source}")]
    NotARepository {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("cannot update {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn open(root: &Path) -> Result<git2::Repository, GitSetupError> {
    git2::Repository::discover(root).map_err(|source| GitSetupError::NotARepository {
        path: root.to_owned(),
        source,
    })
}

/// Appends the attributes to `.gitattributes` (once) and sets the local git configuration of
/// the textconv and merge drivers. Running it again changes nothing.
pub fn configure(root: &Path, sealops_binary: &str) -> Result<Vec<String>, GitSetupError> {
    let repository = open(root)?;
    let mut changes = Vec::new();
    let attributes = root.join(".gitattributes");
    let current = match std::fs::read_to_string(&attributes) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(GitSetupError::Io {
                path: attributes,
                source,
            });
        }
    };
    if !current.lines().any(|l| l.trim() == ATTRIBUTES.trim()) {
        let mut text = current.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(ATTRIBUTES);
        crate::fsutil::write_atomic(&attributes, text.as_bytes(), 0o644).map_err(|source| {
            GitSetupError::Io {
                path: attributes.clone(),
                source,
            }
        })?;
        changes.push(format!(".gitattributes: {}", ATTRIBUTES.trim()));
    }
    let mut config = repository.config()?.open_level(git2::ConfigLevel::Local)?;
    let wanted = [
        (
            "diff.sealops.textconv",
            format!("{sealops_binary} textconv"),
        ),
        ("merge.sealops.name", "sealops key-level merge".to_owned()),
        (
            "merge.sealops.driver",
            format!("{sealops_binary} merge-driver %O %A %B %P"),
        ),
    ];
    for (name, value) in wanted {
        if config.get_string(name).ok().as_deref() != Some(value.as_str()) {
            config.set_str(name, &value)?;
            changes.push(format!("git config {name} \"{value}\""));
        }
    }
    Ok(changes)
}

/// A staged file: where it lives in the work tree, and its staged bytes.
#[derive(Debug)]
pub struct StagedFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// Every file whose staged content differs from HEAD (added or modified), as staged.
pub fn staged_files(root: &Path) -> Result<Vec<StagedFile>, GitSetupError> {
    let repository = open(root)?;
    let workdir = repository.workdir().unwrap_or(root).to_owned();
    let index = repository.index()?;
    let head_tree = repository.head().ok().and_then(|h| h.peel_to_tree().ok());
    let diff = repository.diff_tree_to_index(head_tree.as_ref(), Some(&index), None)?;
    let mut files = Vec::new();
    for delta in diff.deltas() {
        if !matches!(
            delta.status(),
            git2::Delta::Added | git2::Delta::Modified | git2::Delta::Renamed | git2::Delta::Copied
        ) {
            continue;
        }
        let new = delta.new_file();
        let Some(path) = new.path().map(|p| workdir.join(p)) else {
            continue;
        };
        let blob = repository.find_blob(new.id())?;
        files.push(StagedFile {
            path,
            content: blob.content().to_vec(),
        });
    }
    Ok(files)
}
