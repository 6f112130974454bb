//! Real SOPS files (written by the sops tool) decrypt to the expected documents, their data
//! keys match the fixture table, and any flipped bit in a value, the MAC or the wrapped key
//! is an error that names the file (and the key path for values).

use std::path::PathBuf;

use sealops_core::keys::AgeIdentities;
use sealops_core::sops::{self, Document, MacCheck, SopsErrorKind, SopsFormat};

use crate::fixtures;

fn fixtures() -> Option<PathBuf> {
    fixtures::shared_fixtures().map(|dir| dir.join("sops"))
}

/// (file, data key hex, expected format)
const FILES: &[(&str, &str, SopsFormat)] = &[
    (
        "sops-pr1031/example.yaml",
        "9ac088cf7029981341457c39dd56dde54600dfbce9b5ede23aa65c418900ab67",
        SopsFormat::Yaml,
    ),
    (
        "sops-pr1031/example.json",
        "82ee047aa51fbcf65882bdeb1996b6d729d457364a9eba6b41766cc742415fdb",
        SopsFormat::Json,
    ),
    (
        "sops-pr1031/example.ini",
        "e2c0e2d64fca33615d5856a9a98f41cba5c23f8a2300b3beaf4976065610faba",
        SopsFormat::Ini,
    ),
    (
        "sops-pr1031/example.txt",
        "34fabb4b000ca1928576c3b632904de7033bc24734eaa1f0d9ee8d32fdfecc6a",
        SopsFormat::Binary,
    ),
    (
        "flux/secret-regex.yaml",
        "558e95c88337865c839703a4e892c03eed324ae6bbcb65c2989558e1a55825bb",
        SopsFormat::Yaml,
    ),
    (
        "flux/secret-global.yaml",
        "95c21ac70e00e7cfc9c33cbaf95451176e458a504fe665a77f28ba93ff46b595",
        SopsFormat::Yaml,
    ),
    (
        "flux/env.env",
        "b8b84d1196e93186d08634f83ad4530fb33a4a875507fdb2222ce34ca7e8817d",
        SopsFormat::Dotenv,
    ),
    (
        "flux/file.txt",
        "2b9dd3092b81188cf3dfe1a81fad156d4e9fbed77a543d7e03c50bc55c8a118f",
        SopsFormat::Binary,
    ),
    (
        "flux/merge1.yaml",
        "1c15baa8e9b1775f5db7aabb0d1862485591ccd778c0ca2878992b64118325a7",
        SopsFormat::Yaml,
    ),
    (
        "flux/merge2.yaml",
        "bf03b7f435e6a4b2f8672d006a52fb3802c24bc294db237243ef09a9f7bda777",
        SopsFormat::Yaml,
    ),
];

fn identities(root: &std::path::Path, file: &str) -> AgeIdentities {
    let folder = file.split('/').next().unwrap();
    let files: &[&str] = if folder == "flux" {
        &["flux/keys/age.txt", "flux/keys/age-global.txt"]
    } else {
        &["sops-pr1031/keys-both.txt"]
    };
    let mut set = AgeIdentities::new();
    for f in files {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        set.extend(AgeIdentities::parse(&text, f).unwrap());
    }
    set
}

fn expected(root: &std::path::Path, file: &str) -> Vec<Document> {
    let name = format!("expected/{}.plain.json", file.replace('/', "_"));
    serde_json::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
}

fn open(
    root: &std::path::Path,
    file: &str,
    text: &str,
) -> Result<sops::Decrypted, sops::SopsError> {
    let format = sops::detect(text, file).expect("detected as SOPS");
    sops::decrypt(
        text,
        file,
        format,
        &identities(root, file),
        MacCheck::Verify,
    )
}

#[test]
fn every_fixture_decrypts_to_its_expected_document_with_its_data_key() {
    let Some(root) = fixtures() else { return };
    for (file, key_hex, format) in FILES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert_eq!(sops::detect(&text, file), Some(*format), "{file}");
        let decrypted = open(&root, file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(decrypted.mac_verified(), "{file}");
        assert_eq!(
            hex::encode(decrypted.data_key().expose()),
            *key_hex,
            "{file}"
        );
        // Document equality is ordered: key order must match the file.
        assert_eq!(
            decrypted.documents(),
            expected(&root, file).as_slice(),
            "{file}"
        );
    }
}

#[test]
fn non_sops_text_is_not_detected() {
    assert_eq!(sops::detect("a: 1\n", "x.yaml"), None);
    assert_eq!(sops::detect("{\"a\": 1}", "x.json"), None);
    assert_eq!(sops::detect("A=1\n", "x.env"), None);
}

/// Flips one bit of the base64 text at `start..end` (a character that stays valid base64).
fn flip_in(text: &str, start: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let c = bytes[start];
    bytes[start] = if c == b'A' {
        b'B'
    } else if c == b'B' {
        b'A'
    } else {
        c ^ 0x01
    };
    String::from_utf8(bytes).unwrap()
}

/// Offset of the first base64 character of the `data:` field of the first ENC value that is
/// not the MAC.
fn first_value_data(text: &str) -> usize {
    let mut from = 0;
    loop {
        let at = from
            + text[from..]
                .find("ENC[AES256_GCM,data:")
                .expect("an ENC value");
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..at];
        if !line.contains("mac") && !line.trim_start().starts_with(['#', ';']) {
            return at + "ENC[AES256_GCM,data:".len();
        }
        from = at + 1;
    }
}

fn assert_alphanumeric_flip(text: &str, at: usize) -> usize {
    // Move to an alphanumeric character so the flip keeps the base64 valid.
    let mut at = at;
    while !text.as_bytes()[at].is_ascii_alphanumeric() {
        at += 1;
    }
    at
}

#[test]
fn flipped_value_bit_fails_naming_file_and_key_path() {
    let Some(root) = fixtures() else { return };
    for (file, _, _) in FILES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let at = assert_alphanumeric_flip(&text, first_value_data(&text));
        let tampered = flip_in(&text, at);
        let err = open(&root, file, &tampered).expect_err(file);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{file}: value at ")),
            "{message}"
        );
        assert!(
            message.contains("authentication failed") || message.contains("base64"),
            "{message}"
        );
    }
}

#[test]
fn flipped_mac_bit_fails() {
    let Some(root) = fixtures() else { return };
    for (file, _, _) in FILES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mac = text.find("mac").unwrap();
        let data = mac + text[mac..].find("data:").unwrap() + "data:".len();
        let tampered = flip_in(&text, assert_alphanumeric_flip(&text, data + 3));
        let err = open(&root, file, &tampered).expect_err(file);
        assert!(
            matches!(err.kind, SopsErrorKind::MacUnreadable(_)),
            "{file}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("{file}: the MAC cannot be decrypted"))
        );
        // Ignoring the MAC opens the file anyway, and says it was not verified.
        let format = sops::detect(&tampered, file).unwrap();
        let opened = sops::decrypt(
            &tampered,
            file,
            format,
            &identities(&root, file),
            MacCheck::Ignore,
        )
        .unwrap();
        assert!(!opened.mac_verified());
    }
}

#[test]
fn changed_value_with_valid_encryption_fails_the_mac() {
    // Swap two ciphertexts that share a key path? Not possible across paths (the AAD binds
    // them); instead drop an unencrypted value, which only the MAC protects.
    let Some(root) = fixtures() else { return };
    let file = "flux/secret-regex.yaml";
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let tampered = text.replace("name: age", "name: evil");
    let err = open(&root, file, &tampered).unwrap_err();
    assert!(matches!(err.kind, SopsErrorKind::MacMismatch), "{err}");
    assert!(
        err.to_string()
            .starts_with("flux/secret-regex.yaml: MAC mismatch")
    );
}

#[test]
fn flipped_wrapped_key_bit_fails() {
    let Some(root) = fixtures() else { return };
    for (file, _, _) in FILES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        // Flip a bit in the body of every age envelope (inside the header MAC / payload).
        let mut tampered = text.clone();
        let mut from = 0;
        while let Some(found) = tampered[from..].find("-----BEGIN AGE ENCRYPTED FILE-----") {
            let start = from + found + 34;
            let end = start + tampered[start..].find("-----END").unwrap();
            // A character two thirds in: inside the stanza body or the payload.
            let at = assert_alphanumeric_flip(&tampered, start + (end - start) * 2 / 3);
            tampered = flip_in(&tampered, at);
            from = end;
        }
        let err = open(&root, file, &tampered).expect_err(file);
        assert!(
            matches!(err.kind, SopsErrorKind::DataKey { .. }),
            "{file}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("{file}: none of the identities")),
            "{err}"
        );
    }
}

#[test]
fn wrong_identity_is_a_clear_error() {
    let Some(root) = fixtures() else { return };
    let file = "flux/merge1.yaml";
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let (_, other) = sealops_core::keys::generate();
    let set = AgeIdentities::parse(&other, "other.txt").unwrap();
    let err = sops::decrypt(&text, file, SopsFormat::Yaml, &set, MacCheck::Verify).unwrap_err();
    assert!(err.to_string().contains("no identity matches"), "{err}");
}

#[test]
fn debug_of_decrypted_hides_values() {
    let Some(root) = fixtures() else { return };
    let file = "sops-pr1031/example.yaml";
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let decrypted = open(&root, file, &text).unwrap();
    let debug = format!("{decrypted:?}");
    assert!(
        !debug.contains("c4r1b0u") && !debug.contains("t00m4nys3cr3tzupdated"),
        "{debug}"
    );
    assert!(decrypted.to_json_pretty().contains("c4r1b0u"));
}
