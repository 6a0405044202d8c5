//! The dashboard (`GET /`) in a real browser: Debian's Chromium, driven by npm's
//! `playwright-core` from tests/interop/node/dashboard.mjs, against the real server
//! binary, which this test stops and starts again on the same port halfway through.
//!
//! The script does the looking (see its header for every check); this test owns the
//! server and answers the script's two questions: "publish this" (so the message comes
//! from outside the page, over the server's own HTTP) and "restart the server".
//!
//! The server traces every byte to a file (`--trace-out`), so that the page's trace pane
//! (`GET /trace`) has something to show; the last two tests check that endpoint over raw
//! TCP, with tracing on and off.
//!
//! The screenshot goes to `target/tmp/dashboard.png`; with `UPDATE_DOCS=1` (as for
//! tests/docs.rs) it refreshes docs/img/dashboard.png instead, so an ordinary test run
//! does not rewrite a committed file.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node");
    if !require_tool("node", "apt-get install -y nodejs npm (Node 20 or later)")
        || !require_tool("/usr/bin/chromium", "apt-get install -y chromium")
        || !require_node_package(&dir, "playwright-core")
    {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let trace_file = |n: u32| tmp.join(format!("dashboard-{}-{n}.trace", std::process::id())).display().to_string();
    let mut server = Some(ServerProcess::spawn(&["--trace-out", &trace_file(1)]));
    let addr = server.as_ref().unwrap().addr;

    // The page's own answer, as the contract fixes it, before any browser looks at it.
    let page = rt.block_on(once(addr, get("/")));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(page.text().starts_with("<!doctype html>"), "{}", &page.text()[..100.min(page.body.len())]);
    let head = rt.block_on(async {
        let mut c = Client::connect(addr).await;
        c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        c.response_to(true).await
    });
    assert_eq!((head.status, head.header("content-length")), (200, page.header("content-length")));
    let post = rt.block_on(once(addr, post("/", "")));
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));

    let screenshot = if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/dashboard.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    };
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let mut node = Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .arg(format!("http://{addr}"))
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut to_node = node.stdin.take().unwrap();
    let mut done = None;
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.expect("the script's output");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let answer = match v["ask"].as_str() {
            Some("publish") => {
                let id = rt.block_on(publish(addr, "lobby", v["text"].as_str().unwrap()));
                serde_json::json!({ "id": id })
            }
            Some("restart") => {
                // A graceful stop (SIGTERM: WebSocket close 1001, SSE streams ended,
                // held long-polls answered), then a new process on the same port.
                let status = server.take().unwrap().terminate();
                assert!(status.success(), "the server stopped with {status}");
                server = Some(ServerProcess::spawn_on(&addr.to_string(), &["--trace-out", &trace_file(2)]));
                serde_json::json!({ "restarted": true })
            }
            _ if v.get("done").is_some() => {
                done = Some(v["done"].clone());
                continue;
            }
            _ => panic!("the script said something unexpected: {line}"),
        };
        writeln!(to_node, "{answer}").expect("the script reads its answers");
    }
    let status = node.wait().unwrap();
    assert!(status.success(), "tests/interop/node/dashboard.mjs failed ({status}); its reasons are above");
    let done = done.expect("the script reported its results");
    eprintln!("dashboard.mjs: {done}");
    for pane in ["short-poll", "long-poll", "sse", "websocket"] {
        assert_eq!(done["panes"][pane]["gaps"], 1, "{pane}: one gap, the restart: {done}");
    }
    // Chromium's own WebSocket offers permessage-deflate (RFC 7692); the server accepts
    // it on the channel with server_no_context_takeover, and the pane's messages above
    // arrived compressed (RSV1) and were inflated by Chromium. The server's trace shows
    // the offer, the answer, and what each compressed frame inflates to.
    let trace = std::fs::read_to_string(trace_file(1)).expect("the server's trace");
    assert!(
        trace.contains("http header Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
        "Chromium offered deflate"
    );
    assert!(
        trace.contains("http header Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"),
        "the server accepted it"
    );
    assert!(
        trace.lines().any(|l| l.contains("ws frame FIN=1 RSV=100 opcode=0x1 text MASK=0")),
        "compressed frames went to Chromium"
    );
    assert!(trace.contains("ws inflated payload"), "and the trace shows what they inflate to");
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() < 400 * 1024, "a small screenshot: {} bytes", png.len());
    drop(server);
    for n in [1, 2] {
        let _ = std::fs::remove_file(trace_file(n));
    }
}

/// `GET /trace` streams the trace blocks of every connection (here, a publish) as
/// events, but never the bytes of its own connection: those would be traced again as
/// they are sent, without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_trace_streams_every_connection_but_its_own() {
    use wire_academy::config::{Config, TraceTarget};
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("live-trace-{}.trace", std::process::id()));
    let s = start(Config { trace: TraceTarget::File(file.clone()), ..config() }).await;
    let mut watcher = Client::connect(s.addr).await;
    let own = format!(":{} ", watcher.stream.local_addr().unwrap().port());
    watcher.send(get("/trace")).await;
    let head = watcher.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let first = String::from_utf8(watcher.chunk().await).unwrap();
    assert!(first.starts_with("retry: "), "{first:?}");
    let preamble = String::from_utf8(watcher.chunk().await).unwrap();
    assert!(preamble.starts_with(": ") && preamble.contains("every byte of every client"), "{preamble:?}");

    publish(s.addr, "lobby", "traced words").await;
    let mut events = Vec::new();
    // Until the publish's answer: its request, then the server's response, each a block.
    while !events.iter().any(|e: &String| e.contains("wrote") && e.contains("http status line: HTTP/1.1 200 OK")) {
        let event = String::from_utf8(watcher.chunk().await).unwrap();
        assert!(event.starts_with("data: #"), "one block per event, as data lines: {event:?}");
        events.push(event);
    }
    assert!(events.iter().any(|e| e.contains("http request line: POST /publish/lobby HTTP/1.1")), "{events:#?}");
    assert!(events.iter().any(|e| e.contains("http body, 12 bytes: \"traced words\"")), "{events:#?}");
    assert!(!events.iter().any(|e| e.contains(&own)), "the watcher's own bytes came back to it: {events:#?}");
    s.stop().await;
    let _ = std::fs::remove_file(file);
}

/// Without tracing there is nothing to watch: `404`, saying how to turn it on.
#[tokio::test]
async fn the_live_trace_is_off_unless_the_server_traces() {
    let s = start(config()).await;
    let r = once(s.addr, get("/trace")).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("--trace-bytes"), "{}", r.text());
    s.stop().await;
}
