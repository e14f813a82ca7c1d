//! The transport under faults no real server produces on demand: 503 then 200, a reset
//! connection, an answer slower than the timeout, a store that never recovers, a copy that
//! fails with status 200, wrong credentials. Each runs the real S3 store and transport against
//! a canned server on 127.0.0.1 and checks what was sent, what came back, and what was counted.

#[path = "support/fake_http.rs"]
mod fake_http;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::secret::Secret;
use bucketq::store::s3::S3Store;
use bucketq::store::transport::{RetryPolicy, TransportConfig};
use bucketq::store::{CopyOptions, Op, PutOptions, RequestStats, Store, StoreError, WriteMode};
use bytes::Bytes;
use fake_http::{FakeServer, Reply};

const SECRET: &str = "fault-test-secret-value";

/// A clock that moves one second per reading, so every signature is made at a new time.
fn ticking_clock() -> Arc<dyn Fn() -> SystemTime + Send + Sync> {
    let ticks = Arc::new(AtomicU64::new(0));
    Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(1_740_816_000 + ticks.fetch_add(1, Ordering::SeqCst))
    })
}

fn store_for(server: &FakeServer, max_retries: u32) -> (S3Store, Arc<RequestStats>) {
    let cfg = StoreConfig {
        kind: StoreBackend::S3,
        endpoint: Some(server.endpoint()),
        bucket: "bkt".into(),
        path_style: true,
        access_key_id: Secret::new("AKIDFAULTTEST"),
        access_key_secret: Secret::new(SECRET),
        ..StoreConfig::default()
    };
    let transport = TransportConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(800),
        retry: RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(80),
        },
        clock: ticking_clock(),
        ..TransportConfig::new(Duration::from_secs(2), max_retries)
    };
    let stats = Arc::new(RequestStats::default());
    let store = S3Store::with_transport(&cfg, transport, Arc::clone(&stats)).expect("store opens");
    (store, stats)
}

fn count(stats: &RequestStats, op: Op, result: &str) -> u64 {
    stats
        .snapshot()
        .get(&(op, result.to_owned()))
        .copied()
        .unwrap_or(0)
}

fn create_if_absent() -> PutOptions {
    PutOptions {
        mode: WriteMode::CreateIfAbsent,
        ..PutOptions::default()
    }
}

#[tokio::test]
async fn a_503_is_retried_and_the_retry_is_signed_afresh() {
    let server = FakeServer::scripted(vec![
        Reply::error(503, "SlowDown"),
        Reply::empty(200).with_header("ETag", "\"abc\""),
    ])
    .await;
    let (store, stats) = store_for(&server, 3);
    let written = store
        .put(
            "mail/1.task",
            Bytes::from_static(b"payload"),
            &PutOptions::default(),
        )
        .await
        .expect("the retry succeeds");
    assert_eq!(written.etag.as_deref(), Some("abc"));

    let seen = server.requests();
    assert_eq!(seen.len(), 2, "one failed attempt, one retry");
    let dates: Vec<&str> = seen
        .iter()
        .map(|r| r.header("x-amz-date").expect("signed"))
        .collect();
    assert_ne!(dates[0], dates[1], "the retry carries a new x-amz-date");
    assert_ne!(
        seen[0].header("authorization"),
        seen[1].header("authorization"),
        "the retry carries a new signature"
    );
    assert_eq!(seen[1].body, b"payload", "the retry resends the body");
    assert_eq!(count(&stats, Op::Put, "503"), 1);
    assert_eq!(count(&stats, Op::Put, "ok"), 1);
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let server = FakeServer::scripted(vec![
        Reply::Reset,
        Reply::empty(200)
            .with_header("ETag", "\"e\"")
            .with_header("Last-Modified", "Sat, 01 Mar 2025 08:00:00 GMT")
            .with_header("x-amz-meta-bq-token", "tok"),
    ])
    .await;
    let (store, stats) = store_for(&server, 3);
    let head = store.head("mail/1.lock").await.expect("the retry succeeds");
    assert_eq!(
        head.user_meta.get("bq-token").map(String::as_str),
        Some("tok")
    );
    assert_eq!(server.requests().len(), 2);
    assert_eq!(
        count(&stats, Op::Head, "error"),
        1,
        "the reset is counted as an error"
    );
    assert_eq!(count(&stats, Op::Head, "ok"), 1);
}

#[tokio::test]
async fn a_store_that_stays_down_gives_transient_after_bounded_retries() {
    let server = FakeServer::scripted(vec![Reply::error(503, "ServiceUnavailable")]).await;
    let (store, stats) = store_for(&server, 2);
    let err = store.get("mail/1.task").await.expect_err("never recovers");
    match &err {
        StoreError::Transient { key, op, message } => {
            assert_eq!(key, "mail/1.task");
            assert_eq!(*op, Op::Get);
            assert!(message.contains("503"), "{message}");
            assert!(message.contains("after 3 attempts"), "{message}");
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(server.requests().len(), 3, "max_retries 2 means 3 attempts");
    assert_eq!(count(&stats, Op::Get, "503"), 3);
}

#[tokio::test]
async fn wrong_credentials_fail_at_once_without_retrying() {
    let server = FakeServer::scripted(vec![Reply::error(403, "SignatureDoesNotMatch")]).await;
    let (store, stats) = store_for(&server, 5);
    let started = Instant::now();
    let err = store.get("k").await.expect_err("refused");
    assert!(
        matches!(&err, StoreError::Unauthenticated { code, .. } if code == "SignatureDoesNotMatch"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no backoff happened"
    );
    assert_eq!(server.requests().len(), 1, "no retry loop");
    assert_eq!(count(&stats, Op::Get, "403"), 1);
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    assert!(!text.contains("AWS4-HMAC-SHA256"), "{text}");
}

#[tokio::test]
async fn a_create_retried_after_a_5xx_that_then_exists_is_ambiguous() {
    let server = FakeServer::scripted(vec![
        Reply::error(500, "InternalError"),
        Reply::error(412, "PreconditionFailed"),
    ])
    .await;
    let (store, _) = store_for(&server, 3);
    let err = store
        .put("mail/1.lock", Bytes::from_static(b"x"), &create_if_absent())
        .await
        .expect_err("exists on the retry");
    assert!(
        matches!(&err, StoreError::Ambiguous { key } if key == "mail/1.lock"),
        "{err:?}"
    );
    let seen = server.requests();
    assert!(seen.iter().all(|r| r.header("if-none-match") == Some("*")));
}

#[tokio::test]
async fn a_create_retried_after_a_timeout_that_then_exists_is_ambiguous() {
    let server = FakeServer::scripted(vec![
        Reply::Delay(Duration::from_secs(3), Box::new(Reply::empty(200))),
        Reply::error(412, "PreconditionFailed"),
    ])
    .await;
    let (store, stats) = store_for(&server, 3);
    let err = store
        .put("mail/2.lock", Bytes::from_static(b"x"), &create_if_absent())
        .await
        .expect_err("exists on the retry");
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err:?}");
    assert_eq!(count(&stats, Op::Put, "error"), 1, "the timeout is counted");
    assert_eq!(count(&stats, Op::Put, "412"), 1);
}

#[tokio::test]
async fn a_conflict_409_is_retried_and_a_later_412_is_a_plain_loss() {
    let server = FakeServer::scripted(vec![
        Reply::error(409, "ConditionalRequestConflict"),
        Reply::error(412, "PreconditionFailed"),
    ])
    .await;
    let (store, stats) = store_for(&server, 3);
    let err = store
        .put("mail/3.lock", Bytes::from_static(b"x"), &create_if_absent())
        .await
        .expect_err("lost");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key } if key == "mail/3.lock"),
        "409 ConditionalRequestConflict was not applied, so the 412 is a clean loss: {err:?}"
    );
    assert_eq!(count(&stats, Op::Put, "409"), 1);
    assert_eq!(count(&stats, Op::Put, "412"), 1);
}

#[tokio::test]
async fn a_first_412_on_create_is_already_exists() {
    let server = FakeServer::scripted(vec![Reply::error(412, "PreconditionFailed")]).await;
    let (store, _) = store_for(&server, 3);
    let err = store
        .put("mail/4.lock", Bytes::from_static(b"x"), &create_if_absent())
        .await
        .expect_err("lost");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_copy_answering_200_with_an_error_body_is_retried() {
    let server = FakeServer::scripted(vec![
        Reply::error(200, "InternalError"),
        Reply::xml(
            200,
            "<CopyObjectResult><LastModified>2025-03-01T08:00:00.000Z</LastModified><ETag>\"copied\"</ETag></CopyObjectResult>",
        ),
    ])
    .await;
    let (store, stats) = store_for(&server, 3);
    let written = store
        .copy("a.task", "a.lock", &CopyOptions::default())
        .await
        .expect("the retry succeeds");
    assert_eq!(written.etag.as_deref(), Some("copied"));
    assert_eq!(server.requests().len(), 2);
    assert_eq!(count(&stats, Op::Copy, "ok"), 2, "both answers were 200");
    let seen = server.requests();
    assert_eq!(seen[0].header("x-amz-copy-source"), Some("/bkt/a.task"));
    assert_eq!(seen[0].header("x-amz-metadata-directive"), Some("REPLACE"));
}

#[tokio::test]
async fn a_copy_answering_200_with_a_final_error_body_fails() {
    let server = FakeServer::scripted(vec![Reply::error(200, "AccessDenied")]).await;
    let (store, _) = store_for(&server, 3);
    let err = store
        .copy("a.task", "a.lock", &CopyOptions::default())
        .await
        .expect_err("an error with status 200");
    assert!(matches!(err, StoreError::Forbidden { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    // Bind then drop: the port is (almost certainly) closed now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = StoreConfig {
        kind: StoreBackend::S3,
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        bucket: "bkt".into(),
        path_style: true,
        access_key_id: Secret::new("AKID"),
        access_key_secret: Secret::new(SECRET),
        max_retries: 1,
        ..StoreConfig::default()
    };
    let stats = Arc::new(RequestStats::default());
    let store = S3Store::from_config(&cfg, Arc::clone(&stats)).expect("opens");
    let err = store
        .put("k", Bytes::new(), &create_if_absent())
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    assert!(err.to_string().contains("could not connect"), "{err}");
    assert_eq!(count(&stats, Op::Put, "error"), 2);
}

#[tokio::test]
async fn a_redirect_is_reported_not_followed() {
    let server = FakeServer::start(|_, _| {
        Reply::error(301, "PermanentRedirect").with_header("Location", "/elsewhere/k")
    })
    .await;
    let (store, _) = store_for(&server, 3);
    let err = store.get("k").await.expect_err("redirected");
    assert!(
        matches!(&err, StoreError::Unexpected { message, .. } if message.contains("PermanentRedirect")),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1, "the redirect was not followed");
}
