use std::sync::Arc;

use super::*;
use crate::store::memory::MemoryStore;
use crate::store::{Metadata, Op, RequestStats};

/// A memory store holding `keys`, answering each request in 10 ms, and its request counts.
pub(super) fn store_with(keys: &[&str]) -> (MemoryStore, Arc<RequestStats>) {
    let stats = Arc::new(RequestStats::default());
    let store = MemoryStore::builder()
        .stats(Arc::clone(&stats))
        .latency(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    for k in keys {
        store.insert(k, "x", Metadata::new(), None);
    }
    (store, stats)
}

/// A deadline no test reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Announce deletes "b" and "c", delete "a" now, and send "b" `late` after; wait for the
/// answers of "a" and "b". Returns how long that took, and "c"'s announcement, never used.
async fn now_with_announced_after(deleter: &Deleter, late: Duration) -> (Duration, Expected) {
    let b = deleter.expect();
    let c = deleter.expect();
    let first = {
        let d = deleter.clone();
        tokio::spawn(async move { d.delete_now("a", far()).await })
    };
    let second = {
        let d = deleter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(late).await;
            d.delete_expected(b, "b", far()).await
        })
    };
    let start = Instant::now();
    first.await.expect("joined").expect("a");
    second.await.expect("joined").expect("b");
    (start.elapsed(), c)
}

fn spawn(store: &MemoryStore, linger: Duration) -> (Deleter, tokio::task::JoinHandle<()>) {
    let (deleter, task) = Deleter::new(Arc::new(store.clone()), linger, Duration::ZERO);
    (deleter, tokio::spawn(task.run()))
}

#[tokio::test(start_paused = true)]
async fn concurrent_deletes_go_out_together() {
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (store, stats) = store_with(&refs);
    let (deleter, task) = spawn(&store, Duration::from_secs(1));
    // One delete goes out alone; the other 19 queue while it is in flight and share the next
    // request.
    let first = {
        let d = deleter.clone();
        tokio::spawn(async move { d.delete_now("k0", far()).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let rest = keys[1..].iter().map(|k| {
        let d = deleter.clone();
        let k = k.clone();
        async move { d.delete_now(&k, far()).await }
    });
    for r in futures::future::join_all(rest).await {
        r.expect("deleted");
    }
    first.await.expect("joined").expect("deleted");
    assert!(store.keys("").is_empty());
    assert_eq!(stats.grand_total(), 2, "{:?}", stats.snapshot());
    assert_eq!(stats.total(Op::Delete), 1);
    assert_eq!(stats.total(Op::DeleteMany), 1);
    drop(deleter);
    task.await.expect("batcher ends");
}

#[tokio::test(start_paused = true)]
async fn a_later_delete_rides_with_the_next_now_delete_once_due() {
    let (store, stats) = store_with(&["lock", "pending"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(5));
    deleter.delete_later("lock", Instant::now() + Duration::from_millis(100), far());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        stats.grand_total(),
        0,
        "a due later-delete waits for company"
    );
    deleter.delete_now("pending", far()).await.expect("deleted");
    assert!(store.keys("").is_empty());
    assert_eq!(stats.grand_total(), 1);
    assert_eq!(stats.total(Op::DeleteMany), 1);
}

#[tokio::test(start_paused = true)]
async fn a_later_delete_is_never_sent_before_it_is_due() {
    let (store, stats) = store_with(&["lock", "pending"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(5));
    deleter.delete_later("lock", Instant::now() + Duration::from_secs(1), far());
    deleter.delete_now("pending", far()).await.expect("deleted");
    assert_eq!(store.keys(""), vec!["lock".to_owned()], "not due yet");
    assert_eq!(stats.total(Op::Delete), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lonely_later_delete_goes_after_the_linger() {
    let (store, _stats) = store_with(&["lock"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(2));
    let start = Instant::now();
    deleter.delete_later("lock", start + Duration::from_secs(1), far());
    tokio::time::sleep(Duration::from_millis(2_900)).await;
    assert_eq!(store.keys(""), vec!["lock".to_owned()]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.keys("").is_empty(), "sent at not_before + linger");
}

#[tokio::test(start_paused = true)]
async fn flush_sends_later_deletes_as_soon_as_due_and_retries_failures() {
    let (store, _stats) = store_with(&["a", "b"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(60));
    let start = Instant::now();
    deleter.delete_later("a", start + Duration::from_secs(1), far());
    deleter.delete_later("b", start + Duration::from_secs(1), far());
    store.fail_next(1);
    deleter.flush().await;
    assert!(store.keys("").is_empty(), "both deleted after a retry");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn flush_gives_up_on_a_store_that_stays_down() {
    let (store, _stats) = store_with(&["a"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(60));
    deleter.delete_later("a", Instant::now(), far());
    store.fail_next(1_000);
    tokio::time::timeout(Duration::from_secs(600), deleter.flush())
        .await
        .expect("flush returns even when the store is down");
    assert_eq!(store.keys(""), vec!["a".to_owned()]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_now_delete_reports_the_error() {
    let (store, _stats) = store_with(&["a"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(1));
    store.fail_next(1);
    let err = deleter.delete_now("a", far()).await.expect_err("injected");
    assert!(err.is_transient());
    deleter.delete_now("a", far()).await.expect("second try");
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_sends_what_is_left_then_ends() {
    let (store, _stats) = store_with(&["a"]);
    let (deleter, task) = spawn(&store, Duration::from_secs(60));
    deleter.delete_later("a", Instant::now() + Duration::from_secs(1), far());
    drop(deleter);
    task.await.expect("ends");
    assert!(store.keys("").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_now_delete_waits_for_announced_ones_up_to_the_gather_time() {
    let (store, stats) = store_with(&["a", "b", "c"]);
    let (deleter, task) = Deleter::new(
        Arc::new(store.clone()),
        Duration::from_secs(1),
        Duration::from_millis(50),
    );
    tokio::spawn(task.run());
    let (waited, c) = now_with_announced_after(&deleter, Duration::from_millis(20)).await;
    assert_eq!(stats.total(Op::DeleteMany), 1, "a waited for b");
    // c never comes: the batch went at the gather limit, not later.
    assert!(waited < Duration::from_millis(80), "{waited:?}");
    drop(c);
    deleter.delete_now("c", far()).await.expect("c");
    assert!(store.keys("").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_later_delete_goes_before_its_deadline_and_is_dropped_after_it() {
    let (store, _stats) = store_with(&["a", "b"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(60));
    let start = Instant::now();
    // The linger would wait a minute; the deadline says two seconds.
    deleter.delete_later("a", start, start + Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(store.keys(""), vec!["b".to_owned()], "sent by its deadline");
    // A delete that keeps failing is given up once its deadline is near, not retried past it.
    store.fail_next(100);
    deleter.delete_later(
        "b",
        Instant::now(),
        Instant::now() + Duration::from_millis(1_500),
    );
    tokio::time::timeout(Duration::from_secs(30), deleter.flush())
        .await
        .expect("given up, not retried for ever");
    store.fail_next(0);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        store.keys(""),
        vec!["b".to_owned()],
        "never sent after the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_batch_does_not_hold_up_the_next_one() {
    let (store, _stats) = store_with(&["slow", "fast"]);
    let mut first = true;
    store.set_fault_hook(Box::new(move |_| {
        if std::mem::take(&mut first) {
            crate::store::memory::Fault::Delay(Duration::from_secs(30))
        } else {
            crate::store::memory::Fault::None
        }
    }));
    let (deleter, _task) = spawn(&store, Duration::from_secs(1));
    let slow = {
        let d = deleter.clone();
        tokio::spawn(async move { d.delete_now("slow", far()).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    deleter.delete_now("fast", far()).await.expect("fast");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(store.keys(""), vec!["slow".to_owned()]);
    slow.await.expect("joined").expect("slow, eventually");
    assert!(store.keys("").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_later_delete_whose_deadline_passed_unsent_is_dropped() {
    let (store, _stats) = store_with(&["a"]);
    let (deleter, _task) = spawn(&store, Duration::from_secs(60));
    let start = Instant::now();
    deleter.delete_later(
        "a",
        start + Duration::from_secs(1),
        start + Duration::from_secs(2),
    );
    // The whole process stalls (a paused VM, a jump of the clock) past the deadline.
    tokio::time::advance(Duration::from_secs(10)).await;
    deleter.flush().await;
    assert_eq!(
        store.keys(""),
        vec!["a".to_owned()],
        "not sent after its deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_now_delete_still_queued_at_its_deadline_is_not_sent() {
    let (store, _stats) = store_with(&["stuck", "late"]);
    let mut n = 0;
    store.set_fault_hook(Box::new(move |_| {
        n += 1;
        if n <= MAX_IN_FLIGHT {
            crate::store::memory::Fault::Delay(Duration::from_secs(60))
        } else {
            crate::store::memory::Fault::None
        }
    }));
    let (deleter, _task) = spawn(&store, Duration::from_secs(1));
    // Every batch slot is taken by a stalled request.
    for i in 0..MAX_IN_FLIGHT {
        let d = deleter.clone();
        tokio::spawn(async move { d.delete_now(&format!("stuck{i}"), far()).await });
        tokio::time::sleep(STALLED + Duration::from_millis(10)).await;
    }
    let err = deleter
        .delete_now("late", Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("missed its deadline");
    assert!(err.is_transient());
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(store.keys("").contains(&"late".to_owned()), "never sent");
}

#[tokio::test(start_paused = true)]
async fn on_a_slow_store_a_now_delete_waits_up_to_two_round_trips_for_announced_ones() {
    let (store, stats) = store_with(&["warm", "a", "b", "c"]);
    // Every request takes 160 ms (150 + the store's 10): the store is busy.
    store.set_fault_hook(Box::new(|_| {
        crate::store::memory::Fault::Delay(Duration::from_millis(150))
    }));
    let gather = Duration::from_millis(50);
    let (deleter, task) = Deleter::new(Arc::new(store.clone()), Duration::from_secs(1), gather);
    tokio::spawn(task.run());
    deleter.delete_now("warm", far()).await.expect("warm");
    let before = stats.total(Op::Delete) + stats.total(Op::DeleteMany);
    // b joins after more than `gather` and more than one round trip (a claim that was
    // still reading when the batch opened), within two.
    let (waited, c) = now_with_announced_after(&deleter, Duration::from_millis(190)).await;
    let after = stats.total(Op::Delete) + stats.total(Op::DeleteMany);
    assert_eq!(after - before, 1, "a waited for b: one request");
    // c never comes: the wait is bounded by 4 × gather = 200 ms (two round trips would be
    // 320 ms), then the request.
    assert!(
        waited < Duration::from_millis(200 + 160 + 15),
        "cap + request: {waited:?}"
    );
    drop(c);
    deleter.delete_now("c", far()).await.expect("c");
    assert!(store.keys("").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_does_not_wait_for_claims_that_started_after_it_opened() {
    let (store, stats) = store_with(&["a", "b"]);
    let gather = Duration::from_millis(50);
    let (deleter, task) = Deleter::new(Arc::new(store.clone()), Duration::from_secs(1), gather);
    tokio::spawn(task.run());
    let start = Instant::now();
    let first = {
        let d = deleter.clone();
        tokio::spawn(async move { d.delete_now("a", far()).await })
    };
    // A claim starts just after a's batch opened: the batch goes without waiting for it.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let late = deleter.expect();
    first.await.expect("joined").expect("a");
    assert!(
        start.elapsed() < Duration::from_millis(20),
        "{:?}",
        start.elapsed()
    );
    deleter.delete_expected(late, "b", far()).await.expect("b");
    assert_eq!(stats.total(Op::Delete) + stats.total(Op::DeleteMany), 2);
}
