//! The store's health as this worker sees it, and the gate that spaces requests out while the
//! store is failing.
//!
//! Every store call's outcome is recorded ([`super::observed::ObservedStore`]): an answer of
//! any kind means the store is up, a transient failure (5xx, reset, timeout, after the
//! transport's own tries) means it is failing. While it is failing, every step that could be
//! repeated without harm — listings, delete batches, reaps, put-backs, settle retries, lock
//! reads — waits for its *turn*: one at a time, the next no sooner than `delay` after the last
//! failure or turn, `delay` doubling from `poll_interval` to `max_poll_interval` (jittered).
//! The first answer of any request opens the gate again for everyone. So an outage costs one
//! store operation (the transport's tries of one request) per `max_poll_interval` per worker,
//! plus what never waits here because waiting could cost a lease that was still safe to keep:
//! the lease refreshes of held tasks, and the delete of a settled lock at its last chance
//! before its deadline (see [`super::deleter`]).
//!
//! While the store answers, the gate admits everything at once: it never delays a healthy
//! worker. Steps with a deadline (the lease) take their turn *before* checking it, and keep the
//! turn until their last request is sent, so no wait ever falls between a check and the
//! request it allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::jittered;

/// Shared by every queue of one worker (they share the store). See the module docs.
pub struct StoreHealth {
    state: Mutex<State>,
    /// Bumped on every change a waiter may care about (a turn given back, a new verdict).
    changes: Changes,
    base: Duration,
    max: Duration,
    rng: Arc<Mutex<StdRng>>,
}

impl std::fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHealth")
            .field("state", &*self.state())
            .field("base", &self.base)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for StoreHealth {
    /// A gate backing off from 1 s to 10 s (the default poll intervals), with its own
    /// randomness; for tests and tools that build a [`super::QueueCtx`] by hand.
    fn default() -> Self {
        StoreHealth::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            Arc::new(Mutex::new(StdRng::seed_from_u64(0))),
        )
    }
}

#[derive(Debug, Default)]
struct State {
    /// `Some` while the store is failing.
    failing: Option<Failing>,
    /// A turn is out (while failing, only one at a time).
    turn_out: bool,
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    /// When the first failure was recorded.
    since: Instant,
    /// Failures recorded since.
    failures: u64,
    /// The current spacing of turns.
    delay: Duration,
    /// When `delay` last changed: a failure of a request sent before this was already
    /// counted by the failures that moved it, so it does not double it again.
    epoch: Instant,
    /// No turn before this.
    next_turn: Instant,
}

/// What the gate would do with a step asking now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Admit it at once.
    Open,
    /// The store is failing; the next turn comes at this instant.
    ClosedUntil(Instant),
    /// The store is failing and another step has the turn; wait for it to end.
    Busy,
}

/// Leave to send the requests of one step. While the store is failing, holding it keeps
/// every other gated step waiting; drop it when the step's last request is answered.
#[derive(Debug)]
#[must_use = "a turn not held does not keep others waiting"]
pub struct Turn {
    health: Arc<StoreHealth>,
    /// True when this is the one turn of a failing store (its drop lets the next one go).
    exclusive: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.exclusive {
            self.health.state().turn_out = false;
            self.health.changed();
        }
    }
}

impl StoreHealth {
    /// A gate whose turns, while the store fails, are spaced by `base` doubling up to `max`
    /// (the poll intervals), jittered by `rng`.
    pub fn new(base: Duration, max: Duration, rng: Arc<Mutex<StdRng>>) -> Self {
        let base = base.max(Duration::from_millis(1));
        StoreHealth {
            state: Mutex::new(State::default()),
            changes: Changes::default(),
            base,
            max: max.max(base),
            rng,
        }
    }

    /// A std mutex: nothing awaits while it is held.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.version.fetch_add(1, Ordering::SeqCst);
        self.changes.notify.notify_waiters();
    }

    fn jittered(&self, d: Duration) -> Duration {
        jittered(d, &mut *self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The store answered a request (whatever the answer): it is up.
    pub fn record_answer(&self) {
        let was = self.state().failing.take();
        if let Some(f) = was {
            tracing::info!(
                failures = f.failures,
                down_for = ?f.since.elapsed(),
                "the store answers again; resuming"
            );
            self.changed();
        }
    }

    /// A request sent at `sent` failed transiently (after the transport's own tries).
    pub fn record_failure(&self, sent: Instant) {
        let now = Instant::now();
        let mut state = self.state();
        match state.failing.as_mut() {
            None => {
                let delay = self.base;
                state.failing = Some(Failing {
                    since: now,
                    failures: 1,
                    delay,
                    epoch: now,
                    next_turn: now + self.jittered(delay),
                });
                drop(state);
                tracing::warn!(retry_in = ?delay, "the store is failing; holding back every request but lease refreshes");
            }
            Some(f) => {
                f.failures += 1;
                if sent >= f.epoch {
                    f.delay = f.delay.saturating_mul(2).min(self.max);
                    f.epoch = now;
                    f.next_turn = f.next_turn.max(now + self.jittered(f.delay));
                }
                drop(state);
            }
        }
        self.changed();
    }

    /// True while the store is failing.
    pub fn failing(&self) -> bool {
        self.state().failing.is_some()
    }

    /// What the gate would do with a step asking now.
    pub fn gate(&self) -> Gate {
        let state = self.state();
        match state.failing {
            None => Gate::Open,
            Some(_) if state.turn_out => Gate::Busy,
            Some(f) if Instant::now() >= f.next_turn => Gate::Open,
            Some(f) => Gate::ClosedUntil(f.next_turn),
        }
    }

    /// A turn now, if the gate is open; `None` while the store is failing and it is not this
    /// step's turn.
    pub fn try_turn(self: &Arc<Self>) -> Option<Turn> {
        let now = Instant::now();
        let mut state = self.state();
        let busy = state.turn_out;
        let exclusive = match state.failing.as_mut() {
            None => false,
            Some(_) if busy => return None,
            Some(f) if now < f.next_turn => return None,
            Some(f) => {
                f.next_turn = now + self.jittered(f.delay);
                state.turn_out = true;
                true
            }
        };
        Some(Turn {
            health: Arc::clone(self),
            exclusive,
        })
    }

    /// Wait for a turn: at once while the store answers, one step at a time while it fails.
    pub async fn turn(self: &Arc<Self>) -> Turn {
        loop {
            let mut seen = self.version();
            if let Some(turn) = self.try_turn() {
                return turn;
            }
            let wake = match self.gate() {
                Gate::ClosedUntil(at) => Some(at),
                Gate::Open | Gate::Busy => None,
            };
            tokio::select! {
                biased;
                () = self.changed_since(&mut seen) => {}
                () = sleep_until_opt(wake) => {}
            }
        }
    }

    /// Run `step` in its turn (see [`StoreHealth::turn`]).
    pub async fn in_turn<F: std::future::Future>(self: &Arc<Self>, step: F) -> F::Output {
        let _turn = self.turn().await;
        step.await
    }

    /// How many times the gate has changed so far, for [`StoreHealth::changed_since`].
    pub fn version(&self) -> u64 {
        self.changes.version.load(Ordering::SeqCst)
    }

    /// Resolves once the gate has changed since version `seen` (at once if it already has),
    /// and records the version seen; for a loop that waits on the gate beside other things
    /// (the delete batcher).
    pub async fn changed_since(&self, seen: &mut u64) {
        loop {
            // Registered before the check, so a change right after it still wakes us.
            let notified = self.changes.notify.notified();
            let now = self.version();
            if now != *seen {
                *seen = now;
                return;
            }
            notified.await;
        }
    }
}

/// The gate's change counter and its waiters. Not tokio's `watch` channel: that wakes its
/// waiters in a random order, and a seeded simulation must replay the same way every time;
/// `Notify` wakes them in the order they began to wait.
#[derive(Debug, Default)]
struct Changes {
    version: AtomicU64,
    notify: Notify,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
