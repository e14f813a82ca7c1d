//! Keeping a lease: refreshing the lock while its task runs or waits for a retry (design §3.3).
//!
//! A refresh reads the lock's `bq-token` (HEAD), then copies the lock onto itself with metadata
//! REPLACE, which moves its LastModified. A lock carrying another token means the lease was
//! lost: the caller stops and touches nothing else.
//!
//! A refresh is only sent while the lease is provably ours and only counts if answered before
//! that ends. Past it, a reaper may have read the lock as stale and be recreating the task; a
//! late refresh would let this worker believe in a lease the reaper is taking away.
//!
//! A lock that is simply *gone* while our lease is still provably valid was not reaped (no
//! worker may reap a lock younger than a lease); it was deleted by a reaper that lost a race
//! with a newer claim. The payload is in memory, so the lock is restored with create-if-absent
//! rather than abandoned: abandoning it would leave the task with neither a pending key nor a
//! lock, and a crash would lose it.

use tokio::time::Instant;

use super::claim::{create_from_body, lock_token};
use super::context::QueueCtx;
use super::error::QueueError;
use super::held::Held;
use crate::store::{CopyOptions, StoreError, WriteMode};

/// Why a lease could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another worker holds the task now, or it is gone for good: stop, touch nothing.
    #[error("lease lost on {key}: {reason}")]
    Lost {
        /// The lock key.
        key: String,
        /// What was found.
        reason: String,
    },
    /// The store did not answer; try again while the lease lasts.
    #[error(transparent)]
    Store(#[from] QueueError),
}

/// Move the lock's LastModified and write its metadata (token, attempt) again. With
/// `check_token` the lock is read first, so a lock that another worker took is noticed.
pub async fn refresh(q: &QueueCtx, held: &mut Held, check_token: bool) -> Result<(), LeaseError> {
    // A write to an expired lease races a reaper that read the lock as stale and is about to
    // recreate the task: never send one, and never count one answered too late.
    let deadline = held.valid_until;
    if Instant::now() >= deadline {
        return Err(lost(held, "the lease ran out"));
    }
    if check_token {
        match lock_token(q, &held.lock_key).await {
            Ok(Some(token)) if token == held.token => {}
            Ok(Some(_)) => return Err(lost(held, "the lock carries another worker's token")),
            Ok(None) => return restore(q, held).await,
            Err(e) => return Err(QueueError::store("read lock", &held.lock_key, e).into()),
        }
    }
    let opts = CopyOptions {
        mode: WriteMode::Overwrite,
        source_if_match: Some(held.etag.clone()),
        user_meta: held.lock_meta(&q.owner),
        content_type: None,
    };
    let sent = Instant::now();
    match q.store.copy(&held.lock_key, &held.lock_key, &opts).await {
        Ok(_) if Instant::now() >= deadline => Err(lost(
            held,
            "the refresh was answered after the lease ran out",
        )),
        Ok(_) => {
            held.confirm_lease(sent, q.limits.lease);
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => restore(q, held).await,
        Err(StoreError::PreconditionFailed { .. }) => {
            Err(lost(held, "the lock now holds a different payload"))
        }
        Err(e) => Err(QueueError::store("refresh lock", &held.lock_key, e).into()),
    }
}

/// Put back a lock that vanished while the lease was still ours.
async fn restore(q: &QueueCtx, held: &mut Held) -> Result<(), LeaseError> {
    let deadline = held.valid_until;
    if Instant::now() >= deadline {
        return Err(lost(held, "the lock is gone and the lease ran out"));
    }
    let sent = Instant::now();
    let meta = held.lock_meta(&q.owner);
    match create_from_body(q, &held.lock_key, held.body.clone(), meta).await {
        Ok(true) if Instant::now() >= deadline => Err(lost(
            held,
            "the lock was restored only after the lease ran out",
        )),
        Ok(true) => {
            tracing::warn!(key = %held.lock_key, "restored a lock deleted while its lease was valid");
            held.confirm_lease(sent, q.limits.lease);
            Ok(())
        }
        Ok(false) => Err(lost(
            held,
            "the lock was deleted and another worker took the task",
        )),
        Err(e) => Err(QueueError::store("restore lock", &held.lock_key, e).into()),
    }
}

fn lost(held: &Held, reason: &str) -> LeaseError {
    LeaseError::Lost {
        key: held.lock_key.clone(),
        reason: reason.to_owned(),
    }
}

/// Check the lock is still ours before acting on it: free while the lease is provably valid,
/// a HEAD after that.
pub async fn ensure_ours(q: &QueueCtx, held: &Held) -> Result<(), LeaseError> {
    if held.lease_valid(Instant::now()) {
        return Ok(());
    }
    match lock_token(q, &held.lock_key).await {
        Ok(Some(token)) if token == held.token => Ok(()),
        Ok(Some(_)) => Err(lost(held, "the lock carries another worker's token")),
        Ok(None) => Err(lost(held, "the lock is gone and the lease ran out")),
        Err(e) => Err(QueueError::store("read lock", &held.lock_key, e).into()),
    }
}
