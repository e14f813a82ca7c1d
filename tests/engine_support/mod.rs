//! Shared pieces of the engine tests: configs, recording handlers, and starting workers on a
//! memory store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bucketq::config::{Config, HandlerConfig, QueueConfig, WorkerConfig};
use bucketq::handlers::{Handler, HandlerRegistry, Outcome, Task};
use bucketq::metrics::Metrics;
use bucketq::store::memory::MemoryStore;
use bucketq::store::{Metadata, RequestStats, Store};
use bucketq::worker::{self, EngineOptions, NoLifecycle, Shutdown, WorkerContext, WorkerError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A boxed handler body.
pub type Behaviour = Arc<
    dyn Fn(Task, CancellationToken) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync,
>;

/// One handler run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    pub attempt: u32,
    pub payload: Vec<u8>,
}

/// A handler that records every run and then behaves as told.
pub struct Recorder {
    pub runs: Mutex<Vec<Run>>,
    behaviour: Behaviour,
}

impl Recorder {
    pub fn new(behaviour: Behaviour) -> Arc<Recorder> {
        Arc::new(Recorder {
            runs: Mutex::new(Vec::new()),
            behaviour,
        })
    }

    /// Succeeds at once.
    pub fn ok() -> Arc<Recorder> {
        Self::new(Arc::new(|_, _| Box::pin(async { Outcome::Done })))
    }

    pub fn runs(&self) -> Vec<Run> {
        self.runs.lock().expect("runs").clone()
    }

    /// Runs per task id.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for run in self.runs() {
            *counts.entry(run.id).or_default() += 1;
        }
        counts
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        self.runs.lock().expect("runs").push(Run {
            id: task.id.clone(),
            attempt: task.attempt,
            payload: task.payload.to_vec(),
        });
        (self.behaviour)(task.clone(), cancel).await
    }
}

/// A queue `name` under `name/` served by the registered handler `name`.
pub fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.into(),
        prefix: format!("{name}/"),
        suffix: ".task".into(),
        concurrency: None,
        timeout: Duration::from_secs(10),
        max_attempts: 3,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        max_age: None,
        handler: HandlerConfig::Custom { name: name.into() },
    }
}

/// Worker settings for tests: quick polls, a one-minute lease.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        poll_interval: Duration::from_millis(100),
        max_poll_interval: Duration::from_secs(1),
        lease: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

/// A config with `worker` and `queues`; the store is said to time requests out after 2 s with
/// one retry, so the lease margin the engine keeps for slow requests is small next to the
/// test leases.
pub fn config(worker: WorkerConfig, queues: Vec<QueueConfig>) -> Config {
    Config {
        store: bucketq::config::StoreConfig {
            request_timeout: Duration::from_secs(2),
            max_retries: 1,
            ..Default::default()
        },
        worker,
        http: Default::default(),
        queues,
    }
}

/// A running worker.
pub struct Running {
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<RequestStats>,
    pub handle: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    /// First signal, then wait for the engine to return.
    pub async fn drain(self) -> Result<(), WorkerError> {
        self.shutdown.drain.cancel();
        self.handle.await.expect("the engine does not panic")
    }
}

/// Start a worker on its own client of `store`, with `handlers` registered by name.
pub fn start(
    store: &MemoryStore,
    name: &str,
    config: Config,
    handlers: &[(&str, Arc<dyn Handler>)],
    options: EngineOptions,
) -> Running {
    let stats = Arc::new(RequestStats::default());
    let client = store.client(name, Arc::clone(&stats), options.seed.unwrap_or(0));
    start_on(Arc::new(client), stats, config, handlers, options)
}

pub fn start_on(
    store: Arc<dyn Store>,
    stats: Arc<RequestStats>,
    config: Config,
    handlers: &[(&str, Arc<dyn Handler>)],
    options: EngineOptions,
) -> Running {
    let mut registry = HandlerRegistry::new();
    for (name, h) in handlers {
        registry.register(*name, Arc::clone(h));
    }
    let metrics = Arc::new(Metrics::new(Arc::clone(&stats)));
    let shutdown = Shutdown::default();
    let ctx = WorkerContext {
        config: Arc::new(config),
        store,
        handlers: registry,
        metrics: Arc::clone(&metrics),
        lifecycle: Arc::new(NoLifecycle),
        single_worker: false,
    };
    let handle = tokio::spawn(worker::run_with(ctx, shutdown.clone(), options));
    Running {
        shutdown,
        metrics,
        stats,
        handle,
    }
}

/// Write `n` tasks `<queue>/NNNNN.task` directly into the store.
pub fn enqueue(store: &MemoryStore, queue: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("{i:05}");
            store.insert(
                &format!("{queue}/{id}.task"),
                format!("{{\"n\":{i}}}"),
                Metadata::new(),
                None,
            );
            id
        })
        .collect()
}

/// Wait (in paused time) until `cond` holds, checking every 10 ms, at most `limit`.
pub async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Make every request of `client` fail before reaching the store while the returned switch is
/// on (it starts off): an outage that a test turns on and off.
pub fn outage_switch(client: &MemoryStore) -> Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let down = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&down);
    client.set_fault_hook(Box::new(move |_| {
        if d.load(Ordering::SeqCst) {
            bucketq::store::memory::Fault::FailBefore
        } else {
            bucketq::store::memory::Fault::None
        }
    }));
    down
}
