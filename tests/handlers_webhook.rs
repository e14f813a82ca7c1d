//! The `webhook` handler against a real HTTP/1.1 server on 127.0.0.1: a small tokio server in
//! this file that records each request and answers from a script of statuses.

mod support;

use support::http::{HttpServer, Reply};

use std::time::{Duration, SystemTime};

use bucketq::handlers::webhook::{idempotency_key, WebhookBody, WebhookConfig, WebhookHandler};
use bucketq::handlers::{Handler, Outcome, Task};
use bucketq::secret::Secret;
use tokio_util::sync::CancellationToken;

fn config(url: String) -> WebhookConfig {
    WebhookConfig {
        url: Secret::new(url),
        headers: [
            ("Authorization".to_owned(), Secret::new("Bearer t0ken-xyz")),
            ("X-Team".to_owned(), Secret::new("ops")),
        ]
        .into(),
        body: WebhookBody::AsIs,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

const JSON: &str =
    r#"{"nickname": "Testing", "to_email": "someone@example.com", "subject": "测试邮件"}"#;

async fn handle(handler: &WebhookHandler, task: &Task) -> Outcome {
    handler.handle(task, CancellationToken::new()).await
}

#[tokio::test]
async fn unavailable_then_ok_retries_with_a_stable_idempotency_key() {
    let server = HttpServer::start(vec![Reply::Status(503, vec![], "busy")]).await;
    let handler = WebhookHandler::new(&config(server.url("/hook/s3cr3t-path"))).expect("handler");
    handler
        .probe()
        .await
        .expect("the server accepts connections");
    let mut task = support::task("hooks", "42", JSON);
    match handle(&handler, &task).await {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, None);
            assert!(
                reason.contains("503") && reason.contains("busy"),
                "{reason}"
            );
            assert!(
                !reason.contains("s3cr3t"),
                "the URL path must not leak: {reason}"
            );
        }
        other => panic!("503 gave {other:?}"),
    }
    task.attempt = 2;
    assert_eq!(handle(&handler, &task).await, Outcome::Done);

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for (i, req) in seen.iter().enumerate() {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/hook/s3cr3t-path");
        assert_eq!(req.body, JSON.as_bytes(), "payload bytes unchanged");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("authorization"), Some("Bearer t0ken-xyz"));
        assert_eq!(req.header("x-team"), Some("ops"));
        assert_eq!(req.header("x-bucketq-key"), Some("hooks/42.task"));
        assert_eq!(req.header("x-bucketq-attempt"), Some(&*(i + 1).to_string()));
    }
    let key = seen[0].header("idempotency-key").expect("idempotency key");
    assert_eq!(seen[1].header("idempotency-key"), Some(key));
    assert_eq!(key, idempotency_key(&task));
    assert_eq!(key.len(), 32);

    // Another task, or the same id rewritten with new content, gets another key.
    let other = support::task("hooks", "43", JSON);
    assert_ne!(idempotency_key(&other), key);
    let mut rewritten = support::task("hooks", "42", JSON);
    rewritten.etag = "0000".into();
    assert_ne!(idempotency_key(&rewritten), key);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after_seconds_and_dates() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let server = HttpServer::start(vec![
        Reply::Status(429, vec![("Retry-After", "7".into())], ""),
        Reply::Status(503, vec![("Retry-After", date)], ""),
        Reply::Status(408, vec![], ""),
        Reply::Status(500, vec![], "oops"),
    ])
    .await;
    let handler = WebhookHandler::new(&config(server.url("/"))).expect("handler");
    let task = support::task("hooks", "1", JSON);
    match handle(&handler, &task).await {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(7)));
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("429 gave {other:?}"),
    }
    match handle(&handler, &task).await {
        Outcome::Retry { after, .. } => {
            let after = after.expect("a date Retry-After");
            assert!(
                (Duration::from_secs(110)..=Duration::from_secs(120)).contains(&after),
                "{after:?}"
            );
        }
        other => panic!("503 with a date gave {other:?}"),
    }
    assert!(matches!(
        handle(&handler, &task).await,
        Outcome::Retry { after: None, .. }
    ));
    assert!(matches!(
        handle(&handler, &task).await,
        Outcome::Retry { after: None, .. }
    ));
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn client_errors_and_redirects_fail_for_good() {
    let server = HttpServer::start(vec![
        Reply::Status(400, vec![], "{\"error\": \"missing field\"}"),
        Reply::Status(404, vec![], ""),
        Reply::Status(302, vec![("Location", "/elsewhere".into())], ""),
    ])
    .await;
    let handler = WebhookHandler::new(&config(server.url("/"))).expect("handler");
    let task = support::task("hooks", "1", JSON);
    match handle(&handler, &task).await {
        Outcome::Fail { reason } => {
            assert!(
                reason.contains("400") && reason.contains("missing field"),
                "{reason}"
            )
        }
        other => panic!("400 gave {other:?}"),
    }
    assert!(matches!(
        handle(&handler, &task).await,
        Outcome::Fail { .. }
    ));
    match handle(&handler, &task).await {
        Outcome::Fail { reason } => assert!(reason.contains("redirect"), "{reason}"),
        other => panic!("302 gave {other:?}"),
    }
    // The redirect was not followed.
    assert_eq!(server.seen().len(), 3);
    assert!(server.seen().iter().all(|r| r.path == "/"));
}

#[tokio::test]
async fn pickles_are_sent_as_is_or_converted_to_json() {
    let cases = support::all_pickles();
    let pickle = support::pickle_case(&cases, "issue", "3", 4);
    let server = HttpServer::start(vec![]).await;

    let handler = WebhookHandler::new(&config(server.url("/raw"))).expect("handler");
    let task = support::task("hooks", "p", pickle.clone());
    assert_eq!(handle(&handler, &task).await, Outcome::Done);

    let mut cfg = config(server.url("/json"));
    cfg.body = WebhookBody::Json;
    let handler = WebhookHandler::new(&cfg).expect("handler");
    assert_eq!(handle(&handler, &task).await, Outcome::Done);

    let seen = server.seen();
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/python-pickle")
    );
    assert_eq!(seen[0].body, pickle);
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).expect("JSON body");
    assert_eq!(body["subject"], "测试邮件");
    assert_eq!(body["to_email"], "someone@example.com");
}

#[tokio::test]
async fn timeouts_connection_errors_and_cancellation_retry() {
    let server = HttpServer::start(vec![Reply::Hang, Reply::Hang]).await;
    let mut cfg = config(server.url("/"));
    cfg.timeout = Duration::from_millis(300);
    let handler = WebhookHandler::new(&cfg).expect("handler");
    let task = support::task("hooks", "slow", JSON);
    let started = std::time::Instant::now();
    match handle(&handler, &task).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a hanging server gave {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // Cancellation stops waiting at once.
    let cancel = CancellationToken::new();
    cancel.cancel();
    cfg.timeout = Duration::from_secs(20);
    let handler = WebhookHandler::new(&cfg).expect("handler");
    match handler.handle(&task, cancel).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("cancelled"), "{reason}"),
        other => panic!("cancel gave {other:?}"),
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let handler =
        WebhookHandler::new(&config(format!("http://127.0.0.1:{port}/x"))).expect("handler");
    let probe = handler
        .probe()
        .await
        .expect_err("nothing listens")
        .to_string();
    assert!(probe.contains("refused"), "{probe}");
    match handle(&handler, &task).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("refused"), "{reason}"),
        other => panic!("connection refused gave {other:?}"),
    }
}

#[tokio::test]
async fn bad_payloads_fail_naming_the_key_without_a_request() {
    let cases = support::all_pickles();
    let server = HttpServer::start(vec![]).await;
    let handler = WebhookHandler::new(&config(server.url("/"))).expect("handler");
    for (id, bytes, phrase) in [
        (
            "list",
            support::pickle_case(&cases, "list", "2", 2),
            "pickle of a list",
        ),
        (
            "obj",
            support::pickle_case(&cases, "instance", "3", 5),
            "only plain data",
        ),
        (
            "cut",
            support::pickle_case(&cases, "truncated", "3", 3),
            "truncated",
        ),
        (
            "rnd",
            support::pickle_case(&cases, "random", "3", -1),
            "neither",
        ),
        ("arr", b"[1, 2]".to_vec(), "JSON array"),
    ] {
        match handle(&handler, &support::task("hooks", id, bytes)).await {
            Outcome::Fail { reason } => {
                assert!(reason.contains(&format!("hooks/{id}.task")), "{reason}");
                assert!(reason.contains(phrase), "{id}: {reason}");
            }
            other => panic!("{id} gave {other:?}"),
        }
    }
    assert!(server.seen().is_empty());
}
