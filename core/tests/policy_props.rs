//! Properties: the parser never panics; `fmt` is idempotent and keeps every decision.

use proptest::prelude::*;
use sealops_core::policy::{Acl, Operation, Policy, Request, format_policy};
use serde_json::{Value, json};

const SEGMENTS: [&str; 6] = ["a", "b", "+", "ab", "", "c"];

fn pattern() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(&SEGMENTS[..]), 1..4),
        prop::option::of(prop::sample::select(vec!["*", "a*"])),
    )
        .prop_map(|(segments, tail)| {
            let mut text = segments.join("/");
            if let Some(tail) = tail
                && !text.ends_with('+')
            {
                text.push_str(if text.is_empty() || text.ends_with('/') {
                    tail
                } else {
                    "*"
                });
            }
            text
        })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["x", "y*", "*z", "x,y", ""]).prop_map(Value::from),
        (0i64..3).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(json!({"k": "x"})),
        Just(json!(["x", "y"])),
    ]
}

fn hcl_value(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?} = {}", hcl_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(hcl_value).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    caps: Vec<&'static str>,
    legacy: Option<&'static str>,
    allowed: Vec<(&'static str, Vec<Value>)>,
    denied: Vec<(&'static str, Vec<Value>)>,
    required: Vec<&'static str>,
}

const CAPS: [&str; 9] = [
    "create", "read", "update", "delete", "list", "sudo", "patch", "recover", "deny",
];
const PARAMS: [&str; 4] = ["k", "K2", "*", "other"];

fn params() -> impl Strategy<Value = Vec<(&'static str, Vec<Value>)>> {
    prop::collection::vec(
        (
            prop::sample::select(&PARAMS[..]),
            prop::collection::vec(value(), 0..3),
        ),
        0..3,
    )
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        pattern(),
        prop::collection::vec(prop::sample::select(&CAPS[..]), 0..4),
        prop::option::of(prop::sample::select(vec!["read", "write", "sudo", "deny"])),
        params(),
        params(),
        prop::collection::vec(prop::sample::select(vec!["k", "other"]), 0..2),
    )
        .prop_map(|(pattern, caps, legacy, allowed, denied, required)| Rule {
            pattern,
            caps,
            legacy,
            allowed,
            denied,
            required,
        })
}

fn render(rules: &[Rule], sloppy: bool) -> String {
    let sep = if sloppy { "\n\n\t  " } else { "\n  " };
    let mut text = String::from("# a policy\nname = \"prop\"\n");
    for rule in rules {
        text.push_str(&format!("path {:?} {{", rule.pattern));
        let caps: Vec<String> = rule.caps.iter().map(|c| format!("{c:?}")).collect();
        text.push_str(&format!("{sep}capabilities = [{}]", caps.join(",")));
        if let Some(word) = rule.legacy {
            text.push_str(&format!("{sep}# legacy{sep}policy = {word:?}"));
        }
        for (name, list) in [
            ("allowed_parameters", &rule.allowed),
            ("denied_parameters", &rule.denied),
        ] {
            if !list.is_empty() {
                let items: Vec<String> = list
                    .iter()
                    .map(|(k, vs)| {
                        format!(
                            "{k:?} = [{}]",
                            vs.iter().map(hcl_value).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                text.push_str(&format!(
                    "{sep}{name} = {{\n    {}\n  }}",
                    items.join("\n    ")
                ));
            }
        }
        if !rule.required.is_empty() {
            text.push_str(&format!("{sep}required_parameters = {:?}", rule.required));
        }
        text.push_str("\n}\n");
    }
    text
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "ab", "abc", "c", ""]),
            1..5,
        ),
        prop::option::of(prop::sample::select(Operation::ALL.to_vec())),
        prop::collection::vec(
            (
                prop::sample::select(vec!["k", "K2", "other", "new"]),
                value(),
            ),
            0..3,
        ),
    )
        .prop_map(|(segments, operation, data)| Request {
            path: segments.join("/"),
            operation,
            data: (!data.is_empty())
                .then(|| data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            wrap_ttl: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_any_text(text in ".{0,200}") {
        let _ = Policy::parse(&text, "p.hcl", "p");
    }

    #[test]
    fn parser_never_panics_on_policy_like_text(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "path", "\"a/*\"", "{", "}", "[", "]", "=", "capabilities", "policy", "\"read\"", "\n",
            ",", "allowed_parameters", "name", "control_group", "factor", "\"x\"", "1", "#c\n", "\"+*\"",
            "{\"path\":", ":", "null", "true", "<<EOT\nx\nEOT\n", "\"${x}\"",
        ]), 0..40)
    ) {
        let text = tokens.join(" ");
        let _ = Policy::parse(&text, "p.hcl", "p");
        let _ = format_policy(&text, "p.hcl");
    }

    #[test]
    fn fmt_is_idempotent_and_keeps_every_decision(
        rules in prop::collection::vec(rule(), 0..6),
        sloppy in any::<bool>(),
        requests in prop::collection::vec(request(), 1..20),
    ) {
        let text = render(&rules, sloppy);
        let Ok(before) = Policy::parse(&text, "p.hcl", "p") else {
            // Generated rules may be invalid (e.g. a bad parameter key); fmt must refuse them too.
            prop_assert!(format_policy(&text, "p.hcl").is_err());
            return Ok(());
        };
        let once = format_policy(&text, "p.hcl").expect("a valid policy formats");
        let twice = format_policy(&once, "p.hcl").expect("formatted text parses");
        prop_assert_eq!(&once, &twice);
        let after = Policy::parse(&once, "p.hcl", "p").expect("formatted text parses");
        prop_assert_eq!(&before.name, &after.name);
        let (acl_before, acl_after) = (Acl::new(&[before]).expect("acl"), Acl::new(&[after]).expect("acl"));
        for request in &requests {
            prop_assert_eq!(acl_before.check(request), acl_after.check(request), "{:?}\n{}\n{}", request, text, once);
        }
    }
}

/// Guards the property above against a generator whose policies never parse.
#[test]
fn generated_policies_mostly_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(rule(), 1..4);
    let parsed = (0..200)
        .filter(|_| {
            let rules = strategy.new_tree(&mut runner).expect("tree").current();
            Policy::parse(&render(&rules, false), "p.hcl", "p").is_ok()
        })
        .count();
    assert!(
        parsed > 100,
        "only {parsed} of 200 generated policies parse"
    );
}
