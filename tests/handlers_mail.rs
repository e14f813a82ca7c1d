//! The `mail` handler against a real SMTP server (aiosmtpd from the test venv, started per test
//! on a free 127.0.0.1 port by `tests/support/smtp_server.py`), with payloads Python itself
//! pickled. The server decodes each mail with Python's `email` package, so the checks are on
//! what a mail client would show.

mod support;

use support::smtp::{SmtpServer, TestCerts};

use bucketq::handlers::mail::{message_id, MailConfig, MailHandler};
use bucketq::handlers::{Handler, Outcome};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn config(port: u16, extra: Value) -> MailConfig {
    let mut base = json!({
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": "Trotter <noreply@example.com>",
        "timeout": "5s",
    });
    for (k, v) in extra.as_object().expect("object") {
        base[k] = v.clone();
    }
    serde_json::from_value(base).expect("valid mail config")
}

async fn handle(handler: &MailHandler, id: &str, payload: Vec<u8>) -> Outcome {
    handler
        .handle(
            &support::task("mail", id, payload),
            CancellationToken::new(),
        )
        .await
}

const ISSUE_JSON: &str = r#"{"nickname": "Testing", "to_email": "someone@example.com",
    "subject": "测试邮件", "content": "仅仅是测试"}"#;

fn assert_issue_mail(mail: &Value, label: &str) {
    assert_eq!(mail["rcpt_tos"], json!(["someone@example.com"]), "{label}");
    assert_eq!(mail["mail_from"], "noreply@example.com", "{label}");
    assert_eq!(mail["subject"], "测试邮件", "{label}");
    assert_eq!(mail["to"], "Testing <someone@example.com>", "{label}");
    assert_eq!(mail["from"], "Trotter <noreply@example.com>", "{label}");
    assert_eq!(mail["content_type"], "text/html", "{label}");
    assert_eq!(
        mail["html"].as_str().map(str::trim_end),
        Some("仅仅是测试"),
        "{label}"
    );
}

#[tokio::test]
async fn python_pickles_and_json_arrive_as_utf8_html_mails_over_one_connection() {
    let server = SmtpServer::start(&[]);
    let handler = MailHandler::new(&config(server.port, json!({}))).expect("handler");
    let cases = support::all_pickles();
    let mut sent = vec![("json".to_owned(), ISSUE_JSON.as_bytes().to_vec())];
    for (python, protocol) in [("2", 0), ("2", 2), ("3", 0), ("3", 2), ("3", 4), ("3", 5)] {
        sent.push((
            format!("py{python}-p{protocol}"),
            support::pickle_case(&cases, "issue", python, protocol),
        ));
    }
    // Python 2 producers wrote plain `str` literals (UTF-8 bytes), as in the issue.
    sent.push((
        "py2-str-p0".into(),
        support::pickle_case(&cases, "issue-str", "2", 0),
    ));
    for (label, bytes) in &sent {
        assert_eq!(
            handle(&handler, label, bytes.clone()).await,
            Outcome::Done,
            "{label}"
        );
    }
    let mails = server.mails(sent.len());
    assert_eq!(mails.len(), sent.len());
    for ((label, _), mail) in sent.iter().zip(&mails) {
        assert_issue_mail(mail, label);
        assert_eq!(
            mail["message_id"],
            message_id("mail", label, "example.com"),
            "{label}"
        );
    }
    // The pool kept the first connection for every later mail.
    let first = &mails[0]["connection"];
    assert!(mails.iter().all(|m| &m["connection"] == first), "{mails:?}");
}

#[tokio::test]
async fn starttls_with_a_private_ca_and_login() {
    let certs = TestCerts::make();
    let server = SmtpServer::start(&[
        "--starttls",
        &certs.path("leaf.pem"),
        &certs.path("leaf.key"),
        "--auth",
        "mailer:s3cret-pw",
    ]);
    let cfg = config(
        server.port,
        json!({"tls": "starttls", "username": "mailer", "password": "s3cret-pw",
               "ca_file": certs.path("ca.pem")}),
    );
    assert!(!format!("{cfg:?}").contains("s3cret-pw"));
    let handler = MailHandler::new(&cfg).expect("handler");
    // `bucketq doctor`: connect, STARTTLS, AUTH, NOOP.
    handler.probe().await.expect("probe succeeds");
    assert_eq!(
        handle(&handler, "tls-1", ISSUE_JSON.into()).await,
        Outcome::Done
    );
    let mails = server.mails(1);
    assert_eq!(mails.len(), 1);
    assert_issue_mail(&mails[0], "starttls");
    assert_eq!(mails[0]["tls"], true);
    assert_eq!(mails[0]["login"], "mailer");

    // The wrong password: 535 is permanent.
    let mut bad = cfg.clone();
    bad.password = bucketq::secret::Secret::new("wrong");
    let handler = MailHandler::new(&bad).expect("handler");
    let probe = handler
        .probe()
        .await
        .expect_err("wrong password")
        .to_string();
    assert!(probe.contains("535") && !probe.contains("wrong"), "{probe}");
    match handle(&handler, "tls-2", ISSUE_JSON.into()).await {
        Outcome::Fail { reason } => assert!(reason.contains("535"), "{reason}"),
        other => panic!("wrong password gave {other:?}"),
    }

    // Without the private CA the certificate is untrusted: a TLS error, retried.
    let mut untrusted = cfg.clone();
    untrusted.ca_file = None;
    let handler = MailHandler::new(&untrusted).expect("handler");
    match handle(&handler, "tls-3", ISSUE_JSON.into()).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("UnknownIssuer"), "{reason}"),
        other => panic!("untrusted certificate gave {other:?}"),
    }
    assert_eq!(
        server.mails(1).len(),
        1,
        "only the first mail was delivered"
    );
}

#[tokio::test]
async fn implicit_tls() {
    let certs = TestCerts::make();
    let server = SmtpServer::start(&[
        "--implicit-tls",
        &certs.path("leaf.pem"),
        &certs.path("leaf.key"),
    ]);
    let cfg = config(
        server.port,
        json!({"tls": "tls", "host": "localhost", "ca_file": certs.path("ca.pem")}),
    );
    let handler = MailHandler::new(&cfg).expect("handler");
    assert_eq!(
        handle(&handler, "smtps", ISSUE_JSON.into()).await,
        Outcome::Done
    );
    assert_issue_mail(&server.mails(1)[0], "implicit tls");
}

#[tokio::test]
async fn transient_451_retries_then_delivers_once_with_the_same_message_id() {
    let server = SmtpServer::start(&["--script", "451,250"]);
    let handler = MailHandler::new(&config(server.port, json!({}))).expect("handler");
    match handle(&handler, "t451", ISSUE_JSON.into()).await {
        Outcome::Retry { reason, after } => {
            assert!(reason.contains("451"), "{reason}");
            assert_eq!(after, None);
        }
        other => panic!("451 gave {other:?}"),
    }
    assert_eq!(
        handle(&handler, "t451", ISSUE_JSON.into()).await,
        Outcome::Done
    );
    // The server writes each record before it answers 250, so the count is final here.
    let mails = server.mails(1);
    assert_eq!(mails.len(), 1, "one delivery");
    assert_eq!(
        mails[0]["message_id"],
        message_id("mail", "t451", "example.com")
    );
}

#[tokio::test]
async fn permanent_550_fails_with_the_reason() {
    let server = SmtpServer::start(&["--script", "550"]);
    let handler = MailHandler::new(&config(server.port, json!({}))).expect("handler");
    match handle(&handler, "t550", ISSUE_JSON.into()).await {
        Outcome::Fail { reason } => {
            assert!(reason.contains("550"), "{reason}");
            assert!(reason.contains("Mailbox unavailable"), "{reason}");
        }
        other => panic!("550 gave {other:?}"),
    }
    // The pool recovers: the next task on the same handler is delivered.
    assert_eq!(
        handle(&handler, "after550", ISSUE_JSON.into()).await,
        Outcome::Done
    );
    assert_eq!(server.mails(1).len(), 1);
}

#[tokio::test]
async fn every_recipient_field_plain_alternative_and_hidden_bcc() {
    let server = SmtpServer::start(&[]);
    let handler = MailHandler::new(&config(server.port, json!({}))).expect("handler");
    let payload = json!({
        "nickname": "张三", "to_email": "zhang@example.com",
        "to": ["Ann <ann@example.com>", "bob@example.com"], "cc": "cat@example.com",
        "bcc": ["dan@example.com"], "reply_to": "Help <help@example.com>",
        "subject": "Hello 你好", "content": "<p>你好</p>", "text": "你好 plain",
    });
    let outcome = handle(&handler, "multi", payload.to_string().into_bytes()).await;
    assert_eq!(outcome, Outcome::Done);
    let mail = &server.mails(1)[0];
    assert_eq!(
        mail["rcpt_tos"],
        json!([
            "zhang@example.com",
            "ann@example.com",
            "bob@example.com",
            "cat@example.com",
            "dan@example.com"
        ])
    );
    assert_eq!(
        mail["to"],
        "张三 <zhang@example.com>, Ann <ann@example.com>, bob@example.com"
    );
    assert_eq!(mail["cc"], "cat@example.com");
    assert_eq!(mail["bcc_header"], false);
    assert_eq!(mail["reply_to"], "Help <help@example.com>");
    assert_eq!(mail["subject"], "Hello 你好");
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert_eq!(
        mail["html"].as_str().map(str::trim_end),
        Some("<p>你好</p>")
    );
    assert_eq!(mail["text"].as_str().map(str::trim_end), Some("你好 plain"));
}

#[tokio::test]
async fn bad_payloads_fail_naming_the_key_and_later_tasks_still_flow() {
    let server = SmtpServer::start(&[]);
    let handler = MailHandler::new(&config(server.port, json!({}))).expect("handler");
    let cases = support::all_pickles();
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "list",
            support::pickle_case(&cases, "list", "3", 4),
            "pickle of a list",
        ),
        (
            "instance",
            support::pickle_case(&cases, "instance", "3", 2),
            "only plain data",
        ),
        (
            "instance2",
            support::pickle_case(&cases, "instance", "2", 0),
            "only plain data",
        ),
        (
            "truncated",
            support::pickle_case(&cases, "truncated", "3", 5),
            "truncated",
        ),
        (
            "random",
            support::pickle_case(&cases, "random", "3", -1),
            "neither a JSON object",
        ),
        (
            "noaddr",
            br#"{"subject": "s", "content": "c"}"#.to_vec(),
            "no recipient",
        ),
        (
            "badaddr",
            br#"{"to_email": "nobody", "subject": "s", "content": "c"}"#.to_vec(),
            "field to_email",
        ),
    ];
    for (id, bytes, phrase) in bad {
        match handle(&handler, id, bytes).await {
            Outcome::Fail { reason } => {
                assert!(
                    reason.contains(&format!("mail/{id}.task")),
                    "{id}: {reason}"
                );
                assert!(reason.contains(phrase), "{id}: {reason}");
            }
            other => panic!("{id} gave {other:?}"),
        }
    }
    assert_eq!(
        handle(&handler, "good", ISSUE_JSON.into()).await,
        Outcome::Done
    );
    let mails = server.mails(1);
    assert_eq!(mails.len(), 1);
    assert_issue_mail(&mails[0], "good after bad");
}

#[tokio::test]
async fn no_server_is_a_retry() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let handler = MailHandler::new(&config(port, json!({}))).expect("handler");
    let probe = handler
        .probe()
        .await
        .expect_err("nothing listens")
        .to_string();
    assert!(probe.contains(&format!("127.0.0.1:{port}")), "{probe}");
    match handle(&handler, "down", ISSUE_JSON.into()).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("onnection"), "{reason}"),
        other => panic!("connection refused gave {other:?}"),
    }
}
