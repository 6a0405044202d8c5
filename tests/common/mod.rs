//! Helpers for tests that speak raw bytes to a real server on an ephemeral port.
//!
//! The response reader here is deliberately separate from the server's own codecs: a
//! test that parsed answers with the code under test could agree with a bug.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire_academy::config::Config;
use wire_academy::net::Running;

/// A config for tests: an ephemeral port on loopback, everything else default.
pub fn config() -> Config {
    Config { addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() }
}

pub async fn start(config: Config) -> Running {
    Running::start(config).await.expect("server starts")
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One raw TCP connection with its own read buffer (so pipelined answers are kept).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub const LIMIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.expect("connect"), buf: Vec::new() }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.expect("write");
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answered in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response (for a request that was not HEAD).
    pub async fn response(&mut self) -> Resp {
        self.response_to(false).await
    }

    pub async fn response_to(&mut self, head_request: bool) -> Resp {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line has a colon");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let mut resp = Resp { status, headers, body: Vec::new() };
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            return resp;
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill().await > 0, "closed mid-body");
            }
            resp.body = self.buf.drain(..len).collect();
        } else if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await > 0, "closed mid-chunk");
                };
                let size = usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).unwrap(), 16).unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    assert!(self.fill().await > 0, "closed mid-chunk");
                }
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill().await > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }

    /// Asserts the server closes the connection (EOF) without sending anything more.
    pub async fn expect_closed(&mut self) {
        while self.fill().await > 0 {}
        assert!(self.buf.is_empty(), "unexpected bytes before close: {:?}", String::from_utf8_lossy(&self.buf));
    }

    /// Sends one request and reads its response.
    pub async fn request(&mut self, raw: impl AsRef<[u8]>) -> Resp {
        self.send(raw).await;
        self.response().await
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
}

pub fn post(path: &str, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// One request on a fresh connection.
pub async fn once(addr: std::net::SocketAddr, raw: impl AsRef<[u8]>) -> Resp {
    Client::connect(addr).await.request(raw).await
}

pub async fn publish(addr: std::net::SocketAddr, channel: &str, body: &str) -> u64 {
    let r = once(addr, post(&format!("/publish/{channel}"), body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_u64().unwrap()
}

/// Fails loudly when a tool the test needs is missing; outside CI it may skip, saying
/// exactly what to install. Under CI (`CI=true`) a missing tool is always a failure.
pub fn require_tool(tool: &str, install: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    let msg = format!("MISSING TOOL: `{tool}` is not installed; install it with: {install}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a missing tool is a failure)");
    }
    eprintln!("\n!!! {msg}\n!!! skipping this test outside CI\n");
    false
}
