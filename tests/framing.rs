//! Where does a message end? The server, the client, the proxy and the trace must give
//! one answer (RFC 9112 §6.3), because they all step the same message stream
//! (`proto::http::stream`). Each tricky exchange of the table is fed through each of them
//! over real sockets, and each must find the same messages:
//!
//! - the client (`HttpClient`) must return the right status and body for each request;
//! - the proxy, buffering every response until it ends, must pass every byte on before
//!   the upstream closes (a proxy that misread a message's end would hold it forever);
//! - the trace must name the same status lines, with the bytes after a `101` read as
//!   frames;
//! - the server's own answers to the same tricky requests (HEAD, `Expect: 100-continue`,
//!   a `101` with a frame behind the request) must read back the same way.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire_academy::client::http::{HttpClient, Taps};
use wire_academy::proto::Role;
use wire_academy::proto::http::{Event, Exchange, HeadLimits};
use wire_academy::proxy::{self, ProxyConfig, ProxyStats};
use wire_academy::trace::annotate::Conversation;

const LIMIT: Duration = Duration::from_secs(10);
const LIMITS: HeadLimits = HeadLimits { max_header: 8192, max_target: 8192, max_body: 1 << 20 };

/// One tricky exchange: what the client sends, what the server answers.
struct Case {
    name: &'static str,
    requests: &'static [u8],
    responses: &'static [u8],
    /// Every status line, interim ones included, in order.
    statuses: &'static [u16],
    /// The final answers the client gets, (status, body), one per request.
    answers: &'static [(u16, &'static str)],
    /// Bytes after the last HTTP message (the frames after a `101`).
    after: &'static [u8],
    /// The body runs until the server closes.
    until_close: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "HEAD with Content-Length",
        requests: b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
        responses: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        statuses: &[200, 200],
        answers: &[(200, ""), (200, "hi")],
        after: b"",
        until_close: false,
    },
    Case {
        name: "100-continue then 200",
        requests: b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        responses: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        statuses: &[100, 200],
        answers: &[(200, "abc")],
        after: b"",
        until_close: false,
    },
    Case {
        name: "204 and 304 with a Content-Length",
        requests: b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        responses: b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n",
        statuses: &[204, 304],
        answers: &[(204, ""), (304, "")],
        after: b"",
        until_close: false,
    },
    Case {
        name: "101 with frame bytes in the same read",
        requests: b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        responses: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05Hello",
        statuses: &[101],
        answers: &[(101, "")],
        after: b"\x81\x05Hello",
        until_close: false,
    },
    Case {
        name: "a response read until close",
        requests: b"GET /old HTTP/1.1\r\nHost: a\r\n\r\n",
        responses: b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this, then the close",
        statuses: &[200],
        answers: &[(200, "all of this, then the close")],
        after: b"",
        until_close: true,
    },
];

/// A server that answers one connection with the case's bytes once it has read
/// `wait_for` bytes (or at once), closes when the case's body runs until close, and
/// otherwise keeps the connection open until the peer leaves.
async fn upstream(case: &'static Case, wait_for: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while seen.len() < wait_for.max(1) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        s.write_all(case.responses).await.unwrap();
        if case.until_close {
            let _ = s.shutdown().await;
        }
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    addr
}

/// The status of every response head in `responses`, read as the exchange reads it.
fn statuses(requests: &[u8], responses: &[u8]) -> (Vec<u16>, Vec<u8>) {
    let mut ex = Exchange::new(LIMITS);
    let mut req = BytesMut::from(requests);
    while ex.read(Role::Client, &mut req).unwrap().is_some() {}
    let mut resp = BytesMut::from(responses);
    let mut seen = Vec::new();
    while let Some(unit) = ex.read(Role::Server, &mut resp).unwrap() {
        if let Event::Response(head) = unit.event {
            seen.push(head.status);
        }
    }
    (seen, resp.to_vec())
}

#[test]
fn the_trace_names_the_same_messages() {
    for case in CASES {
        let mut c = Conversation::new();
        c.request_bytes(case.requests);
        let notes = c.response_bytes(case.responses);
        let lines: Vec<u16> = notes
            .iter()
            .filter_map(|n| {
                n.text
                    .strip_prefix("http status line: HTTP/1.1 ")
                    .or(n.text.strip_prefix("http status line: HTTP/1.0 "))
            })
            .map(|t| t[..3].parse().unwrap())
            .collect();
        assert_eq!(lines, case.statuses, "{}", case.name);
        if !case.after.is_empty() {
            let at = (case.responses.len() - case.after.len()) as u64;
            assert!(
                notes.iter().any(|n| n.offset == at && n.text.starts_with("ws frame FIN=1")),
                "{}: the bytes after the 101 are a frame: {notes:?}",
                case.name
            );
        }
        // And the exchange the trace is built on agrees with the table.
        let (seen, rest) = statuses(case.requests, case.responses);
        assert_eq!((seen.as_slice(), rest.as_slice()), (case.statuses, case.after), "{}", case.name);
    }
}

#[tokio::test]
async fn the_client_reads_the_same_answers() {
    for case in CASES {
        let addr = upstream(case, 0).await;
        let mut client = HttpClient::new(&addr.to_string(), Taps::default());
        // The client sends its own requests, one at a time, with the case's methods.
        let methods: Vec<&str> = case
            .requests
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"GET ") || l.starts_with(b"HEAD ") || l.starts_with(b"POST "))
            .map(|l| std::str::from_utf8(l.split(|&b| b == b' ').next().unwrap()).unwrap())
            .collect();
        assert_eq!(methods.len(), case.answers.len(), "{}", case.name);
        for (method, (status, body)) in methods.iter().zip(case.answers) {
            if *status == 101 {
                let headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")];
                let (head, _conn, rest, http) = client.open(method, "/ws", &headers, LIMIT).await.unwrap();
                assert_eq!(head.status, 101, "{}", case.name);
                assert_eq!(&rest[..], case.after, "{}: the frame stays for the WebSocket session", case.name);
                let mut http = http;
                let mut rest = rest;
                assert!(matches!(http.read(&mut rest).unwrap().map(|u| u.event), Some(Event::End)));
                assert!(http.is_switched(), "{}", case.name);
                continue;
            }
            let payload: &[u8] = if *method == "POST" { b"hi" } else { b"" };
            let r = client.request(method, "/x", payload, LIMIT).await.unwrap();
            assert_eq!((r.status(), std::str::from_utf8(&r.body).unwrap()), (*status, *body), "{}", case.name);
        }
    }
}

#[tokio::test]
async fn the_buffering_proxy_releases_every_message_at_its_end() {
    for case in CASES {
        let upstream = upstream(case, case.requests.len()).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let cfg = ProxyConfig {
            listen,
            upstream: upstream.to_string(),
            block_websocket: false,
            buffer_responses: true,
            idle_timeout: None,
            latency: Duration::ZERO,
        };
        tokio::spawn(proxy::run_on(listener, cfg, None, ProxyStats::default().into(), std::future::pending()));
        let mut s = TcpStream::connect(listen).await.unwrap();
        s.write_all(case.requests).await.unwrap();
        // Everything arrives while the upstream still holds the connection open (or,
        // read until close, once it closes): nothing is held past its message's end.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < case.responses.len() {
            match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => {
                    panic!("{}: the proxy held {:?}", case.name, String::from_utf8_lossy(&case.responses[got.len()..]))
                }
            }
        }
        assert_eq!(got, case.responses, "{}", case.name);
    }
}

/// The server's own answers to tricky requests, read back by the same stream: HEAD
/// (headers of a GET, no body), `Expect: 100-continue` (a 100, then the answer), and a
/// WebSocket upgrade with a frame sent right behind it (the frame is the session's).
#[tokio::test]
async fn the_servers_answers_read_back_the_same_way() {
    let s = common::start(common::config()).await;
    let requests = b"HEAD /stats HTTP/1.1\r\nHost: a\r\n\r\n\
        POST /publish/f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(requests).await.unwrap();
    // Wait for the 100 before sending the body, as curl does.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while common::find(&got, b"100 Continue\r\n\r\n").is_none() {
        let n = tokio::time::timeout(LIMIT, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let upgrade = b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // "hi", then a masked text frame "Hello" (RFC 6455 §5.7) right behind the upgrade.
    let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    c.write_all(&[&b"hi"[..], upgrade, &frame].concat()).await.unwrap();
    let echo = b"\x81\x05Hello";
    while !got.ends_with(echo) {
        let n = tokio::time::timeout(LIMIT, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let all_requests = [&requests[..], b"hi", upgrade].concat();
    let (seen, rest) = statuses(&all_requests, &got);
    assert_eq!(seen, [200, 100, 200, 101], "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(rest, echo, "after the 101, the echoed frame");
    // The trace reads the same conversation the same way.
    let mut conv = Conversation::new();
    conv.request_bytes(&[&all_requests[..], &frame].concat());
    let notes = conv.response_bytes(&got);
    assert_eq!(notes.iter().filter(|n| n.text.starts_with("http status line")).count(), 4);
    assert!(notes.iter().any(|n| n.text.contains("ws payload (5 bytes, UTF-8): \"Hello\"")), "{notes:?}");
    s.stop().await;
}
