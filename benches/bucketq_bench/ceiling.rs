//! The server's own ceiling: how fast a minimal client (the crate's store, nothing else)
//! completes bare PUT-if-absent, GET and DELETE requests at a given concurrency. bucketq's
//! throughput is read against it: on a slow server, the server is the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use bucketq::store::{PutOptions, RequestStats, Store, WriteMode};

use crate::load::payload;
use crate::requests::Requests;
use crate::target::Bucket;

/// One ceiling measurement.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// Completed requests per second.
    pub requests_per_s: f64,
    /// Completed PUT-if-absent + GET + DELETE cycles per second (the naive claim, minus LIST).
    pub cycles_per_s: f64,
}

/// Run `concurrency` loops of PUT-if-absent, GET, DELETE on their own keys for `duration`.
pub async fn measure(bucket: &Bucket, concurrency: usize, duration: Duration) -> Result<Ceiling> {
    let stats = Arc::new(RequestStats::default());
    let store = bucket.client(Arc::clone(&stats))?;
    let cycles = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + duration;
    let loops: Vec<_> = (0..concurrency)
        .map(|l| {
            let store = Arc::clone(&store);
            let cycles = Arc::clone(&cycles);
            tokio::spawn(async move { cycle_until(&*store, l, stop, &cycles).await })
        })
        .collect();
    for l in loops {
        l.await.context("a ceiling loop panicked")??;
    }
    let took = started.elapsed().as_secs_f64();
    let requests = Requests::of(&stats);
    let done = cycles.load(Ordering::SeqCst) as f64;
    Ok(Ceiling {
        requests_per_s: requests.total() as f64 / took,
        cycles_per_s: done / took,
    })
}

async fn cycle_until(store: &dyn Store, l: usize, stop: Instant, cycles: &AtomicU64) -> Result<()> {
    let create = PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    };
    let mut i = 0usize;
    while Instant::now() < stop {
        // One prefix for every loop, as a queue has: on the local store that is one directory,
        // whose lock every create and delete takes.
        let key = format!("ceiling/{l:04}-{i:08}.obj");
        store
            .put(&key, payload(i), &create)
            .await
            .with_context(|| format!("ceiling PUT {key}"))?;
        store
            .get(&key)
            .await
            .with_context(|| format!("ceiling GET {key}"))?;
        store
            .delete(&key)
            .await
            .with_context(|| format!("ceiling DELETE {key}"))?;
        cycles.fetch_add(1, Ordering::SeqCst);
        i += 1;
    }
    Ok(())
}
