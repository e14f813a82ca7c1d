//! `bucketq run` as operators meet it, on the local store: the two-command quick start, a
//! clean drain on SIGTERM, /metrics moving while tasks are handled, sd_notify on a socket the
//! test listens on, a failed task retried and handled, and no secret in any log line.

mod cli_support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use cli_support::{bucketq, free_port, http_get, local_config, log_queue, run, Daemon};

const START: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(20);

fn handled(line: &str) -> bool {
    line.contains("handled task")
}

#[test]
fn quick_start_enqueue_then_run_shows_the_task_and_stops_cleanly() {
    assert!(
        !std::path::Path::new("/etc/bucketq/bucketq.toml").exists(),
        "this test needs a machine without /etc/bucketq/bucketq.toml (the demo runs without a config)"
    );
    let dir = tempfile::tempdir().unwrap();
    let enq = run(bucketq(dir.path()).args(["enqueue", "demo", "--json", r#"{"hello":"world"}"#]));
    assert_eq!(enq.code, 0, "{}", enq.all());
    let key = enq.stdout.trim().to_owned();
    assert!(
        dir.path().join("bucketq-data").exists(),
        "the demo store lives in ./bucketq-data"
    );

    let mut daemon = Daemon::start(bucketq(dir.path()).arg("run"));
    daemon.wait_for("the enqueued task handled", START, |l| {
        handled(l) && l.contains(&key)
    });
    // `run` alone also shows a task: the demo enqueues a sample on start.
    daemon.wait_for("the demo sample handled", START, |l| {
        handled(l) && l.contains("the bucketq demo")
    });
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(STOP), 0, "{}", daemon.output());

    let status = run(bucketq(dir.path()).args(["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v[0]["pending"], 0, "{v}");
    assert_eq!(v[0]["running"], 0, "{v}");
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_move_as_tasks_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = local_config(
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
            log_queue("q")
        ),
    );
    let enqueue = |n: usize| {
        for i in 0..n {
            let out = run(bucketq(dir.path()).arg("--config").arg(&config).args([
                "enqueue",
                "q",
                "--json",
                &format!("{{\"i\":{i}}}"),
            ]));
            assert_eq!(out.code, 0, "{}", out.all());
        }
    };
    enqueue(3);
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    let succeeded = "bucketq_tasks_succeeded_total{queue=\"q\"}";
    let wait_for_count = |want: f64| {
        let start = Instant::now();
        loop {
            if let Ok(text) = http_get(port, "/metrics") {
                if metric(&text, succeeded) == Some(want) {
                    return text;
                }
            }
            assert!(start.elapsed() < START, "{succeeded} never reached {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = wait_for_count(3.0);
    assert!(
        metric(&first, "bucketq_tasks_claimed_total{queue=\"q\"}") >= Some(3.0),
        "{first}"
    );
    assert!(
        first.contains("bucketq_store_requests_total{op=\"list\""),
        "{first}"
    );
    assert!(
        first.contains("bucketq_handler_duration_seconds_count{queue=\"q\"} 3"),
        "{first}"
    );

    enqueue(2);
    wait_for_count(5.0);
    let health = http_get(port, "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = http_get(port, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let missing = http_get(port, "/nope").unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(STOP), 0, "{}", daemon.output());
}

#[test]
fn sd_notify_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let config = local_config(dir.path(), &log_queue("q"));
    let mut daemon = Daemon::start(
        bucketq(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "600000"),
    );
    let mut seen: Vec<String> = Vec::new();
    let recv_until = |want: &str, seen: &mut Vec<String>| {
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        while !seen.iter().any(|m| m.lines().any(|l| l == want)) {
            assert!(start.elapsed() < START, "no {want}; got {seen:?}");
            if let Ok(n) = listener.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    recv_until("READY=1", &mut seen);
    recv_until("WATCHDOG=1", &mut seen);
    let ready_at = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(
        seen[..ready_at].iter().all(|m| !m.contains("WATCHDOG=1")),
        "watchdog before ready: {seen:?}"
    );
    daemon.signal(libc::SIGTERM);
    recv_until("STOPPING=1", &mut seen);
    assert_eq!(daemon.wait_exit(STOP), 0, "{}", daemon.output());
    assert!(
        !daemon.output().contains("poll loop silent"),
        "a healthy start warns of nothing: {}",
        daemon.output()
    );
}

#[test]
fn a_retried_failed_task_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &log_queue("q"));
    let data = dir.path().join("data");
    let cfg = bucketq::config::StoreConfig {
        kind: bucketq::config::StoreBackend::Local,
        path: data,
        ..Default::default()
    };
    let store = bucketq::store::open::open(&cfg, Default::default()).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.put(
            "failed/q/77.task",
            bytes::Bytes::from_static(br#"{"again":"yes"}"#),
            &bucketq::store::PutOptions {
                user_meta: [(bucketq::queue::meta::ATTEMPT.to_string(), "3".to_string())].into(),
                ..Default::default()
            },
        ))
        .unwrap();
    let retry = run(bucketq(dir.path()).arg("--config").arg(&config).args([
        "failed",
        "retry",
        "failed/q/77.task",
    ]));
    assert_eq!(retry.code, 0, "{}", retry.all());
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    daemon.wait_for("the retried task handled", START, |l| {
        handled(l) && l.contains("q/77.task") && l.contains("attempt=1")
    });
    daemon.signal(libc::SIGINT);
    assert_eq!(daemon.wait_exit(STOP), 0, "{}", daemon.output());
}

#[test]
fn no_configured_secret_appears_in_any_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port(); // nothing listens: every attempt fails and is logged
    let secrets = [
        "mail-password-SECRET-1",
        "store-secret-SECRET-2",
        "store-id-SECRET-3",
    ];
    let config = local_config(
        dir.path(),
        &format!(
            "[[queue]]\nname = \"mail\"\nprefix = \"mail/\"\ntimeout = \"2s\"\nmax_attempts = 2\nbackoff = \"100ms\"\nhandler = {{ type = \"mail\", host = \"127.0.0.1\", port = {smtp_port}, tls = \"none\", username = \"bot\", password = \"{}\", from = \"A <a@example.com>\" }}\n",
            secrets[0]
        ),
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "kind = \"local\"",
        &format!(
            "kind = \"local\"\naccess_key_id = \"{}\"\naccess_key_secret = \"{}\"",
            secrets[2], secrets[1]
        ),
    );
    std::fs::write(&config, text).unwrap();
    for format in ["text", "json"] {
        // A fresh task per run: the previous run may have failed the last one for good.
        let id = format!("m-{format}");
        let enq = run(bucketq(dir.path()).arg("--config").arg(&config).args([
            "enqueue",
            "mail",
            "--id",
            &id,
            "--json",
            r#"{"to_email":"a@example.com","subject":"s","content":"c"}"#,
        ]));
        assert_eq!(enq.code, 0, "{}", enq.all());
        let mut daemon = Daemon::start(
            bucketq(dir.path())
                .arg("--config")
                .arg(&config)
                .arg("run")
                .env("BUCKETQ_LOG", "trace")
                .env("BUCKETQ_LOG_FORMAT", format),
        );
        daemon.wait_for("the task's attempts", START, |l| {
            l.contains(&format!("mail/{id}"))
        });
        std::thread::sleep(Duration::from_secs(1));
        daemon.signal(libc::SIGTERM);
        daemon.wait_exit(STOP);
        let output = daemon.output();
        for s in secrets {
            assert!(!output.contains(s), "{format}: {s} leaked:\n{output}");
        }
    }
}

#[test]
fn health_asks_the_running_daemon_for_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = local_config(
        dir.path(),
        &format!("[http]\nlisten = \"0.0.0.0:{port}\"\n\n{}", log_queue("q")),
    );
    let health = |extra: &[&str]| {
        run(bucketq(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("health")
            .args(extra))
    };
    let down = health(&[]);
    assert_eq!(down.code, 1, "nothing listens yet: {}", down.all());
    assert!(down.stderr.contains("no answer"), "{}", down.stderr);
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    let start = Instant::now();
    loop {
        let out = health(&[]);
        if out.code == 0 {
            assert!(out.stdout.contains("/readyz"), "{}", out.stdout);
            break;
        }
        assert!(
            start.elapsed() < START,
            "never ready: {}\n{}",
            out.all(),
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(health(&["--live"]).code, 0);
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        run(bucketq(dir.path()).args(["health", "--url", &url])).code,
        0
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(STOP), 0, "{}", daemon.output());
    assert_eq!(health(&[]).code, 1, "stopped: not healthy");

    let no_listener = local_config(dir.path(), &log_queue("q"));
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&no_listener)
        .arg("health"));
    assert_eq!(out.code, 78, "{}", out.all());
    assert!(
        out.stderr.contains("BUCKETQ_HTTP__LISTEN"),
        "{}",
        out.stderr
    );
}
