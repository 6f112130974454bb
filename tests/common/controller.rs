//! A repository the controller follows, built with the real `sealops`, real `git` and real
//! SSH signatures, and the real `sealops-controller` binary to run against it.
//!
//! `Fleet::new()` makes: a cluster identity (recipient `prod`), an SSH signer
//! `alice@example.com` (human, policy `admin`: everything incl. sudo), a service identity
//! `payments` (policy `payments-runtime`: read `secrets/apps/payments/*`), a secret
//! `apps/payments/db` (DB_PASSWORD, DB_USER sealed; DB_HOST plain), a target `payments`
//! writing `payments/db.env` (dotenv, 0640) and `payments/url` (template), one signed commit,
//! and `controller.yaml` (local path, output root `out/`, state `state/`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{SEALOPS, SshSigner, World, commit_signed, git, ssh_keygen};

pub const PASSWORD: &str = "s3cr3t-Pa55word-7f2c";

pub const ADMIN_POLICY: &str = "path \"secrets/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }\npath \"sys/*\" { capabilities = [\"read\", \"update\", \"sudo\"] }\n";
pub const PAYMENTS_POLICY: &str =
    "path \"secrets/apps/payments/*\" { capabilities = [\"read\"] }\n";

pub const PAYMENTS_TARGET: &str = "sealops: v1\nidentity: payments\noutputs:\n  - secret: apps/payments/db\n    format: dotenv\n    path: payments/db.env\n    mode: \"0640\"\n  - secret: apps/payments/db\n    format: template\n    path: payments/url\n    template: \"postgres://{{ DB_USER }}:{{ DB_PASSWORD }}@{{ DB_HOST }}/payments\"\n";

/// The `sealops-controller` binary, built beside `sealops` by `cargo test --workspace`.
pub fn controller_bin() -> PathBuf {
    let bin = Path::new(SEALOPS).with_file_name("sealops-controller");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p sealops-controller` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub struct Fleet {
    pub world: World,
    pub alice: SshSigner,
    /// The output root.
    pub out: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// The local allowed_signers file (trust bootstrap).
    pub signers: PathBuf,
    /// The first commit, pinned as `trust.initial_commit` unless a test pins its own (a
    /// cell: [`kit::amend_first_commit`] replaces the first commit).
    pub anchor: std::cell::RefCell<String>,
}

impl Fleet {
    pub fn new() -> Self {
        let world = World::new();
        let dir = world.dir.path().to_owned();
        let alice = ssh_keygen(&dir, "alice@example.com");
        let signers = dir.join("allowed_signers");
        std::fs::write(
            &signers,
            format!("alice@example.com namespaces=\"git\" {}\n", alice.public),
        )
        .expect("signers");
        let repo = world.repo.clone();
        git(&repo, &["init", "-q", "-b", "main"]);
        write(&repo, "policies/admin.hcl", ADMIN_POLICY);
        write(&repo, "policies/payments-runtime.hcl", PAYMENTS_POLICY);
        write(
            &repo,
            "identities/alice.yaml",
            "sealops: v1\nname: alice@example.com\nkind: human\npolicies: [admin]\n",
        );
        write(
            &repo,
            "identities/payments.yaml",
            "sealops: v1\nname: payments\nkind: service\npolicies: [payments-runtime]\n",
        );
        write(&repo, "targets/payments.yaml", PAYMENTS_TARGET);
        world
            .sealops()
            .args([
                "seal",
                "apps/payments/db",
                "--from-literal",
                &format!("DB_PASSWORD={PASSWORD}"),
                "--from-literal",
                "DB_USER=payments",
                "--plain",
                "DB_HOST=db.internal",
            ])
            .assert()
            .success();
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("out");
        let state = dir.join("state");
        register_audit_key(&repo, &dir, &state, &world.key, &signers, &out);
        let anchor = commit_signed(&repo, &alice, "initial secrets");
        let fleet = Self {
            out,
            state,
            config: dir.join("controller.yaml"),
            signers,
            anchor: std::cell::RefCell::new(anchor),
            alice,
            world,
        };
        fleet.write_config("");
        fleet
    }

    pub fn repo(&self) -> &Path {
        &self.world.repo
    }

    /// The registry of audit keys in the checkout (`.sealops/controllers.yaml`).
    pub fn registry(&self) -> sealops_core::audit::Registry {
        let text = std::fs::read_to_string(self.repo().join(".sealops/controllers.yaml"))
            .expect("the fleet registers its controller's audit key");
        sealops_core::audit::Registry::parse(&text, ".sealops/controllers.yaml").expect("registry")
    }

    /// The configuration for the local repository, plus `extra` YAML lines. The first commit
    /// is the pinned trust anchor unless `extra` pins one (`initial_commit`,
    /// `pinned_principals`) or says there is none (`# no anchor`).
    pub fn config_text(&self, extra: &str) -> String {
        let pins_own = ["initial_commit:", "pinned_principals:", "# no anchor"]
            .iter()
            .any(|pin| extra.contains(pin));
        let anchor = if pins_own {
            String::new()
        } else {
            format!("  initial_commit: {}\n", self.anchor.borrow())
        };
        format!(
            "sealops: v1\nrepository:\n  path: {repo}\n  branch: main\nidentity_files: [{key}]\nstate_dir: {state}\noutput_roots: [{out}]\ntrust:\n  allowed_signers_file: {signers}\n{anchor}{extra}",
            repo = self.repo().display(),
            key = self.world.key.display(),
            state = self.state.display(),
            out = self.out.display(),
            signers = self.signers.display(),
        )
    }

    pub fn write_config(&self, extra: &str) {
        std::fs::write(&self.config, self.config_text(extra)).expect("config");
    }

    pub fn controller(&self) -> Command {
        let mut cmd = Command::new(controller_bin());
        cmd.env("HOME", &self.world.home).env_remove("RUST_LOG");
        cmd
    }

    /// `sealops-controller run --once`: (exit code, status document, stderr).
    pub fn once(&self) -> (i32, serde_json::Value, String) {
        let out: Output = self
            .controller()
            .args(["run", "--once", "--log-level", "trace", "--config"])
            .arg(&self.config)
            .output()
            .expect("controller runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let status = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status JSON on stdout ({e}): {}\nstderr: {stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), status, stderr)
    }

    /// Writes a repository file (creating folders).
    pub fn write(&self, path: &str, text: &str) {
        write(self.repo(), path, text);
    }

    /// `sealops set <secret> <key> <value>` with the cluster identity.
    pub fn set(&self, secret: &str, key: &str, value: &str) {
        self.world
            .sealops_with_key()
            .args(["set", secret, key, value])
            .assert()
            .success();
    }

    /// Commits everything, signed by alice.
    pub fn commit(&self, message: &str) -> String {
        commit_signed(self.repo(), &self.alice, message)
    }

    /// Commits everything without a signature.
    pub fn commit_unsigned(&self, message: &str) -> String {
        git(self.repo(), &["add", "-A"]);
        git(
            self.repo(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(self.repo(), &["rev-parse", "HEAD"]).trim().to_owned()
    }

    pub fn output(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.out.join(relative)).ok()
    }
}

/// Creates the controller's audit key the way an operator does (`sealops-controller audit-key`
/// with the controller's configuration) and registers it in `.sealops/controllers.yaml`, which
/// the first commit then holds.
fn register_audit_key(
    repo: &Path,
    dir: &Path,
    state: &Path,
    key: &Path,
    signers: &Path,
    out: &Path,
) {
    let config = dir.join("audit-key.yaml");
    std::fs::write(
        &config,
        format!(
            "sealops: v1\nrepository:\n  path: {repo}\n  branch: main\nidentity_files: [{key}]\nstate_dir: {state}\noutput_roots: [{out}]\ntrust:\n  allowed_signers_file: {signers}\n",
            repo = repo.display(),
            key = key.display(),
            state = state.display(),
            out = out.display(),
            signers = signers.display(),
        ),
    )
    .expect("config");
    let printed = Command::new(controller_bin())
        .args(["audit-key", "--config"])
        .arg(&config)
        .output()
        .expect("runs sealops-controller audit-key");
    assert!(
        printed.status.success(),
        "audit-key: {}",
        String::from_utf8_lossy(&printed.stderr)
    );
    write(
        repo,
        ".sealops/controllers.yaml",
        &format!(
            "sealops: v1\ncontrollers:\n{}",
            String::from_utf8_lossy(&printed.stdout)
        ),
    );
}

pub fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests/controller_local.rs and tests/controller_security.rs. Kept in their own
// module so helpers appended by other test files cannot clash with these names.
// ---------------------------------------------------------------------------------------------

pub mod kit {
    use std::io::{Read as _, Write as _};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::super::{SshSigner, commit_signed, git, ssh_keygen};
    use super::Fleet;

    /// How long a wait may take before the test gives up: a hang guard, never a timing claim.
    const HANG_GUARD: Duration = Duration::from_secs(60);

    /// A fleet whose repository needs one approval for administrative changes (targets,
    /// identities, policies), so alice — the only principal with `sudo` — authorises them with
    /// her signature alone. The first commit is rewritten before any controller has seen it.
    pub fn single_approver_fleet() -> Fleet {
        let fleet = Fleet::new();
        require_one_approval(&fleet);
        amend_first_commit(&fleet, Some(&fleet.alice));
        fleet
    }

    /// Sets `trust.required_approvals: 1` in the work tree's `.sealops/config.yaml`.
    pub fn require_one_approval(fleet: &Fleet) {
        let file = fleet.repo().join(".sealops/config.yaml");
        let text = std::fs::read_to_string(&file).expect("repository config");
        let one = if text.contains("required_approvals: 2") {
            text.replace("required_approvals: 2", "required_approvals: 1")
        } else {
            assert!(
                !text.contains("required_approvals"),
                "unexpected trust settings in {}:\n{text}",
                file.display()
            );
            format!("{text}trust:\n  required_approvals: 1\n")
        };
        std::fs::write(&file, one).expect("write config");
    }

    /// Rewrites the branch's only commit with the working tree, signed by `signer` (or not
    /// signed at all). Only before a controller ran: nothing has trusted the old commit yet.
    pub fn amend_first_commit(fleet: &Fleet, signer: Option<&SshSigner>) -> String {
        let repo = fleet.repo();
        assert_eq!(
            git(repo, &["rev-list", "--count", "HEAD"]).trim(),
            "1",
            "only the first commit may be rewritten"
        );
        git(repo, &["add", "-A"]);
        match signer {
            Some(signer) => {
                let key = format!("user.signingkey={}", signer.private.display());
                git(
                    repo,
                    &[
                        "-c",
                        "gpg.format=ssh",
                        "-c",
                        &key,
                        "commit",
                        "-q",
                        "--amend",
                        "--no-edit",
                        "-S",
                    ],
                );
            }
            None => {
                git(
                    repo,
                    &["commit", "-q", "--amend", "--no-edit", "--no-gpg-sign"],
                );
            }
        }
        // The amended commit is the new anchor, in the configuration already written too.
        let new = head(fleet);
        let old = fleet.anchor.replace(new.clone());
        if let Ok(text) = std::fs::read_to_string(&fleet.config) {
            std::fs::write(&fleet.config, text.replace(&old, &new)).expect("config");
        }
        new
    }

    /// A new SSH signer for `principal`, added to the local allowed_signers (the bootstrap of
    /// trust the controller judges commits under).
    pub fn trusted_signer(fleet: &Fleet, principal: &'static str) -> SshSigner {
        let signer = ssh_keygen(fleet.world.dir.path(), principal);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&fleet.signers)
            .expect("allowed_signers");
        writeln!(file, "{principal} namespaces=\"git\" {}", signer.public).expect("append");
        signer
    }

    /// Commits everything, signed by `signer`.
    pub fn commit_as(fleet: &Fleet, signer: &SshSigner, message: &str) -> String {
        commit_signed(fleet.repo(), signer, message)
    }

    /// `git revert` of `commit`, signed by alice (SSH signature, like every commit she makes).
    pub fn revert(fleet: &Fleet, commit: &str) -> String {
        let key = format!("user.signingkey={}", fleet.alice.private.display());
        git(
            fleet.repo(),
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &key,
                "revert",
                "--no-edit",
                "-S",
                commit,
            ],
        );
        head(fleet)
    }

    pub fn head(fleet: &Fleet) -> String {
        git(fleet.repo(), &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// `sealops seal <secret> --from-literal K=V…` with the repository's recipients.
    pub fn seal(fleet: &Fleet, secret: &str, pairs: &[(&str, &str)]) {
        let mut cmd = fleet.world.sealops();
        cmd.args(["seal", secret]);
        for (key, value) in pairs {
            cmd.arg("--from-literal").arg(format!("{key}={value}"));
        }
        cmd.assert().success();
    }

    /// The refusals of a status document with `reason`.
    pub fn refusals<'s>(status: &'s serde_json::Value, reason: &str) -> Vec<&'s serde_json::Value> {
        status["refusals"]
            .as_array()
            .map(|all| all.iter().filter(|r| r["reason"] == reason).collect())
            .unwrap_or_default()
    }

    /// Every file below `dir` (recursively, links not followed).
    pub fn files_below(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => found.extend(files_below(&path)),
                _ => found.push(path),
            }
        }
        found
    }

    /// Temporary files the controller's atomic writes left below `dir`.
    pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
        files_below(dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".sealops-tmp-"))
            })
            .collect()
    }

    /// Polls `done` until it holds; panics after [`HANG_GUARD`] so a broken controller fails
    /// the test instead of hanging it.
    pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + HANG_GUARD;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what} (hang guard)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A port nobody listens on right now.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }

    /// `GET path` on 127.0.0.1:port: (status code, body), or `None` while nothing answers.
    pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(HANG_GUARD)).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut body = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, String::from_utf8(body).ok()?))
    }

    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&raw[..end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if size == 0 || raw.len() < end + 2 + size {
                break;
            }
            body.extend_from_slice(&raw[end + 2..end + 2 + size]);
            raw = &raw[(end + 4 + size).min(raw.len())..];
        }
        body
    }

    /// A long-running `sealops-controller run` with HTTP on a free port and polling pushed out
    /// of the way (1 h), so only the local ref watch can trigger a reconcile.
    pub struct Running {
        pub child: Child,
        pub port: u16,
        pub log: PathBuf,
    }

    /// Writes the configuration (plus `extra`) and starts the controller.
    pub fn spawn(fleet: &Fleet, extra: &str) -> Running {
        let port = free_port();
        fleet.write_config(&format!(
            "http:\n  listen: 127.0.0.1:{port}\npoll:\n  interval: 1h\n  jitter: 0s\n  resync: 1h\n{extra}"
        ));
        let log = fleet
            .world
            .dir
            .path()
            .join(format!("controller-{port}.log"));
        let child = fleet
            .controller()
            .args(["run", "--log-level", "trace", "--config"])
            .arg(&fleet.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("controller starts");
        Running { child, port, log }
    }

    impl Running {
        /// `GET path`, once the listener answers.
        pub fn get(&mut self, path: &str) -> (u16, String) {
            let mut reply = None;
            let port = self.port;
            wait_until(&format!("an answer on {path}"), || {
                self.assert_alive();
                reply = http_get(port, path);
                reply.is_some()
            });
            reply.expect("answered")
        }

        pub fn status(&mut self) -> serde_json::Value {
            let (code, body) = self.get("/status");
            assert_eq!(code, 200, "{body}");
            serde_json::from_str(&body).expect("status JSON")
        }

        /// Polls /status until `done` holds for it; returns that document.
        pub fn wait_for_status(
            &mut self,
            what: &str,
            mut done: impl FnMut(&serde_json::Value) -> bool,
        ) -> serde_json::Value {
            let mut last = serde_json::Value::Null;
            wait_until(what, || {
                last = self.status();
                done(&last)
            });
            last
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        fn assert_alive(&mut self) {
            if let Some(exit) = self.child.try_wait().expect("try_wait") {
                panic!("the controller exited early ({exit}):\n{}", self.log());
            }
        }

        /// SIGTERM, then the exit code once the controller has stopped.
        pub fn terminate(&mut self) -> i32 {
            let pid = self.child.id().to_string();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs");
            assert!(sent.success(), "kill -TERM {pid}");
            let mut code = None;
            wait_until("the controller to exit after SIGTERM", || {
                code = self.child.try_wait().expect("try_wait");
                code.is_some()
            });
            code.expect("exited").code().unwrap_or(-1)
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            // Only this test's own child, by its handle; a stopped one is left alone.
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

// =============================================================================================
// Remote repositories (used by tests/controller_remote.rs): a bare copy of the Fleet's repository
// served by the real `git daemon`, a long-running controller with its HTTP endpoints, and a
// minimal HTTP/1.1 client. Kept in its own module so other appended helpers cannot clash.
// =============================================================================================

pub mod remote {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::time::{Duration, Instant};

    use super::Fleet;
    use crate::common::git;

    /// How long any wait may take before the test is declared hung. A hang guard only: no test
    /// asserts how fast something happens.
    pub const DEADLINE: Duration = Duration::from_secs(90);

    /// A port nobody listens on right now (bind to port 0, read it, drop the listener).
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0")
            .port()
    }

    /// Polls `probe` until it returns `Some`; panics with `what` and the last `diagnose()` when
    /// the hang guard expires.
    pub fn wait_for<T>(
        what: &str,
        mut probe: impl FnMut() -> Option<T>,
        diagnose: impl Fn() -> String,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "still waiting for {what} after {DEADLINE:?} (hang guard)\n{}",
                diagnose()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The real `git daemon` serving `base` on 127.0.0.1:`port`; killed on drop.
    #[derive(Debug)]
    pub struct GitDaemon {
        child: Child,
        pub port: u16,
    }

    impl GitDaemon {
        /// Starts the daemon and returns once the port accepts connections. A start that
        /// cannot bind yet (the previous daemon's port still held) is retried until the guard.
        pub fn start(base: &Path, port: u16) -> Self {
            let log = base.with_file_name(format!("git-daemon-{port}.log"));
            let program = Path::new(git(base, &["--exec-path"]).trim()).join("git-daemon");
            let mut attempt = || -> Option<Self> {
                let log_file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("daemon log");
                // `git-daemon` itself, not `git daemon`: the `git` wrapper runs it as a child
                // that would outlive a kill of the wrapper and keep serving.
                let child = Command::new(&program)
                    .arg("--reuseaddr")
                    .arg("--listen=127.0.0.1")
                    .arg(format!("--port={port}"))
                    .arg(format!("--base-path={}", base.display()))
                    .arg("--export-all")
                    .arg("--informative-errors")
                    // The audit trail is pushed back over git:// too.
                    .arg("--enable=receive-pack")
                    .arg(base)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log_file)
                    .spawn()
                    .expect("git daemon runs (git is required)");
                let mut daemon = Self { child, port };
                loop {
                    if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return Some(daemon);
                    }
                    if daemon.child.try_wait().expect("daemon state").is_some() {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            wait_for(
                &format!("git daemon listening on 127.0.0.1:{port}"),
                &mut attempt,
                || std::fs::read_to_string(&log).unwrap_or_default(),
            )
        }
    }

    impl Drop for GitDaemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A bare copy of a Fleet's repository, served over git://.
    #[derive(Debug)]
    pub struct Served {
        /// The daemon's base path (holds `remote.git`).
        pub base: PathBuf,
        pub bare: PathBuf,
        pub port: u16,
        daemon: Option<GitDaemon>,
    }

    impl Served {
        /// `git://127.0.0.1:PORT/remote.git`.
        pub fn url(&self) -> String {
            format!("git://127.0.0.1:{}/remote.git", self.port)
        }

        /// Makes the remote unreachable: the daemon is killed, the port is left closed.
        pub fn stop_daemon(&mut self) {
            drop(self.daemon.take());
        }

        /// Serves again on the same port.
        pub fn restart_daemon(&mut self) {
            assert!(self.daemon.is_none(), "the daemon is already running");
            self.daemon = Some(GitDaemon::start(&self.base, self.port));
        }
    }

    /// A reply from [`http`].
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub body: String,
    }

    /// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
    pub fn http(
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status line in {head:?}"));
        Ok(Reply {
            status,
            body: body.to_owned(),
        })
    }

    /// The value of one series (`name{labels}` exactly as exposed) in OpenMetrics text; 0 when
    /// the series is absent (a counter never incremented is not exposed).
    pub fn metric(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|value| {
                        value
                            .split_whitespace()
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("metric line {line:?}"))
                    })
            })
            .unwrap_or(0.0)
    }

    /// `sealops-controller run` (long-running, `--log-level trace`, stderr to a file); killed
    /// on drop unless [`RunningController::terminate`] stopped it.
    #[derive(Debug)]
    pub struct RunningController {
        child: Child,
        pub address: SocketAddr,
        pub log: PathBuf,
    }

    impl RunningController {
        pub fn get(&self, path: &str) -> Reply {
            http(self.address, "GET", path, &[], b"")
                .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_excerpt()))
        }

        pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
            http(self.address, "POST", path, headers, body)
                .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log_excerpt()))
        }

        pub fn status(&self) -> serde_json::Value {
            let reply = self.get("/status");
            assert_eq!(reply.status, 200, "{}", reply.body);
            serde_json::from_str(&reply.body).expect("/status is JSON")
        }

        pub fn metrics(&self) -> String {
            let reply = self.get("/metrics");
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.body
        }

        /// The value of a series in `/metrics`, e.g. `sealops_fetches_total{result="ok"}`.
        pub fn metric(&self, series: &str) -> f64 {
            metric(&self.metrics(), series)
        }

        pub fn stderr(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        /// The log without its TRACE and DEBUG lines (the full log is `self.log`), for failure
        /// messages.
        pub fn log_excerpt(&self) -> String {
            let log = self.stderr();
            let kept: Vec<&str> = log
                .lines()
                .filter(|line| !line.contains("TRACE") && !line.contains("DEBUG"))
                .collect();
            kept[kept.len().saturating_sub(60)..].join("\n")
        }

        /// Polls `/status` until `condition` holds; returns that status document.
        pub fn wait_status(
            &mut self,
            what: &str,
            condition: impl Fn(&serde_json::Value) -> bool,
        ) -> serde_json::Value {
            let mut last = serde_json::Value::Null;
            let started = Instant::now();
            loop {
                if let Some(exit) = self.child.try_wait().expect("controller state") {
                    panic!(
                        "the controller exited ({exit}) while waiting for {what}\n{}",
                        self.log_excerpt()
                    );
                }
                if let Ok(reply) = http(self.address, "GET", "/status", &[], b"")
                    && reply.status == 200
                {
                    last = serde_json::from_str(&reply.body).expect("/status is JSON");
                    if condition(&last) {
                        return last;
                    }
                }
                assert!(
                    started.elapsed() < DEADLINE,
                    "still waiting for {what} after {DEADLINE:?} (hang guard)\nstatus: {last:#}\nlog:\n{}",
                    self.log_excerpt()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Sends SIGTERM and waits for the exit (hang guard only).
        pub fn terminate(&mut self) -> ExitStatus {
            let sent = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(sent.success(), "kill -TERM failed");
            let child = &mut self.child;
            wait_for(
                "the controller to exit after SIGTERM",
                || child.try_wait().expect("controller state"),
                String::new,
            )
        }

        /// Asserts none of `values` appears in the log, `/status` or `/metrics`.
        pub fn assert_never_shows(&self, values: &[&str]) {
            let (stderr, status, metrics) = (
                self.stderr(),
                self.get("/status").body,
                self.get("/metrics").body,
            );
            for value in values {
                assert!(!stderr.contains(value), "the log holds a secret value");
                assert!(!status.contains(value), "/status holds a secret value");
                assert!(!metrics.contains(value), "/metrics holds a secret value");
            }
        }
    }

    impl Drop for RunningController {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Fleet {
        /// `git clone --bare` of the repository into `served/remote.git` (not served).
        pub fn bare_remote(&self) -> PathBuf {
            let base = self.world.dir.path().join("served");
            std::fs::create_dir_all(&base).expect("served dir");
            let bare = base.join("remote.git");
            git(
                &base,
                &[
                    "clone",
                    "-q",
                    "--bare",
                    &self.repo().display().to_string(),
                    "remote.git",
                ],
            );
            bare
        }

        /// A bare copy served by `git daemon` on a free port.
        pub fn serve_remote(&self) -> Served {
            let bare = self.bare_remote();
            let base = bare.parent().expect("base").to_owned();
            let port = free_port();
            let daemon = GitDaemon::start(&base, port);
            Served {
                base,
                bare,
                port,
                daemon: Some(daemon),
            }
        }

        /// Pushes `main` to the bare repository by path.
        pub fn push_to(&self, bare: &Path, force: bool) {
            let target = bare.display().to_string();
            let mut args = vec!["push", "-q"];
            if force {
                args.push("--force");
            }
            args.extend([target.as_str(), "main"]);
            git(self.repo(), &args);
        }

        /// [`Fleet::config_text`] following `url` instead of the local path.
        pub fn remote_config_text(&self, url: &str, extra: &str) -> String {
            let text = self.config_text(extra);
            let local = format!("repository:\n  path: {}\n", self.repo().display());
            assert!(text.contains(&local), "config_text changed shape: {text}");
            text.replacen(&local, &format!("repository:\n  url: {url}\n"), 1)
        }

        pub fn write_remote_config(&self, url: &str, extra: &str) {
            std::fs::write(&self.config, self.remote_config_text(url, extra)).expect("config");
        }

        /// `http:` (listen on `port`, webhook secret in `webhook.secret`) and `poll:` YAML for
        /// [`Fleet::write_remote_config`]'s `extra`.
        pub fn http_and_poll_yaml(&self, port: u16, secret: &str, interval: &str) -> String {
            let secret_file = self.world.dir.path().join("webhook.secret");
            std::fs::write(&secret_file, format!("{secret}\n")).expect("secret file");
            format!(
                "http:\n  listen: 127.0.0.1:{port}\n  webhook_secret_file: {}\npoll:\n  interval: {interval}\n  jitter: 0s\n",
                secret_file.display()
            )
        }

        /// Starts `sealops-controller run` with the written configuration; returns once its
        /// HTTP endpoints answer `/healthz` (listening on `http_port`).
        pub fn spawn_controller(&self, http_port: u16) -> RunningController {
            let log = self
                .world
                .dir
                .path()
                .join(format!("controller-{http_port}.log"));
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("controller log");
            let child = self
                .controller()
                .args(["run", "--log-level", "trace", "--config"])
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("the controller starts");
            let mut running = RunningController {
                child,
                address: SocketAddr::from(([127, 0, 0, 1], http_port)),
                log,
            };
            let address = running.address;
            let mut exited = None;
            wait_for(
                "the controller's /healthz",
                || {
                    if let Some(exit) = running.child.try_wait().expect("controller state") {
                        exited = Some(exit);
                        return Some(());
                    }
                    http(address, "GET", "/healthz", &[], b"")
                        .ok()
                        .filter(|reply| reply.status == 200)
                        .map(|_| ())
                },
                String::new,
            );
            if let Some(exit) = exited {
                panic!("the controller exited ({exit}):\n{}", running.log_excerpt());
            }
            running
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for large repositories (tests/controller_crash.rs): manifests sealed in process with
// the repository's recipient, so hundreds of them cost milliseconds rather than a `sealops`
// process each, and signed commits of prepared trees, so a test can flip the branch between two
// contents without touching the working tree.

impl Fleet {
    /// Writes `secrets/<secret>.yaml` holding `values`, sealed in process to the repository's
    /// recipient (`prod`); replaces any manifest already there.
    pub fn write_sealed(&self, secret: &str, values: &[(&str, &str)]) {
        use sealops_core::keys::{AgeIdentities, Recipient};
        use sealops_core::manifest::{Manifest, Scope, SecretPath};
        use sealops_core::seal::RecipientNames;
        use sealops_core::secret::SecretValue;

        let recipient: Recipient = self.world.public.parse().expect("the recipient parses");
        let path = SecretPath::parse(secret).expect("a valid secret path");
        let mut manifest = Manifest::new(path, Scope::Strict);
        let file = format!("secrets/{secret}.yaml");
        manifest
            .seal_values(
                &file,
                values
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), SecretValue::from(*v)))
                    .collect(),
                &[recipient],
                &AgeIdentities::new(),
                &RecipientNames::default(),
            )
            .expect("seals");
        self.write(&file, &manifest.to_yaml());
    }

    /// Stages everything and returns the tree id, without committing.
    pub fn stage_tree(&self) -> String {
        git(self.repo(), &["add", "-A"]);
        git(self.repo(), &["write-tree"]).trim().to_owned()
    }

    /// Commits `tree` on top of `main`, signed by alice, and moves `main` to it (the working
    /// tree is left as it is: the controller reads commits, never the checkout).
    pub fn commit_tree(&self, tree: &str, message: &str) -> String {
        let key = format!("user.signingkey={}", self.alice.private.display());
        let parent = git(self.repo(), &["rev-parse", "refs/heads/main"]);
        let commit = git(
            self.repo(),
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &key,
                "commit-tree",
                "-S",
                "-p",
                parent.trim(),
                "-m",
                message,
                tree,
            ],
        )
        .trim()
        .to_owned();
        git(self.repo(), &["update-ref", "refs/heads/main", &commit]);
        commit
    }
}
