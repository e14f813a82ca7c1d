//! The delete batcher behind a [`StoreHealth`] gate, on a memory store whose calls the gate
//! observes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::queue::deleter::tests::store_with;
use crate::queue::deleter::{Deleter, DeleterTask};
use crate::queue::health::StoreHealth;
use crate::queue::observed::ObservedStore;
use crate::store::memory::MemoryStore;
use crate::store::{RequestStats, Store};

struct Setup {
    store: MemoryStore,
    stats: Arc<RequestStats>,
    health: Arc<StoreHealth>,
    deleter: Deleter,
}

/// A gated batcher (turns 1 s doubling to 4 s) on a store holding `keys`.
fn setup(keys: &[String]) -> Setup {
    setup_with(keys, Duration::from_secs(1), Duration::from_secs(4))
}

/// A gated batcher whose turns are spaced `base` doubling to `max`.
fn setup_with(keys: &[String], base: Duration, max: Duration) -> Setup {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (store, stats) = store_with(&keys);
    let health = Arc::new(StoreHealth::new(
        base,
        max,
        Arc::new(Mutex::new(StdRng::seed_from_u64(9))),
    ));
    let observed: Arc<dyn Store> = Arc::new(ObservedStore::new(
        Arc::new(store.clone()),
        Arc::clone(&health),
    ));
    let (deleter, task): (Deleter, DeleterTask) =
        Deleter::new(observed, Duration::from_millis(500), Duration::ZERO);
    tokio::spawn(task.gated_by(Arc::clone(&health)).run());
    Setup {
        store,
        stats,
        health,
        deleter,
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i:02}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_store_that_answers_sees_no_delay() {
    let ks = keys(20);
    let s = setup(&ks);
    let start = Instant::now();
    let far = start + Duration::from_secs(3600);
    let all = ks.iter().map(|k| s.deleter.delete_now(k, far));
    for r in futures::future::join_all(all).await {
        r.expect("deleted");
    }
    assert!(s.store.keys("").is_empty());
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    assert!(!s.health.failing());
}

#[tokio::test(start_paused = true)]
async fn while_the_store_fails_batches_go_one_per_turn_and_all_go_once_it_answers() {
    let ks = keys(30);
    let s = setup(&ks);
    s.store.fail_next(u64::MAX);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3600);
    // Settled locks due at different times, each retried on its own schedule by the batcher.
    for (i, k) in ks.iter().enumerate() {
        s.deleter
            .delete_later(k, start + Duration::from_millis(97 * i as u64), deadline);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = s.stats.grand_total();
    // Turns at about 1, 3, 7, 11, 15 and 19 s: six, where the batcher alone retried every
    // second or so per lock (dozens).
    assert!(
        (1..=7).contains(&during),
        "{during} requests in 20 s of outage"
    );
    assert!(s.health.failing());
    assert_eq!(s.store.keys("").len(), 30, "nothing deleted yet");

    s.store.fail_next(0);
    let recovered = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !s.store.keys("").is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("everything deleted after the store answered again");
    assert!(
        recovered.elapsed() <= Duration::from_millis(4_500),
        "within a turn: {:?}",
        recovered.elapsed()
    );
    assert!(!s.health.failing());
}

#[tokio::test(start_paused = true)]
async fn a_now_delete_held_back_is_answered_at_its_deadline_and_never_sent() {
    let ks = keys(2);
    let s = setup(&ks);
    s.store.fail_next(u64::MAX);
    let far = Instant::now() + Duration::from_secs(3600);
    // The first fails and closes the gate for about a second.
    s.deleter.delete_now(&ks[0], far).await.expect_err("down");
    let before = s.stats.grand_total();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(300);
    let err = s
        .deleter
        .delete_now(&ks[1], deadline)
        .await
        .expect_err("held back past its deadline");
    assert!(err.is_transient());
    let answered = start.elapsed();
    assert!(
        answered >= Duration::from_millis(300) && answered < Duration::from_millis(400),
        "{answered:?}"
    );
    s.store.fail_next(0);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(s.stats.grand_total(), before, "never sent");
    assert!(s.store.keys("").contains(&ks[1]));
}

#[tokio::test(start_paused = true)]
async fn a_settled_lock_goes_at_its_last_chance_even_between_turns() {
    let ks = keys(2);
    let s = setup_with(&ks, Duration::from_secs(10), Duration::from_secs(60));
    // One failure closes the gate for ten seconds; the store is fine again at once, but no
    // request has told the gate so.
    s.store.fail_next(1);
    let far = Instant::now() + Duration::from_secs(3600);
    s.deleter.delete_now(&ks[0], far).await.expect_err("down");
    assert!(s.health.failing());
    let start = Instant::now();
    let receipt = s
        .deleter
        .delete_later(&ks[1], start, start + Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        s.store.keys("").contains(&ks[1]),
        "held back while it can wait"
    );
    assert!(receipt.deleted().await, "sent before its deadline");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2_850) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!s.store.keys("").contains(&ks[1]));
    assert!(!s.health.failing(), "its answer opened the gate");
}
