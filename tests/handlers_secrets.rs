//! No configured secret (SMTP password, webhook URL token and header values, exec environment
//! values) appears in any log line, outcome reason, probe error or `Debug` output of the
//! handlers, across successes and failures. Logs are captured at TRACE level.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bucketq::handlers::exec::{ExecConfig, ExecEvent, ExecHandler};
use bucketq::handlers::mail::{MailConfig, MailHandler};
use bucketq::handlers::webhook::{WebhookBody, WebhookConfig, WebhookHandler};
use bucketq::handlers::{Handler, Outcome};
use bucketq::secret::Secret;
use serde_json::json;
use support::http::{HttpServer, Reply};
use support::smtp::{SmtpServer, TestCerts};
use tokio_util::sync::CancellationToken;

const SMTP_PASSWORD: &str = "smtp-PW-7f3a9c";
const URL_TOKEN: &str = "urltok-51be0e";
const HEADER_TOKEN: &str = "hdrtok-c0ffee";
const EXEC_SECRET: &str = "execenv-9d2b44";

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".into(),
        Outcome::Retry { reason, .. } | Outcome::Fail { reason } => reason.clone(),
    }
}

#[tokio::test]
async fn no_secret_reaches_logs_reasons_or_debug_output() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut seen = Vec::new();

    // mail: STARTTLS + login, then the wrong password.
    let certs = TestCerts::make();
    let server = SmtpServer::start(&[
        "--starttls",
        &certs.path("leaf.pem"),
        &certs.path("leaf.key"),
        "--auth",
        &format!("mailer:{SMTP_PASSWORD}"),
    ]);
    let mut mail: MailConfig = serde_json::from_value(json!({
        "host": "127.0.0.1", "port": server.port, "tls": "starttls", "username": "mailer",
        "password": SMTP_PASSWORD, "from": "Ops <ops@example.com>", "ca_file": certs.path("ca.pem"),
    }))
    .expect("mail config");
    let payload = r#"{"to_email": "a@example.com", "subject": "s", "content": "c"}"#;
    let handler = MailHandler::new(&mail).expect("mail handler");
    let task = support::task("mail", "1", payload);
    let outcome = handler.handle(&task, CancellationToken::new()).await;
    assert_eq!(outcome, Outcome::Done);
    seen.push(format!("{mail:?} {handler:?}"));
    mail.password = Secret::new(format!("{SMTP_PASSWORD}-wrong"));
    let handler = MailHandler::new(&mail).expect("mail handler");
    let outcome = handler.handle(&task, CancellationToken::new()).await;
    assert!(matches!(outcome, Outcome::Fail { .. }), "{outcome:?}");
    seen.push(reason(&outcome));
    seen.push(
        handler
            .probe()
            .await
            .expect_err("wrong password")
            .to_string(),
    );

    // webhook: token in the URL path and in a header; a success and a 400.
    let http = HttpServer::start(vec![Reply::Status(400, vec![], "no")]).await;
    let hook = WebhookConfig {
        url: Secret::new(http.url(&format!("/hooks/{URL_TOKEN}"))),
        headers: [(
            "Authorization".to_owned(),
            Secret::new(format!("Bearer {HEADER_TOKEN}")),
        )]
        .into(),
        body: WebhookBody::AsIs,
        timeout: Duration::from_secs(5),
        ca_file: None,
    };
    let handler = WebhookHandler::new(&hook).expect("webhook handler");
    let task = support::task("hooks", "1", payload);
    let outcome = handler.handle(&task, CancellationToken::new()).await;
    assert!(matches!(outcome, Outcome::Fail { .. }), "{outcome:?}");
    seen.push(reason(&outcome));
    assert_eq!(
        handler.handle(&task, CancellationToken::new()).await,
        Outcome::Done
    );
    assert_eq!(
        http.seen()[1].header("authorization"),
        Some(&*format!("Bearer {HEADER_TOKEN}")),
        "the header really was sent"
    );
    seen.push(format!("{hook:?} {handler:?}"));

    // exec: a secret in the command's environment, a success and a failure.
    let exec = |script: &str| ExecConfig {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        event: ExecEvent::Payload,
        env: [("API_TOKEN".to_owned(), Secret::new(EXEC_SECRET))].into(),
        inherit_env: false,
        working_dir: None,
        region: None,
        account_id: None,
        output_limit: 4096,
    };
    let ok = exec(r#"[ "${#API_TOKEN}" -eq 14 ] && echo fine"#);
    let handler = ExecHandler::new(&ok).expect("exec handler");
    let task = support::task("jobs", "1", payload);
    assert_eq!(
        handler.handle(&task, CancellationToken::new()).await,
        Outcome::Done,
        "the command got the secret"
    );
    let bad = exec("echo failing >&2; exit 4");
    let handler = ExecHandler::new(&bad).expect("exec handler");
    let outcome = handler.handle(&task, CancellationToken::new()).await;
    seen.push(reason(&outcome));
    seen.push(format!("{bad:?} {handler:?}"));

    let logs = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("UTF-8 logs");
    for expected in [
        "mail sent",
        "webhook delivered",
        "command succeeded",
        "command failed",
    ] {
        assert!(
            logs.contains(expected),
            "the capture missed {expected:?}:\n{logs}"
        );
    }
    let haystack = format!("{logs}\n{}", seen.join("\n"));
    for secret in [SMTP_PASSWORD, URL_TOKEN, HEADER_TOKEN, EXEC_SECRET] {
        assert!(!haystack.contains(secret), "{secret} leaked:\n{haystack}");
    }
}
