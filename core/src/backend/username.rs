//! Username templates of dynamic roles (`username_template`).
//!
//! Variables: `{{role}}`, `{{backend}}`, `{{random N}}` (N lowercase letters and digits from
//! the OS CSPRNG) and `{{unix_time}}`. Literal text may use letters, digits, `_`, `-` and `.`.
//!
//! The rendered name must fit the database's limit (PostgreSQL 63 bytes, MySQL 32 characters).
//! When it would not, the `{{role}}` and `{{backend}}` parts are shortened (the longest first);
//! random and time parts never are, because they are what makes each lease's user unique. A
//! template that cannot fit even then, or has no random part, is refused when the backend file
//! is parsed, so issuing a credential never fails on the name.

use rand::Rng;
use rand::rngs::OsRng;

/// Vault's shape: recognisable as generated, the role, then randomness.
pub const DEFAULT: &str = "v-{{role}}-{{random 8}}";

/// Random characters needed in total: collisions between leases must be negligible.
pub const MIN_RANDOM: usize = 6;

const RANDOM_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UNIX_TIME_LEN: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Role,
    Backend,
    Random(usize),
    UnixTime,
}

/// A parsed username template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernameTemplate {
    parts: Vec<Part>,
}

impl UsernameTemplate {
    /// Parses `text`; the message says what to change.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let close = rest
                        .find("}}")
                        .ok_or_else(|| format!("`{{{{` in {text:?} is not closed by `}}}}`"))?;
                    let inner = rest[2..close].trim();
                    let mut words = inner.split_whitespace();
                    let part = match (words.next(), words.next(), words.next()) {
                        (Some("role"), None, _) => Part::Role,
                        (Some("backend"), None, _) => Part::Backend,
                        (Some("unix_time"), None, _) => Part::UnixTime,
                        (Some("random"), Some(n), None) => match n.parse::<usize>() {
                            Ok(n @ 1..=64) => Part::Random(n),
                            _ => {
                                return Err(format!(
                                    "`{{{{random {n}}}}}`: the count must be 1 to 64"
                                ));
                            }
                        },
                        _ => {
                            return Err(format!(
                                "`{{{{{inner}}}}}` is not a username variable; use {{{{role}}}}, {{{{backend}}}}, {{{{random N}}}} or {{{{unix_time}}}}"
                            ));
                        }
                    };
                    parts.push(part);
                    rest = &rest[close + 2..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(bad) = literal
                        .chars()
                        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                    {
                        return Err(format!(
                            "{bad:?} in username template {text:?}: literal text may use letters, digits, '_', '-' and '.'"
                        ));
                    }
                    parts.push(Part::Text(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        let random: usize = parts
            .iter()
            .map(|p| if let Part::Random(n) = p { *n } else { 0 })
            .sum();
        if random < MIN_RANDOM {
            return Err(format!(
                "username template {text:?} has {random} random characters; add {{{{random 8}}}} (at least {MIN_RANDOM}) so every lease gets its own user"
            ));
        }
        Ok(Self { parts })
    }

    /// How long `{{role}}` and `{{backend}}` may be so the name fits `limit`, or why it cannot.
    fn budget(&self, role: &str, backend: &str, limit: usize) -> Result<Vec<usize>, String> {
        let fixed: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Random(n) => *n,
                Part::UnixTime => UNIX_TIME_LEN,
                Part::Role | Part::Backend => 0,
            })
            .sum();
        if fixed > limit {
            return Err(format!(
                "the username template's fixed text, random and time parts take {fixed} characters, more than this database's limit of {limit}: shorten it"
            ));
        }
        // Lengths of the shortenable parts, in template order; shorten the longest first.
        let mut lengths: Vec<usize> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Role => Some(role.len()),
                Part::Backend => Some(backend.len()),
                _ => None,
            })
            .collect();
        while fixed + lengths.iter().sum::<usize>() > limit {
            let longest = (0..lengths.len())
                .max_by_key(|&i| (lengths[i], std::cmp::Reverse(i)))
                .expect("over the limit only with a shortenable part");
            lengths[longest] -= 1;
        }
        Ok(lengths)
    }

    /// Checks that names for `role` of `backend` fit `limit` (bytes, all ASCII here).
    pub fn check_fits(&self, role: &str, backend: &str, limit: usize) -> Result<(), String> {
        self.budget(role, backend, limit).map(|_| ())
    }

    /// A new username. `role` and `backend` were validated as names (ASCII letters, digits,
    /// `_`, `-`), so the result is ASCII and at most `limit` long.
    pub fn render(
        &self,
        role: &str,
        backend: &str,
        limit: usize,
        unix_time: u64,
    ) -> Result<String, String> {
        let mut lengths = self.budget(role, backend, limit)?.into_iter();
        let mut rng = OsRng;
        let mut name = String::with_capacity(limit);
        for part in &self.parts {
            match part {
                Part::Text(t) => name.push_str(t),
                Part::Role => name.push_str(&role[..lengths.next().unwrap_or(0)]),
                Part::Backend => name.push_str(&backend[..lengths.next().unwrap_or(0)]),
                Part::Random(n) => {
                    for _ in 0..*n {
                        name.push(RANDOM_CHARS[rng.gen_range(0..RANDOM_CHARS.len())] as char);
                    }
                }
                Part::UnixTime => name.push_str(&format!("{unix_time:0>10}")),
            }
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_renders_and_is_random() {
        let template = UsernameTemplate::parse(DEFAULT).unwrap();
        let a = template.render("readonly", "pg", 63, 0).unwrap();
        let b = template.render("readonly", "pg", 63, 0).unwrap();
        assert!(a.starts_with("v-readonly-") && a.len() == 19, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn long_role_names_are_shortened_never_the_random_part() {
        let template =
            UsernameTemplate::parse("v-{{backend}}-{{role}}-{{random 8}}-{{unix_time}}").unwrap();
        let role = "a-very-long-role-name-for-reporting";
        let name = template
            .render(role, "payments", 32, 1_700_000_000)
            .unwrap();
        assert_eq!(name.len(), 32, "{name}");
        assert!(name.ends_with("-1700000000"), "{name}");
        // 32 - (2 + 1 + 1 + 8 + 1 + 10) = 9 characters for backend and role: the longest is
        // shortened first, so they end up 4 and 5.
        assert!(name.starts_with("v-paym-a-ver-"), "{name}");
    }

    #[test]
    fn bad_templates_are_refused() {
        for (text, expected) in [
            ("v-{{role}}", "random characters"),
            ("v-{{role}}-{{random 3}}", "random characters"),
            ("v-{{display_name}}-{{random 8}}", "not a username variable"),
            ("v {{random 8}}", "literal text"),
            ("v-{{random 8", "not closed"),
            ("{{random 0}}", "1 to 64"),
        ] {
            let err = UsernameTemplate::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let long = UsernameTemplate::parse("{{random 40}}").unwrap();
        assert!(
            long.check_fits("r", "b", 32)
                .unwrap_err()
                .contains("limit of 32")
        );
    }
}
