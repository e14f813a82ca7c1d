//! A real `bucketq run` process (the release binary), its `/metrics`, and its `/proc` figures.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::procstat::{self, ProcSample};
use crate::requests::Requests;
use crate::target::{quoted, Bucket};

/// How a daemon is configured.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Queue names; each is served on prefix `name/` by the `log` handler.
    pub queues: Vec<String>,
    /// `worker.concurrency`.
    pub slots: usize,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running `bucketq run`.
pub struct Daemon {
    child: Child,
    pid: u32,
    metrics_url: String,
    http: reqwest::Client,
    /// When the process was spawned.
    pub spawned: Instant,
    /// Config file and log; removed when the daemon is dropped.
    dir: tempfile::TempDir,
}

/// A free TCP port on 127.0.0.1 (the kernel picks it; released just before the daemon binds).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn config_text(bucket: &Bucket, spec: &DaemonSpec, port: u16) -> Result<String> {
    let mut text = bucket.store_toml()?;
    text.push_str(&format!(
        "\n[worker]\nconcurrency = {}\n\n[http]\nlisten = {}\n",
        spec.slots,
        quoted(&format!("127.0.0.1:{port}"))
    ));
    for q in &spec.queues {
        text.push_str(&format!(
            "\n[[queue]]\nname = {}\nprefix = {}\nhandler = {{ type = \"log\" }}\n",
            quoted(q),
            quoted(&format!("{q}/"))
        ));
    }
    Ok(text)
}

impl Daemon {
    /// Start `bin run` on `bucket`. Its log (level `warn`, so the `log` handler's per-task
    /// lines cost nothing) goes to a file in a temporary directory.
    pub fn spawn(bin: &Path, bucket: &Bucket, spec: &DaemonSpec) -> Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix("bq-bench-daemon-")
            .tempdir()
            .context("creating the daemon's directory")?;
        let port = free_port()?;
        let config = dir.path().join("bucketq.toml");
        std::fs::write(&config, config_text(bucket, spec, port)?)
            .context("writing the daemon's config")?;
        let log = std::fs::File::create(dir.path().join("bucketq.log"))
            .context("creating the daemon's log")?;
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            // No inherited BUCKETQ_* or OSS_* variable may override the config.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BUCKETQ_LOG", "warn")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the daemon exited at once"))?;
        Ok(Daemon {
            child,
            pid,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            http: reqwest::Client::new(),
            spawned,
            dir,
        })
    }

    /// The daemon's log so far (for error messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bucketq.log")).unwrap_or_default()
    }

    /// The `/metrics` page, or an error if it does not answer.
    pub async fn metrics(&self) -> Result<Metrics> {
        let resp = self
            .http
            .get(&self.metrics_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .context("reading /metrics")?;
        Ok(Metrics(resp.text().await.context("reading /metrics")?))
    }

    /// Wait until `/metrics` answers and `ok(metrics)` holds; returns when that was first seen.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        poll: Duration,
        ok: impl Fn(&Metrics) -> bool,
    ) -> Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(m) = self.metrics().await {
                if ok(&m) {
                    return Ok(Instant::now());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the daemon exited ({status}); its log:\n{}", self.log());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the daemon did not reach the expected state within {limit:?}; its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// CPU and memory now.
    pub fn sample(&self) -> Result<ProcSample> {
        procstat::sample(self.pid)
    }

    /// SIGTERM, then wait for a clean exit (drain), at most `limit`.
    pub async fn stop(mut self, limit: Duration) -> Result<()> {
        // SAFETY: kill(2) with our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the daemon")?;
                if !status.success() {
                    bail!("the daemon exited with {status}; its log:\n{}", self.log());
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.ok();
                bail!("the daemon did not drain within {limit:?}")
            }
        }
    }
}

/// A `/metrics` page.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of every series named `name` (any labels).
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Tasks claimed.
    pub fn claimed(&self) -> u64 {
        self.sum("bucketq_tasks_claimed_total") as u64
    }

    /// Tasks handled successfully.
    pub fn succeeded(&self) -> u64 {
        self.sum("bucketq_tasks_succeeded_total") as u64
    }

    /// Claims lost to another worker.
    pub fn conflicts(&self) -> u64 {
        self.sum("bucketq_claim_conflicts_total") as u64
    }

    /// Store requests.
    pub fn requests(&self) -> Requests {
        Requests::from_metrics(&self.0)
    }
}
