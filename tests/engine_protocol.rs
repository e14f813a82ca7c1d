//! The queue protocol's steps one by one on the memory store, where the engine's own tests
//! cannot aim: lost answers, stalled requests, and two reapers racing for one lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bucketq::config::OnSuccess;
use bucketq::metrics::Metrics;
use bucketq::queue::claim::{claim, ClaimOutcome};
use bucketq::queue::clock::StoreClock;
use bucketq::queue::deleter::Deleter;
use bucketq::queue::reap::{reap, Reaped};
use bucketq::queue::scan::{Candidate, ListedLock};
use bucketq::queue::{meta, settle, Layout, Limits, QueueCtx, Recipe};
use bucketq::store::memory::{Fault, MemoryStore};
use bucketq::store::{Metadata, ObjectMeta, Op, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;

const LEASE: Duration = Duration::from_secs(60);

/// A queue context on `store` (one client of it), with its delete batcher running.
fn ctx(store: &MemoryStore, owner: &str) -> QueueCtx {
    let client: Arc<dyn Store> = Arc::new(store.clone());
    let (deleter, task) = Deleter::new(
        Arc::clone(&client),
        Duration::from_millis(100),
        Duration::ZERO,
    );
    tokio::spawn(task.run());
    let clock = Arc::new(StoreClock::new());
    clock.observe(store.clock().now());
    QueueCtx {
        name: "mail".into(),
        layout: Layout {
            prefix: "mail/".into(),
            suffix: ".task".into(),
            failed_prefix: "failed/".into(),
            done_prefix: "done/".into(),
        },
        recipe: Recipe::for_store(client.as_ref()),
        store: client,
        owner: owner.into(),
        limits: Limits {
            lease: LEASE,
            max_attempts: 3,
            max_age: None,
            max_payload_bytes: 1 << 20,
            on_success: OnSuccess::Delete,
            margin: LEASE / 10,
        },
        metrics: Arc::new(Metrics::new(Arc::default())),
        deleter,
        health: Arc::default(),
        clock,
        settle_hold: Duration::from_secs(1),
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(1))),
    }
}

fn listed(store: &MemoryStore, key: &str) -> ObjectMeta {
    store.object(key).expect("listed object").head.meta
}

fn candidate(store: &MemoryStore, id: &str) -> Candidate {
    Candidate {
        id: id.into(),
        listed: listed(store, &format!("mail/{id}.task")),
    }
}

fn held(outcome: ClaimOutcome) -> Box<bucketq::queue::Held> {
    match outcome {
        ClaimOutcome::Won(h) => h,
        other => panic!("expected a won claim, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn both_recipes_claim_with_get_then_create_then_delete() {
    for atomic in [true, false] {
        let store = MemoryStore::builder().atomic_copy(atomic).build();
        store.enable_trace();
        store.insert("mail/1.task", "payload", Metadata::new(), None);
        let q = ctx(&store, "w1");
        let h = held(claim(&q, &candidate(&store, "1")).await.expect("claim"));
        assert_eq!(h.attempt, 1);
        assert_eq!(h.body.as_ref(), b"payload");
        let lock = store.object("mail/1.lock").expect("lock");
        assert_eq!(lock.head.user_meta[meta::TOKEN], h.token);
        assert_eq!(lock.head.user_meta[meta::OWNER], "w1");
        assert_eq!(lock.head.user_meta[meta::ATTEMPT], "1");
        assert!(store.object("mail/1.task").is_none());
        let ops: Vec<Op> = store.trace().iter().map(|t| t.op).collect();
        let create = if atomic { Op::Copy } else { Op::Put };
        assert_eq!(ops, vec![Op::Get, create, Op::Delete], "atomic={atomic}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_second_claimer_loses_and_a_recreated_task_counts_its_attempts() {
    let store = MemoryStore::builder().build();
    let mut m = Metadata::new();
    m.insert(meta::ATTEMPT.into(), "2".into());
    store.insert("mail/2.task", "p", m, None);
    let c = candidate(&store, "2");
    let (a, b) = (ctx(&store, "a"), ctx(&store, "b"));
    let won = held(claim(&a, &c).await.expect("claim"));
    assert_eq!(
        won.attempt, 3,
        "a recreated task carries the attempts it used"
    );
    assert!(matches!(
        claim(&b, &c).await.expect("claim"),
        ClaimOutcome::Lost
    ));
}

#[tokio::test(start_paused = true)]
async fn a_claim_whose_create_answer_was_lost_checks_its_token() {
    for atomic in [true, false] {
        let store = MemoryStore::builder().atomic_copy(atomic).build();
        store.insert("mail/3.task", "p", Metadata::new(), None);
        let c = candidate(&store, "3");
        let client = store.client("w", Arc::default(), 1);
        client.set_fault_hook(Box::new(|info| {
            if matches!(info.op, Op::Copy | Op::Put) && info.key == "mail/3.lock" {
                Fault::RetriedAfterLoss
            } else {
                Fault::None
            }
        }));
        let q = ctx(&client, "w");
        let h = held(claim(&q, &c).await.expect("claim"));
        assert_eq!(
            store.object("mail/3.lock").expect("lock").head.user_meta[meta::TOKEN],
            h.token,
            "the first attempt had won: atomic={atomic}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_s3_claim_that_stalled_past_the_hold_rechecks_the_pending_key() {
    let store = MemoryStore::builder().atomic_copy(false).build();
    store.insert("mail/4.task", "p", Metadata::new(), None);
    let c = candidate(&store, "4");
    let slow = store.client("slow", Arc::default(), 1);
    slow.set_fault_hook(Box::new(|info| {
        if info.op == Op::Put {
            Fault::Delay(Duration::from_secs(5))
        } else {
            Fault::None
        }
    }));
    let q = ctx(&slow, "slow");
    let claiming = tokio::spawn(async move { claim(&q, &c).await });
    // Meanwhile another worker claims, runs and settles the task completely.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fast = ctx(&store, "fast");
    let h = held(claim(&fast, &candidate(&store, "4")).await.expect("claim"));
    settle::succeed(&fast, &h).await.expect("settled");
    fast.deleter.flush().await;
    assert!(store.keys("mail/").is_empty(), "done and gone");
    // The stalled PUT now creates a lock for a task that no longer exists: it must not run.
    let outcome = claiming.await.expect("joined").expect("claim");
    assert!(matches!(outcome, ClaimOutcome::Lost), "{outcome:?}");
    assert!(
        store.keys("mail/").is_empty(),
        "its lock was given back: {:?}",
        store.keys("")
    );
}

#[tokio::test(start_paused = true)]
async fn a_pending_delete_with_a_lost_answer_keeps_the_task() {
    let store = MemoryStore::builder().build();
    store.insert("mail/5.task", "p", Metadata::new(), None);
    let c = candidate(&store, "5");
    let client = store.client("w", Arc::default(), 1);
    // Every delete of the pending key is applied but its answer lost.
    client.set_fault_hook(Box::new(|info| {
        if matches!(info.op, Op::Delete | Op::DeleteMany) && info.key == "mail/5.task" {
            Fault::FailAfter
        } else {
            Fault::None
        }
    }));
    let q = ctx(&client, "w");
    let outcome = claim(&q, &c).await;
    assert!(outcome.is_err(), "{outcome:?}");
    // The task exists again as pending, uncounted, and the lock was given back.
    let pending = store.object("mail/5.task").expect("the task is not lost");
    assert_eq!(pending.body.as_ref(), b"p");
    assert_eq!(pending.head.user_meta[meta::ATTEMPT], "0");
    assert!(store.object("mail/5.lock").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_pending_delete_answered_after_the_lease_never_runs_the_task() {
    let store = MemoryStore::builder().build();
    store.insert("mail/6.task", "p", Metadata::new(), None);
    let c = candidate(&store, "6");
    let client = store.client("w", Arc::default(), 1);
    client.set_fault_hook(Box::new(|info| {
        if matches!(info.op, Op::Delete | Op::DeleteMany) && info.key == "mail/6.task" {
            Fault::Delay(LEASE * 2)
        } else {
            Fault::None
        }
    }));
    let q = ctx(&client, "w");
    let claiming = tokio::spawn(async move { claim(&q, &c).await });
    // While the delete hangs, the lock goes stale and another worker reaps it: the pending key
    // is still there, so the lock is dropped.
    tokio::time::sleep(LEASE + Duration::from_secs(5)).await;
    let reaper = ctx(&store, "reaper");
    reaper.clock.observe(store.clock().now());
    let lock = ListedLock {
        id: "6".into(),
        listed: listed(&store, "mail/6.lock"),
    };
    assert_eq!(
        reap(&reaper, &lock).await.expect("reap"),
        Reaped::LockDropped
    );
    // Then the stalled delete lands and takes the pending key with it.
    let outcome = claiming.await.expect("joined").expect("claim");
    assert!(matches!(outcome, ClaimOutcome::Lost), "{outcome:?}");
    let pending = store
        .object("mail/6.task")
        .expect("recreated from memory, not lost");
    assert_eq!(pending.body.as_ref(), b"p");
}

#[tokio::test(start_paused = true)]
async fn of_two_reapers_racing_for_one_lock_exactly_one_requeues_it() {
    for atomic in [true, false] {
        let store = MemoryStore::builder()
            .atomic_copy(atomic)
            .latency(Duration::from_millis(1), Duration::from_millis(20))
            .build();
        let mut m = Metadata::new();
        m.insert(meta::TOKEN.into(), "dead".into());
        m.insert(meta::ATTEMPT.into(), "1".into());
        let old = store.clock().now() - LEASE * 2;
        store.insert("mail/7.lock", "p", m, Some(old));
        let lock = ListedLock {
            id: "7".into(),
            listed: listed(&store, "mail/7.lock"),
        };
        let reapers: Vec<QueueCtx> = (0..4)
            .map(|i| {
                let client = store.client(&format!("r{i}"), Arc::default(), i);
                ctx(&client, &format!("r{i}"))
            })
            .collect();
        let results = futures::future::join_all(reapers.iter().map(|q| reap(q, &lock))).await;
        let results: Vec<Reaped> = results.into_iter().map(|r| r.expect("reap")).collect();
        let requeued = results.iter().filter(|r| **r == Reaped::Requeued).count();
        assert_eq!(requeued, 1, "atomic={atomic}: {results:?}");
        assert!(
            !results.contains(&Reaped::LockDropped),
            "nobody takes a fresh re-creation for a leftover: {results:?}"
        );
        assert!(store.object("mail/7.lock").is_none());
        let pending = store.object("mail/7.task").expect("requeued");
        assert_eq!(pending.head.user_meta[meta::ATTEMPT], "1");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lock_refreshed_after_it_was_listed_is_not_reaped() {
    let store = MemoryStore::builder().build();
    let mut m = Metadata::new();
    m.insert(meta::TOKEN.into(), "alive".into());
    store.insert(
        "mail/8.lock",
        "p",
        m.clone(),
        Some(store.clock().now() - LEASE * 2),
    );
    let lock = ListedLock {
        id: "8".into(),
        listed: listed(&store, "mail/8.lock"),
    };
    // Its owner refreshes it between the listing and the reap.
    store.insert("mail/8.lock", "p", m, None);
    let q = ctx(&store, "r");
    assert_eq!(reap(&q, &lock).await.expect("reap"), Reaped::NotStale);
    assert!(store.object("mail/8.lock").is_some());
    assert!(store.object("mail/8.task").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_reaper_whose_create_lands_after_the_task_was_claimed_again_takes_its_copy_back() {
    for atomic in [true, false] {
        let store = MemoryStore::builder().atomic_copy(atomic).build();
        let mut m = Metadata::new();
        m.insert(meta::TOKEN.into(), "dead".into());
        m.insert(meta::ATTEMPT.into(), "1".into());
        store.insert("mail/9.lock", "p", m, Some(store.clock().now() - LEASE * 2));
        let lock = ListedLock {
            id: "9".into(),
            listed: listed(&store, "mail/9.lock"),
        };
        // Reaper B reads the stale lock, then its create of the pending key stalls.
        let slow = store.client("slow", Arc::default(), 1);
        slow.set_fault_hook(Box::new(|info| {
            let creates = matches!(info.op, Op::Put | Op::Copy);
            if creates && info.key == "mail/9.task" {
                Fault::Delay(Duration::from_secs(10))
            } else {
                Fault::None
            }
        }));
        let b = ctx(&slow, "slow");
        let lock_b = lock.clone();
        let reaping = tokio::spawn(async move { reap(&b, &lock_b).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Meanwhile reaper A requeues the task and a worker claims it again.
        let a = ctx(&store, "a");
        assert_eq!(reap(&a, &lock).await.expect("reap"), Reaped::Requeued);
        let claimed = held(claim(&a, &candidate(&store, "9")).await.expect("claim"));
        assert_eq!(claimed.attempt, 2, "atomic={atomic}");
        assert!(store.object("mail/9.task").is_none(), "claimed");
        // B's create lands late: it must not leave a second pending copy behind.
        let outcome = reaping.await.expect("joined").expect("reap");
        assert_eq!(outcome, Reaped::Superseded, "atomic={atomic}");
        assert!(
            store.object("mail/9.task").is_none(),
            "atomic={atomic}: the task would run once more"
        );
        let lock_now = store.object("mail/9.lock").expect("the new claim's lock");
        assert_eq!(lock_now.head.user_meta[meta::TOKEN], claimed.token);
    }
}
