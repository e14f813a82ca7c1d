//! The no-op handler, which records when each handler starts, and the producer side's PUT
//! times, so throughput and pickup latency come from the same clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Result};
use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use bucketq::handlers::{Handler, Outcome, Task};

/// Name the recording handler is registered under.
pub const HANDLER_NAME: &str = "bench";

/// Lock a std mutex, ignoring poisoning (every critical section is one insert).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handler starts and producer PUTs of one measurement.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Task id → when the producer sent its PUT.
    put_at: Mutex<HashMap<String, Instant>>,
    /// Every handler start: task id and time.
    starts: Mutex<Vec<(String, Instant)>>,
    handled: AtomicUsize,
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// The producer is about to PUT task `id`.
    pub fn putting(&self, id: &str) {
        locked(&self.put_at).insert(id.to_owned(), Instant::now());
    }

    /// Handler runs so far (a task run twice counts twice).
    pub fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    /// Wait until `n` handler runs have started, at most `limit`.
    pub async fn wait_handled(&self, n: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self.handled() < n {
            if Instant::now() >= deadline {
                bail!(
                    "only {} of {n} tasks were handled within {limit:?}",
                    self.handled()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Start time of the first and the last handler run.
    pub fn first_and_last(&self) -> Option<(Instant, Instant)> {
        let starts = locked(&self.starts);
        let first = starts.iter().map(|(_, t)| *t).min()?;
        let last = starts.iter().map(|(_, t)| *t).max()?;
        Some((first, last))
    }

    /// Tasks whose handler ran more than once.
    pub fn duplicates(&self) -> usize {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let starts = locked(&self.starts);
        for (id, _) in starts.iter() {
            *seen.entry(id.as_str()).or_default() += 1;
        }
        seen.values().filter(|&&n| n > 1).count()
    }

    /// PUT → handler start of every task the producer recorded, first run only, seconds.
    pub fn pickup_latencies(&self) -> Vec<f64> {
        let put_at = locked(&self.put_at);
        let starts = locked(&self.starts);
        let mut first: HashMap<&str, Instant> = HashMap::new();
        for (id, t) in starts.iter() {
            first
                .entry(id.as_str())
                .and_modify(|f| *f = (*f).min(*t))
                .or_insert(*t);
        }
        first
            .iter()
            .filter_map(|(id, started)| {
                let put = put_at.get(*id)?;
                Some(started.saturating_duration_since(*put).as_secs_f64())
            })
            .collect()
    }
}

/// The no-op handler: records the start and reports the task done.
#[derive(Debug, Clone)]
pub struct RecordingHandler(pub Arc<Recorder>);

#[async_trait]
impl Handler for RecordingHandler {
    async fn handle(&self, task: &Task, _cancel: CancellationToken) -> Outcome {
        let now = Instant::now();
        locked(&self.0.starts).push((task.id.clone(), now));
        self.0.handled.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}
