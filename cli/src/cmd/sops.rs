//! SOPS interoperability: `import-sops`, `export-sops`, and opening SOPS files in `reveal`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use sealops_core::manifest::Manifest;
use sealops_core::secret::SecretValue;
use sealops_core::sops::{self, EncryptOptions, FlatDocument, MacCheck, SopsFormat};

use crate::args::{ExportSopsArgs, GlobalArgs, ImportSopsArgs, SopsOutputFormat};
use crate::context::{self, IdentityNeed};
use crate::exit::Outcome;
use crate::output;

/// The SOPS format of `file`, when it is a SOPS file.
pub fn detect(file: &Path) -> anyhow::Result<Option<(String, SopsFormat)>> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(None);
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(sops::detect(&text, &name).map(|format| (text, format)))
}

/// `sealops reveal SOPS_FILE -o json`: the decrypted document, after the MAC check.
pub fn reveal(
    global: &GlobalArgs,
    file: &Path,
    text: &str,
    format: SopsFormat,
    ignore_mac: bool,
) -> anyhow::Result<Outcome> {
    let identities = context::identities(global, IdentityNeed::Required)?;
    let check = if ignore_mac {
        MacCheck::Ignore
    } else {
        MacCheck::Verify
    };
    let decrypted = sops::decrypt(
        text,
        &file.display().to_string(),
        format,
        &identities,
        check,
    )?;
    if !decrypted.mac_verified() {
        eprintln!(
            "warning: {}: MAC not verified (--ignore-mac)",
            file.display()
        );
    }
    let mut json = decrypted.to_json_pretty();
    json.push('\n');
    output::stdout(json.as_bytes())?;
    Ok(Outcome::Success)
}

pub fn import(global: &GlobalArgs, args: ImportSopsArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let identities = context::identities(global, IdentityNeed::Required)?;
    let check = if args.ignore_mac {
        MacCheck::Ignore
    } else {
        MacCheck::Verify
    };
    let several = args.files.len() > 1;
    // One manifest per secret path, changed in memory, so two inputs for one path both land.
    let mut manifests: BTreeMap<sealops_core::manifest::SecretPath, Manifest> = BTreeMap::new();
    let mut imports = Vec::new();
    // Decrypt and seal everything in memory first: one bad file leaves the repository untouched.
    for file in &args.files {
        let display = file.display().to_string();
        let Some((text, format)) = detect(file)? else {
            bail!("{display}: not a SOPS file (no `sops` metadata)");
        };
        let decrypted = sops::decrypt(&text, &display, format, &identities, check)?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("the file has no name")?;
        let documents = decrypted.documents();
        for (index, document) in documents.iter().enumerate() {
            let base = match (&args.to, several) {
                (Some(to), false) => to.clone(),
                (Some(dir), true) => format!("{}/{stem}", dir.trim_end_matches('/')),
                (None, _) => stem.clone(),
            };
            let target = if documents.len() > 1 {
                format!("{base}-{index}")
            } else {
                base
            };
            let path = context::secret_path(&target)?;
            let flat =
                sops::flatten(document).with_context(|| format!("{display}: cannot import"))?;
            if !flat.types.is_empty() {
                let keys: Vec<&str> = flat.types.iter().map(|(k, _)| k.as_str()).collect();
                eprintln!(
                    "note: {display}: {} became strings (sealed values are text or bytes)",
                    keys.join(", ")
                );
            }
            let values: BTreeMap<String, SecretValue> = flat.entries.into_iter().collect();
            if !manifests.contains_key(&path) {
                let existing = repo.read_manifest(&path)?;
                let manifest = existing
                    .unwrap_or_else(|| Manifest::new(path.clone(), repo.config.default_scope()));
                manifests.insert(path.clone(), manifest);
            }
            let manifest = manifests.get_mut(&path).expect("inserted above");
            let file_label = format!("secrets/{path}.yaml");
            let count = values.len();
            manifest.seal_values(
                &file_label,
                values,
                &repo.recipients(),
                &identities,
                &repo.recipient_names(),
            )?;
            imports.push((display.clone(), path, count));
        }
    }
    for manifest in manifests.values() {
        repo.write_manifest(manifest)?;
    }
    for (source, path, count) in &imports {
        eprintln!("Imported {source} → secrets/{path}.yaml ({count} values)");
    }
    Ok(Outcome::Success)
}

pub fn export(global: &GlobalArgs, args: ExportSopsArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let identities = context::identities(global, IdentityNeed::Required)?;
    let path = context::secret_path(&args.secret_path)?;
    let file = format!("secrets/{path}.yaml");
    let Some(manifest) = repo.read_manifest(&path)? else {
        bail!("no manifest {file}");
    };
    let options = EncryptOptions::default();
    if let Some(key) = manifest
        .data
        .keys()
        .find(|k| k.ends_with(&options.unencrypted_suffix))
    {
        bail!(
            "{file}: sealed key {key} ends with {}, which SOPS leaves in clear; rename the key before exporting",
            options.unencrypted_suffix
        );
    }
    let mut entries: Vec<(String, SecretValue)> = manifest
        .reveal(&file, &identities, &repo.recipient_names())?
        .into_iter()
        .collect();
    entries.extend(
        manifest
            .plain
            .iter()
            .map(|(k, v)| (k.clone(), SecretValue::from(v.as_str()))),
    );
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let document = sops::unflatten(&FlatDocument {
        entries,
        types: Vec::new(),
    })
    .with_context(|| {
        format!("{file}: its keys do not follow the flattening rule of docs/sops.md")
    })?;
    let format = match args.format {
        SopsOutputFormat::Yaml => SopsFormat::Yaml,
        SopsOutputFormat::Json => SopsFormat::Json,
        SopsOutputFormat::Dotenv => SopsFormat::Dotenv,
    };
    let text = sops::encrypt(&[document], format, &repo.recipients(), &options)
        .map_err(|kind| anyhow::anyhow!("{file}: {kind}"))?;
    match args.output {
        Some(out) => {
            sealops_core::fsutil::write_atomic(&out, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "Wrote {} (SOPS, age recipients of .sealops/config.yaml)",
                out.display()
            );
        }
        None => output::stdout(text.as_bytes())?,
    }
    Ok(Outcome::Success)
}
