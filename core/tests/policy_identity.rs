//! Identities and `who-can`, on real files; the committed identity schema.

use sealops_core::policy::{Operation, PolicySet, Principals, Request};

fn write(dir: &std::path::Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn who_can_lists_the_identities_whose_policies_allow() {
    let repo = tempfile::tempdir().expect("temp dir");
    let root = repo.path();
    write(
        root,
        "policies/deploy.hcl",
        "path \"secrets/apps/*\" { capabilities = [\"read\"] }\n",
    );
    write(
        root,
        "policies/admins.hcl",
        "name = \"admin\"\npath \"secrets/*\" { policy = \"sudo\" }\npath \"sys/policy/+\" { capabilities = [\"update\", \"sudo\"] }\n",
    );
    write(
        root,
        "policies/nope.hcl",
        "path \"secrets/apps/db\" { capabilities = [\"deny\"] }\n",
    );
    write(
        root,
        "identities/alice.yaml",
        "sealops: v1\nname: alice@example.com\nkind: human\npolicies: [admin]\n",
    );
    write(
        root,
        "identities/payments.yaml",
        "sealops: v1\nname: payments\nkind: service\npolicies: [deploy]\n",
    );
    write(
        root,
        "identities/batch.yaml",
        "sealops: v1\nname: batch\nkind: service\npolicies: [deploy, nope]\n",
    );
    let identities = Principals::load_dir(&root.join("identities")).expect("identities");
    let policies = PolicySet::load_dir(&root.join("policies")).expect("policies");
    let who = |op, path: &str| -> Vec<String> {
        let request = Request {
            path: path.into(),
            operation: Some(op),
            ..Request::default()
        };
        identities
            .who_can(&policies, &request)
            .expect("who-can")
            .into_iter()
            .map(|(doc, _)| doc.name.clone())
            .collect()
    };
    assert_eq!(
        who(Operation::Read, "secrets/apps/web"),
        ["alice@example.com", "batch", "payments"]
    );
    // batch's deny on the exact path wins for batch only.
    assert_eq!(
        who(Operation::Read, "secrets/apps/db"),
        ["alice@example.com", "payments"]
    );
    assert_eq!(
        who(Operation::Update, "sys/policy/deploy"),
        ["alice@example.com"]
    );
    assert!(who(Operation::Read, "elsewhere").is_empty());
}

#[test]
fn unknown_policies_and_bad_files_are_reported_with_their_file() {
    let repo = tempfile::tempdir().expect("temp dir");
    let root = repo.path();
    write(
        root,
        "identities/bob.yaml",
        "sealops: v1\nname: bob\nkind: human\npolicies: [ghost]\n",
    );
    let identities = Principals::load_dir(&root.join("identities")).expect("identities");
    let policies = PolicySet::load_dir(&root.join("policies")).expect("no folder is no policies");
    let request = Request {
        path: "x".into(),
        operation: Some(Operation::Read),
        ..Request::default()
    };
    let error = identities
        .who_can(&policies, &request)
        .expect_err("unknown policy")
        .to_string();
    assert!(
        error.contains("bob.yaml") && error.contains("\"ghost\""),
        "{error}"
    );

    write(
        root,
        "identities/bad.yaml",
        "sealops: v1\nname: x\nkind: robot\npolicies: []\n",
    );
    let error = Principals::load_dir(&root.join("identities"))
        .expect_err("bad kind")
        .to_string();
    assert!(error.contains("bad.yaml:3"), "{error}");
}

#[test]
fn the_committed_identity_schema_matches_the_type() {
    let (_, schema) = sealops_core::schema::all()
        .into_iter()
        .find(|(name, _)| *name == "identity.v1.json")
        .expect("identity schema is listed");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/identity.v1.json");
    if std::env::var("SEALOPS_WRITE_SCHEMAS").as_deref() == Ok("1") {
        std::fs::write(&path, &schema).expect("write schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, schema,
        "schemas/identity.v1.json is stale: run with SEALOPS_WRITE_SCHEMAS=1"
    );
}
