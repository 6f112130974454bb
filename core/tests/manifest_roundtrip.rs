//! Property tests: whatever is sealed reveals byte for byte, through the YAML text.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sealops_core::keys::{AgeIdentities, generate};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::seal::RecipientNames;
use sealops_core::secret::SecretValue;

fn key_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,40}"
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        any::<String>().prop_map(String::into_bytes),
        "(line [a-z]{0,10}\n){1,5}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_values_reveal_exactly(
        values in proptest::collection::btree_map(key_name(), value(), 0..12),
        plain in proptest::collection::btree_map("[A-Z]{1,8}_P", any::<String>(), 0..4),
    ) {
        let (identity, text) = generate();
        let identities = AgeIdentities::parse(&text, "id").expect("parses");
        let recipients = vec![identity.recipient().clone()];
        let path = SecretPath::parse("apps/prop").expect("valid");
        let mut manifest = Manifest::new(path, Scope::Strict);
        let names = RecipientNames::default();
        for (key, value) in &plain {
            manifest.set_plain(key, value.clone()).expect("valid key");
        }
        let sealed: BTreeMap<String, SecretValue> = values
            .iter()
            .filter(|(k, _)| !plain.contains_key(*k))
            .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
            .collect();
        manifest
            .seal_values("f", sealed.clone(), &recipients, &AgeIdentities::new(), &names)
            .expect("seals");

        let yaml = manifest.to_yaml();
        let parsed = Manifest::parse(&yaml, "f").expect("canonical text parses");
        prop_assert_eq!(&parsed, &manifest);
        prop_assert_eq!(parsed.to_yaml(), yaml, "canonical text is stable");
        let revealed = parsed.reveal("f", &identities, &names).expect("opens");
        prop_assert_eq!(revealed, sealed);
        for (key, value) in &plain {
            if !values.contains_key(key) {
                prop_assert_eq!(parsed.plain.get(key), Some(value));
            }
        }
    }
}

#[test]
fn one_value_per_line() {
    let (identity, _) = generate();
    let mut manifest = Manifest::new(SecretPath::parse("a").expect("valid"), Scope::Strict);
    let values = BTreeMap::from([
        (
            "MULTI".to_owned(),
            SecretValue::from("line one\nline two\n"),
        ),
        ("EMPTY".to_owned(), SecretValue::from("")),
    ]);
    manifest
        .seal_values(
            "f",
            values,
            &[identity.recipient().clone()],
            &AgeIdentities::new(),
            &RecipientNames::default(),
        )
        .expect("seals");
    let yaml = manifest.to_yaml();
    let data_lines: Vec<&str> = yaml.lines().filter(|l| l.contains("sealed:v1:")).collect();
    assert_eq!(data_lines.len(), 2, "{yaml}");
    assert!(data_lines[0].starts_with("  EMPTY: sealed:v1:"));
    assert!(data_lines[1].starts_with("  MULTI: sealed:v1:"));
}

/// The controller's cache: a session unwrapped once opens again without an identity, and a
/// manifest whose envelope is not cached still needs one.
#[test]
fn envelope_cache_opens_each_session_once() {
    use sealops_core::seal::EnvelopeCache;
    let (identity, text) = generate();
    let identities = AgeIdentities::parse(&text, "id").expect("parses");
    let names = RecipientNames::default();
    let seal = |path: &str| {
        let mut manifest = Manifest::new(SecretPath::parse(path).expect("valid"), Scope::Strict);
        manifest
            .seal_values(
                "f",
                BTreeMap::from([("K".to_owned(), SecretValue::from(path))]),
                &[identity.recipient().clone()],
                &AgeIdentities::new(),
                &names,
            )
            .expect("seals");
        manifest
    };
    let (first, second) = (seal("a"), seal("b"));
    let cache = EnvelopeCache::default();
    let opened = first
        .reveal_cached("a", &identities, &names, &cache)
        .expect("opens");
    assert_eq!(opened["K"], SecretValue::from("a"));
    assert_eq!(cache.len(), 1);
    let again = first
        .reveal_cached("a", &AgeIdentities::new(), &names, &cache)
        .expect("opens from the cache without an identity");
    assert_eq!(again, opened);
    assert!(
        second
            .reveal_cached("b", &AgeIdentities::new(), &names, &cache)
            .is_err(),
        "another session is not in the cache"
    );
    // A generation in which only `b` is opened drops `a`'s key.
    second
        .reveal_cached("b", &identities, &names, &cache)
        .expect("opens");
    assert_eq!(cache.len(), 2);
    cache.new_generation();
    second
        .reveal_cached("b", &AgeIdentities::new(), &names, &cache)
        .expect("still cached");
    cache.sweep();
    assert_eq!(cache.len(), 1);
    assert!(
        first
            .reveal_cached("a", &AgeIdentities::new(), &names, &cache)
            .is_err(),
        "swept"
    );
    cache.clear();
    assert!(cache.is_empty());
}
