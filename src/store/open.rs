//! Opening the store a config names.

use std::sync::Arc;

use super::local::LocalStore;
use super::{RequestStats, Store, StoreError};
use crate::config::{StoreBackend, StoreConfig};

/// Open the configured store; every request it makes is counted in `stats`.
///
/// Each backend helper wires its own arm here (`LocalStore::open`, `S3Store::from_config`,
/// `OssStore::from_config`).
pub fn open(cfg: &StoreConfig, stats: Arc<RequestStats>) -> Result<Arc<dyn Store>, StoreError> {
    let _ = stats;
    match cfg.kind {
        StoreBackend::Local => Ok(Arc::new(LocalStore::open(&cfg.path, stats)?)),
        StoreBackend::S3 => Err(StoreError::Unsupported {
            what: "the s3 store (being built)".into(),
        }),
        StoreBackend::Oss => Err(StoreError::Unsupported {
            what: "the oss store (being built)".into(),
        }),
    }
}
