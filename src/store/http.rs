//! The store over HTTP, shared by the S3 and OSS backends.
//!
//! The two APIs differ in how requests look (headers, signing, addressing, the clock probe)
//! and agree on everything else: each operation is one request built by a pure function, sent
//! through the shared [`Transport`] (signing, retries, error mapping), and its answer read the
//! same way. So a backend is a [`Dialect`], the request builder, and [`HttpStore`] does the
//! sending and reading for both: one place where a fix to an operation lands for every
//! HTTP store.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::credentials::{CredentialCache, CredentialStatus};
use super::sign::content_md5;
use super::transport::endpoint::Endpoint;
use super::transport::request::{add_user_meta, check_key, Response};
use super::transport::{answer, RequestSpec, Signer, Transport, TransportConfig};
use super::{
    CopyOptions, ListPage, ListRequest, Object, ObjectHead, Op, PutOptions, RequestStats, Result,
    Store, StoreError, StoreKind, Versioning, WriteMode, WriteResult, MAX_DELETE_BATCH,
    MAX_LIST_KEYS,
};
use crate::config::StoreConfig;

/// How one HTTP API builds its requests: pure functions of their inputs, so every request can
/// be checked without a network. The two APIs agree on most operations, which are written
/// once here over the dialect's addressing ([`Dialect::bucket_request`],
/// [`Dialect::object_request`]) and its create-if-absent header.
pub trait Dialect: Debug + Send + Sync + 'static {
    /// What [`Store::kind`] reports.
    const KIND: StoreKind;
    /// Header prefix of user metadata (`x-amz-meta-`, `x-oss-meta-`).
    const META_PREFIX: &'static str;
    /// What [`Store::atomic_conditional_copy`] reports: true when a create-if-absent copy with
    /// a source condition is one atomic step on this API.
    const ATOMIC_CONDITIONAL_COPY: bool;

    /// A bucket-level request (the bucket's root, however it is addressed).
    fn bucket_request(&self, op: Op, method: &'static str) -> RequestSpec;

    /// A request on one object: the key is checked and encoded once, `/` kept, the same
    /// encoding the signers use.
    fn object_request(&self, op: Op, method: &'static str, key: &str) -> Result<RequestSpec>;

    /// Make a write create-if-absent: the dialect's header, and how its refusal reads.
    fn mark_create_if_absent(spec: &mut RequestSpec);

    /// ListObjectsV2: `list-type=2`, `prefix`, `max-keys` (1..=1000: 0 asks for the most, and
    /// OSS's default would be only 100), `encoding-type=url` (keys may hold characters XML
    /// cannot carry), and the cursor.
    fn list(&self, req: &ListRequest) -> RequestSpec {
        let mut spec = self.bucket_request(Op::List, "GET");
        spec.subject = req.prefix.clone();
        spec.param("list-type", "2");
        if !req.prefix.is_empty() {
            spec.param("prefix", req.prefix.clone());
        }
        let page_size = match req.max_keys {
            0 => MAX_LIST_KEYS,
            n => n.min(MAX_LIST_KEYS),
        };
        spec.param("max-keys", page_size.to_string());
        spec.param("encoding-type", "url");
        if let Some(token) = &req.continuation {
            spec.param("continuation-token", token.clone());
        }
        if let Some(after) = &req.start_after {
            spec.param("start-after", after.clone());
        }
        spec
    }

    /// GetObject.
    fn get(&self, key: &str) -> Result<RequestSpec> {
        self.object_request(Op::Get, "GET", key)
    }

    /// HeadObject (on OSS its errors come back in the `x-oss-err` header).
    fn head(&self, key: &str) -> Result<RequestSpec> {
        self.object_request(Op::Head, "HEAD", key)
    }

    /// PutObject with `Content-MD5` (the store verifies the body), `Content-Type`, user
    /// metadata, and create-if-absent when `opts` asks.
    fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<RequestSpec> {
        let mut spec = self.object_request(Op::Put, "PUT", key)?;
        if let Some(ct) = &opts.content_type {
            spec.header("content-type", ct.clone());
        }
        spec.header("content-md5", content_md5(&body));
        if opts.mode == WriteMode::CreateIfAbsent {
            Self::mark_create_if_absent(&mut spec);
        }
        add_user_meta(&mut spec, Self::META_PREFIX, &opts.user_meta)?;
        spec.body = body;
        Ok(spec)
    }

    /// CopyObject with metadata REPLACE.
    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<RequestSpec>;

    /// DeleteObject.
    fn delete(&self, key: &str) -> Result<RequestSpec> {
        self.object_request(Op::Delete, "DELETE", key)
    }

    /// DeleteObjects (`POST /?delete`, quiet) for at most [`MAX_DELETE_BATCH`] keys, with the
    /// `Content-MD5` both APIs require.
    fn delete_many(&self, keys: &[String]) -> Result<RequestSpec> {
        for key in keys {
            check_key(key)?;
        }
        let body = Bytes::from(super::xml::build_delete_request(keys));
        let mut spec = self.bucket_request(Op::DeleteMany, "POST");
        spec.param("delete", "");
        spec.header("content-type", "application/xml");
        spec.header("content-md5", content_md5(&body));
        spec.body = body;
        Ok(spec)
    }

    /// The cheapest request whose `Date` header is the store's clock.
    fn clock(&self) -> RequestSpec;
    /// The store's clock from the answer to [`Dialect::clock`].
    fn server_time(resp: &Response) -> Result<SystemTime>;
    /// The request that reads the bucket's versioning state, where the API has one that
    /// matters to claims (OSS ignores forbid-overwrite on a versioned bucket).
    fn versioning_request(&self) -> Option<RequestSpec> {
        None
    }
}

/// A bucket reached over HTTP in dialect `D`; see the module docs.
#[derive(Debug)]
pub struct HttpStore<D> {
    requests: D,
    transport: Transport,
    bucket: String,
}

impl<D: Dialect> HttpStore<D> {
    /// A store sending `requests`' requests for `bucket`, signed by `signer`, through a
    /// transport with `settings`; every request counted in `stats`.
    pub(crate) fn open(
        requests: D,
        signer: Signer,
        credentials: Arc<CredentialCache>,
        settings: TransportConfig,
        stats: Arc<RequestStats>,
        bucket: &str,
    ) -> Result<Self> {
        let host = requests.bucket_request(Op::Head, "HEAD").host().to_owned();
        let transport =
            Transport::new(settings, signer, credentials, stats, Some(&host)).map_err(|e| {
                StoreError::Misconfigured {
                    field: "endpoint",
                    reason: e.to_string(),
                }
            })?;
        Ok(HttpStore {
            requests,
            transport,
            bucket: bucket.to_owned(),
        })
    }

    /// The request builder, for tests that check what is sent.
    pub fn requests(&self) -> &D {
        &self.requests
    }

    /// Send a request outside the [`Store`] operations (bucket setup in tests and tools).
    pub(crate) async fn send(&self, spec: &RequestSpec) -> Result<Response> {
        self.transport.send(spec).await
    }
}

#[async_trait]
impl<D: Dialect> Store for HttpStore<D> {
    fn kind(&self) -> StoreKind {
        D::KIND
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn atomic_conditional_copy(&self) -> bool {
        D::ATOMIC_CONDITIONAL_COPY
    }

    fn credential_status(&self) -> Option<CredentialStatus> {
        self.transport.credential_status()
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let resp = self.transport.send(&self.requests.list(req)).await?;
        answer::list_page(&resp, &req.prefix)
    }

    async fn get(&self, key: &str) -> Result<Object> {
        let resp = self.transport.send(&self.requests.get(key)?).await?;
        answer::object(resp, key, D::META_PREFIX)
    }

    async fn head(&self, key: &str) -> Result<ObjectHead> {
        let resp = self.transport.send(&self.requests.head(key)?).await?;
        resp.object_head(Op::Head, key, D::META_PREFIX, None)
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult> {
        let resp = self
            .transport
            .send(&self.requests.put(key, body, opts)?)
            .await?;
        Ok(answer::put_result(&resp))
    }

    async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        let resp = self
            .transport
            .send(&self.requests.copy(source, dest, opts)?)
            .await
            .map_err(|e| source_not_found(e, source, dest))?;
        answer::copy_result(&resp, dest)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.transport.send(&self.requests.delete(key)?).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
        let mut failures = Vec::new();
        for batch in keys.chunks(MAX_DELETE_BATCH) {
            let resp = self
                .transport
                .send(&self.requests.delete_many(batch)?)
                .await?;
            failures.extend(answer::delete_failures(&resp)?);
        }
        Ok(failures)
    }

    async fn now(&self) -> Result<SystemTime> {
        let resp = self.transport.send(&self.requests.clock()).await?;
        D::server_time(&resp).map_err(|e| match e {
            StoreError::NoSuchBucket { message, .. } => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
                message,
            },
            other => other,
        })
    }

    async fn versioning(&self) -> Result<Versioning> {
        let Some(spec) = self.requests.versioning_request() else {
            return Ok(Versioning::Never);
        };
        let resp = self.transport.send(&spec).await?;
        super::xml::parse_versioning(&resp.body).map_err(|e| StoreError::Unexpected {
            key: String::new(),
            op: Op::Versioning,
            message: e.to_string(),
        })
    }
}

/// The `endpoint` of `[store]`, which an HTTP store cannot do without; `missing` tells the
/// user what one looks like for the configured kind.
pub(crate) fn configured_endpoint(cfg: &StoreConfig, missing: &str) -> Result<Endpoint> {
    let endpoint = endpoint_of(cfg, missing)?;
    if cfg.bucket.trim().is_empty() {
        return Err(StoreError::Misconfigured {
            field: "bucket",
            reason: "no bucket configured".into(),
        });
    }
    Ok(endpoint)
}

fn endpoint_of(cfg: &StoreConfig, missing: &str) -> Result<Endpoint> {
    match cfg.endpoint.as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => Endpoint::parse(e),
        _ => Err(StoreError::Misconfigured {
            field: "endpoint",
            reason: missing.to_owned(),
        }),
    }
}

/// A copy's 404 is about its source (the destination is being written): name the source.
fn source_not_found(err: StoreError, source: &str, dest: &str) -> StoreError {
    match err {
        StoreError::NotFound { key } if key == dest => StoreError::NotFound {
            key: source.to_owned(),
        },
        other => other,
    }
}
