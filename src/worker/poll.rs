//! The scanner of one queue: list page by page, reap stale locks, claim as many tasks as there
//! are free slots, and poll again after `poll_interval` (work found) or a doubling interval up
//! to `max_poll_interval` (idle, or the store failing). An idle queue costs one LIST per
//! interval and nothing else.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::engine::{Env, QueueRunner};
use super::refusals::Admit;
use super::task::{self, acquire_slot};
use crate::queue::backoff::{jittered, next_idle_interval};
use crate::queue::reap::{self, Reaped};
use crate::queue::scan::{Candidate, ListedLock, PageView};
use crate::queue::QueueError;
use crate::store::{ListRequest, MAX_LIST_KEYS};

/// A busy scanner lists its page again after this many poll intervals even without a lost
/// claim. The other workers' lanes (see [`crate::queue::scan`]) move slowly enough that a view
/// this old rarely sends a claim into one, and a lost claim triggers a fresh listing anyway.
/// With 4 workers, re-listing every interval cost 0.03 LIST per task on LocalStack; every
/// third interval saved a third of that but lost more claims than it saved (the model in
/// `tests/engine_memory.rs`: 3.5 % lost at 1, 3.9 % at 2, 5.4 % at 3).
const BUSY_RELIST_POLLS: u32 = 2;

/// The shortest time between two listings of one page for new lanes.
const LANE_RELIST_GAP: std::time::Duration = std::time::Duration::from_millis(100);

/// How one pass over the queue ended.
enum Scan {
    /// Claimable tasks were seen.
    Work,
    /// Nothing to claim.
    Idle,
    /// The drain started.
    Draining,
    /// A listing failed.
    Failed(QueueError),
    /// The store refuses this queue's claims: none before this instant.
    Refused(Instant),
}

/// Serve one queue until the drain starts.
pub(crate) async fn serve_queue(r: Arc<QueueRunner>, env: Arc<Env>) {
    let min = env.worker.poll_interval;
    let max = env.worker.max_poll_interval.max(min);
    let mut idle = min;
    loop {
        if env.draining() {
            return;
        }
        env.lifecycle.alive();
        let wait = match scan(&r, &env).await {
            Scan::Work => {
                idle = min;
                min
            }
            Scan::Idle => {
                let wait = idle;
                idle = next_idle_interval(idle, min, max);
                wait
            }
            Scan::Draining => return,
            Scan::Refused(until) => {
                tokio::select! {
                    biased;
                    _ = env.shutdown.drain.cancelled() => return,
                    () = tokio::time::sleep_until(until) => {}
                }
                continue;
            }
            Scan::Failed(e) => {
                tracing::warn!(queue = %r.ctx.name, error = %e, retry_in = ?idle, "listing failed; backing off");
                let wait = idle;
                idle = next_idle_interval(idle, min, max);
                wait
            }
        };
        let wait = r.ctx.with_rng(|rng| jittered(wait, rng));
        tokio::select! {
            biased;
            _ = env.shutdown.drain.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over every page of the queue.
async fn scan(r: &Arc<QueueRunner>, env: &Arc<Env>) -> Scan {
    let poll = env.worker.poll_interval;
    let max_poll = env.worker.max_poll_interval.max(poll);
    let mut start_after = None;
    let mut work = false;
    let mut pending = 0u64;
    let mut oldest: Option<SystemTime> = None;
    let mut server_time;
    // True while listing the same page again for a new lane (its tasks are counted once).
    let mut same_page = false;
    loop {
        let mut view = match list(r, env, start_after.clone()).await {
            Ok(Some(view)) => view,
            Ok(None) => return Scan::Draining,
            Err(e) => return Scan::Failed(e),
        };
        if !same_page {
            pending += view.pending_count() as u64;
            oldest = oldest.into_iter().chain(view.oldest_pending()).min();
        }
        server_time = view.server_time;
        work |= view.pending_count() > 0;
        let mut handed_out = false;
        while view.remaining() > 0 {
            let slot = tokio::select! {
                biased;
                _ = env.shutdown.drain.cancelled() => return Scan::Draining,
                slot = acquire_slot(r, env) => slot,
                () = tokio::time::sleep(max_poll) => {
                    // Every slot busy for a while: look again, for stale locks to reap, and
                    // go on with the walk.
                    match relist(r, env, &view, true).await {
                        Ok(Some(fresh)) => view = fresh,
                        Ok(None) => return Scan::Draining,
                        Err(e) => return Scan::Failed(e),
                    }
                    continue;
                }
            };
            let conflicted = r.conflicted.swap(false, Ordering::SeqCst);
            if conflicted || view.age(Instant::now()) >= poll * BUSY_RELIST_POLLS {
                // After a lost claim the lane runs into another worker's: pick a new one.
                // Otherwise go on with this walk in the fresh view.
                match relist(r, env, &view, !conflicted).await {
                    Ok(Some(fresh)) => view = fresh,
                    Ok(None) => return Scan::Draining,
                    Err(e) => return Scan::Failed(e),
                }
            }
            if let Admit::WaitUntil(until) = r.refusals.admit(Instant::now()) {
                // The store refused this queue's last claim: no new claim before the pause
                // ends (see [`super::refusals`]); the page is listed again afterwards.
                drop(slot);
                return Scan::Refused(until);
            }
            let Some(candidate) = next_unclaimed(r, &mut view) else {
                r.refusals.inconclusive();
                break;
            };
            handed_out = true;
            env.tasks.spawn(task::claim_and_run(
                Arc::clone(r),
                Arc::clone(env),
                candidate,
                slot,
            ));
        }
        // The lane is used up and the page has tasks beyond it: list the page again for a new
        // lane. Only after claiming from this one (so each listing buys at least one claim),
        // and not more often than LANE_RELIST_GAP.
        same_page = handed_out && view.remaining() == 0 && view.outside_lane() > 0;
        if same_page {
            let wait = LANE_RELIST_GAP.saturating_sub(view.age(Instant::now()));
            tokio::select! {
                biased;
                _ = env.shutdown.drain.cancelled() => return Scan::Draining,
                () = tokio::time::sleep(wait) => {}
            }
            start_after = view.start_after.clone();
            continue;
        }
        if !view.more {
            break;
        }
        start_after = view.last_key.clone();
    }
    let age = oldest
        .and_then(|t| server_time.duration_since(t).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    r.ctx.metrics.update(&r.ctx.name, |q| {
        q.pending = pending;
        q.oldest_pending_age = age;
    });
    if work {
        Scan::Work
    } else {
        Scan::Idle
    }
}

/// The next candidate of the page whose claim is not already in flight here; marks it.
fn next_unclaimed(r: &QueueRunner, view: &mut PageView) -> Option<Candidate> {
    let mut claiming = r.claiming.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(candidate) = view.next_candidate() {
        if claiming.insert(candidate.id.clone()) {
            return Some(candidate);
        }
    }
    None
}

/// List `view`'s page again; with `go_on`, the fresh view goes on with `view`'s walk (see
/// [`PageView::resume_after`]) instead of a lane of its own.
async fn relist(
    r: &Arc<QueueRunner>,
    env: &Arc<Env>,
    view: &PageView,
    go_on: bool,
) -> Result<Option<PageView>, QueueError> {
    let mut fresh = list(r, env, view.start_after.clone()).await?;
    if let (Some(fresh), Some(key), true) = (fresh.as_mut(), view.walked_to(), go_on) {
        fresh.resume_after(key);
    }
    Ok(fresh)
}

/// List one page after `start_after` and start reaping its stale locks. `Ok(None)`: the drain
/// started while the listing was in flight.
async fn list(
    r: &Arc<QueueRunner>,
    env: &Arc<Env>,
    start_after: Option<String>,
) -> Result<Option<PageView>, QueueError> {
    let req = ListRequest {
        prefix: r.ctx.layout.prefix.clone(),
        start_after: start_after.clone(),
        continuation: None,
        max_keys: MAX_LIST_KEYS,
    };
    let page = tokio::select! {
        biased;
        _ = env.shutdown.drain.cancelled() => return Ok(None),
        page = super::turns::in_turn_alive(env.lifecycle.as_ref(), &r.ctx.health, r.ctx.store.list(&req)) => page.map_err(|e| QueueError::store("list queue", &req.prefix, e))?,
    };
    env.listed_ok();
    super::unresolved::recheck_soon(r, env);
    r.ctx.clock.observe(page.server_time);
    let claiming = r.claiming.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let held = r.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let own = |id: &str| claiming.contains(id) || held.contains(id);
    let view = r
        .ctx
        .with_rng(|rng| PageView::new(&r.ctx.layout, page, start_after, Instant::now(), &own, rng));
    for lock in view.stale_locks(r.ctx.limits.lease) {
        let fresh = r
            .reaping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(lock.listed.key.clone());
        if fresh {
            env.tasks.spawn(reap_one(Arc::clone(r), lock.clone()));
        }
    }
    Ok(Some(view))
}

/// Reap one stale lock and count what happened.
async fn reap_one(r: Arc<QueueRunner>, lock: ListedLock) {
    let q = &r.ctx;
    match q.health.in_turn(reap::reap(q, &lock)).await {
        Ok(Reaped::Requeued | Reaped::LockDropped) => {
            q.metrics.update(&q.name, |m| m.reaped += 1);
            tracing::info!(queue = %q.name, key = %lock.listed.key, "reaped a stale lock; the task is pending again");
        }
        Ok(Reaped::Failed) => {
            q.metrics.update(&q.name, |m| {
                m.reaped += 1;
                m.failed += 1;
            });
            tracing::warn!(queue = %q.name, key = %lock.listed.key, "reaped a stale lock whose attempts were spent; moved to failed");
        }
        Ok(Reaped::NotStale | Reaped::LeftToOther | Reaped::Superseded) => {}
        Err(e) => {
            tracing::warn!(queue = %q.name, key = %lock.listed.key, error = %e, "could not reap a stale lock; will try again at the next listing");
        }
    }
    r.reaping
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&lock.listed.key);
}
