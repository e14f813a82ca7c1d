//! The small HTTP client credential sources share, and the endpoints they talk to.
//!
//! Metadata services answer within milliseconds or not at all, so their calls get 1 s
//! timeouts (as in both clouds' SDKs); STS and credentials URIs get 5 s to connect and 10 s in
//! all. The client trusts the same CAs as the store ([`crate::tls`]) and honours the proxy
//! variables, except for the link-local metadata addresses, which no proxy can reach.

use std::collections::BTreeMap;
use std::time::Duration;

use super::CredentialError;
use crate::config::StoreConfig;

/// Alibaba's ECS metadata service.
pub const ALIBABA_METADATA: &str = "http://100.100.100.200";
/// AWS's EC2 instance metadata service.
pub const AWS_METADATA: &str = "http://169.254.169.254";
/// AWS's container credentials host (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
pub const AWS_CONTAINER_HOST: &str = "http://169.254.170.2";

/// Where the credential sources send their requests; each overridable in `[store.credentials]`
/// (and by the SDKs' own variables) for private clouds and tests.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The metadata service (ECS or EC2).
    pub metadata: String,
    /// STS, when configured; else each source derives the cloud's default.
    pub sts: Option<String>,
    /// AWS container credentials host for relative URIs.
    pub container_host: String,
    /// CAs to trust beside the system store.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// The region, for AWS's regional STS and Alibaba's `sts.<region>.aliyuncs.com`.
    pub region: Option<String>,
}

impl Endpoints {
    /// From `[store]`, the environment, and the CAs to trust beside the system store.
    pub fn from_config(
        cfg: &StoreConfig,
        env: &BTreeMap<String, String>,
        extra_roots: &[reqwest::Certificate],
    ) -> Self {
        let c = &cfg.credentials;
        let oss = cfg.kind == crate::config::StoreBackend::Oss;
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let metadata = c.metadata_endpoint.clone().unwrap_or_else(|| {
            if oss {
                ALIBABA_METADATA.to_owned()
            } else {
                var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| AWS_METADATA.to_owned())
            }
        });
        Endpoints {
            metadata: metadata.trim_end_matches('/').to_owned(),
            sts: c
                .sts_endpoint
                .clone()
                .map(|s| s.trim_end_matches('/').to_owned()),
            container_host: AWS_CONTAINER_HOST.to_owned(),
            extra_roots: extra_roots.to_vec(),
            region: cfg.region.clone().filter(|r| !r.is_empty()),
        }
    }

    /// A client for metadata services: 1 s timeouts, no proxy.
    pub fn metadata_client(&self) -> reqwest::Client {
        self.client(Duration::from_secs(1), Duration::from_secs(2), true)
    }

    /// A client for STS and credentials URIs: 5 s to connect, 10 s in all.
    pub fn service_client(&self) -> reqwest::Client {
        self.client(Duration::from_secs(5), Duration::from_secs(10), false)
    }

    fn client(&self, connect: Duration, total: Duration, no_proxy: bool) -> reqwest::Client {
        let mut builder = crate::tls::trusting(reqwest::Client::builder(), &self.extra_roots)
            .connect_timeout(connect)
            .timeout(total)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bucketq/", env!("CARGO_PKG_VERSION")));
        if no_proxy {
            builder = builder.no_proxy();
        }
        // Only the TLS setup can fail, and it is the same one the store's client passed.
        builder.build().unwrap_or_else(|_| reqwest::Client::new())
    }
}

/// An answer read whole: status and body (bodies here are small JSON or XML documents).
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// Send `req` and read the answer; a failure without an answer names `source` and the URL's
/// host, never its query (which may carry a token).
pub async fn send(source: &str, req: reqwest::RequestBuilder) -> Result<Answer, CredentialError> {
    let resp = req.send().await.map_err(|e| {
        CredentialError::failed(
            source,
            format!("no answer from {}: {}", host_of(&e), cause(&e)),
        )
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| CredentialError::failed(source, format!("answer cut off: {}", cause(&e))))?;
    Ok(Answer { status, body })
}

fn host_of(e: &reqwest::Error) -> String {
    e.url()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| "the service".to_owned())
}

fn cause(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(last) = last {
        text.push_str(": ");
        text.push_str(&last);
    }
    text
}

/// A JSON answer's field as a string.
pub fn field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The first 200 characters of an error answer, for messages (error bodies carry no keys).
pub fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    let mut out: String = trimmed.chars().take(200).collect();
    if trimmed.chars().count() > 200 {
        out.push('…');
    }
    out
}
