//! systemd's notification protocol (`sd_notify`), written out: one datagram per state change
//! to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! - `READY=1` once the first listing succeeded, so `systemctl start` returns when bucketq is
//!   really serving (Type=notify).
//! - `WATCHDOG=1` every half `WatchdogSec`, but only while the poll loop reports itself alive,
//!   so systemd restarts a process whose loop is stuck.
//! - `STOPPING=1` when the drain starts; `STATUS=...` says what it is doing.
//!
//! No libsystemd: the protocol is a datagram of `KEY=VALUE` lines.

use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::worker::Lifecycle;

/// Variable naming the notification socket (a path, or `@name` for an abstract socket).
pub const SOCKET_VAR: &str = "NOTIFY_SOCKET";
/// Variable holding the watchdog period in microseconds.
pub const WATCHDOG_USEC_VAR: &str = "WATCHDOG_USEC";
/// Variable naming the process the watchdog applies to.
pub const WATCHDOG_PID_VAR: &str = "WATCHDOG_PID";

/// Why notification could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The socket could not be created or the message not sent.
    #[error("sd_notify to {socket}: {source}")]
    Io {
        /// `$NOTIFY_SOCKET` as given.
        socket: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `$NOTIFY_SOCKET` is empty or names an abstract socket on a system without them.
    #[error("{SOCKET_VAR}={socket:?} is not a usable socket address")]
    BadAddress {
        /// The value.
        socket: String,
    },
}

/// The address the notifications go to.
#[derive(Debug, Clone)]
enum Target {
    Path(std::path::PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct SdNotify {
    socket: UnixDatagram,
    target: Target,
    name: String,
    watchdog: Option<Duration>,
    last_alive: Mutex<Option<Instant>>,
    stopping: Mutex<bool>,
}

impl SdNotify {
    /// The notifier for this process, or `None` when not started by systemd with
    /// `Type=notify` (no `$NOTIFY_SOCKET`).
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        let Ok(socket) = std::env::var(SOCKET_VAR) else {
            return Ok(None);
        };
        let usec = std::env::var(WATCHDOG_USEC_VAR).ok();
        let pid = std::env::var(WATCHDOG_PID_VAR).ok();
        Self::new(&socket, usec.as_deref(), pid.as_deref(), std::process::id()).map(Some)
    }

    /// Forget the notification variables so child processes (exec handlers) do not inherit
    /// them. Call it before any thread starts: it changes the process environment.
    pub fn unset_env() {
        for var in [SOCKET_VAR, WATCHDOG_USEC_VAR, WATCHDOG_PID_VAR] {
            std::env::remove_var(var);
        }
    }

    /// A notifier for `socket` (`/run/systemd/notify` or `@abstract`), with the watchdog
    /// on when `watchdog_usec` is set and `watchdog_pid` is absent or equals `pid`.
    pub fn new(
        socket: &str,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Result<Self, NotifyError> {
        let target = parse_target(socket)?;
        let io = |source| NotifyError::Io {
            socket: socket.to_owned(),
            source,
        };
        let udp = UnixDatagram::unbound().map_err(io)?;
        udp.set_nonblocking(true).map_err(io)?;
        let for_us = watchdog_pid.map_or(true, |p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Ok(SdNotify {
            socket: udp,
            target,
            name: socket.to_owned(),
            watchdog,
            last_alive: Mutex::new(None),
            stopping: Mutex::new(false),
        })
    }

    /// Send one message, e.g. `"READY=1\nSTATUS=polling"`.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        let sent = match &self.target {
            Target::Path(path) => self.socket.send_to(message.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| self.socket.send_to_addr(message.as_bytes(), &addr))
            }
        };
        sent.map(|_| ()).map_err(|source| NotifyError::Io {
            socket: self.name.clone(),
            source,
        })
    }

    /// Send `STATUS=<text>` (shown by `systemctl status`).
    pub fn status(&self, text: &str) {
        self.send_logged(&format!("STATUS={}", one_line(text)));
    }

    /// The watchdog period systemd asked for, if any.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Ping the watchdog every half period while the poll loop is alive (it called
    /// [`Lifecycle::alive`] within the last period) or the drain is running, until `stop`.
    /// Returns at once when no watchdog is configured.
    pub async fn run_watchdog(&self, stop: CancellationToken) {
        let Some(period) = self.watchdog else {
            return;
        };
        let mut tick = tokio::time::interval(period / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let started = self
                .last_alive
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            if self.should_ping(period) {
                self.send_logged("WATCHDOG=1");
            } else if !started {
                // Before READY: systemd arms the watchdog only once start-up completed
                // (TimeoutStartSec guards start-up), so there is nothing to warn about.
            } else {
                tracing::warn!(
                    period_secs = period.as_secs_f64(),
                    "poll loop silent for a whole watchdog period; not pinging the watchdog"
                );
            }
        }
    }

    fn should_ping(&self, period: Duration) -> bool {
        let stopping = *self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        let last = *self.last_alive.lock().unwrap_or_else(|p| p.into_inner());
        stopping || last.is_some_and(|t| t.elapsed() <= period)
    }

    /// Send, logging a failure instead of returning it: a lost notification must not stop
    /// the daemon (systemd will say so itself).
    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }
}

impl Lifecycle for SdNotify {
    fn ready(&self) {
        *self.last_alive.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.send_logged("READY=1\nSTATUS=polling the bucket");
    }

    fn alive(&self) {
        *self.last_alive.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn stopping(&self) {
        *self.stopping.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.send_logged("STOPPING=1\nSTATUS=draining running tasks");
    }
}

fn parse_target(socket: &str) -> Result<Target, NotifyError> {
    let bad = || NotifyError::BadAddress {
        socket: socket.to_owned(),
    };
    match socket.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) if !name.is_empty() => Ok(Target::Abstract(name.as_bytes().to_vec())),
        Some(_) => Err(bad()),
        None if socket.starts_with('/') => Ok(Target::Path(socket.into())),
        None => Err(bad()),
    }
}

/// STATUS is one line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_ready_status_and_stopping_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::new(path.to_str().unwrap(), None, None, 1).unwrap();
        n.ready();
        assert_eq!(recv(&listener), "READY=1\nSTATUS=polling the bucket");
        n.status("two\nlines");
        assert_eq!(recv(&listener), "STATUS=two lines");
        n.stopping();
        assert_eq!(recv(&listener), "STOPPING=1\nSTATUS=draining running tasks");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("bucketq-test-{}", rand::random::<u64>());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = SdNotify::new(&format!("@{name}"), None, None, 1).unwrap();
        n.send("READY=1").unwrap();
        assert_eq!(recv(&listener), "READY=1");
    }

    #[test]
    fn watchdog_applies_only_to_the_named_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.sock");
        let _l = UnixDatagram::bind(&path).unwrap();
        let p = path.to_str().unwrap();
        let ours = SdNotify::new(p, Some("30000000"), Some("42"), 42).unwrap();
        assert_eq!(ours.watchdog_period(), Some(Duration::from_secs(30)));
        let theirs = SdNotify::new(p, Some("30000000"), Some("43"), 42).unwrap();
        assert_eq!(theirs.watchdog_period(), None);
        let any = SdNotify::new(p, Some("1000"), None, 42).unwrap();
        assert_eq!(any.watchdog_period(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn rejects_relative_and_empty_addresses() {
        assert!(SdNotify::new("relative.sock", None, None, 1).is_err());
        assert!(SdNotify::new("@", None, None, 1).is_err());
    }

    // Multi-threaded: the test blocks on the socket while the watchdog task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchdog_pings_only_while_the_loop_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        // A 200 ms watchdog: pings every 100 ms.
        let n = std::sync::Arc::new(
            SdNotify::new(path.to_str().unwrap(), Some("200000"), None, 1).unwrap(),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let n = std::sync::Arc::clone(&n);
            let stop = stop.clone();
            async move { n.run_watchdog(stop).await }
        });
        // Not alive yet: no ping within two ticks.
        tokio::time::sleep(Duration::from_millis(250)).await;
        listener.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            listener.recv(&mut buf).is_err(),
            "pinged before the loop was alive"
        );
        listener.set_nonblocking(false).unwrap();
        n.alive();
        assert_eq!(recv(&listener), "WATCHDOG=1");
        stop.cancel();
        task.await.unwrap();
    }
}
