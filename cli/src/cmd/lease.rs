//! `sealops lease list|renew|revoke` and `sealops rotate`: ask the local controller, through its
//! loopback API (`docs/controller.md`, "Lease API"), about the leases it holds.
//!
//! The controller writes `<state_dir>/api.json` (its URL and token file) when its API starts;
//! the token file is readable by the controller's user only, so these commands run as that user.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sealops_core::lease_api::{
    DEFAULT_TOKEN_FILE, ENDPOINT_FILE, Endpoint, ErrorBody, LEASES_PATH, LeaseList, RENEW_PATH,
    REVOKE_PATH, ROTATE_PATH, Renewed, Revoked, RotateRequest, Rotated, SelectRequest,
};
use zeroize::Zeroizing;

use crate::args::lease::{
    ApiArgs, LeaseArgs, LeaseCommand, ListArgs, ListFormat, RotateArgs, SelectArgs,
};
use crate::exit::Outcome;
use crate::output::outln;

/// Longer than the controller's own wait for its lease task (60 s), so its 504 arrives first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

pub fn lease(args: LeaseArgs) -> anyhow::Result<Outcome> {
    let api = Api::locate(&args.api)?;
    match args.command {
        LeaseCommand::List(list) => list_leases(&api, list),
        LeaseCommand::Renew(select) => {
            let Renewed { renewed } = typed(api.post(RENEW_PATH, &select.body())?)?;
            if renewed.is_empty() {
                eprintln!("no lease renewed: {}", select.describe());
            }
            let now = now();
            for lease in &renewed {
                outln!(
                    "renewed {}: expires in {}",
                    lease.id,
                    time_left(lease.expires_at - now)
                );
            }
            Ok(Outcome::Success)
        }
        LeaseCommand::Revoke(select) => {
            let Revoked { revoked } = typed(api.post(REVOKE_PATH, &select.body())?)?;
            if revoked.is_empty() {
                eprintln!("no lease revoked: {}", select.describe());
            }
            for id in &revoked {
                outln!("revoked {id}");
            }
            Ok(Outcome::Success)
        }
    }
}

pub fn rotate(args: RotateArgs) -> anyhow::Result<Outcome> {
    // Checked here too, so a typo is named without asking the controller.
    sealops_core::backend::RotationTarget::parse(&args.path).map_err(anyhow::Error::msg)?;
    let api = Api::locate(&args.api)?;
    let Rotated { rotated } = typed(api.post(ROTATE_PATH, &RotateRequest { path: args.path })?)?;
    outln!("rotated {rotated}");
    Ok(Outcome::Success)
}

impl SelectArgs {
    fn body(&self) -> SelectRequest {
        match (&self.id, &self.prefix) {
            (Some(id), _) => SelectRequest {
                id: Some(id.clone()),
                prefix: None,
            },
            (None, prefix) => SelectRequest {
                id: None,
                prefix: Some(prefix.clone().unwrap_or_default()),
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.id, self.prefix.as_deref()) {
            (Some(id), _) => format!("lease {id}"),
            (None, Some("/")) => "there are no leases".to_owned(),
            (None, prefix) => format!("no lease id starts with {}", prefix.unwrap_or_default()),
        }
    }
}

fn list_leases(api: &Api, args: ListArgs) -> anyhow::Result<Outcome> {
    let mut query = Vec::new();
    if let Some(prefix) = &args.prefix {
        query.push(("prefix", prefix.as_str()));
    }
    let doc = api.get(LEASES_PATH, &query)?;
    if args.json || args.output == ListFormat::Json {
        // The document as the API sent it, so scripts see every field.
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(Outcome::Success);
    }
    let LeaseList { leases } = typed(doc)?;
    if leases.is_empty() {
        match &args.prefix {
            Some(prefix) => eprintln!("no leases under {prefix}"),
            None => eprintln!("no leases"),
        }
        return Ok(Outcome::Success);
    }
    let now = now();
    let rows: Vec<[String; 5]> = leases
        .iter()
        .map(|lease| {
            let state = if lease.replace {
                format!("{} (replaced)", lease.state)
            } else {
                lease.state.to_string()
            };
            [
                lease.id.clone(),
                lease.target.clone(),
                state,
                time_left(lease.expires_at - now),
                lease.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let header = ["ID", "TARGET", "STATE", "EXPIRES IN", "LAST ERROR"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        outln!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    }
    Ok(Outcome::Success)
}

use sealops_core::clock::unix_now as now;

/// `1d02h`, `1h05m`, `4m30s`, `12s`; `expired 3m ago` when negative.
fn time_left(seconds: i64) -> String {
    fn short(s: i64) -> String {
        let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
        match s {
            s if s >= 86_400 => format!("{d}d{h:02}h"),
            s if s >= 3600 => format!("{h}h{m:02}m"),
            s if s >= 60 => format!("{m}m{:02}s", s % 60),
            s => format!("{s}s"),
        }
    }
    if seconds < 0 {
        format!("expired {} ago", short(-seconds))
    } else {
        short(seconds)
    }
}

/// The controller's answer as the [`sealops_core::lease_api`] type it should be.
fn typed<T: serde::de::DeserializeOwned>(doc: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(doc.clone()).with_context(|| {
        format!(
            "the controller's answer is not the {} this sealops expects (a controller of another version?): {doc}",
            std::any::type_name::<T>().rsplit("::").next().unwrap_or("answer")
        )
    })
}

/// The controller's API: its base URL, its token, and where each came from (for errors).
struct Api {
    url: String,
    from: String,
    token: Zeroizing<String>,
    token_file: PathBuf,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("url", &self.url)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// `--api-url` (or `$SEALOPS_API_URL`), else the URL in `<state_dir>/api.json`; the token
    /// from `--token-file` (or `$SEALOPS_API_TOKEN_FILE`), else the file api.json names, else
    /// `<state_dir>/api.token`.
    fn locate(args: &ApiArgs) -> anyhow::Result<Self> {
        let (url, from, listed_token_file) = match &args.api_url {
            Some(url) => (url.clone(), "--api-url".to_owned(), None),
            None => {
                let file = args.state_dir.join(ENDPOINT_FILE);
                let endpoint = read_endpoint(&file)?;
                (
                    endpoint.url,
                    file.display().to_string(),
                    Some(endpoint.token_file),
                )
            }
        };
        let url = check_url(&url).with_context(|| format!("the API URL from {from}"))?;
        let token_file = args
            .token_file
            .clone()
            .or(listed_token_file)
            .unwrap_or_else(|| args.state_dir.join(DEFAULT_TOKEN_FILE));
        let token = read_token(&token_file)?;
        let agent = ureq::Agent::config_builder()
            // Error statuses carry the controller's explanation in the body.
            .http_status_as_error(false)
            // The token goes to the loopback address named, never through a proxy from the
            // environment nor to wherever a redirect points.
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(Self {
            url,
            from,
            token,
            token_file,
            agent,
        })
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {}", self.token.as_str()));
        for (name, value) in query {
            request = request.query(*name, *value);
        }
        self.answer(request.call())
    }

    fn post(&self, path: &str, body: &impl serde::Serialize) -> anyhow::Result<serde_json::Value> {
        let response = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {}", self.token.as_str()))
            .send_json(body);
        self.answer(response)
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut response = response.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the controller's API at {} (from {}): {e}; is the controller running? (a killed controller leaves api.json behind)",
                self.url,
                self.from
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of {}", self.url))?;
        let doc: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return doc.with_context(|| {
                format!("the controller's answer is not JSON (HTTP {status}): {text}")
            });
        }
        let message = doc
            .as_ref()
            .and_then(|doc| serde_json::from_value::<ErrorBody>(doc.clone()).ok())
            .map(|body| body.error)
            .unwrap_or_else(|| text.trim().to_owned());
        if status == 401 {
            bail!(
                "the controller refused the token in {} (HTTP 401): is it this controller's api.token_file? ({message})",
                self.token_file.display()
            );
        }
        bail!("the controller answered HTTP {status}: {message}")
    }
}

fn read_endpoint(file: &Path) -> anyhow::Result<Endpoint> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = file.parent().unwrap_or(Path::new("."));
            bail!(
                "is the controller running? api.json not found in {}: the controller writes it when its API starts (api.enabled in its configuration); for another state directory pass --state-dir DIR, or give --api-url URL and --token-file FILE",
                dir.display()
            );
        }
        Err(e) => bail!("cannot read {}: {e}", file.display()),
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the controller's api.json ({{\"url\": …, \"token_file\": …}}); restarting the controller writes it again",
            file.display()
        )
    })
}

/// `http://<loopback IP>:<port>`, without a trailing slash.
fn check_url(url: &str) -> anyhow::Result<String> {
    let Some(authority) = url.strip_prefix("http://") else {
        bail!("{url:?} must start with http:// (the API speaks plain HTTP on loopback)");
    };
    let authority = authority.trim_end_matches('/');
    let address: SocketAddr = authority.parse().map_err(|_| {
        anyhow::anyhow!(
            "{url:?} is not http://IP:PORT, e.g. http://127.0.0.1:9751 or http://[::1]:9751"
        )
    })?;
    // The token must not leave the machine, whatever api.json or a flag says.
    if !address.ip().is_loopback() {
        bail!(
            "{url:?} is not a loopback address: the controller's API serves this machine only (127.0.0.1 or [::1])"
        );
    }
    Ok(format!("http://{address}"))
}

fn read_token(file: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot read the API token file {}: permission denied; run this as the controller's user (or root)",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the API token file {} does not exist; is the controller running with its API enabled? (--token-file FILE names another)",
            file.display()
        ),
        Err(e) => bail!("cannot read the API token file {}: {e}", file.display()),
    };
    let token = text.trim();
    if token.is_empty() {
        bail!("the API token file {} is empty", file.display());
    }
    Ok(Zeroizing::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_short_and_says_expired() {
        assert_eq!(time_left(12), "12s");
        assert_eq!(time_left(270), "4m30s");
        assert_eq!(time_left(3900), "1h05m");
        assert_eq!(time_left(93_600), "1d02h");
        assert_eq!(time_left(0), "0s");
        assert_eq!(time_left(-180), "expired 3m00s ago");
    }

    #[test]
    fn urls_are_loopback_http_only() {
        assert_eq!(
            check_url("http://127.0.0.1:9751/").expect("ok"),
            "http://127.0.0.1:9751"
        );
        assert_eq!(
            check_url("http://[::1]:9751").expect("ok"),
            "http://[::1]:9751"
        );
        for (bad, says) in [
            ("https://127.0.0.1:9751", "http://"),
            ("http://10.0.0.1:9751", "loopback"),
            ("http://0.0.0.0:9751", "loopback"),
            ("http://localhost:9751", "http://IP:PORT"),
            ("http://127.0.0.1", "http://IP:PORT"),
            ("http://127.0.0.1:9751/v1", "http://IP:PORT"),
        ] {
            let e = check_url(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
