//! Claims a store failure left open ([`ClaimOutcome::Unresolved`]), remembered so that the
//! task is offered again within a poll or two of the store's recovery instead of a whole lease
//! later, when the reaper would take the lock.
//!
//! Each is settled as a release (design §3.6): [`settle::release`] reads the lock and acts only
//! if it still carries this claim's token and is far enough from stale for the release to land
//! before any reaper may act; it recreates the pending key if it is gone (create-if-absent),
//! then deletes the lock. A lock that is gone, carries another token, or is nearly stale is
//! none of ours to touch any more, and is forgotten. So a re-check is idempotent, and harmless
//! beside other workers and the reaper. If the store fails again, the entry is kept for the
//! next successful listing.
//!
//! [`ClaimOutcome::Unresolved`]: crate::queue::claim::ClaimOutcome::Unresolved

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::{Env, QueueRunner};
use crate::queue::lease::LeaseError;
use crate::queue::{settle, Held};

/// At most this many are remembered per queue; beyond it the oldest is left to the reaper.
/// Claims only end unresolved when an outage begins while they are under way, so a handful per
/// outage (at most the concurrency); the cap bounds the payloads kept in memory.
pub(crate) const MAX_UNRESOLVED: usize = 32;

/// The claims one queue left open.
#[derive(Debug, Default)]
pub(crate) struct Unresolved {
    /// A std mutex: nothing awaits while it is held.
    entries: Mutex<VecDeque<Held>>,
    /// A re-check pass is under way.
    checking: AtomicBool,
}

impl Unresolved {
    /// Remember `held` until the store answers again.
    pub fn remember(&self, held: Held) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_UNRESOLVED {
            if let Some(oldest) = entries.pop_front() {
                tracing::warn!(key = %oldest.lock_key, "too many claims left open by store failures; the oldest is left to the reaper");
            }
        }
        entries.push_back(held);
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn take(&self) -> Option<Held> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn put_back(&self, held: Held) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_front(held);
    }
}

/// The store just answered a listing: settle what is remembered, in one task per queue at a
/// time.
pub(crate) fn recheck_soon(r: &Arc<QueueRunner>, env: &Arc<Env>) {
    if r.unresolved.is_empty() || r.unresolved.checking.swap(true, Ordering::SeqCst) {
        return;
    }
    let runner = Arc::clone(r);
    env.tasks.spawn(async move {
        recheck_all(&runner).await;
        runner.unresolved.checking.store(false, Ordering::SeqCst);
    });
}

/// Settle every remembered claim; stop at the first store failure (the rest wait for the next
/// listing that succeeds).
async fn recheck_all(r: &QueueRunner) {
    let q = &r.ctx;
    while let Some(held) = r.unresolved.take() {
        // Released with the attempts used before this claim: its handler never ran.
        let used = held.attempt.saturating_sub(1);
        match q.health.in_turn(settle::release(q, &held, used)).await {
            Ok(()) => {
                tracing::info!(queue = %q.name, key = %held.pending_key, "released a claim a store failure had left open; the task is pending again");
            }
            Err(LeaseError::Lost { reason, .. }) => {
                tracing::debug!(queue = %q.name, key = %held.lock_key, reason = %reason, "a claim a store failure had left open holds nothing of ours");
            }
            Err(LeaseError::Store(e)) => {
                tracing::debug!(queue = %q.name, key = %held.lock_key, error = %e, "could not settle a claim left open yet; will try after the next listing");
                r.unresolved.put_back(held);
                return;
            }
        }
    }
}
