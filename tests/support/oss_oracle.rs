//! Starts `tests/support/oss_oracle.py` (an OSS emulation that judges every request with
//! Alibaba's own SDK signers) on a free port of 127.0.0.1, and reads what it saw.
//!
//! The oracle needs the test venv's Python with `oss2` and `alibabacloud-oss-v2`
//! (`./scripts/test` installs them); without them the tests fail with that message, never
//! pass quietly.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// The bucket every oracle serves.
pub const BUCKET: &str = "bq-oracle";
/// The region its V4 scope must name.
pub const REGION: &str = "cn-hangzhou";
/// A long-lived key pair it accepts.
pub const KEY_ID: &str = "LTAI5tOracleKeyId";
/// Its secret.
pub const SECRET: &str = "OracleSecret0123456789abcdefXYZ";

/// One key the oracle accepts.
#[derive(Debug, Clone)]
pub struct Key {
    /// Access key id.
    pub id: String,
    /// Secret.
    pub secret: String,
    /// STS token the requests must carry.
    pub token: Option<String>,
    /// Unix time after which the key is refused as expired.
    pub expires: Option<u64>,
}

impl Key {
    /// The long-lived pair [`KEY_ID`] / [`SECRET`].
    pub fn long_lived() -> Key {
        Key {
            id: KEY_ID.into(),
            secret: SECRET.into(),
            token: None,
            expires: None,
        }
    }
}

/// How the oracle is reached.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `<bucket>.<host>` is virtual-hosted under this host.
    pub virtual_host: Option<String>,
    /// A custom domain bound to the bucket.
    pub cname: Option<String>,
    /// Serve HTTPS with `server.pem`/`server.key` from this directory.
    pub tls_dir: Option<PathBuf>,
}

/// A running oracle; stopped when dropped.
pub struct Oracle {
    child: Child,
    port: u16,
    keys_file: PathBuf,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test venv's Python, checked to have both Alibaba SDKs.
pub fn oracle_python() -> PathBuf {
    let venv = std::env::var_os("BUCKETQ_TEST_VENV").expect(
        "BUCKETQ_TEST_VENV is not set: run ./scripts/test, which installs oss2 and \
         alibabacloud-oss-v2 for the OSS signature oracle",
    );
    let py = Path::new(&venv).join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import oss2, alibabacloud_oss_v2"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import oss2 and alibabacloud_oss_v2: run ./scripts/test (it installs them) \
         or pip install 'oss2>=2.19,<3' 'alibabacloud-oss-v2>=1.2,<2' into that venv",
        py.display()
    );
    py
}

impl Oracle {
    /// An oracle accepting `keys`, reached as `options` says.
    pub fn start(keys: &[Key], options: Options) -> Oracle {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys_file = dir.path().join("keys.json");
        write_keys(&keys_file, keys);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oss_oracle.py");
        let mut cmd = Command::new(oracle_python());
        cmd.arg(script)
            .args(["--bucket", BUCKET, "--region", REGION, "--port", "0"])
            .arg("--keys")
            .arg(&keys_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(host) = &options.virtual_host {
            cmd.args(["--virtual-host", host]);
        }
        if let Some(host) = &options.cname {
            cmd.args(["--cname", host]);
        }
        if let Some(tls) = &options.tls_dir {
            cmd.arg("--tls").arg(tls);
        }
        let mut child = cmd.spawn().expect("start the OSS oracle");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the oracle's port");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the OSS oracle did not start: {line:?}"));
        Oracle {
            child,
            port,
            keys_file,
            tls: options.tls_dir.is_some(),
            _dir: dir,
        }
    }

    /// The plain oracle: the long-lived key, path-style on its IP.
    pub fn plain() -> Oracle {
        Oracle::start(&[Key::long_lived()], Options::default())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file the keys are read from (a fake STS may write it as it issues keys).
    pub fn keys_file(&self) -> PathBuf {
        self.keys_file.clone()
    }

    /// Replace the keys it accepts (read again on every request).
    pub fn set_keys(&self, keys: &[Key]) {
        write_keys(&self.keys_file, keys);
    }

    /// Every request it saw, with its verdict: `method`, `target`, `host`, `status`,
    /// `code` (on a refusal), `signature` (`v4`/`v1` when it verified), `content_length`,
    /// `headers`.
    pub fn log(&self) -> Vec<Value> {
        self.control("GET", "/_oracle/log")
    }

    /// Switch the bucket's versioning (`Enabled`, `Suspended`).
    pub fn set_versioning(&self, status: &str) {
        self.control("POST", &format!("/_oracle/versioning?status={status}"));
    }

    /// Refuse every CopyObject (every claim) with `status` and `code`; `None` stops it.
    pub fn refuse_copies(&self, refusal: Option<(u16, &str)>) {
        let query = refusal.map_or(String::new(), |(status, code)| {
            format!("?status={status}&code={code}")
        });
        self.control("POST", &format!("/_oracle/refuse-copies{query}"));
    }

    fn control(&self, method: &str, path: &str) -> Vec<Value> {
        let url = format!("{}{path}", self.endpoint());
        let out = Command::new("curl")
            .args([
                "-s",
                "-k",
                "-X",
                method,
                "--fail",
                &url.replace("http://", self.scheme()),
            ])
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "oracle control {path} failed");
        if out.stdout.is_empty() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).expect("the oracle's log is JSON")
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https://"
        } else {
            "http://"
        }
    }

    /// Panics unless every request it saw was signed as the SDKs sign, carried a length on
    /// every PUT and POST, and was answered as `allowed` says (statuses other than 2xx that
    /// the caller expects, such as 404 or 409). Returns how many requests were checked.
    pub fn assert_all_sound(&self, allowed: &[u64]) -> usize {
        let log = self.log();
        for entry in &log {
            let status = entry["status"].as_u64().unwrap_or(0);
            let code = entry["code"].as_str().unwrap_or("");
            assert!(
                !matches!(
                    code,
                    "SignatureDoesNotMatch"
                        | "MissingContentLength"
                        | "NotImplemented"
                        | "InvalidDigest"
                        | "InvalidSecurityToken"
                        | "InvalidAccessKeyId"
                ),
                "the oracle refused a request ({code}): {entry:#}"
            );
            assert!(
                (200..300).contains(&status) || allowed.contains(&status),
                "unexpected status {status}: {entry:#}"
            );
            if matches!(entry["method"].as_str(), Some("PUT" | "POST")) {
                assert!(
                    entry["content_length"].is_string(),
                    "a PUT or POST without Content-Length: {entry:#}"
                );
            }
        }
        log.len()
    }
}

/// Write `keys` to `path` atomically, in the oracle's format.
pub fn write_keys(path: &Path, keys: &[Key]) {
    let list: Vec<Value> = keys
        .iter()
        .map(|k| json!({"id": k.id, "secret": k.secret, "token": k.token, "expires": k.expires}))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&list).expect("json")).expect("write keys");
    std::fs::rename(&tmp, path).expect("replace keys");
}

/// Write a CA (`ca.pem`) and a server certificate it signed for `names` and 127.0.0.1
/// (`server.pem`, `server.key`) into `dir`, for an oracle serving TLS.
pub fn make_test_ca(dir: &Path, names: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_test_ca.py");
    let out = Command::new(oracle_python())
        .arg(script)
        .arg(dir)
        .args(names)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "make_test_ca.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
