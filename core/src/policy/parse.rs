//! Policy files → [`Policy`]: Vault's `ParseACLPolicy`, rule for rule.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;

use super::capability::Capabilities;
use super::source::{self, Problem, SourceAttr, SourceItem};

/// A policy that did not parse: the file and every problem found, each with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The file (or other origin) the text came from.
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            match problem.line {
                Some(line) => write!(f, "{}:{line}: {}", self.origin, problem.message)?,
                None => write!(f, "{}: {}", self.origin, problem.message)?,
            }
        }
        Ok(())
    }
}

/// Errors loading a policy file from disk.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// How a rule's pattern matches request paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    /// No wildcard: the path must be equal.
    Exact,
    /// Ends in `*` (and has no `+` segment): any path starting with the rest.
    Prefix,
    /// Has a `+` segment (and maybe a trailing `*`): matched segment by segment.
    Segment,
}

/// The language a policy was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    Hcl,
    Json,
}

/// One `path "…" { … }` block, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRule {
    /// The pattern as written.
    pub pattern: String,
    /// Line of the block in its file.
    pub line: usize,
    pub kind: PatternKind,
    /// The pattern as matched: leading `/` removed, and for [`PatternKind::Prefix`] the `*` too.
    pub key: String,
    pub capabilities: Capabilities,
    /// Allowed parameters, names lower-cased; `None` when the rule has none.
    pub allowed_parameters: Option<BTreeMap<String, Vec<Value>>>,
    pub denied_parameters: Option<BTreeMap<String, Vec<Value>>>,
    pub required_parameters: Vec<String>,
    /// Seconds; 0 when unset.
    pub min_wrapping_ttl: u64,
    pub max_wrapping_ttl: u64,
    pub comment: Option<String>,
    /// The attributes as written, for `policy fmt`.
    pub attrs: Vec<SourceAttr>,
    /// Comment lines above the block.
    pub comments: Vec<String>,
}

impl PathRule {
    /// The matched pattern in Vault's notation (what `matched` reports): `key`, plus `*` for a
    /// prefix rule.
    pub fn display_pattern(&self) -> String {
        match self.kind {
            PatternKind::Prefix => format!("{}*", self.key),
            _ => self.key.clone(),
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Its name: the `name` attribute, else the file name without extension; lower-cased and
    /// trimmed as Vault's policy store does.
    pub name: String,
    /// The `name` attribute as written, if any.
    pub written_name: Option<String>,
    pub rules: Vec<PathRule>,
    pub syntax: Syntax,
    /// Comment lines above the `name` attribute, and at the end of the file.
    pub(crate) name_comments: Vec<String>,
}

impl Policy {
    /// Vault's built-in `root` policy: it grants everything, and no file defines it.
    pub fn root() -> Self {
        Self {
            name: "root".to_owned(),
            written_name: None,
            rules: Vec::new(),
            syntax: Syntax::Hcl,
            name_comments: Vec::new(),
        }
    }
}

/// Keys Vault accepts inside a `path` block. `mfa_methods`, `control_group` and
/// `subscribe_event_types` are checked as Vault checks them, and have no effect in sealops.
pub(crate) const PATH_KEYS: [&str; 11] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

/// Vault's error text when a control group factor controls a capability the rule lacks.
pub const CONTROLLED_CAPABILITY_SUBSET_ERROR: &str =
    "control group factor capabilities must be a subset of the policy's capabilities";

impl Policy {
    /// Parses policy text. `origin` names it in errors; `default_name` is used when the text has
    /// no `name` attribute. JSON is recognised by a leading `{`.
    pub fn parse(text: &str, origin: &str, default_name: &str) -> Result<Self, ParseError> {
        // Vault's policy tests (and so its test vectors) number lines from the first non-blank
        // line; leading blank lines are dropped so that errors say the same line Vault does.
        let text = text.trim_start();
        let syntax = if text.trim_start().starts_with('{') {
            Syntax::Json
        } else {
            Syntax::Hcl
        };
        let items = match syntax {
            Syntax::Hcl => source::read_hcl(text),
            Syntax::Json => source::read_json(text),
        }
        .map_err(|problems| ParseError {
            origin: origin.to_owned(),
            problems,
        })?;
        compile(items, syntax, default_name).map_err(|problems| ParseError {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// Reads and parses a policy file; its default name is the file name without `.hcl`/`.json`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(
            &text,
            &path.display().to_string(),
            &default_name(path),
        )?)
    }
}

/// A policy file's default name: its file name without `.hcl` or `.json`.
pub fn default_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".hcl")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(&file)
        .to_owned()
}

fn compile(
    items: Vec<SourceItem>,
    syntax: Syntax,
    default_name: &str,
) -> Result<Policy, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut written_name = None;
    let mut name_comments = Vec::new();
    let mut paths = Vec::new();
    for item in items {
        match item {
            SourceItem::Attr(attr) if attr.key == "name" => match attr.value {
                Value::String(name) => {
                    written_name = Some(name);
                    name_comments = attr.comments;
                }
                _ => problems.push(Problem::new(
                    Some(attr.line),
                    "name must be a string, as in name = \"deploy\"",
                )),
            },
            SourceItem::Attr(SourceAttr { key, line, .. })
            | SourceItem::OtherBlock { key, line } => {
                problems.push(Problem::new(
                    Some(line),
                    format!("invalid key {key:?} on line {line}"),
                ));
            }
            SourceItem::Path {
                pattern,
                line,
                attrs,
                comments,
            } => paths.push((pattern, line, attrs, comments)),
        }
    }
    if !problems.is_empty() {
        // Vault checks the top-level keys before anything else.
        return Err(problems);
    }
    let mut rules = Vec::new();
    for (pattern, line, attrs, comments) in paths {
        match compile_rule(pattern, line, attrs, comments) {
            Ok(rule) => rules.push(rule),
            Err(mut rule_problems) => problems.append(&mut rule_problems),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let name = written_name
        .as_deref()
        .unwrap_or(default_name)
        .trim()
        .to_lowercase();
    Ok(Policy {
        name,
        written_name,
        rules,
        syntax,
        name_comments,
    })
}

fn compile_rule(
    pattern: String,
    line: usize,
    attrs: Vec<SourceAttr>,
    comments: Vec<String>,
) -> Result<PathRule, Vec<Problem>> {
    let invalid: Vec<Problem> = attrs
        .iter()
        .filter(|attr| !PATH_KEYS.contains(&attr.key.as_str()))
        .map(|attr| {
            Problem::new(
                Some(attr.line),
                format!(
                    "path {pattern:?}: invalid key {:?} on line {}",
                    attr.key, attr.line
                ),
            )
        })
        .collect();
    if !invalid.is_empty() {
        return Err(invalid);
    }
    let fail = |line: usize, message: String| vec![Problem::new(Some(line), message)];
    let field = |key: &str| attrs.iter().rev().find(|attr| attr.key == key);

    let mut key = pattern.strip_prefix('/').unwrap_or(&pattern).to_owned();
    if key.contains("+*") {
        return Err(fail(
            line,
            format!("path {key:?}: invalid use of wildcards ('+*' is forbidden)"),
        ));
    }
    let kind = if key == "+" || key.contains("/+") || key.starts_with("+/") {
        PatternKind::Segment
    } else if let Some(stripped) = key.strip_suffix('*') {
        key = stripped.to_owned();
        PatternKind::Prefix
    } else {
        PatternKind::Exact
    };

    let mut words = match field("capabilities") {
        Some(attr) => string_list(&attr.value).ok_or_else(|| {
            fail(
                attr.line,
                format!("path {pattern:?}: capabilities must be a list of strings, as in [\"read\", \"list\"]"),
            )
        })?,
        None => Vec::new(),
    };
    if let Some(attr) = field("policy") {
        let Value::String(word) = &attr.value else {
            return Err(fail(
                attr.line,
                format!("path {pattern:?}: policy must be a string"),
            ));
        };
        let extra: &[&str] = match word.as_str() {
            "deny" => {
                words = vec!["deny".to_owned()];
                &[]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => {
                return Err(fail(
                    attr.line,
                    format!("path {pattern:?}: invalid policy {word:?}"),
                ));
            }
        };
        words.extend(extra.iter().map(|word| (*word).to_owned()));
    }
    let comment = match field("comment") {
        Some(SourceAttr {
            value: Value::String(text),
            ..
        }) => Some(text.clone()),
        Some(attr) => {
            return Err(fail(
                attr.line,
                format!("path {pattern:?}: comment must be a string"),
            ));
        }
        None => None,
    };

    let mut rule = PathRule {
        pattern: pattern.clone(),
        line,
        kind,
        key,
        capabilities: Capabilities::NONE,
        allowed_parameters: None,
        denied_parameters: None,
        required_parameters: Vec::new(),
        min_wrapping_ttl: 0,
        max_wrapping_ttl: 0,
        comment,
        attrs: Vec::new(),
        comments,
    };
    let capability_line = field("capabilities")
        .or(field("policy"))
        .map_or(line, |a| a.line);
    for word in &words {
        match Capabilities::from_word(word) {
            // Deny stands alone: Vault stops reading the rule here.
            Some(Capabilities::DENY) => {
                rule.capabilities = Capabilities::DENY;
                rule.attrs = attrs;
                return Ok(rule);
            }
            Some(capability) => rule.capabilities |= capability,
            None => {
                return Err(fail(
                    capability_line,
                    format!("path {pattern:?}: invalid capability {word:?}"),
                ));
            }
        }
    }

    let display_path = rule.key.clone() + if kind == PatternKind::Prefix { "*" } else { "" };
    for (name, slot) in [
        ("allowed_parameters", &mut rule.allowed_parameters),
        ("denied_parameters", &mut rule.denied_parameters),
    ] {
        let Some(attr) = field(name) else { continue };
        let Value::Object(entries) = &attr.value else {
            return Err(fail(
                attr.line,
                format!(
                    "path {pattern:?}: {name} must be a map of parameter names to lists of values, as in {{\"key\" = []}}"
                ),
            ));
        };
        let mut map = BTreeMap::new();
        for (parameter, values) in entries {
            let Value::Array(values) = values else {
                return Err(fail(
                    attr.line,
                    format!(
                        "path {pattern:?}: {name}: the values of {parameter:?} must be a list (use [] for any value)"
                    ),
                ));
            };
            if let Err(message) = validate_parameter(parameter, true) {
                return Err(fail(
                    attr.line,
                    format!("path {display_path:?}: {name}: {message}"),
                ));
            }
            map.insert(parameter.to_lowercase(), values.clone());
        }
        *slot = Some(map);
    }
    for (name, slot) in [
        ("min_wrapping_ttl", &mut rule.min_wrapping_ttl),
        ("max_wrapping_ttl", &mut rule.max_wrapping_ttl),
    ] {
        if let Some(attr) = field(name) {
            *slot = parse_duration_seconds(&attr.value)
                .map_err(|message| fail(attr.line, format!("error parsing {name}: {message}")))?;
        }
    }
    if let Some(attr) = field("mfa_methods")
        && string_list(&attr.value).is_none()
    {
        return Err(fail(
            attr.line,
            format!("path {pattern:?}: mfa_methods must be a list of strings"),
        ));
    }
    if let Some(attr) = field("control_group") {
        check_control_group(&attr.value, &words).map_err(|message| fail(attr.line, message))?;
    }
    if rule.min_wrapping_ttl != 0
        && rule.max_wrapping_ttl != 0
        && rule.max_wrapping_ttl < rule.min_wrapping_ttl
    {
        let at = field("max_wrapping_ttl").map_or(line, |a| a.line);
        return Err(fail(
            at,
            "max_wrapping_ttl cannot be less than min_wrapping_ttl".to_owned(),
        ));
    }
    if let Some(attr) = field("required_parameters") {
        rule.required_parameters = string_list(&attr.value).ok_or_else(|| {
            fail(
                attr.line,
                format!("path {pattern:?}: required_parameters must be a list of strings"),
            )
        })?;
    }
    rule.attrs = attrs;
    Ok(rule)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// Vault's `validateParameter`: `*` keys are `*` alone or a JSON-pointer key ending in `/*`.
fn validate_parameter(key: &str, wildcard_permitted: bool) -> Result<(), String> {
    if key.starts_with('/') {
        let mut chars = key.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
                return Err(format!(
                    "parameter key {key:?}: invalid path syntax: '~' must be followed by 0 or 1"
                ));
            }
        }
    }
    if key.contains('*') {
        if !wildcard_permitted {
            return Err(format!(
                "parameter key {key:?}: wildcard is not permitted here"
            ));
        }
        let tail_ok =
            key.starts_with('/') && key.ends_with("/*") && !key[..key.len() - 2].contains('*');
        if key != "*" && !tail_ok {
            return Err(format!(
                "parameter key {key:?} cannot contain non-tail wildcards"
            ));
        }
    }
    Ok(())
}

/// Vault's control-group checks (Enterprise feature; sealops checks it, then ignores it).
fn check_control_group(value: &Value, capabilities: &[String]) -> Result<(), String> {
    let Value::Object(group) = value else {
        return Err("control_group must be a block or a map".to_owned());
    };
    if let Some(ttl) = group.get("ttl") {
        parse_duration_seconds(ttl)
            .map_err(|message| format!("error parsing control group max ttl: {message}"))?;
    }
    let factors: Vec<(&String, &Value)> = match group.get("factor") {
        Some(Value::Object(factors)) => factors.iter().collect(),
        _ => Vec::new(),
    };
    for (_, factor) in &factors {
        let identity = factor.get("identity").and_then(first_object);
        let Some(identity) = identity else {
            return Err("no control_group factor provided".to_owned());
        };
        let approvals = identity
            .get("approvals")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let has_group = ["group_ids", "group_names"].iter().any(|key| {
            identity
                .get(*key)
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
        });
        if approvals <= 0 || !has_group {
            return Err("must provide more than one identity group and approvals > 0".to_owned());
        }
        if let Some(controlled) = factor.get("controlled_capabilities").and_then(string_list)
            && controlled.iter().any(|cap| !capabilities.contains(cap))
        {
            return Err(CONTROLLED_CAPABILITY_SUBSET_ERROR.to_owned());
        }
    }
    if factors.is_empty() {
        return Err("no control group factors provided".to_owned());
    }
    Ok(())
}

fn first_object(value: &Value) -> Option<&serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Array(items) => items.first().and_then(Value::as_object),
        _ => None,
    }
}

/// Vault's `ParseDurationSecond`: a number of seconds, or a string such as `"300"`, `"5m"`,
/// `"1h30m"`, `"2d"`.
pub fn parse_duration_seconds(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| format!("invalid duration {n}")),
        Value::String(text) => parse_duration_text(text.trim()),
        other => Err(format!("invalid duration {other}")),
    }
}

fn parse_duration_text(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    if let Some(days) = text.strip_suffix('d')
        && let Ok(days) = days.parse::<u64>()
    {
        return Ok(days * 86_400);
    }
    // Go's time.ParseDuration: a sequence of decimal numbers with units.
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text;
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_end == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        nanos += number * scale;
        rest = &rest[unit_end..];
    }
    Ok((nanos / 1e9) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_vault_reads_them() {
        assert_eq!(parse_duration_seconds(&Value::from(300)), Ok(300));
        assert_eq!(parse_duration_seconds(&Value::from("300")), Ok(300));
        assert_eq!(parse_duration_seconds(&Value::from("5m")), Ok(300));
        assert_eq!(parse_duration_seconds(&Value::from("1h30m")), Ok(5400));
        assert_eq!(parse_duration_seconds(&Value::from("2d")), Ok(172_800));
        assert!(parse_duration_seconds(&Value::from("soon")).is_err());
    }

    #[test]
    fn parameter_keys_follow_vault() {
        assert!(validate_parameter("*", true).is_ok());
        assert!(validate_parameter("/a/b/*", true).is_ok());
        assert!(validate_parameter("a*", true).is_err());
        assert!(validate_parameter("/a/*/b", true).is_err());
        assert!(validate_parameter("/a~2", true).is_err());
    }

    #[test]
    fn default_name_drops_extension() {
        assert_eq!(default_name(Path::new("policies/deploy.hcl")), "deploy");
        assert_eq!(default_name(Path::new("x/ops.json")), "ops");
    }
}
