//! The `exec` handler: runs a command for each task.
//!
//! The command is an argv, run without a shell (no quoting bugs, no injection through keys).
//! Its stdin gets the payload as the producer wrote it, or with `event = "fc"` the Function
//! Compute OSS trigger event for the task object, so an existing FC handler runs unchanged
//! behind a small shim (`contrib/fc-shim/`). In FC mode the payload is also in a private file
//! named by `BUCKETQ_PAYLOAD_FILE`, because the event only names the object, and bucketq has
//! already claimed it away from its pending key.
//!
//! Task facts are in the environment: `BUCKETQ_QUEUE`, `BUCKETQ_KEY`, `BUCKETQ_ID`,
//! `BUCKETQ_BUCKET`, `BUCKETQ_ATTEMPT`, `BUCKETQ_MAX_ATTEMPTS`, `BUCKETQ_ETAG`, `BUCKETQ_WORKER`. The daemon's own
//! environment holds store and SMTP credentials, so by default the command sees only `PATH`,
//! `HOME`, `USER`, `LOGNAME`, `LANG`, `LANGUAGE`, `LC_*`, `TZ`, `TMPDIR`, plus the configured
//! `env`; `inherit_env = true` passes everything.
//!
//! Verdicts: exit 0 done; every other ending is retried until the attempts are spent, exit 75
//! (`EX_TEMPFAIL`) included, as is a kill by a signal. The command runs in its own process
//! group; on timeout or cancellation the whole group is killed with SIGKILL (children and
//! grandchildren too), and when the command exits normally any process it left behind in its
//! group is killed as well, so a task never leaks processes. The last `output_limit` bytes of
//! stdout and stderr go to the log, and the end of stderr into the failure reason.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{Handler, Outcome, Task};
use crate::secret::Secret;

/// Exit status asking for a retry (`EX_TEMPFAIL` from sysexits.h).
pub const EXIT_RETRY: i32 = 75;

/// Environment variables passed to the command when `inherit_env` is off.
const PASSED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// Most bytes of stderr quoted in a failure reason.
const REASON_TAIL: usize = 300;

/// How long output is still read after the command exited and its group was killed (a process
/// that left the group and kept the pipe open must not hold the task).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// What the command's stdin gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecEvent {
    /// The payload bytes as the producer wrote them.
    #[default]
    Payload,
    /// The FC OSS trigger event JSON for the task object.
    Fc,
}

/// Configuration of the `exec` handler:
/// `handler = { type = "exec", command = ["python3", "shim.py", "index.handler"], event = "fc" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments; the program is looked up in `PATH` unless it contains a `/`.
    #[serde(alias = "argv")]
    pub command: Vec<String>,
    /// `payload` (default) or `fc`.
    #[serde(default)]
    pub event: ExecEvent,
    /// Extra environment; values are secrets (they often hold credentials).
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Pass the daemon's whole environment (credentials included) instead of a safe few.
    #[serde(default)]
    pub inherit_env: bool,
    /// Working directory; the daemon's when absent.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// FC event: region for `region` and the bucket ARN (default `local`).
    #[serde(default)]
    pub region: Option<String>,
    /// FC event: account id for the ARN and the identities (default `0`).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Bytes kept from the end of stdout and of stderr for the log.
    #[serde(default = "default_output_limit")]
    pub output_limit: usize,
}

fn default_output_limit() -> usize {
    4096
}

/// Why an exec configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ExecConfigError {
    /// `command` is empty.
    #[error("exec handler: `command` is empty; give the program and its arguments as a list")]
    EmptyCommand,
    /// The program is not an executable file.
    #[error("exec handler: {program:?} is not an executable file{hint}")]
    NotFound {
        /// The program.
        program: String,
        /// Where it was looked for.
        hint: String,
    },
    /// `working_dir` is not a directory.
    #[error("exec handler: working_dir {0} is not a directory")]
    BadWorkingDir(PathBuf),
}

/// Runs a command per task; see the module documentation.
#[derive(Debug)]
pub struct ExecHandler {
    cfg: ExecConfig,
}

impl ExecHandler {
    /// Check that the program exists and is executable, so a typo fails at startup rather than
    /// on every task.
    pub fn new(cfg: &ExecConfig) -> Result<Self, ExecConfigError> {
        let program = cfg.command.first().ok_or(ExecConfigError::EmptyCommand)?;
        if let Some(dir) = &cfg.working_dir {
            if !dir.is_dir() {
                return Err(ExecConfigError::BadWorkingDir(dir.clone()));
            }
        }
        if program.contains('/') {
            let path = match &cfg.working_dir {
                Some(dir) => dir.join(program),
                None => PathBuf::from(program),
            };
            if !is_executable(&path) {
                return Err(ExecConfigError::NotFound {
                    program: program.clone(),
                    hint: String::new(),
                });
            }
        } else {
            let search = cfg
                .env
                .get("PATH")
                .map(|p| p.expose().to_owned())
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_default();
            if !std::env::split_paths(&search).any(|dir| is_executable(&dir.join(program))) {
                return Err(ExecConfigError::NotFound {
                    program: program.clone(),
                    hint: " in PATH".into(),
                });
            }
        }
        Ok(ExecHandler { cfg: cfg.clone() })
    }

    fn command(&self, task: &Task, payload_file: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.cfg.command[0]);
        cmd.args(&self.cfg.command[1..]);
        if !self.cfg.inherit_env {
            cmd.env_clear();
            for (name, value) in std::env::vars_os() {
                let passed = name
                    .to_str()
                    .is_some_and(|n| PASSED_ENV.contains(&n) || n.starts_with("LC_"));
                if passed {
                    cmd.env(name, value);
                }
            }
        }
        for (name, value) in &self.cfg.env {
            cmd.env(name, value.expose());
        }
        cmd.env("BUCKETQ_QUEUE", &task.queue)
            .env("BUCKETQ_KEY", &task.key)
            .env("BUCKETQ_ID", &task.id)
            .env("BUCKETQ_BUCKET", &task.bucket)
            .env("BUCKETQ_ETAG", &task.etag)
            .env("BUCKETQ_ATTEMPT", task.attempt.to_string())
            .env("BUCKETQ_MAX_ATTEMPTS", task.max_attempts.to_string())
            .env("BUCKETQ_WORKER", &task.worker);
        if let Some(file) = payload_file {
            cmd.env("BUCKETQ_PAYLOAD_FILE", file);
        }
        if let Some(dir) = &self.cfg.working_dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills everything it started.
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }
}

#[async_trait]
impl Handler for ExecHandler {
    async fn handle(&self, task: &Task, cancel: CancellationToken) -> Outcome {
        let (input, payload_file) = match self.cfg.event {
            ExecEvent::Payload => (task.payload.to_vec(), None),
            ExecEvent::Fc => {
                let event = fc_event(
                    task,
                    self.cfg.region.as_deref().unwrap_or("local"),
                    self.cfg.account_id.as_deref().unwrap_or("0"),
                );
                let file = match PayloadFile::write(&task.payload) {
                    Ok(file) => file,
                    Err(e) => return Outcome::retry(format!("cannot write the payload file: {e}")),
                };
                (event.to_string().into_bytes(), Some(file))
            }
        };
        let cmd = self.command(task, payload_file.as_ref().map(|f| f.path.as_path()));
        let program = &self.cfg.command[0];
        let run = run_in_group(cmd, input, self.cfg.output_limit, task.timeout, cancel).await;
        drop(payload_file);
        let run = match run {
            Ok(run) => run,
            Err(e) => return Outcome::fail(format!("cannot start {program:?}: {e}")),
        };
        let outcome = run.outcome(program, task.timeout);
        let stdout = String::from_utf8_lossy(&run.stdout.tail);
        let stderr = String::from_utf8_lossy(&run.stderr.tail);
        match &outcome {
            Outcome::Done => tracing::info!(
                queue = %task.queue, key = %task.key, attempt = task.attempt,
                stdout = %stdout, stderr = %stderr,
                stdout_bytes = run.stdout.total, stderr_bytes = run.stderr.total,
                "command succeeded"
            ),
            Outcome::Retry { reason, .. } | Outcome::Fail { reason } => tracing::warn!(
                queue = %task.queue, key = %task.key, attempt = task.attempt, reason = %reason,
                stdout = %stdout, stderr = %stderr,
                stdout_bytes = run.stdout.total, stderr_bytes = run.stderr.total,
                "command failed"
            ),
        }
        outcome
    }
}

/// The FC OSS trigger event for a task object, in the format FC delivers
/// (`reference/oss-s3-api.md` §4.1): `eventTime` is when the object was written, `eTag`
/// unquoted, `size` the payload's. A listing cannot tell PutObject from PostObject or
/// CopyObject, so the event name is always `ObjectCreated:PutObject`.
pub fn fc_event(task: &Task, region: &str, account_id: &str) -> Value {
    let size = task.payload.len();
    json!({
        "events": [{
            "eventName": "ObjectCreated:PutObject",
            "eventSource": "acs:oss",
            "eventTime": humantime::format_rfc3339_millis(task.created_at).to_string(),
            "eventVersion": "1.0",
            "oss": {
                "bucket": {
                    "arn": format!("acs:oss:{region}:{account_id}:{}", task.bucket),
                    "name": task.bucket,
                    "ownerIdentity": account_id,
                    "virtualBucket": "",
                },
                "object": {
                    "deltaSize": size,
                    "eTag": task.etag.trim_matches('"'),
                    "key": task.key,
                    "size": size,
                },
                "ossSchemaVersion": "1.0",
                "ruleId": "bucketq",
            },
            "region": region,
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": { "requestId": format!("bucketq-{}-{}", task.id, task.attempt) },
            "userIdentity": { "principalId": account_id },
        }]
    })
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
}

/// A finished run: how it ended and the end of its output.
#[derive(Debug)]
struct Run {
    ending: Ending,
    stdout: Tail,
    stderr: Tail,
}

impl Run {
    fn outcome(&self, program: &str, timeout: Duration) -> Outcome {
        let said = stderr_excerpt(&self.stderr.tail);
        match self.ending {
            Ending::Exited(status) if status.success() => Outcome::Done,
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(EXIT_RETRY), _) => {
                    Outcome::retry(format!("{program} asked for a retry (exit 75){said}"))
                }
                (Some(code), _) => Outcome::retry(format!("{program} exited with {code}{said}")),
                (None, Some(signal)) => {
                    Outcome::retry(format!("{program} was killed by signal {signal}{said}"))
                }
                (None, None) => Outcome::retry(format!("{program} ended abnormally{said}")),
            },
            Ending::TimedOut => Outcome::retry(format!(
                "{program} timed out after {timeout:?}; its process group was killed{said}"
            )),
            Ending::Cancelled => Outcome::retry(format!(
                "{program} was cancelled; its process group was killed{said}"
            )),
        }
    }
}

fn stderr_excerpt(tail: &[u8]) -> String {
    let start = tail.len().saturating_sub(REASON_TAIL);
    let text = String::from_utf8_lossy(&tail[start..]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Spawn `cmd` (already set up with its own process group), feed it `input`, and wait for it
/// to exit, time out or be cancelled; then kill whatever is left of its group and reap it.
async fn run_in_group(
    mut cmd: Command,
    input: Vec<u8>,
    output_limit: usize,
    timeout: Duration,
    cancel: CancellationToken,
) -> std::io::Result<Run> {
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .and_then(|id| libc::pid_t::try_from(id).ok())
        .expect("a child that was just spawned and not waited for has a pid");
    // Declared after `child`, so on an early drop it fires first, while the leader is still
    // unreaped and its pid (the group id) cannot have been reused.
    let mut group = ProcessGroup {
        pgid: pid,
        armed: true,
    };

    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A command that does not read its stdin is fine: ignore EPIPE.
            let _ = stdin.write_all(&input).await;
        }
    });
    let stdout = tokio::spawn(read_tail(child.stdout.take(), output_limit));
    let stderr = tokio::spawn(read_tail(child.stderr.take(), output_limit));

    let ended = tokio::select! {
        () = exited_unreaped(pid) => None,
        () = cancel.cancelled() => Some(Ending::Cancelled),
        () = tokio::time::sleep(timeout) => Some(Ending::TimedOut),
    };
    group.kill();
    let status = child.wait().await?;
    group.armed = false;
    writer.abort();
    let ending = ended.unwrap_or(Ending::Exited(status));
    let stdout = collect(stdout).await;
    let stderr = collect(stderr).await;
    Ok(Run {
        ending,
        stdout,
        stderr,
    })
}

/// A process group to SIGKILL; armed until its leader is reaped.
struct ProcessGroup {
    pgid: libc::pid_t,
    armed: bool,
}

impl ProcessGroup {
    fn kill(&self) {
        if self.armed {
            // SAFETY: killpg only sends a signal. The group id is the pid of our child, which
            // is not yet reaped (`armed`), so it cannot name anyone else's group.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resolve when the child `pid` has exited, *without* reaping it (`WNOWAIT`): while it is a
/// zombie its pid stays reserved, so killing its group afterwards cannot hit a stranger.
/// Woken by SIGCHLD, with a slow poll as a fallback in case a signal is missed.
async fn exited_unreaped(pid: libc::pid_t) {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        if has_exited(pid) {
            return;
        }
        match &mut sigchld {
            Some(signal) => {
                tokio::select! {
                    _ = signal.recv() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid with WNOWAIT | WNOHANG only
    // inspects our own child and leaves it unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        );
        // An error (ECHILD) means there is nothing left to wait for.
        rc != 0 || info.si_pid() != 0
    }
}

/// The last bytes of an output stream and how many there were in all.
#[derive(Debug, Default)]
struct Tail {
    tail: Vec<u8>,
    total: u64,
}

async fn read_tail(stream: Option<impl AsyncRead + Unpin>, limit: usize) -> Tail {
    let mut out = Tail::default();
    let Some(mut stream) = stream else {
        return out;
    };
    let mut buf = vec![0; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                out.total += n as u64;
                out.tail.extend_from_slice(&buf[..n]);
                if out.tail.len() > limit {
                    let excess = out.tail.len() - limit;
                    out.tail.drain(..excess);
                }
            }
        }
    }
}

async fn collect(reader: tokio::task::JoinHandle<Tail>) -> Tail {
    let abort = reader.abort_handle();
    match tokio::time::timeout(OUTPUT_GRACE, reader).await {
        Ok(Ok(tail)) => tail,
        Ok(Err(_)) => Tail::default(),
        Err(_) => {
            abort.abort();
            Tail::default()
        }
    }
}

/// The payload in a private (0600) temporary file for the FC shim; removed when dropped.
struct PayloadFile {
    path: PathBuf,
}

impl PayloadFile {
    fn write(payload: &[u8]) -> std::io::Result<PayloadFile> {
        use rand::Rng as _;
        let name = format!(
            "bucketq-{}-{:016x}.payload",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        );
        let path = std::env::temp_dir().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(payload)?;
        Ok(PayloadFile { path })
    }
}

impl Drop for PayloadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::SystemTime;

    fn task() -> Task {
        Task {
            queue: "img".into(),
            id: "a/b".into(),
            key: "img/a/b.task".into(),
            bucket: "photos".into(),
            payload: Bytes::from_static(b"12345"),
            etag: "\"ABC\"".into(),
            created_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_660_373_143_000),
            attempt: 2,
            max_attempts: 3,
            timeout: Duration::from_secs(1),
            worker: "host-42-0badcafe".into(),
        }
    }

    #[test]
    fn fc_event_matches_the_documented_shape() {
        let e = fc_event(&task(), "cn-hangzhou", "123456789");
        let ev = &e["events"][0];
        assert_eq!(ev["eventName"], "ObjectCreated:PutObject");
        assert_eq!(ev["eventSource"], "acs:oss");
        assert_eq!(ev["eventTime"], "2022-08-13T06:45:43.000Z");
        assert_eq!(ev["region"], "cn-hangzhou");
        assert_eq!(
            ev["oss"]["bucket"]["arn"],
            "acs:oss:cn-hangzhou:123456789:photos"
        );
        assert_eq!(ev["oss"]["bucket"]["name"], "photos");
        assert_eq!(ev["oss"]["object"]["key"], "img/a/b.task");
        assert_eq!(ev["oss"]["object"]["eTag"], "ABC");
        assert_eq!(ev["oss"]["object"]["size"], 5);
        assert_eq!(ev["oss"]["object"]["deltaSize"], 5);
        assert_eq!(ev["userIdentity"]["principalId"], "123456789");
    }

    #[test]
    fn endings_map_to_outcomes() {
        let run = |ending| Run {
            ending,
            stdout: Tail::default(),
            stderr: Tail {
                tail: b"boom\n  details".to_vec(),
                total: 14,
            },
        };
        let exit = |code: i32| Ending::Exited(ExitStatus::from_raw(code << 8));
        let t = Duration::from_secs(2);
        assert_eq!(run(exit(0)).outcome("x", t), Outcome::Done);
        assert_eq!(
            run(exit(75)).outcome("x", t),
            Outcome::retry("x asked for a retry (exit 75): boom details")
        );
        assert_eq!(
            run(exit(3)).outcome("x", t),
            Outcome::retry("x exited with 3: boom details")
        );
        assert_eq!(
            run(Ending::Exited(ExitStatus::from_raw(9))).outcome("x", t),
            Outcome::retry("x was killed by signal 9: boom details")
        );
        assert!(
            matches!(run(Ending::TimedOut).outcome("x", t), Outcome::Retry { reason, .. } if reason.contains("timed out after 2s"))
        );
    }

    #[test]
    fn config_is_checked_up_front() {
        let cfg = |command: &[&str]| ExecConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            event: ExecEvent::Payload,
            env: BTreeMap::new(),
            inherit_env: false,
            working_dir: None,
            region: None,
            account_id: None,
            output_limit: 16,
        };
        assert!(matches!(
            ExecHandler::new(&cfg(&[])),
            Err(ExecConfigError::EmptyCommand)
        ));
        let e = ExecHandler::new(&cfg(&["no-such-program-bq"])).expect_err("missing");
        assert!(e.to_string().contains("in PATH"), "{e}");
        let plain = tempfile::NamedTempFile::new().expect("temp file");
        let path = plain.path().to_string_lossy().into_owned();
        assert!(ExecHandler::new(&cfg(&[&path])).is_err(), "not executable");
        assert!(ExecHandler::new(&cfg(&["sh", "-c", "true"])).is_ok());
    }
}
