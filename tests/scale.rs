//! Scale: 10,000 held long-polls on one server, released by one publish.
//!
//! The server runs as its own process (the real binary), so that its 10,000 sockets and
//! the test's 10,000 count against two open-file limits, as they would in production.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, get};

pub const HELD: usize = 10_000;

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
    raise_limit(HELD as u64 + 256);
    let server = start_binary(&["--max-connections", "12000"]);
    let addr = server.1;
    let mut tasks = Vec::with_capacity(HELD);
    // Connect in waves so the listen backlog is not overrun.
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(500));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(HELD);
    for _ in 0..HELD {
        let sem = sem.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.unwrap();
            let mut c = Client::connect(addr).await;
            c.send(get("/long-poll/ten-k?after=0&timeout=60")).await;
            drop(permit);
            ready.send(()).await.unwrap();
            c.response().await
        }));
    }
    for _ in 0..HELD {
        ready_rx.recv().await.unwrap();
    }
    // Every request must be held by the server before the publish.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = common::once(addr, get("/stats")).await.json();
        let held = stats["transports"]["long_poll"]["open"].as_i64().unwrap();
        if held == HELD as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "the server holds only {held} of {HELD}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = Instant::now();
    common::publish(addr, "ten-k", "all of you").await;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["messages"][0]["data"], "all of you");
    }
    let took = published.elapsed();
    eprintln!("{HELD} long-polls released and answered in {took:?}");
    assert!(took < Duration::from_secs(20));
}
