//! Startup, the per-queue scanners, and the drain.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::refusals::ClaimRefusals;
use super::tasks::{AbortOnDrop, TaskSet};
use super::unresolved::Unresolved;
use super::{poll, EngineOptions, Lifecycle, Observer, Shutdown, WorkerContext, WorkerError};
use crate::config::{QueueConfig, WorkerConfig};
use crate::handlers::Handler;
use crate::metrics::Metrics;
use crate::queue::clock::StoreClock;
use crate::queue::deleter::Deleter;
use crate::queue::health::StoreHealth;
use crate::queue::observed::ObservedStore;
use crate::queue::startup::{check_exclusive, Exclusivity};
use crate::queue::{Layout, Limits, QueueCtx, Recipe};
use crate::store::Store;

/// Settled locks are kept this long on S3-like stores (see [`EngineOptions::settle_hold`]).
const PUT_FROM_GET_SETTLE_HOLD: Duration = Duration::from_secs(1);

/// How many times the create-if-absent probe must fail before the store is refused.
const PROBE_ATTEMPTS: u32 = 3;

/// How long a batch with a pending-key delete waits for claims under way to join it.
const DELETE_GATHER: Duration = Duration::from_millis(50);

/// What every task of one worker shares.
pub(crate) struct Env {
    pub shutdown: Shutdown,
    /// Fires `shutdown_grace` after the drain started: cancel what still runs.
    pub grace: CancellationToken,
    pub lifecycle: Arc<dyn Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub observer: Option<Arc<dyn Observer>>,
    pub tasks: Arc<TaskSet>,
    pub global: Arc<Semaphore>,
    pub worker: WorkerConfig,
    ready: AtomicBool,
    /// Why the worker stops, when it must stop with an error ([`Env::stop_with`]).
    fatal: Mutex<Option<WorkerError>>,
}

impl Env {
    /// True once the drain started.
    pub fn draining(&self) -> bool {
        self.shutdown.drain.is_cancelled()
    }

    /// Stop the worker with `error`: drain as on SIGTERM, then return it. The first error
    /// wins.
    pub fn stop_with(&self, error: WorkerError) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if fatal.is_none() {
            *fatal = Some(error);
        }
        drop(fatal);
        self.shutdown.drain.cancel();
    }

    /// A listing succeeded: tell systemd once, and `/readyz` every time.
    pub fn listed_ok(&self) {
        self.metrics.mark_list_ok();
        self.lifecycle.alive();
        if !self.ready.swap(true, Ordering::SeqCst) {
            self.lifecycle.ready();
        }
    }
}

/// One queue: its protocol context, handler, slots, and what its scanner is doing.
pub(crate) struct QueueRunner {
    pub ctx: QueueCtx,
    pub config: QueueConfig,
    pub handler: Arc<dyn Handler>,
    pub slots: Arc<Semaphore>,
    /// Set by a claim that lost a race: the scanner's page is out of date.
    pub conflicted: AtomicBool,
    /// Ids whose claim is in flight, so a fresh listing does not offer them again.
    pub claiming: Mutex<BTreeSet<String>>,
    /// Ids this worker holds the lock of, from a won claim until it is settled (or left): their
    /// locks are this worker's own trail, not another worker's lane.
    pub held: Mutex<BTreeSet<String>>,
    /// Lock keys being reaped by this worker.
    pub reaping: Mutex<BTreeSet<String>>,
    /// Claims a store failure left open, settled once the store answers again.
    pub unresolved: Unresolved,
    /// Claims the store refused, which pause this queue's claims (see [`ClaimRefusals`]).
    pub refusals: ClaimRefusals,
}

/// Start, serve until drained, drain.
pub(crate) async fn serve(
    ctx: WorkerContext,
    shutdown: Shutdown,
    options: EngineOptions,
) -> Result<(), WorkerError> {
    let WorkerContext {
        config,
        store,
        handlers,
        metrics,
        lifecycle,
        single_worker,
    } = ctx;
    if config.queues.is_empty() {
        return Err(WorkerError::NoQueues);
    }
    let mut seed_rng = match options.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let owner = options
        .worker_id
        .clone()
        .unwrap_or_else(|| super::worker_id(&mut seed_rng));
    let queue_handlers = config
        .queues
        .iter()
        .map(|q| handlers.build(q))
        .collect::<Result<Vec<_>, _>>()?;

    // The probe key goes under the failed prefix: never a task of any queue, and writable by
    // any credentials that can move tasks there. A worker killed mid-probe leaves one stray
    // `bucketq-probe-*` object there, which no queue picks up.
    let probe_prefix = config.worker.failed_prefix.clone();
    // Said before the first request, which can take minutes while the store is down.
    tracing::info!(
        bucket = %store.bucket(),
        endpoint = config.store.endpoint.as_deref().unwrap_or("-"),
        "checking the store (create-if-absent probe); waiting for it if it does not answer"
    );
    if !startup_check(
        store.as_ref(),
        &probe_prefix,
        single_worker,
        &shutdown,
        lifecycle.as_ref(),
    )
    .await?
    {
        return Ok(());
    }

    let worker = config.worker.clone();
    let budget = request_budget(&config.store);
    if budget > worker.lease / 2 {
        tracing::warn!(
            lease = ?worker.lease,
            request_budget = ?budget,
            "the lease is short next to the store's request timeout times its tries; leases are trusted for only half their length, so raise `lease` or lower `request_timeout`/`max_retries`"
        );
    }
    // One gate for every queue: they share the store, so they share its outages.
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(rand::Rng::gen(
        &mut seed_rng,
    ))));
    let health = Arc::new(StoreHealth::new(
        worker.poll_interval,
        worker.max_poll_interval,
        Arc::clone(&rng),
    ));
    let store: Arc<dyn Store> = Arc::new(ObservedStore::new(store, Arc::clone(&health)));
    let recipe = Recipe::for_store(store.as_ref());
    let settle_hold = options.settle_hold.unwrap_or(match recipe {
        Recipe::AtomicCopy => Duration::ZERO,
        Recipe::PutFromGet => PUT_FROM_GET_SETTLE_HOLD,
    });
    // Two poll intervals: long enough for a settled lock to ride along with the next claim's
    // delete when tasks trickle in one per poll.
    let linger = options.delete_linger.unwrap_or(worker.poll_interval * 2);
    let (deleter, deleter_task) = Deleter::new(Arc::clone(&store), linger, DELETE_GATHER);
    let deleter_task = deleter_task.gated_by(Arc::clone(&health));
    let clock = Arc::new(StoreClock::new());
    let tasks = TaskSet::new();
    let _abort_on_drop = AbortOnDrop(Arc::clone(&tasks));
    let env = Arc::new(Env {
        shutdown: shutdown.clone(),
        grace: CancellationToken::new(),
        lifecycle,
        metrics: Arc::clone(&metrics),
        observer: options.observer.clone(),
        tasks: Arc::clone(&tasks),
        global: Arc::new(Semaphore::new(worker.concurrency.max(1))),
        worker: worker.clone(),
        ready: AtomicBool::new(false),
        fatal: Mutex::new(None),
    });
    let runners: Vec<Arc<QueueRunner>> = config
        .queues
        .iter()
        .zip(queue_handlers)
        .map(|(q, handler)| {
            Arc::new(QueueRunner {
                ctx: QueueCtx {
                    name: q.name.clone(),
                    layout: Layout {
                        prefix: q.prefix.clone(),
                        suffix: q.suffix.clone(),
                        failed_prefix: worker.failed_prefix.clone(),
                        done_prefix: worker.done_prefix.clone(),
                    },
                    store: Arc::clone(&store),
                    recipe,
                    owner: owner.clone(),
                    limits: Limits::new(&worker, q, budget),
                    metrics: Arc::clone(&metrics),
                    deleter: deleter.clone(),
                    health: Arc::clone(&health),
                    clock: Arc::clone(&clock),
                    settle_hold,
                    rng: Arc::clone(&rng),
                },
                config: q.clone(),
                handler,
                slots: Arc::new(Semaphore::new(
                    q.concurrency.unwrap_or(worker.concurrency).max(1),
                )),
                conflicted: AtomicBool::new(false),
                claiming: Mutex::new(BTreeSet::new()),
                held: Mutex::new(BTreeSet::new()),
                reaping: Mutex::new(BTreeSet::new()),
                unresolved: Unresolved::default(),
                refusals: ClaimRefusals::new(worker.poll_interval, worker.max_poll_interval),
            })
        })
        .collect();
    tracing::info!(
        worker = %owner,
        queues = runners.len(),
        recipe = ?recipe,
        concurrency = worker.concurrency,
        "engine started"
    );

    let main = async {
        for runner in &runners {
            tasks.spawn(poll::serve_queue(Arc::clone(runner), Arc::clone(&env)));
        }
        shutdown.drain.cancelled().await;
        tracing::info!(grace = ?worker.shutdown_grace, "draining: no new claims; running handlers get the grace period");
        env.lifecycle.stopping();
        // The grace timer cancels what still runs; the tasks then release their locks and end.
        let grace_timer = async {
            tokio::time::sleep(worker.shutdown_grace).await;
            env.grace.cancel();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            biased;
            () = tasks.wait_idle() => {}
            () = grace_timer => {}
        }
        deleter.flush().await;
        drop(runners);
        tracing::info!("drained");
    };
    tokio::select! {
        biased;
        () = main => {}
        () = deleter_task.run() => {}
    }
    let fatal = env.fatal.lock().unwrap_or_else(|p| p.into_inner()).take();
    match fatal {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The longest one store call may take, the transport's retries included: a request sent
/// within the lease takes effect within this, or not at all.
fn request_budget(store: &crate::config::StoreConfig) -> Duration {
    let tries = store.max_retries.saturating_add(1);
    store.request_timeout * tries + RETRY_PAUSE_ALLOWANCE * store.max_retries
}

/// What the transport may wait between two tries of a request, at most (its backoff).
const RETRY_PAUSE_ALLOWANCE: Duration = Duration::from_secs(2);

/// The exclusivity checks, retried while the store is unreachable. `Ok(false)`: the drain
/// started before the store answered.
async fn startup_check(
    store: &dyn Store,
    prefix: &str,
    single_worker: bool,
    shutdown: &Shutdown,
    lifecycle: &dyn Lifecycle,
) -> Result<bool, WorkerError> {
    let mut wait = Duration::from_secs(1);
    let mut refusals = 0;
    loop {
        let checked = tokio::select! {
            biased;
            _ = shutdown.drain.cancelled() => return Ok(false),
            checked = check_exclusive(store, prefix) => checked,
        };
        match checked {
            Ok(Exclusivity::Exclusive) => return Ok(true),
            Ok(Exclusivity::NotExclusive(reason) | Exclusivity::Refused(reason))
                if single_worker =>
            {
                tracing::warn!(reason = %reason, "claims are not exclusive on this store; running anyway because this is the only worker (--single-worker)");
                return Ok(true);
            }
            Ok(Exclusivity::NotExclusive(reason)) if refusals < PROBE_ATTEMPTS => {
                // A lost answer can make a sound store look broken once (a retried first
                // write reads as "already exists"); a broken store fails every time.
                refusals += 1;
                tracing::warn!(reason = %reason, "create-if-absent probe failed; probing again");
            }
            Ok(Exclusivity::NotExclusive(reason) | Exclusivity::Refused(reason)) => {
                return Err(WorkerError::NotExclusive {
                    reason: format!(
                    "{reason}. Refusing to start; if this is the only worker, pass --single-worker"
                ),
                })
            }
            Err(e) if e.is_auth() => return Err(WorkerError::Auth(e)),
            Err(e) if e.is_transient() => {
                // Still alive, just waiting for the store: keep a watchdog satisfied.
                lifecycle.alive();
                tracing::warn!(error = %e, retry_in = ?wait, "store unreachable at startup; retrying");
                tokio::select! {
                    biased;
                    _ = shutdown.drain.cancelled() => return Ok(false),
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(WorkerError::Store(e)),
        }
    }
}
