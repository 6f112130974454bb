//! Where a trail lives on the audit branch.
//!
//! One directory per chain, a chain being one controller under one key:
//!
//! ```text
//! audit/trails/<controller>/<key-id>/key.pub                          ed25519:<base64>
//! audit/trails/<controller>/<key-id>/head.json                        the newest seal
//! audit/trails/<controller>/<key-id>/YYYY/MM/DD/<first-seq>.jsonl     one pushed batch
//! ```
//!
//! A controller that lost its state gets a new key and so a new chain beside the old one, which
//! stays as it was. `<key-id>` is derived from the key ([`key_id`]), and every name here is
//! checked against the content it names: a file is never trusted for its name alone.
//! A push adds files and never rewrites one, so its cost does not grow with the day's trail.

use sha2::{Digest, Sha256};

/// The directory of every chain.
pub const TRAILS_DIR: &str = "audit/trails";
/// A chain's public key, inside its directory.
pub const KEY_FILE: &str = "key.pub";
/// A chain's newest seal, inside its directory.
pub const HEAD_FILE: &str = "head.json";

/// The directory name of `public_key`'s chains: the first 128 bits of its SHA-256, hex.
pub fn key_id(public_key: &str) -> String {
    hex::encode(&Sha256::digest(public_key.trim().as_bytes())[..16])
}

/// `audit/trails/<controller>/<key-id>`.
pub fn chain_dir(controller: &str, public_key: &str) -> String {
    format!("{TRAILS_DIR}/{controller}/{}", key_id(public_key))
}

/// A batch file's path inside its chain directory: the day of its first record (`YYYY-MM-DD…`
/// time) and the sequence number of its first line, zero-padded so names sort in chain order.
pub fn batch_file(day_of: &str, first_seq: u64) -> String {
    let day = day_of.get(..10).unwrap_or("0000-00-00").replace('-', "/");
    format!("{day}/{first_seq:012}.jsonl")
}

/// The parts of a path under [`TRAILS_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailPath<'p> {
    Key {
        controller: &'p str,
        key_id: &'p str,
    },
    Head {
        controller: &'p str,
        key_id: &'p str,
    },
    Batch {
        controller: &'p str,
        key_id: &'p str,
        /// `YYYY-MM-DD`.
        day: String,
        first_seq: u64,
    },
}

impl<'p> TrailPath<'p> {
    /// The controller whose trail the path is in.
    pub fn controller(&self) -> &'p str {
        match self {
            Self::Key { controller, .. }
            | Self::Head { controller, .. }
            | Self::Batch { controller, .. } => controller,
        }
    }

    /// Parses `path`; `None` for anything outside the layout.
    pub fn parse(path: &'p str) -> Option<Self> {
        let rest = path.strip_prefix(TRAILS_DIR)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let valid_key_id =
            |id: &str| id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match parts.as_slice() {
            [controller, key_id, file]
                if crate::controller_config::valid_controller_id(controller)
                    && valid_key_id(key_id) =>
            {
                match *file {
                    KEY_FILE => Some(Self::Key { controller, key_id }),
                    HEAD_FILE => Some(Self::Head { controller, key_id }),
                    _ => None,
                }
            }
            [controller, key_id, y, m, d, file]
                if crate::controller_config::valid_controller_id(controller)
                    && valid_key_id(key_id) =>
            {
                let digits =
                    |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
                let seq = file.strip_suffix(".jsonl")?;
                (digits(y, 4) && digits(m, 2) && digits(d, 2) && digits(seq, 12)).then(|| {
                    Self::Batch {
                        controller,
                        key_id,
                        day: format!("{y}-{m}-{d}"),
                        first_seq: seq.parse().unwrap_or(0),
                    }
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_strangers_are_refused() {
        let key = "ed25519:AAAA";
        let dir = chain_dir("node-1", key);
        let batch = format!("{dir}/{}", batch_file("2026-12-05T01:02:03.000000000Z", 42));
        assert_eq!(
            TrailPath::parse(&batch),
            Some(TrailPath::Batch {
                controller: "node-1",
                key_id: &key_id(key),
                day: "2026-12-05".into(),
                first_seq: 42
            })
        );
        assert!(matches!(
            TrailPath::parse(&format!("{dir}/{KEY_FILE}")),
            Some(TrailPath::Key { .. })
        ));
        for stranger in [
            "audit/2026/11/28/c1.jsonl",
            "audit/trails/c1/short/key.pub",
            &format!("{dir}/notes.txt"),
            &format!("{dir}/2026/12/05/42.jsonl"),
            &format!("audit/trails/../{}/key.pub", key_id(key)),
        ] {
            assert_eq!(TrailPath::parse(stranger), None, "{stranger}");
        }
    }
}
