//! The engine through store outages on the memory store: how many requests a failing store
//! sees, and how soon a claim the outage left open is taken again once the store answers.

mod engine_support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bucketq::handlers::{Handler, Outcome};
use bucketq::store::memory::{Fault, MemoryStore};
use bucketq::store::{Op, RequestStats};
use bucketq::worker::EngineOptions;
use engine_support::*;
use tokio::time::Instant;

fn opts(seed: u64) -> EngineOptions {
    EngineOptions {
        seed: Some(seed),
        ..EngineOptions::default()
    }
}

/// A claim's lock create is applied but its answer lost, and the store then fails every request
/// (the read of the lock's token too) for `OUTAGE`. The lock carries the claim's token beside
/// the pending key: without anyone to release it, the task would wait for the lease (60 s) to
/// run out and the reaper to drop the lock. The worker remembers the claim and releases it once
/// the store answers, so the task runs within a few polls of the recovery.
#[tokio::test(start_paused = true)]
async fn a_claim_left_open_by_an_outage_is_taken_again_soon_after_recovery() {
    const OUTAGE: Duration = Duration::from_secs(10);
    for atomic in [true, false] {
        let store = MemoryStore::builder()
            .atomic_copy(atomic)
            .latency(Duration::from_millis(1), Duration::from_millis(3))
            .build();
        let ids = enqueue(&store, "mail", 1);
        let lock_key = format!("mail/{}.lock", ids[0]);
        let rec = Recorder::ok();
        let stats = Arc::new(RequestStats::default());
        let client = store.client("w", Arc::clone(&stats), 1);
        let outage: Arc<Mutex<Option<Instant>>> = Arc::default();
        let until_set = Arc::clone(&outage);
        let lock = lock_key.clone();
        client.set_fault_hook(Box::new(move |info| {
            let now = Instant::now();
            let mut until = until_set.lock().expect("outage");
            match *until {
                Some(end) if now < end => Fault::FailBefore,
                Some(_) => Fault::None,
                None if info.key == lock && matches!(info.op, Op::Copy | Op::Put) => {
                    *until = Some(now + OUTAGE);
                    Fault::FailAfter
                }
                None => Fault::None,
            }
        }));
        let wc = worker_config();
        let lease = wc.lease;
        let w = start_on(
            Arc::new(client),
            stats,
            config(wc, vec![queue("mail")]),
            &[("mail", rec.clone() as Arc<dyn Handler>)],
            opts(41),
        );
        until(Duration::from_secs(10), "the outage to begin", || {
            outage.lock().expect("outage").is_some()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(rec.runs().is_empty(), "atomic={atomic}: nothing ran yet");
        let lock_object = store.object(&lock_key).expect("the create was applied");
        assert!(
            store.object(&format!("mail/{}.task", ids[0])).is_some(),
            "atomic={atomic}: the pending key stays beside the lock"
        );
        let recovered = outage.lock().expect("outage").expect("began");
        until(lease * 2, "the task to run", || !rec.runs().is_empty()).await;
        let after = Instant::now() - recovered;
        println!("atomic={atomic}: the task ran {after:?} after the store recovered");
        assert!(
            after < Duration::from_secs(5),
            "atomic={atomic}: the task ran {after:?} after the recovery (lease {lease:?}); the \
             lock {:?} waited for the reaper",
            lock_object.head.user_meta
        );
        until(Duration::from_secs(10), "the queue to empty", || {
            store.keys("mail/").is_empty()
        })
        .await;
        let metrics = Arc::clone(&w.metrics);
        w.drain().await.expect("drain");
        assert_eq!(rec.counts().get(&ids[0]), Some(&1), "atomic={atomic}");
        assert_eq!(metrics.queue("mail").reaped, 0, "atomic={atomic}: no reap");
    }
}

/// While every request fails, a worker sends one repeatable step per turn (the poll intervals,
/// doubling to `max_poll_interval`), whatever it has to do: listings, delete batches, put-backs,
/// settle retries. On the memory store a failed request is one request (no transport retries).
#[tokio::test(start_paused = true)]
async fn a_failing_store_sees_one_request_per_turn() {
    for atomic in [true, false] {
        let store = MemoryStore::builder()
            .atomic_copy(atomic)
            .latency(Duration::from_millis(1), Duration::from_millis(3))
            .build();
        enqueue(&store, "mail", 200);
        let rec = Recorder::new(Arc::new(|_, _| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Outcome::Done
            })
        }));
        let stats = Arc::new(RequestStats::default());
        let client = store.client("w", Arc::clone(&stats), 1);
        let down = outage_switch(&client);
        let wc = worker_config();
        let (concurrency, max_poll) = (wc.concurrency as u64, wc.max_poll_interval);
        let w = start_on(
            Arc::new(client),
            Arc::clone(&stats),
            config(wc, vec![queue("mail")]),
            &[("mail", rec.clone() as Arc<dyn Handler>)],
            opts(42),
        );
        until(Duration::from_secs(10), "some done", || {
            rec.runs().len() >= 20
        })
        .await;
        down.store(true, Ordering::SeqCst);
        let window = Duration::from_secs(60);
        tokio::time::sleep(window).await;
        let half = stats.snapshot();
        tokio::time::sleep(window).await;
        let by_op: Vec<(Op, u64)> = Op::ALL
            .iter()
            .map(|&op| {
                let before: u64 = half
                    .iter()
                    .filter(|((o, _), _)| *o == op)
                    .map(|(_, n)| n)
                    .sum();
                (op, stats.total(op) - before)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let late: u64 = by_op.iter().map(|(_, n)| n).sum();
        // Turns at most every 0.9 × max_poll_interval, plus one request per task held when the
        // store went down: a settle's first try never waits (so a healthy store never delays
        // one), nor does a settled lock's delete at its last chance. Here those come in the
        // first minute (the tasks' leases end ~54 s after their claims); the slack is for
        // timings that put them in the second.
        let turns = (window.as_secs_f64() / (max_poll.as_secs_f64() * 0.9)).ceil() as u64 + 1;
        let allowed = turns + concurrency;
        println!(
            "atomic={atomic}: {late} requests in the second minute of the outage ({:.2}/s; \
             allowed {allowed}): {by_op:?}",
            late as f64 / window.as_secs_f64()
        );
        assert!(
            late >= 10,
            "atomic={atomic}: the worker still probes the store"
        );
        assert!(late <= allowed, "atomic={atomic}: {late} > {allowed}");
        down.store(false, Ordering::SeqCst);
        until(Duration::from_secs(120), "recovered", || {
            store.keys("mail/").is_empty()
        })
        .await;
        w.drain().await.expect("drain");
        assert_eq!(rec.counts().len(), 200, "atomic={atomic}: every task ran");
    }
}
