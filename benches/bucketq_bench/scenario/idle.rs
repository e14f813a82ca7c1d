//! Sections 3 (idle) and 4: how long a task written to an idle queue waits for its handler,
//! and what an idle `bucketq run` process costs (RSS, CPU, requests).
//!
//! Idle pickup: one in-process worker serves several queues, each with its own poll loop; after
//! `idle_settle` without work (long enough for the interval to back off to
//! `max_poll_interval`), one task is written to each queue at a random moment, and the wait
//! until its handler starts is recorded. Several queues give several independent samples per
//! round.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;
use serde_json::json;

use bucketq::config::WorkerConfig;
use bucketq::store::Op;

use crate::args::{Plan, TargetName};
use crate::daemon::{Daemon, DaemonSpec};
use crate::engines::{Fleet, Spec};
use crate::load::put_task;
use crate::procstat::ProcSample;
use crate::recorder::Recorder;
use crate::report::{num, percentile, secs, Report, Table};
use crate::requests::Requests;
use crate::scenario::throughput::verdict;
use crate::target::Target;

/// Targets of section 4.
pub const RSS_TARGET_KIB: u64 = 8 * 1024;
/// CPU share of one core an idle worker may use, percent.
pub const CPU_TARGET_PERCENT: f64 = 0.05;

/// Pickup latencies of tasks written to idle queues, seconds.
pub async fn idle_latency(plan: &Plan, target: &Target) -> Result<Vec<f64>> {
    let bucket = target.fresh_bucket("il").await?;
    let names: Vec<String> = (0..plan.idle_queues).map(|k| format!("idle{k}")).collect();
    let spec = Spec::with_queues(&names);
    let max_poll = spec.worker.max_poll_interval;
    // Tasks arrive at a uniformly random moment of one full idle interval (in the smoke run,
    // of the shorter settle time, to stay quick).
    let spread = max_poll.min(plan.idle_settle.max(Duration::from_secs(1)));
    let recorder = Recorder::new();
    let fleet = Fleet::start(&bucket, 1, &spec, &recorder)?;
    fleet.ready(Duration::from_secs(60)).await?;
    let producer = bucket.uncounted()?;
    let mut result = Ok(());
    for round in 0..plan.idle_rounds {
        tokio::time::sleep(plan.idle_settle).await;
        let puts: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let offset = spread.mul_f64(rand::thread_rng().gen::<f64>());
                let producer = Arc::clone(&producer);
                let recorder = Arc::clone(&recorder);
                let prefix = format!("{name}/");
                let n = round * names.len() + k;
                tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    put_task(&*producer, &recorder, &prefix, n).await
                })
            })
            .collect();
        for p in puts {
            p.await.context("a producer panicked")??;
        }
        let want = (round + 1) * names.len();
        result = recorder
            .wait_handled(want, max_poll * 3 + Duration::from_secs(30))
            .await;
        if result.is_err() {
            break;
        }
    }
    fleet.stop(Duration::from_secs(60)).await?;
    result?;
    Ok(recorder.pickup_latencies())
}

/// What an idle daemon cost over the window.
#[derive(Debug, Clone)]
pub struct IdleCost {
    /// Store.
    pub target: TargetName,
    /// Queues served.
    pub queues: usize,
    /// Window length.
    pub window: Duration,
    /// CPU and memory at the end of the window.
    pub end: ProcSample,
    /// CPU used in the window (nanosecond counters of the live threads).
    pub cpu: Duration,
    /// CPU used in the window by `/proc/<pid>/stat` (10 ms ticks; includes exited threads).
    pub cpu_ticks: Duration,
    /// Requests in the window.
    pub requests: Requests,
    /// `max_poll_interval`.
    pub max_poll: Duration,
}

impl IdleCost {
    /// CPU used as a share of one core, percent.
    pub fn cpu_percent(&self) -> f64 {
        self.cpu.as_secs_f64() / self.window.as_secs_f64() * 100.0
    }

    /// LIST requests per queue per `max_poll_interval`.
    pub fn lists_per_queue_per_max_poll(&self) -> f64 {
        let intervals = self.window.as_secs_f64() / self.max_poll.as_secs_f64();
        self.requests.op(Op::List) as f64 / self.queues as f64 / intervals
    }
}

/// Run an idle `bucketq run` (two queues, nothing to do) and measure it over the window.
pub async fn idle_cost(plan: &Plan, target: &Target) -> Result<IdleCost> {
    let bucket = target.fresh_bucket("ic").await?;
    let spec = DaemonSpec {
        queues: vec!["mail".into(), "webhook".into()],
        slots: plan.slots,
        env: plan.daemon_env.clone(),
    };
    let mut daemon = Daemon::spawn(&plan.bucketq, &bucket, &spec)?;
    let queues = spec.queues.len() as u64;
    daemon
        .wait_for(Duration::from_secs(30), Duration::from_millis(100), |m| {
            m.requests().op(Op::List) >= queues
        })
        .await?;
    tokio::time::sleep(plan.idle_warmup).await;
    let (s0, m0) = (daemon.sample()?, daemon.metrics().await?);
    tokio::time::sleep(plan.idle_window).await;
    let (s1, m1) = (daemon.sample()?, daemon.metrics().await?);
    daemon.stop(Duration::from_secs(30)).await?;
    Ok(IdleCost {
        target: target.name,
        queues: spec.queues.len(),
        window: plan.idle_window,
        end: s1,
        cpu: s1.cpu_live.saturating_sub(s0.cpu_live),
        cpu_ticks: s1.cpu.saturating_sub(s0.cpu),
        requests: m1.requests().since(&m0.requests()),
        max_poll: WorkerConfig::default().max_poll_interval,
    })
}

/// Print and record idle pickup latencies.
pub fn print_latency(rows: &[(TargetName, Vec<f64>)], report: &mut Report) {
    let mut t = Table::new(&["store", "samples", "pickup p50", "pickup p99", "max"]);
    for (target, lat) in rows {
        t.row(vec![
            target.label().into(),
            lat.len().to_string(),
            secs(percentile(lat, 50.0)),
            secs(percentile(lat, 99.0)),
            secs(percentile(lat, 100.0)),
        ]);
        report.record(
            "idle_pickup",
            target.label(),
            json!({
                "samples": lat.len(),
                "p50_s": percentile(lat, 50.0),
                "p99_s": percentile(lat, 99.0),
                "max_s": percentile(lat, 100.0),
            }),
        );
    }
    report.table(&t);
}

/// Print and record idle costs.
pub fn print_cost(rows: &[IdleCost], report: &mut Report) {
    let mut t = Table::new(&[
        "store",
        "window",
        "RSS",
        "peak RSS",
        "≤8 MiB",
        "CPU ms",
        "(ticks)",
        "CPU %",
        "≤0.05 %",
        "requests",
        "LIST/queue/max_poll",
        "≤1",
    ]);
    for c in rows {
        let lists = c.lists_per_queue_per_max_poll();
        t.row(vec![
            c.target.label().into(),
            format!("{:.0} s", c.window.as_secs_f64()),
            format!("{:.1} MiB", c.end.rss_kib as f64 / 1024.0),
            format!("{:.1} MiB", c.end.hwm_kib as f64 / 1024.0),
            verdict(c.end.rss_kib <= RSS_TARGET_KIB),
            num(c.cpu.as_secs_f64() * 1000.0, 1),
            num(c.cpu_ticks.as_secs_f64() * 1000.0, 0),
            num(c.cpu_percent(), 4),
            verdict(c.cpu_percent() <= CPU_TARGET_PERCENT),
            c.requests.counts(),
            num(lists, 2),
            // Jitter makes some intervals shorter than the maximum; allow a tenth.
            verdict(lists <= 1.1),
        ]);
        report.record(
            "idle_cost",
            c.target.label(),
            json!({
                "queues": c.queues,
                "window_s": c.window.as_secs_f64(),
                "rss_kib": c.end.rss_kib,
                "peak_rss_kib": c.end.hwm_kib,
                "cpu_s": c.cpu.as_secs_f64(),
                "cpu_s_ticks": c.cpu_ticks.as_secs_f64(),
                "cpu_percent": c.cpu_percent(),
                "requests": c.requests.to_json(),
                "lists_per_queue_per_max_poll": lists,
            }),
        );
    }
    report.table(&t);
}
