//! Configuration: the TOML file, environment overrides and the FC template's variable names,
//! turned into a validated [`Config`].
//!
//! The types here are the *effective* configuration the rest of the crate reads. Loading and
//! validation (messages that name the key and the fix) live in [`load`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::handlers::{exec::ExecConfig, mail::MailConfig, webhook::WebhookConfig};
use crate::secret::Secret;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where tasks live.
    #[serde(default)]
    pub store: StoreConfig,
    /// Engine-wide settings.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// The metrics and health listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// The queues served; `[[queue]]` in TOML.
    #[serde(default, rename = "queue")]
    pub queues: Vec<QueueConfig>,
}

/// Which backend a store config selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Alibaba OSS native API.
    Oss,
    /// Any S3-compatible store.
    S3,
    /// A directory used as a bucket (the default, for trying bucketq out).
    #[default]
    Local,
}

/// OSS signature version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OssSignature {
    /// `OSS4-HMAC-SHA256`, the default (V1 is closed to new accounts and buckets).
    #[default]
    V4,
    /// Legacy `OSS <id>:<sig>` for old buckets.
    V1,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Backend.
    pub kind: StoreBackend,
    /// `https://oss-cn-hongkong.aliyuncs.com`, `http://127.0.0.1:9000`, or a CNAME.
    pub endpoint: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Signing region; derived from the OSS endpoint when absent.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Secret,
    /// Access key secret.
    pub access_key_secret: Secret,
    /// OSS only: signature version.
    pub signature: OssSignature,
    /// S3 only: path-style addressing (MinIO, Ceph, test servers).
    pub path_style: bool,
    /// Local only: the directory.
    pub path: PathBuf,
    /// Timeout of one HTTP request.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Retries of a transient failure before it is reported.
    pub max_retries: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreBackend::Local,
            endpoint: None,
            bucket: String::new(),
            region: None,
            access_key_id: Secret::default(),
            access_key_secret: Secret::default(),
            signature: OssSignature::V4,
            path_style: false,
            path: PathBuf::from("./bucketq-data"),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

/// What to do with a task whose handler succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnSuccess {
    /// Delete it (the default).
    #[default]
    Delete,
    /// Move it under `done_prefix`.
    Move,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Handler slots across all queues.
    pub concurrency: usize,
    /// Wait between polls after finding work.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Longest wait between polls when idle.
    #[serde(with = "duration")]
    pub max_poll_interval: Duration,
    /// A lock older than this belongs to a dead worker.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Time running handlers get after SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Where failed tasks go.
    pub failed_prefix: String,
    /// Where succeeded tasks go when `on_success = "move"`.
    pub done_prefix: String,
    /// Delete or move succeeded tasks.
    pub on_success: OnSuccess,
    /// Larger payloads fail permanently without running the handler.
    pub max_payload_bytes: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            poll_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(10),
            lease: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            failed_prefix: "failed/".into(),
            done_prefix: "done/".into(),
            on_success: OnSuccess::Delete,
            max_payload_bytes: 1024 * 1024,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `127.0.0.1:9464`; the listener is off when absent.
    pub listen: Option<String>,
}

/// The built-in handler a queue runs, `handler = { type = "mail", ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HandlerConfig {
    /// Send the payload as a mail over SMTP.
    Mail(MailConfig),
    /// POST the payload to a URL.
    Webhook(WebhookConfig),
    /// Run a command with the payload on stdin.
    Exec(ExecConfig),
    /// Log the task and succeed.
    Log,
    /// A Rust handler registered by name in the [`crate::handlers::HandlerRegistry`].
    Custom {
        /// The registered name.
        name: String,
    },
}

/// One `[[queue]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Name for logs, metrics and the CLI.
    pub name: String,
    /// Key prefix, e.g. `mail/`.
    pub prefix: String,
    /// Key suffix of pending tasks.
    #[serde(default = "default_suffix")]
    pub suffix: String,
    /// Handler slots for this queue (bounded by the global `worker.concurrency`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Time one attempt may take.
    #[serde(with = "duration", default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts before a task goes to `failed/`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped by `max_backoff`, jittered.
    #[serde(with = "duration", default = "default_backoff")]
    pub backoff: Duration,
    /// Cap of the retry delay.
    #[serde(with = "duration", default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Tasks older than this fail instead of running.
    #[serde(with = "opt_duration", default)]
    pub max_age: Option<Duration>,
    /// What runs for each task.
    pub handler: HandlerConfig,
}

fn default_suffix() -> String {
    ".task".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_attempts() -> u32 {
    3
}
fn default_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(600)
}

/// Serde adapter for durations written as `"30s"`, `"5m"`, `"1d"`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parse a humantime duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"30s\", \"5m\" or \"1d\""
            ))
        })
    }
}

/// Serde adapter for optional durations.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parse an optional humantime duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {t:?} ({e}); write it like \"30s\", \"5m\" or \"1d\""
                ))
            })
        })
        .transpose()
    }
}
