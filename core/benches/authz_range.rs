//! Range authorisation throughput: judges a 1,000-commit range (each commit signed in process,
//! each changing a secret manifest that the signer's policy must allow, every 100th a policy
//! change with approvals) and prints commits per second.
//! Run with `cargo bench -p sealops-core --bench authz_range`.

use std::process::Command;
use std::time::{Duration, Instant};

use git2::{Oid, Repository, Signature, Time, Tree};
use sealops_core::authz::{Bootstrap, authorise_range};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
use sealops_core::signing::sshsig::SigningKey;

const COMMITS: usize = 1_000;
const ROUNDS: usize = 3;
const ADMIN: &str = "path \"sys/*\" {\n  capabilities = [\"sudo\"]\n}\npath \"secrets/*\" {\n  capabilities = [\"create\", \"update\"]\n}\n";

fn keygen(dir: &std::path::Path, name: &str) -> (SigningKey, String) {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    (SigningKey::load(&private).unwrap(), public)
}

/// A tree holding `files` (paths with `/`), built through the index of an in-memory builder.
fn tree_of<'r>(repo: &'r Repository, files: &[(String, String)]) -> Tree<'r> {
    let mut index = git2::Index::new().unwrap();
    for (path, text) in files {
        let blob = repo.blob(text.as_bytes()).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: text.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: path.clone().into_bytes(),
        };
        index.add(&entry).unwrap();
    }
    repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap()
}

fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let (alice, alice_pub) = keygen(dir.path(), "alice");
    let (bob, bob_pub) = keygen(dir.path(), "bob");
    let signers_text = format!("alice@example.com {alice_pub}\nbob@example.com {bob_pub}\n");
    let signers = AllowedSigners::parse(&signers_text, "bootstrap").unwrap();
    let repo = Repository::init(dir.path().join("repo")).unwrap();

    let mut files: Vec<(String, String)> = vec![
        ("policies/admin.hcl".into(), ADMIN.into()),
        (
            "identities/alice.yaml".into(),
            "sealops: v1\nname: alice@example.com\nkind: human\npolicies: [admin]\n".into(),
        ),
        (
            "identities/bob.yaml".into(),
            "sealops: v1\nname: bob@example.com\nkind: human\npolicies: [admin]\n".into(),
        ),
        (".sealops/allowed_signers".into(), signers_text.clone()),
    ];
    let started = Instant::now();
    let mut parent: Option<git2::Commit<'_>> = None;
    let mut base = None;
    let mut head = None;
    let mut policy_changes = 0;
    for i in 0..=COMMITS {
        if i > 0 && i % 100 == 0 {
            // A governed change, approved by bob over its exact content.
            let policy = format!("{ADMIN}# revision {i}\n");
            let statement = ApprovalStatement::new(
                "bob@example.com",
                1_718_000_000,
                [(
                    "policies/admin.hcl".to_owned(),
                    ApprovedContent::of_bytes(policy.as_bytes()),
                )],
            )
            .unwrap();
            let signed = statement.sign(&bob).unwrap();
            files[0].1 = policy;
            files.push((signed.repo_path(), signed.contents));
            policy_changes += 1;
        } else {
            let mut manifest = Manifest::new(
                SecretPath::parse(&format!("apps/s{}", i % 50)).unwrap(),
                Scope::Strict,
            );
            manifest.plain.insert("REVISION".into(), i.to_string());
            let path = format!("secrets/apps/s{}.yaml", i % 50);
            files.retain(|(p, _)| *p != path);
            files.push((path, manifest.to_yaml()));
        }
        let tree = tree_of(&repo, &files);
        let who = Signature::new(
            "Bench",
            "bench@example.com",
            &Time::new(1_718_000_000 + i as i64, 0),
        )
        .unwrap();
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let buffer = repo
            .commit_create_buffer(&who, &who, &format!("change {i}\n"), &tree, &parents)
            .unwrap();
        let buffer = std::str::from_utf8(&buffer).unwrap().to_owned();
        let signature = alice.sign("git", buffer.as_bytes()).unwrap();
        let oid: Oid = repo.commit_signed(&buffer, &signature, None).unwrap();
        if i == 0 {
            base = Some(oid);
        }
        head = Some(oid);
        parent = Some(repo.find_commit(oid).unwrap());
    }
    let (base, head) = (base.unwrap(), head.unwrap());
    println!(
        "authz_range: built {COMMITS} signed commits ({policy_changes} approved policy changes) in {:.2?}",
        started.elapsed()
    );
    let bootstrap = Bootstrap {
        signers,
        pinned_principals: None,
    };
    let mut best = Duration::MAX;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let report = authorise_range(&repo, base, head, &bootstrap).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.commits.len(), COMMITS);
        assert!(report.is_authorised(), "{:?}", report.violations().next());
        println!(
            "authz_range: round {round}: judged {COMMITS} commits in {:.2?} ({:.0} commits/s)",
            elapsed,
            COMMITS as f64 / elapsed.as_secs_f64()
        );
        best = best.min(elapsed);
    }
    println!(
        "authz_range: best of {ROUNDS}: {:.0} commits/s ({:.1} µs/commit)",
        COMMITS as f64 / best.as_secs_f64(),
        best.as_secs_f64() * 1e6 / COMMITS as f64
    );
}
