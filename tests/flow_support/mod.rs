//! Helpers of the end-to-end `flow_*` tests: the real daemon (`bucketq run`) between real
//! producers (Python writing pickles and JSON, as plain files or with boto3) and real receivers
//! (aiosmtpd, an HTTP server, the FC shim). Builds on `tests/cli_support` (the binary, configs,
//! the daemon's output) and `tests/support` (Pythons, the SMTP server, the test CA).

#![allow(dead_code)] // each flow test uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketq::config::{StoreBackend, StoreConfig};
use bucketq::store::{ListRequest, Object, RequestStats, Store};
use serde_json::{json, Value};

use crate::cli_support::{self, Daemon};
use crate::support::smtp::TestCerts;

/// Longest wait for something the daemon should do within a few polls.
pub const SOON: Duration = Duration::from_secs(20);

/// Login the SMTP test server requires.
pub const SMTP_USER: &str = "mailer";
/// Its password.
pub const SMTP_PASSWORD: &str = "flow-pw-123";

/// `[worker]` settings for fast tests: short polls, a short lease check.
pub const FAST_WORKER: &str = r#"[worker]
poll_interval = "100ms"
max_poll_interval = "500ms"
shutdown_grace = "5s"
lease = "10s"
"#;

/// One task a producer wrote, as the producer saw it.
#[derive(Debug, Clone)]
pub struct Produced {
    /// Its key, e.g. `mail/p4.task`.
    pub key: String,
    /// Body size in bytes.
    pub size: u64,
    /// Lower-case hex MD5 of the body (the ETag of a simple upload).
    pub md5: String,
    /// The ETag the S3 server answered (`--s3` only).
    pub etag: Option<String>,
    /// The body.
    pub bytes: Vec<u8>,
}

/// One task for `produce.py`: `kind` is `issue`, `issue-str`, `json`, `json-utf8`, `list`,
/// `instance`, `truncated`, `random`, `json-array`, `raise`.
pub fn spec(key: &str, kind: &str, protocol: u8) -> Value {
    json!({"key": key, "kind": kind, "protocol": protocol})
}

/// A task whose bytes are given (made by another Python).
pub fn spec_bytes(key: &str, bytes: &[u8]) -> Value {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    json!({"key": key, "hex": hex})
}

fn produce(python: &Path, specs: &[Value], mode: &[&str]) -> Vec<Produced> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flow_support/produce.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(Value::Array(specs.to_vec()).to_string())
        .args(mode)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "produce.py {mode:?} failed under {}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("produce.py prints UTF-8");
    let rows: Vec<Produced> = text
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("one JSON object per line");
            let hex = row["hex"].as_str().expect("hex");
            Produced {
                key: row["key"].as_str().expect("key").to_owned(),
                size: row["size"].as_u64().expect("size"),
                md5: row["md5"].as_str().expect("md5").to_owned(),
                etag: row.get("etag").and_then(Value::as_str).map(str::to_owned),
                bytes: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                    .collect(),
            }
        })
        .collect();
    assert_eq!(rows.len(), specs.len(), "one row per task");
    rows
}

/// `python` drops each task as a plain file into the local store's directory `data`, the way
/// an operator's script or `mv` would (no bucketq framing, no metadata).
pub fn produce_local(python: &Path, data: &Path, specs: &[Value]) -> Vec<Produced> {
    produce(
        python,
        specs,
        &["--local", data.to_str().expect("UTF-8 temp path")],
    )
}

/// `python` makes the tasks' bytes without writing them anywhere.
pub fn produce_bytes(python: &Path, specs: &[Value]) -> Vec<Produced> {
    produce(python, specs, &["--print"])
}

/// The test venv's boto3 puts each task into `bucket` on the S3 server at `endpoint`.
pub fn produce_s3(endpoint: &str, bucket: &str, specs: &[Value]) -> Vec<Produced> {
    produce(
        &crate::support::test_venv_python(),
        specs,
        &["--s3", endpoint, bucket],
    )
}

/// A config for the local store in `dir/data` with `queues` appended.
pub fn local_config(dir: &Path, queues: &str) -> PathBuf {
    let text = format!(
        "[store]\nkind = \"local\"\npath = \"{}\"\n\n{FAST_WORKER}\n{queues}\n",
        dir.join("data").display()
    );
    cli_support::write_file(dir, "bucketq.toml", &text)
}

/// The `mail` handler table for an SMTP server on 127.0.0.1:`port`; with `certs`, STARTTLS
/// trusting the test CA and AUTH with [`SMTP_USER`].
pub fn mail_handler(port: u16, certs: Option<&TestCerts>) -> String {
    let secure = match certs {
        Some(c) => format!(
            "tls = \"starttls\", host = \"localhost\", ca_file = \"{}\", username = \"{SMTP_USER}\", password = \"{SMTP_PASSWORD}\"",
            c.path("ca.pem")
        ),
        None => "tls = \"none\", host = \"127.0.0.1\"".to_owned(),
    };
    format!(
        "{{ type = \"mail\", port = {port}, {secure}, from = \"Trotter <noreply@example.com>\", timeout = \"5s\" }}"
    )
}

/// A `[[queue]]` table: `name` on prefix `name/`, fast retries, with `handler`.
pub fn queue(name: &str, handler: &str, max_attempts: u32) -> String {
    format!(
        "[[queue]]\nname = \"{name}\"\nprefix = \"{name}/\"\ntimeout = \"4s\"\nmax_attempts = {max_attempts}\nbackoff = \"200ms\"\nmax_backoff = \"400ms\"\nhandler = {handler}\n"
    )
}

/// `bucketq run --config CONFIG` in `dir`, at debug level so each attempt shows.
pub fn start_daemon(dir: &Path, config: &Path) -> Daemon {
    Daemon::start(
        cli_support::bucketq(dir)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("BUCKETQ_LOG", "info,bucketq=debug"),
    )
}

/// Stop `daemon` with SIGTERM and check it drained cleanly.
pub fn stop(mut daemon: Daemon) -> String {
    daemon.signal(libc::SIGTERM);
    let code = daemon.wait_exit(SOON);
    let output = daemon.output();
    assert_eq!(code, 0, "bucketq did not stop cleanly:\n{output}");
    output
}

/// Poll `done` until it holds; panic with the daemon's output after `timeout`.
pub fn wait_until(what: &str, daemon: &Daemon, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; daemon output:\n{}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a future to completion on a fresh runtime (the checks are synchronous tests).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// The local store in `dir/data`, opened by the library to read what the daemon left.
pub fn local_store(dir: &Path) -> Arc<dyn Store> {
    let cfg = StoreConfig {
        kind: StoreBackend::Local,
        path: dir.join("data"),
        ..StoreConfig::default()
    };
    bucketq::store::open::open(&cfg, Arc::new(RequestStats::default()))
        .expect("the local store opens")
}

/// Every key under `prefix`, all pages.
pub async fn keys_under(store: &dyn Store, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                start_after: None,
                continuation: continuation.take(),
                max_keys: 1000,
            })
            .await
            .expect("listing works");
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(next) => continuation = Some(next),
            None => return keys,
        }
    }
}

/// Every key in the local store in `dir/data`.
pub fn local_keys(dir: &Path, prefix: &str) -> Vec<String> {
    let store = local_store(dir);
    block_on(keys_under(&*store, prefix))
}

/// The object at `key` in the local store in `dir/data`.
pub fn local_object(dir: &Path, key: &str) -> Object {
    let store = local_store(dir);
    block_on(store.get(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// `bucketq failed list --json` with `config`, parsed.
pub fn failed_list_json(dir: &Path, config: &Path) -> Vec<Value> {
    let out = cli_support::run(
        cli_support::bucketq(dir)
            .arg("--config")
            .arg(config)
            .args(["failed", "list", "--json"]),
    );
    assert_eq!(out.code, 0, "failed list: {}", out.all());
    match serde_json::from_str(&out.stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("failed list --json printed {other:?}:\n{}", out.all()),
    }
}

/// The task id of `key` (`mail/p4.task` -> `p4`).
pub fn id_of(key: &str) -> &str {
    let name = key.rsplit('/').next().expect("a key has a last segment");
    name.strip_suffix(".task").expect("a task key")
}

/// The attempt a text log line's task span is at: the last `attempt=N` in the span's fields
/// (the span records each new attempt; the text format lists every value recorded).
pub fn span_attempt(line: &str) -> Option<u32> {
    let start = line.find("task{")?;
    let fields = &line[start..start + line[start..].find('}')?];
    let last = fields.rsplit("attempt=").next()?;
    let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
    if fields.contains("attempt=") {
        digits.parse().ok()
    } else {
        None
    }
}

/// The `exec` handler table running the FC shim (`contrib/fc-shim`) under `python` with the
/// unmodified FC-style handler in `tests/support/fc_code` (`index.init`, `index.handler`),
/// which records what it saw in `out`. `bucket` is the name its `oss2.Bucket` is opened with
/// (`OSS_BUCKET`), as the FC function was configured.
pub fn fc_handler(python: &Path, out: &Path, bucket: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shim = root.join("contrib/fc-shim/bucketq_fc_shim.py");
    let code = root.join("tests/support/fc_code");
    format!(
        "{{ type = \"exec\", event = \"fc\", region = \"cn-hongkong\", account_id = \"1234567890\", \
         command = [\"{}\", \"{}\", \"--code-dir\", \"{}\", \"--initializer\", \"index.init\", \"index.handler\"], \
         env = {{ FC_TEST_OUT = \"{}\", OSS_BUCKET = \"{bucket}\", ALIBABA_CLOUD_ACCESS_KEY_ID = \"LTAI-flow\", \
         ALIBABA_CLOUD_ACCESS_KEY_SECRET = \"flow-secret\", PYTHONDONTWRITEBYTECODE = \"1\" }} }}",
        python.display(),
        shim.display(),
        code.display(),
        out.display(),
    )
}

/// What the FC test handler recorded (`FC_TEST_OUT`), once it exists.
pub fn fc_record(out: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(out).ok()?;
    serde_json::from_str(&text).ok()
}
