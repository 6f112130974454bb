//! The SOPS tree as stored (values may be `ENC[...]`, comments kept) and the walks that decrypt
//! and encrypt it while computing the MAC, exactly as `sops.go` does.

use regex::Regex;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::document::Document;
use super::value::{EncryptedValue, ValueError, ValueType, is_sops_value};
use super::{DataKey, SopsErrorKind};

/// A node of a stored SOPS tree.
#[derive(Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Zeroizing<String>),
    List(Vec<Node>),
    Map(Vec<Entry>),
    /// A comment that sits in a list (map comments are [`Entry::Comment`]).
    Comment(Zeroizing<String>),
}

#[derive(Clone, PartialEq)]
pub(crate) enum Entry {
    Pair(String, Node),
    Comment(Zeroizing<String>),
}

impl Node {
    pub(crate) fn str(text: impl Into<String>) -> Self {
        Self::Str(Zeroizing::new(text.into()))
    }

    /// The plain document, without comments.
    pub(crate) fn to_document(&self) -> Document {
        match self {
            Self::Null | Self::Comment(_) => Document::Null,
            Self::Bool(b) => Document::Bool(*b),
            Self::Int(i) => Document::Int(*i),
            Self::Float(f) => Document::Float(*f),
            Self::Str(s) => Document::String(s.clone()),
            Self::List(items) => Document::List(
                items
                    .iter()
                    .filter(|n| !matches!(n, Self::Comment(_)))
                    .map(Self::to_document)
                    .collect(),
            ),
            Self::Map(entries) => Document::Map(
                entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Pair(k, v) => Some((k.clone(), v.to_document())),
                        Entry::Comment(_) => None,
                    })
                    .collect(),
            ),
        }
    }

    pub(crate) fn from_document(document: &Document) -> Self {
        match document {
            Document::Null => Self::Null,
            Document::Bool(b) => Self::Bool(*b),
            Document::Int(i) => Self::Int(*i),
            Document::Float(f) => Self::Float(*f),
            Document::String(s) => Self::Str(s.clone()),
            Document::List(items) => Self::List(items.iter().map(Self::from_document).collect()),
            Document::Map(entries) => Self::Map(
                entries
                    .iter()
                    .map(|(k, v)| Entry::Pair(k.clone(), Self::from_document(v)))
                    .collect(),
            ),
        }
    }

    /// Removes the top-level `key` entry of a map and returns its value.
    pub(crate) fn take_key(&mut self, key: &str) -> Option<Node> {
        let Self::Map(entries) = self else {
            return None;
        };
        let index = entries
            .iter()
            .position(|e| matches!(e, Entry::Pair(k, _) if k == key))?;
        match entries.remove(index) {
            Entry::Pair(_, value) => Some(value),
            Entry::Comment(_) => None,
        }
    }
}

/// Which values are encrypted: the one rule a SOPS file names (default `_unencrypted` suffix).
#[derive(Clone, Debug)]
pub(crate) enum CryptRule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl CryptRule {
    /// `shouldBeEncrypted` of sops.go for a key path.
    pub(crate) fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Self::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Self::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Self::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Self::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
        }
    }
}

/// Bytes SOPS's MAC hashes for a scalar (`ToBytes` in sops.go).
pub(crate) fn mac_bytes(node: &Node) -> Option<Zeroizing<Vec<u8>>> {
    let text = match node {
        Node::Str(s) => s.as_bytes().to_vec(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::Float(f) => go_float(*f).into_bytes(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        _ => return None,
    };
    Some(Zeroizing::new(text))
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, no exponent.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}

/// `MACOnlyEncryptedInitialization` of sops.go: sha256("sops").
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Walks a tree, decrypting or encrypting its values, and hashes them for the MAC.
pub(crate) struct Walker<'a> {
    pub(crate) rule: &'a CryptRule,
    pub(crate) key: &'a DataKey,
    pub(crate) mac_only_encrypted: bool,
    hasher: Sha512,
}

/// Where a value sits: `aad` is SOPS's key path, `display` also names list indices.
struct Path {
    keys: Vec<String>,
    display: String,
}

impl Path {
    fn aad(&self) -> String {
        let mut aad = self.keys.join(":");
        aad.push(':');
        aad
    }
}

impl<'a> Walker<'a> {
    pub(crate) fn new(rule: &'a CryptRule, key: &'a DataKey, mac_only_encrypted: bool) -> Self {
        let mut hasher = Sha512::new();
        if mac_only_encrypted {
            hasher.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Self {
            rule,
            key,
            mac_only_encrypted,
            hasher,
        }
    }

    /// The MAC of everything walked so far, as SOPS writes it (uppercase hex SHA-512).
    pub(crate) fn mac(self) -> String {
        hex::encode_upper(self.hasher.finalize())
    }

    /// Decrypts every value of one document (a top-level branch) in place.
    pub(crate) fn decrypt_document(&mut self, node: &mut Node) -> Result<(), SopsErrorKind> {
        let mut path = Path {
            keys: Vec::new(),
            display: String::new(),
        };
        self.walk(node, &mut path, Mode::Decrypt)
    }

    /// Encrypts every value of one document in place (plaintext in, `ENC[...]` out).
    pub(crate) fn encrypt_document(&mut self, node: &mut Node) -> Result<(), SopsErrorKind> {
        let mut path = Path {
            keys: Vec::new(),
            display: String::new(),
        };
        self.walk(node, &mut path, Mode::Encrypt)
    }

    fn walk(&mut self, node: &mut Node, path: &mut Path, mode: Mode) -> Result<(), SopsErrorKind> {
        match node {
            Node::Null => Ok(()),
            Node::Map(entries) => {
                for entry in entries.iter_mut() {
                    match entry {
                        Entry::Comment(text) => self.comment(text, path, mode)?,
                        Entry::Pair(key, value) => {
                            let display_len = path.display.len();
                            if !path.display.is_empty() {
                                path.display.push('.');
                            }
                            path.display.push_str(key);
                            path.keys.push(key.clone());
                            let result = self.walk(value, path, mode);
                            path.keys.pop();
                            path.display.truncate(display_len);
                            result?;
                        }
                    }
                }
                Ok(())
            }
            Node::List(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    if let Node::Comment(text) = item {
                        self.comment(text, path, mode)?;
                        continue;
                    }
                    let display_len = path.display.len();
                    path.display.push_str(&format!("[{index}]"));
                    let result = self.walk(item, path, mode);
                    path.display.truncate(display_len);
                    result?;
                }
                Ok(())
            }
            Node::Comment(text) => self.comment(text, path, mode),
            scalar => self.leaf(scalar, path, mode),
        }
    }

    fn leaf(&mut self, node: &mut Node, path: &Path, mode: Mode) -> Result<(), SopsErrorKind> {
        let encrypted = self.rule.encrypts(&path.keys);
        match mode {
            Mode::Decrypt if encrypted => {
                let plain = match node {
                    Node::Str(text) if text.is_empty() => Node::str(""),
                    Node::Str(text) => self.decrypt_value(text, path)?,
                    other => {
                        return Err(SopsErrorKind::NotEncrypted {
                            path: path.display.clone(),
                            found: other.kind_name(),
                        });
                    }
                };
                *node = plain;
                self.hash(node);
            }
            Mode::Decrypt => {
                if !self.mac_only_encrypted {
                    self.hash(node);
                }
            }
            Mode::Encrypt => {
                if !self.mac_only_encrypted || encrypted {
                    self.hash(node);
                }
                if encrypted {
                    let Some(plaintext) = mac_bytes(node) else {
                        return Ok(());
                    };
                    if plaintext.is_empty() && matches!(node, Node::Str(_)) {
                        // SOPS leaves empty strings in clear.
                        return Ok(());
                    }
                    let value_type = match node {
                        Node::Str(_) => ValueType::Str,
                        Node::Int(_) => ValueType::Int,
                        Node::Float(_) => ValueType::Float,
                        _ => ValueType::Bool,
                    };
                    let sealed =
                        EncryptedValue::encrypt(&plaintext, value_type, self.key, &path.aad());
                    *node = Node::str(sealed.format());
                }
            }
        }
        Ok(())
    }

    fn hash(&mut self, node: &Node) {
        if let Some(bytes) = mac_bytes(node) {
            self.hasher.update(&*bytes);
        }
    }

    fn decrypt_value(&self, text: &str, path: &Path) -> Result<Node, SopsErrorKind> {
        let fail = |source: ValueError| SopsErrorKind::Value {
            path: path.display.clone(),
            source,
        };
        let value = EncryptedValue::parse(text).map_err(fail)?;
        let plaintext = value.decrypt(self.key, &path.aad()).map_err(fail)?;
        let text = || {
            std::str::from_utf8(&plaintext)
                .map_err(|_| fail(ValueError::BadPlaintext(value.value_type.as_str())))
        };
        let bad = |t: ValueType| fail(ValueError::BadPlaintext(t.as_str()));
        Ok(match value.value_type {
            ValueType::Str | ValueType::Bytes | ValueType::Comment => Node::str(text()?),
            ValueType::Int => Node::Int(text()?.parse().map_err(|_| bad(ValueType::Int))?),
            ValueType::Float => {
                Node::Float(parse_go_float(text()?).ok_or_else(|| bad(ValueType::Float))?)
            }
            ValueType::Bool => {
                Node::Bool(parse_go_bool(text()?).ok_or_else(|| bad(ValueType::Bool))?)
            }
        })
    }

    /// Comments are not in the MAC. A comment that is a well-formed SOPS value must decrypt
    /// (SOPS would silently keep a tampered one as text; we refuse it). Any other comment is
    /// kept as written, as SOPS does for comments written before it encrypted comments.
    fn comment(
        &mut self,
        text: &mut Zeroizing<String>,
        path: &Path,
        mode: Mode,
    ) -> Result<(), SopsErrorKind> {
        if !self.rule.encrypts(&path.keys) {
            return Ok(());
        }
        match mode {
            Mode::Decrypt => {
                if !is_sops_value(text) {
                    return Ok(());
                }
                let Ok(value) = EncryptedValue::parse(text) else {
                    return Ok(());
                };
                let plaintext = value.decrypt(self.key, &path.aad()).map_err(|source| {
                    SopsErrorKind::Value {
                        path: format!(
                            "{} (comment)",
                            if path.display.is_empty() {
                                "top level"
                            } else {
                                &path.display
                            }
                        ),
                        source,
                    }
                })?;
                *text = Zeroizing::new(String::from_utf8_lossy(&plaintext).into_owned());
            }
            Mode::Encrypt => {
                if !text.is_empty() {
                    let sealed = EncryptedValue::encrypt(
                        text.as_bytes(),
                        ValueType::Comment,
                        self.key,
                        &path.aad(),
                    );
                    *text = Zeroizing::new(sealed.format());
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Decrypt,
    Encrypt,
}

impl Node {
    fn kind_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Str(_) => "a string",
            Self::List(_) => "a list",
            Self::Map(_) => "a map",
            Self::Comment(_) => "a comment",
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseFloat` for the forms SOPS writes (decimal, exponent, Inf, NaN).
fn parse_go_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ if text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E')) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_matches_strconv_f_minus_one() {
        assert_eq!(go_float(1234568000.0), "1234568000");
        assert_eq!(go_float(25.4), "25.4");
        assert_eq!(go_float(1e-7), "0.0000001");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn rules_follow_sops() {
        let path = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let rule = CryptRule::UnencryptedSuffix("_unencrypted".into());
        assert!(rule.encrypts(&path(&["a", "b"])));
        assert!(!rule.encrypts(&path(&["a_unencrypted", "b"])));
        let rule = CryptRule::EncryptedRegex(Regex::new("^(data|stringData)$").unwrap());
        assert!(rule.encrypts(&path(&["stringData", "key"])));
        assert!(!rule.encrypts(&path(&["metadata", "name"])));
        assert!(!rule.encrypts(&path(&["kind"])));
    }
}
