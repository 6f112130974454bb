//! The controller's audit trail, end to end: the real binaries on a real repository write the
//! records of what they did to the audit branch; `sealops audit verify` checks them, and
//! catches tampering.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::controller::{Fleet, PASSWORD, PAYMENTS_TARGET, kit};
use crate::common::git;

/// `sealops audit log -o json` of the fleet's repository: one JSON record per line.
fn records(fleet: &Fleet) -> Vec<serde_json::Value> {
    let mut command = fleet.world.sealops();
    command.args(["audit", "log", "-o", "json"]);
    if let Some(pinned) = pinned_registry(fleet) {
        command.arg("--registry").arg(pinned);
    }
    let out = fleet.world.stdout(&mut command);
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

fn events(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event"].as_str().expect("event").to_owned())
        .collect()
}

fn once(fleet: &Fleet) -> (i32, serde_json::Value) {
    let (code, status, _) = fleet.once();
    (code, status)
}

/// Every file of the audit branch, as text.
fn branch_text(repo: &Path) -> String {
    let files = git(repo, &["ls-tree", "-r", "--name-only", "sealops/audit"]);
    files
        .lines()
        .map(|f| git(repo, &["show", &format!("sealops/audit:{f}")]))
        .collect()
}

/// `sealops audit verify`. The fleet's first commit registers its controller's key under the
/// default controller id; a test that names its controller (`audit.controller_id`) verifies
/// against a registry pinned locally (`--registry`) with that name and the same key.
fn verify(fleet: &Fleet) -> (i32, String) {
    verify_with(fleet, &[])
}

/// A registry pinned locally that registers the controller's key under the name the test
/// gave it (`audit.controller_id`); `None` when it keeps the default name.
fn pinned_registry(fleet: &Fleet) -> Option<PathBuf> {
    let config = std::fs::read_to_string(&fleet.config).expect("config");
    let id = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("controller_id: "))?;
    let key = std::fs::read_to_string(fleet.state.join("audit.key")).expect("audit key");
    let public = sealops_core::audit::AuditKeys::parse(&key)
        .expect("key")
        .public_key();
    let pinned = fleet.world.dir.path().join("pinned-controllers.yaml");
    std::fs::write(
        &pinned,
        format!("sealops: v1\ncontrollers:\n  - id: {id}\n    public_key: {public}\n"),
    )
    .expect("pinned registry");
    Some(pinned)
}

fn verify_with(fleet: &Fleet, extra: &[&str]) -> (i32, String) {
    let mut command = fleet.world.sealops();
    command.args(["audit", "verify"]).args(extra);
    if let Some(pinned) = pinned_registry(fleet) {
        command.arg("--registry").arg(&pinned);
    }
    let out = command.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_controller_action_is_on_the_audit_branch_and_verifies_and_tampering_is_named() {
    let fleet = kit::single_approver_fleet();
    let marker = fleet.world.dir.path().join("hook-runs");
    fleet.write_config(&format!(
        "node:\n  name: node-1\nhooks:\n  touch:\n    command: [sh, -c, 'echo run >> {}']\n    timeout: 10s\naudit:\n  controller_id: node-1\n",
        marker.display()
    ));
    let first = kit::head(&fleet);
    assert_eq!(once(&fleet).0, 0);
    let after_first = records(&fleet);
    assert_eq!(
        events(&after_first),
        [
            "key-loaded",
            "commit-verified",
            "output-written",
            "output-written"
        ],
        "{after_first:#?}"
    );
    let written = &after_first[2];
    assert_eq!(written["commit"], first.as_str());
    assert_eq!(written["path"], "apps/payments/db");
    assert_eq!(written["target"], "payments");
    assert_eq!(written["identity"], "payments");
    assert_eq!(written["controller"], "node-1");
    let password_fingerprint = written["fingerprints"]["DB_PASSWORD"]
        .as_str()
        .expect("a fingerprint of the password")
        .to_owned();
    assert!(password_fingerprint.starts_with("hmac-sha256:"));
    // Whoever holds the value and the audit key can answer "was it deployed?".
    let fingerprint = fleet.world.stdout(fleet.world.sealops_with_key().args([
        "audit",
        "fingerprint",
        "apps/payments/db",
        "DB_PASSWORD",
        "--audit-key",
        fleet.state.join("audit.key").to_str().expect("utf8"),
    ]));
    assert!(
        fingerprint.contains(&password_fingerprint),
        "{fingerprint} vs {password_fingerprint}"
    );

    // A change with a hook: verified, written, hook run.
    fleet.write(
        "targets/payments.yaml",
        &PAYMENTS_TARGET.replace(
            "    mode: \"0640\"\n",
            "    mode: \"0640\"\n    on_change: [touch]\n",
        ),
    );
    fleet.set("apps/payments/db", "DB_PASSWORD", "audited-Value-31");
    let second = fleet.commit("rotate, and reload payments");
    assert_eq!(once(&fleet).0, 0);
    // An unsigned commit: refused, recorded as such.
    fleet.set("apps/payments/db", "DB_PASSWORD", "unsigned-Value-32");
    let unsigned = fleet.commit_unsigned("nobody signed this");
    assert_eq!(once(&fleet).0, 1);
    // A signed revert, then the target removed: its outputs are deleted.
    kit::revert(&fleet, &unsigned);
    std::fs::remove_file(fleet.repo().join("targets/payments.yaml")).expect("rm");
    let removed = fleet.commit("payments leaves this node");
    assert_eq!(once(&fleet).0, 0);

    let all = records(&fleet);
    let after: Vec<&serde_json::Value> = all[after_first.len()..].iter().collect();
    let summary: Vec<(String, String)> = after
        .iter()
        .map(|r| {
            (
                r["event"].as_str().expect("event").to_owned(),
                r["commit"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let has = |event: &str, commit: &str| summary.iter().any(|(e, c)| e == event && c == commit);
    assert!(has("commit-verified", &second), "{summary:#?}");
    assert!(has("output-written", &second), "{summary:#?}");
    assert!(has("hook-run", &second), "{summary:#?}");
    assert!(has("commit-refused", &unsigned), "{summary:#?}");
    assert!(has("commit-verified", &removed), "{summary:#?}");
    assert_eq!(
        summary
            .iter()
            .filter(|(e, c)| e == "output-removed" && *c == removed)
            .count(),
        2,
        "{summary:#?}"
    );
    let refused = after
        .iter()
        .find(|r| r["event"] == "commit-refused")
        .expect("refusal");
    assert_eq!(refused["outcome"], "refused");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("verification:")),
        "{refused:#}"
    );
    let seqs: Vec<u64> = all
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());

    // Never a value on the branch, and the chain verifies.
    let text = branch_text(fleet.repo());
    for value in [PASSWORD, "audited-Value-31", "unsigned-Value-32"] {
        assert!(!text.contains(value), "{value} is on the audit branch");
    }
    let (code, out) = verify(&fleet);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("node-1:") && out.contains("intact"), "{out}");

    // Tampering, each on a copy of the intact branch, each named by file and line.
    let intact = git(fleet.repo(), &["rev-parse", "sealops/audit"])
        .trim()
        .to_owned();
    let batches: Vec<String> = git(
        fleet.repo(),
        &["ls-tree", "-r", "--name-only", "sealops/audit"],
    )
    .lines()
    .filter(|f| f.starts_with("audit/trails/node-1/") && f.ends_with(".jsonl"))
    .map(str::to_owned)
    .collect();
    assert!(batches.len() >= 2, "one batch file per push: {batches:?}");
    let (first, last) = (batches[0].clone(), batches[batches.len() - 1].clone());
    let head = format!(
        "{}/head.json",
        first.split('/').take(4).collect::<Vec<_>>().join("/")
    );
    let work = fleet.world.dir.path().join("audit-work");
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
    let edit_lines = |file: &str, edit: &dyn Fn(&mut Vec<String>)| {
        let path = work.join(file);
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect();
        edit(&mut lines);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    };
    let at = |line: usize| format!("BROKEN at {first}:{line}:");
    type Tamper<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Tamper<'_>, String)> = vec![
        (
            "edit one byte",
            Box::new(|| {
                edit_lines(&first, &|lines| {
                    lines[2] = lines[2].replacen("\"seq\":3,", "\"seq\":3, ", 1);
                })
            }),
            at(4),
        ),
        (
            "delete a line",
            Box::new(|| edit_lines(&first, &|lines| drop(lines.remove(2)))),
            at(3),
        ),
        (
            "reorder two lines",
            Box::new(|| edit_lines(&first, &|lines| lines.swap(2, 3))),
            at(3),
        ),
        (
            "drop the last batch, keep the head",
            Box::new(|| drop(std::fs::remove_file(work.join(&last)))),
            format!("BROKEN at {head}: the head is a seal at record"),
        ),
        (
            "rename a batch file",
            Box::new(|| {
                let renamed = last.replace(".jsonl", "").replacen("/0000", "/0009", 1) + ".jsonl";
                std::fs::rename(work.join(&last), work.join(&renamed)).expect("rename");
            }),
            "the file was renamed or moved".to_owned(),
        ),
    ];
    for (what, tamper, expected) in cases {
        git(&work, &["reset", "-q", "--hard", &intact]);
        tamper();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", what]);
        git(&work, &["push", "-qf", "origin", "HEAD:sealops/audit"]);
        let (code, out) = verify(&fleet);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains(&expected),
            "{what}: expected {expected} in\n{out}"
        );
    }
    git(&work, &["reset", "-q", "--hard", &intact]);
    git(&work, &["push", "-qf", "origin", "HEAD:sealops/audit"]);
}

/// The controller-issue scenarios against a real remote (`git daemon` on 127.0.0.1 with
/// receive-pack): the binary pushes its trail to the remote's audit branch.
#[test]
fn refusals_of_every_kind_reach_the_audit_branch_of_a_real_remote() {
    let fleet = kit::single_approver_fleet();
    let served = fleet.serve_remote();
    fleet.write_remote_config(&served.url(), "audit:\n  controller_id: remote-node\n");
    assert_eq!(once(&fleet).0, 0);

    // Policy: payments may not read the web app's secret.
    kit::seal(&fleet, "apps/web/env", &[("WEB_TOKEN", "web-Token-75")]);
    fleet.commit("the web app's secret");
    fleet.write(
        "targets/payments.yaml",
        &format!(
            "{PAYMENTS_TARGET}  - secret: apps/web/env\n    format: dotenv\n    path: payments/web.env\n"
        ),
    );
    let denied = fleet.commit("payments also reads the web app's secret");
    fleet.push_to(&served.bare, false);
    assert_eq!(once(&fleet).0, 1);
    kit::revert(&fleet, &denied);

    // Decryption: a damaged ciphertext.
    let manifest = fleet.world.manifest("apps/payments/db");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("DB_PASSWORD: sealed:"))
        .expect("the sealed password line")
        .to_owned();
    let at = line.rfind(':').expect("payload") + 40;
    let flipped = if &line[at..=at] == "A" { "B" } else { "A" };
    fleet.write(
        "secrets/apps/payments/db.yaml",
        &manifest.replace(
            &line,
            &format!("{}{flipped}{}", &line[..at], &line[at + 1..]),
        ),
    );
    let damaged = fleet.commit("a damaged ciphertext");
    fleet.push_to(&served.bare, false);
    assert_eq!(once(&fleet).0, 1);

    // The trail as the remote holds it.
    git(
        fleet.repo(),
        &[
            "fetch",
            "-q",
            served.bare.to_str().expect("utf8"),
            "+sealops/audit:refs/remotes/origin/sealops/audit",
        ],
    );
    let _ = std::process::Command::new("git")
        .args(["branch", "-D", "sealops/audit"])
        .current_dir(fleet.repo())
        .output();
    let all = records(&fleet);
    let find = |event: &str, commit: &str| {
        all.iter()
            .find(|r| r["event"] == event && r["commit"] == commit)
            .unwrap_or_else(|| panic!("no {event} for {commit} in {all:#?}"))
    };
    assert!(
        find("access-denied", &denied)["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("policy:") && r.contains("apps/web/env"))
    );
    assert!(
        find("commit-refused", &damaged)["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("decryption:"))
    );
    assert!(all.iter().all(|r| r["controller"] == "remote-node"));
    let (code, out) = verify(&fleet);
    assert_eq!(code, 0, "{out}");
    let text = {
        let files = git(
            served.bare.as_path(),
            &["ls-tree", "-r", "--name-only", "sealops/audit"],
        );
        files
            .lines()
            .map(|f| {
                git(
                    served.bare.as_path(),
                    &["show", &format!("sealops/audit:{f}")],
                )
            })
            .collect::<String>()
    };
    for value in [PASSWORD, "web-Token-75"] {
        assert!(
            !text.contains(value),
            "{value} is on the remote's audit branch"
        );
    }
}

#[test]
fn an_unwritable_journal_refuses_every_output_and_says_why() {
    let fleet = kit::single_approver_fleet();
    // The state directory is a small tmpfs: filled up, then remounted read-only. Mounting needs
    // root (CI runs as root).
    std::fs::create_dir_all(&fleet.state).expect("state dir");
    let mount = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .arg(&fleet.state)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount(&["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"]) {
        assert!(
            std::env::var("CI").is_err(),
            "mounting a tmpfs failed: this test needs root in CI"
        );
        eprintln!(
            "SKIPPED: mounting a tmpfs needs root; run as root to check a full or read-only journal"
        );
        return;
    }
    struct Unmount<'p>(&'p Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&fleet.state);
    assert_eq!(once(&fleet).0, 0);
    let before = fleet.output("payments/db.env").expect("written");
    fleet.set("apps/payments/db", "DB_PASSWORD", "unrecorded-Value-41");
    fleet.commit("a change nothing may apply unrecorded");

    // Disk full.
    let filler = fleet.state.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=1000"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let refused = |fleet: &Fleet, reason: &str| {
        let (code, status, stderr) = fleet.once();
        assert_ne!(code, 0, "{status:#}");
        let found = kit::refusals(&status, reason);
        assert!(!found.is_empty(), "{status:#}\n{stderr}");
        assert_eq!(
            fleet.output("payments/db.env").expect("still there"),
            before,
            "nothing was written"
        );
        found[0]["message"].as_str().expect("message").to_owned()
    };
    // The journal's last page may still hold a few records; whichever of the state files
    // cannot grow first stops the apply before any output is written.
    let (code, status, _) = fleet.once();
    assert_ne!(code, 0, "{status:#}");
    assert!(
        status["refusals"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["message"]
                .as_str()
                .is_some_and(|m| m.contains("No space left")))),
        "{status:#}"
    );
    assert_eq!(
        fleet.output("payments/db.env").expect("still there"),
        before
    );

    // Read-only: the journal cannot be opened, every action is refused for it.
    std::fs::remove_file(&filler).expect("rm filler");
    assert!(mount(&["-o", "remount,ro"]));
    let read_only = refused(&fleet, "audit");
    assert!(
        read_only.contains("audit journal") && read_only.contains("Read-only"),
        "{read_only}"
    );

    // Writable again: the change applies, recorded.
    assert!(mount(&["-o", "remount,rw"]));
    assert_eq!(once(&fleet).0, 0);
    assert!(
        fleet
            .output("payments/db.env")
            .is_some_and(|env| env.contains("unrecorded-Value-41"))
    );
}

/// A controller killed while it moved the audit branch leaves the ref's lock file behind. The
/// next controller (which holds the state directory, so no other one writes here) removes a
/// lock that predates it, instead of failing every push of its run (found as a flaky trial of
/// the kill -9 crash test).
#[test]
fn a_ref_lock_left_by_a_killed_controller_does_not_stop_the_next_push() {
    let fleet = kit::single_approver_fleet();
    assert_eq!(once(&fleet).0, 0);
    let lock = fleet.repo().join(".git/refs/heads/sealops/audit.lock");
    std::fs::write(&lock, "").expect("a lock file as a killed writer leaves it");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fleet.set("apps/payments/db", "DB_PASSWORD", "after-the-kill-Value-7");
    fleet.commit("rotate after a kill");
    let (code, status) = once(&fleet);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["audit"]["records_waiting"], 0, "{status:#}");
    assert!(status["audit"]["last_push_error"].is_null(), "{status:#}");
    assert!(!lock.exists());
}

/// The trail's lines (records and seals) of `controller` on the audit branch, oldest first.
fn branch_lines(repo: &Path, controller: &str) -> Vec<String> {
    let mut files: Vec<String> = git(repo, &["ls-tree", "-r", "--name-only", "sealops/audit"])
        .lines()
        .filter(|f| f.starts_with(&format!("audit/trails/{controller}/")) && f.ends_with(".jsonl"))
        .map(str::to_owned)
        .collect();
    // audit/trails/<id>/<key-id>/YYYY/MM/DD/<first-seq>.jsonl: one chain, so the path order is
    // the chain order.
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            git(repo, &["show", &format!("sealops/audit:{f}")])
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `sealops-controller run --once` with a stdout audit sink: (exit code, stdout, stderr).
fn once_raw(fleet: &Fleet) -> (i32, String, String) {
    let out = fleet
        .controller()
        .args(["run", "--once", "--log-level", "trace", "--config"])
        .arg(&fleet.config)
        .output()
        .expect("controller runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn file_and_stdout_sinks_get_exactly_the_lines_of_the_audit_branch() {
    use std::os::unix::fs::PermissionsExt as _;

    let fleet = kit::single_approver_fleet();
    let logs = fleet.world.dir.path().join("log");
    std::fs::create_dir_all(&logs).expect("log dir");
    let sink = logs.join("audit.jsonl");
    fleet.write_config(&format!(
        "audit:\n  controller_id: node-1\n  sinks:\n    - file: {}\n    - stdout: true\n",
        sink.display()
    ));

    // Three runs: an apply, a rotation, and a refused unsigned commit; each run is a group of
    // records, a seal and a push.
    let mut stdout = String::new();
    let (code, out, stderr) = once_raw(&fleet);
    assert_eq!(code, 0, "{stderr}");
    // stdout holds audit lines only: --once's status document went to stderr.
    assert!(
        stderr.contains("\"records_waiting\": 0"),
        "the status document is on stderr:\n{stderr}"
    );
    stdout.push_str(&out);
    fleet.set("apps/payments/db", "DB_PASSWORD", "sunk-Value-51");
    fleet.commit("rotate");
    let (code, out, stderr) = once_raw(&fleet);
    assert_eq!(code, 0, "{stderr}");
    stdout.push_str(&out);
    fleet.set("apps/payments/db", "DB_PASSWORD", "unsigned-Value-52");
    let unsigned = fleet.commit_unsigned("nobody signed this");
    let (code, out, stderr) = once_raw(&fleet);
    assert_eq!(code, 1, "{stderr}");
    stdout.push_str(&out);

    let on_branch = branch_lines(fleet.repo(), "node-1");
    let events: Vec<String> = on_branch
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .map(|v| {
            v["event"]
                .as_str()
                .map_or_else(|| "seal".to_owned(), str::to_owned)
        })
        .collect();
    assert_eq!(
        events.iter().filter(|e| *e == "seal").count(),
        3,
        "{events:?}"
    );
    assert!(
        on_branch
            .iter()
            .any(|l| l.contains("commit-refused") && l.contains(&unsigned)),
        "{on_branch:#?}"
    );
    // The same text, line for line: same records, same fingerprints, same seals.
    let in_file: Vec<String> = std::fs::read_to_string(&sink)
        .expect("the sink file")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(in_file, on_branch);
    let on_stdout: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        on_stdout, on_branch,
        "stdout holds the audit lines and nothing else"
    );
    assert_eq!(
        std::fs::metadata(&sink).expect("sink").permissions().mode() & 0o777,
        0o600
    );
    // The head on the branch is the last seal the sinks got.
    let head_file = git(
        fleet.repo(),
        &["ls-tree", "-r", "--name-only", "sealops/audit"],
    )
    .lines()
    .find(|f| f.starts_with("audit/trails/node-1/") && f.ends_with("/head.json"))
    .expect("the chain's head")
    .to_owned();
    let head = git(
        fleet.repo(),
        &["show", &format!("sealops/audit:{head_file}")],
    );
    assert_eq!(Some(head.trim()), in_file.last().map(String::as_str));
    let (code, out) = verify(&fleet);
    assert_eq!(code, 0, "{out}");
    for value in [PASSWORD, "sunk-Value-51", "unsigned-Value-52"] {
        assert!(!stdout.contains(value), "{value} on stdout");
        assert!(
            !in_file.iter().any(|l| l.contains(value)),
            "{value} in the sink file"
        );
    }
}

#[test]
fn an_unwritable_sink_refuses_outputs_under_require_all_and_is_counted_under_require_journal() {
    let fleet = kit::single_approver_fleet();
    // The parent is a regular file: nobody, root included, can create the sink.
    let plain = fleet.world.dir.path().join("plain");
    std::fs::write(&plain, "").expect("a regular file");
    let sink = plain.join("audit.jsonl");
    let sink_name = format!("file:{}", sink.display());
    fleet.write_config(&format!(
        "audit:\n  sinks:\n    - file: {}\n  require: all\n",
        sink.display()
    ));
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 1, "{status:#}");
    let refused = kit::refusals(&status, "audit");
    assert!(!refused.is_empty(), "{status:#}\n{stderr}");
    let message = refused[0]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("audit sink {sink_name}")) && message.contains("all"),
        "{message}"
    );
    assert_eq!(fleet.output("payments/db.env"), None, "nothing was written");

    // require: journal (the default): the outputs are written, the sink's failure logged and
    // counted.
    let mut running = kit::spawn(
        &fleet,
        &format!("audit:\n  sinks:\n    - file: {}\n", sink.display()),
    );
    running.wait_for_status("the outputs applied", |s| {
        s["applied"]["commit"] == kit::head(&fleet).as_str()
            && s["refusals"] == serde_json::json!([])
    });
    assert!(
        fleet
            .output("payments/db.env")
            .is_some_and(|env| env.contains(PASSWORD))
    );
    let (code, metrics) = running.get("/metrics");
    assert_eq!(code, 200);
    let failed = common::controller::remote::metric(
        &metrics,
        &format!("sealops_audit_sink_writes_total{{sink=\"{sink_name}\",result=\"failed\"}}"),
    );
    assert!(failed >= 1.0, "{metrics}");
    assert!(
        running
            .log()
            .contains("an audit sink did not take the records")
    );
    assert!(!metrics.contains(PASSWORD));
    assert_eq!(running.terminate(), 0);
}

/// Records in the controller's journal (seals left out), as `records_waiting` counts them.
fn journalled_records(fleet: &Fleet) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fleet.state.join("audit-journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("{\"seal\""))
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[test]
fn records_waiting_and_the_branch_are_reported_while_records_wait_for_a_push() {
    let fleet = kit::single_approver_fleet();
    // Nothing is pushed while the controller runs: every record waits in the journal.
    let mut running = kit::spawn(&fleet, "audit:\n  push_interval: 1h\n");
    let check = |running: &mut kit::Running, what: &str| -> u64 {
        let status = running.status();
        let waiting = status["audit"]["records_waiting"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: records_waiting in {status:#}"));
        let journalled = journalled_records(&fleet).len() as u64;
        assert!(waiting > 0, "{what}: {status:#}");
        assert_eq!(waiting, journalled, "{what}: {status:#}");
        assert_eq!(status["audit"]["branch"], "sealops/audit", "{what}");
        let (code, metrics) = running.get("/metrics");
        assert_eq!(code, 200);
        assert_eq!(
            common::controller::remote::metric(&metrics, "sealops_audit_records_waiting"),
            waiting as f64,
            "{what}: {metrics}"
        );
        waiting
    };
    let first = kit::head(&fleet);
    running.wait_for_status("the first reconcile", |s| {
        s["applied"]["commit"] == first.as_str() && !s["last_reconcile"].is_null()
    });
    let after_first = check(&mut running, "after the first apply");

    fleet.set("apps/payments/db", "DB_PASSWORD", "waiting-Value-61");
    let second = fleet.commit("rotate");
    running.wait_for_status("the rotation applied", |s| {
        s["applied"]["commit"] == second.as_str()
    });
    let after_second = check(&mut running, "after the rotation");
    assert!(after_second > after_first);
    assert!(
        std::process::Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", "sealops/audit"])
            .current_dir(fleet.repo())
            .output()
            .is_ok_and(|out| !out.status.success()),
        "nothing was pushed yet"
    );
    // SIGTERM pushes what waited.
    assert_eq!(running.terminate(), 0);
    assert_eq!(records(&fleet).len() as u64, after_second);
}

#[test]
fn a_refused_head_is_recorded_once_however_often_it_is_judged_again() {
    use std::collections::BTreeSet;

    let fleet = kit::single_approver_fleet();
    // A full resync every second judges the refused head again each time; nothing is pushed
    // while it runs, so the journal holds every record.
    let port = kit::free_port();
    fleet.write_config(&format!(
        "http:\n  listen: 127.0.0.1:{port}\npoll:\n  interval: 1h\n  jitter: 0s\n  resync: 1s\naudit:\n  controller_id: node-1\n  push_interval: 1h\n"
    ));
    let log = fleet.world.dir.path().join("controller-resync.log");
    let child = fleet
        .controller()
        .args(["run", "--log-level", "trace", "--config"])
        .arg(&fleet.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("controller starts");
    let mut running = kit::Running { child, port, log };
    let first = kit::head(&fleet);
    running.wait_for_status("the first apply", |s| {
        s["applied"]["commit"] == first.as_str()
    });

    fleet.set("apps/payments/db", "DB_PASSWORD", "refused-Value-71");
    let unsigned = fleet.commit_unsigned("nobody signed this");
    let refused_now = |s: &serde_json::Value| {
        s["head"] == unsigned.as_str()
            && kit::refusals(s, "verification")
                .iter()
                .any(|r| r["commit"] == unsigned.as_str())
    };
    running.wait_for_status("the unsigned head refused", refused_now);
    // Four more reconciles that judged it again (each still reports the refusal).
    let mut finished = BTreeSet::new();
    running.wait_for_status("four resyncs judging the refused head", |s| {
        if refused_now(s)
            && let Some(at) = s["last_reconcile"]["finished_at"].as_str()
        {
            finished.insert(at.to_owned());
        }
        finished.len() > 4
    });
    let refused_records = |records: &[serde_json::Value]| {
        records
            .iter()
            .filter(|r| r["event"] == "commit-refused" && r["commit"] == unsigned.as_str())
            .count()
    };
    assert_eq!(
        refused_records(&journalled_records(&fleet)),
        1,
        "{:#?}",
        journalled_records(&fleet)
    );
    assert_eq!(running.terminate(), 0);
    // And once on the branch, after the push at shutdown.
    assert_eq!(refused_records(&records(&fleet)), 1);
    let (code, out) = verify(&fleet);
    assert_eq!(code, 0, "{out}");
}

/// A `git push` to a `file://` remote runs `git receive-pack` in the controller's process group:
/// a kill of the group (a container stopped, a `kill -9` of the service) can leave the branch's
/// ref lock in the remote, which would refuse every later push. The next controller removes a
/// lock left from before it started once it is stale, and pushes.
#[test]
fn a_ref_lock_a_killed_push_left_in_a_file_remote_does_not_stop_the_trail() {
    let (fleet, bare) = applied_with_a_file_remote();

    let tip_before = git(&bare, &["rev-parse", "sealops/audit"]);
    let lock = bare.join("refs/heads/sealops/audit.lock");
    std::fs::write(&lock, format!("{}\n", "0".repeat(40))).expect("lock");
    let touched = std::process::Command::new("touch")
        .args(["-d", "10 seconds ago"])
        .arg(&lock)
        .status()
        .expect("touch runs");
    assert!(touched.success());
    let commit = new_secret_on(&fleet, &bare);

    let (code, status) = once(&fleet);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(
        status["audit"]["last_push_error"],
        serde_json::Value::Null,
        "{status:#}"
    );
    assert_eq!(status["audit"]["records_waiting"], 0, "{status:#}");
    assert!(!lock.exists(), "the stale lock is still in the remote");
    assert_ne!(git(&bare, &["rev-parse", "sealops/audit"]), tip_before);
    // `git grep` fails (and the helper with it) when no file of the trail names the commit.
    git(&bare, &["grep", "-l", commit.trim(), "sealops/audit"]);
}

/// A push git reports as done can still have lost its update: another writer removed the ref
/// lock it held, or (here) a hook of the remote moves the branch back once. The controller
/// reads the branch back before it drops records from its journal, pushes again, and raises no
/// tamper alarm for a loss it caught itself.
#[test]
fn a_push_reported_done_but_not_on_the_remote_is_pushed_again() {
    let (fleet, bare) = applied_with_a_file_remote();

    let hook = bare.join("hooks/reference-transaction");
    std::fs::write(
        &hook,
        "#!/bin/sh\n\
         # Once: after git committed an update of the audit branch, move it back.\n\
         [ \"$1\" = committed ] || exit 0\n\
         while read old new ref; do\n\
           if [ \"$ref\" = refs/heads/sealops/audit ] && [ ! -e moved-back ]; then\n\
             touch moved-back\n\
             git update-ref \"$ref\" \"$old\"\n\
           fi\n\
         done\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("hook mode");
    let commit = new_secret_on(&fleet, &bare);

    let (code, status) = once(&fleet);
    assert_eq!(code, 0, "{status:#}");
    assert!(bare.join("moved-back").exists(), "the hook never ran");
    assert_eq!(status["audit"]["records_waiting"], 0, "{status:#}");
    // `git grep` fails (and the helper with it) when no file of the trail names the commit.
    git(&bare, &["grep", "-l", commit.trim(), "sealops/audit"]);
    let (code, status) = once(&fleet);
    assert_eq!(code, 0, "{status:#}");
    assert_ne!(status["audit"]["state"], "tampered", "{status:#}");
}

/// A fleet following a bare `file://` remote, applied once with its trail pushed.
fn applied_with_a_file_remote() -> (Fleet, PathBuf) {
    let fleet = kit::single_approver_fleet();
    let bare = fleet.bare_remote();
    fleet.write_remote_config(&format!("file://{}", bare.display()), "");
    let (code, status) = once(&fleet);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["audit"]["records_waiting"], 0, "{status:#}");
    (fleet, bare)
}

/// Commits and pushes a new secret to `bare`; its commit id.
fn new_secret_on(fleet: &Fleet, bare: &Path) -> String {
    kit::seal(fleet, "apps/web/env", &[("WEB_TOKEN", "web-Token-75")]);
    let commit = fleet.commit("another secret");
    fleet.push_to(bare, false);
    commit
}
