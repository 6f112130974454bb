//! `sealops recipients list|add|remove`.

use std::str::FromStr;

use anyhow::bail;
use sealops_core::config::{RecipientEntry, RecipientRole};
use sealops_core::fsutil;
use sealops_core::keys::Recipient;

use crate::args::{GlobalArgs, RecipientsArgs, RecipientsCommand};
use crate::context;
use crate::exit::Outcome;
use crate::output;

pub fn run(global: &GlobalArgs, args: RecipientsArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let mut config = repo.config.clone();
    match args.command {
        RecipientsCommand::List => {
            let mut out = String::new();
            for named in config.recipients() {
                let role = config
                    .recipients
                    .iter()
                    .find(|e| e.name == named.name)
                    .and_then(|e| e.role)
                    .map(|r| format!(" [{}]", role_name(r)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{}\t{}\t{}{role}\n",
                    named.name,
                    named.recipient.id(),
                    named.recipient
                ));
            }
            output::stdout(out.as_bytes())?;
            return Ok(Outcome::Success);
        }
        RecipientsCommand::Add { key, name, role } => {
            let recipient = Recipient::from_str(&key)?;
            if config.recipients().iter().any(|r| r.recipient == recipient) {
                bail!("{recipient} is already a recipient");
            }
            let name = name.unwrap_or_else(|| format!("recipient-{}", config.recipients.len() + 1));
            let role = role.map(|r| parse_role(&r)).transpose()?;
            config.recipients.push(RecipientEntry {
                name: name.clone(),
                key: recipient.to_string(),
                role,
            });
            save(&repo, &config)?;
            eprintln!(
                "Added recipient {name} ({recipient}). Existing manifests are not wrapped to it yet: run `sealops rewrap --all` with an identity."
            );
        }
        RecipientsCommand::Remove { recipient } => {
            let before = config.recipients.len();
            config
                .recipients
                .retain(|e| e.name != recipient && e.key != recipient);
            if config.recipients.len() == before {
                // Echo only what looks like a name or a public key, never a pasted private key.
                let shown = if recipient.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
                    "given (that is a private key: name the recipient or its age1… public key)"
                        .to_owned()
                } else {
                    recipient
                };
                bail!("no recipient {shown} (see `sealops recipients list`)");
            }
            save(&repo, &config)?;
            eprintln!(
                "Removed recipient {recipient}. It can still open values sealed before: run `sealops rotate-data-key --all` with an identity, and rotate the secrets it could read."
            );
        }
    }
    Ok(Outcome::Success)
}

fn save(
    repo: &sealops_core::repo::Repository,
    config: &sealops_core::config::Config,
) -> anyhow::Result<()> {
    let text = config.to_yaml();
    // Validate before writing: nothing half-right lands on disk.
    sealops_core::config::Config::parse(&text, &repo.display_path(&repo.config_path()))?;
    fsutil::write_atomic(&repo.config_path(), text.as_bytes(), 0o644)?;
    Ok(())
}

fn parse_role(text: &str) -> anyhow::Result<RecipientRole> {
    Ok(match text {
        "cluster" => RecipientRole::Cluster,
        "break-glass" => RecipientRole::BreakGlass,
        "person" => RecipientRole::Person,
        other => bail!("unknown role {other:?}: expected cluster, break-glass or person"),
    })
}

fn role_name(role: RecipientRole) -> &'static str {
    match role {
        RecipientRole::Cluster => "cluster",
        RecipientRole::BreakGlass => "break-glass",
        RecipientRole::Person => "person",
    }
}
