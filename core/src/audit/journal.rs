//! The local journal: audit lines are durable here before the action they describe is done.
//!
//! Lines are appended and fsynced in groups (one `fsync` for all the lines of a call: group
//! commit). A line leaves the journal only after the audit branch holding it was pushed
//! ([`Journal::acknowledge`]). A crash mid-append leaves at most a partial last line, which was
//! never acknowledged to anyone; [`Journal::open`] drops it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The journal cannot be written: the action it would record must not proceed.
#[derive(Debug, thiserror::Error)]
#[error("audit journal {path}: {source}; actions are refused until it can be written")]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An append-only file of audit lines not yet pushed.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Complete lines in the file, oldest first.
    lines: Vec<String>,
}

impl Journal {
    /// Opens (or creates, 0600) the journal at `path`, dropping a partial last line.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let fail = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(fail)?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            file.set_len(complete as u64).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        file.seek(SeekFrom::End(0)).map_err(fail)?;
        let lines = text[..complete].lines().map(str::to_owned).collect();
        Ok(Self {
            path: path.to_owned(),
            file,
            lines,
        })
    }

    /// Appends `lines` and fsyncs once; when this returns `Ok` they survive a crash.
    pub fn append(&mut self, lines: &[String]) -> Result<(), JournalError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buffer = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            debug_assert!(!line.contains('\n'));
            buffer.push_str(line);
            buffer.push('\n');
        }
        let fail = |source| JournalError {
            path: self.path.clone(),
            source,
        };
        let before = self.file.metadata().map_err(fail)?.len();
        if let Err(source) = self
            .file
            .write_all(buffer.as_bytes())
            .and_then(|()| self.file.sync_data())
        {
            // Nothing half-written stays behind to be mistaken for a recorded line.
            let _ = self.file.set_len(before);
            return Err(fail(source));
        }
        self.lines.extend(lines.iter().cloned());
        Ok(())
    }

    /// Lines journalled and not yet acknowledged, oldest first.
    pub fn pending(&self) -> &[String] {
        &self.lines
    }

    /// Drops the first `count` lines (pushed and confirmed); rewrites the file atomically.
    pub fn acknowledge(&mut self, count: usize) -> Result<(), JournalError> {
        let count = count.min(self.lines.len());
        if count == 0 {
            return Ok(());
        }
        let rest: String = self.lines[count..]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        let fail = |source| JournalError {
            path: self.path.clone(),
            source,
        };
        crate::fsutil::write_atomic(&self.path, rest.as_bytes(), 0o600).map_err(fail)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(fail)?;
        self.lines.drain(..count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopen_and_a_partial_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        let mut journal = Journal::open(&path).expect("opens");
        journal
            .append(&["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()])
            .expect("appends");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"c\":"))
            .expect("partial line");
        let mut journal = Journal::open(&path).expect("reopens");
        assert_eq!(journal.pending(), ["{\"a\":1}", "{\"b\":2}"]);
        journal.acknowledge(1).expect("acknowledges");
        journal.append(&["{\"d\":4}".to_owned()]).expect("appends");
        let journal = Journal::open(&path).expect("reopens");
        assert_eq!(journal.pending(), ["{\"b\":2}", "{\"d\":4}"]);
    }

    #[test]
    fn an_unwritable_journal_says_so() {
        let err = Journal::open(Path::new("/proc/sealops-no-such/journal")).unwrap_err();
        assert!(err.to_string().contains("actions are refused"), "{err}");
    }
}
