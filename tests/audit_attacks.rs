//! Attacks on the audit trail by someone with push access to the audit branch, end to end: the
//! real binaries, a real repository. Each attack is detected by `sealops audit verify` (with a
//! witness where the attack is a clean cut) and by the running controller, which puts back what
//! the branch lost; and a controller whose state was lost continues under a new, registered key.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::controller::{Fleet, kit};
use crate::common::{commit_signed, git};
use sealops_core::audit::{AuditKeys, AuditLog, Event, Outcome, RecordDraft, append_commit};

fn once(fleet: &Fleet) -> serde_json::Value {
    let (code, status, log) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{log}");
    status
}

/// `sealops audit verify [--witness FILE]`: (exit code, output).
fn verify(fleet: &Fleet, witness: Option<&Path>) -> (i32, String) {
    let mut command = fleet.world.sealops();
    command.args(["audit", "verify"]);
    if let Some(witness) = witness {
        command.arg("--witness").arg(witness);
    }
    let out = command.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Saves the controller's `/status` document, which holds its witness seal.
fn save_status(fleet: &Fleet, status: &serde_json::Value, name: &str) -> PathBuf {
    let path = fleet.world.dir.path().join(name);
    std::fs::write(&path, serde_json::to_string(status).expect("json")).expect("write");
    assert!(status["audit"]["witness"]["seal"].is_object(), "{status:#}");
    path
}

/// The attacker: a clone of the audit branch, changed by `change`, force-pushed back.
fn tamper(fleet: &Fleet, what: &str, change: impl FnOnce(&Path)) {
    let work = fleet
        .world
        .dir
        .path()
        .join(format!("attack-{}", what.replace(' ', "-")));
    git(
        fleet.world.dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "sealops/audit",
            fleet.repo().to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    change(&work);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", what, "--allow-empty"]);
    git(&work, &["push", "-qf", "origin", "HEAD:sealops/audit"]);
}

/// This controller's chain directories on the branch (`audit/trails/<id>/<key-id>`).
fn chain_dirs(fleet: &Fleet) -> Vec<String> {
    let mut dirs: Vec<String> = git(
        fleet.repo(),
        &["ls-tree", "-r", "--name-only", "sealops/audit"],
    )
    .lines()
    .filter(|f| f.ends_with("/key.pub"))
    .map(|f| f.trim_end_matches("/key.pub").to_owned())
    .collect();
    dirs.sort();
    dirs
}

/// Every record's seq on the branch, per chain directory, in file order.
fn records_on_branch(fleet: &Fleet, dir: &str) -> Vec<u64> {
    let mut files: Vec<String> = git(
        fleet.repo(),
        &["ls-tree", "-r", "--name-only", "sealops/audit"],
    )
    .lines()
    .filter(|f| f.starts_with(dir) && f.ends_with(".jsonl"))
    .map(str::to_owned)
    .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            git(fleet.repo(), &["show", &format!("sealops/audit:{f}")])
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// A fleet whose controller pushed two batches (two runs, a change between them).
fn fleet_with_two_pushes() -> (Fleet, serde_json::Value) {
    let fleet = kit::single_approver_fleet();
    once(&fleet);
    fleet.set("apps/payments/db", "DB_PASSWORD", "second-push-Value-1");
    fleet.commit("a second batch");
    let status = once(&fleet);
    assert_eq!(status["audit"]["state"], "ok", "{status:#}");
    assert_eq!(status["audit"]["key_registered"], true, "{status:#}");
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 0, "{out}");
    (fleet, status)
}

#[test]
fn a_clean_cut_passes_verify_alone_is_caught_by_a_witness_and_restored_by_the_controller() {
    let (fleet, status) = fleet_with_two_pushes();
    let witness = save_status(&fleet, &status, "witness.json");
    let dir = chain_dirs(&fleet).pop().expect("a chain");
    let before = records_on_branch(&fleet, &dir);

    // Drop the last batch file and set the head back to the seal before it: a valid trail
    // that merely ends earlier.
    tamper(&fleet, "clean cut", |work| {
        let mut files: Vec<PathBuf> = common::controller::kit::files_below(&work.join(&dir))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        let last = files.pop().expect("a batch");
        std::fs::remove_file(&last).expect("rm");
        let earlier =
            std::fs::read_to_string(files.last().expect("an earlier batch")).expect("read");
        let seal = earlier.lines().last().expect("a seal").to_owned();
        std::fs::write(work.join(&dir).join("head.json"), seal + "\n").expect("head");
    });
    let (code, out) = verify(&fleet, None);
    assert_eq!(
        code, 0,
        "without a witness a clean cut is a shorter valid trail: {out}"
    );
    let (code, out) = verify(&fleet, Some(&witness));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("was cut"), "{out}");

    // The controller notices before its next push and pushes back what the branch lost.
    let status = once(&fleet);
    assert_eq!(status["audit"]["state"], "tampered", "{status:#}");
    let findings = status["audit"]["tampering"].to_string();
    assert!(findings.contains("was cut back to record"), "{findings}");
    let after = records_on_branch(&fleet, &dir);
    assert!(
        after.starts_with(&before) && after.len() > before.len(),
        "{before:?} → {after:?}"
    );
    assert_eq!(after, (1..=after.len() as u64).collect::<Vec<_>>());
    let (code, out) = verify(&fleet, Some(&witness));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reaches its witness"), "{out}");
}

#[test]
fn deleting_the_audit_tree_is_named_and_the_controller_restores_it() {
    let (fleet, _) = fleet_with_two_pushes();
    let dir = chain_dirs(&fleet).pop().expect("a chain");
    let before = records_on_branch(&fleet, &dir);
    tamper(&fleet, "delete audit", |work| {
        std::fs::remove_dir_all(work.join("audit")).expect("rm");
    });
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no trail"), "{out}");

    let status = once(&fleet);
    assert_eq!(status["audit"]["state"], "tampered", "{status:#}");
    assert!(
        status["audit"]["tampering"]
            .to_string()
            .contains("was deleted"),
        "{status:#}"
    );
    let after = records_on_branch(&fleet, &dir);
    assert!(
        after.starts_with(&before) && after.len() > before.len(),
        "{before:?} → {after:?}"
    );
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 0, "{out}");
}

/// Found by a red team: verify trusted whatever registry the checkout held, so deleting the
/// trail and committing an empty registry (signed, never approved; the controller refuses
/// the commit) passed. Verify reads the registry as committed, says when its approvals were
/// not checked, and with `--base` (the protected branch) refuses a registry whose history is
/// not authorised.
#[test]
fn an_unapproved_registry_change_does_not_make_a_deleted_trail_pass() {
    let (fleet, _) = fleet_with_two_pushes();
    let anchor = fleet.anchor.borrow().clone();
    let with_base = |fleet: &Fleet| {
        let out = fleet
            .world
            .sealops()
            .args(["audit", "verify", "--base", &anchor, "--trusted-signers"])
            .arg(&fleet.signers)
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = with_base(&fleet);
    assert_eq!(code, 0, "an authorised history passes: {out}");

    tamper(&fleet, "delete audit", |work| {
        std::fs::remove_dir_all(work.join("audit")).expect("rm");
    });
    std::fs::write(
        fleet.repo().join(".sealops/controllers.yaml"),
        "sealops: v1\ncontrollers: []\n",
    )
    .expect("write");
    // A trusted signer without the capability: her commit needs approvals it does not have.
    let mallory = kit::trusted_signer(&fleet, "mallory@example.com");
    kit::commit_as(&fleet, &mallory, "forget the controllers");

    let (code, out) = verify(&fleet, None);
    assert!(
        out.contains("approved is not checked"),
        "without --base verify says what it took on trust ({code}): {out}"
    );
    let (code, out) = with_base(&fleet);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not trusted"), "{out}");

    // An uncommitted edit of the registry is never read.
    std::fs::write(
        fleet.repo().join(".sealops/controllers.yaml"),
        "sealops: v1\ncontrollers: [\n",
    )
    .expect("write");
    let (code, out) = with_base(&fleet);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not trusted"), "{out}");
}

/// A trail sealed by the attacker's own key: under the real controller's name (its real trail
/// removed) and under a controller that does not exist.
#[test]
fn a_trail_under_a_fresh_key_or_an_invented_controller_is_refused() {
    let (fleet, status) = fleet_with_two_pushes();
    let id = status["audit"]["witness"]["seal"]["controller"]
        .as_str()
        .expect("controller id")
        .to_owned();
    let real = chain_dirs(&fleet).pop().expect("a chain");
    let repo = git2::Repository::open(fleet.repo()).expect("repo");
    let mut tip = repo
        .find_reference("refs/heads/sealops/audit")
        .and_then(|r| r.peel_to_commit())
        .expect("tip")
        .id();
    for name in [id.as_str(), "ghost-node"] {
        let keys = AuditKeys::parse(&format!("{:0>128}", name.len())).expect("keys");
        let public = keys.public_key();
        let mut log = AuditLog::resume(name, name, keys, None);
        let lines = vec![
            log.record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok)),
            log.seal().expect("seal"),
        ];
        tip = append_commit(&repo, Some(tip), name, &public, None, &lines)
            .expect("commit")
            .expect("new")
            .commit;
    }
    repo.reference("refs/heads/sealops/audit", tip, true, "attack")
        .expect("branch");
    tamper(&fleet, "remove the real trail", |work| {
        std::fs::remove_dir_all(work.join(&real)).expect("rm");
    });
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not registered for ghost-node"), "{out}");
    assert!(out.contains(&format!("not registered for {id}")), "{out}");
    assert!(out.contains("has no trail"), "{out}");

    // The controller reports both and restores its own trail; the forgeries stay named.
    let status = once(&fleet);
    let findings = status["audit"]["tampering"].to_string();
    assert!(findings.contains("was deleted"), "{findings}");
    assert!(findings.contains("not registered for it"), "{findings}");
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains("has no trail"),
        "the real trail is back: {out}"
    );
    assert!(
        out.contains(&format!("{id}: ")) && out.contains("chain and seals intact"),
        "{out}"
    );
}

/// An unsigned head claiming a huge last record must not make the controller skip records.
#[test]
fn a_forged_head_with_a_huge_last_seq_loses_no_record() {
    let (fleet, _) = fleet_with_two_pushes();
    let dir = chain_dirs(&fleet).pop().expect("a chain");
    tamper(&fleet, "huge head", |work| {
        let head = work.join(&dir).join("head.json");
        let text = std::fs::read_to_string(&head).expect("head");
        let mut seal: serde_json::Value = serde_json::from_str(&text).expect("seal");
        seal["seal"]["last_seq"] = serde_json::json!(1_000_000_000u64);
        std::fs::write(&head, seal.to_string() + "\n").expect("write");
    });
    let journal =
        std::fs::read_to_string(fleet.state.join("audit-journal.jsonl")).unwrap_or_default();
    assert!(
        journal.lines().count() <= 1,
        "only the anchor seal waits: {journal}"
    );

    fleet.set("apps/payments/db", "DB_PASSWORD", "after-forgery-Value-2");
    fleet.commit("after the forged head");
    let status = once(&fleet);
    assert_eq!(status["audit"]["records_waiting"], 0, "{status:#}");
    let findings = status["audit"]["tampering"].to_string();
    assert!(findings.contains("did not write"), "{findings}");
    let sealed = status["audit"]["sealed_records"].as_u64().expect("sealed");
    let on_branch = records_on_branch(&fleet, &dir);
    assert_eq!(
        on_branch,
        (1..=sealed).collect::<Vec<_>>(),
        "every journalled record is on the branch"
    );
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 0, "{out}");
}

/// `audit.on_tamper: block`: a running controller that finds tampering fails /readyz, and the
/// metric says so.
#[test]
fn tampering_fails_readiness_when_configured_to_block() {
    let (fleet, _) = fleet_with_two_pushes();
    let dir = chain_dirs(&fleet).pop().expect("a chain");
    let mut running = kit::spawn(
        &fleet,
        "audit:\n  on_tamper: block\n  push_interval: 200ms\n",
    );
    running.wait_for_status("the first reconcile", |s| s["last_reconcile"].is_object());
    assert_eq!(running.get("/readyz").0, 200);
    tamper(&fleet, "cut while running", |work| {
        std::fs::remove_dir_all(work.join(&dir)).expect("rm");
    });
    running.wait_for_status("the tampering alarm", |s| s["audit"]["state"] == "tampered");
    let (code, body) = running.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("tampered"), "{body}");
    let (_, metrics) = running.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sealops_audit_tampered ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(running.log().contains("the audit branch was tampered with"));
    running.terminate();
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 0, "restored: {out}");
}

/// The state directory is lost: the controller starts again with a new key (a new chain beside
/// the old one). Until an approved change registers that key, verify names it; once it is
/// registered (and the old key retired), both chains verify.
#[test]
fn a_controller_that_lost_its_state_continues_under_a_newly_registered_key() {
    let (fleet, _) = fleet_with_two_pushes();
    std::fs::remove_dir_all(&fleet.state).expect("rm state");
    let status = once(&fleet);
    assert_eq!(status["audit"]["key_registered"], false, "{status:#}");
    assert!(
        status["audit"]["registration_problem"]
            .to_string()
            .contains("sealops-controller audit-key"),
        "{status:#}"
    );
    assert_eq!(
        status["audit"]["records_waiting"], 0,
        "pushed regardless: {status:#}"
    );
    assert_eq!(
        chain_dirs(&fleet).len(),
        2,
        "a second chain beside the first"
    );
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a key not registered"), "{out}");

    // The operator registers the new key and retires the old one, as an authorised commit.
    let printed = fleet
        .controller()
        .args(["audit-key", "--config"])
        .arg(&fleet.config)
        .output()
        .expect("audit-key");
    assert!(printed.status.success());
    let entry = String::from_utf8_lossy(&printed.stdout).into_owned();
    let registry = fleet.repo().join(".sealops/controllers.yaml");
    let old = std::fs::read_to_string(&registry).expect("registry");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    std::fs::write(
        &registry,
        format!("{}\n    valid_until: {now}\n{entry}", old.trim_end()) + "\n",
    )
    .expect("write");
    commit_signed(
        fleet.repo(),
        &fleet.alice,
        "register the new audit key of the controller",
    );
    let status = once(&fleet);
    assert_eq!(status["audit"]["key_registered"], true, "{status:#}");
    let (code, out) = verify(&fleet, None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("chain and seals intact").count(), 2, "{out}");
}
