//! Keeping a lease while something else happens (a handler runs, a retry waits): refresh every
//! `lease / 3`, and report the lease lost the moment its local deadline passes, even while a
//! refresh request is stalled.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use super::engine::Env;
use crate::queue::lease::{refresh, LeaseError};
use crate::queue::{Held, QueueCtx};

/// A refresh in flight, working on a copy of the held task.
type Refreshing<'a> = Pin<Box<dyn Future<Output = (Result<(), LeaseError>, Held)> + Send + 'a>>;

/// Refresh schedule of one held task.
pub(crate) struct LeaseKeeper<'a> {
    q: &'a QueueCtx,
    env: &'a Env,
    every: Duration,
    next: Instant,
    inflight: Option<Refreshing<'a>>,
}

impl<'a> LeaseKeeper<'a> {
    /// Refresh `lease / 3` after the lease was last confirmed.
    pub fn new(q: &'a QueueCtx, env: &'a Env, held: &Held) -> Self {
        let every = q.limits.lease / 3;
        LeaseKeeper {
            q,
            env,
            every,
            next: held.confirmed_at + every,
            inflight: None,
        }
    }

    /// Keep the lease; returns only when it is lost, with the reason. Cancel-safe: dropping
    /// the future leaves a refresh in flight in the keeper, for [`LeaseKeeper::finish`].
    pub async fn keep(&mut self, held: &mut Held) -> String {
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(held.valid_until) => {
                    return "the lease could not be refreshed before it ran out".into();
                }
                (result, updated) = poll_inflight(&mut self.inflight), if self.inflight.is_some() => {
                    self.inflight = None;
                    if let Some(reason) = self.apply(held, result, &updated) {
                        return reason;
                    }
                }
                () = tokio::time::sleep_until(self.next), if self.inflight.is_none() => {
                    let q = self.q;
                    let mut copy = held.clone();
                    self.inflight = Some(Box::pin(async move {
                        let result = refresh(q, &mut copy, true).await;
                        (result, copy)
                    }));
                }
            }
        }
    }

    /// Wait for a refresh still in flight, so no lock write lands after the caller settles.
    pub async fn finish(&mut self, held: &mut Held) {
        if let Some(inflight) = self.inflight.take() {
            let (result, updated) = inflight.await;
            let _ = self.apply(held, result, &updated);
        }
    }

    /// Take a finished refresh into account; the reason if the lease is lost.
    fn apply(
        &mut self,
        held: &mut Held,
        result: Result<(), LeaseError>,
        updated: &Held,
    ) -> Option<String> {
        match result {
            Ok(()) => {
                held.valid_until = updated.valid_until;
                held.confirmed_at = updated.confirmed_at;
                self.next = held.confirmed_at + self.every;
                if let Some(o) = &self.env.observer {
                    o.lease_confirmed(&self.q.name, &held.id, &held.token, held.valid_until);
                }
                None
            }
            Err(LeaseError::Lost { reason, .. }) => Some(reason),
            Err(LeaseError::Store(e)) => {
                tracing::warn!(error = %e, "could not refresh the lease; retrying");
                self.next = Instant::now() + retry_gap(self.q);
                None
            }
        }
    }
}

async fn poll_inflight(inflight: &mut Option<Refreshing<'_>>) -> (Result<(), LeaseError>, Held) {
    match inflight.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Wait before retrying a failed refresh: short next to the lease, so several tries fit.
pub(crate) fn retry_gap(q: &QueueCtx) -> Duration {
    (q.limits.lease / 20).clamp(Duration::from_millis(100), Duration::from_secs(5))
}
