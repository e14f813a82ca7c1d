//! A real HTTP/1.1 server on 127.0.0.1 for the webhook tests: records each request and
//! answers from a script of replies.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, ...
    pub method: String,
    /// Request target.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Seen {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers next.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, headers, body.
    Status(u16, Vec<(&'static str, String)>, &'static str),
    /// Accept the request and never answer.
    Hang,
}

/// The server; it stops with the test's runtime.
pub struct HttpServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    /// Serve `script` in order, then 200 for ever.
    pub async fn start(script: Vec<Reply>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen2);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    // Keep-alive: answer requests on this connection until it closes.
                    while let Some(request) = read_request(&mut reader).await {
                        seen.lock().expect("lock").push(request);
                        let reply = script
                            .lock()
                            .expect("lock")
                            .pop_front()
                            .unwrap_or(Reply::Status(200, vec![], "ok"));
                        let (code, headers, body) = match reply {
                            Reply::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                            Reply::Status(code, headers, body) => (code, headers, body),
                        };
                        let mut head =
                            format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\n", body.len());
                        for (name, value) in headers {
                            head.push_str(&format!("{name}: {value}\r\n"));
                        }
                        head.push_str("\r\n");
                        let stream = reader.get_mut();
                        if stream.write_all(head.as_bytes()).await.is_err()
                            || stream.write_all(body.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        HttpServer { port, seen }
    }

    /// URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn read_request(reader: &mut BufReader<tokio::net::TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}
