//! Commit signature verification on real repositories signed by real `git commit -S`, each
//! verdict compared with `git verify-commit`'s.

use crate::signing_support::{T_2024, T_2031, TestKey, TestRepo, keygen, keygen_typed};
use sealops_core::signing::KeyRejection;
use sealops_core::signing::commit::{CommitRejection, CommitVerdict, verify_commit, verify_range};
use sealops_core::signing::sshsig::{SignatureRejection, SigningKey};
use tempfile::TempDir;

struct Setup {
    keys: TempDir,
    alice: TestKey,
    bob: TestKey,
    repo: TestRepo,
}

fn setup() -> Setup {
    let keys = TempDir::new().unwrap();
    let alice = keygen(keys.path(), "alice");
    let bob = keygen(keys.path(), "bob");
    let repo = TestRepo::new(&alice);
    Setup {
        keys,
        alice,
        bob,
        repo,
    }
}

fn ours(repo: &TestRepo, oid: git2::Oid) -> CommitVerdict {
    verify_commit(&repo.open(), oid, &repo.signers()).unwrap()
}

fn rejection(verdict: CommitVerdict) -> CommitRejection {
    match verdict {
        CommitVerdict::NotVerified(reason) => reason,
        CommitVerdict::Verified(signed) => panic!("expected a rejection, got {signed:?}"),
    }
}

fn key_rejection(verdict: CommitVerdict) -> KeyRejection {
    match rejection(verdict) {
        CommitRejection::Signature(SignatureRejection::Key(reason)) => reason,
        other => panic!("expected a key rejection, got {other:?}"),
    }
}

#[test]
fn valid_signature_names_the_principal_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {} alice\n", s.alice.public));
    let oid = s
        .repo
        .commit_file(T_2024, "secrets/app/db.yaml", "v1\n", true);
    let verdict = ours(&s.repo, oid);
    let signed = verdict.signed_by().expect("verified");
    assert_eq!(signed.principals, ["alice@example.com"]);
    assert!(signed.fingerprint.starts_with("SHA256:"));
    assert_eq!(
        s.repo.git_verdict(oid),
        (true, "alice@example.com".to_owned())
    );
}

#[test]
fn unsigned_commit_is_rejected_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    let oid = s.repo.commit_file(T_2024, "a", "a\n", false);
    assert_eq!(rejection(ours(&s.repo, oid)), CommitRejection::Unsigned);
    assert!(!s.repo.git_verdict(oid).0);
}

#[test]
fn unknown_key_is_rejected_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("bob@example.com {}\n", s.bob.public));
    let oid = s.repo.commit_file(T_2024, "a", "a\n", true);
    assert!(matches!(
        key_rejection(ours(&s.repo, oid)),
        KeyRejection::UnknownKey { .. }
    ));
    assert!(!s.repo.git_verdict(oid).0);
}

#[test]
fn expired_key_is_rejected_like_git_and_accepted_before_expiry() {
    let s = setup();
    // Expires 2025-01-01: the 2031 commit is after it, the 2024 one before.
    s.repo.set_signers(&format!(
        "alice@example.com valid-before=\"20250101Z\" {}\n",
        s.alice.public
    ));
    let late = s.repo.commit_file(T_2031, "a", "late\n", true);
    let reason = key_rejection(ours(&s.repo, late));
    assert!(matches!(reason, KeyRejection::Expired { .. }), "{reason:?}");
    assert!(reason.to_string().contains("has expired"), "{reason}");
    assert!(!s.repo.git_verdict(late).0);

    let early = s.repo.commit_file(T_2024, "a", "early\n", true);
    assert!(ours(&s.repo, early).signed_by().is_some());
    assert!(s.repo.git_verdict(early).0);
}

#[test]
fn key_valid_only_later_is_rejected_like_git() {
    let s = setup();
    s.repo.set_signers(&format!(
        "alice@example.com valid-after=\"20300101\" {}\n",
        s.alice.public
    ));
    let early = s.repo.commit_file(T_2024, "a", "early\n", true);
    let reason = key_rejection(ours(&s.repo, early));
    assert!(
        matches!(reason, KeyRejection::NotYetValid { .. }),
        "{reason:?}"
    );
    assert!(!s.repo.git_verdict(early).0);

    let late = s.repo.commit_file(T_2031, "a", "late\n", true);
    assert!(ours(&s.repo, late).signed_by().is_some());
    assert!(s.repo.git_verdict(late).0);
}

#[test]
fn principal_patterns_are_reported_as_written_like_git() {
    let s = setup();
    s.repo.set_signers(&format!(
        "*@example.com,!mallory@example.com {}\n",
        s.alice.public
    ));
    let oid = s.repo.commit_file(T_2024, "a", "a\n", true);
    assert_eq!(
        ours(&s.repo, oid).signed_by().unwrap().principals,
        ["*@example.com"]
    );
    // ssh-keygen -Y find-principals prints each entry of the list; git names the first that
    // verifies, which is the first of ours.
    assert_eq!(s.repo.git_verdict(oid), (true, "*@example.com".to_owned()));

    // Claimed principals go through the pattern list, negation included.
    let signers = s.repo.signers();
    let key = ssh_key::PublicKey::from_openssh(&s.alice.public).unwrap();
    assert!(
        signers
            .check_principal("alice@example.com", key.key_data(), "git", T_2024)
            .is_ok()
    );
    assert!(matches!(
        signers.check_principal("mallory@example.com", key.key_data(), "git", T_2024),
        Err(KeyRejection::NotForPrincipal { .. })
    ));
}

#[test]
fn namespaces_excluding_git_are_rejected_like_git() {
    let s = setup();
    s.repo.set_signers(&format!(
        "alice@example.com namespaces=\"file,sealops-*\" {}\n",
        s.alice.public
    ));
    let oid = s.repo.commit_file(T_2024, "a", "a\n", true);
    let reason = key_rejection(ours(&s.repo, oid));
    assert!(
        matches!(reason, KeyRejection::NamespaceNotAllowed { .. }),
        "{reason:?}"
    );
    assert!(!s.repo.git_verdict(oid).0);

    s.repo.set_signers(&format!(
        "alice@example.com namespaces=\"file,g?t\" {}\n",
        s.alice.public
    ));
    assert!(ours(&s.repo, oid).signed_by().is_some());
    assert!(s.repo.git_verdict(oid).0);
}

/// Copies commit `from`'s signature header onto a commit object with a different message.
fn transplant_signature(repo: &TestRepo, from: git2::Oid) -> git2::Oid {
    let raw = repo.git_ok(&["cat-file", "commit", &from.to_string()]);
    let forged = raw.replacen("change a", "change a (forged)", 1);
    assert_ne!(raw, forged);
    let path = repo.dir.path().join("forged");
    std::fs::write(&path, forged).unwrap();
    let oid = repo.git_ok(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap()]);
    git2::Oid::from_str(oid.trim()).unwrap()
}

#[test]
fn signature_over_different_content_is_rejected_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    let genuine = s.repo.commit_file(T_2024, "a", "a\n", true);
    let forged = transplant_signature(&s.repo, genuine);
    assert!(matches!(
        rejection(ours(&s.repo, forged)),
        CommitRejection::Signature(SignatureRejection::BadSignature { .. })
    ));
    assert!(!s.repo.git_verdict(forged).0);
    assert!(s.repo.git_verdict(genuine).0);
}

/// Writes a commit whose `gpgsig` header is `signature`, over `repo`'s HEAD tree.
fn commit_with_signature(repo: &TestRepo, sign: impl Fn(&[u8]) -> String) -> git2::Oid {
    let git = repo.open();
    let head = git.head().unwrap().peel_to_commit().unwrap();
    let who = git2::Signature::new("Test", "t@example.com", &git2::Time::new(T_2024, 0)).unwrap();
    let buffer = git
        .commit_create_buffer(&who, &who, "crafted\n", &head.tree().unwrap(), &[&head])
        .unwrap();
    let signature = sign(&buffer);
    git.commit_signed(std::str::from_utf8(&buffer).unwrap(), &signature, None)
        .unwrap()
}

#[test]
fn signature_in_another_namespace_is_rejected_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    s.repo.commit_file(T_2024, "a", "a\n", true);
    let key = SigningKey::load(&s.alice.private).unwrap();
    let oid = commit_with_signature(&s.repo, |data| key.sign("file", data).unwrap());
    assert_eq!(
        rejection(ours(&s.repo, oid)),
        CommitRejection::Signature(SignatureRejection::WrongNamespace {
            expected: "git".into(),
            found: "file".into()
        })
    );
    assert!(!s.repo.git_verdict(oid).0);
}

#[test]
fn commits_signed_in_process_verify_with_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    s.repo.commit_file(T_2024, "a", "a\n", true);
    let key = SigningKey::load(&s.alice.private).unwrap();
    let oid = commit_with_signature(&s.repo, |data| key.sign("git", data).unwrap());
    assert_eq!(
        ours(&s.repo, oid).signed_by().unwrap().principals,
        ["alice@example.com"]
    );
    assert_eq!(
        s.repo.git_verdict(oid),
        (true, "alice@example.com".to_owned())
    );
}

#[test]
fn pgp_signature_is_reported_as_not_ssh() {
    let s = setup();
    s.repo.commit_file(T_2024, "a", "a\n", true);
    let oid = commit_with_signature(&s.repo, |_| {
        "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n"
            .to_owned()
    });
    assert_eq!(
        rejection(ours(&s.repo, oid)),
        CommitRejection::NotSsh { format: "OpenPGP" }
    );
}

#[test]
fn merge_commits_and_ranges_verify_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    let base = s.repo.commit_file(T_2024, "a", "a\n", true);
    s.repo.git_ok(&["checkout", "-q", "-b", "feature"]);
    s.repo.commit_file(T_2024, "b", "b\n", true);
    s.repo.commit_file(T_2024, "c", "c\n", false);
    s.repo.git_ok(&["checkout", "-q", "main"]);
    s.repo.commit_file(T_2024, "d", "d\n", true);
    s.repo.git_ok(&[
        "merge",
        "-q",
        "--no-ff",
        "-S",
        "-m",
        "merge feature",
        "feature",
    ]);
    let merge = s.repo.head();
    assert_eq!(s.repo.open().find_commit(merge).unwrap().parent_count(), 2);

    let verdicts =
        verify_range(&s.repo.open(), &format!("{base}..main"), &s.repo.signers()).unwrap();
    assert_eq!(verdicts.len(), 4);
    for (oid, verdict) in &verdicts {
        let (git_ok, _) = s.repo.git_verdict(*oid);
        assert_eq!(verdict.signed_by().is_some(), git_ok, "{oid}: {verdict:?}");
    }
    let unsigned = verdicts
        .iter()
        .filter(|(_, v)| v.signed_by().is_none())
        .count();
    assert_eq!(unsigned, 1);
    assert!(ours(&s.repo, merge).signed_by().is_some());
}

#[test]
fn several_principals_for_one_key_come_back_in_file_order_like_git() {
    let s = setup();
    s.repo.set_signers(&format!(
        "alice@example.com,ops@example.com {key}\n# a second line for the same key\nrelease@example.com {key}\n",
        key = s.alice.public
    ));
    let oid = s.repo.commit_file(T_2024, "a", "a\n", true);
    assert_eq!(
        ours(&s.repo, oid).signed_by().unwrap().principals,
        [
            "alice@example.com",
            "ops@example.com",
            "release@example.com"
        ]
    );
    assert_eq!(
        s.repo.git_verdict(oid),
        (true, "alice@example.com".to_owned())
    );
}

#[test]
fn ecdsa_p256_signatures_verify_like_git() {
    let keys = TempDir::new().unwrap();
    let ecdsa = keygen_typed(keys.path(), "ecdsa", &["-t", "ecdsa", "-b", "256"]);
    assert!(ecdsa.public.starts_with("ecdsa-sha2-nistp256 "));
    let repo = TestRepo::new(&ecdsa);
    repo.set_signers(&format!("ops@example.com {}\n", ecdsa.public));
    let oid = repo.commit_file(T_2024, "a", "a\n", true);
    assert_eq!(
        ours(&repo, oid).signed_by().unwrap().principals,
        ["ops@example.com"]
    );
    assert_eq!(repo.git_verdict(oid), (true, "ops@example.com".to_owned()));

    let forged = transplant_signature(&repo, oid);
    assert!(matches!(
        rejection(ours(&repo, forged)),
        CommitRejection::Signature(SignatureRejection::BadSignature { .. })
    ));
    assert!(!repo.git_verdict(forged).0);
}

#[test]
fn rsa_signatures_verify_like_git() {
    let keys = TempDir::new().unwrap();
    let rsa = keygen_typed(keys.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    let repo = TestRepo::new(&rsa);
    repo.set_signers(&format!("ops@example.com {}\n", rsa.public));
    let oid = repo.commit_file(T_2024, "a", "a\n", true);
    match ours(&repo, oid) {
        CommitVerdict::Verified(signed) => assert_eq!(signed.principals, ["ops@example.com"]),
        other => panic!("expected a verified RSA signature, got {other:?}"),
    }
    assert!(repo.git_verdict(oid).0);
}

#[test]
fn garbled_ssh_signature_is_malformed_like_git() {
    let s = setup();
    s.repo
        .set_signers(&format!("alice@example.com {}\n", s.alice.public));
    s.repo.commit_file(T_2024, "a", "a\n", true);
    let oid = commit_with_signature(&s.repo, |_| {
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHZ2FyYmFnZQ==\n-----END SSH SIGNATURE-----\n"
            .to_owned()
    });
    assert!(matches!(
        rejection(ours(&s.repo, oid)),
        CommitRejection::Signature(SignatureRejection::Malformed { .. })
    ));
    assert!(!s.repo.git_verdict(oid).0);
}

#[test]
fn signing_keys_load_only_unencrypted_openssh_keys() {
    let s = setup();
    let loaded = SigningKey::load(&s.alice.private).unwrap();
    assert!(format!("{loaded:?}").contains("[redacted]"));
    assert_eq!(
        loaded.public_key().to_openssh().unwrap(),
        s.alice.public.clone() + " alice"
    );

    let locked = s.keys.path().join("locked");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(status.success());
    let err = SigningKey::load(&locked).unwrap_err().to_string();
    assert!(err.contains("passphrase-protected"), "{err}");

    let err = SigningKey::load(&locked.with_extension("pub"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an OpenSSH private key"), "{err}");
    let err = SigningKey::load(&s.keys.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read SSH private key"), "{err}");
}
