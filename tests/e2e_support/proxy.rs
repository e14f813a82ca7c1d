//! A TCP proxy between a worker and the store that fails on demand: 503 answers, connection
//! resets, or stalls (the request is read and never answered).
//!
//! Changing the mode drops every open connection, so the client's pooled keep-alive
//! connections cannot carry requests past a fault (or into one): the next request opens a new
//! connection and meets the new mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::rt;

/// What the proxy does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Pass bytes both ways.
    None,
    /// Read the request, answer `503 ServiceUnavailable`, close.
    Status503,
    /// Read the start of the request, then reset the connection (RST).
    Reset,
    /// Read the request and never answer.
    Stall,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    mode: watch::Sender<Fault>,
    connections: Arc<Mutex<BTreeMap<Fault, u64>>>,
    accept: tokio::task::JoinHandle<()>,
}

const BODY_503: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>injected by the e2e fault proxy</Message></Error>";

impl FaultProxy {
    /// Listen on a free port and forward to `upstream` (`http://127.0.0.1:4566`).
    pub fn start(upstream: &str) -> FaultProxy {
        let authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let upstream: SocketAddr = authority.parse().unwrap_or_else(|e| {
            panic!("the proxy needs an ip:port upstream, got {authority}: {e}")
        });
        let listener = rt()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("the proxy binds");
        let port = listener.local_addr().expect("a bound address").port();
        let (mode, _) = watch::channel(Fault::None);
        let connections = Arc::new(Mutex::new(BTreeMap::new()));
        let accept = rt().spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            Arc::clone(&connections),
        ));
        FaultProxy {
            port,
            mode,
            connections,
            accept,
        }
    }

    /// The endpoint a worker should use.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switch the mode; every open connection is dropped.
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }

    /// Connections accepted per mode so far.
    pub fn connections(&self) -> BTreeMap<Fault, u64> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(Fault::Reset); // ends the open connections
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Fault>,
    connections: Arc<Mutex<BTreeMap<Fault, u64>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let mut changes = mode.subscribe();
        let fault = *changes.borrow_and_update();
        *connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(fault)
            .or_default() += 1;
        tokio::spawn(async move {
            tokio::select! {
                () = serve(client, upstream, fault) => {}
                _ = changes.changed() => {}
            }
        });
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    match fault {
        Fault::None => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Fault::Status503 => {
            if read_request(&mut client).await {
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY_503}",
                    BODY_503.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
                let _ = client.shutdown().await;
            }
        }
        Fault::Reset => {
            let mut buf = [0u8; 1024];
            let _ = client.read(&mut buf).await;
            let _ = client.set_zero_linger();
        }
        Fault::Stall => {
            let mut buf = [0u8; 16 * 1024];
            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
            // The client gave up; hold nothing.
        }
    }
}

/// Read one request's head and its `Content-Length` body. False when the client went away.
async fn read_request(client: &mut TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut buf).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        match client.read(&mut buf).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}
