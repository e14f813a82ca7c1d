//! What must never stop the daemon, with the real binary on the local store: SIGHUP (from a
//! terminal, log rotation or `systemctl reload`) and a closed log pipe
//! (`bucketq run 2>&1 | head -1`). Each task still runs exactly once, and SIGTERM still drains.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{bucketq, local_config, run, Daemon};

/// An exec queue whose handler appends one line per run to `runs.log` and takes `secs`.
fn exec_queue(dir: &std::path::Path, secs: f32) -> String {
    let log = dir.join("runs.log");
    format!(
        "[[queue]]\nname = \"q\"\nprefix = \"q/\"\ntimeout = \"4s\"\nhandler = {{ type = \"exec\", command = [\"/bin/sh\", \"-c\", \"echo \\\"$BUCKETQ_KEY\\\" >> {}; sleep {secs}\"] }}\n",
        log.display()
    )
}

fn runs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn enqueue(dir: &std::path::Path, config: &std::path::Path, n: usize) {
    for i in 0..n {
        let out = run(bucketq(dir).arg("--config").arg(config).args([
            "enqueue",
            "q",
            "--json",
            &format!("{{\"i\":{i}}}"),
        ]));
        assert_eq!(out.code, 0, "{}", out.all());
    }
}

fn wait_runs(dir: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(dir).len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} runs: {:?}",
            runs(dir).len(),
            runs(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_is_logged_and_the_daemon_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &exec_queue(dir.path(), 1.5));
    enqueue(dir.path(), &config, 3);
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    wait_runs(dir.path(), 1);
    // Mid-task, twice: neither kills it nor counts as a stop request.
    daemon.signal(libc::SIGHUP);
    daemon.signal(libc::SIGHUP);
    wait_runs(dir.path(), 3);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "SIGHUP stopped it:\n{}",
        daemon.output()
    );
    assert!(
        daemon.output().contains("SIGHUP received"),
        "{}",
        daemon.output()
    );
    let mut seen = runs(dir.path());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each task ran once: {:?}", runs(dir.path()));
    assert_eq!(
        runs(dir.path()).len(),
        3,
        "no task ran twice: {:?}",
        runs(dir.path())
    );
    daemon.stop_cleanly(Duration::from_secs(20));
}

#[test]
fn a_closed_log_pipe_never_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &exec_queue(dir.path(), 0.1));
    let mut child = bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("BUCKETQ_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bucketq starts");
    // Read the first line, then close the pipe, as `| head -1` does.
    let mut first = String::new();
    BufReader::new(child.stderr.take().expect("piped"))
        .read_line(&mut first)
        .expect("a first line");
    assert!(
        first.contains("DEBUG") || first.contains("INFO"),
        "a log line: {first}"
    );
    enqueue(dir.path(), &config, 5);
    wait_runs(dir.path(), 5);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the daemon died with its log pipe"
    );
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop it");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "a clean drain even without a log: {status}"
    );
    assert_eq!(runs(dir.path()).len(), 5);
}

#[test]
fn a_fifo_in_the_store_is_skipped_with_one_warning_and_hangs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &exec_queue(dir.path(), 0.1));
    enqueue(dir.path(), &config, 2);
    let fifo = dir.path().join("data/q/stuck.task");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let started = Instant::now();
    let status = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["status", "--json"]));
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "status hung on the FIFO"
    );
    let mut daemon = Daemon::start(bucketq(dir.path()).arg("--config").arg(&config).arg("run"));
    wait_runs(dir.path(), 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        daemon.output().matches("not a regular file").count(),
        1,
        "{}",
        daemon.output()
    );
    assert!(daemon.output().contains("FIFO"), "{}", daemon.output());
    daemon.stop_cleanly(Duration::from_secs(20));
}

#[test]
fn a_store_directory_it_may_not_create_is_named_with_the_uid_and_exits_78() {
    use std::os::unix::fs::PermissionsExt;
    // A directory this process may not write into: as root, by running bucketq as nobody.
    let base = tempfile::tempdir().unwrap();
    let locked = base.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    let mut cmd = if root {
        // A copy nobody can reach: the checkout's own path may be closed to other users.
        let binary = base.path().join("bucketq");
        std::fs::copy(env!("CARGO_BIN_EXE_bucketq"), &binary).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_bucketq"))
    };
    cmd.current_dir(&locked)
        .args(["enqueue", "demo", "--json", "{}"]);
    for var in [
        "BUCKETQ_CONFIG",
        "BUCKETQ_STORE__PATH",
        "BUCKETQ_STORE__KIND",
    ] {
        cmd.env_remove(var);
    }
    let out = run(&mut cmd);
    assert_eq!(out.code, 78, "{}", out.all());
    let uid = if root {
        65534
    } else {
        unsafe { libc::getuid() }
    };
    assert!(
        out.stderr.contains(&format!("as uid {uid}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("bucketq-data") && out.stderr.contains("10001"),
        "{}",
        out.stderr
    );
}

#[test]
fn doctor_tells_an_smtps_port_from_a_starttls_one() {
    use std::io::Write;
    use std::net::TcpListener;
    // One server that greets as SMTP does, one that waits silently for a TLS hello (SMTPS).
    let greeter = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let greeter_port = greeter.local_addr().unwrap().port();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in greeter.incoming().flatten() {
            let _ = s.write_all(b"220 mail.example.test ESMTP ready\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let doctor = |port: u16| {
        let dir = tempfile::tempdir().unwrap();
        let queue = format!("[[queue]]\nname = \"m\"\nprefix = \"m/\"\ntimeout = \"4s\"\nhandler = {{ type = \"mail\", host = \"127.0.0.1\", port = {port}, tls = \"starttls\", from = \"a@example.com\" }}\n");
        let config = local_config(dir.path(), &queue);
        run(bucketq(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("doctor"))
    };
    let ok = doctor(greeter_port);
    let line = ok
        .stdout
        .lines()
        .find(|l| l.contains("handler m"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("ok") && line.contains("220"),
        "{}",
        ok.all()
    );
    let smtps = doctor(silent_port);
    let line = smtps
        .stdout
        .lines()
        .find(|l| l.contains("handler m"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("FAIL") && line.contains("use tls = \"tls\""),
        "{}",
        smtps.all()
    );
    assert_ne!(smtps.code, 0);
}

#[test]
fn doctor_fails_an_exec_handler_whose_script_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = "[[queue]]\nname = \"fc\"\nprefix = \"fc/\"\ntimeout = \"4s\"\nhandler = { type = \"exec\", event = \"fc\", command = [\"/bin/sh\", \"/no/such/bucketq_fc_shim.sh\", \"index.handler\"] }\n";
    let config = local_config(dir.path(), queue);
    let out = run(bucketq(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("doctor"));
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("handler fc"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("FAIL") && line.contains("/no/such/bucketq_fc_shim.sh"),
        "{}",
        out.all()
    );
    assert_eq!(out.code, 78, "{}", out.all());
}
