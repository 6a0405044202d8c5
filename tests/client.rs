//! The `client` command against the project's server, run as a user runs it: the real
//! binary, its flags, its output and its exit code.

mod common;
mod peers;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::{config, publish, requests_now, start, wait_until};
use wire_academy::app::stats::Transport;
use wire_academy::proxy::{self, ProxyConfig};

/// Runs `wire-academy client ARGS` against `addr` and returns its output.
async fn client(addr: SocketAddr, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wire-academy"));
    cmd.arg("client").arg("--url").arg(format!("http://{addr}")).args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("the client runs")).await.unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Every transport the client speaks.
const HTTP_CLIENTS: [&str; 4] = ["short-poll", "long-poll", "sse", "websocket"];

/// The server's name for a client's `--protocol`, as its `/stats` count it.
fn transport_of(protocol: &str) -> Transport {
    match protocol {
        "short-poll" => Transport::ShortPoll,
        "long-poll" => Transport::LongPoll,
        "sse" => Transport::Sse,
        "websocket" => Transport::WebSocket,
        other => panic!("no transport {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_clients_send_count_json_and_exit_zero() {
    let s = start(config()).await;
    for protocol in HTTP_CLIENTS {
        let channel = format!("c-{protocol}");
        let out = client(
            s.addr,
            &[
                "--protocol",
                protocol,
                "--channel",
                &channel,
                "--interval",
                "0.1",
                "--send",
                "first",
                "--send",
                "second line",
                "--count",
                "2",
                "--json",
                "--timeout",
                "10",
            ],
        )
        .await;
        assert!(out.status.success(), "{protocol}: {}", String::from_utf8_lossy(&out.stderr));
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "{protocol}: {lines:?}");
        assert_eq!(lines[0], serde_json::json!({"transport": protocol, "id": 1, "data": "first"}));
        assert_eq!(lines[1], serde_json::json!({"transport": protocol, "id": 2, "data": "second line"}));
        // --after resumes from a cursor; plain output is one line per message.
        let out = client(
            s.addr,
            &["--protocol", protocol, "--channel", &channel, "--after", "1", "--count", "1", "--timeout", "10"],
        )
        .await;
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("[{protocol}] 2: second line\n"));
        // --timeout: exit 1 when --count messages do not arrive in time.
        let out =
            client(s.addr, &["--protocol", protocol, "--channel", &channel, "--count", "1", "--timeout", "0.5"]).await;
        assert_eq!(out.status.code(), Some(1), "{protocol}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_clients_report_truncation() {
    let s = start(wire_academy::config::Config { history: 2, ..config() }).await;
    for i in 1..=4 {
        publish(s.addr, "trunc", &format!("m{i}")).await;
    }
    for protocol in HTTP_CLIENTS {
        let out = client(
            s.addr,
            &[
                "--protocol",
                protocol,
                "--channel",
                "trunc",
                "--after",
                "0",
                "--count",
                "2",
                "--json",
                "--timeout",
                "10",
            ],
        )
        .await;
        assert!(out.status.success());
        let lines = json_lines(&out);
        assert_eq!(lines[0], serde_json::json!({"transport": protocol, "truncated": true}), "said before the messages");
        assert_eq!(lines[1]["id"], 3);
        assert_eq!(lines[2]["id"], 4);
    }
    s.stop().await;
}

/// A proxy that cuts every connection idle for 300 ms sits between the client and the
/// server while a numbered sequence is published: held long-polls are cut mid-wait and
/// short-poll connections between polls. Every message must arrive once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn http_clients_resume_after_cuts_without_gap_or_duplicate() {
    // A short SSE retry: the client waits the server's `retry:` before reconnecting.
    let s = start(wire_academy::config::Config { sse_retry: Duration::from_millis(100), ..config() }).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let cfg = ProxyConfig {
        listen: proxy_addr,
        upstream: s.addr.to_string(),
        block_websocket: false,
        buffer_responses: false,
        idle_timeout: Some(Duration::from_millis(300)),
        latency: Duration::ZERO,
    };
    let stats = std::sync::Arc::new(proxy::ProxyStats::default());
    tokio::spawn(proxy::run_on(listener, cfg, None, stats.clone(), std::future::pending()));
    const N: u64 = 40;
    for protocol in HTTP_CLIENTS {
        let cuts_before = stats.idle_cuts.load(std::sync::atomic::Ordering::Relaxed);
        let channel = format!("cut-{protocol}");
        let (addr, shared, transport) = (s.addr, s.shared.clone(), transport_of(protocol));
        let ch = channel.clone();
        let before = requests_now(&shared, transport);
        let publisher = tokio::spawn(async move {
            // Publishing starts once the client's first request has reached the server,
            // so that it is connected through every gap, however late it started.
            wait_until(&format!("{protocol}'s first request"), || {
                std::future::ready(requests_now(&shared, transport) > before)
            })
            .await;
            // Bursts with quiet gaps longer than the proxy's idle timeout.
            for i in 1..=N {
                publish(addr, &ch, &format!("n{i}")).await;
                let gap = if i % 5 == 0 { 600 } else { 10 };
                tokio::time::sleep(Duration::from_millis(gap)).await;
            }
        });
        let out = client(
            proxy_addr,
            &[
                "--protocol",
                protocol,
                "--channel",
                &channel,
                "--after",
                "0",
                "--interval",
                "0.5",
                "--count",
                &N.to_string(),
                "--json",
                "--timeout",
                "30",
            ],
        )
        .await;
        publisher.await.unwrap();
        assert!(out.status.success(), "{protocol}: {}", String::from_utf8_lossy(&out.stderr));
        let ids: Vec<u64> = json_lines(&out).iter().map(|l| l["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "{protocol}: every message once, in order");
        let cuts = stats.idle_cuts.load(std::sync::atomic::Ordering::Relaxed) - cuts_before;
        assert!(cuts >= 3, "{protocol}: the proxy really cut the client's connections ({cuts} cuts)");
    }
    s.stop().await;
}

/// The same clients against servers we did not write (axum for HTTP, tokio-tungstenite
/// for WebSocket, tests/peers): the clients must speak HTTP, event streams and WebSocket
/// as everyone else does, not only as our server does.
#[tokio::test(flavor = "multi_thread")]
async fn http_clients_work_against_an_independent_server() {
    let (http, ws) = peers::peers().await;
    for protocol in HTTP_CLIENTS {
        // The WebSocket peer (tokio-tungstenite) serves /ws only: the client starts from a
        // cursor, so it needs no HTTP request to find the live head. The others start at
        // the live head, from axum.
        let (addr, channel, start) = if protocol == "websocket" {
            (ws, "tt-websocket".to_string(), ["--after", "0"])
        } else {
            (http, format!("axum-{protocol}"), ["--interval", "0.1"])
        };
        let mut args = vec!["--protocol", protocol, "--channel", &channel];
        args.extend(start);
        args.extend(["--send", "one", "--send", "two", "--count", "2", "--json", "--timeout", "10"]);
        let out = client(addr, &args).await;
        assert!(out.status.success(), "{protocol}: {}", String::from_utf8_lossy(&out.stderr));
        let data: Vec<String> = json_lines(&out).iter().map(|l| l["data"].as_str().unwrap().to_string()).collect();
        assert_eq!(data, ["one", "two"], "{protocol}: sent, and received back from a server we did not write");
        let out = client(
            addr,
            &["--protocol", protocol, "--channel", &channel, "--after", "1", "--count", "1", "--timeout", "10"],
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("[{protocol}] 2: two\n"));
    }
}

/// After a server restart (an in-memory broker starts its ids again) a client's cursor is
/// from the future: it is told `truncated`, takes the server's cursor, and then waits for
/// new messages, rather than asking again and again at full speed.
#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_the_future_is_reset_not_spun_on() {
    let s = start(config()).await;
    for protocol in ["short-poll", "long-poll"] {
        let channel = format!("future-{protocol}");
        let (addr, shared, transport) = (s.addr, s.shared.clone(), transport_of(protocol));
        let ch = channel.clone();
        let before = requests_now(&shared, transport);
        let publisher = tokio::spawn(async move {
            // Published once the client has asked twice: told `truncated` for its cursor,
            // then asking again from the server's. A client that kept its cursor is told
            // `truncated` a second time (and never gets this message, id 1 being before 50).
            wait_until(&format!("{protocol}'s second request"), || {
                std::future::ready(requests_now(&shared, transport) >= before + 2)
            })
            .await;
            publish(addr, &ch, "after the restart").await;
        });
        let out = client(
            s.addr,
            &[
                "--protocol",
                protocol,
                "--channel",
                &channel,
                "--after",
                "50",
                "--interval",
                "0.2",
                "--count",
                "1",
                "--json",
                "--timeout",
                "10",
            ],
        )
        .await;
        publisher.await.unwrap();
        assert!(out.status.success(), "{protocol}: {}", String::from_utf8_lossy(&out.stderr));
        let lines = json_lines(&out);
        assert_eq!(lines.first(), Some(&serde_json::json!({"transport": protocol, "truncated": true})), "told once");
        assert_eq!(lines.last().unwrap()["data"], "after the restart");
        assert_eq!(lines.len(), 2, "{protocol}: truncation said once, then the message: {lines:?}");
    }
    s.stop().await;
}

/// JSON escaping can make a message up to six times longer on the wire: the WebSocket
/// client must take the largest message the server accepts.
#[tokio::test(flavor = "multi_thread")]
async fn the_websocket_client_takes_a_maximal_escaped_message() {
    let s = start(config()).await;
    let text = "\u{1}".repeat(1 << 20); // 1 MiB of control bytes: 6 MiB as JSON
    let r = common::once(s.addr, common::post("/publish/big", &text)).await;
    assert_eq!(r.status, 200);
    let out = client(
        s.addr,
        &["--protocol", "websocket", "--channel", "big", "--after", "0", "--count", "1", "--json", "--timeout", "20"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["data"].as_str().unwrap().len(), 1 << 20);
    s.stop().await;
}
