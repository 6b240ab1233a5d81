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

/// `url` for logs and messages: a password in it shown as `***`.
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
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

/// POSTs `body` (JSON) to `url` with `headers`; a failure, or an answer
/// other than 2xx, is logged with the URL and status and returned as `Err`.
async fn post(
    client: &reqwest::Client,
    url: &Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
    what: &str,
) -> Result<(), ()> {
    let mut req = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            tracing::warn!(url = %shown(url), %status, answer = %text.trim(), "{what}: refused; will retry");
            Err(())
        }
        Err(e) => {
            tracing::warn!(url = %shown(url), error = %e.without_url(), "{what}: not delivered; will retry");
            Err(())
        }
    }
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}
