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
