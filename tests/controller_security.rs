//! What a repository change can never make the controller do: write outside the allowed
//! output roots, write through a symbolic link, run a command the local configuration does not
//! allow, or materialise a secret for an identity that may not read it. Every case is refused
//! as a whole, a sentinel directory beside the output root stays empty, and no secret value
//! appears in the log, the status document or the metrics.

use std::path::{Path, PathBuf};

use crate::common::controller::kit;
use crate::common::controller::{Fleet, PASSWORD, PAYMENTS_TARGET};

/// A second secret's value, for the cases that reach for another app's secret.
const WEB_TOKEN: &str = "web-Token-4c1d-sentinel";

/// A directory beside the output root that nothing may ever write into.
fn sentinel(fleet: &Fleet) -> PathBuf {
    let dir = fleet.world.dir.path().join("outside");
    std::fs::create_dir_all(&dir).expect("sentinel");
    dir
}

fn assert_empty(dir: &Path) {
    assert_eq!(
        kit::files_below(dir),
        Vec::<PathBuf>::new(),
        "something was written outside the output roots"
    );
}

fn assert_no_secret(what: &str, text: &str) {
    for value in [PASSWORD, WEB_TOKEN] {
        assert!(!text.contains(value), "{what} holds a secret value");
    }
}

/// `once()` refused with `reason`, leaking nothing; returns the refusal.
fn refused(fleet: &Fleet, reason: &str) -> serde_json::Value {
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 1, "{status:#}\n{stderr}");
    assert_no_secret("the log", &stderr);
    assert_no_secret("the status", &status.to_string());
    let found = kit::refusals(&status, reason);
    assert!(!found.is_empty(), "a {reason} refusal: {status:#}");
    found[0].clone()
}

/// A fleet that has applied its first commit; returns it with db.env as written.
fn applied_fleet() -> (Fleet, String) {
    let fleet = kit::single_approver_fleet();
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    let env = fleet.output("payments/db.env").expect("db.env");
    (fleet, env)
}

/// Commits the payments target plus `extra_outputs`, together with a new password, so a
/// refusal that still wrote the allowed outputs would show.
fn commit_payments_with(fleet: &Fleet, extra_outputs: &str) -> String {
    fleet.write(
        "targets/payments.yaml",
        &format!("{PAYMENTS_TARGET}{extra_outputs}"),
    );
    fleet.set("apps/payments/db", "DB_PASSWORD", "next-Value-5e2a");
    fleet.commit("payments target change")
}

fn assert_outputs_unchanged(fleet: &Fleet, env: &str) {
    assert_eq!(fleet.output("payments/db.env").as_deref(), Some(env));
    assert!(
        !fleet
            .output("payments/url")
            .expect("url")
            .contains("next-Value-5e2a")
    );
}

#[test]
fn a_path_with_dot_dot_is_refused() {
    let (fleet, env) = applied_fleet();
    let outside = sentinel(&fleet);
    let commit = commit_payments_with(
        &fleet,
        "  - secret: apps/payments/db\n    format: dotenv\n    path: ../outside/db.env\n",
    );
    let refusal = refused(&fleet, "output");
    assert_eq!(refusal["commit"], commit.as_str());
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains(".."))
    );
    assert_empty(&outside);
    assert_outputs_unchanged(&fleet, &env);
}

#[test]
fn an_absolute_path_outside_the_roots_is_refused() {
    let (fleet, env) = applied_fleet();
    let outside = sentinel(&fleet);
    commit_payments_with(
        &fleet,
        &format!(
            "  - secret: apps/payments/db\n    format: dotenv\n    path: {}\n",
            outside.join("db.env").display()
        ),
    );
    let refusal = refused(&fleet, "output");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("outside every allowed output root")),
        "{refusal:#}"
    );
    assert_empty(&outside);
    assert_outputs_unchanged(&fleet, &env);
}

#[test]
fn a_symlink_planted_at_the_destination_is_not_followed() {
    let fleet = Fleet::new();
    let outside = sentinel(&fleet);
    std::fs::create_dir_all(fleet.out.join("payments")).expect("mkdir");
    let link = fleet.out.join("payments/db.env");
    std::os::unix::fs::symlink(outside.join("db.env"), &link).expect("symlink");

    let refusal = refused(&fleet, "output");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("symbolic link")),
        "{refusal:#}"
    );
    assert_empty(&outside);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("still there")
            .file_type()
            .is_symlink()
    );
    assert_eq!(fleet.output("payments/url"), None, "refused as a whole");
}

#[test]
fn a_symlinked_parent_directory_is_not_followed_by_a_long_running_controller() {
    let fleet = Fleet::new();
    let outside = sentinel(&fleet);
    std::os::unix::fs::symlink(&outside, fleet.out.join("payments")).expect("symlink");

    let mut running = kit::spawn(&fleet, "");
    let status = running.wait_for_status("the refusal", |s| !kit::refusals(s, "output").is_empty());
    assert!(status["applied"].is_null(), "{status:#}");
    let (code, metrics) = running.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sealops_reconcile_failures_total{reason=\"output\"}"),
        "{metrics}"
    );
    assert_no_secret("/metrics", &metrics);
    assert_no_secret("/status", &running.get("/status").1);
    assert_eq!(running.terminate(), 0, "{}", running.log());
    assert_no_secret("the log", &running.log());
    assert_empty(&outside);
}

#[test]
fn removing_a_target_does_not_delete_through_a_symlinked_parent() {
    let (fleet, _) = applied_fleet();
    let outside = sentinel(&fleet);
    let decoy = outside.join("db.env");
    std::fs::write(&decoy, "not the controller's file\n").expect("decoy");
    let payments = fleet.out.join("payments");
    std::fs::remove_dir_all(&payments).expect("rm");
    std::os::unix::fs::symlink(&outside, &payments).expect("symlink");

    std::fs::remove_file(fleet.repo().join("targets/payments.yaml")).expect("rm target");
    fleet.commit("payments no longer runs here");
    let (_, status, stderr) = fleet.once();
    assert!(stderr.contains("not removing"), "{stderr}");
    assert_no_secret("the log", &stderr);
    assert_no_secret("the status", &status.to_string());
    assert_eq!(
        std::fs::read_to_string(&decoy).expect("the decoy survives"),
        "not the controller's file\n"
    );
}

#[test]
fn a_hook_not_on_the_allow_list_refuses_the_commit_and_runs_nothing() {
    let (fleet, env) = applied_fleet();
    let outside = sentinel(&fleet);
    // An allowed hook that would leave a trace: it must not run for a refused commit either.
    fleet.write_config(&format!(
        "hooks:\n  reload:\n    command: [sh, -c, 'echo ran >> {}']\n",
        outside.join("hook-ran").display()
    ));
    let commit = commit_payments_with(
        &fleet,
        "  - secret: apps/payments/db\n    format: json\n    path: payments/db.json\n    on_change: [reload, evil]\n",
    );
    let refusal = refused(&fleet, "hook");
    assert_eq!(refusal["commit"], commit.as_str());
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("evil")),
        "{refusal:#}"
    );
    assert_empty(&outside);
    assert_outputs_unchanged(&fleet, &env);
    assert_eq!(fleet.output("payments/db.json"), None);
}

#[test]
fn a_target_identity_without_read_gets_nothing() {
    let (fleet, env) = applied_fleet();
    let outside = sentinel(&fleet);
    kit::seal(&fleet, "apps/web/env", &[("WEB_TOKEN", WEB_TOKEN)]);
    fleet.write(
        "targets/web.yaml",
        "sealops: v1\nidentity: payments\noutputs:\n  - secret: apps/web/env\n    format: dotenv\n    path: web/env\n",
    );
    let commit = fleet.commit("payments reads the web app's secret");
    let refusal = refused(&fleet, "policy");
    assert_eq!(refusal["commit"], commit.as_str());
    assert_eq!(refusal["path"], "targets/web.yaml");
    assert_empty(&outside);
    assert_eq!(fleet.output("web/env"), None);
    assert_eq!(
        fleet.output("payments/db.env").as_deref(),
        Some(env.as_str())
    );
}

#[test]
fn a_target_cannot_borrow_a_human_identity() {
    let (fleet, _) = applied_fleet();
    let outside = sentinel(&fleet);
    // alice may read everything, but she is a person: targets materialise for services only.
    fleet.write(
        "targets/borrowed.yaml",
        "sealops: v1\nidentity: alice@example.com\noutputs:\n  - secret: apps/payments/db\n    format: dotenv\n    path: borrowed/db.env\n",
    );
    fleet.commit("materialise as alice");
    let refusal = refused(&fleet, "policy");
    assert_eq!(refusal["path"], "targets/borrowed.yaml");
    assert_empty(&outside);
    assert_eq!(fleet.output("borrowed/db.env"), None);
}
