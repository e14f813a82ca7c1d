//! The engine on the local store (the embedded default), in real time on a multi-threaded
//! runtime: several workers share one directory, every task is handled exactly once, and
//! nothing is left behind.

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use bucketq::handlers::Handler;
use bucketq::store::local::LocalStore;
use bucketq::store::{PutOptions, RequestStats, Store};
use bucketq::worker::EngineOptions;
use bytes::Bytes;
use engine_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_on_one_directory_handle_every_task_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bucket");
    let seed_store = LocalStore::open(&path, Arc::new(RequestStats::default())).expect("open");
    let n = 300;
    for i in 0..n {
        seed_store
            .put(
                &format!("mail/{i:04}.task"),
                Bytes::from(format!("{{\"n\":{i}}}")),
                &PutOptions::default(),
            )
            .await
            .expect("enqueue");
    }
    let rec = Recorder::ok();
    let mut wc = worker_config();
    wc.poll_interval = Duration::from_millis(50);
    wc.max_poll_interval = Duration::from_millis(200);
    let workers: Vec<Running> = (0..3)
        .map(|i| {
            let stats = Arc::new(RequestStats::default());
            let store = LocalStore::open(&path, Arc::clone(&stats)).expect("open");
            start_on(
                Arc::new(store),
                stats,
                config(wc.clone(), vec![queue("mail")]),
                &[("mail", rec.clone() as Arc<dyn Handler>)],
                EngineOptions {
                    seed: Some(i),
                    ..EngineOptions::default()
                },
            )
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rec.runs().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} handled",
            rec.runs().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in workers {
        w.drain().await.expect("clean drain");
    }
    let counts = rec.counts();
    assert_eq!(counts.len(), n);
    assert!(counts.values().all(|&c| c == 1), "exactly once: {counts:?}");
    let left = seed_store
        .list(&bucketq::store::ListRequest {
            prefix: "mail/".into(),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(left.objects.is_empty(), "left: {:?}", left.objects);
}
