//! `sealops policy …`: Vault-syntax ACL policies — format, check, evaluate, explain, who-can.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sealops_core::policy::{
    Acl, Operation, Policy, PolicySet, Principals, Request, default_name, format_policy,
};

use crate::args::policy::{
    CheckArgs, EvalArgs, FmtArgs, OutputFormat, PolicyArgs, PolicyCommand, WhoCanArgs,
};
use crate::exit::Outcome;

pub fn run(args: PolicyArgs) -> anyhow::Result<Outcome> {
    match args.command {
        PolicyCommand::Fmt(args) => fmt(&args),
        PolicyCommand::Check(args) => check(&args),
        PolicyCommand::Eval(args) => eval(&args),
        PolicyCommand::Explain(args) => explain(&args),
        PolicyCommand::WhoCan(args) => who_can(&args),
    }
}

fn fmt(args: &FmtArgs) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Success;
    for file in &policy_files(&args.files)? {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let formatted = match format_policy(&text, &file.display().to_string()) {
            Ok(formatted) => formatted,
            Err(error) => {
                eprintln!("{error}");
                outcome = Outcome::Error;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if args.check {
            crate::output::outln!(
                "{}: not in canonical format (run `sealops policy fmt {}`)",
                file.display(),
                file.display()
            );
            if outcome == Outcome::Success {
                outcome = Outcome::Problems;
            }
        } else {
            sealops_core::fsutil::write_atomic(file, formatted.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", file.display()))?;
            crate::output::outln!("formatted {}", file.display());
        }
    }
    Ok(outcome)
}

fn policy_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let defaults = [PathBuf::from("policies")];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| e == "hcl" || e == "json")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!(
                "{} does not exist: pass policy files or a directory holding them",
                path.display()
            );
        }
    }
    Ok(files)
}

fn check(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let files = policy_files(&args.paths)?;
    let mut problems = 0;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for file in &files {
        match Policy::load(file) {
            Ok(policy) => {
                if let Some((_, first)) = names.iter().find(|(name, _)| *name == policy.name) {
                    crate::output::outln!(
                        "{}: policy name {:?} is also used by {}; names must be unique",
                        file.display(),
                        policy.name,
                        first.display()
                    );
                    problems += 1;
                }
                names.push((policy.name.clone(), file.clone()));
            }
            Err(error) => {
                crate::output::outln!("{error}");
                problems += 1;
            }
        }
    }
    if problems > 0 {
        crate::output::outln!("{problems} problem(s) in {} policy file(s)", files.len());
        return Ok(Outcome::Problems);
    }
    crate::output::outln!("ok: {} policy file(s)", files.len());
    Ok(Outcome::Success)
}

fn read_request(path: &Path) -> anyhow::Result<Request> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a request; expected JSON such as {{\"path\": \"secrets/apps/db\", \"operation\": \"read\"}}",
            path.display()
        )
    })
}

fn load_policies(files: &[PathBuf]) -> anyhow::Result<Vec<Policy>> {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read policy file {}", file.display()))?;
            Ok(Policy::parse(
                &text,
                &file.display().to_string(),
                &default_name(file),
            )?)
        })
        .collect()
}

fn eval(args: &EvalArgs) -> anyhow::Result<Outcome> {
    let policies = load_policies(&args.policies)?;
    let request = read_request(&args.request)?;
    let acl = Acl::new(&policies)?;
    let decision = acl.check(&request);
    match args.output {
        OutputFormat::Json => crate::output::outln!("{}", serde_json::to_string(&decision)?),
        OutputFormat::Text => {
            let verdict = match (request.operation, decision.allowed) {
                (None, _) => "capabilities".to_owned(),
                (Some(op), true) => format!("allowed: {op}"),
                (Some(op), false) => format!("denied: {op}"),
            };
            crate::output::outln!("{verdict} {}", request.path);
            crate::output::outln!("capabilities: {}", decision.capabilities.join(", "));
            crate::output::outln!("root_privs: {}", decision.root_privs);
            crate::output::outln!(
                "matched: {}",
                decision.matched.as_deref().unwrap_or("(no rule)")
            );
            if !decision.granting_policies.is_empty() {
                crate::output::outln!(
                    "granting policies: {}",
                    decision.granting_policies.join(", ")
                );
            }
            if let Some(denial) = &decision.denial {
                crate::output::outln!("reason: {denial}");
            }
        }
    }
    Ok(Outcome::Success)
}

fn explain(args: &EvalArgs) -> anyhow::Result<Outcome> {
    let policies = load_policies(&args.policies)?;
    let request = read_request(&args.request)?;
    let acl = Acl::new(&policies)?;
    let explanation = acl.explain(&request);
    let decision = &explanation.decision;
    if let OutputFormat::Json = args.output {
        crate::output::outln!("{}", serde_json::to_string(decision)?);
        return Ok(Outcome::Success);
    }
    let op = request
        .operation
        .map_or("capabilities of".to_owned(), |op| op.to_string());
    crate::output::outln!("request: {op} {}", request.path);
    if acl.is_root() {
        crate::output::outln!("the holder has the root policy: everything is allowed, with sudo");
        return Ok(Outcome::Success);
    }
    if explanation.candidates.is_empty() {
        crate::output::outln!("matching rules: none");
    } else {
        crate::output::outln!("matching rules (in the order Vault considers them):");
        for candidate in &explanation.candidates {
            let rule = candidate.rule;
            let selected = explanation.selected.is_some_and(|s| std::ptr::eq(s, rule));
            crate::output::outln!(
                "  {} {:?} — {} of {:?}; grants: {}",
                if selected { "*" } else { "-" },
                rule.pattern,
                candidate.how,
                candidate.path,
                if rule.capabilities.is_empty() {
                    "nothing".to_owned()
                } else {
                    rule.capabilities.to_string()
                },
            );
            for source in &rule.sources {
                crate::output::outln!(
                    "      from policy {:?} line {} (path {:?}): {}",
                    source.policy,
                    source.line,
                    source.pattern,
                    if source.capabilities.is_empty() {
                        "nothing".to_owned()
                    } else {
                        source.capabilities.to_string()
                    }
                );
            }
        }
    }
    crate::output::outln!("selected: {}", explanation.reason);
    crate::output::outln!("capabilities: {}", decision.capabilities.join(", "));
    crate::output::outln!("root_privs (sudo): {}", decision.root_privs);
    match (request.operation, decision.allowed) {
        (None, _) => {}
        (Some(op), true) => crate::output::outln!(
            "result: ALLOWED to {op}, granted by {}",
            decision.granting_policies.join(", ")
        ),
        (Some(op), false) => crate::output::outln!(
            "result: DENIED to {op}: {}",
            decision
                .denial
                .as_ref()
                .map_or(String::new(), ToString::to_string)
        ),
    }
    Ok(Outcome::Success)
}

fn who_can(args: &WhoCanArgs) -> anyhow::Result<Outcome> {
    let sudo = args.operation == "sudo";
    let operation = if sudo {
        None
    } else {
        Some(
            args.operation
                .parse::<Operation>()
                .map_err(anyhow::Error::msg)?,
        )
    };
    let identities = Principals::load_dir(&args.repo.join("identities"))?;
    let policies = PolicySet::load_dir(&args.repo.join("policies"))?;
    let request = Request {
        path: args.path.clone(),
        operation,
        ..Request::default()
    };
    let mut rows = Vec::new();
    for identity in identities.identities() {
        let decision = identities.acl_of(identity, &policies)?.check(&request);
        let permitted = if sudo {
            decision.root_privs
        } else {
            decision.allowed
        };
        if permitted {
            rows.push((identity, decision));
        }
    }
    match args.output {
        OutputFormat::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|(identity, decision)| {
                    serde_json::json!({
                        "name": identity.name,
                        "kind": identity.kind,
                        "granting_policies": decision.granting_policies,
                        "matched": decision.matched,
                    })
                })
                .collect();
            crate::output::outln!("{}", serde_json::to_string(&list)?);
        }
        OutputFormat::Text => {
            for (identity, decision) in &rows {
                let via = if decision.granting_policies.is_empty() {
                    String::new()
                } else {
                    format!(" (via {})", decision.granting_policies.join(", "))
                };
                crate::output::outln!("{}\t{}{via}", identity.name, identity.kind.as_str());
            }
            if rows.is_empty() {
                eprintln!("no identity may {} {}", args.operation, args.path);
            }
        }
    }
    Ok(Outcome::Success)
}
