//! Section 5 (and 1, 6 for real processes): a large backlog drained by real `bucketq run`
//! processes with the `log` handler. One process first: time from spawn to its first claim,
//! peak RSS, rate and CPU per task. Then four processes on what is left: the share of claim
//! attempts lost to another worker, their rate, peak RSS and CPU per task.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::time::Instant;

use crate::args::{Plan, TargetName};
use crate::daemon::{Daemon, DaemonSpec};
use crate::load::preload;
use crate::report::{num, secs, Report, Table};
use crate::requests::Requests;
use crate::scenario::throughput::{non_ok_note, verdict};
use crate::target::Target;

/// Target of section 5: claim attempts lost to another worker.
pub const CONFLICT_TARGET: f64 = 0.05;

/// One phase: some processes draining for a while.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Processes.
    pub processes: usize,
    /// Tasks handled.
    pub succeeded: u64,
    /// Claims won.
    pub claimed: u64,
    /// Claims lost to another worker.
    pub conflicts: u64,
    /// Wall time of the phase.
    pub took: Duration,
    /// CPU of all processes.
    pub cpu: Duration,
    /// Largest peak RSS of any process, KiB.
    pub peak_rss_kib: u64,
    /// Store requests of all processes. Per task they are divided by the tasks *claimed*: a
    /// task counts as succeeded only once its lock is deleted, which on S3 is at least a second
    /// after its claim (the settle hold), so at a window's end some hundred tasks have had
    /// their requests made but are not counted as succeeded yet (dividing by those inflated
    /// S3 figures by 6 %). The lock deletes still queued at that moment are the small error
    /// the other way.
    pub requests: u64,
    /// The same, by operation and result.
    pub by_op: Requests,
}

impl Phase {
    /// Tasks per second.
    pub fn rate(&self) -> f64 {
        self.succeeded as f64 / self.took.as_secs_f64()
    }

    /// Share of claim attempts lost to another worker.
    pub fn conflict_share(&self) -> f64 {
        let attempts = self.claimed + self.conflicts;
        if attempts == 0 {
            f64::NAN
        } else {
            self.conflicts as f64 / attempts as f64
        }
    }

    /// CPU seconds per task.
    pub fn cpu_per_task(&self) -> f64 {
        self.cpu.as_secs_f64() / self.succeeded.max(1) as f64
    }
}

/// The scale test on one target.
#[derive(Debug, Clone)]
pub struct ScaleResult {
    /// Store.
    pub target: TargetName,
    /// Tasks pre-loaded.
    pub backlog: usize,
    /// Pre-load rate, tasks per second.
    pub preload_rate: f64,
    /// Spawn → first claim of the single process.
    pub first_claim: Duration,
    /// One process.
    pub single: Phase,
    /// Four processes.
    pub four: Phase,
}

/// Pre-load the backlog and run both phases.
pub async fn run(plan: &Plan, target: &Target) -> Result<ScaleResult> {
    let local = target.name == TargetName::Local;
    let backlog = if local {
        plan.backlog_local
    } else {
        plan.backlog_s3
    };
    let bucket = target.fresh_bucket("sc").await?;
    let loaded = preload(
        bucket.uncounted()?,
        "scale/",
        backlog,
        if local { 64 } else { 32 },
    )
    .await
    .context("pre-loading the backlog")?;
    let spec = DaemonSpec {
        queues: vec!["scale".into()],
        slots: plan.slots,
        env: plan.daemon_env.clone(),
    };

    let mut one = Daemon::spawn(&plan.bucketq, &bucket, &spec)?;
    let first = one
        .wait_for(Duration::from_secs(300), Duration::from_millis(10), |m| {
            m.claimed() >= 1
        })
        .await
        .context("waiting for the first claim")?;
    let first_claim = first.duration_since(one.spawned);
    let half = (backlog / 2) as u64;
    let single = drain(vec![one], plan.scale_single, half).await?;

    let rest = (backlog as u64).saturating_sub(single.succeeded);
    let four: Vec<Daemon> = (0..4)
        .map(|_| Daemon::spawn(&plan.bucketq, &bucket, &spec))
        .collect::<Result<_>>()?;
    let four = drain(four, plan.scale_four, rest).await?;
    Ok(ScaleResult {
        target: target.name,
        backlog,
        preload_rate: loaded.rate(),
        first_claim,
        single,
        four,
    })
}

/// Let `daemons` work until `limit` passes or they have handled `enough` tasks; then read their
/// figures and stop them.
async fn drain(mut daemons: Vec<Daemon>, limit: Duration, enough: u64) -> Result<Phase> {
    let started = Instant::now();
    let cpu0: Vec<Duration> = daemons
        .iter()
        .map(|d| d.sample().map(|s| s.cpu))
        .collect::<Result<_>>()?;
    let deadline = started + limit;
    loop {
        let mut done = 0;
        for d in &mut daemons {
            done += d.metrics().await.map(|m| m.succeeded()).unwrap_or(0);
        }
        if done >= enough || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let mut phase = Phase {
        processes: daemons.len(),
        took,
        ..Phase::default()
    };
    for (d, cpu0) in daemons.iter().zip(cpu0) {
        let m = d.metrics().await?;
        let s = d.sample()?;
        phase.succeeded += m.succeeded();
        phase.claimed += m.claimed();
        phase.conflicts += m.conflicts();
        phase.requests += m.requests().total();
        phase.by_op.add(&m.requests());
        phase.cpu += s.cpu.saturating_sub(cpu0);
        phase.peak_rss_kib = phase.peak_rss_kib.max(s.hwm_kib);
    }
    for d in daemons {
        d.stop(Duration::from_secs(60)).await?;
    }
    Ok(phase)
}

/// Print and record the scale results.
pub fn print(rows: &[ScaleResult], report: &mut Report) {
    let mut t = Table::new(&[
        "store",
        "backlog",
        "pre-load/s",
        "first claim",
        "procs",
        "tasks",
        "tasks/s",
        "peak RSS",
        "CPU/task",
        "req/task",
        "conflicts",
        "≤5 %",
    ]);
    for r in rows {
        for (i, p) in [&r.single, &r.four].into_iter().enumerate() {
            let share = p.conflict_share();
            t.row(vec![
                if i == 0 {
                    r.target.label().into()
                } else {
                    String::new()
                },
                if i == 0 {
                    r.backlog.to_string()
                } else {
                    String::new()
                },
                if i == 0 {
                    num(r.preload_rate, 0)
                } else {
                    String::new()
                },
                if i == 0 {
                    secs(r.first_claim.as_secs_f64())
                } else {
                    String::new()
                },
                p.processes.to_string(),
                p.succeeded.to_string(),
                num(p.rate(), 1),
                format!("{:.1} MiB", p.peak_rss_kib as f64 / 1024.0),
                format!("{:.0} µs", p.cpu_per_task() * 1e6),
                num(p.requests as f64 / p.claimed.max(1) as f64, 3),
                if share.is_finite() {
                    format!("{:.2} %", share * 100.0)
                } else {
                    "-".into()
                },
                if p.processes > 1 && share.is_finite() {
                    verdict(share <= CONFLICT_TARGET)
                } else {
                    String::new()
                },
            ]);
        }
        let phase = |p: &Phase| {
            json!({
                "processes": p.processes,
                "succeeded": p.succeeded,
                "claimed": p.claimed,
                "claim_conflicts": p.conflicts,
                "conflict_share": p.conflict_share(),
                "took_s": p.took.as_secs_f64(),
                "tasks_per_s": p.rate(),
                "cpu_s": p.cpu.as_secs_f64(),
                "cpu_s_per_task": p.cpu_per_task(),
                "peak_rss_kib": p.peak_rss_kib,
                "requests": p.requests,
                "requests_by_op": p.by_op.to_json(),
            })
        };
        report.record(
            "scale",
            r.target.label(),
            json!({
                "backlog": r.backlog,
                "preload_tasks_per_s": r.preload_rate,
                "first_claim_s": r.first_claim.as_secs_f64(),
                "one_process": phase(&r.single),
                "four_processes": phase(&r.four),
            }),
        );
    }
    report.table(&t);
    for r in rows {
        for p in [&r.single, &r.four] {
            report.note(&format!(
                "  requests/task {} · {} process(es): {}{}",
                r.target.label(),
                p.processes,
                p.by_op.per_task_breakdown(p.claimed.max(1) as f64),
                non_ok_note(&p.by_op, p.claimed.max(1) as usize)
            ));
        }
    }
}
