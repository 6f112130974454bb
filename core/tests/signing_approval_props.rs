//! Property tests: approval statements round-trip through their canonical text, and parsing
//! arbitrary input never panics.

use proptest::prelude::*;
use sealops_core::signing::approval::{ApprovalStatement, ApprovedContent};

const REPOSITORY_ID: &str = "0123456789abcdef0123456789abcdef";

fn content() -> impl Strategy<Value = ApprovedContent> {
    prop_oneof![
        Just(ApprovedContent::Deleted),
        any::<Vec<u8>>().prop_map(|bytes| ApprovedContent::of_bytes(&bytes)),
    ]
}

proptest! {
    #[test]
    fn statements_round_trip(
        principal in "[a-z][a-z0-9._-]{0,12}@[a-z]{1,10}\\.com",
        created in 0i64..4_000_000_000,
        changes in prop::collection::btree_map("[a-z]{1,6}(/[a-z. _-]{1,6}){0,3}", content(), 1..6),
    ) {
        prop_assume!(changes.keys().all(|p| p.split('/').all(|s| s != "." && s != "..")));
        let statement = ApprovalStatement::new(REPOSITORY_ID, &principal, created, changes).unwrap();
        let text = statement.to_text();
        prop_assert_eq!(ApprovalStatement::parse(&text, "prop").unwrap(), statement);
    }

    #[test]
    fn parsing_never_panics(text in any::<String>()) {
        let _ = ApprovalStatement::parse(&text, "prop");
    }

    #[test]
    fn parsing_never_panics_near_valid_text(tail in "[ -~\n]{0,80}") {
        let text = format!("sealops-approval v1\nprincipal a@x\ncreated 2024-06-10T06:13:20Z\n{tail}");
        let _ = ApprovalStatement::parse(&text, "prop");
    }
}
