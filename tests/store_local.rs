//! The local store: the conformance suite on a temporary directory, a create-if-absent race
//! between OS processes, and the local store's own rules (keys that would escape the directory,
//! the on-disk layout, request counting).

#[path = "conformance/mod.rs"]
mod conformance;

use std::sync::Arc;

use bucketq::store::local::LocalStore;
use bucketq::store::{RequestStats, Store};
use tempfile::TempDir;

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn fresh_store() -> (TempDir, Arc<dyn Store>) {
    let (dir, store, _) = fresh_store_with_stats();
    (dir, store)
}

fn fresh_store_with_stats() -> (TempDir, Arc<dyn Store>, Arc<RequestStats>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stats = Arc::new(RequestStats::default());
    let store = LocalStore::open(&dir.path().join("bucket"), Arc::clone(&stats))
        .expect("open the local store");
    (dir, Arc::new(store), stats)
}

// ---------------------------------------------------------------------------------------------
// The conformance suite.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_get_head_round_trip() {
    let (_dir, store) = fresh_store();
    conformance::put_get_head_round_trip(store, &conformance::unique_prefix("rt")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_if_absent_twice_is_already_exists() {
    let (_dir, store) = fresh_store();
    conformance::create_if_absent_twice_is_already_exists(store, "cia/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_key_is_not_found() {
    let (_dir, store) = fresh_store();
    conformance::missing_key_is_not_found(store, "missing/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_replaces_metadata() {
    let (_dir, store) = fresh_store();
    conformance::copy_replaces_metadata(store, "copy/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_onto_itself_moves_last_modified() {
    let (_dir, store) = fresh_store();
    conformance::copy_onto_itself_moves_last_modified(store, "self/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_copy_is_honoured() {
    let (_dir, store) = fresh_store();
    assert!(store.atomic_conditional_copy());
    conformance::conditional_copy_is_honoured_or_unsupported(store, "cond/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_across_2500_keys() {
    let (_dir, store) = fresh_store();
    conformance::list_pages_across_2500_keys(store, "paging/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_with_start_after_and_partial_prefix() {
    let (_dir, store) = fresh_store();
    conformance::list_with_start_after_and_partial_prefix(store, "after/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_is_idempotent() {
    let (_dir, store) = fresh_store();
    conformance::delete_is_idempotent(store, "del/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_many_removes_1500_keys() {
    let (_dir, store) = fresh_store();
    conformance::delete_many_removes_1500_keys(store, "many/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_keys_round_trip() {
    let (_dir, store) = fresh_store();
    conformance::odd_keys_round_trip(store, "odd/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_if_absent_race_has_one_winner() {
    let (_dir, store) = fresh_store();
    conformance::create_if_absent_race_has_one_winner(store, "race/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_reports_exclusive() {
    let (_dir, store) = fresh_store();
    conformance::probe_reports_exclusive(store, "probe/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_suite_runs_on_one_store_at_the_root_prefix() {
    // Every check at once on one directory, the race included: checks must not disturb each
    // other, and an empty prefix (the bucket root) must work.
    let (_dir, store) = fresh_store();
    conformance::run_all(Arc::clone(&store), "").await;
    conformance::assert_prefix_empty(&store, "").await;
}
