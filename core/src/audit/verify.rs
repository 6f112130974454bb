//! Checking a trail: chains, seals, signatures, heads, the registry of keys and witnesses.
//!
//! What this catches alone, from the branch and the registry: an edited, removed, reordered or
//! added line; a forged seal; a trail under a key not registered for its controller (a replaced
//! trail, a controller that does not exist); a registered key with no trail (a deleted trail);
//! a head that does not match its trail; a file outside the layout. What it cannot catch alone
//! is a clean cut: the last batches removed and the head set back to an earlier seal, which is
//! a valid trail that merely ends earlier. A [`Witness`] (a later seal kept elsewhere: the
//! controller's state, a log shipper, a monitoring system) catches that.

use std::collections::BTreeMap;

use super::layout::{HEAD_FILE, KEY_FILE, TrailPath, chain_dir, key_id};
use super::record::{GENESIS, Line, Seal, decode_public_key, line_hash};
use super::registry::{KeyStanding, Registry};
use crate::repo::CONTROLLERS_FILE;

/// One file of the trail (path relative to the branch root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailFile {
    pub path: String,
    pub text: String,
    /// Why the entry was not read as a trail file (a name that is not UTF-8, a symbolic link,
    /// a submodule, a file over its size limit): reported as a problem, `text` left empty.
    pub defect: Option<String>,
    /// A batch file not read yet: its blob, read when a check reaches it (`text` empty).
    pub blob: Option<git2::Oid>,
}

impl TrailFile {
    /// A file read from the branch.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
            defect: None,
            blob: None,
        }
    }

    /// A batch file to read on demand from its blob.
    pub fn unread(path: impl Into<String>, blob: git2::Oid) -> Self {
        Self {
            path: path.into(),
            text: String::new(),
            defect: None,
            blob: Some(blob),
        }
    }

    /// An entry that is not a readable trail file, and why.
    pub fn defective(path: impl Into<String>, defect: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: String::new(),
            defect: Some(defect.into()),
            blob: None,
        }
    }
}

/// The first thing wrong with one chain (or one file, or one witness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The controller concerned (`-` for a file outside the layout).
    pub controller: String,
    pub file: String,
    /// 1-based line, when the problem is on a line.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A seal known from outside the branch, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub seal: Seal,
    pub source: String,
}

/// One chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub controller: String,
    pub public_key: String,
    /// Records in the chain (its last seal's `last_seq`).
    pub records: u64,
    /// Every seal of the chain by `last_seq`.
    pub seals: BTreeMap<u64, Seal>,
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub chains: Vec<ChainReport>,
    pub problems: Vec<Problem>,
}

impl Verified {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records of `controller` across its chains.
    pub fn records_of(&self, controller: &str) -> u64 {
        self.chains
            .iter()
            .filter(|c| c.controller == controller)
            .map(|c| c.records)
            .sum()
    }
}

#[derive(Default)]
struct ChainFiles<'f> {
    key: Option<&'f TrailFile>,
    head: Option<&'f TrailFile>,
    /// (first seq, day, file).
    batches: Vec<(u64, String, &'f TrailFile)>,
}

/// Reads a batch file's text when a chain's check reaches it.
pub type LoadBatch<'l> =
    dyn for<'f> Fn(&'f TrailFile) -> Result<std::borrow::Cow<'f, str>, String> + 'l;

/// Verifies every chain in `files` (the whole `audit/` tree, every file read) against
/// `registry`, and that the branch reaches every seal in `witnesses`.
pub fn verify_trail(files: &[TrailFile], registry: &Registry, witnesses: &[Witness]) -> Verified {
    verify_trail_with(files, registry, witnesses, &|file| match file.blob {
        // An entry of `trail_entries`, whose batches are read by `verify_branch`.
        Some(_) => Err("not read: verify it with verify_branch".to_owned()),
        None => Ok(std::borrow::Cow::Borrowed(file.text.as_str())),
    })
}

/// [`verify_trail`] with batch files read by `load` as each chain's check reaches them
/// ([`super::verify_branch`] reads them from git, one at a time).
pub fn verify_trail_with(
    files: &[TrailFile],
    registry: &Registry,
    witnesses: &[Witness],
    load: &LoadBatch<'_>,
) -> Verified {
    let mut verified = Verified::default();
    let mut chains: BTreeMap<(&str, &str), ChainFiles<'_>> = BTreeMap::new();
    for file in files {
        if let Some(defect) = &file.defect {
            verified.problems.push(Problem {
                controller: TrailPath::parse(&file.path)
                    .map_or("-", |p| p.controller())
                    .to_owned(),
                file: file.path.clone(),
                line: None,
                message: defect.clone(),
            });
            continue;
        }
        match TrailPath::parse(&file.path) {
            Some(TrailPath::Key { controller, key_id }) => {
                chains.entry((controller, key_id)).or_default().key = Some(file);
            }
            Some(TrailPath::Head { controller, key_id }) => {
                chains.entry((controller, key_id)).or_default().head = Some(file);
            }
            Some(TrailPath::Batch {
                controller,
                key_id,
                day,
                first_seq,
            }) => chains
                .entry((controller, key_id))
                .or_default()
                .batches
                .push((first_seq, day, file)),
            None => verified.problems.push(Problem {
                controller: "-".to_owned(),
                file: file.path.clone(),
                line: None,
                message: "not part of the audit layout (audit/trails/<controller>/<key-id>/…): added by hand, or left by an older sealops".to_owned(),
            }),
        }
    }
    for ((controller, key_id), mut chain) in chains {
        chain
            .batches
            .sort_by(|a, b| a.0.cmp(&b.0).then(a.2.path.cmp(&b.2.path)));
        match verify_chain(controller, key_id, &chain, registry, load) {
            Ok(report) => verified.chains.push(report),
            Err(problem) => verified.problems.push(problem),
        }
    }
    for (controller, public_key) in registry.keys() {
        let dir = chain_dir(controller, public_key);
        let present = files.iter().any(|f| {
            f.path
                .strip_prefix(&dir)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        if !present {
            verified.problems.push(Problem {
                controller: controller.to_owned(),
                file: dir,
                line: None,
                message: format!(
                    "controller {controller} is registered in {CONTROLLERS_FILE} with key {public_key} but has no trail under it: the trail was deleted, or that controller has not pushed yet"
                ),
            });
        }
    }
    for witness in witnesses {
        if let Some(problem) = check_witness(witness, &verified.chains, &verified.problems) {
            verified.problems.push(problem);
        }
    }
    verified
}

fn check_witness(witness: &Witness, chains: &[ChainReport], found: &[Problem]) -> Option<Problem> {
    let seal = &witness.seal.seal;
    let dir = chain_dir(&seal.controller, &seal.public_key);
    let problem = |message: String| {
        Some(Problem {
            controller: seal.controller.clone(),
            file: dir.clone(),
            line: None,
            message,
        })
    };
    if !witness.seal.signature_verifies() {
        return problem(format!(
            "the witness from {} does not verify: it is not a seal signed by the key it names",
            witness.source
        ));
    }
    let Some(chain) = chains
        .iter()
        .find(|c| c.controller == seal.controller && c.public_key == seal.public_key)
    else {
        if found.iter().any(|p| p.file.starts_with(&dir)) {
            // That chain is already reported broken.
            return None;
        }
        return problem(format!(
            "the witness from {} holds {}'s seal at record {} but the branch has no trail under that key: the trail was deleted",
            witness.source, seal.controller, seal.last_seq
        ));
    };
    match chain.seals.get(&seal.last_seq) {
        Some(on_branch) if on_branch == &witness.seal => None,
        Some(_) => problem(format!(
            "the branch's seal at record {} differs from the one the witness from {} holds: the trail was replaced from there",
            seal.last_seq, witness.source
        )),
        None if chain.records < seal.last_seq => problem(format!(
            "the branch ends at record {} but the witness from {} holds a seal at record {}: the trail was cut",
            chain.records, witness.source, seal.last_seq
        )),
        None => problem(format!(
            "the branch holds no seal at record {} although the witness from {} does: the trail was replaced",
            seal.last_seq, witness.source
        )),
    }
}

fn verify_chain(
    controller: &str,
    dir_key_id: &str,
    chain: &ChainFiles<'_>,
    registry: &Registry,
    load: &LoadBatch<'_>,
) -> Result<ChainReport, Problem> {
    let dir = format!("{}/{controller}/{dir_key_id}", super::layout::TRAILS_DIR);
    let problem = |file: &str, line: Option<usize>, message: String| Problem {
        controller: controller.to_owned(),
        file: file.to_owned(),
        line,
        message,
    };
    let key_path = format!("{dir}/{KEY_FILE}");
    let key_file = chain.key.ok_or_else(|| {
        problem(
            &key_path,
            None,
            "missing: the chain's public key is not there".into(),
        )
    })?;
    let published = key_file.text.trim().to_owned();
    if decode_public_key(&published).is_none() {
        return Err(problem(
            &key_path,
            None,
            "is not an `ed25519:<base64>` public key".into(),
        ));
    }
    if key_id(&published) != dir_key_id {
        return Err(problem(
            &key_path,
            None,
            "the key does not match its directory's name (the key's id): the key was swapped"
                .into(),
        ));
    }
    if key_file.text != format!("{published}\n") {
        return Err(problem(
            &key_path,
            None,
            "rewritten: a controller writes the key as one line ending in \\n".into(),
        ));
    }
    if !registry.is_registered(controller, &published) {
        return Err(problem(
            &key_path,
            None,
            format!(
                "{controller}'s trail is sealed by {published}, a key not registered for {controller} in {CONTROLLERS_FILE}: a forged or replaced trail, or a controller whose registration is not merged yet (`sealops-controller audit-key` prints the entry to register)"
            ),
        ));
    }

    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_owned();
    let mut prev_at: Option<(String, usize)> = None;
    let mut unsealed_from: Option<(u64, String, usize)> = None;
    let mut prev_seal = GENESIS.to_owned();
    let mut prev_seal_time = String::new();
    let mut last_seal: Option<(Seal, String)> = None;
    let mut seals = BTreeMap::new();
    for (first_seq, day, file) in &chain.batches {
        let text = load(file).map_err(|why| problem(&file.path, None, why))?;
        // Byte for byte as a controller writes them: `\n` line ends and a final newline.
        if text.contains('\r') || !text.ends_with('\n') {
            return Err(problem(
                &file.path,
                None,
                "rewritten: a controller ends every line with \\n alone, including the last".into(),
            ));
        }
        let mut lines = text.lines().enumerate().peekable();
        match lines.peek().map(|(_, l)| serde_json::from_str::<Line>(l)) {
            Some(Ok(Line::Record(record))) => {
                if record.seq != *first_seq || !record.time.starts_with(day.as_str()) {
                    return Err(problem(
                        &file.path,
                        Some(1),
                        format!(
                            "the file's name says its first record is {first_seq} of {day}, but it is record {} of {}: the file was renamed or moved",
                            record.seq,
                            record.time.get(..10).unwrap_or("?")
                        ),
                    ));
                }
            }
            Some(_) => {
                return Err(problem(
                    &file.path,
                    Some(1),
                    "a batch file must begin with a record".into(),
                ));
            }
            None => return Err(problem(&file.path, None, "an empty batch file".into())),
        }
        for (index, line) in lines {
            let at = Some(index + 1);
            let parsed: Line = serde_json::from_str(line).map_err(|e| {
                problem(
                    &file.path,
                    at,
                    format!("not a record or seal ({e}): the line was edited"),
                )
            })?;
            match parsed {
                Line::Record(record) => {
                    if record.controller != controller {
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "a record of controller {} in {controller}'s trail",
                                record.controller
                            ),
                        ));
                    }
                    if record.seq != expected_seq {
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "record seq {} where {expected_seq} comes next: records are missing or reordered",
                                record.seq
                            ),
                        ));
                    }
                    if record.prev != prev {
                        let before = prev_at
                            .as_ref()
                            .map(|(f, l)| format!("{f}:{l}"))
                            .unwrap_or_else(|| "the start of the chain".into());
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "record {} does not chain to the line before it ({before}): that line or this one was edited, removed or moved",
                                record.seq
                            ),
                        ));
                    }
                    prev = line_hash(line);
                    prev_at = Some((file.path.clone(), index + 1));
                    unsealed_from.get_or_insert((record.seq, file.path.clone(), index + 1));
                    expected_seq += 1;
                }
                Line::Seal(seal) => {
                    // A seal's bytes are hashed into the next seal, except the last one's:
                    // its line must be exactly as the controller encoded it.
                    if serde_json::to_string(&seal).ok().as_deref() != Some(line) {
                        return Err(problem(
                            &file.path,
                            at,
                            "the seal line is re-encoded (field order, escapes or spacing): not as the controller wrote it".into(),
                        ));
                    }
                    let Some((first, _, _)) = unsealed_from.take() else {
                        return Err(problem(
                            &file.path,
                            at,
                            "a seal with no records before it".into(),
                        ));
                    };
                    let body = &seal.seal;
                    let last = expected_seq - 1;
                    let mismatch = if body.controller != controller || body.public_key != published
                    {
                        Some(format!(
                            "the seal names {} with key {}, not {controller} with this chain's key",
                            body.controller, body.public_key
                        ))
                    } else if body.first_seq != first || body.last_seq != last {
                        Some(format!(
                            "the seal covers records {}..{} but the records since the last seal are {first}..{last}: records were added or removed",
                            body.first_seq, body.last_seq
                        ))
                    } else if body.last_hash != prev {
                        Some(format!(
                            "the seal's hash of record {last} differs from the record's: record {last} ({}) was edited",
                            prev_at
                                .as_ref()
                                .map(|(f, l)| format!("{f}:{l}"))
                                .unwrap_or_default()
                        ))
                    } else if body.prev_seal != prev_seal {
                        Some(
                            "the seal does not follow the chain's previous seal: a seal was removed, replaced or moved"
                                .to_owned(),
                        )
                    } else if body.time < prev_seal_time {
                        Some(format!(
                            "the seal's time {} is before the previous seal's {prev_seal_time}",
                            body.time
                        ))
                    } else {
                        None
                    };
                    if let Some(message) = mismatch {
                        return Err(problem(&file.path, at, message));
                    }
                    if !seal.signature_verifies() {
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "the seal over records {}..{} does not verify: the seal was altered or forged",
                                body.first_seq, body.last_seq
                            ),
                        ));
                    }
                    if let KeyStanding::OutsideValidity {
                        valid_from,
                        valid_until,
                    } = registry.standing(controller, &published, &body.time)
                    {
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "sealed at {} but {CONTROLLERS_FILE} accepts this key only from {} until {}: a retired key was used",
                                body.time,
                                valid_from.as_deref().unwrap_or("the start"),
                                valid_until.as_deref().unwrap_or("now")
                            ),
                        ));
                    }
                    prev_seal = line_hash(line);
                    prev_seal_time = body.time.clone();
                    seals.insert(body.last_seq, seal.clone());
                    last_seal = Some((seal, line.to_owned()));
                }
            }
        }
    }
    if let Some((first, file, line)) = unsealed_from {
        return Err(problem(
            &file,
            Some(line),
            format!(
                "records {first}..{} are not covered by a seal: the trail was cut inside a batch",
                expected_seq - 1
            ),
        ));
    }
    let head_path = format!("{dir}/{HEAD_FILE}");
    let head_file = chain.head.ok_or_else(|| {
        problem(
            &head_path,
            None,
            "missing: the chain's newest seal is not there".into(),
        )
    })?;
    let head: Seal = serde_json::from_str(head_file.text.trim())
        .map_err(|e| problem(&head_path, None, format!("is not a seal ({e})")))?;
    let ends_at = last_seal.as_ref().map_or(0, |(s, _)| s.seal.last_seq);
    if last_seal
        .as_ref()
        .is_none_or(|(_, line)| head_file.text != format!("{line}\n"))
    {
        let how = if head.seal.last_seq > ends_at {
            "records after it were dropped, or the head was forged"
        } else if head.seal.last_seq < ends_at {
            "the head was rolled back"
        } else {
            "the head was replaced"
        };
        return Err(problem(
            &head_path,
            None,
            format!(
                "the head is a seal at record {} but the trail's last seal is at record {ends_at}: {how}",
                head.seal.last_seq
            ),
        ));
    }
    Ok(ChainReport {
        controller: controller.to_owned(),
        public_key: published,
        records: expected_seq - 1,
        seals,
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::batch_file;
    use super::super::record::{AuditKeys, AuditLog, Event, Outcome, RecordDraft};
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::parse(&"ab".repeat(64)).expect("valid")
    }

    fn registry_of(entries: &[(&str, &AuditKeys)]) -> Registry {
        let mut text = "sealops: v1\ncontrollers:\n".to_owned();
        for (id, keys) in entries {
            text.push_str(&format!(
                "  - id: {id}\n    public_key: {}\n",
                keys.public_key()
            ));
        }
        Registry::parse(&text, "controllers.yaml").expect("registry")
    }

    /// A trail of two batches (3 + 2 records) for controller c1, in two files.
    fn trail() -> (Vec<TrailFile>, Vec<String>) {
        let mut log = AuditLog::resume("c1", "node-1", keys(), None);
        let mut lines = Vec::new();
        for n in 0..3 {
            let mut draft = RecordDraft::new(Event::OutputWritten, Outcome::Ok);
            draft.path = Some(format!("/run/out/{n}"));
            lines.push(log.record(draft));
        }
        lines.push(log.seal().expect("records to seal"));
        for _ in 0..2 {
            lines.push(log.record(RecordDraft::new(Event::CommitVerified, Outcome::Ok)));
        }
        lines.push(log.seal().expect("records to seal"));
        (files_of(&lines), lines)
    }

    /// The files of a chain whose batches are `lines[..4]` and `lines[4..]`.
    fn files_of(lines: &[String]) -> Vec<TrailFile> {
        let public = keys().public_key();
        let dir = chain_dir("c1", &public);
        let day = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line).expect("json")["time"]
                .as_str()
                .unwrap_or("2026-01-01")
                .to_owned()
        };
        let mut files = vec![TrailFile::new(format!("{dir}/{KEY_FILE}"), public + "\n")];
        let split = lines.len().min(4);
        for (batch, first_seq) in [(&lines[..split], 1), (&lines[split..], 4)] {
            if batch.is_empty() {
                continue;
            }
            files.push(TrailFile::new(
                format!("{dir}/{}", batch_file(&day(&batch[0]), first_seq)),
                batch.join("\n") + "\n",
            ));
        }
        if let Some(last) = lines.last() {
            files.push(TrailFile::new(
                format!("{dir}/{HEAD_FILE}"),
                format!("{last}\n"),
            ));
        }
        files
    }

    fn with_lines(edit: impl FnOnce(&mut Vec<String>)) -> Verified {
        let (_, mut lines) = trail();
        edit(&mut lines);
        verify_trail(&files_of(&lines), &registry_of(&[("c1", &keys())]), &[])
    }

    #[test]
    fn an_intact_trail_verifies() {
        let (files, _) = trail();
        let verified = verify_trail(&files, &registry_of(&[("c1", &keys())]), &[]);
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records_of("c1"), 5);
    }

    #[test]
    fn an_edited_byte_is_found_and_named() {
        let verified = with_lines(|lines| lines[1] = lines[1].replace("/run/out/1", "/run/out/9"));
        let problem = &verified.problems[0];
        assert_eq!(problem.line, Some(3), "{problem}");
        assert!(problem.message.contains("does not chain"), "{problem}");
        // The last record of a batch: only the seal can tell, and it says the hash differs.
        let verified = with_lines(|lines| lines[2] = lines[2].replace("/run/out/2", "/run/out/7"));
        let problem = &verified.problems[0];
        assert_eq!(problem.line, Some(4), "{problem}");
        assert!(
            problem.message.contains("record 3") && problem.message.contains("was edited"),
            "{problem}"
        );
    }

    #[test]
    fn a_deleted_or_reordered_line_is_found() {
        let verified = with_lines(|lines| {
            lines.remove(1);
        });
        assert!(
            verified.problems[0].message.contains("seq 3 where 2"),
            "{}",
            verified.problems[0]
        );
        let verified = with_lines(|lines| lines.swap(0, 1));
        assert!(!verified.is_intact());
    }

    #[test]
    fn a_head_that_does_not_match_is_found() {
        let (mut files, lines) = trail();
        let head = files.len() - 1;
        files[head].text = format!("{}\n", lines[3]);
        let verified = verify_trail(&files, &registry_of(&[("c1", &keys())]), &[]);
        assert!(
            verified.problems[0].message.contains("rolled back"),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn a_clean_cut_verifies_alone_and_is_caught_by_a_witness() {
        let (_, lines) = trail();
        let witness = Witness {
            seal: serde_json::from_str(&lines[6]).expect("seal"),
            source: "status".into(),
        };
        let cut = files_of(&lines[..4]);
        let registry = registry_of(&[("c1", &keys())]);
        assert!(verify_trail(&cut, &registry, &[]).is_intact());
        let verified = verify_trail(&cut, &registry, std::slice::from_ref(&witness));
        assert!(
            verified.problems[0].message.contains("was cut"),
            "{:?}",
            verified.problems
        );
        assert!(verify_trail(&files_of(&lines), &registry, &[witness]).is_intact());
    }

    #[test]
    fn unregistered_and_missing_trails_are_found() {
        let (files, _) = trail();
        // Not registered at all: a replaced trail or an invented controller.
        let verified = verify_trail(&files, &Registry::default(), &[]);
        assert!(
            verified.problems[0].message.contains("not registered"),
            "{}",
            verified.problems[0]
        );
        // Registered but absent: a deleted trail.
        let other = AuditKeys::parse(&"cd".repeat(64)).expect("valid");
        let verified = verify_trail(&[], &registry_of(&[("c2", &other)]), &[]);
        assert!(
            verified.problems[0].message.contains("has no trail"),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn a_swapped_key_file_is_found() {
        let (mut files, _) = trail();
        let other = AuditKeys::parse(&"cd".repeat(64)).expect("valid");
        files[0].text = other.public_key();
        let verified = verify_trail(
            &files,
            &registry_of(&[("c1", &keys()), ("c1", &other)]),
            &[],
        );
        assert!(
            verified.problems[0].message.contains("directory's name"),
            "{}",
            verified.problems[0]
        );
    }

    /// Found by a red team: CRLF line ends and a re-encoded last seal (with its head) passed.
    /// No record changed, but a file no controller wrote is not the trail it pushed.
    #[test]
    fn rewritten_bytes_are_found_even_when_no_record_changed() {
        let registry = registry_of(&[("c1", &keys())]);
        let (files, lines) = trail();
        assert!(verify_trail(&files, &registry, &[]).is_intact());

        let mut crlf = files.clone();
        crlf[1].text = crlf[1].text.replace('\n', "\r\n");
        let verified = verify_trail(&crlf, &registry, &[]);
        assert!(
            verified
                .problems
                .iter()
                .any(|p| p.message.contains("rewritten")),
            "{:?}",
            verified.problems
        );

        // The last seal with its fields reordered, in its batch and in the head.
        let last = lines.last().expect("seal");
        let value: serde_json::Value = serde_json::from_str(last).expect("json");
        let mut reordered = serde_json::Map::new();
        for (k, v) in value.as_object().expect("object").iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
        let reencoded = serde_json::to_string(&reordered).expect("json");
        assert_ne!(&reencoded, last);
        let mut relines = lines.clone();
        *relines.last_mut().expect("seal") = reencoded;
        let verified = verify_trail(&files_of(&relines), &registry, &[]);
        assert!(
            verified
                .problems
                .iter()
                .any(|p| p.message.contains("re-encoded")),
            "{:?}",
            verified.problems
        );
    }
}
