//! `wire-academy compare`, run as users run it (the real binary), checked for
//! consistency, not speed: every transport gets every message once and in order, the
//! clients' counts agree with the server's `/stats`, and the figures order as the
//! transports' designs say they must.

mod common;
mod peers;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn compare(args: &[&str]) -> (Output, Option<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_wire-academy"))
        .arg("compare")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("wire-academy runs");
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

async fn compare_async(args: Vec<String>) -> (Output, Option<Value>) {
    tokio::task::spawn_blocking(move || compare(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

fn row<'a>(v: &'a Value, transport: &str) -> &'a Value {
    v["transports"].as_array().unwrap().iter().find(|t| t["transport"] == transport).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// Every transport received every message exactly once, in order.
fn all_delivered(v: &Value) {
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0);
    for t in ["short-poll", "long-poll", "sse", "websocket"] {
        let r = row(v, t);
        // Summed over the transport's clients: each must have every message.
        let expected = published * r["clients"].as_u64().unwrap();
        assert_eq!(r["received"], expected, "{t}: {r}");
        assert_eq!(
            (r["lost"].as_u64(), r["duplicated"].as_u64(), r["out_of_order"].as_u64()),
            (Some(0), Some(0), Some(0)),
            "{t}"
        );
        assert!(r["error"].is_null(), "{t}: {r}");
    }
}

/// What the transports' designs say: short polling asks more often than messages come
/// (here), so it pays the most per message; a long-poll pays a request per message;
/// a stream pays only its event or frame.
fn figures_order_as_designed(v: &Value) {
    let b = |t| f(&row(v, t)["bytes_per_message"]);
    assert!(b("short-poll") >= b("long-poll"), "{} >= {}", b("short-poll"), b("long-poll"));
    assert!(b("long-poll") > b("sse") && b("long-poll") > b("websocket"));
    let req = |t| f(&row(v, t)["requests_per_message"]);
    assert!(req("short-poll") > 1.0 && req("long-poll") >= 1.0, "a request (or more) per message");
    assert!(req("sse") < 1.0 && req("websocket") < 1.0, "one request for the whole stream");
    assert!(row(v, "short-poll")["empty_polls"].as_u64().unwrap() > 0, "polls faster than messages find nothing");
}

#[test]
fn compare_against_its_own_server_delivers_everything_and_agrees_with_stats() {
    // 4 s at 2 messages/s, short polls every 0.2 s: more questions than messages.
    let (out, v) = compare(&["--json", "--duration", "4", "--rate", "2", "--interval", "0.2", "--clients", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v = v.expect("one JSON document on stdout");
    assert_eq!(v["published"], 8);
    all_delivered(&v);
    figures_order_as_designed(&v);
    agrees_with_stats(&v);
    for t in ["short-poll", "long-poll", "sse", "websocket"] {
        assert_eq!(row(&v, t)["clients"], 2);
    }
    // Short polling asks every interval: about duration ÷ interval times per client
    // (plus the last messages' drain, at most another interval or two).
    let polls = row(&v, "short-poll")["requests"].as_f64().unwrap() / 2.0;
    assert!((18.0..=30.0).contains(&polls), "{polls} short polls per client in 4 s at 0.2 s");
    assert!(f(&v["server_cpu_ms"]) >= 0.0);
}

/// The clients' sockets and the server's `/stats` saw the same traffic, up to one
/// request in flight per client when the counters were read.
fn agrees_with_stats(v: &Value) {
    for t in ["short-poll", "long-poll", "sse", "websocket"] {
        let r = row(v, t);
        let server = &r["server"];
        let (req, sreq) = (r["requests"].as_i64().unwrap(), server["requests"].as_i64().unwrap());
        assert!((req - sreq).abs() <= 2, "{t}: clients made {req} requests, the server counted {sreq}");
        let written = r["bytes_written"].as_i64().unwrap();
        let read = r["bytes_read"].as_i64().unwrap();
        let (sread, swritten) = (server["bytes_read"].as_i64().unwrap(), server["bytes_written"].as_i64().unwrap());
        assert!((written - sread).abs() <= 1200, "{t}: clients wrote {written} bytes, the server read {sread}");
        assert!((read - swritten).abs() <= 1200, "{t}: clients read {read} bytes, the server wrote {swritten}");
    }
}

#[tokio::test]
async fn compare_against_a_separately_started_server() {
    let server = ServerProcess::spawn(&[]);
    let url = format!("http://{}", server.addr);
    let args = ["--url", &url, "--json", "--duration", "2", "--rate", "2", "--interval", "0.2"];
    let (out, v) = compare_async(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = v.unwrap();
    all_delivered(&v);
    figures_order_as_designed(&v);
    agrees_with_stats(&v);
    assert!(v["server_cpu_ms"].is_null(), "another process's CPU is not ours to read");
    let stats = stats(server.addr).await;
    assert_eq!(stats["transports"]["publish"]["requests"], v["published"]);
    assert!(server.terminate().success());
}

/// The axum peer (a server this project did not write) serves the HTTP transports and
/// answers `/ws/…` with 404: three rows measured, the fourth says what failed.
#[tokio::test]
async fn compare_against_an_independent_server_reports_the_transport_it_lacks() {
    let addr = peers::axum_peer().await;
    let url = format!("http://{addr}");
    let args = ["--url", &url, "--json", "--duration", "2", "--rate", "2", "--interval", "0.2"];
    let (out, v) = compare_async(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(!out.status.success(), "a failed transport shows in the exit status");
    let v = v.expect("the report is printed all the same");
    let published = v["published"].as_u64().unwrap();
    for t in ["short-poll", "long-poll", "sse"] {
        assert_eq!(row(&v, t)["received"], published, "{t}");
    }
    let ws = row(&v, "websocket");
    assert_eq!(ws["received"], 0);
    let why = ws["error"].as_str().unwrap();
    assert!(why.contains("404"), "{why}");
}

#[test]
fn compare_with_nothing_listening_says_so_for_every_transport() {
    let (out, v) = compare(&["--url", "http://127.0.0.1:9", "--json", "--duration", "1", "--rate", "2"]);
    assert!(!out.status.success());
    let v = v.expect("a report, even of nothing");
    assert_eq!(v["published"], 0);
    for t in ["short-poll", "long-poll", "sse", "websocket"] {
        let why = row(&v, t)["error"].as_str().unwrap_or_else(|| panic!("{t} says why"));
        assert!(why.to_lowercase().contains("refused"), "{t}: {why}");
    }
}

#[test]
fn compare_flags_are_checked_by_clap() {
    let (out, _) = compare(&["--rate", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'fast'"));
    let (out, _) = compare(&["--clients", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Through the proxy adding 60 ms each way: a pushed message pays the one-way delay
/// (at least 60 ms, by construction), a short poll more.
#[test]
fn compare_through_a_long_link() {
    let (out, v) = compare(&["--json", "--latency", "60", "--duration", "3", "--rate", "2", "--interval", "0.5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = v.unwrap();
    all_delivered(&v);
    assert_eq!(v["latency_ms"], 60.0);
    for t in ["long-poll", "sse", "websocket"] {
        assert!(f(&row(&v, t)["latency_ms"]["p50"]) >= 60.0, "{t} pays the one-way delay");
    }
    assert!(f(&row(&v, "short-poll")["latency_ms"]["p50"]) > f(&row(&v, "websocket")["latency_ms"]["p50"]));
}

#[test]
fn compare_draws_an_svg_and_prints_a_table() {
    let svg = std::env::temp_dir().join(format!("wire-academy-compare-{}.svg", std::process::id()));
    let (out, _) = compare(&["--duration", "1", "--rate", "4", "--interval", "0.5", "--svg", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    for t in ["short-poll", "long-poll", "sse", "websocket", "p50 ms", "B/msg"] {
        assert!(table.contains(t), "{t} in\n{table}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\x1b'), "no escape codes when stderr is not a terminal");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.starts_with("<svg") && drawn.contains("websocket (p50"));
}

/// Through a proxy that refuses WebSocket upgrades and buffers streams: the WebSocket and
/// SSE rows say why they got nothing, and a fifth row shows where the negotiation
/// cascade settled (long polling) and that it lost nothing getting there.
#[test]
fn compare_through_a_hostile_proxy_shows_where_the_cascade_settles() {
    let (out, v) = compare(&["--json", "--block-websocket", "--buffer-responses", "--duration", "3", "--rate", "2"]);
    assert!(!out.status.success(), "two transports failed: the exit status says so");
    let v = v.unwrap();
    let published = v["published"].as_u64().unwrap();
    assert!(row(&v, "websocket")["error"].as_str().unwrap().contains("403"));
    assert_eq!(row(&v, "sse")["received"], 0, "a buffered stream delivers nothing");
    for t in ["short-poll", "long-poll", "auto"] {
        assert_eq!(row(&v, t)["received"], published, "{t}");
        assert_eq!(row(&v, t)["lost"], 0, "{t}");
    }
    assert_eq!(row(&v, "auto")["settled_on"], serde_json::json!(["long-poll"]));
}
