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
        commit_signed(&repo, &alice, "initial secrets");
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("out");
        let fleet = Self {
            out,
            state: dir.join("state"),
            config: dir.join("controller.yaml"),
            signers,
            alice,
            world,
        };
        fleet.write_config("");
        fleet
    }

    pub fn repo(&self) -> &Path {
        &self.world.repo
    }

    /// The configuration for the local repository, plus `extra` YAML lines.
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            "sealops: v1\nrepository:\n  path: {repo}\n  branch: main\nidentity_files: [{key}]\nstate_dir: {state}\noutput_roots: [{out}]\ntrust:\n  allowed_signers_file: {signers}\n{extra}",
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

pub fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}
