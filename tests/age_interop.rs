//! Interop with the real `age` CLI: sealops envelopes are age files, and keys work both ways.

use std::process::Command;

use crate::common::{World, require_tool};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn age_opens_a_session_envelope_written_by_sealops() {
    require_tool("age");
    let world = World::new();
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "A=1"])
        .assert()
        .success();
    let manifest = world.manifest("a");
    let armored: String = manifest
        .lines()
        .skip_while(|l| !l.contains("-----BEGIN AGE ENCRYPTED FILE-----"))
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let envelope = world.dir.path().join("session.age");
    std::fs::write(&envelope, armored).expect("write");
    let key = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&world.key)
        .arg(&envelope));
    assert_eq!(key.len(), 32, "the envelope holds the 32-byte session key");
}

#[test]
fn an_age_keygen_identity_reveals_a_sealops_manifest() {
    require_tool("age-keygen");
    let world = World::new();
    let age_key = world.dir.path().join("age.key");
    run(Command::new("age-keygen").arg("-o").arg(&age_key));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&age_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let public =
        String::from_utf8(run(Command::new("age-keygen").arg("-y").arg(&age_key))).expect("utf8");
    world
        .sealops()
        .args(["recipients", "add", public.trim(), "--name", "age-made"])
        .assert()
        .success();
    world
        .sealops()
        .args(["seal", "a", "--from-literal", "A=from-age-key"])
        .assert()
        .success();
    world
        .sealops()
        .arg("-i")
        .arg(&age_key)
        .args(["reveal", "a", "-k", "A"])
        .assert()
        .success()
        .stdout("from-age-key");
}

#[test]
fn a_sealops_identity_works_with_age() {
    require_tool("age");
    let world = World::new();
    let plaintext = world.dir.path().join("plain.txt");
    let encrypted = world.dir.path().join("plain.txt.age");
    std::fs::write(&plaintext, "hello from age").expect("write");
    run(Command::new("age")
        .args(["-r", &world.public, "-o"])
        .arg(&encrypted)
        .arg(&plaintext));
    let opened = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&world.key)
        .arg(&encrypted));
    assert_eq!(opened, b"hello from age");
    // And the public key sealops printed is the one age derives from the identity.
    let derived = run(Command::new("age-keygen").arg("-y").arg(&world.key));
    assert_eq!(
        String::from_utf8(derived).expect("utf8").trim(),
        world.public
    );
}
