//! Evaluation cost with 1,000 policies × 50 rules (50,000 rules, one holder).
//!
//! Run: `cargo bench -p sealops-core --bench policy_eval`. Prints the build time of the ACL and
//! the mean time of one check for several kinds of path.

use std::hint::black_box;
use std::time::Instant;

use sealops_core::policy::{Acl, Operation, Policy, Request};
use serde_json::json;

fn policy_text(index: usize) -> String {
    let mut text = format!("name = \"team-{index}\"\n");
    for rule in 0..50 {
        let pattern = match rule % 5 {
            0 => format!("secrets/team-{index}/app-{rule}"),
            1 => format!("secrets/team-{index}/app-{rule}/*"),
            2 => format!("secrets/team-{index}/+/db-{rule}"),
            3 => format!("secrets/+/shared-{index}-{rule}/*"),
            _ => format!("sys/policy/team-{index}-{rule}"),
        };
        text.push_str(&format!(
            "path \"{pattern}\" {{\n  capabilities = [\"read\", \"update\"]\n  allowed_parameters = {{\n    \"password\" = []\n    \"user\" = [\"app-*\"]\n  }}\n}}\n"
        ));
    }
    text
}

fn main() {
    let started = Instant::now();
    let policies: Vec<Policy> = (0..1000)
        .map(|i| Policy::parse(&policy_text(i), "bench", "bench").expect("parses"))
        .collect();
    let parsed = started.elapsed();
    let started = Instant::now();
    let acl = Acl::new(&policies).expect("acl");
    let built = started.elapsed();
    println!("parse 1000 policies x 50 rules: {parsed:?}; build ACL: {built:?}");

    let data = json!({"password": "s3cret", "user": "app-payments"});
    let cases = [
        ("exact match", "secrets/team-500/app-0", None),
        ("prefix (*) match", "secrets/team-500/app-1/deep/path", None),
        ("segment (+) match", "secrets/team-500/x/db-2", None),
        (
            "segment+prefix vs prefix",
            "secrets/team-7/shared-7-3/key",
            None,
        ),
        ("no match", "secrets/nobody/nothing", None),
        (
            "exact match with parameters",
            "secrets/team-999/app-45",
            Some(data.clone()),
        ),
    ];
    for (label, path, data) in cases {
        let request = Request {
            path: path.to_owned(),
            operation: Some(Operation::Update),
            data: data.map(|d| d.as_object().expect("object").clone()),
            wrap_ttl: None,
        };
        let expected = acl.check(&request);
        let iterations = 200_000;
        let started = Instant::now();
        for _ in 0..iterations {
            black_box(acl.check(black_box(&request)));
        }
        let per_check = started.elapsed() / iterations;
        println!(
            "{label:<32} {per_check:>10?} per check (allowed: {}, matched: {:?})",
            expected.allowed, expected.matched
        );
    }
}
