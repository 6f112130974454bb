//! Property tests: the `ENC[...]` parser never panics and round-trips, and the flattening rule
//! is the identity through flatten → unflatten on every document it accepts.

use proptest::prelude::*;
use sealops_core::secret::SecretValue;
use sealops_core::sops::{self, DataKey, Document, EncryptedValue, FlatDocument, ValueType};

fn b64() -> impl Strategy<Value = String> {
    prop::string::string_regex("[A-Za-z0-9+/=!.]{0,60}").unwrap()
}

proptest! {
    #[test]
    fn enc_parser_never_panics_on_arbitrary_text(text in ".{0,200}") {
        let _ = EncryptedValue::parse(&text);
    }

    #[test]
    fn enc_parser_never_panics_on_near_miss_values(data in b64(), iv in b64(), tag in b64(), kind in "[a-z0-9]{0,8}") {
        let text = format!("ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:{kind}]");
        if let Ok(value) = EncryptedValue::parse(&text) {
            prop_assert_eq!(value.iv.len(), 32);
            prop_assert_eq!(value.tag.len(), 16);
            let _ = value.decrypt(&DataKey::from_bytes([1; 32]), "a:");
        }
    }

    #[test]
    fn enc_values_round_trip_and_bind_their_path(plain in prop::collection::vec(any::<u8>(), 0..100), key in any::<[u8; 32]>(), path in "[a-z:]{0,20}") {
        let key = DataKey::from_bytes(key);
        let value = EncryptedValue::encrypt(&plain, ValueType::Str, &key, &path);
        let parsed = EncryptedValue::parse(&value.format()).unwrap();
        let opened = parsed.decrypt(&key, &path).unwrap();
        prop_assert_eq!(opened.as_slice(), plain.as_slice());
        let other = format!("{path}x");
        prop_assert!(parsed.decrypt(&key, &other).is_err());
        // Truncated tags and data are errors, not panics.
        let mut short = parsed.clone();
        short.tag.pop();
        prop_assert!(EncryptedValue::parse(&short.format()).is_err());
        let mut cut = parsed;
        cut.data.truncate(cut.data.len().saturating_sub(1));
        if !plain.is_empty() {
            prop_assert!(cut.decrypt(&key, &path).is_err());
        }
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z_][A-Za-z0-9_-]{0,8}", "[0-9]{1,3}", ".{0,6}",]
}

fn document() -> impl Strategy<Value = Document> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(Document::string),
        any::<bool>().prop_map(Document::Bool),
        any::<i64>().prop_map(Document::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Document::Float),
        Just(Document::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Document::List),
            prop::collection::vec((key_strategy(), inner), 1..4).prop_map(|entries| {
                let mut seen = std::collections::HashSet::new();
                Document::Map(
                    entries
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
        ]
    })
}

fn top_map() -> impl Strategy<Value = Document> {
    prop::collection::vec((key_strategy(), document()), 0..5).prop_map(|entries| {
        let mut seen = std::collections::HashSet::new();
        Document::Map(
            entries
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect(),
        )
    })
}

proptest! {
    #[test]
    fn flatten_then_unflatten_is_the_identity(doc in top_map()) {
        match sops::flatten(&doc) {
            Ok(flat) => {
                for (key, _) in &flat.entries {
                    prop_assert!(key.len() <= 253 && !key.is_empty());
                    prop_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{}", key);
                }
                let back = sops::unflatten(&flat).unwrap();
                prop_assert_eq!(back, doc);
            }
            // The only refusals for these documents: long paths.
            Err(e) => prop_assert!(matches!(e, sops::FlattenError::TooLong { .. }), "{}", e),
        }
    }

    #[test]
    fn unflatten_never_panics_and_accepted_input_round_trips(
        keys in prop::collection::vec("[A-Za-z0-9._-]{1,12}", 0..6),
        values in prop::collection::vec(".{0,5}", 6),
    ) {
        let flat = FlatDocument {
            entries: keys.iter().zip(&values).map(|(k, v)| (k.clone(), SecretValue::from(v.as_str()))).collect(),
            types: vec![],
        };
        if let Ok(doc) = sops::unflatten(&flat) {
            // Same entries; flatten lists them in document order, which groups a map's keys.
            let mut again = sops::flatten(&doc).unwrap().entries;
            let mut given = flat.entries.clone();
            again.sort_by(|a, b| a.0.cmp(&b.0));
            given.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(again, given);
        }
    }
}
