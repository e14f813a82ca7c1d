//! Helpers shared by the `e2e_*` tests: the real `bucketq` binary run as separate processes
//! against LocalStack (the only server here whose conditional writes are atomic under load),
//! a bucket per test filled in parallel through the crate's own S3 store, an `exec` handler
//! that records every run, and a TCP proxy that makes the store fail on demand.

#![allow(dead_code)] // each test file uses a different subset

#[path = "../cli_support/mod.rs"]
pub mod cli_support;

pub mod bucket;
pub mod proxy;
pub mod record;
pub mod worker;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// LocalStack's endpoint from the environment `./scripts/test` sets; panics when unset.
pub fn localstack_endpoint() -> String {
    std::env::var("BUCKETQ_TEST_LOCALSTACK_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "BUCKETQ_TEST_LOCALSTACK_ENDPOINT is not set: run ./scripts/test, which starts the \
             test servers (or `source scripts/test-servers.sh`, which starts them in this shell)"
        )
    })
}

/// The runtime the tests' own async work (bucket setup, the fault proxy) runs on. The tests
/// themselves are plain threads that wait on processes.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// One end-to-end test at a time: they share one LocalStack and two cores, and their timing
/// assertions and request counts mean something only without a neighbour's load.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Poll `check` every 100 ms until it returns `Some`; panic with `what` and `context()` after
/// `timeout`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until `recorder` has seen every key of `keys` handled; on timeout the message counts
/// them and shows the workers' output.
pub fn wait_all_handled(
    what: &str,
    timeout: Duration,
    recorder: &record::Recorder,
    keys: &std::collections::BTreeSet<String>,
    workers: &[worker::Worker],
) {
    wait_until(
        what,
        timeout,
        || (recorder.finished() == *keys).then_some(()),
        || {
            format!(
                "{} of {} handled\n{}",
                recorder.finished().len(),
                keys.len(),
                worker::outputs(workers)
            )
        },
    );
}

/// Wait until nothing is left in `bucket`; on timeout the message lists what is.
pub fn wait_bucket_empty(
    what: &str,
    timeout: Duration,
    bucket: &bucket::TestBucket,
    workers: &[worker::Worker],
) {
    wait_until(
        what,
        timeout,
        || bucket.keys().is_empty().then_some(()),
        || format!("left: {:?}\n{}", bucket.keys(), worker::outputs(workers)),
    );
}
