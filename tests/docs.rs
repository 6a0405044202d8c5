//! Every trace and command output in docs/ and README.md comes from the program.
//!
//! A doc marks a block with a comment naming a scenario:
//!
//! ````text
//! <!-- capture: http-get-poll -->
//! ```text
//! …captured output…
//! ```
//! ````
//!
//! This test runs each scenario against the real binary (`wire-academy serve
//! --trace-out FILE`) and checks that the block still matches what the program prints.
//! Only what differs from run to run is masked before comparing: the `Date` value
//! (in the text and in the hex rows), peer ports, and timings. Connections are compared
//! one by one, since two connections' blocks may interleave either way.
//!
//! To refresh the docs after changing the program: `UPDATE_DOCS=1 cargo test --test docs`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, get, post};
use wire_academy::trace::hexdump;

/// The real server, started with tracing to a file.
struct Server {
    child: Child,
    addr: SocketAddr,
    trace: PathBuf,
}

impl Server {
    fn start(name: &str, extra: &[&str]) -> Server {
        let trace = std::env::temp_dir().join(format!("wire-academy-docs-{}-{name}.trace", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["serve", "--addr", "127.0.0.1:0", "--trace-out"])
            .arg(&trace)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().parse().expect("listening line has the address");
        Server { child, addr, trace }
    }

    /// Stops the server (SIGTERM, a graceful shutdown) and returns its trace.
    fn finish(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let _ = std::fs::remove_file(&self.trace);
        text
    }
}

/// A scenario that fails must not leave its server running (holding the test's
/// stderr, a port and a trace file).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lets the server finish tracing what it just did before the next step.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl runs");
    assert!(out.status.success(), "curl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs scenario `name` and returns what the doc should show.
async fn scenario(name: &str) -> String {
    match name {
        "http-get-poll" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.request(get("/poll/lobby")).await;
            drop(c);
            settle().await;
            s.finish()
        }
        "http-publish-chunked" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send("POST /publish/lobby HTTP/1.1\r\nHost: localhost:8080\r\nTransfer-Encoding: chunked\r\n\r\n").await;
            settle().await;
            c.send("6\r\nhello \r\n").await;
            settle().await;
            c.send("5\r\nworld\r\n0\r\n\r\n").await;
            c.response().await;
            drop(c);
            settle().await;
            s.finish()
        }
        "http-pipelined" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send(format!("{}{}", post("/publish/lobby", "one"), get("/poll/lobby?after=0"))).await;
            c.response().await;
            c.response().await;
            drop(c);
            settle().await;
            s.finish()
        }
        "http-smuggling" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send("POST /publish/lobby HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await;
            c.response().await;
            c.expect_closed().await;
            settle().await;
            s.finish()
        }
        "http-h2-preface" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            c.response().await;
            c.expect_closed().await;
            settle().await;
            s.finish()
        }
        "poll-short" => {
            let s = Server::start(name, &[]);
            common::publish(s.addr, "lobby", "hello").await;
            common::publish(s.addr, "lobby", "world").await;
            settle().await;
            let mut c = Client::connect(s.addr).await;
            c.request(get("/poll/lobby?after=1")).await;
            drop(c);
            settle().await;
            keep_connections(&s.finish(), &[3])
        }
        "poll-long" => {
            let s = Server::start(name, &[]);
            let mut held = Client::connect(s.addr).await;
            held.send(get("/long-poll/lobby?after=0&timeout=30")).await;
            settle().await;
            common::publish(s.addr, "lobby", "hello").await;
            held.response().await;
            drop(held);
            settle().await;
            s.finish()
        }
        "poll-long-timeout" => {
            let s = Server::start(name, &[]);
            let mut held = Client::connect(s.addr).await;
            held.request(get("/long-poll/lobby?after=0&timeout=1")).await;
            drop(held);
            settle().await;
            s.finish()
        }
        "poll-truncated" => {
            let s = Server::start(name, &["--history", "2"]);
            for text in ["one", "two", "three"] {
                common::publish(s.addr, "lobby", text).await;
            }
            let mut c = Client::connect(s.addr).await;
            let r = c.request(get("/poll/lobby?after=0")).await;
            drop(c);
            s.finish();
            r.text()
        }
        "readme-curl" => {
            let s = Server::start(name, &[]);
            let base = format!("http://{}", s.addr);
            let held = {
                let url = format!("{base}/long-poll/lobby?after=0");
                tokio::task::spawn_blocking(move || curl(&["-s", &url]))
            };
            settle().await;
            let published = curl(&["-s", "-X", "POST", "--data", "hello, wire", &format!("{base}/publish/lobby")]);
            let held = held.await.unwrap();
            let polled = curl(&["-s", &format!("{base}/poll/lobby?after=0")]);
            s.finish();
            format!(
                "$ curl -s -X POST --data 'hello, wire' localhost:8080/publish/lobby\n{published}\n\
                 # meanwhile, in the terminal holding the long-poll:\n{held}\n\
                 $ curl -s 'localhost:8080/poll/lobby?after=0'\n{polled}\n"
            )
        }
        "ws-handshake" => {
            // RFC 6455 §1.3's own request, to a server that speaks the subprotocol "chat".
            let s = Server::start(name, &["--subprotocol", "chat"]);
            let mut c = Client::connect(s.addr).await;
            let r = c
                .request(format!(
                    "GET /echo HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: {WS_KEY}\r\nOrigin: http://example.com\r\n\
                     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ))
                .await;
            assert_eq!(r.status, 101);
            drop(c);
            settle().await;
            handshake_blocks(&s.finish())
        }
        "ws-masked-client-frame" | "ws-unmasked-server-frame" => {
            // The client sends RFC 6455 §5.7's masked "Hello"; /echo sends it back unmasked.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x81, b"Hello")).await;
            expect(&mut c, &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']).await;
            drop(c);
            settle().await;
            let frames = frame_blocks(&s.finish());
            let wanted = if name == "ws-masked-client-frame" { " read " } else { " wrote " };
            frames.split("\n\n").filter(|b| b.contains(wanted)).map(|b| format!("{b}\n\n")).collect()
        }
        "ws-channel-frame" => {
            // A message published over HTTP reaches a WebSocket subscriber as a text frame.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/ws/lobby").await;
            common::publish(s.addr, "lobby", "hello").await;
            let frame = b"\x81\x17{\"id\":1,\"data\":\"hello\"}";
            expect(&mut c, frame).await;
            drop(c);
            settle().await;
            frame_blocks(&keep_connections(&s.finish(), &[1]))
        }
        "ws-fragmented" => {
            // "Hello" in two fragments (RFC 6455 §5.7, masked here as a client must); the
            // echo is one frame.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x01, b"Hel")).await;
            settle().await;
            c.send(masked(0x80, b"lo")).await;
            expect(&mut c, &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']).await;
            drop(c);
            settle().await;
            frame_blocks(&s.finish())
        }
        "ws-ping-pong" => {
            // The client pings; then the server's own ping (every --ping-interval) is
            // answered with a pong carrying the same payload.
            let s = Server::start(name, &["--ping-interval", "0.5"]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x89, b"hi")).await;
            expect(&mut c, &[0x8a, 0x02, b'h', b'i']).await;
            expect(&mut c, &[0x89, 0x01, b'1']).await;
            c.send(masked(0x8a, b"1")).await;
            settle().await;
            drop(c);
            settle().await;
            frame_blocks(&s.finish())
        }
        "ws-close" => {
            // The closing handshake, then the server closes TCP first (RFC 6455 §7.1.1).
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x88, b"\x03\xe8bye")).await;
            expect(&mut c, &[0x88, 0x02, 0x03, 0xe8]).await;
            c.expect_closed().await;
            drop(c);
            settle().await;
            after_upgrade(&s.finish())
        }
        "ws-protocol-error" => {
            // An unmasked frame from a client: the server fails the connection with 1002.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(b"\x81\x05Hello").await;
            expect(&mut c, b"\x88\x1e\x03\xeaclient frames must be masked").await;
            c.expect_closed().await;
            drop(c);
            settle().await;
            after_upgrade(&s.finish())
        }
        other => panic!("no scenario named {other:?}"),
    }
}

/// RFC 6455 §1.3's sample key (its accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`).
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// RFC 6455 §5.7's masking key. A real client draws a fresh random key for every frame
/// (§5.3); a fixed one keeps the captured trace the same from run to run.
const WS_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Connects and completes a WebSocket handshake on `path`.
async fn ws_open(addr: SocketAddr, path: &str) -> Client {
    let mut c = Client::connect(addr).await;
    let r = c
        .request(format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 101);
    settle().await;
    c
}

/// A short client frame, masked with [`WS_MASK`], written by hand (not by the server's
/// codec, so the trace shows what an independent client sent).
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![b0, 0x80 | payload.len() as u8];
    out.extend_from_slice(&WS_MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ WS_MASK[i % 4]));
    out
}

/// Reads exactly `want` from the server.
async fn expect(c: &mut Client, want: &[u8]) {
    use tokio::io::AsyncReadExt;
    let mut got = vec![0; want.len()];
    tokio::time::timeout(common::LIMIT, c.stream.read_exact(&mut got)).await.expect("in time").expect("read");
    assert_eq!(got, want);
}

/// A trace's blocks that pass `keep`.
fn blocks_where(trace: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for block in trace.split("\n\n").filter(|b| !b.trim().is_empty() && keep(b)) {
        out.push_str(block);
        out.push_str("\n\n");
    }
    out
}

/// Where a block's bytes start in its direction's stream, if it shows bytes.
fn first_offset(block: &str) -> Option<u64> {
    let row = block.lines().find(|l| l.len() > 10 && l.as_bytes()[8] == b':')?;
    u64::from_str_radix(&row[..8], 16).ok()
}

/// The opening handshake: the connection's first bytes in each direction.
fn handshake_blocks(trace: &str) -> String {
    blocks_where(trace, |b| b.contains(" opened") || first_offset(b) == Some(0))
}

/// The frames: every block of bytes after the handshake.
fn frame_blocks(trace: &str) -> String {
    blocks_where(trace, |b| first_offset(b).is_some_and(|o| o > 0))
}

/// Everything after the handshake, the closing of the connection included.
fn after_upgrade(trace: &str) -> String {
    blocks_where(trace, |b| !b.contains(" opened") && first_offset(b) != Some(0))
}

/// Keeps only the trace blocks of the given connections (a scenario's setup traffic,
/// such as publishing with curl, is not what the doc is about).
fn keep_connections(trace: &str, ids: &[u64]) -> String {
    let mut out = String::new();
    for block in trace.split("\n\n").filter(|b| !b.trim().is_empty()) {
        if conn_id(block).is_some_and(|id| ids.contains(&id)) {
            out.push_str(block);
            out.push_str("\n\n");
        }
    }
    out
}

fn conn_id(block: &str) -> Option<u64> {
    block.strip_prefix('#')?.split(' ').next()?.parse().ok()
}

/// Masks what changes from run to run, and groups blocks by connection.
fn normalize(text: &str) -> BTreeMap<u64, Vec<String>> {
    let mut by_conn: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let id = conn_id(block).unwrap_or(0);
        by_conn.entry(id).or_default().push(normalize_block(block));
    }
    by_conn
}

fn normalize_block(block: &str) -> String {
    let mut out = String::new();
    let mut hex = String::new();
    let mut first_offset = None;
    let flush = |hex: &mut String, first: &mut Option<u64>, out: &mut String| {
        if let Some(off) = first.take() {
            let mut bytes = hexdump::parse_hex(hex).expect("hex rows parse");
            mask_dates(&mut bytes);
            hexdump::rows(off, &bytes, out);
            hex.clear();
        }
    };
    for line in block.lines() {
        let is_row = line.len() > 10 && line.as_bytes()[8] == b':' && line[..8].bytes().all(|b| b.is_ascii_hexdigit());
        if is_row {
            first_offset.get_or_insert_with(|| u64::from_str_radix(&line[..8], 16).unwrap());
            hex.push_str(line);
            hex.push('\n');
            continue;
        }
        flush(&mut hex, &mut first_offset, &mut out);
        let mut bytes = line.as_bytes().to_vec();
        mask_dates(&mut bytes);
        let line = String::from_utf8(bytes).unwrap();
        out.push_str(&mask_words(&line));
        out.push('\n');
    }
    flush(&mut hex, &mut first_offset, &mut out);
    out
}

/// `+0.000123s` -> `+T`, `127.0.0.1:53122` -> `127.0.0.1:PORT`.
fn mask_words(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            if w.starts_with('+') && w.ends_with('s') && w[1..w.len() - 1].parse::<f64>().is_ok() {
                "+T".to_string()
            } else if let Some(port) = w.strip_prefix("127.0.0.1:")
                && port.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u16>().is_ok()
            {
                format!("127.0.0.1:PORT{}", port.trim_start_matches(|c: char| c.is_ascii_digit()))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces each IMF-fixdate (`Tue, 24 Nov 2026 04:30:44 GMT`, always 29 bytes) with a
/// fixed one of the same length, so hex rows keep their layout.
fn mask_dates(bytes: &mut [u8]) {
    const LEN: usize = 29;
    let digit = |b: u8| b.is_ascii_digit();
    let mut i = 0;
    while i + LEN <= bytes.len() {
        let w = &bytes[i..i + LEN];
        let looks = w[3] == b','
            && w[4] == b' '
            && digit(w[5])
            && digit(w[6])
            && w[7] == b' '
            && w[11] == b' '
            && digit(w[12])
            && digit(w[15])
            && w[16] == b' '
            && w[19] == b':'
            && w[22] == b':'
            && &w[25..] == b" GMT";
        if looks {
            bytes[i..i + LEN].copy_from_slice(b"Thu, 01 Jan 1970 00:00:00 GMT");
            i += LEN;
        } else {
            i += 1;
        }
    }
}

/// The capture blocks of one doc: (scenario, start and end line of the block body).
fn blocks(doc: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(name) = lines[i].trim().strip_prefix("<!-- capture: ").and_then(|r| r.strip_suffix(" -->")) {
            assert!(
                lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
                "capture {name}: a fenced block must follow"
            );
            let start = i + 2;
            let end = start + lines[start..].iter().position(|l| l.starts_with("```")).expect("block is closed");
            found.push((name.to_string(), start, end));
            i = end;
        }
        i += 1;
    }
    found
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_show_what_the_program_prints() {
    if !common::require_tool("curl", "apt-get install -y curl") {
        return;
    }
    let update = std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    let mut count = 0;
    for file in doc_files() {
        let doc = std::fs::read_to_string(&file).unwrap();
        let mut lines: Vec<String> = doc.lines().map(String::from).collect();
        // Replace from the last block up, so earlier line numbers stay valid.
        for (name, start, end) in blocks(&doc).into_iter().rev() {
            count += 1;
            let fresh = scenario(&name).await;
            let shown = lines[start..end].join("\n");
            if normalize(&shown) != normalize(&fresh) {
                if update {
                    lines.splice(start..end, fresh.trim_end().lines().map(String::from));
                } else {
                    stale.push(format!("{} [{name}]\n--- doc:\n{shown}\n--- program now:\n{fresh}", file.display()));
                }
            }
        }
        if update {
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        }
    }
    assert!(count > 0, "no capture blocks found: the check would prove nothing");
    assert!(
        stale.is_empty(),
        "{} doc block(s) no longer match the program (UPDATE_DOCS=1 cargo test --test docs refreshes them):\n{}",
        stale.len(),
        stale.join("\n\n")
    );
}

#[test]
fn masking_keeps_what_matters() {
    let a = "#1 read 3 bytes from 127.0.0.1:5000 +0.000100s\n00000000: 4142 43  ABC\n  00000000+3  x";
    let b = "#1 read 3 bytes from 127.0.0.1:6000 +0.000900s\n00000000: 4142 43  ABC\n  00000000+3  x";
    assert_eq!(normalize(a), normalize(b));
    let c = "#1 read 3 bytes from 127.0.0.1:6000 +0.000900s\n00000000: 4142 44  ABD\n  00000000+3  x";
    assert_ne!(normalize(a), normalize(c), "a changed byte is a difference");
    let mut d1 = b"Date: Tue, 24 Nov 2026 04:30:44 GMT\r\n".to_vec();
    let mut d2 = b"Date: Wed, 25 Nov 2026 14:00:01 GMT\r\n".to_vec();
    mask_dates(&mut d1);
    mask_dates(&mut d2);
    assert_eq!(d1, d2);
}
