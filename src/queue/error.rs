//! Errors of the queue protocol.

use crate::store::StoreError;

/// A protocol step failed because the store did; what was left behind is always safe (the
/// steps are ordered so no key is deleted before its successor exists), and the step can be
/// tried again later.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// One store request of a protocol step failed.
    #[error("{step} ({key}): {source}")]
    Store {
        /// What the protocol was doing, e.g. "create lock".
        step: &'static str,
        /// The key concerned.
        key: String,
        /// The store's answer.
        #[source]
        source: StoreError,
    },
}

impl QueueError {
    /// Wrap a store error with the step and key it happened in.
    pub fn store(step: &'static str, key: &str, source: StoreError) -> Self {
        QueueError::Store {
            step,
            key: key.to_owned(),
            source,
        }
    }

    /// The store error underneath.
    pub fn store_error(&self) -> &StoreError {
        match self {
            QueueError::Store { source, .. } => source,
        }
    }
}
