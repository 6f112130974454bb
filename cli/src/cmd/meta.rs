//! `sealops schema`, `sealops completions`, `sealops man`.

use anyhow::Context;
use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs, ManArgs, SchemaArgs};
use crate::exit::Outcome;
use crate::output;

pub fn schema(args: SchemaArgs) -> anyhow::Result<Outcome> {
    let schemas = sealops_core::schema::all();
    if let Some(dir) = args.check {
        let mut stale = 0;
        for (name, text) in &schemas {
            let path = dir.join(name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if &committed != text {
                eprintln!(
                    "{} differs from the generated schema: run `sealops schema --out {}`",
                    path.display(),
                    dir.display()
                );
                stale += 1;
            }
        }
        return Ok(if stale == 0 {
            Outcome::Success
        } else {
            Outcome::Problems
        });
    }
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in &schemas {
                let path = dir.join(name);
                sealops_core::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for (name, text) in &schemas {
                output::stdout(format!("// {name}\n{text}").as_bytes())?;
            }
        }
    }
    Ok(Outcome::Success)
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "sealops", &mut buffer);
    output::stdout(&buffer)?;
    Ok(Outcome::Success)
}

pub fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    let command = Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
            eprintln!("wrote man pages to {}", dir.display());
        }
        None => {
            let mut buffer = Vec::new();
            clap_mangen::Man::new(command).render(&mut buffer)?;
            output::stdout(&buffer)?;
        }
    }
    Ok(Outcome::Success)
}
