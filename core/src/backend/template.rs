//! Statement templates (`creation_statements`, …) and their injection-safe rendering.
//!
//! The rule: **a variable is substituted only inside a quoted context that the template itself
//! writes, and its value is escaped for exactly that context.** `"{{name}}"` in PostgreSQL is a
//! quoted identifier (inner `"` doubled); `'{{password}}'` is a string literal (inner `'`
//! doubled, and `\` doubled where the server treats it as an escape). A variable outside quotes,
//! in a comment, in a PostgreSQL dollar-quoted body or in a prefixed literal (`U&'…'`, `B'…'`)
//! is refused when the backend file is parsed: there is no escaping that makes a value safe
//! there. Values holding NUL are refused when rendering (neither server stores one).
//!
//! Why context-driven rather than "name is an identifier, password a literal": Vault's own
//! templates already write the quotes (`CREATE ROLE "{{name}}" … PASSWORD '{{password}}'`,
//! MySQL's `CREATE USER '{{name}}'@'%'`), so existing templates keep working, and the escaping
//! can never disagree with the quotes around it.
//!
//! A template entry may hold several statements separated by `;`; they are split here (outside
//! quotes and comments) so a driver runs, and reports, each one separately.

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

use crate::secret::SecretValue;

/// A template variable (Vault's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// The account's name (dynamic: the generated user; static: the existing account).
    Name,
    /// Static roles: the existing account's name (Vault accepts both spellings there).
    Username,
    /// The password being set.
    Password,
    /// When the credential stops being valid (dynamic roles).
    Expiration,
}

impl Var {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "name" => Some(Self::Name),
            "username" => Some(Self::Username),
            "password" => Some(Self::Password),
            "expiration" => Some(Self::Expiration),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Username => "username",
            Self::Password => "password",
            Self::Expiration => "expiration",
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{{}}}}}", self.as_str())
    }
}

/// Which SQL lexer reads the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
}

/// The quoted context a variable sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// `'…'`: a string literal.
    Single,
    /// PostgreSQL `E'…'`: a string literal where `\` escapes.
    SingleBackslash,
    /// `"…"`: an identifier in PostgreSQL (and MySQL with ANSI_QUOTES), else a MySQL string.
    Double,
    /// MySQL `` `…` ``: an identifier.
    Backtick,
}

/// How the connected server reads quoted text; drivers learn it when they connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// PostgreSQL with `standard_conforming_strings = on` (the driver refuses a server without).
    Postgres,
    /// MySQL/MariaDB under the session's `sql_mode`.
    Mysql {
        /// `NO_BACKSLASH_ESCAPES`: `\` is an ordinary character in strings.
        no_backslash_escapes: bool,
        /// `ANSI_QUOTES`: `"…"` is an identifier, not a string.
        ansi_quotes: bool,
    },
}

impl Escaping {
    /// Escapes `value` for `quote` (the quotes themselves are the template's).
    fn escape(self, quote: Quote, value: &str, out: &mut String) {
        let (delimiter, backslash) = match (self, quote) {
            (_, Quote::Single) => (
                '\'',
                matches!(
                    self,
                    Escaping::Mysql {
                        no_backslash_escapes: false,
                        ..
                    }
                ),
            ),
            (_, Quote::SingleBackslash) => ('\'', true),
            (Escaping::Postgres, Quote::Double) => ('"', false),
            (
                Escaping::Mysql {
                    no_backslash_escapes,
                    ansi_quotes,
                },
                Quote::Double,
            ) => ('"', !ansi_quotes && !no_backslash_escapes),
            (_, Quote::Backtick) => ('`', false),
        };
        for c in value.chars() {
            if c == delimiter {
                out.push(c);
            } else if backslash && c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
}

/// A template that cannot be used safely or names an unknown variable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("`{{{{{name}}}}}` is not a variable here; use {allowed}")]
    UnknownVariable { name: String, allowed: String },
    #[error("`{{{{` at character {offset} is not closed by `}}}}`")]
    UnclosedVariable { offset: usize },
    #[error(
        "{var} at character {offset} is outside quotes: write it inside the quotes it belongs in, e.g. \"{var}\" for a name or '{var}' for a value (values are escaped for the quotes around them)"
    )]
    Unquoted { var: Var, offset: usize },
    #[error(
        "{var} at character {offset} is inside a comment: remove it (a value could end the comment)"
    )]
    InComment { var: Var, offset: usize },
    #[error(
        "{var} at character {offset} is inside a dollar-quoted body ($$…$$), where nothing can be escaped: write the statement outside the DO block or function body"
    )]
    InDollarQuote { var: Var, offset: usize },
    #[error(
        "{var} at character {offset} is inside a prefixed literal (U&'…', B'…', X'…'): use a plain '…' or \"…\""
    )]
    InPrefixedLiteral { var: Var, offset: usize },
    #[error(
        "a backslash at character {offset} inside quotes: MySQL reads it differently under NO_BACKSLASH_ESCAPES, so templates may not contain one"
    )]
    MysqlBackslash { offset: usize },
    #[error("MySQL executable comments (/*! … */) are not supported (character {offset})")]
    MysqlExecutableComment { offset: usize },
    #[error("{what} opened at character {offset} is never closed")]
    Unterminated { what: &'static str, offset: usize },
    #[error("the template holds no statement")]
    Empty,
}

/// A value that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("{var} has no value in this statement")]
    Missing { var: Var },
    #[error("the value of {var} contains a NUL character, which the database cannot store")]
    Nul { var: Var },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var { var: Var, quote: Quote },
}

/// One statement of a template, split and checked; render it with [`Statement::render`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    segments: Vec<Segment>,
}

/// The values of one rendering. Missing values are an error only if the statement uses them.
#[derive(Clone, Copy, Default)]
pub struct Values<'a> {
    pub name: Option<&'a str>,
    pub password: Option<&'a SecretValue>,
    pub expiration: Option<&'a str>,
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values")
            .field("name", &self.name)
            .field("password", &self.password)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// A rendered statement. It may hold a password: zeroed on drop, `[redacted]` in `Debug`.
pub struct Rendered {
    sql: Zeroizing<String>,
    carries_secret: bool,
}

impl Rendered {
    /// The SQL text. Callers must not log it when [`Rendered::carries_secret`].
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether a password was substituted: then server error messages about this statement
    /// may quote it, and drivers must not pass them on.
    pub fn carries_secret(&self) -> bool {
        self.carries_secret
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.carries_secret {
            f.write_str("Rendered([redacted])")
        } else {
            f.debug_tuple("Rendered").field(&*self.sql).finish()
        }
    }
}

/// Parses one template entry into its statements; `allowed` are the variables it may use.
pub fn parse(
    text: &str,
    dialect: Dialect,
    allowed: &[Var],
) -> Result<Vec<Statement>, TemplateError> {
    let chars: Vec<char> = text.chars().collect();
    let mut statements = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut text_buf = String::new();
    // The quoted context we are in, with where it opened (for errors).
    let mut quote: Option<(Quote, usize)> = None;
    let mut prefixed = false;
    let mut i = 0;

    let flush_statement =
        |segments: &mut Vec<Segment>, text_buf: &mut String, statements: &mut Vec<Statement>| {
            if !text_buf.is_empty() {
                segments.push(Segment::Text(std::mem::take(text_buf)));
            }
            let meaningful = segments.iter().any(|s| match s {
                Segment::Text(t) => !t.trim().is_empty(),
                Segment::Var { .. } => true,
            });
            if meaningful {
                // Whitespace around a statement is not part of it (and reads badly in errors).
                if let Some(Segment::Text(first)) = segments.first_mut() {
                    *first = first.trim_start().to_owned();
                }
                if let Some(Segment::Text(last)) = segments.last_mut() {
                    *last = last.trim_end().to_owned();
                }
                statements.push(Statement {
                    segments: std::mem::take(segments),
                });
            } else {
                segments.clear();
            }
        };

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // A variable: checked wherever it appears.
        if c == '{' && next == Some('{') {
            let (var, end) = read_variable(&chars, i, allowed)?;
            match quote {
                Some((_, _)) if prefixed => {
                    return Err(TemplateError::InPrefixedLiteral { var, offset: i });
                }
                Some((q, _)) => {
                    if !text_buf.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text_buf)));
                    }
                    segments.push(Segment::Var { var, quote: q });
                }
                None => return Err(TemplateError::Unquoted { var, offset: i }),
            }
            i = end;
            continue;
        }
        if let Some((q, _)) = quote {
            let delimiter = match q {
                Quote::Single | Quote::SingleBackslash => '\'',
                Quote::Double => '"',
                Quote::Backtick => '`',
            };
            if dialect == Dialect::Mysql && c == '\\' && q != Quote::Backtick {
                return Err(TemplateError::MysqlBackslash { offset: i });
            }
            if q == Quote::SingleBackslash && c == '\\' {
                // The escaped character is text, whatever it is.
                text_buf.push(c);
                if let Some(n) = next {
                    text_buf.push(n);
                }
                i += 2;
                continue;
            }
            text_buf.push(c);
            if c == delimiter {
                if next == Some(delimiter) {
                    text_buf.push(delimiter);
                    i += 2;
                    continue;
                }
                quote = None;
                prefixed = false;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' | '`' if c != '`' || dialect == Dialect::Mysql => {
                let (q, is_prefixed) = classify_opening(&chars, i, dialect);
                quote = Some((q, i));
                prefixed = is_prefixed;
                text_buf.push(c);
                i += 1;
            }
            ';' => {
                flush_statement(&mut segments, &mut text_buf, &mut statements);
                i += 1;
            }
            '-' if next == Some('-')
                && (dialect == Dialect::Postgres
                    || chars
                        .get(i + 2)
                        .is_none_or(|c| c.is_whitespace() || c.is_control())) =>
            {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                check_comment(&chars[i..end], i, allowed)?;
                text_buf.extend(&chars[i..end]);
                i = end;
            }
            '#' if dialect == Dialect::Mysql => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                check_comment(&chars[i..end], i, allowed)?;
                text_buf.extend(&chars[i..end]);
                i = end;
            }
            '/' if next == Some('*') => {
                if dialect == Dialect::Mysql && chars.get(i + 2) == Some(&'!') {
                    return Err(TemplateError::MysqlExecutableComment { offset: i });
                }
                let end =
                    block_comment_end(&chars, i, dialect).ok_or(TemplateError::Unterminated {
                        what: "a comment",
                        offset: i,
                    })?;
                check_comment(&chars[i..end], i, allowed)?;
                text_buf.extend(&chars[i..end]);
                i = end;
            }
            '$' if dialect == Dialect::Postgres => {
                if let Some(tag_end) = dollar_tag(&chars, i) {
                    let tag: Vec<char> = chars[i..tag_end].to_vec();
                    let body_end = find_subslice(&chars, tag_end, &tag).ok_or(
                        TemplateError::Unterminated {
                            what: "a dollar-quoted body",
                            offset: i,
                        },
                    )?;
                    let end = body_end + tag.len();
                    if let Some(p) = find_subslice(&chars[..end], tag_end, &['{', '{']) {
                        let (var, _) = read_variable(&chars, p, allowed)?;
                        return Err(TemplateError::InDollarQuote { var, offset: p });
                    }
                    text_buf.extend(&chars[i..end]);
                    i = end;
                } else {
                    text_buf.push(c);
                    i += 1;
                }
            }
            _ => {
                text_buf.push(c);
                i += 1;
            }
        }
    }
    if let Some((q, offset)) = quote {
        let what = match q {
            Quote::Backtick | Quote::Double
                if dialect == Dialect::Postgres || q == Quote::Backtick =>
            {
                "a quoted identifier"
            }
            _ => "a quoted string",
        };
        return Err(TemplateError::Unterminated { what, offset });
    }
    flush_statement(&mut segments, &mut text_buf, &mut statements);
    if statements.is_empty() {
        return Err(TemplateError::Empty);
    }
    Ok(statements)
}

/// Reads `{{ name }}` at `start`; returns the variable and the index after `}}`.
fn read_variable(
    chars: &[char],
    start: usize,
    allowed: &[Var],
) -> Result<(Var, usize), TemplateError> {
    let close = find_subslice(chars, start + 2, &['}', '}'])
        .ok_or(TemplateError::UnclosedVariable { offset: start })?;
    let name: String = chars[start + 2..close].iter().collect();
    let name = name.trim();
    match Var::parse(name) {
        Some(var) if allowed.contains(&var) => Ok((var, close + 2)),
        _ => Err(TemplateError::UnknownVariable {
            name: name.to_owned(),
            allowed: allowed
                .iter()
                .map(Var::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn check_comment(comment: &[char], offset: usize, allowed: &[Var]) -> Result<(), TemplateError> {
    if let Some(p) = find_subslice(comment, 0, &['{', '{']) {
        let var = read_variable(comment, p, allowed)
            .map(|(v, _)| v)
            .unwrap_or(Var::Name);
        return Err(TemplateError::InComment {
            var,
            offset: offset + p,
        });
    }
    Ok(())
}

/// The context a quote character at `i` opens, and whether a prefix (U&, B, X) makes it one
/// where values cannot be escaped.
fn classify_opening(chars: &[char], i: usize, dialect: Dialect) -> (Quote, bool) {
    let q = match chars[i] {
        '\'' => Quote::Single,
        '"' => Quote::Double,
        _ => Quote::Backtick,
    };
    if i == 0 {
        return (q, false);
    }
    let prev = chars[i - 1];
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let prefix_start = i - 1;
    let before_prefix = prefix_start.checked_sub(1).map(|p| chars[p]);
    let standalone_prefix = before_prefix.is_none_or(|c| !ident(c) && c != '&');
    match (dialect, prev) {
        (Dialect::Postgres, 'E' | 'e') if q == Quote::Single && standalone_prefix => {
            (Quote::SingleBackslash, false)
        }
        (_, 'N' | 'n') if q == Quote::Single && standalone_prefix => (q, false),
        // `U&'…'`, `U&"…"`, `B'…'`, `X'…'`, `_utf8'…'` and the like.
        (_, '&') => (q, true),
        (_, c) if ident(c) && q == Quote::Single => (q, true),
        _ => (q, false),
    }
}

/// The index after the end of a block comment starting at `start` (PostgreSQL nests them).
fn block_comment_end(chars: &[char], start: usize, dialect: Dialect) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < chars.len() {
        if chars[i] == '/' && chars[i + 1] == '*' && (depth == 0 || dialect == Dialect::Postgres) {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// If a dollar-quote tag (`$$` or `$tag$`) starts at `i`, the index after it.
fn dollar_tag(chars: &[char], i: usize) -> Option<usize> {
    // `a$1` and `$1` (a parameter) are not dollar quotes.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i + 1;
    if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while let Some(&c) = chars.get(j) {
        if c == '$' {
            return Some(j + 1);
        }
        if !(c.is_alphanumeric() || c == '_') {
            return None;
        }
        j += 1;
    }
    None
}

fn find_subslice(haystack: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl Statement {
    /// The variables this statement uses.
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var { var, .. } => Some(*var),
            Segment::Text(_) => None,
        })
    }

    /// Substitutes `values`, each escaped for the quotes around it.
    pub fn render(&self, values: &Values<'_>, escaping: Escaping) -> Result<Rendered, RenderError> {
        let mut sql = Zeroizing::new(String::new());
        let mut carries_secret = false;
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => sql.push_str(text),
                Segment::Var { var, quote } => {
                    let value: &str = match var {
                        Var::Name | Var::Username => {
                            values.name.ok_or(RenderError::Missing { var: *var })?
                        }
                        Var::Expiration => values
                            .expiration
                            .ok_or(RenderError::Missing { var: *var })?,
                        Var::Password => {
                            carries_secret = true;
                            let password =
                                values.password.ok_or(RenderError::Missing { var: *var })?;
                            // Non-UTF-8 passwords are never generated; a sealed admin value
                            // that is not text cannot be a SQL literal either.
                            password
                                .expose_str()
                                .ok_or(RenderError::Nul { var: *var })?
                        }
                    };
                    if value.contains('\0') {
                        return Err(RenderError::Nul { var: *var });
                    }
                    escaping.escape(*quote, value, &mut sql);
                }
            }
        }
        Ok(Rendered {
            sql,
            carries_secret,
        })
    }
}

/// Checks one Redis ACL rule of a role (`+@read`, `~cache:*`, …). The driver owns the user's
/// password and on/off state, so rules that touch them are refused, and rules are single
/// arguments: there is nothing to template.
pub fn check_acl_rule(rule: &str) -> Result<(), String> {
    if rule.is_empty() {
        return Err("an ACL rule cannot be empty".into());
    }
    if rule.contains("{{") {
        return Err(format!(
            "ACL rule {rule:?}: Redis rules take no template variables (the user name and password are passed as separate arguments)"
        ));
    }
    if rule.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "ACL rule {rule:?}: one rule per list entry, without spaces"
        ));
    }
    let lower = rule.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "on" | "off" | "nopass" | "resetpass" | "reset"
    ) || rule.starts_with(['>', '<', '#', '!'])
    {
        return Err(format!(
            "ACL rule {rule:?} changes the password or on/off state, which sealops manages: remove it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Var] = &[Var::Name, Var::Password, Var::Expiration];
    const MYSQL: Escaping = Escaping::Mysql {
        no_backslash_escapes: false,
        ansi_quotes: false,
    };

    fn render(
        text: &str,
        dialect: Dialect,
        escaping: Escaping,
        name: &str,
        password: &str,
    ) -> Vec<String> {
        let password = SecretValue::from(password);
        let values = Values {
            name: Some(name),
            password: Some(&password),
            expiration: Some("2030-01-01 00:00:00+00"),
        };
        parse(text, dialect, ALL)
            .expect("parses")
            .iter()
            .map(|s| {
                s.render(&values, escaping)
                    .expect("renders")
                    .sql()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn vault_postgres_template_is_escaped_per_context() {
        let sql = render(
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";",
            Dialect::Postgres,
            Escaping::Postgres,
            "v-a\"; DROP TABLE x; --",
            "p'w\\d",
        );
        assert_eq!(
            sql,
            [
                "CREATE ROLE \"v-a\"\"; DROP TABLE x; --\" WITH LOGIN PASSWORD 'p''w\\d' VALID UNTIL '2030-01-01 00:00:00+00'",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"v-a\"\"; DROP TABLE x; --\""
            ]
        );
    }

    #[test]
    fn postgres_escape_strings_double_backslashes() {
        let sql = render(
            "SELECT E'{{password}}'",
            Dialect::Postgres,
            Escaping::Postgres,
            "n",
            "a\\'b",
        );
        assert_eq!(sql, ["SELECT E'a\\\\''b'"]);
    }

    #[test]
    fn mysql_escapes_backslashes_unless_the_mode_says_otherwise() {
        let template = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON `t`.* TO \"{{name}}\"@'%'";
        let sql = render(template, Dialect::Mysql, MYSQL, "u`'\\", "p'\\");
        assert_eq!(
            sql,
            [
                "CREATE USER 'u`''\\\\'@'%' IDENTIFIED BY 'p''\\\\'",
                "GRANT SELECT ON `t`.* TO \"u`'\\\\\"@'%'"
            ]
        );
        let plain = Escaping::Mysql {
            no_backslash_escapes: true,
            ansi_quotes: false,
        };
        assert_eq!(
            render("SELECT '{{password}}'", Dialect::Mysql, plain, "n", "p'\\"),
            ["SELECT 'p''\\'"]
        );
        assert_eq!(
            render(
                "RENAME USER `{{name}}` TO x",
                Dialect::Mysql,
                MYSQL,
                "a`b\\",
                "p"
            ),
            ["RENAME USER `a``b\\` TO x"]
        );
    }

    #[test]
    fn unsafe_placements_are_refused() {
        type Expect = fn(&TemplateError) -> bool;
        let cases: &[(&str, Dialect, Expect)] = &[
            ("CREATE ROLE {{name}}", Dialect::Postgres, |e| {
                matches!(e, TemplateError::Unquoted { .. })
            }),
            ("SELECT 1 -- '{{name}}'", Dialect::Postgres, |e| {
                matches!(e, TemplateError::InComment { .. })
            }),
            ("SELECT 1 /* '{{name}}' */", Dialect::Mysql, |e| {
                matches!(e, TemplateError::InComment { .. })
            }),
            ("SELECT 1 # {{name}}", Dialect::Mysql, |e| {
                matches!(e, TemplateError::InComment { .. })
            }),
            (
                "DO $$ BEGIN EXECUTE 'DROP ROLE \"{{name}}\"'; END $$",
                Dialect::Postgres,
                |e| matches!(e, TemplateError::InDollarQuote { .. }),
            ),
            ("DO $x$ '{{name}}' $x$", Dialect::Postgres, |e| {
                matches!(e, TemplateError::InDollarQuote { .. })
            }),
            ("SELECT U&'{{name}}'", Dialect::Postgres, |e| {
                matches!(e, TemplateError::InPrefixedLiteral { .. })
            }),
            ("SELECT _utf8'{{name}}'", Dialect::Mysql, |e| {
                matches!(e, TemplateError::InPrefixedLiteral { .. })
            }),
            ("SELECT '{{nmae}}'", Dialect::Postgres, |e| {
                matches!(e, TemplateError::UnknownVariable { .. })
            }),
            ("SELECT '{{name'", Dialect::Postgres, |e| {
                matches!(e, TemplateError::UnclosedVariable { .. })
            }),
            ("SELECT '{{name}}", Dialect::Postgres, |e| {
                matches!(e, TemplateError::Unterminated { .. })
            }),
            ("SELECT 'a\\'", Dialect::Mysql, |e| {
                matches!(e, TemplateError::MysqlBackslash { .. })
            }),
            ("/*! '{{name}}' */", Dialect::Mysql, |e| {
                matches!(e, TemplateError::MysqlExecutableComment { .. })
            }),
            (" ; ;", Dialect::Postgres, |e| {
                matches!(e, TemplateError::Empty)
            }),
        ];
        for (text, dialect, expected) in cases {
            let err = parse(text, *dialect, ALL).expect_err(text);
            assert!(expected(&err), "{text}: {err:?}");
        }
        // A variable not allowed in this kind of statement reads like an unknown one.
        let err = parse(
            "DROP ROLE \"{{name}}\" '{{password}}'",
            Dialect::Postgres,
            &[Var::Name],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`{{password}}` is not a variable here; use {{name}}"
        );
    }

    #[test]
    fn quotes_inside_comments_and_dollar_bodies_do_not_confuse_the_lexer() {
        let sql = render(
            "-- it's a comment\nDO $$ BEGIN RAISE NOTICE 'x;y'; END $$; /* \" /* nested */ ' */ ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'",
            Dialect::Postgres,
            Escaping::Postgres,
            "n",
            "p",
        );
        assert_eq!(sql.len(), 2, "{sql:?}");
        assert!(sql[1].ends_with("ALTER ROLE \"n\" PASSWORD 'p'"), "{sql:?}");
        // `$1` and identifiers with `$` are not dollar quotes.
        assert_eq!(
            render(
                "SELECT a$b, $1, '{{name}}'",
                Dialect::Postgres,
                Escaping::Postgres,
                "n",
                "p"
            ),
            ["SELECT a$b, $1, 'n'"]
        );
    }

    #[test]
    fn nul_and_missing_values_are_errors() {
        let statement = &parse(
            "SELECT '{{password}}', '{{expiration}}'",
            Dialect::Postgres,
            ALL,
        )
        .unwrap()[0];
        let bad = SecretValue::from("a\0b");
        let values = Values {
            password: Some(&bad),
            expiration: Some("x"),
            ..Values::default()
        };
        assert_eq!(
            statement.render(&values, Escaping::Postgres).unwrap_err(),
            RenderError::Nul { var: Var::Password }
        );
        assert_eq!(
            statement
                .render(&Values::default(), Escaping::Postgres)
                .unwrap_err(),
            RenderError::Missing { var: Var::Password }
        );
    }

    #[test]
    fn rendered_statements_with_a_password_are_redacted() {
        let statement = &parse(
            "ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'",
            Dialect::Postgres,
            ALL,
        )
        .unwrap()[0];
        let password = SecretValue::from("hunter2");
        let rendered = statement
            .render(
                &Values {
                    name: Some("n"),
                    password: Some(&password),
                    expiration: None,
                },
                Escaping::Postgres,
            )
            .unwrap();
        assert!(rendered.carries_secret());
        assert_eq!(format!("{rendered:?}"), "Rendered([redacted])");
    }

    #[test]
    fn acl_rules() {
        assert!(check_acl_rule("+@read").is_ok());
        assert!(check_acl_rule("~cache:*").is_ok());
        for bad in [
            "",
            "on",
            "nopass",
            ">pw",
            "#abc",
            "reset",
            "+get {{name}}",
            "+@read ~*",
        ] {
            assert!(check_acl_rule(bad).is_err(), "{bad}");
        }
    }
}
