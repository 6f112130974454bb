//! Every Vault test vector through the real `sealops policy eval` binary.

use crate::common;

use assert_cmd::Command;
use serde_json::Value;

fn fixture() -> Option<Value> {
    let path = common::fixtures()?.join("vault-acl/cases.json");
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    Some(serde_json::from_str(&text).expect("fixture is JSON"))
}

#[test]
fn every_vault_case_passes_through_sealops_policy_eval() {
    let Some(fixture) = fixture() else { return };
    let cases = fixture["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = case["policy_names"].as_array().cloned().unwrap_or_default();
        let mut command = Command::new(common::SEALOPS);
        command.args(["policy", "eval", "-o", "json", "--request", "-"]);
        for (i, text) in case["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .enumerate()
        {
            let stem = names
                .get(i)
                .and_then(Value::as_str)
                .map_or_else(|| format!("policy{i}"), str::to_owned);
            let file = dir.path().join(format!("{stem}.hcl"));
            std::fs::write(&file, text.as_str().expect("text")).expect("write policy");
            command.arg("--policy").arg(&file);
        }
        let request = if case["request"].is_null() {
            serde_json::json!({"path": "any", "operation": "read"})
        } else {
            case["request"].clone()
        };
        let output = command
            .write_stdin(request.to_string())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expect = &case["expect"];
        if let Some(wanted) = expect.get("error_contains") {
            if output.status.code() != Some(2) {
                failures.push(format!(
                    "case {index}: exit {:?}, expected 2",
                    output.status.code()
                ));
            }
            for needle in wanted.as_array().expect("list") {
                let needle = needle.as_str().expect("string");
                if !stderr.contains(needle) {
                    failures.push(format!("case {index}: stderr {stderr:?} lacks {needle:?}"));
                }
            }
            continue;
        }
        if output.status.code() != Some(0) {
            failures.push(format!(
                "case {index}: exit {:?}: {stderr}",
                output.status.code()
            ));
            continue;
        }
        let actual: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
        for key in [
            "allowed",
            "root_privs",
            "capabilities",
            "granting_policies",
            "matched",
        ] {
            assert!(actual.get(key).is_some(), "output lacks {key}: {actual}");
        }
        for (field, wanted) in expect.as_object().expect("object") {
            if &actual[field] != wanted {
                failures.push(format!(
                    "case {index}: {request}: {field} is {}, expected {wanted}",
                    actual[field]
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
