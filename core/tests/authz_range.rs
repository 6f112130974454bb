//! Range authorisation on real repositories: real `ssh-keygen` keys, real `git commit -S`
//! (`gpg.format ssh`), judged in process; signatures cross-checked with `git verify-commit`.

mod signing_support;

use std::collections::BTreeSet;

use git2::Oid;
use sealops_core::authz::{Bootstrap, RangeReport, ViolationKind, authorise_range};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
use sealops_core::signing::commit::CommitRejection;
use sealops_core::signing::sshsig::{SignatureRejection, SigningKey};
use signing_support::{T_2024, T_2031, TestKey, TestRepo, keygen};
use tempfile::TempDir;

const ADMIN_POLICY: &str = r#"
path "sys/*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}
path "secrets/*" {
  capabilities = ["create", "read", "update", "delete"]
}
"#;

const DEV_POLICY: &str = r#"
path "secrets/apps/*" {
  capabilities = ["create", "update"]
  denied_parameters = {
    "ROOT_PASSWORD" = []
  }
}
"#;

const CONFIG: &str = "sealops: v1\nrecipients:\n  - name: prod\n    key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n";

struct Fixture {
    _keys: TempDir,
    repo: TestRepo,
    alice: TestKey,
    bob: TestKey,
    carol: TestKey,
    mallory: TestKey,
    base: Oid,
}

fn identity(name: &str, policy: &str) -> String {
    format!("sealops: v1\nname: {name}\nkind: human\npolicies: [{policy}]\n")
}

fn signer_line(principal: &str, key: &TestKey) -> String {
    format!("{principal} {}\n", key.public)
}

fn manifest(path: &str, plain: &[(&str, &str)]) -> String {
    let mut m = Manifest::new(SecretPath::parse(path).unwrap(), Scope::Strict);
    for (k, v) in plain {
        m.plain.insert((*k).to_owned(), (*v).to_owned());
    }
    m.to_yaml()
}

impl Fixture {
    /// alice and bob are admins (sudo on sys/*), carol a developer (create/update on
    /// secrets/apps/*); mallory has a key nobody trusts.
    fn new() -> Self {
        let keys = TempDir::new().unwrap();
        let alice = keygen(keys.path(), "alice");
        let bob = keygen(keys.path(), "bob");
        let carol = keygen(keys.path(), "carol");
        let mallory = keygen(keys.path(), "mallory");
        let repo = TestRepo::new(&alice);
        let mut fixture = Self {
            _keys: keys,
            repo,
            alice,
            bob,
            carol,
            mallory,
            base: Oid::ZERO_SHA1,
        };
        let signers = fixture.signers_text();
        fixture.repo.set_signers(&signers);
        fixture.base = fixture.commit_as(
            &fixture.alice.clone_key(),
            T_2024,
            &[
                ("policies/admin.hcl", Some(ADMIN_POLICY)),
                ("policies/dev.hcl", Some(DEV_POLICY)),
                (
                    "identities/alice.yaml",
                    Some(&identity("alice@example.com", "admin")),
                ),
                (
                    "identities/bob.yaml",
                    Some(&identity("bob@example.com", "admin")),
                ),
                (
                    "identities/carol.yaml",
                    Some(&identity("carol@example.com", "dev")),
                ),
                (".sealops/config.yaml", Some(CONFIG)),
                (".sealops/allowed_signers", Some(&signers)),
            ],
        );
        fixture
    }

    fn signers_text(&self) -> String {
        signer_line("alice@example.com", &self.alice)
            + &signer_line("bob@example.com", &self.bob)
            + &signer_line("carol@example.com", &self.carol)
    }

    fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            signers: AllowedSigners::parse(&self.signers_text(), "bootstrap").unwrap(),
            pinned_principals: None,
        }
    }

    /// Writes (or with `None` removes) files and commits them signed with `key` at `time`.
    fn commit_as(&self, key: &TestKey, time: i64, files: &[(&str, Option<&str>)]) -> Oid {
        self.stage(files);
        let signing_key = format!("user.signingkey={}", key.private.display());
        let out = self.repo.git_at(
            time,
            &["-c", &signing_key, "commit", "-q", "-S", "-m", "change"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.repo.head()
    }

    fn commit_unsigned(&self, files: &[(&str, Option<&str>)]) -> Oid {
        self.stage(files);
        self.repo
            .git_ok(&["commit", "-q", "--no-gpg-sign", "-m", "unsigned"]);
        self.repo.head()
    }

    fn stage(&self, files: &[(&str, Option<&str>)]) {
        for (path, content) in files {
            let full = self.repo.work().join(path);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, text).unwrap();
                    self.repo.git_ok(&["add", path]);
                }
                None => {
                    self.repo.git_ok(&["rm", "-q", path]);
                }
            }
        }
    }

    /// An approval by `principal` (signed with `key`) of `path` having `content`, committed by
    /// `committer`.
    fn approve(
        &self,
        key: &TestKey,
        principal: &str,
        created: i64,
        path: &str,
        content: ApprovedContent,
        committer: &TestKey,
    ) -> Oid {
        let statement =
            ApprovalStatement::new(principal, created, [(path.to_owned(), content)]).unwrap();
        let signed = statement
            .sign(&SigningKey::load(&key.private).unwrap())
            .unwrap();
        self.commit_as(
            committer,
            T_2024,
            &[(&signed.repo_path(), Some(&signed.contents))],
        )
    }

    fn judge(&self, head: Oid) -> RangeReport {
        authorise_range(&self.repo.open(), self.base, head, &self.bootstrap()).unwrap()
    }
}

trait CloneKey {
    fn clone_key(&self) -> TestKey;
}

impl CloneKey for TestKey {
    fn clone_key(&self) -> TestKey {
        TestKey {
            private: self.private.clone(),
            public: self.public.clone(),
        }
    }
}

fn kinds(report: &RangeReport) -> Vec<(Oid, Option<String>, ViolationKind)> {
    report
        .violations()
        .map(|v| (v.commit, v.path.clone(), v.kind.clone()))
        .collect()
}

fn blob(text: &str) -> ApprovedContent {
    ApprovedContent::of_bytes(text.as_bytes())
}

#[test]
fn a_developer_may_change_the_secrets_their_policy_grants_and_git_agrees() {
    let f = Fixture::new();
    let head = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "secrets/apps/db.yaml",
            Some(&manifest("apps/db", &[("HOST", "db")])),
        )],
    );
    let report = f.judge(head);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    assert_eq!(report.commits.len(), 1);
    let signer = report.commits[0].signer.as_ref().unwrap();
    assert_eq!(signer.principals, ["carol@example.com"]);
    assert_eq!(report.commits[0].changes[0].keys, ["HOST"]);
    assert_eq!(
        f.repo.git_verdict(head),
        (true, "carol@example.com".to_owned())
    );
}

#[test]
fn unsigned_and_unknown_key_commits_are_rejected_as_git_rejects_them() {
    let f = Fixture::new();
    let unsigned = f.commit_unsigned(&[("README.md", Some("hello\n"))]);
    let unknown = f.commit_as(&f.mallory, T_2024, &[("README.md", Some("evil\n"))]);
    let report = f.judge(unknown);
    let found = kinds(&report);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        (
            unsigned,
            None,
            ViolationKind::NotVerified(CommitRejection::Unsigned)
        )
    );
    assert_eq!(found[1].0, unknown);
    assert!(
        matches!(
            found[1].2,
            ViolationKind::NotVerified(CommitRejection::Signature(SignatureRejection::Key(_)))
        ),
        "{found:?}"
    );
    assert!(!f.repo.git_verdict(unsigned).0);
    assert!(!f.repo.git_verdict(unknown).0);
    let message = report.violations().nth(1).unwrap().to_string();
    assert!(message.contains(&unknown.to_string()[..12]), "{message}");
}

#[test]
fn a_principal_without_the_capability_is_named_with_the_path_and_what_is_missing() {
    let f = Fixture::new();
    let outside = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "secrets/infra/dns.yaml",
            Some(&manifest("infra/dns", &[("TOKEN", "x")])),
        )],
    );
    let denied_key = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "secrets/apps/db.yaml",
            Some(&manifest("apps/db", &[("ROOT_PASSWORD", "x")])),
        )],
    );
    let report = f.judge(denied_key);
    let found: Vec<_> = report.violations().collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].commit, outside);
    assert_eq!(found[0].path.as_deref(), Some("secrets/infra/dns.yaml"));
    let text = found[0].to_string();
    assert!(
        text.contains("carol@example.com lacks create on secrets/infra/dns"),
        "{text}"
    );
    assert_eq!(found[1].commit, denied_key);
    assert!(
        found[1].to_string().contains("ROOT_PASSWORD"),
        "{}",
        found[1]
    );
    // Both signatures are fine as far as git is concerned: authority is what is missing.
    assert!(f.repo.git_verdict(outside).0);
}

#[test]
fn an_expired_key_is_rejected_at_the_commit_time() {
    let f = Fixture::new();
    let head = f.commit_as(&f.carol, T_2031, &[("README.md", Some("late\n"))]);
    let mut bootstrap = f.bootstrap();
    let text = signer_line("alice@example.com", &f.alice)
        + &format!(
            "carol@example.com valid-before=\"20300101\" {}\n",
            f.carol.public
        );
    bootstrap.signers = AllowedSigners::parse(&text, "bootstrap").unwrap();
    f.repo.set_signers(&text);
    let report = authorise_range(&f.repo.open(), f.base, head, &bootstrap).unwrap();
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(
            &found[0].2,
            ViolationKind::NotVerified(CommitRejection::Signature(SignatureRejection::Key(_)))
        ),
        "{found:?}"
    );
    assert!(!f.repo.git_verdict(head).0);
}

#[test]
fn a_signature_moved_onto_different_content_is_rejected() {
    let f = Fixture::new();
    let good = f.commit_as(&f.carol, T_2024, &[("README.md", Some("fine\n"))]);
    let raw = f.repo.git_ok(&["cat-file", "commit", &good.to_string()]);
    let forged = raw.replacen("\nchange\n", "\nchange (forged)\n", 1);
    assert_ne!(raw, forged);
    let path = f.repo.dir.path().join("forged");
    std::fs::write(&path, forged).unwrap();
    let oid = f
        .repo
        .git_ok(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap()]);
    let forged = Oid::from_str(oid.trim()).unwrap();
    let report = f.judge(forged);
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(
            &found[0].2,
            ViolationKind::NotVerified(CommitRejection::Signature(
                SignatureRejection::BadSignature { .. }
            ))
        ),
        "{found:?}"
    );
    assert!(!f.repo.git_verdict(forged).0);
}

#[test]
fn a_policy_change_needs_two_distinct_sudo_principals_bound_to_its_content() {
    let f = Fixture::new();
    let changed =
        format!("{DEV_POLICY}\npath \"secrets/infra/*\" {{\n  capabilities = [\"create\"]\n}}\n");
    let change = f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&changed))]);

    // Short by one: only the signer.
    let report = f.judge(change);
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    match &found[0].2 {
        ViolationKind::ApprovalsShort {
            sys_path,
            required,
            approvers,
            sudoers,
        } => {
            assert_eq!(sys_path, "sys/policy/dev");
            assert_eq!(*required, 2);
            assert_eq!(approvers, &["alice@example.com"]);
            assert_eq!(sudoers, &["alice@example.com", "bob@example.com"]);
        }
        other => panic!("{other:?}"),
    }

    // The same principal approving (twice) still counts once.
    f.approve(
        &f.alice,
        "alice@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let twice = f.approve(
        &f.alice,
        "alice@example.com",
        T_2024 + 60,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    assert!(!f.judge(twice).is_authorised());

    // bob approving another blob does not count; carol (no sudo) does not count.
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(DEV_POLICY),
        &f.alice,
    );
    let no_sudo = f.approve(
        &f.carol,
        "carol@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let report = f.judge(no_sudo);
    assert_eq!(kinds(&report).len(), 1, "{:?}", kinds(&report));

    // bob approving exactly this content completes it.
    let approved = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let report = f.judge(approved);
    assert!(report.is_authorised(), "{:?}", kinds(&report));

    // carol may now create under secrets/infra, judged under the approved policy.
    let later = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "secrets/infra/dns.yaml",
            Some(&manifest("infra/dns", &[("TOKEN", "x")])),
        )],
    );
    assert!(f.judge(later).is_authorised());
}

#[test]
fn a_signers_change_cannot_approve_itself_and_an_approved_one_takes_effect_after() {
    let f = Fixture::new();
    let with_mallory = f.signers_text() + &signer_line("mallory@example.com", &f.mallory);
    let identity_text = identity("mallory@example.com", "admin");
    let change = f.commit_as(
        &f.alice,
        T_2024,
        &[
            (".sealops/allowed_signers", Some(&with_mallory)),
            ("identities/mallory.yaml", Some(&identity_text)),
        ],
    );
    // mallory's key is trusted only by the change itself: the approval does not verify.
    f.approve(
        &f.mallory,
        "mallory@example.com",
        T_2024,
        ".sealops/allowed_signers",
        blob(&with_mallory),
        &f.alice,
    );
    let head = f.approve(
        &f.mallory,
        "mallory@example.com",
        T_2024,
        "identities/mallory.yaml",
        blob(&identity_text),
        &f.alice,
    );
    let report = f.judge(head);
    let found = kinds(&report);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(c, _, k)| *c == change && matches!(k, ViolationKind::ApprovalsShort { approvers, .. } if approvers.len() == 1)), "{found:?}");
    // Rejected, so mallory's own commit afterwards is judged under the old signers.
    let by_mallory = f.commit_as(&f.mallory, T_2024, &[("README.md", Some("mine\n"))]);
    let report = f.judge(by_mallory);
    assert!(matches!(
        report.commits.last().unwrap().violations[0].kind,
        ViolationKind::NotVerified(_)
    ));

    // With bob's approvals the change is authorised, and mallory's commits verify after it.
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        ".sealops/allowed_signers",
        blob(&with_mallory),
        &f.alice,
    );
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "identities/mallory.yaml",
        blob(&identity_text),
        &f.alice,
    );
    let after = f.commit_as(&f.mallory, T_2024, &[("README.md", Some("now trusted\n"))]);
    let report = f.judge(after);
    // Approvals bind content, not commits: once bob's approvals are in the range, the change
    // is authorised where it was made, so every later commit by mallory verifies.
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    let signer = report.commits.last().unwrap().signer.as_ref().unwrap();
    assert_eq!(signer.principals, ["mallory@example.com"]);
}

#[test]
fn pinned_principals_restrict_who_counts() {
    let f = Fixture::new();
    let head = f.commit_as(&f.carol, T_2024, &[("README.md", Some("x\n"))]);
    let mut bootstrap = f.bootstrap();
    bootstrap.pinned_principals = Some(BTreeSet::from(["alice@example.com".to_owned()]));
    let report = authorise_range(&f.repo.open(), f.base, head, &bootstrap).unwrap();
    assert!(matches!(
        kinds(&report)[0].2,
        ViolationKind::NotPinned { .. }
    ));
}

#[test]
fn squash_merge_keeps_content_bound_approvals_valid() {
    let f = Fixture::new();
    let changed = DEV_POLICY.replace("\"update\"", "\"update\", \"delete\"");
    f.repo.git_ok(&["checkout", "-q", "-b", "feature"]);
    f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&changed))]);
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let feature = f.repo.head();
    assert!(f.judge(feature).is_authorised());
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.repo.git_ok(&["merge", "-q", "--squash", "feature"]);
    let squashed = f.commit_as(&f.alice, T_2024, &[]);
    assert_ne!(squashed, feature);
    let report = f.judge(squashed);
    assert_eq!(report.commits.len(), 1);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
}

#[test]
fn a_merge_that_introduces_an_unapproved_change_is_rejected() {
    let f = Fixture::new();
    f.repo.git_ok(&["checkout", "-q", "-b", "feature"]);
    f.commit_as(&f.carol, T_2024, &[("README.md", Some("feature\n"))]);
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.commit_as(&f.carol, T_2024, &[("NOTES.md", Some("main\n"))]);
    // A clean merge introduces nothing of its own.
    let out = f.repo.git(&[
        "-c",
        &format!("user.signingkey={}", f.carol.private.display()),
        "merge",
        "-q",
        "-S",
        "--no-ff",
        "-m",
        "merge",
        "feature",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = f.repo.head();
    assert!(
        f.judge(clean).is_authorised(),
        "{:?}",
        kinds(&f.judge(clean))
    );
    // An "evil" merge slips a policy change into the merge commit.
    f.repo.git_ok(&["reset", "-q", "--hard", "HEAD~1"]);
    let out = f
        .repo
        .git(&["merge", "-q", "--no-commit", "--no-ff", "feature"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evil = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "policies/dev.hcl",
            Some("path \"*\" {\n  capabilities = [\"sudo\"]\n}\n"),
        )],
    );
    assert_eq!(f.repo.open().find_commit(evil).unwrap().parent_count(), 2);
    let report = f.judge(evil);
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, evil);
    assert_eq!(found[0].1.as_deref(), Some("policies/dev.hcl"));
    let merge = report.commits.last().unwrap();
    assert_eq!(merge.changes.len(), 1, "{:?}", merge.changes);
}

impl Fixture {
    /// A signed merge commit with `parents` whose tree is the index after staging `files` on
    /// top of the current HEAD's tree (built with `git commit-tree`, so any parents will do).
    fn merge_as(&self, key: &TestKey, parents: &[Oid], files: &[(&str, Option<&str>)]) -> Oid {
        self.stage(files);
        let tree = self.repo.git_ok(&["write-tree"]);
        let signing_key = format!("user.signingkey={}", key.private.display());
        let mut args: Vec<String> =
            vec!["-c".into(), signing_key, "commit-tree".into(), "-S".into()];
        for parent in parents {
            args.push("-p".into());
            args.push(parent.to_string());
        }
        args.extend(["-m".into(), "merge".into(), tree.trim().to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.repo.git_at(T_2024, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let oid = String::from_utf8(out.stdout).unwrap();
        self.repo.git_ok(&["reset", "-q", "--soft", oid.trim()]);
        Oid::from_str(oid.trim()).unwrap()
    }
}

#[test]
fn a_merge_cannot_bring_back_content_from_before_the_base() {
    let f = Fixture::new();
    // An old state, before the base: carol was an admin. It was revoked since.
    let carol_admin = identity("carol@example.com", "admin");
    let old = f.commit_as(
        &f.alice,
        T_2024,
        &[("identities/carol.yaml", Some(&carol_admin))],
    );
    let base = f.commit_as(
        &f.alice,
        T_2024,
        &[(
            "identities/carol.yaml",
            Some(&identity("carol@example.com", "dev")),
        )],
    );
    // Carol merges the old ancestor back in, taking its identities/carol.yaml.
    let merge = f.merge_as(
        &f.carol,
        &[base, old],
        &[("identities/carol.yaml", Some(&carol_admin))],
    );
    let report = authorise_range(&f.repo.open(), base, merge, &f.bootstrap()).unwrap();
    let violations: Vec<String> = report.violations().map(|v| v.to_string()).collect();
    assert!(
        violations
            .iter()
            .any(|v| v.contains("identities/carol.yaml")),
        "content from before the base must be judged as a change: {violations:?}"
    );
}

#[test]
fn an_orphan_history_is_judged_under_the_base_not_its_own_tree() {
    let f = Fixture::new();
    // An orphan commit whose own tree makes carol root and needs one approval.
    f.repo.git_ok(&["checkout", "-q", "--orphan", "orphan"]);
    let orphan = f.commit_as(
        &f.carol,
        T_2024,
        &[
            (
                "identities/carol.yaml",
                Some(&identity("carol@example.com", "root")),
            ),
            (
                ".sealops/config.yaml",
                Some(&format!("{CONFIG}trust:\n  required_approvals: 1\n")),
            ),
        ],
    );
    let merge = f.merge_as(&f.carol, &[f.base, orphan], &[]);
    let report = authorise_range(&f.repo.open(), f.base, merge, &f.bootstrap()).unwrap();
    let orphan_report = report
        .commits
        .iter()
        .find(|c| c.commit == orphan)
        .expect("orphan judged");
    assert!(
        orphan_report
            .violations
            .iter()
            .any(|v| v.to_string().contains("identities/carol.yaml")),
        "{:?}",
        orphan_report.violations
    );
    assert!(!report.is_authorised());
}

#[test]
fn an_approver_without_sudo_cannot_hide_one_with_sudo_behind_a_shared_key() {
    let f = Fixture::new();
    // bob's key is also listed for aaron, who holds no identity (so no sudo).
    let signers = f.signers_text() + &signer_line("aaron@example.com", &f.bob);
    let bootstrap = Bootstrap {
        signers: AllowedSigners::parse(&signers, "bootstrap").unwrap(),
        pinned_principals: None,
    };
    let changed =
        format!("{DEV_POLICY}\npath \"secrets/infra/*\" {{\n  capabilities = [\"create\"]\n}}\n");
    f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&changed))]);
    f.approve(
        &f.bob,
        "aaron@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let head = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&changed),
        &f.alice,
    );
    let report = authorise_range(&f.repo.open(), f.base, head, &bootstrap).unwrap();
    assert!(
        report.is_authorised(),
        "alice (signer) and bob (approval) are two sudoers: {:?}",
        kinds(&report)
    );
}

#[test]
fn an_approval_already_in_the_base_does_not_approve_a_revert_and_approvals_are_append_only() {
    let f = Fixture::new();
    let x = format!("{DEV_POLICY}\npath \"secrets/x/*\" {{\n  capabilities = [\"create\"]\n}}\n");
    let y = format!("{DEV_POLICY}\npath \"secrets/y/*\" {{\n  capabilities = [\"create\"]\n}}\n");
    // Earlier, approved and merged: policies/dev.hcl = x, with bob's approval of x.
    f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&x))]);
    let base = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&x),
        &f.alice,
    );
    // The pull request: change to y (approved), then back to x with no new approval.
    f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&y))]);
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        "policies/dev.hcl",
        blob(&y),
        &f.alice,
    );
    let revert = f.commit_as(&f.alice, T_2024, &[("policies/dev.hcl", Some(&x))]);
    let report = authorise_range(&f.repo.open(), base, revert, &f.bootstrap()).unwrap();
    let found = kinds(&report);
    assert!(
        found.iter().any(|(commit, path, kind)| *commit == revert
            && path.as_deref() == Some("policies/dev.hcl")
            && matches!(kind, ViolationKind::ApprovalsShort { .. })),
        "the old approval of x must not count again: {found:?}"
    );

    // Removing an approval file is refused.
    let approvals: Vec<String> = std::fs::read_dir(f.repo.work().join(".sealops/approvals"))
        .unwrap()
        .map(|e| {
            format!(
                ".sealops/approvals/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    let removal = f.commit_as(&f.alice, T_2024, &[(&approvals[0], None)]);
    let report = authorise_range(&f.repo.open(), revert, removal, &f.bootstrap()).unwrap();
    assert!(
        kinds(&report)
            .iter()
            .any(|(_, _, kind)| *kind == ViolationKind::ApprovalRemoved),
        "{:?}",
        kinds(&report)
    );
}
