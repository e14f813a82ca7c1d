//! The store over HTTP, shared by the S3 and OSS backends.
//!
//! The two APIs differ in how requests look (headers, signing, addressing, the clock probe)
//! and agree on everything else: each operation is one request built by a pure function, sent
//! through the shared [`Transport`] (signing, retries, error mapping), and its answer read the
//! same way. So a backend is a [`Dialect`], the request builder, and [`HttpStore`] does the
//! sending and reading for both: one place where a fix to an operation lands for every
//! HTTP store.

use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::transport::request::Response;
use super::transport::{answer, RequestSpec, Transport};
use super::{
    CopyOptions, ListPage, ListRequest, Object, ObjectHead, Op, PutOptions, Result, Store,
    StoreError, StoreKind, Versioning, WriteResult, MAX_DELETE_BATCH,
};

/// How one HTTP API builds its requests: pure functions of their inputs, so every request can
/// be checked without a network.
pub trait Dialect: Debug + Send + Sync + 'static {
    /// What [`Store::kind`] reports.
    const KIND: StoreKind;
    /// Header prefix of user metadata (`x-amz-meta-`, `x-oss-meta-`).
    const META_PREFIX: &'static str;
    /// What [`Store::atomic_conditional_copy`] reports: true when a create-if-absent copy with
    /// a source condition is one atomic step on this API.
    const ATOMIC_CONDITIONAL_COPY: bool;

    /// One page of a listing by prefix.
    fn list(&self, req: &ListRequest) -> RequestSpec;
    /// GetObject.
    fn get(&self, key: &str) -> Result<RequestSpec>;
    /// HeadObject.
    fn head(&self, key: &str) -> Result<RequestSpec>;
    /// PutObject, create-if-absent when `opts` asks.
    fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<RequestSpec>;
    /// CopyObject with metadata REPLACE.
    fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<RequestSpec>;
    /// DeleteObject.
    fn delete(&self, key: &str) -> Result<RequestSpec>;
    /// DeleteObjects for at most [`MAX_DELETE_BATCH`] keys.
    fn delete_many(&self, keys: &[String]) -> Result<RequestSpec>;
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
    /// A store sending `requests`' requests for `bucket` through `transport`.
    pub(crate) fn new(requests: D, transport: Transport, bucket: &str) -> Self {
        HttpStore {
            requests,
            transport,
            bucket: bucket.to_owned(),
        }
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
        D::server_time(&resp)
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

/// A copy's 404 is about its source (the destination is being written): name the source.
fn source_not_found(err: StoreError, source: &str, dest: &str) -> StoreError {
    match err {
        StoreError::NotFound { key } if key == dest => StoreError::NotFound {
            key: source.to_owned(),
        },
        other => other,
    }
}
