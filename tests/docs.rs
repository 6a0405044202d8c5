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

    /// The trace as written so far.
    fn trace_so_far(&self) -> String {
        std::fs::read_to_string(&self.trace).unwrap_or_default()
    }

    /// Waits until the trace file shows `needle`: the step that traces it has happened.
    /// One writer thread writes the blocks in the order they were traced, so everything
    /// traced before it is in the file too.
    async fn traced(&self, needle: &str) {
        let what = format!("{needle:?} in the server's trace");
        common::wait_until(&what, move || std::future::ready(self.trace_so_far().contains(needle))).await;
    }

    /// Waits until each of connections `ids` has traced its last block (`connection
    /// closed`), and so all of its blocks are in the file.
    async fn closed(&self, ids: &[u64]) {
        for id in ids {
            self.traced(&format!("#{id} connection closed")).await;
        }
    }

    /// Stops the server (SIGTERM, a graceful shutdown) and returns its trace.
    ///
    /// The process exits without waiting for its trace writer: blocks traced just before
    /// the signal may never reach the file. A scenario first waits ([`Server::closed`])
    /// for the last blocks its doc shows.
    fn finish(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let _ = std::fs::remove_file(&self.trace);
        text
    }
}

/// Starts `wire-academy proxy` in front of `upstream`; returns the process and its address.
fn start_proxy(upstream: SocketAddr, flags: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream.to_string()])
        .args(flags)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the proxy starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    (child, addr)
}

/// Runs `wire-academy client ARGS` (in the background) and returns what a terminal
/// would show: the command line, then stdout and stderr interleaved as they were
/// written (both go into one pipe, as in a terminal).
fn run_client(
    via: SocketAddr,
    shown_url: &str,
    args: &[&str],
    trace: Option<&Path>,
) -> std::thread::JoinHandle<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire-academy"));
    cmd.args(["client", "--url", &format!("http://{via}")]).args(args);
    if let Some(t) = trace {
        cmd.arg("--trace-out").arg(t);
    }
    let quoted: Vec<String> =
        args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.to_string() }).collect();
    let shown = format!("$ wire-academy client --url {shown_url} {}\n", quoted.join(" "));
    let (mut reader, writer) = std::io::pipe().expect("a pipe");
    cmd.stdout(writer.try_clone().expect("a pipe")).stderr(writer);
    let mut child = cmd.spawn().expect("the client runs");
    drop(cmd); // the parent's copies of the write end, so EOF comes when the client exits
    std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut reader, &mut out).expect("client output is UTF-8");
        let _ = child.wait();
        format!("{shown}{out}")
    })
}

/// `transports.{transport}.{counter}` in the server's `GET /stats`. Only for servers
/// whose own trace no doc shows: the request is a connection of its own in that trace.
async fn stat(addr: SocketAddr, transport: &str, counter: &str) -> i64 {
    common::stats(addr).await["transports"][transport][counter].as_i64().expect("a counter")
}

/// Waits until the server's `transports.{transport}.{counter}` is at least 1 (a request
/// held, a stream open, a request served). See [`stat`].
async fn wait_for_stat(addr: SocketAddr, transport: &str, counter: &str) {
    let what = format!("{transport}.{counter} >= 1 in the server's /stats");
    common::wait_until(&what, move || async move { stat(addr, transport, counter).await >= 1 }).await;
}

/// The cascade through a proxy with `flags`: publishes once the server's `/stats` show
/// `settled` (transport, counter) at 1 or more, which says the client has fallen to the
/// transport the doc shows. Returns the client's output, or its trace.
async fn cascade_scenario(name: &str, flags: &[&str], settled: (&str, &str), want_trace: bool) -> String {
    let s = Server::start(name, &[]);
    let (mut proxy, via) = start_proxy(s.addr, flags);
    let trace = std::env::temp_dir().join(format!("wire-academy-docs-{}-{name}.client.trace", std::process::id()));
    let client = run_client(
        via,
        "http://localhost:8081",
        &["--protocol", "auto", "--channel", "lobby", "--count", "1", "--probe-timeout", "2"],
        want_trace.then_some(trace.as_path()),
    );
    wait_for_stat(s.addr, settled.0, settled.1).await;
    common::publish(s.addr, "lobby", "hello").await;
    let output = tokio::task::spawn_blocking(move || client.join().unwrap()).await.unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    s.finish();
    if want_trace {
        let t = std::fs::read_to_string(&trace).unwrap_or_default();
        let _ = std::fs::remove_file(&trace);
        t
    } else {
        output
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
            s.closed(&[1]).await;
            s.finish()
        }
        "http-publish-chunked" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            // Three writes, each read by the server before the next is sent: three reads.
            c.send("POST /publish/lobby HTTP/1.1\r\nHost: localhost:8080\r\nTransfer-Encoding: chunked\r\n\r\n").await;
            s.traced("http header Transfer-Encoding: chunked").await;
            c.send("6\r\nhello \r\n").await;
            s.traced("chunk data, 6 bytes: \"hello \"").await;
            c.send("5\r\nworld\r\n0\r\n\r\n").await;
            c.response().await;
            drop(c);
            s.closed(&[1]).await;
            s.finish()
        }
        "http-pipelined" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send(format!("{}{}", post("/publish/lobby", "one"), get("/poll/lobby?after=0"))).await;
            c.response().await;
            c.response().await;
            drop(c);
            s.closed(&[1]).await;
            s.finish()
        }
        "http-smuggling" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send("POST /publish/lobby HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await;
            c.response().await;
            c.expect_closed().await;
            // The client stays connected: the server closes when its lingering ends.
            s.closed(&[1]).await;
            s.finish()
        }
        "http-h2-preface" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            c.response().await;
            c.expect_closed().await;
            // The client stays connected: the server closes when its lingering ends.
            s.closed(&[1]).await;
            s.finish()
        }
        "poll-short" => {
            let s = Server::start(name, &[]);
            // Each publish is answered, so stored, before the poll is sent.
            common::publish(s.addr, "lobby", "hello").await;
            common::publish(s.addr, "lobby", "world").await;
            let mut c = Client::connect(s.addr).await;
            c.request(get("/poll/lobby?after=1")).await;
            drop(c);
            s.closed(&[3]).await;
            keep_connections(&s.finish(), &[3])
        }
        "poll-long" => {
            let s = Server::start(name, &[]);
            let mut held = Client::connect(s.addr).await;
            held.send(get("/long-poll/lobby?after=0&timeout=30")).await;
            // The request is read (and #1 numbered) before #2 publishes.
            s.traced("http request line: GET /long-poll/lobby?after=0&timeout=30").await;
            common::publish(s.addr, "lobby", "hello").await;
            held.response().await;
            drop(held);
            s.closed(&[1, 2]).await;
            s.finish()
        }
        "poll-long-timeout" => {
            let s = Server::start(name, &[]);
            let mut held = Client::connect(s.addr).await;
            held.request(get("/long-poll/lobby?after=0&timeout=1")).await;
            drop(held);
            s.closed(&[1]).await;
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
        "compare-table" => {
            // A measurement: the docs show one real run. Its numbers differ from run to
            // run, so the check compares everything but them (see `mask_numbers`); the
            // chart beside it is drawn by the same run when the docs are refreshed.
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let svg = if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
                root.join("docs/img/compare.svg")
            } else {
                std::env::temp_dir().join(format!("wire-academy-docs-{}-compare.svg", std::process::id()))
            };
            let args = ["--duration", "10", "--rate", "2", "--interval", "1", "--channel", "lobby"];
            let out = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
                .arg("compare")
                .args(args)
                .arg("--svg")
                .arg(&svg)
                .output()
                .expect("compare runs");
            assert!(out.status.success(), "compare failed: {}", String::from_utf8_lossy(&out.stderr));
            let drawn = std::fs::read_to_string(&svg).expect("the chart is written");
            for t in ["short-poll (p50", "long-poll (p50", "sse (p50", "websocket (p50"] {
                assert!(drawn.contains(t), "the chart labels {t}");
            }
            format!("$ wire-academy compare {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout))
        }
        "readme-curl" => {
            let s = Server::start(name, &[]);
            let base = format!("http://{}", s.addr);
            let held = {
                let url = format!("{base}/long-poll/lobby?after=0");
                tokio::task::spawn_blocking(move || curl(&["-s", &url]))
            };
            // The long-poll is held before publishing (this server's trace is not shown,
            // so asking for its /stats changes nothing the doc shows).
            wait_for_stat(s.addr, "long_poll", "open").await;
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
        "sse-stream" => {
            let s = Server::start(name, &[]);
            let mut c = Client::connect(s.addr).await;
            // Each step waits for the server's trace, not for the client to read: a client
            // that leaves the stream unread closes with a reset, which is what the doc
            // shows (`sent FIN` before `closed its side`).
            c.send("GET /sse/lobby HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/event-stream\r\n\r\n").await;
            // The head is written after the subscription: a publish from now on reaches it.
            s.traced("sse field retry: 3000").await;
            common::publish(s.addr, "lobby", "hello").await;
            s.traced("sse field data: hello").await;
            common::publish(s.addr, "lobby", "two\nlines").await;
            s.traced("sse field data: lines").await;
            drop(c);
            s.closed(&[1]).await;
            keep_connections(&s.finish(), &[1])
        }
        "sse-resume" => {
            let s = Server::start(name, &[]);
            // Each publish is answered, so stored, before the stream is asked for.
            for text in ["one", "two", "three"] {
                common::publish(s.addr, "lobby", text).await;
            }
            let mut c = Client::connect(s.addr).await;
            c.send("GET /sse/lobby HTTP/1.1\r\nHost: localhost:8080\r\nLast-Event-ID: 1\r\n\r\n").await;
            // Written, and left unread (as in sse-stream: the doc shows the reset's close).
            s.traced("sse field data: three").await;
            drop(c);
            s.closed(&[4]).await;
            keep_connections(&s.finish(), &[4])
        }
        "sse-heartbeat" => {
            let s = Server::start(name, &["--heartbeat", "1"]);
            let mut c = Client::connect(s.addr).await;
            c.send("GET /sse/lobby HTTP/1.1\r\nHost: localhost:8080\r\n\r\n").await;
            // One heartbeat, seen in the trace: the client reading it would close with a
            // FIN rather than the reset the doc shows (as in sse-stream).
            s.traced("sse comment (heartbeat)").await;
            drop(c);
            s.closed(&[1]).await;
            s.finish()
        }
        // The server's own trace is not what these show: its /stats may be asked.
        // An SSE stream is open only once subscribed (it is counted after subscribing).
        "cascade-blocked" => cascade_scenario(name, &["--block-websocket"], ("sse", "open"), false).await,
        "cascade-blocked-trace" => cascade_scenario(name, &["--block-websocket"], ("sse", "open"), true).await,
        // A held long-poll carries the cursor from the negotiation: it gets the message
        // even if it was counted just before it subscribed.
        "cascade-buffered" => {
            cascade_scenario(name, &["--block-websocket", "--buffer-responses"], ("long_poll", "open"), false).await
        }
        // A short poll comes only after the held long-poll was cut (the cursor comes from
        // the negotiation, so no short poll asks for the live head before that).
        "cascade-cut" => {
            let flags = ["--block-websocket", "--buffer-responses", "--idle-timeout", "1"];
            cascade_scenario(name, &flags, ("short_poll", "requests"), false).await
        }
        "client-transports" => {
            let s = Server::start(name, &[]);
            let mut shown = String::new();
            for protocol in ["short-poll", "long-poll", "sse", "websocket"] {
                let text = format!("hello over {protocol}");
                let args = ["--protocol", protocol, "--send", &text, "--count", "1", "--json"];
                let c = run_client(s.addr, "http://localhost:8080", &args, None);
                shown.push_str(&tokio::task::spawn_blocking(move || c.join().unwrap()).await.unwrap());
            }
            s.finish();
            shown
        }
        "client-long-poll-trace" => {
            let s = Server::start(name, &[]);
            let trace =
                std::env::temp_dir().join(format!("wire-academy-docs-{}-{name}.client.trace", std::process::id()));
            let c =
                run_client(s.addr, "http://localhost:8080", &["--protocol", "long-poll", "--count", "1"], Some(&trace));
            // The client's trace is shown, not the server's: its /stats may be asked.
            wait_for_stat(s.addr, "long_poll", "open").await;
            common::publish(s.addr, "lobby", "hello").await;
            tokio::task::spawn_blocking(move || c.join().unwrap()).await.unwrap();
            s.finish();
            let t = std::fs::read_to_string(&trace).unwrap_or_default();
            let _ = std::fs::remove_file(&trace);
            t
        }
        "client-sse-reconnect" => {
            // The proxy cuts the stream when it has been quiet for a second; the client
            // reconnects with Last-Event-ID and the server resumes after it.
            let s = Server::start(name, &[]);
            let (mut proxy, via) = start_proxy(s.addr, &["--idle-timeout", "1"]);
            let c = run_client(via, "http://localhost:8081", &["--protocol", "sse", "--count", "2"], None);
            // The client's output is shown, not the server's trace: its /stats may be asked.
            // The stream is open (subscribed), then the proxy cuts it after a quiet second
            // and the client waits its retry (at least 1.5 s) before reconnecting.
            wait_for_stat(s.addr, "sse", "open").await;
            common::publish(s.addr, "lobby", "before the cut").await;
            let what = "the proxy to cut the stream (sse.open back to 0, or a second stream asked for)";
            let addr = s.addr;
            common::wait_until(what, move || async move {
                stat(addr, "sse", "open").await == 0 || stat(addr, "sse", "requests").await >= 2
            })
            .await;
            common::publish(s.addr, "lobby", "during the reconnect").await;
            let out = tokio::task::spawn_blocking(move || c.join().unwrap()).await.unwrap();
            let _ = proxy.kill();
            let _ = proxy.wait();
            s.finish();
            out
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
            s.closed(&[1]).await;
            handshake_blocks(&s.finish())
        }
        "ws-masked-client-frame" | "ws-unmasked-server-frame" => {
            // The client sends RFC 6455 §5.7's masked "Hello"; /echo sends it back unmasked.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x81, b"Hello")).await;
            expect(&mut c, &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']).await;
            drop(c);
            s.closed(&[1]).await;
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
            s.closed(&[1]).await;
            frame_blocks(&keep_connections(&s.finish(), &[1]))
        }
        "ws-fragmented" => {
            // "Hello" in two fragments (RFC 6455 §5.7, masked here as a client must); the
            // echo is one frame.
            let s = Server::start(name, &[]);
            let mut c = ws_open(s.addr, "/echo").await;
            c.send(masked(0x01, b"Hel")).await;
            // Read by the server before the second fragment is sent: two reads.
            s.traced("ws unmasked payload (3 bytes, UTF-8): \"Hel\"").await;
            c.send(masked(0x80, b"lo")).await;
            expect(&mut c, &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']).await;
            drop(c);
            s.closed(&[1]).await;
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
            s.traced("ws frame FIN=1 RSV=000 opcode=0xa pong MASK=1").await;
            drop(c);
            s.closed(&[1]).await;
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
            s.closed(&[1]).await;
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
            s.closed(&[1]).await;
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
    // Nothing to wait for: the server read the whole request before answering it, so
    // the next frame is a read of its own; and on a channel it subscribed before
    // writing the `101` (docs/websocket.md), so a publish from now on reaches us.
    assert_eq!(r.status, 101);
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
            mask_bytes(&mut bytes);
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
        mask_bytes(&mut bytes);
        let line = String::from_utf8(bytes).unwrap();
        out.push_str(&mask_delays(&mask_words(&line)));
        out.push('\n');
    }
    flush(&mut hex, &mut first_offset, &mut out);
    out
}

/// A measurement's text with every number (and the column padding around it) taken
/// out: the same rows, columns and words, whatever was measured this time.
fn mask_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.trim_end().chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else if c == ' ' {
            in_number = false;
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// `reconnecting in 1234 ms` -> `reconnecting in N ms`: backoff delays are random.
fn mask_delays(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let masked: Vec<&str> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let delay = i > 0 && words[i - 1] == "in" && words.get(i + 1) == Some(&"ms");
            if delay && w.bytes().all(|b| b.is_ascii_digit()) { "N" } else { w }
        })
        .collect();
    masked.join(" ")
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

/// Masks, in place and keeping lengths (so hex rows keep their layout), the bytes that
/// differ from run to run: dates, ports of 127.0.0.1, session ids, WebSocket keys.
fn mask_bytes(bytes: &mut [u8]) {
    mask_dates(bytes);
    mask_after(bytes, b"127.0.0.1:", |b| b.is_ascii_digit(), b'0');
    mask_after(bytes, b"\"session\":\"", |b| b.is_ascii_hexdigit(), b'0');
    mask_after(bytes, b"Sec-WebSocket-Key: ", |b| b.is_ascii_alphanumeric() || b"+/=".contains(&b), b'A');
    mask_after(bytes, b"Sec-WebSocket-Accept: ", |b| b.is_ascii_alphanumeric() || b"+/=".contains(&b), b'A');
}

/// Replaces the run of bytes matching `keep` that follows each `prefix` with `with`.
fn mask_after(bytes: &mut [u8], prefix: &[u8], keep: impl Fn(u8) -> bool, with: u8) {
    let mut i = 0;
    while i + prefix.len() <= bytes.len() {
        if &bytes[i..i + prefix.len()] == prefix {
            i += prefix.len();
            while i < bytes.len() && keep(bytes[i]) {
                bytes[i] = with;
                i += 1;
            }
        } else {
            i += 1;
        }
    }
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
            let same = if name.starts_with("compare") {
                mask_numbers(&shown) == mask_numbers(&fresh)
            } else {
                normalize(&shown) == normalize(&fresh)
            };
            if !same {
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
    mask_bytes(&mut d1);
    mask_bytes(&mut d2);
    assert_eq!(d1, d2);
    let mut h1 = b"Host: 127.0.0.1:41234\r\n{\"session\":\"00ff\"}".to_vec();
    let mut h2 = b"Host: 127.0.0.1:55555\r\n{\"session\":\"abcd\"}".to_vec();
    mask_bytes(&mut h1);
    mask_bytes(&mut h2);
    assert_eq!(h1, h2);
}
