//! Key-level three-way merge of sealed manifests (the git merge driver).
//!
//! Needs no identity: values are compared as ciphertexts. Changes to different keys merge;
//! the same change on both sides merges; the same key changed differently is a conflict,
//! reported per key and marked in the output with git's conflict markers.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::Manifest;
use crate::value::SealedValue;
use crate::value::SessionId;

/// One key's state on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Sealed(SealedValue),
    Plain(String),
}

impl Entry {
    fn line(&self, key: &str) -> String {
        match self {
            Entry::Sealed(value) => format!("  {}: {value}", crate::yaml::scalar(key)),
            Entry::Plain(text) => format!(
                "  {}: {}",
                crate::yaml::scalar(key),
                serde_json::to_string(text).expect("a string serialises")
            ),
        }
    }
}

fn entries(manifest: &Manifest) -> BTreeMap<String, Entry> {
    let sealed = manifest
        .data
        .iter()
        .map(|(k, v)| (k.clone(), Entry::Sealed(v.clone())));
    let plain = manifest
        .plain
        .iter()
        .map(|(k, v)| (k.clone(), Entry::Plain(v.clone())));
    sealed.chain(plain).collect()
}

/// The merged text, and one message per conflict (empty when the merge is clean).
#[derive(Debug)]
pub struct Merged {
    pub text: String,
    pub conflicts: Vec<String>,
}

/// Three-way pick: the side that changed wins; both changed differently is `None`.
fn pick<'a, T: PartialEq>(
    base: Option<&'a T>,
    ours: Option<&'a T>,
    theirs: Option<&'a T>,
) -> Option<Option<&'a T>> {
    if ours == theirs || theirs == base {
        Some(ours)
    } else if ours == base {
        Some(theirs)
    } else {
        None
    }
}

/// Merges `ours` and `theirs` against their common ancestor `base` (absent when both added the
/// file).
pub fn merge(base: Option<&Manifest>, ours: &Manifest, theirs: &Manifest) -> Merged {
    let mut conflicts = Vec::new();
    let mut merged = ours.clone();
    let (base_entries, our_entries, their_entries) = (
        base.map(entries).unwrap_or_default(),
        entries(ours),
        entries(theirs),
    );

    if ours.path != theirs.path && base.is_none_or(|b| b.path != theirs.path && b.path != ours.path)
    {
        conflicts.push(format!(
            "the manifest's path differs: {} (ours) and {} (theirs)",
            ours.path, theirs.path
        ));
    } else if base.is_some_and(|b| b.path == ours.path) {
        merged.path = theirs.path.clone();
    }
    match pick(
        base.map(|b| &b.scope),
        Some(&ours.scope),
        Some(&theirs.scope),
    ) {
        Some(scope) => merged.scope = scope.expect("both sides have a scope").clone(),
        None => conflicts.push(format!(
            "the scope changed on both sides: {} (ours) and {} (theirs)",
            ours.scope, theirs.scope
        )),
    }

    merged.data.clear();
    merged.plain.clear();
    let mut conflicting: Vec<(String, Option<Entry>, Option<Entry>)> = Vec::new();
    let keys: BTreeSet<&String> = base_entries
        .keys()
        .chain(our_entries.keys())
        .chain(their_entries.keys())
        .collect();
    for key in keys {
        let (b, o, t) = (
            base_entries.get(key),
            our_entries.get(key),
            their_entries.get(key),
        );
        let chosen = match pick(b, o, t) {
            Some(chosen) => chosen,
            None => {
                let what = match (o, t) {
                    (None, _) => "deleted on our side and changed on theirs",
                    (_, None) => "changed on our side and deleted on theirs",
                    _ => "changed differently on both sides",
                };
                conflicts.push(format!("key {key}: {what}"));
                conflicting.push((key.clone(), o.cloned(), t.cloned()));
                o.or(t)
            }
        };
        match chosen {
            Some(Entry::Sealed(value)) => {
                merged.data.insert(key.clone(), value.clone());
            }
            Some(Entry::Plain(text)) => {
                merged.plain.insert(key.clone(), text.clone());
            }
            None => {}
        }
    }

    // Sessions: the union; one id changed differently on both sides is a conflict.
    let ids: BTreeSet<&SessionId> = ours.sessions.keys().chain(theirs.sessions.keys()).collect();
    for id in ids {
        let b = base.and_then(|b| b.sessions.get(id));
        match pick(b, ours.sessions.get(id), theirs.sessions.get(id)) {
            Some(Some(session)) => {
                merged.sessions.insert(id.clone(), session.clone());
            }
            Some(None) => {
                merged.sessions.remove(id);
            }
            None => conflicts.push(format!(
                "session {id} was re-wrapped differently on both sides: take either side, then run `sealops rewrap --all`"
            )),
        }
    }
    // A side's value may need a session the other side dropped: keep every session in use.
    for value in merged.data.values() {
        if !merged.sessions.contains_key(value.session()) {
            let session = ours
                .sessions
                .get(value.session())
                .or_else(|| theirs.sessions.get(value.session()));
            if let Some(session) = session {
                merged
                    .sessions
                    .insert(value.session().clone(), session.clone());
            }
        }
    }
    merged.drop_unused_sessions();
    // Whichever side the user keeps for a conflicting key, its session must be there.
    for (_, ours_entry, theirs_entry) in &conflicting {
        for (entry, side) in [(ours_entry, ours), (theirs_entry, theirs)] {
            if let Some(Entry::Sealed(value)) = entry
                && let Some(session) = side.sessions.get(value.session())
            {
                merged
                    .sessions
                    .entry(value.session().clone())
                    .or_insert_with(|| session.clone());
            }
        }
    }
    // A value opens only under the binding (path and scope) it was sealed for.
    let binding = merged.scope_binding();
    for (key, value) in &merged.data {
        let from = |side: &Manifest| side.data.get(key) == Some(value);
        let stale = [ours, theirs]
            .into_iter()
            .find(|side| from(side) && side.scope_binding() != binding);
        if let Some(side) = stale {
            conflicts.push(format!(
                "key {key} was sealed for {} but the merged manifest is {binding}: seal it again",
                side.scope_binding()
            ));
        }
    }

    let mut text = merged.to_yaml();
    for (key, ours_entry, theirs_entry) in conflicting {
        let present = ours_entry
            .as_ref()
            .or(theirs_entry.as_ref())
            .expect("one side has the key");
        let line = present.line(&key);
        let ours_line = ours_entry.map(|e| e.line(&key) + "\n").unwrap_or_default();
        let theirs_line = theirs_entry
            .map(|e| e.line(&key) + "\n")
            .unwrap_or_default();
        let block = format!("<<<<<<< ours\n{ours_line}=======\n{theirs_line}>>>>>>> theirs\n");
        text = text.replacen(&format!("{line}\n"), &block, 1);
    }
    Merged { text, conflicts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AgeIdentities, generate};
    use crate::manifest::{Scope, SecretPath};
    use crate::seal::RecipientNames;
    use crate::secret::SecretValue;

    fn setup() -> (Manifest, AgeIdentities, Vec<crate::keys::Recipient>) {
        let (identity, text) = generate();
        let identities = AgeIdentities::parse(&text, "id").expect("parses");
        let recipients = vec![identity.recipient().clone()];
        let mut base = Manifest::new(SecretPath::parse("apps/db").expect("valid"), Scope::Strict);
        let values = [("A", "1"), ("B", "2"), ("C", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), SecretValue::from(v)))
            .collect();
        base.seal_values(
            "f",
            values,
            &recipients,
            &AgeIdentities::new(),
            &RecipientNames::default(),
        )
        .expect("seals");
        (base, identities, recipients)
    }

    fn set(
        m: &Manifest,
        key: &str,
        value: &str,
        recipients: &[crate::keys::Recipient],
    ) -> Manifest {
        let mut m = m.clone();
        let values = BTreeMap::from([(key.to_owned(), SecretValue::from(value))]);
        m.seal_values(
            "f",
            values,
            recipients,
            &AgeIdentities::new(),
            &RecipientNames::default(),
        )
        .expect("seals");
        m
    }

    #[test]
    fn different_keys_merge_and_open() {
        let (base, identities, recipients) = setup();
        let ours = set(&base, "A", "ours", &recipients);
        let mut theirs = set(&base, "B", "theirs", &recipients);
        theirs.remove_key("C");
        let merged = merge(Some(&base), &ours, &theirs);
        assert!(merged.conflicts.is_empty(), "{:?}", merged.conflicts);
        let manifest = Manifest::parse(&merged.text, "merged").expect("parses");
        let values = manifest
            .reveal("merged", &identities, &RecipientNames::default())
            .expect("opens");
        let plain: BTreeMap<&str, &str> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_str().expect("utf8")))
            .collect();
        assert_eq!(plain, BTreeMap::from([("A", "ours"), ("B", "theirs")]));
    }

    #[test]
    fn same_key_changed_differently_is_a_conflict_with_markers() {
        let (base, _, recipients) = setup();
        let ours = set(&base, "A", "ours", &recipients);
        let theirs = set(&base, "A", "theirs", &recipients);
        let merged = merge(Some(&base), &ours, &theirs);
        assert_eq!(
            merged.conflicts,
            vec!["key A: changed differently on both sides".to_owned()]
        );
        assert!(
            merged.text.contains("<<<<<<< ours\n  A: sealed:v1:"),
            "{}",
            merged.text
        );
        assert!(
            merged.text.contains("=======\n  A: sealed:v1:"),
            "{}",
            merged.text
        );
    }

    #[test]
    fn either_side_of_a_conflict_can_be_kept() {
        let (base, identities, recipients) = setup();
        let ours = set(&base, "A", "ours", &recipients);
        let theirs = set(&base, "A", "theirs", &recipients);
        let merged = merge(Some(&base), &ours, &theirs);
        for (keep, expected) in [(0, "ours"), (1, "theirs")] {
            // Resolve as a user would: keep one side's line, drop the markers and the other.
            let mut lines = Vec::new();
            let mut side = None;
            for line in merged.text.lines() {
                match line {
                    "<<<<<<< ours" => side = Some(0),
                    "=======" => side = Some(1),
                    ">>>>>>> theirs" => side = None,
                    _ if side.is_none() || side == Some(keep) => lines.push(line),
                    _ => {}
                }
            }
            let resolved = lines.join("\n") + "\n";
            let manifest =
                Manifest::parse(&resolved, "resolved").expect("the resolved file parses");
            let values = manifest
                .reveal("resolved", &identities, &RecipientNames::default())
                .expect("opens");
            assert_eq!(values["A"].expose_str(), Some(expected));
        }
    }

    #[test]
    fn a_key_sealed_for_another_path_is_a_conflict() {
        let (base, _, recipients) = setup();
        let mut moved = base.clone();
        moved.path = SecretPath::parse("apps/moved").expect("valid");
        let theirs = set(&base, "D", "4", &recipients);
        let merged = merge(Some(&base), &moved, &theirs);
        assert!(
            merged
                .conflicts
                .iter()
                .any(|c| c.starts_with("key A was sealed for path:apps/db")),
            "{:?}",
            merged.conflicts
        );
        assert!(
            merged
                .conflicts
                .iter()
                .any(|c| c.starts_with("key D was sealed for path:apps/db")),
            "{:?}",
            merged.conflicts
        );
    }

    #[test]
    fn identical_changes_merge() {
        let (base, _, recipients) = setup();
        let ours = set(&base, "A", "same", &recipients);
        let merged = merge(Some(&base), &ours, &ours.clone());
        assert!(merged.conflicts.is_empty());
        assert_eq!(merged.text, ours.to_yaml());
    }
}
