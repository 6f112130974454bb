//! Seal and reveal throughput, measured against the physical limit: one X25519 unwrap.
//!
//! `cargo bench -p sealops-cli --bench throughput` prints, in one run:
//! - the limit: the cost of one X25519 stanza unwrap, and of 1,000 of them;
//! - in-process seal and reveal costs per value and per manifest (10 values);
//! - `sealops reveal secrets -o json` on a tree of 1,000 manifests × 10 values, as a real
//!   process (start-up, directory walk, file I/O, parsing, unwrap, decrypt, output), compared
//!   with 1,000 unwraps.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use age::{Identity as _, Recipient as _};
use sealops_core::config::{Config, RecipientEntry};
use sealops_core::keys::{AgeIdentities, generate};
use sealops_core::manifest::{Manifest, Scope, SecretPath};
use sealops_core::seal::RecipientNames;
use sealops_core::secret::SecretValue;

const MANIFESTS: usize = 1_000;
const VALUES: usize = 10;

fn per_op(total: Duration, count: usize) -> f64 {
    total.as_secs_f64() * 1e6 / count as f64
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let (identity, identity_text) = generate();
    let identities = AgeIdentities::parse(&identity_text, "bench").expect("parses");
    let recipients = vec![identity.recipient().clone()];
    let names = RecipientNames::default();

    // The limit: one X25519 unwrap (ECDH + HKDF + ChaCha20-Poly1305 of the 16-byte file key).
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
    for _ in 0..100 {
        age_identity
            .unwrap_stanza(stanza)
            .expect("matches")
            .expect("opens");
    }
    let limit_runs: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..MANIFESTS {
                age_identity
                    .unwrap_stanza(stanza)
                    .expect("matches")
                    .expect("opens");
            }
            start.elapsed()
        })
        .collect();
    let limit = median(limit_runs);
    println!(
        "limit: one X25519 unwrap            {:>9.1} µs",
        per_op(limit, MANIFESTS)
    );
    println!(
        "limit: {MANIFESTS} X25519 unwraps          {:>9.1} ms",
        limit.as_secs_f64() * 1e3
    );

    let values = |prefix: &str| -> BTreeMap<String, SecretValue> {
        (0..VALUES)
            .map(|i| {
                (
                    format!("KEY_{i}"),
                    SecretValue::from(format!("{prefix}-value-{i}-{}", "x".repeat(24))),
                )
            })
            .collect()
    };

    // Seal a new manifest of 10 values with public keys only (one new session).
    let start = Instant::now();
    let mut manifests = Vec::with_capacity(MANIFESTS);
    for m in 0..MANIFESTS {
        let path = SecretPath::parse(&format!("team{}/app{m}", m % 10)).expect("valid");
        let mut manifest = Manifest::new(path, Scope::Strict);
        manifest
            .seal_values(
                "bench",
                values(&m.to_string()),
                &recipients,
                &AgeIdentities::new(),
                &names,
            )
            .expect("seals");
        manifests.push(manifest);
    }
    let seal_manifests = start.elapsed();
    println!(
        "seal: new manifest, {VALUES} values, no identity {:>9.1} µs/manifest",
        per_op(seal_manifests, MANIFESTS)
    );

    // Seal one value into an existing manifest with an identity (the session is reused).
    let mut target = manifests[0].clone();
    let start = Instant::now();
    for i in 0..MANIFESTS {
        let one = BTreeMap::from([("KEY_0".to_owned(), SecretValue::from(format!("v{i}")))]);
        target
            .seal_values("bench", one, &recipients, &identities, &names)
            .expect("seals");
    }
    println!(
        "seal: one value, session reused       {:>9.1} µs/value (includes one unwrap to open the session)",
        per_op(start.elapsed(), MANIFESTS)
    );

    // Reveal in process: parse the text, unwrap, open 10 values.
    let texts: Vec<String> = manifests.iter().map(Manifest::to_yaml).collect();
    let start = Instant::now();
    let mut opened = 0usize;
    for text in &texts {
        let manifest = Manifest::parse(text, "bench").expect("parses");
        opened += manifest
            .reveal("bench", &identities, &names)
            .expect("opens")
            .len();
    }
    let reveal = start.elapsed();
    assert_eq!(opened, MANIFESTS * VALUES);
    println!(
        "reveal: parse + unwrap + {VALUES} values        {:>9.1} µs/manifest, {:.2} µs/value, {:.2}× the unwrap limit",
        per_op(reveal, MANIFESTS),
        per_op(reveal, MANIFESTS * VALUES),
        reveal.as_secs_f64() / limit.as_secs_f64()
    );

    // Where a reveal's time goes: parsing, the session unwrap, the value opens.
    let start = Instant::now();
    let parsed: Vec<Manifest> = texts
        .iter()
        .map(|t| Manifest::parse(t, "bench").expect("parses"))
        .collect();
    let parse = start.elapsed();
    let start = Instant::now();
    for manifest in &parsed {
        let id = manifest.sessions.keys().next().expect("one session");
        manifest
            .open_session("bench", id, &identities, &names)
            .expect("opens");
    }
    let unwrap = start.elapsed();
    println!(
        "reveal breakdown: parse {:.1} µs, session unwrap (age file) {:.1} µs, {VALUES} value opens {:.1} µs per manifest",
        per_op(parse, MANIFESTS),
        per_op(unwrap, MANIFESTS),
        per_op(reveal.saturating_sub(parse + unwrap), MANIFESTS)
    );

    // The CLI on a real tree: 1,000 files × 10 values, one process.
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    let config = Config::new(vec![RecipientEntry {
        name: "bench".into(),
        key: identity.recipient().to_string(),
        role: None,
    }]);
    std::fs::create_dir_all(repo.join(".sealops")).expect("mkdir");
    std::fs::write(repo.join(".sealops/config.yaml"), config.to_yaml()).expect("config");
    for manifest in &manifests {
        let file = repo.join(format!("secrets/{}.yaml", manifest.path));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, manifest.to_yaml()).expect("write");
    }
    let key_file = repo.join("bench.key");
    sealops_core::fsutil::create_new(&key_file, identity_text.as_bytes(), 0o600).expect("key");
    let run_cli = || {
        let start = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_sealops"))
            .current_dir(repo)
            .args(["reveal", "secrets", "-o", "json", "--identity"])
            .arg(&key_file)
            .stdout(Stdio::null())
            .status()
            .expect("runs");
        assert!(status.success());
        start.elapsed()
    };
    run_cli();
    let cli = median((0..5).map(|_| run_cli()).collect());
    let empty_process = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                Command::new(env!("CARGO_BIN_EXE_sealops"))
                    .arg("--version")
                    .stdout(Stdio::null())
                    .status()
                    .expect("runs");
                start.elapsed()
            })
            .collect(),
    );
    println!(
        "cli: `sealops reveal secrets -o json`, {MANIFESTS} manifests × {VALUES} values: {:.1} ms = {:.2}× the limit of {MANIFESTS} unwraps ({:.1} ms); process start alone {:.1} ms",
        cli.as_secs_f64() * 1e3,
        cli.as_secs_f64() / limit.as_secs_f64(),
        limit.as_secs_f64() * 1e3,
        empty_process.as_secs_f64() * 1e3
    );
}
