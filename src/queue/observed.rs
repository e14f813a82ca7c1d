//! A store that tells [`StoreHealth`] how each of its calls went, so the gate knows whether
//! the store is failing without every caller having to report it.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::health::StoreHealth;
use crate::store::{
    CopyOptions, ListPage, ListRequest, Object, ObjectHead, PutOptions, Result, Store, StoreError,
    StoreKind, Versioning, WriteResult,
};

/// Wraps the worker's store; every call goes straight through (it never waits), and its
/// outcome is recorded: a transient failure as a failure, any answer as the store being up.
#[derive(Debug)]
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    health: Arc<StoreHealth>,
}

impl ObservedStore {
    /// `inner`, reporting to `health`.
    pub fn new(inner: Arc<dyn Store>, health: Arc<StoreHealth>) -> Self {
        ObservedStore { inner, health }
    }

    fn observe<T>(&self, sent: Instant, result: Result<T>) -> Result<T> {
        match &result {
            Err(e) if e.is_transient() => self.health.record_failure(sent),
            _ => self.health.record_answer(),
        }
        result
    }
}

#[async_trait]
impl Store for ObservedStore {
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }

    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn atomic_conditional_copy(&self) -> bool {
        self.inner.atomic_conditional_copy()
    }

    fn credential_status(&self) -> Option<crate::store::credentials::CredentialStatus> {
        self.inner.credential_status()
    }

    async fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let sent = Instant::now();
        self.observe(sent, self.inner.list(req).await)
    }

    async fn get(&self, key: &str) -> Result<Object> {
        let sent = Instant::now();
        self.observe(sent, self.inner.get(key).await)
    }

    async fn head(&self, key: &str) -> Result<ObjectHead> {
        let sent = Instant::now();
        self.observe(sent, self.inner.head(key).await)
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult> {
        let sent = Instant::now();
        self.observe(sent, self.inner.put(key, body, opts).await)
    }

    async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
        let sent = Instant::now();
        self.observe(sent, self.inner.copy(source, dest, opts).await)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let sent = Instant::now();
        self.observe(sent, self.inner.delete(key).await)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
        let sent = Instant::now();
        self.observe(sent, self.inner.delete_many(keys).await)
    }

    async fn now(&self) -> Result<SystemTime> {
        let sent = Instant::now();
        self.observe(sent, self.inner.now().await)
    }

    async fn versioning(&self) -> Result<Versioning> {
        let sent = Instant::now();
        self.observe(sent, self.inner.versioning().await)
    }
}
