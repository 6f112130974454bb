//! Who signed a git commit: git's own SSH signatures (`gpg.format ssh`), checked in process the
//! way `git verify-commit` checks them with `gpg.ssh.allowedSignersFile`: an SSHSIG in namespace
//! `git` over the commit object without its `gpgsig` header, by a key the allowed-signers file
//! lists, valid at the commit's committer time.
//!
//! Use [`verify_commit`] for one commit and [`verify_range`] for `from..to`, as git would judge
//! them. Merge commits are verified like any other commit (their own signature; parents are
//! separate commits).
//!
//! The committer time is chosen by whoever signs, so git's check lets an expired key sign a
//! back-dated commit and a not-yet-valid key sign a future-dated one. Where it matters (the
//! authorisation of a range) use [`verify_commit_seen`]: the key must also be valid (not past
//! `valid-before`) when the judge first saw the commit, and a commit dated more than the
//! allowed clock skew after that is refused.

use git2::{Oid, Repository};

use super::GIT_NAMESPACE;
use super::allowed_signers::{AllowedSigners, KeyRejection, Timestamp};
use super::sshsig::{SignatureRejection, SignedBy, verify_signature};

/// The outcome of verifying one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitVerdict {
    /// Signed by a key the allowed-signers file accepts for `git` at the commit time.
    Verified(SignedBy),
    /// Not verified, and why.
    NotVerified(CommitRejection),
}

impl CommitVerdict {
    /// The principals that signed, if verified.
    pub fn signed_by(&self) -> Option<&SignedBy> {
        match self {
            Self::Verified(signed) => Some(signed),
            Self::NotVerified(_) => None,
        }
    }
}

/// Why a commit is not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRejection {
    #[error(
        "commit is not signed; sign it with `git commit -S` (with `gpg.format ssh` and `user.signingkey`)"
    )]
    Unsigned,
    #[error(
        "commit is signed with {format}, not SSH; sealops verifies SSH signatures only (`git config gpg.format ssh`)"
    )]
    NotSsh { format: &'static str },
    #[error(transparent)]
    Signature(#[from] SignatureRejection),
    #[error(
        "commit is dated {committed}, more than {skew_seconds} s after it was first seen ({seen}); a signer cannot choose a future date to use a key before its valid-after: fix the committer's clock and commit again"
    )]
    FutureDated {
        committed: Timestamp,
        seen: Timestamp,
        skew_seconds: i64,
    },
    #[error(
        "the signing key was no longer valid when this commit was first seen ({seen}): {rejection}; a back-dated commit does not make an expired key valid: sign it with a current key"
    )]
    ExpiredWhenSeen {
        seen: Timestamp,
        rejection: KeyRejection,
    },
}

/// When the judge first saw a commit, and how far the commit's date may run ahead of that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenAt {
    /// Unix seconds.
    pub time: i64,
    pub max_skew_seconds: i64,
}

/// Errors reading the repository (not verdicts on a commit).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("cannot read commit {commit}: {source}")]
    Read {
        commit: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot walk commits {range}: {source}")]
    Walk {
        range: String,
        #[source]
        source: git2::Error,
    },
}

/// Verifies the signature of commit `oid` against `signers` at its committer time.
pub fn verify_commit(
    repo: &Repository,
    oid: Oid,
    signers: &AllowedSigners,
) -> Result<CommitVerdict, CommitError> {
    verify(repo, oid, signers, None)
}

/// Verifies commit `oid` as [`verify_commit`] does, and also at the time the judge first saw
/// it: a commit dated more than `seen.max_skew_seconds` after `seen.time` is refused, and the
/// key must still be valid (`valid-before`) at `seen.time`. The principals are those the key
/// may sign as at both times.
pub fn verify_commit_seen(
    repo: &Repository,
    oid: Oid,
    signers: &AllowedSigners,
    seen: SeenAt,
) -> Result<CommitVerdict, CommitError> {
    verify(repo, oid, signers, Some(seen))
}

fn verify(
    repo: &Repository,
    oid: Oid,
    signers: &AllowedSigners,
    seen: Option<SeenAt>,
) -> Result<CommitVerdict, CommitError> {
    let read_error = |source| CommitError::Read {
        commit: oid.to_string(),
        source,
    };
    let not_verified = |why| Ok(CommitVerdict::NotVerified(why));
    let commit = repo.find_commit(oid).map_err(read_error)?;
    let committed = commit.committer().when().seconds();
    if let Some(seen) = seen
        && committed > seen.time.saturating_add(seen.max_skew_seconds)
    {
        return not_verified(CommitRejection::FutureDated {
            committed: Timestamp(committed),
            seen: Timestamp(seen.time),
            skew_seconds: seen.max_skew_seconds,
        });
    }
    let (signature, signed_data) = match repo.extract_signature(&oid, None) {
        Ok(parts) => parts,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return not_verified(CommitRejection::Unsigned);
        }
        Err(e) => return Err(read_error(e)),
    };
    if let Some(format) = foreign_format(&signature) {
        return not_verified(CommitRejection::NotSsh { format });
    }
    let valid = match verify_signature(&signature, GIT_NAMESPACE, &signed_data) {
        Ok(valid) => valid,
        Err(rejection) => return not_verified(rejection.into()),
    };
    let mut principals = match signers.principals_for_key(&valid.key, GIT_NAMESPACE, committed) {
        Ok(principals) => principals,
        Err(rejection) => return not_verified(SignatureRejection::from(rejection).into()),
    };
    if let Some(seen) = seen.filter(|seen| seen.time > committed) {
        let expired = |rejection| {
            not_verified(CommitRejection::ExpiredWhenSeen {
                seen: Timestamp(seen.time),
                rejection,
            })
        };
        match signers.principals_for_key(&valid.key, GIT_NAMESPACE, seen.time) {
            Ok(later) => {
                // Other lines may list the key now; the ones it signed by must still hold.
                let first = principals[0].clone();
                principals.retain(|p| later.contains(p));
                if principals.is_empty() {
                    let rejection = signers
                        .check_principal(&first, &valid.key, GIT_NAMESPACE, seen.time)
                        .err()
                        .unwrap_or(KeyRejection::NotForPrincipal {
                            fingerprint: valid.fingerprint.clone(),
                            principal: first,
                            file: signers.source().to_owned(),
                        });
                    return expired(rejection);
                }
            }
            Err(rejection) => return expired(rejection),
        }
    }
    Ok(CommitVerdict::Verified(SignedBy {
        principals,
        fingerprint: valid.fingerprint,
    }))
}

/// Verifies every commit in `range` (a revspec such as `main..feature`, or a single commit
/// meaning all its ancestors), newest first.
pub fn verify_range(
    repo: &Repository,
    range: &str,
    signers: &AllowedSigners,
) -> Result<Vec<(Oid, CommitVerdict)>, CommitError> {
    let walk_error = |source| CommitError::Walk {
        range: range.to_owned(),
        source,
    };
    let mut walk = repo.revwalk().map_err(walk_error)?;
    if range.contains("..") {
        walk.push_range(range).map_err(walk_error)?;
    } else {
        let target = repo.revparse_single(range).map_err(walk_error)?;
        walk.push(target.id()).map_err(walk_error)?;
    }
    walk.map(|oid| {
        let oid = oid.map_err(walk_error)?;
        Ok((oid, verify_commit(repo, oid, signers)?))
    })
    .collect()
}

/// The kind of a signature git would hand to another program than ssh-keygen, by its armor.
fn foreign_format(signature: &[u8]) -> Option<&'static str> {
    let text = signature.trim_ascii_start();
    if text.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        None
    } else if text.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        Some("OpenPGP")
    } else if text.starts_with(b"-----BEGIN SIGNED MESSAGE-----") {
        Some("X.509")
    } else {
        Some("an unknown format")
    }
}
