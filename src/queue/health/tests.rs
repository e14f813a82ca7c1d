use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn health(base_ms: u64, max_ms: u64) -> Arc<StoreHealth> {
    Arc::new(StoreHealth::new(
        Duration::from_millis(base_ms),
        Duration::from_millis(max_ms),
        Arc::new(Mutex::new(StdRng::seed_from_u64(5))),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_store_that_answers_admits_everything_at_once() {
    let h = health(100, 1_000);
    let start = Instant::now();
    let turns: Vec<Turn> = futures::future::join_all((0..50).map(|_| h.turn())).await;
    assert_eq!(turns.len(), 50);
    assert_eq!(start.elapsed(), Duration::ZERO, "no step waited");
    assert_eq!(h.gate(), Gate::Open);
}

#[tokio::test(start_paused = true)]
async fn while_failing_one_step_goes_at_a_time_no_sooner_than_the_delay() {
    let h = health(1_000, 8_000);
    h.record_failure(Instant::now());
    assert!(h.failing());
    assert!(h.try_turn().is_none(), "the first turn waits the delay");
    let start = Instant::now();
    let turn = h.turn().await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_millis(1_100),
        "{waited:?}"
    );
    // Held: nobody else goes, however long we wait.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.gate(), Gate::Busy);
    assert!(h.try_turn().is_none());
    drop(turn);
    assert!(h.try_turn().is_some(), "the delay passed long ago");
}

#[tokio::test(start_paused = true)]
async fn failed_turns_double_the_delay_up_to_the_maximum() {
    let h = health(1_000, 4_000);
    h.record_failure(Instant::now());
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    for _ in 0..5 {
        let turn = h.turn().await;
        gaps.push((Instant::now() - last).as_millis());
        // The turn's request fails after 200 ms.
        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.record_failure(sent);
        drop(turn);
        last = Instant::now();
    }
    // 1 s, then 2, 4, 4, 4 after each failure (±10 % jitter).
    let want = [1_000u128, 2_000, 4_000, 4_000, 4_000];
    for (gap, want) in gaps.iter().zip(want) {
        assert!(*gap >= want * 9 / 10 && *gap <= want * 11 / 10, "{gaps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_of_requests_sent_before_the_last_change_do_not_double_again() {
    let h = health(1_000, 60_000);
    let sent = Instant::now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Eight requests in flight when the outage began fail together.
    for _ in 0..8 {
        h.record_failure(sent);
    }
    let Gate::ClosedUntil(at) = h.gate() else {
        panic!("closed")
    };
    let wait = at - Instant::now();
    assert!(wait <= Duration::from_millis(2_200), "{wait:?}");
}

#[tokio::test(start_paused = true)]
async fn any_answer_opens_the_gate_for_every_waiter() {
    let h = health(10_000, 60_000);
    h.record_failure(Instant::now());
    let admitted = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let h = Arc::clone(&h);
        let admitted = Arc::clone(&admitted);
        tokio::spawn(async move {
            let _turn = h.turn().await;
            admitted.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(admitted.load(Ordering::SeqCst), 0);
    h.record_answer();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(admitted.load(Ordering::SeqCst), 5, "all went at once");
    assert!(!h.failing());
}

#[tokio::test(start_paused = true)]
async fn a_turn_taken_only_to_pace_still_spaces_the_next() {
    let h = health(1_000, 8_000);
    h.record_failure(Instant::now());
    drop(h.turn().await);
    let start = Instant::now();
    drop(h.turn().await);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}
