//! The command line against a real S3 server (moto with signature checking, from
//! ./scripts/test): wrong credentials, enqueue and status, failed list/retry, doctor, and a
//! run that handles tasks. Each test makes its own bucket.

mod cli_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cli_support::{bucketq, log_queue, moto, run, Daemon, S3Server};

const EX_NOPERM: i32 = 77;

/// `bucketq --config CONFIG` with the credentials in the environment, as an env file would
/// give them.
fn cli(dir: &Path, config: &Path, s3: &S3Server, secret: &str) -> Command {
    let mut c = bucketq(dir);
    c.arg("--config")
        .arg(config)
        .env("BUCKETQ_STORE__ACCESS_KEY_ID", &s3.key_id)
        .env("BUCKETQ_STORE__ACCESS_KEY_SECRET", secret);
    c
}

#[test]
fn wrong_credentials_exit_77_with_a_clear_message_and_no_secret() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-auth");
    let config = s3.config(dir.path(), &bucket, &log_queue("q"));
    let wrong = "WrongSecretValue/abc123XYZ";
    for args in [
        &["status"][..],
        &["enqueue", "q", "--json", "{}"],
        &["failed", "list"],
    ] {
        let out = run(cli(dir.path(), &config, &s3, wrong)
            .args(args)
            .env("BUCKETQ_LOG", "trace"));
        assert_eq!(out.code, EX_NOPERM, "{args:?}: {}", out.all());
        assert!(
            out.stderr.contains("credentials"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.all().contains(wrong),
            "{args:?} printed the secret:\n{}",
            out.all()
        );
        assert!(
            !out.all().contains(&s3.secret),
            "{args:?} printed the real secret"
        );
    }
    let mut daemon = Daemon::start(cli(dir.path(), &config, &s3, wrong).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        EX_NOPERM,
        "{}",
        daemon.output()
    );
    assert!(
        daemon.output().contains("credentials"),
        "{}",
        daemon.output()
    );
    assert!(!daemon.output().contains(wrong), "run printed the secret");

    let doctor = run(cli(dir.path(), &config, &s3, wrong).arg("doctor"));
    assert_eq!(doctor.code, EX_NOPERM, "{}", doctor.all());
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("credentials"))
        .unwrap();
    assert!(
        line.starts_with("FAIL") && line.contains("OSS_SECRET"),
        "{line}"
    );
    assert!(!doctor.all().contains(wrong));
}

#[test]
fn enqueue_status_failed_list_and_retry_on_s3() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-ops");
    let config = s3.config(dir.path(), &bucket, &log_queue("q"));
    let ok = |args: &[&str]| {
        let out = run(cli(dir.path(), &config, &s3, &s3.secret).args(args));
        assert_eq!(out.code, 0, "{args:?}: {}", out.all());
        out
    };
    let key = ok(&["enqueue", "q", "--json", r#"{"n":1}"#])
        .stdout
        .trim()
        .to_owned();
    let listed = s3.boto3(
        &bucket,
        "print([o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])])",
    );
    assert!(listed.contains(&key), "{listed}");

    s3.boto3(
        &bucket,
        "s3.put_object(Bucket=bucket, Key='failed/q/9.task', Body=b'{\"n\":9}', \
         Metadata={'bq-attempt': '3', 'bq-error': 'boom: 503 from upstream'})",
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        (&status[0]["pending"], &status[0]["failed"]),
        (&1.into(), &1.into()),
        "{status}"
    );

    let list = ok(&["failed", "list"]);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("failed/q/9.task"))
        .unwrap();
    assert!(
        row.contains("boom: 503 from upstream") && row.contains(" 3 "),
        "{row}"
    );

    let retry = ok(&["failed", "retry", "--all"]);
    assert!(
        retry
            .stdout
            .contains("requeued failed/q/9.task -> q/9.task"),
        "{}",
        retry.stdout
    );
    let head = s3.boto3(
        &bucket,
        "h = s3.head_object(Bucket=bucket, Key='q/9.task'); print(h['Metadata'])",
    );
    assert!(!head.contains("bq-attempt"), "attempts not reset: {head}");
    let body = s3.boto3(
        &bucket,
        "print(s3.get_object(Bucket=bucket, Key='q/9.task')['Body'].read().decode())",
    );
    assert_eq!(body.trim(), r#"{"n":9}"#);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        (&status[0]["pending"], &status[0]["failed"]),
        (&2.into(), &0.into()),
        "{status}"
    );
}

#[test]
fn doctor_passes_on_s3() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-doctor");
    let config = s3.config(dir.path(), &bucket, &log_queue("q"));
    let out = run(cli(dir.path(), &config, &s3, &s3.secret).arg("doctor"));
    assert_eq!(out.code, 0, "{}", out.all());
    for check in ["credentials", "bucket", "clock", "create-if-absent"] {
        let line = out.stdout.lines().find(|l| l.contains(check)).unwrap();
        assert!(line.starts_with("ok"), "{line}");
    }
}

#[test]
fn run_handles_tasks_on_s3_and_drains() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-run");
    let config = s3.config(dir.path(), &bucket, &log_queue("q"));
    let mut keys = Vec::new();
    for i in 0..3 {
        let out = run(cli(dir.path(), &config, &s3, &s3.secret).args([
            "enqueue",
            "q",
            "--json",
            &format!("{{\"i\":{i}}}"),
        ]));
        assert_eq!(out.code, 0, "{}", out.all());
        keys.push(out.stdout.trim().to_owned());
    }
    let mut daemon = Daemon::start(
        cli(dir.path(), &config, &s3, &s3.secret)
            .arg("run")
            .env("BUCKETQ_LOG", "debug"),
    );
    for key in &keys {
        daemon.wait_for("every task handled", Duration::from_secs(60), |l| {
            l.contains("handled task") && l.contains(key.as_str())
        });
    }
    daemon.stop_cleanly(Duration::from_secs(30));
    assert!(
        !daemon.output().contains(&s3.secret),
        "the secret reached the log"
    );
    let left = s3.boto3(
        &bucket,
        "print(len(s3.list_objects_v2(Bucket=bucket).get('Contents', [])))",
    );
    assert_eq!(left.trim(), "0");
}

#[test]
fn a_missing_bucket_is_named_and_exits_78_not_a_probe_failure() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let config = s3.config(dir.path(), "bq-never-created", &log_queue("q"));
    let mut daemon = Daemon::start(cli(dir.path(), &config, &s3, &s3.secret).arg("run"));
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        78,
        "{}",
        daemon.output()
    );
    let out = daemon.output();
    assert!(
        out.contains("bucket \"bq-never-created\" does not exist"),
        "{out}"
    );
    assert!(!out.contains("--single-worker"), "{out}");
}

#[test]
fn a_task_key_too_long_for_failed_ends_in_failed_under_a_shortened_key() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-longkey");
    let runs = dir.path().join("runs.log");
    let queue = format!(
        "[[queue]]\nname = \"q\"\nprefix = \"q/\"\ntimeout = \"3s\"\nmax_attempts = 2\nbackoff = \"100ms\"\nhandler = {{ type = \"exec\", command = [\"/bin/sh\", \"-c\", \"echo run >> {}; exit 1\"] }}\n",
        runs.display()
    );
    let config = s3.config(dir.path(), &bucket, &queue);
    // 1,020 bytes: valid on S3, but failed/ in front would make 1,027.
    let key = format!("q/{}.task", "k".repeat(1013));
    assert_eq!(key.len(), 1020);
    s3.boto3(
        &bucket,
        &format!("s3.put_object(Bucket=bucket, Key={key:?}, Body=b'{{}}')"),
    );
    let mut daemon = Daemon::start(cli(dir.path(), &config, &s3, &s3.secret).arg("run"));
    daemon.wait_for("the task moved to failed/", Duration::from_secs(60), |l| {
        l.contains("attempt 2 of 2")
    });
    std::thread::sleep(Duration::from_secs(2));
    daemon.stop_cleanly(Duration::from_secs(30));
    let ran = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(ran, 2, "max_attempts runs, no loop:\n{}", daemon.output());
    assert!(
        !daemon.output().contains("at most 1024 bytes"),
        "{}",
        daemon.output()
    );
    let keys = s3.boto3(
        &bucket,
        "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket=bucket).get('Contents', [])))",
    );
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("failed/q/kkk") && keys[0].contains('~') && keys[0].len() <= 1024,
        "{keys:?}"
    );
}

#[test]
fn a_task_with_an_empty_id_is_seen_and_handled() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3.new_bucket("bq-cli-emptyid");
    let config = s3.config(dir.path(), &bucket, &log_queue("q"));
    s3.boto3(
        &bucket,
        "s3.put_object(Bucket=bucket, Key='q/.task', Body=b'{\"empty\":\"id\"}')",
    );
    s3.boto3(&bucket, "s3.put_object(Bucket=bucket, Key='q/', Body=b'')");
    let status = run(cli(dir.path(), &config, &s3, &s3.secret).args(["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        v[0]["pending"], 1,
        "q/.task counts, the folder marker q/ does not: {v}"
    );
    let mut daemon = Daemon::start(cli(dir.path(), &config, &s3, &s3.secret).arg("run"));
    daemon.wait_for("the task handled", Duration::from_secs(30), |l| {
        l.contains("handled task") && l.contains("q/.task")
    });
    daemon.stop_cleanly(Duration::from_secs(30));
}
