//! The controller on a local repository, end to end with the real binaries.

use crate::common;

use crate::common::controller::{Fleet, PASSWORD};

#[test]
fn a_signed_commit_is_materialised_with_content_and_mode() {
    let fleet = Fleet::new();
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    let env = fleet.output("payments/db.env").expect("db.env written");
    assert!(env.contains(&format!("DB_PASSWORD='{PASSWORD}'")), "{env}");
    assert_eq!(
        fleet.output("payments/url").expect("url written"),
        format!("postgres://payments:{PASSWORD}@db.internal/payments")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(fleet.out.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("payments/db.env"), 0o640);
    assert_eq!(mode("payments/url"), 0o600);
    assert_eq!(status["targets"]["payments"]["state"], "in-sync");
    assert!(!stderr.contains(PASSWORD), "the log holds the secret");
    assert!(!status.to_string().contains(PASSWORD));
}

use crate::common::controller::PAYMENTS_TARGET;
use crate::common::controller::kit::{self, Running};

/// What a reconcile must never reveal: the secret values a test put in the repository.
fn assert_no_values(what: &str, text: &str, values: &[&str]) {
    for value in values {
        assert!(!text.contains(value), "{what} holds a secret value");
    }
}

/// `once()` that must end in sync; returns the status document.
fn once_in_sync(fleet: &Fleet) -> serde_json::Value {
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    assert_no_values("the log", &stderr, &[PASSWORD]);
    status
}

/// `once()` that must refuse with `reason`; returns the status document and its first refusal.
fn once_refused(
    fleet: &Fleet,
    reason: &str,
    values: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 1, "{status:#}\n{stderr}");
    let found = kit::refusals(&status, reason);
    assert!(!found.is_empty(), "a {reason} refusal: {status:#}");
    let refusal = found[0].clone();
    assert_no_values("the log", &stderr, values);
    assert_no_values("the status", &status.to_string(), values);
    (status, refusal)
}

fn password_line(value: &str) -> String {
    format!("DB_PASSWORD='{value}'")
}

fn db_env(fleet: &Fleet) -> String {
    fleet.output("payments/db.env").expect("db.env exists")
}

#[test]
fn an_unsigned_commit_is_refused_until_a_signed_revert_and_then_later_changes_apply() {
    let fleet = Fleet::new();
    once_in_sync(&fleet);
    let original = (db_env(&fleet), fleet.output("payments/url"));

    fleet.set("apps/payments/db", "DB_PASSWORD", "unsigned-Value-91");
    let unsigned = fleet.commit_unsigned("rotate the password without signing");
    let (status, refusal) = once_refused(&fleet, "verification", &[PASSWORD, "unsigned-Value-91"]);
    assert_eq!(refusal["commit"], unsigned.as_str(), "{status:#}");
    assert_eq!((db_env(&fleet), fleet.output("payments/url")), original);
    assert_ne!(status["applied"]["commit"], unsigned.as_str());

    let reverted = kit::revert(&fleet, &unsigned);
    let status = once_in_sync(&fleet);
    assert_eq!(status["applied"]["commit"], reverted.as_str(), "{status:#}");
    assert_eq!((db_env(&fleet), fleet.output("payments/url")), original);

    fleet.set("apps/payments/db", "DB_PASSWORD", "signed-Value-92");
    let signed = fleet.commit("rotate the password");
    let status = once_in_sync(&fleet);
    assert_eq!(status["applied"]["commit"], signed.as_str(), "{status:#}");
    assert!(db_env(&fleet).contains(&password_line("signed-Value-92")));
    assert_eq!(status["refusals"], serde_json::json!([]), "{status:#}");
}

#[test]
fn a_trusted_signer_without_update_rights_is_refused_as_unauthorised() {
    let fleet = Fleet::new();
    // Bob exists from the first commit (the trust anchor) with rights on another app only.
    fleet.write(
        "policies/web-dev.hcl",
        "path \"secrets/apps/web/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n",
    );
    fleet.write(
        "identities/bob.yaml",
        "sealops: v1\nname: bob@example.com\nkind: human\npolicies: [web-dev]\n",
    );
    kit::amend_first_commit(&fleet, Some(&fleet.alice));
    // His key verifies: the refusal is about rights, not about the signature.
    let bob = kit::trusted_signer(&fleet, "bob@example.com");
    once_in_sync(&fleet);
    let before = db_env(&fleet);

    fleet.set("apps/payments/db", "DB_PASSWORD", "bob-Value-93");
    let commit = kit::commit_as(&fleet, &bob, "bob rotates the payments password");
    let (status, refusal) = once_refused(&fleet, "authorisation", &[PASSWORD, "bob-Value-93"]);
    assert_eq!(refusal["commit"], commit.as_str(), "{status:#}");
    assert_eq!(refusal["path"], "secrets/apps/payments/db.yaml");
    let message = refusal["message"].as_str().expect("message");
    assert!(
        message.contains("bob@example.com") && message.contains("update"),
        "{message}"
    );
    assert!(
        kit::refusals(&status, "verification").is_empty(),
        "{status:#}"
    );
    assert_eq!(db_env(&fleet), before);
}

#[test]
fn a_value_the_cluster_key_cannot_open_is_refused_and_a_later_good_commit_applies() {
    let fleet = Fleet::new();
    once_in_sync(&fleet);
    let before = db_env(&fleet);

    let manifest = fleet.world.manifest("apps/payments/db");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("DB_PASSWORD: sealed:"))
        .expect("the sealed password line");
    // Nonce and ciphertext are one base64 payload: one character changed fails the AEAD tag.
    let at = line.rfind(':').expect("payload") + 40;
    let flipped = if &line[at..=at] == "A" { "B" } else { "A" };
    let corrupted_line = format!("{}{flipped}{}", &line[..at], &line[at + 1..]);
    fleet.write(
        "secrets/apps/payments/db.yaml",
        &manifest.replace(line, &corrupted_line),
    );
    let corrupt = fleet.commit("a damaged ciphertext");
    let (status, refusal) = once_refused(&fleet, "decryption", &[PASSWORD]);
    assert_eq!(refusal["commit"], corrupt.as_str(), "{status:#}");
    assert_eq!(refusal["path"], "secrets/apps/payments/db.yaml");
    assert_eq!(db_env(&fleet), before);

    fleet.write("secrets/apps/payments/db.yaml", &manifest);
    fleet.set("apps/payments/db", "DB_PASSWORD", "repaired-Value-94");
    let good = fleet.commit("reseal the password");
    let status = once_in_sync(&fleet);
    assert_eq!(status["applied"]["commit"], good.as_str(), "{status:#}");
    assert!(db_env(&fleet).contains(&password_line("repaired-Value-94")));
}

#[test]
fn an_output_of_a_secret_the_identity_may_not_read_refuses_the_whole_commit() {
    let fleet = kit::single_approver_fleet();
    kit::seal(&fleet, "apps/web/env", &[("WEB_TOKEN", "web-Token-95")]);
    fleet.commit("the web app's secret");
    once_in_sync(&fleet);
    let before = db_env(&fleet);

    fleet.write(
        "targets/payments.yaml",
        &format!(
            "{PAYMENTS_TARGET}  - secret: apps/web/env\n    format: dotenv\n    path: payments/web.env\n"
        ),
    );
    fleet.set("apps/payments/db", "DB_PASSWORD", "policy-Value-96");
    let commit = fleet.commit("payments also reads the web app's secret");
    let (status, refusal) = once_refused(
        &fleet,
        "policy",
        &[PASSWORD, "web-Token-95", "policy-Value-96"],
    );
    assert_eq!(refusal["commit"], commit.as_str(), "{status:#}");
    assert_eq!(refusal["path"], "targets/payments.yaml");
    let message = refusal["message"].as_str().expect("message");
    assert!(message.contains("secrets/apps/web/env"), "{message}");
    assert_eq!(
        db_env(&fleet),
        before,
        "the allowed output was not written either"
    );
    assert_eq!(fleet.output("payments/web.env"), None);
}

/// `sealops_reconciles_total`, all results together.
fn reconciles(running: &mut Running) -> u64 {
    let (_, metrics) = running.get("/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("sealops_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_long_running_controller_follows_local_commits_and_stops_cleanly_on_sigterm() {
    let fleet = Fleet::new();
    let first = kit::head(&fleet);
    // Audit pushes every 100 ms: they move refs/heads/sealops/audit in this very repository,
    // which must not wake the loop either.
    let mut running: Running = kit::spawn(&fleet, "audit:\n  push_interval: 100ms\n");
    // last_reconcile is written after the reconcile was counted: the count below is settled.
    running.wait_for_status("the first reconcile finished, applied", |s| {
        s["applied"]["commit"] == first.as_str() && s["last_reconcile"]["result"] == "applied"
    });
    // Reading the repository (as the controller itself does on every reconcile, or a person
    // running git log) is not a change: it must not wake the loop. Polling and resync are an
    // hour away, so nothing may reconcile here at all.
    let settled = reconciles(&mut running);
    running.wait_for_status("the first records pushed", |s| {
        s["audit"]["records_waiting"] == 0 && s["audit"]["last_push_at"].is_string()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..20 {
        kit::head(&fleet);
        running.get("/healthz");
    }
    assert_eq!(
        reconciles(&mut running),
        settled,
        "the controller reconciled without the branch moving (its own audit push, or a read)"
    );

    fleet.set("apps/payments/db", "DB_PASSWORD", "watched-Value-97");
    let second = fleet.commit("rotate the password");
    // Polling is an hour away: only the watch on the branch ref can bring this in.
    kit::wait_until("the new password in db.env", || {
        fleet
            .output("payments/db.env")
            .is_some_and(|env| env.contains(&password_line("watched-Value-97")))
    });
    let status = running.wait_for_status("the second commit in the status", |s| {
        s["applied"]["commit"] == second.as_str()
    });
    assert_eq!(
        status["targets"]["payments"]["state"], "in-sync",
        "{status:#}"
    );

    assert_eq!(running.get("/readyz").0, 200);
    let (code, metrics) = running.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sealops_outputs_written_total"),
        "{metrics}"
    );
    let values = [PASSWORD, "watched-Value-97"];
    assert_no_values("/metrics", &metrics, &values);
    assert_no_values("/status", &running.get("/status").1, &values);

    assert_eq!(running.terminate(), 0, "{}", running.log());
    assert_no_values("the log", &running.log(), &values);
    assert_eq!(
        kit::temp_files(&fleet.out),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn outputs_of_a_removed_target_are_deleted() {
    let fleet = kit::single_approver_fleet();
    once_in_sync(&fleet);
    std::fs::remove_file(fleet.repo().join("targets/payments.yaml")).expect("rm");
    fleet.commit("payments no longer runs here");
    let status = once_in_sync(&fleet);
    assert_eq!(fleet.output("payments/db.env"), None);
    assert_eq!(fleet.output("payments/url"), None);
    assert!(status["targets"].get("payments").is_none(), "{status:#}");
}

#[test]
fn outputs_of_a_removed_target_are_kept_when_configured() {
    let fleet = kit::single_approver_fleet();
    fleet.write_config("removed_outputs: keep\n");
    once_in_sync(&fleet);
    let before = db_env(&fleet);
    std::fs::remove_file(fleet.repo().join("targets/payments.yaml")).expect("rm");
    fleet.commit("payments no longer runs here");
    once_in_sync(&fleet);
    assert_eq!(db_env(&fleet), before);
    assert!(fleet.output("payments/url").is_some());
}

/// The payments target with `on_change` on both outputs.
fn target_with_hook(hook: &str) -> String {
    PAYMENTS_TARGET
        .replace(
            "    mode: \"0640\"\n",
            &format!("    mode: \"0640\"\n    on_change: [{hook}]\n"),
        )
        .replace(
            "    path: payments/url\n",
            &format!("    path: payments/url\n    on_change: [{hook}]\n"),
        )
}

#[test]
fn an_allowed_hook_runs_once_per_change_and_an_unlisted_one_refuses_the_commit() {
    let fleet = kit::single_approver_fleet();
    let marker = fleet.world.dir.path().join("hook-runs");
    fleet.write_config(&format!(
        "hooks:\n  touch:\n    command: [sh, -c, 'echo \"$SEALOPS_TARGET\" >> {}']\n    timeout: 10s\n",
        marker.display()
    ));
    once_in_sync(&fleet);
    let runs = || std::fs::read_to_string(&marker).unwrap_or_default();

    fleet.write("targets/payments.yaml", &target_with_hook("touch"));
    fleet.set("apps/payments/db", "DB_PASSWORD", "hooked-Value-98");
    fleet.commit("reload payments when its secrets change");
    once_in_sync(&fleet);
    // Both outputs changed; the target's hook runs once.
    assert_eq!(runs(), "payments\n");

    let status = once_in_sync(&fleet);
    assert_eq!(runs(), "payments\n", "no change, no hook");
    assert_eq!(
        status["last_reconcile"]["result"], "unchanged",
        "{status:#}"
    );

    fleet.write("targets/payments.yaml", &target_with_hook("restart-db"));
    fleet.set("apps/payments/db", "DB_PASSWORD", "unlisted-Value-99");
    let commit = fleet.commit("a hook this controller does not allow");
    let (_, refusal) = once_refused(
        &fleet,
        "hook",
        &[PASSWORD, "hooked-Value-98", "unlisted-Value-99"],
    );
    assert_eq!(refusal["commit"], commit.as_str());
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("restart-db")),
        "{refusal:#}"
    );
    assert!(db_env(&fleet).contains(&password_line("hooked-Value-98")));
    assert_eq!(runs(), "payments\n");
}

#[test]
fn hooks_a_killed_controller_owed_run_after_the_restart() {
    let fleet = kit::single_approver_fleet();
    let marker = fleet.world.dir.path().join("hook-runs");
    // The first run records its pid and stays in the hook, where the controller is killed: the
    // output has changed, the hook has not finished.
    let hook = format!(
        "hooks:\n  slow:\n    command: [sh, -c, 'echo $$ >> {m}; [ $(wc -l < {m}) -gt 1 ] || exec sleep 60']\n    timeout: 120s\n",
        m = marker.display()
    );
    fleet.write_config(&hook);
    once_in_sync(&fleet);
    fleet.write("targets/payments.yaml", &target_with_hook("slow"));
    fleet.set("apps/payments/db", "DB_PASSWORD", "owed-Value-61");
    fleet.commit("reload payments when its secrets change");

    let mut running = kit::spawn(&fleet, &hook);
    let runs = || std::fs::read_to_string(&marker).unwrap_or_default();
    kit::wait_until("the hook to start", || runs().lines().count() == 1);
    assert!(db_env(&fleet).contains(&password_line("owed-Value-61")));
    running.child.kill().expect("kill -9");
    running.child.wait().expect("reaped");
    let sleeping = runs().trim().to_owned();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &sleeping])
        .status();
    assert!(
        fleet.state.join("applying.json").exists(),
        "the interrupted apply is recorded"
    );

    // The restarted controller finds every output already right, and still owes the hook.
    fleet.write_config(&hook);
    once_in_sync(&fleet);
    assert_eq!(runs().lines().count(), 2, "the owed hook ran once more");
    assert!(!fleet.state.join("applying.json").exists());
    once_in_sync(&fleet);
    assert_eq!(runs().lines().count(), 2, "and is owed no longer");
}

/// The first refusal message with `reason` in a status document.
fn refusal_message(status: &serde_json::Value, reason: &str) -> Option<String> {
    kit::refusals(status, reason)
        .first()
        .and_then(|r| r["message"].as_str())
        .map(str::to_owned)
}

#[test]
fn each_file_has_one_writer_and_a_freed_destination_can_be_taken() {
    let fleet = kit::single_approver_fleet();
    let other = |path: &str| {
        format!(
            "sealops: v1\nidentity: payments\noutputs:\n  - secret: apps/payments/db\n    key: DB_USER\n    format: raw\n    path: {path}\n"
        )
    };
    // Long-running, so each commit is an incremental reconcile: unchanged targets are checked
    // through the controller's index of what the applied state writes.
    let mut running = kit::spawn(&fleet, "");
    let first = kit::head(&fleet);
    running.wait_for_status("the first apply", |s| {
        s["applied"]["commit"] == first.as_str()
    });
    let before = db_env(&fleet);

    // A new target claims a file an unchanged target writes: refused, nothing written.
    fleet.write("targets/other.yaml", &other("payments/db.env"));
    let commit = fleet.commit("another writer for db.env");
    let status = running.wait_for_status("the conflict refused", |s| {
        s["head"] == commit.as_str() && refusal_message(s, "output").is_some()
    });
    let message = refusal_message(&status, "output").expect("refusal");
    assert!(
        message.contains("payments/db.env is also written by targets/payments.yaml"),
        "{message}"
    );
    assert_eq!(db_env(&fleet), before);

    // Two outputs of one target on one file: refused.
    fleet.write(
        "targets/other.yaml",
        &format!(
            "{}  - secret: apps/payments/db\n    key: DB_HOST\n    format: raw\n    path: payments/twice\n",
            other("payments/twice")
        ),
    );
    let commit = fleet.commit("one target, one file, two outputs");
    let status = running.wait_for_status("the second conflict refused", |s| {
        s["head"] == commit.as_str()
            && refusal_message(s, "output").is_some_and(|m| m.contains("twice"))
    });
    let message = refusal_message(&status, "output").expect("refusal");
    assert!(
        message.contains("also written by targets/other.yaml output 1"),
        "{message}"
    );

    // payments moves db.env elsewhere in the same commit that gives db.env to other: allowed,
    // and db.env (still written) is not removed as payments' old output.
    fleet.write(
        "targets/payments.yaml",
        &common::controller::PAYMENTS_TARGET.replace("payments/db.env", "payments/moved.env"),
    );
    fleet.write("targets/other.yaml", &other("payments/db.env"));
    let commit = fleet.commit("db.env changes hands");
    running.wait_for_status("db.env changed hands", |s| {
        s["applied"]["commit"] == commit.as_str()
    });
    assert_eq!(fleet.output("payments/db.env").as_deref(), Some("payments"));
    assert_eq!(fleet.output("payments/moved.env"), Some(before.clone()));
    assert_eq!(fleet.output("payments/twice"), None);

    // And an unchanged target still conflicts with a later newcomer through the index.
    fleet.write("targets/third.yaml", &other("payments/moved.env"));
    let commit = fleet.commit("a third writer for moved.env");
    let status = running.wait_for_status("the third conflict refused", |s| {
        s["head"] == commit.as_str()
            && refusal_message(s, "output").is_some_and(|m| m.contains("moved.env"))
    });
    let message = refusal_message(&status, "output").expect("refusal");
    assert!(
        message.contains("also written by targets/payments.yaml"),
        "{message}"
    );
    assert_eq!(fleet.output("payments/moved.env"), Some(before));
    assert_eq!(running.terminate(), 0);
}

#[test]
fn a_restart_leaves_outputs_in_place_untouched() {
    use std::os::unix::fs::MetadataExt;
    let fleet = Fleet::new();
    once_in_sync(&fleet);
    let identity = |p: &str| {
        let meta = std::fs::metadata(fleet.out.join(p)).expect("stat");
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    };
    let before = [identity("payments/db.env"), identity("payments/url")];
    let status = once_in_sync(&fleet);
    assert_eq!(
        [identity("payments/db.env"), identity("payments/url")],
        before
    );
    assert_eq!(
        status["last_reconcile"]["result"], "unchanged",
        "{status:#}"
    );
    assert_eq!(status["last_reconcile"]["outputs_written"], 0);
}

#[test]
fn a_full_reconcile_repairs_a_hand_edited_output() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::new();
    once_in_sync(&fleet);
    let good = db_env(&fleet);
    let path = fleet.out.join("payments/db.env");
    std::fs::write(&path, "DB_PASSWORD='edited-by-hand'\n").expect("edit");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let status = once_in_sync(&fleet);
    assert_eq!(db_env(&fleet), good);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(status["last_reconcile"]["outputs_written"], 1, "{status:#}");
}

#[test]
fn an_unsigned_first_commit_is_applied_only_when_pinned_as_the_trust_anchor() {
    let fleet = Fleet::new();
    let root = kit::amend_first_commit(&fleet, None);
    // Anchored at the branch's first commit by pinned principals: it must be signed by one.
    fleet.write_config("  pinned_principals: [alice@example.com]\n");
    let (status, refusal) = once_refused(&fleet, "verification", &[PASSWORD]);
    assert_eq!(refusal["commit"], root.as_str(), "{status:#}");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not signed by a key")),
        "{status:#}"
    );
    assert_eq!(
        kit::files_below(&fleet.out),
        Vec::<std::path::PathBuf>::new()
    );

    // The line continues the `trust:` mapping the configuration ends with.
    fleet.write_config(&format!("  initial_commit: {root}\n"));
    let status = once_in_sync(&fleet);
    assert_eq!(status["applied"]["commit"], root.as_str(), "{status:#}");
    assert!(db_env(&fleet).contains(&password_line(PASSWORD)));

    // Pinning the anchor trusts that commit, not unsigned ones after it.
    fleet.set("apps/payments/db", "DB_PASSWORD", "after-anchor-Value");
    let unsigned = fleet.commit_unsigned("unsigned after the anchor");
    let (_, refusal) = once_refused(&fleet, "verification", &[PASSWORD, "after-anchor-Value"]);
    assert_eq!(refusal["commit"], unsigned.as_str());
    assert!(db_env(&fleet).contains(&password_line(PASSWORD)));
}
