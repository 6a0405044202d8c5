//! The negotiation cascade through a hostile proxy, in each of its modes. A numbered
//! sequence is published throughout, in bursts with quiet gaps; the client must land on
//! the expected transport and receive every message exactly once, in order.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{config, publish, requests_now, start, wait_until};
use wire_academy::app::stats::Transport;
use wire_academy::net::Running;
use wire_academy::proxy::{self, ProxyConfig, ProxyStats};

const N: u64 = 30;

async fn proxy(
    upstream: SocketAddr,
    block: bool,
    buffer: bool,
    idle: Option<Duration>,
) -> (SocketAddr, Arc<ProxyStats>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ProxyConfig {
        listen: addr,
        upstream: upstream.to_string(),
        block_websocket: block,
        buffer_responses: buffer,
        idle_timeout: idle,
        latency: Duration::ZERO,
    };
    let stats = Arc::new(ProxyStats::default());
    tokio::spawn(proxy::run_on(listener, cfg, None, stats.clone(), std::future::pending()));
    (addr, stats)
}

/// Runs `client --protocol auto` through `via` while N messages are published to the
/// server in bursts of 5 separated by `gap` (quiet periods, for a proxy's idle timeout to
/// act in). With `last_burst_after`, the last burst waits until the server has served a
/// request of that transport: the client has fallen that far, whatever the machine's
/// speed. Returns the client's output.
async fn cascade(
    server: &Running,
    via: SocketAddr,
    channel: &str,
    gap: Duration,
    last_burst_after: Option<Transport>,
) -> Output {
    let ch = channel.to_string();
    let (addr, shared) = (server.addr, server.shared.clone());
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            if let Some(t) = last_burst_after
                && i == N - 4
            {
                wait_until(&format!("a {t:?} request before the last burst"), || {
                    std::future::ready(requests_now(&shared, t) >= 1)
                })
                .await;
            }
            publish(addr, &ch, &format!("seq {i}")).await;
            // Shapes the traffic: bursts of 5, 20 ms apart, with `gap` between bursts.
            tokio::time::sleep(if i % 5 == 0 { gap } else { Duration::from_millis(20) }).await;
        }
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire-academy"));
    cmd.args(["client", "--protocol", "auto", "--url", &format!("http://{via}"), "--channel", channel])
        .args(["--after", "0", "--count", &N.to_string(), "--json", "--timeout", "60", "--probe-timeout", "1"])
        .args(["--interval", "0.2"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    publisher.await.unwrap();
    out
}

/// Every message once, in order; returns the transports that delivered them.
fn check_sequence(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed: {stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().expect("only messages, no truncation")).collect();
    assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "every message exactly once, in order\n{stderr}");
    for l in &lines {
        let i = l["id"].as_u64().unwrap();
        assert_eq!(l["data"], format!("seq {i}"));
    }
    lines.iter().map(|l| l["transport"].as_str().unwrap().to_string()).collect()
}

fn settled_on(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("auto: settled on "))
        .map(|rest| rest.split(' ').next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_websocket_settles_on_sse() {
    let s = start(config()).await;
    let (via, stats) = proxy(s.addr, true, false, None).await;
    let out = cascade(&s, via, "cascade-sse", Duration::from_millis(200), None).await;
    let transports = check_sequence(&out);
    assert_eq!(settled_on(&out), ["sse"], "{}", String::from_utf8_lossy(&out.stderr));
    assert!(transports.iter().all(|t| t == "sse"));
    assert!(stats.refused_upgrades.load(Relaxed) >= 1, "the proxy really refused the upgrade");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blocked_and_buffered_settles_on_long_poll() {
    let s = start(config()).await;
    let (via, _) = proxy(s.addr, true, true, None).await;
    let out = cascade(&s, via, "cascade-lp", Duration::from_millis(200), None).await;
    let transports = check_sequence(&out);
    assert_eq!(settled_on(&out), ["long-poll"], "{}", String::from_utf8_lossy(&out.stderr));
    assert!(transports.iter().all(|t| t == "long-poll"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn held_requests_cut_settles_on_short_poll() {
    let s = start(config()).await;
    let (via, stats) = proxy(s.addr, true, true, Some(Duration::from_millis(400))).await;
    // Gaps longer than the idle timeout: a held long-poll is cut in each. The last burst
    // waits for the fall to short polling (the long-poll held meanwhile, with nothing
    // published, is cut): were everything published before the client held a long-poll,
    // one answer would carry it all and nothing would ever be cut.
    let out = cascade(&s, via, "cascade-sp", Duration::from_millis(900), Some(Transport::ShortPoll)).await;
    let transports = check_sequence(&out);
    let settled = settled_on(&out);
    assert_eq!(settled.last().map(String::as_str), Some("short-poll"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(transports.last().map(String::as_str), Some("short-poll"));
    assert!(stats.idle_cuts.load(Relaxed) >= 1, "the proxy really cut a held request");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transparent_proxy_keeps_websocket() {
    let s = start(config()).await;
    let (via, stats) = proxy(s.addr, false, false, None).await;
    let out = cascade(&s, via, "cascade-ws", Duration::from_millis(200), None).await;
    let transports = check_sequence(&out);
    assert_eq!(settled_on(&out), ["websocket"], "{}", String::from_utf8_lossy(&out.stderr));
    assert!(transports.iter().all(|t| t == "websocket"));
    assert_eq!(stats.refused_upgrades.load(Relaxed), 0);
    s.stop().await;
}
