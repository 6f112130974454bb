//! Password policies and generation.
//!
//! A policy gives a length and a minimum count per character class. A class with minimum 0 is
//! not used at all, so `symbols: 0` (the default) means no symbols: the rule is the same for
//! every class and a policy reads as what it produces. The rest of the length is drawn from the
//! classes in use; the result is shuffled, every draw uniform from the operating system's CSPRNG.

use rand::Rng;
use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::SecretValue;

pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const DIGITS: &str = "0123456789";
/// Symbols allowed unencoded in a URL's user-info part (RFC 3986 unreserved and sub-delims
/// that connection strings do not treat specially) and inert in dotenv values and shells.
/// Quoting into SQL is correct whatever a password holds; this set is for the programs that
/// receive the password from an output file.
pub const SYMBOLS: &str = "!*+-.=_~";

/// How generated passwords look (`password_policy` of a role).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Total length (16 to 1024; default 32).
    #[serde(default = "default_length")]
    pub length: usize,
    /// Minimum number of lowercase letters; 0 leaves the class out (default 1).
    #[serde(default = "one")]
    pub lowercase: usize,
    /// Minimum number of uppercase letters; 0 leaves the class out (default 1).
    #[serde(default = "one")]
    pub uppercase: usize,
    /// Minimum number of digits; 0 leaves the class out (default 1).
    #[serde(default = "one")]
    pub digits: usize,
    /// Minimum number of symbols (from `!*+-.=_~`); 0 leaves the class out (default 0).
    #[serde(default)]
    pub symbols: usize,
}

fn default_length() -> usize {
    32
}
fn one() -> usize {
    1
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: default_length(),
            lowercase: 1,
            uppercase: 1,
            digits: 1,
            symbols: 0,
        }
    }
}

/// Below this a generated password is guessable offline from a leaked hash.
pub const MIN_LENGTH: usize = 16;
pub const MAX_LENGTH: usize = 1024;

impl PasswordPolicy {
    fn classes(&self) -> [(usize, &'static str); 4] {
        [
            (self.lowercase, LOWERCASE),
            (self.uppercase, UPPERCASE),
            (self.digits, DIGITS),
            (self.symbols, SYMBOLS),
        ]
    }

    /// Checks the policy can be met; the message says how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&self.length) {
            return Err(format!(
                "length {} must be between {MIN_LENGTH} and {MAX_LENGTH}",
                self.length
            ));
        }
        let required: usize = self.classes().iter().map(|(n, _)| n).sum();
        if required == 0 {
            return Err(
                "every character class has minimum 0, so no class is used: give at least one class a minimum of 1".into(),
            );
        }
        if required > self.length {
            return Err(format!(
                "the minimum counts add up to {required}, more than length {}: raise length or lower the minimums",
                self.length
            ));
        }
        Ok(())
    }

    /// A new password meeting the policy (which must be valid).
    pub fn generate(&self) -> SecretValue {
        let mut rng = OsRng;
        let mut chars: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(self.length));
        let mut pool = String::new();
        for (minimum, class) in self.classes() {
            if minimum == 0 {
                continue;
            }
            pool.push_str(class);
            let class = class.as_bytes();
            for _ in 0..minimum {
                chars.push(class[rng.gen_range(0..class.len())]);
            }
        }
        let pool = pool.as_bytes();
        while chars.len() < self.length {
            chars.push(pool[rng.gen_range(0..pool.len())]);
        }
        // The required characters were pushed first: shuffle so their positions are random.
        chars.shuffle(&mut rng);
        SecretValue::new(chars.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(password: &str, class: &str) -> usize {
        password.chars().filter(|c| class.contains(*c)).count()
    }

    #[test]
    fn generated_passwords_meet_the_minimums() {
        let policy = PasswordPolicy {
            length: 16,
            lowercase: 0,
            uppercase: 3,
            digits: 5,
            symbols: 8,
        };
        policy.validate().expect("valid");
        for _ in 0..200 {
            let password = policy.generate();
            let text = password.expose_str().expect("ascii");
            assert_eq!(text.len(), 16);
            assert_eq!(count(text, LOWERCASE), 0, "class with minimum 0 is unused");
            assert!(count(text, UPPERCASE) >= 3);
            assert!(count(text, DIGITS) >= 5);
            assert!(count(text, SYMBOLS) >= 8);
        }
        let default = PasswordPolicy::default().generate();
        assert_eq!(default.len(), 32);
        assert_ne!(default, PasswordPolicy::default().generate());
    }

    #[test]
    fn required_characters_are_not_always_in_front() {
        let policy = PasswordPolicy {
            length: 16,
            lowercase: 1,
            uppercase: 0,
            digits: 15,
            symbols: 0,
        };
        let positions: std::collections::BTreeSet<usize> = (0..200)
            .map(|_| {
                let p = policy.generate();
                p.expose_str()
                    .unwrap()
                    .find(|c: char| c.is_ascii_lowercase())
                    .unwrap()
            })
            .collect();
        assert!(positions.len() > 5, "{positions:?}");
    }

    #[test]
    fn impossible_policies_are_refused() {
        let too_many = PasswordPolicy {
            length: 16,
            symbols: 14,
            ..PasswordPolicy::default()
        };
        assert!(too_many.validate().unwrap_err().contains("add up to 17"));
        let none = PasswordPolicy {
            lowercase: 0,
            uppercase: 0,
            digits: 0,
            ..PasswordPolicy::default()
        };
        assert!(none.validate().unwrap_err().contains("no class is used"));
        let short = PasswordPolicy {
            length: 8,
            ..PasswordPolicy::default()
        };
        assert!(short.validate().is_err());
    }
}
