//! HTTP/1.1 over real sockets: framing, keep-alive, pipelining, and every HTTP row of
//! API.md's bad-input table. After each refusal, the connection must be closed and the
//! next client still served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use wire_academy::app::stats::Transport::LongPoll;
use wire_academy::config::Config;

/// The server answers `status`, closes that connection, and serves the next client.
async fn refused(addr: std::net::SocketAddr, raw: &[u8], status: u16) -> Resp {
    let mut c = Client::connect(addr).await;
    c.send(raw).await;
    let r = c.response().await;
    assert_eq!(r.status, status, "for {:?}: {}", String::from_utf8_lossy(&raw[..raw.len().min(80)]), r.text());
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_closed().await;
    let next = once(addr, get("/poll/after-refusal")).await;
    assert_eq!(next.status, 200, "the next client is still served");
    r
}

#[tokio::test]
async fn oversized_heads_targets_and_bodies() {
    let s = start(config()).await;
    let big_header = format!("GET /poll/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    refused(s.addr, big_header.as_bytes(), 431).await;
    let long_target = format!("GET /poll/a?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(9000));
    refused(s.addr, long_target.as_bytes(), 414).await;
    let big_body = format!("POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 2 << 20);
    refused(s.addr, big_body.as_bytes(), 413).await;
    // A chunked body that grows past --max-message is cut off as it arrives.
    let mut c = Client::connect(s.addr).await;
    c.send("POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").await;
    let chunk = format!("100000\r\n{}\r\n", "z".repeat(0x100000));
    let _ = c.stream.write_all(chunk.as_bytes()).await;
    let _ = c.stream.write_all(chunk.as_bytes()).await;
    let r = c.response().await;
    assert_eq!(r.status, 413);
    s.stop().await;
}

#[tokio::test]
async fn smuggling_shapes_get_400_and_close() {
    let s = start(config()).await;
    for raw in [
        &b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
        b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"GET /poll/a HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"GET /poll/a HTTP/1.1\nHost: x\r\n\r\n",
        b"GET /poll/a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        b"GET /poll/a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
    ] {
        let r = refused(s.addr, raw, 400).await;
        assert!(!r.body.is_empty(), "the refusal says why");
    }
    s.stop().await;
}

/// An endless chunked body that stops sending (docs/abuse.md, `endless-chunked`) does not hold
/// its connection: a read that stalls past `--header-timeout` gets `408` and the close.
#[tokio::test]
async fn a_chunked_body_that_stalls_gets_408() {
    let s = start(Config { header_timeout: Duration::from_millis(300), ..config() }).await;
    let mut c = Client::connect(s.addr).await;
    c.send("POST /publish/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
    let r = c.response().await; // no last chunk, ever
    assert_eq!(r.status, 408);
    c.expect_closed().await;
    // Nothing of the unfinished body was published.
    let poll = once(s.addr, get("/poll/a?after=0")).await;
    assert_eq!(poll.status, 200);
    assert!(!String::from_utf8_lossy(&poll.body).contains("hello"), "{}", String::from_utf8_lossy(&poll.body));
    s.stop().await;
}

/// The body bytes all connections hold at once are bounded (`--max-body-memory`): once the
/// budget is spent, a body past its fair share gets `503` and its connection is closed,
/// which gives its bytes back, while a small body goes on and is published.
#[tokio::test]
async fn bodies_past_the_body_memory_budget_get_503_and_small_ones_pass() {
    const BUDGET: usize = 64 * 1024;
    let s = start(Config { max_body_memory: BUDGET, ..config() }).await;
    let held = || s.shared.bodies.held();
    let chunk = |n: usize| format!("{n:x}\r\n{}\r\n", "h".repeat(n));
    // A large body that never ends takes most of the budget.
    let mut hog = Client::connect(s.addr).await;
    hog.send(&format!(
        "POST /publish/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        chunk(60 * 1024)
    ))
    .await;
    wait_until("the large body held", || async { held() == 60 * 1024 }).await;
    // A small one spends the rest and more: it is within its share (half), so it goes on.
    let mut small = Client::connect(s.addr).await;
    small
        .send(&format!(
            "POST /publish/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            chunk(8 * 1024)
        ))
        .await;
    wait_until("both held", || async { held() == 68 * 1024 }).await;
    // The large one grows again: past its share of a spent budget, refused.
    hog.send(&chunk(1024)).await;
    let r = hog.response().await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&r.body).contains("--max-body-memory"));
    hog.expect_closed().await;
    wait_until("the refused body's bytes given back", || async { held() == 8 * 1024 }).await;
    // The small one ends and is published.
    small.send(&format!("{}0\r\n\r\n", chunk(100))).await;
    let r = small.response().await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_until("every body given back", || async { held() == 0 }).await;
    s.stop().await;
}

#[tokio::test]
async fn slow_header_section_gets_408() {
    let s = start(Config { header_timeout: Duration::from_millis(300), ..config() }).await;
    let mut c = Client::connect(s.addr).await;
    c.send("GET /poll/a HTTP/1.1\r\nHost: x\r\n").await; // never finished
    let started = Instant::now();
    let r = c.response().await;
    assert_eq!(r.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(250));
    c.expect_closed().await;
    assert_eq!(once(s.addr, get("/poll/a")).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.request(get("/nowhere")).await.status, 404);
    let r = c.request(get("/publish/a")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = c.request(post("/poll/a", "x")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = c.request(get("/poll/bad%20name")).await;
    assert_eq!(r.status, 400);
    let r = c.request(get(&format!("/poll/{}", "n".repeat(65)))).await;
    assert_eq!(r.status, 400);
    let r = c.request(get("/poll/a?after=minus-one")).await;
    assert_eq!(r.status, 400);
    // None of these is a framing error: the same connection goes on.
    assert_eq!(c.request(get("/poll/a")).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn other_http_major_versions_get_505_and_a_higher_minor_is_served_as_1_1() {
    let s = start(config()).await;
    refused(s.addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505).await;
    refused(s.addr, b"GET /poll/a HTTP/2.0\r\nHost: x\r\n\r\n", 505).await;
    refused(s.addr, b"GET /poll/a HTTP/3.0\r\nHost: x\r\n\r\n", 505).await;
    // RFC 9110 §2.5: HTTP/1.2 is answered as the highest 1.x spoken here, on a connection
    // that stays open.
    let mut c = Client::connect(s.addr).await;
    let r = c.request("GET /poll/a HTTP/1.2\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(c.request(get("/poll/a")).await.status, 200);
    s.stop().await;
}

/// One more client at a server whose connections are all taken: `503` with
/// `Retry-After`, and closed.
async fn one_more_is_refused(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr).await;
    c.send(get("/poll/a")).await;
    let r = c.response().await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    c.expect_closed().await;
}

/// Closes `a`, one of the two connections of a full server: once the server has counted
/// it closed, a new client gets in.
async fn a_freed_slot_is_reused(s: &wire_academy::net::server::Running, a: Client) {
    drop(a);
    let connections = || s.shared.stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("the server counts the dropped connection closed", || std::future::ready(connections() == 1)).await;
    assert_eq!(once(s.addr, get("/poll/a")).await.status, 200, "a slot freed by a closed connection is reused");
}

#[tokio::test]
async fn past_max_connections_503_and_the_others_carry_on() {
    let s = start(Config { max_connections: 2, ..config() }).await;
    let mut a = Client::connect(s.addr).await;
    let mut b = Client::connect(s.addr).await;
    assert_eq!(a.request(get("/poll/a")).await.status, 200);
    assert_eq!(b.request(get("/poll/a")).await.status, 200);
    one_more_is_refused(s.addr).await;
    // The two open connections are unaffected, idle as they are between requests.
    assert_eq!(a.request(get("/poll/a")).await.status, 200);
    assert_eq!(b.request(get("/poll/a")).await.status, 200);
    a_freed_slot_is_reused(&s, a).await;
    s.stop().await;
}

/// With `--reclaim-waiting`, at `--max-connections` with every connection in a request
/// (two held long polls), nothing can be let go of: one more gets `503`, and the two
/// carry on.
#[tokio::test]
async fn reclaiming_past_max_connections_503_when_none_waits_for_a_request() {
    let s = start(Config { max_connections: 2, reclaim_waiting: true, ..config() }).await;
    let mut a = Client::connect(s.addr).await;
    let mut b = Client::connect(s.addr).await;
    a.send(get("/long-poll/full?after=0&timeout=30")).await;
    b.send(get("/long-poll/full?after=0&timeout=30")).await;
    wait_held(&s, LongPoll, 2).await;
    one_more_is_refused(s.addr).await;
    // The two open connections are unaffected: a message (published in-process: there
    // is no slot for a client to publish with) answers both.
    s.shared.broker.publish("full", bytes::Bytes::from_static(b"m")).await.unwrap();
    assert_eq!(a.response().await.status, 200);
    assert_eq!(b.response().await.status, 200);
    a_freed_slot_is_reused(&s, a).await;
    s.stop().await;
}

/// At `--max-connections` with `--reclaim-waiting`, a flood of connections that never
/// finish a request cannot lock out a client that does (`net::reclaim`): the connections
/// that have waited longest for a request head are let go of to make room, with `408` if
/// they had begun one and without a word if they had not (as an idle keep-alive
/// connection is closed); the newcomer is served, and a connection being answered is
/// never touched.
#[tokio::test]
async fn at_max_connections_those_waiting_longest_for_a_request_make_room() {
    let s = start(Config { max_connections: 4, reclaim_waiting: true, ..config() }).await;
    // Oldest first: an idle keep-alive connection, then one that sent half a head, then
    // one holding a long poll (in a request: never let go of), then a silent one.
    let mut idle = Client::connect(s.addr).await;
    assert_eq!(idle.request(get("/poll/a")).await.status, 200);
    let mut half = Client::connect(s.addr).await;
    half.send("GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n").await;
    let mut held = Client::connect(s.addr).await;
    held.send(get("/long-poll/a?after=0&timeout=30")).await;
    wait_held(&s, LongPoll, 1).await;
    let silent = Client::connect(s.addr).await;
    let connections = || s.shared.stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("the server counts four connections", || std::future::ready(connections() == 4)).await;

    // Full. A newcomer is served all the same; the longest waiting were let go of.
    let r = once(s.addr, get("/poll/a")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    idle.expect_closed().await; // nothing begun: closed without a word
    let r = half.response().await;
    assert_eq!((r.status, r.header("connection")), (408, Some("close")));
    half.expect_closed().await;
    // The held long poll is answered as usual, and the silent one (let go of too, at
    // most RECLAIM_BATCH at a time) or not, the server goes on serving.
    s.shared.broker.publish("a", bytes::Bytes::from_static(b"still here")).await.unwrap();
    let r = held.response().await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("still here"), "{}", r.text());
    drop(silent);
    assert_eq!(once(s.addr, get("/poll/a")).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn keep_alive_and_pipelining_answer_in_order() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    // Three requests in one write; three answers, in order, on one connection.
    let burst =
        format!("{}{}{}", post("/publish/pipe", "one"), post("/publish/pipe", "two"), get("/poll/pipe?after=0"));
    c.send(burst).await;
    assert_eq!(c.response().await.json()["id"], 1);
    assert_eq!(c.response().await.json()["id"], 2);
    let poll = c.response().await.json();
    assert_eq!(poll["messages"][1]["data"], "two");
    // Still open for more.
    assert_eq!(c.request(get("/poll/pipe?after=2")).await.json()["next"], 2);
    // Connection: close is honoured.
    c.send("GET /poll/pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let r = c.response().await;
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.expect_closed().await;
    s.stop().await;
}

#[tokio::test]
async fn http10_head_and_100_continue() {
    let s = start(config()).await;
    // HTTP/1.0 without keep-alive: the answer is HTTP/1.0 and the connection closes.
    let mut c = Client::connect(s.addr).await;
    c.send("GET /poll/old HTTP/1.0\r\n\r\n").await;
    let r = c.response().await;
    assert_eq!(r.status, 200);
    c.expect_closed().await;
    // HTTP/1.0 asking for keep-alive gets it.
    let mut c = Client::connect(s.addr).await;
    let r = c.request("GET /poll/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(c.request("GET /poll/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await.status, 200);
    // HEAD: the headers of GET, no body.
    let mut c = Client::connect(s.addr).await;
    c.send("HEAD /stats HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let r = c.response_to(true).await;
    assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 10);
    assert_eq!(c.request(get("/poll/x")).await.status, 200, "no stray body bytes after HEAD");
    // Expect: 100-continue gets an interim 100 before the body is sent.
    let mut c = Client::connect(s.addr).await;
    c.send("POST /publish/cont HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").await;
    assert_eq!(c.response().await.status, 100);
    c.send("hello").await;
    assert_eq!(c.response().await.json()["id"], 1);
    s.stop().await;
}

#[tokio::test]
async fn chunked_request_body_is_published() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    c.send("POST /publish/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").await;
    // Sent in awkward pieces: a size line split, an extension, a trailer.
    for piece in ["4\r", "\nWiki\r\n5;ext=1\r\npe", "dia\r\n0\r\nX-Trailer: 1\r\n", "\r\n"] {
        c.send(piece).await;
        // Shapes the traffic: a gap, so that each piece tends to be a read of its own.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.response().await.json()["id"], 1);
    let r = c.request(get("/poll/ch?after=0")).await.json();
    assert_eq!(r["messages"][0]["data"], "Wikipedia");
    // Invalid UTF-8 is not a message.
    let r = c.request(b"POST /publish/ch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\xff\xfe").await;
    assert_eq!(r.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn short_poll_cursors_and_truncation() {
    let s = start(Config { history: 3, ..config() }).await;
    // Without a cursor: the live head, nothing yet.
    let r = once(s.addr, get("/poll/sp")).await.json();
    assert_eq!(r, serde_json::json!({"messages": [], "next": 0}));
    for i in 1..=5 {
        assert_eq!(publish(s.addr, "sp", &format!("m{i}")).await, i);
    }
    let r = once(s.addr, get("/poll/sp")).await.json();
    assert_eq!(r, serde_json::json!({"messages": [], "next": 5}), "no cursor: the live head");
    let r = once(s.addr, get("/poll/sp?after=3")).await.json();
    assert_eq!(r, serde_json::json!({"messages": [{"id":4,"data":"m4"},{"id":5,"data":"m5"}], "next": 5}));
    let r = once(s.addr, get("/poll/sp?after=5")).await.json();
    assert_eq!(r, serde_json::json!({"messages": [], "next": 5}));
    // History keeps 3, so a cursor at 0 missed 1 and 2: said, not hidden.
    let r = once(s.addr, get("/poll/sp?after=0")).await.json();
    assert_eq!(r["truncated"], true);
    assert_eq!(r["messages"].as_array().unwrap().len(), 3);
    assert_eq!(r["messages"][0]["id"], 3);
    let r = once(s.addr, get("/poll/sp?after=2")).await.json();
    assert_eq!(r.get("truncated"), None, "3 onwards is all there");
    s.stop().await;
}

#[tokio::test]
async fn long_poll_is_released_by_a_publish_within_milliseconds() {
    let s = start(config()).await;
    let mut held = Client::connect(s.addr).await;
    held.send(get("/long-poll/lp?after=0&timeout=10")).await;
    wait_held(&s, LongPoll, 1).await;
    let published = Instant::now();
    publish(s.addr, "lp", "wake up").await;
    let r = held.response().await;
    let latency = published.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["messages"][0]["data"], "wake up");
    assert_eq!(r.json()["next"], 1);
    // Released by the publish, not by the 10 s timeout (the speed itself is the
    // benchmark's business, not a timed test's).
    assert!(latency < Duration::from_secs(5), "released in {latency:?}");
    s.stop().await;
}

#[tokio::test]
async fn long_poll_answers_at_once_when_messages_wait_and_204_after_timeout() {
    let s = start(config()).await;
    publish(s.addr, "lp2", "already here").await;
    let r = once(s.addr, get("/long-poll/lp2?after=0")).await;
    assert_eq!(r.json()["messages"][0]["data"], "already here");
    let started = Instant::now();
    let mut c = Client::connect(s.addr).await;
    let r = c.request(get("/long-poll/lp2?after=1&timeout=0.4")).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(350));
    // The connection is kept alive for the next poll.
    assert_eq!(c.request(get("/poll/lp2")).await.status, 200);
    // Without a cursor a long-poll waits for the next message, not the old ones.
    let mut held = Client::connect(s.addr).await;
    held.send(get("/long-poll/lp2?timeout=10")).await;
    wait_held(&s, LongPoll, 1).await;
    publish(s.addr, "lp2", "new").await;
    let r = held.response().await.json();
    assert_eq!(r["messages"].as_array().unwrap().len(), 1);
    assert_eq!(r["messages"][0]["data"], "new");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_long_polls_released_by_one_publish() {
    let s = start(config()).await;
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1000);
    // Clients start reading (and their read time limit starts) at the publish, not while
    // the others are still being held: on a loaded machine that can take seconds.
    let (go, gate) = tokio::sync::watch::channel(false);
    // Connect in waves, so that the listen backlog is not overrun on a busy machine.
    let waves = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    for _ in 0..1000 {
        let addr = s.addr;
        let ready = ready_tx.clone();
        let mut gate = gate.clone();
        let waves = waves.clone();
        tasks.push(tokio::spawn(async move {
            let permit = waves.acquire_owned().await.unwrap();
            let mut c = Client::connect(addr).await;
            c.send(get("/long-poll/crowd?after=0&timeout=30")).await;
            drop(permit);
            ready.send(()).await.unwrap();
            gate.wait_for(|open| *open).await.unwrap();
            c.response().await
        }));
    }
    for _ in 0..1000 {
        ready_rx.recv().await.unwrap();
    }
    // Wait until the server holds them all, then one publish releases every one.
    wait_until_within("the server holds all 1000", Duration::from_secs(30), || {
        std::future::ready(open_now(&s, LongPoll) == 1000)
    })
    .await;
    let published = Instant::now();
    publish(s.addr, "crowd", "everyone").await;
    go.send_replace(true);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["messages"][0]["data"], "everyone");
    }
    assert!(published.elapsed() < Duration::from_secs(5), "all released in {:?}", published.elapsed());
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_gives_up_frees_its_long_poll() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    c.send(get("/long-poll/gone?timeout=30")).await;
    wait_held(&s, LongPoll, 1).await;
    drop(c);
    // Released long before its 30 s.
    wait_held(&s, LongPoll, 0).await;
    s.stop().await;
}

#[tokio::test]
async fn shutdown_answers_held_long_polls() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    c.send(get("/long-poll/bye?timeout=30")).await;
    wait_held(&s, LongPoll, 1).await;
    let addr = s.addr;
    let stopping = tokio::spawn(s.stop());
    let r = c.response().await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("connection"), Some("close"));
    stopping.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
}

#[tokio::test]
async fn stats_count_per_transport() {
    let s = start(config()).await;
    publish(s.addr, "st", "x").await;
    once(s.addr, get("/poll/st?after=0")).await;
    let r = once(s.addr, get("/stats")).await.json();
    assert_eq!(r["transports"]["publish"]["requests"], 1);
    assert_eq!(r["transports"]["short_poll"]["requests"], 1);
    assert_eq!(r["transports"]["short_poll"]["delivered"], 1);
    assert!(r["transports"]["short_poll"]["bytes_read"].as_u64().unwrap() > 30);
    assert!(r["transports"]["short_poll"]["bytes_written"].as_u64().unwrap() > 60);
    s.stop().await;
}

/// curl is a real HTTP client we did not write: it must agree with our framing.
#[tokio::test]
async fn curl_publishes_and_polls() {
    if !require_tool("curl", "apt-get install -y curl") {
        return;
    }
    let s = start(config()).await;
    let base = format!("http://{}", s.addr);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl").args(&args).output().expect("curl runs");
            assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        })
    };
    // A 2 KiB body makes curl send Expect: 100-continue and wait for our 100.
    let big = "x".repeat(2048);
    let started = Instant::now();
    let out =
        run(vec!["-sS".into(), "--data-binary".into(), big.clone(), format!("{base}/publish/curl")]).await.unwrap();
    assert_eq!(out, "{\"id\":1}");
    assert!(started.elapsed() < Duration::from_millis(900), "curl did not wait out its 1 s Expect timer");
    // Chunked upload.
    let out = run(vec![
        "-sS".into(),
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        "chunky".into(),
        format!("{base}/publish/curl"),
    ])
    .await
    .unwrap();
    assert_eq!(out, "{\"id\":2}");
    let held = run(vec!["-sS".into(), format!("{base}/long-poll/curl?after=2&timeout=10")]);
    wait_held(&s, LongPoll, 1).await;
    publish(s.addr, "curl", "for curl").await;
    let out = held.await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"][0]["data"], "for curl");
    let out = run(vec!["-sS".into(), format!("{base}/poll/curl?after=0")]).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"][0]["data"].as_str().unwrap().len(), 2048);
    assert_eq!(v["messages"][1]["data"], "chunky");
    // Keep-alive reuse across two URLs in one curl run.
    let out = run(vec!["-sS".into(), "-v".into(), format!("{base}/poll/curl"), format!("{base}/stats")]).await.unwrap();
    assert!(out.contains("\"transports\""));
    s.stop().await;
}

#[tokio::test]
async fn negotiate_offers_the_cascade() {
    let s = start(config()).await;
    publish(s.addr, "neg", "x").await;
    let a = once(s.addr, get("/negotiate/neg")).await;
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let a = a.json();
    assert_eq!(a["transports"], serde_json::json!(["websocket", "sse", "long-poll", "short-poll"]));
    assert_eq!(a["cursor"], 1);
    assert_eq!(a["heartbeat"], 15.0);
    let b = once(s.addr, get("/negotiate/neg")).await.json();
    assert_eq!(a["session"].as_str().unwrap().len(), 32);
    assert_ne!(a["session"], b["session"], "a fresh session each time");
    assert_eq!(once(s.addr, get("/negotiate/bad%name")).await.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn channels_are_bounded_by_max_channels() {
    let s = start(Config { max_channels: 2, ..config() }).await;
    // Reading unknown channels makes none: polls on a thousand names cost nothing.
    for i in 0..50 {
        assert_eq!(once(s.addr, get(&format!("/poll/ghost-{i}?after=0"))).await.status, 200);
    }
    assert_eq!(s.shared.broker.channel_count(), 0);
    // Two channels held by waiting long-polls fill the server.
    let mut held = Vec::new();
    for ch in ["a", "b"] {
        let mut c = Client::connect(s.addr).await;
        c.send(get(&format!("/long-poll/{ch}?timeout=30"))).await;
        held.push(c);
    }
    wait_until("both channels are made", || std::future::ready(s.shared.broker.channel_count() == 2)).await;
    let r = once(s.addr, post("/publish/c", "no room")).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    // The channels in use go on working.
    publish(s.addr, "a", "still here").await;
    assert_eq!(held[0].response().await.json()["messages"][0]["data"], "still here");
    drop(held);
    // Once idle (its long-poll gone), a channel makes room for a new one.
    wait_held(&s, LongPoll, 0).await;
    wait_until("an idle channel makes room", || async {
        once(s.addr, post("/publish/c", "room now")).await.status == 200
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn a_huge_long_poll_timeout_is_capped_not_a_crash() {
    let s = start(Config { max_hold: Duration::from_millis(300), ..config() }).await;
    let mut c = Client::connect(s.addr).await;
    // 1e30 seconds does not fit a Duration: it must be capped at --max-hold, not panic.
    let r = c.request(get("/long-poll/huge?after=0&timeout=1e30")).await;
    assert_eq!(r.status, 204);
    assert_eq!(c.request(get("/poll/huge")).await.status, 200, "the connection goes on");
    let open = s
        .shared
        .stats
        .of(wire_academy::app::stats::Transport::LongPoll)
        .open
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(open, 0, "nothing left counted as held");
    s.stop().await;
}

#[tokio::test]
async fn a_silent_new_connection_does_not_hold_up_shutdown() {
    let s = start(config()).await; // --shutdown-timeout 5 s by default
    let _preconnect = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // Accepted by the server (not only queued by the kernel) before it is told to stop.
    wait_until("the server accepts the connection", || {
        std::future::ready(s.shared.stats.accepted.load(std::sync::atomic::Ordering::Relaxed) > 0)
    })
    .await;
    let started = Instant::now();
    s.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_poll_answer_is_bounded_and_next_continues_it() {
    let s = start(config()).await;
    let big = "m".repeat(1 << 20); // 1 MiB messages; an answer carries at most 4 MiB
    for _ in 0..6 {
        publish(s.addr, "big", &big).await;
    }
    let mut got = Vec::new();
    let mut after = 0;
    let mut polls = 0;
    while got.len() < 6 {
        let r = once(s.addr, get(&format!("/poll/big?after={after}"))).await;
        assert!(r.body.len() <= (4 << 20) + 1024, "answer of {} bytes", r.body.len());
        let v = r.json();
        let ids: Vec<u64> = v["messages"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
        assert!(!ids.is_empty(), "every answer moves on");
        assert_eq!(v["next"], *ids.last().unwrap(), "next points after the last message given");
        after = v["next"].as_u64().unwrap();
        got.extend(ids);
        polls += 1;
    }
    assert_eq!(got, (1..=6).collect::<Vec<u64>>());
    assert!(polls > 1, "six 1 MiB messages do not fit one answer");
    s.stop().await;
}

/// The README's walk-through, typed at a person's pace: a line every four seconds, twelve
/// seconds in all. With the flags the README gives `serve`, the request is answered; with
/// the default `--header-timeout` (10 s) the same typist gets `408`. Time is paused and
/// advanced by tokio, so the test takes milliseconds and no scheduler can change it.
#[tokio::test(start_paused = true)]
async fn the_readme_walk_through_works_at_the_pace_of_a_person_typing() {
    let readme = include_str!("../README.md");
    let serve = readme
        .lines()
        .find(|l| l.contains("-- serve --trace-bytes --header-timeout"))
        .expect("the README starts the server for typing by hand");
    let secs: u64 = serve.split("--header-timeout").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let typed = ["GET /poll/lobby?after=0 HTTP/1.1\r\n", "Host: localhost\r\n", "\r\n"];
    for (header_timeout, answer) in [(Config::default().header_timeout, 408), (Duration::from_secs(secs), 200)] {
        let s = start(Config { header_timeout, ..config() }).await;
        let mut c = Client::connect(s.addr).await;
        for line in typed {
            tokio::time::sleep(Duration::from_secs(4)).await; // a person typing the line
            // After a 408 the server has closed: the last line may find nobody to take it.
            let _ = c.stream.write_all(line.as_bytes()).await;
        }
        assert_eq!(c.response().await.status, answer, "--header-timeout {header_timeout:?}");
        s.stop().await;
    }
}
