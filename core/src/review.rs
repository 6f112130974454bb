//! The reviewer's view of a manifest (`git diff` textconv): one line per key, so a diff shows
//! which keys changed. Without revealed values, a sealed value shows as a fingerprint of its
//! ciphertext: it changes exactly when the ciphertext does and says nothing about the value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::manifest::Manifest;
use crate::secret::SecretValue;

/// `sha256(ciphertext line)[..12]` in hex.
pub fn ciphertext_fingerprint(sealed: &str) -> String {
    hex::encode(&Sha256::digest(sealed.as_bytes())[..6])
}

/// The text `git diff` shows for a manifest. `revealed` holds opened values when the caller
/// decided the reader may see them.
pub fn render(manifest: &Manifest, revealed: Option<&BTreeMap<String, SecretValue>>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sealops manifest {} (scope {})",
        manifest.path, manifest.scope
    );
    for (key, sealed) in &manifest.data {
        match revealed.and_then(|values| values.get(key)) {
            Some(value) => match value.expose_str() {
                Some(text) => {
                    let _ = writeln!(
                        out,
                        "{key} = {}",
                        serde_json::to_string(text).expect("string")
                    );
                }
                None => {
                    let _ = writeln!(out, "{key} = <{} bytes of binary data>", value.len());
                }
            },
            None => {
                let _ = writeln!(
                    out,
                    "{key} = sealed fp:{}",
                    ciphertext_fingerprint(&sealed.to_string())
                );
            }
        }
    }
    for (key, value) in &manifest.plain {
        let _ = writeln!(
            out,
            "{key} = {} (plain)",
            serde_json::to_string(value).expect("string")
        );
    }
    for (id, session) in &manifest.sessions {
        let ids: Vec<&str> = session.recipients.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(out, "session {id} → {}", ids.join(", "));
    }
    out
}
