//! `sealops check`: the pull-request check. Everything it decides comes from
//! `sealops_core::authz`, which the controller runs too; this module only renders.

use std::fmt::Write as _;

use anyhow::Context;
use sealops_core::authz::{self, Bootstrap, FileProblem, Plan, RangeReport};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::args::check::{CheckArgs, CheckFormat};
use crate::context;
use crate::exit::Outcome;

/// Everything the check found.
struct Findings {
    base: String,
    head: String,
    report: RangeReport,
    structure: Vec<FileProblem>,
    leaks: Vec<FileProblem>,
    plan: Plan,
}

impl Findings {
    fn violations(&self) -> usize {
        self.report.violations().count() + self.structure.len() + self.leaks.len()
    }
}

pub fn run(global: &GlobalArgs, args: CheckArgs) -> anyhow::Result<Outcome> {
    let repo = context::repository(global)?;
    let git = git2::Repository::discover(repo.root())
        .with_context(|| format!("{} is not inside a git repository", repo.root().display()))?;
    let resolve = |name: &str| -> anyhow::Result<git2::Commit<'_>> {
        git.revparse_single(name)
            .and_then(|o| o.peel_to_commit())
            .with_context(|| format!("cannot resolve {name:?} to a commit"))
    };
    let base = resolve(&args.base)?;
    let head = resolve(&args.head)?;
    let signers =
        super::approve::trusted_signers(&git, &base, &args.base, args.trusted_signers.as_ref())?;
    let bootstrap = Bootstrap {
        signers,
        pinned_principals: (!args.pin.is_empty()).then(|| args.pin.iter().cloned().collect()),
        // Key validity, approval age and future dates are judged at this machine's clock.
        clock: authz::Clock::system(),
    };
    let (base_tree, head_tree) = (base.tree()?, head.tree()?);
    let findings = Findings {
        base: args.base.clone(),
        head: args.head.clone(),
        report: authz::authorise_range(&git, base.id(), head.id(), &bootstrap)?,
        structure: authz::check_structure(&git, &base_tree, &head_tree)?,
        leaks: authz::scan_range(&git, base.id(), head.id())?,
        plan: authz::plan(&git, &base_tree, &head_tree)?,
    };
    let rendered = match args.output {
        CheckFormat::Text => text(&findings),
        CheckFormat::Json => serde_json::to_string_pretty(&to_json(&findings))? + "\n",
        CheckFormat::Markdown => markdown(&findings),
        CheckFormat::Sarif => serde_json::to_string_pretty(&sarif(&findings))? + "\n",
    };
    crate::output::stdout(rendered.as_bytes())?;
    Ok(if findings.violations() == 0 {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

fn plan_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &plan.secrets {
        let change = serde_json::to_value(s.change).expect("serialisable");
        lines.push(format!(
            "secret {} {} (keys: {})",
            s.path,
            change.as_str().unwrap_or_default(),
            if s.keys.is_empty() {
                "none".to_owned()
            } else {
                s.keys.join(", ")
            }
        ));
    }
    for t in &plan.targets {
        lines.push(format!("target {t} changes"));
    }
    for i in &plan.identities {
        lines.push(format!("identity {i} is affected"));
    }
    for d in &plan.decisions {
        lines.push(d.to_string());
    }
    for p in &plan.problems {
        lines.push(format!("note: {p}"));
    }
    lines
}

fn problem_lines(f: &Findings) -> Vec<String> {
    let mut lines: Vec<String> = f.report.violations().map(ToString::to_string).collect();
    for p in &f.structure {
        lines.push(format!("{}: {}", p.path, p.problem));
    }
    for p in &f.leaks {
        let commit = p.commit.as_deref().map_or("", |c| &c[..12]);
        lines.push(format!("commit {commit}: {}: {}", p.path, p.problem));
    }
    lines
}

fn text(f: &Findings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sealops check {}..{}: {} commit(s)",
        f.base,
        f.head,
        f.report.commits.len()
    );
    let _ = writeln!(out, "\nPlan:");
    let plan = plan_lines(&f.plan);
    if plan.is_empty() {
        let _ = writeln!(out, "  (no governed changes)");
    }
    for line in plan {
        let _ = writeln!(out, "  {line}");
    }
    let problems = problem_lines(f);
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "\nOK: every commit is authorised, no plaintext in any commit."
        );
    } else {
        let _ = writeln!(out, "\nViolations ({}):", problems.len());
        for line in problems {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn markdown(f: &Findings) -> String {
    let mut out = String::new();
    let problems = problem_lines(f);
    let verdict = if problems.is_empty() {
        "✅ authorised"
    } else {
        "❌ not authorised"
    };
    let _ = writeln!(out, "## sealops check: {verdict}\n");
    let _ = writeln!(
        out,
        "Range `{}..{}`, {} commit(s).\n",
        f.base,
        f.head,
        f.report.commits.len()
    );
    let _ = writeln!(out, "### Plan\n");
    let plan = plan_lines(&f.plan);
    if plan.is_empty() {
        let _ = writeln!(out, "_No governed changes._");
    }
    for line in plan {
        let _ = writeln!(out, "- {}", line.replace('`', "'"));
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "\n### Violations\n");
        for line in problems {
            let _ = writeln!(out, "- {}", line.replace('`', "'"));
        }
    }
    out
}

fn to_json(f: &Findings) -> serde_json::Value {
    let commits: Vec<_> = f
        .report
        .commits
        .iter()
        .map(|c| {
            json!({
                "commit": c.commit.to_string(),
                "summary": c.summary,
                "signer": c.signer.as_ref().map(|s| json!({"principals": s.principals, "fingerprint": s.fingerprint})),
                "changes": c.changes.iter().map(|ch| json!({"path": ch.path, "change": ch.kind, "keys": ch.keys})).collect::<Vec<_>>(),
                "violations": c.violations.iter().map(|v| json!({"path": v.path, "message": v.to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "base": f.base,
        "head": f.head,
        "authorised": f.violations() == 0,
        "commits": commits,
        "structure": f.structure,
        "leaks": f.leaks,
        "plan": f.plan,
    })
}

/// SARIF 2.1.0 for code-scanning UIs: one result per violation, located at its file.
fn sarif(f: &Findings) -> serde_json::Value {
    let result = |rule: &str, path: Option<&str>, message: String| {
        let mut r = json!({
            "ruleId": rule,
            "level": "error",
            "message": {"text": message},
        });
        if let Some(path) = path {
            r["locations"] = json!([{"physicalLocation": {"artifactLocation": {"uri": path}}}]);
        }
        r
    };
    let mut results: Vec<_> = f
        .report
        .violations()
        .map(|v| result("sealops/unauthorised", v.path.as_deref(), v.to_string()))
        .collect();
    for p in &f.structure {
        results.push(result(
            "sealops/structure",
            Some(&p.path),
            format!("{}: {}", p.path, p.problem),
        ));
    }
    for p in &f.leaks {
        let commit = p.commit.as_deref().unwrap_or_default();
        results.push(result(
            "sealops/leak",
            Some(&p.path),
            format!("commit {commit}: {}: {}", p.path, p.problem),
        ));
    }
    let rule = |id: &str, text: &str| json!({"id": id, "shortDescription": {"text": text}});
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "sealops",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": [
                    rule("sealops/unauthorised", "A commit lacks a valid signature, a capability or approvals"),
                    rule("sealops/structure", "A changed file does not match its schema"),
                    rule("sealops/leak", "A commit in the range holds plaintext or a private key"),
                ],
            }},
            "results": results,
        }],
    })
}
