//! Helpers shared by the `cli_*` tests: run the built binary hermetically, write configs,
//! drive a running daemon, and reach the shared S3 test servers.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Variables the binary reads; removed so the caller's shell cannot change a test's outcome.
const HERMETIC_VARS: [&str; 14] = [
    "BUCKETQ_CONFIG",
    "BUCKETQ_LOG",
    "BUCKETQ_LOG_FORMAT",
    "RUST_LOG",
    "OSS_BUCKET",
    "OSS_KEYID",
    "OSS_SECRET",
    "OSS_LINK",
    "EMAIL_SERVER_HOST",
    "EMAIL_SERVER_PORT",
    "EMAIL_USERNAME",
    "EMAIL_PASSWORD",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
];

/// The built `bucketq` with a clean environment, running in `dir`.
pub fn bucketq(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bucketq"));
    cmd.current_dir(dir);
    for var in HERMETIC_VARS {
        cmd.env_remove(var);
    }
    for (name, _) in std::env::vars() {
        let cloud = name.starts_with("ALIBABA_CLOUD_") || name.starts_with("AWS_");
        if (name.starts_with("BUCKETQ_") && name.contains("__")) || cloud {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Both streams, for searching.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run to completion.
pub fn run(cmd: &mut Command) -> Ran {
    cmd.stdin(Stdio::null())
        .output()
        .expect("the bucketq binary runs")
        .into()
}

/// Run with `input` on stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Ran {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bucketq binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("stdin accepts the payload");
    child.wait_with_output().expect("bucketq finishes").into()
}

/// Write `text` as `name` in `dir`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the temp dir is writable");
    path
}

/// A config on the local store in `dir/data`, fast polls, with `rest` appended.
pub fn local_config(dir: &Path, rest: &str) -> PathBuf {
    let text = format!(
        r#"[store]
kind = "local"
path = "{}"

[worker]
poll_interval = "100ms"
max_poll_interval = "300ms"
shutdown_grace = "5s"
lease = "10s"

{rest}
"#,
        dir.join("data").display()
    );
    write_file(dir, "bucketq.toml", &text)
}

/// A `[[queue]]` using the log handler.
pub fn log_queue(name: &str) -> String {
    format!(
        "[[queue]]\nname = \"{name}\"\nprefix = \"{name}/\"\ntimeout = \"2s\"\nhandler = {{ type = \"log\" }}\n"
    )
}

/// A daemon started with `bucketq run`, its stderr collected line by line.
pub struct Daemon {
    /// The process.
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Start `cmd` (already `run` with its arguments).
    pub fn start(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the bucketq binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().expect("stderr is piped"))
                as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout is piped")),
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Daemon { child, lines }
    }

    /// Every line so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait until a line satisfies `pred`; panic with the output after `timeout`.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            if self.lines.lock().unwrap().iter().any(|l| pred(l)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "bucketq exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("no {what} within {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send a signal.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pids fit in i32");
        // SAFETY: kill(2) with a pid we spawned and still own; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// SIGTERM, then insist on a clean drain (exit 0) within `timeout`.
    pub fn stop_cleanly(&mut self, timeout: Duration) {
        self.signal(libc::SIGTERM);
        let code = self.wait_exit(timeout);
        assert_eq!(code, 0, "no clean drain after SIGTERM:\n{}", self.output());
    }

    /// Wait for the exit code; kill and panic after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait works") {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "bucketq did not exit within {timeout:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port is available")
        .port()
}

/// One HTTP GET on 127.0.0.1, returning the whole response (or the connection error).
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The shared moto server (SigV4 checked): endpoint, access key id, secret.
pub struct S3Server {
    /// `http://127.0.0.1:5055`.
    pub endpoint: String,
    /// A valid key id.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
    /// Python with boto3, for setting up buckets.
    pub python: PathBuf,
}

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run ./scripts/test, which starts the test servers")
    })
}

/// The moto server from the environment; panics when it is not configured.
pub fn moto() -> S3Server {
    S3Server {
        endpoint: required("BUCKETQ_TEST_S3_ENDPOINT"),
        key_id: required("BUCKETQ_TEST_S3_ACCESS_KEY_ID"),
        secret: required("BUCKETQ_TEST_S3_SECRET_ACCESS_KEY"),
        python: PathBuf::from(required("BUCKETQ_TEST_VENV")).join("bin/python"),
    }
}

impl S3Server {
    /// Run a boto3 snippet with `s3` bound to a client and `bucket` to the name.
    pub fn boto3(&self, bucket: &str, code: &str) -> String {
        let script = format!(
            "import boto3, sys\n\
             s3 = boto3.client('s3', endpoint_url={ep:?}, region_name='us-east-1', \
             aws_access_key_id={id:?}, aws_secret_access_key={secret:?})\n\
             bucket = {bucket:?}\n{code}\n",
            ep = self.endpoint,
            id = self.key_id,
            secret = self.secret,
        );
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .output()
            .expect("the test venv's python runs");
        assert!(
            out.status.success(),
            "boto3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create a bucket with a random suffix and return its name.
    pub fn new_bucket(&self, stem: &str) -> String {
        let name = format!("{stem}-{:08x}", rand::random::<u32>());
        self.boto3(&name, "s3.create_bucket(Bucket=bucket)");
        name
    }

    /// A config file in `dir` for `bucket`; credentials come from the environment.
    pub fn config(&self, dir: &Path, bucket: &str, rest: &str) -> PathBuf {
        let text = format!(
            r#"[store]
kind = "s3"
endpoint = "{}"
bucket = "{bucket}"
region = "us-east-1"
path_style = true

[worker]
poll_interval = "100ms"
max_poll_interval = "300ms"
lease = "10s"

{rest}
"#,
            self.endpoint
        );
        write_file(dir, "bucketq.toml", &text)
    }
}
