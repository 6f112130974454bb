//! Helpers for end-to-end tests: a temporary home, an identity, and an initialised repository,
//! with the real `sealops` binary, real `git` and real `age`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

pub const SEALOPS: &str = env!("CARGO_BIN_EXE_sealops");

/// A temporary world: `home/` (HOME), `cluster.key` (the recipient's identity), `repo/`.
pub struct World {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub key: PathBuf,
    pub public: String,
}

impl World {
    /// An initialised repository whose one recipient (`prod`) is `cluster.key`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("repo");
        let key = dir.path().join("cluster.key");
        let mut world = Self {
            dir,
            home,
            repo,
            key,
            public: String::new(),
        };
        let out = world
            .sealops()
            .args(["keygen", "-o"])
            .arg(&world.key)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        world.public = String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned();
        world
            .sealops()
            .args(["init", "--recipient", &format!("prod={}", world.public)])
            .assert()
            .success();
        world
    }

    /// `sealops` in the repository, with a private HOME and no identity from the environment.
    pub fn sealops(&self) -> Command {
        let mut cmd = Command::new(SEALOPS);
        cmd.current_dir(&self.repo)
            .env("HOME", &self.home)
            .env_remove("SEALOPS_IDENTITY_FILE")
            .env_remove("VISUAL")
            .env_remove("EDITOR");
        cmd
    }

    /// `sealops … --identity cluster.key`.
    pub fn sealops_with_key(&self) -> Command {
        let mut cmd = self.sealops();
        cmd.arg("--identity").arg(&self.key);
        cmd
    }

    pub fn manifest(&self, path: &str) -> String {
        std::fs::read_to_string(self.repo.join(format!("secrets/{path}.yaml")))
            .expect("manifest exists")
    }

    pub fn stdout(&self, cmd: &mut Command) -> String {
        let out = cmd.output().expect("runs");
        assert!(
            out.status.success(),
            "command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }
}

/// Runs git in `dir` with a neutral configuration; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_with_env(dir, &[], args)
}

/// [`git`] with extra environment variables (e.g. `GIT_COMMITTER_DATE`).
pub fn git_with_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .envs(env.iter().copied())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Fails loudly when a tool the test needs is missing: tests never skip a real component.
pub fn require_tool(name: &str) {
    let found = StdCommand::new(name).arg("--version").output().is_ok();
    assert!(
        found,
        "`{name}` is not installed: run `bash scripts/test.sh` (it installs it) or `apt-get install -y {name}`"
    );
}

/// Runs git with `sealops` on PATH (for the configured drivers); returns the raw output.
pub fn git_with_sealops(dir: &Path, args: &[&str]) -> std::process::Output {
    let bin_dir = Path::new(SEALOPS).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    StdCommand::new("git")
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env_remove("SEALOPS_IDENTITY_FILE")
        .output()
        .expect("git runs")
}

/// `../shared/fixtures` beside the repository. Absent: with `CI=true` the test fails, otherwise
/// it says so and skips (returns `None`).
pub fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the shared fixtures are missing at {}: CI needs them",
            dir.display()
        );
    }
    eprintln!("skipped: the shared fixtures are not at {}", dir.display());
    None
}

/// A private copy (mode 0600) of identity files, as sealops refuses readable-by-others keys.
pub fn private_key_copy(world: &World, sources: &[PathBuf]) -> PathBuf {
    let mut text = String::new();
    for source in sources {
        text.push_str(&std::fs::read_to_string(source).expect("key file"));
        text.push('\n');
    }
    let path = world.dir.path().join(format!("keys-{}.txt", sources.len()));
    std::fs::write(&path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

/// An SSH signing key made by `ssh-keygen -t ed25519`, for a principal.
pub struct SshSigner {
    pub principal: &'static str,
    pub private: PathBuf,
    /// `ssh-ed25519 AAAA…` (no comment).
    pub public: String,
}

pub fn ssh_keygen(dir: &Path, principal: &'static str) -> SshSigner {
    let private = dir.join(principal.split('@').next().expect("a name"));
    let status = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(private.with_extension("pub")).expect("public key");
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    SshSigner {
        principal,
        private,
        public,
    }
}

/// Stages everything in `dir` and commits it with a real SSH signature (`git commit -S`,
/// `gpg.format ssh`) by `signer`; returns the commit id.
pub fn commit_signed(dir: &Path, signer: &SshSigner, message: &str) -> String {
    git(dir, &["add", "-A"]);
    let key = format!("user.signingkey={}", signer.private.display());
    git(
        dir,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &key,
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            message,
        ],
    );
    git(dir, &["rev-parse", "HEAD"]).trim().to_owned()
}

pub mod controller;
