//! The soak: mixed load on all four transports for a while, then the invariants a
//! production server must keep after hours of churn (issue #14).
//!
//! The real `wire-academy serve` binary runs in its own process (its memory and file
//! descriptors are read from `/proc`, its stderr kept), with a proxy that cuts idle
//! connections in front of part of the clients. For the whole run:
//!
//! - a publisher posts numbered messages to four channels;
//! - steady subscribers (every transport on every channel, some through the cutting
//!   proxy, so they reconnect with their cursor again and again) must end with every
//!   acknowledged message of their channel exactly once, in order;
//! - short-lived subscribers come and go on random transports, each checking that what
//!   it saw had no duplicate and no gap;
//! - fresh channels are created all the time, past `--max-channels`, so idle ones are
//!   dropped;
//! - bad inputs from the contract's table are sent at random, each checked for its
//!   answer (status or close code).
//!
//! Afterwards: 0 lost, 0 duplicated; the server's resident memory and descriptors in the
//! last quarter of the run no higher than in its second quarter (with a small margin); its
//! descriptors back to where they started once the clients have gone; no panic in its
//! log.
//!
//! `WIRE_ACADEMY_SOAK_SECONDS` sets the length (default 20, for `cargo test`);
//! `scripts/soak.sh SECONDS` runs it in release mode, and `.ci/run` runs two minutes.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire_academy::client::http::{HttpClient, Taps};
use wire_academy::client::sink::{Delivery, Sink};
use wire_academy::client::{self, BaseUrl, ClientConfig, Protocol};
use wire_academy::proxy::{self, ProxyConfig, ProxyStats};

const CHANNELS: [&str; 4] = ["soak-a", "soak-b", "soak-c", "soak-d"];
const TRANSPORTS: [Protocol; 4] = [Protocol::ShortPoll, Protocol::LongPoll, Protocol::Sse, Protocol::WebSocket];
/// Messages published per second, over all channels.
const RATE: u64 = 80;
/// A pause in publishing, every three seconds' worth of messages: longer than the
/// proxy's one-second idle timeout.
const LULL: Duration = Duration::from_millis(1500);
/// Channels the server may hold: the churn of fresh channels goes far past it.
const MAX_CHANNELS: &str = "64";

fn seconds() -> u64 {
    std::env::var("WIRE_ACADEMY_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20)
}

/// The server process, with its stderr in a file.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Server {
    fn start() -> Server {
        let log = std::env::temp_dir().join(format!("wire-academy-soak-{}.log", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["serve", "--addr", "127.0.0.1:0", "--max-channels", MAX_CHANNELS, "--heartbeat", "5"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("wire-academy listening on http://").expect("its address").parse().unwrap();
        Server { child, addr, log }
    }

    /// (resident memory in KiB, open file descriptors).
    fn sample(&self) -> (u64, u64) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
        (rss, fds)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What one subscriber saw: ids in arrival order, and whether it was told of a gap.
#[derive(Default)]
struct Seen {
    ids: Vec<u64>,
    truncated: bool,
}

fn config(addr: SocketAddr, channel: &str, after: Option<u64>) -> ClientConfig {
    ClientConfig {
        url: BaseUrl::parse(&format!("http://{addr}")).unwrap(),
        channel: channel.to_string(),
        after,
        send: Vec::new(),
        interval: Duration::from_millis(200),
        hold: Duration::from_secs(5),
        probe: Duration::from_secs(3),
        trace: None,
        pcap: None,
        meter: None,
    }
}

/// Runs a client of `protocol` that records into `seen` until the task is dropped.
fn subscribe(protocol: Protocol, cfg: ClientConfig, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sink = Sink::observed(Box::new(move |_, d| {
            let mut s = seen.lock().unwrap();
            match d {
                Delivery::Message { id, .. } => s.ids.push(*id),
                Delivery::Truncated => s.truncated = true,
            }
        }));
        let _ = client::run(protocol, &cfg, &mut sink).await;
    })
}

/// No duplicate, no gap, in order: each id one more than the one before.
fn gap_free(ids: &[u64]) -> Result<(), String> {
    for w in ids.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(format!("{} followed by {}", w[0], w[1]));
        }
    }
    Ok(())
}

/// One bad input of the contract, and whether it got its answer.
async fn bad_input(addr: SocketAddr, which: u64) -> Result<(), String> {
    let ws_head = |version: u8| {
        format!(
            "GET /ws/soak-bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
    };
    let (request, expect): (Vec<u8>, &str) = match which % 9 {
        0 => (
            format!("GET /poll/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000)).into_bytes(),
            "HTTP/1.1 431",
        ),
        1 => (format!("GET /poll/a?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(9000)).into_bytes(), "HTTP/1.1 414"),
        2 => (
            b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        3 => (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), "HTTP/1.1 505"),
        4 => (b"DELETE /publish/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), "HTTP/1.1 405"),
        5 => (b"GET /poll/no%20spaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        6 => (ws_head(12).into_bytes(), "HTTP/1.1 426"),
        // After a good handshake: an unmasked frame (1002), invalid UTF-8 (1007).
        7 => ([ws_head(13).as_bytes(), b"\x81\x02hi"].concat(), "close 1002"),
        _ => ([ws_head(13).as_bytes(), &[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]].concat(), "close 1007"),
    };
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(&request).await.map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    let ok = match expect.strip_prefix("close ") {
        None => got.starts_with(expect.as_bytes()),
        Some(code) => {
            let code: u16 = code.parse().unwrap();
            let frames = common::find(&got, b"\r\n\r\n").map_or(&got[..0], |i| &got[i + 4..]);
            frames.windows(4).any(|w| w[0] == 0x88 && w[1] >= 2 && u16::from_be_bytes([w[2], w[3]]) == code)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect}, got {:?}", String::from_utf8_lossy(&got[..got.len().min(80)])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_loses_nothing_and_leaks_nothing() {
    let duration = Duration::from_secs(seconds());
    let server = Server::start();
    let addr = server.addr;
    let (_, fds_at_start) = server.sample();

    // The proxy that cuts connections idle for a second: long-polls and quiet streams
    // behind it are cut again and again, and their clients resume with their cursor.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cutting = listener.local_addr().unwrap();
    let cfg = ProxyConfig {
        listen: cutting,
        upstream: addr.to_string(),
        block_websocket: false,
        buffer_responses: false,
        idle_timeout: Some(Duration::from_secs(1)),
        latency: Duration::ZERO,
    };
    let proxy_stats = Arc::new(ProxyStats::default());
    tokio::spawn(proxy::run_on(listener, cfg, None, proxy_stats.clone(), std::future::pending()));

    // Steady subscribers: every transport on every channel, directly and through the
    // proxy, all from id 1.
    let mut steady = Vec::new();
    for channel in CHANNELS {
        for protocol in TRANSPORTS {
            for via in [addr, cutting] {
                let seen = Arc::new(Mutex::new(Seen::default()));
                let task = subscribe(protocol, config(via, channel, Some(0)), seen.clone());
                steady.push((channel, protocol, via == cutting, seen, task));
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<&str, Vec<u64>>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let bad_inputs = Arc::new(AtomicU64::new(0));

    // The publisher.
    let publisher = {
        let (stop, acked, failures) = (stop.clone(), acked.clone(), failures.clone());
        tokio::spawn(async move {
            let mut http = HttpClient::new(&addr.to_string(), Taps::default());
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                tick.tick().await;
                n += 1;
                // Bursts and lulls: a lull longer than the proxy's idle timeout gets
                // quiet connections behind it cut.
                if n.is_multiple_of(RATE * 3) {
                    tokio::time::sleep(LULL).await;
                    tick.reset();
                }
                let channel = CHANNELS[(n % 4) as usize];
                let r = http
                    .request("POST", &format!("/publish/{channel}"), format!("m{n}").as_bytes(), common::LIMIT)
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                        acked.lock().unwrap().entry(channel).or_default().push(v["id"].as_u64().unwrap());
                    }
                    other => failures.lock().unwrap().push(format!("publish {n}: {other:?}")),
                }
                // Fresh channels all the time, far past --max-channels: idle ones are dropped.
                if n.is_multiple_of(8) {
                    let r = http.request("POST", &format!("/publish/churn-{n}"), b"x", common::LIMIT).await;
                    if !matches!(&r, Ok(r) if r.status() == 200 || r.status() == 503) {
                        failures.lock().unwrap().push(format!("churn publish {n}: {r:?}"));
                    }
                }
            }
        })
    };

    // Short-lived subscribers: connect, read a while, leave.
    let churners = {
        let (stop, failures) = (stop.clone(), failures.clone());
        tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Relaxed) {
                k += 1;
                let protocol = TRANSPORTS[(k % 4) as usize];
                let seen = Arc::new(Mutex::new(Seen::default()));
                let via = if k.is_multiple_of(3) { cutting } else { addr };
                let task = subscribe(protocol, config(via, CHANNELS[(k % 4) as usize], None), seen.clone());
                tokio::time::sleep(Duration::from_millis(300 + (k % 5) * 100)).await; // its lifetime
                task.abort();
                let s = seen.lock().unwrap();
                if let Err(e) = gap_free(&s.ids) {
                    failures.lock().unwrap().push(format!("short-lived {protocol:?} #{k}: {e}"));
                }
            }
        })
    };

    // Bad inputs at random, each checked.
    let abusers = {
        let (stop, failures, count) = (stop.clone(), failures.clone(), bad_inputs.clone());
        tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Relaxed) {
                k += 1;
                // A cheap mix: a multiplicative hash of k picks the input.
                if let Err(e) = bad_input(addr, k.wrapping_mul(0x9e37_79b9) >> 7).await {
                    failures.lock().unwrap().push(format!("bad input {k}: {e}"));
                }
                count.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await; // pacing, not waiting
            }
        })
    };

    // Sample the server's memory and descriptors once a second.
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new();
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await; // the sampling period
        let (rss, fds) = server.sample();
        samples.push((start.elapsed(), rss, fds));
    }
    stop.store(true, Relaxed);
    publisher.await.unwrap();
    churners.await.unwrap();
    abusers.await.unwrap();

    // Every steady subscriber catches up with everything acknowledged on its channel.
    let acked = acked.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let behind: Vec<String> = steady
            .iter()
            .filter(|(channel, _, _, seen, _)| {
                seen.lock().unwrap().ids.last().copied() != acked.get(channel).and_then(|a| a.last().copied())
            })
            .map(|(c, p, cut, seen, _)| format!("{p:?} on {c} (cut: {cut}) at {:?}", seen.lock().unwrap().ids.last()))
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still behind after 30 s: {behind:?}");
        tokio::time::sleep(Duration::from_millis(100)).await; // polls the subscribers' progress
    }
    let mut report = Vec::new();
    for (channel, protocol, cut, seen, task) in &steady {
        task.abort();
        let s = seen.lock().unwrap();
        let want = &acked[channel];
        assert!(!s.truncated, "{protocol:?} on {channel} (cut: {cut}) was told of a gap");
        assert_eq!(&s.ids, want, "{protocol:?} on {channel} (cut: {cut}): not every message exactly once, in order");
        report.push(format!("{protocol:?}/{channel}/{}: {}", if *cut { "cut" } else { "direct" }, s.ids.len()));
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failures, first: {:?}", failures.len(), &failures[..failures.len().min(5)]);

    // Memory and descriptors: the last quarter no higher than the second quarter.
    let quarter =
        |q: u32| samples.iter().filter(move |(t, _, _)| *t >= duration * q / 4 && *t < duration * (q + 1) / 4);
    let max_rss = |q| quarter(q).map(|s| s.1).max().unwrap_or(0);
    let max_fds = |q| quarter(q).map(|s| s.2).max().unwrap_or(0);
    let (early_rss, late_rss) = (max_rss(1), max_rss(3));
    let (early_fds, late_fds) = (max_fds(1), max_fds(3));
    eprintln!(
        "soak: {}s, {} messages published, {} bad inputs answered, {} proxy cuts; RSS {} KiB -> {} KiB; fds {} -> {}",
        duration.as_secs(),
        acked.values().map(Vec::len).sum::<usize>(),
        bad_inputs.load(Relaxed),
        proxy_stats.idle_cuts.load(Relaxed),
        early_rss,
        late_rss,
        early_fds,
        late_fds
    );
    assert!(proxy_stats.idle_cuts.load(Relaxed) > 0, "the proxy cut nothing: the resume path went untested");
    assert!(late_rss <= early_rss + early_rss / 4 + 4096, "RSS grew: {early_rss} KiB -> {late_rss} KiB ({samples:?})");
    assert!(late_fds <= early_fds + 32, "descriptors grew: {early_fds} -> {late_fds}");

    // Once every client is gone, the descriptors return.
    drop(steady);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, fds) = server.sample();
        if fds <= fds_at_start + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "descriptors stay open: {fds} (at start: {fds_at_start})");
        tokio::time::sleep(Duration::from_millis(100)).await; // polls /proc
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
