//! Planning a commit: every check, decryption and rendering done before a byte is written.
//!
//! [`plan`] runs these stages in order; the first stage with a problem refuses the commit as a
//! whole, with every problem it found:
//! 1. [`read_commit`]: the commit's tree, its authority (policies, identities), configuration,
//!    and which paths changed since the applied commit.
//! 2. [`select_targets`]: `targets/*.yaml`, parsed once per blob, kept when their node
//!    selector matches this node.
//! 3. [`decide_rework`]: which selected targets to render: every one on a full reconcile, else
//!    those the change or new credentials touch; the others keep their applied outputs.
//! 4. [`OutputChecks`]: per output, the destination under the allowed roots, one writer per
//!    file, hooks on the local allow-list, the identity's `read` policy, the file's owner.
//! 5. [`read_backends`] and [`check_roles`]: the database backends and the roles outputs name.
//! 6. [`decrypt_secrets`]: each manifest needed, once, in parallel.
//! 7. [`connect_backends`] and [`obtain_credentials`]: the one stage that acts on databases
//!    (issuing a lease or rotating a password where none is usable); asynchronous, run to
//!    completion before rendering.
//! 8. [`render`]: each output's bytes, with the fingerprints the audit records.
//!
//! Then the outputs no target writes any more are listed for removal. [`crate::materialise::apply`]
//! writes the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use git2::{Oid, Tree};
use rayon::prelude::*;
use sealops_core::authz::Authority;
use sealops_core::backend::Backend;
use sealops_core::backend::{CredentialKind, Credentials};
use sealops_core::config::Config;
use sealops_core::gittree::Trees;
use sealops_core::manifest::{Manifest, SecretPath};
use sealops_core::policy::{Operation, Request};
use sealops_core::repo::CONFIG_FILE;
use sealops_core::seal::RecipientNames;
use sealops_core::secret::SecretValue;
use sealops_core::target::{Output, Source, Target};
use zeroize::Zeroizing;

use crate::context::{Owners, ReconcileContext};
use crate::creds::{Connected, Creds, Values};
use crate::output::{self, Ownership};
use crate::refusal::{Reason, Refusal};
use crate::state::AppliedState;

/// One output to write.
pub struct PlannedWrite {
    pub target: String,
    /// The target's identity, the secret it reads and the keys the output holds (for the audit
    /// record, with each value's fingerprint: never the value).
    pub identity: String,
    pub secret: String,
    pub keys: Vec<String>,
    pub fingerprints: BTreeMap<String, String>,
    pub destination: PathBuf,
    pub(crate) content: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub ownership: Ownership,
    pub hooks: Vec<String>,
}

impl std::fmt::Debug for PlannedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedWrite")
            .field("target", &self.target)
            .field("destination", &self.destination)
            .field("content", &"[redacted]")
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Everything a commit asks of this node, checked and rendered.
#[derive(Debug)]
pub struct Plan {
    pub commit: Oid,
    pub commit_time: i64,
    pub writes: Vec<PlannedWrite>,
    /// Outputs no target writes any more: (target, destination).
    pub removals: Vec<(String, PathBuf)>,
    /// Destinations of the targets planned now (every selected target on a full reconcile);
    /// the others keep the destinations the applied state records.
    pub outputs: BTreeMap<String, Vec<PathBuf>>,
    /// Targets of the applied state that are gone or no longer select this node.
    pub dropped: Vec<String>,
    /// Targets present in the commit whose selector does not match this node.
    pub not_selected: Vec<String>,
    /// Targets whose outputs were rendered (the rest were untouched by the change).
    pub rendered_targets: usize,
    /// The audit branch the commit's `.sealops/config.yaml` names.
    pub audit_branch: String,
    /// The leases each planned target's outputs hold (for retiring the ones they replaced).
    pub leases: BTreeMap<String, BTreeSet<String>>,
    /// Targets and static roles rendered because their credentials changed (with the
    /// generation of that change).
    pub credentials_rendered: BTreeMap<String, u64>,
}

/// Plans `commit`. With `previous` (the applied state and its commit) and `full == false`, only
/// targets the change touches are rendered; a change to policies, identities or the repository
/// configuration renders every target.
pub fn plan(
    context: &ReconcileContext,
    trees: &Trees<'_>,
    commit: Oid,
    previous: Option<&AppliedState>,
    full: bool,
) -> Result<Plan, Vec<Refusal>> {
    let view = read_commit(trees, commit, previous, full)?;
    let (selection, mut refusals) = select_targets(context, trees, &view);
    // Credentials that changed since they were rendered (new leases, rotated passwords).
    let dirty = context
        .creds
        .as_ref()
        .map(|c| c.dirty())
        .unwrap_or_default();
    let rework = decide_rework(&view, &selection, previous, &dirty);
    let checked = OutputChecks::run(context, &view, &selection, &rework, previous);
    refusals.extend(checked.refusals);
    stop_if_any(refusals)?;
    let pending = checked.pending;
    let backends = read_backends(trees, &view, &pending)?;
    stop_if_any(check_roles(commit, &pending, &backends))?;
    let secrets = decrypt_secrets(context, trees, &view, &pending, &backends)?;
    let connected = connect_backends(context, commit, backends, &secrets)?;
    let mut obtained = if pending.iter().any(|p| p.credentials.is_some()) {
        let creds = context.creds.as_ref().expect("connected with the backends");
        match tokio::runtime::Handle::try_current() {
            // The reconcile runs on a blocking thread of the runtime: it waits here for the
            // databases, and renders only once every credential is known.
            Ok(runtime) => runtime.block_on(obtain_credentials(
                creds, commit, &pending, &connected, &dirty,
            ))?,
            Err(_) => return Err(needs_runtime(commit, &pending)),
        }
    } else {
        ObtainedCredentials::default()
    };
    let (writes, rendered_targets) = render(context, commit, pending, &secrets, &obtained)?;
    let removals = removals(previous, &rework, &checked.claimed);
    obtained
        .rendered
        .extend(unanswered_marks(&dirty, &selection));
    Ok(Plan {
        commit,
        commit_time: view.commit_time,
        writes,
        removals,
        outputs: checked.outputs,
        dropped: rework.dropped,
        not_selected: selection.not_selected,
        rendered_targets,
        audit_branch: view.audit_branch,
        leases: obtained.leases,
        credentials_rendered: obtained.rendered,
    })
}

fn stop_if_any(refusals: Vec<Refusal>) -> Result<(), Vec<Refusal>> {
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals)
    }
}

fn refuse(commit: Oid, path: impl Into<String>, reason: Reason, message: String) -> Refusal {
    Refusal {
        commit: Some(commit.to_string()),
        path: Some(path.into()),
        reason,
        message,
    }
}

fn git(commit: Oid, what: &str, e: git2::Error) -> Vec<Refusal> {
    vec![Refusal {
        commit: Some(commit.to_string()),
        path: None,
        reason: Reason::Repository,
        message: format!("cannot read {what}: {e}"),
    }]
}

fn blob_text(trees: &Trees<'_>, tree: &Tree<'_>, path: &str) -> Option<Result<String, String>> {
    match trees.blob(tree, path) {
        Ok(None) => None,
        Ok(Some(bytes)) => {
            Some(String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned()))
        }
        Err(e) => Some(Err(e.to_string())),
    }
}

/// The commit as the plan sees it.
struct CommitView<'r> {
    commit: Oid,
    commit_time: i64,
    tree: Tree<'r>,
    authority: Authority,
    names: RecipientNames,
    audit_branch: String,
    /// Paths changed since the applied commit; `None` when every target is rendered.
    changed: Option<HashSet<String>>,
    /// Policies, identities or the repository configuration changed (or `changed` is `None`).
    authority_changed: bool,
}

/// Stage 1: the commit's tree, authority and configuration, and what changed since `previous`.
fn read_commit<'r>(
    trees: &Trees<'r>,
    commit: Oid,
    previous: Option<&AppliedState>,
    full: bool,
) -> Result<CommitView<'r>, Vec<Refusal>> {
    let repo = trees.repo();
    let found = repo
        .find_commit(commit)
        .map_err(|e| git(commit, "the commit", e))?;
    let commit_time = found.time().seconds();
    let tree = found.tree().map_err(|e| git(commit, "the tree", e))?;
    let authority = Authority::from_tree(repo, &tree).map_err(|e| {
        vec![refuse(
            commit,
            e.file.clone(),
            Reason::Schema,
            format!("{e}"),
        )]
    })?;
    let config = match blob_text(trees, &tree, CONFIG_FILE) {
        Some(Ok(text)) => Config::parse(&text, CONFIG_FILE).ok(),
        _ => None,
    };
    let names = config
        .as_ref()
        .map(|c| RecipientNames::new(&c.recipients()))
        .unwrap_or_default();
    let audit_branch = config.map_or_else(
        || sealops_core::config::Audit::default().branch,
        |c| c.audit.branch,
    );
    let previous_tree = previous.and_then(|p| {
        Oid::from_str(&p.commit)
            .ok()
            .and_then(|id| repo.find_commit(id).ok())
            .and_then(|c| c.tree().ok())
    });
    let changed = match (&previous_tree, full) {
        (Some(old), false) => {
            let changes = trees
                .changes(Some(old), &tree)
                .map_err(|e| git(commit, "the change", e))?;
            Some(changes.iter().map(|c| c.path.clone()).collect())
        }
        _ => None,
    };
    let authority_changed = changed.as_ref().is_none_or(|paths: &HashSet<String>| {
        paths.iter().any(|p| {
            p.starts_with("policies/") || p.starts_with("identities/") || p.starts_with(".sealops/")
        })
    });
    Ok(CommitView {
        commit,
        commit_time,
        tree,
        authority,
        names,
        audit_branch,
        changed,
        authority_changed,
    })
}

/// The targets of a commit, split by whether they select this node.
struct Selection {
    /// By name: (repository path, target).
    selected: BTreeMap<String, (String, Arc<Target>)>,
    not_selected: Vec<String>,
}

/// Stage 2: parses `targets/*.yaml` (a blob parsed before is not parsed again) and keeps those
/// that select this node. Returns the files that do not parse beside the selection.
fn select_targets(
    context: &ReconcileContext,
    trees: &Trees<'_>,
    view: &CommitView<'_>,
) -> (Selection, Vec<Refusal>) {
    let mut refusals = Vec::new();
    let mut selection = Selection {
        selected: BTreeMap::new(),
        not_selected: Vec::new(),
    };
    let mut parsed = context
        .parsed_targets
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut seen = HashSet::new();
    for yaml in trees.yaml_files(&view.tree, "targets") {
        let (name, file, blob) = (yaml.stem, yaml.path, yaml.id);
        seen.insert(blob);
        let target = match parsed.get(&blob) {
            Some(target) => target.clone(),
            None => match parse_target(trees, view, &file) {
                Some(Ok(target)) => {
                    let target = Arc::new(target);
                    parsed.insert(blob, target.clone());
                    target
                }
                Some(Err(refusal)) => {
                    refusals.push(refusal);
                    continue;
                }
                None => continue,
            },
        };
        if target.selects(&context.node_labels) {
            selection.selected.insert(name, (file, target));
        } else {
            selection.not_selected.push(name);
        }
    }
    parsed.retain(|blob, _| seen.contains(blob));
    (selection, refusals)
}

fn parse_target(
    trees: &Trees<'_>,
    view: &CommitView<'_>,
    file: &str,
) -> Option<Result<Target, Refusal>> {
    let text = match blob_text(trees, &view.tree, file)? {
        Ok(text) => text,
        Err(problem) => {
            return Some(Err(refuse(
                view.commit,
                file,
                Reason::Schema,
                format!("{file}: {problem}"),
            )));
        }
    };
    Some(
        Target::parse(&text, file)
            .map_err(|e| refuse(view.commit, file, Reason::Schema, e.to_string())),
    )
}

/// Which targets a plan renders.
struct Rework {
    /// Selected targets rendered now; the others keep what the applied state says, untouched.
    reworked: HashSet<String>,
    /// Targets of the applied state that are gone or no longer select this node.
    dropped: Vec<String>,
}

/// Stage 3: every selected target on a full reconcile; otherwise those whose file, secrets,
/// credentials or backends changed, or that the applied state does not hold yet.
fn decide_rework(
    view: &CommitView<'_>,
    selection: &Selection,
    previous: Option<&AppliedState>,
    dirty: &BTreeMap<String, u64>,
) -> Rework {
    // Secrets whose manifest changed, by secret path (no allocation per output looked up).
    let changed_secrets: HashSet<&str> = view
        .changed
        .iter()
        .flatten()
        .filter_map(|p| p.strip_prefix("secrets/")?.strip_suffix(".yaml"))
        .collect();
    let needs_work = |name: &str, file: &str, target: &Target| -> bool {
        let Some(paths) = &view.changed else {
            return true;
        };
        view.authority_changed
            || paths.contains(file)
            || previous.is_none_or(|p| !p.outputs.contains_key(name))
            || dirty.contains_key(name)
            || target.outputs.iter().any(|o| {
                changed_secrets.contains(o.secret.as_str())
                    || o.credentials().is_some_and(|c| {
                        dirty.contains_key(&c.path())
                            || paths.contains(&format!("backends/{}.yaml", c.backend))
                    })
            })
    };
    Rework {
        reworked: selection
            .selected
            .iter()
            .filter(|(name, (file, target))| needs_work(name, file, target))
            .map(|(name, _)| name.clone())
            .collect(),
        dropped: previous
            .map(|p| {
                p.outputs
                    .keys()
                    .filter(|name| !selection.selected.contains_key(*name))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// One output that passed every check, waiting for its values.
struct PendingOutput {
    target: String,
    definition: Arc<Target>,
    file: String,
    index: usize,
    /// The secret path, or the credentials' path.
    source: String,
    credentials: Option<Credentials>,
    destination: PathBuf,
    mode: u32,
    ownership: Ownership,
}

impl PendingOutput {
    fn output(&self) -> &Output {
        &self.definition.outputs[self.index]
    }

    /// How problems name this output: `targets/<name>.yaml output <n>`.
    fn at(&self) -> String {
        format!("{} output {}", self.file, self.index + 1)
    }
}

/// Stage 4: the checks that need no decryption, for every output of the reworked targets.
struct OutputChecks<'a> {
    context: &'a ReconcileContext,
    view: &'a CommitView<'a>,
    rework: &'a Rework,
    pending: Vec<PendingOutput>,
    /// Destinations of the targets checked, by target.
    outputs: BTreeMap<String, Vec<PathBuf>>,
    /// Destinations resolved now, with the output that claimed each.
    claimed: HashMap<PathBuf, String>,
    refusals: Vec<Refusal>,
}

/// What the output checks found.
struct CheckedOutputs {
    pending: Vec<PendingOutput>,
    outputs: BTreeMap<String, Vec<PathBuf>>,
    claimed: HashMap<PathBuf, String>,
    refusals: Vec<Refusal>,
}

impl<'a> OutputChecks<'a> {
    fn run(
        context: &'a ReconcileContext,
        view: &'a CommitView<'a>,
        selection: &Selection,
        rework: &'a Rework,
        previous: Option<&AppliedState>,
    ) -> CheckedOutputs {
        let mut checks = OutputChecks {
            context,
            view,
            rework,
            pending: Vec::new(),
            outputs: BTreeMap::new(),
            claimed: HashMap::new(),
            refusals: Vec::new(),
        };
        // Each file has one writer. Outputs of targets nothing touched were checked when they
        // were applied; the context keeps an index of them (kept in step with the applied state,
        // so this costs nothing per unchanged output), and destinations resolved now are
        // checked against it and against each other.
        let mut owners = context.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.follow(previous);
        for (name, (file, target)) in &selection.selected {
            if !rework.reworked.contains(name) {
                continue;
            }
            let destinations = (0..target.outputs.len())
                .filter_map(|index| checks.output(&owners, name, file, target, index))
                .collect();
            checks.outputs.insert(name.clone(), destinations);
        }
        CheckedOutputs {
            pending: checks.pending,
            outputs: checks.outputs,
            claimed: checks.claimed,
            refusals: checks.refusals,
        }
    }

    fn refuse(&mut self, file: &str, reason: Reason, message: String) {
        self.refusals
            .push(refuse(self.view.commit, file, reason, message));
    }

    /// Checks output `index` of `target`; its destination, when it resolves.
    fn output(
        &mut self,
        owners: &Owners,
        name: &str,
        file: &str,
        target: &Arc<Target>,
        index: usize,
    ) -> Option<PathBuf> {
        let out = &target.outputs[index];
        let at = format!("{file} output {}", index + 1);
        let destination = match self.context.roots.resolve(&out.path) {
            Ok(destination) => destination,
            Err(e) => {
                self.refuse(file, Reason::Output, format!("{at}: {e}"));
                return None;
            }
        };
        let other = owners
            .by_path
            .get(&destination)
            .filter(|owner| {
                !self.rework.reworked.contains(owner.as_str())
                    && !self.rework.dropped.contains(owner)
            })
            .map(|owner| format!("targets/{owner}.yaml"))
            .or_else(|| self.claimed.insert(destination.clone(), at.clone()));
        if let Some(other) = other {
            self.refuse(
                file,
                Reason::Output,
                format!(
                    "{at}: {} is also written by {other}; each file has one writer",
                    destination.display()
                ),
            );
        }
        for hook in &out.on_change {
            if !self.context.hooks.contains_key(hook) {
                self.refuse(
                    file,
                    Reason::Hook,
                    format!(
                        "{at}: hook {hook:?} is not on this controller's allow-list (hooks: in the local configuration); the repository cannot add commands"
                    ),
                );
            }
        }
        let (source, credentials) = match out.source() {
            Ok(Source::Secret(secret)) => (secret.to_string(), None),
            Ok(Source::Credentials(creds)) => (creds.path(), Some(creds)),
            Err(problem) => {
                self.refuse(file, Reason::Schema, format!("{at}: {problem}"));
                return Some(destination);
            }
        };
        let read = match &credentials {
            Some(creds) => creds.path(),
            None => format!("secrets/{source}"),
        };
        if let Some(problem) = read_refused(&self.view.authority, &target.identity, read) {
            self.refuse(file, Reason::Policy, format!("{at}: {problem}"));
        }
        let ownership = match owner_of(out) {
            Ok(ownership) => ownership,
            Err(problem) => {
                self.refuse(file, Reason::Output, format!("{at}: {problem}"));
                return Some(destination);
            }
        };
        self.pending.push(PendingOutput {
            target: name.to_owned(),
            definition: target.clone(),
            file: file.to_owned(),
            index,
            source,
            credentials,
            destination: destination.clone(),
            mode: out.mode_bits().unwrap_or(0o600),
            ownership,
        });
        Some(destination)
    }
}

/// Why `identity` may not read `path`, if it may not.
fn read_refused(authority: &Authority, identity: &str, path: String) -> Option<String> {
    let request = Request {
        path,
        operation: Some(Operation::Read),
        ..Request::default()
    };
    match authority.check_service(identity, &request) {
        None => Some(format!(
            "identity {identity:?} is not a service identity in identities/; add identities/{identity}.yaml with kind: service"
        )),
        Some(decision) if !decision.allowed => Some(format!(
            "identity {identity:?} may not read {} (capabilities: {}); grant read in one of its policies",
            request.path,
            decision.capabilities.join(", ")
        )),
        Some(_) => None,
    }
}

fn owner_of(out: &Output) -> Result<Ownership, String> {
    Ok(Ownership {
        uid: out.owner.as_deref().map(output::uid_of).transpose()?,
        gid: out.group.as_deref().map(output::gid_of).transpose()?,
    })
}

/// The backends of a commit, by name: (repository path, backend).
type Backends = BTreeMap<String, (String, Backend)>;

/// Stage 5: `backends/*.yaml`: all of them when an output reads credentials, the backends
/// changed, or on a full reconcile (the lease task needs every backend that may hold a lease).
fn read_backends(
    trees: &Trees<'_>,
    view: &CommitView<'_>,
    pending: &[PendingOutput],
) -> Result<Backends, Vec<Refusal>> {
    let wanted = pending.iter().any(|p| p.credentials.is_some())
        || view
            .changed
            .as_ref()
            .is_none_or(|paths| paths.iter().any(|p| p.starts_with("backends/")));
    if !wanted {
        return Ok(BTreeMap::new());
    }
    let commit = view.commit;
    let mut found = BTreeMap::new();
    let mut refusals = Vec::new();
    for yaml in trees.yaml_files(&view.tree, "backends") {
        let (stem, file) = (yaml.stem.as_str(), yaml.path);
        let text = match blob_text(trees, &view.tree, &file) {
            Some(Ok(text)) => text,
            Some(Err(problem)) => {
                refusals.push(refuse(
                    commit,
                    &file,
                    Reason::Schema,
                    format!("{file}: {problem}"),
                ));
                continue;
            }
            None => continue,
        };
        match Backend::parse(&text, &file) {
            Ok(backend) if backend.name != stem => refusals.push(refuse(
                commit,
                &file,
                Reason::Schema,
                format!(
                    "{file}: name {:?} differs from the file name; rename one so they match",
                    backend.name
                ),
            )),
            Ok(backend) => {
                found.insert(backend.name.clone(), (file, backend));
            }
            Err(e) => refusals.push(refuse(commit, &file, Reason::Schema, e.to_string())),
        }
    }
    stop_if_any(refusals)?;
    Ok(found)
}

/// Stage 5, continued: each output's backend exists and defines the role it names.
fn check_roles(commit: Oid, pending: &[PendingOutput], backends: &Backends) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for p in pending {
        let Some(creds) = &p.credentials else {
            continue;
        };
        let kind = match creds.kind {
            CredentialKind::Dynamic => "dynamic",
            CredentialKind::Static => "static",
        };
        let problem = match backends.get(&creds.backend) {
            None => Some(format!(
                "{}: {} names backend {:?}, but backends/{}.yaml does not exist",
                p.at(),
                creds.path(),
                creds.backend,
                creds.backend
            )),
            Some((_, backend)) => {
                let found = match creds.kind {
                    CredentialKind::Dynamic => backend.dynamic_role(&creds.role).is_some(),
                    CredentialKind::Static => backend.static_role(&creds.role).is_some(),
                };
                (!found).then(|| {
                    format!(
                        "{}: backends/{}.yaml has no {kind} role {:?}; define it under roles",
                        p.at(),
                        creds.backend,
                        creds.role
                    )
                })
            }
        };
        if let Some(problem) = problem {
            refusals.push(refuse(commit, &p.file, Reason::Schema, problem));
        }
    }
    refusals
}

/// Stage 6: opens each manifest the outputs and the backends' admin passwords need, once, in
/// parallel (git objects are read on this thread). Values by secret path.
fn decrypt_secrets(
    context: &ReconcileContext,
    trees: &Trees<'_>,
    view: &CommitView<'_>,
    pending: &[PendingOutput],
    backends: &Backends,
) -> Result<BTreeMap<String, Values>, Vec<Refusal>> {
    let commit = view.commit;
    let secrets: BTreeSet<&str> = pending
        .iter()
        .filter(|p| p.credentials.is_none())
        .map(|p| p.source.as_str())
        .chain(
            backends
                .values()
                .map(|(_, b)| b.connection.password.secret.as_str()),
        )
        .collect();
    let mut refusals = Vec::new();
    let mut texts = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let file = format!("secrets/{secret}.yaml");
        match blob_text(trees, &view.tree, &file) {
            Some(Ok(text)) => texts.push((secret, file, text)),
            Some(Err(problem)) => refusals.push(refuse(
                commit,
                &file,
                Reason::Schema,
                format!("{file}: {problem}"),
            )),
            None => refusals.push(refuse(
                commit,
                &file,
                Reason::Schema,
                format!("{file} does not exist, but a target materialises secret {secret}"),
            )),
        }
    }
    let names = &view.names;
    let opened: Vec<(&str, Result<Values, Refusal>)> = texts
        .into_par_iter()
        .map(|(secret, file, text)| {
            let values = open_manifest(context, names, commit, secret, &file, &text);
            (secret, values)
        })
        .collect();
    let mut values = BTreeMap::new();
    for (secret, result) in opened {
        match result {
            Ok(v) => {
                values.insert(secret.to_owned(), v);
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    stop_if_any(refusals)?;
    Ok(values)
}

/// Every value of one manifest (sealed ones opened, plain ones as they are).
fn open_manifest(
    context: &ReconcileContext,
    names: &RecipientNames,
    commit: Oid,
    secret: &str,
    file: &str,
    text: &str,
) -> Result<Values, Refusal> {
    let manifest = Manifest::parse(text, file)
        .map_err(|e| refuse(commit, file, Reason::Schema, e.to_string()))?;
    let location = SecretPath::parse(secret).expect("validated when the target was parsed");
    if manifest.path != location {
        return Err(refuse(
            commit,
            file,
            Reason::Schema,
            format!(
                "{file} declares path {} but lives at {location}; a manifest copied to another path does not open there",
                manifest.path
            ),
        ));
    }
    if !manifest.scope.permits(&location) {
        return Err(refuse(
            commit,
            file,
            Reason::Schema,
            format!(
                "{file}: scope {} does not allow path {location}",
                manifest.scope
            ),
        ));
    }
    let mut values = manifest
        .reveal_cached(file, &context.identities, names, &context.cache)
        .map_err(|e| refuse(commit, file, Reason::Decryption, e.to_string()))?;
    for (key, value) in &manifest.plain {
        values.insert(key.clone(), SecretValue::from(value.clone()));
    }
    Ok(values)
}

/// Stage 7: hands every backend, with its admin password, to the credentials (which keep the
/// connection for the lease task).
fn connect_backends(
    context: &ReconcileContext,
    commit: Oid,
    backends: Backends,
    secrets: &BTreeMap<String, Values>,
) -> Result<BTreeMap<String, Arc<Connected>>, Vec<Refusal>> {
    let mut connected = BTreeMap::new();
    if backends.is_empty() {
        return Ok(connected);
    }
    let Some(creds) = &context.creds else {
        return Err(vec![refuse(
            commit,
            "backends/",
            Reason::Database,
            context
                .creds_problem
                .clone()
                .unwrap_or_else(|| "database credentials are unavailable".into()),
        )]);
    };
    let mut refusals = Vec::new();
    for (name, (file, backend)) in backends {
        let admin_ref = &backend.connection.password;
        let Some(admin) = secrets
            .get(&admin_ref.secret)
            .and_then(|v| v.get(&admin_ref.key))
            .cloned()
        else {
            refusals.push(refuse(
                commit,
                &file,
                Reason::Schema,
                format!(
                    "{file}: connection.password names key {:?} of secret {}, which has no such key",
                    admin_ref.key, admin_ref.secret
                ),
            ));
            continue;
        };
        connected.insert(name, creds.connect(backend, admin));
    }
    stop_if_any(refusals)?;
    creds.loaded();
    Ok(connected)
}

/// The credentials a plan's outputs hold.
#[derive(Default)]
struct ObtainedCredentials {
    /// By (target, credentials path): outputs of one target share them.
    values: BTreeMap<(String, String), Values>,
    /// The leases each target's outputs hold.
    leases: BTreeMap<String, BTreeSet<String>>,
    /// Marks of changed credentials these values answer (with their generation).
    rendered: BTreeMap<String, u64>,
}

/// Stage 7, continued: each target's credentials, issuing a lease or rotating a password
/// where none is usable yet.
async fn obtain_credentials(
    creds: &Creds,
    commit: Oid,
    pending: &[PendingOutput],
    connected: &BTreeMap<String, Arc<Connected>>,
    dirty: &BTreeMap<String, u64>,
) -> Result<ObtainedCredentials, Vec<Refusal>> {
    let mut obtained = ObtainedCredentials::default();
    let mut refusals = Vec::new();
    for p in pending {
        let Some(credentials) = &p.credentials else {
            continue;
        };
        let key = (p.target.clone(), p.source.clone());
        if obtained.values.contains_key(&key) {
            continue;
        }
        let backend = &connected[&credentials.backend];
        match creds.obtain(&p.target, credentials, backend).await {
            Ok((values, lease)) => {
                obtained.values.insert(key, values);
                obtained
                    .leases
                    .entry(p.target.clone())
                    .or_default()
                    .extend(lease);
                for mark in [&p.target, &p.source] {
                    if let Some(generation) = dirty.get(mark) {
                        obtained.rendered.insert(mark.clone(), *generation);
                    }
                }
            }
            Err(problem) => refusals.push(refuse(
                commit,
                &p.file,
                Reason::Database,
                format!("{}: {problem}", p.at()),
            )),
        }
    }
    stop_if_any(refusals)?;
    Ok(obtained)
}

/// Credentials are asked of databases on the controller's runtime; without one, every output
/// that reads them is refused.
fn needs_runtime(commit: Oid, pending: &[PendingOutput]) -> Vec<Refusal> {
    pending
        .iter()
        .filter(|p| p.credentials.is_some())
        .map(|p| {
            refuse(
                commit,
                &p.file,
                Reason::Database,
                format!(
                    "{}: database credentials need the controller's runtime",
                    p.at()
                ),
            )
        })
        .collect()
}

/// Stage 8: each output's bytes, and the number of targets rendered.
fn render(
    context: &ReconcileContext,
    commit: Oid,
    pending: Vec<PendingOutput>,
    secrets: &BTreeMap<String, Values>,
    credentials: &ObtainedCredentials,
) -> Result<(Vec<PlannedWrite>, usize), Vec<Refusal>> {
    let mut writes = Vec::with_capacity(pending.len());
    let mut rendered = BTreeSet::new();
    let mut refusals = Vec::new();
    let fingerprinter = context.audit.fingerprinter();
    for p in pending {
        let values = match p.credentials {
            Some(_) => &credentials.values[&(p.target.clone(), p.source.clone())],
            None => &secrets[&p.source],
        };
        let out = p.output();
        let content = match sealops_core::render::output(out, values) {
            Ok(content) => content,
            Err(e) => {
                refusals.push(refuse(
                    commit,
                    &p.file,
                    Reason::Schema,
                    format!("{} (secret {}): {e}", p.at(), p.source),
                ));
                continue;
            }
        };
        let keys: Vec<String> = match &out.key {
            Some(key) => vec![key.clone()],
            None => values.keys().cloned().collect(),
        };
        let fingerprints = match &fingerprinter {
            Some(f) => keys
                .iter()
                .filter_map(|k| {
                    let value = values.get(k)?;
                    Some((k.clone(), f.fingerprint(&p.source, k, value.expose())))
                })
                .collect(),
            None => BTreeMap::new(),
        };
        let hooks = out.on_change.clone();
        rendered.insert(p.target.clone());
        writes.push(PlannedWrite {
            identity: p.definition.identity.clone(),
            target: p.target,
            secret: p.source,
            keys,
            fingerprints,
            destination: p.destination,
            content,
            mode: p.mode,
            ownership: p.ownership,
            hooks,
        });
    }
    stop_if_any(refusals)?;
    Ok((writes, rendered.len()))
}

/// The applied outputs of reworked and dropped targets that no output claims now.
fn removals(
    previous: Option<&AppliedState>,
    rework: &Rework,
    claimed: &HashMap<PathBuf, String>,
) -> Vec<(String, PathBuf)> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let mut removals = Vec::new();
    for name in rework.reworked.iter().chain(&rework.dropped) {
        let Some(old) = previous.outputs.get(name) else {
            continue;
        };
        for path in old {
            // Still written (by this target or another reworked one): not removed.
            if !claimed.contains_key(path) {
                removals.push((name.clone(), path.clone()));
            }
        }
    }
    removals
}

/// Marks no selected target answers to (a dropped target's lease, a role no output reads):
/// done with, since left they would make every poll plan again.
fn unanswered_marks<'d>(
    dirty: &'d BTreeMap<String, u64>,
    selection: &'d Selection,
) -> impl Iterator<Item = (String, u64)> + 'd {
    dirty
        .iter()
        .filter(|(key, _)| {
            !selection.selected.iter().any(|(name, (_, target))| {
                name == *key
                    || target
                        .outputs
                        .iter()
                        .any(|o| o.credentials().is_some_and(|c| &c.path() == *key))
            })
        })
        .map(|(key, generation)| (key.clone(), *generation))
}
