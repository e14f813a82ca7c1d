//! Operator commands against the local store in a temporary directory: enqueue, status,
//! failed list/retry and doctor, with every daemon stopped.

mod cli_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::queue::meta;
use bucketq::store::{open::open, Metadata, PutOptions, RequestStats, Store, WriteMode};

use cli_support::{bucketq, local_config, log_queue, run, run_with_stdin, write_file};

/// The local store the config in `dir` uses, for seeding and checking objects.
fn store(dir: &Path) -> Arc<dyn Store> {
    let cfg = StoreConfig {
        kind: StoreBackend::Local,
        path: dir.join("data"),
        ..StoreConfig::default()
    };
    open(&cfg, Arc::new(RequestStats::default())).expect("the local store opens")
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

fn put(dir: &Path, key: &str, body: &str, user_meta: &[(&str, &str)]) {
    let store = store(dir);
    let user_meta: Metadata = user_meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = PutOptions {
        mode: WriteMode::Overwrite,
        user_meta,
        content_type: Some("application/json".into()),
    };
    block_on(store.put(key, Bytes::from(body.to_owned()), &opts)).expect("seeding works");
}

fn body(dir: &Path, key: &str) -> Option<String> {
    block_on(store(dir).get(key))
        .ok()
        .map(|o| String::from_utf8_lossy(&o.body).into_owned())
}

fn status(dir: &Path, config: &Path) -> serde_json::Value {
    let out = run(bucketq(dir)
        .arg("--config")
        .arg(config)
        .args(["status", "--json"]));
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str(&out.stdout).expect("status --json prints JSON")
}

#[test]
fn enqueue_from_every_input_then_status_shows_the_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &log_queue("q"));
    let with_config = || {
        let mut c = bucketq(dir.path());
        c.arg("--config").arg(&config);
        c
    };
    let a = run(with_config().args(["enqueue", "q", "--json", r#"{"n":1}"#]));
    assert_eq!(a.code, 0, "{}", a.all());
    let key = a.stdout.trim();
    assert!(
        key.starts_with("q/") && key.ends_with(".task") && key.len() == 2 + 26 + 5,
        "{key}"
    );
    assert_eq!(body(dir.path(), key).as_deref(), Some(r#"{"n":1}"#));

    let file = write_file(dir.path(), "p.json", r#"{"n":2}"#);
    let b = run(with_config().args(["enqueue", "q", "--file"]).arg(&file));
    assert_eq!(b.code, 0, "{}", b.all());
    let c = run_with_stdin(with_config().args(["enqueue", "q", "-"]), r#"{"n":3}"#);
    assert_eq!(c.code, 0, "{}", c.all());
    let d = run(with_config().args(["enqueue", "q", "--id", "fixed", "--json", "[4]"]));
    assert_eq!(d.stdout.trim(), "q/fixed.task", "{}", d.all());
    // Time-sortable: a later enqueue sorts after an earlier one.
    assert!(b.stdout.trim() > key, "{} !> {key}", b.stdout.trim());

    let again = run(with_config().args(["enqueue", "q", "--id", "fixed", "--json", "[5]"]));
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert_eq!(body(dir.path(), "q/fixed.task").as_deref(), Some("[4]"));

    let s = status(dir.path(), &config);
    assert_eq!(s[0]["queue"], "q");
    assert_eq!(s[0]["pending"], 4, "{s}");
    assert_eq!(s[0]["failed"], 0);
    assert!(s[0]["oldest_pending_age_secs"].as_f64().is_some(), "{s}");

    let table = run(with_config().arg("status"));
    assert_eq!(table.code, 0, "{}", table.all());
    assert!(table.stdout.contains("PENDING"), "{}", table.stdout);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("q "))
        .expect("a row for q");
    assert!(row.split_whitespace().any(|c| c == "4"), "{row}");
}

#[test]
fn status_counts_running_and_stale_locks_and_failed_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        "[[queue]]\nname = \"q\"\nprefix = \"q/\"\ntimeout = \"200ms\"\nhandler = { type = \"log\" }\n",
    );
    // A 1 s lease so a lock can go stale within the test.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("lease = \"10s\"", "lease = \"1s\"");
    std::fs::write(&config, text).unwrap();
    put(dir.path(), "q/old.lock", "{}", &[(meta::ATTEMPT, "1")]);
    std::thread::sleep(Duration::from_millis(1300));
    put(dir.path(), "q/new.lock", "{}", &[(meta::ATTEMPT, "1")]);
    put(dir.path(), "q/p.task", "{}", &[]);
    put(dir.path(), "failed/q/f.task", "{}", &[]);
    put(dir.path(), "q/notes.txt", "", &[]);
    let s = status(dir.path(), &config);
    assert_eq!(
        (
            &s[0]["pending"],
            &s[0]["running"],
            &s[0]["stale"],
            &s[0]["failed"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into()),
        "{s}"
    );
}

#[test]
fn failed_list_shows_metadata_and_retry_brings_tasks_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        &format!("{}\n{}", log_queue("q"), log_queue("r")),
    );
    let cmd = || {
        let mut c = bucketq(dir.path());
        c.arg("--config").arg(&config);
        c
    };
    let failed_meta = [
        (meta::ATTEMPT, "3"),
        (meta::ERROR, "550 mailbox unavailable"),
        (meta::FAILED_AT, "2024-05-01T10:00:00Z"),
    ];
    put(dir.path(), "failed/q/7.task", r#"{"to":"x"}"#, &failed_meta);
    put(dir.path(), "failed/q/8.task", r#"{"to":"y"}"#, &failed_meta);
    put(dir.path(), "failed/r/9.task", r#"{"to":"z"}"#, &failed_meta);

    let list = run(cmd().args(["failed", "list"]));
    assert_eq!(list.code, 0, "{}", list.all());
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("failed/q/7.task"))
        .expect("row");
    assert!(
        row.contains(" 3 ") && row.contains("550 mailbox unavailable"),
        "{row}"
    );
    assert!(row.contains("2024-05-01T10:00:00Z"), "{row}");
    let json = run(cmd().args(["failed", "list", "r", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["key"], "failed/r/9.task");
    assert_eq!(v[0]["attempts"], 3);

    // One key by its failed name, one by its pending name.
    let retry = run(cmd().args(["failed", "retry", "failed/q/7.task"]));
    assert_eq!(retry.code, 0, "{}", retry.all());
    assert!(
        retry
            .stdout
            .contains("requeued failed/q/7.task -> q/7.task"),
        "{}",
        retry.stdout
    );
    assert_eq!(
        body(dir.path(), "q/7.task").as_deref(),
        Some(r#"{"to":"x"}"#)
    );
    assert_eq!(body(dir.path(), "failed/q/7.task"), None);
    let pending_meta = block_on(store(dir.path()).head("q/7.task"))
        .unwrap()
        .user_meta;
    assert!(
        !pending_meta.contains_key(meta::ATTEMPT),
        "attempts were not reset: {pending_meta:?}"
    );

    let s = status(dir.path(), &config);
    assert_eq!(
        (&s[0]["pending"], &s[0]["failed"]),
        (&1.into(), &1.into()),
        "{s}"
    );

    // A different task pending under the same id: the failed one is kept, exit 1.
    put(dir.path(), "q/8.task", r#"{"other":true}"#, &[]);
    let kept = run(cmd().args(["failed", "retry", "q/8.task"]));
    assert_eq!(kept.code, 1, "{}", kept.all());
    assert!(kept.stdout.contains("kept"), "{}", kept.stdout);
    assert_eq!(
        body(dir.path(), "failed/q/8.task").as_deref(),
        Some(r#"{"to":"y"}"#)
    );

    let all = run(cmd().args(["failed", "retry", "--all", "r"]));
    assert_eq!(all.code, 0, "{}", all.all());
    assert_eq!(
        body(dir.path(), "r/9.task").as_deref(),
        Some(r#"{"to":"z"}"#)
    );

    let bogus = run(cmd().args(["failed", "retry", "elsewhere/1.task"]));
    assert_eq!(bogus.code, 1, "{}", bogus.all());
    assert!(
        bogus.stdout.contains("not a failed task"),
        "{}",
        bogus.all()
    );
}

#[test]
fn doctor_on_the_local_store_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &log_queue("q"));
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("doctor"));
    assert_eq!(out.code, 0, "{}", out.all());
    for check in ["config", "bucket", "create-if-absent", "handler q"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line:\n{}", out.stdout));
        assert!(line.starts_with("ok") || line.starts_with("skip"), "{line}");
    }
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
}

#[test]
fn doctor_reports_an_unreachable_smtp_server_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = cli_support::free_port();
    let config = local_config(
        dir.path(),
        &format!(
            "[[queue]]\nname = \"mail\"\nprefix = \"mail/\"\ntimeout = \"2s\"\nhandler = {{ type = \"mail\", host = \"127.0.0.1\", port = {port}, tls = \"none\", from = \"A <a@example.com>\" }}\n"
        ),
    );
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("doctor"));
    assert_eq!(out.code, 1, "{}", out.all());
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("handler mail"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.starts_with("FAIL") && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains("firewall"), "{line}");
}
