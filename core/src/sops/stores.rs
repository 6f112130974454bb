//! Reading and writing the SOPS file formats ("stores"): YAML, JSON (and the binary store,
//! which is JSON with one `data` key), dotenv and INI. Each reader returns the stored
//! branches (one per YAML document) and the `sops` metadata node, exactly as SOPS's
//! `stores/*` do.

use std::collections::HashMap;
use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::SopsErrorKind;
use super::metadata::{flatten_keys, unflatten_keys};
use super::tree::{Entry, Node, go_float};

/// A parsed file: its documents (metadata removed) and the metadata node.
pub(crate) struct Stored {
    pub(crate) branches: Vec<Node>,
    pub(crate) metadata: Option<Node>,
}

fn parse_error(what: &str, detail: impl fmt::Display) -> SopsErrorKind {
    SopsErrorKind::Parse(format!("{what}: {detail}"))
}

// ---------- JSON (and binary) ----------

pub(crate) fn read_json(text: &str) -> Result<Stored, SopsErrorKind> {
    let mut root: Node = serde_json::from_str(text).map_err(|e| parse_error("invalid JSON", e))?;
    if !matches!(root, Node::Map(_)) {
        return Err(SopsErrorKind::Parse(
            "a SOPS JSON file must hold an object at the top".into(),
        ));
    }
    let metadata = root.take_key("sops");
    Ok(Stored {
        branches: vec![root],
        metadata,
    })
}

pub(crate) fn write_json(branch: &Node, metadata: &Node) -> String {
    let mut root = branch.clone();
    if let Node::Map(entries) = &mut root {
        entries.push(Entry::Pair("sops".into(), metadata.clone()));
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    root.serialize(&mut serializer)
        .expect("serialising to memory cannot fail");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null | Node::Comment(_) => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Int(i) => serializer.serialize_i64(*i),
            Node::Float(f) => serializer.serialize_f64(*f),
            Node::Str(s) => serializer.serialize_str(s),
            Node::List(items) => {
                let items: Vec<&Node> = items
                    .iter()
                    .filter(|n| !matches!(n, Node::Comment(_)))
                    .collect();
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = serializer.serialize_map(None)?;
                for entry in entries {
                    if let Entry::Pair(k, v) = entry {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v)
            .map(Node::Int)
            .unwrap_or(Node::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::str(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push(Entry::Pair(key, value));
        }
        Ok(Node::Map(entries))
    }
}

// ---------- YAML ----------

enum Frame {
    Map {
        entries: Vec<Entry>,
        pending_key: Option<String>,
        anchor: usize,
    },
    List {
        items: Vec<Node>,
        anchor: usize,
    },
}

/// YAML 1.2 core-schema resolution of a plain scalar (what yaml.v3 gives SOPS).
fn resolve_plain(text: &str) -> Node {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "true" | "True" | "TRUE" => return Node::Bool(true),
        "false" | "False" | "FALSE" => return Node::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Node::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Node::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Node::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Node::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Node::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Node::Int(i);
    }
    if is_yaml_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Node::Float(f);
    }
    Node::str(text)
}

fn is_yaml_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && digits(int)
                && digits(frac)
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
}

pub(crate) fn read_yaml(text: &str) -> Result<Stored, SopsErrorKind> {
    let mut documents: Vec<Node> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut document: Option<Node> = None;
    let mut in_document = false;

    // Adds a finished node to the open collection, or makes it the document root.
    fn place(
        stack: &mut [Frame],
        document: &mut Option<Node>,
        node: Node,
        line: usize,
    ) -> Result<(), SopsErrorKind> {
        match stack.last_mut() {
            None => {
                *document = Some(node);
                Ok(())
            }
            Some(Frame::List { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => {
                match pending_key.take() {
                    Some(key) => entries.push(Entry::Pair(key, node)),
                    None => {
                        let key = match node {
                            Node::Str(s) => s.as_str().to_owned(),
                            Node::Int(i) => i.to_string(),
                            Node::Bool(b) => b.to_string(),
                            Node::Float(f) => go_float(f),
                            Node::Null => "null".to_owned(),
                            _ => {
                                return Err(parse_error(
                                    &format!("line {line}"),
                                    "complex mapping keys are not supported (SOPS supports only string keys)",
                                ));
                            }
                        };
                        *pending_key = Some(key);
                    }
                }
                Ok(())
            }
        }
    }

    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| parse_error("invalid YAML", e))?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                in_document = true;
                document = None;
            }
            Event::DocumentEnd => {
                if in_document {
                    documents.push(document.take().unwrap_or(Node::Null));
                }
                in_document = false;
            }
            Event::Comment(comment, _) => {
                let comment = zeroize::Zeroizing::new(comment.into_owned());
                match stack.last_mut() {
                    Some(Frame::Map { entries, .. }) => entries.push(Entry::Comment(comment)),
                    Some(Frame::List { items, .. }) => items.push(Node::Comment(comment)),
                    // Comments outside the top-level map hold no secret path; SOPS puts
                    // them in the top-level branch, which is where they land here too.
                    None => {}
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema_tag("str"));
                let node = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&value)
                } else {
                    Node::str(value.into_owned())
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                place(&mut stack, &mut document, node, line)?;
            }
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().ok_or_else(|| {
                    parse_error(&format!("line {line}"), "alias to an unknown anchor")
                })?;
                place(&mut stack, &mut document, node, line)?;
            }
            Event::SequenceStart(_, anchor, _) => stack.push(Frame::List {
                items: Vec::new(),
                anchor,
            }),
            Event::MappingStart(_, anchor, _) => stack.push(Frame::Map {
                entries: Vec::new(),
                pending_key: None,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match stack.pop() {
                    Some(Frame::List { items, anchor }) => (Node::List(items), anchor),
                    Some(Frame::Map {
                        entries, anchor, ..
                    }) => (Node::Map(entries), anchor),
                    None => {
                        return Err(parse_error(
                            &format!("line {line}"),
                            "unbalanced YAML events",
                        ));
                    }
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                place(&mut stack, &mut document, node, line)?;
            }
            _ => {}
        }
    }
    let mut metadata = None;
    let mut branches = Vec::with_capacity(documents.len());
    for mut document in documents {
        match document {
            Node::Map(_) => {}
            // An empty document (`---` alone) is an empty branch, as in SOPS.
            Node::Null => document = Node::Map(Vec::new()),
            _ => {
                return Err(SopsErrorKind::Parse(
                    "YAML documents that are not maps are not supported (SOPS refuses them too)"
                        .into(),
                ));
            }
        }
        let found = document.take_key("sops");
        if metadata.is_none() {
            metadata = found;
        }
        branches.push(document);
    }
    Ok(Stored { branches, metadata })
}

/// Writes the branches as YAML documents, each followed by the `sops` metadata (as SOPS does).
pub(crate) fn write_yaml(branches: &[Node], metadata: &Node) -> String {
    let mut out = String::new();
    for (index, branch) in branches.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        let mut root = branch.clone();
        if let Node::Map(entries) = &mut root {
            entries.push(Entry::Pair("sops".into(), metadata.clone()));
        }
        match &root {
            Node::Map(entries) if !entries.is_empty() => emit_map(entries, 0, &mut out),
            _ => out.push_str("{}\n"),
        }
    }
    out
}

fn yaml_key(key: &str) -> String {
    let plain = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        key.to_owned()
    } else {
        serde_json::to_string(key).expect("a string serialises")
    }
}

/// A scalar on one line, or `None` when the value needs a block of its own.
fn yaml_scalar(node: &Node) -> Option<String> {
    Some(match node {
        Node::Null | Node::Comment(_) => "null".to_owned(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) if f.is_nan() => ".nan".to_owned(),
        Node::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.to_owned(),
        Node::Float(f) => format!("{f:?}"),
        Node::Str(s) if super::value::is_sops_value(s) && !s.contains([' ', '#', '\n']) => {
            s.as_str().to_owned()
        }
        Node::Str(s) if is_literal_block(s) => return None,
        Node::Str(s) => serde_json::to_string(s.as_str()).expect("a string serialises"),
        Node::List(items) if items.is_empty() => "[]".to_owned(),
        Node::Map(entries) if entries.is_empty() => "{}".to_owned(),
        Node::List(_) | Node::Map(_) => return None,
    })
}

/// Strings that a `|` block keeps byte for byte: one trailing newline, printable lines
/// without leading or trailing blanks.
fn is_literal_block(text: &str) -> bool {
    let Some(body) = text.strip_suffix('\n') else {
        return false;
    };
    !body.is_empty()
        && !body.ends_with('\n')
        && body.lines().all(|l| {
            !l.is_empty()
                && !l.starts_with([' ', '\t'])
                && !l.ends_with([' ', '\t', '\r'])
                && l.chars().all(|c| !c.is_control())
        })
}

fn emit_value(node: &Node, indent: usize, out: &mut String) {
    match (yaml_scalar(node), node) {
        (Some(scalar), _) => {
            out.push(' ');
            out.push_str(&scalar);
            out.push('\n');
        }
        (None, Node::Str(s)) => {
            out.push_str(" |\n");
            for line in s.lines() {
                out.push_str(&" ".repeat(indent + 2));
                out.push_str(line);
                out.push('\n');
            }
        }
        (None, Node::Map(entries)) => {
            out.push('\n');
            emit_map(entries, indent + 2, out);
        }
        (None, Node::List(items)) => {
            out.push('\n');
            emit_list(items, indent + 2, out);
        }
        (None, _) => unreachable!("only strings, maps and lists need blocks"),
    }
}

fn emit_map(entries: &[Entry], indent: usize, out: &mut String) {
    for entry in entries {
        if let Entry::Pair(key, value) = entry {
            out.push_str(&" ".repeat(indent));
            out.push_str(&yaml_key(key));
            out.push(':');
            emit_value(value, indent, out);
        }
    }
}

fn emit_list(items: &[Node], indent: usize, out: &mut String) {
    for item in items.iter().filter(|n| !matches!(n, Node::Comment(_))) {
        // Render the item as if it were two columns deeper, then turn its first indent into `- `.
        let mut block = String::new();
        match item {
            Node::Map(entries) if !entries.is_empty() => emit_map(entries, indent + 2, &mut block),
            Node::List(inner) if !inner.is_empty() => emit_list(inner, indent + 2, &mut block),
            scalar => {
                block.push_str(&" ".repeat(indent + 2));
                block.push('-');
                emit_value(scalar, indent + 2, &mut block);
                // `-` plus the value: strip the marker we just added; the outer `- ` replaces it.
                block = block.replacen(
                    &format!("{}-", " ".repeat(indent + 2)),
                    &" ".repeat(indent + 1),
                    1,
                );
            }
        }
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        out.push_str(&block[indent + 2..]);
    }
}

// ---------- dotenv ----------

pub(crate) fn read_dotenv(text: &str) -> Result<Stored, SopsErrorKind> {
    let mut entries = Vec::new();
    let mut flat_metadata = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            entries.push(Entry::Comment(zeroize::Zeroizing::new(comment.to_owned())));
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            parse_error(
                &format!("line {}", index + 1),
                "not KEY=VALUE, a #comment or empty",
            )
        })?;
        if let Some(meta_key) = key.strip_prefix("sops_") {
            flat_metadata.push((meta_key.to_owned(), value.to_owned()));
        } else {
            entries.push(Entry::Pair(
                key.to_owned(),
                Node::str(value.replace("\\n", "\n")),
            ));
        }
    }
    let metadata = (!flat_metadata.is_empty()).then(|| unflatten_keys(&flat_metadata));
    Ok(Stored {
        branches: vec![Node::Map(entries)],
        metadata,
    })
}

pub(crate) fn write_dotenv(branch: &Node, metadata: &Node) -> Result<String, SopsErrorKind> {
    let mut out = String::new();
    let Node::Map(entries) = branch else {
        return Err(SopsErrorKind::Unrepresentable(
            "a dotenv file holds a flat map".into(),
        ));
    };
    for entry in entries {
        if let Entry::Pair(key, value) = entry {
            if key.is_empty()
                || key.contains(['=', '\n'])
                || key.starts_with('#')
                || key.starts_with("sops_")
            {
                return Err(SopsErrorKind::Unrepresentable(format!(
                    "dotenv key {key:?} (dotenv keys must be non-empty, without = or newline, not start with # or sops_)"
                )));
            }
            let text = match value {
                Node::Str(s) => s.as_str().to_owned(),
                Node::Int(i) => i.to_string(),
                Node::Float(f) => go_float(*f),
                Node::Bool(b) => b.to_string(),
                _ => {
                    return Err(SopsErrorKind::Unrepresentable(format!(
                        "dotenv value of {key:?} is a list, map or null; dotenv holds only strings"
                    )));
                }
            };
            out.push_str(key);
            out.push('=');
            out.push_str(&text.replace('\n', "\\n"));
            out.push('\n');
        }
    }
    for (key, value) in flatten_keys(metadata) {
        out.push_str("sops_");
        out.push_str(&key);
        out.push('=');
        out.push_str(&value);
        out.push('\n');
    }
    Ok(out)
}

// ---------- INI ----------

/// go-ini's reading of a value: trimmed, inline `#`/`;` comments cut, one pair of surrounding
/// quotes removed, backtick and `"""` quoting honoured on one line.
fn ini_value(raw: &str) -> String {
    let line = raw.trim_start();
    for quote in ["\"\"\"", "`"] {
        if let Some(rest) = line.strip_prefix(quote)
            && let Some(end) = rest.rfind(quote)
        {
            return rest[..end].to_owned();
        }
    }
    let mut line = line.trim();
    if let Some(cut) = line.find(['#', ';']) {
        line = line[..cut].trim();
    }
    let quoted = |q: char| line.len() >= 2 && line.starts_with(q) && line.ends_with(q);
    if quoted('"') || quoted('\'') {
        line = &line[1..line.len() - 1];
    }
    line.to_owned()
}

pub(crate) fn read_ini(text: &str) -> Result<Stored, SopsErrorKind> {
    // Sections in order; DEFAULT holds keys before the first header, as in go-ini.
    let mut sections: Vec<(String, Vec<Entry>)> = vec![("DEFAULT".into(), Vec::new())];
    let mut pending_comments: Vec<String> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix([';', '#']) {
            let _ = comment;
            pending_comments.push(line.to_owned());
            continue;
        }
        // A comment before a section or key belongs to it (go-ini), and SOPS lists a section's
        // comment first and a key's comment right after the key.
        let strip = |c: &str| c.trim_start_matches([';', '#', ' ']).to_owned();
        if let Some(header) = line.strip_prefix('[') {
            let name = header
                .split_once(']')
                .map(|(name, _)| name.trim().to_owned())
                .ok_or_else(|| parse_error(&format!("line {}", index + 1), "unclosed [section]"))?;
            let mut entries = Vec::new();
            if !pending_comments.is_empty() {
                entries.push(Entry::Comment(zeroize::Zeroizing::new(strip(
                    &pending_comments.join("\n"),
                ))));
                pending_comments.clear();
            }
            match sections.iter_mut().find(|(n, _)| *n == name) {
                Some((_, existing)) => existing.extend(entries),
                None => sections.push((name, entries)),
            }
            continue;
        }
        let split = line
            .find(['=', ':'])
            .ok_or_else(|| parse_error(&format!("line {}", index + 1), "not key = value"))?;
        let key = line[..split].trim().trim_matches(['`', '"']).to_owned();
        let value = ini_value(&line[split + 1..]);
        let (_, entries) = sections.last_mut().expect("DEFAULT always exists");
        if let Some(existing) = entries.iter_mut().find_map(|e| match e {
            Entry::Pair(k, v) if *k == key => Some(v),
            _ => None,
        }) {
            *existing = Node::str(value);
        } else {
            entries.push(Entry::Pair(key, Node::str(value)));
        }
        if !pending_comments.is_empty() {
            entries.push(Entry::Comment(zeroize::Zeroizing::new(strip(
                &pending_comments.join("\n"),
            ))));
            pending_comments.clear();
        }
    }
    let mut metadata = None;
    let mut branch = Vec::new();
    for (name, entries) in sections {
        if name == "sops" {
            let flat: Vec<(String, String)> = entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Pair(k, Node::Str(v)) => Some((k, v.as_str().to_owned())),
                    _ => None,
                })
                .collect();
            metadata = Some(unflatten_keys(&flat));
        } else if name == "DEFAULT" && entries.is_empty() {
            // go-ini always has a DEFAULT section; an empty one holds nothing.
        } else {
            branch.push(Entry::Pair(name, Node::Map(entries)));
        }
    }
    Ok(Stored {
        branches: vec![Node::Map(branch)],
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_yaml_core_schema() {
        assert!(matches!(resolve_plain("12"), Node::Int(12)));
        assert!(matches!(resolve_plain("1.5"), Node::Float(f) if f == 1.5));
        assert!(matches!(resolve_plain("1e3"), Node::Float(f) if f == 1000.0));
        assert!(matches!(resolve_plain("true"), Node::Bool(true)));
        assert!(matches!(resolve_plain("~"), Node::Null));
        assert!(matches!(resolve_plain("1.2.3"), Node::Str(_)));
        assert!(matches!(resolve_plain("."), Node::Str(_)));
        assert!(matches!(resolve_plain("v1"), Node::Str(_)));
    }

    #[test]
    fn ini_values_follow_go_ini() {
        assert_eq!(ini_value(" hi there! "), "hi there!");
        assert_eq!(ini_value(" a ; comment"), "a");
        assert_eq!(ini_value(" \"quoted\" "), "quoted");
        assert_eq!(ini_value(" `a;b` "), "a;b");
    }
}
