//! Sections 2 (trickling) and 3 (busy): one in-process worker with the default intervals while
//! a producer writes tasks at a steady rate; requests per task by operation, and the time from
//! each task's PUT to its handler's start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::args::{Plan, TargetName};
use crate::engines::{Fleet, Spec};
use crate::load::stream_tasks;
use crate::recorder::Recorder;
use crate::report::{num, percentile, secs, Report, Table};
use crate::requests::Requests;
use crate::scenario::throughput::non_ok_note;
use crate::target::Target;

/// Figures of one steady stream.
#[derive(Debug, Clone)]
pub struct StreamResult {
    /// Store.
    pub target: TargetName,
    /// `trickle` or `busy`.
    pub load: &'static str,
    /// Tasks per second written.
    pub rate: f64,
    /// Tasks written.
    pub tasks: usize,
    /// Requests from the first PUT to the end of the tail, all operations.
    pub requests: Requests,
    /// PUT → handler start, seconds, one per task.
    pub latencies: Vec<f64>,
}

/// The trickle (one task per second) and the busy stream on one target.
pub async fn run(plan: &Plan, target: &Target, report: &mut Report) -> Result<Vec<StreamResult>> {
    let mut out = Vec::new();
    for (load, rate, duration) in [
        ("trickle", 1.0, plan.trickle),
        ("busy", plan.busy_rate, plan.busy),
    ] {
        let r = stream(target, load, rate, duration, plan.stream_tail)
            .await
            .with_context(|| format!("{} {load}", target.name.label()))?;
        record(&r, report);
        out.push(r);
    }
    Ok(out)
}

async fn stream(
    target: &Target,
    load: &'static str,
    rate: f64,
    duration: Duration,
    tail: Duration,
) -> Result<StreamResult> {
    let bucket = target.fresh_bucket("tr").await?;
    let recorder = Recorder::new();
    let spec = Spec::with_queues(&["tr".to_owned()]);
    let fleet = Fleet::start(&bucket, 1, &spec, &recorder)?;
    fleet.ready(Duration::from_secs(60)).await?;
    let before = fleet.requests();
    let tasks = stream_tasks(
        bucket.uncounted()?,
        Arc::clone(&recorder),
        "tr/",
        rate,
        duration,
    )
    .await?;
    let waited = recorder.wait_handled(tasks, Duration::from_secs(60)).await;
    if waited.is_ok() {
        tokio::time::sleep(tail).await;
    }
    let totals = fleet.stop(Duration::from_secs(60)).await?;
    waited?;
    Ok(StreamResult {
        target: target.name,
        load,
        rate,
        tasks,
        requests: totals.requests.since(&before),
        latencies: recorder.pickup_latencies(),
    })
}

fn record(r: &StreamResult, report: &mut Report) {
    report.record(
        "stream",
        &format!("{}/{}", r.target.label(), r.load),
        json!({
            "rate_per_s": r.rate,
            "tasks": r.tasks,
            "requests": r.requests.to_json(),
            "requests_per_task": r.requests.total() as f64 / r.tasks as f64,
            "pickup_p50_s": percentile(&r.latencies, 50.0),
            "pickup_p99_s": percentile(&r.latencies, 99.0),
            "pickup_max_s": percentile(&r.latencies, 100.0),
        }),
    );
}

/// Print the streams of every target.
pub fn print(rows: &[StreamResult], report: &Report) {
    let mut t = Table::new(&[
        "store",
        "load",
        "tasks",
        "req/task",
        "pickup p50",
        "pickup p99",
        "max",
    ]);
    for r in rows {
        t.row(vec![
            r.target.label().into(),
            format!("{} ({}/s)", r.load, r.rate),
            r.tasks.to_string(),
            num(r.requests.total() as f64 / r.tasks as f64, 3),
            secs(percentile(&r.latencies, 50.0)),
            secs(percentile(&r.latencies, 99.0)),
            secs(percentile(&r.latencies, 100.0)),
        ]);
    }
    report.table(&t);
    for r in rows {
        report.note(&format!(
            "  requests/task {} · {}: {}{}",
            r.target.label(),
            r.load,
            r.requests.per_task_breakdown(r.tasks as f64),
            non_ok_note(&r.requests, r.tasks)
        ));
    }
}
