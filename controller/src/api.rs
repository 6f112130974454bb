//! The controller's local API for leases and rotation, used by `sealops lease …` and
//! `sealops rotate`.
//!
//! It changes credentials on demand, so two gates stand before every endpoint: the peer must be
//! on loopback (403 otherwise; the listen address is loopback too, see
//! [`ApiSettings::listen_addr`]), and the request must carry `Authorization: Bearer <token>` with
//! the token of [`load_or_create_token`] (401 otherwise, the same answer for a missing and a
//! wrong token). Reads come straight from the [`LeaseStore`]; changes are handed to the lease
//! task as [`Command`]s and the API waits for its answer, so one task alone ever talks to the
//! databases.
//!
//! The sealed password of a lease never leaves the controller: responses carry [`LeaseView`]s.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{ExtensionRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sealops_core::controller_config::ApiSettings;
use serde::Deserialize;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::leases::{Lease, LeaseStore};

/// How long a request waits for the lease task's answer before it gets 504.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest request body; the API's bodies are one short JSON object.
pub const BODY_LIMIT: usize = 64 * 1024;

pub use sealops_core::lease_api::{ENDPOINT_FILE, Endpoint, LeaseView};
use sealops_core::lease_api::{
    ErrorBody, LEASES_PATH, LeaseList, RENEW_PATH, REVOKE_PATH, ROTATE_PATH, Renewed, Revoked,
    RotateRequest, Rotated, SelectRequest,
};

/// Tokens shorter than this are refused: the token is all that stands between a local user and
/// the credentials.
const MIN_TOKEN_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Which leases a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One lease, by its id (`<backend>/creds/<role>/<username>`).
    Id(String),
    /// Every lease whose id starts with this. `Prefix("")` means every lease: the API sends it
    /// only when the caller asked for `"/"` explicitly, never for an empty prefix.
    Prefix(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "lease {id}"),
            Self::Prefix(prefix) if prefix.is_empty() => f.write_str("every lease"),
            Self::Prefix(prefix) => write!(f, "leases under {prefix}"),
        }
    }
}

/// A request the lease task answers. Errors are messages for the caller: no secret in them.
#[derive(Debug)]
pub enum Command {
    /// Extend the selected leases now (within their max TTL); reply with them as renewed.
    Renew {
        selector: Selector,
        reply: oneshot::Sender<Result<Vec<Lease>, String>>,
    },
    /// Revoke the selected leases now; reply with the ids revoked.
    Revoke {
        selector: Selector,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Rotate the static role at `path` (`<backend>/static-creds/<role>`) now.
    Rotate {
        path: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What the endpoints share.
pub struct ApiState {
    pub leases: Arc<LeaseStore>,
    pub commands: mpsc::Sender<Command>,
    token: Zeroizing<String>,
    /// HMAC(token, token): requests are checked by computing HMAC(token, presented) and
    /// comparing tags in constant time, which also hides the token's length.
    expected: Zeroizing<Vec<u8>>,
    timeout: Duration,
}

impl ApiState {
    pub fn new(
        leases: Arc<LeaseStore>,
        commands: mpsc::Sender<Command>,
        token: Zeroizing<String>,
    ) -> Self {
        let expected = Zeroizing::new(tag(&token, token.as_bytes()));
        Self {
            leases,
            commands,
            token,
            expected,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long a request waits for the lease task (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer)
        else {
            return false;
        };
        let mut mac = keyed(&self.token);
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.expected).is_ok()
    }
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("leases", &self.leases)
            .field("commands", &self.commands)
            .field("token", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn keyed(token: &str) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(token.as_bytes()).expect("HMAC accepts keys of any length")
}

fn tag(token: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = keyed(token);
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The credentials of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// What the API shows of a stored lease (never its sealed password).
fn view(lease: &Lease) -> LeaseView {
    LeaseView {
        id: lease.id.clone(),
        backend: lease.backend.clone(),
        role: lease.role.clone(),
        username: lease.username.clone(),
        target: lease.target.clone(),
        issued_at: lease.issued_at,
        expires_at: lease.expires_at,
        max_expires_at: lease.max_expires_at,
        state: lease.state,
        revoke_after: lease.revoke_after,
        revoke_attempts: lease.revoke_attempts,
        last_error: lease.last_error.clone(),
        replace: lease.replace,
    }
}

/// Why the API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Listen(String),
    #[error("api.listen {address}: cannot listen: {source}")]
    Bind { address: String, source: io::Error },
    #[error(transparent)]
    Token(io::Error),
    #[error("cannot write {}: {source}", path.display())]
    Endpoint { path: PathBuf, source: io::Error },
}

/// Reads the API token from `path`, or creates it there (32 random bytes as hex, mode 0600,
/// written atomically) when the file does not exist.
///
/// A token file that group or others may read or write is refused: whoever reads it can revoke
/// and rotate credentials. Errors name the file, never its content.
pub fn load_or_create_token(path: &Path) -> io::Result<Zeroizing<String>> {
    match std::fs::File::open(path) {
        Ok(file) => read_token(path, file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
            let token = Zeroizing::new(hex::encode(&bytes[..]));
            let mut contents = Zeroizing::new(token.as_bytes().to_vec());
            contents.push(b'\n');
            sealops_core::fsutil::write_atomic(path, &contents, 0o600).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create the API token file {}: {e}", path.display()),
                )
            })?;
            Ok(token)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot read the API token file {}: {e}", path.display()),
        )),
    }
}

fn read_token(path: &Path, mut file: std::fs::File) -> io::Result<Zeroizing<String>> {
    use std::io::Read as _;
    let problem = |kind: io::ErrorKind, what: String| {
        io::Error::new(kind, format!("API token file {}: {what}", path.display()))
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(problem(
            io::ErrorKind::InvalidInput,
            "is not a regular file".to_owned(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(problem(
                io::ErrorKind::PermissionDenied,
                format!(
                    "mode {mode:04o} lets group or others read or write it; `chmod 600 {}` (and replace the token if others may have read it: delete the file and restart the controller)",
                    path.display()
                ),
            ));
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| problem(e.kind(), e.to_string()))?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(problem(
            io::ErrorKind::InvalidData,
            format!(
                "the token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces; delete the file and the controller makes a new one"
            ),
        ));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// Everything wrong with the API's settings and token file on this machine, for
/// `check-config`. A token file that does not exist yet is fine: the controller creates it.
pub fn problems(settings: &ApiSettings, state_dir: &Path) -> Vec<String> {
    if !settings.enabled {
        return Vec::new();
    }
    // The listen address was checked when the configuration parsed.
    let mut problems = Vec::new();
    let path = settings.token_file(state_dir);
    match std::fs::File::open(&path) {
        Ok(file) => {
            if let Err(e) = read_token(&path, file) {
                problems.push(format!("api.token_file: {e}"));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("api.token_file: {}: {e}", path.display())),
    }
    problems
}

/// Loads (or creates) the token, binds the listen address of `settings`, and writes
/// `<state_dir>/api.json` with the bound address, so the CLI finds a controller that listens on
/// port 0. Callers check `settings.enabled` first.
pub async fn bind(
    settings: &ApiSettings,
    state_dir: &Path,
) -> Result<(TcpListener, Zeroizing<String>), ApiError> {
    let address = settings.listen_addr().map_err(ApiError::Listen)?;
    let token_file =
        std::path::absolute(settings.token_file(state_dir)).map_err(ApiError::Token)?;
    let token = load_or_create_token(&token_file).map_err(ApiError::Token)?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ApiError::Bind {
            address: settings.listen.clone(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ApiError::Bind {
        address: settings.listen.clone(),
        source,
    })?;
    let endpoint = Endpoint {
        url: format!("http://{bound}"),
        token_file,
    };
    let path = state_dir.join(ENDPOINT_FILE);
    let mut json = serde_json::to_vec_pretty(&endpoint).expect("the endpoint serialises");
    json.push(b'\n');
    // Not secret (an address and a file name); readable so that any local user's CLI finds the
    // API, which still needs the token only the controller's user can read.
    sealops_core::fsutil::write_atomic(&path, &json, 0o644)
        .map_err(|source| ApiError::Endpoint { path, source })?;
    Ok((listener, token))
}

/// The endpoints, with `state` attached.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route(LEASES_PATH, get(list))
        .route(RENEW_PATH, post(renew))
        .route(REVOKE_PATH, post(revoke))
        .route(ROTATE_PATH, post(rotate))
        // On every route and the fallback: a stranger learns nothing, not even which paths exist.
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight
/// and returns.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A failed request: its status and a message for the caller.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

async fn guard(
    State(state): State<Arc<ApiState>>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    request: Request,
    next: Next,
) -> Response {
    let peer = match peer {
        Ok(ConnectInfo(peer)) if peer.ip().to_canonical().is_loopback() => peer,
        other => {
            let peer = other.ok().map(|ConnectInfo(peer)| peer);
            tracing::warn!(?peer, "lease API request refused: not from loopback");
            return fail(
                StatusCode::FORBIDDEN,
                "the lease API serves clients on this machine (loopback) only",
            )
            .into_response();
        }
    };
    if !state.authorised(request.headers()) {
        tracing::warn!(%peer, path = request.uri().path(), "lease API request refused: no valid token");
        let mut response = fail(
            StatusCode::UNAUTHORIZED,
            "unauthorised: send `Authorization: Bearer <token>` with the token of the controller's api.token_file",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    prefix: Option<String>,
}

async fn list(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) = query.map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("{}; the only parameter is `prefix`", e.body_text()),
        )
    })?;
    let prefix = match query.prefix.as_deref() {
        None | Some("/") => String::new(),
        Some(prefix) => prefix.to_owned(),
    };
    let leases = read_leases(&state, prefix).await?;
    let views: Vec<LeaseView> = leases.iter().map(view).collect();
    Ok(axum::Json(LeaseList { leases: views }).into_response())
}

/// The store is read on the blocking pool: redb does file I/O.
async fn read_leases(state: &ApiState, prefix: String) -> Result<Vec<Lease>, Failure> {
    let store = state.leases.clone();
    tokio::task::spawn_blocking(move || store.list(&prefix))
        .await
        .map_err(|_| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the leases failed",
            )
        })?
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

const SELECTOR_SHAPE: &str =
    "send {\"id\": \"<backend>/creds/<role>/<username>\"} or {\"prefix\": \"<backend>/…\"}";

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("the body is not the expected JSON ({e}): {shape}"),
        )
    })
}

/// The selector of a renew or revoke body; an id must name a lease the store holds.
async fn selector(state: &ApiState, body: &[u8]) -> Result<Selector, Failure> {
    let body: SelectRequest = parse_body(body, SELECTOR_SHAPE)?;
    match (body.id, body.prefix) {
        (Some(_), Some(_)) | (None, None) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("give exactly one of `id` and `prefix`: {SELECTOR_SHAPE}"),
        )),
        (Some(id), None) => {
            if id.is_empty() {
                return Err(fail(StatusCode::BAD_REQUEST, "the lease id is empty"));
            }
            // Asked here rather than left to the lease task, so a typo gets a 404 and a hint.
            if !read_leases(state, id.clone())
                .await?
                .iter()
                .any(|lease| lease.id == id)
            {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    format!("no lease {id}; `sealops lease list` shows the leases"),
                ));
            }
            Ok(Selector::Id(id))
        }
        // An empty prefix is what an unset shell variable gives: refused, so that selecting every
        // lease takes a deliberate "/".
        (None, Some(prefix)) if prefix.is_empty() => Err(fail(
            StatusCode::BAD_REQUEST,
            "the prefix is empty: name one (e.g. \"main-pg/\" or \"main-pg/creds/app/\"); to select every lease use the prefix \"/\"",
        )),
        (None, Some(prefix)) if prefix == "/" => Ok(Selector::Prefix(String::new())),
        (None, Some(prefix)) => Ok(Selector::Prefix(prefix)),
    }
}

/// Hands a command to the lease task and waits for its answer, within the state's timeout.
async fn ask<T>(
    state: &ApiState,
    command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
) -> Result<T, Failure> {
    let (reply, answer) = oneshot::channel();
    let exchange = async {
        state.commands.send(command(reply)).await.map_err(|_| {
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller's lease task is not running; see the controller's log",
            )
        })?;
        answer
            .await
            .map_err(|_| {
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the lease task dropped the request without an answer; see the controller's log",
                )
            })?
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))
    };
    tokio::time::timeout(state.timeout, exchange)
        .await
        .map_err(|_| {
            fail(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the lease task did not answer within {}; it may still finish: check `sealops lease list` and the controller's log",
                    humantime::format_duration(state.timeout)
                ),
            )
        })?
}

async fn renew(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, Failure> {
    let selector = selector(&state, &body).await?;
    tracing::info!(%peer, %selector, "lease API: renew");
    let renewed = ask(&state, |reply| Command::Renew {
        selector: selector.clone(),
        reply,
    })
    .await?;
    let views: Vec<LeaseView> = renewed.iter().map(view).collect();
    Ok(axum::Json(Renewed { renewed: views }).into_response())
}

async fn revoke(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, Failure> {
    let selector = selector(&state, &body).await?;
    tracing::info!(%peer, %selector, "lease API: revoke");
    let revoked = ask(&state, |reply| Command::Revoke {
        selector: selector.clone(),
        reply,
    })
    .await?;
    Ok(axum::Json(Revoked { revoked }).into_response())
}

async fn rotate(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, Failure> {
    let RotateRequest { path } = parse_body(
        &body,
        "send {\"path\": \"<backend>/static-creds/<role>\"} or {\"path\": \"<backend>/rotate-root\"}",
    )?;
    sealops_core::backend::RotationTarget::parse(&path)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    tracing::info!(%peer, path, "lease API: rotate");
    ask(&state, |reply| Command::Rotate {
        path: path.clone(),
        reply,
    })
    .await?;
    Ok(axum::Json(Rotated { rotated: path }).into_response())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::connect_info::MockConnectInfo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::task::JoinHandle;

    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// Stands for a lease's sealed password: no response may contain it.
    const SEALED: &str = "-----BEGIN AGE ENCRYPTED FILE----- sealed-password-marker";

    fn lease(backend: &str, role: &str, username: &str) -> Lease {
        Lease::issued(
            backend,
            role,
            username,
            "payments",
            1_000,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
            SEALED.to_owned(),
        )
    }

    /// Stands in for the controller's lease task in these routing and authentication tests:
    /// it records each command and answers from the store. Paths of rotations say how to
    /// answer: `broken/…` fails, `slow/…` never answers, `drop/…` drops the reply.
    fn stand_in(
        store: Arc<LeaseStore>,
        mut commands: mpsc::Receiver<Command>,
        seen: Arc<Mutex<Vec<String>>>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(command) = commands.recv().await {
                let matching = |selector: &Selector| -> Vec<Lease> {
                    let all = store.list("").expect("list");
                    all.into_iter()
                        .filter(|l| match selector {
                            Selector::Id(id) => &l.id == id,
                            Selector::Prefix(prefix) => l.id.starts_with(prefix.as_str()),
                        })
                        .collect()
                };
                match command {
                    Command::Renew { selector, reply } => {
                        seen.lock().unwrap().push(format!("renew {selector:?}"));
                        let renewed = matching(&selector)
                            .into_iter()
                            .map(|mut l| {
                                l.expires_at += 600;
                                l
                            })
                            .collect();
                        let _ = reply.send(Ok(renewed));
                    }
                    Command::Revoke { selector, reply } => {
                        seen.lock().unwrap().push(format!("revoke {selector:?}"));
                        let ids = matching(&selector).into_iter().map(|l| l.id).collect();
                        let _ = reply.send(Ok(ids));
                    }
                    Command::Rotate { path, reply } => {
                        seen.lock().unwrap().push(format!("rotate {path}"));
                        if path.starts_with("broken/") {
                            let _ = reply.send(Err(format!(
                                "rotation {path}: the database refused the connection"
                            )));
                        } else if path.starts_with("slow/") {
                            held.push(reply);
                        } else if path.starts_with("drop/") {
                            drop(reply);
                        } else {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
        })
    }

    struct Server {
        address: SocketAddr,
        seen: Arc<Mutex<Vec<String>>>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<io::Result<()>>,
        _dir: tempfile::TempDir,
    }

    #[derive(Clone, Copy)]
    enum LeaseTask {
        Running,
        Gone,
    }

    impl Server {
        async fn start() -> Self {
            Self::start_with(LeaseTask::Running, DEFAULT_TIMEOUT, None).await
        }

        /// `peer` replaces the connection's address (to play a remote client).
        async fn start_with(task: LeaseTask, timeout: Duration, peer: Option<SocketAddr>) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(LeaseStore::open(dir.path()).expect("store"));
            store.put(&lease("main-pg", "app", "v-app-1")).expect("put");
            store.put(&lease("main-pg", "app", "v-app-2")).expect("put");
            store
                .put(&lease("main-pg", "report", "v-rep-1"))
                .expect("put");
            store.put(&lease("cache", "worker", "w-1")).expect("put");
            let (commands, receiver) = mpsc::channel(4);
            let seen = Arc::new(Mutex::new(Vec::new()));
            match task {
                LeaseTask::Running => {
                    stand_in(store.clone(), receiver, seen.clone());
                }
                LeaseTask::Gone => drop(receiver),
            }
            let state = ApiState::new(store, commands, Zeroizing::new(TOKEN.to_owned()))
                .with_timeout(timeout);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let (stop, stopped) = oneshot::channel::<()>();
            let shutdown = async {
                let _ = stopped.await;
            };
            let task = match peer {
                None => tokio::spawn(serve(listener, state, shutdown)),
                Some(peer) => tokio::spawn(async move {
                    axum::serve(listener, router(state).layer(MockConnectInfo(peer)))
                        .with_graceful_shutdown(shutdown)
                        .await
                }),
            };
            Self {
                address,
                seen,
                stop: Some(stop),
                task,
                _dir: dir,
            }
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }

        async fn get(&self, path: &str) -> Reply {
            let auth = format!("Bearer {TOKEN}");
            request(self.address, "GET", path, &[("Authorization", &auth)], b"").await
        }

        async fn post(&self, path: &str, body: &str) -> Reply {
            let auth = format!("Bearer {TOKEN}");
            request(
                self.address,
                "POST",
                path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
            .await
        }

        async fn stop(mut self) {
            drop(self.stop.take());
            (&mut self.task)
                .await
                .expect("server task")
                .expect("clean shutdown");
        }
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        /// Names in lower case.
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
        }

        fn error(&self) -> String {
            self.json()["error"]
                .as_str()
                .unwrap_or_else(|| panic!("no error: {}", self.body))
                .to_owned()
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, value)| value.as_str())
        }
    }

    /// One HTTP/1.1 request on a fresh connection, read until the server closes it.
    async fn request(
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("send head");
        stream.write_all(body).await.expect("send body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read reply");
        let raw = String::from_utf8(raw).expect("UTF-8 reply");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn ids(value: &serde_json::Value) -> Vec<&str> {
        value
            .as_array()
            .expect("array")
            .iter()
            .map(|l| l["id"].as_str().expect("id"))
            .collect()
    }

    #[tokio::test]
    async fn requests_without_the_token_are_401_and_say_nothing_more() {
        let server = Server::start().await;
        let wrong = format!("Bearer {}", TOKEN.replace('0', "1"));
        let short = format!("Bearer {}", &TOKEN[..10]);
        let basic = format!("Basic {TOKEN}");
        let cases: [&[(&str, &str)]; 6] = [
            &[],
            &[("Authorization", &wrong)],
            &[("Authorization", &short)],
            &[("Authorization", &basic)],
            &[("Authorization", "Bearer")],
            &[("Authorization", "Bearer ")],
        ];
        let mut bodies = Vec::new();
        for headers in cases {
            for (method, path) in [
                ("GET", "/v1/leases"),
                ("POST", "/v1/leases/revoke"),
                ("POST", "/v1/rotate"),
                ("GET", "/v1/nothing-here"),
            ] {
                let reply =
                    request(server.address, method, path, headers, br#"{"prefix":"/"}"#).await;
                assert_eq!(reply.status, 401, "{method} {path} {headers:?}");
                assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
                assert!(!reply.body.contains(TOKEN), "{}", reply.body);
                bodies.push(reply.body);
            }
        }
        bodies.dedup();
        assert_eq!(bodies.len(), 1, "one answer for every failure: {bodies:?}");
        assert!(server.seen().is_empty(), "nothing reached the lease task");
        // The scheme is case-insensitive, as HTTP says.
        let lower = format!("bearer {TOKEN}");
        let reply = request(
            server.address,
            "GET",
            "/v1/leases",
            &[("authorization", &lower)],
            b"",
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        server.stop().await;
    }

    #[tokio::test]
    async fn peers_off_loopback_are_403_even_with_the_token() {
        let remote: SocketAddr = "192.0.2.7:40000".parse().expect("address");
        let server = Server::start_with(LeaseTask::Running, DEFAULT_TIMEOUT, Some(remote)).await;
        let reply = server.get("/v1/leases").await;
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(reply.error().contains("loopback"), "{}", reply.body);
        let reply = server.post("/v1/leases/revoke", r#"{"prefix":"/"}"#).await;
        assert_eq!(reply.status, 403);
        assert!(server.seen().is_empty());
        server.stop().await;

        let mapped: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().expect("address");
        let server = Server::start_with(LeaseTask::Running, DEFAULT_TIMEOUT, Some(mapped)).await;
        assert_eq!(server.get("/v1/leases").await.status, 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn list_filters_by_prefix_and_never_shows_the_sealed_password() {
        let server = Server::start().await;
        let all = server.get("/v1/leases").await;
        assert_eq!(all.status, 200, "{}", all.body);
        assert_eq!(all.header("content-type"), Some("application/json"));
        assert_eq!(
            ids(&all.json()["leases"]),
            [
                "cache/creds/worker/w-1",
                "main-pg/creds/app/v-app-1",
                "main-pg/creds/app/v-app-2",
                "main-pg/creds/report/v-rep-1",
            ]
        );
        let first = &all.json()["leases"][1];
        assert_eq!(first["target"], "payments");
        assert_eq!(first["state"], "active");
        assert_eq!(first["expires_at"], 4_600);
        assert!(first.get("sealed_password").is_none(), "{first}");

        let app = server.get("/v1/leases?prefix=main-pg/creds/app/").await;
        assert_eq!(
            ids(&app.json()["leases"]),
            ["main-pg/creds/app/v-app-1", "main-pg/creds/app/v-app-2"]
        );
        // Percent-encoded like any query value.
        let encoded = server
            .get("/v1/leases?prefix=main-pg%2Fcreds%2Freport")
            .await;
        assert_eq!(
            ids(&encoded.json()["leases"]),
            ["main-pg/creds/report/v-rep-1"]
        );
        let slash = server.get("/v1/leases?prefix=/").await;
        assert_eq!(ids(&slash.json()["leases"]).len(), 4);
        let none = server.get("/v1/leases?prefix=nope/").await;
        assert_eq!((none.status, none.body.as_str()), (200, r#"{"leases":[]}"#));

        let typo = server.get("/v1/leases?prefx=main-pg/").await;
        assert_eq!(typo.status, 400, "{}", typo.body);
        assert!(typo.error().contains("prefix"), "{}", typo.body);

        for reply in [&all, &app, &encoded, &slash] {
            assert!(!reply.body.contains("sealed"), "{}", reply.body);
            assert!(!reply.body.contains("AGE ENCRYPTED"), "{}", reply.body);
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn renew_forwards_the_selector_and_the_renewed_leases() {
        let server = Server::start().await;
        let reply = server
            .post("/v1/leases/renew", r#"{"id":"main-pg/creds/app/v-app-2"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let renewed = &reply.json()["renewed"];
        assert_eq!(ids(renewed), ["main-pg/creds/app/v-app-2"]);
        assert_eq!(renewed[0]["expires_at"], 5_200);
        assert!(!reply.body.contains("sealed"), "{}", reply.body);
        assert!(!reply.body.contains("AGE ENCRYPTED"), "{}", reply.body);

        let reply = server
            .post("/v1/leases/renew", r#"{"prefix":"main-pg/"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(ids(&reply.json()["renewed"]).len(), 3);
        assert!(!reply.body.contains("AGE ENCRYPTED"), "{}", reply.body);
        assert_eq!(
            server.seen(),
            [
                r#"renew Id("main-pg/creds/app/v-app-2")"#,
                r#"renew Prefix("main-pg/")"#
            ]
        );

        let reply = server
            .post("/v1/leases/renew", r#"{"id":"main-pg/creds/app/v-nobody"}"#)
            .await;
        assert_eq!(reply.status, 404, "{}", reply.body);
        assert!(
            reply.error().contains("sealops lease list"),
            "{}",
            reply.body
        );
        assert_eq!(server.seen().len(), 2, "an unknown id is not forwarded");
        server.stop().await;
    }

    #[tokio::test]
    async fn revoke_forwards_the_selector_and_everything_takes_a_slash() {
        let server = Server::start().await;
        let reply = server
            .post("/v1/leases/revoke", r#"{"prefix":"main-pg/creds/app/"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            serde_json::json!({"revoked": ["main-pg/creds/app/v-app-1", "main-pg/creds/app/v-app-2"]})
        );
        let reply = server
            .post("/v1/leases/revoke", r#"{"id":"cache/creds/worker/w-1"}"#)
            .await;
        assert_eq!(
            reply.json(),
            serde_json::json!({"revoked": ["cache/creds/worker/w-1"]})
        );

        let empty = server.post("/v1/leases/revoke", r#"{"prefix":""}"#).await;
        assert_eq!(empty.status, 400, "{}", empty.body);
        assert!(
            empty.error().contains(r#"use the prefix "/""#),
            "{}",
            empty.body
        );

        let everything = server.post("/v1/leases/revoke", r#"{"prefix":"/"}"#).await;
        assert_eq!(everything.status, 200, "{}", everything.body);
        assert_eq!(
            everything.json()["revoked"].as_array().map(Vec::len),
            Some(4)
        );
        assert_eq!(
            server.seen(),
            [
                r#"revoke Prefix("main-pg/creds/app/")"#,
                r#"revoke Id("cache/creds/worker/w-1")"#,
                r#"revoke Prefix("")"#,
            ]
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn bad_bodies_are_400_and_reach_nothing() {
        let server = Server::start().await;
        for (path, body, says) in [
            ("/v1/leases/renew", "", "expected JSON"),
            ("/v1/leases/renew", "not json", "expected JSON"),
            ("/v1/leases/renew", "{}", "exactly one of"),
            (
                "/v1/leases/renew",
                r#"{"id":"main-pg/creds/app/v-app-1","prefix":"main-pg/"}"#,
                "exactly one of",
            ),
            ("/v1/leases/revoke", r#"{"ids":["x"]}"#, "unknown field"),
            ("/v1/leases/revoke", r#"{"id":""}"#, "empty"),
            ("/v1/leases/revoke", r#"{"prefix":7}"#, "expected JSON"),
            ("/v1/rotate", "{}", "missing field `path`"),
            (
                "/v1/rotate",
                r#"{"path":"main-pg/creds/app"}"#,
                "<backend>/static-creds/<role>",
            ),
            (
                "/v1/rotate",
                r#"{"path":"main-pg/static-creds/"}"#,
                "role name",
            ),
            (
                "/v1/rotate",
                r#"{"path":"../static-creds/app"}"#,
                "backend name",
            ),
            (
                "/v1/rotate",
                r#"{"path":"a/static-creds/b/c"}"#,
                "<backend>/static-creds/<role>",
            ),
        ] {
            let reply = server.post(path, body).await;
            assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
            assert!(
                reply.error().contains(says),
                "{path} {body}: {}",
                reply.body
            );
        }
        let reply = server.get("/v1/rotate").await;
        assert_eq!(reply.status, 405);
        let big = format!(r#"{{"path":"{}"}}"#, "a".repeat(BODY_LIMIT));
        assert_eq!(server.post("/v1/rotate", &big).await.status, 413);
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        server.stop().await;
    }

    #[tokio::test]
    async fn rotate_forwards_the_path_and_the_lease_task_error() {
        let server = Server::start().await;
        let reply = server
            .post("/v1/rotate", r#"{"path":"main-pg/static-creds/app"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            serde_json::json!({"rotated": "main-pg/static-creds/app"})
        );
        let reply = server
            .post("/v1/rotate", r#"{"path":"broken/static-creds/app"}"#)
            .await;
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert_eq!(
            reply.error(),
            "rotation broken/static-creds/app: the database refused the connection"
        );
        let reply = server
            .post("/v1/rotate", r#"{"path":"drop/static-creds/app"}"#)
            .await;
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert!(
            reply.error().contains("without an answer"),
            "{}",
            reply.body
        );
        assert_eq!(
            server.seen(),
            [
                "rotate main-pg/static-creds/app",
                "rotate broken/static-creds/app",
                "rotate drop/static-creds/app"
            ]
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn no_answer_in_time_is_504_and_no_lease_task_is_503() {
        let server = Server::start_with(LeaseTask::Running, Duration::from_millis(200), None).await;
        let reply = server
            .post("/v1/rotate", r#"{"path":"slow/static-creds/app"}"#)
            .await;
        assert_eq!(reply.status, 504, "{}", reply.body);
        assert!(reply.error().contains("200ms"), "{}", reply.body);
        // The server still answers after a timed-out request.
        assert_eq!(server.get("/v1/leases").await.status, 200);
        server.stop().await;

        let server = Server::start_with(LeaseTask::Gone, DEFAULT_TIMEOUT, None).await;
        let reply = server.post("/v1/leases/revoke", r#"{"prefix":"/"}"#).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(reply.error().contains("not running"), "{}", reply.body);
        // Reading needs no lease task.
        assert_eq!(server.get("/v1/leases").await.status, 200);
        server.stop().await;
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn the_token_is_created_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.token");
        let token = load_or_create_token(&path).expect("created");
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "hex");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", token.as_str())
        );
        assert_eq!(load_or_create_token(&path).expect("reused"), token);
        let other = load_or_create_token(&dir.path().join("other.token")).expect("created");
        assert_ne!(other, token, "random");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = load_or_create_token(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains(token.as_str()), "{err}");
        assert_eq!(
            problems(&ApiSettings::default(), dir.path()),
            [format!("api.token_file: {err}")]
        );

        std::fs::write(&path, "short\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = load_or_create_token(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(!err.contains("short"), "{err}");

        let missing = dir.path().join("no-such-dir/api.token");
        let err = load_or_create_token(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot create the API token file"), "{err}");
    }

    #[tokio::test]
    async fn bind_writes_where_the_cli_finds_the_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ApiSettings::default();
        let (listener, token) = bind(&settings, dir.path()).await.expect("binds");
        let bound = listener.local_addr().expect("address");
        assert!(bound.ip().is_loopback() && bound.port() != 0, "{bound}");
        let endpoint: Endpoint = serde_json::from_slice(
            &std::fs::read(dir.path().join(ENDPOINT_FILE)).expect("api.json"),
        )
        .expect("parses");
        assert_eq!(endpoint.url, format!("http://127.0.0.1:{}", bound.port()));
        assert_eq!(endpoint.token_file, dir.path().join("api.token"));
        assert_eq!(
            load_or_create_token(&endpoint.token_file).expect("token"),
            token
        );
        let text = std::fs::read_to_string(dir.path().join(ENDPOINT_FILE)).expect("read");
        assert!(!text.contains(token.as_str()), "{text}");
        drop(listener);

        let remote = ApiSettings {
            listen: "0.0.0.0:0".to_owned(),
            ..ApiSettings::default()
        };
        let err = bind(&remote, dir.path()).await.unwrap_err().to_string();
        assert!(
            err.contains("api.listen") && err.contains("loopback"),
            "{err}"
        );
    }

    #[test]
    fn debug_redacts_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LeaseStore::open(dir.path()).expect("store"));
        let (commands, _receiver) = mpsc::channel(1);
        let state = ApiState::new(store, commands, Zeroizing::new(TOKEN.to_owned()));
        let debug = format!("{state:?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains(TOKEN), "{debug}");
    }
}
