//! `sealops rewrap` and `sealops rotate-data-key`: bulk operations over many manifests in one
//! process.

use anyhow::bail;

use crate::args::{BulkArgs, GlobalArgs};
use crate::context::{self, IdentityNeed, ManifestFile};
use crate::exit::Outcome;

fn targets(
    repo: &sealops_core::repo::Repository,
    args: &BulkArgs,
) -> anyhow::Result<Vec<ManifestFile>> {
    if args.all {
        context::all_manifests(repo)
    } else if args.paths.is_empty() {
        bail!("name the manifests (secret paths, files or directories), or pass --all")
    } else {
        context::resolve_targets(Some(repo), &args.paths).map(|(files, _)| files)
    }
}

/// Applies `change` to every target; writes only manifests it changed. All manifests are
/// changed in memory first, so one that fails to open leaves every file untouched.
fn for_each(
    global: &GlobalArgs,
    args: &BulkArgs,
    verb: &str,
    change: impl Fn(
        &mut sealops_core::manifest::Manifest,
        &str,
        &sealops_core::repo::Repository,
        &sealops_core::keys::AgeIdentities,
    ) -> anyhow::Result<bool>,
) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let identities = context::identities(global, IdentityNeed::Required)?;
    let targets = targets(&repo, args)?;
    let mut changed = Vec::new();
    for target in &targets {
        let mut manifest = target.read()?;
        if change(&mut manifest, &target.display, &repo, &identities)? {
            changed.push(manifest);
        }
    }
    for manifest in &changed {
        repo.write_manifest(manifest)?;
    }
    eprintln!("{verb} {} of {} manifests", changed.len(), targets.len());
    Ok(Outcome::Success)
}

pub fn rewrap(global: &GlobalArgs, args: BulkArgs) -> anyhow::Result<Outcome> {
    for_each(
        global,
        &args,
        "Rewrapped",
        |manifest, file, repo, identities| {
            Ok(manifest.rewrap(
                file,
                &repo.recipients(),
                identities,
                &repo.recipient_names(),
            )?)
        },
    )
}

pub fn rotate_data_key(global: &GlobalArgs, args: BulkArgs) -> anyhow::Result<Outcome> {
    for_each(
        global,
        &args,
        "Rotated the data key of",
        |manifest, file, repo, identities| {
            manifest.rotate_data_key(
                file,
                &repo.recipients(),
                identities,
                &repo.recipient_names(),
            )?;
            Ok(true)
        },
    )
}
