//! Server-Sent Events over real sockets: the exact bytes of a stream (HTTP/1.1 chunked
//! and HTTP/1.0 close-delimited), heartbeats, resuming, truncation, graceful shutdown,
//! fan-out to ten thousand subscribers, a reader that stops, and an EventSource client
//! we did not write (Node's `eventsource` package) reconnecting through cut connections.
//!
//! The streams are read with the small readers here and in `common`, not with the
//! server's codec: a test that parsed answers with the code under test could agree with
//! a bug.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire_academy::app::stats::Transport;
use wire_academy::config::Config;

/// The heavy tests (thousands of sockets, megabytes through stuck readers) take turns:
/// on two cores, running them at once would make "a reader that keeps up" flaky.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `data` as one HTTP/1.1 chunk, framed here rather than by the server's encoder.
fn chunk_of(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// The response head as text, with the Date value (checked to be an IMF-fixdate)
/// replaced by `<date>`.
fn head_with_date_masked(raw: &[u8]) -> String {
    let text = String::from_utf8(raw.to_vec()).expect("ASCII head");
    let start = text.find("\r\nDate: ").expect("a Date header") + "\r\nDate: ".len();
    let end = start + text[start..].find("\r\n").unwrap();
    httpdate::parse_http_date(&text[start..end]).expect("Date is an IMF-fixdate");
    format!("{}<date>{}", &text[..start], &text[end..])
}

const RETRY_CHUNK: &[u8] = b"d\r\nretry: 3000\n\n\r\n";

/// Opens a stream with `extra` header lines, checks the head, and reads the `retry:`.
async fn open_stream(addr: SocketAddr, target: &str, extra: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")).await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(c.chunk().await, b"retry: 3000\n\n");
    c
}

/// Reads one chunk and splits the event in it into its lines.
async fn event(c: &mut Client) -> Vec<String> {
    let data = String::from_utf8(c.chunk().await).expect("UTF-8 event");
    let block = data.strip_suffix("\n\n").unwrap_or_else(|| panic!("one whole event per chunk: {data:?}"));
    block.split('\n').map(str::to_string).collect()
}

fn sse_open(s: &wire_academy::net::Running) -> i64 {
    s.shared.stats.of(Transport::Sse).open.load(Relaxed)
}

#[tokio::test]
async fn stream_head_retry_and_events_byte_for_byte() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    c.send("GET /sse/exact HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = c.raw_until(b"\r\n\r\n").await;
    assert_eq!(
        head_with_date_masked(&head),
        "HTTP/1.1 200 OK\r\n\
         Date: <date>\r\n\
         Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(c.raw(RETRY_CHUNK.len()).await, RETRY_CHUNK);
    // Line ends of every kind in the text become one `data:` line per line; a trailing
    // line end leaves an empty last line, which is how a browser gets it back.
    let texts = ["hello", "two\nlines", "crlf\r\nline", "cr\ronly", "trailing\n", "", "é 😀 : data: id: 9"];
    for t in texts {
        publish(s.addr, "exact", t).await;
    }
    let expected = [
        "id: 1\ndata: hello\n\n",
        "id: 2\ndata: two\ndata: lines\n\n",
        "id: 3\ndata: crlf\ndata: line\n\n",
        "id: 4\ndata: cr\ndata: only\n\n",
        "id: 5\ndata: trailing\ndata: \n\n",
        "id: 6\ndata: \n\n",
        "id: 7\ndata: é 😀 : data: id: 9\n\n",
    ]
    .map(chunk_of)
    .concat();
    let got = c.raw(expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), expected);
    s.stop().await;
}

#[tokio::test]
async fn http10_stream_is_close_delimited() {
    let s = start(config()).await;
    publish(s.addr, "old", "one").await;
    publish(s.addr, "old", "two\nlines").await;
    let mut c = Client::connect(s.addr).await;
    // HTTP/1.0 has no chunked coding: the body is the bare event stream, ended by close.
    c.send("GET /sse/old?after=0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    let head = c.raw_until(b"\r\n\r\n").await;
    assert_eq!(
        head_with_date_masked(&head),
        "HTTP/1.0 200 OK\r\n\
         Date: <date>\r\n\
         Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Connection: close\r\n\r\n"
    );
    let expected = "retry: 3000\n\nid: 1\ndata: one\n\nid: 2\ndata: two\ndata: lines\n\n";
    assert_eq!(String::from_utf8_lossy(&c.raw(expected.len()).await), expected);
    publish(s.addr, "old", "live").await;
    let expected = "id: 3\ndata: live\n\n";
    assert_eq!(String::from_utf8_lossy(&c.raw(expected.len()).await), expected);
    // A graceful shutdown says when to come back, then closes: that ends the body.
    let stopping = tokio::spawn(s.stop());
    assert_eq!(String::from_utf8_lossy(&c.until_close().await), "retry: 3000\n\n");
    stopping.await.unwrap();
}

#[tokio::test]
async fn heartbeats_arrive_on_an_idle_stream() {
    let s = start(Config { heartbeat: Duration::from_millis(200), ..config() }).await;
    let mut c = open_stream(s.addr, "/sse/beat", "").await;
    let opened = Instant::now();
    for n in 1..=3u32 {
        assert_eq!(c.raw(9).await, b"4\r\n: \n\n\r\n", "heartbeat {n}: a `: ` comment in its own chunk");
        let at = opened.elapsed();
        assert!(at >= Duration::from_millis(180) * n, "heartbeat {n} too early: {at:?}");
        assert!(at < Duration::from_millis(200) * n + Duration::from_millis(400), "heartbeat {n} late: {at:?}");
    }
    // An event is traffic too: the next heartbeat comes a full period after it.
    publish(s.addr, "beat", "x").await;
    let sent = Instant::now();
    assert_eq!(event(&mut c).await, ["id: 1", "data: x"]);
    assert_eq!(c.raw(9).await, b"4\r\n: \n\n\r\n");
    assert!(sent.elapsed() >= Duration::from_millis(170), "heartbeat {:?} after an event", sent.elapsed());
    s.stop().await;
}

#[tokio::test]
async fn resume_by_last_event_id_or_after_and_the_header_wins() {
    let s = start(config()).await;
    for i in 1..=5 {
        publish(s.addr, "r", &format!("m{i}")).await;
    }
    // ?after=2: 3, 4, 5, then live.
    let mut c = open_stream(s.addr, "/sse/r?after=2", "").await;
    for i in 3..=5 {
        assert_eq!(event(&mut c).await, [format!("id: {i}"), format!("data: m{i}")]);
    }
    // Last-Event-ID, as a reconnecting EventSource sends it: 4 onwards.
    let mut by_header = open_stream(s.addr, "/sse/r", "Last-Event-ID: 3\r\n").await;
    // Both: the header wins over the ?after= that the browser repeats from the old URL.
    let mut both = open_stream(s.addr, "/sse/r?after=0", "Last-Event-ID: 4\r\n").await;
    // Neither: the live head.
    let mut live = open_stream(s.addr, "/sse/r", "").await;
    publish(s.addr, "r", "m6").await;
    assert_eq!(event(&mut c).await, ["id: 6", "data: m6"]);
    for i in 4..=6 {
        assert_eq!(event(&mut by_header).await, [format!("id: {i}"), format!("data: m{i}")]);
    }
    for i in 5..=6 {
        assert_eq!(event(&mut both).await, [format!("id: {i}"), format!("data: m{i}")]);
    }
    assert_eq!(event(&mut live).await, ["id: 6", "data: m6"]);
    s.stop().await;
}

#[tokio::test]
async fn bad_cursors_methods_and_names_are_refused_before_the_stream() {
    let s = start(config()).await;
    let mut c = Client::connect(s.addr).await;
    let r = c.request("GET /sse/a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: seven\r\n\r\n").await;
    assert_eq!((r.status, r.header("content-type")), (400, Some("text/plain; charset=utf-8")));
    let r = c.request(get("/sse/a?after=-1")).await;
    assert_eq!(r.status, 400);
    let r = c.request(post("/sse/a", "x")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(c.request(get("/sse/bad%20name")).await.status, 400);
    // HEAD: the stream's headers, no body, and the connection goes on.
    c.send("HEAD /sse/a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let r = c.response_to(true).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(c.request(get("/poll/a")).await.status, 200, "still usable after all of that");
    assert_eq!(sse_open(&s), 0);
    s.stop().await;
}

#[tokio::test]
async fn truncated_history_is_announced_with_data_before_the_retained() {
    let s = start(Config { history: 3, ..config() }).await;
    for i in 1..=5 {
        publish(s.addr, "t", &format!("m{i}")).await;
    }
    // 1 and 2 are gone. The notice has a data line (EventSource drops events without),
    // and an id just before the first retained message, so a client cut off right after
    // it resumes exactly there.
    let mut c = open_stream(s.addr, "/sse/t?after=0", "").await;
    assert_eq!(event(&mut c).await, ["id: 2", "event: truncated", "data: {\"truncated\":true}"]);
    for i in 3..=5 {
        assert_eq!(event(&mut c).await, [format!("id: {i}"), format!("data: m{i}")]);
    }
    // Resuming from that id is not truncated.
    let mut again = open_stream(s.addr, "/sse/t", "Last-Event-ID: 2\r\n").await;
    assert_eq!(event(&mut again).await, ["id: 3", "data: m3"]);
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_ends_the_stream_with_retry_and_the_last_chunk() {
    let s = start(config()).await;
    let mut c = open_stream(s.addr, "/sse/bye", "").await;
    let stopping = tokio::spawn(s.stop());
    assert_eq!(c.raw(RETRY_CHUNK.len()).await, RETRY_CHUNK, "when to come back");
    assert_eq!(c.chunk().await, b"", "the last chunk: the body is complete, not cut");
    c.expect_closed().await;
    stopping.await.unwrap();
}

#[tokio::test]
async fn stats_count_streams_and_a_client_that_leaves_frees_its_stream() {
    let s = start(config()).await;
    let mut c = open_stream(s.addr, "/sse/st", "").await;
    assert_eq!(sse_open(&s), 1);
    publish(s.addr, "st", "a").await;
    publish(s.addr, "st", "b").await;
    event(&mut c).await;
    event(&mut c).await;
    let v = stats(s.addr).await;
    let sse = &v["transports"]["sse"];
    assert_eq!(
        (sse["open"].as_i64(), sse["requests"].as_u64(), sse["delivered"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert!(sse["bytes_read"].as_u64().unwrap() > 20, "the request head");
    // Head (~140 bytes), retry chunk (18), two events (19 + 2 framing + ...).
    assert!(sse["bytes_written"].as_u64().unwrap() > 140 + 18 + 2 * 19, "{sse}");
    drop(c);
    wait_until_within("the stream is released", Duration::from_secs(2), || std::future::ready(sse_open(&s) == 0)).await;
    s.stop().await;
}

/// Reads one event stream as its chunks arrive, with a buffer of its own (one per
/// subscriber, so kept small), checking each event's id and data.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    async fn open(addr: SocketAddr, target: &str) -> Reader {
        Reader::open_with(addr, target, "").await
    }

    async fn open_with(addr: SocketAddr, target: &str, extra: &str) -> Reader {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes()).await.unwrap();
        let mut r = Reader { stream, buf: Vec::with_capacity(1024), pos: 0 };
        // The head, then the retry chunk.
        while !r.buf.windows(RETRY_CHUNK.len()).any(|w| w == RETRY_CHUNK) {
            assert!(r.fill().await > 0, "closed before the stream began");
        }
        assert!(r.buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
        r.pos = find(&r.buf, RETRY_CHUNK).unwrap() + RETRY_CHUNK.len();
        r
    }

    async fn fill(&mut self) -> usize {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let n = self.stream.read_buf(&mut self.buf).await.unwrap_or(0);
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        n
    }

    /// The next whole chunk's data, if one is in the buffer.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.pos..];
        let line_end = find(rest, b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).expect("chunk size");
        let total = line_end + 2 + size + 2;
        if rest.len() < total {
            return None;
        }
        let data = rest[line_end + 2..line_end + 2 + size].to_vec();
        self.pos += total;
        Some(data)
    }

    /// Reads events until `last`, checking each id and its data; `Err(id)` if the stream
    /// ends first (with the last id received in full).
    async fn expect_ids(&mut self, mut next: u64, last: u64, data: impl Fn(u64) -> String) -> Result<u64, u64> {
        while next <= last {
            match self.next_chunk() {
                Some(chunk) => {
                    let text = String::from_utf8(chunk).expect("UTF-8");
                    if text.starts_with(':') || text.starts_with("retry:") {
                        continue;
                    }
                    let want = format!("id: {next}\ndata: {}\n\n", data(next));
                    assert!(text == want, "expected event {next}, got {:?}", &text[..text.len().min(80)]);
                    next += 1;
                }
                None => {
                    if self.fill().await == 0 {
                        return Err(next - 1);
                    }
                }
            }
        }
        Ok(last)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribers_receive_a_burst_in_order() {
    const SUBSCRIBERS: usize = 10_000;
    const MESSAGES: u64 = 20;
    let _heavy = HEAVY.lock().await;
    // Each subscriber is one socket here; the server, in its own process, holds the
    // other end of each (this process alone could not hold 20,000 descriptors).
    raise_nofile_to_hard_limit(SUBSCRIBERS as u64 + 500);
    let server = ServerProcess::spawn(&[]);
    let addr = server.addr;
    let started = Instant::now();
    // Connect a few hundred at a time: a listen backlog overflowing into SYN retries
    // would only measure the kernel's retry timer.
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(SUBSCRIBERS);
    let mut tasks = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let connecting = connecting.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.unwrap();
            let mut r = Reader::open(addr, "/sse/crowd").await;
            drop(permit);
            ready.send(()).await.unwrap();
            let got = r.expect_ids(1, MESSAGES, |i| format!("m{i}")).await;
            assert_eq!(got, Ok(MESSAGES), "a subscriber's stream ended early");
            r // kept open until the server shuts down
        }));
    }
    let deadline = Duration::from_secs(20);
    for _ in 0..SUBSCRIBERS {
        tokio::time::timeout(deadline, ready_rx.recv()).await.expect("all subscribers connected in time");
    }
    let connected = started.elapsed();
    let v = stats(addr).await;
    assert_eq!(v["transports"]["sse"]["open"], SUBSCRIBERS as u64, "the server holds every stream");
    let published = Instant::now();
    let mut publisher = Client::connect(addr).await;
    for i in 1..=MESSAGES {
        let r = publisher.request(post("/publish/crowd", &format!("m{i}"))).await;
        assert_eq!(r.status, 200);
    }
    let mut readers = Vec::with_capacity(SUBSCRIBERS);
    for t in tasks {
        readers.push(tokio::time::timeout(deadline, t).await.expect("every subscriber got the burst in time").unwrap());
    }
    let delivered = published.elapsed();
    let v = stats(addr).await;
    assert_eq!(v["transports"]["sse"]["delivered"], SUBSCRIBERS as u64 * MESSAGES);
    eprintln!(
        "{SUBSCRIBERS} SSE subscribers connected in {connected:?}; {MESSAGES} messages reached all of them in {delivered:?}"
    );
    // The server closes first (graceful shutdown), so the TIME_WAIT states are its.
    assert!(server.terminate().success());
    drop(readers);
}

/// A 32 KiB message whose id can be read back: `m{i}:` then padding.
fn big(i: u64, size: usize) -> String {
    let mut s = format!("m{i}:");
    s.extend(std::iter::repeat_n('x', size - s.len()));
    s
}

#[tokio::test]
async fn a_reader_that_stops_is_cut_off_while_the_others_get_everything() {
    const GOOD: usize = 3;
    const SIZE: usize = 32 * 1024;
    const QUEUE: usize = 8;
    let messages = ((loopback_buffer_bound(4096) / SIZE) + QUEUE + 40) as u64;
    let _heavy = HEAVY.lock().await;
    let s = start(Config { max_queue: QUEUE, history: 1000, ..config() }).await;
    // The stuck client asks for the stream and then never reads a byte.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = Client::on(socket.connect(s.addr).await.unwrap());
    stuck.send("GET /sse/slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut good = Vec::new();
    for _ in 0..GOOD {
        good.push(Reader::open(s.addr, "/sse/slow").await);
    }
    wait_until_within("all streams are open", Duration::from_secs(5), || {
        std::future::ready(sse_open(&s) == GOOD as i64 + 1)
    })
    .await;
    // More than the kernel buffers between the server and the stuck reader hold, plus
    // its queue. Each message is read by every good reader before the next one is
    // published: paced by what they confirm, not by a clock, so no scheduler can make
    // a good reader look slow.
    let mut publisher = Client::connect(s.addr).await;
    for i in 1..=messages {
        assert_eq!(publisher.request(post("/publish/slow", &big(i, SIZE))).await.status, 200);
        for r in &mut good {
            assert_eq!(r.expect_ids(i, i, |i| big(i, SIZE)).await, Ok(i), "a reader that keeps up gets every message");
        }
    }
    let readers = good;
    // The stuck stream was cut; the good ones are still open.
    wait_until_within("the stuck stream is cut", Duration::from_secs(5), || {
        std::future::ready(sse_open(&s) == GOOD as i64)
    })
    .await;
    // What the stuck client finds when it finally reads: the head, whole events up to
    // some id, then the end of the connection without the last chunk.
    let head = stuck.head().await;
    assert_eq!(head.status, 200);
    let rest = stuck.until_close().await;
    assert!(rest.starts_with(RETRY_CHUNK));
    assert!(!rest.ends_with(b"0\r\n\r\n"), "cut, not ended: the client must know it missed something");
    let mut last = 0;
    let mut at = RETRY_CHUNK.len();
    while let Some(line_end) = find(&rest[at..], b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[at..at + line_end]).unwrap(), 16).unwrap();
        let end = at + line_end + 2 + size + 2;
        if end > rest.len() {
            break; // an event cut in the middle: not received
        }
        let event = &rest[at + line_end + 2..at + line_end + 2 + size];
        assert!(event.starts_with(format!("id: {}\n", last + 1).as_bytes()), "in order, none skipped");
        last += 1;
        at = end;
    }
    assert!(last < messages, "the stuck client did not get everything, or it would not have been cut");
    // Reconnecting with its Last-Event-ID, it loses nothing that is still in history.
    let mut resumed = Reader::open_with(s.addr, "/sse/slow", &format!("Last-Event-ID: {last}\r\n")).await;
    assert_eq!(resumed.expect_ids(last + 1, messages, |i| big(i, SIZE)).await, Ok(messages));
    drop(readers);
    s.stop().await;
}

/// A reader that keeps up is never cut, however late its server task is woken: a burst
/// of 100 messages is published into a broadcast ring of 4 while that task cannot run
/// (the test's single thread never yields during the burst), which overtakes the ring
/// every time. What counts is the client's backlog on its socket, and it is empty.
#[tokio::test]
async fn a_reader_that_keeps_up_is_never_cut_however_late_its_task_runs() {
    const BURSTS: u64 = 10;
    const BURST: u64 = 100;
    let s = start(Config { max_queue: 4, history: 1000, ..config() }).await;
    let mut reader = Reader::open(s.addr, "/sse/starved").await;
    wait_until_within("the stream is open", Duration::from_secs(5), || std::future::ready(sse_open(&s) == 1)).await;
    let text = |i: u64| format!("m{i}");
    for b in 0..BURSTS {
        for i in b * BURST + 1..=(b + 1) * BURST {
            s.shared.broker.publish("starved", bytes::Bytes::from(text(i))).await.unwrap();
        }
        let (first, last) = (b * BURST + 1, (b + 1) * BURST);
        assert_eq!(reader.expect_ids(first, last, text).await, Ok(last), "every message, in order, not cut");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_memory_stays_bounded_while_a_reader_is_stuck() {
    const MESSAGES: u64 = 400;
    const SIZE: usize = 128 * 1024;
    let _heavy = HEAVY.lock().await;
    // The server in its own process, so that its memory is measured alone. A small
    // history, so that only the stuck reader's queue could hold old messages alive.
    let server = ServerProcess::spawn(&["--max-queue", "8", "--history", "16"]);
    let addr = server.addr;
    let mut stuck = Client::connect(addr).await;
    stuck.send("GET /sse/mem HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut reader = Reader::open(addr, "/sse/mem").await;
    let mut publisher = Client::connect(addr).await;
    let baseline = server.rss_kib();
    // 50 MiB through a reader that never reads: kept, it would all stay in memory. The
    // good reader reads each message before the next is published (paced by what it
    // confirms, so it never looks slow however the tasks are scheduled).
    for i in 1..=MESSAGES {
        assert_eq!(publisher.request(post("/publish/mem", &big(i, SIZE))).await.status, 200);
        assert_eq!(reader.expect_ids(i, i, |i| big(i, SIZE)).await, Ok(i));
    }
    let grown = server.rss_kib().saturating_sub(baseline);
    eprintln!("server RSS grew by {grown} KiB while {} MiB went past a stuck reader", (MESSAGES as usize * SIZE) >> 20);
    // History (16 × 128 KiB), the channel buffer (8) and the queues are a few MiB; kept
    // for the stuck reader, the 50 MiB would all still be here.
    assert!(grown < 24 * 1024, "server RSS grew by {grown} KiB: the stuck reader's queue was not bounded");
    let v = stats(addr).await;
    assert_eq!(v["transports"]["sse"]["open"], 1, "the stuck stream was cut, the good one is open");
    drop(stuck);
    assert!(server.terminate().success());
}

/// A TCP proxy that can cut every connection through it at once, and remembers the
/// request head each connection began with.
struct CuttingProxy {
    addr: SocketAddr,
    cut: tokio::sync::broadcast::Sender<()>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    /// Connections accepted, and connections whose sockets are dropped, so far.
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

/// Counts a proxied connection as ended when dropped (declared before its sockets, so
/// dropped after them).
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepted, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (cut2, heads2, accepted2, ended2) = (cut.clone(), heads.clone(), accepted.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Subscribed and counted before the next accept: a cut from now on
                // reaches this connection.
                let mut cut = cut2.subscribe();
                accepted2.fetch_add(1, Ordering::SeqCst);
                let ended = Ended(ended2.clone());
                let heads = heads2.clone();
                tokio::spawn(async move {
                    let _ended = ended;
                    let mut client = client;
                    let mut server = TcpStream::connect(upstream).await.unwrap();
                    let mut first = Vec::new();
                    while find(&first, b"\r\n\r\n").is_none() {
                        if client.read_buf(&mut first).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    heads.lock().unwrap().push(String::from_utf8_lossy(&first).into_owned());
                    server.write_all(&first).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Dropping both sockets mid-stream: the client sees its
                        // response end without the last chunk, as when a network fails.
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        CuttingProxy { addr, cut, heads, accepted, ended }
    }

    /// Cuts every connection through the proxy, and returns once their sockets are
    /// dropped: nothing the server writes after this reaches a client through them.
    async fn cut_all(&self) {
        let open = self.accepted.load(Ordering::SeqCst);
        let _ = self.cut.send(());
        let ended = &self.ended;
        wait_until_within("the proxy drops every connection it had", LIMIT, || {
            std::future::ready(ended.load(Ordering::SeqCst) >= open)
        })
        .await;
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// An EventSource we did not write (Node's `eventsource` npm package) reads our stream,
/// is cut off twice mid-stream, reconnects by itself with `Last-Event-ID`, and ends up
/// with every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_eventsource_reconnects_with_last_event_id_and_misses_nothing() {
    const MESSAGES: u64 = 30;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node");
    if !require_tool("node", "apt-get install -y nodejs npm (Node 20 or later)")
        || !require_node_package(&dir, "eventsource")
    {
        return;
    }
    // A short retry, so that each reconnection takes a fifth of a second.
    let s = start(Config { sse_retry: Duration::from_millis(200), ..config() }).await;
    let proxy = CuttingProxy::start(s.addr).await;
    // `?after=0` stays in the URL the client repeats on every reconnection; the
    // Last-Event-ID it adds must win, or it would be sent everything again.
    let url = format!("http://{}/sse/interop?after=0", proxy.addr);
    let mut node = std::process::Command::new("node")
        .arg(dir.join("sse-client.mjs"))
        .args([url.as_str(), &MESSAGES.to_string(), "20000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = node.stdout.take().unwrap();
    // Each line node prints, as it prints it, and all of them once it exits.
    let (printed, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut all = Vec::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = printed.send(line.clone());
            all.push(line);
        }
        all
    });
    wait_until_within("the client connects", Duration::from_secs(10), || std::future::ready(sse_open(&s) == 1)).await;
    for i in 1..=MESSAGES {
        publish(s.addr, "interop", &format!("n{i}")).await;
        if i == 10 || i == 20 {
            // Cut once the client has this message: it must resume right after it, and
            // what is published while it reconnects reaches it through Last-Event-ID.
            let want = format!("n{i}");
            let has_it = async {
                while let Some(line) = seen.recv().await {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if v["type"] == "message" && v["data"] == want.as_str() {
                        return;
                    }
                }
                panic!("node exited before it printed {want}");
            };
            tokio::time::timeout(LIMIT, has_it).await.unwrap_or_else(|_| panic!("node never printed {want}"));
            proxy.cut_all().await;
        }
    }
    let lines = tokio::time::timeout(Duration::from_secs(25), lines).await.expect("node finished").unwrap();
    let status = node.wait().unwrap();
    assert!(status.success(), "node exited with {status}; it printed: {lines:#?}");
    let messages: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["type"] == "message")
        .collect();
    let got: Vec<(String, String)> = messages
        .iter()
        .map(|v| (v["lastEventId"].as_str().unwrap().to_string(), v["data"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> = (1..=MESSAGES).map(|i| (i.to_string(), format!("n{i}"))).collect();
    assert_eq!(got, want, "every message exactly once, in order; node printed: {lines:#?}");
    let opens = lines.iter().filter(|l| l.contains("\"type\":\"open\"")).count();
    assert!(opens >= 3, "reconnected after each cut: {lines:#?}");
    // Every reconnection carried the id of the last event received before the cut.
    let heads = proxy.heads();
    assert!(heads.len() >= 3, "{heads:#?}");
    assert!(!heads[0].to_ascii_lowercase().contains("last-event-id"), "{}", heads[0]);
    let mut resumed_at = Vec::new();
    for h in &heads[1..] {
        let fields: HashMap<String, String> = h
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let id = fields.get("last-event-id").unwrap_or_else(|| panic!("a reconnection without Last-Event-ID: {h}"));
        resumed_at.push(id.parse::<u64>().expect("a numeric id"));
    }
    eprintln!("node's eventsource reconnected {} times, with Last-Event-ID {resumed_at:?}", heads.len() - 1);
    assert!(resumed_at.windows(2).all(|w| w[0] <= w[1]), "{resumed_at:?}");
    assert!(resumed_at.contains(&10) && resumed_at.contains(&20), "resumed after each cut's message: {resumed_at:?}");
    s.stop().await;
}
