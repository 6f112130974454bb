//! Secret bytes in memory.
//!
//! Every decrypted value and every session key lives behind [`SecretValue`] or
//! [`SessionKey`](crate::envelope::SessionKey): the bytes are zeroed on drop and `Debug` prints
//! `[redacted]`, so a secret cannot reach a log line through `{:?}`.

use std::fmt;

use zeroize::Zeroizing;

/// A decrypted (or about to be sealed) secret value: arbitrary bytes, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of the bytes; they are zeroed when the value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext bytes. Callers must not log or print them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as UTF-8, or `None` when the value is binary.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self::new(value.as_bytes().to_vec())
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value.into_bytes())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let value = SecretValue::from("hunter2");
        assert_eq!(format!("{value:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&value)), "Some([redacted])");
    }
}
