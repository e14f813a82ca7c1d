//! Configuration: the TOML file, environment overrides and the FC template's variable names,
//! turned into a validated [`Config`].
//!
//! The types here are the *effective* configuration the rest of the crate reads. Loading
//! (file, environment, FC names) lives in [`mod@load`], validation (messages that name the key and
//! the fix) in [`mod@validate`], and the redacted view `bucketq config check` prints in [`view`].

pub mod load;
mod typing;
pub mod validate;
pub mod view;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::handlers::{exec::ExecConfig, mail::MailConfig, webhook::WebhookConfig};
use crate::secret::Secret;

pub use load::{load, ConfigError, ConfigSource, LoadedConfig, DEFAULT_CONFIG_PATH};
pub use validate::{validate, Problem};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OssSignature {
    /// `OSS4-HMAC-SHA256`, the default (V1 is closed to new accounts and buckets).
    #[default]
    V4,
    /// Legacy `OSS <id>:<sig>` for old buckets.
    V1,
}

/// How requests name the bucket (`store.addressing`).
///
/// `auto` does what Alibaba's and AWS's SDKs do: an IP address or `localhost` endpoint (a
/// private OSS deployment, an internal VIP, MinIO on a port) is addressed path-style; an Alibaba
/// endpoint (`*.aliyuncs.com`) or an S3 endpoint is virtual-hosted; on OSS any other host is
/// taken as a custom domain already bound to the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    /// Chosen from the endpoint as described above.
    #[default]
    Auto,
    /// `<bucket>.<endpoint host>/<key>`.
    VirtualHosted,
    /// `<endpoint host>/<bucket>/<key>` (MinIO, Ceph, private OSS on an IP, test servers).
    Path,
    /// `<endpoint host>/<key>`: the host is a custom domain (CNAME) bound to the bucket.
    Cname,
}

/// Where the store's keys come from (`store.credentials.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialSource {
    /// The keys in `[store]` when given, else the cloud's environment variables
    /// (`ALIBABA_CLOUD_ACCESS_KEY_ID`…, `AWS_ACCESS_KEY_ID`…): nothing that needs the network.
    #[default]
    Auto,
    /// `store.access_key_id`, `access_key_secret` and `security_token`, as given.
    Static,
    /// The cloud's environment variables only.
    Env,
    /// The SDKs' default chain for the store's cloud: Alibaba (environment, RRSA/OIDC, the CLI
    /// and INI profiles, the ECS RAM role, a credentials URI) or AWS (environment, profiles,
    /// web identity, container credentials, EC2 instance metadata).
    Default,
    /// A profile of the shared files (`~/.alibabacloud/credentials`, `~/.aliyun/config.json`;
    /// `~/.aws/credentials`, `~/.aws/config`).
    Profile,
    /// Alibaba: the ECS instance's RAM role, from the metadata service.
    EcsRamRole,
    /// Alibaba: RRSA on ACK, STS `AssumeRoleWithOIDC` with the pod's OIDC token.
    Oidc,
    /// Alibaba: a RAM user (the static or environment keys) assuming `role_arn` (STS
    /// `AssumeRole`).
    RamRoleArn,
    /// Alibaba: a credentials URI answering `{"Code":"Success","AccessKeyId",…}`.
    Uri,
    /// AWS: STS `AssumeRoleWithWebIdentity` with a token file (EKS IRSA).
    WebIdentity,
    /// AWS: ECS/EKS container credentials (`AWS_CONTAINER_CREDENTIALS_*`).
    Container,
    /// AWS: the EC2 instance profile through IMDSv2.
    Imds,
}

impl CredentialSource {
    /// True when the source signs with (or starts from) the keys written in `[store]`.
    pub fn uses_static_keys(self) -> bool {
        matches!(
            self,
            CredentialSource::Auto
                | CredentialSource::Static
                | CredentialSource::Env
                | CredentialSource::RamRoleArn
        )
    }
}

/// `[store.credentials]`: how the store finds its keys, and every endpoint those sources talk to
/// (overridable for private clouds and tests). Keys that a source does not use are ignored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    /// Which source; see [`CredentialSource`].
    pub source: CredentialSource,
    /// Profile of the shared files (default: `ALIBABA_CLOUD_PROFILE` / `AWS_PROFILE`, else the
    /// file's current or `default`).
    pub profile: Option<String>,
    /// Role to assume (`ram-role-arn`, `oidc`, `web-identity`).
    pub role_arn: Option<String>,
    /// Session name of an assumed role (default `bucketq-<unix time>`).
    pub role_session_name: Option<String>,
    /// `ExternalId` of an `AssumeRole`.
    pub external_id: Option<String>,
    /// Lifetime asked for assumed-role keys (900 s and up).
    #[serde(with = "duration")]
    pub duration: Duration,
    /// RRSA: the OIDC provider's ARN.
    pub oidc_provider_arn: Option<String>,
    /// RRSA / web identity: the token file, read again at every refresh.
    pub oidc_token_file: Option<PathBuf>,
    /// ECS / EC2: the instance's role name (default: asked of the metadata service).
    pub role_name: Option<String>,
    /// `uri`: where the keys are served.
    pub uri: Option<String>,
    /// STS endpoint (default `https://sts.aliyuncs.com`, or `https://sts.<region>.amazonaws.com`).
    pub sts_endpoint: Option<String>,
    /// Metadata service (default `http://100.100.100.200` on Alibaba, `http://169.254.169.254`
    /// on AWS).
    pub metadata_endpoint: Option<String>,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            source: CredentialSource::Auto,
            profile: None,
            role_arn: None,
            role_session_name: None,
            external_id: None,
            duration: Duration::from_secs(3600),
            oidc_provider_arn: None,
            oidc_token_file: None,
            role_name: None,
            uri: None,
            sts_endpoint: None,
            metadata_endpoint: None,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(serialize_with = "redacted")]
    pub access_key_id: Secret,
    /// Access key secret.
    #[serde(serialize_with = "redacted")]
    pub access_key_secret: Secret,
    /// STS security token of temporary keys (`x-oss-security-token` / `x-amz-security-token`);
    /// empty for a long-lived key pair.
    #[serde(serialize_with = "redacted")]
    pub security_token: Secret,
    /// Where the keys come from when they are not (only) the ones above.
    pub credentials: CredentialsConfig,
    /// OSS only: signature version.
    pub signature: OssSignature,
    /// How the bucket is addressed; see [`Addressing`].
    pub addressing: Addressing,
    /// Shorthand for `addressing = "path"` (MinIO, Ceph, test servers), kept because S3 tools
    /// spell it this way.
    pub path_style: bool,
    /// Local only: the directory.
    pub path: PathBuf,
    /// A PEM bundle of CAs to trust beside the system store (a private CA, a TLS-inspecting
    /// proxy).
    pub ca_file: Option<PathBuf>,
    /// Send every request to this `ip:port` whatever the endpoint's host resolves to, keeping
    /// the host name for `Host`, TLS and signing (like curl's `--connect-to`): a VIP or a
    /// tunnel in front of the store, or a test server standing in for a cloud endpoint.
    pub connect_to: Option<String>,
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
            security_token: Secret::default(),
            credentials: CredentialsConfig::default(),
            signature: OssSignature::V4,
            addressing: Addressing::Auto,
            path_style: false,
            path: PathBuf::from("./bucketq-data"),
            ca_file: None,
            connect_to: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

impl StoreConfig {
    /// The addressing asked for: `path_style = true` is `addressing = "path"`.
    pub fn addressing(&self) -> Addressing {
        if self.path_style && self.addressing == Addressing::Auto {
            Addressing::Path
        } else {
            self.addressing
        }
    }
}

/// What to do with a task whose handler succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnSuccess {
    /// Delete it (the default).
    #[default]
    Delete,
    /// Move it under `done_prefix`.
    Move,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `127.0.0.1:9464`; the listener is off when absent.
    pub listen: Option<String>,
}

/// The built-in handler a queue runs, `handler = { type = "mail", ... }`.
///
/// Deserialized by hand rather than with `#[serde(tag = "type")]`: serde's internally tagged
/// enums buffer their fields and lose the config loader's leniency (a port given as the
/// environment string `"587"` must still read as a number), and a hand-written impl can name
/// the valid types when `type` is wrong.
#[derive(Debug, Clone)]
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

/// The values `handler.type` accepts, for messages.
pub const HANDLER_TYPES: [&str; 5] = ["mail", "webhook", "exec", "log", "custom"];

impl HandlerConfig {
    /// The `type` this handler was configured with.
    pub fn type_name(&self) -> &'static str {
        match self {
            HandlerConfig::Mail(_) => "mail",
            HandlerConfig::Webhook(_) => "webhook",
            HandlerConfig::Exec(_) => "exec",
            HandlerConfig::Log => "log",
            HandlerConfig::Custom { .. } => "custom",
        }
    }
}

impl<'de> Deserialize<'de> for HandlerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use config::{Value, ValueKind};
        use serde::de::Error as _;

        let value = Value::deserialize(d)?;
        let ValueKind::Table(mut table) = value.kind else {
            return Err(D::Error::custom(
                "a handler must be a table like { type = \"log\" }",
            ));
        };
        let kind = match table.remove("type").map(|v| v.kind) {
            Some(ValueKind::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom("handler.type must be a string")),
            None => {
                return Err(D::Error::custom(format!(
                    "the handler has no `type`; set one of {}",
                    HANDLER_TYPES.join(", ")
                )))
            }
        };
        let fields = Value::new(None, ValueKind::Table(table.clone()));
        let fields_of = |what: &'static str| {
            move |e: config::ConfigError| D::Error::custom(format!("{what} handler: {e}"))
        };
        match kind.as_str() {
            "mail" => fields
                .try_deserialize()
                .map(HandlerConfig::Mail)
                .map_err(fields_of("mail")),
            "webhook" => fields
                .try_deserialize()
                .map(HandlerConfig::Webhook)
                .map_err(fields_of("webhook")),
            "exec" => fields
                .try_deserialize()
                .map(HandlerConfig::Exec)
                .map_err(fields_of("exec")),
            "log" => match table.keys().next() {
                None => Ok(HandlerConfig::Log),
                Some(field) => Err(D::Error::custom(format!(
                    "the log handler takes no options; remove `{field}`"
                ))),
            },
            "custom" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Custom {
                    name: String,
                }
                fields
                    .try_deserialize::<Custom>()
                    .map(|c| HandlerConfig::Custom { name: c.name })
                    .map_err(fields_of("custom"))
            }
            other => Err(D::Error::custom(format!(
                "unknown handler type {other:?}; use one of {}",
                HANDLER_TYPES.join(", ")
            ))),
        }
    }
}

/// One `[[queue]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(
        with = "opt_duration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
    /// What runs for each task. Not serialized: the handler structs belong to the handlers and
    /// may hold secrets; [`view`] prints the handler table redacted by key name instead.
    #[serde(skip_serializing)]
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

/// Serialize a secret as `******`, so a serialized config can be printed.
fn redacted<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    if secret.is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str(view::REDACTED)
    }
}

/// Serde adapter for durations written as `"30s"`, `"5m"`, `"1d"`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parse a humantime duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Write a duration back as `"30s"`, `"5m"`, `"1day"`.
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    /// Parse `"30s"`-style text, with a message saying how to write it.
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration {text:?} ({e}); write it like \"30s\", \"5m\" or \"1d\"")
        })
    }
}

/// Serde adapter for optional durations.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parse an optional humantime duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::duration::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// Write an optional duration as `"30s"`.
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::duration::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}
