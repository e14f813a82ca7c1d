//! The `webhook` handler: POSTs each task's payload to a URL.
//!
//! The payload must decode (a JSON object or a pickled dict, see [`crate::payload`]); an
//! undecodable one is a permanent failure like in every built-in handler. What is sent is
//! chosen by `body`:
//!
//! - `"as-is"` (default): the bytes exactly as the producer wrote them, with `Content-Type:
//!   application/json` for JSON and `application/python-pickle` for a pickle. Receivers that
//!   already unpickle (FC-era code) keep working.
//! - `"json"`: the decoded dict re-encoded as JSON (`application/json`), so receivers in any
//!   language never see a pickle.
//!
//! Verdicts: 2xx done; 408, 429 and 5xx retried, honouring `Retry-After` (seconds or an HTTP
//! date); other statuses (4xx, and 3xx, because redirects are not followed: a POST redirected
//! would silently become a GET) fail for good; connection errors and timeouts are retried.
//! Every request carries an `Idempotency-Key` derived from queue, task id and the task
//! object's ETag, the same on every retry of one task, so a receiver can drop duplicates.
//!
//! The URL and header values are [`Secret`]s: webhook URLs often embed a token (Slack, Feishu,
//! DingTalk) and headers carry `Authorization`; logs and reasons show only scheme and host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Handler, Outcome, ProbeError, Task};
use crate::payload::{self, Format, Limits};
use crate::secret::Secret;

/// Longest `Retry-After` honoured; a server asking for more gets the task back after a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Most bytes of an error response quoted in a failure reason.
const BODY_SNIPPET: usize = 300;

/// What the POST carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum WebhookBody {
    /// The payload bytes unchanged (`application/json` or `application/python-pickle`).
    #[default]
    #[serde(rename = "as-is")]
    AsIs,
    /// The decoded dict as JSON, whatever the producer wrote.
    #[serde(rename = "json")]
    Json,
}

/// Configuration of the `webhook` handler:
/// `handler = { type = "webhook", url = "https://example.com/hook",
/// headers = { Authorization = "Bearer ..." } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST; a secret because webhook URLs often carry a token.
    pub url: Secret,
    /// Extra request headers; values are secrets (they often hold credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `"as-is"` (default) or `"json"`.
    #[serde(default)]
    pub body: WebhookBody,
    /// Time allowed for the whole request, response included.
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Extra CA certificate (PEM) to trust, for a receiver with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Why a webhook configuration is unusable. Messages never include the URL or header values.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    /// `url` does not parse or is not http(s).
    #[error("webhook handler: `url` is not an http:// or https:// URL")]
    BadUrl,
    /// A header name is not a valid HTTP header name.
    #[error("webhook handler: header name {name:?} is not valid")]
    BadHeaderName {
        /// The name.
        name: String,
    },
    /// A header value holds characters HTTP forbids (the value itself is not shown).
    #[error("webhook handler: the value of header {name:?} is not a valid HTTP header value")]
    BadHeaderValue {
        /// The header's name.
        name: String,
    },
    /// `ca_file` cannot be read or holds no certificate.
    #[error("webhook handler: {0}")]
    Ca(#[from] crate::tls::TlsError),
    /// The HTTP client cannot be built (bad CA file, TLS setup).
    #[error("webhook handler: cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// POSTs each task's payload; see the module documentation.
pub struct WebhookHandler {
    client: Client,
    url: Url,
    /// `scheme://host[:port]`, the only part of the URL that is logged.
    target: String,
    headers: HeaderMap,
    body: WebhookBody,
    timeout: Duration,
    limits: Limits,
}

impl std::fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookHandler")
            .field("target", &self.target)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl WebhookHandler {
    /// Check the configuration and build the HTTP client (its connection pool is shared by
    /// every task of the queue).
    pub fn new(cfg: &WebhookConfig) -> Result<Self, WebhookConfigError> {
        let url = Url::parse(cfg.url.expose().trim()).map_err(|_| WebhookConfigError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(WebhookConfigError::BadUrl);
        }
        let target = match url.port() {
            Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or("")),
            None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WebhookConfigError::BadHeaderName { name: name.clone() })?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| WebhookConfigError::BadHeaderValue { name: name.clone() })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        // The system trust store plus `ca_file` (a bundle), as for the store (src/tls.rs).
        let extra = match &cfg.ca_file {
            Some(path) => crate::tls::read_ca_file(path)?,
            None => Vec::new(),
        };
        let builder = crate::tls::trusting(Client::builder(), &extra)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bucketq/", env!("CARGO_PKG_VERSION")));
        Ok(WebhookHandler {
            client: builder.build().map_err(WebhookConfigError::Client)?,
            url,
            target,
            headers,
            body: cfg.body,
            timeout: cfg.timeout,
            limits: Limits::default(),
        })
    }

    /// The body and its content type for a task.
    fn body_for(&self, task: &Task) -> Result<(Vec<u8>, &'static str), String> {
        let decoded = payload::decode_for(&task.key, &task.payload, &self.limits)
            .map_err(|e| e.to_string())?;
        Ok(match (self.body, decoded.format) {
            (WebhookBody::AsIs, Format::Json) => (task.payload.to_vec(), "application/json"),
            (WebhookBody::AsIs, Format::Pickle { .. }) => {
                (task.payload.to_vec(), "application/python-pickle")
            }
            (WebhookBody::Json, _) => (
                serde_json::to_vec(&decoded.fields).expect("a JSON map always serialises"),
                "application/json",
            ),
        })
    }

    async fn post(&self, task: &Task, body: Vec<u8>, content_type: &'static str) -> Outcome {
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, content_type)
            .header("Idempotency-Key", idempotency_key(task))
            .header("X-Bucketq-Queue", header_text(&task.queue))
            .header("X-Bucketq-Key", header_text(&task.key))
            .header("X-Bucketq-Attempt", task.attempt.to_string())
            .headers(self.headers.clone())
            .body(body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Outcome::retry(format!(
                    "POST {} timed out after {:?}",
                    self.target, self.timeout
                ))
            }
            Err(e) => {
                return Outcome::retry(format!(
                    "POST {} failed: {}",
                    self.target,
                    error_chain(&e.without_url())
                ))
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let snippet = if status.is_success() {
            String::new()
        } else {
            body_snippet(response).await
        };
        verdict(&self.target, status, retry_after, &snippet)
    }
}

#[async_trait]
impl Handler for WebhookHandler {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        let (body, content_type) = match self.body_for(task) {
            Ok(b) => b,
            Err(reason) => return Outcome::fail(reason),
        };
        let outcome = tokio::select! {
            outcome = self.post(task, body, content_type) => outcome,
            () = cancel.cancelled() => Outcome::retry(format!("cancelled while posting to {}", self.target)),
        };
        if outcome == Outcome::Done {
            tracing::info!(queue = %task.queue, key = %task.key, target = %self.target, "webhook delivered");
        }
        outcome
    }

    /// Connect to the URL's host and port (no request: many webhooks answer anything but
    /// their POST with an error, and a POST would deliver something).
    async fn probe(&self) -> Result<(), ProbeError> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(443);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ProbeError(format!("{}: {e}", self.target))),
            Err(_) => Err(ProbeError(format!(
                "{}: no connection within {:?}",
                self.target, self.timeout
            ))),
        }
    }
}

/// The verdict on an HTTP status: 2xx done; 408, 429, 5xx retried (after `retry_after` when
/// the server said); anything else failed for good.
pub fn verdict(
    target: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Outcome {
    let code = status.as_u16();
    let said = if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    };
    if status.is_success() {
        Outcome::Done
    } else if code == 408 || code == 429 || status.is_server_error() {
        Outcome::Retry {
            after: retry_after,
            reason: format!("POST {target} answered {status}{said}"),
        }
    } else if status.is_redirection() {
        Outcome::fail(format!(
            "POST {target} answered {status} (a redirect, not followed: configure the final URL){said}"
        ))
    } else {
        Outcome::fail(format!("POST {target} answered {status}{said}"))
    }
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (a past date means now),
/// capped at [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The `Idempotency-Key` of a task: the same for every attempt, different for another task or
/// for the same id written again with other content (a new ETag).
pub fn idempotency_key(task: &Task) -> String {
    let digest = Sha256::new()
        .chain_update(task.queue.as_bytes())
        .chain_update([0])
        .chain_update(task.id.as_bytes())
        .chain_update([0])
        .chain_update(task.etag.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A header-safe rendering of a queue name or key (keys may hold any UTF-8).
fn header_text(text: &str) -> String {
    // Control characters and every non-ASCII byte are percent-encoded.
    percent_encoding::utf8_percent_encode(text, percent_encoding::CONTROLS).to_string()
}

/// An error and its causes, `outer: inner: root` (reqwest's own message is only the outer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of an error response's body, for the failure reason.
async fn body_snippet(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(BODY_SNIPPET);
    String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = at(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(at(1_700_000_090));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(at(1_699_999_000));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn statuses_map_to_verdicts() {
        let v = |code: u16| {
            verdict(
                "http://h",
                StatusCode::from_u16(code).expect("valid"),
                None,
                "",
            )
        };
        assert_eq!(v(200), Outcome::Done);
        assert_eq!(v(204), Outcome::Done);
        for code in [408, 429, 500, 502, 503] {
            assert!(matches!(v(code), Outcome::Retry { .. }), "{code}");
        }
        for code in [301, 400, 401, 404, 422] {
            assert!(matches!(v(code), Outcome::Fail { .. }), "{code}");
        }
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            verdict(
                "http://h",
                StatusCode::TOO_MANY_REQUESTS,
                after,
                "slow down"
            ),
            Outcome::Retry {
                after,
                reason: "POST http://h answered 429 Too Many Requests: slow down".into()
            }
        );
    }

    #[test]
    fn config_errors_do_not_show_secrets() {
        let cfg = |url: &str, header: &str| WebhookConfig {
            url: Secret::new(url),
            headers: [("Authorization".to_owned(), Secret::new(header))].into(),
            body: WebhookBody::AsIs,
            timeout: Duration::from_secs(1),
            ca_file: None,
        };
        let e = WebhookHandler::new(&cfg("ftp://tok3n@host/x", "ok")).expect_err("bad scheme");
        assert!(!e.to_string().contains("tok3n"));
        let e = WebhookHandler::new(&cfg("https://h/x", "bad\nv4lue")).expect_err("bad value");
        assert!(e.to_string().contains("Authorization") && !e.to_string().contains("v4lue"));
        let h = WebhookHandler::new(&cfg("https://h:8443/hook/tok3n", "Bearer v4lue")).expect("ok");
        let debug = format!("{h:?} {:?}", cfg("https://h/tok3n", "v4lue"));
        assert!(
            !debug.contains("tok3n") && !debug.contains("v4lue"),
            "{debug}"
        );
        assert!(debug.contains("https://h:8443"), "{debug}");
    }
}
