//! The HTTP transport shared by the OSS and S3 stores: one pooled reqwest client (rustls),
//! request signing on every attempt, bounded retries with jittered exponential backoff for
//! transient failures only, and a count of every attempt in [`RequestStats`].
//!
//! Retries re-sign with a fresh time (a signature older than 15 minutes is refused), and never
//! follow a refused credential: wrong keys fail on the first answer. A create-if-absent write
//! that is retried after an attempt the store may have applied, and then finds the key present,
//! is reported as [`StoreError::Ambiguous`], because the first attempt may have been ours.

pub mod answer;
pub mod classify;
pub mod endpoint;
pub mod request;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;

use super::credentials::{CredentialCache, CredentialStatus};
use super::sign::{self, Credentials, RequestParts};
use super::xml;
use super::{RequestStats, StoreError};
use crate::config::StoreConfig;
use classify::Decision;
pub use request::{On412, RequestSpec, Response};

/// The clock requests are signed with. Injected so tests can prove each retry is re-signed.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How a request is signed: the scheme and its region. The keys come from the transport's
/// [`CredentialCache`] at each attempt, so refreshed keys are used as soon as they arrive.
#[derive(Clone, PartialEq, Eq)]
pub enum Signer {
    /// AWS SigV4 for S3 (payload hash of the real body).
    SigV4 {
        /// Signing region, e.g. `us-east-1`.
        region: String,
    },
    /// OSS `OSS4-HMAC-SHA256`.
    OssV4 {
        /// Region without the `oss-` prefix, e.g. `cn-hangzhou`.
        region: String,
    },
    /// OSS V1 (`OSS <id>:<sig>`), for old buckets only.
    OssV1,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::SigV4 { region } => write!(f, "SigV4({region})"),
            Signer::OssV4 { region } => write!(f, "OssV4({region})"),
            Signer::OssV1 => f.write_str("OssV1"),
        }
    }
}

impl Signer {
    /// The headers to add to `spec` to sign it with `creds` at `now`.
    pub fn sign(
        &self,
        spec: &RequestSpec,
        creds: &Credentials,
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let query: Vec<(&str, &str)> = spec
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let headers: Vec<(&str, &str)> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let parts = RequestParts {
            method: spec.method,
            bucket: spec.bucket.as_deref(),
            key: &spec.key,
            path: &spec.path,
            query: &query,
            headers: &headers,
        };
        match self {
            Signer::SigV4 { region } => {
                let payload = sign::sha256_hex(&spec.body);
                sign::sigv4::sign(&parts, creds, region, "s3", &payload, now)
            }
            Signer::OssV4 { region } => sign::oss_v4::sign(&parts, creds, region, now),
            Signer::OssV1 => sign::oss_v1::sign(&parts, creds, now),
        }
    }
}

/// Retry schedule for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Delay scale of the first retry; doubles per retry.
    pub base_delay: Duration,
    /// Cap of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based), given `jitter` in `[0, 1)`: half the
    /// exponential step plus a random share of the other half ("equal jitter"), so racing
    /// clients spread out yet nobody retries at once.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Settings of a [`Transport`].
#[derive(Clone)]
pub struct TransportConfig {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time one attempt may take, body included.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The signing clock.
    pub clock: Clock,
    /// CAs to trust beside the system store (`store.ca_file`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Where to connect whatever the host resolves to (`store.connect_to`).
    pub connect_to: Option<SocketAddr>,
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl TransportConfig {
    /// Timeouts from the store config's `request_timeout` (connecting gets at most 10 s of
    /// it) and `max_retries`, the system clock.
    pub fn new(request_timeout: Duration, max_retries: u32) -> Self {
        TransportConfig {
            connect_timeout: request_timeout.min(Duration::from_secs(10)),
            request_timeout,
            retry: RetryPolicy {
                max_retries,
                ..RetryPolicy::default()
            },
            clock: Arc::new(SystemTime::now),
            extra_roots: Vec::new(),
            connect_to: None,
        }
    }

    /// The settings `[store]` asks for: timeouts, retries, `ca_file` (read here, so a bad file
    /// is reported when the store is opened) and `connect_to`.
    pub fn for_store(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let mut settings = TransportConfig::new(cfg.request_timeout, cfg.max_retries);
        if let Some(path) = &cfg.ca_file {
            settings.extra_roots =
                crate::tls::read_ca_file(path).map_err(|e| StoreError::Misconfigured {
                    field: "ca_file",
                    reason: e.to_string(),
                })?;
        }
        if let Some(addr) = cfg
            .connect_to
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            settings.connect_to = Some(addr.parse().map_err(|_| StoreError::Misconfigured {
                field: "connect_to",
                reason: format!("{addr:?} is not an ip:port address, e.g. \"127.0.0.1:9000\""),
            })?);
        }
        Ok(settings)
    }
}

/// Why a transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// reqwest refused the client settings (e.g. no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Sends signed requests with retries. Cheap to share: the client pools connections.
pub struct Transport {
    client: reqwest::Client,
    signer: Signer,
    credentials: Arc<CredentialCache>,
    stats: Arc<RequestStats>,
    retry: RetryPolicy,
    clock: Clock,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("signer", &self.signer)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport signing with `signer` and the keys of `credentials`, counting into `stats`;
    /// requests for `host` go to `cfg.connect_to` when one is set.
    pub fn new(
        cfg: TransportConfig,
        signer: Signer,
        credentials: Arc<CredentialCache>,
        stats: Arc<RequestStats>,
        host: Option<&str>,
    ) -> Result<Self, TransportError> {
        let mut builder = crate::tls::trusting(reqwest::Client::builder(), &cfg.extra_roots);
        if let (Some(addr), Some(host)) = (cfg.connect_to, host) {
            builder = builder.resolve(host, addr);
        }
        let client = builder
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            // A redirect (S3's 301 PermanentRedirect for a bucket in another region) must be
            // reported, not followed: the signature covers the host it was made for.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bucketq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TransportError::Client)?;
        Ok(Transport {
            client,
            signer,
            credentials,
            stats,
            retry: cfg.retry,
            clock: cfg.clock,
        })
    }

    /// The request counters.
    pub fn stats(&self) -> &Arc<RequestStats> {
        &self.stats
    }

    /// Where the keys in use came from and when they expire, once fetched.
    pub fn credential_status(&self) -> Option<CredentialStatus> {
        self.credentials.status()
    }

    /// Send `spec` until it gets a final answer: a 2xx (or an accepted status), a final error,
    /// or the retries are spent ([`StoreError::Transient`]).
    pub async fn send(&self, spec: &RequestSpec) -> Result<Response, StoreError> {
        let mut maybe_applied = false;
        let mut retry = 0;
        loop {
            // Keys are asked for at each attempt (a refresh may have landed); a source that
            // cannot give any fails the request at once, without spending the retries.
            let creds = self.credentials.get().await?;
            let decision = match self.attempt(spec, &creds).await {
                Ok(resp) => match decide(spec, resp) {
                    Ok(resp) => return Ok(resp),
                    Err(d) => d,
                },
                Err(NoAnswer::Lost { message, sent }) => {
                    classify::classify_no_answer(message, sent)
                }
                Err(NoAnswer::Untrusted(message)) => {
                    Decision::Fail(StoreError::UntrustedCertificate {
                        origin: spec.origin.clone(),
                        message,
                    })
                }
            };
            match decision {
                Decision::Fail(StoreError::NoSuchBucket { message, .. }) => {
                    return Err(StoreError::NoSuchBucket {
                        bucket: spec.bucket.clone().unwrap_or_default(),
                        message,
                    })
                }
                Decision::Fail(err) => return Err(settle(spec, err, maybe_applied)),
                Decision::Retry {
                    message,
                    maybe_applied: applied,
                } => {
                    maybe_applied |= applied;
                    if retry >= self.retry.max_retries {
                        return Err(StoreError::Transient {
                            key: spec.subject.clone(),
                            op: spec.op,
                            message: format!(
                                "{message} (after {} attempts)",
                                self.retry.max_retries + 1
                            ),
                        });
                    }
                    let jitter = rand::thread_rng().gen::<f64>();
                    tracing::debug!(op = %spec.op, key = %spec.subject, retry, reason = %message, "retrying store request");
                    tokio::time::sleep(self.retry.delay(retry, jitter)).await;
                    retry += 1;
                }
            }
        }
    }

    /// One signed attempt, or why no answer came.
    async fn attempt(&self, spec: &RequestSpec, creds: &Credentials) -> Result<Response, NoAnswer> {
        let auth = self.signer.sign(spec, creds, (self.clock)());
        let method = reqwest::Method::from_bytes(spec.method.as_bytes())
            .expect("store methods are valid HTTP methods");
        let mut req = self.client.request(method, spec.url());
        for (name, value) in spec.headers.iter().chain(auth.iter()) {
            req = req.header(name.as_str(), value.as_str());
        }
        if matches!(spec.method, "PUT" | "POST") {
            // hyper writes no length for an empty body, and OSS (EC 0017-00000101), AWS S3
            // (411 MissingContentLength) and GCS refuse a bodiless PUT without one: every
            // CopyObject is such a PUT. The SDKs all send `Content-Length: 0`; so do we.
            req = req
                .header(reqwest::header::CONTENT_LENGTH, spec.body.len())
                .body(spec.body.clone());
        } else if !spec.body.is_empty() {
            req = req.body(spec.body.clone());
        }
        let result = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_owned(), value)
                })
                .collect();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Response::new(status, headers, body))
        }
        .await;
        match result {
            Ok(resp) => {
                self.stats.record(spec.op, &result_label(resp.status));
                Ok(resp)
            }
            Err(e) => {
                self.stats.record(spec.op, "error");
                if crate::tls::is_untrusted_certificate(&e) {
                    return Err(NoAnswer::Untrusted(describe_reqwest(&e)));
                }
                Err(NoAnswer::Lost {
                    message: describe_reqwest(&e),
                    sent: !e.is_connect(),
                })
            }
        }
    }
}

/// Why an attempt got no answer.
enum NoAnswer {
    /// Timed out, reset or refused; `sent` is false when the connection could not even be
    /// made (so the store cannot have applied the request).
    Lost { message: String, sent: bool },
    /// The TLS handshake failed on the store's certificate: no retry can fix it.
    Untrusted(String),
}

/// The label an answered attempt is counted under: `ok` for 2xx, else the status.
fn result_label(status: u16) -> String {
    if (200..300).contains(&status) {
        "ok".to_owned()
    } else {
        status.to_string()
    }
}

/// Accept an answer or turn it into a decision.
fn decide(spec: &RequestSpec, resp: Response) -> Result<Response, Decision> {
    let ok = (200..300).contains(&resp.status);
    if ok && !spec.error_in_ok_body {
        return Ok(resp);
    }
    if ok {
        return match xml::parse_error(&resp.body) {
            Some(err) => Err(classify::classify(
                spec.op,
                &spec.subject,
                spec.on_412,
                resp.status,
                Some(&err),
            )),
            None => Ok(resp),
        };
    }
    if spec.accept_status.contains(&resp.status) {
        return Ok(resp);
    }
    let error = xml::parse_error(&resp.body)
        .or_else(|| resp.header("x-oss-err").and_then(xml::parse_oss_err_header));
    Err(classify::classify(
        spec.op,
        &spec.subject,
        spec.on_412,
        resp.status,
        error.as_ref(),
    ))
}

/// Turn "already exists" after a possibly applied create-if-absent attempt into `Ambiguous`.
fn settle(spec: &RequestSpec, err: StoreError, maybe_applied: bool) -> StoreError {
    match err {
        StoreError::AlreadyExists { key } if spec.create_if_absent && maybe_applied => {
            StoreError::Ambiguous { key }
        }
        other => other,
    }
}

/// A reqwest failure in words, without the URL's query (never secret here, but long) and
/// without any header.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "answer cut off"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_is_capped_and_jittered_within_the_upper_half() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(10, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn retried_create_after_a_possibly_applied_attempt_is_ambiguous() {
        let mut spec = RequestSpec::new(crate::store::Op::Put, "PUT", "http://h", "h", "/k".into());
        spec.subject = "k".into();
        let exists = || StoreError::AlreadyExists { key: "k".into() };
        assert!(matches!(
            settle(&spec, exists(), true),
            StoreError::AlreadyExists { .. }
        ));
        spec.create_if_absent = true;
        assert!(matches!(
            settle(&spec, exists(), false),
            StoreError::AlreadyExists { .. }
        ));
        assert!(matches!(
            settle(&spec, exists(), true),
            StoreError::Ambiguous { .. }
        ));
        let nf = StoreError::NotFound { key: "k".into() };
        assert!(matches!(
            settle(&spec, nf, true),
            StoreError::NotFound { .. }
        ));
    }

    #[test]
    fn copy_answering_200_with_an_error_body_is_an_error() {
        let mut spec =
            RequestSpec::new(crate::store::Op::Copy, "PUT", "http://h", "h", "/k".into());
        spec.error_in_ok_body = true;
        let body = "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
        let resp = Response::new(200, vec![], bytes::Bytes::from(body));
        match decide(&spec, resp) {
            Err(Decision::Retry { maybe_applied, .. }) => assert!(maybe_applied),
            other => panic!("{other:?}"),
        }
        let ok = "<CopyObjectResult><ETag>\"abc\"</ETag><LastModified>2023-02-24T09:41:56.000Z</LastModified></CopyObjectResult>";
        let resp = Response::new(200, vec![], bytes::Bytes::from(ok));
        assert!(decide(&spec, resp).is_ok());
    }

    #[test]
    fn head_errors_are_read_from_x_oss_err() {
        use base64::Engine;
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>bad</Message></Error>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let spec = RequestSpec::new(crate::store::Op::Head, "HEAD", "http://h", "h", "/k".into());
        let resp = Response::new(403, vec![("x-oss-err".into(), b64)], bytes::Bytes::new());
        match decide(&spec, resp) {
            Err(Decision::Fail(StoreError::Unauthenticated { code, .. })) => {
                assert_eq!(code, "SignatureDoesNotMatch")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_statuses_are_answers() {
        let mut spec =
            RequestSpec::new(crate::store::Op::Head, "HEAD", "http://h", "h", "/k".into());
        let resp = Response::new(404, vec![], bytes::Bytes::new());
        assert!(decide(&spec, resp.clone()).is_err());
        spec.accept_status = vec![404];
        assert!(decide(&spec, resp).is_ok());
    }

    #[test]
    fn debug_shows_no_credentials() {
        let creds = Credentials {
            access_key_id: "AKIDSECRETLOOKING".into(),
            secret: crate::secret::Secret::new("very-secret-value"),
            security_token: Some(crate::secret::Secret::new("token-secret-value")),
        };
        let cache = CredentialCache::new(Arc::new(crate::store::credentials::StaticKeys::new(
            creds, "test",
        )));
        let t = Transport::new(
            TransportConfig::new(Duration::from_secs(5), 1),
            Signer::SigV4 {
                region: "us-east-1".into(),
            },
            cache,
            Arc::new(RequestStats::default()),
            None,
        )
        .expect("client builds");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("very-secret-value"), "{dbg}");
        assert!(!dbg.contains("token-secret-value"), "{dbg}");
        assert!(!dbg.contains("AKIDSECRETLOOKING"), "{dbg}");
    }
}
