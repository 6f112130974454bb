//! Vault's own ACL test vectors (`../shared/fixtures/vault-acl/cases.json`), read in place.

use sealops_core::policy::{Acl, Operation, Policy, Request};
use serde_json::Value;

use crate::fixtures;

fn fixture() -> Option<Value> {
    let path = fixtures::shared_fixtures()?.join("vault-acl/cases.json");
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    Some(serde_json::from_str(&text).expect("fixture is JSON"))
}

#[test]
fn every_vault_case_passes_through_the_library() {
    let Some(fixture) = fixture() else { return };
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 75, "the fixture has its cases");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let label = format!("case {index} ({})", case["source_test"]);
        let names = case["policy_names"].as_array().cloned().unwrap_or_default();
        let parsed: Vec<Result<Policy, String>> = case["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let name = names
                    .get(i)
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("policy{i}"), str::to_owned);
                Policy::parse(
                    text.as_str().expect("text"),
                    &format!("{label} policy {i}"),
                    &name,
                )
                .map_err(|error| error.to_string())
            })
            .collect();
        let expect = &case["expect"];
        if let Some(wanted) = expect.get("error_contains") {
            let errors: Vec<&String> = parsed.iter().filter_map(|p| p.as_ref().err()).collect();
            if errors.is_empty() {
                failures.push(format!("{label}: parsed, expected an error"));
                continue;
            }
            let all = errors
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            for needle in wanted.as_array().expect("list") {
                let needle = needle.as_str().expect("string");
                if !all.contains(needle) {
                    failures.push(format!("{label}: error {all:?} lacks {needle:?}"));
                }
            }
            continue;
        }
        let policies: Vec<Policy> = match parsed.into_iter().collect() {
            Ok(policies) => policies,
            Err(error) => {
                failures.push(format!("{label}: {error}"));
                continue;
            }
        };
        let acl = Acl::new(&policies).expect("an ACL");
        let request = &case["request"];
        let operation = request["operation"]
            .as_str()
            .map(|op| op.parse::<Operation>().expect("operation"));
        let decision = acl.check(&Request {
            path: request["path"].as_str().expect("path").to_owned(),
            operation,
            data: request.get("data").and_then(Value::as_object).cloned(),
            wrap_ttl: None,
        });
        let actual = serde_json::to_value(&decision).expect("serialises");
        for (field, wanted) in expect.as_object().expect("object") {
            if &actual[field] != wanted {
                failures.push(format!(
                    "{label}: {} {:?}: {field} is {}, expected {wanted}",
                    request["path"], request["operation"], actual[field]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
