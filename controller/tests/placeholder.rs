//! Until the sync controller lands, the binary says so and fails, so nothing mistakes it for a
//! working controller.

use assert_cmd::Command;
use predicates::prelude::*;

#[test]
fn prints_its_version() {
    Command::new(env!("CARGO_BIN_EXE_sealops-controller"))
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("sealops-controller 0."));
}

#[test]
fn every_other_command_is_not_implemented_yet() {
    Command::new(env!("CARGO_BIN_EXE_sealops-controller"))
        .args(["run", "--config", "controller.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not implemented yet"));
}
