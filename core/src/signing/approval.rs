//! Approval statements: a principal's signed "I approve these exact contents", bound to git blob
//! ids rather than to commits so that they survive rebase and squash-merge.
//!
//! A statement is canonical text (one form per statement; see `docs/signing.md`):
//!
//! ```text
//! sealops-approval v2
//! repository 5f0c3e7a9b2d4c1e8f6a0b3c5d7e9f12
//! principal alice@example.com
//! created 2024-06-10T06:13:20Z
//! blob 3b18e512dba79e4c8300dd08aeb37f8e728b8dad policies/payments.hcl
//! deleted policies/old.hcl
//! ```
//!
//! followed, in the same file, by the SSHSIG armor over exactly those bytes in namespace
//! [`APPROVAL_NAMESPACE`]. Files live at `.sealops/approvals/<sha256 of the statement>.approval`,
//! so approvals added by parallel pull requests never collide and a repeated approval is the
//! same file. The name is checked when the file is read ([`ApprovalSet::load`]): a renamed copy
//! of a statement is refused, and "already used" is decided by the statement's hash
//! ([`statement_ids`]), never by a file name.
//!
//! A statement names the repository (`repository_id` in `.sealops/config.yaml`), so one signed
//! for another repository sharing the same signers never counts here. Version 1 statements
//! named none; they are read only to say so.
//!
//! Make one with [`ApprovalStatement::new`] + [`ApprovalStatement::sign`]; check one with
//! [`verify_approval`]; count the distinct approvers of one `(path, content)` in a tree with
//! [`approvals_for`] (or [`ApprovalSet::load`] + [`ApprovalSet::approvers_of`] for many paths);
//! list what a change must have approved with [`changes_between`].
//! The signing key must be valid for the claimed principal at the statement's `created` time,
//! the same rule git applies to a commit's committer time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree};
use sha2::{Digest, Sha256};

use super::APPROVAL_NAMESPACE;
use super::allowed_signers::{AllowedSigners, Timestamp};
use super::sshsig::{SignatureRejection, SigningError, SigningKey, verify_as_principal};

/// Where approval files live, relative to the repository root.
pub const APPROVALS_DIR: &str = ".sealops/approvals";
/// The extension of approval files.
pub const APPROVAL_EXTENSION: &str = "approval";

const HEADER: &str = "sealops-approval v2";
const HEADER_V1: &str = "sealops-approval v1";
const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";

/// What a statement approves at a path: exactly this blob, or the path's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApprovedContent {
    Blob(Oid),
    Deleted,
}

impl ApprovedContent {
    /// The content `bytes` would have as a git blob.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::Blob(
            Oid::hash_object(ObjectType::Blob, bytes)
                .expect("hashing bytes in memory as a blob does not fail"),
        )
    }
}

/// An unsigned approval statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStatement {
    repository: String,
    principal: String,
    created: i64,
    changes: BTreeMap<String, ApprovedContent>,
}

/// Errors making, reading or checking an approval.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("{source_name}: not a sealops approval statement: {problem}")]
    Malformed {
        source_name: String,
        problem: String,
    },
    #[error("invalid approval: {problem}")]
    Invalid { problem: String },
    #[error("{source_name}: {rejection}")]
    Rejected {
        source_name: String,
        rejection: SignatureRejection,
    },
    /// A verification failure found before, by its message.
    #[error("{message}")]
    Cached { message: String },
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("cannot read approvals in {APPROVALS_DIR}: {source}")]
    Git {
        #[source]
        source: git2::Error,
    },
}

impl ApprovalStatement {
    /// A statement for repository `repository` (its `repository_id`) by `principal`, made at
    /// `created` (Unix seconds), approving `changes`.
    pub fn new(
        repository: &str,
        principal: &str,
        created: i64,
        changes: impl IntoIterator<Item = (String, ApprovedContent)>,
    ) -> Result<Self, ApprovalError> {
        let invalid = |problem: String| ApprovalError::Invalid { problem };
        crate::config::check_repository_id(repository).map_err(invalid)?;
        check_principal(principal).map_err(invalid)?;
        format_time(created).map_err(invalid)?;
        let mut map = BTreeMap::new();
        for (path, content) in changes {
            check_path(&path).map_err(invalid)?;
            if map.insert(path.clone(), content).is_some() {
                return Err(invalid(format!("path {path:?} is listed twice")));
            }
        }
        if map.is_empty() {
            return Err(invalid(
                "an approval must list at least one path".to_owned(),
            ));
        }
        Ok(Self {
            repository: repository.to_owned(),
            principal: principal.to_owned(),
            created,
            changes: map,
        })
    }

    /// The `repository_id` of the repository the statement was made for.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Unix seconds.
    pub fn created(&self) -> i64 {
        self.created
    }

    pub fn changes(&self) -> &BTreeMap<String, ApprovedContent> {
        &self.changes
    }

    /// The canonical text that is signed.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{HEADER}\nrepository {}\nprincipal {}\ncreated {}\n",
            self.repository,
            self.principal,
            format_time(self.created).expect("checked when the statement was made")
        );
        for (path, content) in &self.changes {
            match content {
                ApprovedContent::Blob(oid) => writeln!(text, "blob {oid} {path}"),
                ApprovedContent::Deleted => writeln!(text, "deleted {path}"),
            }
            .expect("writing to a String does not fail");
        }
        text
    }

    /// Parses canonical statement text; anything but the canonical form is refused, so that one
    /// statement has exactly one signed form.
    pub fn parse(text: &str, source: &str) -> Result<Self, ApprovalError> {
        let malformed = |problem: String| ApprovalError::Malformed {
            source_name: source.to_owned(),
            problem,
        };
        let mut lines = text.split_inclusive('\n').enumerate().map(|(i, line)| {
            line.strip_suffix('\n')
                .map(|l| (i + 1, l))
                .ok_or_else(|| format!("line {}: missing final newline", i + 1))
        });
        let mut next = |what: &str| {
            lines
                .next()
                .unwrap_or_else(|| Err(format!("missing {what} line")))
        };
        let (_, header) = next("header").map_err(malformed)?;
        if header == HEADER_V1 {
            return Err(malformed(
                "a version 1 statement names no repository, so it could have been copied from another repository and no longer counts; ask its signer to run `sealops approve` again (docs/review.md, \"Migrating approvals\")".to_owned(),
            ));
        }
        if header != HEADER {
            return Err(malformed(format!(
                "line 1: expected {HEADER:?}, found {header:?}"
            )));
        }
        let (n, repository_line) = next("repository").map_err(malformed)?;
        let repository = repository_line
            .strip_prefix("repository ")
            .ok_or_else(|| malformed(format!("line {n}: expected `repository ID`")))?;
        let (n, principal_line) = next("principal").map_err(malformed)?;
        let principal = principal_line
            .strip_prefix("principal ")
            .ok_or_else(|| malformed(format!("line {n}: expected `principal NAME`")))?;
        let (n, created_line) = next("created").map_err(malformed)?;
        let created = created_line
            .strip_prefix("created ")
            .ok_or_else(|| malformed(format!("line {n}: expected `created YYYY-MM-DDTHH:MM:SSZ`")))
            .and_then(|t| parse_created(t).map_err(|p| malformed(format!("line {n}: {p}"))))?;
        let mut changes = Vec::new();
        for line in lines {
            let (n, line) = line.map_err(malformed)?;
            let change = if let Some(rest) = line.strip_prefix("blob ") {
                let (id, path) = rest
                    .split_once(' ')
                    .ok_or_else(|| malformed(format!("line {n}: expected `blob ID PATH`")))?;
                let valid_id = matches!(id.len(), 40 | 64)
                    && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                let oid = Oid::from_str(id).ok().filter(|_| valid_id).ok_or_else(|| {
                    malformed(format!(
                        "line {n}: {id:?} is not a lowercase hex git object id"
                    ))
                })?;
                (path.to_owned(), ApprovedContent::Blob(oid))
            } else if let Some(path) = line.strip_prefix("deleted ") {
                (path.to_owned(), ApprovedContent::Deleted)
            } else {
                return Err(malformed(format!(
                    "line {n}: expected `blob ID PATH` or `deleted PATH`"
                )));
            };
            changes.push(change);
        }
        let statement =
            Self::new(repository, principal, created, changes).map_err(|e| match e {
                ApprovalError::Invalid { problem } => malformed(problem),
                other => other,
            })?;
        if statement.to_text() != text {
            return Err(malformed(
                "not in canonical form (paths must be sorted, each once)".to_owned(),
            ));
        }
        Ok(statement)
    }

    /// Signs the statement with `key`, giving the file to store under [`APPROVALS_DIR`].
    pub fn sign(&self, key: &SigningKey) -> Result<SignedApproval, ApprovalError> {
        let text = self.to_text();
        let signature = key.sign(APPROVAL_NAMESPACE, text.as_bytes())?;
        Ok(SignedApproval {
            file_name: file_name_for(&text),
            contents: text + &signature,
        })
    }
}

/// A signed approval ready to be written into the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedApproval {
    /// `<sha256 of the statement>.approval`.
    pub file_name: String,
    /// Statement text followed by its SSH signature.
    pub contents: String,
}

impl SignedApproval {
    /// Path relative to the repository root (`.sealops/approvals/<file_name>`).
    pub fn repo_path(&self) -> String {
        format!("{APPROVALS_DIR}/{}", self.file_name)
    }
}

fn file_name_for(statement: &str) -> String {
    format!("{}.{APPROVAL_EXTENSION}", statement_id(statement))
}

/// The identity of a statement: the hex SHA-256 of its text (without the signature). Two files
/// holding one statement (renamed, or signed twice with a randomised signature) share it.
pub fn statement_id(statement: &str) -> String {
    hex::encode(Sha256::digest(statement.as_bytes()))
}

/// The statement part of an approval file: everything before the signature armor.
fn statement_text(contents: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(contents).ok()?;
    text.find(ARMOR_BEGIN).map(|split| &text[..split])
}

/// The [`statement_id`] of every file under [`APPROVALS_DIR`] in `tree`, valid or not: the
/// statements a range's base has already seen, which approve nothing after it.
pub fn statement_ids(
    repo: &Repository,
    tree: &Tree<'_>,
) -> Result<std::collections::HashSet<String>, ApprovalError> {
    let git = |source| ApprovalError::Git { source };
    let mut ids = std::collections::HashSet::new();
    let Some(dir) = approvals_dir(repo, tree)? else {
        return Ok(ids);
    };
    for entry in dir.iter() {
        if entry.kind() != Some(ObjectType::Blob) {
            continue;
        }
        let blob = repo.find_blob(entry.id()).map_err(git)?;
        if let Some(statement) = statement_text(blob.content()) {
            ids.insert(statement_id(statement));
        }
    }
    Ok(ids)
}

fn approvals_dir<'r>(
    repo: &'r Repository,
    tree: &Tree<'_>,
) -> Result<Option<Tree<'r>>, ApprovalError> {
    let git = |source| ApprovalError::Git { source };
    let entry = match tree.get_path(Path::new(APPROVALS_DIR)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git(e)),
    };
    let object = entry.to_object(repo).map_err(git)?;
    Ok(object.into_tree().ok())
}

fn file_name_for_id(id: &str) -> String {
    format!("{id}.{APPROVAL_EXTENSION}")
}

/// An approval whose signature verified for its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApproval {
    pub statement: ApprovalStatement,
    /// [`statement_id`] of the statement.
    pub id: String,
    /// The signing key.
    pub key: ssh_key::public::KeyData,
    /// `SHA256:…` fingerprint of the signing key.
    pub fingerprint: String,
}

/// Parses and verifies approval file `contents` against `signers`: the signature must be over
/// the statement, in [`APPROVAL_NAMESPACE`], by a key allowed for the statement's principal at
/// its `created` time. `source` names the file in errors.
pub fn verify_approval(
    contents: &[u8],
    source: &str,
    signers: &AllowedSigners,
) -> Result<VerifiedApproval, ApprovalError> {
    let malformed = |problem: &str| ApprovalError::Malformed {
        source_name: source.to_owned(),
        problem: problem.to_owned(),
    };
    let text = std::str::from_utf8(contents).map_err(|_| malformed("not UTF-8 text"))?;
    let split = text.find(ARMOR_BEGIN).ok_or_else(|| {
        malformed("no SSH signature (-----BEGIN SSH SIGNATURE-----) after the statement")
    })?;
    let (statement_text, signature) = text.split_at(split);
    let statement = ApprovalStatement::parse(statement_text, source)?;
    let valid = verify_as_principal(
        signature.as_bytes(),
        APPROVAL_NAMESPACE,
        statement_text.as_bytes(),
        signers,
        &statement.principal,
        statement.created,
    )
    .map_err(|rejection| ApprovalError::Rejected {
        source_name: source.to_owned(),
        rejection,
    })?;
    // OpenSSH matches a claimed principal against a line's patterns; an approval counts for a
    // person, so the key's line must name that principal literally (`*@example.com KEY` must not
    // let one key approve as everyone at example.com).
    let literal = signers.entries().iter().any(|entry| {
        super::allowed_signers::fingerprint(entry.key.key_data()) == valid.fingerprint
            && entry
                .principals
                .split(',')
                .any(|p| p.trim() == statement.principal)
    });
    if !literal {
        return Err(malformed(&format!(
            "the signing key's allowed_signers line does not name {} literally; approvals count only for principals listed by name",
            statement.principal
        )));
    }
    Ok(VerifiedApproval {
        id: statement_id(statement_text),
        statement,
        key: valid.key,
        fingerprint: valid.fingerprint,
    })
}

/// One counted approver of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub principal: String,
    /// `SHA256:…` fingerprint of the key that signed.
    pub fingerprint: String,
    /// The approval file's path in the repository.
    pub file: String,
}

/// Approval blobs already verified against one signers file, by (blob id, path).
#[derive(Debug, Default)]
pub struct VerifiedBlobs(
    std::collections::HashMap<(Oid, String), Result<VerifiedApproval, String>>,
);

/// Every approval file in a tree, verified.
#[derive(Debug, Default)]
pub struct ApprovalSet {
    /// Verified approvals with their file paths, in file name order.
    pub verified: Vec<(String, VerifiedApproval)>,
    /// Files under [`APPROVALS_DIR`] that did not verify, with why: report them, do not count them.
    pub rejected: Vec<(String, ApprovalError)>,
    /// Approvals that verified but cannot count for the change being judged (spent, made for
    /// another repository, too old, dated in the future, a key expired since), with why. The
    /// authorisation of a range fills it; [`ApprovalSet::load`] leaves it empty.
    pub not_counted: Vec<(String, VerifiedApproval, String)>,
}

impl ApprovalSet {
    /// Reads and verifies every `*.approval` file directly under [`APPROVALS_DIR`] in `tree`.
    pub fn load(
        repo: &Repository,
        tree: &Tree<'_>,
        signers: &AllowedSigners,
    ) -> Result<Self, ApprovalError> {
        Self::load_cached(repo, tree, signers, &mut VerifiedBlobs::default())
    }

    /// [`Self::load`], verifying each approval blob at most once per `cache` (which must only
    /// ever be used with the same `signers`): judging a range loads the approvals of many
    /// trees that share most of their files.
    pub fn load_cached(
        repo: &Repository,
        tree: &Tree<'_>,
        signers: &AllowedSigners,
        cache: &mut VerifiedBlobs,
    ) -> Result<Self, ApprovalError> {
        let git = |source| ApprovalError::Git { source };
        let mut set = Self::default();
        let Some(dir) = approvals_dir(repo, tree)? else {
            return Ok(set);
        };
        for entry in dir.iter() {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            let path = format!("{APPROVALS_DIR}/{name}");
            if entry.kind() != Some(ObjectType::Blob) {
                continue;
            }
            if !name.ends_with(&format!(".{APPROVAL_EXTENSION}")) {
                set.rejected.push((
                    path.clone(),
                    ApprovalError::Malformed {
                        source_name: path,
                        problem: format!("not an approval file (expected *.{APPROVAL_EXTENSION})"),
                    },
                ));
                continue;
            }
            let verified = match cache.0.get(&(entry.id(), path.clone())) {
                Some(Ok(approval)) => Ok(approval.clone()),
                Some(Err(message)) => Err(ApprovalError::Cached {
                    message: message.clone(),
                }),
                None => {
                    let blob = repo.find_blob(entry.id()).map_err(git)?;
                    let verified = verify_approval(blob.content(), &path, signers);
                    cache.0.insert(
                        (entry.id(), path.clone()),
                        verified
                            .as_ref()
                            .map(Clone::clone)
                            .map_err(ToString::to_string),
                    );
                    verified
                }
            };
            match verified {
                // The name is the statement's hash: a copy under another name is the same
                // statement pretending to be a new one (a replay past "already used").
                Ok(approval) if name != file_name_for_id(&approval.id) => set.rejected.push((
                    path.clone(),
                    ApprovalError::Malformed {
                        problem: format!(
                            "the file name must be the SHA-256 of its statement ({}); a renamed copy of an approval counts for nothing",
                            file_name_for_id(&approval.id)
                        ),
                        source_name: path,
                    },
                )),
                Ok(approval) => set.verified.push((path, approval)),
                Err(error) => set.rejected.push((path, error)),
            }
        }
        Ok(set)
    }

    /// The distinct approvers of exactly `content` at `path`, sorted by principal. Each principal
    /// and each key counts once: a key listed under several principals cannot make several
    /// approvals (the alphabetically first of its principals is kept).
    pub fn approvers_of(&self, path: &str, content: &ApprovedContent) -> Vec<Approver> {
        self.approvers_of_where(path, content, |_| true)
    }

    /// Like [`Self::approvers_of`], keeping only approvers for whom `counts` holds *before*
    /// de-duplicating, so an approver who does not count (no sudo, not pinned) cannot hide one
    /// who does behind a shared key.
    pub fn approvers_of_where(
        &self,
        path: &str,
        content: &ApprovedContent,
        counts: impl Fn(&Approver) -> bool,
    ) -> Vec<Approver> {
        let mut candidates: Vec<Approver> = self
            .verified
            .iter()
            .filter(|(_, a)| a.statement.changes.get(path) == Some(content))
            .map(|(file, a)| Approver {
                principal: a.statement.principal.clone(),
                fingerprint: a.fingerprint.clone(),
                file: file.clone(),
            })
            .filter(|a| counts(a))
            .collect();
        candidates.sort_by(|a, b| (&a.principal, &a.file).cmp(&(&b.principal, &b.file)));
        let mut principals = BTreeSet::new();
        let mut keys = BTreeSet::new();
        candidates.retain(|a| {
            let new_principal = !principals.contains(&a.principal);
            let new_key = !keys.contains(&a.fingerprint);
            if new_principal && new_key {
                principals.insert(a.principal.clone());
                keys.insert(a.fingerprint.clone());
            }
            new_principal && new_key
        });
        candidates
    }
}

/// The answer of [`approvals_for`].
#[derive(Debug)]
pub struct Approvals {
    /// Distinct approvers, sorted by principal (see [`ApprovalSet::approvers_of`]).
    pub approvers: Vec<Approver>,
    /// Approval files that did not verify, with why.
    pub rejected: Vec<(String, ApprovalError)>,
}

/// The distinct approvers of exactly `content` at `path` among the approval files of `tree`,
/// with the files that did not verify.
pub fn approvals_for(
    repo: &Repository,
    tree: &Tree<'_>,
    signers: &AllowedSigners,
    path: &str,
    content: &ApprovedContent,
) -> Result<Approvals, ApprovalError> {
    let set = ApprovalSet::load(repo, tree, signers)?;
    Ok(Approvals {
        approvers: set.approvers_of(path, content),
        rejected: set.rejected,
    })
}

/// The resulting content of every path that differs between `old` and `new` (`None` = empty
/// tree): what an approval of that change must list, and what the checker looks up. Renames are
/// a deletion plus an addition. Paths that are not UTF-8 are refused (statements are text).
pub fn changes_between(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
) -> Result<BTreeMap<String, ApprovedContent>, ApprovalError> {
    let git = |source| ApprovalError::Git { source };
    let diff = repo.diff_tree_to_tree(old, Some(new), None).map_err(git)?;
    let mut changes = BTreeMap::new();
    for delta in diff.deltas() {
        let (file, content) = match delta.status() {
            git2::Delta::Deleted => (delta.old_file(), ApprovedContent::Deleted),
            _ => (
                delta.new_file(),
                ApprovedContent::Blob(delta.new_file().id()),
            ),
        };
        let path = file.path_bytes().unwrap_or_default();
        let path = std::str::from_utf8(path).map_err(|_| ApprovalError::Invalid {
            problem: format!(
                "path {:?} is not UTF-8; approvals name paths as text",
                String::from_utf8_lossy(path)
            ),
        })?;
        changes.insert(path.to_owned(), content);
    }
    Ok(changes)
}

/// Principals in statements are names, not patterns: no wildcards, negation, commas or spaces.
fn check_principal(principal: &str) -> Result<(), String> {
    if principal.is_empty() {
        return Err("empty principal".to_owned());
    }
    if let Some(bad) = principal
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '*' | '?' | '"'))
    {
        return Err(format!(
            "principal {principal:?} contains {bad:?}; use a plain name such as alice@example.com"
        ));
    }
    if principal.starts_with('!') {
        return Err(format!("principal {principal:?} starts with '!'"));
    }
    Ok(())
}

/// Repository paths as git stores them: relative, `/`-separated, no empty, `.` or `..` segments,
/// no control characters.
fn check_path(path: &str) -> Result<(), String> {
    let bad_segment = path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if path.is_empty() || bad_segment || path.chars().any(char::is_control) {
        return Err(format!(
            "path {path:?} is not a normalised repository path (relative, `/`-separated, no `.`/`..`/empty segments or control characters)"
        ));
    }
    Ok(())
}

fn format_time(seconds: i64) -> Result<String, String> {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| format!("time {seconds} is out of range"))?;
    Ok(Timestamp(t.unix_timestamp()).to_string())
}

fn parse_created(text: &str) -> Result<i64, String> {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let seconds = time::PrimitiveDateTime::parse(text, format)
        .map_err(|_| format!("{text:?} is not a time like 2024-06-10T06:13:20Z"))?
        .assume_utc()
        .unix_timestamp();
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "5f0c3e7a9b2d4c1e8f6a0b3c5d7e9f12";

    fn blob(hex: char) -> ApprovedContent {
        ApprovedContent::Blob(Oid::from_str(&hex.to_string().repeat(40)).unwrap())
    }

    #[test]
    fn statement_text_round_trips_and_is_canonical() {
        let statement = ApprovalStatement::new(
            REPO,
            "alice@example.com",
            1_718_000_000,
            [
                ("secrets/b.yaml".to_owned(), blob('b')),
                ("policies/a.hcl".to_owned(), ApprovedContent::Deleted),
            ],
        )
        .unwrap();
        let text = statement.to_text();
        assert_eq!(
            text,
            format!(
                "sealops-approval v2\nrepository {REPO}\nprincipal alice@example.com\ncreated 2024-06-10T06:13:20Z\ndeleted policies/a.hcl\nblob {} secrets/b.yaml\n",
                "b".repeat(40)
            )
        );
        assert_eq!(ApprovalStatement::parse(&text, "t").unwrap(), statement);

        let unsorted = text.replace("deleted policies/a.hcl\n", "") + "deleted policies/a.hcl\n";
        let err = ApprovalStatement::parse(&unsorted, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("canonical"), "{err}");
    }

    #[test]
    fn malformed_statements_say_what_is_wrong() {
        let err = |text: &str| {
            ApprovalStatement::parse(text, "f.approval")
                .unwrap_err()
                .to_string()
        };
        assert!(err("hello\n").contains("line 1"));
        let v2 = format!("sealops-approval v2\nrepository {REPO}\n");
        assert!(err(&format!("{v2}principal a@x\ncreated 2024-06-10\n")).contains("line 4"));
        assert!(err("sealops-approval v2\nprincipal a@x\n").contains("line 2"));
        assert!(err("sealops-approval v2\nrepository XYZ\nprincipal a@x\ncreated 2024-06-10T06:13:20Z\ndeleted a\n").contains("repository_id"));
        assert!(
            err("sealops-approval v1\nprincipal a@x\ncreated 2024-06-10T06:13:20Z\ndeleted a\n")
                .contains("version 1")
        );
        let head = format!("{v2}principal a@x\ncreated 2024-06-10T06:13:20Z\n");
        assert!(err(&head).contains("at least one path"));
        assert!(err(&format!("{head}blob XYZ p\n")).contains("object id"));
        assert!(err(&format!("{head}deleted ../x\n")).contains("normalised"));
        assert!(err(&format!("{head}deleted x")).contains("final newline"));
        let star = format!("{v2}principal *@x\ncreated 2024-06-10T06:13:20Z\ndeleted a\n");
        assert!(err(&star).contains("plain name"));
    }

    #[test]
    fn blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            ApprovedContent::of_bytes(b"hello\n"),
            ApprovedContent::Blob(
                Oid::from_str("ce013625030ba8dba906f756967f9e9ca394464a").unwrap()
            )
        );
    }
}
