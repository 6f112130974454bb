//! The controller's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/status` and the git
//! webhook `/hooks/git`.
//!
//! The webhook only schedules a fetch (it wakes the reconcile loop through a [`Notify`]); it never
//! carries data the controller trusts, since every commit is verified on its own. It is still
//! authenticated so that strangers cannot make the controller hammer the remote.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::status::{Metrics, Status};

/// Largest webhook body accepted; larger requests get 413. Push payloads are normally far
/// smaller, the body is only read to check its signature, and a push whose webhook is refused is
/// still found by polling.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// The GitHub signature header: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The GitLab header carrying the secret itself.
pub const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type HmacSha256 = Hmac<Sha256>;

/// What the endpoints share.
pub struct HttpState {
    pub status: Arc<Status>,
    /// The webhook secret; `None` turns `/hooks/git` off (404).
    pub webhook_secret: Option<Zeroizing<Vec<u8>>>,
    /// Woken once per accepted webhook; the reconcile loop fetches when it is.
    pub trigger: Arc<Notify>,
}

impl fmt::Debug for HttpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpState")
            .field("status", &self.status)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("trigger", &self.trigger)
            .finish()
    }
}

/// Why a webhook request was not accepted. Never contains the secret or what the caller sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("neither an X-Hub-Signature-256 nor an X-Gitlab-Token header")]
    MissingCredentials,
    #[error("X-Hub-Signature-256 is not `sha256=` followed by 64 hex digits")]
    MalformedSignature,
    #[error("X-Hub-Signature-256 does not match the body")]
    SignatureMismatch,
    #[error("X-Gitlab-Token does not match")]
    TokenMismatch,
    /// An empty key would let anyone compute a valid signature.
    #[error("the controller's webhook secret is empty; every webhook is refused")]
    EmptySecret,
}

/// Checks a webhook request against the secret.
///
/// GitHub form: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. GitLab form:
/// `X-Gitlab-Token: <secret>`. When the GitHub header is present it alone decides, so a bad
/// signature cannot be rescued by a second header. Comparisons are constant-time.
pub fn verify_webhook(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), WebhookRejection> {
    if secret.is_empty() {
        return Err(WebhookRejection::EmptySecret);
    }
    if let Some(signature) = headers.get(GITHUB_SIGNATURE_HEADER) {
        let signature = signature
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("sha256="))
            .and_then(|digits| hex::decode(digits).ok())
            .filter(|bytes| bytes.len() == <Sha256 as sha2::Digest>::output_size())
            .ok_or(WebhookRejection::MalformedSignature)?;
        let mut mac = keyed(secret);
        mac.update(body);
        return mac
            .verify_slice(&signature)
            .map_err(|_| WebhookRejection::SignatureMismatch);
    }
    if let Some(token) = headers.get(GITLAB_TOKEN_HEADER) {
        // Comparing MACs of both sides rather than the bytes keeps the comparison constant-time
        // and does not reveal the secret's length through an early length check.
        let expected = {
            let mut mac = keyed(secret);
            mac.update(secret);
            Zeroizing::new(mac.finalize().into_bytes().to_vec())
        };
        let mut mac = keyed(secret);
        mac.update(token.as_bytes());
        return mac
            .verify_slice(&expected)
            .map_err(|_| WebhookRejection::TokenMismatch);
    }
    Err(WebhookRejection::MissingCredentials)
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The endpoints, with `state` attached.
pub fn router(state: HttpState) -> Router {
    let webhook: MethodRouter<Arc<HttpState>> =
        post(webhook).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/hooks/git", webhook)
        .with_state(Arc::new(state))
}

/// Serves the endpoints on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    if state.status.blocked_by_tampering() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the audit branch was tampered with (audit.on_tamper: block); see /status audit.tampering\n",
        )
            .into_response()
    } else if state.status.is_ready() {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: first reconcile has not finished\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.status.metrics.encode(),
    )
        .into_response()
}

async fn status(State(state): State<Arc<HttpState>>) -> Response {
    match serde_json::to_string_pretty(&state.status.snapshot()) {
        Ok(mut json) => {
            json.push('\n');
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "cannot serialise the status document");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot serialise the status document\n",
            )
                .into_response()
        }
    }
}

async fn webhook(
    State(state): State<Arc<HttpState>>,
    // Absent when the router is served without connect info; the peer is only logged.
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(address))| address);
    let Some(secret) = &state.webhook_secret else {
        tracing::info!(?peer, "webhook request refused: the webhook is off");
        return (
            StatusCode::NOT_FOUND,
            "the webhook is off: set http.webhook_secret_file in the controller's configuration\n",
        )
            .into_response();
    };
    match verify_webhook(secret, &headers, &body) {
        Ok(()) => {
            state.trigger.notify_one();
            Metrics::count(&state.status.metrics.webhooks, "accepted");
            tracing::info!(?peer, "webhook accepted: fetch scheduled");
            (StatusCode::ACCEPTED, "fetch scheduled\n").into_response()
        }
        Err(rejection) => {
            Metrics::count(&state.status.metrics.webhooks, "rejected");
            tracing::warn!(?peer, reason = %rejection, "webhook rejected");
            (
                StatusCode::UNAUTHORIZED,
                format!("webhook rejected: {rejection}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Waker};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    /// A server on a real socket; dropping `stop` shuts it down.
    struct Server {
        address: SocketAddr,
        status: Arc<Status>,
        trigger: Arc<Notify>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<std::io::Result<()>>,
    }

    impl Server {
        async fn start(secret: Option<&[u8]>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("local address");
            let status = Arc::new(Status::new("node-1", "main"));
            let trigger = Arc::new(Notify::new());
            let state = HttpState {
                status: status.clone(),
                webhook_secret: secret.map(|secret| Zeroizing::new(secret.to_vec())),
                trigger: trigger.clone(),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(listener, state, async {
                let _ = stopped.await;
            }));
            Self {
                address,
                status,
                trigger,
                stop: Some(stop),
                task,
            }
        }

        /// Whether a webhook notified the trigger, consuming that notification. Polls once
        /// instead of waiting: `notify_one` stores its permit before the response is sent.
        fn was_triggered(&self) -> bool {
            let notified = pin!(self.trigger.notified());
            notified
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        }

        async fn get(&self, path: &str) -> Reply {
            request(self.address, "GET", path, &[], b"").await
        }

        async fn hook(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
            request(self.address, "POST", "/hooks/git", headers, body).await
        }

        async fn stop(mut self) -> std::io::Result<()> {
            drop(self.stop.take());
            (&mut self.task).await.expect("server task")
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
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
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

    fn github_signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = keyed(secret);
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn counted(status: &Status, result: &str) -> bool {
        status
            .metrics
            .encode()
            .contains(&format!("sealops_webhooks_total{{result=\"{result}\"}} 1"))
    }

    #[tokio::test]
    async fn healthz_is_always_ok() {
        let server = Server::start(None).await;
        let reply = server.get("/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn readyz_flips_after_the_first_reconcile() {
        let server = Server::start(None).await;
        let reply = server.get("/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: first reconcile has not finished\n")
        );
        server.status.set_ready();
        let reply = server.get("/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready\n"));
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_with_webhook_counts() {
        let server = Server::start(Some(SECRET)).await;
        let signature = github_signature(SECRET, BODY);
        let accepted = server
            .hook(&[("X-Hub-Signature-256", &signature)], BODY)
            .await;
        assert_eq!(accepted.status, 202);
        let reply = server.get("/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        assert!(
            reply
                .body
                .contains("sealops_webhooks_total{result=\"accepted\"} 1"),
            "{}",
            reply.body
        );
        assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn status_is_the_json_document() {
        let server = Server::start(None).await;
        server
            .status
            .update(|doc| doc.head = Some("0123abcd".to_owned()));
        let reply = server.get("/status").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        assert_eq!(doc["branch"], "main");
        assert_eq!(doc["node"], "node-1");
        assert_eq!(doc["head"], "0123abcd");
        assert_eq!(doc["version"], crate::VERSION);
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let server = Server::start(Some(SECRET)).await;
        assert_eq!(server.get("/nope").await.status, 404);
        assert_eq!(server.get("/hooks/git/extra").await.status, 404);
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn github_signature_schedules_a_fetch() {
        let server = Server::start(Some(SECRET)).await;
        assert!(!server.was_triggered());
        let signature = github_signature(SECRET, BODY);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], BODY)
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (202, "fetch scheduled\n")
        );
        assert!(server.was_triggered());
        assert!(counted(&server.status, "accepted"));
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn bad_github_signature_is_401_and_does_not_trigger() {
        let server = Server::start(Some(SECRET)).await;
        let wrong_key = github_signature(b"another secret", BODY);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &wrong_key)], BODY)
            .await;
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("does not match"), "{}", reply.body);
        assert!(!reply.body.contains(&wrong_key), "echoes the signature");
        assert!(!server.was_triggered());
        assert!(counted(&server.status, "rejected"));

        let other_body = github_signature(SECRET, b"{}");
        let reply = server
            .hook(&[("X-Hub-Signature-256", &other_body)], BODY)
            .await;
        assert_eq!(reply.status, 401);
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn malformed_github_signatures_are_401() {
        let server = Server::start(Some(SECRET)).await;
        let good = github_signature(SECRET, BODY);
        let without_prefix = good.trim_start_matches("sha256=").to_owned();
        let sha1_form = good.replace("sha256=", "sha1=");
        let truncated = good[..good.len() - 2].to_owned();
        let not_hex = format!("sha256={}", "zz".repeat(32));
        for signature in [without_prefix, sha1_form, truncated, not_hex] {
            let reply = server
                .hook(&[("X-Hub-Signature-256", &signature)], BODY)
                .await;
            assert_eq!(reply.status, 401, "{signature}");
            assert!(reply.body.contains("64 hex digits"), "{}", reply.body);
        }
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn gitlab_token_good_and_bad() {
        let server = Server::start(Some(SECRET)).await;
        let secret = std::str::from_utf8(SECRET).expect("ASCII secret");
        let reply = server.hook(&[("X-Gitlab-Token", secret)], BODY).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (202, "fetch scheduled\n")
        );
        assert!(server.was_triggered());

        let longer = format!("{secret}x");
        for token in [&secret[..secret.len() - 1], longer.as_str(), "", "wrong"] {
            let reply = server.hook(&[("X-Gitlab-Token", token)], BODY).await;
            assert_eq!(reply.status, 401, "{token:?}");
            assert!(!reply.body.contains(secret), "echoes the secret");
        }
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn missing_headers_are_401() {
        let server = Server::start(Some(SECRET)).await;
        let reply = server.hook(&[], BODY).await;
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("neither"), "{}", reply.body);
        assert!(!server.was_triggered());
        assert!(counted(&server.status, "rejected"));
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn bad_github_signature_is_not_rescued_by_a_good_gitlab_token() {
        let server = Server::start(Some(SECRET)).await;
        let secret = std::str::from_utf8(SECRET).expect("ASCII secret");
        let wrong = github_signature(b"another secret", BODY);
        let reply = server
            .hook(
                &[("X-Hub-Signature-256", &wrong), ("X-Gitlab-Token", secret)],
                BODY,
            )
            .await;
        assert_eq!(reply.status, 401);
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn webhook_is_404_without_a_secret() {
        let server = Server::start(None).await;
        let signature = github_signature(SECRET, BODY);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], BODY)
            .await;
        assert_eq!(reply.status, 404);
        assert!(
            reply.body.contains("http.webhook_secret_file"),
            "{}",
            reply.body
        );
        assert!(!server.was_triggered());
        assert!(
            !server
                .status
                .metrics
                .encode()
                .contains("sealops_webhooks_total")
        );
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn empty_secret_refuses_everything() {
        let server = Server::start(Some(b"")).await;
        let signature = github_signature(b"", BODY);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], BODY)
            .await;
        assert_eq!(reply.status, 401);
        let reply = server.hook(&[("X-Gitlab-Token", "")], BODY).await;
        assert_eq!(reply.status, 401);
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let server = Server::start(Some(SECRET)).await;
        let at_limit = vec![b'x'; WEBHOOK_BODY_LIMIT];
        let signature = github_signature(SECRET, &at_limit);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], &at_limit)
            .await;
        assert_eq!(reply.status, 202);
        assert!(server.was_triggered());

        // One byte over: the server reads the whole body before it notices, so the connection
        // closes cleanly and the reply can be read.
        let over = vec![b'x'; WEBHOOK_BODY_LIMIT + 1];
        let signature = github_signature(SECRET, &over);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], &over)
            .await;
        assert_eq!(reply.status, 413);
        assert!(!server.was_triggered());
        server.stop().await.expect("clean shutdown");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let state = HttpState {
            status: Arc::new(Status::new("node-1", "main")),
            webhook_secret: Some(Zeroizing::new(SECRET.to_vec())),
            trigger: Arc::new(Notify::new()),
        };
        let debug = format!("{state:?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains(&format!("{SECRET:?}")), "{debug}");
    }

    #[test]
    fn verify_webhook_reports_the_reason() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify_webhook(SECRET, &headers, BODY),
            Err(WebhookRejection::MissingCredentials)
        );
        headers.insert(
            GITHUB_SIGNATURE_HEADER,
            github_signature(SECRET, BODY)
                .parse()
                .expect("header value"),
        );
        assert_eq!(verify_webhook(SECRET, &headers, BODY), Ok(()));
        assert_eq!(
            verify_webhook(SECRET, &headers, b"tampered"),
            Err(WebhookRejection::SignatureMismatch)
        );
        assert_eq!(
            verify_webhook(b"", &headers, BODY),
            Err(WebhookRejection::EmptySecret)
        );
    }
}
