//! `sealops policy fmt`: one canonical layout per policy.
//!
//! HCL: `name` first, then each `path` block in file order with its attributes in a fixed order
//! (`comment`, `policy`, `capabilities`, parameters, wrapping TTLs, then Vault's other keys),
//! two-space indents, lists on one line, maps one entry a line. Comments above blocks and
//! attributes are kept. JSON policies are written as pretty JSON. Formatting never changes what
//! a policy grants: the text is parsed first, and the output is rendered from what was parsed.

use serde_json::Value;

use super::parse::{ParseError, Policy, Syntax};
use super::source::SourceAttr;

/// Errors formatting: the policy must parse first.
pub type FormatError = ParseError;

/// Attribute order inside a path block: the order Vault's documentation lists them in.
const ORDER: [&str; 11] = super::parse::PATH_KEYS;

/// Formats policy text canonically. `origin` names it in errors.
pub fn format_policy(text: &str, origin: &str) -> Result<String, FormatError> {
    let policy = Policy::parse(text, origin, "policy")?;
    Ok(match policy.syntax {
        Syntax::Hcl => render_hcl(&policy),
        Syntax::Json => render_json(&policy),
    })
}

fn render_hcl(policy: &Policy) -> String {
    let mut out = String::new();
    if let Some(name) = &policy.written_name {
        for comment in &policy.name_comments {
            out.push_str(comment);
            out.push('\n');
        }
        out.push_str(&format!("name = {}\n", hcl_string(name)));
    }
    for rule in &policy.rules {
        if !out.is_empty() {
            out.push('\n');
        }
        for comment in &rule.comments {
            out.push_str(comment);
            out.push('\n');
        }
        out.push_str(&format!("path {} {{\n", hcl_string(&rule.pattern)));
        for attr in canonical_attrs(&rule.attrs) {
            for comment in &attr.comments {
                out.push_str("  ");
                out.push_str(comment);
                out.push('\n');
            }
            out.push_str(&format!("  {} = {}\n", attr.key, hcl_value(&attr.value, 1)));
        }
        out.push_str("}\n");
    }
    out
}

/// The attributes in canonical order; of repeated keys, the last one (the one that counts).
fn canonical_attrs(attrs: &[SourceAttr]) -> Vec<&SourceAttr> {
    ORDER
        .iter()
        .filter_map(|key| attrs.iter().rev().find(|attr| attr.key == *key))
        .collect()
}

fn hcl_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn hcl_value(value: &Value, depth: usize) -> String {
    match value {
        Value::String(text) => hcl_string(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(hcl_inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let indent = "  ".repeat(depth + 1);
            let mut out = String::from("{\n");
            for (key, item) in map {
                out.push_str(&format!(
                    "{indent}{} = {}\n",
                    hcl_string(key),
                    hcl_value(item, depth + 1)
                ));
            }
            out.push_str(&"  ".repeat(depth));
            out.push('}');
            out
        }
        other => other.to_string(),
    }
}

fn hcl_inline(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(key, item)| format!("{} = {}", hcl_string(key), hcl_inline(item)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        other => hcl_value(other, 0),
    }
}

fn render_json(policy: &Policy) -> String {
    let mut root = serde_json::Map::new();
    if let Some(name) = &policy.written_name {
        root.insert("name".to_owned(), Value::String(name.clone()));
    }
    let rules: Vec<(String, Value)> = policy
        .rules
        .iter()
        .map(|rule| {
            let body: serde_json::Map<String, Value> = canonical_attrs(&rule.attrs)
                .into_iter()
                .map(|attr| (attr.key.clone(), attr.value.clone()))
                .collect();
            (rule.pattern.clone(), Value::Object(body))
        })
        .collect();
    let mut patterns: Vec<&String> = rules.iter().map(|(pattern, _)| pattern).collect();
    patterns.sort_unstable();
    patterns.dedup();
    let paths = if patterns.len() == rules.len() {
        Value::Object(rules.into_iter().collect())
    } else {
        // A repeated pattern needs the list form to keep every repetition.
        Value::Array(
            rules
                .into_iter()
                .map(|(pattern, body)| {
                    let mut entry = serde_json::Map::new();
                    entry.insert(pattern, body);
                    Value::Object(entry)
                })
                .collect(),
        )
    };
    if !policy.rules.is_empty() {
        root.insert("path".to_owned(), paths);
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(root)).expect("JSON serialises");
    text.push('\n');
    text
}
