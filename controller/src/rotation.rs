//! Static-role rotation, write-ahead: at no moment may an account's password be unknown to
//! the controller.
//!
//! [`record`] stores the new password, sealed to the controller's own identity, in the state
//! store before anything else happens. [`finish`] then does the rest, each step safe to repeat:
//! set the password (unless the new one already logs in), check that it logs in, hand it to the
//! outputs, and only then forget the record. A controller killed anywhere runs [`finish`] on
//! every recorded rotation when it starts again, so the database ends with the password the
//! outputs hold. Killed before [`record`] returned, nothing has changed: the old password, which
//! the outputs hold, still works.

use sealops_core::backend::StaticRole;
use sealops_core::keys::{AgeIdentities, Recipient, open_sealed, seal_to};
use sealops_core::secret::SecretValue;
use serde::{Deserialize, Serialize};

use crate::dbs::Database;
use crate::leases::LeaseStore;

/// How far a recorded rotation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The new password is recorded; the database may or may not have it yet.
    Recorded,
    /// The database has it (it logged in); the outputs may not.
    Changed,
}

/// A rotation recorded and not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingRotation {
    /// `<backend>/static-creds/<role>`.
    pub id: String,
    pub username: String,
    /// The new password, age-encrypted to the controller's own recipient.
    pub sealed_password: String,
    pub step: Step,
}

/// Why a rotation has not finished (it stays recorded and is finished later).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] crate::leases::LeaseError),
    #[error(
        "rotation {id}: the recorded password cannot be opened with this controller's identities; restore the identity it was sealed to"
    )]
    Unsealable { id: String },
    #[error("rotation {id}: {problem}")]
    Database { id: String, problem: String },
    #[error("rotation {id}: writing the outputs failed: {problem}")]
    Outputs { id: String, problem: String },
}

fn save(store: &LeaseStore, pending: &PendingRotation) -> Result<(), RotationError> {
    let bytes = serde_json::to_vec(pending).expect("a rotation serialises");
    Ok(store.put_rotation(&pending.id, &bytes)?)
}

/// Every rotation a previous run left unfinished.
pub fn pending(store: &LeaseStore) -> Result<Vec<PendingRotation>, RotationError> {
    store
        .rotations()?
        .into_iter()
        .map(|(id, bytes)| {
            serde_json::from_slice(&bytes).map_err(|e| {
                RotationError::Store(crate::leases::LeaseError {
                    path: std::path::PathBuf::from(crate::leases::FILE),
                    problem: format!("rotation {id}: {e}"),
                })
            })
        })
        .collect()
}

/// Step one: records `password` for `username` (sealed to `own`) before the database changes.
pub fn record(
    store: &LeaseStore,
    own: &Recipient,
    id: &str,
    username: &str,
    password: &SecretValue,
) -> Result<PendingRotation, RotationError> {
    let pending = PendingRotation {
        id: id.to_owned(),
        username: username.to_owned(),
        sealed_password: seal_to(own, password),
        step: Step::Recorded,
    };
    save(store, &pending)?;
    Ok(pending)
}

/// The rest, from wherever `pending` got: safe to run again after a crash at any point.
/// `write_outputs` receives the new password and must write every output that holds it.
pub async fn finish<D: Database>(
    db: &D,
    role: &StaticRole,
    store: &LeaseStore,
    identities: &AgeIdentities,
    mut pending: PendingRotation,
    write_outputs: impl FnOnce(&SecretValue) -> Result<(), String>,
) -> Result<(), RotationError> {
    let id = pending.id.clone();
    let password = open_sealed(identities, &pending.sealed_password)
        .ok_or_else(|| RotationError::Unsealable { id: id.clone() })?;
    let database = |problem: String| RotationError::Database {
        id: id.clone(),
        problem,
    };
    if pending.step == Step::Recorded {
        if db.login(&pending.username, &password).await.is_err() {
            db.set_password(role, &pending.username, &password)
                .await
                .map_err(|e| database(e.to_string()))?;
        }
        db.login(&pending.username, &password)
            .await
            .map_err(|e| database(format!("the new password does not log in: {e}")))?;
        pending.step = Step::Changed;
        save(store, &pending)?;
    }
    write_outputs(&password).map_err(|problem| RotationError::Outputs {
        id: id.clone(),
        problem,
    })?;
    store.remove_rotation(&id)?;
    Ok(())
}
