//! One `bucketq run` process on a generated config, its `/metrics`, and signals.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cli_support::{bucketq, free_port, http_get, Daemon};

/// The queue every e2e test serves.
pub const QUEUE: &str = "q";

/// Settings of one worker; the durations are config strings (`"500ms"`).
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Store endpoint (LocalStack, or a fault proxy in front of it).
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// `worker.concurrency`.
    pub concurrency: usize,
    /// `worker.poll_interval`.
    pub poll_interval: &'static str,
    /// `worker.max_poll_interval`.
    pub max_poll_interval: &'static str,
    /// `worker.lease`.
    pub lease: &'static str,
    /// `worker.shutdown_grace`.
    pub shutdown_grace: &'static str,
    /// The queue's `timeout`.
    pub timeout: &'static str,
    /// `store.request_timeout`.
    pub request_timeout: &'static str,
    /// `store.max_retries`.
    pub max_retries: u32,
    /// The queue's handler table.
    pub handler: Value,
}

impl WorkerSpec {
    /// Defaults fit for a busy queue of short tasks on LocalStack.
    pub fn new(endpoint: &str, bucket: &str, handler: Value) -> WorkerSpec {
        WorkerSpec {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            concurrency: 8,
            poll_interval: "500ms",
            max_poll_interval: "2s",
            lease: "20s",
            shutdown_grace: "5s",
            timeout: "5s",
            request_timeout: "2s",
            max_retries: 2,
            handler,
        }
    }

    /// The config file's text.
    pub fn toml(&self, http_port: u16) -> String {
        let config = json!({
            "store": {
                "kind": "s3",
                "endpoint": self.endpoint,
                "bucket": self.bucket,
                "region": "us-east-1",
                "path_style": true,
                "access_key_id": "test",
                "access_key_secret": "test",
                "request_timeout": self.request_timeout,
                "max_retries": self.max_retries,
            },
            "worker": {
                "concurrency": self.concurrency,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "lease": self.lease,
                "shutdown_grace": self.shutdown_grace,
            },
            "http": { "listen": format!("127.0.0.1:{http_port}") },
            "queue": [{
                "name": QUEUE,
                "prefix": format!("{QUEUE}/"),
                "timeout": self.timeout,
                "max_attempts": 3,
                "backoff": "200ms",
                "handler": self.handler,
            }],
        });
        let value = toml::Value::try_from(config).expect("the config maps onto TOML");
        toml::to_string(&value).expect("TOML renders")
    }
}

/// A running `bucketq run`.
pub struct Worker {
    /// Name for messages (`w1`).
    pub name: String,
    /// The process and its collected output.
    pub daemon: Daemon,
    /// Port of its `/metrics`.
    pub http_port: u16,
}

impl Worker {
    /// Write `dir/<name>.toml` and start `bucketq run` on it.
    pub fn start(dir: &Path, name: &str, spec: &WorkerSpec) -> Worker {
        let http_port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, spec.toml(http_port)).expect("the temp dir is writable");
        let daemon = Daemon::start(
            bucketq(dir)
                .arg("--config")
                .arg(&config)
                .arg("run")
                .env("BUCKETQ_LOG", "info"),
        );
        Worker {
            name: name.to_owned(),
            daemon,
            http_port,
        }
    }

    /// Its process id (the pid in the `$BUCKETQ_WORKER` its handlers record).
    pub fn pid(&self) -> u32 {
        self.daemon.child.id()
    }

    /// Wait until `/readyz` says a listing succeeded.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.daemon.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.daemon.output()
                );
            }
            if let Ok(answer) = http_get(self.http_port, "/readyz") {
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready within {timeout:?}:\n{}",
                self.name,
                self.daemon.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.daemon.child.try_wait(), Ok(None))
    }

    /// Its store request counters from `/metrics`.
    pub fn requests(&self) -> Requests {
        let text = http_get(self.http_port, "/metrics")
            .unwrap_or_else(|e| panic!("scrape {} /metrics: {e}", self.name));
        Requests::parse(&text)
    }
}

/// `bucketq_store_requests_total` by (operation, result).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests(pub BTreeMap<(String, String), u64>);

impl Requests {
    /// Read the series out of a `/metrics` page.
    pub fn parse(text: &str) -> Requests {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("bucketq_store_requests_total{") else {
                continue;
            };
            let (labels, value) = rest.split_once("} ").expect("a series line");
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("no {name} label in {line:?}"))
                    .to_owned()
            };
            let n: u64 = value.trim().parse().expect("a counter value");
            out.insert((label("op"), label("result")), n);
        }
        Requests(out)
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests per operation, whatever the result.
    pub fn by_op(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((op, _), n) in &self.0 {
            *out.entry(op.clone()).or_default() += n;
        }
        out
    }

    /// Sum of several workers' counters.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Requests>) -> Requests {
        let mut out = BTreeMap::new();
        for r in all {
            for (k, n) in &r.0 {
                *out.entry(k.clone()).or_default() += n;
            }
        }
        Requests(out)
    }

    /// `self - before`, per series.
    pub fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, n)| (k.clone(), n - before.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }
}

/// Start `count` workers named `w1`, `w2`, ... on `spec` and wait until each is ready.
pub fn start_ready(dir: &Path, count: usize, spec: &WorkerSpec, timeout: Duration) -> Vec<Worker> {
    let mut workers: Vec<Worker> = (1..=count)
        .map(|i| Worker::start(dir, &format!("w{i}"), spec))
        .collect();
    for w in &mut workers {
        w.wait_ready(timeout);
    }
    workers
}

/// Every worker's output so far, each under its name: the context of a failed wait.
pub fn outputs(workers: &[Worker]) -> String {
    workers
        .iter()
        .map(|w| format!("--- {}\n{}", w.name, w.daemon.output()))
        .collect::<Vec<_>>()
        .join("\n")
}
