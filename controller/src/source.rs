//! Where commits come from: a local checkout, or a remote fetched into a bare mirror.
//!
//! A remote is fetched with the `git` command (it speaks file://, git://, https:// and ssh://
//! with the user's usual configuration); everything after the fetch reads objects with git2.
//! The controller never reads a working tree: a commit's content comes from its tree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{Oid, Repository};
use sealops_core::controller_config::RepositorySource;

/// The ref in the mirror that keeps the applied commit alive across force-pushes and gc.
const APPLIED_REF: &str = "refs/sealops/applied";

/// Reading or fetching the repository failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open the repository {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("branch {branch:?} does not exist in {place}; check repository.branch")]
    NoBranch { branch: String, place: String },
    #[error("cannot read {what}: {source}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("fetching {url} failed: {problem}")]
    Fetch { url: String, problem: String },
    #[error("cannot read {path}: {source}")]
    Credential {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A followed repository.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local repository; its branch ref is watched.
    Local { path: PathBuf, branch: String },
    /// A remote, fetched into `mirror` (a bare repository in the state directory).
    Remote {
        url: String,
        branch: String,
        mirror: PathBuf,
        token_file: Option<PathBuf>,
        ssh_key_file: Option<PathBuf>,
    },
}

impl Source {
    pub fn new(config: &RepositorySource, state_dir: &Path) -> Self {
        match (&config.path, &config.url) {
            (Some(path), _) => Self::Local {
                path: path.clone(),
                branch: config.branch.clone(),
            },
            (None, Some(url)) => Self::Remote {
                url: url.clone(),
                branch: config.branch.clone(),
                mirror: state_dir.join("mirror.git"),
                token_file: config.token_file.clone(),
                ssh_key_file: config.ssh_key_file.clone(),
            },
            (None, None) => unreachable!("the configuration requires a path or a url"),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Remote { .. })
    }

    pub fn branch(&self) -> &str {
        match self {
            Self::Local { branch, .. } | Self::Remote { branch, .. } => branch,
        }
    }

    /// The ref holding the branch's newest commit in [`Source::open`]'s repository.
    fn head_ref(&self) -> String {
        match self {
            Self::Local { branch, .. } => format!("refs/heads/{branch}"),
            Self::Remote { branch, .. } => format!("refs/remotes/origin/{branch}"),
        }
    }

    /// Opens the repository commits are read from (for a remote: the mirror, created empty
    /// when missing).
    pub fn open(&self) -> Result<Repository, SourceError> {
        match self {
            Self::Local { path, .. } => {
                Repository::open(path).map_err(|source| SourceError::Open {
                    path: path.clone(),
                    source,
                })
            }
            Self::Remote { mirror, .. } => {
                let opened = match Repository::open_bare(mirror) {
                    Ok(repo) => Ok(repo),
                    Err(_) => Repository::init_bare(mirror),
                };
                opened.map_err(|source| SourceError::Open {
                    path: mirror.clone(),
                    source,
                })
            }
        }
    }

    /// Removes lock files a killed `git` left in the mirror (it belongs to this controller
    /// alone, see [`crate::state::StateLock`]): otherwise every later fetch fails on them.
    pub fn clear_stale_locks(&self) {
        let Self::Remote { mirror, .. } = self else {
            return;
        };
        let mut pending = vec![mirror.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() && path.file_name().is_none_or(|n| n != "objects") => {
                        pending.push(path)
                    }
                    Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "lock") => {
                        tracing::warn!(file = %path.display(), "removing a lock file a killed git left");
                        let _ = std::fs::remove_file(&path);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The newest commit of the branch.
    pub fn head(&self, repo: &Repository) -> Result<Oid, SourceError> {
        let name = self.head_ref();
        let reference = repo
            .find_reference(&name)
            .map_err(|_| SourceError::NoBranch {
                branch: self.branch().to_owned(),
                place: match self {
                    Self::Local { path, .. } => path.display().to_string(),
                    Self::Remote { url, .. } => format!("{url} (as last fetched)"),
                },
            })?;
        reference
            .peel_to_commit()
            .map(|c| c.id())
            .map_err(|source| SourceError::Git { what: name, source })
    }

    /// Keeps `commit` reachable in a mirror so a force-push (and gc) cannot drop the commit
    /// outputs reflect; a local repository is the user's and is left alone.
    pub fn pin_applied(&self, repo: &Repository, commit: Oid) -> Result<(), SourceError> {
        if self.is_remote() {
            repo.reference(APPLIED_REF, commit, true, "sealops: applied")
                .map_err(|source| SourceError::Git {
                    what: APPLIED_REF.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Directories whose changes mean the branch may have moved (local sources only): the
    /// git directory itself (HEAD, packed-refs) and the directory of the branch ref.
    pub fn watch_dirs(&self) -> Result<Vec<PathBuf>, SourceError> {
        let Self::Local { branch, .. } = self else {
            return Ok(Vec::new());
        };
        let repo = self.open()?;
        let common = repo.commondir().to_owned();
        let mut dirs = vec![common.clone()];
        let mut refs_dir = common.join("refs/heads");
        if let Some((parent, _)) = branch.rsplit_once('/') {
            refs_dir = refs_dir.join(parent);
        }
        dirs.push(refs_dir);
        if repo.path() != common {
            dirs.push(repo.path().to_owned());
        }
        Ok(dirs)
    }

    /// Fetches the branch of a remote into the mirror (no-op for a local source). The branch
    /// is fetched with `+` so a force-push is seen (and then judged), never silently merged.
    pub async fn fetch(&self, timeout: Duration) -> Result<(), SourceError> {
        let Self::Remote {
            url,
            branch,
            mirror,
            ..
        } = self
        else {
            return Ok(());
        };
        self.open()?;
        let fail = |problem: String| SourceError::Fetch {
            url: url.clone(),
            problem,
        };
        let mut command = tokio::process::Command::new("git");
        command
            .arg("--git-dir")
            .arg(mirror)
            .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
            .arg(url)
            .arg(format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command.envs(self.git_env()?.iter().map(|(k, v)| (k, v.as_str())));
        let child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run git: {e}; install git")))?;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(|e| fail(e.to_string()))?,
            Err(_) => {
                return Err(fail(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                )));
            }
        };
        if output.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(fail(
                stderr
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("git fetch failed")
                    .to_owned(),
            ))
        }
    }
}

impl Source {
    /// Environment for `git` talking to the remote: no prompts, the token (through the
    /// environment, readable only by this user, never argv) or the SSH key.
    pub fn git_env(&self) -> Result<Vec<(&'static str, zeroize::Zeroizing<String>)>, SourceError> {
        let plain = |v: &str| zeroize::Zeroizing::new(v.to_owned());
        let mut env = vec![
            ("GIT_TERMINAL_PROMPT", plain("0")),
            ("GIT_ASKPASS", plain("true")),
        ];
        let Self::Remote {
            token_file,
            ssh_key_file,
            ..
        } = self
        else {
            return Ok(env);
        };
        if let Some(file) = token_file {
            let token = read_credential(file)?;
            let basic = base64_basic(&token);
            env.push(("GIT_CONFIG_COUNT", plain("1")));
            env.push(("GIT_CONFIG_KEY_0", plain("http.extraHeader")));
            env.push((
                "GIT_CONFIG_VALUE_0",
                zeroize::Zeroizing::new(format!("Authorization: Basic {}", basic.as_str())),
            ));
        }
        if let Some(key) = ssh_key_file {
            env.push((
                "GIT_SSH_COMMAND",
                zeroize::Zeroizing::new(format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes",
                    key.display().to_string().replace('\'', "'\\''")
                )),
            ));
        }
        Ok(env)
    }
}

fn read_credential(path: &Path) -> Result<zeroize::Zeroizing<String>, SourceError> {
    std::fs::read_to_string(path)
        .map(|t| zeroize::Zeroizing::new(t.trim().to_owned()))
        .map_err(|source| SourceError::Credential {
            path: path.to_owned(),
            source,
        })
}

/// `x-access-token:<token>` in base64, the basic-auth form GitHub and GitLab accept for tokens.
fn base64_basic(token: &str) -> zeroize::Zeroizing<String> {
    use base64::Engine;
    let plain = zeroize::Zeroizing::new(format!("x-access-token:{token}"));
    zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()))
}
