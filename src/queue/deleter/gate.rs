//! The delete batcher's side of [`StoreHealth`]: while the store fails, a batch goes out only
//! in its turn, and the batcher sleeps until then instead of retrying into the outage.
//!
//! Not held back: a flush (shutdown), which sends what is left as soon as it is due and gives
//! up after a few failures, so a drain does not wait out the backoff; and a settled lock's
//! delete at its last chance before its deadline, since missing it leaves the lock to the
//! reaper and runs the task again (one request per settled lock at most, like a lease refresh).

use std::sync::Arc;

use tokio::time::Instant;

use crate::queue::health::{Gate, StoreHealth, Turn};

/// The gate of one batcher; open for good when the batcher was made without one.
#[derive(Debug, Default)]
pub(super) struct BatchGate {
    health: Option<(Arc<StoreHealth>, u64)>,
}

/// Leave for one batch: the turn it holds while in flight, if the store is failing.
#[derive(Debug)]
pub(super) struct Leave(#[allow(dead_code)] Option<Turn>);

impl BatchGate {
    /// Batches wait for their turn on `health`.
    pub fn on(health: Arc<StoreHealth>) -> Self {
        let seen = health.version();
        BatchGate {
            health: Some((health, seen)),
        }
    }

    /// Leave to send a batch now, or `None` while it is not a batch's turn; `bypass` sends it
    /// regardless (see the module docs).
    pub fn leave(&self, bypass: bool) -> Option<Leave> {
        match &self.health {
            Some((health, _)) if !bypass => health.try_turn().map(|t| Leave(Some(t))),
            _ => Some(Leave(None)),
        }
    }

    /// When the batcher should look again, given when it would without the gate (`wake`),
    /// whether a "now" delete waits (it goes at the next turn), and the earliest deadline of
    /// what waits (acted on when it comes, even if no turn came).
    pub fn bound(
        &self,
        wake: Option<Instant>,
        urgent: bool,
        deadline: impl FnOnce() -> Option<Instant>,
        flushing: bool,
    ) -> Option<Instant> {
        let gate = match &self.health {
            Some((health, _)) if !flushing => health.gate(),
            _ => Gate::Open,
        };
        let by_gate = match gate {
            Gate::Open => return wake,
            Gate::ClosedUntil(turn) if urgent => Some(turn),
            Gate::ClosedUntil(turn) => wake.map(|w| w.max(turn)),
            // The turn's end is a change of the gate: [`BatchGate::changed`] wakes us.
            Gate::Busy => None,
        };
        let deadline = deadline().filter(|d| *d > Instant::now());
        match (by_gate, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves when the gate changes (a turn ended, the store answered or failed again);
    /// never without a gate.
    pub async fn changed(&mut self) {
        match &mut self.health {
            Some((health, seen)) => health.changed_since(seen).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests;
