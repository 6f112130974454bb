//! What the controller remembers between runs: the applied commit and the outputs it wrote.
//!
//! Persisted in the state directory: `applied.json` (the commit and when), replaced atomically
//! after every applied reconcile, and `outputs.json` (every target's destination files),
//! replaced — before `applied.json` — only when an apply changed it (with 10,000 outputs,
//! rewriting it on every reconcile was the largest cost left in an incremental one). A restart
//! resumes from the last applied commit without rewriting unchanged outputs and still knows
//! which outputs belong to a target that has since been removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "applied.json";
const OUTPUTS_FILE: &str = "outputs.json";
const IN_PROGRESS_FILE: &str = "applying.json";
const SEEN_FILE: &str = "seen.json";

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedState {
    /// The applied commit (full id).
    pub commit: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The commit's committer time (Unix seconds).
    pub commit_time: i64,
    /// Destination files written for each target (absolute paths); kept in `outputs.json`
    /// (an `applied.json` that still holds them is read as well).
    #[serde(default, skip_serializing)]
    pub outputs: BTreeMap<String, Vec<PathBuf>>,
    /// The repository's `.sealops/allowed_signers` at `commit` is in force (an authorised
    /// commit changed it after the trust anchor); otherwise the local file is.
    #[serde(default)]
    pub signers_from_repository: bool,
}

/// A hook owed to a target whose output changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingHook {
    pub target: String,
    pub hook: String,
}

/// An apply in progress, recorded before its first output changes and removed once its hooks
/// ran. Found at start-up, it means a controller was killed mid-apply: outputs may have changed
/// without their hooks running, and temporary files may be left in the folders it wrote to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InProgress {
    /// The commit being applied.
    pub commit: String,
    /// Folders outputs were being written to.
    pub directories: std::collections::BTreeSet<PathBuf>,
    /// Hooks of every output the apply was writing (run again after a crash: a hook runs at
    /// least once per change, never zero times).
    pub hooks: std::collections::BTreeSet<PendingHook>,
}

/// Reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a state file this controller wrote ({problem}); move it away to start from the trust anchor again"
    )]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "another sealops-controller is using the state directory {path}; run one controller per state directory"
    )]
    InUse { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for as long as a controller runs: one controller per state directory (its journal,
/// mirror and state are its own; the kernel releases the lock when the process dies, even by
/// `kill -9`).
#[derive(Debug)]
pub struct StateLock {
    _held: nix::fcntl::Flock<std::fs::File>,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, StateError> {
        let path = state_dir.join("controller.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            // A read-only state directory still locks (the controller then refuses to act,
            // and says why, instead of not starting).
            .or_else(|_| std::fs::File::open(&path))
            .map_err(|source| StateError::Read {
                path: path.clone(),
                source,
            })?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Self { _held: held }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(StateError::InUse {
                path: state_dir.to_owned(),
            }),
            Err((_, errno)) => Err(StateError::Read {
                path,
                source: std::io::Error::from(errno),
            }),
        }
    }
}

/// The state file of a state directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file in `state_dir`, creating the directory (0700) when missing.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| StateError::Write {
                path: state_dir.to_owned(),
                source,
            })?;
        // A kill during `save` leaves its temporary file behind; the state itself is whole.
        sealops_core::fsutil::remove_temp_files(state_dir);
        Ok(Self {
            path: state_dir.join(FILE),
        })
    }

    fn in_progress_path(&self) -> PathBuf {
        self.path.with_file_name(IN_PROGRESS_FILE)
    }

    /// The apply a killed controller left unfinished, if any.
    pub fn interrupted_apply(&self) -> Result<Option<InProgress>, StateError> {
        let path = self.in_progress_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path,
                problem: e.to_string(),
            })
    }

    /// Records an apply before its first output changes.
    pub fn begin_apply(&self, apply: &InProgress) -> Result<(), StateError> {
        let path = self.in_progress_path();
        let text = serde_json::to_string(apply).expect("serialises");
        sealops_core::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|source| StateError::Write { path, source })
    }

    /// The apply finished and its hooks ran.
    pub fn finish_apply(&self) -> Result<(), StateError> {
        let path = self.in_progress_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Write { path, source }),
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        sealops_core::fsutil::sync_dir(dir).map_err(|source| StateError::Write {
            path: dir.to_owned(),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When each commit not applied yet was first seen (`seen.json`); empty before the first.
    pub fn load_first_seen(&self) -> Result<crate::desired::FirstSeen, StateError> {
        let path = self.path.with_file_name(SEEN_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let corrupt = |problem: String| StateError::Corrupt {
            path: path.clone(),
            problem,
        };
        let map: BTreeMap<String, i64> =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        map.into_iter()
            .map(|(commit, time)| {
                git2::Oid::from_str(&commit)
                    .map(|oid| (oid, time))
                    .map_err(|_| corrupt(format!("{commit:?} is not a commit id")))
            })
            .collect()
    }

    /// Replaces `seen.json` atomically.
    pub fn save_first_seen(&self, seen: &crate::desired::FirstSeen) -> Result<(), StateError> {
        let path = self.path.with_file_name(SEEN_FILE);
        let map: BTreeMap<String, i64> = seen.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let text = serde_json::to_string(&map).expect("serialises");
        sealops_core::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|source| StateError::Write { path, source })
    }

    /// The last applied state; `None` before the first apply.
    pub fn load(&self) -> Result<Option<AppliedState>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut state: AppliedState =
            serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                problem: e.to_string(),
            })?;
        let outputs_path = self.path.with_file_name(OUTPUTS_FILE);
        match std::fs::read_to_string(&outputs_path) {
            Ok(text) => {
                state.outputs = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                    path: outputs_path.clone(),
                    problem: e.to_string(),
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Read {
                    path: outputs_path,
                    source,
                });
            }
        }
        if git2::Oid::from_str(&state.commit).is_err() {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                problem: format!("{:?} is not a commit id", state.commit),
            });
        }
        Ok(Some(state))
    }

    /// Replaces the state atomically (temp file, fsync, rename, fsync the directory); the
    /// outputs file first, and only when `outputs_changed`.
    pub fn save(&self, state: &AppliedState, outputs_changed: bool) -> Result<(), StateError> {
        let outputs_path = self.path.with_file_name(OUTPUTS_FILE);
        if outputs_changed || !outputs_path.exists() {
            let text = serde_json::to_string(&state.outputs).expect("outputs serialise");
            sealops_core::fsutil::write_atomic(&outputs_path, text.as_bytes(), 0o600).map_err(
                |source| StateError::Write {
                    path: outputs_path.clone(),
                    source,
                },
            )?;
        }
        let mut text = serde_json::to_string_pretty(state).expect("state serialises");
        text.push('\n');
        sealops_core::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600).map_err(|source| {
            StateError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_controller_per_state_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = StateLock::acquire(dir.path()).expect("first");
        let err = StateLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("one controller per state directory"), "{err}");
        drop(held);
        StateLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::open(&dir.path().join("state")).expect("opens");
        assert_eq!(file.load().expect("loads"), None);
        let state = AppliedState {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            applied_at: "2026-11-28T10:00:00Z".into(),
            commit_time: 1,
            outputs: BTreeMap::from([("web".into(), vec![PathBuf::from("/run/x")])]),
            signers_from_repository: false,
        };
        file.save(&state, true).expect("saves");
        assert_eq!(file.load().expect("loads"), Some(state.clone()));
        // A save that did not change the outputs leaves their file alone.
        let mut next = state.clone();
        next.commit = "1123456789abcdef0123456789abcdef01234567".into();
        file.save(&next, false).expect("saves");
        assert_eq!(file.load().expect("loads"), Some(next));
        // An applied.json of an older version, outputs inside, still reads.
        std::fs::remove_file(file.path().with_file_name(OUTPUTS_FILE)).expect("rm");
        std::fs::write(
            file.path(),
            r#"{"commit":"0123456789abcdef0123456789abcdef01234567","applied_at":"2026-11-28T10:00:00Z","commit_time":1,"outputs":{"web":["/run/x"]}}"#,
        )
        .expect("writes");
        assert_eq!(file.load().expect("loads"), Some(state));
        std::fs::write(file.path(), "{\"commit\": \"nope\"}").expect("writes");
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains("move it away"), "{err}");
    }
}
