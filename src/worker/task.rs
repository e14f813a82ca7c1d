//! One claimed task, from claim to settle: run the handler under its timeout while keeping the
//! lease, retry with backoff without holding a slot, settle the lock, and give the task back
//! on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::engine::{Env, QueueRunner};
use super::keeper::{retry_gap, LeaseKeeper};
use super::refusals::Verdict;
use crate::handlers::{Outcome, Task};
use crate::queue::backoff::{requested_delay, retry_delay};
use crate::queue::claim::{claim, ClaimOutcome};
use crate::queue::lease::{refresh, LeaseError};
use crate::queue::scan::Candidate;
use crate::queue::{settle, Held, QueueCtx};
use crate::store::StoreError;

/// A handler slot: one permit of the queue's limit and one of the global limit.
pub(crate) struct Slot {
    _queue: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

/// Wait for a free slot: the queue's first, so a busy queue does not sit on global slots.
pub(crate) async fn acquire_slot(r: &QueueRunner, env: &Env) -> Slot {
    let queue = Arc::clone(&r.slots)
        .acquire_owned()
        .await
        .expect("the queue semaphore is never closed");
    let global = Arc::clone(&env.global)
        .acquire_owned()
        .await
        .expect("the global semaphore is never closed");
    Slot {
        _queue: queue,
        _global: global,
    }
}

/// Marks a task's id as held by this worker (see [`QueueRunner::held`]) while it lives.
struct HeldId<'a> {
    r: &'a QueueRunner,
    id: String,
}

impl<'a> HeldId<'a> {
    fn new(r: &'a QueueRunner, id: &str) -> Self {
        r.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned());
        HeldId {
            r,
            id: id.to_owned(),
        }
    }
}

impl Drop for HeldId<'_> {
    fn drop(&mut self) {
        self.r
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// How one attempt ended.
enum Attempt {
    Done,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Fail {
        reason: String,
    },
    LeaseLost {
        reason: String,
    },
    /// The shutdown grace ran out while the handler ran.
    Abandoned,
}

/// How a wait that keeps the lease ended.
enum Waited {
    Elapsed,
    Slot(Slot),
    Drained,
    Lost(String),
}

/// Claim one candidate and, if won, see the task through.
pub(crate) async fn claim_and_run(
    r: Arc<QueueRunner>,
    env: Arc<Env>,
    candidate: Candidate,
    slot: Slot,
) {
    let q = &r.ctx;
    let claimed = claim(q, &candidate).await;
    r.claiming
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&candidate.id);
    match &claimed {
        Ok(ClaimOutcome::Won(_) | ClaimOutcome::Lost | ClaimOutcome::Failed { .. }) => {
            r.refusals.accepted()
        }
        Ok(ClaimOutcome::Abandoned { .. } | ClaimOutcome::Unresolved { .. }) => {
            r.refusals.inconclusive()
        }
        Err(_) => {}
    }
    let held = match claimed {
        Ok(ClaimOutcome::Won(held)) => *held,
        Ok(ClaimOutcome::Lost) => {
            q.metrics.update(&q.name, |m| m.claim_conflicts += 1);
            r.conflicted
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::debug!(queue = %q.name, key = %candidate.listed.key, "claim lost to another worker");
            return;
        }
        Ok(ClaimOutcome::Abandoned { reason }) => {
            tracing::warn!(queue = %q.name, key = %candidate.listed.key, reason = %reason, "claim abandoned; the reaper tidies up after the lease");
            return;
        }
        Ok(ClaimOutcome::Unresolved { held, reason }) => {
            tracing::warn!(queue = %q.name, key = %candidate.listed.key, reason = %reason, "claim left open by a store failure; its lock is checked again once the store answers");
            r.unresolved.remember(*held);
            return;
        }
        Ok(ClaimOutcome::Failed { reason }) => {
            q.metrics.update(&q.name, |m| m.failed += 1);
            tracing::warn!(queue = %q.name, key = %candidate.listed.key, reason = %reason, "task moved to failed without running");
            return;
        }
        Err(e) => {
            claim_failed(&r, &env, &candidate.listed.key, e);
            return;
        }
    };
    q.metrics.update(&q.name, |m| m.claimed += 1);
    let _held = HeldId::new(&r, &held.id);
    let span = tracing::info_span!(
        "task",
        queue = %q.name,
        key = %held.pending_key,
        attempt = held.attempt
    );
    tracing::debug!(parent: &span, "claimed task");
    run_held(&r, &env, held, slot).instrument(span).await;
}

/// A claim ended in a store error: a refusal pauses the queue's claims (or stops the worker,
/// see [`super::refusals`]); anything else leaves the task pending for the next poll.
fn claim_failed(r: &QueueRunner, env: &Env, key: &str, e: crate::queue::QueueError) {
    let q = &r.ctx;
    let error = e.store_error();
    let refusal = matches!(
        error,
        StoreError::Refused { .. }
            | StoreError::Forbidden { .. }
            | StoreError::Unauthenticated { .. }
            | StoreError::Unsupported { .. }
    ) || is_local_permission_error(error);
    if !refusal {
        r.refusals.inconclusive();
        tracing::warn!(queue = %q.name, key = %key, error = %e, "claim failed; the task stays pending");
        return;
    }
    match r.refusals.refused(key, error, Instant::now()) {
        Verdict::BackOff(delay) => {
            // The first refusal and then every doubling: a refusal that lasts is logged a
            // few times an hour, not once per task per poll.
            let n = r.refusals.consecutive();
            if n.is_power_of_two() {
                let hint = error.credential_hint().unwrap_or(if is_local_permission_error(error) {
                    "the daemon may not write the store directory: check its owner, mode and mount"
                } else {
                    ""
                });
                tracing::warn!(queue = %q.name, key = %key, error = %e, hint, refusals = n, retry_in = ?delay, "the store refused a claim; this queue's claims pause, then probe one at a time");
            }
        }
        Verdict::Stop => {
            tracing::error!(queue = %q.name, key = %key, error = %e, "the store refuses every claim as sent; stopping the worker");
            env.stop_with(super::WorkerError::ClaimsRefused {
                queue: q.name.clone(),
                source: clone_refusal(error),
            });
        }
    }
}

/// A local store that may not be written (read-only, or a directory another user made):
/// waiting will not fix it soon, so claims back off like any refusal instead of retrying at
/// every poll.
fn is_local_permission_error(error: &StoreError) -> bool {
    let StoreError::Io { source, .. } = error else {
        return false;
    };
    source.kind() == std::io::ErrorKind::PermissionDenied
        || source.raw_os_error() == Some(libc::EROFS)
}

/// A copy of a refusal for the worker's final error (store errors are not `Clone`: some carry
/// an `io::Error`; refusals never do).
fn clone_refusal(error: &StoreError) -> StoreError {
    match error {
        StoreError::Refused {
            key,
            op,
            status,
            code,
            message,
        } => StoreError::Refused {
            key: key.clone(),
            op: *op,
            status: *status,
            code: code.clone(),
            message: message.clone(),
        },
        other => StoreError::Unsupported {
            what: other.to_string(),
        },
    }
}

/// Attempts until the task is settled, lost or given back.
async fn run_held(r: &Arc<QueueRunner>, env: &Arc<Env>, mut held: Held, slot: Slot) {
    let q = &r.ctx;
    let mut slot = Some(slot);
    loop {
        if env.draining() {
            // Claimed but not started: give it back without counting the attempt.
            give_back(q, env, &held, held.attempt - 1).await;
            return;
        }
        let attempt = run_attempt(r, env, &mut held).await;
        drop(slot.take());
        let (after, reason) = match attempt {
            Attempt::Done => {
                if settle_retrying(q, env, "settle success", || settle::succeed(q, &held)).await {
                    q.metrics.update(&q.name, |m| m.succeeded += 1);
                    tracing::info!("task succeeded");
                }
                return;
            }
            Attempt::Fail { reason } => {
                fail(q, env, &held, &reason).await;
                return;
            }
            Attempt::LeaseLost { reason } => {
                tracing::warn!(reason = %reason, "lease lost; leaving the task to whoever holds it now");
                return;
            }
            Attempt::Abandoned => {
                tracing::warn!("shutdown grace ran out; handler cancelled");
                give_back(q, env, &held, held.attempt - 1).await;
                return;
            }
            Attempt::Retry { after, reason } => (after, reason),
        };
        if held.attempt >= q.limits.max_attempts {
            let reason = format!(
                "attempt {} of {} failed: {reason}",
                held.attempt, q.limits.max_attempts
            );
            fail(q, env, &held, &reason).await;
            return;
        }
        let delay = match after {
            Some(after) => requested_delay(after, r.config.max_backoff),
            None => q.with_rng(|rng| {
                retry_delay(r.config.backoff, r.config.max_backoff, held.attempt, rng)
            }),
        };
        q.metrics.update(&q.name, |m| m.retried += 1);
        tracing::info!(reason = %reason, retry_in = ?delay, "attempt failed; will retry");
        match wait_keeping_lease(r, env, &mut held, Some(Instant::now() + delay)).await {
            Waited::Elapsed | Waited::Slot(_) => {}
            Waited::Drained => {
                give_back(q, env, &held, held.attempt).await;
                return;
            }
            Waited::Lost(reason) => {
                tracing::warn!(reason = %reason, "lease lost while waiting to retry");
                return;
            }
        }
        match wait_keeping_lease(r, env, &mut held, None).await {
            Waited::Slot(s) => slot = Some(s),
            Waited::Elapsed => {}
            Waited::Drained => {
                give_back(q, env, &held, held.attempt).await;
                return;
            }
            Waited::Lost(reason) => {
                tracing::warn!(reason = %reason, "lease lost while waiting for a slot");
                return;
            }
        }
        held.attempt += 1;
        // Only on a change: the span was created with the first attempt, and the text log
        // prints every recorded value after the ones before.
        tracing::Span::current().record("attempt", held.attempt);
        if !record_attempt(r, env, &mut held).await {
            return;
        }
    }
}

/// Run the handler once, under its timeout, refreshing the lease every `lease / 3`.
async fn run_attempt(r: &Arc<QueueRunner>, env: &Arc<Env>, held: &mut Held) -> Attempt {
    let q = &r.ctx;
    let timeout = r.config.timeout;
    if let Some(reason) = too_old(q, held) {
        return Attempt::Fail { reason };
    }
    if !held.lease_valid(Instant::now()) {
        // The claim or the last write took so long the lease may have run out: re-confirm it
        // before running anything.
        if let Err(e) = refresh(q, held, true).await {
            return Attempt::LeaseLost {
                reason: format!("the lease ran out before the handler started: {e}"),
            };
        }
    }
    let task = Task {
        queue: q.name.clone(),
        id: held.id.clone(),
        key: held.pending_key.clone(),
        bucket: q.store.bucket().to_owned(),
        worker: q.owner.clone(),
        payload: held.body.clone(),
        etag: held.etag.clone(),
        created_at: held.created_at,
        attempt: held.attempt,
        max_attempts: q.limits.max_attempts,
        timeout,
    };
    let cancel = CancellationToken::new();
    if let Some(o) = &env.observer {
        o.attempt_started(
            &q.name,
            &held.id,
            &held.token,
            held.attempt,
            held.valid_until,
        );
    }
    q.metrics.update(&q.name, |m| m.in_flight += 1);
    let started = Instant::now();
    let handler = Arc::clone(&r.handler);
    let token = cancel.clone();
    let mut run = env.tasks.spawn(
        async move { handler.handle(&task, token).await }.instrument(tracing::Span::current()),
    );
    let deadline = started + timeout;
    let mut keeper = LeaseKeeper::new(q, env, held);
    let mut returned = false;
    let attempt = tokio::select! {
        biased;
        joined = &mut run => {
            returned = true;
            match joined {
            Ok(Outcome::Done) => Attempt::Done,
            Ok(Outcome::Retry { after, reason }) => Attempt::Retry { after, reason },
            Ok(Outcome::Fail { reason }) => Attempt::Fail { reason },
            Err(e) if e.is_panic() => Attempt::Retry { after: None, reason: "the handler panicked".into() },
            Err(_) => Attempt::Retry { after: None, reason: "the handler was cancelled".into() },
            }
        }
        _ = env.grace.cancelled() => Attempt::Abandoned,
        () = tokio::time::sleep_until(deadline) => Attempt::Retry {
            after: None,
            reason: format!("timed out after {}", humantime::format_duration(timeout)),
        },
        reason = keeper.keep(held) => Attempt::LeaseLost { reason },
    };
    if !returned {
        // It timed out, lost its lease, or the grace ran out: cancel it, give it a moment to
        // clean up (kill its child, close its connection), then stop waiting.
        cancel.cancel();
        let _ = tokio::time::timeout(cancel_wait(q), &mut run).await;
        run.abort();
    }
    keeper.finish(held).await;
    q.metrics.update(&q.name, |m| m.in_flight -= 1);
    q.metrics.observe_duration(&q.name, started.elapsed());
    if let Some(o) = &env.observer {
        o.attempt_ended(&q.name, &held.id, &held.token);
    }
    attempt
}

/// Wait until `until` (or, without it, for a free slot) while keeping the lease.
async fn wait_keeping_lease(
    r: &Arc<QueueRunner>,
    env: &Arc<Env>,
    held: &mut Held,
    until: Option<Instant>,
) -> Waited {
    let q = &r.ctx;
    let mut keeper = LeaseKeeper::new(q, env, held);
    let wanted = async {
        match until {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                None
            }
            None => Some(acquire_slot(r, env).await),
        }
    };
    let waited = tokio::select! {
        biased;
        _ = env.shutdown.drain.cancelled() => Waited::Drained,
        got = wanted => match got {
            Some(slot) => Waited::Slot(slot),
            None => Waited::Elapsed,
        },
        reason = keeper.keep(held) => Waited::Lost(reason),
    };
    keeper.finish(held).await;
    waited
}

/// Write the new attempt number into the lock (which also refreshes the lease). False when
/// the lease was lost.
async fn record_attempt(r: &Arc<QueueRunner>, env: &Arc<Env>, held: &mut Held) -> bool {
    let q = &r.ctx;
    loop {
        let check = !held.lease_valid(Instant::now());
        match refresh(q, held, check).await {
            Ok(()) => {
                if let Some(o) = &env.observer {
                    o.lease_confirmed(&q.name, &held.id, &held.token, held.valid_until);
                }
                return true;
            }
            Err(LeaseError::Lost { reason, .. }) => {
                tracing::warn!(reason = %reason, "lease lost before the retry");
                return false;
            }
            Err(LeaseError::Store(e)) => {
                if !held.lease_valid(Instant::now()) {
                    tracing::warn!(error = %e, "could not record the next attempt before the lease ran out");
                    return false;
                }
                tracing::warn!(error = %e, "could not record the next attempt; retrying");
                tokio::time::sleep(retry_gap(q)).await;
            }
        }
    }
}

/// Move the task to failed, counting it.
async fn fail(q: &QueueCtx, env: &Env, held: &Held, reason: &str) {
    if settle_retrying(q, env, "move to failed", || settle::fail(q, held, reason)).await {
        q.metrics.update(&q.name, |m| m.failed += 1);
        tracing::warn!(reason = %reason, "task failed; moved to the failed prefix");
    }
}

/// Give the task back to the queue with `attempts` attempts counted.
async fn give_back(q: &QueueCtx, env: &Env, held: &Held, attempts: u32) {
    if settle_retrying(q, env, "release", || settle::release(q, held, attempts)).await {
        tracing::info!("released task back to pending");
    }
}

/// Run a settle step until it succeeds or the lease is lost; while the store fails, back off,
/// and retry only in turn with the worker's other repeatable steps (see
/// [`crate::queue::health`]). The turn only paces the retry: a step may wait on the delete
/// batcher, which takes its own turn. Past the shutdown grace, give up after a few tries: the
/// lock then expires by lease.
async fn settle_retrying<F, Fut>(q: &QueueCtx, env: &Env, step: &'static str, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), LeaseError>>,
{
    let mut wait = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        match f().await {
            Ok(()) => return true,
            Err(LeaseError::Lost { reason, .. }) => {
                tracing::warn!(step, reason = %reason, "lease lost; not settling");
                return false;
            }
            Err(LeaseError::Store(e)) => {
                tries += 1;
                if (env.grace.is_cancelled() || env.shutdown.abort.is_cancelled()) && tries >= 3 {
                    tracing::error!(step, error = %e, "store still failing at shutdown; the lock will expire by lease");
                    return false;
                }
                tracing::warn!(step, error = %e, retry_in = ?wait, "store failed while settling; retrying");
                tokio::time::sleep(wait).await;
                drop(q.health.turn().await);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// How long a cancelled handler may take to return: a second, but well inside the lease's
/// safety margin, so a handler that lost its lease is gone before anyone may reap it.
fn cancel_wait(q: &QueueCtx) -> Duration {
    Duration::from_secs(1).min(q.limits.margin / 2)
}

/// Why the task is too old to run, if it is.
fn too_old(q: &QueueCtx, held: &Held) -> Option<String> {
    let max_age = q.limits.max_age?;
    let age = q.clock.now().duration_since(held.created_at).ok()?;
    (age > max_age).then(|| {
        format!(
            "older than max_age ({} > {})",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(max_age)
        )
    })
}
