//! The study tools as a learner runs them: `wire-academy vectors` and `wire-academy
//! decode`, the real binary.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire_academy::config::{Config, TraceTarget};

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn vectors_lists_every_suite_and_passes() {
    let o = run(&["vectors"], "", &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for id in [
        "rfc6455-1.3-accept-key",
        "rfc6455-5.7-unmasked-text",
        "rfc6455-5.7-masked-text",
        "rfc6455-5.7-fragmented-text",
        "rfc6455-5.7-unmasked-ping",
        "rfc6455-5.7-masked-pong",
        "rfc6455-5.7-256-bytes",
        "rfc6455-5.7-64-kib",
        "rfc6455-7.4-code-1005",
        "rfc9112-chunked-wikipedia",
        "rfc9112-chunked-size-overflow",
        "whatwg-sse-stock",
        "whatwg-sse-line-ends",
        "utf8-overlong-nul",
        "utf8-truncated",
        "rfc7692-7.2.3.1-hello",
        "rfc7692-7.2.3.1-fragmented",
        "rfc7692-7.2.3.2-context-takeover",
        "rfc7692-7.2.3.3-no-compression",
        "rfc7692-7.2.3.4-bfinal",
        "rfc7692-7.2.3.5-two-blocks",
        "rfc7692-7.2.3.2-our-compressor",
    ] {
        assert!(text.contains(&format!("PASS  {id}  (")), "{id} missing:\n{text}");
    }
    let count = text.matches("\nPASS  ").count() + usize::from(text.starts_with("PASS  "));
    assert!(text.trim_end().ends_with(&format!("{count} vectors: {count} passed, 0 failed")), "{text}");
    // Each shows where it comes from, what was fed, what was expected and what came out.
    let accept = text.split("PASS  ").find(|b| b.starts_with("rfc6455-1.3-accept-key")).unwrap();
    assert!(accept.contains("(RFC 6455 §1.3: "), "{accept}");
    assert!(accept.contains("fed       dGhlIHNhbXBsZSBub25jZQ=="), "{accept}");
    assert!(accept.contains("expected  s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{accept}");
    assert!(accept.contains("got       s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{accept}");

    let o = run(&["vectors", "--filter", "RFC 6455 §5.7", "--json"], "", &[]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let list = doc["vectors"].as_array().unwrap();
    assert_eq!(list.len(), 7, "{doc}");
    assert!(list.iter().all(|v| v["passed"] == true && v["source"] == "RFC 6455 §5.7"));
    assert_eq!(doc["failed"], 0);

    let o = run(&["vectors", "--filter", "no such vector"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_broken_vector_makes_vectors_fail() {
    let o = run(&["vectors"], "", &[("WIRE_ACADEMY_BREAK_VECTOR", "rfc6455-5.7-masked-text")]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  rfc6455-5.7-masked-text"), "{text}");
    assert!(text.contains("expected  text \"Hello\" (deliberately broken)"), "{text}");
    assert!(text.contains(" passed, 1 failed"), "{text}");
}

#[test]
fn decode_reads_every_rfc_6455_5_7_frame() {
    // (hex, from, what the reading must show: every header field and the payload)
    let frames: [(&str, &str, &[&str]); 6] = [
        (
            "81 05 48 65 6c 6c 6f",
            "server",
            &["FIN=1 RSV=000 opcode=0x1 text MASK=0 len=5 (7-bit)", "ws payload (5 bytes, UTF-8): \"Hello\""],
        ),
        (
            "81 85 37 fa 21 3d 7f 9f 4d 51 58",
            "client",
            &[
                "FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d",
                "ws masking key: 37 fa 21 3d",
                "ws unmasked payload (5 bytes, UTF-8): \"Hello\"",
            ],
        ),
        (
            "01 03 48 65 6c 80 02 6c 6f",
            "server",
            &[
                "FIN=0 RSV=000 opcode=0x1 text MASK=0 len=3 (7-bit)",
                "ws payload (3 bytes, UTF-8): \"Hel\"",
                "FIN=1 RSV=000 opcode=0x0 continuation MASK=0 len=2 (7-bit)",
                "ws payload (2 bytes, UTF-8): \"lo\"",
                "text message (5 bytes): \"Hello\"",
            ],
        ),
        ("89 05 48 65 6c 6c 6f", "server", &["FIN=1 RSV=000 opcode=0x9 ping MASK=0 len=5 (7-bit)", "ping (5 bytes)"]),
        (
            "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
            "client",
            &["opcode=0xa pong MASK=1 len=5 (7-bit) key=37fa213d", "ws unmasked payload (5 bytes, UTF-8): \"Hello\""],
        ),
        ("\\x82\\x7e\\x01\\x00", "server", &["opcode=0x2 binary MASK=0 len=256 (16-bit)", "needs 256 more bytes"]),
    ];
    for (hex, from, shows) in frames {
        let o = run(&["decode", "ws", "--from", from], hex, &[]);
        let text = stdout(&o);
        for s in shows {
            assert!(text.contains(s), "{hex}: no {s:?} in\n{text}");
        }
    }
    // 256 and 64 KiB lengths, whole, as raw bytes.
    let mut frame = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    frame.extend(std::iter::repeat_n(0xab, 65536));
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let o = run(&["decode", "ws"], &hex, &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", &text[..400.min(text.len())]);
    assert!(text.contains("opcode=0x2 binary MASK=0 len=65536 (64-bit)"));
    assert!(text.contains("binary message (65536 bytes)"));
}

#[test]
fn decode_names_bad_hex_and_truncated_input() {
    let o = run(&["decode", "ws", "81 05 4g"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "wire-academy decode: not hex: line 1, column 8: 'g' is not a hex digit"
    );
    let o = run(&["decode", "ws"], "81 0", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("an odd number of hex digits"));
    let o = run(&["decode", "http", "--from", "client"], "GET / HTTP/1.1\\r\\nHost: x\\r\\n", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("incomplete: the last 25 bytes (from 00000000) do not complete a unit yet"),
        "{}",
        stdout(&o)
    );
    let o = run(&["decode", "chunked", "5\\r\\nhel"], "", &[]);
    assert!(stdout(&o).contains("chunk data, 3 bytes: \"hel\""), "{}", stdout(&o));
    let o = run(&["decode", "ws", "--raw"], "\u{81}", &[]);
    assert!(stdout(&o).contains("are the start of a frame header") || stdout(&o).contains("needs"), "{}", stdout(&o));
}

/// One block of a trace file: its connection, whether the server read or wrote it, and
/// its text (the header line, the rows, the notes).
struct Block {
    conn: String,
    read: bool,
    text: String,
}

fn blocks(trace: &str) -> Vec<Block> {
    trace
        .split("\n\n")
        .filter_map(|b| {
            let b = b.trim_start_matches('\n');
            let head = b.lines().next()?;
            let (conn, rest) = head.split_once(' ')?;
            let read = rest.starts_with("read ");
            (read || rest.starts_with("wrote ")).then(|| Block { conn: conn.to_string(), read, text: b.to_string() })
        })
        .collect()
}

fn notes(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("  0")).map(str::to_string).collect()
}

/// Pasting a trace's blocks into `decode` prints the notes the trace printed.
fn decode_agrees(kind: &str, from: &str, blocks: &[&Block]) {
    let pasted: String = blocks.iter().map(|b| format!("{}\n\n", b.text)).collect();
    let o = run(&["decode", kind, "--from", from], &pasted, &[]);
    let want: Vec<String> = blocks.iter().flat_map(|b| notes(&b.text)).collect();
    assert!(!want.is_empty());
    assert_eq!(notes(&stdout(&o)), want, "decode {kind} --from {from} on\n{pasted}");
}

#[tokio::test]
async fn decode_prints_what_the_trace_printed() {
    let file = std::env::temp_dir().join(format!("wire-academy-study-{}.trace", std::process::id()));
    let s = common::start(Config { trace: TraceTarget::File(file.clone()), ..common::config() }).await;
    common::publish(s.addr, "study", "first").await;
    // A short poll, an SSE stream with a message, and a WebSocket echo with a close.
    common::once(s.addr, "GET /poll/study?after=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut sse = common::Client::connect(s.addr).await;
    sse.send("GET /sse/study?after=0 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    sse.head().await;
    let mut got = Vec::new();
    while common::find(&got, b"data: first").is_none() {
        got.extend(sse.chunk().await);
    }
    drop(sse);
    let mut ws = TcpStream::connect(s.addr).await.unwrap();
    ws.write_all(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while common::find(&seen, b"\r\n\r\n").is_none() {
        let n = ws.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    ws.write_all(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]).await.unwrap();
    ws.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]).await.unwrap();
    while ws.read(&mut buf).await.unwrap_or(0) > 0 {}
    s.stop().await;
    let trace = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let t = std::fs::read_to_string(&file).unwrap_or_default();
            if t.matches("connection closed").count() >= 4 {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await; // polls the file the writer thread fills
        }
    })
    .await
    .expect("the trace file has every connection");
    let _ = std::fs::remove_file(&file);
    let all = blocks(&trace);
    let conn_of = |needle: &str| all.iter().find(|b| b.text.contains(needle)).map(|b| b.conn.clone()).unwrap();
    let side =
        |conn: &str, read: bool| -> Vec<&Block> { all.iter().filter(|b| b.conn == conn && b.read == read).collect() };

    let poll = conn_of("GET /poll/study");
    decode_agrees("http", "client", &side(&poll, true));
    decode_agrees("http", "server", &side(&poll, false));
    let stream = conn_of("GET /sse/study");
    decode_agrees("http", "server", &side(&stream, false));
    // After the 101, each direction is frames, at the offsets the trace gave them.
    let echo = conn_of("GET /echo");
    let client_frames = side(&echo, true);
    decode_agrees("http", "client", &client_frames[..1]);
    decode_agrees("ws", "client", &client_frames[1..]);
    let server_frames = side(&echo, false);
    decode_agrees("ws", "server", &server_frames[1..]);
}
