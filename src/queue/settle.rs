//! Settle: what happens to a lock once its task is done with (design §3.4, §3.6).
//!
//! - success: delete the lock (batched, after [`QueueCtx::settle_hold`]) or move it to `D`;
//! - permanent failure: copy the lock to `F P I S` with the error metadata, then delete it;
//! - release (shutdown): recreate the pending key with create-if-absent, then delete the lock,
//!   so another worker takes the task at once instead of waiting for the lease.
//!
//! Every step first makes sure the lock is still ours ([`ensure_ours`]), and never deletes a
//! key before its successor exists. Where the lock vanished while the lease was provably ours,
//! the successor is written from the payload in memory.

use tokio::time::Instant;

use super::claim::{create_from_body, failed_meta};
use super::context::{QueueCtx, Recipe};
use super::error::QueueError;
use super::held::{pending_meta, Held};
use super::lease::{ensure_ours, LeaseError};
use super::meta;
use crate::config::OnSuccess;
use crate::store::{CopyOptions, Metadata, PutOptions, StoreError, WriteMode};

/// The handler succeeded: the task is done.
pub async fn succeed(q: &QueueCtx, held: &Held) -> Result<(), LeaseError> {
    ensure_ours(q, held).await?;
    if q.limits.on_success == OnSuccess::Move {
        let done_key = q.layout.done_key(&held.id);
        let mut m = Metadata::new();
        m.insert(meta::ATTEMPT.into(), held.attempt.to_string());
        m.insert(meta::CREATED_AT.into(), meta::format_time(held.created_at));
        m.insert(meta::OWNER.into(), q.owner.clone());
        copy_or_write(q, held, &done_key, m, "move lock to done").await?;
    }
    delete_settled_lock(q, held).await
}

/// The task failed for good: move it to `failed/` with `reason`.
pub async fn fail(q: &QueueCtx, held: &Held, reason: &str) -> Result<(), LeaseError> {
    ensure_ours(q, held).await?;
    let failed_key = q.layout.failed_key(&held.id);
    let m = failed_meta(q, held.attempt, held.created_at, reason);
    copy_or_write(q, held, &failed_key, m, "move lock to failed").await?;
    delete_settled_lock(q, held).await
}

/// Give the task back: pending again with `attempts` attempts counted, lock deleted.
pub async fn release(q: &QueueCtx, held: &Held, attempts: u32) -> Result<(), LeaseError> {
    ensure_ours(q, held).await?;
    let user_meta = pending_meta(attempts, held.created_at, &held.token);
    let created = match q.recipe {
        Recipe::AtomicCopy => {
            let opts = CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                source_if_match: Some(held.etag.clone()),
                user_meta: user_meta.clone(),
                content_type: None,
            };
            match q.store.copy(&held.lock_key, &held.pending_key, &opts).await {
                Ok(_) => Ok(true),
                Err(StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. }) => Ok(false),
                Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
                    create_from_body(q, &held.pending_key, held.body.clone(), user_meta).await
                }
                Err(e) => Err(e),
            }
        }
        Recipe::PutFromGet => {
            create_from_body(q, &held.pending_key, held.body.clone(), user_meta).await
        }
    };
    created.map_err(|e| QueueError::store("recreate pending task", &held.pending_key, e))?;
    q.deleter
        .delete_now(&held.lock_key)
        .await
        .map_err(|e| QueueError::store("delete released lock", &held.lock_key, e))?;
    Ok(())
}

/// Delete a settled lock: batched and held a moment while the lease lasts (see
/// [`QueueCtx::settle_hold`]), at once when it has run out, since a reaper may then act on it
/// any time.
async fn delete_settled_lock(q: &QueueCtx, held: &Held) -> Result<(), LeaseError> {
    if held.lease_valid(Instant::now()) {
        q.deleter.delete_later(
            &held.lock_key,
            held.pending_gone_at + q.settle_hold,
            held.valid_until,
        );
        return Ok(());
    }
    q.deleter
        .delete_now(&held.lock_key)
        .await
        .map_err(|e| QueueError::store("delete settled lock", &held.lock_key, e).into())
}

/// Copy the lock to `dest` with `user_meta`; if the lock vanished while ours, write the
/// payload from memory instead.
async fn copy_or_write(
    q: &QueueCtx,
    held: &Held,
    dest: &str,
    user_meta: Metadata,
    step: &'static str,
) -> Result<(), QueueError> {
    let opts = CopyOptions {
        mode: WriteMode::Overwrite,
        source_if_match: Some(held.etag.clone()),
        user_meta: user_meta.clone(),
        content_type: None,
    };
    match q.store.copy(&held.lock_key, dest, &opts).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
            let opts = PutOptions {
                mode: WriteMode::Overwrite,
                user_meta,
                content_type: None,
            };
            q.store
                .put(dest, held.body.clone(), &opts)
                .await
                .map(|_| ())
                .map_err(|e| QueueError::store(step, dest, e))
        }
        Err(e) => Err(QueueError::store(step, dest, e)),
    }
}
