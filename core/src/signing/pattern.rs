//! OpenSSH pattern lists (`ssh_config(5)` PATTERNS), as `match.c`'s `match_pattern_list` does
//! them: comma-separated patterns, `*` for any run of characters, `?` for exactly one, a leading
//! `!` negating a pattern. A negated pattern that matches wins over every positive one.

/// How a string fares against a pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternMatch {
    /// A positive pattern matched and no negated one did.
    Matched,
    /// A negated pattern (`!…`) matched: the string is excluded whatever else matches.
    Excluded,
    /// Nothing matched.
    NoMatch,
}

/// OpenSSH copies each sub-pattern into a 1024-byte buffer and gives up (no match) on longer ones.
const MAX_SUBPATTERN: usize = 1023;

/// Matches `string` against the comma-separated `patterns` exactly as OpenSSH's
/// `match_pattern_list(string, patterns, 0)` (case-sensitive).
pub fn match_pattern_list(string: &str, patterns: &str) -> PatternMatch {
    let mut positive = false;
    let mut rest = patterns.as_bytes();
    while !rest.is_empty() {
        let negated = rest[0] == b'!';
        if negated {
            rest = &rest[1..];
        }
        let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        let sub = &rest[..end];
        if sub.len() >= MAX_SUBPATTERN {
            return PatternMatch::NoMatch;
        }
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if match_pattern(string.as_bytes(), sub) {
            if negated {
                return PatternMatch::Excluded;
            }
            positive = true;
        }
    }
    if positive {
        PatternMatch::Matched
    } else {
        PatternMatch::NoMatch
    }
}

/// One pattern: `*` matches any run (possibly empty), `?` exactly one byte, anything else itself.
pub fn match_pattern(string: &[u8], pattern: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`: linear in practice and free
    // of the exponential recursion of the C original on hostile patterns.
    let (mut s, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < string.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, s));
                p += 1;
            }
            Some(&c) if c == b'?' || c == string[s] => {
                s += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_s)) => {
                    p = star_p + 1;
                    s = star_s + 1;
                    star = Some((star_p, star_s + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_openssh() {
        assert!(match_pattern(b"alice@example.com", b"*@example.com"));
        assert!(match_pattern(b"a", b"?"));
        assert!(!match_pattern(b"", b"?"));
        assert!(match_pattern(b"", b"*"));
        assert!(match_pattern(b"abc", b"a*c"));
        assert!(match_pattern(b"abxbc", b"a*bc"));
        assert!(!match_pattern(b"abcd", b"a*c"));
        assert!(match_pattern(b"a*b", b"a*b"));
    }

    #[test]
    fn negation_wins_and_empty_subpatterns_match_only_empty() {
        use PatternMatch::*;
        assert_eq!(match_pattern_list("bob@x", "*@x,!bob@x"), Excluded);
        assert_eq!(match_pattern_list("alice@x", "*@x,!bob@x"), Matched);
        assert_eq!(match_pattern_list("carol@y", "*@x,!bob@x"), NoMatch);
        assert_eq!(match_pattern_list("", "a,,b"), Matched);
        assert_eq!(match_pattern_list("a", "!b"), NoMatch);
    }

    #[test]
    fn overlong_subpattern_fails_the_whole_list() {
        let long = "x".repeat(MAX_SUBPATTERN);
        assert_eq!(
            match_pattern_list("a", &format!("a,{long}")),
            PatternMatch::NoMatch
        );
        let fits = "x".repeat(MAX_SUBPATTERN - 1);
        assert_eq!(
            match_pattern_list("a", &format!("a,{fits}")),
            PatternMatch::Matched
        );
    }
}
