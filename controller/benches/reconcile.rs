//! Reconcile cost, measured against the physical limit: one X25519 unwrap per manifest.
//!
//! `cargo build --release -p sealops-controller && cargo bench -p sealops-controller --bench reconcile`
//! prints, in one run:
//! - the limit: one X25519 stanza unwrap (single core), and what 10,000 of them cost on one core
//!   and on every core; and, for writes, one atomic file write (fsync included) on this disk;
//! - a full reconcile of 10,000 manifests (100 targets × 100 dotenv outputs) through the library
//!   (`Controller::new` + `reconcile(true)`): the first apply (every file written) and a resync
//!   with a fresh controller (cold session cache, outputs already in place), against the limits;
//! - an incremental reconcile after one changed manifest, in that repository and in one of 1,000
//!   manifests (it should not grow with the repository);
//! - the peak resident memory of the real binary (`run --once`, first apply of the 10,000);
//! - commit-to-output latency of the real binary following a local repository (notify, no
//!   polling): 100 signed commits of one changed value, from `git commit` returning until the
//!   output holds the new value.
//!
//! The binary is the release build beside this bench (`target/release/sealops-controller`);
//! cargo does not build binaries for a bench, hence the build step above.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use age::{Identity as _, Recipient as _};
use sealops_controller::run::{Controller, ReconcileOutcome};
use sealops_core::config::{Config, RecipientEntry};
use sealops_core::controller_config::ControllerConfig;
use sealops_core::keys::{AgeIdentities, Recipient, generate};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::seal::RecipientNames;
use sealops_core::secret::SecretValue;

const LARGE: usize = 10_000;
const SMALL: usize = 1_000;
const OUTPUTS_PER_TARGET: usize = 100;
const UNWRAPS: usize = 1_000;
const INCREMENTAL_RUNS: usize = 5;
const LATENCY_COMMITS: usize = 100;

const ADMIN_POLICY: &str = "path \"secrets/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }\npath \"sys/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"sudo\"] }\n";
const SERVICE_POLICY: &str = "path \"secrets/bulk/*\" { capabilities = [\"read\"] }\n";

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs git with a neutral configuration (and alice's key for `-S`); panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                newest(&path)
            } else {
                entry.metadata().and_then(|m| m.modified()).ok()
            }
        })
        .max()
}

/// The release `sealops-controller` beside this bench executable (`target/release/deps/…`).
fn controller_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from target/<profile>/deps");
    let bin = profile_dir.join("sealops-controller");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p sealops-controller` (cargo bench does not build binaries)",
        bin.display()
    );
    bin
}

/// Says so when the binary is older than the sources it is built from: its numbers would be
/// of an older controller.
fn warn_if_stale(bin: &Path) {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [crates.join("src"), crates.join("../core/src")]
        .iter()
        .filter_map(|dir| newest(dir))
        .max();
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    if let (Some(sources), Some(built)) = (sources, built)
        && built < sources
    {
        println!(
            "warning: {} is older than controller/src or core/src: rebuild it with `cargo build --release -p sealops-controller`",
            bin.display()
        );
    }
}

/// The cost of one X25519 unwrap (ECDH + HKDF + ChaCha20-Poly1305 of a 16-byte file key), as
/// in `cli/benches/throughput.rs`: median of 5 runs of 1,000.
fn unwrap_limit() -> Duration {
    let (_, identity_text) = generate();
    let age_identity: age::x25519::Identity = identity_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("key line")
        .parse()
        .expect("identity");
    let file_key = age_core::format::FileKey::new(Box::new([7u8; 16]));
    let (stanzas, _) = age_identity
        .to_public()
        .wrap_file_key(&file_key)
        .expect("wraps");
    let stanza = &stanzas[0];
    let unwrap = || {
        age_identity
            .unwrap_stanza(stanza)
            .expect("matches")
            .expect("opens");
    };
    for _ in 0..100 {
        unwrap();
    }
    let total = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..UNWRAPS {
                    unwrap();
                }
                start.elapsed()
            })
            .collect(),
    );
    total / UNWRAPS as u32
}

/// The cost of one atomic file write on the disk the outputs are on (temp file, write, fsync,
/// rename, fsync of the directory: what every changed output costs), over 200 writes.
fn atomic_write_cost(dir: &Path) -> Duration {
    const WRITES: u32 = 200;
    let dir = dir.join("write-limit");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let start = Instant::now();
    for i in 0..WRITES {
        let content = format!("DB_PASSWORD='write-{i}-{}'\n", "x".repeat(120));
        sealops_core::fsutil::write_atomic(
            &dir.join(format!("f{}", i % 20)),
            content.as_bytes(),
            0o600,
        )
        .expect("writes");
    }
    let cost = start.elapsed() / WRITES;
    std::fs::remove_dir_all(&dir).expect("cleanup");
    cost
}

/// A local repository of `manifests` manifests (3 values each) in targets of 100 dotenv
/// outputs, anchored at its first commit, with alice (admin, SSH key) to sign later commits.
struct Repository {
    dir: tempfile::TempDir,
    repo: PathBuf,
    out: PathBuf,
    config: PathBuf,
    manifests: usize,
    recipient: Recipient,
    alice_key: PathBuf,
    home: PathBuf,
}

fn secret_of(index: usize) -> String {
    format!("bulk/t{:03}/app{index:05}", index / OUTPUTS_PER_TARGET)
}

fn output_of(index: usize) -> String {
    format!("t{:03}/app{index:05}.env", index / OUTPUTS_PER_TARGET)
}

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}

impl Repository {
    fn build(manifests: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let repo = root.join("repo");
        let out = root.join("out");
        let home = root.join("home");
        for d in [&repo, &out, &home] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let (identity, identity_text) = generate();
        let key_file = root.join("cluster.key");
        sealops_core::fsutil::create_new(&key_file, identity_text.as_bytes(), 0o600)
            .expect("key file");
        let recipient = identity.recipient().clone();

        let alice_key = root.join("alice");
        let status = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "alice@example.com",
                "-f",
            ])
            .arg(&alice_key)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen failed");
        let public = std::fs::read_to_string(alice_key.with_extension("pub")).expect("public");
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        let signers = root.join("allowed_signers");
        std::fs::write(
            &signers,
            format!(
                "alice@example.com namespaces=\"git\" {}\n",
                public.join(" ")
            ),
        )
        .expect("signers");

        git(&repo, &["init", "-q", "-b", "main"]);
        let config = Config::new(vec![RecipientEntry {
            name: "prod".into(),
            key: recipient.to_string(),
            role: None,
        }]);
        write(&repo, ".sealops/config.yaml", &config.to_yaml());
        write(&repo, "policies/admin.hcl", ADMIN_POLICY);
        write(&repo, "policies/bulk-runtime.hcl", SERVICE_POLICY);
        write(
            &repo,
            "identities/alice.yaml",
            "sealops: v1\nname: alice@example.com\nkind: human\npolicies: [admin]\n",
        );
        write(
            &repo,
            "identities/bulk.yaml",
            "sealops: v1\nname: bulk\nkind: service\npolicies: [bulk-runtime]\n",
        );
        for target in 0..manifests.div_ceil(OUTPUTS_PER_TARGET) {
            let mut text = String::from("sealops: v1\nidentity: bulk\noutputs:\n");
            let first = target * OUTPUTS_PER_TARGET;
            for index in first..(first + OUTPUTS_PER_TARGET).min(manifests) {
                text.push_str(&format!(
                    "  - secret: {}\n    format: dotenv\n    path: {}\n",
                    secret_of(index),
                    output_of(index)
                ));
            }
            write(&repo, &format!("targets/t{target:03}.yaml"), &text);
        }
        let this = Self {
            dir,
            repo,
            out,
            config: root.join("controller.yaml"),
            manifests,
            recipient,
            alice_key,
            home,
        };
        for index in 0..manifests {
            this.seal(index, "initial");
        }
        git(&this.repo, &["add", "-A"]);
        git(&this.repo, &["commit", "-q", "-m", "initial secrets"]);
        let anchor = git(&this.repo, &["rev-parse", "HEAD"]).trim().to_owned();
        let text = format!(
            "sealops: v1\nrepository:\n  path: {repo}\n  branch: main\npoll:\n  interval: 1h\n  jitter: 1s\n  resync: 1h\nidentity_files: [{key}]\nstate_dir: {state}\noutput_roots: [{out}]\ntrust:\n  allowed_signers_file: {signers}\n  initial_commit: {anchor}\n",
            repo = this.repo.display(),
            key = key_file.display(),
            state = root.join("state").display(),
            out = this.out.display(),
            signers = signers.display(),
        );
        std::fs::write(&this.config, text).expect("config");
        this
    }

    /// Seals manifest `index` (three values; `marker` is in API_TOKEN) in process.
    fn seal(&self, index: usize, marker: &str) {
        let secret = secret_of(index);
        let values: BTreeMap<String, SecretValue> = [
            ("DB_USER", format!("user{index}")),
            ("DB_PASSWORD", format!("pw-{index:05}-{}", "x".repeat(24))),
            ("API_TOKEN", format!("tok-{marker}-{}", "y".repeat(48))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretValue::from(v)))
        .collect();
        let file = format!("secrets/{secret}.yaml");
        let mut manifest = Manifest::new(SecretPath::parse(&secret).expect("valid"), Scope::Strict);
        manifest
            .seal_values(
                &file,
                values,
                std::slice::from_ref(&self.recipient),
                &AgeIdentities::new(),
                &RecipientNames::default(),
            )
            .expect("seals");
        write(&self.repo, &file, &manifest.to_yaml());
    }

    /// Changes manifest `index` and commits it signed by alice (the commit must pass
    /// authorisation after the anchor).
    fn change(&self, index: usize, marker: &str) {
        self.seal(index, marker);
        git(&self.repo, &["add", "-A"]);
        let key = format!("user.signingkey={}", self.alice_key.display());
        git(
            &self.repo,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &key,
                "commit",
                "-q",
                "-S",
                "-m",
                &format!("change {index}: {marker}"),
            ],
        );
    }

    fn config(&self) -> ControllerConfig {
        let text = std::fs::read_to_string(&self.config).expect("config");
        ControllerConfig::parse(&text, "controller.yaml").expect("config parses")
    }

    /// The same repository with its own state directory and output root (a fresh node).
    fn fresh_node_config(&self, name: &str) -> PathBuf {
        let root = self.dir.path();
        let out = root.join(format!("out-{name}"));
        std::fs::create_dir_all(&out).expect("mkdir");
        let text = std::fs::read_to_string(&self.config)
            .expect("config")
            .replace(
                &format!("state_dir: {}", root.join("state").display()),
                &format!(
                    "state_dir: {}",
                    root.join(format!("state-{name}")).display()
                ),
            )
            .replace(
                &format!("output_roots: [{}]", self.out.display()),
                &format!("output_roots: [{}]", out.display()),
            );
        // A node of its own has a name of its own on the audit branch.
        let text = format!("{text}audit:\n  controller_id: bench-{name}\n");
        let path = root.join(format!("controller-{name}.yaml"));
        std::fs::write(&path, text).expect("config");
        path
    }

    fn controller(&self) -> Command {
        let mut cmd = Command::new(controller_binary());
        cmd.env("HOME", &self.home).env_remove("RUST_LOG");
        cmd
    }
}

fn reconcile(controller: &mut Controller, full: bool, what: &str) -> Duration {
    let start = Instant::now();
    let outcome = controller.reconcile(full);
    let elapsed = start.elapsed();
    assert!(
        matches!(
            outcome,
            ReconcileOutcome::Applied | ReconcileOutcome::Unchanged
        ) && controller.in_sync(),
        "{what}: {outcome:?}\n{:#?}",
        controller.status.snapshot()
    );
    elapsed
}

/// `SEALOPS_BENCH_INCREMENTAL_RUNS` raises the number of runs, e.g. to profile them.
fn incremental_runs() -> usize {
    std::env::var("SEALOPS_BENCH_INCREMENTAL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INCREMENTAL_RUNS)
}

/// Median incremental reconcile (`reconcile(false)`) after one changed manifest, on a
/// controller that already applied the head (warm, as a long-running one is).
fn incremental(repo: &Repository, controller: &mut Controller) -> Duration {
    median(
        (0..incremental_runs())
            .map(|run| {
                repo.change((run * 7919) % repo.manifests, &format!("incremental-{run}"));
                reconcile(controller, false, "incremental reconcile")
            })
            .collect(),
    )
}

/// Peak RSS (MiB) and wall time of `sealops-controller run --once --config <config>`.
fn peak_rss(repo: &Repository, config: &Path) -> (f64, Duration) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(controller_binary())
        .args(["run", "--once", "--config"])
        .arg(config)
        .env("HOME", &repo.home)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .output()
        .expect("/usr/bin/time runs (apt-get install -y time)");
    let elapsed = start.elapsed();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run --once failed:\n{report}");
    let kib: f64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in /usr/bin/time -v output:\n{report}"));
    (kib / 1024.0, elapsed)
}

/// Latencies from `git commit` returning until the output holds the new value, with the real
/// binary following the local repository (poll interval 1h: the ref watch is the trigger).
fn commit_to_output(repo: &Repository) -> Vec<Duration> {
    let mut child = repo
        .controller()
        .args(["run", "--log-level", "warn", "--config"])
        .arg(&repo.config)
        .stdout(Stdio::null())
        .spawn()
        .expect("controller starts");
    let wait_for = |index: usize, marker: &str, deadline: Duration| -> Duration {
        let path = repo.out.join(output_of(index));
        let start = Instant::now();
        loop {
            if std::fs::read_to_string(&path).is_ok_and(|text| text.contains(marker)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < deadline,
                "{} did not get {marker} within {deadline:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // Warm-up, not measured: the start-up resync of every output, then one change.
    repo.change(1, "latency-warmup");
    wait_for(1, "tok-latency-warmup-", Duration::from_secs(300));
    let mut latencies = Vec::with_capacity(LATENCY_COMMITS);
    for k in 0..LATENCY_COMMITS {
        let index = (k * 101 + 3) % repo.manifests;
        let marker = format!("latency-{k}");
        repo.change(index, &marker);
        latencies.push(wait_for(
            index,
            &format!("tok-{marker}-"),
            Duration::from_secs(60),
        ));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    latencies.sort();
    latencies
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    warn_if_stale(&controller_binary());

    // a. The limit.
    let unwrap = unwrap_limit();
    let limit_large = unwrap * LARGE as u32;
    println!(
        "limit: one X25519 unwrap {:.1} µs; {LARGE} unwraps {:.0} ms on one core, {:.0} ms on {cores} cores",
        unwrap.as_secs_f64() * 1e6,
        ms(limit_large),
        ms(limit_large) / cores as f64
    );
    let against_limit = |d: Duration| {
        format!(
            "{:.2} s, {:.0} µs/manifest, {:.2}× the 1-core limit, {:.2}× the {cores}-core limit",
            d.as_secs_f64(),
            d.as_secs_f64() * 1e6 / LARGE as f64,
            d.as_secs_f64() / limit_large.as_secs_f64(),
            d.as_secs_f64() / (limit_large.as_secs_f64() / cores as f64)
        )
    };

    let start = Instant::now();
    let large = Repository::build(LARGE);
    println!(
        "setup: repository of {LARGE} manifests × 3 values in {} targets built and committed in {:.1} s",
        LARGE / OUTPUTS_PER_TARGET,
        start.elapsed().as_secs_f64()
    );

    // b. Full reconcile with a fresh controller (cold session cache).
    let config = large.config();
    let write_cost = atomic_write_cost(large.dir.path());
    let mut controller = Controller::new(&config).expect("controller");
    let first = reconcile(&mut controller, true, "first apply");
    if std::env::var_os("SEALOPS_BENCH_ONLY_INCREMENTAL").is_some() {
        // For profiling: only incremental reconciles (large, then small).
        println!(
            "first apply {:.2} s; incremental runs start",
            first.as_secs_f64()
        );
        let runs = incremental(&large, &mut controller);
        drop(controller);
        let small = Repository::build(SMALL);
        let mut small_controller = Controller::new(&small.config()).expect("controller");
        reconcile(&mut small_controller, true, "first apply (small)");
        let small_runs = incremental(&small, &mut small_controller);
        println!(
            "incremental reconcile (median of {}): {:.1} ms with {LARGE} manifests, {:.1} ms with {SMALL}",
            incremental_runs(),
            ms(runs),
            ms(small_runs)
        );
        return;
    }
    println!(
        "limit: one atomic file write on this disk (temp, fsync, rename, fsync dir) {:.2} ms; {LARGE} of them {:.1} s",
        ms(write_cost),
        (write_cost * LARGE as u32).as_secs_f64()
    );
    println!(
        "full reconcile, first apply ({LARGE} outputs written): {}; {:.2}× {LARGE} atomic writes",
        against_limit(first),
        first.as_secs_f64() / (write_cost * LARGE as u32).as_secs_f64()
    );
    // One controller per state directory: each fresh one replaces the previous, as a restart.
    drop(controller);
    let cold = median(
        (0..3)
            .map(|_| {
                let mut fresh = Controller::new(&config).expect("controller");
                reconcile(&mut fresh, true, "cold resync")
            })
            .collect(),
    );
    println!(
        "full reconcile, fresh controller, outputs in place (cold cache, median of 3): {}",
        against_limit(cold)
    );
    let mut controller = Controller::new(&config).expect("controller");
    reconcile(&mut controller, true, "warming the session cache");
    let warm = reconcile(&mut controller, true, "warm resync");
    println!(
        "full reconcile, same controller (warm cache, no unwraps): {}",
        against_limit(warm)
    );

    // c. Incremental reconcile after one changed manifest.
    let large_incremental = incremental(&large, &mut controller);
    drop(controller);
    let small = Repository::build(SMALL);
    let mut small_controller = Controller::new(&small.config()).expect("controller");
    reconcile(&mut small_controller, true, "first apply (small)");
    let small_incremental = incremental(&small, &mut small_controller);
    drop(small_controller);
    println!(
        "incremental reconcile after one changed manifest (its target of {OUTPUTS_PER_TARGET} outputs re-rendered, median of {}): {:.1} ms with {LARGE} manifests, {:.1} ms with {SMALL}",
        incremental_runs(),
        ms(large_incremental),
        ms(small_incremental)
    );

    // d. Resident memory of the real binary: a fresh node's first apply of the 10,000.
    let (rss, wall) = peak_rss(&large, &large.fresh_node_config("rss"));
    println!(
        "memory: `sealops-controller run --once`, first apply of {LARGE} manifests: peak RSS {rss:.1} MiB (wall {:.2} s)",
        wall.as_secs_f64()
    );
    let (rss_resync, wall_resync) = peak_rss(&large, &large.config);
    println!(
        "memory: `sealops-controller run --once`, resync of {LARGE} manifests in place: peak RSS {rss_resync:.1} MiB (wall {:.2} s)",
        wall_resync.as_secs_f64()
    );

    // e. Commit-to-output latency of the running binary.
    let latencies = commit_to_output(&large);
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "latency: signed commit of one value → output ({LATENCY_COMMITS} commits, {LARGE}-manifest repository, notify + 20 ms debounce): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1])
    );
}
