//! The `webhook` handler through the real daemon, on the local store, against a real HTTP/1.1
//! server in this test (tests/support/http.rs): 503 then 200 is one retry and one delivery
//! with the same `Idempotency-Key`; 429 with `Retry-After` waits as asked; 400 ends in
//! `failed/` with the status in the reason.

mod cli_support;
mod flow_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bucketq::handlers::webhook::idempotency_key;
use bucketq::handlers::Task;
use bucketq::queue::meta;

use flow_support::{
    id_of, local_config, local_keys, local_object, produce_local, span_attempt, spec, start_daemon,
    stop, wait_until, Produced, SOON,
};
use support::http::{HttpServer, Reply, Seen};

/// The key the handler must send for `task`: from the queue, the id and the object's ETag.
fn expected_idempotency_key(task: &Produced) -> String {
    idempotency_key(&Task {
        queue: "hooks".into(),
        id: id_of(&task.key).into(),
        key: task.key.clone(),
        bucket: String::new(),
        payload: Default::default(),
        etag: task.md5.clone(),
        created_at: SystemTime::UNIX_EPOCH,
        attempt: 1,
        max_attempts: 3,
        timeout: Duration::from_secs(1),
        worker: String::new(),
    })
}

fn left(dir: &Path) -> Vec<String> {
    let mut keys = local_keys(dir, "hooks/");
    keys.extend(local_keys(dir, "failed/hooks/"));
    keys
}

fn assert_delivery(req: &Seen, task: &Produced, attempt: u32) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook/t0ken-in-path");
    assert_eq!(
        req.body, task.bytes,
        "{}: payload bytes unchanged",
        task.key
    );
    assert_eq!(req.header("authorization"), Some("Bearer flow-t0ken"));
    assert_eq!(req.header("x-bucketq-key"), Some(task.key.as_str()));
    assert_eq!(
        req.header("x-bucketq-attempt"),
        Some(attempt.to_string().as_str()),
        "{}",
        task.key
    );
    assert_eq!(
        req.header("idempotency-key"),
        Some(expected_idempotency_key(task).as_str()),
        "{}: the same key on every attempt",
        task.key
    );
}

#[test]
fn webhook_retries_503_and_429_with_a_stable_key_and_fails_400() {
    // The server runs on its own runtime's threads while this thread drives the daemon.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let server = runtime.block_on(HttpServer::start(vec![
        Reply::Status(503, vec![], "busy"),
        Reply::Status(200, vec![], "ok"),
        Reply::Status(400, vec![], "no such customer"),
        Reply::Status(429, vec![("Retry-After", "1".into())], "slow down"),
        Reply::Status(200, vec![], "ok"),
    ]));
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let handler = format!(
        "{{ type = \"webhook\", url = \"{}\", headers = {{ Authorization = \"Bearer flow-t0ken\" }}, timeout = \"3s\" }}",
        server.url("/hook/t0ken-in-path")
    );
    let config = local_config(
        dir.path(),
        &format!(
            "[[queue]]\nname = \"hooks\"\nprefix = \"hooks/\"\ntimeout = \"4s\"\nmax_attempts = 3\nbackoff = \"100ms\"\nmax_backoff = \"3s\"\nhandler = {handler}\n"
        ),
    );
    let python = support::python3();
    let daemon = start_daemon(dir.path(), &config);

    // 503, then 200: one retry, one delivery, the same key both times.
    let a = produce_local(
        &python,
        &data,
        &[flow_support::spec("hooks/a.task", "json", 0)],
    );
    wait_until("task a delivered", &daemon, SOON, || {
        server.seen().len() == 2 && left(dir.path()).is_empty()
    });
    let seen = server.seen();
    assert_delivery(&seen[0], &a[0], 1);
    assert_delivery(&seen[1], &a[0], 2);
    assert_eq!(seen[0].header("content-type"), Some("application/json"));

    // 400: failed for good, no retry, the status and the body in the reason.
    let b = produce_local(&python, &data, &[spec("hooks/b.task", "issue", 4)]);
    wait_until("task b failed", &daemon, SOON, || {
        left(dir.path()) == ["failed/hooks/b.task"]
    });
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "400 is not retried");
    assert_delivery(&seen[2], &b[0], 1);
    assert_eq!(
        seen[2].header("content-type"),
        Some("application/python-pickle")
    );
    let failed = local_object(dir.path(), "failed/hooks/b.task");
    let error = failed.head.user_meta.get(meta::ERROR).expect("bq-error");
    assert!(
        error.contains("400") && error.contains("no such customer"),
        "{error}"
    );
    assert!(
        !error.contains("t0ken"),
        "the URL and headers stay secret: {error}"
    );
    assert_eq!(
        failed.body.as_ref(),
        b[0].bytes.as_slice(),
        "payload intact"
    );

    // 429 with Retry-After: 1: the retry waits the second the server asked for, not the
    // 100 ms backoff.
    let c = produce_local(&python, &data, &[spec("hooks/c.task", "issue", 2)]);
    let started = Instant::now();
    wait_until("task c delivered", &daemon, SOON, || {
        server.seen().len() == 5 && left(dir.path()) == ["failed/hooks/b.task"]
    });
    let seen = server.seen();
    assert_delivery(&seen[3], &c[0], 1);
    assert_delivery(&seen[4], &c[0], 2);
    assert_ne!(
        seen[3].header("idempotency-key"),
        seen[0].header("idempotency-key"),
        "another task, another key"
    );
    let output = stop(daemon);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The daemon logged when it planned the retry: the second asked for, not the backoff.
    let retry_c = output
        .lines()
        .find(|l| l.contains("will retry") && l.contains("hooks/c.task"))
        .unwrap_or_else(|| panic!("no retry of c:\n{output}"));
    assert!(
        retry_c.contains("retry_in=1s") && retry_c.contains("429"),
        "{retry_c}"
    );
    let succeeded: Vec<(&str, Option<u32>)> = output
        .lines()
        .filter(|l| l.contains("task succeeded"))
        .map(|l| (l, span_attempt(l)))
        .collect();
    assert_eq!(succeeded.len(), 2, "{output}");
    assert!(
        succeeded.iter().all(|(_, attempt)| *attempt == Some(2)),
        "{succeeded:?}"
    );
    assert!(!output.contains("t0ken"), "no secret in the log:\n{output}");
}
