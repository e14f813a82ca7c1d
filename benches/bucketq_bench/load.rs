//! Producers: pre-loading a backlog in parallel, and writing tasks at a steady rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::time::Instant;

use bucketq::store::{PutOptions, Store};

use crate::recorder::Recorder;

/// The payload of every task: a small JSON object, like a typical mail or webhook task.
pub fn payload(n: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"nickname":"bench","to_email":"user{n}@example.com","subject":"task {n}","content":"<p>hello</p>"}}"#
    ))
}

/// Task id of the `n`th task (zero-padded so key order is numeric order).
pub fn task_id(n: usize) -> String {
    format!("{n:08}")
}

/// How a pre-load went.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    /// Tasks written.
    pub tasks: usize,
    /// Wall time.
    pub took: Duration,
}

impl Preloaded {
    /// Tasks written per second.
    pub fn rate(&self) -> f64 {
        self.tasks as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// Write tasks `0..count` under `prefix` with `parallel` PUTs in flight.
pub async fn preload(
    store: Arc<dyn Store>,
    prefix: &str,
    count: usize,
    parallel: usize,
) -> Result<Preloaded> {
    let started = Instant::now();
    stream::iter(0..count)
        .map(|n| {
            let store = Arc::clone(&store);
            let key = format!("{prefix}{}.task", task_id(n));
            async move {
                store
                    .put(&key, payload(n), &PutOptions::default())
                    .await
                    .with_context(|| format!("pre-loading {key}"))
            }
        })
        .buffer_unordered(parallel)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(Preloaded {
        tasks: count,
        took: started.elapsed(),
    })
}

/// Write one task now, recording its PUT time.
pub async fn put_task(
    store: &dyn Store,
    recorder: &Recorder,
    prefix: &str,
    n: usize,
) -> Result<()> {
    let id = task_id(n);
    let key = format!("{prefix}{id}.task");
    recorder.putting(&id);
    store
        .put(&key, payload(n), &PutOptions::default())
        .await
        .with_context(|| format!("writing {key}"))?;
    Ok(())
}

/// Write `rate` tasks per second under `prefix` for `duration`, numbering from `first`;
/// returns how many were written. Each PUT starts on schedule, even if earlier ones are slow.
pub async fn stream_tasks(
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    prefix: &str,
    rate: f64,
    duration: Duration,
) -> Result<usize> {
    let count = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut puts = Vec::with_capacity(count);
    for n in 0..count {
        tokio::time::sleep_until(start + period * n as u32).await;
        let store = Arc::clone(&store);
        let recorder = Arc::clone(&recorder);
        let prefix = prefix.to_owned();
        puts.push(tokio::spawn(async move {
            put_task(&*store, &recorder, &prefix, n).await
        }));
    }
    for put in puts {
        put.await.context("a producer task panicked")??;
    }
    Ok(count)
}
