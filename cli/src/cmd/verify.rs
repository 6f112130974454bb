//! `sealops verify`.

use crate::args::{GlobalArgs, VerifyArgs};
use crate::context::{self, IdentityNeed};
use crate::exit::Outcome;

pub fn run(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let identities = context::identities(global, IdentityNeed::ExplicitOnly)?;
    let targets = if args.paths.is_empty() {
        context::all_manifests(&repo)?
    } else {
        context::resolve_targets(Some(&repo), &args.paths)?.0
    };
    let recipients = repo.config.recipients();
    let mut problems = 0usize;
    for target in &targets {
        let found = match target.read() {
            Ok(manifest) => manifest
                .verify(target.location.as_ref(), &recipients, &identities)
                .into_iter()
                .map(|p| format!("{}: {p}", target.display))
                .collect(),
            Err(e) => vec![format!("{e:#}")],
        };
        for problem in &found {
            eprintln!("{problem}");
        }
        problems += found.len();
    }
    let opened = if identities.is_empty() {
        ""
    } else {
        ", every value opened"
    };
    if problems == 0 {
        eprintln!("{} manifests verified{opened}", targets.len());
        Ok(Outcome::Success)
    } else {
        eprintln!("{problems} problems in {} manifests", targets.len());
        Ok(Outcome::Problems)
    }
}
