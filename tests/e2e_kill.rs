//! `kill -9` of one of four real workers in the middle of 1,000 tasks on LocalStack (started
//! by ./scripts/test), then restarted: every task is handled at least once, a task runs twice
//! only if the killed worker was running it (or had just finished it and not yet deleted its
//! lock), and nothing is left in the bucket once the killed worker's locks have been reaped.

mod e2e_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e_support::bucket::TestBucket;
use e2e_support::record::{duplicates, now_secs, Recorder};
use e2e_support::worker::{outputs, start_ready, Worker, WorkerSpec};
use e2e_support::{serial, wait_all_handled, wait_bucket_empty, wait_until};

const START: Duration = Duration::from_secs(30);

/// A settled lock is deleted up to `settle_hold` (1 s on S3) plus one `poll_interval` of
/// batching after its handler ended; a run that ended this long before the kill has had its
/// lock deleted and must never run again.
const SETTLE_WINDOW: f64 = 3.0;

#[test]
fn a_worker_killed_mid_run_loses_nothing_and_duplicates_only_its_own_tasks() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let bucket = TestBucket::create("kill");
    let recorder = Recorder::new(dir.path(), "runs");
    let keys = bucket.enqueue("q", "t", 1000);

    let mut spec = WorkerSpec::new(&bucket.endpoint, &bucket.name, recorder.handler("0.2"));
    // Short, so the killed worker's locks are reaped soon; long enough that a busy machine
    // (the lease is trusted for half its length) does not expire the survivors' leases.
    spec.lease = "10s";
    spec.timeout = "2s";
    let mut workers = start_ready(dir.path(), 4, &spec, START);
    wait_until(
        "a third of the tasks handled",
        Duration::from_secs(90),
        || (recorder.finished().len() >= 330).then_some(()),
        || format!("{} handled", recorder.finished().len()),
    );

    // Kill it while it runs handlers, so that the kill is known to interrupt some: two runs
    // that started less than half their 0.2 s ago, so they are still running when the signal
    // lands even if reading the record took a while.
    let victim = workers.remove(1);
    let victim_pid = victim.pid();
    wait_until(
        "the victim running two handlers at once",
        Duration::from_secs(30),
        || {
            let now = now_secs();
            let running = recorder
                .runs()
                .iter()
                .filter(|r| r.pid == victim_pid && r.end.is_none() && now - r.start < 0.1)
                .count();
            (running >= 2).then_some(())
        },
        || victim.daemon.output(),
    );
    victim.daemon.signal(libc::SIGKILL);
    let killed_at = now_secs();
    let mut victim = victim;
    assert_eq!(victim.daemon.wait_exit(START), -1, "killed by a signal");
    std::thread::sleep(Duration::from_secs(1));
    let mut restarted = Worker::start(dir.path(), "w2-restarted", &spec);
    restarted.wait_ready(START);
    workers.push(restarted);

    let recovered = Instant::now();
    wait_all_handled(
        "every task handled",
        Duration::from_secs(120),
        &recorder,
        &keys,
        &workers,
    );
    wait_bucket_empty(
        "the bucket empty (the killed worker's locks reaped)",
        Duration::from_secs(30),
        &bucket,
        &workers,
    );
    println!(
        "after the kill, the rest handled and the bucket emptied in {:.1?}",
        recovered.elapsed()
    );

    let runs = recorder.runs();
    let by_victim: Vec<_> = runs.iter().filter(|r| r.pid == victim_pid).collect();
    // Not ended before the kill: the handler was running (its bash outlives the worker,
    // which cannot kill its process group on SIGKILL). Every run of the killed worker was
    // spawned before the kill, even one whose bash read the clock for its start just after.
    let running_at_kill: BTreeSet<String> = by_victim
        .iter()
        .filter(|r| r.end.map_or(true, |e| e > killed_at))
        .map(|r| r.key.clone())
        .collect();
    let dups = duplicates(&runs);
    let mut just_finished = 0;
    let mut longest_gap = 0.0f64;
    for (key, key_runs) in &dups {
        assert_eq!(
            key_runs.len(),
            2,
            "{key} ran more than twice: {key_runs:#?}"
        );
        let first = &key_runs[0];
        assert_eq!(
            first.pid, victim_pid,
            "{key} ran twice but not first in the killed worker: {key_runs:#?}"
        );
        assert!(
            first.end.map_or(true, |e| e > killed_at - SETTLE_WINDOW),
            "{key}: the killed worker's run was not under way at the kill ({killed_at}; ended {:.3}s before): {key_runs:#?}",
            first.end.map_or(0.0, |e| killed_at - e)
        );
        assert!(
            key_runs[1].pid != victim_pid && key_runs[1].start > killed_at,
            "{key}: the second run is not another worker's after the kill: {key_runs:#?}"
        );
        if let Some(end) = first.end.filter(|&e| e <= killed_at) {
            just_finished += 1;
            longest_gap = longest_gap.max(killed_at - end);
        }
    }
    let rerun: BTreeSet<String> = dups.keys().cloned().collect();
    assert!(
        running_at_kill.is_subset(&rerun),
        "tasks running in the killed worker were not run again: {:?}",
        running_at_kill.difference(&rerun).collect::<Vec<_>>()
    );
    assert!(
        !running_at_kill.is_empty(),
        "the kill hit no running task, so this run proves nothing about them; the killed \
         worker's last runs (start, end relative to the kill): {:?}",
        by_victim
            .iter()
            .rev()
            .take(5)
            .map(|r| (r.start - killed_at, r.end.map(|e| e - killed_at)))
            .collect::<Vec<_>>()
    );
    println!(
        "killed worker: {} runs, {} running at the kill; {} tasks ran twice ({} of them had \
         just finished in the killed worker, at most {longest_gap:.2}s before the kill, lock \
         not yet deleted); {} runs in all",
        by_victim.len(),
        running_at_kill.len(),
        dups.len(),
        just_finished,
        runs.len()
    );

    for w in &mut workers {
        w.daemon.signal(libc::SIGTERM);
    }
    for w in &mut workers {
        assert_eq!(w.daemon.wait_exit(START), 0, "{}", w.daemon.output());
    }
    let reaped: Vec<String> = outputs(&workers)
        .lines()
        .filter(|l| l.contains("reaped a stale lock"))
        .map(str::to_owned)
        .collect();
    println!("{} stale locks reaped", reaped.len());
    assert!(
        reaped.len() >= running_at_kill.len(),
        "fewer reaps than tasks the killed worker held: {reaped:#?}"
    );
}
