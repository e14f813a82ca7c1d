//! Reap: give the task of a dead worker's lock back to the queue (design §3.5).
//!
//! Any worker reaps, as part of listing, a lock whose LastModified is more than a lease before
//! the listing's server time. It re-reads the lock and acts only if it was not refreshed since.
//! Then:
//!
//! - attempts left: recreate the pending key from the lock's body with create-if-absent
//!   (carrying `bq-attempt`), and only if that write was ours, delete the lock. Of several
//!   workers reaping the same lock at once exactly one wins the create, so exactly one deletes.
//! - the pending key exists already (the claim died between creating the lock and deleting the
//!   pending key, or the worker died mid-release): delete the lock, after checking the pending
//!   key is not one another reaper has just recreated (that reaper deletes the lock itself).
//! - attempts spent (`bq-attempt` ≥ `max_attempts`): move the lock to `failed/`, so a task that
//!   kills its worker every time does not loop for ever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::claim::{create_from_body, failed_meta};
use super::context::{QueueCtx, Recipe};
use super::error::QueueError;
use super::held::pending_meta;
use super::meta;
use super::scan::ListedLock;
use crate::store::{CopyOptions, ObjectHead, PutOptions, StoreError, WriteMode};

/// What reaping one lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaped {
    /// The lock is gone or was refreshed since it was listed: nothing to do.
    NotStale,
    /// The pending key was recreated and the lock deleted.
    Requeued,
    /// The pending key existed; the lock was deleted.
    LockDropped,
    /// Another worker is reaping it (it recreated the pending key just now).
    LeftToOther,
    /// The task moved on while this reaper worked (another reaper requeued it and a claim took
    /// it again, or its owner was alive after all): the pending key this reaper wrote late was a
    /// second copy, and was taken back.
    Superseded,
    /// Attempts were spent: moved to `failed/`.
    Failed,
}

/// Reap one lock listed as stale.
pub async fn reap(q: &QueueCtx, lock: &ListedLock) -> Result<Reaped, QueueError> {
    let key = &lock.listed.key;
    let (head, body) = match reread(q, key).await? {
        Some(found) => found,
        None => return Ok(Reaped::NotStale),
    };
    if !same_second(head.meta.last_modified, lock.listed.last_modified) {
        return Ok(Reaped::NotStale);
    }
    let attempts = meta::attempt(&head.user_meta).max(1);
    let created_at =
        meta::time(&head.user_meta, meta::CREATED_AT).unwrap_or(head.meta.last_modified);
    let owner = head.user_meta.get(meta::OWNER).cloned().unwrap_or_default();
    let pending_key = q.layout.pending_key(&lock.id);
    if attempts >= q.limits.max_attempts {
        return match q.store.head(&pending_key).await {
            Ok(_) => drop_lock(q, key, &head).await,
            Err(StoreError::NotFound { .. }) => {
                let reason = format!(
                    "worker {owner} stopped during attempt {attempts} of {}; no attempts left",
                    q.limits.max_attempts
                );
                to_failed(q, &lock.id, &head, body, attempts, created_at, &reason).await
            }
            Err(e) => Err(QueueError::store("check pending task", &pending_key, e)),
        };
    }
    let token = q.new_token();
    let user_meta = pending_meta(attempts, created_at, &token);
    let created = match (q.recipe, body) {
        (Recipe::AtomicCopy, _) => {
            let opts = CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                source_if_match: Some(head.meta.etag.clone()),
                user_meta,
                content_type: None,
            };
            match q.store.copy(key, &pending_key, &opts).await {
                Ok(_) => Ok(true),
                Err(StoreError::AlreadyExists { .. }) => Ok(false),
                Err(StoreError::Ambiguous { .. }) => super::claim::lock_token(q, &pending_key)
                    .await
                    .map(|t| t.as_deref() == Some(token.as_str())),
                Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
                    return Ok(Reaped::NotStale)
                }
                Err(e) => Err(e),
            }
        }
        (Recipe::PutFromGet, Some(body)) => {
            create_from_body(q, &pending_key, body, user_meta).await
        }
        (Recipe::PutFromGet, None) => unreachable_body(key),
    };
    match created {
        Ok(true) => {
            // Our write may have landed late (a slow request), after another reaper dropped
            // the lock and a new claim took the key: only the lock we read may go.
            if delete_if_unchanged(q, key, &head).await? {
                Ok(Reaped::Requeued)
            } else {
                take_back(q, &pending_key, &token).await
            }
        }
        Ok(false) => pending_exists(q, key, &pending_key, &head).await,
        Err(e) => Err(QueueError::store("recreate pending task", &pending_key, e)),
    }
}

/// The stale lock changed or went between our read and our create, so the task moved on without
/// us: the lock we read was deleted only after its successor existed (a requeued pending key
/// that has been claimed again, `failed/`, or a finished task), and a live lock may hold it now.
/// The pending key we wrote is a second copy that would run the task once more: delete it, if
/// it is still ours.
async fn take_back(q: &QueueCtx, pending_key: &str, token: &str) -> Result<Reaped, QueueError> {
    let ours = super::claim::lock_token(q, pending_key)
        .await
        .map_err(|e| QueueError::store("check recreated task", pending_key, e))?;
    if ours.as_deref() == Some(token) {
        q.store
            .delete(pending_key)
            .await
            .map_err(|e| QueueError::store("take back recreated task", pending_key, e))?;
    }
    tracing::debug!(key = %pending_key, "the stale lock was reaped by another worker meanwhile; took back the late copy");
    Ok(Reaped::Superseded)
}

/// The lock as it is now, with its body where the recipe needs it to recreate the task.
async fn reread(
    q: &QueueCtx,
    key: &str,
) -> Result<Option<(ObjectHead, Option<Bytes>)>, QueueError> {
    let found = match q.recipe {
        Recipe::AtomicCopy => q.store.head(key).await.map(|h| (h, None)),
        Recipe::PutFromGet => q.store.get(key).await.map(|o| (o.head, Some(o.body))),
    };
    match found {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(QueueError::store("re-read stale lock", key, e)),
    }
}

fn unreachable_body(key: &str) -> Result<bool, StoreError> {
    Err(StoreError::Unexpected {
        key: key.to_owned(),
        op: crate::store::Op::Get,
        message: "stale lock read without its body".into(),
    })
}

/// How long a reaper that recreated a pending key gets to delete the lock before others take
/// it for dead: its delete follows its create at once, so a few seconds is plenty.
fn finish_grace(lease: Duration) -> Duration {
    (lease / 4).min(Duration::from_secs(5))
}

/// The pending key exists beside a stale lock. If it was recreated just now from this lock (it
/// is newer than the lock by most of a lease and younger than [`finish_grace`]), the reaper
/// that wrote it deletes the lock; otherwise the lock is a leftover and goes.
async fn pending_exists(
    q: &QueueCtx,
    lock_key: &str,
    pending_key: &str,
    lock: &ObjectHead,
) -> Result<Reaped, QueueError> {
    let pending = match q.store.head(pending_key).await {
        Ok(h) => h,
        Err(StoreError::NotFound { .. }) => return Ok(Reaped::NotStale),
        Err(e) => return Err(QueueError::store("check pending task", pending_key, e)),
    };
    let lease = q.limits.lease;
    let recreated_from_lock = pending
        .meta
        .last_modified
        .duration_since(lock.meta.last_modified)
        .is_ok_and(|d| d >= lease / 2);
    let fresh = q
        .clock
        .now()
        .duration_since(pending.meta.last_modified)
        .map_or(true, |age| age < finish_grace(lease));
    if recreated_from_lock && fresh {
        return Ok(Reaped::LeftToOther);
    }
    drop_lock(q, lock_key, lock).await
}

/// Delete a stale lock whose task is pending anyway, after checking once more, right before
/// the delete, that it is the same stale lock.
async fn drop_lock(q: &QueueCtx, key: &str, lock: &ObjectHead) -> Result<Reaped, QueueError> {
    if delete_if_unchanged(q, key, lock).await? {
        Ok(Reaped::LockDropped)
    } else {
        Ok(Reaped::NotStale)
    }
}

async fn to_failed(
    q: &QueueCtx,
    id: &str,
    lock: &ObjectHead,
    body: Option<Bytes>,
    attempts: u32,
    created_at: SystemTime,
    reason: &str,
) -> Result<Reaped, QueueError> {
    let failed_key = q.layout.failed_key(id);
    let user_meta = failed_meta(q, attempts, created_at, reason);
    let written = match body {
        Some(body) => {
            let opts = PutOptions {
                mode: WriteMode::Overwrite,
                user_meta,
                content_type: None,
            };
            q.store.put(&failed_key, body, &opts).await.map(|_| ())
        }
        None => {
            let opts = CopyOptions {
                mode: WriteMode::Overwrite,
                source_if_match: Some(lock.meta.etag.clone()),
                user_meta,
                content_type: None,
            };
            match q.store.copy(&lock.meta.key, &failed_key, &opts).await {
                Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
                    return Ok(Reaped::NotStale)
                }
                other => other.map(|_| ()),
            }
        }
    };
    written.map_err(|e| QueueError::store("move stale lock to failed", &failed_key, e))?;
    delete_if_unchanged(q, &lock.meta.key, lock).await?;
    Ok(Reaped::Failed)
}

/// Delete the stale lock `lock` if the key still holds it (same LastModified): read it once
/// more right before the delete, which goes out at once, not through the batcher. A reaper acts
/// on what it read; a newer lock at the key belongs to a live claim. False when it changed.
async fn delete_if_unchanged(
    q: &QueueCtx,
    key: &str,
    lock: &ObjectHead,
) -> Result<bool, QueueError> {
    match q.store.head(key).await {
        Ok(now) if same_second(now.meta.last_modified, lock.meta.last_modified) => {}
        Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(QueueError::store("re-read stale lock", key, e)),
    }
    q.store
        .delete(key)
        .await
        .map_err(|e| QueueError::store("delete stale lock", key, e))?;
    Ok(true)
}

/// Listings report LastModified in milliseconds, HEAD in whole seconds (an HTTP date): compare
/// at the coarser grain.
pub fn same_second(a: SystemTime, b: SystemTime) -> bool {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    };
    secs(a) == secs(b)
}
