//! `sealops check` end to end: a real repository with commits signed by `git commit -S`
//! (SSH keys from `ssh-keygen`), judged by the real binary. The plan is compared with golden
//! text; a plaintext committed and removed again inside the range is still caught.

use crate::common::{SshSigner as Signer, World, commit_signed, git, ssh_keygen as keygen};
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
use sealops_core::signing::sshsig::SigningKey;

const ADMIN: &str = "path \"sys/*\" {\n  capabilities = [\"read\", \"update\", \"sudo\"]\n}\n";
const DEV: &str = "path \"secrets/apps/*\" {\n  capabilities = [\"create\", \"update\"]\n}\n";
const RUNTIME: &str = "path \"secrets/apps/web/*\" {\n  capabilities = [\"read\"]\n}\n";
const RUNTIME_WIDER: &str = "path \"secrets/apps/web/*\" {\n  capabilities = [\"read\"]\n}\n\npath \"secrets/apps/payments/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";

fn identity(name: &str, kind: &str, policy: &str) -> String {
    format!("sealops: v1\nname: {name}\nkind: {kind}\npolicies: [{policy}]\n")
}

struct Pr {
    world: World,
    alice: Signer,
    bob: Signer,
    carol: Signer,
}

impl Pr {
    fn new() -> Self {
        let world = World::new();
        let keys = world.dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let pr = Self {
            alice: keygen(&keys, "alice@example.com"),
            bob: keygen(&keys, "bob@example.com"),
            carol: keygen(&keys, "carol@example.com"),
            world,
        };
        git(&pr.world.repo, &["init", "-q", "-b", "main"]);
        let signers: String = [&pr.alice, &pr.bob, &pr.carol]
            .iter()
            .map(|s| format!("{} {}\n", s.principal, s.public))
            .collect();
        pr.write(".sealops/allowed_signers", &signers);
        pr.write("policies/admin.hcl", ADMIN);
        pr.write("policies/dev.hcl", DEV);
        pr.write("policies/runtime.hcl", RUNTIME);
        pr.write(
            "identities/alice.yaml",
            &identity("alice@example.com", "human", "admin"),
        );
        pr.write(
            "identities/bob.yaml",
            &identity("bob@example.com", "human", "admin"),
        );
        pr.write(
            "identities/carol.yaml",
            &identity("carol@example.com", "human", "dev"),
        );
        pr.write(
            "identities/payments.yaml",
            &identity("payments", "service", "runtime"),
        );
        pr.seal("apps/payments/db", &["HOST=db.internal"]);
        pr.commit(&pr.alice, "base");
        git(&pr.world.repo, &["tag", "base"]);
        pr
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.world.repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn seal(&self, path: &str, plain: &[&str]) {
        let mut cmd = self.world.sealops();
        cmd.args(["seal", path]);
        for p in plain {
            cmd.args(["--plain", p]);
        }
        cmd.assert().success();
    }

    fn commit(&self, signer: &Signer, message: &str) -> String {
        commit_signed(&self.world.repo, signer, message)
    }

    fn approve(&self, signer: &Signer, path: &str) {
        let content = std::fs::read(self.world.repo.join(path)).unwrap();
        let config = std::fs::read_to_string(self.world.repo.join(".sealops/config.yaml")).unwrap();
        let repository = sealops_core::config::Config::parse(&config, "config")
            .unwrap()
            .repository_id
            .expect("sealops init writes a repository_id");
        // Made now: `sealops check` judges approval age at its own clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let statement = ApprovalStatement::new(
            &repository,
            signer.principal,
            now,
            [(path.to_owned(), ApprovedContent::of_bytes(&content))],
        )
        .unwrap();
        let signed = statement
            .sign(&SigningKey::load(&signer.private).unwrap())
            .unwrap();
        self.write(&signed.repo_path(), &signed.contents);
    }

    fn check(&self, format: &str) -> (i32, String) {
        let out = self
            .world
            .sealops()
            .args(["check", "--base", "base", "-o", format])
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    }
}

const GOLDEN_PLAN: &str = "\
Plan:
  secret apps/payments/db modified (keys: PORT)
  secret apps/web/env added (keys: MODE)
  identity service:payments is affected
  service:payments gains list on secrets/apps/payments/*
  service:payments gains read on secrets/apps/payments/*
";

fn plan_section(text: &str) -> &str {
    let start = text.find("Plan:").expect("a plan");
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |e| start + e + 1);
    &text[start..end]
}

#[test]
fn an_authorised_pull_request_shows_its_plan_and_passes() {
    let pr = Pr::new();
    pr.seal("apps/payments/db", &["PORT=5432"]);
    pr.seal("apps/web/env", &["MODE=prod"]);
    pr.commit(&pr.carol, "payments port, web mode");
    pr.write("policies/runtime.hcl", RUNTIME_WIDER);
    pr.commit(&pr.alice, "payments may read its secrets");
    pr.approve(&pr.bob, "policies/runtime.hcl");
    pr.commit(&pr.alice, "bob approves");

    let (code, text) = pr.check("text");
    assert_eq!(plan_section(&text), GOLDEN_PLAN, "{text}");
    assert!(text.contains("OK: every commit is authorised"), "{text}");
    assert_eq!(code, 0, "{text}");

    let (code, json) = pr.check("json");
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["authorised"], true);
    assert_eq!(json["commits"].as_array().unwrap().len(), 3);
    assert_eq!(json["plan"]["secrets"][0]["keys"][0], "PORT");
    assert_eq!(
        json["commits"][0]["signer"]["principals"][0],
        "carol@example.com"
    );

    let (code, markdown) = pr.check("markdown");
    assert_eq!(code, 0);
    assert!(
        markdown.starts_with("## sealops check: ✅ authorised"),
        "{markdown}"
    );
    assert!(markdown.contains("- service:payments gains read on secrets/apps/payments/*"));
}

#[test]
fn a_plaintext_removed_later_in_the_range_and_an_unapproved_policy_are_caught() {
    let pr = Pr::new();
    pr.write("secrets/apps/web/.env", "PASSWORD=hunter2\n");
    let leaked = pr.commit(&pr.carol, "oops");
    std::fs::remove_file(pr.world.repo.join("secrets/apps/web/.env")).unwrap();
    pr.commit(&pr.alice, "remove it again");
    pr.write("policies/runtime.hcl", RUNTIME_WIDER);
    let unapproved = pr.commit(&pr.alice, "payments may read its secrets");

    let (code, text) = pr.check("text");
    assert_eq!(code, 1, "{text}");
    let leak_line = format!(
        "commit {}: secrets/apps/web/.env: a file under secrets/",
        &leaked[..12]
    );
    assert!(text.contains(&leak_line), "{text}");
    let approval_line = format!(
        "commit {}: policies/runtime.hcl: needs 2 approvals by distinct principals with sudo on sys/policy/runtime, has 1 (alice@example.com)",
        &unapproved[..12]
    );
    assert!(text.contains(&approval_line), "{text}");
    // The leak is gone from the head tree, so the plan does not mention it.
    assert!(!plan_section(&text).contains(".env"), "{text}");
    let (code, markdown) = pr.check("markdown");
    assert_eq!(code, 1);
    assert!(markdown.contains("### Violations"), "{markdown}");
    let (code, sarif) = pr.check("sarif");
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let leak = results
        .iter()
        .find(|r| r["ruleId"] == "sealops/leak")
        .expect("the leak");
    assert_eq!(
        leak["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "secrets/apps/web/.env"
    );
    assert!(results.iter().any(|r| {
        r["ruleId"] == "sealops/unauthorised"
            && r["message"]["text"]
                .as_str()
                .unwrap()
                .contains(&unapproved[..12])
    }));
}

#[test]
fn a_broken_target_is_reported_with_its_file() {
    let pr = Pr::new();
    pr.write(
        "targets/web.yaml",
        "sealops: v1\nidentity: web\noutputs:\n  - secret: apps/web\n    format: raw\n    path: web/token\n",
    );
    pr.commit(&pr.alice, "web target");
    let (code, text) = pr.check("text");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("targets/web.yaml") && text.contains("format raw needs `key`"),
        "{text}"
    );
}
