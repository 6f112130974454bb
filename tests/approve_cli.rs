//! `sealops approve` and `sealops approvals status` on a real repository with real SSH keys
//! and `git commit -S`; counted as `sealops check` counts them.

use crate::common::{SshSigner, World, commit_signed, git, ssh_keygen};

const ADMIN: &str = "path \"sys/*\" {\n  capabilities = [\"read\", \"update\", \"sudo\"]\n}\n";

struct Setup {
    world: World,
    alice: SshSigner,
    bob: SshSigner,
    mallory: SshSigner,
}

impl Setup {
    fn new() -> Self {
        let world = World::new();
        let keys = world.dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let setup = Self {
            alice: ssh_keygen(&keys, "alice@example.com"),
            bob: ssh_keygen(&keys, "bob@example.com"),
            mallory: ssh_keygen(&keys, "mallory@example.com"),
            world,
        };
        git(&setup.world.repo, &["init", "-q", "-b", "main"]);
        let signers = format!(
            "alice@example.com {}\nbob@example.com {}\n",
            setup.alice.public, setup.bob.public
        );
        setup.write(".sealops/allowed_signers", &signers);
        setup.write("policies/admin.hcl", ADMIN);
        setup.write(
            "policies/runtime.hcl",
            "path \"secrets/a/*\" {\n  capabilities = [\"read\"]\n}\n",
        );
        for who in ["alice", "bob"] {
            setup.write(
                &format!("identities/{who}.yaml"),
                &format!("sealops: v1\nname: {who}@example.com\nkind: human\npolicies: [admin]\n"),
            );
        }
        commit_signed(&setup.world.repo, &setup.alice, "base");
        git(&setup.world.repo, &["tag", "base"]);
        setup
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.world.repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.world.sealops().args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn approve(&self, key: &SshSigner, args: &[&str]) -> String {
        let key = key.private.display().to_string();
        let mut all = vec!["-i", key.as_str(), "approve"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all);
        assert_eq!(code, 0, "{err}");
        out
    }
}

#[test]
fn approvals_are_counted_once_per_principal_and_complete_a_policy_change() {
    let s = Setup::new();
    s.write(
        "policies/runtime.hcl",
        "path \"secrets/b/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    let change = commit_signed(&s.world.repo, &s.alice, "widen runtime");

    let (code, out, _) = s.run(&["approvals", "status", "--base", "base"]);
    assert_eq!(code, 1, "{out}");
    let line = format!("{} policies/runtime.hcl", &change[..12]);
    assert!(out.starts_with(&line), "{out}");
    assert!(
        out.contains(
            "sys/policy/runtime: 1/2 [alice@example.com] MISSING 1 (may approve: bob@example.com)"
        ),
        "{out}"
    );

    // alice approving her own change adds nothing.
    let written = s.approve(&s.alice, &["policies/runtime.hcl"]);
    assert!(written.starts_with(".sealops/approvals/"), "{written}");
    commit_signed(&s.world.repo, &s.alice, "alice approves");
    let (code, out, _) = s.run(&["approvals", "status", "--base", "base"]);
    assert_eq!(code, 1, "{out}");

    s.approve(&s.bob, &["policies/runtime.hcl"]);
    commit_signed(&s.world.repo, &s.alice, "bob approves");
    let (code, out, _) = s.run(&["approvals", "status", "--base", "base"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2/2 [alice@example.com, bob@example.com] approved"),
        "{out}"
    );
    let (code, out, _) = s.run(&["check", "--base", "base"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_range_approval_covers_every_version_and_an_unknown_key_cannot_approve() {
    let s = Setup::new();
    s.write(
        "policies/runtime.hcl",
        "path \"secrets/b/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    commit_signed(&s.world.repo, &s.alice, "first version");
    s.write(
        "policies/runtime.hcl",
        "path \"secrets/c/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    commit_signed(&s.world.repo, &s.alice, "second version");
    let written = s.approve(&s.bob, &["--range", "base..HEAD"]);
    assert_eq!(
        written.lines().count(),
        2,
        "one statement per version: {written}"
    );
    commit_signed(&s.world.repo, &s.alice, "bob approves the range");
    let (code, out, _) = s.run(&["approvals", "status", "--base", "base"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(" approved").count(), 2, "{out}");

    let key = s.mallory.private.display().to_string();
    let (code, _, err) = s.run(&["-i", &key, "approve", "policies/runtime.hcl"]);
    assert_eq!(code, 2);
    assert!(err.contains("does not allow this key to approve"), "{err}");
}

/// A real `ssh-agent` on a private socket, killed when dropped.
struct Agent {
    socket: std::path::PathBuf,
    pid: String,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Self {
        let socket = dir.join("agent.sock");
        let out = std::process::Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .arg("-s")
            .output()
            .expect("ssh-agent runs (package openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .expect("ssh-agent prints its pid")
            .to_owned();
        Self { socket, pid }
    }

    fn add(&self, key: &SshSigner) {
        let status = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &self.socket)
            .status()
            .expect("ssh-add runs");
        assert!(status.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn approve_signs_through_ssh_agent_when_no_key_file_is_given() {
    let s = Setup::new();
    s.write(
        "policies/runtime.hcl",
        "path \"secrets/c/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    commit_signed(&s.world.repo, &s.alice, "widen runtime");
    let agent = Agent::start(s.world.dir.path());

    // An agent without an allowed key cannot approve.
    agent.add(&s.mallory);
    let out = s
        .world
        .sealops()
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["approve", "policies/runtime.hcl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none of ssh-agent's keys may approve"));

    agent.add(&s.bob);
    let out = s
        .world
        .sealops()
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["approve", "policies/runtime.hcl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("approved as bob@example.com"));
    commit_signed(&s.world.repo, &s.alice, "bob approves through his agent");
    let (code, out, _) = s.run(&["check", "--base", "base"]);
    assert_eq!(code, 0, "{out}");
}
