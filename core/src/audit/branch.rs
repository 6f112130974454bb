//! The audit branch: reading a trail from a commit, and appending a controller's lines to it.

use std::path::Path;

use git2::{Oid, Repository, Signature, Tree};

use super::layout::{HEAD_FILE, KEY_FILE, TRAILS_DIR, batch_file, chain_dir, key_id};
use super::record::Line;
use super::verify::TrailFile;

/// Every file under `audit/` in `tree`.
pub fn trail_in_tree(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<TrailFile>, git2::Error> {
    let mut files = Vec::new();
    let Ok(entry) = tree.get_path(Path::new("audit")) else {
        return Ok(files);
    };
    let audit = repo.find_tree(entry.id())?;
    let mut problem = None;
    audit.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return git2::TreeWalkResult::Ok;
        }
        let Ok(name) = entry.name() else {
            return git2::TreeWalkResult::Ok;
        };
        match repo.find_blob(entry.id()) {
            Ok(blob) => files.push(TrailFile {
                path: format!("audit/{dir}{name}"),
                text: String::from_utf8_lossy(blob.content()).into_owned(),
            }),
            Err(e) => {
                problem = Some(e);
                return git2::TreeWalkResult::Abort;
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    match problem {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

/// The tree of `controller`'s chain under `public_key` in `tree`, if there is one.
pub fn chain_tree_in(tree: &Tree<'_>, controller: &str, public_key: &str) -> Option<Oid> {
    tree.get_path(Path::new(&chain_dir(controller, public_key)))
        .ok()
        .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
        .map(|e| e.id())
}

/// The other keys' chains of `controller` in `tree`: (key id, published key text).
pub fn other_chains_in(
    repo: &Repository,
    tree: &Tree<'_>,
    controller: &str,
    public_key: &str,
) -> Vec<(String, String)> {
    let ours = key_id(public_key);
    let Ok(entry) = tree.get_path(Path::new(&format!("{TRAILS_DIR}/{controller}"))) else {
        return Vec::new();
    };
    let Ok(dir) = repo.find_tree(entry.id()) else {
        return Vec::new();
    };
    dir.iter()
        .filter_map(|e| {
            let name = e.name().ok()?.to_owned();
            (name != ours).then_some(())?;
            let key = repo
                .find_tree(e.id())
                .ok()
                .and_then(|t| t.get_name(KEY_FILE).map(|k| k.id()))
                .and_then(|id| repo.find_blob(id).ok())
                .map(|b| String::from_utf8_lossy(b.content()).trim().to_owned())
                .unwrap_or_default();
            Some((name, key))
        })
        .collect()
}

/// A chain after an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The new commit on top of the branch tip.
    pub commit: Oid,
    /// The chain's directory tree in it.
    pub chain_tree: Oid,
    /// The newest seal's line (the chain's head).
    pub head: String,
    /// Its last record.
    pub last_seq: u64,
}

/// Commits `lines` (records and seals of one controller, ending with a seal) on top of
/// `parent`, in the chain directory of (`controller`, `public_key`).
///
/// The chain directory is rebuilt from `chain_base`, the chain tree this controller itself
/// last pushed (`None`: it never pushed under this key), never from what the branch holds
/// there: a branch whose copy was cut, edited or replaced gets the controller's own copy
/// back. Lines `chain_base` already holds (a replay of the journal after a crash between push
/// and acknowledgement) are skipped. Each call adds new batch files and rewrites none, so its
/// cost is that of the batch, not of the day's trail. `None` when the branch already holds
/// exactly the chain this would make.
pub fn append_commit(
    repo: &Repository,
    parent: Option<Oid>,
    controller: &str,
    public_key: &str,
    chain_base: Option<Oid>,
    lines: &[String],
) -> Result<Option<Appended>, git2::Error> {
    let parent_commit = parent.map(|p| repo.find_commit(p)).transpose()?;
    let base_tree = parent_commit.as_ref().map(|c| c.tree()).transpose()?;
    let chain_tree = match chain_base {
        Some(id) => Some(repo.find_tree(id).map_err(|e| {
            git2::Error::from_str(&format!(
                "the audit trail this controller last pushed (tree {id}) is no longer in its repository ({}); it cannot be restored from here",
                e.message()
            ))
        })?),
        None => None,
    };
    let base_head = chain_tree
        .as_ref()
        .and_then(|t| t.get_name(HEAD_FILE).map(|e| e.id()))
        .and_then(|id| repo.find_blob(id).ok())
        .and_then(|b| {
            let text = String::from_utf8_lossy(b.content()).trim().to_owned();
            match serde_json::from_str::<Line>(&text).ok()? {
                Line::Seal(seal) => Some((text, seal.seal.last_seq)),
                Line::Record(_) => None,
            }
        });
    let already = base_head.as_ref().map_or(0, |(_, seq)| *seq);

    // (path in the chain directory, text), in chain order.
    let mut additions: Vec<(String, String)> = Vec::new();
    let mut day: Option<String> = None;
    let mut head = None;
    for line in lines {
        let Ok(parsed) = serde_json::from_str::<Line>(line) else {
            return Err(git2::Error::from_str(
                "a journal line is not a record or seal; the journal is damaged",
            ));
        };
        match &parsed {
            Line::Record(record) => {
                if record.seq <= already {
                    continue;
                }
                let record_day = record.time.get(..10).unwrap_or("0000-00-00").to_owned();
                if day.as_deref() != Some(record_day.as_str()) {
                    additions.push((batch_file(&record.time, record.seq), String::new()));
                    day = Some(record_day);
                }
            }
            Line::Seal(seal) => {
                if seal.seal.last_seq <= already {
                    continue;
                }
                head = Some((line.clone(), seal.seal.last_seq));
            }
        }
        let Some((_, text)) = additions.last_mut() else {
            return Err(git2::Error::from_str(
                "a seal before any record it covers; the journal is damaged",
            ));
        };
        text.push_str(line);
        text.push('\n');
    }
    let new_chain = match head {
        Some((head, last_seq)) => {
            let mut update = git2::build::TreeUpdateBuilder::new();
            for (file, text) in &additions {
                update.upsert(file, repo.blob(text.as_bytes())?, git2::FileMode::Blob);
            }
            update.upsert(
                HEAD_FILE,
                repo.blob(format!("{head}\n").as_bytes())?,
                git2::FileMode::Blob,
            );
            update.upsert(
                KEY_FILE,
                repo.blob(format!("{}\n", public_key.trim()).as_bytes())?,
                git2::FileMode::Blob,
            );
            let start = match &chain_tree {
                Some(tree) => tree.clone(),
                None => repo.find_tree(repo.treebuilder(None)?.write()?)?,
            };
            (update.create_updated(repo, &start)?, head, last_seq)
        }
        // Nothing new: the chain is what this controller pushed last, which the branch may
        // have lost.
        None => match (chain_base, base_head) {
            (Some(id), Some((head, last_seq))) => (id, head, last_seq),
            _ => return Ok(None),
        },
    };
    let (new_chain, head, last_seq) = new_chain;
    if base_tree
        .as_ref()
        .and_then(|t| chain_tree_in(t, controller, public_key))
        == Some(new_chain)
    {
        return Ok(None);
    }
    let dir = chain_dir(controller, public_key);
    let components: Vec<&str> = dir.split('/').collect();
    let root = with_subtree(repo, base_tree.as_ref(), &components, new_chain)?;
    let tree = repo.find_tree(root)?;
    let author = Signature::now(
        "sealops-controller",
        &format!("{controller}@sealops.invalid"),
    )?;
    let parents: Vec<&git2::Commit<'_>> = parent_commit.iter().collect();
    let commit = repo.commit(
        None,
        &author,
        &author,
        &format!("audit: {controller}"),
        &tree,
        &parents,
    )?;
    Ok(Some(Appended {
        commit,
        chain_tree: new_chain,
        head,
        last_seq,
    }))
}

/// `tree` with the directory at `components` replaced by the tree `id`.
fn with_subtree(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    components: &[&str],
    id: Oid,
) -> Result<Oid, git2::Error> {
    let Some((first, rest)) = components.split_first() else {
        return Ok(id);
    };
    let mut builder = repo.treebuilder(tree)?;
    let child = tree
        .and_then(|t| t.get_name(first))
        .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
        .map(|e| repo.find_tree(e.id()))
        .transpose()?;
    let new_child = with_subtree(repo, child.as_ref(), rest, id)?;
    builder.insert(first, new_child, 0o040_000)?;
    builder.write()
}

#[cfg(test)]
mod tests {
    use super::super::record::{AuditKeys, AuditLog, Event, Outcome, RecordDraft};
    use super::super::registry::Registry;
    use super::super::verify::verify_trail;
    use super::*;

    #[test]
    fn appends_verify_a_replay_adds_nothing_and_a_cut_branch_gets_its_copy_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("repo");
        let keys = AuditKeys::parse(&"ab".repeat(64)).expect("keys");
        let public = keys.public_key();
        let registry = Registry::parse(
            &format!("sealops: v1\ncontrollers:\n  - id: c1\n    public_key: {public}\n"),
            "c.yaml",
        )
        .expect("registry");
        let mut log = AuditLog::resume("c1", "n", keys, None);
        let mut batch = vec![log.record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok))];
        batch.push(log.seal().expect("seal"));
        let first = append_commit(&repo, None, "c1", &public, None, &batch)
            .expect("commits")
            .expect("something new");
        let mut second_batch =
            vec![log.record(RecordDraft::new(Event::CommitVerified, Outcome::Ok))];
        second_batch.push(log.seal().expect("seal"));
        // A replay of the first batch along with the second: the first is skipped.
        let replay: Vec<String> = batch.iter().chain(&second_batch).cloned().collect();
        let second = append_commit(
            &repo,
            Some(first.commit),
            "c1",
            &public,
            Some(first.chain_tree),
            &replay,
        )
        .expect("commits")
        .expect("something new");
        assert_eq!(second.last_seq, 2);
        assert_eq!(
            append_commit(
                &repo,
                Some(second.commit),
                "c1",
                &public,
                Some(second.chain_tree),
                &replay
            )
            .expect("commits"),
            None
        );
        let tree_of = |commit: Oid| {
            repo.find_commit(commit)
                .and_then(|c| c.tree())
                .expect("tree")
        };
        let verified = verify_trail(
            &trail_in_tree(&repo, &tree_of(second.commit)).expect("reads"),
            &registry,
            &[],
        );
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records_of("c1"), 2);

        // Someone resets the branch to the first push; the next append restores the second
        // batch from the controller's own copy.
        let mut third_batch = vec![log.record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok))];
        third_batch.push(log.seal().expect("seal"));
        let third = append_commit(
            &repo,
            Some(first.commit),
            "c1",
            &public,
            Some(second.chain_tree),
            &third_batch,
        )
        .expect("commits")
        .expect("something new");
        let verified = verify_trail(
            &trail_in_tree(&repo, &tree_of(third.commit)).expect("reads"),
            &registry,
            &[],
        );
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records_of("c1"), 3);
    }
}
