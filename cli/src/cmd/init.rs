//! `sealops init`.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use sealops_core::config::{Config, RecipientEntry};
use sealops_core::keys::Recipient;
use sealops_core::repo::{CONFIG_FILE, FOLDERS, SIGNERS_FILE};

use crate::args::InitArgs;
use crate::exit::Outcome;

pub fn run(args: InitArgs) -> anyhow::Result<Outcome> {
    let root = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let recipients = args
        .recipient
        .iter()
        .enumerate()
        .map(|(index, text)| parse_recipient(text, index + 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = Config::new(recipients);
    // Validate exactly as a later load would (duplicate names, duplicate keys).
    Config::parse(&config.to_yaml(), "--recipient")?;

    let dot = root.join(".sealops");
    if dot.exists() {
        if let Some(added) = add_repository_id(&root)? {
            eprintln!(
                "Added repository_id: {added} to {CONFIG_FILE}. Approval statements name it, so one signed for another repository never counts here. Commit it: it is a sys/config change, so it needs approvals (`sealops approve {CONFIG_FILE}`)."
            );
            return Ok(Outcome::Success);
        }
        bail!(
            "{} already exists: this repository is set up (edit {CONFIG_FILE}, or use `sealops recipients add`)",
            dot.display()
        );
    }
    std::fs::create_dir_all(&dot).with_context(|| format!("cannot create {}", dot.display()))?;
    write_new(&root.join(CONFIG_FILE), &config.to_yaml())?;
    write_new(
        &root.join(SIGNERS_FILE),
        "# Who may sign changes: OpenSSH allowed_signers format (principals namespaces=\"git\" key).\n\
         # Example: alice@example.com namespaces=\"git\" ssh-ed25519 AAAA...\n",
    )?;
    for folder in FOLDERS {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let keep = dir.join(".gitkeep");
        if !keep.exists() {
            write_new(&keep, "")?;
        }
    }
    eprintln!("Initialised sealops in {}", root.display());
    match sealops_core::gitsetup::configure(&root, "sealops") {
        Ok(changes) => changes.iter().for_each(|c| eprintln!("  {c}")),
        Err(sealops_core::gitsetup::GitSetupError::NotARepository { .. }) => {
            eprintln!(
                "  not a git repository yet: after `git init`, run `sealops git-setup` for diffs and merges"
            )
        }
        Err(e) => return Err(e.into()),
    }
    if config.recipients.is_empty() {
        eprintln!(
            "warning: no recipients yet; nothing can be sealed until you run `sealops recipients add age1…`"
        );
    } else {
        for entry in &config.recipients {
            eprintln!("  recipient {}: {}", entry.name, entry.key);
        }
    }
    Ok(Outcome::Success)
}

/// Gives an existing configuration without a `repository_id` a new one (written after the
/// `sealops:` line, the rest of the file untouched); `None` when it already has one.
fn add_repository_id(root: &std::path::Path) -> anyhow::Result<Option<String>> {
    let path = root.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config = Config::parse(&text, CONFIG_FILE)?;
    if config.repository_id.is_some() {
        return Ok(None);
    }
    let id = sealops_core::config::new_repository_id();
    let mut updated = String::with_capacity(text.len() + 50);
    let mut inserted = false;
    for line in text.split_inclusive('\n') {
        updated.push_str(line);
        if !inserted && line.trim_end().starts_with("sealops:") {
            if !line.ends_with('\n') {
                updated.push('\n');
            }
            updated.push_str(&format!("repository_id: {id}\n"));
            inserted = true;
        }
    }
    if !inserted {
        updated = format!("repository_id: {id}\n{text}");
    }
    // Refuse rather than write a file that would not load.
    Config::parse(&updated, CONFIG_FILE)?;
    sealops_core::fsutil::write_atomic(&path, updated.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(id))
}

fn parse_recipient(text: &str, index: usize) -> anyhow::Result<RecipientEntry> {
    let (name, key) = match text.split_once('=') {
        Some((name, key)) => (name.trim().to_owned(), key),
        None => (format!("recipient-{index}"), text),
    };
    let recipient = Recipient::from_str(key)?;
    Ok(RecipientEntry {
        name,
        key: recipient.to_string(),
        role: None,
    })
}

fn write_new(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    sealops_core::fsutil::create_new(path, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot create {}", path.display()))
}
