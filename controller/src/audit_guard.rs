//! What this controller knows it pushed to the audit branch, and the check of the branch
//! against it before every push.
//!
//! The branch is writable by anyone with push access, so nothing on it is trusted for what the
//! controller does next: not its head file, not its idea of where the chain ends. The
//! controller keeps its own record of its last confirmed push ([`PushedState`], in the state
//! directory, and the commit pinned under [`PUSHED_REF`] so its objects stay), builds every
//! push from that, and reports any difference as tampering ([`compare`]): a chain cut, edited,
//! replaced or deleted, or another key's trail under this controller's name. The push that
//! follows puts back what the branch lost.

use std::path::Path;

use git2::{Oid, Repository, Tree};
use sealops_core::audit::{Line, Registry, Seal, chain_tree_in, layout, other_chains_in};
use serde::{Deserialize, Serialize};

/// The state file: the last confirmed push and the one in flight.
pub const PUSHED_FILE: &str = "audit-pushed.json";
/// The ref (in the repository the controller builds audit commits in) holding its last
/// confirmed audit commit, so the objects it may need to restore are never pruned.
pub const PUSHED_REF: &str = "refs/sealops/audit-pushed";

/// One push of this controller's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedChain {
    pub commit: String,
    /// The chain directory's tree in that commit.
    pub chain_tree: String,
    /// The newest seal's line.
    pub head: String,
    pub last_seq: u64,
}

impl PushedChain {
    pub fn chain_tree(&self) -> Option<Oid> {
        Oid::from_str(&self.chain_tree).ok()
    }

    /// The newest seal, as a witness of where the chain has reached.
    pub fn seal(&self) -> Option<Seal> {
        match serde_json::from_str::<Line>(&self.head).ok()? {
            Line::Seal(seal) => Some(seal),
            Line::Record(_) => None,
        }
    }
}

/// `audit-pushed.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedState {
    /// The key of the chain this describes; another key (a new `audit.key`) starts afresh.
    pub public_key: String,
    /// The last push the remote confirmed.
    pub confirmed: Option<PushedChain>,
    /// Written before a push is sent: if the controller dies before hearing the answer, the
    /// branch holding exactly this is its own write, not tampering.
    pub pending: Option<PushedChain>,
}

impl PushedState {
    /// Loads the state of `public_key`'s chain (empty when none was saved, or for another key).
    pub fn load(state_dir: &Path, public_key: &str) -> Result<Self, String> {
        let path = state_dir.join(PUSHED_FILE);
        let fresh = Self {
            public_key: public_key.to_owned(),
            ..Self::default()
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: Self = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "{} is damaged ({e}); it records what this controller pushed to the audit branch — restore it from backup, or move it aside to start checking afresh",
                        path.display()
                    )
                })?;
                Ok(if state.public_key == public_key {
                    state
                } else {
                    fresh
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), String> {
        let path = state_dir.join(PUSHED_FILE);
        let mut text = serde_json::to_string_pretty(self).expect("the state serialises");
        text.push('\n');
        sealops_core::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// What the branch holds of this controller, against what it pushed.
#[derive(Debug, Default)]
pub struct Comparison {
    /// The chain to build the next push on: the controller's own last confirmed push.
    pub base: Option<PushedChain>,
    /// The pending push was found on the branch: it is now the confirmed one.
    pub confirmed_pending: bool,
    /// Differences that only someone else's write explains.
    pub tampering: Vec<String>,
}

/// Compares the branch at `tip` with `state`. `anchor` is the first journal line when it is a
/// seal (the newest seal this controller pushed, kept by the journal): a branch chain ending
/// exactly there is this controller's own, even with the state file lost.
pub fn compare(
    repo: &Repository,
    tip: Option<(Oid, &Tree<'_>)>,
    controller: &str,
    public_key: &str,
    state: &PushedState,
    anchor: Option<&str>,
    registry: Option<&Registry>,
) -> Result<Comparison, String> {
    let dir = layout::chain_dir(controller, public_key);
    let remote = tip.and_then(|(_, tree)| chain_tree_in(tree, controller, public_key));
    let mut comparison = Comparison {
        base: state.confirmed.clone(),
        ..Comparison::default()
    };
    let expected = state.confirmed.as_ref().and_then(PushedChain::chain_tree);
    if remote != expected {
        let pending = state.pending.as_ref();
        if remote.is_some() && pending.and_then(PushedChain::chain_tree) == remote {
            comparison.base = pending.cloned();
            comparison.confirmed_pending = true;
        } else if let (None, Some(remote_tree), Some((tip_commit, _))) = (&expected, remote, tip) {
            let head = head_of(repo, remote_tree);
            match (&head, anchor) {
                (Some((text, last_seq)), Some(anchor)) if text == anchor.trim() => {
                    comparison.base = Some(PushedChain {
                        commit: tip_commit.to_string(),
                        chain_tree: remote_tree.to_string(),
                        head: text.clone(),
                        last_seq: *last_seq,
                    });
                }
                (Some((text, last_seq)), _) if signed_by(text, public_key) => {
                    return Err(format!(
                        "the audit branch holds a trail under this controller's key ({dir}) up to record {last_seq} that its state directory does not know: audit.key was restored without the rest of the state. Move audit.key aside and restart: a new key starts a new chain, which needs an approved registration (`sealops-controller audit-key`); the old trail stays valid"
                    ));
                }
                _ => comparison.tampering.push(format!(
                    "{dir} holds a trail this controller never wrote (its head is not sealed by this controller's key): replaced with the controller's own"
                )),
            }
        } else {
            let what = match (remote, &state.confirmed) {
                (None, _) => "was deleted".to_owned(),
                (Some(remote_tree), Some(ours)) => match head_of(repo, remote_tree) {
                    Some((_, seq)) if seq < ours.last_seq => format!(
                        "was cut back to record {seq} (this controller pushed up to record {})",
                        ours.last_seq
                    ),
                    Some((_, seq)) if seq > ours.last_seq => format!(
                        "has a head at record {seq} that this controller did not write (it pushed up to record {})",
                        ours.last_seq
                    ),
                    _ => "was changed (records, seals or head this controller did not write)"
                        .to_owned(),
                },
                (Some(_), None) => "was changed".to_owned(),
            };
            comparison.tampering.push(format!(
                "this controller's audit trail {dir} {what}: the push restores its own copy"
            ));
        }
    }
    if let Some((_, tree)) = tip {
        for (key_id, key) in other_chains_in(repo, tree, controller, public_key) {
            let registered = registry.is_some_and(|r| r.is_registered(controller, &key));
            let named_right = layout::key_id(&key) == key_id;
            if !registered || !named_right {
                comparison.tampering.push(format!(
                    "{}/{controller}/{key_id} is a trail under this controller's name signed by a key not registered for it in .sealops/controllers.yaml: a forged trail",
                    layout::TRAILS_DIR
                ));
            }
        }
    }
    Ok(comparison)
}

/// The head seal's line and last record of the chain tree `id`.
fn head_of(repo: &Repository, id: Oid) -> Option<(String, u64)> {
    let tree = repo.find_tree(id).ok()?;
    // Bounded: the branch's head.json is anyone's to replace, and a small compressed blob
    // inflates to gigabytes.
    let blob = sealops_core::audit::blob_within(
        repo,
        tree.get_name(layout::HEAD_FILE)?.id(),
        sealops_core::audit::MAX_SMALL_FILE_BYTES,
    )
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&blob).trim().to_owned();
    match serde_json::from_str::<Line>(&text).ok()? {
        Line::Seal(seal) => Some((text, seal.seal.last_seq)),
        Line::Record(_) => None,
    }
}

fn signed_by(head: &str, public_key: &str) -> bool {
    matches!(
        serde_json::from_str::<Line>(head),
        Ok(Line::Seal(seal)) if seal.seal.public_key == public_key && seal.signature_verifies()
    )
}

/// The registry of `commit` (`.sealops/controllers.yaml`): `None` when the commit has none,
/// `Err` when it cannot be read or parsed.
pub fn registry_at(repo: &Repository, commit: &str) -> Result<Option<Registry>, String> {
    let tree = Oid::from_str(commit)
        .and_then(|id| repo.find_commit(id))
        .and_then(|c| c.tree())
        .map_err(|e| format!("reading the applied commit {commit}: {}", e.message()))?;
    let Ok(entry) = tree.get_path(Path::new(sealops_core::repo::CONTROLLERS_FILE)) else {
        return Ok(None);
    };
    let blob = repo
        .find_blob(entry.id())
        .map_err(|e| e.message().to_owned())?;
    Registry::parse(
        &String::from_utf8_lossy(blob.content()),
        sealops_core::repo::CONTROLLERS_FILE,
    )
    .map(Some)
    .map_err(|e| e.to_string())
}
