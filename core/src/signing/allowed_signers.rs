//! `.sealops/allowed_signers`: OpenSSH's allowed-signers file (`ssh-keygen(1)`, ALLOWED SIGNERS).
//!
//! Each line is `principals [options] keytype base64-key [comment]`; blank lines and lines starting
//! with `#` are ignored. Principals are an OpenSSH pattern list ([`super::pattern`]). Options are
//! `namespaces="…"` (a pattern list of signature namespaces), `valid-after="…"` and
//! `valid-before="…"` (`YYYYMMDD[HHMM[SS]]` with an optional `Z`/`UTC` suffix), keywords
//! case-insensitive, values in double quotes as OpenSSH requires.
//!
//! Differences from OpenSSH, all on the side of refusing:
//! - `cert-authority` lines are refused (sealops verifies plain keys only).
//! - The whole file is parsed up front: a malformed line is an error even when it names another
//!   principal (OpenSSH skips lines whose principals do not match before parsing them).
//! - Impossible dates (`20240231`) are refused rather than normalised.
//! - A time without `Z` is read as UTC, where OpenSSH reads it in the verifying machine's time
//!   zone: a verdict must not depend on the controller's `TZ`. Write the `Z` to make both agree.

use std::fmt;
use std::path::Path;

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey};

use super::pattern::{PatternMatch, match_pattern_list};

/// One parsed line of an allowed-signers file.
#[derive(Debug, Clone)]
pub struct SignerEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// The principals pattern list, as written (quotes removed).
    pub principals: String,
    /// `namespaces="…"`: the signature namespaces this key may be used for (pattern list).
    pub namespaces: Option<String>,
    /// `valid-after`: Unix seconds from which the key is valid.
    pub valid_after: Option<i64>,
    /// `valid-before`: Unix seconds after which the key has expired.
    pub valid_before: Option<i64>,
    pub key: PublicKey,
}

impl SignerEntry {
    /// The principals this line grants, in order: every non-negated entry of the pattern list,
    /// written as they are (so a pattern such as `*@example.com` comes back as itself, as
    /// `ssh-keygen -Y find-principals` prints it).
    pub fn granted_principals(&self) -> impl Iterator<Item = &str> {
        self.principals.split(',').filter(|p| !p.starts_with('!'))
    }
}

/// A parsed allowed-signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    source: String,
    entries: Vec<SignerEntry>,
}

/// Errors reading or parsing an allowed-signers file.
#[derive(Debug, thiserror::Error)]
pub enum AllowedSignersError {
    #[error("cannot read allowed signers file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}:{line}: {problem} (expected `principals [options] keytype base64-key`, see ssh-keygen(1) ALLOWED SIGNERS)"
    )]
    Line {
        file: String,
        line: usize,
        problem: String,
    },
}

/// Why a key may not sign for a principal/namespace at a time. `location` is `file:line` of the
/// allowed-signers line that listed the key but did not allow this use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("key {fingerprint} is not in the allowed signers file {file}")]
    UnknownKey { fingerprint: String, file: String },
    #[error("key {fingerprint} is not allowed to sign as principal {principal:?} in {file}")]
    NotForPrincipal {
        fingerprint: String,
        principal: String,
        file: String,
    },
    #[error(
        "{location}: key {fingerprint} is not permitted for signature namespace {namespace:?} (namespaces=\"{allowed}\")"
    )]
    NamespaceNotAllowed {
        location: String,
        fingerprint: String,
        namespace: String,
        allowed: String,
    },
    #[error(
        "{location}: key {fingerprint} is not yet valid: time {time} < valid-after {valid_after}"
    )]
    NotYetValid {
        location: String,
        fingerprint: String,
        time: Timestamp,
        valid_after: Timestamp,
    },
    #[error("{location}: key {fingerprint} has expired: time {time} > valid-before {valid_before}")]
    Expired {
        location: String,
        fingerprint: String,
        time: Timestamp,
        valid_before: Timestamp,
    },
}

/// Unix seconds, displayed as UTC `YYYY-MM-DDTHH:MM:SSZ` in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

/// The SHA-256 fingerprint of a key as `ssh-keygen -l` prints it (`SHA256:…`).
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl AllowedSigners {
    /// Reads and parses an allowed-signers file.
    pub fn load(path: &Path) -> Result<Self, AllowedSignersError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowedSignersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses allowed-signers text; `source` names it in errors (`source:line: …`).
    pub fn parse(text: &str, source: &str) -> Result<Self, AllowedSignersError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let fail = |problem: String| AllowedSignersError::Line {
                file: source.to_owned(),
                line: index + 1,
                problem,
            };
            if let Some(entry) = parse_line(line, index + 1).map_err(fail)? {
                entries.push(entry);
            }
        }
        Ok(Self {
            source: source.to_owned(),
            entries,
        })
    }

    /// Where this file came from, as given to [`AllowedSigners::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn entries(&self) -> &[SignerEntry] {
        &self.entries
    }

    /// Which principals `key` may sign as, for `namespace` at `time` (Unix seconds), like
    /// `ssh-keygen -Y find-principals`: the granted principals of every line listing the key whose
    /// options allow this use, deduplicated in file order. When the key is listed but no line
    /// allows the use, the rejection of the first such line is returned.
    pub fn principals_for_key(
        &self,
        key: &KeyData,
        namespace: &str,
        time: i64,
    ) -> Result<Vec<String>, KeyRejection> {
        let mut principals: Vec<String> = Vec::new();
        let mut first_rejection = None;
        for entry in self.entries.iter().filter(|e| e.key.key_data() == key) {
            match self.check_entry(entry, namespace, time) {
                Ok(()) => {
                    for principal in entry.granted_principals() {
                        if !principals.iter().any(|p| p == principal) {
                            principals.push(principal.to_owned());
                        }
                    }
                }
                Err(rejection) => {
                    first_rejection.get_or_insert(rejection);
                }
            }
        }
        if !principals.is_empty() {
            return Ok(principals);
        }
        Err(first_rejection.unwrap_or_else(|| KeyRejection::UnknownKey {
            fingerprint: fingerprint(key),
            file: self.source.clone(),
        }))
    }

    /// Whether `key` may sign as `principal` for `namespace` at `time`, like
    /// `ssh-keygen -Y verify -I principal`: some line whose principals pattern list matches
    /// `principal` lists the key and allows this use.
    pub fn check_principal(
        &self,
        principal: &str,
        key: &KeyData,
        namespace: &str,
        time: i64,
    ) -> Result<(), KeyRejection> {
        let mut key_listed = false;
        let mut first_rejection = None;
        for entry in self.entries.iter().filter(|e| e.key.key_data() == key) {
            key_listed = true;
            if match_pattern_list(principal, &entry.principals) != PatternMatch::Matched {
                continue;
            }
            match self.check_entry(entry, namespace, time) {
                Ok(()) => return Ok(()),
                Err(rejection) => {
                    first_rejection.get_or_insert(rejection);
                }
            }
        }
        Err(first_rejection.unwrap_or_else(|| {
            if key_listed {
                KeyRejection::NotForPrincipal {
                    fingerprint: fingerprint(key),
                    principal: principal.to_owned(),
                    file: self.source.clone(),
                }
            } else {
                KeyRejection::UnknownKey {
                    fingerprint: fingerprint(key),
                    file: self.source.clone(),
                }
            }
        }))
    }

    /// OpenSSH's order: namespace first, then valid-after, then valid-before.
    fn check_entry(
        &self,
        entry: &SignerEntry,
        namespace: &str,
        time: i64,
    ) -> Result<(), KeyRejection> {
        let location = || format!("{}:{}", self.source, entry.line);
        let print = || fingerprint(entry.key.key_data());
        if let Some(allowed) = &entry.namespaces
            && match_pattern_list(namespace, allowed) != PatternMatch::Matched
        {
            return Err(KeyRejection::NamespaceNotAllowed {
                location: location(),
                fingerprint: print(),
                namespace: namespace.to_owned(),
                allowed: allowed.clone(),
            });
        }
        if let Some(after) = entry.valid_after
            && time < after
        {
            return Err(KeyRejection::NotYetValid {
                location: location(),
                fingerprint: print(),
                time: Timestamp(time),
                valid_after: Timestamp(after),
            });
        }
        if let Some(before) = entry.valid_before
            && time > before
        {
            return Err(KeyRejection::Expired {
                location: location(),
                fingerprint: print(),
                time: Timestamp(time),
                valid_before: Timestamp(before),
            });
        }
        Ok(())
    }
}

const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// Parses one line; `Ok(None)` for blank and comment lines.
fn parse_line(line: &str, number: usize) -> Result<Option<SignerEntry>, String> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.starts_with('#') || line.trim_matches(WHITESPACE).is_empty() {
        return Ok(None);
    }
    let (principals, rest) = split_principals(line)?;
    if principals.is_empty() {
        return Err("empty principals field".to_owned());
    }
    let rest = rest.trim_matches(WHITESPACE);
    // As in OpenSSH: try the rest as a key; if it is not one, the first word is the options.
    let (options, key) = match PublicKey::from_openssh(rest) {
        Ok(key) => (None, key),
        Err(_) => {
            let (options, after) = split_options(rest)?;
            let after = after.trim_start_matches([' ', '\t']);
            if after.is_empty() {
                return Err(if rest.is_empty() {
                    "missing key after the principals".to_owned()
                } else {
                    format!("missing key after the options {options:?}")
                });
            }
            let key = PublicKey::from_openssh(after).map_err(|e| {
                let shown: String = after.chars().take(40).collect();
                format!("invalid public key {shown:?}… ({e}); expected e.g. `ssh-ed25519 AAAA…`")
            })?;
            (Some(options), key)
        }
    };
    let mut entry = SignerEntry {
        line: number,
        principals,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key,
    };
    if let Some(options) = options {
        parse_options(options, &mut entry)?;
    }
    if let (Some(after), Some(before)) = (entry.valid_after, entry.valid_before)
        && before <= after
    {
        return Err("\"valid-before\" time is before \"valid-after\"".to_owned());
    }
    Ok(Some(entry))
}

/// The principals field as OpenSSH's `strdelimw` splits it: up to whitespace, or with a
/// double-quoted part that may contain whitespace (the quotes are removed).
fn split_principals(line: &str) -> Result<(String, &str), String> {
    let Some(stop) = line.find([' ', '\t', '\r', '\n', '"']) else {
        return Err("missing key after the principals".to_owned());
    };
    if line.as_bytes()[stop] == b'"' {
        let quoted = &line[stop + 1..];
        let close = quoted
            .find('"')
            .ok_or_else(|| "unterminated quote in principals".to_owned())?;
        let principals = format!("{}{}", &line[..stop], &quoted[..close]);
        Ok((principals, &quoted[close + 1..]))
    } else {
        Ok((line[..stop].to_owned(), &line[stop + 1..]))
    }
}

/// The options word: up to the first space or tab outside double quotes (`\"` escapes a quote).
fn split_options(rest: &str) -> Result<(&str, &str), String> {
    let bytes = rest.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() && (quoted || (bytes[i] != b' ' && bytes[i] != b'\t')) {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if bytes[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    if quoted {
        return Err("invalid options: unterminated quote".to_owned());
    }
    Ok((&rest[..i], &rest[i..]))
}

/// OpenSSH's `sshsigopt_parse`.
fn parse_options(options: &str, entry: &mut SignerEntry) -> Result<(), String> {
    let mut rest = options;
    while !rest.is_empty() {
        if starts_with_ignore_case(rest, "cert-authority") {
            return Err(
                "cert-authority is not supported: sealops verifies plain keys, so list each signer's own key"
                    .to_owned(),
            );
        } else if let Some(value) = strip_option(rest, "namespaces") {
            let (namespaces, after) = dequote(value, "namespaces")?;
            if entry.namespaces.replace(namespaces).is_some() {
                return Err("multiple \"namespaces\" clauses".to_owned());
            }
            rest = after;
        } else if let Some(value) = strip_option(rest, "valid-after") {
            let (text, after) = dequote(value, "valid-after")?;
            let time = parse_time(&text)
                .map_err(|p| format!("invalid \"valid-after\" time {text:?}: {p}"))?;
            if entry.valid_after.replace(time).is_some() {
                return Err("multiple \"valid-after\" clauses".to_owned());
            }
            rest = after;
        } else if let Some(value) = strip_option(rest, "valid-before") {
            let (text, after) = dequote(value, "valid-before")?;
            let time = parse_time(&text)
                .map_err(|p| format!("invalid \"valid-before\" time {text:?}: {p}"))?;
            if entry.valid_before.replace(time).is_some() {
                return Err("multiple \"valid-before\" clauses".to_owned());
            }
            rest = after;
        } else {
            let word: String = rest.chars().take_while(|&c| c != ',' && c != '=').collect();
            return Err(format!(
                "unknown option {word:?} (supported: namespaces=\"…\", valid-after=\"…\", valid-before=\"…\")"
            ));
        }
        match rest.strip_prefix(',') {
            None if rest.is_empty() => break,
            None => {
                let shown: String = rest.chars().take(20).collect();
                return Err(format!(
                    "unexpected {shown:?} after an option (options are separated by commas)"
                ));
            }
            Some("") => return Err("unexpected end of options after a comma".to_owned()),
            Some(next) => rest = next,
        }
    }
    Ok(())
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `name=` (case-insensitive) at the start of `text`: the text after the `=`.
fn strip_option<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    if starts_with_ignore_case(text, name) && text.as_bytes().get(name.len()) == Some(&b'=') {
        Some(&text[name.len() + 1..])
    } else {
        None
    }
}

/// OpenSSH's `opt_dequote`: a double-quoted value, `\"` standing for a quote.
fn dequote<'a>(text: &'a str, option: &str) -> Result<(String, &'a str), String> {
    let Some(inner) = text.strip_prefix('"') else {
        return Err(format!(
            "{option}: value must be in double quotes, e.g. {option}=\"…\""
        ));
    };
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &inner[i + 1..])),
            '\\' if inner[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(format!("{option}: missing end quote"))
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC`
/// (case-insensitive), as Unix seconds. Always UTC (see the module docs).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let digits = if text.len() > 1 && text[text.len() - 1..].eq_ignore_ascii_case("z") {
        &text[..text.len() - 1]
    } else if text.len() > 3
        && text.is_char_boundary(text.len() - 3)
        && text[text.len() - 3..].eq_ignore_ascii_case("utc")
    {
        &text[..text.len() - 3]
    } else {
        text
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z"
                .to_owned(),
        );
    }
    let field = |range: std::ops::Range<usize>| -> u32 {
        digits.get(range).map_or(0, |d| d.parse().unwrap_or(0))
    };
    let month =
        time::Month::try_from(field(4..6) as u8).map_err(|_| "month out of range".to_owned())?;
    let date = time::Date::from_calendar_date(field(0..4) as i32, month, field(6..8) as u8)
        .map_err(|_| "no such date".to_owned())?;
    let clock = time::Time::from_hms(field(8..10) as u8, field(10..12) as u8, field(12..14) as u8)
        .map_err(|_| "no such time of day".to_owned())?;
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    if seconds <= 0 {
        return Err("time must be after 1970-01-01T00:00:00Z".to_owned());
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8QS83a1nJ974NAXAKDHqY89qAqHMmu6VBR0rwVqcGk";

    fn one(line: &str) -> Result<SignerEntry, String> {
        parse_line(line, 1).map(|e| e.expect("an entry"))
    }

    #[test]
    fn plain_line_with_comment() {
        let entry = one(&format!(
            "alice@example.com,bob@example.com {KEY} alice laptop"
        ))
        .unwrap();
        assert_eq!(entry.principals, "alice@example.com,bob@example.com");
        assert!(entry.namespaces.is_none());
    }

    #[test]
    fn options_are_case_insensitive_and_quoted() {
        let entry = one(&format!(
            "*@example.com NameSpaces=\"git,file\",VALID-AFTER=\"20240101Z\",valid-before=\"20250101000000\" {KEY}"
        ))
        .unwrap();
        assert_eq!(entry.namespaces.as_deref(), Some("git,file"));
        assert_eq!(entry.valid_after, Some(1_704_067_200));
        assert_eq!(entry.valid_before, Some(1_735_689_600));
    }

    #[test]
    fn quoted_principals_may_hold_spaces() {
        let entry = one(&format!("\"a b@x,c@x\" {KEY}")).unwrap();
        assert_eq!(entry.principals, "a b@x,c@x");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |line: &str| one(line).unwrap_err();
        assert!(err("alice").contains("missing key"));
        assert!(
            err(&format!("alice cert-authority {KEY}")).contains("cert-authority is not supported")
        );
        assert!(err(&format!("alice valid-after=20240101 {KEY}")).contains("double quotes"));
        assert!(err(&format!("alice valid-after=\"2024\" {KEY}")).contains("YYYYMMDD"));
        assert!(err(&format!("alice valid-after=\"20240231\" {KEY}")).contains("no such date"));
        assert!(err(&format!("alice foo=\"x\" {KEY}")).contains("unknown option \"foo\""));
        assert!(
            err(&format!("alice namespaces=\"a\",namespaces=\"b\" {KEY}")).contains("multiple")
        );
        assert!(err(&format!("alice namespaces=\"a\", {KEY}")).contains("end of options"));
        assert!(err("alice ssh-ed25519 AAAAnotakey").contains("invalid public key"));
        assert!(
            err(&format!(
                "alice valid-after=\"20250101\",valid-before=\"20240101\" {KEY}"
            ))
            .contains("before \"valid-after\"")
        );
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let text = format!("# signers\n\nalice {KEY}\nbob\n");
        let err = AllowedSigners::parse(&text, ".sealops/allowed_signers").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".sealops/allowed_signers:4: missing key"),
            "{err}"
        );
    }

    #[test]
    fn lookups_follow_openssh_rules() {
        let text = format!(
            "old@x valid-before=\"20200101Z\" {KEY}\nfile@x namespaces=\"file\" {KEY}\nnew@x,!bad@x {KEY}\n"
        );
        let signers = AllowedSigners::parse(&text, "as").unwrap();
        let key = signers.entries()[0].key.key_data().clone();
        let t_2024 = 1_718_000_000;
        // Only the line whose options allow git in 2024 grants principals.
        assert_eq!(
            signers.principals_for_key(&key, "git", t_2024).unwrap(),
            ["new@x"]
        );
        assert_eq!(
            signers
                .principals_for_key(&key, "file", 1_500_000_000)
                .unwrap(),
            ["old@x", "file@x", "new@x"]
        );
        assert!(
            signers
                .check_principal("new@x", &key, "git", t_2024)
                .is_ok()
        );
        assert!(matches!(
            signers.check_principal("old@x", &key, "git", t_2024),
            Err(KeyRejection::Expired { location, .. }) if location == "as:1"
        ));
        assert!(matches!(
            signers.check_principal("file@x", &key, "git", t_2024),
            Err(KeyRejection::NamespaceNotAllowed { location, .. }) if location == "as:2"
        ));
        assert!(matches!(
            signers.check_principal("bad@x", &key, "git", t_2024),
            Err(KeyRejection::NotForPrincipal { .. })
        ));
        // Boundaries are inclusive, as in OpenSSH.
        let edge = AllowedSigners::parse(
            &format!("e@x valid-after=\"19700102Z\",valid-before=\"19700103Z\" {KEY}"),
            "as",
        )
        .unwrap();
        assert!(edge.check_principal("e@x", &key, "git", 86_400).is_ok());
        assert!(edge.check_principal("e@x", &key, "git", 172_800).is_ok());
        assert!(edge.check_principal("e@x", &key, "git", 86_399).is_err());
        assert!(edge.check_principal("e@x", &key, "git", 172_801).is_err());
    }

    #[test]
    fn times_accept_z_and_utc_suffixes() {
        assert_eq!(parse_time("19700102"), Ok(86_400));
        assert_eq!(parse_time("197001020000Z"), Ok(86_400));
        assert_eq!(parse_time("19700102000001utc"), Ok(86_401));
        assert!(parse_time("19700101").is_err());
        assert!(parse_time("2024010").is_err());
        assert!(parse_time("2024-1-01").is_err());
    }
}
