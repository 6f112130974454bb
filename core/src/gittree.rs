//! Reading commit trees path by path, and what changed between two of them, without reading a
//! large directory more than once.
//!
//! libgit2 keeps no tree object larger than 4 KiB in its object cache, so every
//! `Tree::get_path` through a directory of 10,000 manifests inflates (and hashes) that
//! directory again, and `diff_tree_to_tree` sorts and copies every entry of a changed directory.
//! [`Trees`] keeps the directories it has read for as long as it lives (one reconcile, one range
//! of commits), and [`Trees::changes`] compares two trees entry by entry, skipping every
//! subdirectory whose id is unchanged.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use git2::{ObjectType, Oid, Repository, Tree};

/// A file that differs between two trees: its id before (`None`: added) and after (`None`:
/// deleted). Both are set for a modification (content or mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    pub path: String,
    pub old: Option<Oid>,
    pub new: Option<Oid>,
}

/// Tree objects of one repository, each read at most once.
/// A YAML file in a folder of a tree ([`Trees::yaml_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlFile {
    /// The name without `.yaml` / `.yml`.
    pub stem: String,
    /// Its repository path, e.g. `targets/web.yaml`.
    pub path: String,
    pub id: Oid,
}

pub struct Trees<'r> {
    repo: &'r Repository,
    read: RefCell<HashMap<Oid, Rc<Tree<'r>>>>,
    /// Comparisons made, by (old, new) root: judging a commit and materialising it compare
    /// the same two trees.
    compared: RefCell<HashMap<RootPair, Rc<Vec<TreeChange>>>>,
}

/// (old root, new root) of a comparison; no old root for a root commit.
type RootPair = (Option<Oid>, Oid);

impl std::fmt::Debug for Trees<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trees")
            .field("read", &self.read.borrow().len())
            .finish()
    }
}

/// One entry of a tree, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: Oid,
    pub mode: i32,
    pub kind: Option<ObjectType>,
}

impl<'r> Trees<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        Self {
            repo,
            read: RefCell::new(HashMap::new()),
            compared: RefCell::new(HashMap::new()),
        }
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// The tree with id `id`.
    pub fn tree(&self, id: Oid) -> Result<Rc<Tree<'r>>, git2::Error> {
        if let Some(tree) = self.read.borrow().get(&id) {
            return Ok(tree.clone());
        }
        let tree = Rc::new(self.repo.find_tree(id)?);
        self.read.borrow_mut().insert(id, tree.clone());
        Ok(tree)
    }

    /// The entry at `path` (`/`-separated, relative) in `root`, or `None` when there is none.
    pub fn entry(&self, root: &Tree<'_>, path: &str) -> Result<Option<Entry>, git2::Error> {
        let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
        let mut dir: Option<Rc<Tree<'r>>> = None;
        while let Some(name) = parts.next() {
            let current = dir.as_deref().unwrap_or(root);
            let Some(entry) = current.get_name(name).map(|found| Entry {
                id: found.id(),
                mode: found.filemode(),
                kind: found.kind(),
            }) else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some(entry));
            }
            if entry.kind != Some(ObjectType::Tree) {
                return Ok(None);
            }
            dir = Some(self.tree(entry.id)?);
        }
        Ok(None)
    }

    /// The id of the entry at `path`, if any.
    pub fn id(&self, root: &Tree<'_>, path: &str) -> Option<Oid> {
        self.entry(root, path).ok().flatten().map(|e| e.id)
    }

    /// The `*.yaml` and `*.yml` files directly in folder `dir` of `root` (`targets`,
    /// `backends`, …), in name order; none when the folder is missing.
    pub fn yaml_files(&self, root: &Tree<'_>, dir: &str) -> Vec<YamlFile> {
        let Some(folder) = self
            .entry(root, dir)
            .ok()
            .flatten()
            .and_then(|e| self.tree(e.id).ok())
        else {
            return Vec::new();
        };
        folder
            .iter()
            .filter_map(|e| {
                let name = e.name().ok()?;
                let stem = name
                    .strip_suffix(".yaml")
                    .or_else(|| name.strip_suffix(".yml"))?;
                Some(YamlFile {
                    stem: stem.to_owned(),
                    path: format!("{dir}/{name}"),
                    id: e.id(),
                })
            })
            .collect()
    }

    /// The content of the file at `path`: `None` when there is no file there.
    pub fn blob(&self, root: &Tree<'_>, path: &str) -> Result<Option<Vec<u8>>, git2::Error> {
        match self.entry(root, path)? {
            Some(entry) if entry.kind == Some(ObjectType::Blob) => {
                Ok(Some(self.repo.find_blob(entry.id)?.content().to_vec()))
            }
            _ => Ok(None),
        }
    }

    /// Files that differ from `old` (`None`: an empty tree, as for a root commit) to `new`,
    /// in path order.
    pub fn changes(
        &self,
        old: Option<&Tree<'_>>,
        new: &Tree<'_>,
    ) -> Result<Rc<Vec<TreeChange>>, git2::Error> {
        let key = (old.map(Tree::id), new.id());
        if let Some(found) = self.compared.borrow().get(&key) {
            return Ok(found.clone());
        }
        let mut found = Vec::new();
        match old {
            Some(old) if old.id() == new.id() => {}
            Some(old) => self.compare(old, new, "", &mut found)?,
            None => self.every_file(new, "", Side::New, &mut found)?,
        }
        let found = Rc::new(found);
        self.compared.borrow_mut().insert(key, found.clone());
        Ok(found)
    }

    fn compare(
        &self,
        old: &Tree<'_>,
        new: &Tree<'_>,
        prefix: &str,
        found: &mut Vec<TreeChange>,
    ) -> Result<(), git2::Error> {
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => git_order(x, y),
            };
            match order {
                Ordering::Less => {
                    let x = a.next().expect("peeked");
                    self.one_side(&x, prefix, Side::Old, found)?;
                }
                Ordering::Greater => {
                    let y = b.next().expect("peeked");
                    self.one_side(&y, prefix, Side::New, found)?;
                }
                Ordering::Equal => {
                    let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                    if x.id() == y.id() && x.filemode() == y.filemode() {
                        continue;
                    }
                    let path = join(prefix, x.name_bytes());
                    if x.kind() == Some(ObjectType::Tree) {
                        // Equal names in git order are both trees or both not.
                        let (old, new) = (self.tree(x.id())?, self.tree(y.id())?);
                        self.compare(&old, &new, &path, found)?;
                    } else {
                        found.push(TreeChange {
                            path,
                            old: Some(x.id()),
                            new: Some(y.id()),
                        });
                    }
                }
            }
        }
    }

    fn one_side(
        &self,
        entry: &git2::TreeEntry<'_>,
        prefix: &str,
        side: Side,
        found: &mut Vec<TreeChange>,
    ) -> Result<(), git2::Error> {
        let path = join(prefix, entry.name_bytes());
        if entry.kind() == Some(ObjectType::Tree) {
            let tree = self.tree(entry.id())?;
            self.every_file(&tree, &path, side, found)
        } else {
            found.push(side.change(path, entry.id()));
            Ok(())
        }
    }

    fn every_file(
        &self,
        tree: &Tree<'_>,
        prefix: &str,
        side: Side,
        found: &mut Vec<TreeChange>,
    ) -> Result<(), git2::Error> {
        for entry in tree.iter() {
            self.one_side(&entry, prefix, side, found)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Old,
    New,
}

impl Side {
    fn change(self, path: String, id: Oid) -> TreeChange {
        match self {
            Side::Old => TreeChange {
                path,
                old: Some(id),
                new: None,
            },
            Side::New => TreeChange {
                path,
                old: None,
                new: Some(id),
            },
        }
    }
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Git's entry order: names compared bytewise, a directory as if its name ended in `/`.
fn git_order(a: &git2::TreeEntry<'_>, b: &git2::TreeEntry<'_>) -> Ordering {
    let key = |e: &git2::TreeEntry<'_>| -> Option<u8> {
        (e.kind() == Some(ObjectType::Tree)).then_some(b'/')
    };
    let (x, y) = (a.name_bytes(), b.name_bytes());
    let common = x.len().min(y.len());
    match x[..common].cmp(&y[..common]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |name: &[u8], e: &git2::TreeEntry<'_>| name.get(common).copied().or(key(e));
    next(x, a).cmp(&next(y, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn commit_tree(repo: &Repository, dir: &Path, files: &[(&str, &str)]) -> Oid {
        let _ = std::fs::remove_dir_all(dir.join("w"));
        // A path ending in `!` is an executable file (the `!` is not part of its name).
        for (path, text) in files {
            let path = path.trim_end_matches('!');
            let at = dir.join("w").join(path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, text).unwrap();
        }
        let mut index = git2::Index::new().unwrap();
        let root = dir.join("w");
        for (marked, _) in files {
            let path = marked.trim_end_matches('!');
            let content = std::fs::read(root.join(path)).unwrap();
            let blob = repo.blob(&content).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: if marked.ends_with('!') {
                    0o100755
                } else {
                    0o100644
                },
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id: blob,
                flags: path.len() as u16,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        index.write_tree_to(repo).unwrap()
    }

    /// The same answer as libgit2's diff, which is the reference.
    fn libgit2_changes(
        repo: &Repository,
        old: Option<&Tree<'_>>,
        new: &Tree<'_>,
    ) -> Vec<TreeChange> {
        let diff = repo.diff_tree_to_tree(old, Some(new), None).unwrap();
        let mut found: Vec<TreeChange> = diff
            .deltas()
            .map(|d| {
                let file = if d.status() == git2::Delta::Deleted {
                    d.old_file()
                } else {
                    d.new_file()
                };
                TreeChange {
                    path: file.path().unwrap().to_str().unwrap().to_owned(),
                    old: (d.status() != git2::Delta::Added).then(|| d.old_file().id()),
                    new: (d.status() != git2::Delta::Deleted).then(|| d.new_file().id()),
                }
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    #[test]
    fn changes_match_libgit2_diff() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("repo.git")).unwrap();
        let before = commit_tree(
            &repo,
            dir.path(),
            &[
                ("a", "1"),
                ("a.b/c", "2"),
                ("a-b", "3"),
                ("dir/x", "4"),
                ("dir/y", "5"),
                ("gone/deep/z", "6"),
                ("same/s", "7"),
                ("turns/into-dir", "8"),
                ("run.sh", "9"),
                ("mode", "becomes executable"),
                ("kept", "10"),
            ],
        );
        let after = commit_tree(
            &repo,
            dir.path(),
            &[
                ("a", "1 changed"),
                ("a.b/c", "2"),
                ("a-b", "3"),
                ("dir/x", "4"),
                ("dir/y", "5 changed"),
                ("dir/new", "11"),
                ("new/deep/n", "12"),
                ("same/s", "7"),
                ("turns", "now a file"),
                ("run", "9"),
                ("mode!", "becomes executable"),
                ("kept", "10"),
            ],
        );
        let (before, after) = (
            repo.find_tree(before).unwrap(),
            repo.find_tree(after).unwrap(),
        );
        let trees = Trees::new(&repo);
        for (old, new) in [
            (Some(&before), &after),
            (Some(&after), &before),
            (None, &after),
        ] {
            let mut ours = trees.changes(old, new).unwrap().to_vec();
            ours.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(ours, libgit2_changes(&repo, old, new));
        }
        assert!(trees.changes(Some(&after), &after).unwrap().is_empty());
        let paths: BTreeSet<String> = trees
            .changes(Some(&before), &after)
            .unwrap()
            .iter()
            .map(|c| c.path.clone())
            .collect();
        assert!(paths.contains("turns") && paths.contains("turns/into-dir"));
        assert!(!paths.iter().any(|p| p.starts_with("same")));
    }

    #[test]
    fn entries_and_blobs_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("repo.git")).unwrap();
        let id = commit_tree(
            &repo,
            dir.path(),
            &[("secrets/db/main.yaml", "x: 1"), ("top", "t")],
        );
        let tree = repo.find_tree(id).unwrap();
        let trees = Trees::new(&repo);
        assert_eq!(
            trees
                .blob(&tree, "secrets/db/main.yaml")
                .unwrap()
                .as_deref(),
            Some(&b"x: 1"[..])
        );
        assert_eq!(
            trees.blob(&tree, "top").unwrap().as_deref(),
            Some(&b"t"[..])
        );
        assert_eq!(
            trees.blob(&tree, "secrets/db").unwrap(),
            None,
            "a folder is no file"
        );
        assert_eq!(trees.blob(&tree, "secrets/db/none.yaml").unwrap(), None);
        assert_eq!(trees.blob(&tree, "top/below").unwrap(), None);
        assert_eq!(
            trees.id(&tree, "secrets"),
            tree.get_path(Path::new("secrets")).ok().map(|e| e.id())
        );
    }
}
