//! Golden tests of every `sealops` command's happy path and main errors, on the real binary.

use crate::common::World;
use predicates::prelude::*;

#[test]
fn keygen_writes_a_private_identity_once() {
    let world = World::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&world.key)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(world.public.starts_with("age1"));
    let before = std::fs::read(&world.key).expect("read");
    world
        .sealops()
        .args(["keygen", "-o"])
        .arg(&world.key)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "already exists; sealops never overwrites an identity",
        ));
    assert_eq!(std::fs::read(&world.key).expect("read"), before);

    // Default location: ~/.config/sealops/identity.txt.
    world
        .sealops()
        .arg("keygen")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("age1"));
    assert!(world.home.join(".config/sealops/identity.txt").is_file());
}

#[test]
fn init_creates_the_layout_and_refuses_to_clobber() {
    let world = World::new();
    for folder in ["secrets", "policies", "identities", "targets", "backends"] {
        assert!(world.repo.join(folder).is_dir(), "{folder}");
    }
    assert!(world.repo.join(".sealops/allowed_signers").is_file());
    let config = std::fs::read_to_string(world.repo.join(".sealops/config.yaml")).expect("config");
    assert!(
        config.contains(&world.public) && config.contains("name: prod"),
        "{config}"
    );
    world
        .sealops()
        .args(["init", "--recipient", &world.public])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    world
        .sealops()
        .args(["init", "elsewhere", "--recipient", "age1nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid recipient"));
}

#[test]
fn seal_and_reveal_in_every_format() {
    let world = World::new();
    std::fs::write(world.dir.path().join("tls.key"), b"\x00\x01binary\xff").expect("write");
    std::fs::write(
        world.dir.path().join("app.env"),
        "FROM_ENV=env-value\nQUOTED=\"a b\"\n",
    )
    .expect("write");
    world
        .sealops()
        .args([
            "seal",
            "apps/payments/db",
            "--from-literal",
            "PASSWORD=s3cret",
            "--plain",
            "HOST=db.internal",
        ])
        .arg("--from-env-file")
        .arg(world.dir.path().join("app.env"))
        .arg("--from-file")
        .arg(format!(
            "tls.key={}",
            world.dir.path().join("tls.key").display()
        ))
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Created secrets/apps/payments/db.yaml: 4 sealed, 1 plain",
        ));
    world
        .sealops()
        .args(["seal", "apps/payments/db", "--stdin", "TOKEN"])
        .write_stdin("line1\nline2\n")
        .assert()
        .success();

    let manifest = world.manifest("apps/payments/db");
    for secret in ["s3cret", "env-value", "line1"] {
        assert!(
            !manifest.contains(secret),
            "plaintext {secret} in manifest:\n{manifest}"
        );
    }
    assert!(manifest.contains("HOST: \"db.internal\""));

    let raw = world
        .sealops_with_key()
        .args(["reveal", "apps/payments/db", "--key", "tls.key"])
        .output()
        .expect("runs");
    assert_eq!(raw.stdout, b"\x00\x01binary\xff");
    let token =
        world.stdout(
            world
                .sealops_with_key()
                .args(["reveal", "apps/payments/db", "-k", "TOKEN"]),
        );
    assert_eq!(token, "line1\nline2\n");

    world
        .sealops_with_key()
        .args(["reveal", "apps/payments/db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the value of tls.key is binary; print it alone with --key tls.key",
        ));
    world
        .sealops()
        .args(["unset", "apps/payments/db", "tls.key"])
        .assert()
        .success();

    let yaml = world.stdout(
        world
            .sealops_with_key()
            .args(["reveal", "apps/payments/db"]),
    );
    assert_eq!(
        yaml,
        "FROM_ENV: \"env-value\"\nHOST: \"db.internal\"\nPASSWORD: \"s3cret\"\nQUOTED: \"a b\"\nTOKEN: \"line1\\nline2\\n\"\n"
    );
    let json =
        world.stdout(
            world
                .sealops_with_key()
                .args(["reveal", "apps/payments/db", "-o", "json"]),
        );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(parsed["PASSWORD"], "s3cret");
    assert_eq!(parsed["TOKEN"], "line1\nline2\n");
    let env = world.stdout(world.sealops_with_key().args([
        "reveal",
        "secrets/apps/payments/db.yaml",
        "-o",
        "env",
    ]));
    assert!(
        env.contains("PASSWORD='s3cret'\n") && env.contains("QUOTED='a b'\n"),
        "{env}"
    );

    // Identity from the environment variable, and from the default file.
    world
        .sealops()
        .env("SEALOPS_IDENTITY_FILE", &world.key)
        .args(["reveal", "apps/payments/db", "-k", "PASSWORD"])
        .assert()
        .success()
        .stdout("s3cret");
    let default = world.home.join(".config/sealops");
    std::fs::create_dir_all(&default).expect("mkdir");
    std::fs::copy(&world.key, default.join("identity.txt")).expect("copy");
    world
        .sealops()
        .args(["reveal", "apps/payments/db", "-k", "PASSWORD"])
        .assert()
        .success()
        .stdout("s3cret");
}

#[test]
fn seal_without_identity_leaves_other_keys_byte_identical() {
    let world = World::new();
    world
        .sealops()
        .args([
            "seal",
            "a",
            "--from-literal",
            "A=1",
            "--from-literal",
            "B=2",
        ])
        .assert()
        .success();
    let before = world.manifest("a");
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "C=3"])
        .assert()
        .success();
    let after = world.manifest("a");
    for key in ["  A: ", "  B: "] {
        let line = |t: &str| {
            t.lines()
                .find(|l| l.starts_with(key))
                .expect("line")
                .to_owned()
        };
        assert_eq!(line(&before), line(&after), "{key} changed");
    }
    assert_eq!(
        after.matches("recipients: [").count(),
        2,
        "a seal without identity adds a session"
    );
    let values = world.stdout(world.sealops_with_key().args(["reveal", "a", "-o", "json"]));
    let parsed: serde_json::Value = serde_json::from_str(&values).expect("json");
    assert_eq!(parsed, serde_json::json!({"A": "1", "B": "2", "C": "3"}));
}

#[test]
fn set_and_unset() {
    let world = World::new();
    world
        .sealops()
        .args(["set", "ci/deploy", "TOKEN", "t0k"])
        .assert()
        .success();
    world
        .sealops()
        .args(["set", "ci/deploy", "URL", "https://x", "--plain"])
        .assert()
        .success();
    world
        .sealops()
        .args(["set", "ci/deploy", "PIPE", "-"])
        .write_stdin("from-stdin")
        .assert()
        .success();
    let json = world.stdout(
        world
            .sealops_with_key()
            .args(["reveal", "ci/deploy", "-o", "json"]),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        parsed,
        serde_json::json!({"PIPE": "from-stdin", "TOKEN": "t0k", "URL": "https://x"})
    );
    world
        .sealops()
        .args(["unset", "ci/deploy", "TOKEN", "URL"])
        .assert()
        .success();
    world
        .sealops()
        .args(["unset", "ci/deploy", "NOPE"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has no key NOPE (nothing was changed)",
        ));
    let manifest = world.manifest("ci/deploy");
    assert!(!manifest.contains("TOKEN") && !manifest.contains("URL") && manifest.contains("PIPE"));
    assert_eq!(
        manifest.matches("recipients: [").count(),
        1,
        "unused sessions are dropped"
    );
    world
        .sealops()
        .args(["set", "ci/deploy", "bad key", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid key name"));
}

#[test]
fn wrong_identity_names_both_sides() {
    let world = World::new();
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "A=1"])
        .assert()
        .success();
    let other = world.dir.path().join("other.key");
    let other_public = world.stdout(world.sealops().args(["keygen", "-o"]).arg(&other));
    world
        .sealops()
        .arg("-i")
        .arg(&other)
        .args(["reveal", "a"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "secrets/a.yaml: none of your identities ({}) is a recipient of this manifest; its recipients are prod ({})",
            other_public.trim(),
            world.public
        )));
    world
        .sealops()
        .args(["reveal", "a"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no identity: pass --identity FILE",
        ));
}

#[test]
fn malformed_yaml_and_unknown_fields_name_file_line_and_column() {
    let world = World::new();
    std::fs::create_dir_all(world.repo.join("secrets/bad")).expect("mkdir");
    std::fs::write(
        world.repo.join("secrets/bad/syntax.yaml"),
        "sealops: v1\npath: bad/syntax\ndata: [unclosed\n",
    )
    .expect("write");
    std::fs::write(
        world.repo.join("secrets/bad/field.yaml"),
        "sealops: v1\npath: bad/field\nsesions: {}\n",
    )
    .expect("write");
    std::fs::write(
        world.repo.join("secrets/bad/plaintext.yaml"),
        "sealops: v1\npath: bad/plaintext\ndata:\n  PASSWORD: hunter2\n",
    )
    .expect("write");
    let out = world
        .sealops()
        .args(["verify", "bad"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secrets/bad/syntax.yaml:3:"), "{stderr}");
    assert!(
        stderr.contains("secrets/bad/field.yaml:3:1: unknown field `sesions`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secrets/bad/plaintext.yaml:4: key PASSWORD: not a sealed value"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "a plaintext must never be echoed: {stderr}"
    );
    world
        .sealops_with_key()
        .args(["reveal", "bad/field"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("secrets/bad/field.yaml:3:1"));
}

#[test]
fn missing_repository_says_how_to_fix_it() {
    let world = World::new();
    let empty = world.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    world
        .sealops()
        .current_dir(&empty)
        .args(["seal", "a", "--from-literal", "A=1"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no sealops repository at")
                .and(predicate::str::contains("run `sealops init`")),
        );
    world
        .sealops()
        .args(["reveal", "does/not/exist"])
        .arg("-i")
        .arg(&world.key)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no manifest secrets/does/not/exist.yaml",
        ));
}

#[test]
fn secrets_never_appear_in_errors() {
    let world = World::new();
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "hunter2-no-equals-sign"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--from-literal expects KEY=VALUE")
                .and(predicate::str::contains("hunter2").not()),
        );
    std::fs::write(
        world.dir.path().join("bad.env"),
        "GOOD=1\nthis is hunter2 not a pair\n",
    )
    .expect("write");
    world
        .sealops()
        .args(["seal", "a", "--from-env-file"])
        .arg(world.dir.path().join("bad.env"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hunter2").not());
}

#[test]
fn verify_reports_recipient_drift_and_opens_values_with_an_identity() {
    let world = World::new();
    world
        .sealops()
        .args(["seal", "apps/a", "--from-literal", "A=1"])
        .assert()
        .success();
    world
        .sealops()
        .args(["seal", "apps/b", "--from-literal", "B=2"])
        .assert()
        .success();
    world
        .sealops()
        .arg("verify")
        .assert()
        .success()
        .stderr(predicate::str::contains("2 manifests verified"));
    world
        .sealops_with_key()
        .arg("verify")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "2 manifests verified, every value opened",
        ));

    let laptop = world.dir.path().join("laptop.key");
    let laptop_public = world.stdout(world.sealops().args(["keygen", "-o"]).arg(&laptop));
    world
        .sealops()
        .args([
            "recipients",
            "add",
            laptop_public.trim(),
            "--name",
            "laptop",
            "--role",
            "person",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("run `sealops rewrap --all`"));
    world.sealops().arg("verify").assert().code(1).stderr(
        predicate::str::contains("is not wrapped to recipient laptop")
            .and(predicate::str::contains("2 problems in 2 manifests")),
    );
    world
        .sealops()
        .args(["rewrap", "--all"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no identity"));
    world
        .sealops_with_key()
        .args(["rewrap", "--all"])
        .assert()
        .success()
        .stderr(predicate::str::contains("Rewrapped 2 of 2"));
    world.sealops().arg("verify").assert().success();
    world
        .sealops()
        .arg("-i")
        .arg(&laptop)
        .args(["reveal", "apps/a", "-k", "A"])
        .assert()
        .success()
        .stdout("1");

    let list = world.stdout(world.sealops().args(["recipients", "list"]));
    assert!(
        list.contains("prod\t") && list.contains("laptop\t") && list.contains("[person]"),
        "{list}"
    );

    world
        .sealops()
        .args(["recipients", "remove", "laptop"])
        .assert()
        .success()
        .stderr(predicate::str::contains("rotate-data-key"));
    world
        .sealops()
        .arg("verify")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no longer a recipient"));
    world
        .sealops_with_key()
        .args(["rotate-data-key", "apps"])
        .assert()
        .success();
    world.sealops().arg("verify").assert().success();
    world
        .sealops()
        .arg("-i")
        .arg(&laptop)
        .args(["reveal", "apps/a"])
        .assert()
        .code(2);
    world
        .sealops_with_key()
        .args(["reveal", "apps/b", "-k", "B"])
        .assert()
        .success()
        .stdout("2");
}

#[test]
fn reveal_a_whole_tree_in_one_process() {
    let world = World::new();
    for (path, value) in [("apps/a", "1"), ("apps/b", "2"), ("apps/deep/c", "3")] {
        world
            .sealops()
            .args(["seal", path, "--from-literal", &format!("V={value}")])
            .assert()
            .success();
    }
    let json = world.stdout(
        world
            .sealops_with_key()
            .args(["reveal", "apps", "-o", "json"]),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        parsed,
        serde_json::json!({"apps/a": {"V": "1"}, "apps/b": {"V": "2"}, "apps/deep/c": {"V": "3"}})
    );
    let yaml = world.stdout(world.sealops_with_key().args(["reveal", "secrets/apps"]));
    assert_eq!(
        yaml,
        "apps/a:\n  V: \"1\"\napps/b:\n  V: \"2\"\napps/deep/c:\n  V: \"3\"\n"
    );
    world
        .sealops_with_key()
        .args(["reveal", "apps", "-o", "env"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-o env needs one manifest"));
}

#[test]
fn edit_seals_only_changes_and_removes_its_temp_file() {
    let world = World::new();
    world
        .sealops()
        .args([
            "seal",
            "apps/db",
            "--from-literal",
            "KEEP=same",
            "--from-literal",
            "CHANGE=old",
            "--from-literal",
            "DROP=x",
        ])
        .assert()
        .success();
    let before = world.manifest("apps/db");
    let seen = world.dir.path().join("seen-path");
    let editor = world.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nset -e\nprintf %s \"$1\" > {seen}\nstat -c %a \"$1\" >> {seen}\n\
             sed -i -e 's/\"old\"/\"new\"/' -e '/DROP/d' -e 's/^data:$/data:\\n  ADDED: \"added\"/' \"$1\"\n",
            seen = seen.display()
        ),
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    world
        .sealops_with_key()
        .env("EDITOR", &editor)
        .args(["edit", "apps/db"])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 sealed, 1 removed"));
    let seen = std::fs::read_to_string(&seen).expect("editor ran");
    let (temp_path, mode) = seen.split_at(seen.find('\n').expect("two lines") - 3);
    assert_eq!(mode.trim(), "600", "temp file mode");
    assert!(
        !std::path::Path::new(temp_path).exists(),
        "temp file {temp_path} was not removed"
    );
    let after = world.manifest("apps/db");
    let keep = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("  KEEP: "))
            .expect("KEEP")
            .to_owned()
    };
    assert_eq!(
        keep(&before),
        keep(&after),
        "unchanged values stay byte-identical"
    );
    let json = world.stdout(
        world
            .sealops_with_key()
            .args(["reveal", "apps/db", "-o", "json"]),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        parsed,
        serde_json::json!({"ADDED": "added", "CHANGE": "new", "KEEP": "same"})
    );

    // An editor that fails changes nothing and still removes the file.
    world
        .sealops_with_key()
        .env("EDITOR", "false")
        .args(["edit", "apps/db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing was changed"));
    assert_eq!(world.manifest("apps/db"), after);
}

#[test]
fn schemas_in_the_repository_match_the_types() {
    let world = World::new();
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    world
        .sealops()
        .arg("schema")
        .arg("--check")
        .arg(&schemas)
        .assert()
        .success();
    let stale = world.dir.path().join("stale");
    std::fs::create_dir_all(&stale).expect("mkdir");
    std::fs::write(stale.join("config.v1.json"), "{}").expect("write");
    world
        .sealops()
        .arg("schema")
        .arg("--check")
        .arg(&stale)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "differs from the generated schema",
        ));
}

#[test]
fn help_completions_and_man_page() {
    let world = World::new();
    for command in [
        "keygen",
        "textconv",
        "merge-driver",
        "git-setup",
        "precommit",
        "init",
        "seal",
        "set",
        "unset",
        "reveal",
        "edit",
        "rewrap",
        "rotate-data-key",
        "verify",
        "schema",
        "completions",
        "man",
        "check",
        "approve",
        "approvals",
    ] {
        world
            .sealops()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    world
        .sealops()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_sealops"));
    world
        .sealops()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH sealops"));
    let pages = world.dir.path().join("man");
    world
        .sealops()
        .arg("man")
        .arg("--out")
        .arg(&pages)
        .assert()
        .success();
    assert!(pages.join("sealops-seal.1").is_file());
}

#[test]
fn the_example_repository_verifies_and_reveals() {
    let world = World::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // git does not keep 0600; a copy with private permissions is what a user would make.
    let key = world.dir.path().join("example.key");
    std::fs::copy(examples.join("keys/TEST-ONLY-cluster.key"), &key).expect("copy");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    world
        .sealops()
        .arg("--repo")
        .arg(&examples)
        .arg("verify")
        .arg("--identity")
        .arg(&key)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "3 manifests verified, every value opened",
        ));
    let json = world.stdout(
        world
            .sealops()
            .arg("--repo")
            .arg(&examples)
            .args(["reveal", "apps/payments/db", "-o", "json", "-i"])
            .arg(&key),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        parsed,
        serde_json::json!({
            "DB_HOST": "db.payments.internal",
            "DB_PASSWORD": "example-only-password",
            "DB_PORT": "5432",
            "DB_USER": "payments"
        })
    );
}

#[test]
fn a_copied_manifest_is_refused_before_anything_is_written() {
    let world = World::new();
    world
        .sealops()
        .args(["seal", "apps/a", "--from-literal", "A=1"])
        .assert()
        .success();
    let original = world.manifest("apps/a");
    std::fs::copy(
        world.repo.join("secrets/apps/a.yaml"),
        world.repo.join("secrets/apps/b.yaml"),
    )
    .expect("copy");
    world
        .sealops()
        .args(["set", "apps/b", "K", "v"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "declares path apps/a but lives at secrets/apps/b.yaml",
        ));
    assert_eq!(
        world.manifest("apps/a"),
        original,
        "the other manifest was not overwritten"
    );
    world
        .sealops_with_key()
        .args(["edit", "apps/b"])
        .env("EDITOR", "true")
        .assert()
        .code(2);
    world
        .sealops_with_key()
        .args(["reveal", "apps/b"])
        .assert()
        .code(2);
    world.sealops().args(["verify", "apps/b"]).assert().code(1);
}

#[test]
fn rewrap_refuses_a_session_a_removed_recipient_can_open() {
    let world = World::new();
    let laptop = world.dir.path().join("laptop.key");
    let public = world.stdout(world.sealops().args(["keygen", "-o"]).arg(&laptop));
    world
        .sealops()
        .args(["recipients", "add", public.trim(), "--name", "laptop"])
        .assert()
        .success();
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "A=1"])
        .assert()
        .success();
    world
        .sealops()
        .args(["recipients", "remove", "laptop"])
        .assert()
        .success();
    world
        .sealops_with_key()
        .args(["rewrap", "--all"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no longer a recipient")
                .and(predicate::str::contains("rotate-data-key")),
        );
    world
        .sealops_with_key()
        .args(["rotate-data-key", "--all"])
        .assert()
        .success();
    world
        .sealops()
        .arg("-i")
        .arg(&laptop)
        .args(["reveal", "a"])
        .assert()
        .code(2);
}

#[test]
fn a_pasted_private_key_is_never_echoed() {
    let world = World::new();
    let secret = std::fs::read_to_string(&world.key).expect("key");
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("key line");
    for args in [
        vec!["recipients", "add", secret],
        vec!["recipients", "remove", secret],
        vec!["init", "x", "--recipient", secret],
    ] {
        world.sealops().args(&args).assert().code(2).stderr(
            predicate::str::contains(secret)
                .not()
                .and(predicate::str::contains("private key")),
        );
    }
}

#[test]
fn the_example_policies_say_who_reads_and_who_writes() {
    let world = World::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    world
        .sealops()
        .args(["policy", "check"])
        .arg(examples.join("policies"))
        .assert()
        .success();
    world
        .sealops()
        .args(["policy", "fmt", "--check"])
        .arg(examples.join("policies"))
        .assert()
        .success();
    let readers = world.stdout(world.sealops().arg("--repo").arg(&examples).args([
        "policy",
        "who-can",
        "read",
        "secrets/apps/payments/db",
    ]));
    assert!(
        readers.contains("payments\tservice")
            && !readers.contains("web\t")
            && !readers.contains("alice"),
        "{readers}"
    );
    let writers = world.stdout(world.sealops().arg("--repo").arg(&examples).args([
        "policy",
        "who-can",
        "update",
        "secrets/apps/payments/db",
    ]));
    assert!(
        writers.contains("alice@example.com") && !writers.contains("payments\tservice"),
        "{writers}"
    );
    let approvers = world.stdout(world.sealops().arg("--repo").arg(&examples).args([
        "policy",
        "who-can",
        "sudo",
        "sys/policy/payments-dev",
    ]));
    assert_eq!(
        approvers,
        "bob@example.com\thuman\ncarol@example.com\thuman\n"
    );
}

#[test]
fn the_example_targets_parse_and_render() {
    use sealops_core::secret::SecretValue;
    use std::collections::BTreeMap;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/targets");
    let text = std::fs::read_to_string(examples.join("payments.yaml")).expect("target");
    let target = sealops_core::target::Target::parse(&text, "payments.yaml").expect("parses");
    let values: BTreeMap<String, SecretValue> = [
        ("DB_USER", "u"),
        ("DB_PASSWORD", "p"),
        ("DB_HOST", "h"),
        ("DB_PORT", "5432"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), SecretValue::from(v)))
    .collect();
    let url = sealops_core::render::output(&target.outputs[1], &values).expect("renders");
    assert_eq!(url.as_slice(), b"postgres://u:p@h:5432/payments");
    let text = std::fs::read_to_string(examples.join("web.yaml")).expect("target");
    sealops_core::target::Target::parse(&text, "web.yaml").expect("parses");
}
