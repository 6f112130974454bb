//! The controller following a remote repository, end to end with the real binaries: a bare copy
//! of the Fleet's repository served by the real `git daemon` (git://) or read over file://, pushes
//! by path, and the controller's HTTP endpoints (status, metrics, webhook) on a free port.

use crate::common;

use crate::common::controller::remote::free_port;
use crate::common::controller::{Fleet, PASSWORD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_NAME: &str = "apps/payments/db";
const WEBHOOK_SECRET: &str = "webhook-secret-5b1e-do-not-log";
const PUSH_BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

/// `sha256=<hex HMAC-SHA256(secret, body)>`, as GitHub sends it.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sets DB_PASSWORD to `value`, commits (signed by alice) and returns the commit.
fn signed_password_change(fleet: &Fleet, value: &str, message: &str) -> String {
    fleet.set(SECRET_NAME, "DB_PASSWORD", value);
    fleet.commit(message)
}

fn head(fleet: &Fleet) -> String {
    common::git(fleet.repo(), &["rev-parse", "HEAD"])
        .trim()
        .to_owned()
}

fn assert_password(fleet: &Fleet, value: &str) {
    let env = fleet.output("payments/db.env").expect("db.env written");
    assert!(
        env.contains(&format!("DB_PASSWORD='{value}'")),
        "db.env does not hold the expected password"
    );
    assert_eq!(
        fleet.output("payments/url").expect("url written"),
        format!("postgres://payments:{value}@db.internal/payments")
    );
}

fn assert_no_plaintext(texts: &[&str], values: &[&str]) {
    for text in texts {
        for value in values {
            assert!(!text.contains(value), "a secret value leaked");
        }
    }
}

#[test]
fn once_over_git_protocol_applies_signed_commits() {
    let fleet = Fleet::new();
    let served = fleet.serve_remote();
    fleet.write_remote_config(&served.url(), "");
    let first = head(&fleet);

    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    assert_password(&fleet, PASSWORD);
    assert_eq!(status["applied"]["commit"], first.as_str());
    assert_eq!(status["head"], first.as_str());
    assert_eq!(status["targets"]["payments"]["state"], "in-sync");
    assert!(
        fleet.state.join("mirror.git").is_dir(),
        "the remote is fetched into state_dir/mirror.git"
    );

    // A later signed commit reaches the controller only through the remote.
    let rotated = "rotated-over-git-9d41";
    let second = signed_password_change(&fleet, rotated, "rotate the password");
    fleet.push_to(&served.bare, false);
    let (code, status, stderr2) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr2}");
    assert_eq!(status["applied"]["commit"], second.as_str());
    assert_password(&fleet, rotated);

    assert_no_plaintext(
        &[&stderr, &stderr2, &status.to_string()],
        &[PASSWORD, rotated],
    );
}

#[test]
fn once_over_a_file_url_applies_a_signed_commit() {
    let fleet = Fleet::new();
    let bare = fleet.bare_remote();
    fleet.write_remote_config(&format!("file://{}", bare.display()), "");
    let first = head(&fleet);

    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    assert_password(&fleet, PASSWORD);
    assert_eq!(status["applied"]["commit"], first.as_str());

    let rotated = "rotated-over-file-2c07";
    let second = signed_password_change(&fleet, rotated, "rotate the password");
    fleet.push_to(&bare, false);
    let (code, status, stderr2) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr2}");
    assert_eq!(status["applied"]["commit"], second.as_str());
    assert_password(&fleet, rotated);
    assert_no_plaintext(
        &[&stderr, &stderr2, &status.to_string()],
        &[PASSWORD, rotated],
    );
}

#[test]
fn unreachable_remote_keeps_outputs_and_recovers_when_it_returns() {
    let fleet = Fleet::new();
    let mut served = fleet.serve_remote();
    let port = free_port();
    fleet.write_remote_config(
        &served.url(),
        &fleet.http_and_poll_yaml(port, WEBHOOK_SECRET, "1s"),
    );
    let first = head(&fleet);
    let mut controller = fleet.spawn_controller(port);
    controller.wait_status("the first commit applied", |s| {
        s["applied"]["commit"] == first.as_str()
    });
    assert_password(&fleet, PASSWORD);

    served.stop_daemon();
    let rotated = "rotated-while-offline-61fa";
    let second = signed_password_change(&fleet, rotated, "rotate while the remote is down");
    fleet.push_to(&served.bare, false);

    let status = controller.wait_status("a failed fetch reported", |s| {
        s["last_error"]["reason"] == "fetch"
    });
    assert!(
        controller.metric("sealops_fetches_total{result=\"failed\"}") > 0.0,
        "{}",
        controller.metrics()
    );
    assert!(
        controller.metric("sealops_reconcile_failures_total{reason=\"fetch\"}") > 0.0,
        "{}",
        controller.metrics()
    );
    let message = status["last_error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&served.url()),
        "the fetch error names the remote: {message}"
    );
    // Nothing fetched, so the controller does not know the new commit and serves the old one.
    assert_eq!(status["head"], first.as_str(), "{status:#}");
    assert_eq!(status["applied"]["commit"], first.as_str(), "{status:#}");
    let healthz = controller.get("/healthz");
    assert_eq!(healthz.status, 200, "{}", healthz.body);
    assert_password(&fleet, PASSWORD);

    served.restart_daemon();
    let status = controller.wait_status("the pushed commit applied", |s| {
        s["applied"]["commit"] == second.as_str()
    });
    assert_password(&fleet, rotated);
    assert_eq!(status["head"], second.as_str());
    assert!(
        status["last_error"].is_null(),
        "a clean apply clears the fetch error: {status:#}"
    );
    assert_eq!(status["targets"]["payments"]["state"], "in-sync");
    controller.assert_never_shows(&[PASSWORD, rotated, WEBHOOK_SECRET]);
}

#[test]
fn webhook_with_a_valid_signature_or_token_triggers_a_fetch_and_a_bad_one_does_not() {
    let fleet = Fleet::new();
    let served = fleet.serve_remote();
    let port = free_port();
    // Polling once an hour: after the startup fetch only a webhook makes the controller fetch.
    fleet.write_remote_config(
        &served.url(),
        &fleet.http_and_poll_yaml(port, WEBHOOK_SECRET, "1h"),
    );
    let first = head(&fleet);
    let mut controller = fleet.spawn_controller(port);
    controller.wait_status("the first commit applied", |s| {
        s["applied"]["commit"] == first.as_str()
    });

    let rotated = "rotated-by-webhook-a8e3";
    let second = signed_password_change(&fleet, rotated, "rotate, announced by a webhook");
    fleet.push_to(&served.bare, false);
    let fetches_ok = "sealops_fetches_total{result=\"ok\"}";
    let before = controller.metric(fetches_ok);
    assert!(before > 0.0, "the startup fetch is counted");

    let forged = github_signature("not-the-secret", PUSH_BODY);
    let reply = controller.post(
        "/hooks/git",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &forged),
        ],
        PUSH_BODY,
    );
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(
        controller.metric("sealops_webhooks_total{result=\"rejected\"}"),
        1.0
    );
    // A negative check: give a wrongly triggered fetch the time to show, then look.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        controller.metric(fetches_ok),
        before,
        "a rejected webhook fetched"
    );
    let status = controller.status();
    assert_eq!(
        status["head"],
        first.as_str(),
        "a rejected webhook fetched: {status:#}"
    );
    assert_password(&fleet, PASSWORD);

    let signature = github_signature(WEBHOOK_SECRET, PUSH_BODY);
    let reply = controller.post(
        "/hooks/git",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &signature),
        ],
        PUSH_BODY,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    controller.wait_status("the commit announced by GitHub's webhook applied", |s| {
        s["applied"]["commit"] == second.as_str()
    });
    assert_password(&fleet, rotated);
    assert!(controller.metric(fetches_ok) > before);

    // GitLab's form: the secret itself in X-Gitlab-Token.
    let reply = controller.post(
        "/hooks/git",
        &[("X-Gitlab-Token", "not-the-secret")],
        PUSH_BODY,
    );
    assert_eq!(reply.status, 401, "{}", reply.body);
    let again = "rotated-by-gitlab-0b6c";
    let third = signed_password_change(&fleet, again, "rotate, announced by GitLab");
    fleet.push_to(&served.bare, false);
    let reply = controller.post(
        "/hooks/git",
        &[("X-Gitlab-Token", WEBHOOK_SECRET)],
        PUSH_BODY,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    controller.wait_status("the commit announced by GitLab's webhook applied", |s| {
        s["applied"]["commit"] == third.as_str()
    });
    assert_password(&fleet, again);
    assert_eq!(
        controller.metric("sealops_webhooks_total{result=\"accepted\"}"),
        2.0
    );
    assert_eq!(
        controller.metric("sealops_webhooks_total{result=\"rejected\"}"),
        2.0
    );
    controller.assert_never_shows(&[PASSWORD, rotated, again, WEBHOOK_SECRET]);
}

#[test]
fn force_push_is_refused_unless_allowed_locally() {
    let fleet = Fleet::new();
    let served = fleet.serve_remote();
    fleet.write_remote_config(&served.url(), "");
    let a = head(&fleet);
    let (code, status, stderr_a) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr_a}");
    assert_eq!(status["applied"]["commit"], a.as_str());

    let value_b = "value-of-b-4417";
    let b = signed_password_change(&fleet, value_b, "B");
    fleet.push_to(&served.bare, false);
    let (code, status, stderr_b) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr_b}");
    assert_eq!(status["applied"]["commit"], b.as_str());
    assert_password(&fleet, value_b);

    // Rewrite history: B is dropped, C (signed, authorised) takes its place.
    common::git(fleet.repo(), &["reset", "-q", "--hard", &a]);
    let value_c = "value-of-c-90d2";
    let c = signed_password_change(&fleet, value_c, "C, after dropping B");
    fleet.push_to(&served.bare, true);

    let (code, status, stderr_refused) = fleet.once();
    assert_eq!(code, 1, "{status:#}\n{stderr_refused}");
    assert_eq!(status["head"], c.as_str(), "{status:#}");
    assert_eq!(status["applied"]["commit"], b.as_str(), "{status:#}");
    let refusals = status["refusals"].as_array().expect("refusals");
    assert!(
        refusals
            .iter()
            .any(|r| r["reason"] == "force-push" && r["commit"] == c.as_str()),
        "{status:#}"
    );
    assert_eq!(status["last_error"]["reason"], "force-push", "{status:#}");
    assert_password(&fleet, value_b);

    // Allowed in the local configuration: the new history is judged from the trust anchor.
    fleet.write_remote_config(&served.url(), "allow_force_push: true\n");
    let (code, status, stderr_allowed) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr_allowed}");
    assert_eq!(status["applied"]["commit"], c.as_str(), "{status:#}");
    assert!(
        status["refusals"].as_array().is_some_and(|r| r.is_empty()),
        "{status:#}"
    );
    assert_password(&fleet, value_c);
    assert_no_plaintext(
        &[
            &stderr_a,
            &stderr_b,
            &stderr_refused,
            &stderr_allowed,
            &status.to_string(),
        ],
        &[PASSWORD, value_b, value_c],
    );
}

#[test]
fn sigterm_while_idle_exits_zero() {
    let fleet = Fleet::new();
    let served = fleet.serve_remote();
    let port = free_port();
    fleet.write_remote_config(
        &served.url(),
        &fleet.http_and_poll_yaml(port, WEBHOOK_SECRET, "1h"),
    );
    let first = head(&fleet);
    let mut controller = fleet.spawn_controller(port);
    controller.wait_status("the first commit applied", |s| {
        s["applied"]["commit"] == first.as_str()
    });
    let ready = controller.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    controller.assert_never_shows(&[PASSWORD, WEBHOOK_SECRET]);

    let exit = controller.terminate();
    assert_eq!(exit.code(), Some(0), "{}", controller.log_excerpt());
    assert!(
        controller.stderr().contains("shutting down"),
        "{}",
        controller.log_excerpt()
    );
    assert_password(&fleet, PASSWORD);
    // The metrics text is gone with the process; the log is what remains to check.
    assert!(!controller.stderr().contains(PASSWORD));
}
