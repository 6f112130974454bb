//! Evaluation: Vault's `NewACL` (merging) and `AllowOperation` (matching, priority, parameters).
//!
//! Rules are indexed when the [`Acl`] is built: exact patterns and `*` prefixes in hash maps
//! (longest prefix found by probing only the prefix lengths that exist), `+` patterns in a
//! segment trie. A check touches only the rules that can match its path.

use std::cmp::Reverse;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::capability::{Capabilities, Operation};
use super::parse::{PathRule, PatternKind, Policy};

/// A request to check: what a sealops action amounts to in Vault's terms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The policy path (`secrets/apps/db`, `sys/policy/deploy`, …).
    pub path: String,
    /// The operation; `None` computes capabilities only (as Vault's `sys/capabilities`).
    #[serde(default)]
    pub operation: Option<Operation>,
    /// Parameters: for sealops, the key names and values of a secret being written.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    /// Response-wrapping TTL in seconds, checked against `min/max_wrapping_ttl` as Vault does.
    #[serde(default)]
    pub wrap_ttl: Option<u64>,
}

/// The outcome of a check (the JSON of `sealops policy eval -o json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The selected rule grants `sudo` (or the holder has the root policy).
    pub root_privs: bool,
    /// Capabilities the selected rule grants, sorted; `["deny"]` when none (as Vault reports).
    pub capabilities: Vec<&'static str>,
    /// Policies whose rules granted the operation (empty when not allowed).
    pub granting_policies: Vec<String>,
    /// The selected rule's pattern, or `None` when no rule matched.
    pub matched: Option<String>,
    /// Why the request was refused.
    #[serde(skip)]
    pub denial: Option<Denial>,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    NoOperation,
    NoMatchingRule,
    ExplicitDeny,
    MissingCapability(Operation),
    WrappingTtl(String),
    RequiredParameterMissing(String),
    AllParametersDenied,
    ParameterDenied(String),
    ParameterNotAllowed(String),
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoOperation => f.write_str("no operation given: capabilities only"),
            Self::NoMatchingRule => f.write_str("no rule matches the path (implicit deny)"),
            Self::ExplicitDeny => {
                f.write_str("the selected rule denies (deny overrides every other capability)")
            }
            Self::MissingCapability(op) => {
                write!(f, "the selected rule does not grant the {op} capability")
            }
            Self::WrappingTtl(why) => f.write_str(why),
            Self::RequiredParameterMissing(name) => {
                write!(f, "required parameter {name:?} is missing")
            }
            Self::AllParametersDenied => {
                f.write_str("denied_parameters has \"*\": no parameter may be given")
            }
            Self::ParameterDenied(name) => {
                write!(
                    f,
                    "parameter {name:?} has a value denied_parameters forbids"
                )
            }
            Self::ParameterNotAllowed(name) => {
                write!(
                    f,
                    "parameter {name:?} (or its value) is not in allowed_parameters"
                )
            }
        }
    }
}

/// Errors building an ACL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error(
        "other policies present along with root: the root policy grants everything and must be held alone"
    )]
    RootWithOthers,
}

/// Where a merged rule came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSource {
    pub policy: String,
    pub line: usize,
    pub pattern: String,
    pub capabilities: Capabilities,
}

/// All rules of one pattern across a holder's policies, merged as Vault merges them.
#[derive(Clone, Debug)]
pub struct MergedRule {
    pub pattern: String,
    pub kind: PatternKind,
    pub capabilities: Capabilities,
    pub min_wrapping_ttl: u64,
    pub max_wrapping_ttl: u64,
    pub allowed_parameters: Option<HashMap<String, Vec<Value>>>,
    pub denied_parameters: Option<HashMap<String, Vec<Value>>>,
    pub required_parameters: Vec<String>,
    /// Per capability (index in [`Capabilities::ALL`]), the policies granting it, in order.
    granting: [Vec<String>; 10],
    pub sources: Vec<RuleSource>,
    priority: Priority,
}

/// Vault's wildcard priority, ordered so that the greatest wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Priority {
    /// Position of the first `+` or `*`: later is more specific.
    first_wildcard: usize,
    /// Not ending in `*` beats ending in `*`.
    not_prefix: bool,
    /// Fewer `+` segments is more specific.
    wildcards: Reverse<usize>,
    /// Longer is more specific.
    length: usize,
    /// Last resort: lexicographically greater wins.
    text: String,
}

#[derive(Debug, Default)]
struct SegmentNode {
    literal: HashMap<String, SegmentNode>,
    plus: Option<Box<SegmentNode>>,
    /// Rules whose last segment ends here.
    ends: Vec<usize>,
    /// Prefix rules (`…/ab*`) whose last segment is matched by string prefix here.
    prefix_ends: Vec<(String, usize)>,
}

impl SegmentNode {
    fn insert(&mut self, parts: &[&str], prefix: bool, id: usize) {
        match parts {
            [last] if prefix => self.prefix_ends.push(((*last).to_owned(), id)),
            [] => self.ends.push(id),
            [first, rest @ ..] => {
                let child = if *first == "+" {
                    self.plus.get_or_insert_with(Default::default)
                } else {
                    self.literal.entry((*first).to_owned()).or_default()
                };
                child.insert(rest, prefix, id);
            }
        }
    }

    fn collect(&self, parts: &[&str], out: &mut Vec<usize>) {
        let Some((first, rest)) = parts.split_first() else {
            out.extend_from_slice(&self.ends);
            return;
        };
        for (last, id) in &self.prefix_ends {
            if first.starts_with(last.as_str()) {
                out.push(*id);
            }
        }
        if let Some(child) = self.literal.get(*first) {
            child.collect(rest, out);
        }
        if let Some(child) = &self.plus {
            child.collect(rest, out);
        }
    }
}

/// A holder's policies compiled for checking (Vault's `ACL`).
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    rules: Vec<MergedRule>,
    exact: HashMap<String, usize>,
    prefix: HashMap<String, usize>,
    /// Lengths of the prefix keys, longest first.
    prefix_lengths: Vec<usize>,
    segment_keys: HashMap<String, usize>,
    segments: SegmentNode,
    has_segments: bool,
}

/// How the selected rule was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Exact { path: String },
    Wildcard { path: String },
}

/// A rule that matched a request, for `policy explain`.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub rule: &'a MergedRule,
    /// The path it was matched against (lists retry without the trailing slash).
    pub path: String,
    pub how: &'static str,
}

/// The full story of a check, for people.
#[derive(Clone, Debug)]
pub struct Explanation<'a> {
    pub decision: Decision,
    /// Every rule that matched, in the order Vault considers them.
    pub candidates: Vec<Candidate<'a>>,
    pub selected: Option<&'a MergedRule>,
    /// Why the selected rule won.
    pub reason: String,
}

impl Acl {
    /// Builds the ACL of a holder of `policies` (all of them together, as one token).
    pub fn new(policies: &[Policy]) -> Result<Self, AclError> {
        let mut acl = Self::default();
        for policy in policies {
            if policy.name == "root" {
                if policies.len() != 1 {
                    return Err(AclError::RootWithOthers);
                }
                acl.root = true;
            }
            for rule in &policy.rules {
                acl.insert(&policy.name, rule);
            }
        }
        let mut lengths: Vec<usize> = acl.prefix.keys().map(String::len).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        acl.prefix_lengths = lengths;
        Ok(acl)
    }

    /// Whether this is the root ACL (the built-in `root` policy).
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Every merged rule.
    pub fn rules(&self) -> &[MergedRule] {
        &self.rules
    }

    fn insert(&mut self, policy: &str, rule: &PathRule) {
        let source = RuleSource {
            policy: policy.to_owned(),
            line: rule.line,
            pattern: rule.pattern.clone(),
            capabilities: rule.capabilities,
        };
        let map = match rule.kind {
            PatternKind::Exact => &mut self.exact,
            PatternKind::Prefix => &mut self.prefix,
            PatternKind::Segment => {
                self.has_segments = true;
                &mut self.segment_keys
            }
        };
        let existing = map.get(&rule.key).copied();
        let Some(id) = existing else {
            let id = self.rules.len();
            let mut merged = MergedRule {
                pattern: rule.display_pattern(),
                kind: rule.kind,
                capabilities: rule.capabilities,
                min_wrapping_ttl: rule.min_wrapping_ttl,
                max_wrapping_ttl: rule.max_wrapping_ttl,
                allowed_parameters: rule
                    .allowed_parameters
                    .as_ref()
                    .map(|m| m.clone().into_iter().collect()),
                denied_parameters: rule
                    .denied_parameters
                    .as_ref()
                    .map(|m| m.clone().into_iter().collect()),
                required_parameters: rule.required_parameters.clone(),
                granting: Default::default(),
                sources: vec![source],
                priority: priority_of(rule),
            };
            add_granting(&mut merged.granting, policy, rule.capabilities);
            self.rules.push(merged);
            map.insert(rule.key.clone(), id);
            if rule.kind == PatternKind::Segment {
                let (wc_path, prefix) = match rule.key.strip_suffix('*') {
                    Some(stripped) => (stripped, true),
                    None => (rule.key.as_str(), false),
                };
                let parts: Vec<&str> = wc_path.split('/').collect();
                self.segments.insert(&parts, prefix, id);
            }
            return;
        };
        let merged = &mut self.rules[id];
        merged.sources.push(source);
        if merged.capabilities.intersects(Capabilities::DENY) {
            return;
        }
        if rule.capabilities.intersects(Capabilities::DENY) {
            merged.capabilities = Capabilities::DENY;
            merged.allowed_parameters = None;
            merged.denied_parameters = None;
            return;
        }
        merged.capabilities |= rule.capabilities;
        add_granting(&mut merged.granting, policy, rule.capabilities);
        // Vault prefers the shorter lifetimes: the lesser of two maxima and of two minima.
        if rule.max_wrapping_ttl > 0
            && (merged.max_wrapping_ttl == 0 || rule.max_wrapping_ttl < merged.max_wrapping_ttl)
        {
            merged.max_wrapping_ttl = rule.max_wrapping_ttl;
        }
        if rule.min_wrapping_ttl > 0
            && (merged.min_wrapping_ttl == 0 || rule.min_wrapping_ttl < merged.min_wrapping_ttl)
        {
            merged.min_wrapping_ttl = rule.min_wrapping_ttl;
        }
        merge_parameters(
            &mut merged.allowed_parameters,
            rule.allowed_parameters.as_ref(),
        );
        merge_parameters(
            &mut merged.denied_parameters,
            rule.denied_parameters.as_ref(),
        );
        for required in &rule.required_parameters {
            if !merged.required_parameters.contains(required) {
                merged.required_parameters.push(required.clone());
            }
        }
    }

    /// Checks a request (Vault's `AllowOperation`).
    pub fn check(&self, request: &Request) -> Decision {
        if self.root {
            return Decision {
                allowed: request.operation.is_some(),
                root_privs: true,
                capabilities: vec!["root"],
                granting_policies: vec!["root".to_owned()],
                matched: None,
                denial: request.operation.is_none().then_some(Denial::NoOperation),
            };
        }
        let path = request.path.trim_start_matches('/');
        // Capabilities alone are computed as for a list, as Vault's `sys/capabilities` does.
        let lookup_op = request.operation.unwrap_or(Operation::List);
        let Some((id, _)) = self.select(path, lookup_op) else {
            return Decision {
                allowed: false,
                root_privs: false,
                capabilities: vec!["deny"],
                granting_policies: Vec::new(),
                matched: None,
                denial: Some(if request.operation.is_some() {
                    Denial::NoMatchingRule
                } else {
                    Denial::NoOperation
                }),
            };
        };
        let rule = &self.rules[id];
        let capabilities = rule.capabilities;
        let mut decision = Decision {
            allowed: false,
            root_privs: capabilities.intersects(Capabilities::SUDO),
            capabilities: if capabilities.intersects(Capabilities::DENY) || capabilities.is_empty()
            {
                vec!["deny"]
            } else {
                capabilities.words()
            },
            granting_policies: Vec::new(),
            matched: Some(rule.pattern.clone()),
            denial: None,
        };
        let Some(operation) = request.operation else {
            decision.denial = Some(Denial::NoOperation);
            return decision;
        };
        if capabilities.intersects(Capabilities::DENY) {
            decision.denial = Some(Denial::ExplicitDeny);
            return decision;
        }
        if !capabilities.intersects(operation.capability()) {
            decision.denial = Some(Denial::MissingCapability(operation));
            return decision;
        }
        match check_request(rule, operation, request) {
            Ok(()) => {
                decision.allowed = true;
                let index = operation.capability().index().unwrap_or_default();
                let mut granting: Vec<String> = Vec::new();
                for name in &rule.granting[index] {
                    if !granting.contains(name) {
                        granting.push(name.clone());
                    }
                }
                decision.granting_policies = granting;
            }
            Err(denial) => decision.denial = Some(denial),
        }
        decision
    }

    /// The same check, with every matching rule and the reason for the choice.
    pub fn explain(&self, request: &Request) -> Explanation<'_> {
        let decision = self.check(request);
        let path = request.path.trim_start_matches('/');
        let lookup_op = request.operation.unwrap_or(Operation::List);
        let mut candidates = Vec::new();
        let trimmed = path
            .strip_suffix('/')
            .filter(|_| lookup_op == Operation::List);
        let mut exact_probes = vec![path];
        exact_probes.extend(trimmed);
        for probe in exact_probes {
            if let Some(&id) = self.exact.get(probe) {
                candidates.push(Candidate {
                    rule: &self.rules[id],
                    path: probe.to_owned(),
                    how: "exact match",
                });
            }
        }
        let mut wildcard_probes: Vec<&str> = trimmed.into_iter().collect();
        wildcard_probes.push(path);
        for probe in wildcard_probes {
            let mut ids = self.wildcard_matches(probe);
            ids.sort_by(|a, b| self.rules[*b].priority.cmp(&self.rules[*a].priority));
            for id in ids {
                let rule = &self.rules[id];
                candidates.push(Candidate {
                    rule,
                    path: probe.to_owned(),
                    how: if rule.kind == PatternKind::Prefix {
                        "longest prefix (`*`) match"
                    } else {
                        "segment-wildcard (`+`) match"
                    },
                });
            }
        }
        let selected = self.select(path, lookup_op).map(|(id, _)| &self.rules[id]);
        let reason = match selected {
            None if self.root => "the holder has the root policy: everything is allowed".to_owned(),
            None => "no rule matches: Vault denies by default".to_owned(),
            Some(rule) => explain_choice(rule, &candidates),
        };
        Explanation {
            decision,
            candidates,
            selected,
            reason,
        }
    }

    /// Vault's lookup order: exact path; for lists the path without its trailing slash;
    /// then wildcard rules (for lists, first without the slash).
    fn select(&self, path: &str, operation: Operation) -> Option<(usize, Lookup)> {
        if let Some(&id) = self.exact.get(path) {
            return Some((
                id,
                Lookup::Exact {
                    path: path.to_owned(),
                },
            ));
        }
        let list = operation == Operation::List;
        if list {
            let trimmed = path.strip_suffix('/').unwrap_or(path);
            if let Some(&id) = self.exact.get(trimmed) {
                return Some((
                    id,
                    Lookup::Exact {
                        path: trimmed.to_owned(),
                    },
                ));
            }
            if let Some(trimmed) = path.strip_suffix('/')
                && let Some(id) = self.best_wildcard(trimmed)
            {
                return Some((
                    id,
                    Lookup::Wildcard {
                        path: trimmed.to_owned(),
                    },
                ));
            }
        }
        self.best_wildcard(path).map(|id| {
            (
                id,
                Lookup::Wildcard {
                    path: path.to_owned(),
                },
            )
        })
    }

    fn longest_prefix(&self, path: &str) -> Option<usize> {
        self.prefix_lengths
            .iter()
            .filter(|&&n| n <= path.len() && path.is_char_boundary(n))
            .find_map(|&n| self.prefix.get(&path[..n]).copied())
    }

    /// Vault's `CheckAllowedFromNonExactPaths`: the longest `*` prefix and every matching `+`
    /// rule compete on priority.
    fn best_wildcard(&self, path: &str) -> Option<usize> {
        let prefix = self.longest_prefix(path);
        if !self.has_segments {
            return prefix;
        }
        let mut ids = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        self.segments.collect(&parts, &mut ids);
        ids.extend(prefix);
        ids.into_iter()
            .max_by(|a, b| self.rules[*a].priority.cmp(&self.rules[*b].priority))
    }

    fn wildcard_matches(&self, path: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        self.segments.collect(&parts, &mut ids);
        ids.extend(self.longest_prefix(path));
        ids
    }
}

fn priority_of(rule: &PathRule) -> Priority {
    match rule.kind {
        PatternKind::Segment => {
            let (wc_path, prefix) = match rule.key.strip_suffix('*') {
                Some(stripped) => (stripped, true),
                None => (rule.key.as_str(), false),
            };
            Priority {
                first_wildcard: rule.key.find('+').unwrap_or(0),
                not_prefix: !prefix,
                wildcards: Reverse(wc_path.split('/').filter(|part| *part == "+").count()),
                length: wc_path.len(),
                text: wc_path.to_owned(),
            }
        }
        _ => Priority {
            first_wildcard: rule.key.len(),
            not_prefix: rule.kind != PatternKind::Prefix,
            wildcards: Reverse(0),
            length: rule.key.len(),
            text: rule.key.clone(),
        },
    }
}

fn explain_choice(selected: &MergedRule, candidates: &[Candidate<'_>]) -> String {
    if selected.kind == PatternKind::Exact {
        return format!(
            "{:?} matches the path exactly; exact rules win over wildcards",
            selected.pattern
        );
    }
    let runner_up = candidates
        .iter()
        .map(|c| c.rule)
        .filter(|rule| rule.kind != PatternKind::Exact && !std::ptr::eq(*rule, selected))
        .max_by(|a, b| a.priority.cmp(&b.priority));
    let Some(other) = runner_up else {
        return format!(
            "{:?} is the only wildcard rule that matches",
            selected.pattern
        );
    };
    let (a, b) = (&selected.priority, &other.priority);
    let why = if a.first_wildcard != b.first_wildcard {
        format!(
            "its first wildcard comes later (position {} vs {})",
            a.first_wildcard, b.first_wildcard
        )
    } else if a.not_prefix != b.not_prefix {
        "it does not end in `*` and the other does".to_owned()
    } else if a.wildcards != b.wildcards {
        format!(
            "it has fewer `+` segments ({} vs {})",
            a.wildcards.0, b.wildcards.0
        )
    } else if a.length != b.length {
        format!("it is longer ({} vs {} characters)", a.length, b.length)
    } else {
        "it sorts after the other (Vault's last-resort tie-break)".to_owned()
    };
    format!(
        "{:?} wins over {:?}: {why} (Vault's priority: first wildcard position, then `+` over `*` ending, then fewer `+` segments, then length)",
        selected.pattern, other.pattern
    )
}

fn add_granting(granting: &mut [Vec<String>; 10], policy: &str, capabilities: Capabilities) {
    for (index, (capability, _)) in Capabilities::ALL.iter().enumerate() {
        if capabilities.intersects(*capability) {
            granting[index].push(policy.to_owned());
        }
    }
}

fn merge_parameters(
    existing: &mut Option<HashMap<String, Vec<Value>>>,
    incoming: Option<&std::collections::BTreeMap<String, Vec<Value>>>,
) {
    let Some(incoming) = incoming.filter(|m| !m.is_empty()) else {
        return;
    };
    let Some(existing) = existing else {
        *existing = Some(incoming.clone().into_iter().collect());
        return;
    };
    for (key, values) in incoming {
        let current = existing.get(key);
        // An empty list (any value) overrides any list of values.
        if values.is_empty() || current.is_some_and(Vec::is_empty) {
            existing.insert(key.clone(), Vec::new());
        } else {
            let mut merged = values.clone();
            merged.extend(current.cloned().unwrap_or_default());
            existing.insert(key.clone(), merged);
        }
    }
}

fn check_request(rule: &MergedRule, operation: Operation, request: &Request) -> Result<(), Denial> {
    if rule.max_wrapping_ttl > 0 {
        match request.wrap_ttl {
            None => {
                return Err(Denial::WrappingTtl(format!(
                    "the rule requires response wrapping with a TTL of at most {}s",
                    rule.max_wrapping_ttl
                )));
            }
            Some(ttl) if ttl > rule.max_wrapping_ttl => {
                return Err(Denial::WrappingTtl(format!(
                    "wrap TTL {ttl}s exceeds max_wrapping_ttl {}s",
                    rule.max_wrapping_ttl
                )));
            }
            _ => {}
        }
    }
    if rule.min_wrapping_ttl > 0 {
        match request.wrap_ttl {
            Some(ttl) if ttl >= rule.min_wrapping_ttl => {}
            _ => {
                return Err(Denial::WrappingTtl(format!(
                    "the rule requires response wrapping with a TTL of at least {}s",
                    rule.min_wrapping_ttl
                )));
            }
        }
    }
    if rule.min_wrapping_ttl != 0
        && rule.max_wrapping_ttl != 0
        && rule.max_wrapping_ttl < rule.min_wrapping_ttl
    {
        return Err(Denial::WrappingTtl(
            "merged rules leave max_wrapping_ttl below min_wrapping_ttl".to_owned(),
        ));
    }
    if !operation.checks_parameters() {
        return Ok(());
    }
    let empty = Map::new();
    let data = request.data.as_ref().unwrap_or(&empty);
    for required in &rule.required_parameters {
        if !data.contains_key(&required.to_lowercase()) {
            return Err(Denial::RequiredParameterMissing(required.clone()));
        }
    }
    if data.is_empty() {
        return Ok(());
    }
    if let Some(denied) = rule.denied_parameters.as_ref().filter(|m| !m.is_empty()) {
        if denied.contains_key("*") {
            return Err(Denial::AllParametersDenied);
        }
        for (name, value) in data {
            if let Some(list) = denied.get(&name.to_lowercase())
                && value_in_denied_list(value, list)
            {
                return Err(Denial::ParameterDenied(name.clone()));
            }
        }
    }
    let Some(allowed) = rule.allowed_parameters.as_ref().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let allowed_all = allowed.contains_key("*");
    if allowed.len() == 1 && allowed_all {
        return Ok(());
    }
    for (name, value) in data {
        match allowed.get(&name.to_lowercase()) {
            None if !allowed_all => return Err(Denial::ParameterNotAllowed(name.clone())),
            Some(list) if !value_in_allowed_list(value, list) => {
                return Err(Denial::ParameterNotAllowed(name.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Vault's `parseutil.ParseCommaStringSlice` on a string: comma-separated, each part trimmed.
fn comma_parts(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(str::trim).collect()
}

fn value_in_allowed_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|item| value_in_list(item, list)),
        Value::String(text) => comma_parts(text)
            .into_iter()
            .all(|part| value_in_list(&Value::String(part.to_owned()), list)),
        _ => false,
    }
}

fn value_in_denied_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|item| value_in_list(item, list)),
        Value::String(text) => comma_parts(text)
            .into_iter()
            .any(|part| value_in_list(&Value::String(part.to_owned()), list)),
        _ => false,
    }
}

/// Vault's `valueInParameterList`: strings match by glob, everything else by deep equality.
fn value_in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|element| match (element, value) {
        (Value::Null, _) | (_, Value::Null) => element == value,
        (Value::String(pattern), Value::String(text)) => globbed_strings_match(pattern, text),
        (Value::String(_), _) => false,
        _ => element == value,
    })
}

/// Vault's `strutil.GlobbedStringsMatch`: `*` only at the start and/or end of the item.
pub fn globbed_strings_match(item: &str, value: &str) -> bool {
    if item.len() < 2 {
        return value == item;
    }
    let starts = item.starts_with('*');
    let ends = item.ends_with('*');
    match (starts, ends) {
        (true, true) => value.contains(&item[1..item.len() - 1]),
        (true, false) => value.ends_with(&item[1..]),
        (false, true) => value.starts_with(&item[..item.len() - 1]),
        (false, false) => value == item,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_values_match_at_either_end() {
        assert!(globbed_strings_match("bad*", "bad glob"));
        assert!(globbed_strings_match("*good3", "glob good3"));
        assert!(globbed_strings_match("*mid*", "a mid b"));
        assert!(!globbed_strings_match("good", "good2"));
        assert!(globbed_strings_match("*", "*"));
        assert!(!globbed_strings_match("*", "x"));
    }

    #[test]
    fn comma_strings_split_like_vault() {
        assert_eq!(comma_parts("a, b ,c"), ["a", "b", "c"]);
        assert!(comma_parts("").is_empty());
    }
}
