//! Scale: 10,000 held long-polls on one server, released by one publish; 10,000
//! WebSockets on one channel, each receiving a burst in order.
//!
//! The server runs as its own process (the real binary), so that its 10,000 sockets and
//! the test's 10,000 count against two open-file limits, as they would in production.
//! The tests take turns: together they would need twice the descriptors and both cores.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HELD: usize = 10_000;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().parse().unwrap();
    Server(child, addr)
}

/// Raises this test process's open-file limit to fit `want` sockets, or fails saying how.
fn raise_limit(want: u64) {
    let (now, problem) = wire_academy::net::rlimit::raise_nofile(want);
    assert!(problem.is_none(), "this test needs {want} open files and has {now}: {}", problem.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_held_long_polls_released_by_one_publish() {
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_limit(HELD as u64 + 256);
    let server = start_binary(&["--max-connections", "12000"]);
    let addr = server.1;
    let mut tasks = Vec::with_capacity(HELD);
    // Connect in waves so the listen backlog is not overrun.
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(500));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(HELD);
    // Clients start reading (and their read time limit starts) at the publish, not while
    // the server is still taking the others in.
    let (go, gate) = tokio::sync::watch::channel(false);
    for _ in 0..HELD {
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.unwrap();
            let mut c = Client::connect(addr).await;
            c.send(get("/long-poll/ten-k?after=0&timeout=60")).await;
            drop(permit);
            ready.send(()).await.unwrap();
            gate.wait_for(|open| *open).await.unwrap();
            c.response().await
        }));
    }
    for _ in 0..HELD {
        ready_rx.recv().await.unwrap();
    }
    // Every request must be held by the server before the publish.
    common::wait_until_within(&format!("the server to hold all {HELD}"), Duration::from_secs(30), || async {
        common::stats(addr).await["transports"]["long_poll"]["open"].as_i64() == Some(HELD as i64)
    })
    .await;
    let published = Instant::now();
    common::publish(addr, "ten-k", "all of you").await;
    go.send_replace(true);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["messages"][0]["data"], "all of you");
    }
    let took = published.elapsed();
    eprintln!("{HELD} long-polls released and answered in {took:?}");
    assert!(took < Duration::from_secs(20));
}

/// Messages in the burst each WebSocket client must receive, in order.
const BURST: u64 = 10;

/// A WebSocket client as cheap as it gets: a handshake written by hand, then a loop
/// that reads server frames (small, unmasked text frames here) until `BURST` arrived.
/// Returns the ids it received.
async fn ws_client(addr: SocketAddr, ready: tokio::sync::mpsc::Sender<()>) -> Vec<u64> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /ws/ten-k HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let mut upgraded = false;
    let mut ids = Vec::new();
    while (ids.len() as u64) < BURST {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed after {} messages", ids.len());
        buf.extend_from_slice(&chunk[..n]);
        if !upgraded {
            let Some(end) = common::find(&buf, b"\r\n\r\n") else { continue };
            assert!(buf.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&buf));
            buf.drain(..end + 4);
            upgraded = true;
            ready.send(()).await.unwrap();
        }
        // Frames: 0x81, a 7-bit length (the JSON is short), the payload.
        while buf.len() >= 2 && buf.len() >= 2 + (buf[1] & 0x7f) as usize {
            assert_eq!(buf[0], 0x81, "a final text frame");
            let len = buf[1] as usize;
            assert!(len < 126, "a short message");
            let v: serde_json::Value = serde_json::from_slice(&buf[2..2 + len]).unwrap();
            ids.push(v["id"].as_u64().unwrap());
            buf.drain(..2 + len);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_websockets_each_receive_a_burst_in_order() {
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_limit(HELD as u64 + 256);
    let server = start_binary(&["--max-connections", "12000"]);
    let addr = server.1;
    let started = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(500));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(HELD);
    let mut tasks = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let sem = sem.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            // Connect in waves so the listen backlog is not overrun.
            let permit = sem.acquire_owned().await.unwrap();
            let (got_101, mut wait) = tokio::sync::mpsc::channel(1);
            let client = tokio::spawn(ws_client(addr, got_101));
            wait.recv().await.expect("upgraded");
            drop(permit);
            ready.send(()).await.unwrap();
            client.await.unwrap()
        }));
    }
    for _ in 0..HELD {
        ready_rx.recv().await.unwrap();
    }
    let stats = common::once(addr, get("/stats")).await.json();
    assert_eq!(stats["transports"]["websocket"]["open"], HELD as i64, "every upgrade is held");
    eprintln!("{HELD} WebSockets upgraded in {:?}", started.elapsed());
    let published = Instant::now();
    for i in 1..=BURST {
        common::publish(addr, "ten-k", &format!("burst {i}")).await;
    }
    let want: Vec<u64> = (1..=BURST).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), want, "every message, in order");
    }
    let took = published.elapsed();
    eprintln!("{HELD} WebSockets each received {BURST} messages in {took:?}");
    let stats = common::once(addr, get("/stats")).await.json();
    assert!(stats["transports"]["websocket"]["delivered"].as_u64().unwrap() >= HELD as u64 * BURST);
    assert!(took < Duration::from_secs(20));
}
