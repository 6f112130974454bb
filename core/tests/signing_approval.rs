//! Approval statements on real repositories with real `ssh-keygen` keys: signing, verification
//! (also by `ssh-keygen -Y verify`), content binding, and survival of a squash-merge.

use std::process::Command;

use crate::signing_support::{T_2024, T_2031, TestKey, TestRepo, keygen};
use sealops_core::signing::approval::{
    ApprovalError, ApprovalStatement, ApprovedContent, approvals_for, changes_between,
    verify_approval,
};
use sealops_core::signing::sshsig::{SignatureRejection, SigningKey};
use sealops_core::signing::{AllowedSigners, KeyRejection};
use tempfile::TempDir;

const REPOSITORY_ID: &str = "0123456789abcdef0123456789abcdef";

const POLICY: &str = "policies/payments.hcl";

struct Keys {
    dir: TempDir,
    alice: TestKey,
    bob: TestKey,
    carol: TestKey,
}

fn keys() -> Keys {
    let dir = TempDir::new().unwrap();
    Keys {
        alice: keygen(dir.path(), "alice"),
        bob: keygen(dir.path(), "bob"),
        carol: keygen(dir.path(), "carol"),
        dir,
    }
}

fn signers(text: &str) -> AllowedSigners {
    AllowedSigners::parse(text, "allowed_signers").unwrap()
}

fn approve(
    key: &TestKey,
    principal: &str,
    created: i64,
    changes: &[(&str, ApprovedContent)],
) -> (String, String) {
    let statement = ApprovalStatement::new(
        REPOSITORY_ID,
        principal,
        created,
        changes.iter().map(|(p, c)| ((*p).to_owned(), *c)),
    )
    .unwrap();
    let signed = statement
        .sign(&SigningKey::load(&key.private).unwrap())
        .unwrap();
    (signed.repo_path(), signed.contents)
}

fn rejection(err: ApprovalError) -> SignatureRejection {
    match err {
        ApprovalError::Rejected { rejection, .. } => rejection,
        other => panic!("expected a signature rejection, got {other}"),
    }
}

#[test]
fn approval_verifies_in_process_and_with_ssh_keygen() {
    let k = keys();
    let allowed = format!("alice@example.com {}\n", k.alice.public);
    let content = ApprovedContent::of_bytes(b"path \"secrets/*\" { capabilities = [\"read\"] }\n");
    let (path, contents) = approve(
        &k.alice,
        "alice@example.com",
        T_2024,
        &[
            (POLICY, content),
            ("policies/old.hcl", ApprovedContent::Deleted),
        ],
    );
    assert!(path.starts_with(".sealops/approvals/") && path.ends_with(".approval"));

    let verified = verify_approval(contents.as_bytes(), &path, &signers(&allowed)).unwrap();
    assert_eq!(verified.statement.principal(), "alice@example.com");
    assert_eq!(verified.statement.changes().get(POLICY), Some(&content));
    assert_eq!(
        verified.statement.changes().get("policies/old.hcl"),
        Some(&ApprovedContent::Deleted)
    );

    // The same bytes verify with OpenSSH itself, in the sealops-approval namespace.
    let (statement, signature) =
        contents.split_at(contents.find("-----BEGIN SSH SIGNATURE").unwrap());
    let signers_file = k.dir.path().join("allowed_signers");
    std::fs::write(&signers_file, &allowed).unwrap();
    let sig_file = k.dir.path().join("approval.sig");
    std::fs::write(&sig_file, signature).unwrap();
    let verify = |namespace: &str| {
        let mut child = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-n",
                namespace,
                "-I",
                "alice@example.com",
                "-f",
            ])
            .arg(&signers_file)
            .arg("-s")
            .arg(&sig_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(statement.as_bytes())
            .unwrap();
        child.wait().unwrap().success()
    };
    assert!(verify("sealops-approval"));
    assert!(!verify("git"));
}

#[test]
fn statement_signed_by_ssh_keygen_verifies_in_process() {
    let k = keys();
    let statement = ApprovalStatement::new(
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        [(POLICY.to_owned(), ApprovedContent::Deleted)],
    )
    .unwrap();
    let text_file = k.dir.path().join("statement");
    std::fs::write(&text_file, statement.to_text()).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "sealops-approval", "-f"])
        .arg(&k.bob.private)
        .arg(&text_file)
        .status()
        .unwrap();
    assert!(status.success());
    let signature = std::fs::read_to_string(text_file.with_extension("sig")).unwrap();
    let contents = statement.to_text() + &signature;
    let allowed = signers(&format!("bob@example.com {}\n", k.bob.public));
    let verified = verify_approval(contents.as_bytes(), "f", &allowed).unwrap();
    assert_eq!(verified.statement, statement);
}

#[test]
fn approval_by_key_not_in_allowed_signers_is_rejected() {
    let k = keys();
    let (path, contents) = approve(
        &k.carol,
        "alice@example.com",
        T_2024,
        &[(POLICY, ApprovedContent::Deleted)],
    );
    let allowed = signers(&format!("alice@example.com {}\n", k.alice.public));
    let err = verify_approval(contents.as_bytes(), &path, &allowed).unwrap_err();
    assert!(err.to_string().starts_with(&path), "{err}");
    assert!(matches!(
        rejection(err),
        SignatureRejection::Key(KeyRejection::UnknownKey { .. })
    ));
}

#[test]
fn approval_claiming_another_principal_is_rejected() {
    let k = keys();
    let allowed = signers(&format!(
        "alice@example.com {}\nbob@example.com {}\n",
        k.alice.public, k.bob.public
    ));
    let (path, contents) = approve(
        &k.bob,
        "alice@example.com",
        T_2024,
        &[(POLICY, ApprovedContent::Deleted)],
    );
    let err = verify_approval(contents.as_bytes(), &path, &allowed).unwrap_err();
    assert!(matches!(
        rejection(err),
        SignatureRejection::Key(KeyRejection::NotForPrincipal { .. })
    ));
}

#[test]
fn approval_follows_key_validity_and_namespaces() {
    let k = keys();
    let (path, contents) = approve(
        &k.alice,
        "alice@example.com",
        T_2031,
        &[(POLICY, ApprovedContent::Deleted)],
    );
    let expired = signers(&format!(
        "alice@example.com valid-before=\"20300101Z\" {}\n",
        k.alice.public
    ));
    let err = verify_approval(contents.as_bytes(), &path, &expired).unwrap_err();
    assert!(matches!(
        rejection(err),
        SignatureRejection::Key(KeyRejection::Expired { .. })
    ));

    let git_only = signers(&format!(
        "alice@example.com namespaces=\"git\" {}\n",
        k.alice.public
    ));
    let err = verify_approval(contents.as_bytes(), &path, &git_only).unwrap_err();
    assert!(matches!(
        rejection(err),
        SignatureRejection::Key(KeyRejection::NamespaceNotAllowed { .. })
    ));
}

#[test]
fn edited_statement_is_rejected() {
    let k = keys();
    let content = ApprovedContent::of_bytes(b"v1\n");
    let (path, contents) = approve(&k.alice, "alice@example.com", T_2024, &[(POLICY, content)]);
    let ApprovedContent::Blob(real) = content else {
        unreachable!()
    };
    let ApprovedContent::Blob(other) = ApprovedContent::of_bytes(b"v2\n") else {
        unreachable!()
    };
    let edited = contents.replace(&real.to_string(), &other.to_string());
    let allowed = signers(&format!("alice@example.com {}\n", k.alice.public));
    let err = verify_approval(edited.as_bytes(), &path, &allowed).unwrap_err();
    assert!(matches!(
        rejection(err),
        SignatureRejection::BadSignature { .. }
    ));
}

/// Commits the file `path` with `content`, and the approvals, on the current branch.
fn commit_change(repo: &TestRepo, path: &str, content: &str, approvals: &[(String, String)]) {
    for (approval_path, approval) in approvals {
        let full = repo.work().join(approval_path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, approval).unwrap();
        repo.git_ok(&["add", approval_path]);
    }
    repo.commit_file(T_2024, path, content, true);
}

fn approvers_at(
    repo: &TestRepo,
    rev: &str,
    signers: &AllowedSigners,
    path: &str,
) -> (Vec<String>, usize) {
    let git = repo.open();
    let tree = git.revparse_single(rev).unwrap().peel_to_tree().unwrap();
    let content = match tree.get_path(std::path::Path::new(path)) {
        Ok(entry) => ApprovedContent::Blob(entry.id()),
        Err(_) => ApprovedContent::Deleted,
    };
    let approvals = approvals_for(&git, &tree, signers, path, &content).unwrap();
    let principals = approvals
        .approvers
        .into_iter()
        .map(|a| a.principal)
        .collect();
    (principals, approvals.rejected.len())
}

#[test]
fn approvals_survive_squash_merge_and_are_bound_to_content() {
    let k = keys();
    let allowed_text = format!(
        "alice@example.com {}\nbob@example.com {}\n# carol's key is listed under two principals\ncarol@example.com,ops@example.com {}\n",
        k.alice.public, k.bob.public, k.carol.public
    );
    let allowed = signers(&allowed_text);
    let repo = TestRepo::new(&k.alice);
    repo.set_signers(&allowed_text);
    repo.commit_file(T_2024, POLICY, "v1\n", true);

    repo.git_ok(&["checkout", "-q", "-b", "feature"]);
    let v2 = ApprovedContent::of_bytes(b"v2\n");
    let v3 = ApprovedContent::of_bytes(b"v3\n");
    let approvals = vec![
        approve(&k.alice, "alice@example.com", T_2024, &[(POLICY, v2)]),
        approve(
            &k.bob,
            "bob@example.com",
            T_2024,
            &[
                (POLICY, v2),
                ("policies/other.hcl", ApprovedContent::Deleted),
            ],
        ),
        // The same key twice under two principals counts once.
        approve(&k.carol, "carol@example.com", T_2024, &[(POLICY, v2)]),
        approve(&k.carol, "ops@example.com", T_2024, &[(POLICY, v2)]),
        // Approves other content: does not count for v2.
        approve(&k.bob, "bob@example.com", T_2024 + 1, &[(POLICY, v3)]),
        // Signed by a key nobody trusts.
        approve(
            &keygen(k.dir.path(), "mallory"),
            "bob@example.com",
            T_2024,
            &[(POLICY, v2)],
        ),
    ];
    commit_change(&repo, POLICY, "v2\n", &approvals);
    repo.commit_file(T_2024, "README", "unrelated\n", true);

    let expected: Vec<String> = ["alice@example.com", "bob@example.com", "carol@example.com"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        approvers_at(&repo, "feature", &allowed, POLICY),
        (expected.clone(), 1)
    );

    // Squash-merge onto a main that moved on: new commits, same content, same approvals.
    repo.git_ok(&["checkout", "-q", "main"]);
    repo.commit_file(T_2024, "secrets/app.yaml", "x\n", true);
    repo.git_ok(&["merge", "-q", "--squash", "feature"]);
    repo.git_ok(&["commit", "-q", "-S", "-m", "squashed feature"]);
    assert_eq!(approvers_at(&repo, "main", &allowed, POLICY), (expected, 1));

    // A later change of the file is not covered by the approvals of v2.
    repo.commit_file(T_2024, POLICY, "v4\n", true);
    assert_eq!(
        approvers_at(&repo, "main", &allowed, POLICY).0,
        Vec::<String>::new()
    );
    // Nor is the file's deletion.
    repo.git_ok(&["rm", "-q", POLICY]);
    repo.git_ok(&["commit", "-q", "-S", "-m", "delete"]);
    assert_eq!(
        approvers_at(&repo, "main", &allowed, POLICY).0,
        Vec::<String>::new()
    );
    assert_eq!(
        approvers_at(&repo, "main", &allowed, "policies/other.hcl").0,
        vec!["bob@example.com"]
    );
}

#[test]
fn approval_file_names_depend_only_on_the_statement() {
    let k = keys();
    let changes = [(POLICY, ApprovedContent::Deleted)];
    let first = approve(&k.alice, "alice@example.com", T_2024, &changes);
    let again = approve(&k.alice, "alice@example.com", T_2024, &changes);
    let later = approve(&k.alice, "alice@example.com", T_2024 + 1, &changes);
    assert_eq!(
        first, again,
        "Ed25519 is deterministic: a repeated approval is the same file"
    );
    assert_ne!(first.0, later.0);
}

#[test]
fn changes_between_lists_resulting_blobs_and_deletions() {
    let k = keys();
    let repo = TestRepo::new(&k.alice);
    repo.commit_file(T_2024, "policies/a.hcl", "a1\n", true);
    repo.commit_file(T_2024, "policies/gone.hcl", "g\n", true);
    let before = repo.head();
    repo.git_ok(&["rm", "-q", "policies/gone.hcl"]);
    repo.commit_file(T_2024, "policies/a.hcl", "a2\n", true);
    repo.commit_file(T_2024, "secrets/new file.yaml", "n\n", true);

    let git = repo.open();
    let old = git.find_commit(before).unwrap().tree().unwrap();
    let new = git.head().unwrap().peel_to_tree().unwrap();
    let changes = changes_between(&git, Some(&old), &new).unwrap();
    let expected: Vec<(String, ApprovedContent)> = vec![
        ("policies/a.hcl".into(), ApprovedContent::of_bytes(b"a2\n")),
        ("policies/gone.hcl".into(), ApprovedContent::Deleted),
        (
            "secrets/new file.yaml".into(),
            ApprovedContent::of_bytes(b"n\n"),
        ),
    ];
    assert_eq!(changes.into_iter().collect::<Vec<_>>(), expected);

    // From the empty tree every file is an addition.
    let all = changes_between(&git, None, &new).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.values().all(|c| matches!(c, ApprovedContent::Blob(_))));
}

#[test]
fn a_wildcard_signers_line_cannot_approve_as_a_named_principal() {
    let k = keys();
    // OpenSSH would accept bob's key for any @example.com principal; an approval must not.
    let allowed = signers(&format!(
        "alice@example.com {}\n*@example.com {}\n",
        k.alice.public, k.bob.public
    ));
    let (path, contents) = approve(
        &k.bob,
        "alice@example.com",
        T_2024,
        &[(POLICY, ApprovedContent::Deleted)],
    );
    let err = verify_approval(contents.as_bytes(), &path, &allowed).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not name alice@example.com literally"),
        "{err}"
    );
    // Listed by name, the same key's approval counts.
    let named = signers(&format!("bob@example.com {}\n", k.bob.public));
    let (path, contents) = approve(
        &k.bob,
        "bob@example.com",
        T_2024,
        &[(POLICY, ApprovedContent::Deleted)],
    );
    verify_approval(contents.as_bytes(), &path, &named)
        .expect("a literally named principal verifies");
}
