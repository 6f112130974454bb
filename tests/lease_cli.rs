//! `sealops lease list|renew|revoke` and `sealops rotate`: the real binary against the real API
//! (`sealops_controller::api`: `bind` writes api.json, `serve` answers) over a real lease store.
//!
//! No controller runs here: a small task stands in for its lease task (it answers from the
//! store), so these tests cover locating the API, authentication, requests and rendering. The
//! controller's own lease task is tested where it is wired in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use sealops_controller::api::{self, ApiState, Command as ApiCommand, Selector};
use sealops_controller::leases::{Lease, LeaseStore};
use sealops_core::controller_config::ApiSettings;
use tokio::sync::mpsc;

const SEALOPS: &str = env!("CARGO_BIN_EXE_sealops");
/// Stands for a lease's sealed password: no output may contain it.
const SEALED: &str = "AGE-SEALED-PASSWORD-MARKER";

/// A state directory with `api.json`, `api.token` and a lease store, served on 127.0.0.1:0.
struct Controller {
    dir: tempfile::TempDir,
    /// Serves until the test ends: dropping it stops the API and the stand-in task.
    _runtime: tokio::runtime::Runtime,
    store: Arc<LeaseStore>,
    url: String,
}

fn lease(backend: &str, role: &str, username: &str, expires_in: i64) -> Lease {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut lease = Lease::issued(
        backend,
        role,
        username,
        "payments",
        now,
        Duration::from_secs(3600),
        Duration::from_secs(7200),
        SEALED.to_owned(),
    );
    lease.expires_at = now + expires_in;
    lease
}

impl Controller {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LeaseStore::open(dir.path()).expect("store"));
        store
            .put(&lease("main-pg", "app", "v-app-1", 3900))
            .expect("put");
        store
            .put(&lease("main-pg", "app", "v-app-2", 270))
            .expect("put");
        let mut failing = lease("cache", "worker", "w-1", -180);
        failing.state = sealops_controller::leases::LeaseState::Revoking;
        failing.last_error = Some("connection refused".to_owned());
        store.put(&failing).expect("put");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (listener, token) = runtime
            .block_on(api::bind(&ApiSettings::default(), dir.path()))
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (commands, receiver) = mpsc::channel(4);
        runtime.spawn(stand_in(store.clone(), receiver));
        runtime.spawn(api::serve(
            listener,
            ApiState::new(store.clone(), commands, token),
            std::future::pending(),
        ));
        Self {
            dir,
            _runtime: runtime,
            store,
            url,
        }
    }

    fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("api.token")
    }

    /// `sealops ARGS --state-dir DIR`, with no location from the environment.
    fn sealops(&self, args: &[&str]) -> Command {
        let mut cmd = sealops();
        cmd.args(args).arg("--state-dir").arg(self.state_dir());
        cmd
    }
}

fn sealops() -> Command {
    let mut cmd = Command::new(SEALOPS);
    cmd.env_remove("SEALOPS_STATE_DIR")
        .env_remove("SEALOPS_API_URL")
        .env_remove("SEALOPS_API_TOKEN_FILE")
        // A proxy from the environment must not see the token: the CLI ignores these.
        .env("http_proxy", "http://192.0.2.1:9")
        .env("HTTP_PROXY", "http://192.0.2.1:9")
        .env("ALL_PROXY", "http://192.0.2.1:9");
    cmd
}

/// Answers as the controller's lease task would, from the store: renew extends by an hour,
/// revoke removes, rotation of `broken/…` fails.
async fn stand_in(store: Arc<LeaseStore>, mut commands: mpsc::Receiver<ApiCommand>) {
    let selected = |store: &LeaseStore, selector: &Selector| -> Vec<Lease> {
        let prefix = match selector {
            Selector::Id(id) | Selector::Prefix(id) => id.as_str(),
        };
        store
            .list(prefix)
            .expect("list")
            .into_iter()
            .filter(|l| !matches!(selector, Selector::Id(id) if &l.id != id))
            .collect()
    };
    while let Some(command) = commands.recv().await {
        match command {
            ApiCommand::Renew { selector, reply } => {
                let mut renewed = Vec::new();
                for mut lease in selected(&store, &selector) {
                    lease.expires_at += 3600;
                    store.put(&lease).expect("put");
                    renewed.push(lease);
                }
                let _ = reply.send(Ok(renewed));
            }
            ApiCommand::Revoke { selector, reply } => {
                let mut revoked = Vec::new();
                for lease in selected(&store, &selector) {
                    store.remove(&lease.id).expect("remove");
                    revoked.push(lease.id);
                }
                let _ = reply.send(Ok(revoked));
            }
            ApiCommand::Rotate { path, reply } => {
                let _ = reply.send(if path.starts_with("broken/") {
                    Err(format!(
                        "rotation {path}: the database refused the connection"
                    ))
                } else {
                    Ok(())
                });
            }
        }
    }
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SEALED), "sealed password shown: {text}");
    }
    (out.status.code().expect("exit code"), stdout, stderr)
}

#[test]
fn list_shows_a_table_filters_by_prefix_and_prints_json() {
    let controller = Controller::start();
    let (code, stdout, stderr) = run(&mut controller.sealops(&["lease", "list"]));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (line, words) in lines.iter().zip([
        &["ID", "TARGET", "STATE", "EXPIRES IN", "LAST ERROR"][..],
        &[
            "cache/creds/worker/w-1",
            "payments",
            "revoking",
            "expired 3m",
            "connection refused",
        ],
        &[
            "main-pg/creds/app/v-app-1",
            "payments",
            "active",
            "1h0",
            "-",
        ],
        &["main-pg/creds/app/v-app-2", "payments", "active", "4m", "-"],
    ]) {
        for word in words {
            assert!(line.contains(word), "{word:?} not in {line:?}\n{stdout}");
        }
    }
    // Columns line up.
    let column = lines[0].find("TARGET").expect("header");
    assert!(
        lines
            .iter()
            .all(|l| l[column..].starts_with("payments") || l[column..].starts_with("TARGET"))
    );

    let (code, stdout, _) =
        run(&mut controller.sealops(&["lease", "list", "--prefix", "main-pg/"]));
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(!stdout.contains("cache/"), "{stdout}");

    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "list", "--prefix", "nothing/"]));
    assert_eq!((code, stdout.as_str()), (0, ""));
    assert!(stderr.contains("no leases under nothing/"), "{stderr}");

    for json in [&["--json"][..], &["-o", "json"]] {
        let mut args = vec!["lease", "list", "--prefix", "main-pg/creds/app/"];
        args.extend_from_slice(json);
        let (code, stdout, stderr) = run(&mut controller.sealops(&args));
        assert_eq!(code, 0, "{stderr}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
        let ids: Vec<&str> = doc["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| l["id"].as_str().expect("id"))
            .collect();
        assert_eq!(
            ids,
            ["main-pg/creds/app/v-app-1", "main-pg/creds/app/v-app-2"]
        );
        assert!(doc["leases"][0].get("sealed_password").is_none(), "{doc}");
    }
}

#[test]
fn renew_and_revoke_print_what_the_controller_did() {
    let controller = Controller::start();
    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "renew", "main-pg/creds/app/v-app-2"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("renewed main-pg/creds/app/v-app-2: expires in 1h0"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "renew", "--prefix", "main-pg/"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    let (code, _, stderr) =
        run(&mut controller.sealops(&["lease", "renew", "main-pg/creds/app/v-typo"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("no lease main-pg/creds/app/v-typo"),
        "{stderr}"
    );

    // An empty prefix is refused by the controller; "/" is everything.
    let (code, _, stderr) = run(&mut controller.sealops(&["lease", "revoke", "--prefix", ""]));
    assert_eq!(code, 2);
    assert!(stderr.contains(r#"use the prefix "/""#), "{stderr}");
    assert_eq!(controller.store.list("").expect("list").len(), 3);

    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "revoke", "cache/creds/worker/w-1"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "revoked cache/creds/worker/w-1\n");

    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "revoke", "--prefix", "/"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "revoked main-pg/creds/app/v-app-1\nrevoked main-pg/creds/app/v-app-2\n"
    );
    assert!(controller.store.list("").expect("list").is_empty());

    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["lease", "revoke", "--prefix", "/"]));
    assert_eq!((code, stdout.as_str()), (0, ""));
    assert!(stderr.contains("no lease revoked"), "{stderr}");
}

#[test]
fn rotate_checks_the_path_and_reports_the_controllers_answer() {
    let controller = Controller::start();
    let (code, stdout, stderr) =
        run(&mut controller.sealops(&["rotate", "main-pg/static-creds/app"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "rotated main-pg/static-creds/app\n");

    let (code, _, stderr) = run(&mut controller.sealops(&["rotate", "broken/static-creds/app"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("HTTP 500")
            && stderr.contains("rotation broken/static-creds/app: the database refused"),
        "{stderr}"
    );

    // A malformed path is named before anything is asked: no controller is needed for it.
    let nowhere = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = run(sealops()
        .args(["rotate", "main-pg/creds/app", "--state-dir"])
        .arg(nowhere.path()));
    assert_eq!(code, 2);
    assert!(stderr.contains("<backend>/static-creds/<role>"), "{stderr}");
}

#[test]
fn the_api_is_found_by_flags_and_environment_and_the_token_is_checked() {
    let controller = Controller::start();
    let token = controller.token_file();
    let (code, stdout, stderr) = run(sealops()
        .args([
            "lease",
            "list",
            "--api-url",
            &controller.url,
            "--token-file",
        ])
        .arg(&token));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");

    let (code, stdout, stderr) = run(sealops()
        .args(["lease", "list"])
        .env("SEALOPS_API_URL", &controller.url)
        .env("SEALOPS_API_TOKEN_FILE", &token));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");

    let (code, _, stderr) = run(sealops()
        .args(["lease", "list"])
        .env("SEALOPS_STATE_DIR", controller.state_dir()));
    assert_eq!(code, 0, "{stderr}");

    // Another token: refused, and the error names the file.
    let wrong = controller.state_dir().join("wrong.token");
    std::fs::write(&wrong, "f".repeat(64)).expect("write");
    let (code, _, stderr) = run(&mut controller.sealops(&[
        "lease",
        "list",
        "--token-file",
        wrong.to_str().expect("UTF-8 path"),
    ]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("refused the token") && stderr.contains(&wrong.display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains(&"f".repeat(64)), "{stderr}");
    let real = std::fs::read_to_string(&token).expect("token");
    assert!(!stderr.contains(real.trim()), "{stderr}");

    let (code, _, stderr) = run(sealops()
        .args([
            "lease",
            "list",
            "--api-url",
            "http://192.0.2.1:9751",
            "--token-file",
        ])
        .arg(&token));
    assert_eq!(code, 2);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn a_controller_that_is_not_running_is_named_with_the_fix() {
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run(sealops()
        .args(["lease", "list", "--state-dir"])
        .arg(empty.path()));
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("is the controller running? api.json not found in")
            && stderr.contains(&empty.path().display().to_string())
            && stderr.contains("--state-dir"),
        "{stderr}"
    );

    // A stopped controller leaves api.json behind: nothing listens at its address any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let token = empty.path().join("api.token");
    std::fs::write(&token, "a".repeat(64)).expect("write");
    std::fs::write(
        empty.path().join("api.json"),
        serde_json::json!({"url": format!("http://127.0.0.1:{port}"), "token_file": token})
            .to_string(),
    )
    .expect("write");
    let (code, _, stderr) = run(sealops()
        .args(["rotate", "main-pg/static-creds/app", "--state-dir"])
        .arg(empty.path()));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "cannot reach the controller's API at http://127.0.0.1:{port}"
        )) && stderr.contains("is the controller running?"),
        "{stderr}"
    );

    std::fs::write(empty.path().join("api.json"), "{}").expect("write");
    let (code, _, stderr) = run(sealops()
        .args(["lease", "list", "--state-dir"])
        .arg(empty.path()));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("is not the controller's api.json"),
        "{stderr}"
    );
}

#[test]
fn renew_and_revoke_take_an_id_or_a_prefix() {
    for args in [
        &["lease", "renew"][..],
        &["lease", "revoke"],
        &[
            "lease",
            "revoke",
            "main-pg/creds/app/v-1",
            "--prefix",
            "main-pg/",
        ],
        &["lease", "list", "--json", "-o", "table"],
        &["rotate"],
    ] {
        let (code, stdout, stderr) = run(sealops().args(args));
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr}");
    }
    let (code, stdout, _) = run(sealops().args(["lease", "--help"]));
    assert_eq!(code, 0);
    for word in [
        "list",
        "renew",
        "revoke",
        "--state-dir",
        "--api-url",
        "--token-file",
    ] {
        assert!(stdout.contains(word), "{word}: {stdout}");
    }
}
