//! The systemd unit and the Dockerfile agree with the daemon they ship: stop timeout above
//! the shutdown grace, watchdog above the idle poll, config validated before start, the
//! sandbox rated OK or better by `systemd-analyze security`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bucketq::config::WorkerConfig;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `Key=` in the unit (the last assignment wins, as in systemd).
fn setting(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn duration(unit: &str, key: &str) -> Duration {
    let text = setting(unit, key).unwrap_or_else(|| panic!("{key}= is missing"));
    humantime::parse_duration(&text).unwrap_or_else(|e| panic!("{key}={text}: {e}"))
}

#[test]
fn unit_timeouts_fit_the_daemon_defaults() {
    let unit = read("systemd/bucketq.service");
    let defaults = WorkerConfig::default();
    assert!(duration(&unit, "TimeoutStopSec") > defaults.shutdown_grace);
    assert!(duration(&unit, "WatchdogSec") > defaults.max_poll_interval * 2);
    assert_eq!(setting(&unit, "Type").as_deref(), Some("notify"));
    assert_eq!(setting(&unit, "NotifyAccess").as_deref(), Some("main"));
    assert_eq!(setting(&unit, "KillMode").as_deref(), Some("mixed"));
    assert_eq!(setting(&unit, "DynamicUser").as_deref(), Some("yes"));
    // A gate in ExecStartPre would be restarted for ever on a bad config: systemd's
    // RestartPreventExitStatus covers the main process only. `run` validates itself.
    assert_eq!(setting(&unit, "ExecStartPre"), None);
    // Long enough for one request of a store that is down at boot, with the default budget.
    let store = bucketq::config::StoreConfig::default();
    let budget = store.request_timeout * (store.max_retries + 1);
    assert!(
        duration(&unit, "TimeoutStartSec") > budget,
        "TimeoutStartSec vs {budget:?}"
    );
    let no_restart = setting(&unit, "RestartPreventExitStatus").expect("RestartPreventExitStatus");
    for code in ["69", "77", "78"] {
        assert!(
            no_restart.split_whitespace().any(|c| c == code),
            "{no_restart}"
        );
    }
    assert!(unit.contains("EnvironmentFile=-/etc/bucketq/bucketq.env"));
    assert!(unit.contains("LoadCredential"));
    assert!(unit.contains("systemctl edit bucketq"));
}

#[test]
fn systemd_analyze_rates_the_unit_ok_or_better() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/bucketq.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs (apt-get install systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no rating in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    // systemd-analyze calls <= 4.9 "OK" (and lower "SAFE"); anything above is MEDIUM or worse.
    assert!(score <= 4.9, "{line}");
    assert!(line.contains("OK") || line.contains("SAFE"), "{line}");
}

#[test]
fn dockerfile_builds_locked_and_runs_unprivileged() {
    let docker = read("Dockerfile");
    for needle in [
        "cargo build --release --locked",
        "ca-certificates",
        "STOPSIGNAL SIGTERM",
        "USER 10001",
        "\"--version\"",
        "EXTRA_PACKAGES",
        "AS build",
        "AS runtime",
        "HEALTHCHECK",
        "COPY contrib/fc-shim/ /usr/local/lib/bucketq/fc-shim/",
        // Any --user (gid 0) can write the state directory.
        "-g 0 -m 0770 /var/lib/bucketq",
        "\"health\"",
    ] {
        assert!(docker.contains(needle), "the Dockerfile lacks {needle:?}");
    }
    // A default `docker stop` (10 s, then SIGKILL) must leave time for the drain.
    let grace = docker
        .lines()
        .find_map(|l| l.trim().strip_prefix("ENV BUCKETQ_WORKER__SHUTDOWN_GRACE="))
        .expect("the image sets its shutdown grace");
    let grace = humantime::parse_duration(grace).expect("a duration");
    assert!(
        grace < Duration::from_secs(10),
        "{grace:?} does not fit docker stop's 10 s"
    );
    // A `# syntax=` directive pulls a frontend image from Docker Hub before anything else:
    // offline and mirror-only builders fail on it.
    assert!(
        !docker
            .lines()
            .any(|l| l.trim_start().starts_with("# syntax")),
        "no # syntax= line"
    );
    assert!(docker.contains("apt-get clean"));
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}
