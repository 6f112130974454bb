//! Range authorisation throughput: judges a 1,000-commit range (each commit signed in process,
//! each changing a secret manifest that the signer's policy must allow; every 10th a `--no-ff`
//! merge of a one-commit side branch that changed its own secret while main moved on, so 100
//! merges; 10 approved policy changes) and prints commits per second.
//! Run with `cargo bench -p sealops-core --bench authz_range`.

use std::process::Command;
use std::time::{Duration, Instant};

use git2::{Oid, Repository, Signature, Time, Tree};
use sealops_core::authz::{Bootstrap, Clock, authorise_range};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
use sealops_core::signing::sshsig::SigningKey;

const REPOSITORY_ID: &str = "0123456789abcdef0123456789abcdef";

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

/// Upserts `path` with `text` in `files`.
fn put(files: &mut Vec<(String, String)>, path: String, text: String) {
    files.retain(|(p, _)| *p != path);
    files.push((path, text));
}

fn secret(name: &str, revision: usize) -> (String, String) {
    let mut manifest = Manifest::new(
        SecretPath::parse(&format!("apps/{name}")).unwrap(),
        Scope::Strict,
    );
    manifest
        .plain
        .insert("REVISION".into(), revision.to_string());
    (format!("secrets/apps/{name}.yaml"), manifest.to_yaml())
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
        (
            ".sealops/config.yaml".into(),
            format!("sealops: v1\nrepository_id: {REPOSITORY_ID}\n"),
        ),
        (".sealops/allowed_signers".into(), signers_text.clone()),
    ];
    let started = Instant::now();
    // Signs a commit of `files` with `parents` at time `i`.
    let commit = |files: &[(String, String)], parents: &[Oid], i: usize| -> Oid {
        let tree = tree_of(&repo, files);
        let who = Signature::new(
            "Bench",
            "bench@example.com",
            &Time::new(1_718_000_000 + i as i64, 0),
        )
        .unwrap();
        let parents: Vec<git2::Commit<'_>> = parents
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let buffer = repo
            .commit_create_buffer(&who, &who, &format!("change {i}\n"), &tree, &parents)
            .unwrap();
        let buffer = std::str::from_utf8(&buffer).unwrap().to_owned();
        let signature = alice.sign("git", buffer.as_bytes()).unwrap();
        repo.commit_signed(&buffer, &signature, None).unwrap()
    };
    let base = commit(&files, &[], 0);
    let mut head = base;
    // The open side branch: its commit and the file it changed.
    let mut side: Option<(Oid, (String, String))> = None;
    let (mut policy_changes, mut merges) = (0, 0);
    for i in 1..=COMMITS {
        match i % 10 {
            // A short side branch from main's head changes its own secret...
            7 => {
                let change = secret(&format!("side{}", i % 50), i);
                let mut side_files = files.clone();
                put(&mut side_files, change.0.clone(), change.1.clone());
                side = Some((commit(&side_files, &[head], i), change));
                continue;
            }
            // ... while main moves on; then it is merged with `--no-ff`.
            0 => {
                let (side_head, (path, text)) = side.take().expect("a side branch is open");
                put(&mut files, path, text);
                head = commit(&files, &[head, side_head], i);
                merges += 1;
                continue;
            }
            _ => {}
        }
        if i % 100 == 55 {
            // A governed change, approved by bob over its exact content.
            let policy = format!("{ADMIN}# revision {i}\n");
            let statement = ApprovalStatement::new(
                REPOSITORY_ID,
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
            let (path, text) = secret(&format!("s{}", i % 50), i);
            put(&mut files, path, text);
        }
        head = commit(&files, &[head], i);
    }
    println!(
        "authz_range: built {COMMITS} signed commits ({merges} merges, {policy_changes} approved policy changes) in {:.2?}",
        started.elapsed()
    );
    let bootstrap = Bootstrap {
        signers,
        pinned_principals: None,
        clock: Clock::at(1_718_000_000 + 86_400),
    };
    let mut best = Duration::MAX;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let report = authorise_range(&repo, base, head, &bootstrap).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.commits.len(), COMMITS);
        assert_eq!(
            report
                .commits
                .iter()
                .filter(|c| c.parents.len() == 2)
                .count(),
            merges
        );
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
