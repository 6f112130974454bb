//! `sealops keygen`.

use anyhow::{Context, anyhow};
use sealops_core::{fsutil, keys};

use crate::args::KeygenArgs;
use crate::context::default_identity_file;
use crate::exit::Outcome;
use crate::output;

pub fn keygen(args: KeygenArgs) -> anyhow::Result<Outcome> {
    let path = match args.output {
        Some(path) => path,
        None => default_identity_file().ok_or_else(|| anyhow!("HOME is not set: pass -o FILE"))?,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let (identity, text) = keys::generate();
    fsutil::create_new(&path, text.as_bytes(), 0o600).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} already exists; sealops never overwrites an identity (choose another file with -o)",
                path.display()
            )
        } else {
            anyhow!(e).context(format!("cannot write {}", path.display()))
        }
    })?;
    eprintln!(
        "Wrote identity to {} (mode 0600). Public key:",
        path.display()
    );
    output::stdout(format!("{}\n", identity.recipient()).as_bytes())?;
    Ok(Outcome::Success)
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
