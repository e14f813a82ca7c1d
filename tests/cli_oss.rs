//! The real binary against the OSS signature oracle (`tests/support/oss_oracle.py`, every
//! request re-signed by Alibaba's SDK signers): enqueue, claim, retry, failed, reap, status,
//! failed list/retry and doctor, with V4 and V1, long-lived and STS keys, on an IP endpoint
//! (path-style, as the SDKs address it). And claims the store refuses: the request rate stays
//! bounded, the operator is told, and a refusal no retry can pass stops the worker with 69.

mod cli_support;
#[path = "support/oss_oracle.rs"]
mod oss_oracle;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::{bucketq, run, write_file, Daemon};
use oss_oracle::{oracle_python, Key, Options, Oracle, BUCKET, REGION};

const EX_UNAVAILABLE: i32 = 69;

/// A config for the oracle: fast polls, a 4 s lease, a queue whose exec handler fails any task
/// whose payload says "fail" (two attempts, then failed/).
fn config(dir: &Path, oracle: &Oracle, signature: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[store]
kind = "oss"
endpoint = "{endpoint}"
bucket = "{BUCKET}"
region = "{REGION}"
signature = "{signature}"
request_timeout = "5s"

[worker]
poll_interval = "100ms"
max_poll_interval = "1s"
shutdown_grace = "5s"
lease = "4s"

[[queue]]
name = "q"
prefix = "q/"
timeout = "2s"
max_attempts = 2
backoff = "100ms"
handler = {{ type = "exec", command = ["/bin/sh", "-c", "if grep -q fail; then echo refused >&2; exit 1; fi"] }}
"#,
        endpoint = oracle.endpoint()
    );
    write_file(dir, "bucketq.toml", &text)
}

/// `bucketq --config CONFIG` with `key` in the environment, as an env file gives it.
fn cli(dir: &Path, config: &Path, key: &Key) -> Command {
    let mut c = bucketq(dir);
    c.arg("--config")
        .arg(config)
        .env("BUCKETQ_STORE__ACCESS_KEY_ID", &key.id)
        .env("BUCKETQ_STORE__ACCESS_KEY_SECRET", &key.secret);
    if let Some(token) = &key.token {
        c.env("BUCKETQ_STORE__SECURITY_TOKEN", token);
    }
    c
}

fn sts_key() -> Key {
    Key {
        id: "STS.NUgYrLnoC37mZZCNnAbez2KWM".into(),
        secret: "StsSecretAssumedRole0123456789ab".into(),
        token: Some("CAIS8gF1q6Ft5B2yfSjIr5D+temporary/token==".into()),
        expires: None,
    }
}

/// Write a task or a lock with Alibaba's own SDK (oss2), as an FC-era producer does.
fn oss2_put(oracle: &Oracle, key: &str, body: &str, meta: &[(&str, &str)]) {
    let headers: Vec<String> = meta
        .iter()
        .map(|(k, v)| format!("'x-oss-meta-{k}': '{v}'"))
        .collect();
    let code = format!(
        "import oss2\nb = oss2.Bucket(oss2.Auth('{id}', '{secret}'), '{ep}', '{BUCKET}')\nb.put_object('{key}', {body:?}.encode(), headers={{{h}}})\n",
        id = oss_oracle::KEY_ID,
        secret = oss_oracle::SECRET,
        ep = oracle.endpoint(),
        h = headers.join(", ")
    );
    let out = Command::new(oracle_python())
        .args(["-c", &code])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "oss2 put failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn flows_with(signature: &str, key: Key) {
    let oracle = Oracle::start(&[key.clone(), Key::long_lived()], Options::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), &oracle, signature);
    let ok = |args: &[&str]| {
        let out = run(cli(dir.path(), &config, &key).args(args));
        assert_eq!(out.code, 0, "{args:?}: {}", out.all());
        out
    };

    let doctor = ok(&["doctor"]);
    for check in ["credentials", "bucket", "create-if-absent"] {
        let line = doctor
            .stdout
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line: {}", doctor.stdout));
        assert!(line.starts_with("ok"), "{line}");
    }
    let mut good = Vec::new();
    for i in 0..3 {
        good.push(
            ok(&["enqueue", "q", "--json", &format!("{{\"i\":{i}}}")])
                .stdout
                .trim()
                .to_owned(),
        );
    }
    let bad = ok(&["enqueue", "q", "--json", "{\"fail\":true}"])
        .stdout
        .trim()
        .to_owned();
    // A task from Alibaba's SDK, and a stale lock left by a worker that died.
    oss2_put(&oracle, "q/from-oss2.task", "{\"by\":\"oss2\"}", &[]);
    oss2_put(
        &oracle,
        "q/stale.lock",
        "{\"left\":\"behind\"}",
        &[
            ("bq-token", "dead0000"),
            ("bq-owner", "gone-1-x"),
            ("bq-attempt", "1"),
        ],
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json"]).stdout).expect("status json");
    assert_eq!(status[0]["pending"], 5, "{status}");

    let mut daemon = Daemon::start(
        cli(dir.path(), &config, &key)
            .arg("run")
            .env("BUCKETQ_LOG", "debug"),
    );
    for k in good
        .iter()
        .map(String::as_str)
        .chain(["q/from-oss2.task", "q/stale.task"])
    {
        daemon.wait_for(k, Duration::from_secs(60), |l| {
            l.contains("task succeeded") && l.contains(k)
        });
    }
    daemon.wait_for(
        "the failing task moved to failed/",
        Duration::from_secs(60),
        |l| l.contains(&bad) && l.contains("failed") && l.contains("attempt 2 of 2"),
    );
    assert!(
        daemon.output().contains("reaped a stale lock"),
        "{}",
        daemon.output()
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        0,
        "{}",
        daemon.output()
    );
    assert!(
        !daemon.output().contains(&key.secret),
        "the secret reached the log"
    );

    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json"]).stdout).expect("status json");
    assert_eq!(
        (
            &status[0]["pending"],
            &status[0]["running"],
            &status[0]["failed"]
        ),
        (&0.into(), &0.into(), &1.into()),
        "{status}"
    );
    let list = ok(&["failed", "list"]);
    assert!(
        list.stdout.contains(&format!("failed/{bad}")),
        "{}",
        list.stdout
    );
    let retry = ok(&["failed", "retry", "--all"]);
    assert!(
        retry.stdout.contains(&format!("-> {bad}")),
        "{}",
        retry.stdout
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json"]).stdout).expect("status json");
    assert_eq!(
        (&status[0]["pending"], &status[0]["failed"]),
        (&1.into(), &0.into()),
        "{status}"
    );

    let checked = oracle.assert_all_sound(&[404, 409, 412]);
    let expected = if signature == "v4" { "v4" } else { "v1" };
    let log = oracle.log();
    let by_cli = log
        .iter()
        .filter(|e| {
            e["headers"]["user-agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("bucketq/"))
        })
        .collect::<Vec<_>>();
    assert!(
        by_cli.len() > 20,
        "bucketq sent {} of {checked} requests",
        by_cli.len()
    );
    for e in &by_cli {
        assert_eq!(e["signature"].as_str(), Some(expected), "{e:#}");
        assert_eq!(
            e["headers"]["x-oss-security-token"].as_str(),
            key.token.as_deref(),
            "{e:#}"
        );
    }
    assert!(
        by_cli
            .iter()
            .any(|e| e["headers"]["x-oss-copy-source"].is_string()
                && e["headers"]["x-oss-forbid-overwrite"] == "true"),
        "claims are conditional copies"
    );
}

#[test]
fn oss_flows_v4_long_lived_key() {
    flows_with("v4", Key::long_lived());
}

#[test]
fn oss_flows_v1_long_lived_key() {
    flows_with("v1", Key::long_lived());
}

#[test]
fn oss_flows_v4_sts_token() {
    flows_with("v4", sts_key());
}

#[test]
fn oss_flows_v1_sts_token() {
    flows_with("v1", sts_key());
}

/// Requests the oracle saw from bucketq.
fn bucketq_requests(oracle: &Oracle) -> usize {
    oracle
        .log()
        .iter()
        .filter(|e| {
            e["headers"]["user-agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("bucketq/"))
        })
        .count()
}

#[test]
fn refused_claims_back_off_and_resume_once_the_store_takes_them() {
    let oracle = Oracle::plain();
    let key = Key::long_lived();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), &oracle, "v4");
    for i in 0..30 {
        let out = run(cli(dir.path(), &config, &key).args([
            "enqueue",
            "q",
            "--json",
            &format!("{{\"i\":{i}}}"),
        ]));
        assert_eq!(out.code, 0, "{}", out.all());
    }
    oracle.refuse_copies(Some((403, "AccessDenied")));
    let before = bucketq_requests(&oracle);
    let mut daemon = Daemon::start(cli(dir.path(), &config, &key).arg("run"));
    // The first claims go out together (one per free slot, 16 here) before any answer;
    // after that, one probe (GET + copy) and a listing per pause, the pause doubling to
    // max_poll_interval (1 s). Two workers without the pause sent ~268 requests/s for 30 tasks.
    std::thread::sleep(Duration::from_secs(3));
    let burst = bucketq_requests(&oracle) - before;
    std::thread::sleep(Duration::from_secs(5));
    let steady = bucketq_requests(&oracle) - before - burst;
    println!("refused claims: {burst} requests in the first 3 s (startup and the first claims), {steady} in the next 5 s");
    assert!(burst <= 60, "{burst} requests in the first 3 s");
    // About 3 a second at the 1 s pause (a listing, the probe's GET and copy): 20 measured.
    assert!(
        steady <= 30,
        "{steady} requests in 5 s while every claim was refused"
    );
    let warnings = daemon.output().matches("the store refused a claim").count();
    assert!(
        (1..=6).contains(&warnings),
        "{warnings} warnings:\n{}",
        daemon.output()
    );
    assert!(
        daemon.output().contains("AccessDenied"),
        "{}",
        daemon.output()
    );
    assert!(
        daemon.output().contains("grant"),
        "the hint names the fix: {}",
        daemon.output()
    );

    oracle.refuse_copies(None);
    let start = Instant::now();
    loop {
        let status: serde_json::Value = serde_json::from_str(
            &run(cli(dir.path(), &config, &key).args(["status", "--json"])).stdout,
        )
        .expect("status json");
        if status[0]["pending"] == 0 && status[0]["running"] == 0 {
            assert_eq!(status[0]["failed"], 0, "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not drained once the store took claims: {status}\n{}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        daemon.output().matches("task succeeded").count(),
        30,
        "{}",
        daemon.output()
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        0,
        "{}",
        daemon.output()
    );
}

#[test]
fn a_claim_no_retry_can_pass_stops_the_worker_with_69() {
    let oracle = Oracle::plain();
    let key = Key::long_lived();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), &oracle, "v4");
    for i in 0..5 {
        let out = run(cli(dir.path(), &config, &key).args([
            "enqueue",
            "q",
            "--json",
            &format!("{{\"i\":{i}}}"),
        ]));
        assert_eq!(out.code, 0, "{}", out.all());
    }
    oracle.refuse_copies(Some((411, "MissingContentLength")));
    let mut daemon = Daemon::start(cli(dir.path(), &config, &key).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        EX_UNAVAILABLE,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(
        out.contains("MissingContentLength") && out.contains("refuses the claims"),
        "{out}"
    );
    let status: serde_json::Value = serde_json::from_str(
        &run(cli(dir.path(), &config, &key).args(["status", "--json"])).stdout,
    )
    .expect("status json");
    assert_eq!(status[0]["pending"], 5, "nothing lost: {status}");
}
