//! A create-if-absent probe any caller can run against a store before trusting it with claims.
//!
//! Every claim bucketq makes is a create-if-absent write. A store that silently ignores the
//! condition (OSS with versioning, Garage, an S3 clone without `If-None-Match`) would let two
//! workers run the same task, so the daemon asks the store to prove the primitive first: write a
//! fresh probe key twice with [`WriteMode::CreateIfAbsent`]; the second write must be refused with
//! [`StoreError::AlreadyExists`] and must not have replaced the first body.

use std::fmt;

use bytes::Bytes;
use rand::Rng;

use super::{PutOptions, Store, StoreError, WriteMode};

/// Body of the first probe write; the second write's body differs so an overwrite is visible.
const FIRST_BODY: &[u8] = b"bucketq create-if-absent probe: first write";
/// Body of the second probe write.
const SECOND_BODY: &[u8] = b"bucketq create-if-absent probe: second write";

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The second create-if-absent write was refused and the first body survived: claims are
    /// exclusive on this store.
    Exclusive,
    /// The store cannot be trusted with claims.
    NotExclusive {
        /// What the store did, in words an operator can act on.
        reason: String,
    },
}

impl ProbeOutcome {
    /// True when claims on this store are exclusive.
    pub fn is_exclusive(&self) -> bool {
        matches!(self, ProbeOutcome::Exclusive)
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Exclusive => f.write_str("create-if-absent is exclusive"),
            ProbeOutcome::NotExclusive { reason } => {
                write!(f, "create-if-absent is not exclusive: {reason}")
            }
        }
    }
}

/// Write a unique probe key under `prefix` twice with create-if-absent and report whether the
/// second write was refused. The probe key is deleted afterwards whatever happened.
///
/// Errors that say nothing about the store's semantics (transient failures, rejected
/// credentials, I/O) are returned as `Err` so the caller can retry or report them; answers that
/// show the primitive is missing (`Unsupported`, an unexpected error code such as
/// `NotImplemented`, an accepted second write) are an `Ok(NotExclusive)`.
pub async fn probe_create_if_absent(
    store: &dyn Store,
    prefix: &str,
) -> Result<ProbeOutcome, StoreError> {
    let key = probe_key(prefix);
    let outcome = run_probe(store, &key).await;
    let cleanup = store.delete(&key).await;
    match (outcome, cleanup) {
        (Err(e), _) => Err(e),
        (Ok(outcome), Ok(())) => Ok(outcome),
        // The verdict stands; a leftover probe key is harmless and its name says what it is.
        (Ok(outcome), Err(e)) => {
            tracing::warn!(key = %key, error = %e, "could not delete the create-if-absent probe key");
            Ok(outcome)
        }
    }
}

/// A key no one else writes: the prefix, a recognisable name and 64 random bits.
fn probe_key(prefix: &str) -> String {
    let nonce: u64 = rand::thread_rng().gen();
    format!("{prefix}bucketq-probe-{nonce:016x}")
}

/// The two writes and the read-back, without cleanup.
async fn run_probe(store: &dyn Store, key: &str) -> Result<ProbeOutcome, StoreError> {
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    };
    match store.put(key, Bytes::from_static(FIRST_BODY), &opts).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. }) => {
            return Ok(not_exclusive(
                "the first create-if-absent write of a fresh key was refused as already existing",
            ))
        }
        Err(e) if reveals_missing_primitive(&e) => {
            return Ok(not_exclusive(format!(
                "the store refused a create-if-absent write: {e}"
            )))
        }
        Err(e) => return Err(e),
    }
    match store.put(key, Bytes::from_static(SECOND_BODY), &opts).await {
        Ok(_) => Ok(not_exclusive(
            "the second create-if-absent write of the same key was accepted",
        )),
        Err(StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. }) => {
            first_body_survived(store, key).await
        }
        Err(e) if reveals_missing_primitive(&e) => Ok(not_exclusive(format!(
            "the second create-if-absent write failed with {e} instead of already-exists"
        ))),
        Err(e) => Err(e),
    }
}

/// After a refused second write, check the store did not apply it anyway.
async fn first_body_survived(store: &dyn Store, key: &str) -> Result<ProbeOutcome, StoreError> {
    let object = store.get(key).await?;
    if object.body.as_ref() == FIRST_BODY {
        Ok(ProbeOutcome::Exclusive)
    } else {
        Ok(not_exclusive(
            "the second create-if-absent write was reported as refused but replaced the body",
        ))
    }
}

/// True for answers that show the store lacks the primitive, as opposed to a passing failure.
fn reveals_missing_primitive(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unsupported { .. }
            | StoreError::Unexpected { .. }
            | StoreError::Refused { .. }
            | StoreError::PreconditionFailed { .. }
    )
}

fn not_exclusive(reason: impl Into<String>) -> ProbeOutcome {
    ProbeOutcome::NotExclusive {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use async_trait::async_trait;

    use super::*;
    use crate::store::local::LocalStore;
    use crate::store::{
        CopyOptions, ListPage, ListRequest, Object, ObjectHead, RequestStats, Result, StoreKind,
        WriteResult,
    };

    /// How a broken store mishandles create-if-absent.
    #[derive(Debug, Clone, Copy)]
    enum Quirk {
        /// Treats create-if-absent as a plain overwrite (versioned OSS, Garage).
        IgnoresCondition,
        /// Answers create-if-absent with `Unsupported` (OSS PutObject with `If-None-Match`).
        RejectsCondition,
        /// Reports `AlreadyExists` on the second write but applies it anyway.
        ReportsButOverwrites,
    }

    /// A local store with one quirk in `put`.
    #[derive(Debug)]
    struct Quirky {
        inner: LocalStore,
        quirk: Quirk,
    }

    #[async_trait]
    impl Store for Quirky {
        fn kind(&self) -> StoreKind {
            self.inner.kind()
        }
        fn bucket(&self) -> &str {
            self.inner.bucket()
        }
        fn atomic_conditional_copy(&self) -> bool {
            self.inner.atomic_conditional_copy()
        }
        async fn list(&self, req: &ListRequest) -> Result<ListPage> {
            self.inner.list(req).await
        }
        async fn get(&self, key: &str) -> Result<Object> {
            self.inner.get(key).await
        }
        async fn head(&self, key: &str) -> Result<ObjectHead> {
            self.inner.head(key).await
        }
        async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<WriteResult> {
            let overwrite = PutOptions {
                mode: WriteMode::Overwrite,
                ..opts.clone()
            };
            match self.quirk {
                Quirk::IgnoresCondition => self.inner.put(key, body, &overwrite).await,
                Quirk::RejectsCondition => Err(StoreError::Unsupported {
                    what: "If-None-Match on PutObject (NotImplemented)".into(),
                }),
                Quirk::ReportsButOverwrites => {
                    let existed = self.inner.head(key).await.is_ok();
                    self.inner.put(key, body, &overwrite).await?;
                    if existed {
                        return Err(StoreError::AlreadyExists { key: key.into() });
                    }
                    Ok(WriteResult { etag: None })
                }
            }
        }
        async fn copy(&self, source: &str, dest: &str, opts: &CopyOptions) -> Result<WriteResult> {
            self.inner.copy(source, dest, opts).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key).await
        }
        async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, StoreError)>> {
            self.inner.delete_many(keys).await
        }
        async fn now(&self) -> Result<SystemTime> {
            self.inner.now().await
        }
    }

    fn local(dir: &tempfile::TempDir) -> LocalStore {
        LocalStore::open(dir.path(), Arc::new(RequestStats::default())).expect("open")
    }

    async fn assert_nothing_left(store: &dyn Store, prefix: &str) {
        let page = store
            .list(&ListRequest {
                prefix: prefix.into(),
                max_keys: 10,
                ..ListRequest::default()
            })
            .await
            .expect("list");
        assert!(page.objects.is_empty(), "probe left {:?}", page.objects);
    }

    async fn probe_quirky(quirk: Quirk) -> ProbeOutcome {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Quirky {
            inner: local(&dir),
            quirk,
        };
        let outcome = probe_create_if_absent(&store, "health/")
            .await
            .expect("the probe runs");
        assert_nothing_left(&store, "").await;
        outcome
    }

    #[tokio::test]
    async fn the_local_store_is_exclusive_and_the_probe_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = local(&dir);
        let outcome = probe_create_if_absent(&store, "health/")
            .await
            .expect("the probe runs");
        assert_eq!(outcome, ProbeOutcome::Exclusive);
        assert!(outcome.is_exclusive());
        assert_nothing_left(&store, "").await;
    }

    #[tokio::test]
    async fn a_store_that_ignores_the_condition_is_not_exclusive() {
        let outcome = probe_quirky(Quirk::IgnoresCondition).await;
        let ProbeOutcome::NotExclusive { reason } = outcome else {
            panic!("expected NotExclusive, got {outcome:?}");
        };
        assert!(
            reason.contains("second") && reason.contains("accepted"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_store_that_rejects_the_condition_is_not_exclusive() {
        let outcome = probe_quirky(Quirk::RejectsCondition).await;
        let ProbeOutcome::NotExclusive { reason } = outcome else {
            panic!("expected NotExclusive, got {outcome:?}");
        };
        assert!(reason.contains("NotImplemented"), "{reason}");
    }

    #[tokio::test]
    async fn a_store_that_reports_exists_but_overwrites_is_not_exclusive() {
        let outcome = probe_quirky(Quirk::ReportsButOverwrites).await;
        let ProbeOutcome::NotExclusive { reason } = outcome else {
            panic!("expected NotExclusive, got {outcome:?}");
        };
        assert!(reason.contains("replaced the body"), "{reason}");
    }

    #[tokio::test]
    async fn an_invalid_prefix_is_an_error_not_a_verdict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = local(&dir);
        let err = probe_create_if_absent(&store, "../outside/")
            .await
            .expect_err("an escaping prefix cannot be probed");
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn probe_keys_are_unique_and_under_the_prefix() {
        let a = probe_key("q/");
        let b = probe_key("q/");
        assert_ne!(a, b);
        assert!(a.starts_with("q/bucketq-probe-"), "{a}");
    }
}
