//! The poll loop waiting for its turn at the store's gate ([`StoreHealth`]), and for its
//! listing, without looking stuck: while the store fails, other steps (claims, delete batches,
//! settles) may take several turns before a listing's, and a stalled listing takes up to the
//! request timeout times the transport's tries (two minutes with the defaults) before it gives
//! up. A poll loop silent for a whole systemd watchdog period would get the process restarted,
//! yet waiting for a turn or for a request that is bounded by its own timeout is progress, so
//! it reports itself alive meanwhile. A loop that is really stuck (not waiting on either) stays
//! silent, and the watchdog still catches it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::Lifecycle;
use crate::queue::health::StoreHealth;

/// How often a waiting poll loop says it is alive: far inside any sensible `WatchdogSec`.
const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Run `step` (a store request, bounded by its own timeout) in its turn, telling `lifecycle`
/// the loop is alive while it waits for the turn and for the request.
pub(crate) async fn in_turn_alive<F: Future>(
    lifecycle: &dyn Lifecycle,
    health: &Arc<StoreHealth>,
    step: F,
) -> F::Output {
    let turn = loop {
        tokio::select! {
            biased;
            turn = health.turn() => break turn,
            () = tokio::time::sleep(ALIVE_EVERY) => lifecycle.alive(),
        }
    };
    let mut step = std::pin::pin!(step);
    let output = loop {
        tokio::select! {
            biased;
            output = &mut step => break output,
            () = tokio::time::sleep(ALIVE_EVERY) => lifecycle.alive(),
        }
    };
    drop(turn);
    output
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;

    use super::*;

    #[derive(Default)]
    struct Beats(AtomicUsize);

    impl Lifecycle for Beats {
        fn alive(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_for_a_turn_keeps_saying_alive() {
        let health = Arc::new(StoreHealth::default());
        health.record_failure(Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Another step holds the turn for a minute.
        let held = health.turn().await;
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(held);
        });
        let beats = Beats::default();
        let start = Instant::now();
        let out = in_turn_alive(&beats, &health, async { 7 }).await;
        assert_eq!(out, 7);
        assert!(start.elapsed() >= Duration::from_secs(60));
        let n = beats.0.load(Ordering::SeqCst);
        assert!(n >= 11, "{n} beats in a minute");
        releaser.await.expect("joined");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_request_keeps_saying_alive_until_it_gives_up() {
        let health = Arc::new(StoreHealth::default());
        let beats = Beats::default();
        let out = in_turn_alive(&beats, &health, async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            "timed out"
        })
        .await;
        assert_eq!(out, "timed out");
        let n = beats.0.load(Ordering::SeqCst);
        assert!(n >= 23, "{n} beats in two minutes");
    }
}
