//! The audit branch: reading a trail from a commit, and appending a controller's lines to it.

use std::path::Path;

use git2::{Oid, Repository, Signature, Tree};

use super::layout::{HEAD_FILE, KEY_FILE, TRAILS_DIR, TrailPath, batch_file, chain_dir, key_id};
use super::record::Line;
use super::verify::TrailFile;

/// Largest batch file read from a branch. A push cuts its batch into files of at most
/// [`BATCH_FILE_BYTES`] (plus one line), so a larger file was not written by a controller;
/// the bound keeps a small compressed blob from inflating into gigabytes in memory.
pub const MAX_BATCH_FILE_BYTES: u64 = 64 << 20;
/// A push starts a new batch file once the current one holds this much.
pub const BATCH_FILE_BYTES: usize = 16 << 20;
/// Largest `key.pub` or `head.json` read from a branch (each is one line of well under 1 KiB).
pub const MAX_SMALL_FILE_BYTES: u64 = 64 << 10;
/// Most bytes of batch files [`trail_in_tree`] reads in all; the rest come back defective
/// ("not read") rather than running the machine out of memory. [`verify_branch`] reads one
/// batch file at a time and needs no such budget.
pub const MAX_TRAIL_BYTES: u64 = 4 << 30;

/// Reading a trail from a branch failed.
#[derive(Debug, thiserror::Error)]
pub enum TrailReadError {
    #[error("reading the audit branch: {0}")]
    Git(#[from] git2::Error),
}

/// The content of blob `id` if it is at most `limit` bytes; its size otherwise. The size is
/// read from the object's header, so an oversized blob is never inflated.
pub fn blob_within(
    repo: &Repository,
    id: Oid,
    limit: u64,
) -> Result<Result<Vec<u8>, u64>, git2::Error> {
    let (size, _) = repo.odb()?.read_header(id)?;
    if size as u64 > limit {
        return Ok(Err(size as u64));
    }
    Ok(Ok(repo.find_blob(id)?.content().to_vec()))
}

/// The size limit of a trail file at `path`: small for `key.pub` and `head.json`, larger for
/// batch files; `None` outside the layout, where nothing is read (only the path is reported).
fn read_limit(path: &str) -> Option<u64> {
    match TrailPath::parse(path)? {
        TrailPath::Key { .. } | TrailPath::Head { .. } => Some(MAX_SMALL_FILE_BYTES),
        TrailPath::Batch { .. } => Some(MAX_BATCH_FILE_BYTES),
    }
}

/// Every entry of the audit branch's `tree`, sorted by path, with `key.pub` and `head.json`
/// read and each batch file left to read on demand ([`TrailFile::blob`], size already checked).
/// Entries that cannot be trail files come back [`TrailFile::defective`], so the verifier names
/// them instead of failing or skipping them: a name that is not UTF-8, two entries of one name
/// in a tree (git fsck refuses those; `git show` reads the first, a verifier might read the
/// other), a symbolic link, an executable, a submodule, a file over its size limit, anything
/// beside `audit/` at the root. Iterative: the depth of a tree is the pusher's choice.
pub fn trail_entries(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<TrailFile>, TrailReadError> {
    let mut files = Vec::new();
    let mut pending = vec![(String::new(), tree.id())];
    while let Some((dir, id)) = pending.pop() {
        let mut seen = std::collections::HashSet::new();
        for entry in repo.find_tree(id)?.iter() {
            let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
                files.push(TrailFile::defective(
                    format!("{dir}{}", entry.name_bytes().escape_ascii()),
                    "a name that is not UTF-8: no controller writes one",
                ));
                continue;
            };
            let path = format!("{dir}{name}");
            if !seen.insert(name.to_owned()) {
                files.push(TrailFile::defective(
                    path,
                    "a second entry of the same name in one tree (git fsck refuses it): tools disagree on which is read, so a forged copy can hide behind it",
                ));
                continue;
            }
            if dir.is_empty() && name != "audit" {
                files.push(TrailFile::defective(
                    path,
                    "not part of the audit layout: the audit branch holds audit/ alone",
                ));
                continue;
            }
            match (entry.kind(), entry.filemode()) {
                (Some(git2::ObjectType::Tree), _) => pending.push((format!("{path}/"), entry.id())),
                (Some(git2::ObjectType::Blob), 0o100644) => {
                    let Some(limit) = read_limit(&path) else {
                        files.push(TrailFile::new(path, ""));
                        continue;
                    };
                    let (size, _) = repo.odb()?.read_header(entry.id())?;
                    if size as u64 > limit {
                        files.push(TrailFile::defective(
                            path,
                            format!(
                                "{size} bytes, over the {limit}-byte limit of such a file: not written by a controller"
                            ),
                        ));
                    } else if limit == MAX_SMALL_FILE_BYTES {
                        let blob = repo.find_blob(entry.id())?;
                        files.push(TrailFile::new(
                            path,
                            String::from_utf8_lossy(blob.content()).into_owned(),
                        ));
                    } else {
                        files.push(TrailFile::unread(path, entry.id()));
                    }
                }
                (Some(git2::ObjectType::Blob), 0o120000) => files.push(TrailFile::defective(
                    path,
                    "a symbolic link, not a file: no controller writes one",
                )),
                (Some(git2::ObjectType::Blob), mode) => files.push(TrailFile::defective(
                    path,
                    format!("file mode {mode:o}, not 100644: no controller writes one"),
                )),
                _ => files.push(TrailFile::defective(
                    path,
                    "a submodule (gitlink) entry, not a file: no controller writes one",
                )),
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The text of a batch file [`trail_entries`] left unread (bounded by its size check).
pub fn read_batch(repo: &Repository, file: &TrailFile) -> Result<String, String> {
    let Some(id) = file.blob else {
        return Ok(file.text.clone());
    };
    match blob_within(repo, id, MAX_BATCH_FILE_BYTES) {
        Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(Err(size)) => Err(format!(
            "{size} bytes, over the {MAX_BATCH_FILE_BYTES}-byte limit of a batch file"
        )),
        Err(e) => Err(format!("cannot be read: {}", e.message())),
    }
}

/// Every entry of the audit branch's `tree` with every batch file read, up to
/// [`MAX_TRAIL_BYTES`] in all (the rest come back defective, "not read"). For tools that want
/// the text; verifying is [`verify_branch`], which reads one batch file at a time.
pub fn trail_in_tree(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<TrailFile>, TrailReadError> {
    let mut files = trail_entries(repo, tree)?;
    let mut read: u64 = 0;
    for file in &mut files {
        if file.blob.is_none() {
            continue;
        }
        let size = file
            .blob
            .map(|id| repo.odb().and_then(|odb| odb.read_header(id)))
            .transpose()?
            .map_or(0, |(size, _)| size as u64);
        read += size;
        *file = if read > MAX_TRAIL_BYTES {
            TrailFile::defective(
                file.path.clone(),
                format!(
                    "not read: the trail's files exceed {} GiB in all",
                    MAX_TRAIL_BYTES >> 30
                ),
            )
        } else {
            match read_batch(repo, file) {
                Ok(text) => TrailFile::new(file.path.clone(), text),
                Err(why) => TrailFile::defective(file.path.clone(), why),
            }
        };
    }
    Ok(files)
}

/// Verifies the audit branch's `tree`: [`verify_trail`] over [`trail_entries`], reading each
/// batch file only when its chain's check reaches it, so memory holds one batch file at a time
/// and nothing of a chain under an unregistered key is read beyond its key.
pub fn verify_branch(
    repo: &Repository,
    tree: &Tree<'_>,
    registry: &super::registry::Registry,
    witnesses: &[super::verify::Witness],
) -> Result<super::verify::Verified, TrailReadError> {
    let files = trail_entries(repo, tree)?;
    Ok(super::verify::verify_trail_with(
        &files,
        registry,
        witnesses,
        &|file| read_batch(repo, file).map(std::borrow::Cow::Owned),
    ))
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
                .and_then(|id| blob_within(repo, id, MAX_SMALL_FILE_BYTES).ok()?.ok())
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
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
        .and_then(|id| blob_within(repo, id, MAX_SMALL_FILE_BYTES).ok()?.ok())
        .and_then(|b| {
            let text = String::from_utf8_lossy(&b).trim().to_owned();
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
                let full = additions
                    .last()
                    .is_some_and(|(_, text)| text.len() >= BATCH_FILE_BYTES);
                if day.as_deref() != Some(record_day.as_str()) || full {
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

    /// An empty bare repository and controller c1's log under a registered key.
    struct Chain {
        _dir: tempfile::TempDir,
        repo: Repository,
        public: String,
        registry: Registry,
        log: AuditLog,
    }

    impl Chain {
        fn new() -> Self {
            let _dir = tempfile::tempdir().expect("tempdir");
            let repo = Repository::init_bare(_dir.path()).expect("repo");
            let keys = AuditKeys::parse(&"ab".repeat(64)).expect("keys");
            let public = keys.public_key();
            let registry = Registry::parse(
                &format!("sealops: v1\ncontrollers:\n  - id: c1\n    public_key: {public}\n"),
                "c.yaml",
            )
            .expect("registry");
            let log = AuditLog::resume("c1", "n", keys, None);
            Self {
                _dir,
                repo,
                public,
                registry,
                log,
            }
        }

        /// A chain whose branch holds one batch of one record, and that commit's tree.
        fn with_one_batch() -> (Self, Oid) {
            let mut chain = Self::new();
            let batch = vec![
                chain
                    .log
                    .record(RecordDraft::new(Event::KeyLoaded, Outcome::Ok)),
                chain.log.seal().expect("seal"),
            ];
            let appended = append_commit(&chain.repo, None, "c1", &chain.public, None, &batch)
                .expect("commits")
                .expect("something new");
            let tree = chain
                .repo
                .find_commit(appended.commit)
                .map(|c| c.tree_id())
                .expect("the commit");
            (chain, tree)
        }
    }

    #[test]
    fn appends_verify_a_replay_adds_nothing_and_a_cut_branch_gets_its_copy_back() {
        let Chain {
            _dir,
            repo,
            public,
            registry,
            mut log,
        } = Chain::new();
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

    /// Found by a red team: a 6.7 MB blob inflating to 1.5 GB ran verify (and the controller)
    /// out of memory; a name that is not UTF-8 made verify fail with a git error and check
    /// nothing; submodules, links and executables passed unreported.
    #[test]
    fn entries_no_controller_writes_are_named_and_never_inflated() {
        use std::os::unix::ffi::OsStrExt as _;
        let (
            Chain {
                _dir,
                repo,
                registry,
                ..
            },
            tree,
        ) = Chain::with_one_batch();
        let tree = repo.find_tree(tree).expect("tree");

        let small = repo.blob(b"x").expect("blob");
        let huge = repo
            .blob(&vec![b'x'; MAX_SMALL_FILE_BYTES as usize + 1])
            .expect("blob");
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert("audit/link.jsonl", small, git2::FileMode::Link);
        update.upsert("audit/run.jsonl", small, git2::FileMode::BlobExecutable);
        // A submodule entry names a commit of another repository; any id will do.
        let elsewhere = Oid::from_bytes(&[7; 20]).expect("an id");
        update.upsert("audit/trails/ghost", elsewhere, git2::FileMode::Commit);
        let fake_key = format!("audit/trails/c1/{}/key.pub", "0".repeat(32));
        update.upsert(&fake_key, huge, git2::FileMode::Blob);
        let with_entries = update.create_updated(&repo, &tree).expect("tree");
        // A directory whose name is not UTF-8, with a file in it.
        let mut inner = repo.treebuilder(None).expect("builder");
        inner
            .insert("head.json", small, git2::FileMode::Blob.into())
            .expect("insert");
        let inner = inner.write().expect("tree");
        let with_entries = repo.find_tree(with_entries).expect("tree");
        let audit = with_entries.get_name("audit").expect("audit").id();
        let mut audit = repo
            .treebuilder(Some(&repo.find_tree(audit).expect("tree")))
            .expect("builder");
        audit
            .insert(
                std::ffi::OsStr::from_bytes(b"x\xff"),
                inner,
                git2::FileMode::Tree.into(),
            )
            .expect("insert");
        let audit = audit.write().expect("tree");
        let mut root = repo.treebuilder(Some(&with_entries)).expect("builder");
        root.insert("audit", audit, git2::FileMode::Tree.into())
            .expect("insert");
        let root = repo.find_tree(root.write().expect("tree")).expect("tree");

        let files = trail_in_tree(&repo, &root).expect("reads");
        let verified = verify_trail(&files, &registry, &[]);
        let said: Vec<String> = verified.problems.iter().map(ToString::to_string).collect();
        let has = |path: &str, what: &str| {
            assert!(
                said.iter().any(|p| p.starts_with(path) && p.contains(what)),
                "{path}: {what}\n{said:#?}"
            )
        };
        has("audit/link.jsonl", "symbolic link");
        has("audit/run.jsonl", "file mode 100755");
        has("audit/trails/ghost", "submodule");
        has(&fake_key, "over the 65536-byte limit");
        has("audit/x\\xff", "not UTF-8");
        assert_eq!(
            verified.records_of("c1"),
            1,
            "c1's own chain still verifies"
        );
        assert!(
            files.iter().all(|f| f.text.len() < 1024),
            "nothing large was read"
        );
    }

    /// A push of a long journal is cut into batch files of about [`BATCH_FILE_BYTES`], so no
    /// file a controller writes is over [`MAX_BATCH_FILE_BYTES`], and the cut trail verifies.
    #[test]
    fn a_large_push_is_cut_into_batch_files_that_verify() {
        let Chain {
            _dir,
            repo,
            public,
            registry,
            mut log,
        } = Chain::new();
        let mut lines = Vec::new();
        let mut bytes = 0;
        while bytes < 2 * BATCH_FILE_BYTES + 1000 {
            let mut draft = RecordDraft::new(Event::OutputWritten, Outcome::Ok);
            draft.path = Some(format!("apps/{}/{}", "p".repeat(200), lines.len()));
            let line = log.record(draft);
            bytes += line.len() + 1;
            lines.push(line);
            if lines.len() % 1000 == 0 {
                lines.push(log.seal().expect("seal"));
            }
        }
        lines.push(log.seal().expect("seal"));
        let appended = append_commit(&repo, None, "c1", &public, None, &lines)
            .expect("commits")
            .expect("something new");
        let tree = repo
            .find_commit(appended.commit)
            .and_then(|c| c.tree())
            .expect("tree");
        let files = trail_in_tree(&repo, &tree).expect("reads");
        let batches: Vec<&TrailFile> = files
            .iter()
            .filter(|f| f.path.ends_with(".jsonl"))
            .collect();
        assert!(batches.len() >= 3, "{} batch files", batches.len());
        assert!(
            batches
                .iter()
                .all(|f| f.defect.is_none() && (f.text.len() as u64) < MAX_BATCH_FILE_BYTES)
        );
        let verified = verify_trail(&files, &registry, &[]);
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records_of("c1"), appended.last_seq);
    }

    /// Found by a red team: a root with two `audit` entries (a forged copy first, which
    /// `git show` reads) passed verify, which read the genuine one; files beside `audit/` were
    /// never named.
    #[test]
    fn two_entries_of_one_name_and_files_beside_audit_are_named() {
        let (
            Chain {
                _dir,
                repo,
                registry,
                ..
            },
            tree,
        ) = Chain::with_one_batch();
        let audit = repo
            .find_tree(tree)
            .expect("tree")
            .get_name("audit")
            .expect("audit")
            .id();
        let forged = repo
            .treebuilder(None)
            .expect("builder")
            .write()
            .expect("tree");
        let readme = repo.blob(b"hello").expect("blob");
        // A raw tree: git2's builders refuse duplicate names, a pusher's tools need not.
        let mut raw = Vec::new();
        for (mode, name, id) in [
            ("100644", "README", readme),
            ("40000", "audit", forged),
            ("40000", "audit", audit),
        ] {
            raw.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            raw.extend_from_slice(id.as_bytes());
        }
        let root = repo
            .odb()
            .and_then(|odb| odb.write(git2::ObjectType::Tree, &raw))
            .expect("raw tree");
        let files = trail_entries(&repo, &repo.find_tree(root).expect("tree")).expect("reads");
        let verified = verify_trail(&files, &registry, &[]);
        let said: Vec<String> = verified.problems.iter().map(ToString::to_string).collect();
        assert!(
            said.iter()
                .any(|p| p.starts_with("audit:") && p.contains("second entry of the same name")),
            "{said:#?}"
        );
        assert!(
            said.iter()
                .any(|p| p.starts_with("README:") && p.contains("audit/ alone")),
            "{said:#?}"
        );
        assert!(!verified.is_intact());
    }

    /// Found by a red team: 70 references to one 60 MiB blob as batch files of an invented
    /// controller made verify read 4.3 GB before giving up. Nothing of a chain under an
    /// unregistered key is read beyond its key, and a registered chain's batches are read one
    /// at a time as the check reaches them.
    #[test]
    fn batches_of_an_unregistered_chain_are_never_read() {
        let (
            Chain {
                _dir,
                repo,
                registry,
                ..
            },
            tree,
        ) = Chain::with_one_batch();
        let tree = repo.find_tree(tree).expect("tree");
        let mallory = AuditKeys::parse(&"cd".repeat(64))
            .expect("keys")
            .public_key();
        let dir = chain_dir("mallory", &mallory);
        let big = repo.blob(&vec![b'x'; 1 << 20]).expect("blob");
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert(
            format!("{dir}/{KEY_FILE}"),
            repo.blob(format!("{mallory}\n").as_bytes()).expect("blob"),
            git2::FileMode::Blob,
        );
        for n in 1..=70 {
            update.upsert(
                format!("{dir}/{}", batch_file("2026-12-05T00:00:00Z", n)),
                big,
                git2::FileMode::Blob,
            );
        }
        let tree = repo
            .find_tree(update.create_updated(&repo, &tree).expect("tree"))
            .expect("tree");
        let files = trail_entries(&repo, &tree).expect("reads");
        assert!(
            files.iter().all(|f| f.text.len() < 1024),
            "nothing big read"
        );
        let reads = std::cell::RefCell::new(Vec::new());
        let verified = super::super::verify::verify_trail_with(&files, &registry, &[], &|file| {
            reads.borrow_mut().push(file.path.clone());
            read_batch(&repo, file).map(std::borrow::Cow::Owned)
        });
        assert_eq!(verified.records_of("c1"), 1, "{:?}", verified.problems);
        assert!(
            verified
                .problems
                .iter()
                .any(|p| p.controller == "mallory" && p.message.contains("not registered")),
            "{:?}",
            verified.problems
        );
        let reads = reads.into_inner();
        assert!(
            reads.iter().all(|path| !path.contains("mallory")),
            "{reads:?}"
        );
        assert_eq!(reads.len(), 1, "c1's one batch: {reads:?}");
        let whole = verify_branch(&repo, &tree, &registry, &[]).expect("verifies");
        assert_eq!(whole.problems, verified.problems);
    }
}
