//! The `webhook` handler against a real HTTP/1.1 server on 127.0.0.1: a small tokio server in
//! this file that records each request and answers from a script of statuses.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bucketq::handlers::webhook::{idempotency_key, WebhookBody, WebhookConfig, WebhookHandler};
use bucketq::handlers::{Handler, Outcome, Task};
use bucketq::secret::Secret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers next.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16, Vec<(&'static str, String)>, &'static str),
    /// Accept the request and never answer.
    Hang,
}

struct HttpServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    /// Serve `script` in order, then 200 for ever.
    async fn start(script: Vec<Reply>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen2);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    // Keep-alive: answer requests on this connection until it closes.
                    while let Some(request) = read_request(&mut reader).await {
                        seen.lock().expect("lock").push(request);
                        let reply = script
                            .lock()
                            .expect("lock")
                            .pop_front()
                            .unwrap_or(Reply::Status(200, vec![], "ok"));
                        let (code, headers, body) = match reply {
                            Reply::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                            Reply::Status(code, headers, body) => (code, headers, body),
                        };
                        let mut head =
                            format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\n", body.len());
                        for (name, value) in headers {
                            head.push_str(&format!("{name}: {value}\r\n"));
                        }
                        head.push_str("\r\n");
                        let stream = reader.get_mut();
                        if stream.write_all(head.as_bytes()).await.is_err()
                            || stream.write_all(body.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        HttpServer { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn read_request(reader: &mut BufReader<tokio::net::TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

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
