//! bucketq's benchmark program: throughput, requests per task, pickup latency, idle cost, scale
//! and CPU per task, against LocalStack (S3), moto (S3), the local store and an OSS model.
//!
//! Run it with `scripts/bench` (full) or `scripts/bench --tiny` (CI smoke run), which start the
//! test servers, build in release and pass the arguments on. The figures are printed, never
//! asserted: timing on a shared machine is not a pass/fail signal. BENCHMARKS.md explains them.
//!
//! `cargo test --all-targets` runs this binary without arguments; it then only says how to run
//! it, so the test suite does not start a benchmark.

mod args;
mod ceiling;
mod daemon;
mod engines;
mod load;
mod procstat;
mod recorder;
mod report;
mod requests;
mod scenario;
mod target;

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use crate::args::{Options, Plan, Section, TargetName};
use crate::report::Report;
use crate::scenario::{idle, scale, throughput, trickle};
use crate::target::Target;

fn main() -> std::process::ExitCode {
    if std::env::args_os().len() <= 1 {
        println!("bucketq_bench: run ./scripts/bench (or ./scripts/bench --tiny); nothing to do under cargo test");
        return std::process::ExitCode::SUCCESS;
    }
    let plan = Plan::from_options(Options::parse());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bucketq_bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(plan)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bucketq_bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> Result<()> {
    let started = Instant::now();
    let mut report = Report::default();
    let targets: Vec<Target> = plan
        .targets
        .iter()
        .map(|t| Target::from_env(*t))
        .collect::<Result<_>>()?;
    header(&plan, &mut report);

    let mut summaries = Summaries::default();
    let mut section_started = Instant::now();
    if plan.runs_section(Section::Throughput) {
        report.heading(&format!(
            "1, 2, 6. Throughput: {} pre-loaded tasks, no-op handler, in-process engines with {} slots each; median of {} run(s)",
            plan.tasks, plan.slots, plan.runs
        ));
        for t in &targets {
            summaries
                .throughput
                .extend(throughput::run(&plan, t, &mut report).await?);
        }
    }
    section_took(&mut report, &mut section_started);
    if plan.runs_section(Section::Trickle) {
        report.heading(&format!(
            "2, 3. Steady streams, 1 worker, default intervals (poll 1s, max 10s): trickle 1 task/s for {:?}, busy {}/s for {:?}",
            plan.trickle, plan.busy_rate, plan.busy
        ));
        let mut rows = Vec::new();
        for t in targets.iter().filter(|t| t.name != TargetName::Moto) {
            rows.extend(trickle::run(&plan, t, &mut report).await?);
        }
        trickle::print(&rows, &report);
    }
    section_took(&mut report, &mut section_started);
    if plan.runs_section(Section::Idle) {
        idle_section(&plan, &targets, &mut report, &mut summaries).await?;
    }
    section_took(&mut report, &mut section_started);
    if plan.runs_section(Section::Scale) {
        report.heading(&format!(
            "5. Scale: backlog of {} (local) / {} (S3), real `bucketq run` processes, `log` handler, {} slots each",
            plan.backlog_local, plan.backlog_s3, plan.slots
        ));
        let mut rows = Vec::new();
        for t in targets
            .iter()
            .filter(|t| t.name.reachable_by_process() && t.name.atomic())
        {
            rows.push(
                scale::run(&plan, t)
                    .await
                    .with_context(|| format!("scale on {}", t.name.label()))?,
            );
        }
        scale::print(&rows, &mut report);
        summaries.scale = rows;
    }
    section_took(&mut report, &mut section_started);
    summaries.print_targets(&plan, &mut report);
    let took = started.elapsed();
    report.note(&format!(
        "\nfinished in {:.0} s; load average now {}",
        took.as_secs_f64(),
        procstat::loadavg()
    ));
    report.record("run", "seconds", json!(took.as_secs_f64()));
    report.record("run", "load_average_end", json!(procstat::loadavg()));
    if let Some(path) = &plan.json {
        let text = serde_json::to_string_pretty(&report.json())?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Print how long the section that just ended took (nothing if none ran) and restart the clock.
fn section_took(report: &mut Report, started: &mut Instant) {
    let took = started.elapsed().as_secs_f64();
    if took >= 0.05 {
        report.note(&format!(
            "  (section took {took:.0} s; load average {})",
            procstat::loadavg()
        ));
    }
    *started = Instant::now();
}

fn header(plan: &Plan, report: &mut Report) {
    report.heading("bucketq benchmark");
    let machine = procstat::machine();
    let load = procstat::loadavg();
    report.note(&format!("machine: {machine}; load average at start {load}"));
    report.note(&format!(
        "mode: {}; stores: {}",
        if plan.tiny {
            "tiny (smoke run)"
        } else {
            "full"
        },
        plan.targets
            .iter()
            .map(|t| t.label())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.note(&format!(
        "oss-model = in-memory store in atomic-copy mode (claim = one conditional CopyObject, as on OSS), {:?}–{:?} per request",
        target::OSS_MODEL_LATENCY.0,
        target::OSS_MODEL_LATENCY.1
    ));
    report.record("run", "machine", json!(machine));
    report.record("run", "load_average_start", json!(load));
    report.record("run", "tiny", json!(plan.tiny));
}

/// Idle pickup latency (in-process) and idle cost (real processes), measured side by side:
/// both mostly wait, and running them together halves the section's wall time.
async fn idle_section(
    plan: &Plan,
    targets: &[Target],
    report: &mut Report,
    summaries: &mut Summaries,
) -> Result<()> {
    report.heading(&format!(
        "3, 4. Idle: pickup latency after {:?} idle ({} queues × {} rounds); idle `bucketq run` (2 queues) over {:?} after {:?}",
        plan.idle_settle, plan.idle_queues, plan.idle_rounds, plan.idle_window, plan.idle_warmup
    ));
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| t.name != TargetName::Moto)
        .collect();
    let latencies = futures::future::join_all(chosen.iter().map(|t| async move {
        idle::idle_latency(plan, t)
            .await
            .with_context(|| format!("idle pickup on {}", t.name.label()))
            .map(|l| (t.name, l))
    }));
    let costs =
        futures::future::join_all(chosen.iter().filter(|t| t.name.reachable_by_process()).map(
            |t| async move {
                idle::idle_cost(plan, t)
                    .await
                    .with_context(|| format!("idle cost on {}", t.name.label()))
            },
        ));
    let (latencies, costs) = futures::join!(latencies, costs);
    let latencies: Vec<_> = latencies.into_iter().collect::<Result<_>>()?;
    let costs: Vec<_> = costs.into_iter().collect::<Result<_>>()?;
    idle::print_latency(&latencies, report);
    idle::print_cost(&costs, report);
    summaries.idle = costs;
    Ok(())
}

/// What the closing table of targets reads.
#[derive(Debug, Default)]
struct Summaries {
    throughput: Vec<throughput::Summary>,
    idle: Vec<idle::IdleCost>,
    scale: Vec<scale::ScaleResult>,
}

impl Summaries {
    fn print_targets(&self, plan: &Plan, report: &mut Report) {
        report.heading("Targets");
        if plan.tiny {
            report.note(
                "(smoke run: inputs and windows are too small for these verdicts to mean anything)",
            );
        }
        let mut t = report::Table::new(&["target", "where", "measured", "verdict"]);
        for s in &self.throughput {
            t.row(vec![
                "≤ 2.2 requests/task at load".into(),
                format!("{} · {} worker(s)", s.target.label(), s.workers),
                format!("{:.3}", s.requests_per_task),
                throughput::verdict(s.requests_per_task <= throughput::REQUESTS_PER_TASK_TARGET),
            ]);
        }
        for c in &self.idle {
            let rss = c.end.rss_kib;
            t.row(vec![
                "idle RSS ≤ 8 MiB".into(),
                c.target.label().into(),
                format!("{:.1} MiB", rss as f64 / 1024.0),
                throughput::verdict(rss <= idle::RSS_TARGET_KIB),
            ]);
            t.row(vec![
                "idle CPU ≤ 0.05 %".into(),
                c.target.label().into(),
                format!("{:.4} %", c.cpu_percent()),
                throughput::verdict(c.cpu_percent() <= idle::CPU_TARGET_PERCENT),
            ]);
            let lists = c.lists_per_queue_per_max_poll();
            t.row(vec![
                "1 LIST per queue per max_poll_interval".into(),
                c.target.label().into(),
                format!("{lists:.2}"),
                throughput::verdict(lists <= 1.1),
            ]);
        }
        for s in &self.scale {
            let share = s.four.conflict_share();
            t.row(vec![
                "claim conflicts ≤ 5 % (4 processes)".into(),
                s.target.label().into(),
                format!("{:.2} %", share * 100.0),
                throughput::verdict(share.is_finite() && share <= scale::CONFLICT_TARGET),
            ]);
        }
        report.table(&t);
    }
}
