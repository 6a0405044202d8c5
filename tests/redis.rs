//! The Redis broker against a real `redis-server` (each test starts its own on a free
//! loopback port and stops it), and the RESP codec against Redis and `redis-cli`, peers
//! this project did not write.
//!
//! Needs redis-server and redis-cli (Debian: redis-server, redis-tools; scripts/test.sh
//! installs them). Missing: said loudly, and a failure under CI=true.

mod common;

use bytes::BytesMut;
use common::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire_academy::proto::resp::{self, Limits, Value};

/// Sends one command with the codec and reads its reply with the codec, byte by byte
/// as it arrives (so every reply is also parsed from each of its prefixes).
async fn command(s: &mut TcpStream, args: &[&[u8]]) -> Value {
    let mut out = BytesMut::new();
    resp::encode_command(args, &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some((v, n)) = resp::parse(&buf, &Limits::default()).unwrap() {
            assert_eq!(n, buf.len(), "one reply per command, nothing more");
            return v;
        }
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(common::LIMIT, s.read(&mut byte)).await.expect("Redis answers").unwrap();
        assert_eq!(n, 1, "Redis closed the connection mid-reply: {:?}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
}

fn bulk(s: &[u8]) -> Value {
    Value::Bulk(bytes::Bytes::copy_from_slice(s))
}

#[tokio::test]
async fn the_codec_speaks_resp_with_a_real_redis_and_redis_cli_agrees() {
    let Some(redis) = RedisServer::start() else { return };
    let mut s = TcpStream::connect(("127.0.0.1", redis.port)).await.unwrap();

    assert_eq!(command(&mut s, &[b"PING"]).await, Value::Simple("PONG".into()));
    // A value with CRLF, a NUL and non-ASCII inside: bulk strings are binary-safe.
    let odd: &[u8] = b"line one\r\nline two \x00 \xc3\xa9";
    assert_eq!(command(&mut s, &[b"SET", b"odd", odd]).await, Value::Simple("OK".into()));
    assert_eq!(command(&mut s, &[b"GET", b"odd"]).await, bulk(odd));
    assert_eq!(command(&mut s, &[b"STRLEN", b"odd"]).await, Value::Integer(odd.len() as i64));
    // redis-cli, another client, reads what our encoder wrote, byte for byte.
    assert_eq!(redis.cli(&["--no-raw", "GET", "odd"]), r#""line one\r\nline two \x00 \xc3\xa9""#);
    // And we read what redis-cli wrote.
    redis.cli(&["RPUSH", "list", "a", "", "ccc"]);
    assert_eq!(
        command(&mut s, &[b"LRANGE", b"list", b"0", b"-1"]).await,
        Value::Array(vec![bulk(b"a"), bulk(b""), bulk(b"ccc")])
    );
    assert_eq!(command(&mut s, &[b"GET", b"missing"]).await, Value::Null, "null bulk string");
    assert_eq!(command(&mut s, &[b"INCR", b"n"]).await, Value::Integer(1));
    assert_eq!(command(&mut s, &[b"INCRBY", b"n", b"-5"]).await, Value::Integer(-4), "negative integers");
    match command(&mut s, &[b"INCR", b"list"]).await {
        Value::Error(e) => assert!(e.starts_with("WRONGTYPE"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    match command(&mut s, &[b"NOSUCHCOMMAND"]).await {
        Value::Error(e) => assert!(e.starts_with("ERR unknown command"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Nested arrays and a null inside one, from a Lua script (what the broker's scripts return).
    let nested = command(&mut s, &[b"EVAL", b"return {1, {2, 'x'}, redis.call('GET', 'missing')}", b"0"]).await;
    // (A missing key is Lua `false` inside the script, which Redis sends as a null bulk string.)
    let want = Value::Array(vec![Value::Integer(1), Value::Array(vec![Value::Integer(2), bulk(b"x")]), Value::Null]);
    assert_eq!(nested, want);
    // A large bulk string (past one read): 1 MiB.
    let big = vec![b'z'; 1 << 20];
    assert_eq!(command(&mut s, &[b"SET", b"big", &big]).await, Value::Simple("OK".into()));
    assert_eq!(redis.cli(&["STRLEN", "big"]), (1u32 << 20).to_string());
    let mut out = BytesMut::new();
    resp::encode_command(&[&b"GET"[..], b"big"], &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, _)) = resp::parse(&buf, &Limits::default()).unwrap() {
            break v;
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(v, bulk(&big));
    // A limit below it refuses it from the length line alone.
    let small = Limits { max_bulk: 1000, ..Limits::default() };
    assert_eq!(resp::parse(&buf, &small).unwrap_err(), resp::RespError::BulkTooLong(1 << 20));
}

#[tokio::test]
async fn the_codec_reads_pubsub_messages_published_by_redis_cli() {
    let Some(redis) = RedisServer::start() else { return };
    let mut sub = TcpStream::connect(("127.0.0.1", redis.port)).await.unwrap();
    let confirm = command(&mut sub, &[b"SUBSCRIBE", b"news"]).await;
    assert_eq!(confirm, Value::Array(vec![bulk(b"subscribe"), bulk(b"news"), Value::Integer(1)]));
    assert_eq!(redis.cli(&["PUBLISH", "news", "hello\r\nworld"]), "1", "one subscriber received it");
    // Read it in pieces as small as one byte.
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, n)) = resp::parse(&buf, &Limits::default()).unwrap() {
            assert_eq!(n, buf.len());
            break v;
        }
        let mut byte = [0u8; 1];
        assert_eq!(tokio::time::timeout(common::LIMIT, sub.read(&mut byte)).await.unwrap().unwrap(), 1);
        buf.push(byte[0]);
    };
    assert_eq!(v, Value::Array(vec![bulk(b"message"), bulk(b"news"), bulk(b"hello\r\nworld")]));
}

// ---------------------------------------------------------------------------------------
// Several instances, one system.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::{Client, LIMIT, ServerProcess, get, wait_until};

/// `n` instances of `wire-academy serve --broker redis://…` (plus `args`).
fn instances(redis: &RedisServer, n: usize, args: &[&str]) -> Vec<ServerProcess> {
    let url = redis.url();
    (0..n).map(|_| ServerProcess::spawn(&[&["--broker", url.as_str()][..], args].concat())).collect()
}

/// How many connections of `transport` (as /stats names it) `addr` holds open now.
async fn open(addr: SocketAddr, transport: &str) -> i64 {
    common::stats(addr).await["transports"][transport]["open"].as_i64().unwrap()
}

async fn wait_open(addr: SocketAddr, transport: &str, n: i64) {
    wait_until(&format!("{n} open {transport} on {addr}"), || async move { open(addr, transport).await == n }).await;
}

/// One request on a fresh connection that may fail (an instance or Redis may be down):
/// `Some((status, body))`, or `None` when the connection failed.
async fn try_request(addr: SocketAddr, raw: String) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(raw.as_bytes()).await.ok()?;
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.ok()?;
        let text = String::from_utf8(all).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(LIMIT, attempt).await.ok().flatten()
}

fn closing(method: &str, path: &str, body: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// Publishes once; `Some(id)` if acknowledged (200), `None` if refused or failed.
async fn try_publish(addr: SocketAddr, channel: &str, body: &str) -> Option<u64> {
    let (status, body) = try_request(addr, closing("POST", &format!("/publish/{channel}"), body)).await?;
    (status == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_u64().unwrap())
}

/// A poll answer's messages as `(id, data)`, and its `truncated` and `next`.
fn messages(v: &serde_json::Value) -> Vec<(u64, String)> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["data"].as_str().unwrap().to_string()))
        .collect()
}

/// A client that long-polls with its cursor, moving to the next instance whenever one
/// fails (down, restarting, or answering 503), until its cursor reaches `until` (0:
/// not known yet). Returns every message received, in the order received. A
/// `truncated` answer fails the test: nothing may be lost here.
async fn follow(addrs: Vec<SocketAddr>, channel: String, start: u64, until: Arc<AtomicU64>) -> Vec<(u64, String)> {
    let mut cursor = start;
    let mut got = Vec::new();
    let mut i = 0;
    loop {
        let target = until.load(SeqCst);
        if target > 0 && cursor >= target {
            return got;
        }
        let path = format!("/long-poll/{channel}?after={cursor}&timeout=1");
        match try_request(addrs[i % addrs.len()], closing("GET", &path, "")).await {
            Some((200, body)) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(v.get("truncated").is_none(), "truncated at cursor {cursor}: {body}");
                got.extend(messages(&v));
                cursor = v["next"].as_u64().unwrap();
            }
            Some((204, _)) => {}
            _ => {
                // This instance is down or cannot reach Redis: the next one.
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Every acknowledged message exactly once, in order, in a sequence with no holes.
fn assert_complete(who: &str, got: &[(u64, String)], acked: &[(u64, String)]) {
    let ids: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{who}: ids not consecutive, once each: {ids:?}");
    for m in acked {
        assert!(got.contains(m), "{who}: acknowledged {m:?} missing from {ids:?}");
    }
}

/// An open SSE stream read through the test's own chunk reader.
struct Sse(Client);

impl Sse {
    async fn open(addr: SocketAddr, path: &str, last_event_id: Option<u64>) -> Sse {
        let mut c = Client::connect(addr).await;
        let extra = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")).await;
        assert_eq!(c.head().await.status, 200);
        Sse(c)
    }

    /// The next event with data: `(id, event type, data)`.
    async fn event(&mut self) -> (Option<u64>, Option<String>, String) {
        loop {
            let chunk = self.0.chunk().await;
            assert!(!chunk.is_empty(), "the stream ended");
            let text = String::from_utf8(chunk).unwrap();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_string());
                }
            }
            if let Some(data) = data {
                return (id, kind, data);
            }
        }
    }

    /// Reads until the server closes the connection, the stream with it.
    async fn until_closed(&mut self) {
        self.0.until_close().await;
    }
}

async fn ws_connect(
    addr: SocketAddr,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{addr}{path}");
    tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url.as_str())).await.unwrap().unwrap().0
}

async fn ws_next(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> serde_json::Value {
    use futures_util::StreamExt;
    loop {
        let m = tokio::time::timeout(LIMIT, ws.next()).await.expect("a message in time").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn a_message_published_on_a_reaches_b_and_c_on_every_transport_with_the_same_id() {
    let Some(redis) = RedisServer::start() else { return };
    let servers = instances(&redis, 3, &[]);
    let (a, others) = (servers[0].addr, [servers[1].addr, servers[2].addr]);
    // On B and C: a held long-poll, an SSE stream and a WebSocket, all waiting at the
    // live head (no cursor), so that only the fan-out between instances can bring it.
    let mut waiting = Vec::new();
    for &b in &others {
        let mut lp = Client::connect(b).await;
        lp.send(get("/long-poll/news?timeout=30")).await;
        let sse = Sse::open(b, "/sse/news", None).await;
        let ws = ws_connect(b, "/ws/news").await;
        wait_open(b, "long_poll", 1).await;
        wait_open(b, "sse", 1).await;
        wait_open(b, "websocket", 1).await;
        waiting.push((b, lp, sse, ws));
    }
    let id = common::publish(a, "news", "from A").await;
    for (b, mut lp, mut sse, mut ws) in waiting {
        let r = lp.response().await;
        assert_eq!(r.status, 200, "{b}: {}", r.text());
        assert_eq!(messages(&r.json()), vec![(id, "from A".to_string())], "long-poll on {b}");
        assert_eq!(sse.event().await, (Some(id), None, "from A".to_string()), "SSE on {b}");
        let m = ws_next(&mut ws).await;
        assert_eq!((m["id"].as_u64(), m["data"].as_str()), (Some(id), Some("from A")), "WebSocket on {b}");
        // A short poll on it, from the start, answers the same message with the same id.
        let r = common::once(b, get("/poll/news?after=0")).await;
        assert_eq!(messages(&r.json()), vec![(id, "from A".to_string())], "short poll on {b}");
    }
    // And the other way: published on C, received on A.
    let mut sse = Sse::open(a, "/sse/news", None).await;
    wait_open(a, "sse", 1).await;
    let id2 = common::publish(others[1], "news", "from C").await;
    assert_eq!(id2, id + 1, "one sequence for the channel, whoever publishes");
    assert_eq!(sse.event().await, (Some(id2), None, "from C".to_string()));
}

#[tokio::test]
async fn publishers_on_several_instances_at_once_make_one_gap_free_sequence() {
    let Some(redis) = RedisServer::start() else { return };
    let servers = instances(&redis, 3, &[]);
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for (n, s) in servers.iter().enumerate() {
        for p in 0..3 {
            let addr = s.addr;
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..EACH {
                    // Keep-alive: one connection per publisher, publishes pipelined on Redis.
                    let text = format!("i{n}-p{p}-{i}");
                    acked.push((common::publish(addr, "seq", &text).await, text));
                }
                acked
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0), "one publisher's ids rise: {mine:?}");
        acked.extend(mine);
    }
    acked.sort();
    let total = acked.len() as u64;
    assert_eq!(
        acked.iter().map(|m| m.0).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>(),
        "1..=N, no gap, no repeat"
    );
    // Every instance's history agrees, text for id.
    for s in &servers {
        let r = common::once(s.addr, get("/poll/seq?after=0")).await;
        assert_eq!(messages(&r.json()), acked, "history on {}", s.addr);
    }
}

#[tokio::test]
async fn after_resumes_on_any_instance_and_truncated_past_the_history() {
    let Some(redis) = RedisServer::start() else { return };
    let servers = instances(&redis, 2, &["--history", "5"]);
    let (a, b) = (servers[0].addr, servers[1].addr);
    for i in 1..=8 {
        assert_eq!(common::publish(if i % 2 == 0 { a } else { b }, "r", &format!("m{i}")).await, i);
    }
    for addr in [a, b] {
        // Within the history: exactly what follows the cursor.
        let v = common::once(addr, get("/poll/r?after=5")).await.json();
        assert_eq!(messages(&v), vec![(6, "m6".into()), (7, "m7".into()), (8, "m8".into())]);
        assert!(v.get("truncated").is_none());
        assert_eq!(v["next"], 8);
        // The oldest kept is 4: a client at 3 missed nothing, one at 2 missed 3.
        let v = common::once(addr, get("/poll/r?after=3")).await.json();
        assert!(v.get("truncated").is_none() && messages(&v).len() == 5, "{v}");
        let v = common::once(addr, get("/poll/r?after=2")).await.json();
        assert_eq!(v["truncated"], true, "{v}");
        assert_eq!(messages(&v).first().map(|m| m.0), Some(4));
        // A cursor from the future: truncated, and everything there is.
        let v = common::once(addr, get("/poll/r?after=99")).await.json();
        assert_eq!((v["truncated"].as_bool(), v["next"].as_u64()), (Some(true), Some(8)));
        // No cursor: the live head.
        let v = common::once(addr, get("/poll/r")).await.json();
        assert_eq!((messages(&v).len(), v["next"].as_u64()), (0, Some(8)));
        // SSE resuming with Last-Event-ID, and a WebSocket with after=, on either instance.
        let mut sse = Sse::open(addr, "/sse/r", Some(6)).await;
        assert_eq!(sse.event().await, (Some(7), None, "m7".to_string()));
        assert_eq!(sse.event().await, (Some(8), None, "m8".to_string()));
        let mut sse = Sse::open(addr, "/sse/r", Some(1)).await;
        assert_eq!(sse.event().await.1.as_deref(), Some("truncated"));
        assert_eq!(sse.event().await.0, Some(4));
        let mut ws = ws_connect(addr, "/ws/r?after=7").await;
        assert_eq!(ws_next(&mut ws).await["id"], 8);
        let mut ws = ws_connect(addr, "/ws/r?after=0").await;
        assert_eq!(ws_next(&mut ws).await["truncated"], true);
        assert_eq!(ws_next(&mut ws).await["id"], 4);
    }
    // Each channel has its own sequence in Redis.
    assert_eq!(common::publish(b, "other", "x").await, 1);
}

#[tokio::test]
async fn a_thousand_subscribers_over_two_instances_receive_a_burst_in_order() {
    common::raise_nofile_to_hard_limit(4096);
    let Some(redis) = RedisServer::start() else { return };
    let servers = instances(&redis, 2, &[]);
    const SUBSCRIBERS: usize = 1000;
    const BURST: u64 = 100;
    let mut subs = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        subs.push(Sse::open(servers[i % 2].addr, "/sse/burst", None).await);
    }
    for s in &servers {
        wait_open(s.addr, "sse", (SUBSCRIBERS / 2) as i64).await;
    }
    // A thousand clients, and Redis sees two connections per instance (commands and
    // subscribed), plus redis-cli's own asking.
    let clients = redis.cli(&["CLIENT", "LIST"]);
    assert_eq!(clients.lines().count(), 2 * servers.len() + 1, "{clients}");
    assert_eq!(clients.lines().filter(|l| l.contains(" cmd=subscribe")).count(), servers.len(), "{clients}");
    // The burst, published on the first instance by one keep-alive connection.
    let mut publisher = Client::connect(servers[0].addr).await;
    for i in 1..=BURST {
        let r = publisher.request(common::post("/publish/burst", &format!("b{i}"))).await;
        assert_eq!(r.status, 200);
    }
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(n, mut s)| {
            tokio::spawn(async move {
                for i in 1..=BURST {
                    let (id, _, data) = s.event().await;
                    assert_eq!((id, data), (Some(i), format!("b{i}")), "subscriber {n}");
                }
            })
        })
        .collect();
    for r in readers {
        r.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Failures: nothing acknowledged is lost.

/// Publishes `text` on `addrs` (the first that takes it), retrying until one
/// acknowledges it: what a publisher does while an instance or Redis is coming back.
async fn publish_until_acked(addrs: &[SocketAddr], channel: &str, text: &str) -> u64 {
    let deadline = std::time::Instant::now() + LIMIT;
    let mut i = 0;
    loop {
        if let Some(id) = try_publish(addrs[i % addrs.len()], channel, text).await {
            return id;
        }
        assert!(std::time::Instant::now() < deadline, "no instance acknowledged {text:?} within {LIMIT:?}");
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_stopped_and_restarted_with_its_data_loses_nothing() {
    let Some(mut redis) = RedisServer::start_with(true) else { return };
    let servers = instances(&redis, 2, &[]);
    let (a, b) = (servers[0].addr, servers[1].addr);
    // Subscribers that stay connected through the outage (SSE on each instance), and
    // long-polling clients that keep asking by cursor.
    let mut streams = [Sse::open(a, "/sse/n", Some(0)).await, Sse::open(b, "/sse/n", Some(0)).await];
    let until = Arc::new(AtomicU64::new(0));
    let followers: Vec<_> = [vec![a, b], vec![b, a]]
        .into_iter()
        .map(|addrs| tokio::spawn(follow(addrs, "n".into(), 0, until.clone())))
        .collect();
    let mut ws = ws_connect(b, "/ws/n?after=0").await;
    // The numbered sequence: a publisher that goes on through the outage, alternating
    // instances, each attempt with the next number; what is refused is not acknowledged
    // (and, refused or not, may still have been stored: then everyone gets it too).
    let acked_count = Arc::new(AtomicU64::new(0));
    const ACKED: u64 = 60;
    let publisher = {
        let acked_count = acked_count.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            for n in 1.. {
                let text = format!("n{n}");
                match try_publish([a, b][n % 2], "n", &text).await {
                    Some(id) => {
                        acked.push((id, text));
                        if acked_count.fetch_add(1, SeqCst) + 1 == ACKED {
                            break;
                        }
                    }
                    None => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (acked, refused)
        })
    };
    let mut ws_publisher = ws_connect(a, "/ws/other").await;
    wait_until("20 acknowledged publishes", || {
        let n = acked_count.load(SeqCst);
        async move { n >= 20 }
    })
    .await;
    redis.stop();
    // Redis is gone: a publish is refused with the reason, on every instance.
    for addr in [a, b] {
        let (status, body) = try_request(addr, closing("POST", "/publish/other", "lost?")).await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("broker is unavailable") && body.contains("Redis"), "{body}");
    }
    // A message sent over a WebSocket cannot be taken either: the close says so (1013).
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        ws_publisher.send(Message::text("lost?")).await.unwrap();
        let close = loop {
            match tokio::time::timeout(LIMIT, ws_publisher.next()).await.expect("an answer in time") {
                Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1013, "{close:?}");
        assert!(close.reason.contains("broker is unavailable"), "{close:?}");
    }
    let during = acked_count.load(SeqCst);
    redis.restart();
    let (acked, refused) = publisher.await.unwrap();
    assert!(refused > 0 && during < ACKED, "the outage fell inside the sequence ({refused} refused, {during} acked)");
    let last = acked.last().unwrap().0;
    until.store(last, SeqCst);
    for (i, s) in streams.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.last().is_none_or(|m: &(u64, String)| m.0 < last) {
            let (id, kind, data) = s.event().await;
            assert_eq!(kind, None, "stream {i}: nothing but messages");
            got.push((id.unwrap(), data));
        }
        assert_complete(&format!("SSE stream {i}, connected throughout"), &got, &acked);
    }
    let mut got = Vec::new();
    while got.last().is_none_or(|m: &(u64, String)| m.0 < last) {
        let m = ws_next(&mut ws).await;
        got.push((m["id"].as_u64().unwrap(), m["data"].as_str().unwrap().to_string()));
    }
    assert_complete("WebSocket, connected throughout", &got, &acked);
    for (i, f) in followers.into_iter().enumerate() {
        assert_complete(&format!("long-poll follower {i}"), &f.await.unwrap(), &acked);
    }
}

#[tokio::test]
async fn an_instance_killed_and_restarted_loses_nothing() {
    let Some(redis) = RedisServer::start() else { return };
    let url = redis.url();
    let args = ["--broker", url.as_str()];
    let mut servers = instances(&redis, 2, &[]);
    let (a, b) = (servers[0].addr, servers[1].addr);
    let until = Arc::new(AtomicU64::new(0));
    // One client moves to A when B dies; one waits for B to come back and resumes there.
    let followers: Vec<_> = [vec![b, a], vec![b]]
        .into_iter()
        .map(|addrs| tokio::spawn(follow(addrs, "k".into(), 0, until.clone())))
        .collect();
    let mut sse = Sse::open(a, "/sse/k", Some(0)).await;
    let mut acked = Vec::new();
    for i in 1..=15 {
        let text = format!("k{i}");
        acked.push((common::publish(if i % 2 == 0 { a } else { b }, "k", &text).await, text));
    }
    drop(servers.pop()); // B: SIGKILL, no goodbye
    for i in 16..=30 {
        let text = format!("k{i}");
        acked.push((common::publish(a, "k", &text).await, text));
    }
    let b_again = ServerProcess::spawn_on(&b.to_string(), &args);
    assert_eq!(b_again.addr, b);
    for i in 31..=45 {
        let text = format!("k{i}");
        acked.push((common::publish(if i % 2 == 0 { a } else { b }, "k", &text).await, text));
    }
    let last = acked.last().unwrap().0;
    until.store(last, SeqCst);
    for (i, f) in followers.into_iter().enumerate() {
        assert_complete(&format!("long-poll follower {i}"), &f.await.unwrap(), &acked);
    }
    let mut got = Vec::new();
    while got.last().is_none_or(|m: &(u64, String)| m.0 < last) {
        let (id, _, data) = sse.event().await;
        got.push((id.unwrap(), data));
    }
    assert_complete("SSE on the surviving instance", &got, &acked);
}

#[tokio::test]
async fn a_fresh_redis_does_not_restart_ids_and_subscribers_are_told() {
    let Some(mut redis) = RedisServer::start() else { return };
    let servers = instances(&redis, 2, &[]);
    let (a, b) = (servers[0].addr, servers[1].addr);
    let mut sse = Sse::open(b, "/sse/f", None).await;
    let mut ws = ws_connect(b, "/ws/f").await;
    wait_open(b, "sse", 1).await;
    wait_open(b, "websocket", 1).await;
    for i in 1..=3 {
        assert_eq!(common::publish(a, "f", &format!("old{i}")).await, i);
    }
    for i in 1..=3 {
        assert_eq!(sse.event().await.0, Some(i));
        assert_eq!(ws_next(&mut ws).await["id"], i);
    }
    redis.replace_with_fresh();
    let id = publish_until_acked(&[a], "f", "new").await;
    assert!(id > 3, "ids went on after the old ones (got {id}), they did not start again at 1");
    // B's subscribers were sent away, to resume by cursor...
    sse.until_closed().await;
    {
        use futures_util::StreamExt;
        let ended = tokio::time::timeout(LIMIT, async {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    return;
                }
            }
        });
        ended.await.expect("the WebSocket is closed");
    }
    // ...and, resuming, are told that the sequence they knew is gone, then go on.
    let mut sse = Sse::open(b, "/sse/f", Some(3)).await;
    assert_eq!(sse.event().await.1.as_deref(), Some("truncated"));
    assert_eq!(sse.event().await, (Some(id), None, "new".to_string()));
    let mut ws = ws_connect(b, "/ws/f?after=3").await;
    assert_eq!(ws_next(&mut ws).await["truncated"], true);
    assert_eq!(ws_next(&mut ws).await["id"], id);
    for addr in [a, b] {
        let v = common::once(addr, get("/poll/f?after=3")).await.json();
        assert_eq!(v["truncated"], true, "{v}");
        assert_eq!(messages(&v), vec![(id, "new".to_string())]);
    }
    // New messages reach them, on both instances.
    let next = common::publish(b, "f", "newer").await;
    assert_eq!(next, id + 1);
    assert_eq!(sse.event().await, (Some(next), None, "newer".to_string()));
    assert_eq!(ws_next(&mut ws).await["id"], next);
}

#[test]
fn redis_unreachable_at_start_is_exit_1_naming_the_address() {
    // A port with nothing on it: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    for (broker, says) in [
        (url.as_str(), format!("cannot reach Redis at 127.0.0.1:{port}")),
        ("redis://127.0.0.1:notaport", "\"notaport\" is not a port".to_string()),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wire-academy"))
            .args(["serve", "--addr", "127.0.0.1:0", "--broker", broker])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&says), "{stderr}");
    }
}

#[tokio::test]
async fn trace_bytes_shows_the_resp_that_carries_a_message_between_instances() {
    let Some(redis) = RedisServer::start() else { return };
    let trace = redis.dir.join("a.trace");
    let url = redis.url();
    let a = ServerProcess::spawn(&["--broker", &url, "--trace-out", trace.to_str().unwrap()]);
    let _b = ServerProcess::spawn(&["--broker", &url]);
    let id = common::publish(a.addr, "t", "hello over Redis").await;
    let shown = |t: &str| std::fs::read_to_string(&trace).unwrap_or_default().contains(t);
    let pubsub = format!(r#"resp pub/sub message on "wa:messages:0": "t {id} hello over Redis""#);
    wait_until("the pub/sub message in the trace", || {
        let found = shown(&pubsub);
        async move { found }
    })
    .await;
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.contains(
            r#"resp command EVALSHA (the publish script) "2" "wa:ch:t:seq" "wa:ch:t:hist" "hello over Redis""#
        ),
        "{text}"
    );
    assert!(text.contains(&format!("resp reply {id}")), "{text}");
    assert!(text.contains(r#"resp command SUBSCRIBE "wa:messages:0""#), "{text}");
}

#[tokio::test]
async fn a_password_a_database_and_a_unix_socket_reach_a_real_redis() {
    let Some(redis) =
        RedisServer::start_with_flags(false, &["--requirepass", "s3cr@t", "--unixsocket", "{dir}/redis.sock"])
    else {
        return;
    };
    let sock = redis.dir.join("redis.sock");
    let tcp = format!("redis://:s3cr@t@127.0.0.1:{}/3", redis.port);
    let unix = format!("unix://:s3cr@t@{}?db=3", sock.display());
    let a = ServerProcess::spawn(&["--broker", &tcp]);
    let b = ServerProcess::spawn(&["--broker", &unix]);
    assert_eq!(common::publish(a.addr, "db", "over TCP").await, 1);
    assert_eq!(common::publish(b.addr, "db", "over the socket").await, 2, "the same Redis, the same database");
    let v = common::once(b.addr, get("/poll/db?after=0")).await.json();
    assert_eq!(messages(&v), vec![(1, "over TCP".to_string()), (2, "over the socket".to_string())]);
    // The keys are in database 3, as the URLs say.
    let keys = redis.cli(&["-a", "s3cr@t", "--no-auth-warning", "-n", "3", "--raw", "KEYS", "wa:ch:*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort();
    assert_eq!(keys, ["wa:ch:db:hist", "wa:ch:db:seq"]);
    // A wrong password: exit 1, saying what Redis said.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wire-academy"))
        .args(["serve", "--addr", "127.0.0.1:0", "--broker", &format!("redis://:wrong@127.0.0.1:{}", redis.port)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused AUTH") && stderr.contains("WRONGPASS"), "{stderr}");
}

#[tokio::test]
async fn every_cursor_reads_the_same_from_redis_as_from_memory() {
    use wire_academy::app::broker::{Broker, BrokerKind, parse_broker_url};
    use wire_academy::app::redis::RedisBroker;
    let Some(redis) = RedisServer::start() else { return };
    let BrokerKind::Redis(url) = parse_broker_url(&redis.url()).unwrap() else { unreachable!() };
    let show = |s: wire_academy::app::hub::Snapshot| {
        (s.messages.iter().map(|m| (m.id, m.text().to_string())).collect::<Vec<_>>(), s.truncated, s.next)
    };
    for (history, published) in [0usize, 5].into_iter().flat_map(|h| [0u64, 1, 3, 5, 6, 9].map(|p| (h, p))) {
        let shared = Broker::Redis(RedisBroker::connect(url.clone(), history, 64, 100, None).await.unwrap());
        let memory = Broker::memory(history, 64, 100);
        let channel = format!("h{history}-c{published}");
        for i in 1..=published {
            let text = format!("m{i}");
            assert_eq!(shared.publish(&channel, text.clone().into()).await.unwrap().id, i);
            assert_eq!(memory.publish(&channel, text.into()).await.unwrap().id, i);
        }
        for after in [None].into_iter().chain((0..=published + 2).map(Some)).chain([Some(u64::MAX)]) {
            let from_redis = show(shared.since(&channel, after).await.unwrap());
            let from_memory = show(memory.since(&channel, after).await.unwrap());
            assert_eq!(from_redis, from_memory, "--history {history}, {published} published, after={after:?}");
        }
    }
}
