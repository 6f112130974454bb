//! Capabilities and operations, as Vault numbers and names them.

use std::fmt;

/// A set of capabilities (Vault's capability bitmap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    pub const NONE: Self = Self(0);
    pub const DENY: Self = Self(1);
    pub const CREATE: Self = Self(1 << 1);
    pub const READ: Self = Self(1 << 2);
    pub const UPDATE: Self = Self(1 << 3);
    pub const DELETE: Self = Self(1 << 4);
    pub const LIST: Self = Self(1 << 5);
    pub const SUDO: Self = Self(1 << 6);
    pub const PATCH: Self = Self(1 << 7);
    pub const SUBSCRIBE: Self = Self(1 << 8);
    pub const RECOVER: Self = Self(1 << 9);

    /// Every capability with its policy word, in Vault's bit order.
    pub const ALL: [(Self, &'static str); 10] = [
        (Self::DENY, "deny"),
        (Self::CREATE, "create"),
        (Self::READ, "read"),
        (Self::UPDATE, "update"),
        (Self::DELETE, "delete"),
        (Self::LIST, "list"),
        (Self::SUDO, "sudo"),
        (Self::PATCH, "patch"),
        (Self::SUBSCRIBE, "subscribe"),
        (Self::RECOVER, "recover"),
    ];

    /// The capability a policy word names (`"read"` → read); `None` for an unknown word.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == word)
            .map(|(cap, _)| *cap)
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// The policy words of this set, sorted alphabetically.
    pub fn words(self) -> Vec<&'static str> {
        let mut words: Vec<&'static str> = Self::ALL
            .iter()
            .filter(|(cap, _)| self.contains(*cap))
            .map(|(_, name)| *name)
            .collect();
        words.sort_unstable();
        words
    }

    /// Index of a single capability in [`Self::ALL`].
    pub(crate) fn index(self) -> Option<usize> {
        Self::ALL.iter().position(|(cap, _)| *cap == self)
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(", "))
    }
}

/// A request's operation (Vault's `logical.Operation` that policies govern).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Recover,
}

impl Operation {
    pub const ALL: [Self; 7] = [
        Self::Create,
        Self::Read,
        Self::Update,
        Self::Patch,
        Self::Delete,
        Self::List,
        Self::Recover,
    ];

    /// The capability that permits this operation.
    pub fn capability(self) -> Capabilities {
        match self {
            Self::Create => Capabilities::CREATE,
            Self::Read => Capabilities::READ,
            Self::Update => Capabilities::UPDATE,
            Self::Patch => Capabilities::PATCH,
            Self::Delete => Capabilities::DELETE,
            Self::List => Capabilities::LIST,
            Self::Recover => Capabilities::RECOVER,
        }
    }

    /// Whether Vault checks request parameters for this operation.
    pub fn checks_parameters(self) -> bool {
        matches!(
            self,
            Self::Read | Self::Update | Self::Create | Self::Patch | Self::Recover
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Recover => "recover",
        }
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown operation {text:?}; expected one of create, read, update, patch, delete, list, recover"
                )
            })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
