//! Sealing, opening, re-wrapping and verifying manifests.
//!
//! Which call to use:
//! - [`Manifest::seal_values`] adds or replaces values. It needs only public keys; with an
//!   identity that opens an existing session wrapped to the current recipients it reuses that
//!   session, otherwise it adds a new one.
//! - [`Manifest::reveal`] opens every sealed value (one X25519 unwrap per session used).
//! - [`Manifest::rewrap`] re-wraps session keys to the current recipients (only session entries
//!   change); [`Manifest::rotate_data_key`] re-encrypts every value under one fresh session.
//! - [`Manifest::verify`] lists every problem, with or without an identity.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::NamedRecipient;
use crate::envelope::{self, EnvelopeError, SessionKey};
use crate::keys::{IdentitySet, KeyId, Recipient};
use crate::manifest::{Manifest, SecretPath, Session, SessionId};
use crate::secret::SecretValue;
use crate::value::SealedValue;

/// Names recipients in messages: `name (age1…)` for known key ids.
#[derive(Debug, Default, Clone)]
pub struct RecipientNames(BTreeMap<KeyId, String>);

impl RecipientNames {
    pub fn new(recipients: &[NamedRecipient]) -> Self {
        Self(
            recipients
                .iter()
                .map(|r| {
                    (
                        r.recipient.id().clone(),
                        format!("{} ({})", r.name, r.recipient),
                    )
                })
                .collect(),
        )
    }

    pub fn describe(&self, id: &KeyId) -> String {
        self.0
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("key id {id} (not in .sealops/config.yaml)"))
    }
}

/// Why a manifest, or one of its values, did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{file}: none of your identities ({yours}) is a recipient of this manifest; its recipients are {theirs}"
    )]
    NotARecipient {
        file: String,
        yours: String,
        theirs: String,
    },
    #[error("{file}: session {session} (keys: {keys}) does not open: {source}")]
    Session {
        file: String,
        session: SessionId,
        keys: String,
        #[source]
        source: EnvelopeError,
    },
    #[error(
        "{file}: the value of key {key} does not open: it was altered, or copied from another key, manifest or scope"
    )]
    Value { file: String, key: String },
    #[error("{file}: no key named {key}")]
    NoSuchKey { file: String, key: String },
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "no recipients: add one with `sealops recipients add age1…` (or `sealops init --recipient`)"
    )]
    NoRecipients,
    #[error("{0}")]
    InvalidKey(String),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// Opened session keys of one manifest, so each session costs one unwrap.
#[derive(Debug, Default)]
pub struct SessionCache(HashMap<SessionId, SessionKey>);

impl Manifest {
    /// Opens one session with whichever identity is listed in it.
    pub fn open_session(
        &self,
        file: &str,
        id: &SessionId,
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<SessionKey, OpenError> {
        let session = &self.sessions[id];
        let found = session
            .recipients
            .iter()
            .enumerate()
            .find_map(|(index, key_id)| identities.find(key_id).map(|identity| (index, identity)));
        let Some((index, identity)) = found else {
            let theirs: BTreeSet<String> = session
                .recipients
                .iter()
                .map(|id| names.describe(id))
                .collect();
            return Err(OpenError::NotARecipient {
                file: file.to_owned(),
                yours: if identities.is_empty() {
                    "none loaded".to_owned()
                } else {
                    identities.describe()
                },
                theirs: theirs.into_iter().collect::<Vec<_>>().join(", "),
            });
        };
        envelope::unwrap(&session.envelope, index, session.recipients.len(), identity).map_err(
            |source| OpenError::Session {
                file: file.to_owned(),
                session: id.clone(),
                keys: self.keys_in_session(id).join(", "),
                source,
            },
        )
    }

    fn session_key<'c>(
        &self,
        cache: &'c mut SessionCache,
        file: &str,
        id: &SessionId,
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<&'c SessionKey, OpenError> {
        if !cache.0.contains_key(id) {
            let key = self.open_session(file, id, identities, names)?;
            cache.0.insert(id.clone(), key);
        }
        Ok(&cache.0[id])
    }

    /// Opens one sealed value.
    pub fn open_value(
        &self,
        file: &str,
        key: &str,
        identities: &IdentitySet,
        names: &RecipientNames,
        cache: &mut SessionCache,
    ) -> Result<SecretValue, OpenError> {
        let sealed = self.data.get(key).ok_or_else(|| OpenError::NoSuchKey {
            file: file.to_owned(),
            key: key.to_owned(),
        })?;
        let binding = self.scope_binding();
        let session_key = self.session_key(cache, file, sealed.session(), identities, names)?;
        sealed
            .open(session_key, &binding, key)
            .ok_or_else(|| OpenError::Value {
                file: file.to_owned(),
                key: key.to_owned(),
            })
    }

    /// Opens every sealed value.
    pub fn reveal(
        &self,
        file: &str,
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<BTreeMap<String, SecretValue>, OpenError> {
        let mut cache = SessionCache::default();
        self.data
            .keys()
            .map(|key| {
                self.open_value(file, key, identities, names, &mut cache)
                    .map(|v| (key.clone(), v))
            })
            .collect()
    }

    /// Seals `values` (replacing existing ones; a plain value of the same key becomes sealed).
    ///
    /// Reuses a session wrapped to exactly `recipients` when an identity opens it; otherwise adds
    /// one new session for all of `values`. Keys not in `values` are untouched.
    pub fn seal_values(
        &mut self,
        file: &str,
        values: BTreeMap<String, SecretValue>,
        recipients: &[Recipient],
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<(), SealError> {
        if values.is_empty() {
            return Ok(());
        }
        for key in values.keys() {
            crate::manifest::validate_key_name(key).map_err(SealError::InvalidKey)?;
        }
        let (session, key) = self.writable_session(file, recipients, identities, names)?;
        let binding = self.scope_binding();
        for (name, value) in values {
            self.plain.remove(&name);
            let sealed = SealedValue::seal(&key, &session, &binding, &name, &value);
            self.data.insert(name, sealed);
        }
        self.drop_unused_sessions();
        Ok(())
    }

    /// A session to seal new values under: an existing one wrapped to exactly `recipients`
    /// that an identity opens (the most used one), else a new one.
    fn writable_session(
        &mut self,
        file: &str,
        recipients: &[Recipient],
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<(SessionId, SessionKey), SealError> {
        if recipients.is_empty() {
            return Err(SealError::NoRecipients);
        }
        let wanted: BTreeSet<&KeyId> = recipients.iter().map(Recipient::id).collect();
        let mut candidates: Vec<(usize, SessionId)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.recipients.iter().collect::<BTreeSet<_>>() == wanted)
            .filter(|(_, s)| s.recipients.iter().any(|id| identities.find(id).is_some()))
            .map(|(id, _)| (self.keys_in_session(id).len(), id.clone()))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        if let Some((_, id)) = candidates.into_iter().next() {
            let key = self.open_session(file, &id, identities, names)?;
            return Ok((id, key));
        }
        let key = SessionKey::generate();
        let id = self.new_session_id();
        let envelope = envelope::wrap(&key, recipients)?;
        self.sessions.insert(
            id.clone(),
            Session {
                recipients: recipients.iter().map(|r| r.id().clone()).collect(),
                envelope,
            },
        );
        Ok((id, key))
    }

    fn new_session_id(&self) -> SessionId {
        loop {
            let id = SessionId::generate();
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sets a plain (non-secret) value; a sealed value of the same key is removed.
    pub fn set_plain(&mut self, key: &str, value: String) -> Result<(), SealError> {
        crate::manifest::validate_key_name(key).map_err(SealError::InvalidKey)?;
        self.data.remove(key);
        self.plain.insert(key.to_owned(), value);
        self.drop_unused_sessions();
        Ok(())
    }

    /// Removes a key (sealed or plain). Returns whether it existed.
    pub fn remove_key(&mut self, key: &str) -> bool {
        let existed = self.data.remove(key).is_some() | self.plain.remove(key).is_some();
        self.drop_unused_sessions();
        existed
    }

    /// Re-wraps every session key to `recipients`. Values do not change. Returns whether any
    /// session entry changed.
    pub fn rewrap(
        &mut self,
        file: &str,
        recipients: &[Recipient],
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<bool, SealError> {
        if recipients.is_empty() {
            return Err(SealError::NoRecipients);
        }
        let wanted: Vec<KeyId> = recipients.iter().map(|r| r.id().clone()).collect();
        let mut changed = false;
        let ids: Vec<SessionId> = self.sessions.keys().cloned().collect();
        for id in ids {
            if self.sessions[&id].recipients == wanted {
                continue;
            }
            let key = self.open_session(file, &id, identities, names)?;
            let envelope = envelope::wrap(&key, recipients)?;
            self.sessions.insert(
                id,
                Session {
                    recipients: wanted.clone(),
                    envelope,
                },
            );
            changed = true;
        }
        Ok(changed)
    }

    /// Re-encrypts every value under one fresh session wrapped to `recipients`.
    pub fn rotate_data_key(
        &mut self,
        file: &str,
        recipients: &[Recipient],
        identities: &IdentitySet,
        names: &RecipientNames,
    ) -> Result<(), SealError> {
        let values = self.reveal(file, identities, names)?;
        self.data.clear();
        self.sessions.clear();
        if values.is_empty() {
            return Ok(());
        }
        let key = SessionKey::generate();
        let id = SessionId::generate();
        let envelope = envelope::wrap(&key, recipients)?;
        self.sessions.insert(
            id.clone(),
            Session {
                recipients: recipients.iter().map(|r| r.id().clone()).collect(),
                envelope,
            },
        );
        let binding = self.scope_binding();
        for (name, value) in values {
            let sealed = SealedValue::seal(&key, &id, &binding, &name, &value);
            self.data.insert(name, sealed);
        }
        Ok(())
    }

    /// Every problem with this manifest, as messages naming the key or session concerned.
    ///
    /// `location` is where the file lives, when known; `identities` (when not empty) also
    /// opens every session and value.
    pub fn verify(
        &self,
        location: Option<&SecretPath>,
        recipients: &[NamedRecipient],
        identities: &IdentitySet,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(location) = location
            && location != &self.path
        {
            problems.push(format!(
                "the manifest declares path {} but lives at secrets/{location}.yaml; a moved manifest must be sealed again at its new path",
                self.path
            ));
        }
        let names = RecipientNames::new(recipients);
        let wanted: BTreeSet<&KeyId> = recipients.iter().map(|r| r.recipient.id()).collect();
        for (id, session) in &self.sessions {
            let keys = self.keys_in_session(id);
            let listed: BTreeSet<&KeyId> = session.recipients.iter().collect();
            if listed.len() != session.recipients.len() {
                problems.push(format!("session {id} lists a recipient twice"));
            }
            for missing in wanted.difference(&listed) {
                problems.push(format!(
                    "session {id} (keys: {}) is not wrapped to recipient {}: run `sealops rewrap`",
                    keys.join(", "),
                    names.describe(missing)
                ));
            }
            for extra in listed.difference(&wanted) {
                problems.push(format!(
                    "session {id} (keys: {}) is still wrapped to {}, which is no longer a recipient: run `sealops rotate-data-key` (that key can read these values until then)",
                    keys.join(", "),
                    names.describe(extra)
                ));
            }
            match envelope::count_x25519_stanzas(&session.envelope) {
                Ok(count) if count == session.recipients.len() => {}
                Ok(count) => problems.push(format!(
                    "session {id}: lists {} recipients but its age envelope holds {count} X25519 stanzas",
                    session.recipients.len()
                )),
                Err(e) => problems.push(format!("session {id}: {e}")),
            }
        }
        if !identities.is_empty() {
            let mut cache = SessionCache::default();
            let file = format!("secrets/{}.yaml", self.path);
            for key in self.data.keys() {
                if let Err(e) = self.open_value(&file, key, identities, &names, &mut cache) {
                    let message = e.to_string();
                    let message = message
                        .strip_prefix(&format!("{file}: "))
                        .unwrap_or(&message);
                    let message = format!("key {key}: {message}");
                    if !problems.contains(&message) {
                        problems.push(message);
                    }
                }
            }
        }
        problems
    }
}
