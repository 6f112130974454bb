//! Property tests: the allowed-signers parser never panics, whatever the input, and accepts
//! every line it should whatever the surrounding noise.

use proptest::prelude::*;
use sealops_core::signing::AllowedSigners;
use sealops_core::signing::pattern::{PatternMatch, match_pattern_list};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8QS83a1nJ974NAXAKDHqY89qAqHMmu6VBR0rwVqcGk";

/// Fragments that exercise the tokenizer's corners: quotes, escapes, options, keys.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"".to_owned()),
        Just("\\\"".to_owned()),
        Just(",".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("#".to_owned()),
        Just("namespaces=".to_owned()),
        Just("valid-after=".to_owned()),
        Just("VALID-BEFORE=".to_owned()),
        Just("cert-authority".to_owned()),
        Just("\"20240101Z\"".to_owned()),
        Just(KEY.to_owned()),
        Just("ssh-ed25519".to_owned()),
        Just("AAAA".to_owned()),
        "[a-z@*?!.]{0,8}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = AllowedSigners::parse(&text, "prop");
    }

    #[test]
    fn parser_never_panics_on_structured_noise(parts in prop::collection::vec(fragment(), 0..12)) {
        let _ = AllowedSigners::parse(&parts.concat(), "prop");
    }

    #[test]
    fn errors_always_name_source_and_line(parts in prop::collection::vec(fragment(), 1..12)) {
        let text = format!("alice@x {KEY}\n{}", parts.concat().replace(['\n', '\r'], " "));
        if let Err(err) = AllowedSigners::parse(&text, "prop-file") {
            prop_assert!(err.to_string().starts_with("prop-file:2: "), "{}", err);
        }
    }

    #[test]
    fn a_valid_line_parses_with_any_comment(principal in "[a-z]{1,8}@[a-z]{1,8}", comment in "[ -~]{0,30}") {
        let signers = AllowedSigners::parse(&format!("{principal} {KEY} {comment}\n"), "prop").unwrap();
        prop_assert_eq!(signers.entries().len(), 1);
        prop_assert_eq!(&signers.entries()[0].principals, &principal);
    }

    #[test]
    fn pattern_matching_never_panics(string in any::<String>(), patterns in any::<String>()) {
        let _ = match_pattern_list(&string, &patterns);
    }

    #[test]
    fn star_matches_everything_unless_negated(string in "[^,*?!]{0,20}") {
        prop_assert_eq!(match_pattern_list(&string, "*"), PatternMatch::Matched);
        prop_assert_eq!(match_pattern_list(&string, &format!("*,!{string}")), PatternMatch::Excluded);
    }
}
