//! The flattening rule: nested SOPS documents ⇄ flat sealops manifest keys.
//!
//! Manifest keys match `[A-Za-z0-9._-]{1,253}` and values are strings, so a nested document
//! becomes `key path → text`:
//!
//! - The path's segments are joined with `.`: `{"db": {"user": "u"}}` → `db.user = u`.
//! - A list item's segment is its index in decimal: `{"hosts": ["a", "b"]}` →
//!   `hosts.0 = a`, `hosts.1 = b`.
//! - A map key is written as is when it is non-empty, uses only `A-Z a-z 0-9 _ -`, does not
//!   start with `-` and is not all digits. Any other key is escaped: `-` followed by the key
//!   with every byte outside `A-Z a-z 0-9 _` written as `-` and two lowercase hex digits:
//!   `.dockerconfigjson` → `--2edockerconfigjson`, `my.key` → `-my-2ekey`, `8080` → `-8080`,
//!   `-x` → `--2dx`, `""` → `-`. So a segment starting with `-` is always an escaped key, an
//!   all-digit segment always a list index, and every other segment a plain key.
//! - Strings are the values. Other scalars are written as text (`true`, `5432`, `2.5`, null as
//!   the empty string) and their flat keys are listed in [`FlatDocument::types`] with their
//!   [`ScalarKind`]; [`unflatten`] given the same types restores them exactly. A caller that
//!   cannot store the types gets strings back.
//!
//! Refused with an error naming the path: a document that is not a map at the top, empty
//! maps or lists below the top (they have no flat key), and paths longer than 253 characters.
//! `unflatten` refuses non-canonical keys (`a.01`, an escape of a key that needs none), list
//! gaps, a path used both as a value and as a container, and duplicates — so
//! `unflatten(flatten(d)) == d` for every `d` that `flatten` accepts, and `flatten` of an
//! unflattened document gives back the same entries.

use super::document::Document;
use super::tree::go_float;
use crate::secret::SecretValue;

/// Longest manifest key.
pub const MAX_KEY_LEN: usize = 253;

/// The type of a non-string scalar, recorded so that [`unflatten`] can restore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarKind {
    Bool,
    Int,
    Float,
    Null,
}

impl ScalarKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Float => "float",
            Self::Null => "null",
        }
    }
}

/// A flattened document: keys in document order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlatDocument {
    pub entries: Vec<(String, SecretValue)>,
    /// Keys whose value was not a string, with the scalar kind to restore.
    pub types: Vec<(String, ScalarKind)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlattenError {
    #[error("the document is a {0}, not a map; only maps flatten to manifest keys")]
    NotAMap(&'static str),
    #[error("empty {kind} at {path} has no flat key; remove it or put a value in it")]
    EmptyContainer { path: String, kind: &'static str },
    #[error(
        "flat key {key:?} is {len} characters; manifest keys are at most 253 (shorten the nesting or the key names)"
    )]
    TooLong { key: String, len: usize },
    #[error("flat key {key:?} is not valid: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error(
        "flat key {key:?} conflicts with {other:?}: one path cannot be both a value and a map or list"
    )]
    Conflict { key: String, other: String },
    #[error(
        "flat key {key:?} skips list positions (list items must be numbered 0, 1, 2, … in order)"
    )]
    ListGap { key: String },
    #[error("flat key {key:?} is recorded as {kind} but its value does not parse as one")]
    BadTypedValue { key: String, kind: &'static str },
    #[error("flat key {key:?} has a recorded type but no value")]
    TypeWithoutValue { key: String },
    #[error("value of {key:?} is not UTF-8 text")]
    NotText { key: String },
}

fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The flat segment of a map key.
fn escape_key(key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with('-')
        && !key.bytes().all(|b| b.is_ascii_digit())
        && key.bytes().all(|b| is_plain_byte(b) || b == b'-');
    if plain {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 1);
    out.push('-');
    for b in key.bytes() {
        if is_plain_byte(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("-{b:02x}"));
        }
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

fn parse_segment(segment: &str, key: &str) -> Result<Segment, FlattenError> {
    let invalid = |reason: String| FlattenError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if segment.is_empty() {
        return Err(invalid(
            "empty segment (two dots, or a dot at an end)".into(),
        ));
    }
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        if segment.len() > 1 && segment.starts_with('0') {
            return Err(invalid(format!(
                "list index {segment:?} has a leading zero"
            )));
        }
        return segment
            .parse()
            .map(Segment::Index)
            .map_err(|_| invalid(format!("list index {segment:?} is too large")));
    }
    if let Some(escaped) = segment.strip_prefix('-') {
        let bytes = escaped.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'-' {
                let hex = escaped
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .ok_or_else(|| {
                        invalid(format!(
                            "escape in {segment:?} is not - and two lowercase hex digits"
                        ))
                    })?;
                decoded.push(u8::from_str_radix(hex, 16).expect("checked hex"));
                i += 3;
            } else if is_plain_byte(bytes[i]) {
                decoded.push(bytes[i]);
                i += 1;
            } else {
                return Err(invalid(format!(
                    "character {:?} in {segment:?}",
                    bytes[i] as char
                )));
            }
        }
        let decoded = String::from_utf8(decoded)
            .map_err(|_| invalid(format!("escaped segment {segment:?} is not UTF-8")))?;
        if escape_key(&decoded) != segment {
            return Err(invalid(format!(
                "{segment:?} is not the canonical form of its key (write {:?})",
                escape_key(&decoded)
            )));
        }
        return Ok(Segment::Key(decoded));
    }
    if let Some(bad) = segment.bytes().find(|b| !(is_plain_byte(*b) || *b == b'-')) {
        return Err(invalid(format!(
            "character {:?} is not allowed",
            bad as char
        )));
    }
    Ok(Segment::Key(segment.to_owned()))
}

/// Flattens a document (a map) into manifest keys and string values; see the module docs.
pub fn flatten(document: &Document) -> Result<FlatDocument, FlattenError> {
    let Document::Map(entries) = document else {
        return Err(FlattenError::NotAMap(document.kind()));
    };
    let mut flat = FlatDocument::default();
    for (key, value) in entries {
        walk(value, escape_key(key), &mut flat)?;
    }
    Ok(flat)
}

fn walk(node: &Document, path: String, flat: &mut FlatDocument) -> Result<(), FlattenError> {
    if path.len() > MAX_KEY_LEN {
        return Err(FlattenError::TooLong {
            len: path.len(),
            key: path,
        });
    }
    let mut scalar = |text: String, kind: Option<ScalarKind>| {
        if let Some(kind) = kind {
            flat.types.push((path.clone(), kind));
        }
        flat.entries.push((path.clone(), SecretValue::from(text)));
        Ok(())
    };
    match node {
        Document::String(s) => scalar(s.as_str().to_owned(), None),
        Document::Bool(b) => scalar(b.to_string(), Some(ScalarKind::Bool)),
        Document::Int(i) => scalar(i.to_string(), Some(ScalarKind::Int)),
        Document::Float(f) => scalar(go_float(*f), Some(ScalarKind::Float)),
        Document::Null => scalar(String::new(), Some(ScalarKind::Null)),
        Document::Map(entries) if entries.is_empty() => {
            Err(FlattenError::EmptyContainer { path, kind: "map" })
        }
        Document::List(items) if items.is_empty() => {
            Err(FlattenError::EmptyContainer { path, kind: "list" })
        }
        Document::Map(entries) => {
            for (key, value) in entries {
                walk(value, format!("{path}.{}", escape_key(key)), flat)?;
            }
            Ok(())
        }
        Document::List(items) => {
            for (index, value) in items.iter().enumerate() {
                walk(value, format!("{path}.{index}"), flat)?;
            }
            Ok(())
        }
    }
}

/// Rebuilds the document from flat keys (in order); see the module docs.
pub fn unflatten(flat: &FlatDocument) -> Result<Document, FlattenError> {
    for (key, _) in &flat.types {
        if !flat.entries.iter().any(|(k, _)| k == key) {
            return Err(FlattenError::TypeWithoutValue { key: key.clone() });
        }
    }
    let mut root = Document::Map(Vec::new());
    for (key, value) in &flat.entries {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(FlattenError::InvalidKey {
                key: key.clone(),
                reason: format!("length {} is not 1 to 253", key.len()),
            });
        }
        let segments = key
            .split('.')
            .map(|s| parse_segment(s, key))
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(segments[0], Segment::Index(_)) {
            return Err(FlattenError::InvalidKey {
                key: key.clone(),
                reason: "the first segment is a list index, but the top of a document is a map"
                    .into(),
            });
        }
        let text = value
            .expose_str()
            .ok_or_else(|| FlattenError::NotText { key: key.clone() })?;
        let kind = flat
            .types
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, kind)| *kind);
        let leaf = typed_leaf(text, kind, key)?;
        insert(&mut root, &segments, leaf, key)?;
    }
    Ok(root)
}

fn typed_leaf(text: &str, kind: Option<ScalarKind>, key: &str) -> Result<Document, FlattenError> {
    let bad = |kind: ScalarKind| FlattenError::BadTypedValue {
        key: key.to_owned(),
        kind: kind.as_str(),
    };
    Ok(match kind {
        None => Document::string(text),
        Some(ScalarKind::Bool) => match text {
            "true" => Document::Bool(true),
            "false" => Document::Bool(false),
            _ => return Err(bad(ScalarKind::Bool)),
        },
        Some(ScalarKind::Int) => Document::Int(text.parse().map_err(|_| bad(ScalarKind::Int))?),
        Some(ScalarKind::Float) => {
            let f: f64 = text.parse().map_err(|_| bad(ScalarKind::Float))?;
            if go_float(f) != text {
                return Err(bad(ScalarKind::Float));
            }
            Document::Float(f)
        }
        Some(ScalarKind::Null) if text.is_empty() => Document::Null,
        Some(ScalarKind::Null) => return Err(bad(ScalarKind::Null)),
    })
}

fn insert(
    node: &mut Document,
    segments: &[Segment],
    leaf: Document,
    key: &str,
) -> Result<(), FlattenError> {
    let conflict = || FlattenError::Conflict {
        key: key.to_owned(),
        other: "an earlier key".to_owned(),
    };
    let Some((first, rest)) = segments.split_first() else {
        return Err(conflict());
    };
    let fresh = |rest: &[Segment]| match rest.first() {
        None => None,
        Some(Segment::Index(_)) => Some(Document::List(Vec::new())),
        Some(Segment::Key(_)) => Some(Document::Map(Vec::new())),
    };
    let child: &mut Document = match (first, node) {
        (Segment::Key(name), Document::Map(entries)) => {
            match entries.iter().position(|(k, _)| k == name) {
                Some(_) if rest.is_empty() => return Err(conflict()),
                Some(index) => &mut entries[index].1,
                None => match fresh(rest) {
                    None => {
                        entries.push((name.clone(), leaf));
                        return Ok(());
                    }
                    Some(container) => {
                        entries.push((name.clone(), container));
                        &mut entries.last_mut().expect("just pushed").1
                    }
                },
            }
        }
        (Segment::Index(index), Document::List(items)) => {
            if *index > items.len() {
                return Err(FlattenError::ListGap {
                    key: key.to_owned(),
                });
            }
            if *index == items.len() {
                match fresh(rest) {
                    None => {
                        items.push(leaf);
                        return Ok(());
                    }
                    Some(container) => items.push(container),
                }
            } else if rest.is_empty() {
                return Err(conflict());
            }
            &mut items[*index]
        }
        _ => return Err(conflict()),
    };
    if !matches!(child, Document::Map(_) | Document::List(_)) {
        return Err(conflict());
    }
    insert(child, rest, leaf, key)
}

/// The document with every non-string scalar written as the text dotenv stores.
pub(crate) fn stringify_scalars(document: &Document) -> Document {
    match document {
        Document::Bool(b) => Document::string(b.to_string()),
        Document::Int(i) => Document::string(i.to_string()),
        Document::Float(f) => Document::string(go_float(*f)),
        Document::List(items) => Document::List(items.iter().map(stringify_scalars).collect()),
        Document::Map(entries) => Document::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), stringify_scalars(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        let doc: Document = serde_json::from_str(
            r#"{"db": {"user": "u", "port": 5432}, "hosts": ["a", "b"], ".dockerconfigjson": "x", "my.key": "y", "8080": "z", "-x": "w", "": "e"}"#,
        )
        .unwrap();
        let flat = flatten(&doc).unwrap();
        let keys: Vec<&str> = flat.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "db.user",
                "db.port",
                "hosts.0",
                "hosts.1",
                "--2edockerconfigjson",
                "-my-2ekey",
                "-8080",
                "--2dx",
                "-"
            ]
        );
        assert_eq!(flat.types, vec![("db.port".to_owned(), ScalarKind::Int)]);
        assert_eq!(unflatten(&flat).unwrap(), doc);
    }

    #[test]
    fn refusals_name_the_path() {
        let doc: Document = serde_json::from_str(r#"{"a": {"b": []}}"#).unwrap();
        assert_eq!(
            flatten(&doc).unwrap_err().to_string(),
            "empty list at a.b has no flat key; remove it or put a value in it"
        );
        let flat = FlatDocument {
            entries: vec![("a.01".into(), SecretValue::from("x"))],
            types: vec![],
        };
        assert!(matches!(
            unflatten(&flat),
            Err(FlattenError::InvalidKey { .. })
        ));
    }
}
