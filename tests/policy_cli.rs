//! `sealops policy fmt|check|explain|who-can|eval` run as a user runs them.

use crate::common;

use assert_cmd::Command;
use predicates::prelude::*;

fn sealops() -> Command {
    Command::new(common::SEALOPS)
}

#[test]
fn fmt_rewrites_and_check_mode_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("deploy.hcl");
    std::fs::write(&file, "# deploy\npath   \"secrets/*\"   {\n\tcapabilities=[\"read\",\"list\"]\n  policy = \"read\"\n}\n").expect("write");
    sealops()
        .args(["policy", "fmt", "--check"])
        .arg(&file)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("not in canonical format"));
    sealops()
        .args(["policy", "fmt"])
        .arg(&file)
        .assert()
        .success();
    let formatted = std::fs::read_to_string(&file).expect("read");
    assert_eq!(
        formatted,
        "# deploy\npath \"secrets/*\" {\n  policy = \"read\"\n  capabilities = [\"read\", \"list\"]\n}\n"
    );
    sealops()
        .args(["policy", "fmt", "--check"])
        .arg(&file)
        .assert()
        .success();
}

#[test]
fn check_reports_every_broken_file_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("good.hcl"),
        "path \"a\" { capabilities = [\"read\"] }\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("bad.hcl"),
        "path \"a\" {\n  capabilities = [\"banana\"]\n}\n",
    )
    .expect("write");
    sealops()
        .args(["policy", "check"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "bad.hcl:2: path \"a\": invalid capability \"banana\"",
        ));
    sealops()
        .args(["policy", "check"])
        .arg(dir.path().join("good.hcl"))
        .assert()
        .success();
}

#[test]
fn eval_exits_2_on_a_policy_that_does_not_parse_and_0_when_denied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.hcl");
    std::fs::write(&bad, "nope = 1\n").expect("write");
    sealops()
        .args(["policy", "eval", "-o", "json", "--request", "-", "--policy"])
        .arg(&bad)
        .write_stdin(r#"{"path": "a", "operation": "read"}"#)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid key \"nope\" on line 1"));
    let good = dir.path().join("deploy.hcl");
    std::fs::write(&good, "path \"a/*\" { capabilities = [\"read\"] }\n").expect("write");
    sealops()
        .args(["policy", "eval", "-o", "json", "--request", "-", "--policy"])
        .arg(&good)
        .write_stdin(r#"{"path": "a/b", "operation": "update"}"#)
        .assert()
        .success()
        .stdout("{\"allowed\":false,\"root_privs\":false,\"capabilities\":[\"read\"],\"granting_policies\":[],\"matched\":\"a/*\"}\n");
}

#[test]
fn explain_names_the_rules_and_the_winner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, "path \"foo/*\" { capabilities = [\"read\"] }\npath \"foo/+\" { capabilities = [\"update\"] }\n").expect("write");
    sealops()
        .args(["policy", "explain", "--request", "-", "--policy"])
        .arg(&file)
        .write_stdin(r#"{"path": "foo/bar", "operation": "read"}"#)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"foo/+\" wins over \"foo/*\": it does not end in `*`",
        ))
        .stdout(predicate::str::contains("from policy \"p\" line 2"))
        .stdout(predicate::str::contains("DENIED to read"));
}

#[test]
fn who_can_lists_identities() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("policies")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("identities")).expect("mkdir");
    std::fs::write(
        dir.path().join("policies/read.hcl"),
        "path \"secrets/apps/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("identities/web.yaml"),
        "sealops: v1\nname: web\nkind: service\npolicies: [read]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("identities/ops.yaml"),
        "sealops: v1\nname: ops@example.com\nkind: human\npolicies: [root]\n",
    )
    .expect("write");
    sealops()
        .args(["policy", "who-can", "read", "secrets/apps/db", "--repo"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout("ops@example.com\thuman (via root)\nweb\tservice (via read)\n");
    sealops()
        .args(["policy", "who-can", "sudo", "sys/policy/x", "--repo"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout("ops@example.com\thuman (via root)\n");
}

#[test]
fn every_command_has_examples_in_help() {
    for command in ["fmt", "check", "eval", "explain", "who-can"] {
        sealops()
            .args(["policy", command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}
