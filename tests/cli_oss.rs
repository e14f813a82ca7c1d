//! The real binary against the OSS signature oracle (`tests/support/oss_oracle.py`, every
//! request re-signed by Alibaba's SDK signers): enqueue, claim, retry, failed, reap, status,
//! failed list/retry and doctor, with V4 and V1, long-lived and STS keys, on an IP endpoint
//! (path-style, as the SDKs address it). And claims the store refuses: the request rate stays
//! bounded, the operator is told, and a refusal no retry can pass stops the worker with 69.

mod cli_support;
#[path = "support/fake_http.rs"]
mod fake_http;
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
    assert!(
        doctor.stdout.contains("static keys from [store]"),
        "{}",
        doctor.stdout
    );
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
    daemon.stop_cleanly(Duration::from_secs(30));
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

/// `bucketq enqueue q --json {"i":N}` for N below `count`.
fn enqueue_numbered(dir: &Path, config: &Path, key: &Key, count: usize) {
    for i in 0..count {
        let out =
            run(cli(dir, config, key).args(["enqueue", "q", "--json", &format!("{{\"i\":{i}}}")]));
        assert_eq!(out.code, 0, "{}", out.all());
    }
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
    enqueue_numbered(dir.path(), &config, &key, 30);
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
    daemon.stop_cleanly(Duration::from_secs(30));
}

#[test]
fn a_claim_no_retry_can_pass_stops_the_worker_with_69() {
    let oracle = Oracle::plain();
    let key = Key::long_lived();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), &oracle, "v4");
    enqueue_numbered(dir.path(), &config, &key, 5);
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

/// The keys a fake ECS metadata service hands out, each valid for [`ROTATION`].
const ROTATION: Duration = Duration::from_secs(8);

#[test]
fn a_worker_keeps_claiming_across_three_rotations_of_its_ecs_role_keys() {
    use std::sync::{Arc, Mutex};
    let oracle = Oracle::plain();
    let keys_file = oracle.keys_file();
    let issued: Arc<Mutex<Vec<Key>>> = Arc::new(Mutex::new(vec![Key::long_lived()]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let issuer = Arc::clone(&issued);
    let imds = rt.block_on(fake_http::FakeServer::start(move |req, n| {
        use fake_http::Reply;
        let answer = |status: u16, body: String| Reply::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        };
        match req.path() {
            "/latest/api/token" => answer(200, "imds-token".into()),
            "/latest/meta-data/ram/security-credentials/" => answer(200, "bucketq-role".into()),
            _ => {
                let expires = std::time::SystemTime::now() + ROTATION;
                let key = Key {
                    id: format!("STS.rotation{n}"),
                    secret: format!("rotation-secret-{n}"),
                    token: Some(format!("rotation-token-{n}")),
                    expires: Some(
                        expires
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs(),
                    ),
                };
                let mut all = issuer.lock().unwrap();
                all.push(key.clone());
                oss_oracle::write_keys(&keys_file, &all);
                let body = serde_json::json!({
                    "Code": "Success",
                    "AccessKeyId": key.id,
                    "AccessKeySecret": key.secret,
                    "SecurityToken": key.token,
                    "Expiration": humantime::format_rfc3339_seconds(expires).to_string(),
                });
                answer(200, body.to_string())
            }
        }
    }));
    let dir = tempfile::tempdir().expect("temp dir");
    let base = std::fs::read_to_string(config(dir.path(), &oracle, "v4")).unwrap();
    let text = base.replace(
        "request_timeout = \"5s\"\n",
        &format!("request_timeout = \"5s\"\n\n[store.credentials]\nsource = \"ecs-ram-role\"\nmetadata_endpoint = \"{}\"\n", imds.endpoint()),
    );
    let config = write_file(dir.path(), "bucketq.toml", &text);
    let doctor = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("doctor"));
    assert_eq!(doctor.code, 0, "{}", doctor.all());
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("credentials"))
        .unwrap_or_default();
    assert!(
        line.starts_with("ok")
            && line.contains("ECS RAM role bucketq-role")
            && line.contains("expiring"),
        "doctor says which source supplied the keys and when they expire: {line}"
    );
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    let tasks = 24;
    for i in 0..tasks {
        oss2_put(
            &oracle,
            &format!("q/rot{i:02}.task"),
            &format!("{{\"i\":{i}}}"),
            &[],
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.output().matches("task succeeded").count() < tasks {
        assert!(
            Instant::now() < deadline,
            "not every task ran:\n{}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.stop_cleanly(Duration::from_secs(30));
    let out = daemon.output();
    assert!(
        !out.contains("rotation-secret") && !out.contains("rotation-token"),
        "a secret reached the log"
    );

    // Every request verified, none with an expired key, and the keys rotated at least 3 times.
    oracle.assert_all_sound(&[404, 409, 412]);
    let log = oracle.log();
    let mut used: Vec<&str> = log
        .iter()
        .filter(|e| {
            e["headers"]["user-agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("bucketq/"))
        })
        .filter_map(|e| e["headers"]["authorization"].as_str())
        .filter_map(|a| a.split("Credential=").nth(1)?.split('/').next())
        .collect();
    used.dedup();
    println!("keys used in order: {used:?}");
    assert!(used.len() >= 4, "fewer than three rotations: {used:?}");
    assert!(
        used.iter().all(|k| k.starts_with("STS.rotation")),
        "{used:?}"
    );
    assert!(
        !log.iter().any(|e| e["code"] == "SecurityTokenExpired"),
        "an expired key was used"
    );
    drop(imds);
}
