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
            | StoreError::PreconditionFailed { .. }
    )
}

fn not_exclusive(reason: impl Into<String>) -> ProbeOutcome {
    ProbeOutcome::NotExclusive {
        reason: reason.into(),
    }
}
