//! Tampering with a sealed manifest is detected, and the error names the manifest and the key.

use std::collections::BTreeMap;

use sealops_core::keys::{AgeIdentities, generate};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::seal::{OpenError, RecipientNames};
use sealops_core::secret::SecretValue;

struct Fixture {
    identities: AgeIdentities,
    recipients: Vec<sealops_core::keys::Recipient>,
}

fn fixture() -> Fixture {
    let (a, text_a) = generate();
    let (b, text_b) = generate();
    let mut identities = AgeIdentities::parse(&text_a, "a").expect("parses");
    identities.extend(AgeIdentities::parse(&text_b, "b").expect("parses"));
    Fixture {
        identities,
        recipients: vec![a.recipient().clone(), b.recipient().clone()],
    }
}

fn sealed(f: &Fixture, path: &str, values: &[(&str, &str)]) -> Manifest {
    let mut manifest = Manifest::new(SecretPath::parse(path).expect("valid"), Scope::Strict);
    let values: BTreeMap<String, SecretValue> = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretValue::from(*v)))
        .collect();
    manifest
        .seal_values(
            "f",
            values,
            &f.recipients,
            &AgeIdentities::new(),
            &RecipientNames::default(),
        )
        .expect("seals");
    manifest
}

/// Re-reads the manifest from edited text and reveals it, returning the error message.
fn reveal_error(f: &Fixture, text: &str, file: &str) -> String {
    match Manifest::parse(text, file) {
        Err(e) => e.to_string(),
        Ok(m) => m
            .reveal(file, &f.identities, &RecipientNames::default())
            .map(|_| "opened".to_owned())
            .unwrap_or_else(|e| e.to_string()),
    }
}

fn line_of<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}: sealed:")))
        .expect("key line")
}

#[test]
fn flipped_bit_in_a_value() {
    let f = fixture();
    let text = sealed(&f, "apps/db", &[("PASSWORD", "s3cret"), ("USER", "app")]).to_yaml();
    let line = line_of(&text, "PASSWORD");
    // Flip one bit of the decoded payload (past the nonce) and encode it again, so the value
    // still parses and the AEAD tag check is what catches it.
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (prefix, payload) = line.rsplit_once(':').expect("payload");
    let mut bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    bytes[30] ^= 0x01;
    let tampered_line = format!("{prefix}:{}", URL_SAFE_NO_PAD.encode(&bytes));
    let tampered = text.replace(line, &tampered_line);
    assert!(
        Manifest::parse(&tampered, "f").is_ok(),
        "the tampered value still parses"
    );
    let err = reveal_error(&f, &tampered, "secrets/apps/db.yaml");
    assert_eq!(
        err,
        "secrets/apps/db.yaml: the value of key PASSWORD does not open: it was altered, or copied from another key, manifest or scope"
    );
}

#[test]
fn two_values_swapped() {
    let f = fixture();
    let text = sealed(&f, "apps/db", &[("PASSWORD", "s3cret"), ("USER", "app")]).to_yaml();
    let (pw, user) = (line_of(&text, "PASSWORD"), line_of(&text, "USER"));
    let pw_value = pw.split_once(": ").expect("pair").1;
    let user_value = user.split_once(": ").expect("pair").1;
    let swapped = text
        .replace(pw, &format!("  PASSWORD: {user_value}"))
        .replace(user, &format!("  USER: {pw_value}"));
    let err = reveal_error(&f, &swapped, "secrets/apps/db.yaml");
    assert!(
        err.contains("secrets/apps/db.yaml") && err.contains("key PASSWORD"),
        "{err}"
    );
}

#[test]
fn ciphertext_copied_to_another_key_or_manifest() {
    let f = fixture();
    let source = sealed(&f, "apps/db", &[("PASSWORD", "s3cret")]);
    // Same session, other key name.
    let mut other_key = source.clone();
    let value = other_key.data["PASSWORD"].clone();
    other_key.data.insert("API_KEY".to_owned(), value);
    let err = other_key
        .reveal(
            "secrets/apps/db.yaml",
            &f.identities,
            &RecipientNames::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::Value { key, .. } if key == "API_KEY"),
        "{err}"
    );

    // Value and its session copied into another manifest (strict scope binds the path).
    let mut other_manifest = sealed(&f, "apps/web", &[("TOKEN", "t")]);
    let session = source.data["PASSWORD"].session().clone();
    other_manifest
        .sessions
        .insert(session.clone(), source.sessions[&session].clone());
    other_manifest
        .data
        .insert("PASSWORD".to_owned(), source.data["PASSWORD"].clone());
    let text = other_manifest.to_yaml();
    let err = reveal_error(&f, &text, "secrets/apps/web.yaml");
    assert!(
        err.contains("secrets/apps/web.yaml") && err.contains("key PASSWORD"),
        "{err}"
    );

    // The same manifest text moved to another path: the declared path no longer matches, and
    // editing the declared path makes every value fail to open.
    let moved = source
        .to_yaml()
        .replace("path: apps/db", "path: apps/other");
    let err = reveal_error(&f, &moved, "secrets/apps/other.yaml");
    assert!(err.contains("key PASSWORD"), "{err}");
}

#[test]
fn session_entry_removed() {
    let f = fixture();
    let manifest = sealed(&f, "apps/db", &[("PASSWORD", "s3cret")]);
    let text = manifest.to_yaml();
    let start = text.find("sessions:\n").expect("sessions");
    let tampered = format!("{}sessions: {{}}\n", &text[..start]);
    let err = reveal_error(&f, &tampered, "secrets/apps/db.yaml");
    assert!(err.starts_with("secrets/apps/db.yaml:"), "{err}");
    assert!(
        err.contains("key PASSWORD") && err.contains("not in `sessions`"),
        "{err}"
    );
}

#[test]
fn recipient_stanza_altered() {
    let f = fixture();
    let manifest = sealed(&f, "apps/db", &[("PASSWORD", "s3cret")]);
    let (_, session) = manifest.sessions.iter().next().expect("one session");
    // Decode the armored age file, change one byte of the first stanza's body, re-armor.
    use base64::Engine;
    let body: String = session
        .envelope
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut binary = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    let stanza = binary
        .windows(10)
        .position(|w| w == b"-> X25519 ")
        .expect("stanza");
    let body_start = stanza
        + binary[stanza..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("eol")
        + 1;
    binary[body_start] ^= if binary[body_start] == b'A' {
        0x03
    } else {
        0x01
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(&binary);
    let mut armored = String::from("-----BEGIN AGE ENCRYPTED FILE-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(chunk).expect("ascii"));
        armored.push('\n');
    }
    armored.push_str("-----END AGE ENCRYPTED FILE-----\n");
    let mut tampered = manifest.clone();
    tampered.sessions.values_mut().next().expect("one").envelope = armored;
    // Opening picks the first listed recipient we hold: the one whose stanza was altered.
    let err = tampered
        .reveal(
            "secrets/apps/db.yaml",
            &f.identities,
            &RecipientNames::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secrets/apps/db.yaml") && err.contains("PASSWORD"),
        "{err}"
    );
    assert!(err.contains("does not open"), "{err}");
}
