//! `sealops`: seal secrets into reviewable git manifests.
//!
//! The binary only parses arguments ([`args`]), calls `sealops-core`, and turns errors into
//! messages and exit codes ([`exit::Outcome`]).

mod args;
mod cmd;
mod context;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::exit::Outcome;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli);
    match result {
        Ok(outcome) => outcome.into(),
        Err(error) if output::is_broken_pipe(&error) => Outcome::Success.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            Outcome::Error.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let global = cli.global;
    match cli.command {
        Command::Keygen(args) => cmd::keys::keygen(args),
        Command::Init(args) => cmd::init::run(args),
        Command::Seal(args) => cmd::seal::seal(&global, args),
        Command::Set(args) => cmd::seal::set(&global, args),
        Command::Unset(args) => cmd::seal::unset(&global, args),
        Command::Reveal(args) => cmd::reveal::run(&global, args),
        Command::Edit(args) => cmd::edit::run(&global, args),
        Command::Recipients(args) => cmd::recipients::run(&global, args),
        Command::Rewrap(args) => cmd::rewrap::rewrap(&global, args),
        Command::RotateDataKey(args) => cmd::rewrap::rotate_data_key(&global, args),
        Command::Verify(args) => cmd::verify::run(&global, args),
        Command::Textconv(args) => cmd::git::textconv(&global, args),
        Command::MergeDriver(args) => cmd::git::merge_driver(args),
        Command::GitSetup => cmd::git::git_setup(&global),
        Command::Precommit => cmd::git::precommit(&global),
        Command::ImportSops(args) => cmd::sops::import(&global, args),
        Command::ExportSops(args) => cmd::sops::export(&global, args),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Check(args) => cmd::check::run(&global, args),
        Command::Approve(args) => cmd::approve::approve(&global, args),
        Command::Audit(args) => cmd::audit::run(&global, args),
        Command::Approvals(args) => cmd::approve::approvals(&global, args),
        Command::Lease(args) => cmd::lease::lease(args),
        Command::Rotate(args) => cmd::lease::rotate(args),
        Command::Schema(args) => cmd::meta::schema(args),
        Command::Completions(args) => cmd::meta::completions(args),
        Command::Man(args) => cmd::meta::man(args),
    }
}
