//! Handlers: what runs for a claimed task.
//!
//! The engine hands a handler a [`Task`] (queue, key, payload bytes, attempt, a cancellation
//! signal) and gets back an [`Outcome`]. Handlers never see the store: they cannot delete,
//! move or re-list anything, so their bugs cannot lose tasks.

pub mod exec;
pub mod log;
pub mod mail;
pub mod registry;
pub mod webhook;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use registry::HandlerRegistry;

/// One claimed task as a handler sees it.
#[derive(Debug, Clone)]
pub struct Task {
    /// Name of the queue (`[[queue]] name`).
    pub queue: String,
    /// Task id: the key between the queue prefix and suffix (`mail/42.task` → `42`).
    pub id: String,
    /// The pending key as the producer wrote it (`mail/42.task`), for logs and the FC event.
    pub key: String,
    /// Bucket (or local directory) name, for the FC event.
    pub bucket: String,
    /// The payload exactly as the producer wrote it.
    pub payload: Bytes,
    /// ETag of the task object as the producer wrote it (unquoted).
    pub etag: String,
    /// When the producer wrote the task (store clock).
    pub created_at: SystemTime,
    /// 1-based number of this attempt.
    pub attempt: u32,
    /// Attempts allowed before the task goes to `failed/`.
    pub max_attempts: u32,
    /// Time the handler may take before it is cancelled.
    pub timeout: Duration,
    /// The worker running this attempt (`host-pid-random`, the `bq-owner` of the lock), so a
    /// handler's own logs can say which process ran it, and a rerun after a crash can be
    /// traced to the worker that died.
    pub worker: String,
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: delete the task.
    Done,
    /// Failed in a way that may pass later (SMTP 4xx, HTTP 503, exit 75). Retried while
    /// attempts are left; `after` overrides the queue's backoff (e.g. `Retry-After`).
    Retry {
        /// Delay the handler asks for, if any.
        after: Option<Duration>,
        /// Why, for the log and the failed object's `bq-error`.
        reason: String,
    },
    /// Failed for good (bad payload, SMTP 5xx, HTTP 400): straight to `failed/`.
    Fail {
        /// Why, for the log and the failed object's `bq-error`.
        reason: String,
    },
}

impl Outcome {
    /// A retry with the queue's own backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    /// A permanent failure.
    pub fn fail(reason: impl Into<String>) -> Self {
        Outcome::Fail {
            reason: reason.into(),
        }
    }
}

/// Something that handles tasks. Implement it to embed bucketq with your own Rust handler and
/// register it in a [`HandlerRegistry`] by name before `run`.
///
/// `cancel` fires when the task's timeout passes, its lease is lost, or the daemon shuts down
/// past its grace period; a handler should stop promptly when it does (the engine stops waiting
/// for it either way).
#[async_trait]
pub trait Handler: Send + Sync {
    /// Handle one task.
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome;

    /// Check that what the handler talks to is reachable (`bucketq doctor`): the SMTP server
    /// accepts a connection and the login, the webhook's host accepts a connection. The
    /// default has nothing to check.
    async fn probe(&self) -> Result<(), ProbeError> {
        Ok(())
    }
}

/// Why a handler's target is unusable, as one line for `bucketq doctor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);
