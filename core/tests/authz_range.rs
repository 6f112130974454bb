//! Range authorisation on real repositories: real `ssh-keygen` keys, real `git commit -S`
//! (`gpg.format ssh`), judged in process; signatures cross-checked with `git verify-commit`.

use std::collections::BTreeSet;

use crate::signing_support::{T_2024, T_2031, TestKey, TestRepo, keygen};
use git2::Oid;
use sealops_core::authz::{
    ApprovalCount, Bootstrap, Clock, CommitReport, RangeReport, ViolationKind, authorise_range,
};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::policy::Operation;
use sealops_core::signing::approval::{
    ApprovalSet, ApprovalStatement, ApprovedContent, SignedApproval, statement_id,
};
use sealops_core::signing::commit::CommitRejection;
use sealops_core::signing::sshsig::{SignatureRejection, SigningKey};
use sealops_core::signing::{APPROVAL_NAMESPACE, AllowedSigners};
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

const REPOSITORY_ID: &str = "0123456789abcdef0123456789abcdef";
const CONFIG: &str = "sealops: v1\nrepository_id: 0123456789abcdef0123456789abcdef\nrecipients:\n  - name: prod\n    key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n";

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
            // The fixture's commits and approvals are dated T_2024; they are judged a day later.
            clock: Clock::at(T_2024 + 86_400),
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
        let statement = ApprovalStatement::new(
            REPOSITORY_ID,
            principal,
            created,
            [(path.to_owned(), content)],
        )
        .unwrap();
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
    // Judged when the commit's date has come, so the date is not a future one.
    bootstrap.clock = Clock::at(T_2031 + 60);
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
        clock: Clock::at(T_2024 + 86_400),
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

// ---------------------------------------------------------------------------------------------
// Adversarial tests for the merge rule, approvals v2 and key time (judged at the clock).
// ---------------------------------------------------------------------------------------------

const SIGNERS: &str = ".sealops/allowed_signers";
const INFRA: &str = "secrets/infra/db.yaml";
const DB: &str = "secrets/apps/db.yaml";
const POLICY: &str = "policies/dev.hcl";
const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z.
const T_2026: i64 = 1_767_225_600;

/// The violation kinds of `report` at `commit` on `path`.
fn at<'r>(report: &'r RangeReport, commit: Oid, path: &str) -> Vec<&'r ViolationKind> {
    report
        .violations()
        .filter(|v| v.commit == commit && v.path.as_deref() == Some(path))
        .map(|v| &v.kind)
        .collect()
}

fn commit_report(report: &RangeReport, commit: Oid) -> &CommitReport {
    report
        .commits
        .iter()
        .find(|c| c.commit == commit)
        .unwrap_or_else(|| panic!("commit {commit} was not judged"))
}

fn approval_count<'r>(report: &'r RangeReport, commit: Oid, path: &str) -> &'r ApprovalCount {
    commit_report(report, commit)
        .approvals
        .iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("no approval count for {path} at {commit}"))
}

fn assert_missing_capability(
    report: &RangeReport,
    commit: Oid,
    path: &str,
    principal: &str,
    operation: Operation,
) {
    let found = at(report, commit, path);
    assert!(
        found.iter().any(|k| matches!(k,
            ViolationKind::MissingCapability { principals, operation: op, .. }
                if principals.iter().any(|p| p == principal) && *op == operation)),
        "expected MissingCapability({principal}, {operation:?}) at {commit} on {path}: {:?}",
        kinds(report)
    );
}

fn assert_approvals_short(report: &RangeReport, commit: Oid, path: &str, sys_path: &str) {
    let found = at(report, commit, path);
    assert!(
        found.iter().any(|k| matches!(k,
            ViolationKind::ApprovalsShort { sys_path: s, .. } if s == sys_path)),
        "expected ApprovalsShort({sys_path}) at {commit} on {path}: {:?}",
        kinds(report)
    );
}

/// A signed approval statement (not committed).
fn statement(
    key: &TestKey,
    repository: &str,
    principal: &str,
    created: i64,
    path: &str,
    content: ApprovedContent,
) -> SignedApproval {
    ApprovalStatement::new(repository, principal, created, [(path.to_owned(), content)])
        .unwrap()
        .sign(&SigningKey::load(&key.private).unwrap())
        .unwrap()
}

fn dev_policy_with(extra: &str) -> String {
    format!("{DEV_POLICY}\npath \"secrets/{extra}/*\" {{\n  capabilities = [\"create\"]\n}}\n")
}

impl Fixture {
    /// The approval files of `commit`'s tree, asserting that `path` is rejected saying `why`.
    fn rejected_at(&self, commit: Oid, path: &str, why: &str) -> ApprovalSet {
        let repo = self.repo.open();
        let tree = repo.find_commit(commit).unwrap().tree().unwrap();
        let set = ApprovalSet::load(&repo, &tree, &self.bootstrap().signers).unwrap();
        assert!(
            set.rejected
                .iter()
                .any(|(p, e)| p == path && e.to_string().contains(why)),
            "{:?}",
            set.rejected
        );
        set
    }

    /// Runs git signing with `key` (at T_2024) and returns HEAD; the command must succeed.
    fn git_signed(&self, key: &TestKey, args: &[&str]) -> Oid {
        let out = self.git_with_key(key, args);
        assert!(
            out.status.success(),
            "git {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.repo.head()
    }

    /// Runs git signing with `key` (at T_2024), whatever its exit status (merges that conflict).
    fn git_with_key(&self, key: &TestKey, args: &[&str]) -> std::process::Output {
        let signing_key = format!("user.signingkey={}", key.private.display());
        let mut full = vec!["-c", signing_key.as_str()];
        full.extend_from_slice(args);
        self.repo.git(&full)
    }

    /// The text of `path` at `commit`.
    fn show(&self, commit: Oid, path: &str) -> String {
        self.repo.git_ok(&["show", &format!("{commit}:{path}")])
    }

    fn parents(&self, commit: Oid) -> Vec<Oid> {
        self.repo
            .open()
            .find_commit(commit)
            .unwrap()
            .parent_ids()
            .collect()
    }

    fn merge_bases(&self, a: &str, b: &str) -> usize {
        self.repo
            .git_ok(&["merge-base", "--all", a, b])
            .lines()
            .count()
    }

    fn judge_from(&self, base: Oid, head: Oid, bootstrap: &Bootstrap) -> RangeReport {
        authorise_range(&self.repo.open(), base, head, bootstrap).unwrap()
    }

    fn judge_at(&self, head: Oid, clock: Clock) -> RangeReport {
        let mut bootstrap = self.bootstrap();
        bootstrap.clock = clock;
        self.judge_from(self.base, head, &bootstrap)
    }
}

/// A history with a stale past. OLD (an ancestor of BASE) still trusts mallory and holds the
/// old database passwords; BASE has revoked mallory (with bob's approval of the old signers file
/// left in `.sealops/approvals`, as approvals are append-only) and alice has rotated both
/// passwords. dave is a trusted signer with no identity, so no policy grants him anything.
struct Stale {
    f: Fixture,
    dave: TestKey,
    old: Oid,
    base: Oid,
    signers: String,
}

fn db(root: &str) -> String {
    manifest("apps/db", &[("HOST", "db"), ("ROOT_PASSWORD", root)])
}

fn infra(password: &str) -> String {
    manifest("infra/db", &[("PASSWORD", password)])
}

impl Stale {
    fn new() -> Self {
        let f = Fixture::new();
        let dave = keygen(f._keys.path(), "dave");
        let dave_line = signer_line("dave@example.com", &dave);
        let old_signers =
            f.signers_text() + &signer_line("mallory@example.com", &f.mallory) + &dave_line;
        f.commit_as(
            &f.alice,
            T_2024,
            &[
                (SIGNERS, Some(&old_signers)),
                (INFRA, Some(&infra("old-password"))),
                (DB, Some(&db("old-root"))),
            ],
        );
        let old = f.approve(
            &f.bob,
            "bob@example.com",
            T_2024,
            SIGNERS,
            blob(&old_signers),
            &f.alice,
        );
        let signers = f.signers_text() + &dave_line;
        let base = f.commit_as(
            &f.alice,
            T_2024,
            &[
                (SIGNERS, Some(&signers)),
                (INFRA, Some(&infra("rotated-password"))),
                (DB, Some(&db("rotated-root"))),
            ],
        );
        Self {
            f,
            dave,
            old,
            base,
            signers,
        }
    }

    fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            signers: AllowedSigners::parse(&self.signers, "bootstrap").unwrap(),
            pinned_principals: None,
            clock: Clock::at(T_2024 + DAY),
        }
    }

    fn judge(&self, head: Oid) -> RangeReport {
        self.f.judge_from(self.base, head, &self.bootstrap())
    }
}

// --- 1. The merge rule ------------------------------------------------------------------------

/// 1a. dave forks from OLD, adds one empty signed commit, merges it into main with `-s ours`,
/// then checks out the fork's signers file and secret and amends the (signed) merge.
#[test]
fn a_stale_fork_merged_with_ours_cannot_bring_back_a_revoked_signer_or_an_old_secret() {
    let s = Stale::new();
    let f = &s.f;
    f.repo
        .git_ok(&["checkout", "-q", "-b", "side", &s.old.to_string()]);
    let empty = f.git_signed(
        &s.dave,
        &["commit", "-q", "--allow-empty", "-S", "-m", "nothing"],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.git_signed(
        &s.dave,
        &["merge", "-q", "-S", "-s", "ours", "--no-edit", "side"],
    );
    f.repo.git_ok(&["checkout", "side", "--", SIGNERS, INFRA]);
    let merge = f.git_signed(&s.dave, &["commit", "-q", "--amend", "-S", "--no-edit"]);
    assert_eq!(f.parents(merge), [s.base, empty]);
    assert!(f.show(merge, SIGNERS).contains("mallory@example.com"));
    assert!(f.show(merge, INFRA).contains("old-password"));

    let report = s.judge(merge);
    assert!(commit_report(&report, empty).violations.is_empty());
    assert_missing_capability(&report, merge, INFRA, "dave@example.com", Operation::Update);
    assert_approvals_short(&report, merge, SIGNERS, "sys/signers");
    assert_eq!(kinds(&report).len(), 2, "{:?}", kinds(&report));
    let change = commit_report(&report, merge)
        .changes
        .iter()
        .find(|c| c.path == INFRA)
        .unwrap();
    assert_eq!(change.against, Some(s.base), "measured against main");
    assert_eq!(change.keys, ["PASSWORD"]);
    // bob's approval of the old signers file is in the base: spent, and says so.
    let count = approval_count(&report, merge, SIGNERS);
    assert!(count.approvers.is_empty(), "{count:?}");
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.starts_with("bob@example.com") && n.contains("already in the base")),
        "{count:?}"
    );
}

/// 1b. A merge whose first parent is OLD (an ancestor of BASE) and whose second is main, with
/// OLD's tree: it keeps the first parent's content, so it is measured against main.
#[test]
fn a_merge_whose_first_parent_is_an_old_ancestor_is_judged_against_main() {
    let s = Stale::new();
    let f = &s.f;
    f.repo
        .git_ok(&["checkout", "-q", "--detach", &s.old.to_string()]);
    let merge = f.git_signed(
        &s.dave,
        &[
            "merge",
            "-q",
            "-S",
            "--no-ff",
            "-s",
            "ours",
            "--no-edit",
            "main",
        ],
    );
    assert_eq!(f.parents(merge), [s.old, s.base]);
    let report = s.judge(merge);
    assert_eq!(report.commits.len(), 1);
    assert_missing_capability(&report, merge, INFRA, "dave@example.com", Operation::Update);
    assert_missing_capability(&report, merge, DB, "dave@example.com", Operation::Update);
    assert_approvals_short(&report, merge, SIGNERS, "sys/signers");
    // The secrets are judged against main, whose rotation they would undo; the signers file
    // against what either parent trusts (both trust the base's).
    let changes = &commit_report(&report, merge).changes;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(
        changes
            .iter()
            .filter(|c| c.path != SIGNERS)
            .all(|c| c.against == Some(s.base)),
        "{changes:?}"
    );

    // Signed by carol (update on secrets/apps/* but ROOT_PASSWORD denied): still refused, for
    // the ROOT_PASSWORD it brings back.
    f.repo
        .git_ok(&["checkout", "-q", "--detach", &s.old.to_string()]);
    let by_carol = f.git_signed(
        &f.carol,
        &[
            "merge",
            "-q",
            "-S",
            "--no-ff",
            "-s",
            "ours",
            "--no-edit",
            "main",
        ],
    );
    let report = s.judge(by_carol);
    assert_missing_capability(
        &report,
        by_carol,
        DB,
        "carol@example.com",
        Operation::Update,
    );
    assert!(
        at(&report, by_carol, DB).iter().any(|k| matches!(k,
            ViolationKind::MissingCapability { keys, .. } if keys == &["ROOT_PASSWORD"])),
        "{:?}",
        kinds(&report)
    );
}

/// 1c. An octopus merge of main, a harmless side branch and a stale fork, taking the fork's
/// copy of the secret.
#[test]
fn an_octopus_merge_cannot_take_a_stale_copy_from_one_side() {
    let s = Stale::new();
    let f = &s.f;
    f.repo.git_ok(&["checkout", "-q", "-b", "docs", "main"]);
    let docs = f.commit_as(&s.dave, T_2024, &[("README.md", Some("docs\n"))]);
    f.repo
        .git_ok(&["checkout", "-q", "-b", "stale", &s.old.to_string()]);
    let stale = f.git_signed(
        &s.dave,
        &["commit", "-q", "--allow-empty", "-S", "-m", "nothing"],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.git_signed(
        &s.dave,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "docs", "stale"],
    );
    // The octopus itself took main's secret (the fork did not change it); now take the fork's.
    assert!(f.show(f.repo.head(), INFRA).contains("rotated-password"));
    f.repo.git_ok(&["checkout", "stale", "--", INFRA]);
    let merge = f.git_signed(&s.dave, &["commit", "-q", "--amend", "-S", "--no-edit"]);
    assert_eq!(f.parents(merge), [s.base, docs, stale]);

    let report = s.judge(merge);
    assert_missing_capability(&report, merge, INFRA, "dave@example.com", Operation::Update);
    assert_eq!(kinds(&report).len(), 1, "{:?}", kinds(&report));
    let changes = &commit_report(&report, merge).changes;
    assert_eq!(
        changes.len(),
        1,
        "README.md is clean from docs: {changes:?}"
    );
    assert_eq!(changes[0].against, Some(s.base));
}

/// 1d. Criss-cross merges (two merge bases): a clean merge of a later change passes; taking a
/// side's copy that one of the merge bases already had is the merger's change.
#[test]
fn criss_cross_merges_pass_when_clean_and_refuse_a_stale_copy() {
    let f = Fixture::new();
    let start = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s0")))]);
    f.repo.git_ok(&["checkout", "-q", "-b", "a"]);
    let a1 = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s1")))]);
    f.repo
        .git_ok(&["checkout", "-q", "-b", "b", &start.to_string()]);
    f.commit_as(&f.carol, T_2024, &[("README.md", Some("b\n"))]);
    f.repo.git_ok(&["checkout", "-q", "a"]);
    let a2 = f.git_signed(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "b"],
    );
    f.repo.git_ok(&["checkout", "-q", "b"]);
    let b2 = f.git_signed(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", &a1.to_string()],
    );
    assert_eq!(f.merge_bases(&a2.to_string(), &b2.to_string()), 2);

    // Clean: alice rotates on a, carol adds notes on b, carol merges a into b.
    f.repo.git_ok(&["checkout", "-q", "a"]);
    let a3 = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s2")))]);
    f.repo.git_ok(&["checkout", "-q", "b"]);
    let b3 = f.commit_as(&f.carol, T_2024, &[("NOTES.md", Some("b\n"))]);
    assert_eq!(f.merge_bases(&a3.to_string(), &b3.to_string()), 2);
    let clean = f.git_signed(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "a"],
    );
    assert!(f.show(clean, INFRA).contains("s2"));
    let report = f.judge_from(start, clean, &f.bootstrap());
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    assert!(commit_report(&report, clean).changes.is_empty());

    // Stale: on a copy of a, alice rotates again; carol merges b (which has s1, as merge base
    // a1 had) and keeps b's copy. git itself would take s3 (b did not change it).
    f.repo
        .git_ok(&["checkout", "-q", "-b", "a-stale", &a2.to_string()]);
    let rotated = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s3")))]);
    assert_eq!(f.merge_bases(&rotated.to_string(), &b2.to_string()), 2);
    let out = f.git_with_key(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", &b2.to_string()],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(f.show(f.repo.head(), INFRA).contains("s3"), "git takes s3");
    f.repo.git_ok(&["checkout", &b2.to_string(), "--", INFRA]);
    let stale = f.git_signed(&f.carol, &["commit", "-q", "--amend", "-S", "--no-edit"]);
    assert_eq!(f.parents(stale), [rotated, b2]);
    let report = f.judge_from(start, stale, &f.bootstrap());
    assert_missing_capability(
        &report,
        stale,
        INFRA,
        "carol@example.com",
        Operation::Update,
    );
    assert_eq!(kinds(&report).len(), 1, "{:?}", kinds(&report));
}

/// 1e. A side branch changes the secret and changes it back; main rotates it; the merge takes
/// the side's (reverted) content. The side did not change the path since the merge base, so
/// this is the merger's change, even though the content equals the range's base (there is no
/// "equals BASE is trusted" exception any more).
#[test]
fn a_side_that_changed_a_path_back_cannot_revert_mains_change_through_a_merge() {
    let f = Fixture::new();
    let start = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s0")))]);
    f.repo.git_ok(&["checkout", "-q", "-b", "side"]);
    f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s1")))]);
    f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s0")))]);
    f.repo.git_ok(&["checkout", "-q", "main"]);
    let rotated = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("s2")))]);
    f.git_signed(&f.carol, &["merge", "-q", "-S", "--no-edit", "side"]);
    assert!(f.show(f.repo.head(), INFRA).contains("s2"), "git keeps s2");
    f.repo.git_ok(&["checkout", "side", "--", INFRA]);
    let merge = f.git_signed(&f.carol, &["commit", "-q", "--amend", "-S", "--no-edit"]);
    assert_eq!(f.show(merge, INFRA), f.show(start, INFRA));

    let report = f.judge_from(start, merge, &f.bootstrap());
    assert_missing_capability(
        &report,
        merge,
        INFRA,
        "carol@example.com",
        Operation::Update,
    );
    assert_eq!(kinds(&report).len(), 1, "{:?}", kinds(&report));
    let change = &commit_report(&report, merge).changes[0];
    assert_eq!(change.against, Some(rotated));
}

/// Legit: a `--no-ff` merge of a pull request that changed a secret (signed by a capable
/// signer), merged by someone with no capability at all while main moved on.
#[test]
fn a_no_ff_merge_of_a_capable_pull_request_passes_whoever_merges() {
    let s = Stale::new();
    let f = &s.f;
    f.repo.git_ok(&["checkout", "-q", "-b", "pr"]);
    let pr = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            "secrets/apps/cache.yaml",
            Some(&manifest("apps/cache", &[("HOST", "cache")])),
        )],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("again")))]);
    let merge = f.git_signed(
        &s.dave,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "pr"],
    );
    assert_eq!(f.parents(merge)[1], pr);
    let report = s.judge(merge);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    assert!(commit_report(&report, merge).changes.is_empty());
}

/// Legit: both sides change different files (secrets and an approved policy change); the clean
/// merge needs no capability and no new approval.
#[test]
fn a_merge_of_sides_changing_different_files_passes() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    f.repo.git_ok(&["checkout", "-q", "-b", "side"]);
    f.commit_as(
        &f.carol,
        T_2024,
        &[(DB, Some(&manifest("apps/db", &[("HOST", "side")])))],
    );
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
        &f.alice,
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("main")))]);
    let merge = f.git_signed(&f.carol, &["merge", "-q", "-S", "--no-edit", "side"]);
    assert_eq!(f.parents(merge).len(), 2);
    assert!(f.show(merge, INFRA).contains("main") && f.show(merge, POLICY) == policy);
    let report = f.judge(merge);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    assert!(commit_report(&report, merge).changes.is_empty());
    assert!(commit_report(&report, merge).approvals.is_empty());
}

/// Legit: both sides changed the same secret; a capable merger (alice) resolves the conflict to
/// one side's content (either side).
#[test]
fn a_capable_merger_may_resolve_a_conflict_to_either_side() {
    let f = Fixture::new();
    let start = f.commit_as(
        &f.carol,
        T_2024,
        &[(DB, Some(&manifest("apps/db", &[("HOST", "db")])))],
    );
    f.repo.git_ok(&["checkout", "-q", "-b", "side"]);
    f.commit_as(
        &f.carol,
        T_2024,
        &[(DB, Some(&manifest("apps/db", &[("HOST", "side")])))],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    let main = f.commit_as(
        &f.alice,
        T_2024,
        &[(DB, Some(&manifest("apps/db", &[("HOST", "main")])))],
    );
    for (resolution, expected) in [("side", "side"), ("main", "main")] {
        f.repo
            .git_ok(&["checkout", "-q", "-B", "merging", &main.to_string()]);
        let out = f.git_with_key(&f.alice, &["merge", "-q", "--no-commit", "side"]);
        assert!(!out.status.success(), "a conflict is expected");
        f.repo.git_ok(&["checkout", resolution, "--", DB]);
        let merge = f.git_signed(&f.alice, &["commit", "-q", "-S", "--no-edit"]);
        assert_eq!(f.parents(merge).len(), 2);
        assert!(f.show(merge, DB).contains(&format!("HOST: \"{expected}\"")));
        let report = f.judge_from(start, merge, &f.bootstrap());
        assert!(report.is_authorised(), "{resolution}: {:?}", kinds(&report));
    }
}

/// 1f. A conflict resolved to one side is the merger's change (found while writing these tests).
///
/// carol branched from OLD (before alice rotated ROOT_PASSWORD) and made a change her policy
/// allows (HOST). dave, who holds no capability at all, merges her branch into main and resolves
/// the conflict to carol's whole file. Both sides changed the file since the merge base, so
/// `introduced` calls the content "clean" from carol's side (only "Pi changed p since every
/// merge base" is checked, never whether Pj changed it too) and judges nothing: the merge
/// silently puts the old ROOT_PASSWORD back on main, which neither dave nor carol may write.
/// git's own three-way merge would keep main's ROOT_PASSWORD (or conflict); taking one side
/// wholesale discards the other side's change and is the merger's own change.
#[test]
fn a_conflict_resolved_to_a_stale_side_is_judged_as_the_mergers_change() {
    let s = Stale::new();
    let f = &s.f;
    f.repo
        .git_ok(&["checkout", "-q", "-b", "side", &s.old.to_string()]);
    let side = f.commit_as(
        &f.carol,
        T_2024,
        &[(
            DB,
            Some(&manifest(
                "apps/db",
                &[("HOST", "db2"), ("ROOT_PASSWORD", "old-root")],
            )),
        )],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    f.git_with_key(&s.dave, &["merge", "-q", "--no-ff", "--no-commit", "side"]);
    f.repo.git_ok(&["checkout", "side", "--", DB]);
    let merge = f.git_signed(&s.dave, &["commit", "-q", "-S", "--no-edit"]);
    assert_eq!(f.parents(merge), [s.base, side]);
    assert!(
        f.show(merge, DB).contains("old-root"),
        "the rotation is undone"
    );
    assert!(f.show(merge, INFRA).contains("rotated-password"));

    let report = s.judge(merge);
    assert!(commit_report(&report, side).violations.is_empty());
    assert!(
        !at(&report, merge, DB).is_empty(),
        "a merger without any capability reverted alice's ROOT_PASSWORD rotation through a \
         conflict resolution and nothing was judged: {:?}, changes {:?}",
        kinds(&report),
        commit_report(&report, merge).changes
    );
}

/// 1g. A merger's change is judged against every parent whose content it discards (found while
/// writing these tests).
///
/// The first-parent trick with a tweak: parents (OLD, main), main's tree except that the
/// secret is OLD's copy with HOST changed. The content matches neither parent, so it is the
/// merger's change; measured against the first parent only (`against` = OLD) its keys would
/// be `[HOST]`, which carol may update, and the old ROOT_PASSWORD (denied to her) would go back
/// unjudged. Judged against main as well, its keys include ROOT_PASSWORD.
#[test]
fn a_mergers_change_is_judged_against_every_parent_it_discards() {
    let s = Stale::new();
    let f = &s.f;
    let tweaked = manifest("apps/db", &[("HOST", "db3"), ("ROOT_PASSWORD", "old-root")]);
    let merge = f.merge_as(&f.carol, &[s.old, s.base], &[(DB, Some(&tweaked))]);
    assert_eq!(f.parents(merge), [s.old, s.base]);
    assert!(f.show(merge, DB).contains("old-root"));
    assert!(f.show(s.base, DB).contains("rotated-root"));

    let report = s.judge(merge);
    let denied = at(&report, merge, DB).iter().any(|k| {
        matches!(k, ViolationKind::MissingCapability { keys, .. }
            if keys.iter().any(|key| key == "ROOT_PASSWORD"))
    });
    assert!(
        denied,
        "carol put the old ROOT_PASSWORD back through a merge whose first parent is OLD; \
         judged only as {:?}: {:?}",
        commit_report(&report, merge).changes,
        kinds(&report)
    );
}

// --- 2. Approvals v2 --------------------------------------------------------------------------

/// 2a. A renamed copy of an approval file never counts (and is reported as rejected).
#[test]
fn a_renamed_copy_of_an_approval_counts_for_nothing() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let signed = statement(
        &f.bob,
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
    );
    let renamed = format!(
        ".sealops/approvals/{}.approval",
        statement_id("another statement")
    );
    let head = f.commit_as(&f.alice, T_2024, &[(&renamed, Some(&signed.contents))]);
    let report = f.judge(head);
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    assert_eq!(
        approval_count(&report, change, POLICY).approvers,
        ["alice@example.com"]
    );
    let set = f.rejected_at(head, &renamed, "renamed copy");
    assert!(set.verified.is_empty());

    // Control: the same statement under its own name counts.
    let head = f.commit_as(
        &f.alice,
        T_2024,
        &[(&signed.repo_path(), Some(&signed.contents))],
    );
    let report = f.judge(head);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
}

/// 2b. Replay after revocation: X approved, later Y approved; the attacker restores X with
/// the old approval copied under a new name. Spent (its statement is in the base) and renamed.
#[test]
fn an_old_approval_cannot_be_replayed_after_the_content_was_replaced() {
    let f = Fixture::new();
    let x = dev_policy_with("x");
    let y = dev_policy_with("y");
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&x))]);
    let x_approval = statement(
        &f.bob,
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&x),
    );
    f.commit_as(
        &f.alice,
        T_2024,
        &[(&x_approval.repo_path(), Some(&x_approval.contents))],
    );
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&y))]);
    let base = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&y),
        &f.alice,
    );

    let copy = format!(".sealops/approvals/{}.approval", statement_id("replay"));
    let replay = f.commit_as(
        &f.alice,
        T_2024,
        &[(POLICY, Some(&x)), (&copy, Some(&x_approval.contents))],
    );
    let report = f.judge_from(base, replay, &f.bootstrap());
    assert_approvals_short(&report, replay, POLICY, "sys/policy/dev");
    let count = approval_count(&report, replay, POLICY);
    assert_eq!(count.approvers, ["alice@example.com"]);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains(&x_approval.repo_path()) && n.contains("already in the base")),
        "{count:?}"
    );
    f.rejected_at(replay, &copy, "renamed copy");
}

/// 2b'. Spent is decided by the statement, not the file name: the base holds the old approval
/// only under another name; the attacker adds it under its proper name.
#[test]
fn a_statement_in_the_base_under_another_name_is_still_spent() {
    let f = Fixture::new();
    let x = dev_policy_with("x");
    let y = dev_policy_with("y");
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&x))]);
    let x_approval = statement(
        &f.bob,
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&x),
    );
    let odd_name = format!(".sealops/approvals/{}.approval", statement_id("odd"));
    f.commit_as(&f.alice, T_2024, &[(&odd_name, Some(&x_approval.contents))]);
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&y))]);
    let base = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&y),
        &f.alice,
    );

    let replay = f.commit_as(
        &f.alice,
        T_2024,
        &[
            (POLICY, Some(&x)),
            (&x_approval.repo_path(), Some(&x_approval.contents)),
        ],
    );
    let report = f.judge_from(base, replay, &f.bootstrap());
    assert_approvals_short(&report, replay, POLICY, "sys/policy/dev");
    let count = approval_count(&report, replay, POLICY);
    assert_eq!(count.approvers, ["alice@example.com"]);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains(&x_approval.repo_path()) && n.contains("already in the base")),
        "{count:?}"
    );

    // In a range whose base never saw the statement, it approves the first change to X; the
    // replay later in the same range is refused, because a statement approves a path once.
    let report = f.judge_from(f.base, replay, &f.bootstrap());
    assert_approvals_short(&report, replay, POLICY, "sys/policy/dev");
    let count = approval_count(&report, replay, POLICY);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains("already approved an earlier change")),
        "{count:?}"
    );
}

/// 2c. A statement made for another repository does not count here.
#[test]
fn an_approval_for_another_repository_does_not_count() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let other = statement(
        &f.bob,
        "fedcba9876543210fedcba9876543210",
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
    );
    let head = f.commit_as(
        &f.alice,
        T_2024,
        &[(&other.repo_path(), Some(&other.contents))],
    );
    let report = f.judge(head);
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    let count = approval_count(&report, change, POLICY);
    assert_eq!(count.approvers, ["alice@example.com"]);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.starts_with("bob@example.com")
                && n.contains("repository fedcba9876543210fedcba9876543210")
                && n.contains(REPOSITORY_ID)),
        "{count:?}"
    );

    // Control: the same approval for this repository counts.
    let head = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
        &f.alice,
    );
    assert!(f.judge(head).is_authorised(), "{:?}", kinds(&f.judge(head)));
}

/// 2d. A version 1 statement (no repository line), correctly signed and named, does not count.
#[test]
fn a_version_1_statement_does_not_count() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let ApprovedContent::Blob(id) = blob(&policy) else {
        unreachable!()
    };
    let text = format!(
        "sealops-approval v1\nprincipal bob@example.com\ncreated 2024-06-10T06:13:20Z\nblob {id} {POLICY}\n"
    );
    let signature = SigningKey::load(&f.bob.private)
        .unwrap()
        .sign(APPROVAL_NAMESPACE, text.as_bytes())
        .unwrap();
    let path = format!(".sealops/approvals/{}.approval", statement_id(&text));
    let head = f.commit_as(&f.alice, T_2024, &[(&path, Some(&(text + &signature)))]);
    let report = f.judge(head);
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    assert_eq!(
        approval_count(&report, change, POLICY).approvers,
        ["alice@example.com"]
    );
    f.rejected_at(head, &path, "version 1");
}

/// 2e. `trust.approval_max_age` (default 14d) at the judging time: 13 days old counts, 15 days
/// old does not; a config with 30d makes 15 days count and 31 days not.
#[test]
fn an_approval_older_than_the_max_age_does_not_count() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let head = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
        &f.alice,
    );

    let report = f.judge_at(head, Clock::at(T_2024 + 13 * DAY));
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    let count = approval_count(&report, change, POLICY);
    assert_eq!(count.max_age_seconds, 14 * DAY);
    assert_eq!(count.approved_at.get("bob@example.com"), Some(&T_2024));

    let report = f.judge_at(head, Clock::at(T_2024 + 15 * DAY));
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    let count = approval_count(&report, change, POLICY);
    assert_eq!(count.approvers, ["alice@example.com"]);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.starts_with("bob@example.com") && n.contains("older than")),
        "{count:?}"
    );
    // Commits first seen earlier are judged at that time.
    let clock = Clock::at(T_2024 + 60 * DAY).with_first_seen([(change, T_2024 + DAY)]);
    assert!(f.judge_at(head, clock).is_authorised());

    // trust.approval_max_age: 30d, set before the range.
    let g = Fixture::new();
    let base = g.commit_as(
        &g.alice,
        T_2024,
        &[(
            ".sealops/config.yaml",
            Some(&format!("{CONFIG}trust:\n  approval_max_age: 30d\n")),
        )],
    );
    let change = g.commit_as(&g.alice, T_2024, &[(POLICY, Some(&policy))]);
    let head = g.approve(
        &g.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
        &g.alice,
    );
    let mut bootstrap = g.bootstrap();
    bootstrap.clock = Clock::at(T_2024 + 15 * DAY);
    let report = g.judge_from(base, head, &bootstrap);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    assert_eq!(
        approval_count(&report, change, POLICY).max_age_seconds,
        30 * DAY
    );
    bootstrap.clock = Clock::at(T_2024 + 31 * DAY);
    let report = g.judge_from(base, head, &bootstrap);
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    assert!(
        approval_count(&report, change, POLICY)
            .not_counted
            .iter()
            .any(|n| n.contains("older than") && n.contains("30d")),
        "{:?}",
        approval_count(&report, change, POLICY)
    );
}

/// 2f. An approval dated further ahead of the judging time than `trust.max_clock_skew` (5m)
/// does not count; 4 minutes ahead does.
#[test]
fn an_approval_dated_in_the_future_does_not_count() {
    let now = T_2024 + DAY;
    for (ahead, counts) in [(4 * 60, true), (6 * 60, false)] {
        let f = Fixture::new();
        let policy = dev_policy_with("infra");
        let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
        let head = f.approve(
            &f.bob,
            "bob@example.com",
            now + ahead,
            POLICY,
            blob(&policy),
            &f.alice,
        );
        let report = f.judge_at(head, Clock::at(now));
        assert_eq!(
            report.is_authorised(),
            counts,
            "{ahead}s: {:?}",
            kinds(&report)
        );
        if !counts {
            assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
            let count = approval_count(&report, change, POLICY);
            assert!(
                count
                    .not_counted
                    .iter()
                    .any(|n| n.starts_with("bob@example.com") && n.contains("is dated")),
                "{count:?}"
            );
        }
    }
}

/// 2g. bob's key expires (valid-before) before the judging time; a statement back-dated into
/// its validity does not count.
#[test]
fn an_approval_by_a_key_expired_at_the_judging_time_does_not_count() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let head = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&policy),
        &f.alice,
    );
    let signers = signer_line("alice@example.com", &f.alice)
        + &format!(
            "bob@example.com valid-before=\"20240615Z\" {}\n",
            f.bob.public
        )
        + &signer_line("carol@example.com", &f.carol);
    let mut bootstrap = f.bootstrap();
    bootstrap.signers = AllowedSigners::parse(&signers, "bootstrap").unwrap();

    // Judged on 2024-06-12, while bob's key is valid: counts.
    bootstrap.clock = Clock::at(T_2024 + 2 * DAY);
    let report = f.judge_from(f.base, head, &bootstrap);
    assert!(report.is_authorised(), "{:?}", kinds(&report));

    // Judged on 2024-06-20, after it expired: does not, though `created` is within validity.
    bootstrap.clock = Clock::at(T_2024 + 10 * DAY);
    let report = f.judge_from(f.base, head, &bootstrap);
    assert_approvals_short(&report, change, POLICY, "sys/policy/dev");
    let count = approval_count(&report, change, POLICY);
    assert_eq!(count.approvers, ["alice@example.com"]);
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.starts_with("bob@example.com") && n.contains("no longer valid")),
        "{count:?}"
    );
}

// --- 3. Key time ------------------------------------------------------------------------------

/// 3a. An expired key (valid-before 2025) signs a commit back-dated to 2024: git accepts it;
/// judged in 2026 it is refused.
#[test]
fn a_back_dated_commit_by_an_expired_key_is_refused_at_the_judging_time() {
    let f = Fixture::new();
    let signers = signer_line("alice@example.com", &f.alice)
        + &format!(
            "carol@example.com valid-before=\"20250101Z\" {}\n",
            f.carol.public
        );
    f.repo.set_signers(&signers);
    let head = f.commit_as(&f.carol, T_2024, &[("README.md", Some("back-dated\n"))]);
    assert_eq!(
        f.repo.git_verdict(head),
        (true, "carol@example.com".to_owned()),
        "git judges at the commit's own date"
    );
    let mut bootstrap = f.bootstrap();
    bootstrap.signers = AllowedSigners::parse(&signers, "bootstrap").unwrap();
    bootstrap.clock = Clock::at(T_2026);
    let report = f.judge_from(f.base, head, &bootstrap);
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, head);
    assert!(
        matches!(
            &found[0].2,
            ViolationKind::NotVerified(CommitRejection::ExpiredWhenSeen { seen, .. })
                if seen.0 == T_2026
        ),
        "{found:?}"
    );
    // Control: judged in 2024, it passes.
    bootstrap.clock = Clock::at(T_2024 + DAY);
    assert!(f.judge_from(f.base, head, &bootstrap).is_authorised());
}

/// 3b. A key valid only from 2030 signs a commit dated 2031; judged in 2026 it is refused as
/// future-dated (git accepts it).
#[test]
fn a_future_dated_commit_by_a_not_yet_valid_key_is_refused() {
    let f = Fixture::new();
    let signers = signer_line("alice@example.com", &f.alice)
        + &format!(
            "carol@example.com valid-after=\"20300101Z\" {}\n",
            f.carol.public
        );
    f.repo.set_signers(&signers);
    let head = f.commit_as(
        &f.carol,
        T_2031,
        &[("README.md", Some("from the future\n"))],
    );
    assert!(f.repo.git_verdict(head).0);
    let mut bootstrap = f.bootstrap();
    bootstrap.signers = AllowedSigners::parse(&signers, "bootstrap").unwrap();
    bootstrap.clock = Clock::at(T_2026);
    let report = f.judge_from(f.base, head, &bootstrap);
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(
            &found[0].2,
            ViolationKind::NotVerified(CommitRejection::FutureDated { committed, seen, skew_seconds })
                if committed.0 == T_2031 && seen.0 == T_2026 && *skew_seconds == 300
        ),
        "{found:?}"
    );
    // Control: once 2031 has come, it passes.
    bootstrap.clock = Clock::at(T_2031 + 60);
    assert!(f.judge_from(f.base, head, &bootstrap).is_authorised());
}

/// 3c. A commit first seen while its key was valid keeps its verdict when judged again later,
/// after the key expired; one first seen after the expiry is refused.
#[test]
fn a_commit_first_seen_before_its_key_expired_stays_valid() {
    let f = Fixture::new();
    let signers = signer_line("alice@example.com", &f.alice)
        + &format!(
            "carol@example.com valid-before=\"20250101Z\" {}\n",
            f.carol.public
        );
    let head = f.commit_as(&f.carol, T_2024, &[("README.md", Some("on time\n"))]);
    let mut bootstrap = f.bootstrap();
    bootstrap.signers = AllowedSigners::parse(&signers, "bootstrap").unwrap();
    for now in [T_2026, T_2026 + 365 * DAY] {
        bootstrap.clock = Clock::at(now).with_first_seen([(head, T_2024 + 3_600)]);
        let report = f.judge_from(f.base, head, &bootstrap);
        assert!(report.is_authorised(), "{now}: {:?}", kinds(&report));
    }
    bootstrap.clock = Clock::at(T_2026).with_first_seen([(head, T_2026 - DAY)]);
    let report = f.judge_from(f.base, head, &bootstrap);
    assert!(
        matches!(
            &kinds(&report)[..],
            [(
                _,
                None,
                ViolationKind::NotVerified(CommitRejection::ExpiredWhenSeen { .. })
            )]
        ),
        "{:?}",
        kinds(&report)
    );
}

/// 3d. A commit dated 4 minutes ahead of the judging time passes (max_clock_skew 5m); 6 minutes
/// ahead is refused.
#[test]
fn a_commit_dated_within_the_clock_skew_passes() {
    let f = Fixture::new();
    let now = T_2024 + DAY;
    let soon = f.commit_as(&f.carol, now + 4 * 60, &[("README.md", Some("soon\n"))]);
    let report = f.judge_at(soon, Clock::at(now));
    assert!(report.is_authorised(), "{:?}", kinds(&report));
    let later = f.commit_as(&f.carol, now + 6 * 60, &[("README.md", Some("later\n"))]);
    let report = f.judge_at(later, Clock::at(now));
    let found = kinds(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, later);
    assert!(
        matches!(
            found[0].2,
            ViolationKind::NotVerified(CommitRejection::FutureDated { .. })
        ),
        "{found:?}"
    );
}

// --- 4. Found by attacking the binaries (red team) ---------------------------------------------

/// carol may create under secrets/infra/* at OLD (dev policy with "infra"); that is revoked and
/// the secret rotated at BASE. Returns (fixture, OLD, BASE).
fn revoked_capability() -> (Fixture, Oid, Oid) {
    let f = Fixture::new();
    f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("first")))]);
    let wide = dev_policy_with("infra").replace("[\"create\"]", "[\"create\", \"update\"]");
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&wide))]);
    let old = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&wide),
        &f.alice,
    );
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(DEV_POLICY))]);
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(DEV_POLICY),
        &f.alice,
    );
    let base = f.commit_as(&f.alice, T_2024, &[(INFRA, Some(&infra("rotated")))]);
    (f, old, base)
}

/// A commit on top of an old ancestor of the base carries the old policies in its tree; its
/// children are judged under the base's, so a revoked capability cannot be used again.
#[test]
fn a_branch_from_an_old_commit_cannot_use_a_revoked_capability() {
    let (f, old, base) = revoked_capability();
    f.repo
        .git_ok(&["checkout", "-q", "-b", "old", &old.to_string()]);
    let trivial = f.commit_as(&f.carol, T_2024, &[("README.md", Some("hi\n"))]);
    let use_it = f.commit_as(&f.carol, T_2024, &[(INFRA, Some(&infra("carol")))]);
    let report = f.judge_from(base, use_it, &f.bootstrap());
    assert!(commit_report(&report, trivial).violations.is_empty());
    assert_missing_capability(
        &report,
        use_it,
        INFRA,
        "carol@example.com",
        Operation::Update,
    );

    // The same through a merge whose first parent is the trivial commit (its tree holds the
    // old policy): the old secret it keeps is judged, under the base's policy.
    f.repo.git_ok(&["checkout", "-q", "old"]);
    f.repo
        .git_ok(&["reset", "-q", "--hard", &trivial.to_string()]);
    let merge = f.merge_as(
        &f.carol,
        &[trivial, base],
        &[(INFRA, Some(&infra("first")))],
    );
    let report = f.judge_from(base, merge, &f.bootstrap());
    assert_missing_capability(
        &report,
        merge,
        INFRA,
        "carol@example.com",
        Operation::Update,
    );
    assert!(
        at(&report, merge, POLICY)
            .iter()
            .any(|k| matches!(k, ViolationKind::ApprovalsShort { .. })),
        "keeping the old policy is the merger's change: {:?}",
        kinds(&report)
    );
}

/// Statements never name the id the judged commit sets: while the parent has none, they name
/// the id derived from the base's first commit.
#[test]
fn a_commit_cannot_choose_the_repository_id_its_approvals_name() {
    let f = Fixture::new();
    let no_id = CONFIG.replace(&format!("repository_id: {REPOSITORY_ID}\n"), "");
    f.commit_as(&f.alice, T_2024, &[(".sealops/config.yaml", Some(&no_id))]);
    let base = f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        ".sealops/config.yaml",
        blob(&no_id),
        &f.alice,
    );
    let other = "fedcba9876543210fedcba9876543210";
    let theirs = no_id.replace(
        "sealops: v1\n",
        &format!("sealops: v1\nrepository_id: {other}\n"),
    );
    let copied = statement(
        &f.bob,
        other,
        "bob@example.com",
        T_2024,
        ".sealops/config.yaml",
        blob(&theirs),
    );
    let head = f.commit_as(
        &f.alice,
        T_2024,
        &[
            (".sealops/config.yaml", Some(&theirs)),
            (&copied.repo_path(), Some(&copied.contents)),
        ],
    );
    let report = f.judge_from(base, head, &f.bootstrap());
    assert_approvals_short(&report, head, ".sealops/config.yaml", "sys/config");
    let count = approval_count(&report, head, ".sealops/config.yaml");
    let legacy = sealops_core::authz::legacy_repository_id(&f.repo.open(), base).unwrap();
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains(other) && n.contains(&legacy)),
        "{count:?}"
    );

    // A statement naming the derived id counts for the same change.
    let ours = statement(
        &f.bob,
        &legacy,
        "bob@example.com",
        T_2024,
        ".sealops/config.yaml",
        blob(&theirs),
    );
    let fixed = f.commit_as(
        &f.alice,
        T_2024,
        &[(&ours.repo_path(), Some(&ours.contents))],
    );
    let report = f.judge_from(base, fixed, &f.bootstrap());
    assert!(report.is_authorised(), "{:?}", kinds(&report));
}

/// A statement approves its changes together: used for a part of them, it does not count.
#[test]
fn a_statement_for_several_changes_does_not_count_for_a_part_of_them() {
    let f = Fixture::new();
    let wider = dev_policy_with("infra");
    let mallory = identity("carol@example.com", "admin");
    let both = ApprovalStatement::new(
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        [
            ("identities/carol.yaml".to_owned(), blob(&mallory)),
            (POLICY.to_owned(), blob(&wider)),
        ],
    )
    .unwrap()
    .sign(&SigningKey::load(&f.bob.private).unwrap())
    .unwrap();
    let part = f.commit_as(
        &f.alice,
        T_2024,
        &[
            ("identities/carol.yaml", Some(&mallory)),
            (&both.repo_path(), Some(&both.contents)),
        ],
    );
    let report = f.judge(part);
    assert_approvals_short(
        &report,
        part,
        "identities/carol.yaml",
        "sys/identities/carol",
    );
    let count = approval_count(&report, part, "identities/carol.yaml");
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains("does not make")),
        "{count:?}"
    );

    // Made whole in the range, it counts for both.
    let whole = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&wider))]);
    let report = f.judge(whole);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
}

/// Approvals may follow a change the controller refused: a statement made after the commit
/// was first seen counts, as long as it is not in the judge's future.
#[test]
fn an_approval_made_after_the_commit_was_first_seen_counts() {
    let f = Fixture::new();
    let policy = dev_policy_with("infra");
    let change = f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&policy))]);
    let later = T_2024 + 3 * DAY;
    let head = f.approve(
        &f.bob,
        "bob@example.com",
        later,
        POLICY,
        blob(&policy),
        &f.alice,
    );
    let clock = Clock::at(later + 60).with_first_seen([(change, T_2024 + 60)]);
    let report = f.judge_at(head, clock);
    assert!(report.is_authorised(), "{:?}", kinds(&report));
}

// --- 5. Found by attacking the controller's pinned range (red team, second round) ------------

/// A grant and its revocation both in the range (the controller's base stays behind while a
/// refused commit blocks it): a side branch made from the granting commit is judged under the
/// mainline's trust at its merge too, where the grant is revoked.
#[test]
fn a_side_branch_from_a_revoked_grant_is_judged_under_the_mainline_at_its_merge() {
    let (f, old, _base) = revoked_capability();
    f.repo
        .git_ok(&["checkout", "-q", "-b", "side", &old.to_string()]);
    let cache = "secrets/infra/cache.yaml";
    let side = f.commit_as(
        &f.carol,
        T_2024,
        &[(cache, Some(&manifest("infra/cache", &[("HOST", "c")])))],
    );
    f.repo.git_ok(&["checkout", "-q", "main"]);
    let merge = f.git_signed(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "side"],
    );
    let report = f.judge(merge);
    assert_missing_capability(&report, side, cache, "carol@example.com", Operation::Create);
}

/// A statement of the commit's own signer (who counts by signing) is used by that commit too:
/// it cannot approve the same content again later in the range.
#[test]
fn the_signers_own_statement_is_used_with_the_commit() {
    let f = Fixture::new();
    let x = dev_policy_with("x");
    let y = dev_policy_with("y");
    let own = statement(
        &f.alice,
        REPOSITORY_ID,
        "alice@example.com",
        T_2024,
        POLICY,
        blob(&x),
    );
    let bobs = statement(
        &f.bob,
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&x),
    );
    f.commit_as(
        &f.alice,
        T_2024,
        &[
            (POLICY, Some(&x)),
            (&own.repo_path(), Some(&own.contents)),
            (&bobs.repo_path(), Some(&bobs.contents)),
        ],
    );
    f.commit_as(&f.alice, T_2024, &[(POLICY, Some(&y))]);
    f.approve(
        &f.bob,
        "bob@example.com",
        T_2024,
        POLICY,
        blob(&y),
        &f.alice,
    );
    let again = f.commit_as(&f.carol, T_2024, &[(POLICY, Some(&x))]);
    let report = f.judge(again);
    assert_approvals_short(&report, again, POLICY, "sys/policy/dev");
    let count = approval_count(&report, again, POLICY);
    assert!(count.approvers.is_empty(), "{count:?}");
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.starts_with("alice@example.com") && n.contains("already approved")),
        "{count:?}"
    );
}

/// A statement's other change made only by a refused commit (and reverted) does not let the
/// statement approve the rest.
#[test]
fn a_statement_whose_other_change_was_refused_does_not_count() {
    let f = Fixture::new();
    let wider = dev_policy_with("infra");
    let admin = identity("carol@example.com", "admin");
    let both = ApprovalStatement::new(
        REPOSITORY_ID,
        "bob@example.com",
        T_2024,
        [
            ("identities/carol.yaml".to_owned(), blob(&admin)),
            (POLICY.to_owned(), blob(&wider)),
        ],
    )
    .unwrap()
    .sign(&SigningKey::load(&f.bob.private).unwrap())
    .unwrap();
    f.commit_as(
        &f.carol,
        T_2024,
        &[(&both.repo_path(), Some(&both.contents))],
    );
    let refused = f.commit_as(&f.carol, T_2024, &[(POLICY, Some(&wider))]);
    f.commit_as(&f.carol, T_2024, &[(POLICY, Some(DEV_POLICY))]);
    let grant = f.commit_as(&f.alice, T_2024, &[("identities/carol.yaml", Some(&admin))]);
    let report = f.judge(grant);
    assert!(!commit_report(&report, refused).violations.is_empty());
    assert_approvals_short(
        &report,
        grant,
        "identities/carol.yaml",
        "sys/identities/carol",
    );
    let count = approval_count(&report, grant, "identities/carol.yaml");
    assert!(
        count
            .not_counted
            .iter()
            .any(|n| n.contains("no authorised commit")),
        "{count:?}"
    );
}

/// The same with the parents swapped: main merged into the side branch (the side is now the
/// first parent) and main fast-forwarded to that merge. Each side is judged on the other's
/// trust, whichever parent is first.
#[test]
fn a_revoked_grant_cannot_be_used_by_putting_the_side_branch_first() {
    let (f, old, _base) = revoked_capability();
    f.repo
        .git_ok(&["checkout", "-q", "-b", "side", &old.to_string()]);
    let cache = "secrets/infra/cache.yaml";
    let side = f.commit_as(
        &f.carol,
        T_2024,
        &[(cache, Some(&manifest("infra/cache", &[("HOST", "c")])))],
    );
    let merge = f.git_signed(
        &f.carol,
        &["merge", "-q", "-S", "--no-ff", "--no-edit", "main"],
    );
    assert_eq!(f.parents(merge)[0], side);
    let report = f.judge(merge);
    assert_missing_capability(&report, side, cache, "carol@example.com", Operation::Create);
}
