//! `sealops edit`: values in $EDITOR, only changes sealed again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use sealops_core::manifest::Manifest;
use sealops_core::secret::SecretValue;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::args::{EditArgs, GlobalArgs};
use crate::context::{self, IdentityNeed};
use crate::exit::Outcome;
use sealops_core::render::json_string;

/// The document the user edits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditDoc {
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    plain: BTreeMap<String, String>,
}

impl Drop for EditDoc {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for value in self.data.values_mut() {
            value.zeroize();
        }
    }
}

pub fn run(global: &GlobalArgs, args: EditArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let path = context::secret_path(&args.secret_path)?;
    let file = format!("secrets/{path}.yaml");
    let identities = context::identities(global, IdentityNeed::Required)?;
    let names = repo.recipient_names();
    let mut manifest = repo
        .read_manifest(&path)?
        .unwrap_or_else(|| Manifest::new(path.clone(), repo.config.default_scope()));
    let current = manifest.reveal(&file, &identities, &names)?;

    let mut text = Zeroizing::new(format!(
        "# Editing {file}. Save and quit to seal; values under `data` are sealed, values under `plain`\n\
         # are stored in clear. Delete a line to remove its key. An unchanged file changes nothing.\n"
    ));
    text.push_str(if current.is_empty() {
        "data: {}\n"
    } else {
        "data:\n"
    });
    for (key, value) in &current {
        let value = value.expose_str().with_context(|| {
            format!("{file}: key {key} holds binary data that an editor cannot show; change it with `sealops set` or `seal --from-file`")
        })?;
        text.push_str(&format!(
            "  {}: {}\n",
            json_string(key).as_str(),
            json_string(value).as_str()
        ));
    }
    if !manifest.plain.is_empty() {
        text.push_str("plain:\n");
        for (key, value) in &manifest.plain {
            text.push_str(&format!(
                "  {}: {}\n",
                json_string(key).as_str(),
                json_string(value).as_str()
            ));
        }
    }

    let edited = edit_privately(&text)?;
    let Some(edited) = edited else {
        eprintln!("No changes to {file}.");
        return Ok(Outcome::Success);
    };
    let doc: EditDoc = sealops_core::yaml::from_str(&edited, "the edited file")
        .with_context(|| format!("nothing was changed in {file}"))?;

    let mut changed = false;
    let removed: Vec<String> = manifest
        .keys()
        .filter(|k| !doc.data.contains_key(*k) && !doc.plain.contains_key(*k))
        .map(str::to_owned)
        .collect();
    for key in &removed {
        changed |= manifest.remove_key(key);
    }
    for (key, value) in &doc.plain {
        if doc.data.contains_key(key) {
            bail!("key {key} is under both data and plain; nothing was changed in {file}");
        }
        if manifest.plain.get(key) != Some(value) {
            manifest.set_plain(key, value.clone())?;
            changed = true;
        }
    }
    let mut to_seal = BTreeMap::new();
    for (key, value) in &doc.data {
        let unchanged = manifest.data.contains_key(key)
            && current.get(key).and_then(SecretValue::expose_str) == Some(value.as_str());
        if !unchanged {
            to_seal.insert(key.clone(), SecretValue::from(value.as_str()));
        }
    }
    let sealed_count = to_seal.len();
    changed |= sealed_count > 0;
    manifest.seal_values(&file, to_seal, &repo.recipients(), &identities, &names)?;
    if changed {
        repo.write_manifest(&manifest)?;
        eprintln!(
            "Updated {file}: {sealed_count} sealed, {} removed",
            removed.len()
        );
    } else {
        eprintln!("No changes to {file}.");
    }
    Ok(Outcome::Success)
}

/// Runs the editor on a private copy of `text`; `None` when the user saved nothing new.
///
/// The file lives in a fresh 0700 directory (on tmpfs when the system has one), is created
/// 0600, and is removed on every exit path: errors drop the directory, and SIGINT/SIGTERM/SIGHUP
/// are held until the editor returns so cleanup always runs.
fn edit_privately(text: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("cannot install signal handlers")?;
    }
    let dir = tempfile::Builder::new()
        .prefix("sealops-edit-")
        .tempdir_in(private_temp_root())
        .context("cannot create a private temporary directory")?;
    let path = dir.path().join("secret.yaml");
    sealops_core::fsutil::create_new(&path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let status = run_editor(&path);
    let edited =
        Zeroizing::new(std::fs::read_to_string(&path).context("cannot read the edited file back")?);
    drop(dir);
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted; nothing was changed (the temporary file was removed)");
    }
    let status = status?;
    if !status.success() {
        bail!("the editor exited with {status}; nothing was changed");
    }
    Ok((edited.as_str() != text).then_some(edited))
}

fn run_editor(path: &Path) -> anyhow::Result<std::process::ExitStatus> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    // Through the shell so EDITOR may carry arguments ("code --wait").
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sealops-edit")
        .arg(path)
        .status()
        .with_context(|| format!("cannot run the editor ({editor})"))
}

fn private_temp_root() -> PathBuf {
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.is_dir() && tempfile::tempdir_in(dir).is_ok())
        .unwrap_or_else(std::env::temp_dir)
}
