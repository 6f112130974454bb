//! Commit signature verification throughput: verifies a 1,000-commit range of SSH-signed
//! commits in process and prints commits per second (plus `git verify-commit` on a sample, for
//! scale). Run with `cargo bench -p sealops-core --bench signing_verify`.

use std::process::Command;
use std::time::{Duration, Instant};

use git2::{Oid, Repository, Signature, Time};
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::commit::verify_range;
use sealops_core::signing::sshsig::SigningKey;

const COMMITS: usize = 1_000;
const ROUNDS: usize = 5;
const GIT_SAMPLE: usize = 50;
/// Other signers in the file, so that the key lookup is not trivially the first line.
const OTHER_SIGNERS: usize = 50;

fn keygen(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    (
        private,
        public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A chain of `COMMITS` signed commits, each changing one file, signed in process (namespace
/// `git`, as `git commit -S` would).
fn build_history(repo: &Repository, key: &SigningKey) -> (Oid, Oid) {
    let mut parent: Option<git2::Commit<'_>> = None;
    let mut first = None;
    let mut last = None;
    // One commit before the range so that `first..last` holds exactly COMMITS commits.
    for i in 0..=COMMITS {
        let blob = repo.blob(format!("value {i}\n").as_bytes()).unwrap();
        let mut tree = repo.treebuilder(None).unwrap();
        tree.insert("secret.yaml", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
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
        let signature = key.sign("git", buffer.as_bytes()).unwrap();
        let oid = repo.commit_signed(&buffer, &signature, None).unwrap();
        if i == 0 {
            first = Some(oid);
        }
        last = Some(oid);
        parent = Some(repo.find_commit(oid).unwrap());
    }
    repo.reference("refs/heads/main", last.unwrap(), true, "bench")
        .unwrap();
    (first.unwrap(), last.unwrap())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let (private, public) = keygen(dir.path(), "signer");
    let mut allowed = String::new();
    for i in 0..OTHER_SIGNERS {
        let (_, other) = keygen(dir.path(), &format!("other{i}"));
        allowed.push_str(&format!("other{i}@example.com {other}\n"));
    }
    allowed.push_str(&format!(
        "signer@example.com namespaces=\"git\",valid-after=\"20240101Z\" {public}\n"
    ));
    let signers_path = dir.path().join("allowed_signers");
    std::fs::write(&signers_path, &allowed).unwrap();
    let signers = AllowedSigners::load(&signers_path).unwrap();
    let key = SigningKey::load(&private).unwrap();

    let repo = Repository::init(dir.path().join("repo")).unwrap();
    let started = Instant::now();
    let (first, last) = build_history(&repo, &key);
    let built = started.elapsed();
    println!(
        "signing_verify: built {COMMITS} signed commits in {:.2?} ({:.0} commits/s signed)",
        built,
        per_second(COMMITS, built)
    );

    let range = format!("{first}..{last}");
    let mut best = Duration::MAX;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let verdicts = verify_range(&repo, &range, &signers).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(verdicts.len(), COMMITS);
        assert!(
            verdicts.iter().all(|(_, v)| v.signed_by().is_some()),
            "every commit verifies"
        );
        println!(
            "signing_verify: round {round}: verified {COMMITS} commits in {:.2?} ({:.0} commits/s)",
            elapsed,
            per_second(COMMITS, elapsed)
        );
        best = best.min(elapsed);
    }
    println!(
        "signing_verify: best of {ROUNDS}: {:.0} commits/s in process ({:.1} µs/commit)",
        per_second(COMMITS, best),
        best.as_secs_f64() * 1e6 / COMMITS as f64
    );

    // For scale: git verify-commit (one ssh-keygen process per commit) on a sample.
    let workdir = dir.path().join("repo");
    let signers_arg = format!("gpg.ssh.allowedSignersFile={}", signers_path.display());
    let sample: Vec<Oid> = verify_range(&repo, &range, &signers)
        .unwrap()
        .into_iter()
        .take(GIT_SAMPLE)
        .map(|(oid, _)| oid)
        .collect();
    let started = Instant::now();
    for oid in &sample {
        let status = Command::new("git")
            .args([
                "-c",
                "gpg.format=ssh",
                "-c",
                &signers_arg,
                "verify-commit",
                &oid.to_string(),
            ])
            .current_dir(&workdir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("TZ", "UTC")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git verify-commit {oid}");
    }
    let elapsed = started.elapsed();
    println!(
        "signing_verify: git verify-commit: {GIT_SAMPLE} commits in {:.2?} ({:.0} commits/s)",
        elapsed,
        per_second(GIT_SAMPLE, elapsed)
    );
}
