//! Vault's ACL rules, each exercised on its own: priority matching, merging, parameters,
//! granting policies, list slashes, legacy words, parse errors.

use sealops_core::policy::{Acl, Decision, Operation, Policy, Request};
use serde_json::{Value, json};

fn policy(name: &str, text: &str) -> Policy {
    Policy::parse(text, name, name).unwrap_or_else(|e| panic!("{e}"))
}

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Policy> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| policy(&format!("p{i}"), text))
        .collect();
    Acl::new(&policies).expect("acl")
}

fn check(acl: &Acl, op: Operation, path: &str, data: Option<Value>) -> Decision {
    acl.check(&Request {
        path: path.to_owned(),
        operation: Some(op),
        data: data.map(|d| d.as_object().expect("object").clone()),
        wrap_ttl: None,
    })
}

fn allowed(acl: &Acl, op: Operation, path: &str) -> bool {
    check(acl, op, path, None).allowed
}

/// Each policy has a `read` rule and a more specific `update` rule; update must win.
#[test]
fn wildcard_priority_prefers_the_more_specific_rule() {
    let cases = [
        // `*` alone: first wildcard at 0 vs `+/*` also at 0, but `*` has fewer `+` segments.
        (
            "path \"+/*\" { capabilities = [\"read\"] }\npath \"*\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        // Later first wildcard wins.
        (
            "path \"+/*\" { capabilities = [\"read\"] }\npath \"foo/+/*\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        (
            "path \"foo/+/(ar/baz\" { capabilities = [\"read\"] }\npath \"foo/(ar/+/baz\" { capabilities = [\"update\"] }",
            "foo/(ar/(ar/baz",
        ),
        (
            "path \"foo/*\" { capabilities = [\"read\"] }\npath \"foo/bar/+\" { capabilities = [\"update\"] }",
            "foo/bar/baz",
        ),
        (
            "path \"foo/+\" { capabilities = [\"read\"] }\npath \"foo/ba*\" { capabilities = [\"update\"] }",
            "foo/bar",
        ),
        // Fewer `+` segments wins.
        (
            "path \"foo/+/+/*\" { capabilities = [\"read\"] }\npath \"foo/+/bar/baz\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        (
            "path \"foo/+/+/baz\" { capabilities = [\"read\"] }\npath \"foo/+/bar/baz\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        // Not ending in `*` wins at the same first wildcard.
        (
            "path \"foo/bar/+/baz*\" { capabilities = [\"read\"] }\npath \"foo/bar/+/baz\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        (
            "path \"foo/*\" { capabilities = [\"read\"] }\npath \"foo/+\" { capabilities = [\"update\"] }",
            "foo/bar",
        ),
        // Longer wins.
        (
            "path \"foo/bar/+/b*\" { capabilities = [\"read\"] }\npath \"foo/bar/+/ba*\" { capabilities = [\"update\"] }",
            "foo/bar/bar/baz",
        ),
        // Exact beats everything.
        (
            "path \"foo/bar/baz*\" { capabilities = [\"read\"] }\npath \"foo/bar/baz\" { capabilities = [\"update\"] }",
            "foo/bar/baz",
        ),
        // Longest prefix among globs.
        (
            "path \"foo/*\" { capabilities = [\"read\"] }\npath \"foo/bar/*\" { capabilities = [\"update\"] }",
            "foo/bar/baz",
        ),
    ];
    for (text, path) in cases {
        let acl = acl(&[text]);
        assert!(
            allowed(&acl, Operation::Update, path),
            "update on {path} with\n{text}"
        );
        assert!(
            !allowed(&acl, Operation::Read, path),
            "read on {path} with\n{text}"
        );
    }
}

#[test]
fn segment_wildcards_match_whole_segments_only() {
    let acl = acl(&[
        "path \"a/+/c\" { capabilities = [\"read\"] }\npath \"x/+/y*\" { capabilities = [\"read\"] }\npath \"+\" { capabilities = [\"list\"] }",
    ]);
    assert!(allowed(&acl, Operation::Read, "a/b/c"));
    assert!(!allowed(&acl, Operation::Read, "a/b/b/c"));
    assert!(!allowed(&acl, Operation::Read, "a/c"));
    assert!(!allowed(&acl, Operation::Read, "a/b/cd"));
    assert!(allowed(&acl, Operation::Read, "x/1/yes"));
    assert!(allowed(&acl, Operation::Read, "x/1/y/deeper/still"));
    assert!(!allowed(&acl, Operation::Read, "x/1/no"));
    assert!(allowed(&acl, Operation::List, "anything"));
    assert!(!allowed(&acl, Operation::List, "two/segments"));
    assert_eq!(
        check(&acl, Operation::Read, "x/1/yes", None)
            .matched
            .as_deref(),
        Some("x/+/y*")
    );
}

#[test]
fn lists_retry_without_the_trailing_slash() {
    let acl = acl(&[
        "path \"app/config\" { capabilities = [\"list\"] }\npath \"kv/*\" { capabilities = [\"read\"] }\npath \"kv/team\" { capabilities = [\"list\"] }",
    ]);
    assert!(allowed(&acl, Operation::List, "app/config/"));
    assert!(!allowed(&acl, Operation::Read, "app/config/"));
    // For a list, the exact rule of the path without slash wins over the glob.
    assert!(allowed(&acl, Operation::List, "kv/team/"));
    assert!(!allowed(&acl, Operation::List, "kv/other/"));
    // Capabilities are computed as for a list.
    let caps = acl.check(&Request {
        path: "app/config/".into(),
        ..Request::default()
    });
    assert_eq!(caps.capabilities, ["list"]);
    let none = acl.check(&Request {
        path: "nowhere".into(),
        ..Request::default()
    });
    assert_eq!(none.capabilities, ["deny"]);
    assert!(none.matched.is_none());
}

#[test]
fn legacy_policy_words_expand_as_in_vault() {
    let acl = acl(&[
        "path \"r\" { policy = \"read\" }\npath \"w\" { policy = \"write\" }\npath \"s\" { policy = \"sudo\" }\npath \"d\" {\n policy = \"deny\"\n capabilities = [\"read\"]\n}\npath \"m\" {\n policy = \"read\"\n capabilities = [\"patch\"]\n}",
    ]);
    let caps = |path: &str| {
        acl.check(&Request {
            path: path.into(),
            ..Request::default()
        })
        .capabilities
    };
    assert_eq!(caps("r"), ["list", "read"]);
    assert_eq!(caps("w"), ["create", "delete", "list", "read", "update"]);
    assert_eq!(
        caps("s"),
        ["create", "delete", "list", "read", "sudo", "update"]
    );
    assert_eq!(caps("d"), ["deny"]);
    assert_eq!(caps("m"), ["list", "patch", "read"]);
    assert!(
        acl.check(&Request {
            path: "s".into(),
            ..Request::default()
        })
        .root_privs
    );
}

#[test]
fn identical_patterns_merge_across_policies_and_deny_wins() {
    let a = "name = \"a\"\npath \"kv/foo\" { capabilities = [\"read\"] }\npath \"kv/d\" { capabilities = [\"read\"] }\npath \"kv/g*\" { capabilities = [\"read\"] }";
    let b = "name = \"b\"\npath \"kv/foo\" { capabilities = [\"update\", \"sudo\"] }\npath \"kv/d\" { capabilities = [\"deny\"] }\npath \"kv/g*\" { capabilities = [\"list\"] }";
    let c = "name = \"c\"\npath \"kv/d\" { capabilities = [\"update\"] }";
    let acl = Acl::new(&[policy("a", a), policy("b", b), policy("c", c)]).expect("acl");
    let foo = check(&acl, Operation::Update, "kv/foo", None);
    assert!(foo.allowed && foo.root_privs);
    assert_eq!(foo.capabilities, ["read", "sudo", "update"]);
    assert_eq!(foo.granting_policies, ["b"]);
    assert_eq!(
        check(&acl, Operation::Read, "kv/foo", None).granting_policies,
        ["a"]
    );
    for op in [Operation::Read, Operation::Update] {
        let d = check(&acl, op, "kv/d", None);
        assert!(!d.allowed);
        assert!(d.granting_policies.is_empty());
        assert_eq!(d.capabilities, ["deny"]);
    }
    let glob = check(&acl, Operation::List, "kv/given", None);
    assert!(glob.allowed);
    assert_eq!(glob.matched.as_deref(), Some("kv/g*"));
    assert_eq!(glob.granting_policies, ["b"]);
}

#[test]
fn granting_policies_follow_vaults_test() {
    let granting = "name = \"granting_policy\"\npath \"kv/foo\" { capabilities = [\"update\", \"read\"] }\npath \"kv/path/*\" { capabilities = [\"read\"] }\npath \"kv/path/longer\" { capabilities = [\"update\", \"read\"] }\npath \"kv/deny\" { capabilities = [\"deny\"] }\npath \"ns1/kv/foo\" { capabilities = [\"update\", \"read\", \"recover\"] }";
    let merged = "name = \"granting_policy_merged\"\npath \"kv/foo\" { capabilities = [\"update\", \"read\"] }\npath \"kv/bar\" { capabilities = [\"update\", \"read\"] }\npath \"kv/path/*\" { capabilities = [\"read\"] }\npath \"kv/path/longer\" { capabilities = [\"read\"] }\npath \"kv/path/longer3\" { capabilities = [\"read\"] }\npath \"kv/deny\" { capabilities = [\"update\"] }";
    let both = Acl::new(&[policy("g", granting), policy("m", merged)]).expect("acl");
    let names = |op, path| check(&both, op, path, None).granting_policies;
    assert_eq!(
        names(Operation::Read, "kv/foo"),
        ["granting_policy", "granting_policy_merged"]
    );
    assert_eq!(
        names(Operation::Read, "kv/path/longer3"),
        ["granting_policy_merged"]
    );
    assert_eq!(
        names(Operation::Update, "kv/path/longer"),
        ["granting_policy"]
    );
    assert_eq!(
        names(Operation::Read, "kv/path/foo"),
        ["granting_policy", "granting_policy_merged"]
    );
    assert_eq!(names(Operation::Recover, "ns1/kv/foo"), ["granting_policy"]);
    assert!(names(Operation::Read, "kv/deny").is_empty());
}

const PARAMS: &str = r#"
name = "op"
path "dev/*" {
  policy = "write"
  allowed_parameters = { "allow" = ["good"] }
}
path "foo/bar" {
  policy = "write"
  denied_parameters = { "deny" = ["bad*"] }
}
path "foo/baz" {
  policy = "write"
  allowed_parameters = { "ALLOW" = ["good"] }
  denied_parameters = { "dEny" = ["bad"] }
}
path "fizz/buzz" {
  policy = "write"
  allowed_parameters = {
    "allow_multi" = ["good", "good1", "good2", "*good3"]
    "allow" = ["good"]
  }
  denied_parameters = { "deny_multi" = ["bad", "bad1", "bad2"] }
}
path "test/types" {
  policy = "write"
  allowed_parameters = {
    "map" = [{"good" = "one"}]
    "int" = [1, 2]
    "float" = [1.5]
    "bool" = [false]
    "list" = [["a", "b"]]
  }
}
path "test/star" {
  policy = "write"
  allowed_parameters = {
    "*" = []
    "foo" = []
    "bar" = [false]
  }
}
path "var/req" {
  policy = "write"
  required_parameters = ["foo"]
}
path "hello/world" {
  policy = "write"
  allowed_parameters = { "*" = [] }
  denied_parameters = { "*" = [] }
}
path "tree/fort" {
  policy = "write"
  allowed_parameters = { "*" = [] }
  denied_parameters = { "foo" = [] }
}
"#;

#[test]
fn parameters_are_checked_with_every_value_type() {
    let acl = acl(&[PARAMS]);
    let cases: Vec<(&str, Value, bool)> = vec![
        ("dev/ops", json!({"allow": "good"}), true),
        ("dev/ops", json!({"allow": "bad"}), false),
        ("dev/ops", json!({"allow": "good,good"}), true),
        ("dev/ops", json!({"allow": "good, bad"}), false),
        ("dev/ops", json!({"allow": ""}), true),
        ("dev/ops", json!({"allow": ["good", "good"]}), true),
        ("dev/ops", json!({"allow": ["good", "bad"]}), false),
        ("dev/ops", json!({"other": "good"}), false),
        ("foo/bar", json!({"deny": "bad"}), false),
        ("foo/bar", json!({"deny": "bad glob"}), false),
        ("foo/bar", json!({"deny": "ok,bad2"}), false),
        ("foo/bar", json!({"deny": ["ok", "badly"]}), false),
        ("foo/bar", json!({"deny": "good"}), true),
        ("foo/bar", json!({"deny": null}), true),
        ("foo/bar", json!({"allow": null}), true),
        ("foo/baz", json!({"aLLow": "good"}), true),
        ("foo/baz", json!({"deny": "bad"}), false),
        ("foo/baz", json!({"deny": "good"}), false),
        ("foo/baz", json!({"allow": "good", "deny": "bad"}), false),
        ("foo/baz", json!({"Neither": "bad"}), false),
        ("foo/baz", json!({"allow": null}), false),
        ("fizz/buzz", json!({"allow_multi": "good2"}), true),
        ("fizz/buzz", json!({"allow_multi": "glob good2"}), false),
        ("fizz/buzz", json!({"allow_multi": "glob good3"}), true),
        (
            "fizz/buzz",
            json!({"allow_multi": "good1", "allow": "good"}),
            true,
        ),
        ("fizz/buzz", json!({"deny_multi": "bad2"}), false),
        (
            "fizz/buzz",
            json!({"deny_multi": "good", "allow_multi": "good2"}),
            false,
        ),
        ("test/types", json!({"map": {"good": "one"}}), true),
        ("test/types", json!({"map": {"bad": "one"}}), false),
        ("test/types", json!({"int": 1}), true),
        ("test/types", json!({"int": 3}), false),
        ("test/types", json!({"int": 1.0}), false),
        ("test/types", json!({"int": "1"}), false),
        ("test/types", json!({"float": 1.5}), true),
        ("test/types", json!({"bool": false}), true),
        ("test/types", json!({"bool": true}), false),
        ("test/types", json!({"list": ["a", "b"]}), true),
        ("test/types", json!({"list": ["b", "a"]}), false),
        ("test/star", json!({"anything": true}), true),
        ("test/star", json!({"foo": true}), true),
        ("test/star", json!({"bar": false}), true),
        ("test/star", json!({"bar": true}), false),
        ("var/req", json!({"cold": ""}), false),
        ("var/req", json!({"cold": "", "foo": ""}), true),
        ("hello/world", json!({"one": ""}), false),
        ("tree/fort", json!({"one": ""}), true),
        ("tree/fort", json!({"foo": ""}), false),
    ];
    for (path, data, expected) in cases {
        for op in [Operation::Update, Operation::Create] {
            let decision = check(&acl, op, path, Some(data.clone()));
            assert_eq!(
                decision.allowed, expected,
                "{op} {path} {data}: {:?}",
                decision.denial
            );
        }
    }
    // Delete and list do not look at parameters; read does.
    assert!(
        check(
            &acl,
            Operation::Delete,
            "dev/ops",
            Some(json!({"other": 1}))
        )
        .allowed
    );
    assert!(!check(&acl, Operation::Read, "dev/ops", Some(json!({"other": 1}))).allowed);
    // With no data, only required parameters matter.
    assert!(check(&acl, Operation::Update, "dev/ops", None).allowed);
    assert!(!check(&acl, Operation::Update, "var/req", None).allowed);
}

#[test]
fn parameter_lists_merge_as_in_vault() {
    let a = "path \"p\" {\n policy = \"write\"\n allowed_parameters = { \"test\" = [1, 2], \"k\" = [\"x\"] }\n}";
    let b = "path \"p\" {\n policy = \"write\"\n allowed_parameters = { \"test\" = [3, 4], \"k\" = [] }\n required_parameters = [\"test\"]\n}";
    let acl = acl(&[a, b]);
    assert!(check(&acl, Operation::Update, "p", Some(json!({"test": 4}))).allowed);
    assert!(check(&acl, Operation::Update, "p", Some(json!({"test": 1}))).allowed);
    assert!(!check(&acl, Operation::Update, "p", Some(json!({"test": 5}))).allowed);
    // An empty list (any value) overrides the other policy's list.
    assert!(
        check(
            &acl,
            Operation::Update,
            "p",
            Some(json!({"test": 1, "k": "anything"}))
        )
        .allowed
    );
    assert!(!check(&acl, Operation::Update, "p", Some(json!({"k": "y"}))).allowed);
}

#[test]
fn wrapping_ttls_merge_to_the_shorter_and_are_enforced() {
    let a =
        "path \"w\" {\n policy = \"write\"\n min_wrapping_ttl = 100\n max_wrapping_ttl = 300\n}";
    let b = "path \"w\" {\n policy = \"write\"\n min_wrapping_ttl = \"50s\"\n max_wrapping_ttl = \"200s\"\n}";
    let acl = acl(&[a, b]);
    let with_ttl = |ttl| {
        acl.check(&Request {
            path: "w".into(),
            operation: Some(Operation::Update),
            data: None,
            wrap_ttl: ttl,
        })
        .allowed
    };
    assert!(!with_ttl(None));
    assert!(with_ttl(Some(60)));
    assert!(!with_ttl(Some(40)));
    assert!(!with_ttl(Some(250)));
}

#[test]
fn root_policy_grants_everything_alone() {
    let root = policy("root", "name = \"root\"");
    let acl = Acl::new(std::slice::from_ref(&root)).expect("acl");
    let decision = check(&acl, Operation::Update, "sys/mount/foo", None);
    assert!(decision.allowed && decision.root_privs);
    assert_eq!(
        acl.check(&Request {
            path: "x".into(),
            ..Request::default()
        })
        .capabilities,
        ["root"]
    );
    assert!(Acl::new(&[root, policy("other", "")]).is_err());
}

#[test]
fn parse_errors_name_the_file_line_and_problem() {
    let cases = [
        (
            "name = \"x\"\nbad = 1\n",
            "f.hcl:2: invalid key \"bad\" on line 2",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\", \"banana\"]\n}",
            "f.hcl:2: path \"a\": invalid capability \"banana\"",
        ),
        (
            "path \"a\" {\n  policy = \"banana\"\n}",
            "path \"a\": invalid policy \"banana\"",
        ),
        (
            "path \"/a/+*\" {\n  policy = \"read\"\n}",
            "path \"a/+*\": invalid use of wildcards ('+*' is forbidden)",
        ),
        (
            "path \"a\" {\n  capabilites = []\n}",
            "f.hcl:2: path \"a\": invalid key \"capabilites\" on line 2",
        ),
        (
            "path \"a\" {\n  policy = \"read\"\n  allowed_parameters = { \"a*\" = [] }\n}",
            "cannot contain non-tail wildcards",
        ),
        (
            "path \"a\" {\n  policy = \"read\"\n  min_wrapping_ttl = \"soon\"\n}",
            "error parsing min_wrapping_ttl",
        ),
        ("path \"a\" {\n", "f.hcl:1: HCL syntax error"),
        (
            "{\"path\": {\"a\": {\"capabilities\": [\"nope\"]}}}",
            "invalid capability \"nope\"",
        ),
        (
            "{\"name\": \"n\",\n \"bad\": 1}",
            "f.hcl:2: invalid key \"bad\" on line 2",
        ),
    ];
    for (text, wanted) in cases {
        let error = Policy::parse(text, "f.hcl", "f")
            .expect_err(text)
            .to_string();
        assert!(error.contains(wanted), "{error:?} lacks {wanted:?}");
    }
    // Deny stops reading the rule, as in Vault: later words are not checked.
    assert!(
        Policy::parse(
            "path \"a\" { capabilities = [\"deny\", \"banana\"] }",
            "f",
            "f"
        )
        .is_ok()
    );
}

#[test]
fn json_policies_mean_the_same_as_hcl() {
    let hcl = policy(
        "h",
        "name = \"n\"\npath \"a/*\" {\n capabilities = [\"read\"]\n allowed_parameters = { \"k\" = [\"v\"] }\n}\npath \"a/*\" { capabilities = [\"list\"] }\n",
    );
    let json = policy(
        "j",
        r#"{"name": "n", "path": [{"a/*": {"capabilities": ["read"], "allowed_parameters": {"k": ["v"]}}}, {"a/*": {"capabilities": ["list"]}}]}"#,
    );
    for p in [&hcl, &json] {
        let acl = Acl::new(std::slice::from_ref(p)).expect("acl");
        assert_eq!(
            acl.check(&Request {
                path: "a/x".into(),
                ..Request::default()
            })
            .capabilities,
            ["list", "read"]
        );
        assert!(!check(&acl, Operation::Read, "a/x", Some(json!({"k": "w"}))).allowed);
        assert!(check(&acl, Operation::Read, "a/x", Some(json!({"k": "v"}))).allowed);
    }
    assert_eq!(json.name, "n");
}

#[test]
fn names_come_from_the_attribute_else_the_file() {
    assert_eq!(
        policy("deploy", "path \"a\" { policy = \"read\" }").name,
        "deploy"
    );
    assert_eq!(policy("file", "name = \" DeV \"").name, "dev");
}
