//! `sealops-controller check-config`: the configuration parses, and everything it names is
//! usable on this machine.

use std::collections::BTreeMap;
use std::path::Path;

use sealops_core::controller_config::{
    AuditRequire, AuditSettings, AuditSink, ControllerConfig, Hook, Http,
};

use crate::output::OutputRoots;

/// Every problem with `config` on this machine (empty when it is ready to run).
pub fn problems(config: &ControllerConfig) -> Vec<String> {
    let mut problems = local_path_problems(config);
    problems.extend(hook_problems(&config.hooks));
    if let Some(http) = &config.http {
        problems.extend(http_problems(http));
    }
    problems.extend(crate::api::problems(&config.api, &config.state_dir));
    problems.extend(audit_sink_problems(&config.audit));
    problems.extend(repository_problems(config));
    problems.extend(trust_problems(config));
    problems
}

/// The identity files, output roots, allowed_signers file, local repository and state
/// directory the configuration names.
fn local_path_problems(config: &ControllerConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for file in &config.identity_files {
        if let Err(e) = sealops_core::keys::AgeIdentities::load(file) {
            problems.push(format!("identity_files: {e}"));
        }
    }
    if let Err(e) = OutputRoots::new(&config.output_roots) {
        problems.push(format!("output_roots: {e}"));
    }
    if let Some(file) = &config.trust.allowed_signers_file
        && let Err(e) = sealops_core::signing::AllowedSigners::load(file)
    {
        problems.push(format!("trust.allowed_signers_file: {e}"));
    }
    if let Some(path) = &config.repository.path
        && !path.join(".git").exists()
        && !path.join("HEAD").exists()
    {
        problems.push(format!(
            "repository.path: {} is not a git repository",
            path.display()
        ));
    }
    if config.state_dir.exists() && !config.state_dir.is_dir() {
        problems.push(format!(
            "state_dir: {} exists and is not a directory",
            config.state_dir.display()
        ));
    }
    problems
}

fn hook_problems(hooks: &BTreeMap<String, Hook>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, hook) in hooks {
        let program = Path::new(&hook.command[0]);
        let found = if program.is_absolute() {
            program.is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
            })
        };
        if !found {
            problems.push(format!(
                "hooks.{name}: program {} not found",
                program.display()
            ));
        }
    }
    problems
}

fn http_problems(http: &Http) -> Vec<String> {
    let mut problems = Vec::new();
    if http.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(format!(
            "http.listen: {:?} is not an address like 127.0.0.1:9750",
            http.listen
        ));
    }
    if let Some(file) = &http.webhook_secret_file {
        match std::fs::read_to_string(file) {
            Err(e) => problems.push(format!("http.webhook_secret_file: {}: {e}", file.display())),
            Ok(text) if text.trim().is_empty() => problems.push(format!(
                "http.webhook_secret_file: {} is empty; anyone could sign a webhook with an empty key",
                file.display()
            )),
            Ok(_) => {}
        }
    }
    problems
}

fn audit_sink_problems(audit: &AuditSettings) -> Vec<String> {
    let mut problems = Vec::new();
    for sink in &audit.sinks {
        if let AuditSink::File(path) = sink
            && let Err(e) = crate::audit_sink::check_file(path)
        {
            problems.push(format!(
                "audit.sinks: {e}{}",
                match audit.require {
                    AuditRequire::All =>
                        "; with audit.require: all every action is refused until it can be written",
                    _ => "; records would not reach this sink",
                }
            ));
        }
    }
    problems
}

/// Fetching the remote, its credentials, and the pinned initial commit in the local
/// repository.
fn repository_problems(config: &ControllerConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if config.repository.url.is_some()
        && std::process::Command::new("git")
            .arg("--version")
            .output()
            .is_err()
    {
        problems.push(
            "repository.url: a remote is fetched with the `git` command, which is not installed"
                .to_owned(),
        );
    }
    for (name, file) in [
        ("repository.token_file", &config.repository.token_file),
        ("repository.ssh_key_file", &config.repository.ssh_key_file),
    ] {
        if let Some(file) = file
            && let Err(e) = std::fs::metadata(file)
        {
            problems.push(format!("{name}: {}: {e}", file.display()));
        }
    }
    if let (Some(path), Some(commit)) = (&config.repository.path, &config.trust.initial_commit)
        && let Ok(repo) = git2::Repository::open(path)
        && git2::Oid::from_str(commit)
            .ok()
            .and_then(|oid| repo.find_commit(oid).ok())
            .is_none()
    {
        problems.push(format!(
            "trust.initial_commit: commit {commit} is not in {}",
            path.display()
        ));
    }
    problems
}

/// Trust settings that parse, but leave a fresh state directory applying nothing or let
/// commits through with less checking than production needs.
fn trust_problems(config: &ControllerConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if config.trust.require_signed
        && config.trust.initial_commit.is_none()
        && config.trust.pinned_principals.is_empty()
    {
        problems.push(
            "trust: no trust anchor is pinned, so a fresh state directory applies nothing (any key in allowed_signers could sign a new root commit and become the anchor); add `initial_commit: <a commit you reviewed>` under trust: (or `pinned_principals: [<who signed the first commit>]`)"
                .to_owned(),
        );
    }
    if config.trust.require_signed
        && config.trust.initial_commit.is_none()
        && !config.trust.pinned_principals.is_empty()
    {
        problems.push(
            "trust.pinned_principals without trust.initial_commit: a fresh state directory takes any first commit those principals signed as the anchor (the branch reset to it, or a first commit from another repository) and applies it as it is; add `initial_commit: <a commit you reviewed>` under trust:"
                .to_owned(),
        );
    }
    if config.allow_force_push {
        problems.push(
            if config.trust.initial_commit.is_none() {
                "allow_force_push: true without trust.initial_commit: a rewritten history is refused anyway (it is re-judged only from a pinned initial commit); remove `allow_force_push: true`, or add `initial_commit: <a commit you reviewed>` under trust:"
            } else {
                "allow_force_push: true: a rewritten history is re-judged from trust.initial_commit and applied, which can roll outputs back to any older authorised state; remove the line `allow_force_push: true` for production"
            }
            .to_owned(),
        );
    }
    if !config.trust.require_signed {
        problems.push(
            "trust.require_signed: false applies commits without verifying them; for local experiments only (the controller runs, but this is not ready for real secrets)"
                .to_owned(),
        );
    }
    problems
}

/// Reads and parses the configuration file.
pub fn load(path: &Path) -> anyhow::Result<ControllerConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(ControllerConfig::parse(&text, &path.display().to_string())?)
}
