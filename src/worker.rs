//! The engine: poll loop, bounded concurrency, lease refresh, retries, shutdown drain.
//!
//! [`run`] serves every configured queue until [`Shutdown`] says stop. Per queue, one scanner
//! lists the prefix page by page and claims as many tasks as there are free handler slots
//! (a global limit and the queue's own); each claimed task runs in its own task that keeps the
//! lease, retries with backoff (without holding a slot), and settles the lock. The protocol
//! steps themselves live in [`crate::queue`].

mod engine;
mod id;
mod keeper;
mod observer;
mod poll;
mod refusals;
mod task;
mod tasks;
mod turns;
mod unresolved;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::handlers::HandlerRegistry;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use id::worker_id;
pub use observer::Observer;

/// The two shutdown signals: the first SIGTERM/SIGINT cancels `drain` (stop claiming, give
/// running handlers `shutdown_grace`, then release their locks), a second cancels `abort`
/// (exit now; locks expire by lease).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop claiming and drain.
    pub drain: CancellationToken,
    /// Stop at once.
    pub abort: CancellationToken,
}

/// Hooks the daemon uses for systemd notification; every method defaults to nothing.
pub trait Lifecycle: Send + Sync {
    /// The first listing succeeded (systemd READY=1).
    fn ready(&self) {}
    /// The poll loop is alive (systemd WATCHDOG=1).
    fn alive(&self) {}
    /// Draining has started (systemd STOPPING=1).
    fn stopping(&self) {}
}

/// A [`Lifecycle`] that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLifecycle;

impl Lifecycle for NoLifecycle {}

/// Everything the engine runs with.
pub struct WorkerContext {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The bucket.
    pub store: Arc<dyn Store>,
    /// Handlers (built-in and registered).
    pub handlers: HandlerRegistry,
    /// Where counters go.
    pub metrics: Arc<Metrics>,
    /// systemd hooks.
    pub lifecycle: Arc<dyn Lifecycle>,
    /// Skip the create-if-absent refusal (`--single-worker`).
    pub single_worker: bool,
}

/// Why the engine stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A queue's handler could not be made.
    #[error(transparent)]
    Handler(#[from] crate::handlers::registry::RegistryError),
    /// The store refused the credentials; the message says what to check.
    #[error("{err}; {hint}", err = .0, hint = .0.credential_hint().unwrap_or("check the store's credentials"))]
    Auth(#[source] StoreError),
    /// The store cannot make claims exclusive (probe failed, OSS versioning on).
    #[error("the store cannot make claims exclusive: {reason}")]
    NotExclusive {
        /// What the probe found and what to do.
        reason: String,
    },
    /// The store refuses every claim as bucketq sends it (a missing length, a malformed
    /// request, a feature it lacks), on several tasks in a row: waiting cannot fix it.
    #[error("queue {queue}: the store refuses the claims as bucketq sends them ({source}); stopping, since no retry can pass. Check store.kind, store.endpoint and store.addressing, or report it if the store is one bucketq supports")]
    ClaimsRefused {
        /// The queue whose claims were refused.
        queue: String,
        /// The last refusal.
        #[source]
        source: StoreError,
    },
    /// Any other store failure at startup.
    #[error("store failure at startup: {0}")]
    Store(#[source] StoreError),
    /// The configuration names no queue to serve.
    #[error("no queue is configured; add a [[queue]] section")]
    NoQueues,
}

/// Knobs for embedding and testing; [`run`] uses the defaults.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// Seed every random choice (tokens, jitter, walk offsets) for a reproducible run.
    pub seed: Option<u64>,
    /// Use this worker id instead of host + pid + random.
    pub worker_id: Option<String>,
    /// Watch handler runs and lease confirmations.
    pub observer: Option<Arc<dyn Observer>>,
    /// How long a settled lock is kept before it is deleted. Default: one second on stores
    /// claimed by PUT-from-GET (S3), where it is what makes a claim that read the task
    /// quickly safe without re-reading it; nothing on atomic-copy stores.
    pub settle_hold: Option<Duration>,
    /// How long a due lock delete waits for other deletes to share a batch with. Default:
    /// twice `poll_interval`.
    pub delete_linger: Option<Duration>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("seed", &self.seed)
            .field("worker_id", &self.worker_id)
            .field("observer", &self.observer.as_ref().map(|_| "<observer>"))
            .field("settle_hold", &self.settle_hold)
            .field("delete_linger", &self.delete_linger)
            .finish()
    }
}

/// Run the engine until `shutdown` says stop.
pub async fn run(ctx: WorkerContext, shutdown: Shutdown) -> Result<(), WorkerError> {
    run_with(ctx, shutdown, EngineOptions::default()).await
}

/// [`run`] with explicit [`EngineOptions`].
pub async fn run_with(
    ctx: WorkerContext,
    shutdown: Shutdown,
    options: EngineOptions,
) -> Result<(), WorkerError> {
    let abort = shutdown.abort.clone();
    tokio::select! {
        biased;
        _ = abort.cancelled() => {
            tracing::warn!("second signal: exiting now; locks still held expire after the lease");
            Ok(())
        }
        result = engine::serve(ctx, shutdown, options) => result,
    }
}
