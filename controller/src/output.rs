//! Writing outputs safely: only under the allowed roots, never through a symlink, atomically
//! (temp file in the same directory with its mode and owner set before any content, fsync,
//! rename, fsync of the directory), and not at all when the content is already in place.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Why an output was not written. Never contains content.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "output path {path:?} contains `..` or is empty; outputs must name a file below an allowed output root"
    )]
    Traversal { path: String },
    #[error(
        "output path {path} is outside every allowed output root ({roots}); allow its directory in the controller's local configuration (output_roots)"
    )]
    OutsideRoots { path: String, roots: String },
    #[error(
        "refusing {path}: {component} is a symbolic link (outputs are never written through links)"
    )]
    Symlink { path: String, component: String },
    #[error("refusing {path}: {component} exists and is not a directory")]
    NotADirectory { path: String, component: String },
    #[error(
        "no output roots are allowed; set output_roots in the controller's local configuration"
    )]
    NoRoots,
    #[error("output root {root} must be an existing directory: {source}")]
    BadRoot {
        root: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The directories outputs may be written under (canonical paths).
#[derive(Debug, Clone)]
pub struct OutputRoots {
    roots: Vec<PathBuf>,
}

impl OutputRoots {
    /// Canonicalises each root; each must exist and be a directory.
    pub fn new(roots: &[PathBuf]) -> Result<Self, OutputError> {
        if roots.is_empty() {
            return Err(OutputError::NoRoots);
        }
        let roots = roots
            .iter()
            .map(|root| {
                let canonical =
                    std::fs::canonicalize(root).map_err(|source| OutputError::BadRoot {
                        root: root.display().to_string(),
                        source,
                    })?;
                if !canonical.is_dir() {
                    return Err(OutputError::BadRoot {
                        root: root.display().to_string(),
                        source: std::io::Error::other("not a directory"),
                    });
                }
                Ok(canonical)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { roots })
    }

    /// The destination of a requested path: relative paths are below the first root; absolute
    /// ones must lie under a root. `..`, symlinked parents and a symlink at the destination are
    /// refused. Nothing is created: [`OutputRoots::prepare`] does that when the file is written.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, OutputError> {
        let requested_path = Path::new(requested);
        let traversal = || OutputError::Traversal {
            path: requested.to_owned(),
        };
        // On the raw text: Path::components silently drops interior `.` segments.
        if requested.is_empty()
            || requested
                .split('/')
                .any(|segment| segment == "." || segment == "..")
        {
            return Err(traversal());
        }
        let (root, relative) = if requested_path.is_absolute() {
            self.roots
                .iter()
                .find_map(|root| {
                    requested_path
                        .strip_prefix(root)
                        .ok()
                        .map(|rel| (root, rel.to_owned()))
                })
                .ok_or_else(|| OutputError::OutsideRoots {
                    path: requested.to_owned(),
                    roots: self.describe(),
                })?
        } else {
            (&self.roots[0], requested_path.to_owned())
        };
        if relative.as_os_str().is_empty() || relative.file_name().is_none() {
            return Err(traversal());
        }
        let destination = root.join(&relative);
        check_parents(root, &relative, &destination, false)?;
        if let Ok(meta) = std::fs::symlink_metadata(&destination)
            && meta.file_type().is_symlink()
        {
            return Err(OutputError::Symlink {
                path: destination.display().to_string(),
                component: destination.display().to_string(),
            });
        }
        Ok(destination)
    }

    /// Creates the missing parent directories (0700) of a destination from
    /// [`OutputRoots::resolve`], checking every parent again just before the write.
    pub fn prepare(&self, destination: &Path) -> Result<(), OutputError> {
        let (root, relative) = self
            .roots
            .iter()
            .find_map(|root| destination.strip_prefix(root).ok().map(|rel| (root, rel)))
            .ok_or_else(|| OutputError::OutsideRoots {
                path: destination.display().to_string(),
                roots: self.describe(),
            })?;
        check_parents(root, relative, destination, true)
    }

    fn describe(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Owner and group to give a file (numeric ids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Resolves a user name or numeric uid.
pub fn uid_of(user: &str) -> Result<u32, String> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) => Ok(found.uid.as_raw()),
        _ => Err(format!("unknown user {user:?}")),
    }
}

/// Resolves a group name or numeric gid.
pub fn gid_of(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        _ => Err(format!("unknown group {group:?}")),
    }
}

/// Replaces `destination` (from [`OutputRoots::resolve`]) with `content` atomically, with
/// `mode` and `ownership` set before the content lands. Callers skip files already
/// [`in_place`].
pub fn replace(
    destination: &Path,
    content: &[u8],
    mode: u32,
    ownership: Ownership,
) -> Result<(), OutputError> {
    let io = |source| OutputError::Io {
        path: destination.display().to_string(),
        source,
    };
    let dir = destination
        .parent()
        .expect("a resolved destination has a parent");
    let mut temp = tempfile::Builder::new()
        .prefix(sealops_core::fsutil::TEMP_PREFIX)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io)?;
    // umask may have narrowed the mode; set it exactly before any content lands.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    if ownership != Ownership::default() {
        std::os::unix::fs::fchown(temp.as_file(), ownership.uid, ownership.gid).map_err(io)?;
    }
    temp.write_all(content).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(destination).map_err(|e| io(e.error))?;
    sealops_core::fsutil::sync_dir(dir).map_err(io)?;
    Ok(())
}

/// Whether the file already holds `content` with `mode` (and ownership); never follows a link.
pub fn in_place(
    path: &Path,
    content: &[u8],
    mode: u32,
    ownership: Ownership,
) -> Result<bool, OutputError> {
    let io = |source| OutputError::Io {
        path: path.display().to_string(),
        source,
    };
    is_in_place(path, content, mode, ownership).map_err(io)
}

fn is_in_place(
    path: &Path,
    content: &[u8],
    mode: u32,
    ownership: Ownership,
) -> std::io::Result<bool> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(_) => return Ok(false),
    };
    let meta = file.metadata()?;
    if !meta.is_file()
        || meta.mode() & 0o777 != mode
        || ownership.uid.is_some_and(|u| u != meta.uid())
        || ownership.gid.is_some_and(|g| g != meta.gid())
        || meta.len() != content.len() as u64
    {
        return Ok(false);
    }
    let mut existing = zeroize::Zeroizing::new(Vec::with_capacity(content.len()));
    (&file)
        .take(content.len() as u64 + 1)
        .read_to_end(&mut existing)?;
    Ok(existing.as_slice() == content)
}

/// Removes an output (a target was removed); a missing file is fine, a link is refused.
pub fn remove(destination: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(destination) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(OutputError::Symlink {
            path: destination.display().to_string(),
            component: destination.display().to_string(),
        }),
        _ => std::fs::remove_file(destination).map_err(|source| OutputError::Io {
            path: destination.display().to_string(),
            source,
        }),
    }
}

/// Walks the parents of `relative` below `root`: a symlink or a non-directory is refused; a
/// missing one ends the walk, or with `create` is made (0700).
fn check_parents(
    root: &Path,
    relative: &Path,
    destination: &Path,
    create: bool,
) -> Result<(), OutputError> {
    let mut current = root.to_owned();
    let parents: Vec<Component> = relative
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for component in parents {
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(OutputError::Symlink {
                    path: destination.display().to_string(),
                    component: current.display().to_string(),
                });
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(OutputError::NotADirectory {
                    path: destination.display().to_string(),
                    component: current.display().to_string(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::DirBuilder::new().mode(0o700).create(&current) {
                    Ok(()) => {}
                    // Another output's write (they run in parallel) made it first: check what
                    // is there now, as for a directory that existed.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let meta = std::fs::symlink_metadata(&current).map_err(|source| {
                            OutputError::Io {
                                path: current.display().to_string(),
                                source,
                            }
                        })?;
                        if !meta.is_dir() {
                            return Err(OutputError::NotADirectory {
                                path: destination.display().to_string(),
                                component: current.display().to_string(),
                            });
                        }
                    }
                    Err(source) => {
                        return Err(OutputError::Io {
                            path: current.display().to_string(),
                            source,
                        });
                    }
                }
            }
            Err(source) => {
                return Err(OutputError::Io {
                    path: current.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> (tempfile::TempDir, OutputRoots) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("out")).expect("mkdir");
        let roots = OutputRoots::new(&[dir.path().join("out")]).expect("roots");
        (dir, roots)
    }

    #[test]
    fn writes_below_the_root_with_mode_and_knows_identical_content() {
        let (_dir, roots) = roots();
        let path = roots.resolve("app/db.env").expect("resolves");
        assert!(
            !path.parent().expect("dir").exists(),
            "resolve creates nothing"
        );
        roots.prepare(&path).expect("prepares");
        let none = Ownership::default();
        assert!(!in_place(&path, b"A=1\n", 0o640, none).expect("checks"));
        replace(&path, b"A=1\n", 0o640, none).expect("writes");
        assert_eq!(
            std::fs::metadata(&path).expect("stat").mode() & 0o777,
            0o640
        );
        assert!(in_place(&path, b"A=1\n", 0o640, none).expect("checks"));
        assert!(
            !in_place(&path, b"A=1\n", 0o600, none).expect("checks"),
            "mode differs"
        );
        assert!(!in_place(&path, b"A=2\n", 0o640, none).expect("checks"));
        replace(&path, b"A=2\n", 0o640, none).expect("writes");
        assert_eq!(std::fs::read(&path).expect("reads"), b"A=2\n");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left");
    }

    #[test]
    fn refuses_traversal_escapes_and_links() {
        let (dir, roots) = roots();
        for bad in ["../x", "a/../../x", "", "./x", "a/./b"] {
            assert!(
                matches!(roots.resolve(bad), Err(OutputError::Traversal { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            roots.resolve("/etc/passwd"),
            Err(OutputError::OutsideRoots { .. })
        ));
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, dir.path().join("out/linked")).expect("symlink");
        assert!(matches!(
            roots.resolve("linked/x"),
            Err(OutputError::Symlink { .. })
        ));
        std::os::unix::fs::symlink(outside.join("target"), dir.path().join("out/planted"))
            .expect("symlink");
        assert!(matches!(
            roots.resolve("planted"),
            Err(OutputError::Symlink { .. })
        ));
        assert!(
            std::fs::read_dir(&outside).expect("ls").next().is_none(),
            "nothing written outside"
        );
    }
}
