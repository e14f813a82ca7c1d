//! The `mail` handler: sends the payload dict as a mail over SMTP.
//!
//! The payload fields are the ones producers of the original FC setup write: `to_email` and
//! `nickname` (the recipient and their display name), `subject`, and `content` (HTML); also
//! `text` (a plain alternative, making the mail `multipart/alternative`), and `to`, `cc`, `bcc`,
//! `reply_to` (each a string, which may hold several comma-separated addresses, or a list).
//!
//! One lettre transport with a connection pool serves a queue for the daemon's lifetime, so a
//! burst of tasks reuses a handful of SMTP sessions instead of logging in once per mail (the
//! FC handler's `init()` opened one connection per instance). Verdicts: an unusable payload,
//! a missing or invalid address and SMTP 5xx are permanent; SMTP 4xx and connection, TLS and
//! timeout errors are retried. Each task's mail carries a `Message-ID` derived from the queue
//! and task id, so a mail sent again after a retry is recognisable as the same one.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Handler, Outcome, ProbeError, Task};
use crate::payload::{self, Limits};
use crate::secret::Secret;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on localhost or a private network). Default port 25.
    None,
    /// Plain connection upgraded with STARTTLS, which is required. Default port 587.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS"). Default port 465.
    Tls,
}

impl TlsMode {
    /// The conventional port of this mode.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// Configuration of the `mail` handler:
/// `handler = { type = "mail", host = "smtp.example.com", port = 587, tls = "starttls",
/// username = "...", password = "...", from = "Trotter <noreply@example.com>" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// SMTP server host name (also the name its TLS certificate must carry).
    #[serde(default)]
    pub host: String,
    /// Port; defaults by `tls` (25, 587, 465).
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: TlsMode,
    /// Login; no AUTH when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Secret,
    /// Sender, with an optional display name: `Trotter <noreply@example.com>`. Its domain also
    /// names the `Message-ID`s.
    #[serde(default)]
    pub from: String,
    /// Extra CA certificate (PEM) to trust, for a private SMTP server with its own CA; the
    /// public web roots stay trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeout of each network step (connect, each SMTP command).
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Most SMTP connections kept open for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_pool_size() -> u32 {
    4
}

impl MailConfig {
    /// Fill settings the config left empty from the original FC template's environment names
    /// (`EMAIL_SERVER_HOST`, `EMAIL_SERVER_PORT`, `EMAIL_USERNAME`, `EMAIL_PASSWORD`), so a
    /// migrated deployment keeps its environment file. `lookup` is `std::env::var(..).ok()` in
    /// the daemon and a map in tests.
    pub fn fill_from_fc_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), MailConfigError> {
        if self.host.is_empty() {
            self.host = lookup("EMAIL_SERVER_HOST").unwrap_or_default();
        }
        if self.port.is_none() {
            if let Some(port) = lookup("EMAIL_SERVER_PORT") {
                self.port = Some(
                    port.trim()
                        .parse()
                        .map_err(|_| MailConfigError::BadPort { value: port })?,
                );
            }
        }
        if self.username.is_none() {
            self.username = lookup("EMAIL_USERNAME");
        }
        if self.password.is_empty() {
            if let Some(password) = lookup("EMAIL_PASSWORD") {
                self.password = Secret::new(password);
            }
        }
        Ok(())
    }

    /// The port in effect.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }
}

/// Why a mail configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// No `host`.
    #[error("mail handler: `host` is empty; set it (or EMAIL_SERVER_HOST)")]
    MissingHost,
    /// `EMAIL_SERVER_PORT` is not a port number.
    #[error("mail handler: EMAIL_SERVER_PORT {value:?} is not a port number")]
    BadPort {
        /// The value found.
        value: String,
    },
    /// `from` does not parse.
    #[error("mail handler: `from` {from:?} is not an address like \"Name <user@example.com>\"")]
    BadFrom {
        /// The value configured.
        from: String,
        /// Why it does not parse.
        #[source]
        source: lettre::address::AddressError,
    },
    /// `password` without `username`.
    #[error("mail handler: `password` is set but `username` is not")]
    PasswordWithoutUsername,
    /// `ca_file` cannot be read.
    #[error("mail handler: cannot read ca_file {path}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `ca_file` is not a PEM certificate, or TLS cannot be set up with it.
    #[error("mail handler: cannot use {what} for TLS")]
    Tls {
        /// `ca_file <path>` or `the TLS settings`.
        what: String,
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// Sends each task's payload as a mail; see the module documentation.
pub struct MailHandler {
    settings: Arc<Settings>,
    /// Made on first use: lettre's pool starts a background task, which needs the runtime.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

/// Everything needed to make the transport and the messages, checked up front.
struct Settings {
    host: String,
    port: u16,
    tls: Option<(TlsMode, TlsParameters)>,
    credentials: Option<Credentials>,
    from: Mailbox,
    timeout: Duration,
    pool_size: u32,
    limits: Limits,
}

impl std::fmt::Debug for MailHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailHandler")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("from", &self.settings.from.to_string())
            .finish_non_exhaustive()
    }
}

impl MailHandler {
    /// Check the configuration and prepare TLS; the SMTP connection is opened by the first task.
    pub fn new(cfg: &MailConfig) -> Result<Self, MailConfigError> {
        if cfg.host.trim().is_empty() {
            return Err(MailConfigError::MissingHost);
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|source| MailConfigError::BadFrom {
                from: cfg.from.clone(),
                source,
            })?;
        let credentials = match (&cfg.username, cfg.password.is_empty()) {
            (Some(user), _) => Some(Credentials::new(
                user.clone(),
                cfg.password.expose().to_owned(),
            )),
            (None, true) => None,
            (None, false) => return Err(MailConfigError::PasswordWithoutUsername),
        };
        let tls = match cfg.tls {
            TlsMode::None => None,
            mode => Some((mode, tls_parameters(&cfg.host, cfg.ca_file.as_ref())?)),
        };
        Ok(MailHandler {
            settings: Arc::new(Settings {
                host: cfg.host.trim().to_owned(),
                port: cfg.effective_port(),
                tls,
                credentials,
                from,
                timeout: cfg.timeout,
                pool_size: cfg.pool_size.max(1),
                limits: Limits::default(),
            }),
            transport: OnceLock::new(),
        })
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport
            .get_or_init(|| build_transport(&self.settings))
    }
}

fn tls_parameters(host: &str, ca_file: Option<&PathBuf>) -> Result<TlsParameters, MailConfigError> {
    let mut builder = TlsParameters::builder(host.trim().to_owned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| MailConfigError::ReadCa {
            path: path.clone(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|source| MailConfigError::Tls {
            what: format!("ca_file {}", path.display()),
            source,
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|source| MailConfigError::Tls {
            what: "the TLS settings".into(),
            source,
        })
}

fn build_transport(s: &Settings) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = match &s.tls {
        None => Tls::None,
        Some((TlsMode::Tls, params)) => Tls::Wrapper(params.clone()),
        Some((_, params)) => Tls::Required(params.clone()),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
        .port(s.port)
        .tls(tls)
        .timeout(Some(s.timeout))
        .pool_config(PoolConfig::new().max_size(s.pool_size));
    if let Some(credentials) = &s.credentials {
        builder = builder.credentials(credentials.clone());
    }
    builder.build()
}

impl MailHandler {
    /// What to add to a timeout on a STARTTLS or plain connection: an SMTPS port never sends
    /// the greeting those modes wait for.
    fn smtps_hint(&self) -> &'static str {
        let plain_start = matches!(self.settings.tls, Some((TlsMode::Starttls, _)) | None);
        if plain_start && self.settings.port == 465 {
            " (port 465 is usually SMTPS, which speaks TLS from the first byte: use tls = \"tls\")"
        } else {
            ""
        }
    }
}

#[async_trait]
impl Handler for MailHandler {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        let decoded = match payload::decode_for(&task.key, &task.payload, &self.settings.limits) {
            Ok(decoded) => decoded,
            Err(e) => return Outcome::fail(e.to_string()),
        };
        let id = message_id(&task.queue, &task.id, self.settings.from.email.domain());
        let message = match compose(&decoded.fields, &self.settings.from, &id) {
            Ok(message) => message,
            Err(e) => return Outcome::fail(format!("{}: {e}", task.key)),
        };
        let recipients = message.envelope().to().len();
        // The send runs in its own task and is never dropped half-way: lettre would return a
        // connection stuck mid-transaction to the pool. On cancellation we stop waiting; the
        // send finishes or times out on its own, and a retry carries the same Message-ID.
        let transport = self.transport().clone();
        let send = tokio::spawn(async move { transport.send(message).await });
        let outcome = tokio::select! {
            joined = send => match joined {
                Ok(Ok(_)) => Outcome::Done,
                Ok(Err(e)) => classify(&e),
                Err(e) => Outcome::retry(format!("the SMTP send task failed: {e}")),
            },
            () = cancel.cancelled() => Outcome::retry("cancelled while sending the mail"),
            () = tokio::time::sleep(task.timeout) => {
                Outcome::retry(format!("SMTP send took longer than {:?}{}", task.timeout, self.smtps_hint()))
            }
        };
        let outcome = match outcome {
            Outcome::Retry { after, reason } if reason.contains("timed out") => Outcome::Retry {
                after,
                reason: format!("{reason}{}", self.smtps_hint()),
            },
            other => other,
        };
        if outcome == Outcome::Done {
            tracing::info!(queue = %task.queue, key = %task.key, message_id = %id, recipients, "mail sent");
        }
        outcome
    }

    /// Open a connection, with STARTTLS and login as configured, and send NOOP; the
    /// connection then stays in the pool for the first task.
    async fn probe(&self) -> Result<(), ProbeError> {
        let target = format!("SMTP {}:{}", self.settings.host, self.settings.port);
        match self.transport().test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProbeError(format!(
                "{target}: the server did not answer NOOP"
            ))),
            Err(e) => Err(ProbeError(format!("{target}: {e}"))),
        }
    }
}

/// The verdict on an SMTP error: 5xx and problems with this message are permanent; 4xx,
/// connection, TLS and timeout errors may pass.
pub fn classify(err: &lettre::transport::smtp::Error) -> Outcome {
    if err.is_permanent() {
        Outcome::fail(format!("SMTP server refused the mail: {err}"))
    } else if err.is_client() {
        Outcome::fail(format!("cannot send this mail: {err}"))
    } else {
        Outcome::retry(format!("SMTP delivery failed for now: {err}"))
    }
}

/// The `Message-ID` of a task's mail: the same for every attempt of one task (a hash of queue
/// and task id, which may hold characters a Message-ID cannot), in the sender's domain.
pub fn message_id(queue: &str, task_id: &str, domain: &str) -> String {
    let digest = Sha256::new()
        .chain_update(queue.as_bytes())
        .chain_update([0])
        .chain_update(task_id.as_bytes())
        .finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}.bucketq@{domain}>")
}

/// Why a payload cannot become a mail; every variant is a permanent failure.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A required field is absent.
    #[error("field {field} is missing")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("field {field} must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An address does not parse.
    #[error("field {field}: {value:?} is not a valid mail address")]
    BadAddress {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// Why.
        #[source]
        source: lettre::address::AddressError,
    },
    /// No `to_email`, `to`, `cc` or `bcc`.
    #[error("no recipient: set to_email, to, cc or bcc")]
    NoRecipient,
    /// Neither `content` nor `text`.
    #[error("no body: set content (HTML) or text")]
    NoBody,
    /// lettre refused to build the message.
    #[error("cannot build the message")]
    Build(#[source] lettre::error::Error),
}

/// Build the mail for a payload dict. Pure, so every field rule is tested without a server.
pub fn compose(
    fields: &Map<String, Value>,
    from: &Mailbox,
    message_id: &str,
) -> Result<Message, ComposeError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .message_id(Some(message_id.to_owned()))
        .subject(required_str(fields, "subject")?);

    let mut recipients = 0;
    for mailbox in primary_recipients(fields)? {
        builder = builder.to(mailbox);
        recipients += 1;
    }
    for mailbox in mailboxes(fields, "cc")? {
        builder = builder.cc(mailbox);
        recipients += 1;
    }
    for mailbox in mailboxes(fields, "bcc")? {
        builder = builder.bcc(mailbox);
        recipients += 1;
    }
    if recipients == 0 {
        return Err(ComposeError::NoRecipient);
    }
    for mailbox in mailboxes(fields, "reply_to")? {
        builder = builder.reply_to(mailbox);
    }

    let html = optional_str(fields, "content")?;
    let text = optional_str(fields, "text")?;
    let message = match (text, html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        )),
        (None, Some(html)) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.to_owned()),
        ),
        (Some(text), None) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.to_owned()),
        ),
        (None, None) => return Err(ComposeError::NoBody),
    };
    message.map_err(ComposeError::Build)
}

/// `to_email` (with `nickname` as its display name) followed by `to`.
fn primary_recipients(fields: &Map<String, Value>) -> Result<Vec<Mailbox>, ComposeError> {
    let mut out = mailboxes(fields, "to_email")?;
    if let Some(nickname) = optional_str(fields, "nickname")? {
        let nickname = nickname.trim();
        if let [only] = out.as_mut_slice() {
            if only.name.is_none() && !nickname.is_empty() {
                only.name = Some(nickname.to_owned());
            }
        }
    }
    out.extend(mailboxes(fields, "to")?);
    Ok(out)
}

/// A field holding addresses: absent or null (none), a string (one or several comma-separated
/// addresses, each optionally `Name <user@host>`), or a list of such strings.
fn mailboxes(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Vec<Mailbox>, ComposeError> {
    let texts: Vec<&str> = match fields.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or(ComposeError::WrongType {
                    field,
                    expected: "a string or a list of strings",
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ComposeError::WrongType {
                field,
                expected: "a string or a list of strings",
            })
        }
    };
    let mut out = Vec::new();
    for text in texts {
        let parsed: Mailboxes = text
            .trim()
            .parse()
            .map_err(|source| ComposeError::BadAddress {
                field,
                value: text.to_owned(),
                source,
            })?;
        let before = out.len();
        out.extend(parsed);
        if out.len() == before {
            return Err(ComposeError::BadAddress {
                field,
                value: text.to_owned(),
                source: lettre::address::AddressError::MissingParts,
            });
        }
    }
    Ok(out)
}

fn required_str<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ComposeError> {
    optional_str(fields, field)?.ok_or(ComposeError::Missing { field })
}

fn optional_str<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ComposeError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ComposeError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    fn from() -> Mailbox {
        "Trotter <noreply@example.com>".parse().expect("valid")
    }

    fn formatted(v: Value) -> Result<String, ComposeError> {
        compose(&fields(v), &from(), "<x@example.com>")
            .map(|m| String::from_utf8_lossy(&m.formatted()).into_owned())
    }

    #[test]
    fn issue_payload_becomes_an_html_mail_to_the_nickname() {
        let m = compose(
            &fields(
                json!({"nickname": "Testing", "to_email": "someone@example.com",
                           "subject": "测试邮件", "content": "<b>仅仅是测试</b>"}),
            ),
            &from(),
            "<id@example.com>",
        )
        .expect("composes");
        let text = String::from_utf8_lossy(&m.formatted()).into_owned();
        assert!(text.contains("To: Testing <someone@example.com>"), "{text}");
        assert!(
            text.contains("From: Trotter <noreply@example.com>"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <id@example.com>"), "{text}");
        assert!(text.contains("Subject: =?utf-8?b?"), "{text}");
        assert!(
            text.contains("Content-Type: text/html; charset=utf-8"),
            "{text}"
        );
        assert_eq!(m.envelope().to().len(), 1);
    }

    #[test]
    fn recipients_from_every_field_and_bcc_hidden() {
        let m = compose(
            &fields(
                json!({"to": ["a@x.org", "B <b@x.org>"], "cc": "c@x.org, d@x.org",
                           "bcc": "e@x.org", "reply_to": "r@x.org", "subject": "s",
                           "content": "<p>h</p>", "text": "t"}),
            ),
            &from(),
            "<id@example.com>",
        )
        .expect("composes");
        let rcpt: Vec<String> = m.envelope().to().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            rcpt,
            ["a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"]
        );
        let text = String::from_utf8_lossy(&m.formatted()).into_owned();
        assert!(
            !text.contains("e@x.org"),
            "Bcc must not be a header: {text}"
        );
        assert!(text.contains("Reply-To: r@x.org"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = json!({"to_email": "a@x.org", "subject": "s", "content": "c"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            formatted(b).expect_err("must fail").to_string()
        };
        assert_eq!(
            with("to_email", json!("not an address")),
            "field to_email: \"not an address\" is not a valid mail address"
        );
        assert_eq!(
            with("to_email", json!(5)),
            "field to_email must be a string or a list of strings"
        );
        assert_eq!(
            with("subject", json!(["x"])),
            "field subject must be a string"
        );
        assert_eq!(
            with("to", json!(["ok@x.org", ""])),
            "field to: \"\" is not a valid mail address"
        );
        let e = formatted(json!({"subject": "s", "content": "c"})).expect_err("no rcpt");
        assert!(matches!(e, ComposeError::NoRecipient));
        let e = formatted(json!({"to_email": "a@x.org", "content": "c"})).expect_err("no subject");
        assert_eq!(e.to_string(), "field subject is missing");
        let e = formatted(json!({"to_email": "a@x.org", "subject": "s"})).expect_err("no body");
        assert!(matches!(e, ComposeError::NoBody));
    }

    #[test]
    fn message_id_is_stable_per_task_and_differs_between_tasks() {
        let a = message_id("mail", "42", "example.com");
        assert_eq!(a, message_id("mail", "42", "example.com"));
        assert_ne!(a, message_id("mail", "43", "example.com"));
        assert_ne!(a, message_id("mail4", "2", "example.com"));
        assert!(
            a.starts_with('<') && a.ends_with(".bucketq@example.com>"),
            "{a}"
        );
        assert_eq!(a.len(), "<.bucketq@example.com>".len() + 32);
    }

    #[test]
    fn config_takes_fc_environment_names_as_defaults() {
        let mut cfg: MailConfig = toml_like(json!({"from": "a@x.org"}));
        let env = |name: &str| match name {
            "EMAIL_SERVER_HOST" => Some("smtp.x.org".to_owned()),
            "EMAIL_SERVER_PORT" => Some("2525".to_owned()),
            "EMAIL_USERNAME" => Some("u".to_owned()),
            "EMAIL_PASSWORD" => Some("hunter2".to_owned()),
            _ => None,
        };
        cfg.fill_from_fc_env(env).expect("valid");
        assert_eq!(cfg.host, "smtp.x.org");
        assert_eq!(cfg.effective_port(), 2525);
        assert_eq!(cfg.username.as_deref(), Some("u"));
        assert_eq!(cfg.password.expose(), "hunter2");
        assert!(!format!("{cfg:?}").contains("hunter2"));

        let mut set: MailConfig = toml_like(json!({"host": "h", "port": 25, "from": "a@x.org"}));
        set.fill_from_fc_env(env).expect("valid");
        assert_eq!((set.host.as_str(), set.effective_port()), ("h", 25));
    }

    #[test]
    fn config_errors_are_clear() {
        let err = |v: Value| {
            MailHandler::new(&toml_like(v))
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(json!({"from": "a@x.org"})).contains("`host` is empty"));
        assert!(err(json!({"host": "h", "from": "nope"})).contains("`from` \"nope\""));
        assert!(
            err(json!({"host": "h", "from": "a@x.org", "password": "p"}))
                .contains("`username` is not")
        );
        assert!(
            err(json!({"host": "h", "from": "a@x.org", "ca_file": "/nonexistent"}))
                .contains("cannot read ca_file")
        );
        let ok: MailConfig = toml_like(json!({"host": "h", "from": "a@x.org", "tls": "none"}));
        assert_eq!(ok.effective_port(), 25);
        assert!(MailHandler::new(&ok).is_ok());
    }

    fn toml_like(v: Value) -> MailConfig {
        serde_json::from_value(v).expect("valid config")
    }
}
