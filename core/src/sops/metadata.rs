//! The `sops` metadata block: age recipients with the wrapped data key, the MAC, the
//! encryption rule. YAML and JSON hold it as a map; INI and dotenv as flat keys
//! (`age__list_0__map_enc`), which [`unflatten_keys`] turns back into the same map.

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use regex::Regex;
use zeroize::Zeroizing;

use super::tree::{CryptRule, Entry, Node};
use super::{DataKey, SopsErrorKind};
use crate::keys::{AgeIdentities, Recipient};

/// The SOPS format version sealops writes (and whose metadata layout it follows).
pub const WRITTEN_VERSION: &str = "3.10.2";

/// One `sops.age[]` entry.
#[derive(Clone, Debug)]
pub(crate) struct AgeEntry {
    pub(crate) recipient: String,
    pub(crate) enc: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Metadata {
    pub(crate) age: Vec<AgeEntry>,
    pub(crate) last_modified: String,
    pub(crate) mac: Option<String>,
    pub(crate) rule: CryptRule,
    pub(crate) mac_only_encrypted: bool,
    pub(crate) version: String,
}

fn text_of(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.as_str().to_owned()),
        Node::Int(i) => Some(i.to_string()),
        Node::Float(f) => Some(super::tree::go_float(*f)),
        Node::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Node> {
    entries.iter().find_map(|e| match e {
        Entry::Pair(k, v) if k == name => Some(v),
        _ => None,
    })
}

fn nonempty_text(entries: &[Entry], name: &str) -> Option<String> {
    field(entries, name)
        .and_then(text_of)
        .filter(|t| !t.is_empty())
}

fn age_entries(list: Option<&Node>) -> Vec<AgeEntry> {
    let Some(Node::List(items)) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Node::Map(entries) => Some(AgeEntry {
                recipient: nonempty_text(entries, "recipient").unwrap_or_default(),
                enc: nonempty_text(entries, "enc")?,
            }),
            _ => None,
        })
        .collect()
}

impl Metadata {
    /// Reads the metadata map; refuses what sealops cannot honour rather than misreading it.
    pub(crate) fn from_node(node: &Node) -> Result<Self, SopsErrorKind> {
        let Node::Map(entries) = node else {
            return Err(SopsErrorKind::Metadata("the sops key is not a map".into()));
        };
        let mut age = age_entries(field(entries, "age"));
        if let Some(Node::List(groups)) = field(entries, "key_groups") {
            if groups.len() > 1 {
                return Err(SopsErrorKind::Metadata(format!(
                    "the file splits its data key over {} key groups (Shamir); sealops opens only single-group files — run `sops updatekeys` with one key group first",
                    groups.len()
                )));
            }
            for group in groups {
                if let Node::Map(group) = group {
                    age.extend(age_entries(field(group, "age")));
                }
            }
        }
        for unsupported in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
            if nonempty_text(entries, unsupported).is_some() {
                return Err(SopsErrorKind::Metadata(format!(
                    "{unsupported} is not supported by sealops; decrypt with sops and re-encrypt without it"
                )));
            }
        }
        let regex = |name: &str, text: String| {
            Regex::new(&text).map_err(|e| {
                SopsErrorKind::Metadata(format!(
                    "{name} {text:?} is not a valid regular expression: {e}"
                ))
            })
        };
        let mut rules = Vec::new();
        if let Some(s) = nonempty_text(entries, "unencrypted_suffix") {
            rules.push(CryptRule::UnencryptedSuffix(s));
        }
        if let Some(s) = nonempty_text(entries, "encrypted_suffix") {
            rules.push(CryptRule::EncryptedSuffix(s));
        }
        if let Some(s) = nonempty_text(entries, "unencrypted_regex") {
            rules.push(CryptRule::UnencryptedRegex(regex("unencrypted_regex", s)?));
        }
        if let Some(s) = nonempty_text(entries, "encrypted_regex") {
            rules.push(CryptRule::EncryptedRegex(regex("encrypted_regex", s)?));
        }
        if rules.len() > 1 {
            return Err(SopsErrorKind::Metadata(
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex is set (SOPS refuses this too)".into(),
            ));
        }
        let rule = rules
            .pop()
            .unwrap_or_else(|| CryptRule::UnencryptedSuffix("_unencrypted".into()));
        let mac_only_encrypted = match field(entries, "mac_only_encrypted") {
            Some(Node::Bool(b)) => *b,
            Some(Node::Str(s)) => s.as_str() == "true",
            _ => false,
        };
        Ok(Self {
            age,
            last_modified: nonempty_text(entries, "lastmodified")
                .ok_or_else(|| SopsErrorKind::Metadata("sops.lastmodified is missing".into()))?,
            mac: nonempty_text(entries, "mac"),
            rule,
            mac_only_encrypted,
            version: nonempty_text(entries, "version").unwrap_or_default(),
        })
    }

    /// Unwraps the data key with the first age entry one of `identities` opens.
    pub(crate) fn data_key(&self, identities: &AgeIdentities) -> Result<DataKey, SopsErrorKind> {
        if self.age.is_empty() {
            return Err(SopsErrorKind::NoAgeRecipients);
        }
        let age_identities: Vec<&dyn age::Identity> = identities
            .iter()
            .map(|i| i.age() as &dyn age::Identity)
            .collect();
        let mut failures = Vec::new();
        for entry in &self.age {
            match unwrap_entry(&entry.enc, &age_identities) {
                Ok(key) => return Ok(key),
                Err(reason) => failures.push(format!("{}: {reason}", entry.recipient)),
            }
        }
        Err(SopsErrorKind::DataKey {
            tried: identities.describe(),
            failures: failures.join("; "),
        })
    }

    /// The metadata map as SOPS 3.10 writes it for an age-only file.
    pub(crate) fn to_node(&self) -> Node {
        let mut entries = vec![Entry::Pair(
            "age".into(),
            Node::List(
                self.age
                    .iter()
                    .map(|a| {
                        Node::Map(vec![
                            Entry::Pair("recipient".into(), Node::str(a.recipient.clone())),
                            Entry::Pair("enc".into(), Node::str(a.enc.clone())),
                        ])
                    })
                    .collect(),
            ),
        )];
        entries.push(Entry::Pair(
            "lastmodified".into(),
            Node::str(self.last_modified.clone()),
        ));
        entries.push(Entry::Pair(
            "mac".into(),
            Node::str(self.mac.clone().unwrap_or_default()),
        ));
        let (name, text) = match &self.rule {
            CryptRule::UnencryptedSuffix(s) => ("unencrypted_suffix", s.clone()),
            CryptRule::EncryptedSuffix(s) => ("encrypted_suffix", s.clone()),
            CryptRule::UnencryptedRegex(r) => ("unencrypted_regex", r.as_str().to_owned()),
            CryptRule::EncryptedRegex(r) => ("encrypted_regex", r.as_str().to_owned()),
        };
        entries.push(Entry::Pair(name.into(), Node::str(text)));
        if self.mac_only_encrypted {
            entries.push(Entry::Pair("mac_only_encrypted".into(), Node::Bool(true)));
        }
        entries.push(Entry::Pair(
            "version".into(),
            Node::str(self.version.clone()),
        ));
        Node::Map(entries)
    }
}

fn unwrap_entry(armored: &str, identities: &[&dyn age::Identity]) -> Result<DataKey, String> {
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(armored.as_bytes()))
        .map_err(|e| format!("malformed age envelope ({e})"))?;
    let mut reader = decryptor
        .decrypt(identities.iter().copied())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => "no identity matches".to_owned(),
            other => format!("age envelope did not open ({other})"),
        })?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(32));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| format!("age payload was altered ({e})"))?;
    let bytes: [u8; 32] = plaintext.as_slice().try_into().map_err(|_| {
        format!(
            "the envelope holds {} bytes, not a 32-byte data key",
            plaintext.len()
        )
    })?;
    Ok(DataKey::from_bytes(bytes))
}

/// Wraps the data key to one recipient as an armored age file (one per `sops.age[]` entry).
pub(crate) fn wrap(key: &DataKey, recipient: &Recipient) -> String {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient.age() as &dyn age::Recipient))
            .expect("one recipient is enough to encrypt");
    let mut armored = Vec::with_capacity(512);
    let armor =
        ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor).expect("writing to memory");
    let mut writer = encryptor.wrap_output(armor).expect("writing to memory");
    writer.write_all(key.expose()).expect("writing to memory");
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .expect("writing to memory");
    let mut text = String::from_utf8(armored).expect("age armor is ASCII");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

const MAP_SEPARATOR: &str = "__map_";
const LIST_SEPARATOR: &str = "__list_";

/// Turns SOPS's flat metadata keys (`age__list_0__map_enc`) back into the metadata map.
/// Values have their `\n` escapes decoded, as `stores.DecodeNewLines` does.
pub(crate) fn unflatten_keys(flat: &[(String, String)]) -> Node {
    let mut root = Node::Map(Vec::new());
    for (key, value) in flat {
        let tokens = tokenize(key);
        insert(&mut root, &tokens, Node::str(value.replace("\\n", "\n")));
    }
    root
}

#[derive(Debug)]
enum Token {
    Key(String),
    Index(usize),
}

fn tokenize(path: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = path;
    let mut current_is_index = false;
    loop {
        let next_map = rest.find(MAP_SEPARATOR);
        let next_list = rest.find(LIST_SEPARATOR);
        let (end, sep_len, next_is_index) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, LIST_SEPARATOR.len(), true),
            (Some(m), _) => (m, MAP_SEPARATOR.len(), false),
            (None, Some(l)) => (l, LIST_SEPARATOR.len(), true),
            (None, None) => (rest.len(), 0, false),
        };
        let text = &rest[..end];
        tokens.push(if current_is_index {
            Token::Index(text.parse().unwrap_or(0))
        } else {
            Token::Key(text.to_owned())
        });
        if sep_len == 0 {
            return tokens;
        }
        rest = &rest[end + sep_len..];
        current_is_index = next_is_index;
    }
}

fn insert(node: &mut Node, tokens: &[Token], value: Node) {
    let Some((first, rest)) = tokens.split_first() else {
        *node = value;
        return;
    };
    let empty_child = || match rest.first() {
        Some(Token::Index(_)) => Node::List(Vec::new()),
        _ => Node::Map(Vec::new()),
    };
    match first {
        Token::Key(key) => {
            if !matches!(node, Node::Map(_)) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(entries) = node else {
                unreachable!()
            };
            let index = match entries
                .iter()
                .position(|e| matches!(e, Entry::Pair(k, _) if k == key))
            {
                Some(i) => i,
                None => {
                    entries.push(Entry::Pair(key.clone(), empty_child()));
                    entries.len() - 1
                }
            };
            if let Entry::Pair(_, child) = &mut entries[index] {
                insert(child, rest, value);
            }
        }
        Token::Index(position) => {
            if !matches!(node, Node::List(_)) {
                *node = Node::List(Vec::new());
            }
            let Node::List(items) = node else {
                unreachable!()
            };
            // Metadata lists are short; refuse absurd indices instead of allocating them.
            let position = (*position).min(1024);
            while items.len() <= position {
                items.push(empty_child());
            }
            insert(&mut items[position], rest, value);
        }
    }
}

/// The metadata map as SOPS's flat keys, sorted as the dotenv store writes them, with newlines
/// escaped as `\n`.
pub(crate) fn flatten_keys(node: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into(node, String::new(), &mut out);
    out.sort();
    out
}

fn flatten_into(node: &Node, prefix: String, out: &mut Vec<(String, String)>) {
    match node {
        Node::Map(entries) => {
            for entry in entries {
                if let Entry::Pair(key, value) = entry {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}{MAP_SEPARATOR}{key}")
                    };
                    flatten_into(value, name, out);
                }
            }
        }
        Node::List(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten_into(item, format!("{prefix}{LIST_SEPARATOR}{index}"), out);
            }
        }
        Node::Null | Node::Comment(_) => {}
        scalar => {
            if let Some(text) = text_of(scalar) {
                out.push((prefix, text.replace('\n', "\\n")));
            }
        }
    }
}
