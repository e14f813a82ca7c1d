//! The store conformance suite run against the memory store, in both of its modes: atomic
//! conditional copy (the OSS and local recipe) and S3-style (create-if-absent copy refused).
//! The engine's tests and the simulation stand on this model, so it must behave like the real
//! stores the suite also runs against.

#[path = "conformance/mod.rs"]
mod conformance;

use std::sync::Arc;

use bucketq::store::memory::MemoryStore;
use bucketq::store::Store;

fn atomic() -> Arc<dyn Store> {
    Arc::new(MemoryStore::builder().atomic_copy(true).build())
}

fn s3_like() -> Arc<dyn Store> {
    Arc::new(MemoryStore::builder().atomic_copy(false).build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_suite_passes_with_atomic_copy() {
    conformance::run_all(atomic(), &conformance::unique_prefix("mem-atomic")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_suite_passes_in_s3_mode() {
    conformance::run_all(s3_like(), &conformance::unique_prefix("mem-s3")).await;
}
