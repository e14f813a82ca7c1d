//! The `exec` handler with real processes: stdin, environment, FC events, exit codes,
//! process-group kills, and the FC shim running an FC-style Python handler on Python 2.7 and 3.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bucketq::handlers::exec::{ExecConfig, ExecEvent, ExecHandler};
use bucketq::handlers::{Handler, Outcome, Task};
use bucketq::secret::Secret;
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

fn config(command: &[&str], dir: &Path) -> ExecConfig {
    ExecConfig {
        command: command.iter().map(|s| s.to_string()).collect(),
        event: ExecEvent::Payload,
        env: [(
            "OUT".to_owned(),
            Secret::new(dir.to_string_lossy().into_owned()),
        )]
        .into(),
        inherit_env: false,
        working_dir: None,
        region: None,
        account_id: None,
        output_limit: 4096,
    }
}

fn sh(script: &str, dir: &Path) -> ExecHandler {
    ExecHandler::new(&config(&["/bin/sh", "-c", script], dir)).expect("exec handler")
}

async fn handle(handler: &ExecHandler, task: &Task) -> Outcome {
    handler.handle(task, CancellationToken::new()).await
}

fn read(dir: &TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(name))
        .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
}

/// True when `pid` no longer runs (gone, or a zombie waiting for a parent that is not us).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

fn wait_dead(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test]
async fn payload_on_stdin_and_task_facts_in_a_clean_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let handler = sh(r#"cat > "$OUT/stdin"; env > "$OUT/env""#, dir.path());
    let payload = b"\x80\x04binary \xff payload".to_vec();
    let mut task = support::task("imgs", "7", payload.clone());
    task.attempt = 2;
    assert_eq!(handle(&handler, &task).await, Outcome::Done);
    assert_eq!(
        std::fs::read(dir.path().join("stdin")).expect("stdin"),
        payload
    );

    let env: BTreeMap<String, String> = read(&dir, "env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env["BUCKETQ_QUEUE"], "imgs");
    assert_eq!(env["BUCKETQ_KEY"], "imgs/7.task");
    assert_eq!(env["BUCKETQ_ID"], "7");
    assert_eq!(env["BUCKETQ_BUCKET"], "test-bucket");
    assert_eq!(env["BUCKETQ_ATTEMPT"], "2");
    assert_eq!(env["BUCKETQ_MAX_ATTEMPTS"], "3");
    assert_eq!(env["BUCKETQ_WORKER"], "test-host-4242-0badcafe");
    assert!(env.contains_key("PATH"));
    // The daemon's other variables (cargo sets several for this test) are not passed on.
    let private: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CARGO"))
        .collect();
    assert!(!private.is_empty(), "cargo sets CARGO_* for tests");
    for name in private {
        assert!(!env.contains_key(&name), "{name} leaked into the command");
    }
}

#[tokio::test]
async fn fc_event_fields_match_the_task() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = config(
        &[
            "/bin/sh",
            "-c",
            r#"cat > "$OUT/event"; echo "$BUCKETQ_PAYLOAD_FILE" > "$OUT/pf"; cat "$BUCKETQ_PAYLOAD_FILE" > "$OUT/payload""#,
        ],
        dir.path(),
    );
    cfg.event = ExecEvent::Fc;
    cfg.region = Some("cn-hongkong".into());
    cfg.account_id = Some("1234567890".into());
    let handler = ExecHandler::new(&cfg).expect("handler");
    let task = support::task("mail", "42", r#"{"to_email": "a@b.c"}"#);
    assert_eq!(handle(&handler, &task).await, Outcome::Done);

    let event: Value = serde_json::from_str(&read(&dir, "event")).expect("event JSON");
    let e = &event["events"][0];
    assert_eq!(e["eventName"], "ObjectCreated:PutObject");
    assert_eq!(e["eventSource"], "acs:oss");
    assert_eq!(e["region"], "cn-hongkong");
    assert_eq!(e["oss"]["bucket"]["name"], task.bucket.as_str());
    assert_eq!(
        e["oss"]["bucket"]["arn"],
        "acs:oss:cn-hongkong:1234567890:test-bucket"
    );
    assert_eq!(e["oss"]["object"]["key"], task.key.as_str());
    assert_eq!(e["oss"]["object"]["size"], task.payload.len());
    assert_eq!(e["oss"]["object"]["eTag"], task.etag.as_str());
    assert_eq!(
        e["eventTime"],
        humantime::format_rfc3339_millis(task.created_at).to_string()
    );
    assert_eq!(e["eventTime"], "2022-08-13T06:45:43.250Z");
    // The payload was handed over in a private file, removed afterwards.
    assert_eq!(read(&dir, "payload"), r#"{"to_email": "a@b.c"}"#);
    let pf = read(&dir, "pf");
    assert!(
        !Path::new(pf.trim()).exists(),
        "payload file {pf} left behind"
    );
}

#[tokio::test]
async fn exit_codes_map_to_outcomes_with_stderr_in_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let task = support::task("q", "1", "{}");
    assert_eq!(
        handle(&sh("exit 0", dir.path()), &task).await,
        Outcome::Done
    );
    match handle(&sh("echo 'smtp down' >&2; exit 75", dir.path()), &task).await {
        Outcome::Retry {
            reason,
            after: None,
        } => {
            assert!(
                reason.contains("exit 75") && reason.contains("smtp down"),
                "{reason}"
            )
        }
        other => panic!("exit 75 gave {other:?}"),
    }
    match handle(&sh("echo 'bad input' >&2; exit 3", dir.path()), &task).await {
        Outcome::Retry { reason, .. } => {
            assert!(reason.contains("exited with 3: bad input"), "{reason}")
        }
        other => panic!("exit 3 gave {other:?}"),
    }
    match handle(&sh("kill -9 $$", dir.path()), &task).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("signal 9"), "{reason}"),
        other => panic!("SIGKILL gave {other:?}"),
    }
    // Output is bounded: 200 KiB of stderr, only the end in the reason.
    match handle(
        &sh("i=0; while [ $i -lt 2000 ]; do printf '%0100d\\n' $i >&2; i=$((i+1)); done; echo LAST-LINE >&2; exit 1", dir.path()),
        &task,
    )
    .await
    {
        Outcome::Retry { reason, .. } => {
            assert!(reason.ends_with("LAST-LINE"), "{reason}");
            assert!(reason.len() < 400, "{} bytes", reason.len());
        }
        other => panic!("exit 1 gave {other:?}"),
    }
    // A program that cannot start is a permanent failure.
    let gone = dir.path().join("gone.sh");
    std::fs::write(&gone, "#!/bin/sh\n").expect("write");
    Command::new("chmod")
        .arg("+x")
        .arg(&gone)
        .status()
        .expect("chmod");
    let handler =
        ExecHandler::new(&config(&[gone.to_str().expect("utf-8")], dir.path())).expect("handler");
    std::fs::remove_file(&gone).expect("remove");
    assert!(matches!(
        handle(&handler, &task).await,
        Outcome::Fail { .. }
    ));
}

/// A shell that starts a grandchild (`sleep`) and waits; returns the grandchild's pid file.
const SLEEPER: &str = r#"sleep 300 & echo $! > "$OUT/grandchild"; wait"#;

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("dir");
    let handler = sh(SLEEPER, dir.path());
    let mut task = support::task("q", "slow", "{}");
    task.timeout = Duration::from_millis(500);
    let started = Instant::now();
    match handle(&handler, &task).await {
        Outcome::Retry { reason, .. } => {
            assert!(reason.contains("timed out after 500ms"), "{reason}")
        }
        other => panic!("timeout gave {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let grandchild: i32 = read(&dir, "grandchild").trim().parse().expect("pid");
    assert!(
        wait_dead(grandchild),
        "grandchild {grandchild} survived the timeout"
    );
}

#[tokio::test]
async fn cancellation_and_dropping_kill_the_group() {
    let dir = tempfile::tempdir().expect("dir");
    let handler = sh(SLEEPER, dir.path());
    let task = support::task("q", "c", "{}");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    match handler.handle(&task, cancel).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("cancelled"), "{reason}"),
        other => panic!("cancel gave {other:?}"),
    }
    let grandchild: i32 = read(&dir, "grandchild").trim().parse().expect("pid");
    assert!(wait_dead(grandchild), "grandchild survived cancellation");

    // The engine may also just stop polling the handler: dropping the future kills the group.
    std::fs::remove_file(dir.path().join("grandchild")).expect("remove");
    let fut = handler.handle(&task, CancellationToken::new());
    let _ = tokio::time::timeout(Duration::from_millis(400), fut).await;
    let grandchild: i32 = read(&dir, "grandchild").trim().parse().expect("pid");
    assert!(
        wait_dead(grandchild),
        "grandchild survived the dropped handler"
    );
}

#[tokio::test]
async fn processes_left_behind_after_a_normal_exit_are_killed() {
    let dir = tempfile::tempdir().expect("dir");
    // Exits at once, leaving a background child that still holds stdout open.
    let handler = sh(
        r#"sleep 300 & echo $! > "$OUT/grandchild"; exit 0"#,
        dir.path(),
    );
    let started = Instant::now();
    assert_eq!(
        handle(&handler, &support::task("q", "bg", "{}")).await,
        Outcome::Done
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let grandchild: i32 = read(&dir, "grandchild").trim().parse().expect("pid");
    assert!(wait_dead(grandchild), "background child leaked");
}

fn python_pickle(python: &Path, expr: &str) -> Vec<u8> {
    let code = format!(
        "import pickle, sys\nout = getattr(sys.stdout, 'buffer', sys.stdout)\nout.write(pickle.dumps({expr}, 2))"
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn fc_shim_runs_an_unmodified_fc_handler_on_python_2_and_3() {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/fc-shim/bucketq_fc_shim.py");
    let code = support::support_file("fc_code");
    for python in [support::python3(), support::python2()] {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out.json");
        let mut cfg = ExecConfig {
            command: vec![
                python.to_string_lossy().into_owned(),
                shim.to_string_lossy().into_owned(),
                "--code-dir".into(),
                code.to_string_lossy().into_owned(),
                "--initializer".into(),
                "index.init".into(),
                "index.handler".into(),
            ],
            event: ExecEvent::Fc,
            env: [
                ("FC_TEST_OUT", out.to_string_lossy().into_owned()),
                ("OSS_BUCKET", "test-bucket".to_owned()),
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-test-id".to_owned()),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-secret".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Secret::new(v)))
            .collect(),
            inherit_env: false,
            working_dir: None,
            region: Some("cn-hongkong".into()),
            account_id: Some("1234567890".into()),
            output_limit: 4096,
        };
        let label = python.display().to_string();
        let handler = ExecHandler::new(&cfg).expect("handler");
        let payload = python_pickle(
            &support::python3(),
            r#"{"nickname": "Testing", "to_email": "someone@example.com", "subject": "测试邮件", "content": "仅仅是测试"}"#,
        );
        let task = support::task("mail", "fc1", payload);
        assert_eq!(handle(&handler, &task).await, Outcome::Done, "{label}");
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(&out).expect("handler ran"))
                .expect("JSON");
        assert_eq!(seen["data"]["subject"], "测试邮件", "{label}");
        assert_eq!(seen["data"]["to_email"], "someone@example.com", "{label}");
        assert_eq!(seen["init_calls"], 1, "{label}");
        assert_eq!(seen["key_id"], "LTAI-test-id", "{label}");
        assert_eq!(seen["request_id"], "bucketq-fc1-1", "{label}");
        assert_eq!(
            seen["event"]["events"][0]["oss"]["object"]["key"],
            "mail/fc1.task"
        );
        let event_type = if label.contains("2.7") {
            "str"
        } else {
            "bytes"
        };
        assert_eq!(
            seen["event_type"], event_type,
            "{label}: event is passed as bytes"
        );

        // A handler exception is a failed attempt (retried), with the traceback as reason.
        let raise = python_pickle(&support::python3(), r#"{"action": "raise"}"#);
        match handle(&handler, &support::task("mail", "fc2", raise)).await {
            Outcome::Retry { reason, .. } => {
                assert!(reason.contains("raised on purpose"), "{label}: {reason}")
            }
            other => panic!("{label}: raise gave {other:?}"),
        }
        let retry = python_pickle(&support::python3(), r#"{"action": "retry"}"#);
        match handle(&handler, &support::task("mail", "fc3", retry)).await {
            Outcome::Retry { reason, .. } => {
                assert!(reason.contains("exit 75"), "{label}: {reason}")
            }
            other => panic!("{label}: SystemExit(75) gave {other:?}"),
        }
        cfg.command.pop();
        cfg.command.push("index.missing".into());
        let handler = ExecHandler::new(&cfg).expect("handler");
        let ok = python_pickle(&support::python3(), r#"{"a": 1}"#);
        assert!(matches!(
            handle(&handler, &support::task("mail", "fc4", ok)).await,
            Outcome::Retry { .. }
        ));
    }
}
