//! `wire-academy compare`: the four transports running at the same time, measured.
//!
//! One client of each transport (or `--clients N` of each) follows one channel while a
//! publisher sends a numbered sequence at `--rate` messages per second. Every message
//! carries its sequence number and the moment it was published, so each client knows
//! for every arrival what it is, whether it came before, and how long it took. The
//! clients are the project's own (`client/`), each with a [`Meter`] on its sockets, so
//! the bytes and requests are counted where they cross, not estimated.
//!
//! Without `--url` the server is the project's own, started in this process on a
//! runtime of its own, so that its threads' CPU time can be read apart from the
//! clients'. With `--latency MS` (or a proxy mode) the clients go through the project's
//! proxy; the publisher and the `/stats` requests go straight to the server, so the
//! delay measured is the server-to-client path alone.
//!
//! The figures are made by the pure [`report`] module and drawn by [`svg`].

pub mod report;
pub mod svg;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::app::stats::Transport;
use crate::client::http::{HttpClient, Taps};
use crate::client::meter::Meter;
use crate::client::sink::{Delivery, Sink};
use crate::client::{self, BaseUrl, ClientConfig, Protocol, poll};
use crate::config::Config;
use crate::net::Running;
use crate::proxy::{self, ProxyConfig};
use report::{Arrival, ClientLog, Report, Row, ServerSide, TRANSPORTS};

/// Name of the in-process server's threads (at most 15 bytes: Linux's `comm`).
const SERVER_THREAD: &str = "compare-server";
/// How long the clients get to connect before publishing starts (they resume from the
/// same cursor, so a late one loses nothing; this only keeps connecting out of the
/// first messages' latency).
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// After the last publish: how long stragglers get, beyond one short-poll interval and
/// two round trips through the proxy.
const DRAIN: Duration = Duration::from_secs(5);
/// With `auto` (through a hostile proxy): how long each transport has to prove itself.
const PROBE: Duration = Duration::from_secs(2);
/// Prefix of every message `compare` publishes: `compare SEQ MICROS`.
const TEXT_PREFIX: &str = "compare ";

#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// A server of the API; `None` starts the project's own in this process.
    pub url: Option<String>,
    /// `None`: a fresh channel name per run, so that runs never mix.
    pub channel: Option<String>,
    pub rate: f64,
    pub duration: Duration,
    pub interval: Duration,
    pub clients: usize,
    /// Through the proxy, this much added each way.
    pub latency: Option<Duration>,
    pub block_websocket: bool,
    pub buffer_responses: bool,
}

/// How progress is shown while the run goes on (on stderr: stdout carries the result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing (tests).
    Off,
    /// One plain line per transport each second.
    Lines,
    /// Four lines redrawn in place, coloured unless NO_COLOR is set.
    Live { colour: bool },
}

impl Progress {
    /// What suits stderr as it is.
    pub fn for_terminal() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Live { colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
        } else {
            Progress::Lines
        }
    }
}

/// The project's server, on its own runtime and threads.
struct OwnServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnServer {
    fn start() -> Result<OwnServer, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || {
                let rt =
                    match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name(SERVER_THREAD).build() {
                        Ok(rt) => rt,
                        Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                    };
                rt.block_on(async move {
                    let config = Config { addr: "127.0.0.1:0".parse().expect("an address"), ..Config::default() };
                    match Running::start(config).await {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok(running.addr));
                            let _ = stopped.await;
                            running.stop().await;
                        }
                        Err(e) => drop(ready_tx.send(Err(e.to_string()))),
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let addr = ready_rx.recv().map_err(|e| e.to_string())??;
        Ok(OwnServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// CPU time of the server's threads so far, in nanoseconds as the scheduler counts
    /// it (`/proc/self/task/*/schedstat`, first field; `stat`'s utime and stime come
    /// in 10 ms ticks, too coarse for a quiet run). `None` where there is no such file.
    fn cpu(&self) -> Option<Duration> {
        let mut total = 0u64;
        let mut found = false;
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != SERVER_THREAD {
                continue;
            }
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            total += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
            found = true;
        }
        found.then(|| Duration::from_nanos(total))
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Microseconds since `epoch`: the clock every message's send time is written in.
fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// `compare SEQ MICROS` back into its two numbers.
fn parse_text(text: &str) -> Option<(u64, u64)> {
    let (seq, sent) = text.strip_prefix(TEXT_PREFIX)?.split_once(' ')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

/// One transport's clients while they run.
struct Group {
    transport: &'static str,
    meter: Arc<Meter>,
    logs: Vec<Arc<Mutex<ClientLog>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Group {
    /// How many messages each client has received so far.
    fn counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.logs.iter().map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).arrivals.len())
    }

    fn received(&self) -> usize {
        self.counts().sum()
    }

    /// Nothing delivered and a failure seen: not worth waiting for.
    fn failing(&self) -> bool {
        self.received() == 0 && self.meter.last_error.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn least_received(&self) -> usize {
        self.counts().min().unwrap_or(0)
    }
}

/// `GET /stats` as JSON, or `None` if the server has no such endpoint.
async fn server_stats(http: &mut HttpClient, url: &BaseUrl) -> Option<serde_json::Value> {
    let r = http.request("GET", &url.target("/stats"), b"", Duration::from_secs(5)).await.ok()?;
    (r.status() == 200).then(|| serde_json::from_slice(&r.body).ok()).flatten()
}

/// The server's counters for a transport (`auto` has none of its own: it is one of the
/// others), whose `/stats` name is [`Transport::name`].
fn stats_transport(transport: &str) -> Option<Transport> {
    match Protocol::parse(transport).ok()? {
        Protocol::ShortPoll => Some(Transport::ShortPoll),
        Protocol::LongPoll => Some(Transport::LongPoll),
        Protocol::Sse => Some(Transport::Sse),
        Protocol::WebSocket => Some(Transport::WebSocket),
        Protocol::Auto => None,
    }
}

fn server_side(before: &serde_json::Value, after: &serde_json::Value, transport: &str) -> Option<ServerSide> {
    let key = stats_transport(transport)?.name();
    let (b, a) = (&before["transports"][key], &after["transports"][key]);
    let delta = |field: &str| Some(a[field].as_u64()?.saturating_sub(b[field].as_u64()?));
    Some(ServerSide {
        requests: delta("requests")?,
        bytes_read: delta("bytes_read")?,
        bytes_written: delta("bytes_written")?,
        delivered: delta("delivered")?,
        open: a["open"].as_i64()?,
    })
}

/// Runs the comparison and returns its report.
pub async fn run(cfg: CompareConfig, progress: Progress) -> Result<Report, String> {
    if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
        return Err(format!("--rate {}: messages per second must be more than 0", cfg.rate));
    }
    if cfg.clients == 0 {
        return Err("--clients 0: at least one client per transport".into());
    }
    let own = match &cfg.url {
        Some(_) => None,
        None => Some(OwnServer::start().map_err(|e| format!("cannot start the in-process server: {e}"))?),
    };
    let server_url = match (&cfg.url, &own) {
        (Some(u), _) => BaseUrl::parse(u)?,
        (None, Some(s)) => BaseUrl::parse(&format!("http://{}", s.addr))?,
        (None, None) => unreachable!("a server is started when no --url is given"),
    };
    let shown_url = cfg.url.clone().unwrap_or_else(|| format!("http://{} (in-process)", server_url.authority));
    let channel = cfg.channel.clone().unwrap_or_else(|| format!("compare-{}", crate::random::hex(4)));

    // The proxy, when the clients are to go through one.
    let mut proxy_modes = Vec::new();
    if cfg.block_websocket {
        proxy_modes.push("block-websocket".to_string());
    }
    if cfg.buffer_responses {
        proxy_modes.push("buffer-responses".to_string());
    }
    let through_proxy = cfg.latency.is_some() || !proxy_modes.is_empty();
    let (client_url, stop_proxy) = if through_proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("proxy: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let pcfg = ProxyConfig {
            listen: addr,
            upstream: server_url.authority.clone(),
            block_websocket: cfg.block_websocket,
            buffer_responses: cfg.buffer_responses,
            idle_timeout: None,
            latency: cfg.latency.unwrap_or_default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(proxy::run_on(listener, pcfg, None, Default::default(), async move {
            let _ = stopped.await;
        }));
        (BaseUrl { authority: addr.to_string(), prefix: server_url.prefix.clone() }, Some(stop))
    } else {
        (server_url.clone(), None)
    };

    // Where every client starts: the live head, learned once, so that all of them
    // expect exactly the messages published from now on.
    let control_cfg = ClientConfig {
        url: server_url.clone(),
        channel: channel.clone(),
        after: None,
        send: Vec::new(),
        interval: cfg.interval,
        hold: crate::config::DEFAULT_LONG_POLL_TIMEOUT,
        probe: PROBE,
        trace: None,
        pcap: None,
        meter: None,
    };
    let mut control = HttpClient::new(&server_url.authority, Taps::default());
    let (head, start_error) = match poll::live_head(&mut control, &control_cfg).await {
        Ok(head) => (head, None),
        Err(e) => (0, Some(format!("{shown_url}: {e}"))),
    };

    // The server's counters before any client connects: their difference at the end is
    // what the clients cost it (the `/stats` requests themselves count as `other`).
    let stats_before = server_stats(&mut control, &server_url).await;
    let epoch = Instant::now();
    let mut groups = Vec::new();
    // Through a hostile proxy, a fifth row: the negotiation cascade, to see where it
    // settles and what that costs.
    let auto: &[&'static str] = if proxy_modes.is_empty() { &[] } else { &["auto"] };
    for &transport in TRANSPORTS.iter().chain(auto) {
        let protocol = Protocol::parse(transport)?;
        let meter = Arc::new(Meter::default());
        let mut group = Group { transport, meter: meter.clone(), logs: Vec::new(), tasks: Vec::new() };
        for _ in 0..cfg.clients {
            let log = Arc::new(Mutex::new(ClientLog::default()));
            let ccfg = ClientConfig {
                url: client_url.clone(),
                after: Some(head),
                meter: Some(meter.clone()),
                ..control_cfg.clone()
            };
            let seen = log.clone();
            let observer = Box::new(move |carrier: &str, d: &Delivery| {
                let now = micros(epoch);
                let mut log = seen.lock().unwrap_or_else(|e| e.into_inner());
                if !log.carried_by.iter().any(|c| c == carrier) {
                    log.carried_by.push(carrier.to_string());
                }
                match d {
                    Delivery::Message { data, .. } => {
                        if let Some((seq, sent)) = parse_text(data) {
                            log.arrivals.push(Arrival {
                                seq,
                                latency_us: now.saturating_sub(sent),
                                payload: data.len() as u64,
                            });
                        }
                    }
                    Delivery::Truncated => log.truncated += 1,
                }
            });
            group.tasks.push(tokio::spawn(async move {
                let mut sink = Sink::observed(observer);
                let _ = client::run(protocol, &ccfg, &mut sink).await;
            }));
            group.logs.push(log);
        }
        groups.push(group);
    }

    // Wait (on the server's own counters, where it has them) until the held
    // transports are connected.
    let connect_by = Instant::now() + CONNECT_WAIT;
    let want = cfg.clients as i64;
    while start_error.is_none() && Instant::now() < connect_by {
        let Some(s) = server_stats(&mut control, &server_url).await else { break };
        let open = |k: &str| s["transports"][k]["open"].as_i64().unwrap_or(0);
        if open("long_poll") >= want && open("sse") >= want && open("websocket") >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_before = own.as_ref().and_then(|s| s.cpu());

    // Publish the sequence, showing progress as it goes.
    let total = (cfg.rate * cfg.duration.as_secs_f64()).round().max(1.0) as u64;
    let mut publisher = HttpClient::new(&server_url.authority, Taps::default());
    let mut published = 0u64;
    let mut publish_errors = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = Instant::now();
    let mut drawn = false;
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let text = format!("{TEXT_PREFIX}{published} {}", micros(epoch));
        match poll::publish(&mut publisher, &control_cfg, &text).await {
            Ok(_) => published += 1,
            Err(_) => publish_errors += 1,
        }
        if shown.elapsed() >= Duration::from_secs(1) {
            show(progress, &groups, published, started.elapsed(), drawn);
            drawn = true;
            shown = Instant::now();
        }
    }
    // Let the last messages arrive: at most an interval, two proxy round trips, and slack
    // (and, for `auto`, a probe of each transport it may still be trying).
    let probing = if auto.is_empty() { Duration::ZERO } else { 4 * PROBE };
    let drain_by = Instant::now() + cfg.interval + 4 * cfg.latency.unwrap_or_default() + DRAIN + probing;
    while Instant::now() < drain_by && groups.iter().any(|g| !g.failing() && g.least_received() < published as usize) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = own.as_ref().and_then(|s| s.cpu());
    let readings: Vec<_> = groups.iter().map(|g| g.meter.read()).collect();
    let stats_after = server_stats(&mut control, &server_url).await;
    show(progress, &groups, published, started.elapsed(), drawn);
    for g in &groups {
        for t in &g.tasks {
            t.abort();
        }
    }

    let mut rows = Vec::new();
    for (g, wire) in groups.iter().zip(readings) {
        let logs: Vec<ClientLog> = g.logs.iter().map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect();
        let mut row = Row::new(g.transport, published, &logs, wire);
        if let (Some(b), Some(a)) = (&stats_before, &stats_after) {
            row.server = server_side(b, a, g.transport);
        }
        if row.delivery.received == 0 {
            let last = g.meter.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            row.error = last
                .or_else(|| start_error.clone())
                .or_else(|| Some(format!("nothing arrived in {:.1} s", started.elapsed().as_secs_f64())));
        }
        rows.push(row);
    }
    drop(stop_proxy);
    drop(own);
    Ok(Report {
        url: shown_url,
        channel,
        rate: cfg.rate,
        duration_s: cfg.duration.as_secs_f64(),
        interval_s: cfg.interval.as_secs_f64(),
        latency_ms: cfg.latency.map(|d| d.as_secs_f64() * 1000.0),
        proxy_modes,
        published,
        publish_errors,
        rows,
        server_cpu_ms: match (cpu_before, cpu_after) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64() * 1000.0),
            _ => None,
        },
    })
}

/// One progress line per transport, on stderr.
fn show(progress: Progress, groups: &[Group], published: u64, elapsed: Duration, redraw: bool) {
    let lines: Vec<String> = groups
        .iter()
        .map(|g| {
            let r = g.meter.read();
            format!(
                "{:<10} {:>6} received of {:>5} published  {:>5} requests  {:>8} bytes",
                g.transport,
                g.received(),
                published * g.logs.len() as u64,
                r.requests,
                r.bytes_read + r.bytes_written
            )
        })
        .collect();
    let mut err = std::io::stderr().lock();
    match progress {
        Progress::Off => {}
        Progress::Lines => {
            for l in &lines {
                let _ = writeln!(err, "compare {:>5.1}s {l}", elapsed.as_secs_f64());
            }
        }
        Progress::Live { colour } => {
            if redraw {
                let _ = write!(err, "\x1b[{}A", lines.len());
            }
            const COLOURS: [&str; 4] = ["\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[34m"];
            for (i, l) in lines.iter().enumerate() {
                let (on, off) = if colour { (COLOURS[i % 4], "\x1b[0m") } else { ("", "") };
                let _ = writeln!(err, "\x1b[2K{on}{l}{off}");
            }
        }
    }
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_texts_round_trip() {
        assert_eq!(parse_text("compare 12 345678"), Some((12, 345678)));
        assert_eq!(parse_text("hello"), None);
        assert_eq!(parse_text("compare x 1"), None);
    }
}
