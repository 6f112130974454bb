//! Shared helpers for the signing tests: real `ssh-keygen` keys and real `git` repositories whose
//! configuration does not depend on the machine's.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A key made by `ssh-keygen -t ed25519 -N ""`.
pub struct TestKey {
    pub private: PathBuf,
    /// `ssh-ed25519 AAAA…` (no comment).
    pub public: String,
}

pub fn keygen(dir: &Path, name: &str) -> TestKey {
    keygen_typed(dir, name, &["-t", "ed25519"])
}

/// A key of the type `type_args` selects (e.g. `["-t", "ecdsa", "-b", "256"]`).
pub fn keygen_typed(dir: &Path, name: &str, type_args: &[&str]) -> TestKey {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .arg("-q")
        .args(type_args)
        .args(["-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    TestKey { private, public }
}

/// A temporary git repository configured for SSH commit signing; `allowed_signers` lives outside
/// the work tree so tests can rewrite it without touching history.
pub struct TestRepo {
    pub dir: TempDir,
    pub allowed_signers: PathBuf,
}

/// Commit times used by the tests (UTC).
pub const T_2024: i64 = 1_718_000_000; // 2024-06-10
pub const T_2031: i64 = 1_940_000_000; // 2031-06-22

impl TestRepo {
    pub fn new(signing_key: &TestKey) -> Self {
        let dir = TempDir::new().unwrap();
        let allowed_signers = dir.path().join("allowed_signers");
        std::fs::write(&allowed_signers, "").unwrap();
        let repo = Self {
            dir,
            allowed_signers,
        };
        std::fs::create_dir(repo.work()).unwrap();
        repo.git_ok(&["init", "-q", "-b", "main"]);
        repo.git_ok(&["config", "gpg.format", "ssh"]);
        repo.git_ok(&[
            "config",
            "user.signingkey",
            signing_key.private.to_str().unwrap(),
        ]);
        let signers = repo.allowed_signers.to_str().unwrap().to_owned();
        repo.git_ok(&["config", "gpg.ssh.allowedSignersFile", &signers]);
        repo
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn open(&self) -> git2::Repository {
        git2::Repository::open(self.work()).unwrap()
    }

    pub fn set_signers(&self, text: &str) {
        std::fs::write(&self.allowed_signers, text).unwrap();
    }

    pub fn signers(&self) -> sealops_core::signing::AllowedSigners {
        sealops_core::signing::AllowedSigners::load(&self.allowed_signers).unwrap()
    }

    /// Runs git with the machine's configuration shut out and fixed identities, at `time`.
    pub fn git_at(&self, time: i64, args: &[&str]) -> Output {
        Command::new("git")
            .args(args)
            .current_dir(self.work())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", format!("@{time} +0000"))
            .env("GIT_COMMITTER_DATE", format!("@{time} +0000"))
            // git hands ssh-keygen the commit time in local time without a zone; sealops reads
            // allowed_signers times without `Z` as UTC. Pin the zone so both read the same.
            .env("TZ", "UTC")
            .output()
            .expect("run git")
    }

    pub fn git(&self, args: &[&str]) -> Output {
        self.git_at(T_2024, args)
    }

    pub fn git_ok(&self, args: &[&str]) -> String {
        let out = self.git(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes `path` with `content`, stages it and commits (signed when `sign`) at `time`.
    pub fn commit_file(&self, time: i64, path: &str, content: &str, sign: bool) -> git2::Oid {
        let full = self.work().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self.git_ok(&["add", path]);
        let sign_flag = if sign { "-S" } else { "--no-gpg-sign" };
        let out = self.git_at(
            time,
            &["commit", "-q", sign_flag, "-m", &format!("change {path}")],
        );
        assert!(
            out.status.success(),
            "commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.head()
    }

    pub fn head(&self) -> git2::Oid {
        git2::Oid::from_str(self.git_ok(&["rev-parse", "HEAD"]).trim()).unwrap()
    }

    /// git's own verdict: whether `git verify-commit` accepts the commit, and the signer it names.
    pub fn git_verdict(&self, oid: git2::Oid) -> (bool, String) {
        let verified = self
            .git(&["verify-commit", &oid.to_string()])
            .status
            .success();
        // With a garbled signature ssh-keygen can exit before git has written it the payload;
        // git then dies of SIGPIPE (no exit code, nothing on stderr). That is git racing its
        // helper, not a verdict: ask again.
        let args = ["log", "-1", "--format=%GS", &oid.to_string()];
        let mut out = self.git(&args);
        for _ in 0..5 {
            if out.status.code().is_some() {
                break;
            }
            out = self.git(&args);
        }
        assert!(
            out.status.success(),
            "git {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let signer = String::from_utf8(out.stdout).unwrap();
        (verified, signer.trim().to_owned())
    }
}
