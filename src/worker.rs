//! The engine: poll loop, bounded concurrency, lease refresh, retries, shutdown drain.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::handlers::HandlerRegistry;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

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
    /// The store refused the credentials.
    #[error("the store refused the credentials: {0}")]
    Auth(#[source] StoreError),
    /// The store cannot make claims exclusive (probe failed, OSS versioning on).
    #[error("the store cannot make claims exclusive: {reason}")]
    NotExclusive {
        /// What the probe found and what to do.
        reason: String,
    },
    /// Any other store failure at startup.
    #[error("store failure at startup: {0}")]
    Store(#[source] StoreError),
}

/// Run the engine until `shutdown` says stop.
pub async fn run(_ctx: WorkerContext, _shutdown: Shutdown) -> Result<(), WorkerError> {
    unimplemented!("the engine is being built")
}
