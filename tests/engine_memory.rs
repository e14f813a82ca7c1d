//! The engine end to end on the memory store: claims, settles, retries, failed metadata,
//! max_age, poison payloads, lease loss, reaping and the shutdown drain.

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use bucketq::handlers::{Handler, Outcome};
use bucketq::store::memory::MemoryStore;
use bucketq::store::Op;
use bucketq::worker::EngineOptions;
use engine_support::*;

fn opts(seed: u64) -> EngineOptions {
    EngineOptions {
        seed: Some(seed),
        ..EngineOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn every_task_is_handled_once_and_nothing_is_left() {
    for atomic in [true, false] {
        let store = MemoryStore::builder()
            .atomic_copy(atomic)
            .latency(Duration::from_millis(1), Duration::from_millis(5))
            .build();
        let ids = enqueue(&store, "mail", 200);
        let rec = Recorder::ok();
        let handler: Arc<dyn Handler> = rec.clone();
        let w = start(
            &store,
            "w1",
            config(worker_config(), vec![queue("mail")]),
            &[("mail", handler)],
            opts(1),
        );
        until(Duration::from_secs(60), "all handled", || rec.runs().len() >= 200).await;
        let metrics = Arc::clone(&w.metrics);
        w.drain().await.expect("clean drain");
        let counts = rec.counts();
        assert_eq!(counts.len(), 200, "atomic={atomic}");
        assert!(counts.values().all(|&n| n == 1), "each once: {counts:?}");
        assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), ids);
        assert!(store.keys("mail/").is_empty(), "left: {:?}", store.keys(""));
        assert!(store.keys("failed/").is_empty());
        let m = metrics.queue("mail");
        assert_eq!((m.claimed, m.succeeded, m.failed), (200, 200, 0));
    }
}
