//! Checking a trail: chains, seals, signatures and heads.

use std::collections::BTreeMap;

use ed25519_dalek::Signature;

use super::record::{GENESIS, Line, Seal, decode_public_key, line_hash};

/// One file of the trail (path relative to the branch root, e.g. `audit/2026/11/28/c1.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailFile {
    pub path: String,
    pub text: String,
}

/// The first thing wrong with one controller's trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
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

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Records per controller that verified.
    pub records: BTreeMap<String, u64>,
    pub problems: Vec<Problem>,
}

impl Verified {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `audit/YYYY/MM/DD/<controller>.jsonl` → controller name.
fn controller_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("audit/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [y, m, d, file]
            if y.len() == 4 && m.len() == 2 && d.len() == 2 && file.ends_with(".jsonl") =>
        {
            file.strip_suffix(".jsonl")
        }
        _ => None,
    }
}

/// Verifies every controller's chain in `files` (the whole `audit/` tree).
pub fn verify_files(files: &[TrailFile]) -> Verified {
    let mut by_controller: BTreeMap<&str, Vec<&TrailFile>> = BTreeMap::new();
    let mut keys: BTreeMap<&str, &TrailFile> = BTreeMap::new();
    let mut heads: BTreeMap<&str, &TrailFile> = BTreeMap::new();
    for file in files {
        if let Some(controller) = controller_of(&file.path) {
            by_controller.entry(controller).or_default().push(file);
        } else if let Some(name) = file
            .path
            .strip_prefix("audit/keys/")
            .and_then(|n| n.strip_suffix(".pub"))
        {
            keys.insert(name, file);
        } else if let Some(name) = file
            .path
            .strip_prefix("audit/heads/")
            .and_then(|n| n.strip_suffix(".json"))
        {
            heads.insert(name, file);
        }
    }
    for name in heads.keys() {
        by_controller.entry(name).or_default();
    }
    let mut verified = Verified::default();
    for (controller, mut trail) in by_controller {
        trail.sort_by(|a, b| a.path.cmp(&b.path));
        match verify_controller(
            controller,
            &trail,
            keys.get(controller),
            heads.get(controller),
        ) {
            Ok(count) => {
                verified.records.insert(controller.to_owned(), count);
            }
            Err(problem) => verified.problems.push(problem),
        }
    }
    verified
}

fn verify_controller(
    controller: &str,
    trail: &[&TrailFile],
    key_file: Option<&&TrailFile>,
    head_file: Option<&&TrailFile>,
) -> Result<u64, Problem> {
    let problem = |file: &str, line: Option<usize>, message: String| Problem {
        controller: controller.to_owned(),
        file: file.to_owned(),
        line,
        message,
    };
    let key_path = format!("audit/keys/{controller}.pub");
    let key_file = key_file.ok_or_else(|| {
        problem(
            &key_path,
            None,
            "missing: the controller's public key is not published".into(),
        )
    })?;
    let key = decode_public_key(&key_file.text).ok_or_else(|| {
        problem(
            &key_path,
            None,
            "is not an `ed25519:<base64>` public key".into(),
        )
    })?;
    let published = key_file.text.trim().to_owned();

    let check_seal = |seal: &Seal, file: &str, line: Option<usize>| -> Result<(), Problem> {
        if seal.seal.controller != controller || seal.seal.public_key != published {
            return Err(problem(
                file,
                line,
                format!(
                    "seal by {} with key {}, not by {controller} with its published key",
                    seal.seal.controller, seal.seal.public_key
                ),
            ));
        }
        let bytes = seal
            .signature
            .strip_prefix("ed25519:")
            .and_then(|b| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok()
            })
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| problem(file, line, "the seal's signature is malformed".into()))?;
        key.verify_strict(&seal.seal.message(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                problem(
                    file,
                    line,
                    format!(
                        "the seal over records {}..{} does not verify: records or seal were altered",
                        seal.seal.first_seq, seal.seal.last_seq
                    ),
                )
            })
    };

    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_owned();
    let mut prev_at: Option<(String, usize)> = None;
    let mut unsealed_from: Option<(u64, String, usize)> = None;
    let mut last_seal: Option<Seal> = None;
    for file in trail {
        for (index, line) in file.text.lines().enumerate() {
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
                                "record of controller {} in {controller}'s file",
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
                    let Some((first, _, _)) = unsealed_from.take() else {
                        return Err(problem(
                            &file.path,
                            at,
                            "a seal with no records before it".into(),
                        ));
                    };
                    if seal.seal.first_seq != first
                        || seal.seal.last_seq + 1 != expected_seq
                        || seal.seal.last_hash != prev
                    {
                        return Err(problem(
                            &file.path,
                            at,
                            format!(
                                "the seal covers records {}..{} but the chain before it holds {first}..{}: records were edited, added or removed",
                                seal.seal.first_seq,
                                seal.seal.last_seq,
                                expected_seq - 1
                            ),
                        ));
                    }
                    check_seal(&seal, &file.path, at)?;
                    last_seal = Some(seal);
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
    let head_path = format!("audit/heads/{controller}.json");
    let head_file = head_file.ok_or_else(|| {
        problem(
            &head_path,
            None,
            "missing: the controller's signed head".into(),
        )
    })?;
    let head: Seal = serde_json::from_str(head_file.text.trim())
        .map_err(|e| problem(&head_path, None, format!("is not a seal ({e})")))?;
    check_seal(&head, &head_path, None)?;
    let ends_at = last_seal.as_ref().map_or(0, |s| s.seal.last_seq);
    if head.seal.last_seq != ends_at || last_seal.as_ref().is_some_and(|s| s.seal != head.seal) {
        return Err(problem(
            &head_path,
            None,
            format!(
                "the controller's signed head is at record {} but the trail ends at record {ends_at}: {}",
                head.seal.last_seq,
                if head.seal.last_seq > ends_at {
                    "the last batches were dropped"
                } else {
                    "the head was rolled back"
                }
            ),
        ));
    }
    Ok(expected_seq - 1)
}

#[cfg(test)]
mod tests {
    use super::super::record::{AuditKeys, AuditLog, Event, Outcome, RecordDraft};
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::parse(&"ab".repeat(64)).expect("valid")
    }

    /// A trail of two batches (3 + 2 records) for controller c1, with key and head files.
    fn trail() -> Vec<TrailFile> {
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
        let head = log.seal().expect("records to seal");
        lines.push(head.clone());
        vec![
            TrailFile {
                path: "audit/2026/11/28/c1.jsonl".into(),
                text: lines.join("\n") + "\n",
            },
            TrailFile {
                path: "audit/keys/c1.pub".into(),
                text: keys().public_key() + "\n",
            },
            TrailFile {
                path: "audit/heads/c1.json".into(),
                text: head + "\n",
            },
        ]
    }

    fn with_lines(edit: impl FnOnce(&mut Vec<String>)) -> Verified {
        let mut files = trail();
        let mut lines: Vec<String> = files[0].text.lines().map(str::to_owned).collect();
        edit(&mut lines);
        files[0].text = lines.join("\n") + "\n";
        verify_files(&files)
    }

    #[test]
    fn an_intact_trail_verifies() {
        let verified = verify_files(&trail());
        assert!(verified.is_intact(), "{:?}", verified.problems);
        assert_eq!(verified.records["c1"], 5);
    }

    #[test]
    fn an_edited_byte_is_found() {
        let verified = with_lines(|lines| lines[1] = lines[1].replace("/run/out/1", "/run/out/9"));
        let problem = &verified.problems[0];
        assert_eq!(problem.line, Some(3), "{problem}");
        assert!(problem.message.contains("does not chain"), "{problem}");
        // The last record of a batch: only the seal can tell.
        let verified = with_lines(|lines| lines[2] = lines[2].replace("/run/out/2", "/run/out/7"));
        assert_eq!(
            verified.problems[0].line,
            Some(4),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn a_deleted_line_is_found() {
        let verified = with_lines(|lines| {
            lines.remove(1);
        });
        assert!(
            verified.problems[0].message.contains("seq 3 where 2"),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn reordered_lines_are_found() {
        let verified = with_lines(|lines| lines.swap(0, 1));
        assert_eq!(
            verified.problems[0].line,
            Some(1),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn a_dropped_last_batch_is_found() {
        let verified = with_lines(|lines| lines.truncate(4));
        let problem = &verified.problems[0];
        assert_eq!(problem.file, "audit/heads/c1.json");
        assert!(problem.message.contains("were dropped"), "{problem}");
        let verified = with_lines(|lines| lines.truncate(5));
        assert!(
            verified.problems[0]
                .message
                .contains("not covered by a seal"),
            "{}",
            verified.problems[0]
        );
    }

    #[test]
    fn a_forged_seal_is_found() {
        let mut files = trail();
        let other = AuditKeys::parse(&"cd".repeat(64)).expect("valid");
        files[1].text = other.public_key();
        let verified = verify_files(&files);
        assert!(
            verified.problems[0].message.contains("published key"),
            "{}",
            verified.problems[0]
        );
    }
}
