//! Sections 1, 2 (at load) and 6: drain a pre-loaded backlog with 1 and 4 in-process workers
//! and a no-op handler; beside it, the server's ceiling at the same concurrency; requests per
//! task by operation; CPU per task (getrusage of this process, which runs only the engines
//! while they drain).

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::time::Instant;

use crate::args::{Plan, TargetName};
use crate::ceiling::{self, Ceiling};
use crate::engines::{Fleet, Spec, Totals};
use crate::load::preload;
use crate::procstat::own_cpu;
use crate::recorder::Recorder;
use crate::report::{median, num, Report, Table};
use crate::requests::Requests;
use crate::scenario::count_keys;
use crate::target::Target;

/// Target of section 2: requests per task at load.
pub const REQUESTS_PER_TASK_TARGET: f64 = 2.2;

/// One timed drain.
#[derive(Debug)]
struct Run {
    tasks_per_s: f64,
    totals: Totals,
    cpu_per_task: f64,
    duplicates: usize,
    leftover: usize,
    preload_rate: f64,
    ceiling: Ceiling,
}

/// The median figures of one (target, workers) configuration.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Store.
    pub target: TargetName,
    /// Workers.
    pub workers: usize,
    /// Median tasks per second.
    pub tasks_per_s: f64,
    /// Requests per task (all runs together).
    pub requests_per_task: f64,
    /// Requests of all runs.
    pub requests: Requests,
    /// Tasks of all runs.
    pub tasks: usize,
    /// Median CPU seconds per task.
    pub cpu_per_task: f64,
    /// Share of claim attempts lost to another worker (all runs).
    pub conflict_share: f64,
    /// Median server ceiling, requests per second.
    pub ceiling_rps: f64,
    /// Median server ceiling, PUT-if-absent + GET + DELETE cycles per second.
    pub ceiling_cps: f64,
}

/// Measure one target with every worker count of the plan.
pub async fn run(plan: &Plan, target: &Target, report: &mut Report) -> Result<Vec<Summary>> {
    let workers: Vec<usize> = if target.name.atomic() {
        plan.workers.clone()
    } else {
        vec![1]
    };
    let mut out = Vec::new();
    for w in workers {
        let mut runs = Vec::new();
        for r in 0..plan.runs {
            let run = drain_once(plan, target, w).await.with_context(|| {
                format!("{} with {w} worker(s), run {}", target.name.label(), r + 1)
            })?;
            report.note(&format!(
                "  {} · {w} worker(s) · run {}: {:.1} tasks/s, {:.3} requests/task, ceiling {:.0} req/s",
                target.name.label(),
                r + 1,
                run.tasks_per_s,
                run.totals.requests.total() as f64 / plan.tasks as f64,
                run.ceiling.requests_per_s
            ));
            runs.push(run);
        }
        out.push(summarise(plan, target.name, w, &runs, report));
    }
    print_table(&out, report);
    Ok(out)
}

async fn drain_once(plan: &Plan, target: &Target, workers: usize) -> Result<Run> {
    let bucket = target.fresh_bucket("tp").await?;
    let queue = "tp".to_owned();
    let loaded = preload(bucket.uncounted()?, "tp/", plan.tasks, 32).await?;
    let recorder = Recorder::new();
    let mut spec = Spec::with_queues(std::slice::from_ref(&queue));
    spec.worker.concurrency = plan.slots;
    let cpu_before = own_cpu();
    let started = Instant::now();
    let fleet = Fleet::start(&bucket, workers, &spec, &recorder)?;
    let limit = Duration::from_secs(60) + Duration::from_secs_f64(plan.tasks as f64 / 5.0);
    let waited = recorder.wait_handled(plan.tasks, limit).await;
    let totals = fleet.stop(Duration::from_secs(60)).await?;
    waited?;
    let cpu = own_cpu().saturating_sub(cpu_before);
    let (_, last) = recorder.first_and_last().context("no handler ran")?;
    let took = last.duration_since(started).as_secs_f64();
    let leftover = count_keys(&*bucket.uncounted()?, "tp/").await?;
    let ceiling = ceiling::measure(&bucket, workers * plan.slots, plan.ceiling).await?;
    Ok(Run {
        tasks_per_s: plan.tasks as f64 / took,
        cpu_per_task: cpu.as_secs_f64() / plan.tasks as f64,
        duplicates: recorder.duplicates(),
        leftover,
        preload_rate: loaded.rate(),
        totals,
        ceiling,
    })
}

fn summarise(
    plan: &Plan,
    target: TargetName,
    workers: usize,
    runs: &[Run],
    report: &mut Report,
) -> Summary {
    let mut requests = Requests::default();
    let mut totals = Totals::default();
    for r in runs {
        requests.add(&r.totals.requests);
        totals.claimed += r.totals.claimed;
        totals.conflicts += r.totals.conflicts;
    }
    let tasks = plan.tasks * runs.len();
    let pick = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let summary = Summary {
        target,
        workers,
        tasks_per_s: pick(|r| r.tasks_per_s),
        requests_per_task: requests.total() as f64 / tasks as f64,
        requests: requests.clone(),
        tasks,
        cpu_per_task: pick(|r| r.cpu_per_task),
        conflict_share: totals.conflict_share(),
        ceiling_rps: pick(|r| r.ceiling.requests_per_s),
        ceiling_cps: pick(|r| r.ceiling.cycles_per_s),
    };
    report.record(
        "throughput",
        &format!("{}/{}w", target.label(), workers),
        json!({
            "tasks_per_run": plan.tasks,
            "runs": runs.len(),
            "tasks_per_s_runs": runs.iter().map(|r| r.tasks_per_s).collect::<Vec<_>>(),
            "tasks_per_s_median": summary.tasks_per_s,
            "requests": requests.to_json(),
            "requests_per_task": summary.requests_per_task,
            "cpu_s_per_task_median": summary.cpu_per_task,
            "claimed": totals.claimed,
            "claim_conflicts": totals.conflicts,
            "conflict_share": summary.conflict_share,
            "duplicates": runs.iter().map(|r| r.duplicates).sum::<usize>(),
            "leftover_keys": runs.iter().map(|r| r.leftover).sum::<usize>(),
            "preload_tasks_per_s_median": pick(|r| r.preload_rate),
            "ceiling_concurrency": workers * plan.slots,
            "ceiling_requests_per_s_median": summary.ceiling_rps,
            "ceiling_cycles_per_s_median": summary.ceiling_cps,
        }),
    );
    let dup: usize = runs.iter().map(|r| r.duplicates).sum();
    let left: usize = runs.iter().map(|r| r.leftover).sum();
    if dup > 0 || left > 0 {
        report.note(&format!(
            "  WARNING {} · {workers} worker(s): {dup} task(s) ran twice, {left} key(s) left in the bucket",
            target.label()
        ));
    }
    summary
}

fn print_table(rows: &[Summary], report: &Report) {
    let mut t = Table::new(&[
        "store",
        "workers",
        "tasks/s",
        "req/s",
        "ceiling req/s",
        "req/s ÷ ceiling",
        "ceiling cycles/s",
        "tasks/s ÷ cycles/s",
        "req/task",
        "target ≤2.2",
        "conflicts",
        "CPU/task",
    ]);
    for s in rows {
        let rps = s.tasks_per_s * s.requests_per_task;
        t.row(vec![
            s.target.label().into(),
            s.workers.to_string(),
            num(s.tasks_per_s, 1),
            num(rps, 0),
            num(s.ceiling_rps, 0),
            num(rps / s.ceiling_rps, 2),
            num(s.ceiling_cps, 1),
            num(s.tasks_per_s / s.ceiling_cps, 2),
            num(s.requests_per_task, 3),
            verdict(s.requests_per_task <= REQUESTS_PER_TASK_TARGET),
            format!("{:.1} %", s.conflict_share * 100.0),
            format!("{:.0} µs", s.cpu_per_task * 1e6),
        ]);
    }
    report.table(&t);
    for s in rows {
        report.note(&format!(
            "  requests/task {} · {}w: {}{}",
            s.target.label(),
            s.workers,
            s.requests.per_task_breakdown(s.tasks as f64),
            non_ok_note(&s.requests, s.tasks)
        ));
    }
}

/// ` (not ok: get 404 0.010/task)` or nothing.
pub fn non_ok_note(requests: &Requests, tasks: usize) -> String {
    let bad = requests.non_ok();
    if bad.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = bad
        .iter()
        .map(|(k, n)| format!("{k} {:.3}", *n as f64 / tasks as f64))
        .collect();
    format!("  (not ok: {})", parts.join(", "))
}

/// `met` / `MISSED`.
pub fn verdict(met: bool) -> String {
    if met { "met" } else { "MISSED" }.into()
}
