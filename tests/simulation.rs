//! A deterministic simulation of many workers on one memory store.
//!
//! Each seed draws a scenario (store recipe, number of workers, tasks, limits, latencies and
//! fault rates) and runs it on a single-threaded tokio runtime with paused time, so the run is
//! a pure function of the seed: request latencies, handler outcomes, crashes (a worker vanishes
//! between any two of its requests, or right after one took effect), transient failures, lost
//! answers, stalls longer than the lease, and jumps of the shared clock that expire every lease
//! at once. After the faults stop, the workers must finish the queue and drain.
//!
//! The checker then asserts, for every seed:
//! - **never lost**: every task was handled (a handler returned done) or lies in `failed/`
//!   with its error, and nothing is left under the queue prefix;
//! - **no double run under valid leases**: no two live workers ran a task's handler while both
//!   held a lease they could prove valid (the engine reports its leases through
//!   [`Observer`]);
//! - **no stale lock outlives the lease by more than a poll** while a healthy worker runs;
//! - **exactly once without faults**: in scenarios without injected faults, no task was
//!   handled twice;
//! - the drain returns cleanly.
//!
//! `BUCKETQ_SIM_SEEDS` sets how many seeds to run (default 1000); `BUCKETQ_SIM_SEED` runs one
//! seed and prints its request trace, for reading a failure.

#[path = "engine_support/mod.rs"]
mod engine_support;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bucketq::config::WorkerConfig;
use bucketq::handlers::{Handler, HandlerRegistry, Outcome, Task};
use bucketq::metrics::Metrics;
use bucketq::queue::meta;
use bucketq::store::memory::{Fault, MemoryStore};
use bucketq::store::{Metadata, Op, RequestStats};
use bucketq::worker::{
    self, EngineOptions, NoLifecycle, Observer, Shutdown, WorkerContext, WorkerError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const QUEUE: &str = "sim";

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// What a seed runs.
#[derive(Debug, Clone)]
struct Scenario {
    atomic: bool,
    workers: usize,
    tasks: usize,
    late_tasks: usize,
    concurrency: usize,
    lease: Duration,
    poll: Duration,
    max_poll: Duration,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    latency_max: Duration,
    faults: bool,
    crash_per_mille: u32,
    fail_per_mille: u32,
    stall_per_mille: u32,
    jump_per_mille: u32,
    fault_phase: Duration,
}

impl Scenario {
    fn draw(rng: &mut StdRng) -> Scenario {
        let lease = Duration::from_secs(rng.gen_range(6..=30));
        let poll = Duration::from_millis(rng.gen_range(50..=400));
        let faults = rng.gen_ratio(4, 5);
        Scenario {
            atomic: rng.gen_bool(0.5),
            workers: rng.gen_range(1..=4),
            tasks: rng.gen_range(5..=40),
            late_tasks: rng.gen_range(0..=15),
            concurrency: rng.gen_range(1..=4),
            lease,
            poll,
            max_poll: poll * rng.gen_range(2..=8),
            timeout: lease.mul_f64(rng.gen_range(0.1..0.4)),
            max_attempts: rng.gen_range(1..=4),
            backoff: Duration::from_millis(rng.gen_range(100..=2_000)),
            latency_max: Duration::from_millis(rng.gen_range(1..=40)),
            faults,
            crash_per_mille: if faults { rng.gen_range(0..=8) } else { 0 },
            fail_per_mille: if faults { rng.gen_range(0..=40) } else { 0 },
            stall_per_mille: if faults { rng.gen_range(0..=3) } else { 0 },
            jump_per_mille: if faults { rng.gen_range(0..=15) } else { 0 },
            fault_phase: Duration::from_secs(rng.gen_range(20..=90)),
        }
    }
}

/// Deliberately broken worlds, to prove the checker notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum World {
    /// A correct store.
    Correct,
    /// The store ignores create-if-absent (Garage, versioned OSS); workers run with
    /// `--single-worker` to get past the probe.
    IgnoresCreateIfAbsent,
    /// The store answers writes under `failed/` with success but keeps nothing.
    LosesFailedWrites,
}

// ---------------------------------------------------------------------------------------------
// The checker.

/// One handler run in progress.
#[derive(Debug, Clone)]
struct Exec {
    worker: String,
    token: String,
    valid_until: Instant,
}

#[derive(Debug, Default)]
struct CheckerState {
    active: BTreeMap<String, Vec<Exec>>,
    done: BTreeMap<String, u32>,
    violations: Vec<String>,
    /// Store-clock windows in which some request stalled or the clock jumped: no healthy
    /// worker guarantee holds there.
    disturbed_until: Option<SystemTime>,
}

/// Watches every worker through [`Observer`] and the handlers.
#[derive(Debug, Default)]
struct Checker {
    state: Mutex<CheckerState>,
}

impl Checker {
    fn with<T>(&self, f: impl FnOnce(&mut CheckerState) -> T) -> T {
        f(&mut self.state.lock().expect("checker"))
    }

    fn started(&self, worker: &str, id: &str, token: &str, valid_until: Instant) {
        let now = Instant::now();
        self.with(|s| {
            let active = s.active.entry(id.to_owned()).or_default();
            if valid_until > now {
                for other in active.iter().filter(|e| e.valid_until > now) {
                    s.violations.push(format!(
                        "task {id}: {worker} started a run while {} still held a valid lease \
                         ({:?} left)",
                        other.worker,
                        other.valid_until - now
                    ));
                }
            }
            active.push(Exec {
                worker: worker.to_owned(),
                token: token.to_owned(),
                valid_until,
            });
        });
    }

    fn confirmed(&self, worker: &str, id: &str, token: &str, valid_until: Instant) {
        let now = Instant::now();
        self.with(|s| {
            let Some(active) = s.active.get_mut(id) else {
                return;
            };
            let mut clash = Vec::new();
            for e in active.iter_mut() {
                if e.token == token {
                    e.valid_until = valid_until;
                } else if e.valid_until > now && valid_until > now {
                    clash.push(e.worker.clone());
                }
            }
            for other in clash {
                s.violations.push(format!(
                    "task {id}: {worker} renewed its lease while {other} ran it with a valid lease"
                ));
            }
        });
    }

    fn ended(&self, id: &str, token: &str) {
        self.with(|s| {
            if let Some(active) = s.active.get_mut(id) {
                active.retain(|e| e.token != token);
            }
        });
    }

    /// A crashed worker is not live: its runs stop counting.
    fn crashed(&self, worker: &str) {
        self.with(|s| {
            for active in s.active.values_mut() {
                active.retain(|e| e.worker != worker);
            }
        });
    }

    fn done(&self, id: &str) {
        self.with(|s| *s.done.entry(id.to_owned()).or_default() += 1);
    }

    fn disturbed(&self, until: SystemTime) {
        self.with(|s| {
            s.disturbed_until = Some(s.disturbed_until.map_or(until, |u| u.max(until)));
        });
    }

    fn violate(&self, what: String) {
        self.with(|s| s.violations.push(what));
    }
}

/// The checker as one worker's observer.
struct WorkerObserver {
    worker: String,
    checker: Arc<Checker>,
}

impl Observer for WorkerObserver {
    fn attempt_started(
        &self,
        _q: &str,
        id: &str,
        token: &str,
        _attempt: u32,
        valid_until: Instant,
    ) {
        self.checker.started(&self.worker, id, token, valid_until);
    }
    fn lease_confirmed(&self, _q: &str, id: &str, token: &str, valid_until: Instant) {
        self.checker.confirmed(&self.worker, id, token, valid_until);
    }
    fn attempt_ended(&self, _q: &str, id: &str, token: &str) {
        self.checker.ended(id, token);
    }
}

// ---------------------------------------------------------------------------------------------
// The handler.

/// Decides each run from (seed, task, attempt): mostly done after a while, sometimes a retry, a
/// permanent failure, a run past the timeout, or a panic; a few tasks are poison (always panic).
struct SimHandler {
    seed: u64,
    timeout: Duration,
    checker: Arc<Checker>,
}

/// A stable hash of a tuple of values (std's `DefaultHasher` with its fixed keys).
fn mix<T: Hash>(parts: T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

#[async_trait]
impl Handler for SimHandler {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        let mut rng = StdRng::seed_from_u64(mix((&self.seed, &task.id, &task.attempt)));
        let poison = mix((&self.seed, &task.id)) % 23 == 0;
        let roll = rng.gen_range(0..100);
        let took = if roll < 90 {
            self.timeout.mul_f64(rng.gen_range(0.0..0.8))
        } else {
            self.timeout.mul_f64(rng.gen_range(1.0..1.5))
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Outcome::retry("cancelled"),
            () = tokio::time::sleep(took) => {}
        }
        if poison || (80..83).contains(&roll) {
            panic!("simulated handler bug in task {}", task.id);
        }
        match roll {
            0..=69 => {
                self.checker.done(&task.id);
                Outcome::Done
            }
            70..=76 => Outcome::retry("simulated transient failure"),
            77..=79 => Outcome::fail("simulated permanent failure"),
            _ => {
                self.checker.done(&task.id);
                Outcome::Done
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct SimWorker {
    name: String,
    client: MemoryStore,
    shutdown: Shutdown,
    handle: JoinHandle<Result<(), WorkerError>>,
}

/// What one seed produced.
#[derive(Debug)]
struct Report {
    violations: Vec<String>,
    fingerprint: u64,
    requests: u64,
    tasks: usize,
}

fn worker_config(s: &Scenario) -> WorkerConfig {
    WorkerConfig {
        concurrency: s.concurrency,
        poll_interval: s.poll,
        max_poll_interval: s.max_poll,
        lease: s.lease,
        shutdown_grace: Duration::from_secs(2),
        ..WorkerConfig::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn start_worker(
    store: &MemoryStore,
    name: String,
    s: &Scenario,
    seed: u64,
    checker: &Arc<Checker>,
    world: World,
    faults: &Arc<AtomicBool>,
) -> SimWorker {
    let stats = Arc::new(RequestStats::default());
    let client = store.client(&name, Arc::clone(&stats), mix((&seed, &name)));
    install_faults(
        &client,
        s,
        mix((&seed, &name, &"faults")),
        checker,
        world,
        faults,
    );
    let mut registry = HandlerRegistry::new();
    registry.register(
        QUEUE,
        Arc::new(SimHandler {
            seed,
            timeout: s.timeout,
            checker: Arc::clone(checker),
        }),
    );
    let mut q = engine_support::queue(QUEUE);
    q.timeout = s.timeout;
    q.max_attempts = s.max_attempts;
    q.backoff = s.backoff;
    q.max_backoff = s.backoff * 8;
    let config = engine_support::config(worker_config(s), vec![q]);
    let shutdown = Shutdown::default();
    let ctx = WorkerContext {
        config: Arc::new(config),
        store: Arc::new(client.clone()),
        handlers: registry,
        metrics: Arc::new(Metrics::new(stats)),
        lifecycle: Arc::new(NoLifecycle),
        single_worker: world == World::IgnoresCreateIfAbsent,
    };
    let options = EngineOptions {
        seed: Some(mix((&seed, &name, &"engine"))),
        worker_id: Some(name.clone()),
        observer: Some(Arc::new(WorkerObserver {
            worker: name.clone(),
            checker: Arc::clone(checker),
        })),
        ..EngineOptions::default()
    };
    SimWorker {
        handle: tokio::spawn(worker::run_with(ctx, shutdown.clone(), options)),
        name,
        client,
        shutdown,
    }
}

/// Faults of one worker's requests, while `faults` is on.
fn install_faults(
    client: &MemoryStore,
    s: &Scenario,
    seed: u64,
    checker: &Arc<Checker>,
    world: World,
    faults: &Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = s.clone();
    let checker = Arc::clone(checker);
    let faults = Arc::clone(faults);
    let store = client.clone();
    client.set_fault_hook(Box::new(move |info| {
        if world == World::LosesFailedWrites
            && matches!(info.op, Op::Put | Op::Copy)
            && info.key.starts_with("failed/")
        {
            return Fault::Swallow;
        }
        if !faults.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let roll = rng.gen_range(0..1000);
        let crash = s.crash_per_mille;
        let fail = crash + s.fail_per_mille;
        let stall = fail + s.stall_per_mille;
        if roll < crash {
            if rng.gen_bool(0.5) {
                Fault::CrashBefore
            } else {
                Fault::CrashAfter
            }
        } else if roll < fail {
            match rng.gen_range(0..4) {
                0 | 1 => Fault::FailBefore,
                2 => Fault::FailAfter,
                _ => Fault::RetriedAfterLoss,
            }
        } else if roll < stall {
            let stall = s.lease.mul_f64(rng.gen_range(0.2..1.6));
            checker.disturbed(store.clock().now() + stall + s.lease);
            Fault::Delay(stall)
        } else {
            Fault::None
        }
    }));
}

fn enqueue(store: &MemoryStore, ids: &mut Vec<String>, n: usize) {
    for _ in 0..n {
        let id = format!("{:04}", ids.len());
        store.insert(
            &format!("{QUEUE}/{id}.task"),
            format!("{{\"task\":\"{id}\"}}"),
            Metadata::new(),
            None,
        );
        ids.push(id);
    }
}

/// Run one seed in `world`.
fn run_seed(seed: u64, world: World, trace: bool) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(simulate(seed, world, trace))
}

async fn simulate(seed: u64, world: World, trace: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Scenario::draw(&mut rng);
    let store = MemoryStore::builder()
        .atomic_copy(s.atomic)
        .latency(Duration::from_micros(200), s.latency_max)
        .honour_create_if_absent(world != World::IgnoresCreateIfAbsent)
        .seed(seed)
        .build();
    if trace {
        store.enable_trace();
    }
    let checker = Arc::new(Checker::default());
    let faults = Arc::new(AtomicBool::new(s.faults));
    let mut ids = Vec::new();
    enqueue(&store, &mut ids, s.tasks);

    let mut workers: Vec<SimWorker> = Vec::new();
    let mut started = 0usize;
    let mut next_name = || {
        started += 1;
        format!("w{started}")
    };
    for _ in 0..s.workers {
        workers.push(start_worker(
            &store,
            next_name(),
            &s,
            seed,
            &checker,
            world,
            &faults,
        ));
    }
    let tick = Duration::from_millis(100);
    let slack = s.max_poll.mul_f64(2.2) + Duration::from_secs(2);
    let mut replacements: Vec<Instant> = Vec::new();
    let mut no_worker_until = store.clock().now();
    let fault_end = Instant::now() + s.fault_phase;
    let late_at = Instant::now() + s.fault_phase.mul_f64(rng.gen_range(0.1..0.9));
    let mut late_done = false;
    let settle_limit = fault_end + s.lease * 8 + Duration::from_secs(600);

    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        if !late_done && now >= late_at {
            enqueue(&store, &mut ids, s.late_tasks);
            late_done = true;
        }
        // Crashed workers vanish; a replacement comes a little later.
        for w in workers.iter().filter(|w| w.client.crashed()) {
            w.handle.abort();
            checker.crashed(&w.name);
            replacements.push(now + Duration::from_millis(rng.gen_range(0..5_000)));
        }
        workers.retain(|w| !w.client.crashed());
        if workers.is_empty() {
            no_worker_until = store.clock().now();
        }
        let due: Vec<Instant> = replacements.iter().copied().filter(|t| *t <= now).collect();
        replacements.retain(|t| *t > now);
        for _ in due {
            workers.push(start_worker(
                &store,
                next_name(),
                &s,
                seed,
                &checker,
                world,
                &faults,
            ));
        }
        if workers.is_empty() && replacements.is_empty() {
            replacements.push(now);
        }
        // A jump of the shared clock: every lease runs out at once.
        if now < fault_end && rng.gen_range(0..1000) < s.jump_per_mille {
            let jump = s.lease.mul_f64(rng.gen_range(0.3..1.5));
            checker.disturbed(store.clock().now() + jump + s.lease);
            tokio::time::advance(jump).await;
        }
        if now >= fault_end {
            faults.store(false, Ordering::SeqCst);
        }
        check_lock_ages(&store, &s, &checker, slack, no_worker_until);
        let finished = late_done
            && store.keys(&format!("{QUEUE}/")).is_empty()
            && ids.iter().all(|id| settled(&store, &checker, id));
        if now >= fault_end && finished {
            break;
        }
        if now >= settle_limit {
            checker.violate(format!(
                "the queue did not settle: left {:?}",
                store.keys(&format!("{QUEUE}/"))
            ));
            break;
        }
    }

    // Drain every worker: each must return cleanly within its grace period.
    for w in &workers {
        w.shutdown.drain.cancel();
    }
    for w in workers {
        match tokio::time::timeout(Duration::from_secs(60), w.handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => checker.violate(format!("{} stopped with an error: {e}", w.name)),
            Ok(Err(e)) => checker.violate(format!("{} panicked: {e}", w.name)),
            Err(_) => checker.violate(format!("{} did not finish draining", w.name)),
        }
    }
    replacements.clear();
    final_checks(&store, &s, &checker, &ids, world);

    let trace_entries = store.trace();
    if trace {
        for t in &trace_entries {
            println!(
                "{:?} {} {} {} {}",
                t.at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
                t.client,
                t.op,
                t.key,
                t.result
            );
        }
        println!("scenario: {s:?}");
    }
    let state = checker.state.lock().expect("checker");
    Report {
        violations: state.violations.clone(),
        fingerprint: mix((
            &format!("{:?}", state.done),
            &format!("{:?}", store.keys("")),
        )),
        requests: trace_entries.len() as u64,
        tasks: ids.len(),
    }
}

fn settled(store: &MemoryStore, checker: &Checker, id: &str) -> bool {
    checker.with(|c| c.done.contains_key(id))
        || store.object(&format!("failed/{QUEUE}/{id}.task")).is_some()
}

/// No lock may be older than a lease plus a poll (and a little slack for the reap's own
/// requests) on the store's clock, unless the window saw a stall, a clock jump, or no worker.
fn check_lock_ages(
    store: &MemoryStore,
    s: &Scenario,
    checker: &Checker,
    slack: Duration,
    no_worker_until: SystemTime,
) {
    let now = store.clock().now();
    let disturbed = checker.with(|c| c.disturbed_until);
    for key in store.keys(&format!("{QUEUE}/")) {
        if !key.ends_with(".lock") {
            continue;
        }
        let Some(lock) = store.object(&key) else {
            continue;
        };
        let stale_since = lock.head.meta.last_modified + s.lease;
        let window_start = [Some(stale_since), Some(no_worker_until), disturbed]
            .into_iter()
            .flatten()
            .max()
            .expect("at least one");
        if now.duration_since(window_start).is_ok_and(|d| d > slack) {
            if checker.with(|c| {
                c.violations
                    .iter()
                    .any(|v| v.starts_with(&format!("lock {key} ")))
            }) {
                continue;
            }
            checker.violate(format!(
                "lock {key} outlived its lease by {:?} (allowed {slack:?})",
                now.duration_since(stale_since).unwrap_or_default()
            ));
        }
    }
}

fn final_checks(
    store: &MemoryStore,
    s: &Scenario,
    checker: &Checker,
    ids: &[String],
    world: World,
) {
    let left = store.keys(&format!("{QUEUE}/"));
    if !left.is_empty() {
        checker.violate(format!("keys left under the queue prefix: {left:?}"));
    }
    for id in ids {
        let done = checker.with(|c| c.done.get(id).copied().unwrap_or(0));
        let failed = store.object(&format!("failed/{QUEUE}/{id}.task"));
        match (&failed, done) {
            (None, 0) => {
                checker.violate(format!("task {id} was lost: never handled, not in failed/"))
            }
            (Some(f), _) => {
                if !f.head.user_meta.contains_key(meta::ERROR) {
                    checker.violate(format!("failed task {id} has no {} metadata", meta::ERROR));
                }
                if f.body.as_ref() != format!("{{\"task\":\"{id}\"}}").as_bytes() {
                    checker.violate(format!("failed task {id} lost its payload"));
                }
            }
            _ => {}
        }
        if !s.faults && world == World::Correct && done > 1 {
            checker.violate(format!(
                "task {id} was handled {done} times without any fault"
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

fn seed_count() -> u64 {
    std::env::var("BUCKETQ_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Run `seeds` in parallel threads; the reports in seed order.
fn run_many(seeds: std::ops::Range<u64>, world: World) -> Vec<(u64, Report)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = Arc::new(Mutex::new(seeds.clone()));
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let next = Arc::clone(&next);
            let results = Arc::clone(&results);
            scope.spawn(move || loop {
                let Some(seed) = next.lock().expect("seeds").next() else {
                    return;
                };
                let report = run_seed(seed, world, false);
                results.lock().expect("results").push((seed, report));
            });
        }
    });
    let mut results = std::mem::take(&mut *results.lock().expect("results"));
    results.sort_by_key(|(seed, _)| *seed);
    results
}

#[test]
fn every_seed_keeps_every_guarantee() {
    if let Ok(seed) = std::env::var("BUCKETQ_SIM_SEED") {
        let seed: u64 = seed.parse().expect("BUCKETQ_SIM_SEED is a number");
        let report = run_seed(seed, World::Correct, true);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}",
            report.violations
        );
        return;
    }
    let n = seed_count();
    let started = std::time::Instant::now();
    let results = run_many(0..n, World::Correct);
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, r)| !r.violations.is_empty())
        .map(|(seed, r)| format!("seed {seed}: {:?}", r.violations))
        .collect();
    let tasks: usize = results.iter().map(|(_, r)| r.tasks).sum();
    println!(
        "{n} seeds, {tasks} tasks, {} failing, in {:?}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} seeds broke a guarantee (rerun one with BUCKETQ_SIM_SEED=<seed>):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [3, 17] {
        let a = run_seed(seed, World::Correct, true);
        let b = run_seed(seed, World::Correct, true);
        assert_eq!(a.fingerprint, b.fingerprint, "seed {seed}");
        assert_eq!(a.requests, b.requests, "seed {seed}: same requests");
    }
}

#[test]
fn the_checker_catches_a_store_that_ignores_create_if_absent() {
    let results = run_many(0..40, World::IgnoresCreateIfAbsent);
    let caught = results
        .iter()
        .filter(|(_, r)| r.violations.iter().any(|v| v.contains("valid lease")))
        .count();
    assert!(
        caught >= 3,
        "only {caught} of 40 seeds noticed double runs: {:?}",
        results
            .iter()
            .map(|(s, r)| (s, &r.violations))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_checker_catches_lost_tasks() {
    let results = run_many(0..40, World::LosesFailedWrites);
    let caught = results
        .iter()
        .filter(|(_, r)| r.violations.iter().any(|v| v.contains("was lost")))
        .count();
    assert!(caught >= 10, "only {caught} of 40 seeds noticed lost tasks");
}

#[tokio::test(start_paused = true)]
async fn the_checker_flags_overlapping_valid_leases_only() {
    let c = Checker::default();
    let t0 = Instant::now();
    c.started("a", "1", "ta", t0 + Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.started("b", "1", "tb", Instant::now() + Duration::from_secs(10));
    assert_eq!(
        c.with(|s| s.violations.len()),
        1,
        "a's lease was still valid"
    );
    c.ended("1", "tb");
    // After a's lease ran out, another run is fine, and so is a's lost lease being confirmed
    // again while b's is not valid.
    tokio::time::sleep(Duration::from_secs(6)).await;
    c.started("b", "1", "tb2", Instant::now() + Duration::from_secs(10));
    assert_eq!(c.with(|s| s.violations.len()), 1);
    c.confirmed("a", "1", "ta", Instant::now() + Duration::from_secs(10));
    assert_eq!(
        c.with(|s| s.violations.len()),
        2,
        "a renewed while b held the task"
    );
    c.crashed("b");
    c.started("c", "1", "tc", Instant::now() + Duration::from_secs(10));
    assert_eq!(
        c.with(|s| s.violations.len()),
        3,
        "a is still live and valid"
    );
    c.crashed("a");
    c.started("d", "2", "td", Instant::now() + Duration::from_secs(10));
    assert_eq!(c.with(|s| s.violations.len()), 3);
}
