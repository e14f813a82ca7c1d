//! The store failing for a while under two real workers on LocalStack (started by
//! ./scripts/test): a proxy between the workers and the store answers 503, then resets
//! connections, then stalls past the request timeout, for a few seconds each, while tasks are
//! being handled. The workers keep running, log the failures, back off, lose nothing, and
//! finish the queue once the store answers again, with no task run twice (the outage is
//! shorter than the lease, so the protocol allows no duplicate).

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::bucket::TestBucket;
use e2e_support::proxy::{Fault, FaultProxy};
use e2e_support::record::{duplicates, Recorder};
use e2e_support::worker::{Requests, Worker, WorkerSpec};
use e2e_support::{serial, wait_until};

const START: Duration = Duration::from_secs(30);

/// Most store requests one worker may make in the second half of an outage phase (1.5 or 3
/// seconds), retries included: 20 a second. Backed off, it lists about once per
/// `max_poll_interval` (each listing tried 4 times) and retries its pending deletes and lock
/// checks every second or more, which measured 0–49 in 3 s; busy and healthy it makes 80–100 a
/// second, and a worker that did not back off would make hundreds against instant 503s.
const MAX_LATE_REQUESTS: u64 = 60;

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
    let mut workers: Vec<Worker> = (1..=2)
        .map(|i| Worker::start(dir.path(), &format!("w{i}"), &spec))
        .collect();
    for w in &mut workers {
        w.wait_ready(START);
    }
    let output = |workers: &[Worker]| {
        workers
            .iter()
            .map(|w| format!("--- {}\n{}", w.name, w.daemon.output()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_until(
        "some tasks handled before the faults",
        Duration::from_secs(60),
        || (recorder.finished().len() >= 60).then_some(()),
        || output(&workers),
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

    // A longer 503 outage first, to see the request rate once the workers have backed off.
    let phases = [
        (Fault::Status503, Duration::from_secs(6)),
        (Fault::Reset, Duration::from_secs(3)),
        (Fault::Stall, Duration::from_secs(3)),
    ];
    for (fault, length) in phases {
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
                "  {}: {late} requests in the second half ({:.1}/s)",
                w.name,
                late as f64 / (length / 2).as_secs_f64()
            );
            assert!(
                late <= MAX_LATE_REQUESTS,
                "{} made {late} requests in the second half of the {fault:?} outage: no backoff",
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

    wait_until(
        "every task handled after the store recovered",
        Duration::from_secs(90),
        || (recorder.finished() == keys).then_some(()),
        || {
            format!(
                "{} of {} handled\n{}",
                recorder.finished().len(),
                keys.len(),
                output(&workers)
            )
        },
    );
    wait_until(
        "the bucket empty",
        Duration::from_secs(30),
        || bucket.keys().is_empty().then_some(()),
        || format!("left: {:?}\n{}", bucket.keys(), output(&workers)),
    );
    println!("recovered: the rest handled in {:.1?}", recovered.elapsed());

    let runs = recorder.runs();
    let dups = duplicates(&runs);
    println!(
        "{} runs for {} tasks, {} run twice",
        runs.len(),
        keys.len(),
        dups.len()
    );
    assert!(dups.is_empty(), "tasks run twice: {dups:#?}");

    let log = output(&workers);
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    println!(
        "locks left for the reaper by claims cut off mid-way: {}; stale locks reaped: {}",
        count("its lock is left for the reaper"),
        count("reaped a stale lock")
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
