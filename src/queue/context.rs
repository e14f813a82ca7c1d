//! Everything the protocol steps of one queue need: the store, the key layout, the limits, and
//! this worker's identity, clock, randomness and delete batcher.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use super::clock::StoreClock;
use super::deleter::Deleter;
use super::health::StoreHealth;
use super::layout::Layout;
use crate::config::{OnSuccess, QueueConfig, WorkerConfig};
use crate::metrics::Metrics;
use crate::store::Store;

/// How a claim creates the lock on this store (design §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// One CopyObject pending → lock with create-if-absent and source-if-match, atomic on the
    /// store (OSS, local, memory).
    AtomicCopy,
    /// PUT the lock with the body read by GET, create-if-absent, then DELETE the pending key
    /// (S3, where a conditional copy is not available).
    PutFromGet,
}

impl Recipe {
    /// The recipe a store allows.
    pub fn for_store(store: &dyn Store) -> Recipe {
        if store.atomic_conditional_copy() {
            Recipe::AtomicCopy
        } else {
            Recipe::PutFromGet
        }
    }
}

/// The limits of one queue, from its config and the worker config.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A lock older than this on the store's clock belongs to a dead worker.
    pub lease: Duration,
    /// Attempts before a task goes to `failed/`.
    pub max_attempts: u32,
    /// Tasks older than this fail instead of running.
    pub max_age: Option<Duration>,
    /// Larger payloads fail without running.
    pub max_payload_bytes: u64,
    /// Delete or move succeeded tasks.
    pub on_success: OnSuccess,
    /// How much of the lease a worker does not count on ([`super::held::lease_margin`]).
    pub margin: Duration,
}

impl Limits {
    /// Limits from the configs; `request_budget` is the longest a store request may take,
    /// retries included.
    pub fn new(worker: &WorkerConfig, queue: &QueueConfig, request_budget: Duration) -> Self {
        Limits {
            margin: super::held::lease_margin(worker.lease, request_budget),
            lease: worker.lease,
            max_attempts: queue.max_attempts.max(1),
            max_age: queue.max_age,
            max_payload_bytes: worker.max_payload_bytes,
            on_success: worker.on_success,
        }
    }
}

/// One queue as the protocol sees it. Shared by the scanner and every task of the queue.
pub struct QueueCtx {
    /// Queue name, for logs and metrics.
    pub name: String,
    /// Key layout.
    pub layout: Layout,
    /// The bucket.
    pub store: Arc<dyn Store>,
    /// How claims are made on this store.
    pub recipe: Recipe,
    /// This worker's id (`bq-owner`).
    pub owner: String,
    /// Limits.
    pub limits: Limits,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Batched deletes.
    pub deleter: Deleter,
    /// Whether the store is failing, and the turns repeatable steps wait for while it is
    /// (shared by every queue of the worker).
    pub health: Arc<StoreHealth>,
    /// The store's clock as last seen.
    pub clock: Arc<StoreClock>,
    /// How long a settled lock is kept before it is deleted. On S3 this is what proves a claim
    /// whose GET was answered quickly cannot be a second run (see [`super::claim`]).
    pub settle_hold: Duration,
    /// Randomness (tokens, walk offsets), seeded in tests and simulations.
    pub rng: Arc<Mutex<StdRng>>,
}

impl std::fmt::Debug for QueueCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCtx")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .field("recipe", &self.recipe)
            .field("owner", &self.owner)
            .finish()
    }
}

impl QueueCtx {
    /// A fresh random token (128 bits, hex).
    pub fn new_token(&self) -> String {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        format!("{:016x}{:016x}", rng.gen::<u64>(), rng.gen::<u64>())
    }

    /// Run `f` with this queue's random source.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
