//! The decrypted (or to-be-encrypted) document: an ordered tree of secret scalars.
//!
//! Map key order is kept as in the file. `Debug` shows the shape and keys but prints every
//! scalar as `[redacted]`; `Serialize` writes the real values (for `reveal -o json`), in order.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use zeroize::Zeroizing;

/// One node of a document. Strings are zeroed on drop.
#[derive(Clone, PartialEq)]
pub enum Document {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Zeroizing<String>),
    List(Vec<Document>),
    /// Entries in file order. Keys are not secret (SOPS stores them in clear).
    Map(Vec<(String, Document)>),
}

impl Document {
    /// A string node.
    pub fn string(text: impl Into<String>) -> Self {
        Self::String(Zeroizing::new(text.into()))
    }

    /// The value at `key` of a map node.
    pub fn get(&self, key: &str) -> Option<&Document> {
        match self {
            Self::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string node. Callers must not log it.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    /// The same tree as a `serde_json::Value`. Map key order is lost unless serde_json's
    /// `preserve_order` feature is on; use `serde_json::to_string(&document)` to keep it.
    pub fn to_json_value(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => (*b).into(),
            Self::Int(i) => (*i).into(),
            Self::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Self::String(s) => serde_json::Value::String(s.as_str().to_owned()),
            Self::List(items) => items.iter().map(Self::to_json_value).collect(),
            Self::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json_value()))
                    .collect(),
            ),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Float(_) => "float",
            Self::String(_) => "string",
            Self::List(_) => "list",
            Self::Map(_) => "map",
        }
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::List(items) => f.debug_list().entries(items).finish(),
            Self::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (k, v)))
                .finish(),
            other => write!(f, "{}([redacted])", other.kind()),
        }
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Int(i) => serializer.serialize_i64(*i),
            Self::Float(x) => serializer.serialize_f64(*x),
            Self::String(s) => serializer.serialize_str(s),
            Self::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }
    fn visit_unit<E>(self) -> Result<Document, E> {
        Ok(Document::Null)
    }
    fn visit_none<E>(self) -> Result<Document, E> {
        Ok(Document::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Document, E> {
        Ok(Document::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Document, E> {
        Ok(Document::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Document, E> {
        i64::try_from(v)
            .map(Document::Int)
            .map_err(|_| E::custom("integer larger than i64"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Document, E> {
        Ok(Document::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Document, E> {
        Ok(Document::string(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Document, E> {
        Ok(Document::string(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Document::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut entries: Vec<(String, Document)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Document>()? {
            entries.push((key, value));
        }
        Ok(Document::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_scalars_and_json_keeps_order() {
        let doc: Document =
            serde_json::from_str(r#"{"z": "hunter2", "a": [1, true, 2.5, null]}"#).unwrap();
        let debug = format!("{doc:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("\"z\""));
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"z":"hunter2","a":[1,true,2.5,null]}"#
        );
    }
}
