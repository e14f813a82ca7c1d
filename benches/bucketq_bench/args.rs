//! Command-line options and the sizes each mode measures with.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Measure bucketq: throughput, requests per task, pickup latency, idle cost, scale and CPU per
/// task, against LocalStack (S3), moto (S3), the local store and an OSS model. Run it through
/// `scripts/bench`, which starts the servers and builds in release.
#[derive(Debug, Parser)]
#[command(name = "bucketq_bench")]
pub struct Options {
    /// CI smoke mode: every section on a tiny input, in well under a minute.
    #[arg(long)]
    pub tiny: bool,

    /// Passed by `cargo bench`; accepted and ignored.
    #[arg(long, hide = true)]
    pub bench: bool,

    /// Stores to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "localstack,local,oss-model,moto"
    )]
    pub targets: Vec<TargetName>,

    /// Sections to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub sections: Vec<Section>,

    /// Pre-loaded tasks per throughput run (default 5000; tiny 40).
    #[arg(long)]
    pub tasks: Option<usize>,

    /// Timed runs per configuration; the median is printed (default 3; tiny 1).
    #[arg(long)]
    pub runs: Option<usize>,

    /// Idle-cost measurement window (default 60s; tiny 3s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_window: Option<Duration>,

    /// How long the trickle (one task per second) lasts (default 20s; tiny 3s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub trickle: Option<Duration>,

    /// Backlog of the scale test on the local store (default 100000; tiny 300).
    #[arg(long)]
    pub backlog_local: Option<usize>,

    /// Backlog of the scale test on S3/LocalStack (default 20000, what pre-loads in about a
    /// minute there; tiny 200).
    #[arg(long)]
    pub backlog_s3: Option<usize>,

    /// Handler slots per worker, `worker.concurrency` (default 16, bucketq's default).
    #[arg(long)]
    pub slots: Option<usize>,

    /// Write every figure as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Extra environment for every `bucketq run` process, `NAME=VALUE` (repeatable), for
    /// experiments such as `MALLOC_ARENA_MAX=2`.
    #[arg(long = "daemon-env", value_name = "NAME=VALUE")]
    pub daemon_env: Vec<String>,

    /// The release `bucketq` binary for the real-process measurements.
    #[arg(long, default_value = env!("CARGO_BIN_EXE_bucketq"))]
    pub bucketq: PathBuf,
}

/// A store to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum TargetName {
    /// LocalStack's S3: atomic conditional writes; the S3 claim recipe (GET + PUT-if-absent).
    Localstack,
    /// The local store in a temporary directory: claims by one atomic copy, as on OSS.
    Local,
    /// The in-memory store in atomic-copy mode with network-like latency: a model of OSS,
    /// whose claim is one CopyObject.
    OssModel,
    /// moto's S3 (SigV4 checked). Its conditional writes are not atomic, so only one worker
    /// runs on it.
    Moto,
}

impl TargetName {
    /// Name as printed.
    pub fn label(self) -> &'static str {
        match self {
            TargetName::Localstack => "s3/localstack",
            TargetName::Local => "local",
            TargetName::OssModel => "oss-model",
            TargetName::Moto => "s3/moto",
        }
    }

    /// True when a real `bucketq run` process can reach it (not the in-memory model).
    pub fn reachable_by_process(self) -> bool {
        !matches!(self, TargetName::OssModel)
    }

    /// True when several workers may compete on it (its conditional writes are atomic).
    pub fn atomic(self) -> bool {
        !matches!(self, TargetName::Moto)
    }
}

/// A part of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// 1, 2 and 6: pre-loaded drain with 1 and 4 workers, server ceiling, requests and CPU per
    /// task.
    Throughput,
    /// 2 and 3: requests per task and pickup latency while tasks trickle in.
    Trickle,
    /// 3 and 4: pickup latency of an idle worker; RSS, CPU and requests of an idle process.
    Idle,
    /// 5: backlog, time to first claim, peak RSS, claim conflicts with 4 processes.
    Scale,
}

/// The sizes and durations one run measures with.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Smoke mode.
    pub tiny: bool,
    /// Stores, in order.
    pub targets: Vec<TargetName>,
    /// Sections, in order.
    pub sections: Vec<Section>,
    /// Pre-loaded tasks per throughput run.
    pub tasks: usize,
    /// Timed runs per configuration.
    pub runs: usize,
    /// Worker counts of the throughput runs.
    pub workers: Vec<usize>,
    /// Handler slots per worker (the default `worker.concurrency`).
    pub slots: usize,
    /// How long each server-ceiling measurement lasts.
    pub ceiling: Duration,
    /// Trickle duration (one task per second).
    pub trickle: Duration,
    /// Busy stream: rate and duration.
    pub busy_rate: f64,
    /// How long the busy stream lasts.
    pub busy: Duration,
    /// After a stream's last task is handled, keep the worker running this long so deferred
    /// lock deletes go out as they would in a steady stream, not in the final flush.
    pub stream_tail: Duration,
    /// Idle pickup latency: queues sampled at once, rounds, and the idle time before each.
    pub idle_queues: usize,
    /// Rounds of idle samples.
    pub idle_rounds: usize,
    /// Idle time before each round (long enough for the poll interval to reach its maximum).
    pub idle_settle: Duration,
    /// Idle-cost warm-up before the window.
    pub idle_warmup: Duration,
    /// Idle-cost window.
    pub idle_window: Duration,
    /// Scale backlog on the local store.
    pub backlog_local: usize,
    /// Scale backlog on S3.
    pub backlog_s3: usize,
    /// How long one process drains the backlog.
    pub scale_single: Duration,
    /// How long four processes drain it.
    pub scale_four: Duration,
    /// JSON output.
    pub json: Option<PathBuf>,
    /// The daemon binary.
    pub bucketq: PathBuf,
    /// Extra environment of the daemon processes.
    pub daemon_env: Vec<(String, String)>,
}

impl Plan {
    /// The plan the options ask for.
    pub fn from_options(o: Options) -> Plan {
        let tiny = o.tiny;
        let pick = |full: u64, small: u64| Duration::from_secs(if tiny { small } else { full });
        let mut targets = o.targets;
        targets.dedup();
        let sections = if o.sections.is_empty() {
            vec![
                Section::Throughput,
                Section::Trickle,
                Section::Idle,
                Section::Scale,
            ]
        } else {
            o.sections
        };
        Plan {
            tiny,
            targets,
            sections,
            tasks: o.tasks.unwrap_or(if tiny { 40 } else { 5000 }),
            runs: o.runs.unwrap_or(if tiny { 1 } else { 3 }).max(1),
            workers: vec![1, 4],
            slots: o.slots.unwrap_or(16).max(1),
            ceiling: if tiny {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            },
            trickle: o.trickle.unwrap_or(pick(20, 2)),
            busy_rate: 20.0,
            busy: pick(10, 1),
            stream_tail: pick(3, 0),
            idle_queues: if tiny { 2 } else { 8 },
            idle_rounds: if tiny { 1 } else { 3 },
            idle_settle: pick(25, 1),
            idle_warmup: pick(20, 1),
            idle_window: o.idle_window.unwrap_or(pick(60, 3)),
            backlog_local: o.backlog_local.unwrap_or(if tiny { 300 } else { 100_000 }),
            backlog_s3: o.backlog_s3.unwrap_or(if tiny { 200 } else { 20_000 }),
            scale_single: pick(20, 2),
            scale_four: pick(30, 2),
            json: o.json,
            bucketq: o.bucketq,
            daemon_env: o
                .daemon_env
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// True when `section` is to run.
    pub fn runs_section(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}
