//! The controller binary: --version, check-config, and `run` refusing a configuration it
//! cannot load (the reconcile itself is tested end to end in tests/controller_*.rs).

use assert_cmd::Command;
use predicates::prelude::*;

fn controller() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealops-controller"))
}

#[test]
fn prints_its_version() {
    controller()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("sealops-controller 0."));
}

#[test]
fn run_without_a_configuration_exits_2_naming_the_file() {
    controller()
        .args(["run", "--once", "--config", "/nonexistent/controller.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/controller.yaml"));
}

#[test]
fn check_config_reports_what_is_missing_on_this_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("controller.yaml");
    let text = format!(
        "sealops: v1\nrepository:\n  path: {d}/repo\nidentity_files: [{d}/cluster.key]\nstate_dir: {d}/state\noutput_roots: [{d}/out]\n\
         trust:\n  allowed_signers_file: {d}/allowed_signers\nhooks:\n  reload:\n    command: [/nonexistent/reload]\n",
        d = dir.path().display()
    );
    std::fs::write(&config, text).expect("write");
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("identity_files: cannot read identity file")
                .and(predicate::str::contains("output_roots: output root"))
                .and(predicate::str::contains("is not a git repository"))
                .and(predicate::str::contains(
                    "hooks.reload: program /nonexistent/reload not found",
                ))
                .and(predicate::str::contains("no trust anchor is pinned"))
                .and(predicate::str::contains(
                    "initial_commit: <a commit you reviewed>",
                )),
        );

    // Make everything real: then it is ready.
    std::fs::create_dir_all(dir.path().join("repo/.git")).expect("repo");
    std::fs::create_dir_all(dir.path().join("out")).expect("out");
    std::fs::write(dir.path().join("allowed_signers"), "").expect("signers");
    let (_, key) = sealops_core::keys::generate();
    sealops_core::fsutil::create_new(&dir.path().join("cluster.key"), key.as_bytes(), 0o600)
        .expect("key");
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("/nonexistent/reload", "/bin/true")
        .replace(
            "allowed_signers\nhooks:",
            "allowed_signers\n  initial_commit: 0123456789abcdef0123456789abcdef01234567\nhooks:",
        );
    std::fs::write(&config, text).expect("write");
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .success()
        .stderr(predicate::str::contains("ready"));

    std::fs::write(&config, "sealops: v1\nrepository: {}\n").expect("write");
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("controller.yaml"));
}

#[test]
fn check_config_reports_an_audit_sink_it_cannot_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("repo/.git")).expect("repo");
    std::fs::create_dir_all(dir.path().join("out")).expect("out");
    std::fs::write(dir.path().join("allowed_signers"), "").expect("signers");
    let (_, key) = sealops_core::keys::generate();
    sealops_core::fsutil::create_new(&dir.path().join("cluster.key"), key.as_bytes(), 0o600)
        .expect("key");
    // The parent is a regular file: nobody, root included, can create the sink there.
    std::fs::write(dir.path().join("plain"), "").expect("write");
    let config = dir.path().join("controller.yaml");
    let write = |sink: &str| {
        let text = format!(
            "sealops: v1\nrepository:\n  path: {d}/repo\nidentity_files: [{d}/cluster.key]\nstate_dir: {d}/state\noutput_roots: [{d}/out]\n\
             trust:\n  allowed_signers_file: {d}/allowed_signers\n  initial_commit: 0123456789abcdef0123456789abcdef01234567\n\
             audit:\n  sinks:\n    - file: {sink}\n    - stdout: true\n  require: all\n",
            d = dir.path().display()
        );
        std::fs::write(&config, text).expect("write");
    };
    let unwritable = dir.path().join("plain/audit.jsonl");
    write(&unwritable.display().to_string());
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains(format!("audit.sinks: {}", unwritable.display()))
                .and(predicate::str::contains("every action is refused")),
        );

    let writable = dir.path().join("audit.jsonl");
    write(&writable.display().to_string());
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .success()
        .stderr(predicate::str::contains("ready"));
    assert!(!writable.exists(), "check-config creates no sink file");

    write("audit.jsonl");
    controller()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be an absolute path"));
}

#[test]
fn the_example_configuration_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/controller/controller.yaml"
    );
    let text = std::fs::read_to_string(path).expect("example exists");
    let config = sealops_core::controller_config::ControllerConfig::parse(&text, path)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.node.labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert!(config.hooks.contains_key("restart-payments"));
}
