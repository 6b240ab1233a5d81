//! Paging: pushes the fleet's open alerts to where people are paged — an
//! Alertmanager (its v2 API) and plain webhooks — from a replica that holds
//! the fleet's health (a hub's `serve`, the demo's operator replica).
//!
//! Each target gets its own task that reads `FleetView`s from the shared
//! watch channel and brings the target from what it last delivered there
//! to the alerts open now. That is state, not a queue of events: a target
//! that is down or slow costs one map of open alerts, never blocks sync nor
//! the other targets, and when it answers again it is brought up to date
//! (an alert that fired and cleared meanwhile is never sent).
//!
//! Several hubs push the same alert in the same words so a receiver keeps
//! one: Alertmanager by its labels (no label names the hub), a webhook by
//! the `Idempotency-Key` header (see [`webhook`]).

pub mod alertmanager;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls_platform_verifier::BuilderVerifierExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::view::FleetView;

pub use reqwest::Url;

/// Why paging could not start.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    #[error("{url:?} is not a URL to push alerts to: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot read the webhook secret file {path}: {why}")]
    Secret { path: String, why: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Reads an `http://` or `https://` URL with a host (what `--alertmanager`
/// and `--webhook` take).
pub fn parse_url(s: &str) -> Result<Url, PagingError> {
    let bad = |why: String| PagingError::BadUrl {
        url: s.to_string(),
        why,
    };
    let url =
        Url::parse(s).map_err(|e| bad(format!("{e} (expected e.g. http://127.0.0.1:9093)")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme is {:?}, expected http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host".into()));
    }
    Ok(url)
}

/// `url` for logs and messages: its scheme, host and port only, the path
/// and query written `…` when it has them (`https://hooks.example/…`). A
/// webhook URL often carries its secret in the path or the query (Slack,
/// Teams, a token), and a user and password never show.
pub fn shown(url: &Url) -> String {
    let rest = if url.path() == "/" && url.query().is_none() {
        "/"
    } else {
        "/…"
    };
    format!("{}{rest}", url.origin().ascii_serialization())
}

/// `url` with its path, for an Alertmanager (whose path is its API and a
/// reverse proxy's prefix, no secret): scheme, host, port and path; a
/// query written `?…`, and a user and password never shown.
pub fn shown_with_path(url: &Url) -> String {
    let query = if url.query().is_some() { "?…" } else { "" };
    format!(
        "{}{}{query}",
        url.origin().ascii_serialization(),
        url.path()
    )
}

/// Reads the key that signs webhook bodies: the file's contents with
/// surrounding whitespace (a trailing newline) trimmed; it must not be empty.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, PagingError> {
    let err = |why: String| PagingError::Secret {
        path: path.display().to_string(),
        why,
    };
    let raw = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let secret = raw.trim_ascii();
    if secret.is_empty() {
        return Err(err("the file is empty".into()));
    }
    Ok(secret.to_vec())
}

/// Where to page and how.
#[derive(Clone, Debug, Default)]
pub struct PagingConfig {
    /// Alertmanager base URLs (`http://127.0.0.1:9093`); alerts go to
    /// `BASE/api/v2/alerts`.
    pub alertmanagers: Vec<Url>,
    /// Webhook URLs, each sent one JSON event per change.
    pub webhooks: Vec<Url>,
    /// Signs webhook bodies (`X-Fleetdeck-Signature: sha256=HEX`).
    pub webhook_secret: Option<Vec<u8>>,
    pub timing: Timing,
}

impl PagingConfig {
    pub fn is_empty(&self) -> bool {
        self.alertmanagers.is_empty() && self.webhooks.is_empty()
    }
}

/// How often and how patiently targets are pushed to.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Alertmanager forgets a firing alert not sent again within its
    /// `resolve_timeout` (5 m by default): every firing alert is sent again
    /// this often.
    pub resend: Duration,
    /// One request's limit, connecting included.
    pub timeout: Duration,
    /// The first wait after a failed request; it doubles up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            resend: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Starts one task per target in `cfg` on the current tokio runtime; each
/// ends once the sender of `views` is gone.
pub fn start(
    cfg: PagingConfig,
    views: watch::Receiver<Arc<FleetView>>,
) -> Result<Vec<JoinHandle<()>>, PagingError> {
    let client = client(cfg.timing.timeout)?;
    let mut tasks = Vec::new();
    for url in &cfg.alertmanagers {
        let target = alertmanager::Alertmanager::new(client.clone(), url);
        tasks.push(tokio::spawn(drive(target, views.clone(), cfg.timing)));
    }
    for url in &cfg.webhooks {
        let target = webhook::Webhook::new(client.clone(), url.clone(), cfg.webhook_secret.clone());
        tasks.push(tokio::spawn(drive(target, views.clone(), cfg.timing)));
    }
    Ok(tasks)
}

/// The HTTP client every target shares: TLS through rustls with the ring
/// provider and the platform's roots, `timeout` per request.
fn client(timeout: Duration) -> Result<reqwest::Client, PagingError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| PagingError::Client(e.to_string()))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .user_agent(concat!("fleetdeck/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PagingError::Client(e.to_string()))
}

/// One place alerts are pushed to.
pub(crate) trait Target: Send + 'static {
    /// Brings the target up to date with `view`. `Ok(Some(d))`: all is
    /// delivered, come back after `d` even if nothing changes; `Ok(None)`:
    /// come back on the next view; `Err`: a request failed (logged), retry
    /// after a backoff.
    fn deliver(
        &mut self,
        view: &FleetView,
        timing: &Timing,
    ) -> impl Future<Output = Result<Option<Duration>, ()>> + Send;
}

/// Runs `target` until the views' sender is gone: on every view, when it
/// asks to come back, and after a failure once the backoff has passed
/// (views that arrive meanwhile are only the latest one, never a backlog).
async fn drive<T: Target>(
    mut target: T,
    mut views: watch::Receiver<Arc<FleetView>>,
    timing: Timing,
) {
    let mut backoff = timing.backoff_first;
    loop {
        let view = views.borrow_and_update().clone();
        match target.deliver(&view, &timing).await {
            Ok(again) => {
                backoff = timing.backoff_first;
                let later = async {
                    match again {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = views.changed() => if r.is_err() { return },
                    () = later => {}
                }
            }
            Err(()) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(timing.backoff_max);
                if views.has_changed().is_err() {
                    return;
                }
            }
        }
    }
}

/// Why a request did not deliver.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Refused, timed out, unreachable: the same request may go through
    /// later.
    Retry,
    /// The request cannot even be made (a header value no HTTP request may
    /// carry): sending it again would fail the same way forever.
    Unsendable,
}

/// POSTs `body` (JSON) to `url` with `headers`; a failure, or an answer
/// other than 2xx, is logged with the URL as `shown` and the status.
async fn post(
    client: &reqwest::Client,
    url: &Url,
    shown: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
    what: &str,
) -> Result<(), Failure> {
    let mut req = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = match req.build() {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(url = %shown, error = %e.without_url(), "{what}: cannot make the request");
            return Err(Failure::Unsendable);
        }
    };
    match client.execute(req).await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            tracing::warn!(url = %shown, %status, answer = %text.trim(), "{what}: refused; will retry");
            Err(Failure::Retry)
        }
        Err(e) => {
            tracing::warn!(url = %shown, error = %e.without_url(), "{what}: not delivered; will retry");
            Err(Failure::Retry)
        }
    }
}

/// The latest time [`rfc3339`] writes as itself: the last millisecond of
/// the year 9999 (RFC 3339 has four digits for the year).
const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds); a time before the
/// epoch is written as the epoch and one after the year 9999 as its last
/// millisecond (times come from nodes: never a panic on a wild one).
fn rfc3339(ms: i64) -> String {
    let ms = ms.clamp(0, RFC3339_MAX_MS).unsigned_abs();
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_never_panics_and_keeps_fixed_width() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(RFC3339_MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(RFC3339_MAX_MS + 1), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_made_is_unsendable_not_retried() {
        let client = client(Duration::from_secs(2)).expect("client");
        // Nothing listens on port 1: a request that was sent would fail to
        // connect and be worth a retry.
        let url = parse_url("http://127.0.0.1:1/").expect("url");
        let bad = [("Idempotency-Key", "a\nb".to_string())];
        let got = post(&client, &url, &shown(&url), b"{}".to_vec(), &bad, "test").await;
        assert_eq!(got, Err(Failure::Unsendable));
        let fine = [("Idempotency-Key", "a%0Ab".to_string())];
        let got = post(&client, &url, &shown(&url), b"{}".to_vec(), &fine, "test").await;
        assert_eq!(got, Err(Failure::Retry));
    }
}
