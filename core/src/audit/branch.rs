//! The audit branch: reading a trail from a commit, and appending a controller's lines to it.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Oid, Repository, Signature, Tree};

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

/// The last sealed record of `controller` on the branch at `tree` (0 when none).
pub fn sealed_up_to(repo: &Repository, tree: &Tree<'_>, controller: &str) -> u64 {
    tree.get_path(Path::new(&format!("audit/heads/{controller}.json")))
        .ok()
        .and_then(|e| repo.find_blob(e.id()).ok())
        .and_then(|b| serde_json::from_slice::<Line>(b.content()).ok())
        .and_then(|line| match line {
            Line::Seal(seal) => Some(seal.seal.last_seq),
            Line::Record(_) => None,
        })
        .unwrap_or(0)
}

/// Appends `lines` (records and seals of one controller, ending with a seal) on top of
/// `parent`, skipping what the branch already holds (a replay after a crash between push and
/// acknowledgement duplicates nothing). Returns the new commit, or `None` when every line was
/// already there.
pub fn append_commit(
    repo: &Repository,
    parent: Option<Oid>,
    controller: &str,
    public_key: &str,
    lines: &[String],
) -> Result<Option<Oid>, git2::Error> {
    let parent_commit = parent.map(|p| repo.find_commit(p)).transpose()?;
    let empty;
    let base_tree = match &parent_commit {
        Some(commit) => commit.tree()?,
        None => {
            empty = repo.find_tree(repo.treebuilder(None)?.write()?)?;
            empty
        }
    };
    let already = sealed_up_to(repo, &base_tree, controller);
    let key_path = format!("audit/keys/{controller}.pub");
    if let Some(published) = base_tree
        .get_path(Path::new(&key_path))
        .ok()
        .and_then(|e| repo.find_blob(e.id()).ok())
        && String::from_utf8_lossy(published.content()).trim() != public_key.trim()
    {
        // Another key (a lost state directory, or two controllers sharing a name) would start a
        // second chain under one name, which no verifier could tell from a forgery.
        return Err(git2::Error::from_str(&format!(
            "the audit branch already holds a trail of controller {controller:?} signed by another key ({key_path}); give this controller its own audit.controller_id, or restore its audit.key"
        )));
    }

    let mut day = None::<String>;
    let mut additions: BTreeMap<String, String> = BTreeMap::new();
    let mut head = None;
    for line in lines {
        let Ok(parsed) = serde_json::from_str::<Line>(line) else {
            return Err(git2::Error::from_str(
                "a journal line is not a record or seal; the journal is damaged",
            ));
        };
        match &parsed {
            Line::Record(record) => {
                day = Some(
                    record
                        .time
                        .get(..10)
                        .unwrap_or("0000-00-00")
                        .replace('-', "/"),
                );
                if record.seq <= already {
                    continue;
                }
            }
            Line::Seal(seal) => {
                if seal.seal.last_seq <= already {
                    continue;
                }
                head = Some(line.clone());
            }
        }
        let Some(day) = &day else {
            return Err(git2::Error::from_str("a seal before any record"));
        };
        let file = format!("audit/{day}/{controller}.jsonl");
        let text = additions.entry(file).or_default();
        text.push_str(line);
        text.push('\n');
    }
    let Some(head) = head else {
        return Ok(None);
    };
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (file, added) in &additions {
        let mut content = base_tree
            .get_path(Path::new(file))
            .ok()
            .and_then(|e| repo.find_blob(e.id()).ok())
            .map(|b| b.content().to_vec())
            .unwrap_or_default();
        content.extend_from_slice(added.as_bytes());
        update.upsert(file, repo.blob(&content)?, git2::FileMode::Blob);
    }
    update.upsert(
        format!("audit/heads/{controller}.json"),
        repo.blob(format!("{head}\n").as_bytes())?,
        git2::FileMode::Blob,
    );
    if base_tree.get_path(Path::new(&key_path)).is_err() {
        update.upsert(
            key_path,
            repo.blob(format!("{public_key}\n").as_bytes())?,
            git2::FileMode::Blob,
        );
    }
    let tree = repo.find_tree(update.create_updated(repo, &base_tree)?)?;
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
    Ok(Some(commit))
}

#[cfg(test)]
mod tests {
    use super::super::record::{AuditKeys, AuditLog, Event, Outcome, RecordDraft};
    use super::super::verify::verify_files;
    use super::*;

    #[test]
    fn appends_verify_and_a_replay_adds_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("repo");
        let keys = AuditKeys::parse(&"ab".repeat(64)).expect("keys");
        let public = keys.public_key();
        let mut log = AuditLog::resume("c1", "n", keys, None);
        let mut batch = vec![log.record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok))];
        batch.push(log.seal().expect("seal"));
        let first = append_commit(&repo, None, "c1", &public, &batch)
            .expect("commits")
            .expect("something new");
        let mut second_batch =
            vec![log.record(RecordDraft::new(Event::CommitVerified, Outcome::Ok))];
        second_batch.push(log.seal().expect("seal"));
        // A replay of the first batch along with the second: the first is skipped.
        let replay: Vec<String> = batch.iter().chain(&second_batch).cloned().collect();
        let second = append_commit(&repo, Some(first), "c1", &public, &replay)
            .expect("commits")
            .expect("something new");
        assert_eq!(
            append_commit(&repo, Some(second), "c1", &public, &replay).expect("commits"),
            None
        );
        let tree = repo
            .find_commit(second)
            .and_then(|c| c.tree())
            .expect("tree");
        let verified = verify_files(&trail_in_tree(&repo, &tree).expect("reads"));
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records["c1"], 2);

        // Another key under the same name is refused, naming the fix.
        let other = AuditKeys::parse(&"cd".repeat(64)).expect("keys");
        let other_public = other.public_key();
        let mut impostor = AuditLog::resume("c1", "n", other, None);
        let lines = vec![
            impostor.record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok)),
            impostor.seal().expect("seal"),
        ];
        let err = append_commit(&repo, Some(second), "c1", &other_public, &lines).unwrap_err();
        assert!(err.message().contains("audit.controller_id"), "{err}");
    }
}
