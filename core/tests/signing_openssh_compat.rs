//! The in-process verifier against OpenSSH itself: for each allowed_signers line, principal,
//! namespace and time, `ssh-keygen -Y verify` and `verify_as_principal` give the same verdict.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::signing_support::keygen;
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::sshsig::{SigningKey, verify_as_principal};

const MESSAGE: &[u8] = b"the signed message\n";

/// `ssh-keygen -Y verify`'s verdict, times in UTC as `-Overify-time` is read in local time.
fn openssh_accepts(
    dir: &std::path::Path,
    allowed: &str,
    principal: &str,
    namespace: &str,
    signature: &str,
    time: &str,
) -> bool {
    let signers = dir.join("allowed_signers");
    std::fs::write(&signers, allowed).unwrap();
    let sig = dir.join("message.sig");
    std::fs::write(&sig, signature).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", namespace, "-I", principal, "-f"])
        .arg(&signers)
        .arg("-s")
        .arg(&sig)
        .arg(format!("-Overify-time={time}"))
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MESSAGE).unwrap();
    child.wait().unwrap().success()
}

fn unix(time: &str) -> i64 {
    sealops_core::signing::allowed_signers::parse_time(&format!("{time}Z")).unwrap()
}

#[test]
fn verdicts_match_ssh_keygen() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = keygen(dir.path(), "k");
    let other = keygen(dir.path(), "other");
    let signing = SigningKey::load(&key.private).unwrap();
    let k = &key.public;
    let o = &other.public;

    // (allowed_signers text, principal, namespace, verify time)
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            format!("a@x {k} comment words"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (format!("a@x {o}"), "a@x", "git", "20240610000000"),
        (format!("b@x {k}"), "a@x", "git", "20240610000000"),
        (format!("a@x,b@x {k}"), "b@x", "git", "20240610000000"),
        (format!("*@x {k}"), "anyone@x", "git", "20240610000000"),
        (format!("*@x {k}"), "anyone@y", "git", "20240610000000"),
        (format!("*@x,!bad@x {k}"), "bad@x", "git", "20240610000000"),
        (format!("?@x {k}"), "a@x", "git", "20240610000000"),
        (format!("?@x {k}"), "ab@x", "git", "20240610000000"),
        (
            format!("\"a b@x,c@x\" {k}"),
            "a b@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x namespaces=\"git\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x namespaces=\"file\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x NAMESPACES=\"fi*,g?t\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x namespaces=\"*,!git\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x valid-after=\"20240610Z\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x valid-after=\"20240610000001Z\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x valid-before=\"20240610Z\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x valid-before=\"202406092359\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x Valid-After=\"20200101\",valid-before=\"20300101UTC\" {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
        (
            format!("a@x valid-after=\"20200101\",valid-before=\"20300101\" {k}"),
            "a@x",
            "git",
            "20310101000000",
        ),
        (
            format!("# comment\n\n   \na@x {o}\na@x namespaces=\"file\" {k}\na@x {k}"),
            "a@x",
            "git",
            "20240610000000",
        ),
    ];
    let signature = signing.sign("git", MESSAGE).unwrap();
    for (allowed, principal, namespace, time) in &cases {
        let signers = AllowedSigners::parse(allowed, "allowed_signers").unwrap();
        let ours = verify_as_principal(
            signature.as_bytes(),
            namespace,
            MESSAGE,
            &signers,
            principal,
            unix(time),
        );
        let theirs = openssh_accepts(dir.path(), allowed, principal, namespace, &signature, time);
        assert_eq!(
            ours.is_ok(),
            theirs,
            "{allowed:?} as {principal} in {namespace} at {time}: ours {ours:?}"
        );
    }
    // The cases exercise both verdicts.
    let accepted = cases
        .iter()
        .filter(|(a, p, n, t)| openssh_accepts(dir.path(), a, p, n, &signature, t))
        .count();
    assert!(
        accepted > 5 && accepted < cases.len() - 5,
        "{accepted} of {}",
        cases.len()
    );
}
