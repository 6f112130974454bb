//! From a chosen commit to files on disk: plan everything, then write.
//!
//! [`plan`] reads the commit's tree (never a working tree), selects the targets whose node
//! selector matches this node, and — for the targets the change touches, or all of them on a
//! full resync — checks each identity's `read` policy, resolves every destination under the
//! allowed roots, checks hooks against the local allow-list, decrypts and renders. Any problem
//! refuses the commit as a whole before a single byte is written. [`apply`] then writes the
//! outputs atomically, removes outputs of removed targets, and runs the hooks of changed
//! outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{Oid, Tree};
use rayon::prelude::*;
use sealops_core::audit::{Event, Outcome as AuditOutcome, RecordDraft};
use sealops_core::authz::Authority;
use sealops_core::backend::Backend;
use sealops_core::config::Config;
use sealops_core::controller_config::RemovedOutputs;
use sealops_core::gittree::Trees;
use sealops_core::keys::IdentitySet;
use sealops_core::manifest::{Manifest, SecretPath};
use sealops_core::policy::{Operation, Request};
use sealops_core::repo::CONFIG_FILE;
use sealops_core::seal::{EnvelopeCache, RecipientNames};
use sealops_core::secret::SecretValue;
use sealops_core::target::{Credentials, Source, Target};
use zeroize::Zeroizing;

use crate::audit::Audit;
use crate::creds::{Connected, Creds, Values};
use crate::output::{self, OutputRoots, Ownership};
use crate::state::{AppliedState, InProgress, PendingHook, StateFile};
use crate::status::{Reason, Refusal, Status, TargetState, TargetStatus};

use crate::hooks::HookSpec;

/// What stays the same from one reconcile to the next: local configuration, identities and
/// the session keys opened so far.
#[derive(Debug)]
pub struct Engine {
    pub roots: OutputRoots,
    pub node_labels: BTreeMap<String, String>,
    pub hooks: BTreeMap<String, HookSpec>,
    pub identities: Arc<IdentitySet>,
    pub cache: EnvelopeCache,
    pub removed_outputs: RemovedOutputs,
    /// Parsed target files by blob id, so a reconcile parses only target files that changed.
    pub parsed_targets: std::sync::Mutex<HashMap<Oid, Arc<Target>>>,
    /// Every action is journalled here before it happens.
    pub audit: Arc<Audit>,
    /// Where the waiting audit records are reported after each record.
    pub status: Arc<Status>,
    pub owners: std::sync::Mutex<Owners>,
    /// Leases and static roles (absent without an identity to seal their passwords to, or a
    /// lease store; `creds_problem` says why).
    pub creds: Option<Arc<Creds>>,
    pub creds_problem: Option<String>,
}

/// Which target writes each destination of the applied state: the one-writer-per-file check
/// looks destinations up here instead of walking every output on every reconcile.
#[derive(Debug, Default)]
pub struct Owners {
    /// The applied commit the index describes.
    commit: Option<String>,
    pub by_path: HashMap<PathBuf, String>,
}

impl Owners {
    /// Makes the index describe `applied` (rebuilt only when it describes something else: at
    /// start, or after an apply whose state could not be saved).
    pub fn follow(&mut self, applied: Option<&AppliedState>) {
        let Some(applied) = applied else {
            self.commit = None;
            self.by_path.clear();
            return;
        };
        if self.commit.as_deref() == Some(applied.commit.as_str()) {
            return;
        }
        self.by_path.clear();
        for (name, paths) in &applied.outputs {
            for path in paths {
                self.by_path.insert(path.clone(), name.clone());
            }
        }
        self.commit = Some(applied.commit.clone());
    }

    /// `plan` was applied on top of `before`: only its targets change.
    pub fn applied(&mut self, before: Option<&AppliedState>, plan: &Plan) {
        if self.commit.as_deref() != before.map(|b| b.commit.as_str()) {
            self.commit = None; // rebuilt from the state on the next plan
            return;
        }
        for name in plan.outputs.keys().chain(&plan.dropped) {
            for path in before
                .and_then(|b| b.outputs.get(name))
                .into_iter()
                .flatten()
            {
                if self.by_path.get(path) == Some(name) {
                    self.by_path.remove(path);
                }
            }
        }
        for (name, paths) in &plan.outputs {
            for path in paths {
                self.by_path.insert(path.clone(), name.clone());
            }
        }
        self.commit = Some(plan.commit.to_string());
    }
}

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
    content: Zeroizing<Vec<u8>>,
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

/// `targets/*.yaml` of a tree: (name, repository path, blob id).
fn target_files(trees: &Trees<'_>, tree: &Tree<'_>) -> Vec<(String, String, Oid)> {
    trees
        .yaml_files(tree, "targets")
        .into_iter()
        .map(|f| (f.stem, f.path, f.id))
        .collect()
}

/// `backends/*.yaml` of a tree, by name: (file, backend).
fn backend_files(
    trees: &Trees<'_>,
    tree: &Tree<'_>,
    commit: Oid,
) -> Result<BTreeMap<String, (String, Backend)>, Vec<Refusal>> {
    let mut found = BTreeMap::new();
    let mut refusals = Vec::new();
    for yaml in trees.yaml_files(tree, "backends") {
        let (stem, file) = (yaml.stem.as_str(), yaml.path);
        let text = match blob_text(trees, tree, &file) {
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
    if refusals.is_empty() {
        Ok(found)
    } else {
        Err(refusals)
    }
}

/// Plans `commit`. With `previous` (the applied state and its commit) and `full == false`, only
/// targets the change touches are rendered; a change to policies, identities or the repository
/// configuration renders every target.
pub fn plan(
    engine: &Engine,
    trees: &Trees<'_>,
    commit: Oid,
    previous: Option<&AppliedState>,
    full: bool,
) -> Result<Plan, Vec<Refusal>> {
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
            Some(
                changes
                    .iter()
                    .map(|c| c.path.clone())
                    .collect::<HashSet<String>>(),
            )
        }
        _ => None,
    };
    let authority_changed = changed.as_ref().is_none_or(|paths| {
        paths.iter().any(|p| {
            p.starts_with("policies/") || p.starts_with("identities/") || p.starts_with(".sealops/")
        })
    });

    let mut refusals = Vec::new();
    let mut selected: BTreeMap<String, (String, Arc<Target>)> = BTreeMap::new();
    let mut not_selected = Vec::new();
    let mut parsed = engine
        .parsed_targets
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut seen = HashSet::new();
    for (name, file, blob) in target_files(trees, &tree) {
        seen.insert(blob);
        let target = match parsed.get(&blob) {
            Some(target) => target.clone(),
            None => {
                let text = match blob_text(trees, &tree, &file) {
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
                match Target::parse(&text, &file) {
                    Ok(target) => {
                        let target = Arc::new(target);
                        parsed.insert(blob, target.clone());
                        target
                    }
                    Err(e) => {
                        refusals.push(refuse(commit, &file, Reason::Schema, e.to_string()));
                        continue;
                    }
                }
            }
        };
        if target.selects(&engine.node_labels) {
            selected.insert(name, (file, target));
        } else {
            not_selected.push(name);
        }
    }
    parsed.retain(|blob, _| seen.contains(blob));
    drop(parsed);

    // Secrets whose manifest changed, by secret path (no allocation per output looked up).
    let changed_secrets: HashSet<&str> = changed
        .iter()
        .flatten()
        .filter_map(|p| p.strip_prefix("secrets/")?.strip_suffix(".yaml"))
        .collect();
    // Credentials that changed since they were rendered (new leases, rotated passwords).
    let dirty = engine.creds.as_ref().map(|c| c.dirty()).unwrap_or_default();
    let needs_work = |name: &str, file: &str, target: &Target| -> bool {
        let Some(paths) = &changed else { return true };
        authority_changed
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

    // Check everything that needs no decryption first: identity, policy, paths, hooks.
    struct Pending<'t> {
        target: &'t str,
        identity: &'t str,
        file: &'t str,
        index: usize,
        output: &'t sealops_core::target::Output,
        /// The secret path, or the credentials' path.
        source: String,
        credentials: Option<Credentials>,
        destination: PathBuf,
        mode: u32,
        ownership: Ownership,
    }
    let mut pending: Vec<Pending<'_>> = Vec::new();
    let mut outputs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    // Targets planned now; the others keep what the applied state says, untouched.
    let reworked: HashSet<&str> = selected
        .iter()
        .filter(|(name, (file, target))| needs_work(name, file, target))
        .map(|(name, _)| name.as_str())
        .collect();
    let dropped: Vec<String> = previous
        .map(|p| {
            p.outputs
                .keys()
                .filter(|name| !selected.contains_key(*name))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // Each file has one writer. Outputs of targets nothing touched were checked when they were
    // applied; the engine keeps an index of them (kept in step with the applied state, so this
    // costs nothing per unchanged output), and destinations resolved now are checked against it
    // and against each other.
    let mut owners = engine.owners.lock().unwrap_or_else(|e| e.into_inner());
    owners.follow(previous);
    let mut claimed: HashMap<PathBuf, String> = HashMap::new();
    for (name, (file, target)) in &selected {
        if !reworked.contains(name.as_str()) {
            continue;
        }
        let mut destinations = Vec::new();
        for (index, out) in target.outputs.iter().enumerate() {
            let at = format!("{file} output {}", index + 1);
            let destination = match engine.roots.resolve(&out.path) {
                Ok(destination) => destination,
                Err(e) => {
                    refusals.push(refuse(commit, file, Reason::Output, format!("{at}: {e}")));
                    continue;
                }
            };
            let other = owners
                .by_path
                .get(&destination)
                .filter(|owner| !reworked.contains(owner.as_str()) && !dropped.contains(owner))
                .map(|owner| format!("targets/{owner}.yaml"))
                .or_else(|| claimed.insert(destination.clone(), at.clone()));
            if let Some(other) = other {
                refusals.push(refuse(
                    commit,
                    file,
                    Reason::Output,
                    format!(
                        "{at}: {} is also written by {other}; each file has one writer",
                        destination.display()
                    ),
                ));
            }
            destinations.push(destination.clone());
            for hook in &out.on_change {
                if !engine.hooks.contains_key(hook) {
                    refusals.push(refuse(
                        commit,
                        file,
                        Reason::Hook,
                        format!(
                            "{at}: hook {hook:?} is not on this controller's allow-list (hooks: in the local configuration); the repository cannot add commands"
                        ),
                    ));
                }
            }
            let (source, credentials) = match out.source() {
                Ok(Source::Secret(secret)) => (secret.to_string(), None),
                Ok(Source::Credentials(creds)) => (creds.path(), Some(creds)),
                Err(problem) => {
                    refusals.push(refuse(
                        commit,
                        file,
                        Reason::Schema,
                        format!("{at}: {problem}"),
                    ));
                    continue;
                }
            };
            let request = Request {
                path: match &credentials {
                    Some(creds) => creds.path(),
                    None => format!("secrets/{source}"),
                },
                operation: Some(Operation::Read),
                ..Request::default()
            };
            match authority.check_service(&target.identity, &request) {
                None => refusals.push(refuse(
                    commit,
                    file,
                    Reason::Policy,
                    format!(
                        "{at}: identity {:?} is not a service identity in identities/; add identities/{}.yaml with kind: service",
                        target.identity, target.identity
                    ),
                )),
                Some(decision) if !decision.allowed => refusals.push(refuse(
                    commit,
                    file,
                    Reason::Policy,
                    format!(
                        "{at}: identity {:?} may not read {} (capabilities: {}); grant read in one of its policies",
                        target.identity,
                        request.path,
                        decision.capabilities.join(", ")
                    ),
                )),
                Some(_) => {}
            }
            let mode = out.mode_bits().unwrap_or(0o600);
            let ownership = match owner_of(out) {
                Ok(ownership) => ownership,
                Err(problem) => {
                    refusals.push(refuse(
                        commit,
                        file,
                        Reason::Output,
                        format!("{at}: {problem}"),
                    ));
                    continue;
                }
            };
            pending.push(Pending {
                target: name,
                identity: &target.identity,
                file,
                index,
                output: out,
                source,
                credentials,
                destination,
                mode,
                ownership,
            });
        }
        outputs.insert(name.clone(), destinations);
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    // Backends: all of them when a target reads credentials, the backends changed, or on a full
    // reconcile (the lease task needs every backend that may hold a lease).
    let wants_backends = pending.iter().any(|p| p.credentials.is_some())
        || changed
            .as_ref()
            .is_none_or(|paths| paths.iter().any(|p| p.starts_with("backends/")));
    let backends = if wants_backends {
        match backend_files(trees, &tree, commit) {
            Ok(backends) => backends,
            Err(mut refused) => {
                refusals.append(&mut refused);
                return Err(refusals);
            }
        }
    } else {
        BTreeMap::new()
    };
    for p in &pending {
        let Some(creds) = &p.credentials else {
            continue;
        };
        let at = format!("{} output {}", p.file, p.index + 1);
        let problem = match backends.get(&creds.backend) {
            None => Some(format!(
                "{at}: {} names backend {:?}, but backends/{}.yaml does not exist",
                creds.path(),
                creds.backend,
                creds.backend
            )),
            Some((_, backend)) => {
                let found = match creds.kind {
                    sealops_core::target::CredentialKind::Dynamic => {
                        backend.dynamic_role(&creds.role).is_some()
                    }
                    sealops_core::target::CredentialKind::Static => {
                        backend.static_role(&creds.role).is_some()
                    }
                };
                (!found).then(|| {
                    format!(
                        "{at}: backends/{}.yaml has no {} role {:?}; define it under roles",
                        creds.backend,
                        match creds.kind {
                            sealops_core::target::CredentialKind::Dynamic => "dynamic",
                            sealops_core::target::CredentialKind::Static => "static",
                        },
                        creds.role
                    )
                })
            }
        };
        if let Some(problem) = problem {
            refusals.push(refuse(commit, p.file, Reason::Schema, problem));
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    // Decrypt each needed manifest once, in parallel (git objects are read on this thread).
    let secrets: BTreeSet<String> = pending
        .iter()
        .filter(|p| p.credentials.is_none())
        .map(|p| p.source.clone())
        .chain(
            backends
                .values()
                .map(|(_, b)| b.connection.password.secret.clone()),
        )
        .collect();
    let mut texts = Vec::with_capacity(secrets.len());
    for secret in &secrets {
        let file = format!("secrets/{secret}.yaml");
        match blob_text(trees, &tree, &file) {
            Some(Ok(text)) => texts.push((secret.clone(), file, text)),
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
    let opened: Vec<(String, Result<Values, Refusal>)> = texts
        .into_par_iter()
        .map(|(secret, file, text)| {
            let values = open_manifest(engine, &names, commit, &secret, &file, &text);
            (secret, values)
        })
        .collect();
    let mut values: BTreeMap<String, BTreeMap<String, SecretValue>> = BTreeMap::new();
    for (secret, result) in opened {
        match result {
            Ok(v) => {
                values.insert(secret, v);
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    // Connect the backends, then get each target's credentials (issuing or rotating where
    // there are none yet): keyed by target and path, so outputs of one target share them.
    let mut connected: BTreeMap<String, Arc<Connected>> = BTreeMap::new();
    if !backends.is_empty() {
        let Some(creds) = &engine.creds else {
            return Err(vec![refuse(
                commit,
                "backends/",
                Reason::Database,
                engine
                    .creds_problem
                    .clone()
                    .unwrap_or_else(|| "database credentials are unavailable".into()),
            )]);
        };
        for (name, (file, backend)) in backends {
            let admin_ref = &backend.connection.password;
            let Some(admin) = values
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
        if !refusals.is_empty() {
            return Err(refusals);
        }
        creds.loaded();
    }
    let mut leases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut credentials_rendered = BTreeMap::new();
    for p in &pending {
        let Some(creds_ref) = &p.credentials else {
            continue;
        };
        let key = format!("{}\n{}", p.target, p.source);
        if values.contains_key(&key) {
            continue;
        }
        let creds = engine.creds.as_ref().expect("checked with the backends");
        match creds.values(p.target, creds_ref, &connected[&creds_ref.backend]) {
            Ok((found, lease)) => {
                values.insert(key, found);
                leases.entry(p.target.to_owned()).or_default().extend(lease);
                for key in [p.target, p.source.as_str()] {
                    if let Some(generation) = dirty.get(key) {
                        credentials_rendered.insert(key.to_owned(), *generation);
                    }
                }
            }
            Err(problem) => refusals.push(refuse(
                commit,
                p.file,
                Reason::Database,
                format!("{} output {}: {problem}", p.file, p.index + 1),
            )),
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    let mut writes = Vec::with_capacity(pending.len());
    let mut rendered = BTreeSet::new();
    let fingerprinter = engine.audit.fingerprinter();
    for p in pending {
        let values_key = match p.credentials {
            Some(_) => format!("{}\n{}", p.target, p.source),
            None => p.source.clone(),
        };
        let secret_values = &values[&values_key];
        let content = match sealops_core::render::output(p.output, secret_values) {
            Ok(content) => content,
            Err(e) => {
                refusals.push(refuse(
                    commit,
                    p.file,
                    Reason::Schema,
                    format!(
                        "{} output {} (secret {}): {e}",
                        p.file,
                        p.index + 1,
                        p.source
                    ),
                ));
                continue;
            }
        };
        rendered.insert(p.target);
        let keys: Vec<String> = match &p.output.key {
            Some(key) => vec![key.clone()],
            None => secret_values.keys().cloned().collect(),
        };
        let fingerprints = match &fingerprinter {
            Some(f) => keys
                .iter()
                .filter_map(|k| {
                    let value = secret_values.get(k)?;
                    Some((k.clone(), f.fingerprint(&p.source, k, value.expose())))
                })
                .collect(),
            None => BTreeMap::new(),
        };
        writes.push(PlannedWrite {
            target: p.target.to_owned(),
            identity: p.identity.to_owned(),
            secret: p.source.clone(),
            keys,
            fingerprints,
            destination: p.destination,
            content,
            mode: p.mode,
            ownership: p.ownership,
            hooks: p.output.on_change.clone(),
        });
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    drop(owners);
    let mut removals = Vec::new();
    if let Some(previous) = previous {
        for name in reworked
            .iter()
            .copied()
            .chain(dropped.iter().map(String::as_str))
        {
            let Some(old) = previous.outputs.get(name) else {
                continue;
            };
            for path in old {
                // Still written (by this target or another reworked one): not removed.
                if !claimed.contains_key(path) {
                    removals.push((name.to_owned(), path.clone()));
                }
            }
        }
    }
    // A mark no selected target answers to (a dropped target's lease, a role no output reads)
    // is done with: left, it would make every poll plan again.
    for (key, generation) in &dirty {
        let answered = selected.iter().any(|(name, (_, target))| {
            name == key
                || target
                    .outputs
                    .iter()
                    .any(|o| o.credentials().is_some_and(|c| &c.path() == key))
        });
        if !answered {
            credentials_rendered.insert(key.clone(), *generation);
        }
    }
    Ok(Plan {
        commit,
        commit_time,
        writes,
        removals,
        outputs,
        dropped,
        not_selected,
        rendered_targets: rendered.len(),
        audit_branch,
        leases,
        credentials_rendered,
    })
}

fn owner_of(out: &sealops_core::target::Output) -> Result<Ownership, String> {
    Ok(Ownership {
        uid: out.owner.as_deref().map(output::uid_of).transpose()?,
        gid: out.group.as_deref().map(output::gid_of).transpose()?,
    })
}

/// Every value of one manifest (sealed ones opened, plain ones as they are).
fn open_manifest(
    engine: &Engine,
    names: &RecipientNames,
    commit: Oid,
    secret: &str,
    file: &str,
    text: &str,
) -> Result<BTreeMap<String, SecretValue>, Refusal> {
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
        .reveal_cached(file, &engine.identities, names, &engine.cache)
        .map_err(|e| refuse(commit, file, Reason::Decryption, e.to_string()))?;
    for (key, value) in &manifest.plain {
        values.insert(key.clone(), SecretValue::from(value.clone()));
    }
    Ok(values)
}

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
    /// Hooks that failed or timed out, removals refused (the outputs are written; these are
    /// reported).
    pub problems: Vec<Refusal>,
    pub hooks_run: u64,
}

/// Writes the plan's outputs, removes outputs of removed targets (unless configured to keep
/// them), and runs each changed output's hooks once.
///
/// Order, so that nothing happens unrecorded and nothing owed is forgotten: find which outputs
/// differ from what is on disk; journal `first_records` (e.g. the commit's verification) and a
/// record per output to write or remove, with one fsync — if that fails, nothing is written;
/// record the apply in the state directory (see [`InProgress`]: hooks a killed controller owed
/// run with the next apply); write and remove; run hooks and journal what they did.
pub fn apply(
    engine: &Engine,
    plan: &Plan,
    state: &StateFile,
    first_records: Vec<RecordDraft>,
) -> Result<ApplyReport, Refusal> {
    let mut report = ApplyReport::default();
    let commit = plan.commit.to_string();
    let refusal = |path: &Path, reason: Reason, message: String| Refusal {
        commit: Some(commit.clone()),
        path: Some(path.display().to_string()),
        reason,
        message,
    };
    let differs: Vec<bool> = plan
        .writes
        .par_iter()
        .map(|w| {
            output::in_place(&w.destination, &w.content, w.mode, w.ownership)
                .map(|same| !same)
                .map_err(|e| {
                    refusal(
                        &w.destination,
                        Reason::Output,
                        format!("target {}: {e}", w.target),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let changed: Vec<&PlannedWrite> = plan
        .writes
        .iter()
        .zip(&differs)
        .filter_map(|(w, d)| d.then_some(w))
        .collect();
    report.unchanged = (plan.writes.len() - changed.len()) as u64;
    let mut removals = Vec::new();
    if engine.removed_outputs == RemovedOutputs::Delete {
        for (target, path) in &plan.removals {
            // The state file is local, but a path is re-checked against the roots before a
            // removal all the same.
            let resolved = match path.to_str().map(|text| engine.roots.resolve(text)) {
                Some(Ok(resolved)) => resolved,
                Some(Err(e)) => {
                    report.problems.push(refusal(
                        path,
                        Reason::Output,
                        format!("not removing an output of removed target {target}: {e}; remove it by hand"),
                    ));
                    continue;
                }
                None => continue,
            };
            removals.push((target, resolved));
        }
    }

    let mut records = first_records;
    for w in &changed {
        let mut draft = RecordDraft::new(Event::OutputWritten, AuditOutcome::Ok);
        draft.commit = Some(commit.clone());
        draft.path = Some(w.secret.clone());
        draft.keys = w.keys.clone();
        draft.target = Some(w.target.clone());
        draft.identity = Some(w.identity.clone());
        draft.fingerprints = w.fingerprints.clone();
        draft.reason = Some(format!("written to {}", w.destination.display()));
        records.push(draft);
    }
    for (target, path) in &removals {
        let mut draft = RecordDraft::new(Event::OutputRemoved, AuditOutcome::Ok);
        draft.commit = Some(commit.clone());
        draft.target = Some((*target).clone());
        draft.reason = Some(format!("removed {}", path.display()));
        records.push(draft);
    }
    let recorded = engine.audit.record(records);
    engine.status.report_audit(&engine.audit);
    recorded.map_err(|e| {
        refusal(
            state.path(),
            Reason::Audit,
            format!("{e}; no output was written"),
        )
    })?;

    let owed = match state.interrupted_apply() {
        Ok(owed) => owed.map(|o| o.hooks).unwrap_or_default(),
        Err(e) => {
            report.problems.push(refusal(
                state.path(),
                Reason::Output,
                format!("{e}; hooks an interrupted apply owed may not have run"),
            ));
            BTreeSet::new()
        }
    };
    let mut hooks: BTreeSet<PendingHook> = owed.clone();
    if !changed.is_empty() || !removals.is_empty() || !owed.is_empty() {
        let record = InProgress {
            commit: commit.clone(),
            directories: changed
                .iter()
                .map(|w| w.destination.as_path())
                .chain(removals.iter().map(|(_, path)| path.as_path()))
                .filter_map(|p| p.parent().map(Path::to_owned))
                .collect(),
            hooks: changed
                .iter()
                .flat_map(|w| {
                    w.hooks.iter().map(|hook| PendingHook {
                        target: w.target.clone(),
                        hook: hook.clone(),
                    })
                })
                .chain(owed)
                .collect(),
        };
        state.begin_apply(&record).map_err(|e| {
            refusal(
                state.path(),
                Reason::Output,
                format!("{e}; no output is written until the apply can be recorded"),
            )
        })?;
    }
    // Files are independent: write them in parallel (each one atomically); stop at the first
    // failure, which leaves the state file at the previous commit so the next reconcile redoes it.
    changed
        .par_iter()
        .map(|write| {
            engine
                .roots
                .prepare(&write.destination)
                .and_then(|()| {
                    output::replace(
                        &write.destination,
                        &write.content,
                        write.mode,
                        write.ownership,
                    )
                })
                .map_err(|e| {
                    refusal(
                        &write.destination,
                        Reason::Output,
                        format!("target {}: {e}", write.target),
                    )
                })
        })
        .collect::<Result<Vec<()>, Refusal>>()?;
    for write in &changed {
        report.written += 1;
        for hook in &write.hooks {
            hooks.insert(PendingHook {
                target: write.target.clone(),
                hook: hook.clone(),
            });
        }
    }
    for (target, path) in &removals {
        output::remove(path).map_err(|e| {
            refusal(
                path,
                Reason::Output,
                format!("removing an output of target {target}: {e}"),
            )
        })?;
        report.removed += 1;
    }

    let mut hook_records = Vec::new();
    for PendingHook { target, hook: name } in hooks {
        let Some(spec) = engine.hooks.get(&name) else {
            report.problems.push(Refusal {
                commit: Some(commit.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!(
                    "target {target}: hook {name} (owed by an interrupted apply) is no longer on this controller's allow-list; not run"
                ),
            });
            continue;
        };
        report.hooks_run += 1;
        let result = crate::hooks::run(&name, spec, &target, plan.commit);
        let mut draft = RecordDraft::new(
            Event::HookRun,
            if result.is_ok() {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
        );
        draft.commit = Some(commit.clone());
        draft.target = Some(target.clone());
        if let Err(problem) = result {
            draft.reason = Some(format!("hook {name}: {problem}"));
            report.problems.push(Refusal {
                commit: Some(commit.clone()),
                path: None,
                reason: Reason::Hook,
                message: format!("target {target}: hook {name}: {problem}"),
            });
        } else {
            draft.reason = Some(format!("hook {name}"));
        }
        hook_records.push(draft);
    }
    let recorded = engine.audit.record(hook_records);
    engine.status.report_audit(&engine.audit);
    if let Err(e) = recorded {
        report.problems.push(refusal(
            state.path(),
            Reason::Audit,
            format!("recording hooks: {e}"),
        ));
    }
    if let Err(e) = state.finish_apply() {
        report
            .problems
            .push(refusal(state.path(), Reason::Output, e.to_string()));
    }
    Ok(report)
}

/// Targets whose outputs reflect the applied commit, as the status reports them.
pub fn in_sync_statuses(
    outputs: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeMap<String, TargetStatus> {
    outputs
        .iter()
        .map(|(name, paths)| {
            (
                name.clone(),
                TargetStatus {
                    state: TargetState::InSync,
                    outputs: paths.iter().map(|p| p.display().to_string()).collect(),
                    error: None,
                },
            )
        })
        .collect()
}

/// Brings per-target statuses in line with an applied plan: planned targets are in sync with
/// their new outputs, dropped ones go, unselected ones say so; the rest stay in sync as they
/// were (a target marked refused is in sync again: the applied commit is what it holds).
pub fn update_statuses(statuses: &mut BTreeMap<String, TargetStatus>, plan: &Plan) {
    for name in &plan.dropped {
        statuses.remove(name);
    }
    for status in statuses.values_mut() {
        if status.state == TargetState::Refused {
            status.state = TargetState::InSync;
        }
    }
    statuses.extend(in_sync_statuses(&plan.outputs));
    for name in &plan.not_selected {
        statuses.insert(
            name.clone(),
            TargetStatus {
                state: TargetState::NotSelected,
                outputs: Vec::new(),
                error: None,
            },
        );
    }
}

/// Removes temporary files a killed controller left in the folders of its outputs.
pub fn remove_stale_temp_files<'p>(outputs: impl IntoIterator<Item = &'p Path>) {
    let dirs: BTreeSet<&Path> = outputs.into_iter().collect();
    for dir in dirs {
        sealops_core::fsutil::remove_temp_files(dir);
    }
}
