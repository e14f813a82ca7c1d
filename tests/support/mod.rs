//! Helpers shared by the handler tests: the Pythons that write real pickles, and tasks.
#![allow(dead_code)]

pub mod http;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use bucketq::handlers::Task;
use bytes::Bytes;
use serde_json::Value;

/// Path of a file under `tests/support/`.
pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// The Python 2.7 interpreter (`BUCKETQ_TEST_PYTHON2`, else the pyenv install); panics if absent
/// so a missing interpreter can never pass quietly.
pub fn python2() -> PathBuf {
    let path = std::env::var_os("BUCKETQ_TEST_PYTHON2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".pyenv/versions/2.7.18/bin/python")
        });
    assert!(
        path.exists(),
        "Python 2.7 not found at {} (set BUCKETQ_TEST_PYTHON2); the pickle tests need it",
        path.display()
    );
    path
}

/// The Python 3 interpreter (`BUCKETQ_TEST_PYTHON3`, else `python3`).
pub fn python3() -> PathBuf {
    let path = std::env::var_os("BUCKETQ_TEST_PYTHON3")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&path)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 not runnable as {} (set BUCKETQ_TEST_PYTHON3)",
        path.display()
    );
    path
}

/// The test servers' Python venv (with aiosmtpd); panics with the standard message if unset.
pub fn test_venv_python() -> PathBuf {
    let venv = std::env::var_os("BUCKETQ_TEST_VENV").expect(
        "BUCKETQ_TEST_VENV is not set: run ./scripts/test, which starts the test servers \
         (or `source scripts/test-servers.sh`, which starts them in this shell)",
    );
    let py = Path::new(&venv).join("bin/python");
    assert!(py.exists(), "{} does not exist", py.display());
    py
}

/// One pickle Python wrote, from `tests/support/make_pickles.py`.
#[derive(Debug, Clone)]
pub struct PickleCase {
    /// Case name (`issue`, `rich`, `list`, ...).
    pub name: String,
    /// `2.7`, `3.11`, ...
    pub python: String,
    /// Pickle protocol (-1 for non-pickles).
    pub protocol: i64,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What it must decode to.
    pub expect: Option<Value>,
    /// A phrase the decode error must contain.
    pub error: Option<String>,
}

/// Run `make_pickles.py` with `python` and parse its cases.
pub fn pickles_from(python: &Path) -> Vec<PickleCase> {
    let out = Command::new(python)
        .arg(support_file("make_pickles.py"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "make_pickles.py failed under {}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("make_pickles.py prints UTF-8");
    text.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("one JSON object per line");
            PickleCase {
                name: row["name"].as_str().expect("name").to_owned(),
                python: row["python"].as_str().expect("python").to_owned(),
                protocol: row["protocol"].as_i64().expect("protocol"),
                bytes: hex(row["hex"].as_str().expect("hex")),
                expect: row.get("expect").cloned(),
                error: row.get("error").and_then(|e| e.as_str()).map(str::to_owned),
            }
        })
        .collect()
}

/// Every case from both Pythons.
pub fn all_pickles() -> Vec<PickleCase> {
    let mut cases = pickles_from(&python2());
    cases.extend(pickles_from(&python3()));
    cases
}

/// The one case with this name, Python major version and protocol.
pub fn pickle_case(cases: &[PickleCase], name: &str, python_major: &str, protocol: i64) -> Vec<u8> {
    cases
        .iter()
        .find(|c| c.name == name && c.python.starts_with(python_major) && c.protocol == protocol)
        .unwrap_or_else(|| panic!("no case {name} python {python_major} protocol {protocol}"))
        .bytes
        .clone()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// A task as the engine would hand it over.
pub fn task(queue: &str, id: &str, payload: impl Into<Bytes>) -> Task {
    Task {
        queue: queue.to_owned(),
        id: id.to_owned(),
        key: format!("{queue}/{id}.task"),
        bucket: "test-bucket".to_owned(),
        payload: payload.into(),
        etag: "5d41402abc4b2a76b9719d911017c592".to_owned(),
        created_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_660_373_143_250),
        attempt: 1,
        max_attempts: 3,
        timeout: Duration::from_secs(30),
        worker: "test-host-4242-0badcafe".to_owned(),
    }
}

/// A random suffix for names that must not collide between test runs.
pub fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}
