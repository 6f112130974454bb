//! sealops inside git: key-level merges through `git merge`, reviewer diffs through `git diff`,
//! `git-setup` and the pre-commit check, on real repositories.

use crate::common::{World, git, git_with_sealops};
use predicates::prelude::*;

/// A git repository with sealops set up (drivers configured) and one committed manifest.
fn repository() -> World {
    let world = World::new();
    git(&world.repo, &["init", "-q", "-b", "main"]);
    world.sealops().arg("git-setup").assert().success();
    world
        .sealops()
        .args([
            "seal",
            "apps/db",
            "--from-literal",
            "A=1",
            "--from-literal",
            "B=2",
            "--from-literal",
            "C=3",
        ])
        .assert()
        .success();
    git(&world.repo, &["add", "-A"]);
    git(&world.repo, &["commit", "-q", "-m", "seal"]);
    world
}

fn commit_all(world: &World, message: &str) {
    git(&world.repo, &["add", "-A"]);
    git(&world.repo, &["commit", "-q", "-m", message]);
}

#[test]
fn git_setup_is_idempotent() {
    let world = repository();
    world
        .sealops()
        .arg("git-setup")
        .assert()
        .success()
        .stderr(predicate::str::contains("already set up"));
    let attributes =
        std::fs::read_to_string(world.repo.join(".gitattributes")).expect("attributes");
    assert_eq!(
        attributes.matches("merge=sealops").count(),
        1,
        "{attributes}"
    );
    let driver = git(&world.repo, &["config", "--local", "merge.sealops.driver"]);
    assert_eq!(driver.trim(), "sealops merge-driver %O %A %B %P");
    assert_eq!(
        git(&world.repo, &["config", "--local", "diff.sealops.textconv"]).trim(),
        "sealops textconv"
    );
}

#[test]
fn branches_editing_different_keys_merge_cleanly() {
    let world = repository();
    git(&world.repo, &["checkout", "-q", "-b", "feature"]);
    world
        .sealops()
        .args(["set", "apps/db", "A", "feature-a"])
        .assert()
        .success();
    world
        .sealops()
        .args(["unset", "apps/db", "C"])
        .assert()
        .success();
    commit_all(&world, "feature: A, drop C");
    git(&world.repo, &["checkout", "-q", "main"]);
    world
        .sealops()
        .args(["set", "apps/db", "B", "main-b"])
        .assert()
        .success();
    world
        .sealops()
        .args(["set", "apps/db", "D", "main-d"])
        .assert()
        .success();
    commit_all(&world, "main: B, add D");

    let merge = git_with_sealops(&world.repo, &["merge", "-q", "--no-edit", "feature"]);
    assert!(
        merge.status.success(),
        "merge failed: {}",
        String::from_utf8_lossy(&merge.stderr)
    );
    let json = world.stdout(
        world
            .sealops_with_key()
            .args(["reveal", "apps/db", "-o", "json"]),
    );
    let values: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        values,
        serde_json::json!({"A": "feature-a", "B": "main-b", "D": "main-d"})
    );
    world.sealops().arg("verify").assert().success();

    // Without the driver, plain git would have conflicted in the session block.
    let plain = World::new();
    git(&plain.repo, &["init", "-q", "-b", "main"]);
    plain
        .sealops()
        .args([
            "seal",
            "x",
            "--from-literal",
            "A=1",
            "--from-literal",
            "B=2",
        ])
        .assert()
        .success();
    commit_all(&plain, "seal");
    git(&plain.repo, &["checkout", "-q", "-b", "f"]);
    plain
        .sealops()
        .args(["set", "x", "A", "f"])
        .assert()
        .success();
    commit_all(&plain, "f");
    git(&plain.repo, &["checkout", "-q", "main"]);
    plain
        .sealops()
        .args(["set", "x", "B", "m"])
        .assert()
        .success();
    commit_all(&plain, "m");
    let merge = git_with_sealops(&plain.repo, &["merge", "-q", "--no-edit", "f"]);
    assert!(
        !merge.status.success(),
        "expected plain git to conflict without the driver"
    );
}

#[test]
fn the_same_key_changed_on_both_branches_is_reported_per_key() {
    let world = repository();
    git(&world.repo, &["checkout", "-q", "-b", "feature"]);
    world
        .sealops()
        .args(["set", "apps/db", "A", "feature"])
        .assert()
        .success();
    commit_all(&world, "feature");
    git(&world.repo, &["checkout", "-q", "main"]);
    world
        .sealops()
        .args(["set", "apps/db", "A", "main"])
        .assert()
        .success();
    world
        .sealops()
        .args(["set", "apps/db", "B", "main-b"])
        .assert()
        .success();
    commit_all(&world, "main");
    let merge = git_with_sealops(&world.repo, &["merge", "--no-edit", "feature"]);
    assert!(!merge.status.success());
    let stderr = String::from_utf8_lossy(&merge.stderr);
    assert!(
        stderr.contains("secrets/apps/db.yaml: conflict: key A: changed differently on both sides"),
        "{stderr}"
    );
    let text = world.manifest("apps/db");
    assert!(text.contains("<<<<<<< ours\n  A: sealed:v1:"), "{text}");
    assert_eq!(
        text.matches("  B: sealed:v1:").count(),
        1,
        "B merged without conflict"
    );
}

#[test]
fn git_diff_shows_which_keys_changed_and_never_plaintext_without_an_identity() {
    let world = repository();
    world
        .sealops()
        .args(["set", "apps/db", "B", "new-secret-value"])
        .assert()
        .success();
    world
        .sealops()
        .args(["set", "apps/db", "HOST", "db.internal", "--plain"])
        .assert()
        .success();
    let diff = git_with_sealops(&world.repo, &["diff", "--no-color", "-U0"]);
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        !diff.contains("new-secret-value") && !diff.contains("\"2\""),
        "{diff}"
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert!(
        changed.iter().any(|l| l.starts_with("-B = sealed fp:")),
        "{diff}"
    );
    assert!(
        changed.iter().any(|l| l.starts_with("+B = sealed fp:")),
        "{diff}"
    );
    assert!(
        changed.contains(&"+HOST = \"db.internal\" (plain)"),
        "{diff}"
    );
    assert!(
        !changed
            .iter()
            .any(|l| l.contains("A = ") || l.contains("C = ")),
        "unchanged keys stay out: {diff}"
    );

    // With an identity, and the reveal asked for, the reviewer sees values.
    let textconv = format!(
        "sealops textconv --reveal --identity {}",
        world.key.display()
    );
    let revealed = git_with_sealops(
        &world.repo,
        &[
            "-c",
            &format!("diff.sealops.textconv={textconv}"),
            "diff",
            "--no-color",
        ],
    );
    let revealed = String::from_utf8_lossy(&revealed.stdout);
    assert!(
        revealed.contains("+B = \"new-secret-value\"") && revealed.contains("-B = \"2\""),
        "{revealed}"
    );

    // An identity alone, output not a terminal: still no plaintext.
    let quiet = format!("sealops textconv --identity {}", world.key.display());
    let quiet = git_with_sealops(
        &world.repo,
        &[
            "-c",
            &format!("diff.sealops.textconv={quiet}"),
            "diff",
            "--no-color",
        ],
    );
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("new-secret-value"));
}

#[test]
fn precommit_refuses_plaintext_private_keys_and_broken_manifests() {
    let world = repository();
    world.sealops().arg("precommit").assert().success();

    std::fs::copy(&world.key, world.repo.join("oops.key")).expect("copy");
    git(&world.repo, &["add", "oops.key"]);
    world
        .sealops()
        .arg("precommit")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("oops.key: holds a private key"));
    git(&world.repo, &["rm", "-q", "--cached", "oops.key"]);
    std::fs::remove_file(world.repo.join("oops.key")).expect("rm");

    std::fs::write(
        world.repo.join("secrets/leak.yaml"),
        "sealops: v1\npath: leak\ndata:\n  PASSWORD: hunter2\n",
    )
    .expect("write");
    git(&world.repo, &["add", "secrets/leak.yaml"]);
    world.sealops().arg("precommit").assert().code(1).stderr(
        predicate::str::contains("secrets/leak.yaml:4: key PASSWORD: not a sealed value")
            .and(predicate::str::contains("hunter2").not()),
    );
    git(&world.repo, &["rm", "-q", "--cached", "secrets/leak.yaml"]);
    std::fs::remove_file(world.repo.join("secrets/leak.yaml")).expect("rm");

    std::fs::write(world.repo.join("secrets/db.env"), "PASSWORD=hunter2\n").expect("write");
    git(&world.repo, &["add", "secrets/db.env"]);
    world
        .sealops()
        .arg("precommit")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "secrets/db.env: only sealed manifests (*.yaml) belong under secrets/",
        ));
    git(&world.repo, &["rm", "-q", "--cached", "secrets/db.env"]);
    std::fs::remove_file(world.repo.join("secrets/db.env")).expect("rm");

    world
        .sealops()
        .args(["set", "apps/db", "E", "5"])
        .assert()
        .success();
    git(&world.repo, &["add", "-A"]);
    world.sealops().arg("precommit").assert().success();
}
