//! The store failing for a while under two real workers on LocalStack (started by
//! ./scripts/test): a proxy between the workers and the store answers 503, then resets
//! connections, then stalls past the request timeout, for a few seconds each, while tasks are
//! being handled. The workers keep running, log the failures, back off, lose nothing, and
//! finish the queue once the store answers again, with no task run twice (the outage is
//! shorter than the lease, so the protocol allows no duplicate), and no lock waiting for the
//! lease to run out (claims the outage left open are released once the store answers).

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::bucket::TestBucket;
use e2e_support::proxy::{Fault, FaultProxy};
use e2e_support::record::{duplicates, Recorder};
use e2e_support::worker::{outputs, start_ready, Requests, Worker, WorkerSpec};
use e2e_support::{serial, wait_all_handled, wait_bucket_empty, wait_until};

const START: Duration = Duration::from_secs(30);

/// Tries of one store request: the transport's first try and `max_retries` (3) more. The
/// request counters count every try.
const TRIES: u64 = 4;

/// Most store requests (tries) one worker may make in the 3-second second half of an outage
/// the store answers quickly (503s, connection resets).
///
/// While the store fails, a worker sends one repeatable step at a time — a listing, a delete
/// batch, a claim's read, a reap, a put-back — each in its turn, the next no sooner than
/// `poll_interval` doubling to `max_poll_interval` (2 s here, ±10 %) after the last failure
/// (`src/queue/health.rs`). A turn is one request, tried `TRIES` times over 0.7–1.4 s, so a
/// turn starts at most every ~2.5 s: at most two overlap a 3-s window, `2 × TRIES`. That is
/// about one request a second at the steady state (4 tries every ~3 s, as measured). The only
/// requests that never wait are those a wait could cost a lease: refreshes of held tasks, and
/// a settled lock's delete at its last chance before the lease it is trusted for ends; none
/// falls in these windows (handlers take 0.1 s, locks are trusted for 20 s). Requests
/// already under way when the store began to fail finish their tries within ~1.4 s, before
/// the second half. Busy and healthy a worker makes 80–100 requests a second; before the gate
/// it made up to 49 in such a window (every step retried on its own schedule).
const MAX_LATE_REQUESTS: u64 = 2 * TRIES;

/// Most store requests (tries) one worker may make in the 1.5-second second half of a stall.
///
/// A stall shows only when a request gives up: each try lasts the request timeout (1 s), so the
/// first failure comes after ~4–5 s, later than this phase ends, and until then nothing tells
/// the worker to hold back. What this window sees is the tries of requests sent while the store
/// still seemed fine, at most one per handler slot (8 claim reads), one listing and the delete
/// batches (up to 4 beside stalled ones), each trying once a second: two tries each at most.
/// Measured: 1–10.
const MAX_LATE_STALLED_REQUESTS: u64 = (8 + 1 + 4) * 2;

#[test]
fn workers_survive_a_failing_store_lose_nothing_and_recover() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let bucket = TestBucket::create("faults");
    let recorder = Recorder::new(dir.path(), "runs");
    let keys = bucket.enqueue("q", "f", 300);
    let proxy = FaultProxy::start(&bucket.endpoint);

    let mut spec = WorkerSpec::new(&proxy.endpoint(), &bucket.name, recorder.handler("0.1"));
    spec.request_timeout = "1s";
    spec.max_retries = 3;
    spec.lease = "30s";
    spec.timeout = "5s";
    let mut workers = start_ready(dir.path(), 2, &spec, START);
    wait_until(
        "some tasks handled before the faults",
        Duration::from_secs(60),
        || (recorder.finished().len() >= 60).then_some(()),
        || outputs(&workers),
    );

    let window = Duration::from_secs(2);
    let before: Vec<Requests> = workers.iter().map(Worker::requests).collect();
    std::thread::sleep(window);
    let healthy: Vec<u64> = workers
        .iter()
        .zip(&before)
        .map(|(w, b)| w.requests().since(b).total())
        .collect();
    println!(
        "before the faults, requests per worker in {window:?}: {healthy:?} ({:.1}/s each on average)",
        healthy.iter().sum::<u64>() as f64 / healthy.len() as f64 / window.as_secs_f64()
    );

    // Outages the store answers quickly last 6 s, so their second half shows the rate once the
    // workers have backed off; see the bounds above.
    let phases = [
        (Fault::Status503, Duration::from_secs(6), MAX_LATE_REQUESTS),
        (Fault::Reset, Duration::from_secs(6), MAX_LATE_REQUESTS),
        (
            Fault::Stall,
            Duration::from_secs(3),
            MAX_LATE_STALLED_REQUESTS,
        ),
    ];
    for (fault, length, max_late) in phases {
        let before: Vec<Requests> = workers.iter().map(Worker::requests).collect();
        let handled = recorder.finished().len();
        proxy.set(fault);
        std::thread::sleep(length / 2);
        let half: Vec<Requests> = workers.iter().map(Worker::requests).collect();
        std::thread::sleep(length / 2);
        for w in &mut workers {
            assert!(
                w.alive(),
                "{} died during {fault:?}:\n{}",
                w.name,
                w.daemon.output()
            );
        }
        let after: Vec<Requests> = workers.iter().map(Worker::requests).collect();
        proxy.set(Fault::None);
        let during = Requests::sum(&after).since(&Requests::sum(&before));
        println!(
            "{fault:?} for {length:?}: {} handler runs ended meanwhile; store requests (each \
             attempt) by both workers: {:?}",
            recorder.finished().len() - handled,
            during.0
        );
        for (w, (a, h)) in workers.iter().zip(after.iter().zip(&half)) {
            let late = a.since(h).total();
            println!(
                "  {}: {late} requests in the second half ({:.1}/s): {:?}",
                w.name,
                late as f64 / (length / 2).as_secs_f64(),
                a.since(h).by_op()
            );
            assert!(
                late <= max_late,
                "{} made {late} requests (at most {max_late} allowed) in the second half of the \
                 {fault:?} outage: no backoff",
                w.name
            );
        }
        // Let work resume between faults.
        std::thread::sleep(Duration::from_secs(1));
    }
    let recovered = Instant::now();
    println!(
        "connections the proxy saw per mode: {:?}",
        proxy.connections()
    );

    wait_all_handled(
        "every task handled after the store recovered",
        Duration::from_secs(90),
        &recorder,
        &keys,
        &workers,
    );
    wait_bucket_empty(
        "the bucket empty",
        Duration::from_secs(30),
        &bucket,
        &workers,
    );
    let recovery = recovered.elapsed();
    println!("recovered: the rest handled in {recovery:.1?}");

    let runs = recorder.runs();
    let dups = duplicates(&runs);
    println!(
        "{} runs for {} tasks, {} run twice",
        runs.len(),
        keys.len(),
        dups.len()
    );
    assert!(dups.is_empty(), "tasks run twice: {dups:#?}");

    let log = outputs(&workers);
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let reaped = count("reaped a stale lock");
    println!(
        "claims left open by the outage: {}, released after it: {}; stale locks reaped: {reaped}",
        count("claim left open by a store failure"),
        count("released a claim a store failure had left open"),
    );
    // A claim the outage left open (a create whose answer was lost) is released once the store
    // answers, so no task waits for its lock to go stale (30 s) and be reaped.
    assert_eq!(
        reaped, 0,
        "locks were left for the reaper after the store recovered:\n{log}"
    );
    assert!(
        recovery < Duration::from_secs(15),
        "the rest took {recovery:?} after the store recovered: tasks waited for the lease"
    );
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    println!("{} warnings logged, e.g.:", warnings.len());
    for w in warnings.iter().take(8) {
        println!("  {w}");
    }
    assert!(
        log.contains("listing failed; backing off"),
        "the listing failures were not logged:\n{log}"
    );
    for w in &mut workers {
        w.daemon.signal(libc::SIGTERM);
    }
    for w in &mut workers {
        assert_eq!(w.daemon.wait_exit(START), 0, "{}", w.daemon.output());
    }
}
