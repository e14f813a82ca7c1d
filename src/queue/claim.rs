//! Claim: turn a pending task into a lock only this worker holds (design §3.2).
//!
//! Both recipes start with a GET of the pending key: the handler needs the payload anyway, and
//! the pending object's metadata says how many attempts a recreated task has used. Then:
//!
//! - [`Recipe::AtomicCopy`] (OSS, local): CopyObject pending → lock with create-if-absent,
//!   `source_if_match` = the ETag just read, metadata REPLACE. One atomic step: it fails if
//!   another worker holds the lock, or if the pending key was claimed or rewritten since.
//! - [`Recipe::PutFromGet`] (S3): PUT the lock with the body read, create-if-absent. This alone
//!   cannot tell whether the pending key still exists: another worker may have claimed it, run
//!   it and deleted its lock between our GET and our PUT, and we would run it a second time.
//!   Every bucketq worker keeps a settled lock for [`QueueCtx::settle_hold`] after deleting the
//!   pending key, so if our GET was sent less than that before our PUT answered, no lock of
//!   this task can have come and gone in between. Otherwise (a stalled claim) we HEAD the
//!   pending key and give the lock back if the task is gone. DELETE is never made conditional:
//!   many S3-compatible stores ignore `If-Match` on it.
//!
//! Then the pending key is deleted (batched with other deletes) before the handler starts, so
//! no second claim can succeed once the lock is deleted. A create that was retried after a
//! lost answer and then reports "exists" ([`StoreError::Ambiguous`]), or that failed without an
//! answer, is settled by reading the lock's `bq-token`: the first attempt may have won.

use bytes::Bytes;
use tokio::time::Instant;

use super::context::{QueueCtx, Recipe};
use super::error::QueueError;
use super::held::Held;
use super::meta;
use super::scan::Candidate;
use crate::store::{CopyOptions, Metadata, PutOptions, StoreError, WriteMode};

/// How a claim attempt ended.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per in-flight claim; boxing buys nothing
pub enum ClaimOutcome {
    /// The lock is ours and the pending key is gone: run the handler.
    Won(Box<Held>),
    /// Another worker has the task, or it vanished: a claim conflict.
    Lost,
    /// The task was moved to `failed/` without running (too large, too old, attempts spent).
    Failed {
        /// Why.
        reason: String,
    },
    /// The claim could not be completed safely; what it left is the reaper's to tidy.
    Abandoned {
        /// Why.
        reason: String,
    },
    /// The store failed mid-claim and left it open: a lock carrying this claim's token may
    /// exist beside the pending key (a create whose answer was lost and whose lock could not
    /// be read), or the lock exists and the pending key may be gone (a put-back that kept
    /// failing). Nothing is lost: the reaper settles it once the lock is a lease old. The
    /// caller may settle it sooner, once the store answers again, by releasing `held`
    /// ([`super::settle::release`] with the attempts used before it), which acts only on a
    /// lock that still carries its token.
    Unresolved {
        /// The claim, with the payload read.
        held: Box<Held>,
        /// What failed.
        reason: String,
    },
}

/// Try to claim one listed task.
pub async fn claim(q: &QueueCtx, candidate: &Candidate) -> Result<ClaimOutcome, QueueError> {
    let listed = &candidate.listed;
    if listed.size > q.limits.max_payload_bytes {
        let reason = oversize_reason(listed.size, q.limits.max_payload_bytes);
        return fail_pending(q, candidate, &listed.etag, 0, None, reason).await;
    }
    // While the store fails, a claim waits its turn like every other repeatable step, rather
    // than sending its read into the outage (see [`super::health`]).
    let turn = q.health.turn().await;
    let expected = q.deleter.expect();
    let get_sent = Instant::now();
    let read = q.store.get(&listed.key).await;
    drop(turn);
    let object = match read {
        Ok(object) => object,
        Err(StoreError::NotFound { .. }) => return Ok(ClaimOutcome::Lost),
        Err(e) => return Err(QueueError::store("read pending task", &listed.key, e)),
    };
    let head = &object.head;
    let used = meta::attempt(&head.user_meta);
    let created_at =
        meta::time(&head.user_meta, meta::CREATED_AT).unwrap_or(head.meta.last_modified);
    if let Some(reason) = refusal(q, object.body.len() as u64, used, created_at) {
        return fail_pending(
            q,
            candidate,
            &head.meta.etag,
            used,
            Some(created_at),
            reason,
        )
        .await;
    }
    let mut held = Held {
        id: candidate.id.clone(),
        pending_key: listed.key.clone(),
        lock_key: q.layout.lock_key(&candidate.id),
        token: q.new_token(),
        attempt: used + 1,
        body: object.body.clone(),
        etag: head.meta.etag.clone(),
        created_at,
        claimed_at: q.clock.now(),
        valid_until: Instant::now(),
        confirmed_at: Instant::now(),
        pending_gone_at: Instant::now(),
    };
    let sent = Instant::now();
    match create_lock(q, &held).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. } | StoreError::PreconditionFailed { .. })
        | Err(StoreError::NotFound { .. }) => return Ok(ClaimOutcome::Lost),
        Err(e @ (StoreError::Ambiguous { .. } | StoreError::Transient { .. })) => {
            match read_lock_token_in_turn(q, &held.lock_key).await {
                Some(Ok(Some(token))) if token == held.token => {
                    tracing::debug!(key = %held.lock_key, error = %e, "a create without a clear answer had won");
                }
                Some(Ok(_)) => return Ok(ClaimOutcome::Lost),
                // Unknown (the read failed, or the store is failing and it was not our turn
                // to read): a lock of ours, if any, sits beside the pending key, so nothing is
                // lost; the caller checks it again once the store answers.
                Some(Err(_)) | None => {
                    let reason = QueueError::store("create lock", &held.lock_key, e).to_string();
                    return Ok(ClaimOutcome::Unresolved {
                        held: Box::new(held),
                        reason,
                    });
                }
            }
        }
        Err(e) => return Err(QueueError::store("create lock", &held.lock_key, e)),
    }
    held.confirm_lease(sent, q.limits.lease, q.limits.margin);
    if q.recipe == Recipe::PutFromGet && get_sent.elapsed() >= q.settle_hold {
        if !held.lease_valid(Instant::now()) {
            return Ok(abandoned(expected));
        }
        match q.store.head(&held.pending_key).await {
            Ok(h) if h.meta.etag.eq_ignore_ascii_case(&held.etag) => {}
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                give_back_lock(q, &held).await;
                return Ok(ClaimOutcome::Lost);
            }
            Err(e) => {
                give_back_lock(q, &held).await;
                return Err(QueueError::store(
                    "check pending task",
                    &held.pending_key,
                    e,
                ));
            }
        }
    }
    if !held.lease_valid(Instant::now()) {
        return Ok(abandoned(expected));
    }
    let deleted = delete_pending(q, expected, &held).await;
    if deleted.is_err() || !held.lease_valid(Instant::now()) {
        // The delete failed, or answered so late that a reaper may already have acted on our
        // lock: the pending key may be gone and the lock with it. Make sure the task exists as
        // a pending key again, and never run it under a lease we cannot prove.
        if !ensure_pending(q, &held, used).await {
            let reason = match &deleted {
                Err(e) => e.to_string(),
                Ok(()) => "the pending delete answered after the lease".into(),
            };
            return Ok(ClaimOutcome::Unresolved {
                held: Box::new(held),
                reason,
            });
        }
        return match deleted {
            Ok(()) => Ok(ClaimOutcome::Lost),
            Err(e) => Err(e),
        };
    }
    held.pending_gone_at = Instant::now();
    Ok(ClaimOutcome::Won(Box::new(held)))
}

/// The claim itself took longer than the lease (a stalled request, a paused host): a reaper
/// may already be dropping our lock because the pending key is still there, so deleting either
/// key now could leave nothing. Both are left to the reaper.
fn abandoned(expected: super::deleter::Expected) -> ClaimOutcome {
    drop(expected);
    ClaimOutcome::Abandoned {
        reason: "the claim took longer than the lease".into(),
    }
}

/// Delete the pending key of a won claim, retrying a failure a few times. A failed delete may
/// have happened (its answer lost), so the lock is *not* given back: with the pending key
/// perhaps gone, deleting the lock could lose the task. Left alone, the lock goes stale and the
/// reaper either drops it (pending key there) or recreates the pending key from it.
async fn delete_pending(
    q: &QueueCtx,
    expected: super::deleter::Expected,
    held: &Held,
) -> Result<(), QueueError> {
    let key = &held.pending_key;
    let mut wait = std::time::Duration::from_millis(100);
    let mut result = q
        .deleter
        .delete_expected(expected, key, held.valid_until)
        .await;
    for _ in 0..3 {
        let Err(ref e) = result else {
            return Ok(());
        };
        tracing::debug!(key = %key, error = %e, "pending delete failed; retrying");
        tokio::time::sleep(wait).await;
        wait *= 2;
        if !held.lease_valid(Instant::now()) {
            // Never send it past the lease: a reaper may be dropping our lock because the
            // pending key is still there.
            break;
        }
        result = q.deleter.delete_now(key, held.valid_until).await;
    }
    result.map_err(|e| {
        tracing::warn!(key = %key, error = %e, "could not delete a claimed task's pending key; the task goes back to pending");
        QueueError::store("delete pending task", key, e)
    })
}

/// After a pending delete that failed or answered late, make sure the task still exists
/// somewhere other than this worker's memory. Retried a few times, each in its turn (see
/// [`super::health`]); false if the store stayed unreachable: the lock is left for the reaper,
/// which recreates the task from it, unless the caller settles it sooner.
async fn ensure_pending(q: &QueueCtx, held: &Held, used: u32) -> bool {
    let mut wait = std::time::Duration::from_millis(100);
    for _ in 0..4 {
        // The turn covers the whole put-back, so no wait falls between its lease check and
        // the lock delete that check allows.
        match q.health.in_turn(put_back(q, held, used)).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(key = %held.pending_key, error = %e, "could not put a task back to pending; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tracing::warn!(key = %held.pending_key, "could not put a task back to pending yet; its lock stays until the store answers (or the reaper takes it)");
    false
}

/// While the lease is ours, the lock is ours: recreate the pending key (create-if-absent, with
/// the attempts used before this claim), then give the lock back. Past the lease, a reaper may
/// be dropping the lock right now because it saw the pending key before our delete took it:
/// recreate the pending key whatever the lock says, and leave the lock alone. At worst the task
/// runs once more; it is never left with neither key.
async fn put_back(q: &QueueCtx, held: &Held, used: u32) -> Result<(), StoreError> {
    let user_meta = super::held::pending_meta(used, held.created_at, &held.token);
    create_from_body(q, &held.pending_key, held.body.clone(), user_meta).await?;
    if held.lease_valid(Instant::now()) {
        give_back_lock(q, held).await;
    }
    Ok(())
}

/// Why a task read for claiming must fail instead of running, if it must.
fn refusal(
    q: &QueueCtx,
    size: u64,
    used: u32,
    created_at: std::time::SystemTime,
) -> Option<String> {
    if size > q.limits.max_payload_bytes {
        return Some(oversize_reason(size, q.limits.max_payload_bytes));
    }
    if used >= q.limits.max_attempts {
        return Some(format!(
            "all {} attempts used (the last ones by workers that stopped)",
            q.limits.max_attempts
        ));
    }
    let max_age = q.limits.max_age?;
    let age = q.clock.now().duration_since(created_at).ok()?;
    (age > max_age).then(|| {
        format!(
            "older than max_age ({} > {})",
            humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
            humantime::format_duration(max_age)
        )
    })
}

fn oversize_reason(size: u64, max: u64) -> String {
    format!("payload of {size} bytes is over max_payload_bytes ({max})")
}

/// Create the lock by the store's recipe.
async fn create_lock(q: &QueueCtx, held: &Held) -> Result<(), StoreError> {
    let user_meta = held.lock_meta(&q.owner);
    match q.recipe {
        Recipe::AtomicCopy => {
            let opts = CopyOptions {
                mode: WriteMode::CreateIfAbsent,
                source_if_match: Some(held.etag.clone()),
                user_meta,
                content_type: None,
            };
            q.store
                .copy(&held.pending_key, &held.lock_key, &opts)
                .await?;
        }
        Recipe::PutFromGet => {
            let opts = PutOptions {
                mode: WriteMode::CreateIfAbsent,
                user_meta,
                content_type: None,
            };
            q.store
                .put(&held.lock_key, held.body.clone(), &opts)
                .await?;
        }
    }
    Ok(())
}

/// [`lock_token`] of a lock whose create got no clear answer, if the store is not failing or
/// it is this read's turn; `None` when it is not (the caller remembers the claim instead of
/// queueing one more read into an outage).
async fn read_lock_token_in_turn(
    q: &QueueCtx,
    key: &str,
) -> Option<Result<Option<String>, StoreError>> {
    let turn = q.health.try_turn()?;
    let read = lock_token(q, key).await;
    drop(turn);
    Some(read)
}

/// The `bq-token` of a key, `None` when the key is absent or carries none.
pub async fn lock_token(q: &QueueCtx, key: &str) -> Result<Option<String>, StoreError> {
    match q.store.head(key).await {
        Ok(head) => Ok(head.user_meta.get(meta::TOKEN).cloned()),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Delete a lock we just created and may not use; the pending key is still there, so this
/// loses nothing. If even this fails, the lock goes stale and the reaper removes it.
async fn give_back_lock(q: &QueueCtx, held: &Held) {
    if let Err(e) = q.store.delete(&held.lock_key).await {
        tracing::warn!(key = %held.lock_key, error = %e, "could not give back a lock; the reaper will remove it after the lease");
    }
}

/// Move a pending task straight to `failed/` (it must not run): copy it with the error
/// metadata, then delete the pending key. No lock is needed: both steps are idempotent, and the
/// copy is conditional on the ETag read, so a task rewritten meanwhile is left alone.
pub async fn fail_pending(
    q: &QueueCtx,
    candidate: &Candidate,
    etag: &str,
    attempts: u32,
    created_at: Option<std::time::SystemTime>,
    reason: String,
) -> Result<ClaimOutcome, QueueError> {
    let failed_key = q.layout.failed_key(&candidate.id);
    let created_at = created_at.unwrap_or(candidate.listed.last_modified);
    let opts = CopyOptions {
        mode: WriteMode::Overwrite,
        source_if_match: Some(etag.to_owned()),
        user_meta: failed_meta(q, attempts, created_at, &reason),
        content_type: None,
    };
    match q
        .store
        .copy(&candidate.listed.key, &failed_key, &opts)
        .await
    {
        Ok(_) => {}
        Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
            return Ok(ClaimOutcome::Lost)
        }
        Err(e) => return Err(QueueError::store("copy task to failed", &failed_key, e)),
    }
    q.store
        .delete(&candidate.listed.key)
        .await
        .map_err(|e| QueueError::store("delete pending task", &candidate.listed.key, e))?;
    Ok(ClaimOutcome::Failed { reason })
}

/// Metadata of a failed object.
pub fn failed_meta(
    q: &QueueCtx,
    attempts: u32,
    created_at: std::time::SystemTime,
    reason: &str,
) -> Metadata {
    let mut m = Metadata::new();
    m.insert(meta::ERROR.into(), meta::escape_error(reason));
    m.insert(meta::FAILED_AT.into(), meta::format_time(q.clock.now()));
    m.insert(meta::ATTEMPT.into(), attempts.to_string());
    m.insert(meta::OWNER.into(), q.owner.clone());
    m.insert(meta::CREATED_AT.into(), meta::format_time(created_at));
    m
}

/// Write `body` to `key` with create-if-absent, reading an ambiguous answer through the
/// token in `user_meta`. Ok(true): written by us; Ok(false): the key already existed.
pub async fn create_from_body(
    q: &QueueCtx,
    key: &str,
    body: Bytes,
    user_meta: Metadata,
) -> Result<bool, StoreError> {
    let token = user_meta.get(meta::TOKEN).cloned();
    let opts = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        user_meta,
        content_type: None,
    };
    match q.store.put(key, body, &opts).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(StoreError::Ambiguous { .. }) => Ok(lock_token(q, key).await? == token),
        Err(e) => Err(e),
    }
}
