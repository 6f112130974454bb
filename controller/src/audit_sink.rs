//! Audit sinks (`audit.sinks` in the local configuration): more destinations of the trail beside
//! the journal, like Vault's audit devices.
//!
//! [`crate::audit::Audit`] hands every group of lines it journals to [`Sinks::deliver`] with
//! the journal's answer, while it holds the trail: every sink gets the journal's JSON text (the
//! same records, the same `hmac-sha256:` fingerprints, never a value), in the order of the
//! chain, in one write per group. `audit.require` decides whether the group counts as
//! recorded, that is whether the action it describes may proceed:
//!
//! - `journal` (default): the journal took it. A sink that fails is logged at WARN and counted
//!   in `sealops_audit_sink_writes_total{result="failed"}`.
//! - `all`: the journal and every sink took it; otherwise the action is refused (reason
//!   `audit`) with the failing sink named.
//! - `any`: the journal or at least one sink took it.
//!
//! A group the journal refused reaches no sink under `journal` and `all` (its action does not
//! happen), so a sink holds exactly what the journal held. Only under `any` can a sink hold
//! records the journal lost: they never reach the audit branch (docs/audit.md says what that
//! means). Seals go to the sinks once the journal took them, best effort: a push never waits for
//! a sink.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sealops_core::controller_config::{AuditRequire, AuditSettings, AuditSink};

/// Labels of `sealops_audit_sink_writes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// `file:<path>` or `stdout`.
    pub sink: String,
    pub result: String,
}

/// The configured sinks, what `audit.require` asks of them, and their write counters.
#[derive(Debug, Default)]
pub struct Sinks {
    sinks: Vec<Sink>,
    require: AuditRequire,
    writes: Family<SinkLabel, Counter>,
}

#[derive(Debug)]
struct Sink {
    /// `file:<path>` or `stdout`: the metric label and the name in errors.
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Kept open between groups; reopened after a failure or when the path names another file
    /// (log rotation renamed it away).
    File {
        path: PathBuf,
        file: Mutex<Option<File>>,
    },
    Stdout,
}

impl Sinks {
    /// The sinks of `settings`, counting their writes in `writes`. A file that cannot be opened
    /// now is logged and tried again with every group.
    pub fn open(settings: &AuditSettings, writes: Family<SinkLabel, Counter>) -> Self {
        let sinks = settings
            .sinks
            .iter()
            .filter_map(|sink| {
                let kind = match sink {
                    AuditSink::File(path) => {
                        let file = open_file(path)
                            .map_err(|e| {
                                tracing::warn!(sink = %sink.name(), error = %e, "the audit sink cannot be opened; retried with every record");
                            })
                            .ok();
                        Kind::File {
                            path: path.clone(),
                            file: Mutex::new(file),
                        }
                    }
                    AuditSink::Stdout(true) => Kind::Stdout,
                    // Refused by the configuration's validation.
                    AuditSink::Stdout(false) => return None,
                };
                Some(Sink {
                    name: sink.name(),
                    kind,
                })
            })
            .collect();
        Self {
            sinks,
            require: settings.require,
            writes,
        }
    }

    /// Writes `lines`, which the journal answered with `journalled`, to every sink; `Ok` when
    /// the group counts as recorded under `audit.require` (the action may proceed).
    pub fn deliver(&self, lines: &[String], journalled: Result<(), String>) -> Result<(), String> {
        if self.sinks.is_empty() || lines.is_empty() {
            return journalled;
        }
        if journalled.is_err() && self.require != AuditRequire::Any {
            // The action is refused: these records would describe something that never happens.
            return journalled;
        }
        let buffer = joined(lines);
        let failures: Vec<String> = self
            .sinks
            .iter()
            .filter_map(|sink| self.write(sink, &buffer).err())
            .collect();
        match (self.require, journalled) {
            (AuditRequire::All, Ok(())) if !failures.is_empty() => Err(format!(
                "{} (audit.require is all: the journal and every sink must take the records)",
                failures.join("; ")
            )),
            (AuditRequire::Any, Err(journal)) => {
                if failures.len() == self.sinks.len() {
                    Err(format!(
                        "{journal}; and every audit sink failed: {}",
                        failures.join("; ")
                    ))
                } else {
                    tracing::warn!(
                        error = %journal,
                        "the audit journal did not take the records, an audit sink did (audit.require is any): the action proceeds, and these records will not reach the audit branch"
                    );
                    Ok(())
                }
            }
            (_, journalled) => journalled,
        }
    }

    /// Writes a seal the journal took to every sink, best effort (failures are logged and
    /// counted): a push does not depend on a sink.
    pub fn deliver_seal(&self, seal: &str) {
        if self.sinks.is_empty() {
            return;
        }
        let buffer = joined(std::slice::from_ref(&seal));
        for sink in &self.sinks {
            let _ = self.write(sink, &buffer);
        }
    }

    fn write(&self, sink: &Sink, buffer: &str) -> Result<(), String> {
        let result = match &sink.kind {
            Kind::File { path, file } => write_file(path, file, buffer),
            Kind::Stdout => write_stdout(buffer),
        };
        self.writes
            .get_or_create(&SinkLabel {
                sink: sink.name.clone(),
                result: if result.is_ok() { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
        result.map_err(|e| {
            tracing::warn!(sink = %sink.name, error = %e, "an audit sink did not take the records");
            format!("audit sink {}: {e}", sink.name)
        })
    }
}

/// Lines, each ending with a newline (a line holds no newline: it is compact JSON).
fn joined<S: AsRef<str>>(lines: &[S]) -> String {
    let mut buffer = String::with_capacity(lines.iter().map(|l| l.as_ref().len() + 1).sum());
    for line in lines {
        buffer.push_str(line.as_ref());
        buffer.push('\n');
    }
    buffer
}

/// Opens (creating it 0600) the sink file for appending. No symbolic link is followed, in
/// the file's name or in any directory above it: the controller writes as root, and a link
/// swapped in by whoever can write a log directory would otherwise point its appends at any
/// file. Each directory is opened relative to the one above it with `O_NOFOLLOW`, so a link
/// swapped in after a check cannot be followed either.
fn open_file(path: &Path) -> io::Result<File> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    use std::path::Component;
    let refused = |what: &str| io::Error::other(format!("{}: {what}", path.display()));
    let name = path.file_name().ok_or_else(|| refused("not a file name"))?;
    let parent = path.parent().ok_or_else(|| refused("not a file name"))?;
    if !path.is_absolute() {
        return Err(refused("not an absolute path"));
    }
    let directory = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let mut dir: std::os::fd::OwnedFd =
        nix::fcntl::open("/", directory, Mode::empty()).map_err(io::Error::from)?;
    for component in parent.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                dir = openat(&dir, part, directory, Mode::empty()).map_err(|e| match e {
                    nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => refused(&format!(
                        "{} is a symbolic link or not a directory; name the file by a path without symbolic links (links are not followed)",
                        Path::new(part).display()
                    )),
                    e => io::Error::from(e),
                })?;
            }
            _ => return Err(refused("`.` and `..` are not allowed in the path")),
        }
    }
    let fd = openat(
        &dir,
        name,
        // O_NONBLOCK: a FIFO put at the path would block the open until someone reads it,
        // and the controller with it; a regular file ignores the flag.
        OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP => io::Error::other(format!(
            "{} is a symbolic link; name the file itself (links are not followed)",
            path.display()
        )),
        nix::errno::Errno::ENXIO => refused("a FIFO, not a regular file"),
        e => io::Error::from(e),
    })?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(refused("not a regular file"));
    }
    Ok(file)
}

fn write_file(path: &Path, slot: &Mutex<Option<File>>, buffer: &str) -> io::Result<()> {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|file| !names(path, file)) {
        // Renamed away or removed (log rotation): the group goes to a new file at the path.
        *slot = None;
    }
    let file = match slot.as_mut() {
        Some(file) => file,
        None => slot.insert(open_file(path)?),
    };
    let before = file.metadata()?.len();
    if let Err(e) = file
        .write_all(buffer.as_bytes())
        .and_then(|()| file.sync_data())
    {
        // A partial group would run into the next one's first line: cut it off, and open the
        // file again for the next group.
        let _ = file.set_len(before);
        *slot = None;
        return Err(e);
    }
    Ok(())
}

/// Whether `path` still names the open `file`.
fn names(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.dev() && at_path.ino() == open.ino(),
        _ => false,
    }
}

fn write_stdout(buffer: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(buffer.as_bytes())?;
    out.flush()
}

/// For `check-config`: whether the controller can append to the sink file at `path` (without
/// creating it: a missing file is checked by creating and removing a temporary file beside it).
pub fn check_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{shown} is a symbolic link; name the file itself (links are not followed)"
        )),
        Ok(meta) if !meta.is_file() => Err(format!("{shown} is not a regular file")),
        Ok(_) => open_file(path)
            .map(drop)
            .map_err(|e| format!("{shown} cannot be appended to: {e}")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if let Some(link) = parent
                .ancestors()
                .find(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
            {
                return Err(format!(
                    "{shown}: {} is a symbolic link; name the file by a path without symbolic links (links are not followed)",
                    link.display()
                ));
            }
            tempfile::Builder::new()
                .prefix(".sealops-check-")
                .tempfile_in(parent)
                .map(drop)
                .map_err(|e| format!("{shown} cannot be created: {e}"))
        }
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sinks: Vec<AuditSink>, require: AuditRequire) -> AuditSettings {
        AuditSettings {
            sinks,
            require,
            ..AuditSettings::default()
        }
    }

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    fn count(sinks: &Sinks, sink: &str, result: &str) -> u64 {
        sinks
            .writes
            .get_or_create(&SinkLabel {
                sink: sink.to_owned(),
                result: result.to_owned(),
            })
            .get()
    }

    #[test]
    fn a_file_sink_gets_every_group_appended_and_is_created_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let sinks = Sinks::open(
            &settings(vec![AuditSink::File(path.clone())], AuditRequire::Journal),
            Family::default(),
        );
        sinks
            .deliver(&lines(&["{\"a\":1}", "{\"b\":2}"]), Ok(()))
            .expect("delivered");
        sinks.deliver_seal("{\"seal\":3}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"b\":2}\n{\"seal\":3}\n"
        );
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
        let name = format!("file:{}", path.display());
        assert_eq!(count(&sinks, &name, "ok"), 2);

        // Rotated away: the next group starts a new file at the path.
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).expect("rotate");
        sinks
            .deliver(&lines(&["{\"c\":4}"]), Ok(()))
            .expect("delivered");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"c\":4}\n");
    }

    #[test]
    fn what_each_require_lets_proceed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.jsonl");
        // The parent is a regular file: nobody, root included, can create this one.
        std::fs::write(dir.path().join("plain"), "").expect("write");
        let bad = dir.path().join("plain/audit.jsonl");
        let both = vec![AuditSink::File(good.clone()), AuditSink::File(bad.clone())];
        let group = lines(&["{\"r\":1}"]);
        let journal_failed = || Err::<(), _>("audit journal: disk full".to_owned());

        let journal = Sinks::open(
            &settings(both.clone(), AuditRequire::Journal),
            Family::default(),
        );
        assert_eq!(journal.deliver(&group, Ok(())), Ok(()));
        assert_eq!(
            count(&journal, &format!("file:{}", bad.display()), "failed"),
            1
        );
        assert!(journal.deliver(&group, journal_failed()).is_err());

        let all = Sinks::open(
            &settings(both.clone(), AuditRequire::All),
            Family::default(),
        );
        let err = all.deliver(&group, Ok(())).unwrap_err();
        assert!(
            err.contains(&format!("audit sink file:{}", bad.display())) && err.contains("all"),
            "{err}"
        );
        assert!(!err.contains(&good.display().to_string()), "{err}");

        let any = Sinks::open(&settings(both, AuditRequire::Any), Family::default());
        assert_eq!(any.deliver(&group, journal_failed()), Ok(()));
        let only_bad = Sinks::open(
            &settings(vec![AuditSink::File(bad)], AuditRequire::Any),
            Family::default(),
        );
        let err = only_bad.deliver(&group, journal_failed()).unwrap_err();
        assert!(
            err.contains("disk full") && err.contains("every audit sink failed"),
            "{err}"
        );

        // Under journal and all, a group the journal refused reached no sink; under any it did.
        assert_eq!(
            std::fs::read_to_string(&good).expect("read"),
            "{\"r\":1}\n".repeat(3)
        );
    }

    #[test]
    fn a_link_is_not_followed_and_check_config_names_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious\n").expect("write");
        let link = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let sinks = Sinks::open(
            &settings(vec![AuditSink::File(link.clone())], AuditRequire::All),
            Family::default(),
        );
        let err = sinks.deliver(&lines(&["{\"r\":1}"]), Ok(())).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious\n"
        );
        assert!(
            check_file(&link).is_err_and(|e| e.contains("symbolic link")),
            "a link"
        );

        std::fs::write(dir.path().join("plain"), "").expect("write");
        let under_a_file = dir.path().join("plain/audit.jsonl");
        assert!(check_file(&under_a_file).is_err());
        let missing = dir.path().join("new.jsonl");
        assert_eq!(check_file(&missing), Ok(()));
        assert!(!missing.exists(), "check-config creates nothing");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            3,
            "no temporary file left"
        );
    }

    /// Found by a red team: `var-log/sealops` swapped for a link to another directory made the
    /// controller (root) append to a file there, and check-config said "ready".
    #[test]
    fn a_link_above_the_file_is_not_followed_either() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).expect("mkdir");
        std::fs::write(victim.join("important.conf"), "precious\n").expect("write");
        std::fs::create_dir(dir.path().join("var-log")).expect("mkdir");
        std::os::unix::fs::symlink(&victim, dir.path().join("var-log/sealops")).expect("symlink");
        let path = dir.path().join("var-log/sealops/important.conf");
        let sinks = Sinks::open(
            &settings(vec![AuditSink::File(path.clone())], AuditRequire::All),
            Family::default(),
        );
        let err = sinks.deliver(&lines(&["{\"r\":1}"]), Ok(())).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_to_string(victim.join("important.conf")).expect("read"),
            "precious\n"
        );
        assert!(
            check_file(&path).is_err_and(|e| e.contains("symbolic link")),
            "check-config names the link"
        );
        let missing = dir.path().join("var-log/sealops/new.jsonl");
        assert!(
            check_file(&missing).is_err_and(|e| e.contains("symbolic link")),
            "a new file under a link"
        );
        assert!(!victim.join("new.jsonl").exists());
    }

    /// Found by a red team: a FIFO put at the sink's path blocked the controller in open()
    /// (no reconcile, SIGTERM ignored) until someone read from it.
    #[test]
    fn a_fifo_at_the_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let (done, result) = std::sync::mpsc::channel();
        let sink_path = path.clone();
        std::thread::spawn(move || {
            let sinks = Sinks::open(
                &settings(vec![AuditSink::File(sink_path)], AuditRequire::All),
                Family::default(),
            );
            let _ = done.send(sinks.deliver(&lines(&["{\"r\":1}"]), Ok(())));
        });
        let delivered = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the delivery returned instead of blocking on the FIFO");
        let err = delivered.unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
