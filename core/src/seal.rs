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
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keys::{AgeIdentities, Identity, KeyId, Recipient};
use crate::manifest::{Manifest, SecretPath, Session};
use crate::secret::SecretValue;
use crate::value::SealedValue;
use crate::value::SessionId;

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
    #[error(
        "{file}: session {session} is wrapped to {recipient}, which is no longer a recipient; re-wrapping would keep a key that recipient already holds: run `sealops rotate-data-key` instead"
    )]
    RemovedRecipient {
        file: String,
        session: SessionId,
        recipient: String,
    },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// The endorsement of a session by `identity`: HMAC-SHA256 over the session id, its recipients
/// and its envelope, keyed by a key only the identity's holder can derive.
///
/// Anyone can add a session (sealing needs only public keys), including one whose key they
/// know. New values must never be sealed under such a session, or a write-only contributor
/// could read them; so only sessions endorsed by one of our own identities are reused.
fn endorsement(
    identity: &Identity,
    id: &SessionId,
    recipients: &[KeyId],
    envelope: &str,
) -> Hmac<Sha256> {
    let key = identity.endorsement_key();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
    mac.update(b"sealops/v1 session endorsement\0");
    mac.update(id.as_str().as_bytes());
    for recipient in recipients {
        mac.update(b"\0");
        mac.update(recipient.as_str().as_bytes());
    }
    mac.update(b"\0");
    mac.update(envelope.as_bytes());
    mac
}

/// A new session entry for `key`, endorsed by the first of `identities` that is a recipient.
fn new_session(
    id: &SessionId,
    key: &SessionKey,
    recipients: &[Recipient],
    identities: &AgeIdentities,
) -> Result<Session, EnvelopeError> {
    let envelope = envelope::wrap(key, recipients)?;
    let ids: Vec<KeyId> = recipients.iter().map(|r| r.id().clone()).collect();
    let endorsement = ids
        .iter()
        .find_map(|kid| identities.find(kid))
        .map(|identity| {
            hex::encode(
                endorsement(identity, id, &ids, &envelope)
                    .finalize()
                    .into_bytes(),
            )
        });
    Ok(Session {
        recipients: ids,
        endorsement,
        envelope,
    })
}

/// Whether one of `identities` endorsed this session.
fn endorsed_by_us(id: &SessionId, session: &Session, identities: &AgeIdentities) -> bool {
    let Some(tag) = session
        .endorsement
        .as_deref()
        .and_then(|t| hex::decode(t).ok())
    else {
        return false;
    };
    session
        .recipients
        .iter()
        .filter_map(|kid| identities.find(kid))
        .any(|identity| {
            endorsement(identity, id, &session.recipients, &session.envelope)
                .verify_slice(&tag)
                .is_ok()
        })
}

/// Opened session keys of one manifest, so each session costs one unwrap.
#[derive(Debug, Default)]
pub struct SessionCache(HashMap<SessionId, SessionKey>);

/// Session keys opened earlier, by the SHA-256 of their armored envelope, shared across
/// manifests and reconciles: a long-running reader (the controller) unwraps each session once,
/// not once per resync. Safe to share between threads. Keys unused since the last
/// [`EnvelopeCache::new_generation`] are dropped by [`EnvelopeCache::sweep`].
#[derive(Debug, Default)]
pub struct EnvelopeCache {
    keys: std::sync::RwLock<HashMap<[u8; 32], (SessionKey, std::sync::atomic::AtomicU64)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl EnvelopeCache {
    fn digest(envelope: &str) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(envelope.as_bytes()).into()
    }

    fn get(&self, digest: &[u8; 32]) -> Option<SessionKey> {
        use std::sync::atomic::Ordering;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (key, used) = keys.get(digest)?;
        used.store(self.generation.load(Ordering::Relaxed), Ordering::Relaxed);
        Some(key.clone())
    }

    fn insert(&self, digest: [u8; 32], key: SessionKey) {
        let generation = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, (key, generation.into()));
    }

    /// Starts a generation: a reader about to open everything it still needs (a full resync)
    /// calls this first and [`EnvelopeCache::sweep`] after.
    pub fn new_generation(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops (and zeroes) the keys not used in the current generation.
    pub fn sweep(&self) {
        use std::sync::atomic::Ordering;
        let current = self.generation.load(Ordering::Relaxed);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, used)| used.load(Ordering::Relaxed) == current);
    }

    /// How many session keys are held.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key (they are zeroed as they drop).
    pub fn clear(&self) {
        self.keys.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Manifest {
    /// Opens one session with whichever identity is listed in it.
    pub fn open_session(
        &self,
        file: &str,
        id: &SessionId,
        identities: &AgeIdentities,
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
        identities: &AgeIdentities,
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
        identities: &AgeIdentities,
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
        identities: &AgeIdentities,
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

    /// Opens every sealed value like [`Manifest::reveal`], taking session keys from `cache` and
    /// adding the ones it had to unwrap.
    pub fn reveal_cached(
        &self,
        file: &str,
        identities: &AgeIdentities,
        names: &RecipientNames,
        cache: &EnvelopeCache,
    ) -> Result<BTreeMap<String, SecretValue>, OpenError> {
        let mut local = SessionCache::default();
        let mut digests = Vec::new();
        for (id, session) in &self.sessions {
            let digest = EnvelopeCache::digest(&session.envelope);
            match cache.get(&digest) {
                Some(key) => {
                    local.0.insert(id.clone(), key);
                }
                None => digests.push((id, digest)),
            }
        }
        let values = self
            .data
            .keys()
            .map(|key| {
                self.open_value(file, key, identities, names, &mut local)
                    .map(|v| (key.clone(), v))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        for (id, digest) in digests {
            if let Some(key) = local.0.remove(id) {
                cache.insert(digest, key);
            }
        }
        Ok(values)
    }

    /// Seals `values` (replacing existing ones; a plain value of the same key becomes sealed).
    ///
    /// Reuses a session wrapped to exactly `recipients` that one of `identities` endorsed (see
    /// [`endorsement`]); otherwise adds one new session for all of `values`, endorsed when an
    /// identity is at hand. Keys not in `values` are untouched.
    pub fn seal_values(
        &mut self,
        file: &str,
        values: BTreeMap<String, SecretValue>,
        recipients: &[Recipient],
        identities: &AgeIdentities,
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
        identities: &AgeIdentities,
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
            .filter(|(id, s)| endorsed_by_us(id, s, identities))
            .map(|(id, _)| (self.keys_in_session(id).len(), id.clone()))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        if let Some((_, id)) = candidates.into_iter().next() {
            let key = self.open_session(file, &id, identities, names)?;
            return Ok((id, key));
        }
        let key = SessionKey::generate();
        let id = self.new_session_id();
        let session = new_session(&id, &key, recipients, identities)?;
        self.sessions.insert(id.clone(), session);
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

    /// Re-wraps every session key to `recipients` (added recipients only: a session wrapped to
    /// a removed recipient is refused, since that recipient holds its key; rotate instead).
    /// Values do not change. Returns whether any session entry changed.
    pub fn rewrap(
        &mut self,
        file: &str,
        recipients: &[Recipient],
        identities: &AgeIdentities,
        names: &RecipientNames,
    ) -> Result<bool, SealError> {
        if recipients.is_empty() {
            return Err(SealError::NoRecipients);
        }
        let wanted: Vec<KeyId> = recipients.iter().map(|r| r.id().clone()).collect();
        for (id, session) in &self.sessions {
            if let Some(removed) = session.recipients.iter().find(|kid| !wanted.contains(kid)) {
                return Err(SealError::RemovedRecipient {
                    file: file.to_owned(),
                    session: id.clone(),
                    recipient: names.describe(removed),
                });
            }
        }
        let mut changed = false;
        let ids: Vec<SessionId> = self.sessions.keys().cloned().collect();
        for id in ids {
            if self.sessions[&id].recipients == wanted {
                continue;
            }
            let was_ours = endorsed_by_us(&id, &self.sessions[&id], identities);
            let key = self.open_session(file, &id, identities, names)?;
            let mut session = new_session(&id, &key, recipients, identities)?;
            if !was_ours {
                // Re-wrapping does not vouch for who chose the key.
                session.endorsement = None;
            }
            self.sessions.insert(id, session);
            changed = true;
        }
        Ok(changed)
    }

    /// Re-encrypts every value under one fresh session wrapped to `recipients`.
    pub fn rotate_data_key(
        &mut self,
        file: &str,
        recipients: &[Recipient],
        identities: &AgeIdentities,
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
        let session = new_session(&id, &key, recipients, identities)?;
        self.sessions.insert(id.clone(), session);
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
        identities: &AgeIdentities,
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
