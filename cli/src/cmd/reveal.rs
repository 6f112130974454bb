//! `sealops reveal`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::bail;
use rayon::prelude::*;
use sealops_core::render::{self, RenderError};
use sealops_core::repo::Repository;
use sealops_core::seal::RecipientNames;
use sealops_core::secret::SecretValue;
use zeroize::Zeroizing;

use crate::args::{GlobalArgs, RevealArgs, RevealFormat};
use crate::context::{self, IdentityNeed, ManifestFile};
use crate::exit::Outcome;
use crate::output;

pub fn run(global: &GlobalArgs, args: RevealArgs) -> anyhow::Result<Outcome> {
    let as_file = std::path::Path::new(&args.target);
    if as_file.is_file()
        && let Some((text, format)) = crate::cmd::sops::detect(as_file)?
    {
        if args.output != RevealFormat::Json || args.key.is_some() {
            bail!("{} is a SOPS file: reveal it with -o json", args.target);
        }
        return crate::cmd::sops::reveal(global, as_file, &text, format, args.ignore_mac);
    }
    // A manifest file can be revealed outside any repository (break-glass on a laptop).
    let repo = match context::repository(global) {
        Ok(repo) => Some(repo),
        Err(e)
            if global.repo.is_none()
                && as_file.exists()
                && e.downcast_ref::<sealops_core::repo::RepoError>()
                    .is_some_and(Repository::is_not_found) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let identities = context::identities(global, IdentityNeed::Required)?;
    let names = repo
        .as_ref()
        .map(Repository::recipient_names)
        .unwrap_or_default();
    let (targets, expanded) =
        context::resolve_targets(repo.as_ref(), std::slice::from_ref(&args.target))?;
    let single = !expanded;

    // One unwrap per manifest dominates: open manifests on every core, keeping their order.
    let revealed = targets
        .par_iter()
        .map(|target| open(target, &identities, &names).map(|values| (target.clone(), values)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    if let Some(key) = &args.key {
        let [(target, values)] = revealed.as_slice() else {
            bail!(
                "--key needs one manifest, but {} names {}",
                args.target,
                targets.len()
            );
        };
        let value = values
            .get(key)
            .ok_or_else(|| anyhow::anyhow!("{}: no key named {key}", target.display))?;
        output::stdout(value.expose())?;
        if std::io::stdout().is_terminal() {
            output::stdout(b"\n")?;
        }
        return Ok(Outcome::Success);
    }

    let text = if single {
        let (target, values) = &revealed[0];
        render(&target.display, values, args.output)?
    } else {
        render_tree(&revealed, args.output)?
    };
    output::stdout(text.as_bytes())?;
    Ok(Outcome::Success)
}

/// Every value of a manifest, sealed ones opened, plain ones as they are.
pub fn open(
    target: &ManifestFile,
    identities: &sealops_core::keys::AgeIdentities,
    names: &RecipientNames,
) -> anyhow::Result<BTreeMap<String, SecretValue>> {
    let manifest = target.read()?;
    let mut values = manifest.reveal(&target.display, identities, names)?;
    for (key, value) in manifest.plain {
        values.insert(key, SecretValue::from(value));
    }
    Ok(values)
}

/// Says which manifest, and how to get a binary value out.
fn render_error(display: &str, error: RenderError) -> anyhow::Error {
    match error {
        RenderError::Binary { key, .. } => {
            anyhow::anyhow!(
                "{display}: the value of {key} is binary; print it alone with --key {key}"
            )
        }
        RenderError::NotAnEnvName { key } => anyhow::anyhow!(
            "{display}: key {key} is not a valid environment variable name; use -o yaml or -o json"
        ),
        other => anyhow::anyhow!("{display}: {other}"),
    }
}

/// Renders one manifest's values.
pub fn render(
    display: &str,
    values: &BTreeMap<String, SecretValue>,
    format: RevealFormat,
) -> anyhow::Result<Zeroizing<String>> {
    let rendered = match format {
        RevealFormat::Yaml => render::yaml(values),
        RevealFormat::Json => render::json(values, "").map(|mut json| {
            json.push('\n');
            json
        }),
        RevealFormat::Env => render::dotenv(values),
    };
    rendered.map_err(|e| render_error(display, e))
}

fn render_tree(
    revealed: &[(ManifestFile, BTreeMap<String, SecretValue>)],
    format: RevealFormat,
) -> anyhow::Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    let label = |t: &ManifestFile| {
        t.location
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| t.display.clone())
    };
    match format {
        RevealFormat::Env => {
            bail!("-o env needs one manifest; reveal a directory with -o yaml or -o json")
        }
        RevealFormat::Json => {
            out.push_str("{\n");
            for (index, (target, values)) in revealed.iter().enumerate() {
                out.push_str("  ");
                out.push_str(&render::json_string(&label(target)));
                out.push_str(": ");
                let json =
                    render::json(values, "  ").map_err(|e| render_error(&target.display, e))?;
                out.push_str(&json);
                out.push_str(if index + 1 < revealed.len() {
                    ",\n"
                } else {
                    "\n"
                });
            }
            out.push_str("}\n");
        }
        RevealFormat::Yaml => {
            for (target, values) in revealed {
                out.push_str(&sealops_core::yaml::scalar(&label(target)));
                out.push_str(if values.is_empty() { ": {}\n" } else { ":\n" });
                for line in render(&target.display, values, RevealFormat::Yaml)?.lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    Ok(out)
}
