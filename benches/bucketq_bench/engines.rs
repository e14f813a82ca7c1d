//! In-process workers: `bucketq::worker::run` engines, each with its own store client (own
//! connections and request counters), the way separate `bucketq run` processes would be.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use bucketq::config::{Config, HandlerConfig, HttpConfig, QueueConfig, WorkerConfig};
use bucketq::handlers::HandlerRegistry;
use bucketq::metrics::Metrics;
use bucketq::store::RequestStats;
use bucketq::worker::{self, NoLifecycle, Shutdown, WorkerContext, WorkerError};

use crate::recorder::{Recorder, RecordingHandler, HANDLER_NAME};
use crate::requests::Requests;
use crate::target::Bucket;

/// A queue named `name` on prefix `name/`, served by the recording no-op handler, with the
/// defaults a user gets.
pub fn bench_queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        prefix: format!("{name}/"),
        suffix: ".task".into(),
        concurrency: None,
        timeout: Duration::from_secs(60),
        max_attempts: 3,
        backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(600),
        max_age: None,
        handler: HandlerConfig::Custom {
            name: HANDLER_NAME.into(),
        },
    }
}

/// What every worker of a fleet runs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `[worker]` (intervals, slots).
    pub worker: WorkerConfig,
    /// The queues served.
    pub queues: Vec<QueueConfig>,
}

impl Spec {
    /// Default `[worker]` settings and one queue per name.
    pub fn with_queues(names: &[String]) -> Spec {
        Spec {
            worker: WorkerConfig::default(),
            queues: names.iter().map(|n| bench_queue(n)).collect(),
        }
    }
}

/// One running engine.
struct Member {
    stats: Arc<RequestStats>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    join: JoinHandle<Result<(), WorkerError>>,
}

/// Several engines serving the same bucket.
pub struct Fleet {
    members: Vec<Member>,
    queues: Vec<String>,
}

/// What a fleet did, summed over its workers.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Store requests.
    pub requests: Requests,
    /// Tasks claimed.
    pub claimed: u64,
    /// Claims lost to another worker.
    pub conflicts: u64,
}

impl Totals {
    /// Share of claim attempts lost to another worker.
    pub fn conflict_share(&self) -> f64 {
        let attempts = self.claimed + self.conflicts;
        if attempts == 0 {
            0.0
        } else {
            self.conflicts as f64 / attempts as f64
        }
    }
}

impl Fleet {
    /// Start `workers` engines on `bucket`, every handler recording into `recorder`.
    pub fn start(
        bucket: &Bucket,
        workers: usize,
        spec: &Spec,
        recorder: &Arc<Recorder>,
    ) -> Result<Fleet> {
        let config = Arc::new(Config {
            store: bucket.config.clone(),
            worker: spec.worker.clone(),
            http: HttpConfig::default(),
            queues: spec.queues.clone(),
        });
        let mut members = Vec::with_capacity(workers);
        for _ in 0..workers {
            let stats = Arc::new(RequestStats::default());
            let store = bucket.client(Arc::clone(&stats))?;
            let metrics = Arc::new(Metrics::new(Arc::clone(&stats)));
            let mut handlers = HandlerRegistry::new();
            handlers.register(
                HANDLER_NAME,
                Arc::new(RecordingHandler(Arc::clone(recorder))),
            );
            let ctx = WorkerContext {
                config: Arc::clone(&config),
                store,
                handlers,
                metrics: Arc::clone(&metrics),
                lifecycle: Arc::new(NoLifecycle),
                single_worker: false,
            };
            let shutdown = Shutdown::default();
            let join = tokio::spawn(worker::run(ctx, shutdown.clone()));
            members.push(Member {
                stats,
                metrics,
                shutdown,
                join,
            });
        }
        Ok(Fleet {
            members,
            queues: spec.queues.iter().map(|q| q.name.clone()).collect(),
        })
    }

    /// Wait until every worker has listed its queues once (startup checks done).
    pub async fn ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while self
            .members
            .iter()
            .any(|m| m.metrics.since_last_list_ok().is_none())
        {
            if self.members.iter().any(|m| m.join.is_finished()) {
                return Err(anyhow!("a worker stopped during startup"));
            }
            if Instant::now() >= deadline {
                return Err(anyhow!("the workers did not list within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Requests made so far, all workers together.
    pub fn requests(&self) -> Requests {
        let mut sum = Requests::default();
        for m in &self.members {
            sum.add(&Requests::of(&m.stats));
        }
        sum
    }

    /// Drain every worker (stop claiming, finish, flush deletes) and sum what they did.
    pub async fn stop(self, limit: Duration) -> Result<Totals> {
        for m in &self.members {
            m.shutdown.drain.cancel();
        }
        let mut totals = Totals::default();
        for m in self.members {
            match tokio::time::timeout(limit, m.join).await {
                Ok(joined) => joined
                    .context("a worker panicked")?
                    .context("a worker failed")?,
                Err(_) => {
                    m.shutdown.abort.cancel();
                    return Err(anyhow!("a worker did not drain within {limit:?}"));
                }
            }
            totals.requests.add(&Requests::of(&m.stats));
            for q in &self.queues {
                let qm = m.metrics.queue(q);
                totals.claimed += qm.claimed;
                totals.conflicts += qm.claim_conflicts;
            }
        }
        Ok(totals)
    }
}
