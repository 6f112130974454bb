//! Reading policy text (HCL or Vault's JSON form) into items with line numbers.
//!
//! This layer knows syntax only; [`super::parse`] gives the items their meaning. Values are
//! held as `serde_json::Value`, which compares the way Vault's `reflect.DeepEqual` does for
//! the literal types a policy can hold (integers and floats differ, maps ignore order).

use hcl::edit::{Decorate, Span};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// One problem in a policy file, at a line where known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// An attribute (`key = value`, or a nested block read as an object).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceAttr {
    pub key: String,
    pub line: usize,
    pub value: Value,
    /// Comment lines written just above it (kept by `policy fmt`).
    pub comments: Vec<String>,
}

/// A top-level item of a policy file.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceItem {
    /// `name = "…"` (or any other attribute, which the policy layer reports).
    Attr(SourceAttr),
    /// `path "PATTERN" { … }`.
    Path {
        pattern: String,
        line: usize,
        attrs: Vec<SourceAttr>,
        comments: Vec<String>,
    },
    /// A block that is not `path "…"`; reported as an invalid key.
    OtherBlock { key: String, line: usize },
}

/// Where line numbers come from: byte offset → 1-based line.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(index, _)| index + 1));
        Self(starts)
    }

    fn line(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }
}

/// Reads HCL policy text.
pub fn read_hcl(text: &str) -> Result<Vec<SourceItem>, Vec<Problem>> {
    let body = match hcl::edit::parser::parse_body(text) {
        Ok(body) => body,
        Err(error) => {
            // Vault reads HCL1, which allows `name "label" { … }` blocks inside object values
            // (Vault's own docs write `control_group` that way); HCL2 does not. Retry with those
            // rewritten as objects; lines stay where they were.
            let rewritten = nested_blocks_as_objects(text);
            match rewritten.and_then(|text| hcl::edit::parser::parse_body(&text).ok()) {
                Some(body) => body,
                None => {
                    let location = error.location();
                    return Err(vec![Problem::new(
                        Some(location.line()),
                        format!(
                            "HCL syntax error at column {}: {}",
                            location.column(),
                            error.message()
                        ),
                    )]);
                }
            }
        }
    };
    let lines = Lines::new(text);
    let mut problems = Vec::new();
    let mut items = Vec::new();
    for structure in body.iter() {
        let line = lines.line(structure.span().map_or(0, |span| span.start));
        let comments = comments_of(structure.decor().prefix().map(|raw| &**raw));
        match structure {
            hcl::edit::structure::Structure::Attribute(attr) => {
                match expr_value(hcl::Expression::from(attr.value.clone())) {
                    Ok(value) => items.push(SourceItem::Attr(SourceAttr {
                        key: attr.key.as_str().to_owned(),
                        line,
                        value,
                        comments,
                    })),
                    Err(message) => problems.push(Problem::new(
                        Some(line),
                        format!("{}: {message}", attr.key.as_str()),
                    )),
                }
            }
            hcl::edit::structure::Structure::Block(block) => {
                let key = block.ident.as_str();
                let labels: Vec<String> = block.labels.iter().map(label_text).collect();
                if key != "path" {
                    items.push(SourceItem::OtherBlock {
                        key: key.to_owned(),
                        line,
                    });
                    continue;
                }
                let [pattern] = labels.as_slice() else {
                    problems.push(Problem::new(
                        Some(line),
                        format!(
                            "a path block takes exactly one pattern, as in path \"secrets/*\" {{ … }}; found {} labels",
                            labels.len()
                        ),
                    ));
                    continue;
                };
                let mut attrs = Vec::new();
                for inner in block.body.iter() {
                    let inner_line = lines.line(inner.span().map_or(0, |span| span.start));
                    let inner_comments = comments_of(inner.decor().prefix().map(|raw| &**raw));
                    let (key, value) = match inner {
                        hcl::edit::structure::Structure::Attribute(attr) => (
                            attr.key.as_str().to_owned(),
                            expr_value(hcl::Expression::from(attr.value.clone())),
                        ),
                        hcl::edit::structure::Structure::Block(inner_block) => (
                            inner_block.ident.as_str().to_owned(),
                            block_value(&hcl::Block::from(inner_block.clone())),
                        ),
                    };
                    match value {
                        Ok(value) => attrs.push(SourceAttr {
                            key,
                            line: inner_line,
                            value,
                            comments: inner_comments,
                        }),
                        Err(message) => problems.push(Problem::new(
                            Some(inner_line),
                            format!("path {pattern:?}: {key}: {message}"),
                        )),
                    }
                }
                items.push(SourceItem::Path {
                    pattern: pattern.clone(),
                    line,
                    attrs,
                    comments,
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

fn label_text(label: &hcl::edit::structure::BlockLabel) -> String {
    match label {
        hcl::edit::structure::BlockLabel::Ident(ident) => ident.as_str().to_owned(),
        hcl::edit::structure::BlockLabel::String(text) => text.as_str().to_owned(),
    }
}

fn comments_of(prefix: Option<&str>) -> Vec<String> {
    prefix
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A nested block as HCL1 decodes it: `ident "a" "b" { body }` → `{"a": {"b": body}}`.
fn block_value(block: &hcl::Block) -> Result<Value, String> {
    let mut value = body_value(&block.body)?;
    for label in block.labels.iter().rev() {
        let mut object = Map::new();
        object.insert(label.as_str().to_owned(), value);
        value = Value::Object(object);
    }
    Ok(value)
}

fn body_value(body: &hcl::Body) -> Result<Value, String> {
    let mut object = Map::new();
    for structure in body.iter() {
        let (key, value) = match structure {
            hcl::Structure::Attribute(attr) => (attr.key.as_str(), expr_value(attr.expr.clone())?),
            hcl::Structure::Block(block) => (block.identifier.as_str(), block_value(block)?),
        };
        merge_into(&mut object, key, value);
    }
    Ok(Value::Object(object))
}

/// Repeated nested blocks (`factor "a" {}` `factor "b" {}`) merge into one object.
fn merge_into(object: &mut Map<String, Value>, key: &str, value: Value) {
    match (object.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (inner_key, inner_value) in incoming {
                merge_into(existing, &inner_key, inner_value);
            }
        }
        (_, value) => {
            object.insert(key.to_owned(), value);
        }
    }
}

fn expr_value(expr: hcl::Expression) -> Result<Value, String> {
    Ok(match expr {
        hcl::Expression::Null => Value::Null,
        hcl::Expression::Bool(b) => Value::Bool(b),
        hcl::Expression::Number(n) => number_value(&n),
        hcl::Expression::String(s) => Value::String(s),
        hcl::Expression::Array(items) => Value::Array(
            items
                .into_iter()
                .map(expr_value)
                .collect::<Result<_, _>>()?,
        ),
        hcl::Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                let key = match key {
                    hcl::ObjectKey::Identifier(ident) => ident.to_string(),
                    hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s,
                    hcl::ObjectKey::Expression(hcl::Expression::Variable(v)) => v.to_string(),
                    hcl::ObjectKey::Expression(hcl::Expression::TemplateExpr(t)) => t.to_string(),
                    hcl::ObjectKey::Expression(other) => {
                        return Err(format!(
                            "object keys must be names or strings, not `{other}`"
                        ));
                    }
                    other => {
                        return Err(format!(
                            "object keys must be names or strings, not `{other}`"
                        ));
                    }
                };
                map.insert(key, expr_value(value)?);
            }
            Value::Object(map)
        }
        // HCL1 keeps `${…}` in strings as written; so do we (policies have no variables).
        hcl::Expression::TemplateExpr(template) => match *template {
            hcl::TemplateExpr::QuotedString(s) => Value::String(s),
            hcl::TemplateExpr::Heredoc(heredoc) => Value::String(heredoc.template),
        },
        hcl::Expression::Parenthesis(inner) => expr_value(*inner)?,
        other => {
            return Err(format!(
                "only literal values (strings, numbers, booleans, lists, maps) are allowed in a policy, not `{other}`"
            ));
        }
    })
}

fn number_value(n: &hcl::Number) -> Value {
    if let Some(i) = n.as_i64().filter(|_| !n.is_f64()) {
        Value::Number(Number::from(i))
    } else if let Some(u) = n.as_u64().filter(|_| !n.is_f64()) {
        Value::Number(Number::from(u))
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

/// Rewrites HCL1 blocks inside object values (`obj = { inner "x" { a = 1 } }`) as HCL2 objects
/// (`obj = { inner = { "x" = { a = 1 } } }`), adding characters only within lines. `None` when
/// there is nothing to rewrite.
fn nested_blocks_as_objects(text: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Word,
        Open,
        Close,
        Other,
        Newline,
    }
    // (kind, start, end)
    let mut toks: Vec<(Tok, usize, usize)> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                toks.push((Tok::Newline, i, i + 1));
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                toks.push((Tok::Word, start, i.min(bytes.len())));
            }
            b'{' => {
                toks.push((Tok::Open, i, i + 1));
                i += 1;
            }
            b'}' => {
                toks.push((Tok::Close, i, i + 1));
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
                {
                    i += 1;
                }
                toks.push((Tok::Word, start, i));
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                toks.push((Tok::Other, i, i + 1));
                i += 1;
            }
        }
    }
    // Context stack: for each open brace, (is_object, extra closers to add).
    let mut stack: Vec<(bool, usize)> = Vec::new();
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for (index, &(kind, start, _)) in toks.iter().enumerate() {
        match kind {
            Tok::Open => {
                let in_object = stack.last().is_some_and(|(object, _)| *object);
                let previous = index.checked_sub(1).map(|p| toks[p]);
                let after_word = matches!(previous, Some((Tok::Word, _, _)));
                if in_object && after_word {
                    let mut first = index;
                    while first > 0 && toks[first - 1].0 == Tok::Word {
                        first -= 1;
                    }
                    let keys = &toks[first..index];
                    for (position, &(_, _, end)) in keys.iter().enumerate() {
                        let text = if position + 1 == keys.len() {
                            " ="
                        } else {
                            " = {"
                        };
                        inserts.push((end, text.to_owned()));
                    }
                    stack.push((true, keys.len() - 1));
                } else {
                    // After `=`, `:`, `[` or `,` a brace opens an object; after a label, a body.
                    let object = matches!(previous, Some((Tok::Other, s, _)) if matches!(bytes[s], b'=' | b':' | b'[' | b','))
                        || in_object;
                    stack.push((object, 0));
                }
            }
            Tok::Close => {
                if let Some((_, extra)) = stack.pop()
                    && extra > 0
                {
                    inserts.push((start + 1, "}".repeat(extra)));
                }
            }
            _ => {}
        }
    }
    if inserts.is_empty() {
        return None;
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(text.len() + inserts.len() * 4);
    let mut last = 0;
    for (at, insert) in inserts {
        out.push_str(&text[last..at]);
        out.push_str(&insert);
        last = at;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// JSON with object entries kept in order and duplicates kept (Vault's JSON form may repeat a
/// path, and every repetition counts).
#[derive(Clone, Debug, PartialEq)]
enum OrderedJson {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<OrderedJson>),
    Object(Vec<(String, OrderedJson)>),
}

impl OrderedJson {
    fn into_value(self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(b),
            Self::Number(n) => Value::Number(n),
            Self::String(s) => Value::String(s),
            Self::Array(items) => Value::Array(items.into_iter().map(Self::into_value).collect()),
            Self::Object(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    merge_into(&mut map, &key, value.into_value());
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for OrderedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OrderedJson, E> {
                Ok(Number::from_f64(v).map_or(OrderedJson::Null, OrderedJson::Number))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OrderedJson, E> {
                Ok(OrderedJson::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<OrderedJson, E> {
                Ok(OrderedJson::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderedJson, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OrderedJson::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedJson, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedJson::Object(entries))
            }
        }
        deserializer.deserialize_any(OrderedVisitor)
    }
}

/// Finds the line of `"key"` at or after `cursor`, moving the cursor past it. JSON parsers
/// give no positions for values; policies are small and keys are searched in document order.
fn json_key_line(text: &str, lines: &Lines, cursor: &mut usize, key: &str) -> usize {
    let quoted = serde_json::to_string(key).unwrap_or_default();
    match text[*cursor..].find(&quoted) {
        Some(found) => {
            *cursor += found + quoted.len();
            lines.line(*cursor - quoted.len())
        }
        None => lines.line(*cursor),
    }
}

/// Reads Vault's JSON policy form: `{"name": "…", "path": {"PATTERN": {…}, …}}` (or `"path"` as
/// a list of such objects).
pub fn read_json(text: &str) -> Result<Vec<SourceItem>, Vec<Problem>> {
    let root: OrderedJson = serde_json::from_str(text).map_err(|error| {
        vec![Problem::new(
            Some(error.line()),
            format!("invalid JSON: {error}"),
        )]
    })?;
    let lines = Lines::new(text);
    let mut cursor = 0;
    let OrderedJson::Object(entries) = root else {
        return Err(vec![Problem::new(
            Some(1),
            "a JSON policy is an object: {\"path\": {\"secrets/*\": {\"capabilities\": [\"read\"]}}}",
        )]);
    };
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in entries {
        let line = json_key_line(text, &lines, &mut cursor, &key);
        if key != "path" {
            items.push(SourceItem::Attr(SourceAttr {
                key,
                line,
                value: value.into_value(),
                comments: Vec::new(),
            }));
            continue;
        }
        let groups = match value {
            OrderedJson::Object(entries) => vec![entries],
            OrderedJson::Array(list) => {
                let mut groups = Vec::new();
                for item in list {
                    match item {
                        OrderedJson::Object(entries) => groups.push(entries),
                        _ => problems.push(Problem::new(
                            Some(line),
                            "\"path\" must be an object of patterns, or a list of such objects",
                        )),
                    }
                }
                groups
            }
            _ => {
                problems.push(Problem::new(
                    Some(line),
                    "\"path\" must be an object of patterns, or a list of such objects",
                ));
                continue;
            }
        };
        for (pattern, rule) in groups.into_iter().flatten() {
            let line = json_key_line(text, &lines, &mut cursor, &pattern);
            let OrderedJson::Object(fields) = rule else {
                problems.push(Problem::new(
                    Some(line),
                    format!("path {pattern:?}: a rule must be an object such as {{\"capabilities\": [\"read\"]}}"),
                ));
                continue;
            };
            let attrs = fields
                .into_iter()
                .map(|(key, value)| SourceAttr {
                    line: json_key_line(text, &lines, &mut cursor, &key),
                    key,
                    value: value.into_value(),
                    comments: Vec::new(),
                })
                .collect();
            items.push(SourceItem::Path {
                pattern,
                line,
                attrs,
                comments: Vec::new(),
            });
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_hcl1_blocks_inside_objects_keeping_lines() {
        let text = "path \"a\" {\n  control_group = {\n    factor \"x\" {\n      identity {\n        approvals = 1\n      }\n    }\n  }\n}\n";
        let rewritten = nested_blocks_as_objects(text).expect("something to rewrite");
        assert_eq!(rewritten.lines().count(), text.lines().count());
        assert!(
            hcl::edit::parser::parse_body(&rewritten).is_ok(),
            "{rewritten}"
        );
        let items = read_hcl(text).expect("reads");
        let SourceItem::Path { attrs, .. } = &items[0] else {
            panic!("expected a path")
        };
        assert_eq!(
            attrs[0].value,
            serde_json::json!({"factor": {"x": {"identity": {"approvals": 1}}}})
        );
    }

    #[test]
    fn json_keeps_repeated_paths_and_lines() {
        let text = "{\n \"path\": {\n  \"a\": {\"capabilities\": [\"read\"]},\n  \"a\": {\"capabilities\": [\"list\"]}\n }\n}";
        let items = read_json(text).expect("reads");
        assert_eq!(items.len(), 2);
        let lines: Vec<usize> = items
            .iter()
            .map(|item| match item {
                SourceItem::Path { line, .. } => *line,
                _ => 0,
            })
            .collect();
        assert_eq!(lines, [3, 4]);
    }

    #[test]
    fn lines_count_from_one() {
        let lines = Lines::new("a\nb\nc");
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(2), 2);
        assert_eq!(lines.line(4), 3);
    }
}
