//! `sealops seal`, `sealops set`, `sealops unset`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use sealops_core::manifest::{Manifest, Scope};
use sealops_core::repo::Repository;
use sealops_core::secret::SecretValue;

use crate::args::{GlobalArgs, SealArgs, SetArgs, UnsetArgs};
use crate::context::{self, IdentityNeed};
use crate::exit::Outcome;

/// What `seal` was asked to write, validated.
struct SealRequest {
    sealed: BTreeMap<String, SecretValue>,
    plain: BTreeMap<String, String>,
}

impl SealRequest {
    fn from_args(args: &SealArgs) -> anyhow::Result<Self> {
        let mut request = Self {
            sealed: BTreeMap::new(),
            plain: BTreeMap::new(),
        };
        for pair in &args.from_literal {
            let (key, value) = split_pair(pair, "--from-literal")?;
            request.add_sealed(key, SecretValue::from(value))?;
        }
        for pair in &args.from_file {
            let (key, file) = split_pair(pair, "--from-file")?;
            let bytes = std::fs::read(file)
                .with_context(|| format!("--from-file {key}: cannot read {file}"))?;
            request.add_sealed(key, SecretValue::new(bytes))?;
        }
        if let Some(env_file) = &args.from_env_file {
            let entries = dotenvy::from_path_iter(env_file)
                .with_context(|| format!("cannot read {}", env_file.display()))?;
            for entry in entries {
                // dotenvy's errors quote the offending line, which may hold a secret: say where only.
                let (key, value) = entry.map_err(|e| match e {
                    dotenvy::Error::LineParse(_, index) => anyhow::anyhow!(
                        "{}: cannot parse the line at byte {index} (expected KEY=VALUE)",
                        env_file.display()
                    ),
                    other => anyhow::anyhow!("{}: {other}", env_file.display()),
                })?;
                request.add_sealed(&key, SecretValue::from(value))?;
            }
        }
        if let Some(key) = &args.stdin {
            request.add_sealed(key, read_stdin(key)?)?;
        }
        for pair in &args.plain {
            let (key, value) = split_pair(pair, "--plain")?;
            if request.sealed.contains_key(key)
                || request
                    .plain
                    .insert(key.to_owned(), value.to_owned())
                    .is_some()
            {
                bail!("key {key} is given twice");
            }
        }
        if request.sealed.is_empty() && request.plain.is_empty() {
            bail!(
                "nothing to seal: give --from-literal, --from-file, --from-env-file, --stdin or --plain"
            );
        }
        Ok(request)
    }

    fn add_sealed(&mut self, key: &str, value: SecretValue) -> anyhow::Result<()> {
        if self.sealed.insert(key.to_owned(), value).is_some() {
            bail!("key {key} is given twice");
        }
        Ok(())
    }
}

fn split_pair<'a>(pair: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    // Never echo the pair: its right-hand side may be a secret.
    pair.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("{flag} expects KEY=VALUE (no `=` found, or the key is empty)")
        })
}

fn read_stdin(key: &str) -> anyhow::Result<SecretValue> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let value = rpassword::prompt_password(format!("Value for {key} (input hidden): "))
            .context("cannot read the value from the terminal")?;
        return Ok(SecretValue::from(value));
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    Ok(SecretValue::new(bytes))
}

/// Loads the manifest at `path`, or starts a new one with `scope` (default from the config).
fn load_or_new(
    repo: &Repository,
    path: &sealops_core::manifest::SecretPath,
    scope: Option<&str>,
) -> anyhow::Result<(Manifest, bool)> {
    match repo.read_manifest(path)? {
        Some(manifest) => {
            if let Some(scope) = scope
                && Scope::parse(scope).map_err(anyhow::Error::msg)? != manifest.scope
            {
                bail!(
                    "secrets/{path}.yaml already has scope {}; changing scope needs re-sealing every value (`sealops rotate-data-key` after editing the scope is not supported yet)",
                    manifest.scope
                );
            }
            Ok((manifest, false))
        }
        None => {
            let scope = match scope {
                Some(text) => Scope::parse(text).map_err(anyhow::Error::msg)?,
                None => repo.config.default_scope(),
            };
            if !scope.permits(path) {
                bail!("scope {scope} does not include {path}");
            }
            Ok((Manifest::new(path.clone(), scope), true))
        }
    }
}

pub fn seal(global: &GlobalArgs, args: SealArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let path = context::secret_path(&args.secret_path)?;
    let request = SealRequest::from_args(&args)?;
    let identities = context::identities(global, IdentityNeed::Optional)?;
    let (mut manifest, created) = load_or_new(&repo, &path, args.scope.as_deref())?;
    let file = format!("secrets/{path}.yaml");
    let names = repo.recipient_names();
    let (sealed_count, plain_count) = (request.sealed.len(), request.plain.len());
    for (key, value) in request.plain {
        manifest.set_plain(&key, value)?;
    }
    manifest.seal_values(
        &file,
        request.sealed,
        &repo.recipients(),
        &identities,
        &names,
    )?;
    repo.write_manifest(&manifest)?;
    eprintln!(
        "{} {file}: {sealed_count} sealed, {plain_count} plain",
        if created { "Created" } else { "Updated" }
    );
    Ok(Outcome::Success)
}

pub fn set(global: &GlobalArgs, args: SetArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let path = context::secret_path(&args.secret_path)?;
    let value = match args.value.as_deref() {
        None | Some("-") => read_stdin(&args.key)?,
        Some(value) => SecretValue::from(value),
    };
    let identities = context::identities(global, IdentityNeed::Optional)?;
    let (mut manifest, _) = load_or_new(&repo, &path, None)?;
    let file = format!("secrets/{path}.yaml");
    if args.plain {
        let text = value
            .expose_str()
            .context("a plain value must be UTF-8 text")?
            .to_owned();
        manifest.set_plain(&args.key, text)?;
    } else {
        let values = BTreeMap::from([(args.key.clone(), value)]);
        manifest.seal_values(
            &file,
            values,
            &repo.recipients(),
            &identities,
            &repo.recipient_names(),
        )?;
    }
    repo.write_manifest(&manifest)?;
    eprintln!(
        "Set {} in {file}{}",
        args.key,
        if args.plain { " (plain)" } else { "" }
    );
    Ok(Outcome::Success)
}

pub fn unset(global: &GlobalArgs, args: UnsetArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let path = context::secret_path(&args.secret_path)?;
    let file = format!("secrets/{path}.yaml");
    let Some(mut manifest) = repo.read_manifest(&path)? else {
        bail!("no manifest {file}");
    };
    let missing: Vec<&str> = args
        .keys
        .iter()
        .filter(|k| !manifest.data.contains_key(*k) && !manifest.plain.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "{file} has no key {} (nothing was changed)",
            missing.join(", ")
        );
    }
    for key in &args.keys {
        manifest.remove_key(key);
    }
    repo.write_manifest(&manifest)?;
    eprintln!("Removed {} from {file}", args.keys.join(", "));
    Ok(Outcome::Success)
}
