//! Adversarial end to end: attacks on authorisation by a signer who is trusted (her key is in
//! the controller's local `allowed_signers` and in the repository's) but holds no capability,
//! or by keys whose validity the signer tries to choose. Real `sealops` and
//! `sealops-controller` binaries, real git repositories, real `ssh-keygen` keys and real
//! `git commit -S` (gpg.format ssh).
//!
//! Each attack must leave the controller on the commit it had applied (outputs keep the current
//! secret, the status document refuses the attacking commit) and make `sealops check --base
//! <protected main before the attack>` exit 1 naming the problem.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::controller::kit;
use crate::common::controller::{Fleet, PASSWORD};
use crate::common::{SshSigner, World, commit_signed, git, git_with_env, ssh_keygen};

/// The Fleet's policy with every capability, incl. sudo on `sys/*`.
const ADMIN_POLICY_NAME: &str = "admin";
const SECRET_FILE: &str = "secrets/apps/payments/db.yaml";
const SIGNERS_FILE: &str = ".sealops/allowed_signers";
const POLICY_FILE: &str = "policies/payments-runtime.hcl";
/// Two versions of the payments runtime policy: X (wider, later revoked) and Y.
const POLICY_X: &str = "path \"secrets/apps/payments/*\" { capabilities = [\"read\"] }\npath \"secrets/apps/shared/*\" { capabilities = [\"read\", \"list\"] }\n";
const POLICY_Y: &str = "path \"secrets/apps/payments/*\" { capabilities = [\"read\"] }\npath \"secrets/apps/payments-reports/*\" { capabilities = [\"read\"] }\n";

/// The rotated password (applied before the attack).
const ROTATED: &str = "rotated-Pa55-41c9-e07b";

// ---------------------------------------------------------------------------------------------
// The scene: alice (admin), bob (a second admin), mallory (trusted key, no capabilities) and
// any extra signers a test needs, with the first commit applied by the controller.
// ---------------------------------------------------------------------------------------------

/// An extra signer: its principal, its `allowed_signers` options, and whether it is an admin.
struct Extra {
    principal: &'static str,
    options: String,
    admin: bool,
}

struct Scene {
    fleet: Fleet,
    bob: SshSigner,
    mallory: SshSigner,
    extra: Vec<SshSigner>,
    /// The first commit, pinned as `trust.initial_commit` and applied.
    anchor: String,
}

impl Scene {
    /// `one_approval`: `trust.required_approvals: 1` in the first commit, so alice's signature
    /// alone authorises an administrative change.
    fn new(one_approval: bool, extras: &[Extra]) -> Self {
        let fleet = Fleet::new();
        let keys = fleet.world.dir.path().join("keys");
        std::fs::create_dir_all(&keys).expect("keys dir");
        let bob = ssh_keygen(&keys, "bob@example.com");
        let mallory = ssh_keygen(&keys, "mallory@example.com");
        let extra: Vec<SshSigner> = extras
            .iter()
            .map(|e| ssh_keygen(&keys, e.principal))
            .collect();

        // Local (the controller's bootstrap) and committed signers are the same lines; no
        // `namespaces=` restriction, so the keys sign commits and approvals.
        let mut signers = format!(
            "alice@example.com {}\nbob@example.com {}\nmallory@example.com {}\n",
            fleet.alice.public, bob.public, mallory.public
        );
        for (spec, key) in extras.iter().zip(&extra) {
            signers.push_str(&format!(
                "{} {} {}\n",
                spec.principal, spec.options, key.public
            ));
        }
        std::fs::write(&fleet.signers, &signers).expect("local allowed_signers");
        fleet.write(SIGNERS_FILE, &signers);
        fleet.write(
            "identities/bob.yaml",
            &identity("bob@example.com", ADMIN_POLICY_NAME),
        );
        // Trusted to sign, allowed nothing.
        fleet.write(
            "identities/mallory.yaml",
            "sealops: v1\nname: mallory@example.com\nkind: human\npolicies: []\n",
        );
        for spec in extras.iter().filter(|e| e.admin) {
            let name = spec.principal.split('@').next().expect("a name");
            fleet.write(
                &format!("identities/{name}.yaml"),
                &identity(spec.principal, ADMIN_POLICY_NAME),
            );
        }
        if one_approval {
            kit::require_one_approval(&fleet);
        }
        let anchor = kit::amend_first_commit(&fleet, Some(&fleet.alice));
        let scene = Self {
            fleet,
            bob,
            mallory,
            extra,
            anchor,
        };
        scene.configure("");
        let (code, status, stderr) = scene.fleet.once();
        assert_eq!(code, 0, "{status:#}\n{stderr}");
        assert_eq!(status["applied"]["commit"], scene.anchor.as_str());
        scene.assert_password(PASSWORD);
        scene
    }

    fn repo(&self) -> &Path {
        self.fleet.repo()
    }

    /// Writes the controller configuration: the first commit pinned as the trust anchor, plus
    /// `extra` top-level YAML.
    fn configure(&self, extra: &str) {
        self.fleet
            .write_config(&format!("  initial_commit: {}\n{extra}", self.anchor));
    }

    fn head(&self) -> String {
        kit::head(&self.fleet)
    }

    /// Rotates DB_PASSWORD (signed by alice) and has the controller apply it.
    fn rotate_and_apply(&self, value: &str, message: &str) -> String {
        self.fleet.set("apps/payments/db", "DB_PASSWORD", value);
        let commit = self.fleet.commit(message);
        self.assert_applies(&commit);
        self.assert_password(value);
        commit
    }

    /// `run --once` applies `commit` cleanly.
    fn assert_applies(&self, commit: &str) {
        let (code, status, stderr) = self.fleet.once();
        assert_eq!(code, 0, "{status:#}\n{stderr}");
        assert_eq!(status["applied"]["commit"], commit, "{status:#}");
    }

    /// `run --once` refuses: exit 1, the applied commit stays `applied`, and the refusals
    /// naming `commit` are returned (at least one).
    fn assert_refused(&self, commit: &str, applied: &str) -> Vec<serde_json::Value> {
        let (code, status, stderr) = self.fleet.once();
        assert_eq!(code, 1, "the attack was not refused: {status:#}\n{stderr}");
        assert_eq!(
            status["applied"]["commit"], applied,
            "the controller moved off the applied commit {applied}: {status:#}"
        );
        let refusals: Vec<serde_json::Value> = status["refusals"]
            .as_array()
            .expect("refusals")
            .iter()
            .filter(|r| r["commit"] == commit)
            .cloned()
            .collect();
        assert!(
            !refusals.is_empty(),
            "no refusal for commit {commit}: {status:#}"
        );
        for value in [PASSWORD, ROTATED] {
            assert!(!stderr.contains(value), "the log holds a secret value");
            assert!(
                !status.to_string().contains(value),
                "the status holds a secret value"
            );
        }
        refusals
    }

    /// db.env holds exactly this DB_PASSWORD (the value is never printed).
    fn assert_password(&self, value: &str) {
        let env = self.fleet.output("payments/db.env").expect("db.env");
        assert!(
            env.contains(&format!("DB_PASSWORD='{value}'")),
            "db.env does not hold the expected password"
        );
    }

    /// No file below the output root holds `value`.
    fn assert_never_written(&self, value: &str) {
        for file in kit::files_below(&self.fleet.out) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                !text.contains(value),
                "{} holds a value the attack tried to restore",
                file.display()
            );
        }
    }

    /// `sealops check --base BASE` (head: HEAD): (exit code, stdout + stderr).
    fn check(&self, base: &str) -> (i32, String) {
        run(self.fleet.world.sealops().args(["check", "--base", base]))
    }

    /// `sealops -i KEY approve PATHS…` in the work tree; returns the files written.
    fn approve(&self, signer: &SshSigner, paths: &[&str]) -> Vec<String> {
        approve_in(&self.fleet.world, signer, paths)
    }
}

fn identity(principal: &str, policy: &str) -> String {
    format!("sealops: v1\nname: {principal}\nkind: human\npolicies: [{policy}]\n")
}

/// Runs a command: (exit code, stdout + stderr).
fn run(cmd: &mut assert_cmd::Command) -> (i32, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn approve_in(world: &World, signer: &SshSigner, paths: &[&str]) -> Vec<String> {
    let mut cmd = world.sealops();
    cmd.arg("-i")
        .arg(&signer.private)
        .arg("approve")
        .args(paths);
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "sealops approve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        !written.is_empty() && written.iter().all(|f| f.starts_with(".sealops/approvals/")),
        "{written:?}"
    );
    written
}

/// git in `dir` with a neutral configuration, SSH signing with `signer`'s key and the extra
/// environment `env` (e.g. `GIT_COMMITTER_DATE`); returns stdout, panics on failure.
fn git_as(dir: &Path, signer: &SshSigner, env: &[(&str, &str)], args: &[&str]) -> String {
    let key = format!("user.signingkey={}", signer.private.display());
    let signing = ["-c", "gpg.format=ssh", "-c", &key];
    let all: Vec<&str> = signing
        .iter()
        .copied()
        .chain(args.iter().copied())
        .collect();
    git_with_env(dir, env, &all)
}

/// Stages everything and commits it signed by `signer`, dated `date` (a git date, e.g.
/// `@1700000000 +0000`) as both author and committer date.
fn commit_dated(dir: &Path, signer: &SshSigner, date: &str, message: &str) -> String {
    git(dir, &["add", "-A"]);
    let env = [("GIT_COMMITTER_DATE", date), ("GIT_AUTHOR_DATE", date)];
    git_as(dir, signer, &env, &["commit", "-q", "-S", "-m", message]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `YYYYMMDD` (UTC) of a Unix time, as `allowed_signers` writes dates.
fn yyyymmdd(unix: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a valid time")
        .date();
    format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The refusals' `path` fields.
fn paths_of(refusals: &[serde_json::Value]) -> Vec<&str> {
    refusals.iter().filter_map(|r| r["path"].as_str()).collect()
}

/// `repository_id:` of a repository's `.sealops/config.yaml`, if it has one.
fn repository_id_of(repo: &Path) -> Option<String> {
    let text = std::fs::read_to_string(repo.join(".sealops/config.yaml")).expect("config");
    text.lines()
        .find_map(|l| l.strip_prefix("repository_id:"))
        .map(|id| id.trim().to_owned())
}

/// An approval statement by `signer` of `path`'s content in the work tree, made at `created`
/// (Unix seconds) and signed with the library, as `sealops approve` would have signed it then.
/// Written under its proper name; returns that repository path.
fn approval_made_at(repo: &Path, signer: &SshSigner, path: &str, created: i64) -> String {
    use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};
    use sealops_core::signing::sshsig::SigningKey;
    let content = std::fs::read(repo.join(path)).expect("approved file");
    let repository = repository_id_of(repo).expect("sealops init writes a repository_id");
    let statement = ApprovalStatement::new(
        &repository,
        signer.principal,
        created,
        [(path.to_owned(), ApprovedContent::of_bytes(&content))],
    )
    .expect("a statement");
    let signed = statement
        .sign(&SigningKey::load(&signer.private).expect("key"))
        .expect("signs");
    common::controller::write(repo, &signed.repo_path(), &signed.contents);
    signed.repo_path()
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: stale copies brought back by a merge.
// ---------------------------------------------------------------------------------------------

/// The scene for the merge attacks: eve is a signer alice revokes, together with a password
/// rotation; the controller applies both. Returns (scene, commit before, rotation commit).
fn rotated_and_revoked() -> (Scene, String, String) {
    let scene = Scene::new(
        true,
        &[Extra {
            principal: "eve@example.com",
            options: String::new(),
            admin: false,
        }],
    );
    let old = scene.anchor.clone();
    let signers = std::fs::read_to_string(scene.repo().join(SIGNERS_FILE)).expect("signers");
    let revoked: String = signers
        .lines()
        .filter(|l| !l.starts_with("eve@example.com"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(revoked, signers);
    scene.fleet.write(SIGNERS_FILE, &revoked);
    let rotation = scene.rotate_and_apply(ROTATED, "rotate the password, revoke eve");
    (scene, old, rotation)
}

/// The check names the commit, the secret and the signers file.
fn assert_check_names_stale_copies(scene: &Scene, base: &str, attack: &str) {
    let (code, text) = scene.check(base);
    assert_eq!(code, 1, "sealops check passed the attack:\n{text}");
    assert!(text.contains(&attack[..12]), "{text}");
    assert!(text.contains(SECRET_FILE), "{text}");
    assert!(text.contains(SIGNERS_FILE), "{text}");
}

#[test]
fn a_stale_fork_merged_with_ours_cannot_bring_back_a_rotated_secret_and_a_revoked_signer() {
    let (scene, old, rotation) = rotated_and_revoked();
    let repo = scene.repo();
    let mallory = &scene.mallory;

    // mallory forks from before the rotation, adds an empty signed commit...
    git(repo, &["checkout", "-q", "-b", "side", &old]);
    commit_signed(repo, mallory, "side work");
    git(repo, &["checkout", "-q", "main"]);
    // ...merges it keeping main's tree, then takes the side's stale files and amends.
    git_as(
        repo,
        mallory,
        &[],
        &["merge", "-q", "-s", "ours", "--no-edit", "-S", "side"],
    );
    git(repo, &["checkout", "side", "--", SIGNERS_FILE, SECRET_FILE]);
    git_as(
        repo,
        mallory,
        &[],
        &["commit", "-q", "--amend", "-S", "--no-edit"],
    );
    let merge = scene.head();
    assert_eq!(
        git(repo, &["rev-parse", "HEAD^1"]).trim(),
        rotation,
        "the merge's first parent is main"
    );
    assert_eq!(
        git(repo, &["diff", "--name-only", &old, &merge]).trim(),
        "",
        "the merge restores the old tree"
    );

    let refusals = scene.assert_refused(&merge, &rotation);
    let paths = paths_of(&refusals);
    assert!(
        paths.contains(&SECRET_FILE) && paths.contains(&SIGNERS_FILE),
        "{refusals:#?}"
    );
    assert!(
        refusals.iter().all(|r| r["reason"] == "authorisation"),
        "{refusals:#?}"
    );
    scene.assert_password(ROTATED);
    scene.assert_never_written(PASSWORD);

    assert_check_names_stale_copies(&scene, &rotation, &merge);
}

#[test]
fn a_merge_whose_first_parent_is_the_old_commit_cannot_restore_the_old_tree() {
    let (scene, old, rotation) = rotated_and_revoked();
    let repo = scene.repo();
    let tree = format!("{old}^{{tree}}");
    let merge = git_as(
        repo,
        &scene.mallory,
        &[],
        &[
            "commit-tree",
            "-S",
            "-p",
            &old,
            "-p",
            &rotation,
            "-m",
            "merge main into the old state",
            &tree,
        ],
    )
    .trim()
    .to_owned();
    git(repo, &["update-ref", "refs/heads/main", &merge]);

    // Refusing the merge is not enough: the controller must not fall back to the merge's
    // first parent either (the old commit, an ancestor of the one applied).
    let refusals = scene.assert_refused(&merge, &rotation);
    let paths = paths_of(&refusals);
    assert!(
        paths.contains(&SECRET_FILE) && paths.contains(&SIGNERS_FILE),
        "{refusals:#?}"
    );
    scene.assert_password(ROTATED);
    scene.assert_never_written(PASSWORD);

    assert_check_names_stale_copies(&scene, &rotation, &merge);
}

// ---------------------------------------------------------------------------------------------
// 3, 4, 5: approvals used where they were not given.
// ---------------------------------------------------------------------------------------------

/// alice changes the policy to `text` with alice's and bob's approvals in the same commit; the
/// controller applies it. Returns (commit, the approval files).
fn approved_policy_change(scene: &Scene, text: &str, message: &str) -> (String, Vec<String>) {
    scene.fleet.write(POLICY_FILE, text);
    let mut files = scene.approve(&scene.fleet.alice, &[POLICY_FILE]);
    files.extend(scene.approve(&scene.bob, &[POLICY_FILE]));
    let commit = scene.fleet.commit(message);
    scene.assert_applies(&commit);
    (commit, files)
}

/// The check refuses `commit`'s change to the policy.
fn assert_check_refuses_policy(scene: &Scene, base: &str, commit: &str) {
    let (code, text) = scene.check(base);
    assert_eq!(code, 1, "sealops check passed the attack:\n{text}");
    let line = format!("commit {}: {POLICY_FILE}: needs 2 approvals", &commit[..12]);
    assert!(text.contains(&line), "{text}");
}

#[test]
fn renamed_copies_of_spent_approvals_do_not_restore_revoked_policy() {
    let scene = Scene::new(false, &[]);
    let (_, x_approvals) = approved_policy_change(&scene, POLICY_X, "policy X");
    let (y, _) = approved_policy_change(&scene, POLICY_Y, "policy Y replaces X");

    // mallory restores X and copies the statements that approved it under new names.
    scene.fleet.write(POLICY_FILE, POLICY_X);
    for (i, file) in x_approvals.iter().enumerate() {
        let text = std::fs::read_to_string(scene.repo().join(file)).expect("approval");
        scene
            .fleet
            .write(&format!(".sealops/approvals/replayed-{i}.approval"), &text);
    }
    let attack = commit_signed(scene.repo(), &scene.mallory, "restore X");

    let refusals = scene.assert_refused(&attack, &y);
    assert_eq!(paths_of(&refusals), [POLICY_FILE], "{refusals:#?}");
    assert!(
        refusals.iter().all(|r| r["reason"] == "authorisation"),
        "{refusals:#?}"
    );
    assert_check_refuses_policy(&scene, &y, &attack);
}

#[test]
fn approvals_made_in_another_repository_do_not_count() {
    let scene = Scene::new(false, &[]);
    let before = scene.head();

    // Repository B: the same signers, its own `sealops init` (its own repository_id), the
    // identical policy change approved by alice and bob.
    let other = World::new();
    git(&other.repo, &["init", "-q", "-b", "main"]);
    let signers = std::fs::read_to_string(scene.repo().join(SIGNERS_FILE)).expect("signers");
    common::controller::write(&other.repo, SIGNERS_FILE, &signers);
    common::controller::write(&other.repo, POLICY_FILE, POLICY_X);
    commit_signed(&other.repo, &scene.fleet.alice, "staging policy");
    let mut files = approve_in(&other, &scene.fleet.alice, &[POLICY_FILE]);
    files.extend(approve_in(&other, &scene.bob, &[POLICY_FILE]));

    // mallory brings the same change and B's approvals into repository A.
    scene.fleet.write(POLICY_FILE, POLICY_X);
    for file in &files {
        let text = std::fs::read_to_string(other.repo.join(file)).expect("approval");
        scene.fleet.write(file, &text);
    }
    let attack = commit_signed(scene.repo(), &scene.mallory, "policy X, approved in B");

    let refusals = scene.assert_refused(&attack, &before);
    assert_eq!(paths_of(&refusals), [POLICY_FILE], "{refusals:#?}");
    assert_check_refuses_policy(&scene, &before, &attack);

    let (a, b) = (
        repository_id_of(scene.repo()),
        repository_id_of(&other.repo),
    );
    assert!(
        a.is_some() && a != b,
        "sealops init gives each repository its own id: {a:?} {b:?}"
    );
}

#[test]
fn an_approval_older_than_the_maximum_age_does_not_count() {
    let scene = Scene::new(false, &[]);
    let before = scene.head();

    // bob approved on a pull request abandoned 15 days ago; alice approves now; mallory
    // brings the change.
    scene.fleet.write(POLICY_FILE, POLICY_X);
    let stale = approval_made_at(scene.repo(), &scene.bob, POLICY_FILE, now() - 15 * 86_400);
    scene.approve(&scene.fleet.alice, &[POLICY_FILE]);
    let attack = commit_signed(scene.repo(), &scene.mallory, "policy X, old approvals");

    let refusals = scene.assert_refused(&attack, &before);
    assert_eq!(paths_of(&refusals), [POLICY_FILE], "{refusals:#?}");
    assert_check_refuses_policy(&scene, &before, &attack);

    let (code, text) =
        run(scene
            .fleet
            .world
            .sealops()
            .args(["approvals", "status", "--base", &before]));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("1/2 [alice@example.com] MISSING 1"),
        "only alice counts:\n{text}"
    );
    let not_counted = text
        .lines()
        .find(|l| l.contains("not counted:") && l.contains("bob@example.com"))
        .unwrap_or_else(|| panic!("bob's approval is reported as not counted:\n{text}"));
    assert!(
        not_counted.contains(&stale) && not_counted.contains("older than trust.approval_max_age"),
        "{text}"
    );
    let counted = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("alice@example.com: statement made")
        })
        .unwrap_or_else(|| panic!("alice's approval shows its age:\n{text}"));
    // Made a moment ago: it counts for (almost) 14 more days.
    assert!(
        counted.contains("stops counting in 14d 0h")
            || counted.contains("stops counting in 13d 23h"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6: the trust anchor.
// ---------------------------------------------------------------------------------------------

fn check_config(fleet: &Fleet) -> (i32, String) {
    let out = fleet
        .controller()
        .args(["check-config", "--config"])
        .arg(&fleet.config)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_pinned_anchor_a_fresh_controller_applies_nothing_and_says_how_to_pin_one() {
    let fleet = Fleet::new();
    let root = kit::head(&fleet);
    fleet.write_config("# no anchor\n");

    let (code, status, stderr) = fleet.once();
    assert_eq!(
        code, 1,
        "a fresh controller without an anchor applied: {status:#}"
    );
    assert!(status["applied"].is_null(), "{status:#}");
    let refusal = &status["refusals"][0];
    assert_eq!(refusal["reason"], "verification", "{status:#}");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("initial_commit")),
        "{status:#}"
    );
    assert_eq!(kit::files_below(&fleet.out), Vec::<PathBuf>::new());
    assert!(!stderr.contains(PASSWORD), "the log holds a secret value");

    let (code, text) = check_config(&fleet);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("initial_commit"), "{text}");

    // Pinning the reviewed commit is the fix.
    fleet.write_config(&format!("  initial_commit: {root}\n"));
    let (code, text) = check_config(&fleet);
    assert_eq!(code, 0, "{text}");
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    assert_eq!(status["applied"]["commit"], root.as_str());
}

/// mallory replaces the branch with a new root commit (signed by her, trusted) holding the tree
/// of the first commit, i.e. the password rotated since. Returns (scene, rotation, orphan).
fn orphan_history(extra_config: &str) -> (Scene, String, String) {
    let scene = Scene::new(false, &[]);
    scene.configure(extra_config);
    let rotation = scene.rotate_and_apply(ROTATED, "rotate the password");
    let tree = format!("{}^{{tree}}", scene.anchor);
    let orphan = git_as(
        scene.repo(),
        &scene.mallory,
        &[],
        &["commit-tree", "-S", "-m", "a fresh start", &tree],
    )
    .trim()
    .to_owned();
    git(scene.repo(), &["update-ref", "refs/heads/main", &orphan]);
    (scene, rotation, orphan)
}

#[test]
fn a_force_pushed_orphan_history_is_refused_when_the_pinned_anchor_is_not_in_it() {
    let (scene, rotation, orphan) = orphan_history("allow_force_push: true\n");

    let refusals = scene.assert_refused(&orphan, &rotation);
    assert!(
        refusals.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains(&scene.anchor))),
        "the refusal names the pinned initial commit: {refusals:#?}"
    );
    scene.assert_password(ROTATED);
    scene.assert_never_written(PASSWORD);

    let (code, text) = scene.check(&rotation);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&orphan[..12]) && text.contains(SECRET_FILE),
        "{text}"
    );
}

#[test]
fn allow_force_push_without_a_pinned_initial_commit_never_anchors_on_the_new_root() {
    // Installed with a pinned anchor; later the pin is dropped and force-pushes allowed.
    let (scene, rotation, orphan) = orphan_history("");
    scene
        .fleet
        .write_config("# no anchor\nallow_force_push: true\n");

    let refusals = scene.assert_refused(&orphan, &rotation);
    assert!(
        refusals.iter().any(|r| r["reason"] == "force-push"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("initial_commit"))),
        "{refusals:#?}"
    );
    scene.assert_password(ROTATED);
    scene.assert_never_written(PASSWORD);
}

#[test]
fn check_config_reports_allow_force_push() {
    let fleet = Fleet::new();
    let root = kit::head(&fleet);
    fleet.write_config(&format!("  initial_commit: {root}\n"));
    let (code, text) = check_config(&fleet);
    assert_eq!(code, 0, "ready without allow_force_push: {text}");

    fleet.write_config(&format!(
        "  initial_commit: {root}\nallow_force_push: true\n"
    ));
    let (code, text) = check_config(&fleet);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("allow_force_push"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// 7: key validity at a date the signer chose.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_expired_key_cannot_sign_a_back_dated_commit() {
    let yesterday = yyyymmdd(now() - 86_400);
    let scene = Scene::new(
        false,
        &[Extra {
            principal: "erin@example.com",
            options: format!("valid-before=\"{yesterday}Z\""),
            admin: true,
        }],
    );
    let before = scene.head();
    let erin = &scene.extra[0];

    scene
        .fleet
        .set("apps/payments/db", "DB_PASSWORD", "expired-Key-Value-5d1");
    let three_days_ago = format!("@{} +0000", now() - 3 * 86_400);
    let attack = commit_dated(
        scene.repo(),
        erin,
        &three_days_ago,
        "rotate, dated while the key was valid",
    );

    let refusals = scene.assert_refused(&attack, &before);
    assert!(
        refusals.iter().all(|r| r["reason"] == "verification"),
        "{refusals:#?}"
    );
    assert!(
        refusals.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer valid when this commit was first seen"))),
        "{refusals:#?}"
    );
    scene.assert_password(PASSWORD);
    scene.assert_never_written("expired-Key-Value-5d1");

    let (code, text) = scene.check(&before);
    assert_eq!(code, 1, "sealops check passed the attack:\n{text}");
    assert!(text.contains(&attack[..12]), "{text}");
}

#[test]
fn a_key_valid_from_2031_cannot_sign_a_commit_dated_2031_today() {
    let scene = Scene::new(
        false,
        &[Extra {
            principal: "frank@example.com",
            options: "valid-after=\"20310101Z\"".to_owned(),
            admin: true,
        }],
    );
    let before = scene.head();
    let frank = &scene.extra[0];

    scene
        .fleet
        .set("apps/payments/db", "DB_PASSWORD", "future-Key-Value-8a3");
    let june_2031 = time::Date::from_calendar_date(2031, time::Month::June, 1)
        .expect("a date")
        .midnight()
        .assume_utc()
        .unix_timestamp();
    let attack = commit_dated(
        scene.repo(),
        frank,
        &format!("@{june_2031} +0000"),
        "rotate, dated 2031",
    );

    let refusals = scene.assert_refused(&attack, &before);
    assert!(
        refusals.iter().any(|r| r["reason"] == "verification"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("after it was first seen"))),
        "{refusals:#?}"
    );
    scene.assert_password(PASSWORD);
    scene.assert_never_written("future-Key-Value-8a3");

    // The applied commit's time (status and metric) is not pushed into the future.
    let mut running = kit::spawn(&scene.fleet, "");
    let status = running.wait_for_status("the first reconcile", |s| !s["last_reconcile"].is_null());
    assert_eq!(status["applied"]["commit"], before.as_str(), "{status:#}");
    let commit_time = status["applied"]["commit_time"]
        .as_i64()
        .expect("commit_time");
    assert!(commit_time <= now() + 300, "{status:#}");
    let (code, metrics) = running.get("/metrics");
    assert_eq!(code, 200);
    let metric = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealops_last_applied_commit_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("the metric is exposed:\n{metrics}"));
    assert!(metric <= (now() + 300) as f64, "{metric} is in the future");
    assert_eq!(running.terminate(), 0, "{}", running.log());

    let (code, text) = scene.check(&before);
    assert_eq!(code, 1, "sealops check passed the attack:\n{text}");
    assert!(text.contains(&attack[..12]), "{text}");
}
