//! Opening the store a config names.

use std::sync::Arc;

use super::local::LocalStore;
use super::oss::OssStore;
use super::s3::S3Store;
use super::{RequestStats, Store, StoreError};
use crate::config::{StoreBackend, StoreConfig};

/// Open the configured store; every request it makes is counted in `stats`.
///
/// Each backend helper wires its own arm here (`LocalStore::open`, `S3Store::from_config`,
/// `OssStore::from_config`).
pub fn open(cfg: &StoreConfig, stats: Arc<RequestStats>) -> Result<Arc<dyn Store>, StoreError> {
    match cfg.kind {
        StoreBackend::Local => Ok(Arc::new(LocalStore::open(&cfg.path, stats)?)),
        StoreBackend::S3 => Ok(Arc::new(S3Store::from_config(cfg, stats)?)),
        StoreBackend::Oss => Ok(Arc::new(OssStore::from_config(cfg, stats)?)),
    }
}
