//! The metrics and health listener: a deliberately tiny HTTP/1.1 server on tokio, off unless
//! `[http] listen` is set.
//!
//! - `GET /metrics`: Prometheus text format ([`Metrics::render`]).
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 when the last successful listing is recent (within a few
//!   `max_poll_interval`s), else 503 (readiness: the store is reachable and the loop polls).
//!
//! Hand-written rather than hyper/axum: three fixed GET routes, one request per connection,
//! `Connection: close`. Bind it to loopback unless a scraper elsewhere needs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Largest request head read; anything longer is answered 431.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a client gets to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait, so a flood cannot exhaust file descriptors.
const MAX_CONNECTIONS: usize = 64;
/// `/readyz` is ready while the last good listing is younger than this many
/// `max_poll_interval`s.
pub const READY_POLLS: u32 = 3;

/// What the handlers read.
#[derive(Debug)]
pub struct HttpState {
    /// Counters to render and the last-listing time.
    pub metrics: Arc<Metrics>,
    /// `/readyz` answers 200 while the last good listing is younger than this.
    pub ready_within: Duration,
}

impl HttpState {
    /// State for a worker whose idle poll interval is `max_poll_interval`.
    pub fn new(metrics: Arc<Metrics>, max_poll_interval: Duration) -> Self {
        HttpState {
            metrics,
            ready_within: max_poll_interval * READY_POLLS,
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `[http] listen` is not a socket address.
    #[error("http.listen {addr:?} is not an address like 127.0.0.1:9464")]
    BadAddress {
        /// The configured value.
        addr: String,
    },
    /// The address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Bind the configured address.
pub async fn bind(listen: &str) -> Result<TcpListener, HttpError> {
    let addr: SocketAddr = listen.parse().map_err(|_| HttpError::BadAddress {
        addr: listen.to_owned(),
    })?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serve connections from `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &state).await {
                        tracing::debug!(error = %e, "http connection failed");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: wait a moment rather than spin.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A response before it is written.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

async fn handle(mut stream: TcpStream, state: &HttpState) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (response, with_body) = match head {
        None => (
            Response::text(431, "Request Header Fields Too Large", ""),
            true,
        ),
        Some(head) => {
            let (method, path) = request_line(&head);
            (route(method, path, state), method != "HEAD")
        }
    };
    write_response(&mut stream, &response, with_body).await
}

/// Read until the blank line ending the head; `None` when it is too long.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
    }
}

/// Method and path (query string dropped) of the request line.
fn request_line(head: &str) -> (&str, &str) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    (method, path)
}

fn route(method: &str, path: &str, state: &HttpState) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "Method Not Allowed", "only GET and HEAD\n");
    }
    match path {
        "/metrics" => Response {
            status: 200,
            reason: "OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: state.metrics.render(),
        },
        "/healthz" => Response::text(200, "OK", "ok\n"),
        "/readyz" => readiness(state),
        _ => Response::text(404, "Not Found", "try /metrics, /healthz or /readyz\n"),
    }
}

fn readiness(state: &HttpState) -> Response {
    match state.metrics.since_last_list_ok() {
        Some(age) if age <= state.ready_within => Response::text(200, "OK", "ready\n"),
        Some(age) => Response::text(
            503,
            "Service Unavailable",
            format!(
                "not ready: the last successful listing was {:.0}s ago\n",
                age.as_secs_f64()
            ),
        ),
        None => Response::text(
            503,
            "Service Unavailable",
            "not ready: no successful listing yet\n",
        ),
    }
}

async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    with_body: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.reason,
        r.content_type,
        r.body.len()
    );
    if r.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if with_body {
        out.push_str(&r.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Op, RequestStats};

    async fn start(state: HttpState) -> (SocketAddr, CancellationToken) {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(state), stop.clone()));
        (addr, stop)
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn state(ready_within: Duration) -> (Arc<Metrics>, HttpState) {
        let metrics = Arc::new(Metrics::new(Arc::new(RequestStats::default())));
        let state = HttpState {
            metrics: Arc::clone(&metrics),
            ready_within,
        };
        (metrics, state)
    }

    #[tokio::test]
    async fn serves_metrics_health_and_404() {
        let (metrics, state) = state(Duration::from_secs(30));
        metrics.update("mail", |q| q.succeeded += 3);
        metrics.requests.record(Op::List, "ok");
        let (addr, stop) = start(state).await;

        let m = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(
            m.contains("bucketq_tasks_succeeded_total{queue=\"mail\"} 3"),
            "{m}"
        );
        assert!(m.contains("bucketq_store_requests_total{op=\"list\",result=\"ok\"} 1"));

        let h = get(addr, "GET /healthz?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(
            h.starts_with("HTTP/1.1 200 OK\r\n") && h.ends_with("ok\n"),
            "{h}"
        );

        let n = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(n.starts_with("HTTP/1.1 404 "), "{n}");

        let p = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            p.starts_with("HTTP/1.1 405 ") && p.contains("Allow: GET, HEAD"),
            "{p}"
        );

        let head = get(addr, "HEAD /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn readyz_follows_the_last_listing() {
        let (metrics, state) = state(Duration::from_millis(300));
        let (addr, stop) = start(state).await;
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.1 503 ") && r.contains("no successful listing"),
            "{r}"
        );
        metrics.mark_list_ok();
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503 ") && r.contains("ago"), "{r}");
        stop.cancel();
    }

    #[tokio::test]
    async fn oversized_heads_get_431() {
        let (_m, state) = state(Duration::from_secs(1));
        let (addr, stop) = start(state).await;
        // Exactly one byte over the limit and no blank line, so the server reads all of it and
        // closes cleanly (unread bytes would turn the close into a reset).
        let mut big = String::from("GET /metrics HTTP/1.1\r\nX: ");
        big.push_str(&"a".repeat(MAX_HEAD_BYTES + 1 - big.len()));
        let r = get(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        stop.cancel();
    }

    #[test]
    fn bad_listen_addresses_are_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(bind("localhost")).unwrap_err().to_string();
        assert!(err.contains("\"localhost\""), "{err}");
    }
}
