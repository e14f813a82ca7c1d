//! Counters and gauges the engine updates and `/metrics` renders (Prometheus text format).
//!
//! Hand-written rather than a metrics crate: a dozen series, no labels beyond queue, operation
//! and result, and rendering is thirty lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::RequestStats;

/// Upper bounds (seconds) of the handler duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// A per-queue series: name, help text and how to read it.
type Series = (&'static str, &'static str, fn(&QueueMetrics) -> f64);

/// Per-queue series.
#[derive(Debug, Default, Clone)]
pub struct QueueMetrics {
    /// Tasks this worker claimed.
    pub claimed: u64,
    /// Tasks whose handler succeeded.
    pub succeeded: u64,
    /// Attempts that ended in a retry.
    pub retried: u64,
    /// Tasks moved to `failed/`.
    pub failed: u64,
    /// Claims lost to another worker.
    pub claim_conflicts: u64,
    /// Stale locks reaped.
    pub reaped: u64,
    /// Handlers running now.
    pub in_flight: i64,
    /// Pending tasks seen by the last full listing.
    pub pending: u64,
    /// Age of the oldest pending task at the last listing (store clock), seconds.
    pub oldest_pending_age: f64,
    /// Handler duration histogram: counts per bucket of [`DURATION_BUCKETS`] (not cumulative).
    pub duration_buckets: [u64; DURATION_BUCKETS.len()],
    /// Observations above the last bucket.
    pub duration_overflow: u64,
    /// Sum of observed durations, seconds.
    pub duration_sum: f64,
}

/// All metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    queues: Mutex<BTreeMap<String, QueueMetrics>>,
    last_list_ok: Mutex<Option<Instant>>,
    /// Store requests by operation and result, shared with the store backends.
    pub requests: Arc<RequestStats>,
}

impl Metrics {
    /// Empty metrics sharing `requests` with the store.
    pub fn new(requests: Arc<RequestStats>) -> Self {
        Metrics {
            queues: Mutex::new(BTreeMap::new()),
            last_list_ok: Mutex::new(None),
            requests,
        }
    }

    /// Update one queue's series.
    pub fn update(&self, queue: &str, f: impl FnOnce(&mut QueueMetrics)) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        f(queues.entry(queue.to_owned()).or_default());
    }

    /// Record one handler run.
    pub fn observe_duration(&self, queue: &str, took: Duration) {
        let secs = took.as_secs_f64();
        self.update(queue, |q| {
            q.duration_sum += secs;
            match DURATION_BUCKETS.iter().position(|&b| secs <= b) {
                Some(i) => q.duration_buckets[i] += 1,
                None => q.duration_overflow += 1,
            }
        });
    }

    /// A listing succeeded now (for `/readyz`).
    pub fn mark_list_ok(&self) {
        *self.last_list_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Time since the last successful listing, if there was one.
    pub fn since_last_list_ok(&self) -> Option<Duration> {
        self.last_list_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    /// A copy of one queue's series.
    pub fn queue(&self, queue: &str) -> QueueMetrics {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(queue)
            .cloned()
            .unwrap_or_default()
    }

    /// Everything in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::new();
        let counters: [Series; 6] = [
            (
                "bucketq_tasks_claimed_total",
                "Tasks claimed by this worker.",
                |q| q.claimed as f64,
            ),
            (
                "bucketq_tasks_succeeded_total",
                "Tasks whose handler succeeded.",
                |q| q.succeeded as f64,
            ),
            (
                "bucketq_tasks_retried_total",
                "Attempts that ended in a retry.",
                |q| q.retried as f64,
            ),
            (
                "bucketq_tasks_failed_total",
                "Tasks moved to the failed prefix.",
                |q| q.failed as f64,
            ),
            (
                "bucketq_claim_conflicts_total",
                "Claims lost to another worker.",
                |q| q.claim_conflicts as f64,
            ),
            ("bucketq_locks_reaped_total", "Stale locks reaped.", |q| {
                q.reaped as f64
            }),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (queue, q) in &queues {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(queue), get(q));
            }
        }
        let gauges: [Series; 3] = [
            ("bucketq_in_flight", "Handlers running now.", |q| {
                q.in_flight as f64
            }),
            (
                "bucketq_queue_pending",
                "Pending tasks at the last listing.",
                |q| q.pending as f64,
            ),
            (
                "bucketq_queue_oldest_pending_age_seconds",
                "Age of the oldest pending task (store clock).",
                |q| q.oldest_pending_age,
            ),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (queue, q) in &queues {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(queue), get(q));
            }
        }
        let name = "bucketq_handler_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Handler run time.\n# TYPE {name} histogram"
        );
        for (queue, q) in &queues {
            let queue = escape(queue);
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(q.duration_buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{queue=\"{queue}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let total = cumulative + q.duration_overflow;
            let _ = writeln!(
                out,
                "{name}_bucket{{queue=\"{queue}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(out, "{name}_sum{{queue=\"{queue}\"}} {}", q.duration_sum);
            let _ = writeln!(out, "{name}_count{{queue=\"{queue}\"}} {total}");
        }
        let name = "bucketq_store_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Store requests by operation and result.\n# TYPE {name} counter"
        );
        for ((op, result), n) in self.requests.snapshot() {
            let _ = writeln!(
                out,
                "{name}{{op=\"{op}\",result=\"{}\"}} {n}",
                escape(&result)
            );
        }
        out
    }
}

/// Escape a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;

    #[test]
    fn renders_counters_histogram_and_requests() {
        let m = Metrics::new(Arc::new(RequestStats::default()));
        m.update("mail", |q| q.claimed += 2);
        m.observe_duration("mail", Duration::from_millis(30));
        m.requests.record(Op::List, "ok");
        let text = m.render();
        assert!(text.contains("bucketq_tasks_claimed_total{queue=\"mail\"} 2"));
        assert!(
            text.contains("bucketq_handler_duration_seconds_bucket{queue=\"mail\",le=\"0.025\"} 0")
        );
        assert!(
            text.contains("bucketq_handler_duration_seconds_bucket{queue=\"mail\",le=\"0.05\"} 1")
        );
        assert!(text.contains("bucketq_store_requests_total{op=\"list\",result=\"ok\"} 1"));
    }
}
