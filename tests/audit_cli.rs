//! `sealops audit verify|log|fingerprint` on a real audit branch in a real repository.

use crate::common::{World, git};
use sealops_core::audit::{AuditKeys, AuditLog, Event, Outcome, RecordDraft, append_commit};

const KEY_HEX: &str = "4242424242424242424242424242424242424242424242424242424242424242\
                       0707070707070707070707070707070707070707070707070707070707070707";

/// An audit branch with two sealed batches of controller `c1` (4 records).
fn world_with_trail() -> World {
    let world = World::new();
    git(&world.repo, &["init", "-q", "-b", "main"]);
    let repo = git2::Repository::open(&world.repo).expect("repo");
    let keys = AuditKeys::parse(KEY_HEX).expect("keys");
    let public = keys.public_key();
    let mut log = AuditLog::resume("c1", "node-1", keys, None);
    let mut parent = None;
    let mut chain = None;
    for batch in 0..2 {
        let mut lines = Vec::new();
        for n in 0..2 {
            let mut draft = RecordDraft::new(
                if n == 0 {
                    Event::OutputWritten
                } else {
                    Event::CommitRefused
                },
                if n == 0 {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                },
            );
            draft.path = Some(format!("apps/payments/db{batch}"));
            draft.identity = Some("payments".into());
            lines.push(log.record(draft));
        }
        lines.push(log.seal().expect("seal"));
        let appended = append_commit(&repo, parent, "c1", &public, chain, &lines)
            .expect("commit")
            .expect("new lines");
        parent = Some(appended.commit);
        chain = Some(appended.chain_tree);
    }
    repo.reference(
        "refs/heads/sealops/audit",
        parent.expect("commit"),
        true,
        "test",
    )
    .expect("branch");
    register(&world, &[("c1", &public)]);
    world
}

/// Commits `.sealops/controllers.yaml` with these (controller, key) entries: verify trusts
/// the registry as committed, never an uncommitted edit.
fn register(world: &World, entries: &[(&str, &str)]) {
    let mut text = "sealops: v1\ncontrollers:\n".to_owned();
    for (id, key) in entries {
        text.push_str(&format!("  - id: {id}\n    public_key: {key}\n"));
    }
    std::fs::write(world.repo.join(".sealops/controllers.yaml"), text).expect("registry");
    git(&world.repo, &["add", "-A", ".sealops"]);
    git(&world.repo, &["commit", "-qm", "register audit keys"]);
}

#[test]
fn verify_passes_then_names_an_edited_line() {
    let world = world_with_trail();
    let out = world.stdout(world.sealops().args(["audit", "verify"]));
    assert!(
        out.contains("c1: 4 records, chain and seals intact"),
        "{out}"
    );

    // The same trail without its key registered is a forgery as far as anyone can tell.
    let registry =
        std::fs::read_to_string(world.repo.join(".sealops/controllers.yaml")).expect("registry");
    std::fs::remove_file(world.repo.join(".sealops/controllers.yaml")).expect("rm");
    // Uncommitted, the deletion changes nothing.
    world.stdout(world.sealops().args(["audit", "verify"]));
    git(&world.repo, &["commit", "-qam", "remove the registry"]);
    let out = world
        .sealops()
        .args(["audit", "verify"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not registered for c1") && stdout.contains("missing, so no audit key"),
        "{stdout}"
    );
    std::fs::write(world.repo.join(".sealops/controllers.yaml"), registry).expect("restore");
    git(&world.repo, &["add", "-A", ".sealops"]);
    git(&world.repo, &["commit", "-qm", "restore the registry"]);

    // Edit one byte of the first record on the branch, as a commit on top of it.
    let work = world.dir.path().join("audit-work");
    git(
        world.dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "sealops/audit",
            world.repo.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    let file = std::fs::read_dir(work.join("audit")).expect("ls").count();
    assert!(file > 0);
    let trail = glob_one(&work);
    let text = std::fs::read_to_string(&trail).expect("read");
    std::fs::write(
        &trail,
        text.replacen("apps/payments/db0", "apps/payments/dbX", 1),
    )
    .expect("write");
    git(&work, &["commit", "-qam", "tamper"]);
    git(&work, &["push", "-q", "origin", "sealops/audit"]);
    let out = world
        .sealops()
        .args(["audit", "verify"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BROKEN at audit/") && stdout.contains(".jsonl:2:"),
        "{stdout}"
    );
}

fn glob_one(work: &std::path::Path) -> std::path::PathBuf {
    let mut pending = vec![work.join("audit")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("ls").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                return path;
            }
        }
    }
    panic!("no trail file");
}

#[test]
fn log_filters_by_event_path_and_identity() {
    let world = world_with_trail();
    let out = world.stdout(world.sealops().args([
        "audit",
        "log",
        "--event",
        "commit-refused",
        "--path",
        "apps/payments/db1",
        "-o",
        "json",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("\"seq\":4"), "{out}");
    let all = world.stdout(
        world
            .sealops()
            .args(["audit", "log", "--for-identity", "payments"]),
    );
    assert_eq!(all.lines().count(), 4, "{all}");
    let none =
        world.stdout(
            world
                .sealops()
                .args(["audit", "log", "--since", "2999-01-01T00:00:00Z"]),
        );
    assert!(none.is_empty(), "{none}");
}

#[test]
fn fingerprint_matches_the_library_and_never_prints_the_value() {
    let world = World::new();
    world
        .sealops()
        .args([
            "seal",
            "apps/db",
            "--from-literal",
            "PASSWORD=hunter2-value",
        ])
        .assert()
        .success();
    let key_file = world.dir.path().join("audit.key");
    std::fs::write(&key_file, KEY_HEX).expect("write");
    let out = world.stdout(world.sealops_with_key().args([
        "audit",
        "fingerprint",
        "apps/db",
        "PASSWORD",
        "--audit-key",
        key_file.to_str().unwrap(),
    ]));
    let expected = AuditKeys::parse(KEY_HEX)
        .expect("keys")
        .fingerprints
        .fingerprint("apps/db", "PASSWORD", b"hunter2-value");
    assert_eq!(out.trim(), expected);
    assert!(!out.contains("hunter2"));
}
