//! Minimal diffs on a real git repository: one value, one line.

use crate::common::{World, git};

fn changed_lines(world: &World) -> (Vec<String>, Vec<String>) {
    let diff = git(
        &world.repo,
        &["diff", "--unified=0", "--no-color", "--", "secrets/"],
    );
    let added = diff
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| l[1..].to_owned())
        .collect();
    let removed = diff
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .map(|l| l[1..].to_owned())
        .collect();
    (added, removed)
}

/// A committed manifest of three values, sealed by an identity holder (`admin`) or not.
fn committed_world_sealed_by(admin: bool) -> World {
    let world = World::new();
    git(&world.repo, &["init", "-q", "-b", "main"]);
    let mut seal = if admin {
        world.sealops_with_key()
    } else {
        world.sealops()
    };
    seal.args([
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

fn committed_world() -> World {
    committed_world_sealed_by(false)
}

/// Whether a diff line belongs to a session entry (its id, recipients, or armored key).
fn is_session_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    indent >= 4 || (indent == 2 && trimmed.len() == 13 && trimmed.ends_with(':'))
}

#[test]
fn set_with_an_identity_changes_exactly_one_line() {
    let world = committed_world_sealed_by(true);
    world
        .sealops_with_key()
        .args(["set", "apps/db", "B", "two"])
        .assert()
        .success();
    let (added, removed) = changed_lines(&world);
    assert_eq!(added.len(), 1, "added: {added:?}");
    assert_eq!(removed.len(), 1, "removed: {removed:?}");
    assert!(added[0].starts_with("  B: sealed:v1:") && removed[0].starts_with("  B: sealed:v1:"));
}

#[test]
fn set_without_an_identity_adds_one_line_and_one_session_entry() {
    let world = committed_world();
    world
        .sealops()
        .args(["set", "apps/db", "B", "two"])
        .assert()
        .success();
    let (added, removed) = changed_lines(&world);
    assert_eq!(removed.len(), 1, "removed: {removed:?}");
    assert!(removed[0].starts_with("  B: sealed:v1:"));
    let value_lines: Vec<&String> = added.iter().filter(|l| l.contains("sealed:v1:")).collect();
    assert_eq!(value_lines.len(), 1, "{added:?}");
    assert!(
        added
            .iter()
            .filter(|l| !l.contains("sealed:v1:"))
            .all(|l| is_session_line(l)),
        "only a session entry may be added besides the value: {added:?}"
    );
}

#[test]
fn rewrap_changes_only_session_entries() {
    let world = committed_world();
    let laptop = world.dir.path().join("laptop.key");
    let public = world.stdout(world.sealops().args(["keygen", "-o"]).arg(&laptop));
    world
        .sealops()
        .args(["recipients", "add", public.trim()])
        .assert()
        .success();
    world
        .sealops_with_key()
        .args(["rewrap", "--all"])
        .assert()
        .success();
    let (added, removed) = changed_lines(&world);
    assert!(!added.is_empty());
    for line in added.iter().chain(&removed) {
        assert!(
            is_session_line(line),
            "rewrap touched a non-session line: {line:?}"
        );
        assert!(
            !line.contains("sealed:v1:"),
            "rewrap touched a value: {line:?}"
        );
    }
}

#[test]
fn unset_removes_one_line() {
    let world = committed_world();
    world
        .sealops()
        .args(["unset", "apps/db", "C"])
        .assert()
        .success();
    let (added, removed) = changed_lines(&world);
    assert!(added.is_empty(), "{added:?}");
    assert_eq!(removed.len(), 1);
    assert!(removed[0].starts_with("  C: sealed:v1:"));
}

#[test]
fn a_session_nobody_endorsed_is_never_reused() {
    // Anyone can add a session whose key they know; an identity holder's new value must not
    // land under it, so a session sealed without an identity gets a new one next to it.
    let world = committed_world_sealed_by(false);
    world
        .sealops_with_key()
        .args(["set", "apps/db", "B", "two"])
        .assert()
        .success();
    let (added, removed) = changed_lines(&world);
    assert_eq!(removed.len(), 1, "removed: {removed:?}");
    assert!(
        added.iter().any(|l| l.starts_with("    endorsement: ")),
        "{added:?}"
    );
    let text = world.manifest("apps/db");
    let b_session = text
        .lines()
        .find(|l| l.starts_with("  B: "))
        .expect("B")
        .split(':')
        .nth(3)
        .expect("session");
    let a_session = text
        .lines()
        .find(|l| l.starts_with("  A: "))
        .expect("A")
        .split(':')
        .nth(3)
        .expect("session");
    assert_ne!(a_session, b_session);
}
