//! The `wire-academy` command line: clap -> `Config` -> run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wire_academy::config::{self, Config, TraceTarget};
use wire_academy::net::Server;
use wire_academy::trace::Tracer;

#[derive(Parser)]
#[command(
    name = "wire-academy",
    version,
    about = "The real-time web, byte by byte: short polling, long polling, SSE and WebSocket from bare TCP sockets upward."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: every transport on one port.
    Serve(ServeArgs),
    /// A client of one transport: prints one line per message received.
    Client(ClientArgs),
    /// A hostile middlebox between a client and the server.
    Proxy(ProxyArgs),
    /// All four transports at once on one channel, measured side by side.
    Compare(CompareArgs),
}

#[derive(Args)]
struct CompareArgs {
    /// A server of the API to measure; without it, the project's own runs in this process.
    #[arg(long, env = "WIRE_ACADEMY_URL")]
    url: Option<String>,
    /// The channel (default: a fresh `compare-…` name per run, so runs never mix).
    #[arg(long, env = "WIRE_ACADEMY_CHANNEL")]
    channel: Option<String>,
    /// Messages published per second.
    #[arg(long, env = "WIRE_ACADEMY_RATE", default_value_t = config::DEFAULT_COMPARE_RATE)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, env = "WIRE_ACADEMY_DURATION", value_parser = secs, default_value_t = Secs(config::DEFAULT_COMPARE_DURATION))]
    duration: Secs,
    /// Seconds between short polls.
    #[arg(long, env = "WIRE_ACADEMY_INTERVAL", value_parser = secs, default_value_t = Secs(config::DEFAULT_SHORT_POLL_INTERVAL))]
    interval: Secs,
    /// Clients of each transport.
    #[arg(long, env = "WIRE_ACADEMY_CLIENTS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// Put the project's proxy between clients and server, delaying every byte this many
    /// milliseconds each way.
    #[arg(long, env = "WIRE_ACADEMY_LATENCY", value_name = "MS")]
    latency: Option<u64>,
    /// Through the proxy, refusing WebSocket upgrades.
    #[arg(long, env = "WIRE_ACADEMY_BLOCK_WEBSOCKET", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    block_websocket: bool,
    /// Through the proxy, holding each response until it ends (streams never arrive).
    #[arg(long, env = "WIRE_ACADEMY_BUFFER_RESPONSES", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    buffer_responses: bool,
    /// Print the result as one JSON document.
    #[arg(long, env = "WIRE_ACADEMY_JSON", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    json: bool,
    /// Also draw the result as an SVG chart into FILE.
    #[arg(long, env = "WIRE_ACADEMY_SVG", value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[derive(Args)]
struct ProxyArgs {
    /// Address the proxy listens on.
    #[arg(long, env = "WIRE_ACADEMY_LISTEN", default_value = config::DEFAULT_PROXY_ADDR)]
    listen: SocketAddr,
    /// The server behind it (host:port).
    #[arg(long, env = "WIRE_ACADEMY_UPSTREAM", default_value = config::DEFAULT_ADDR)]
    upstream: String,
    /// Refuse WebSocket upgrades (403), as proxies that only speak plain HTTP do.
    #[arg(long, env = "WIRE_ACADEMY_BLOCK_WEBSOCKET", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    block_websocket: bool,
    /// Hold each response until it is complete (streams never arrive), as buffering proxies do.
    #[arg(long, env = "WIRE_ACADEMY_BUFFER_RESPONSES", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    buffer_responses: bool,
    /// Cut connections on which nothing moved for this many seconds.
    #[arg(long, env = "WIRE_ACADEMY_IDLE_TIMEOUT", value_parser = secs)]
    idle_timeout: Option<Secs>,
    /// Delay every byte by this many milliseconds in each direction (a long link).
    #[arg(long, env = "WIRE_ACADEMY_LATENCY", value_name = "MS", default_value_t = 0)]
    latency: u64,
    #[command(flatten)]
    trace: TraceArgs,
}

#[derive(Args)]
struct ClientArgs {
    /// The transport: short-poll, long-poll, sse, websocket, or auto (the negotiation cascade).
    #[arg(long, env = "WIRE_ACADEMY_PROTOCOL", default_value = "long-poll")]
    protocol: String,
    /// The server's base URL (ws:// is derived from it).
    #[arg(long, env = "WIRE_ACADEMY_URL", default_value = config::DEFAULT_URL)]
    url: String,
    /// The channel to follow.
    #[arg(long, env = "WIRE_ACADEMY_CHANNEL", default_value = "lobby")]
    channel: String,
    /// One JSON object per message: {"transport":…,"id":…,"data":…}.
    #[arg(long, env = "WIRE_ACADEMY_JSON", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    json: bool,
    /// Exit 0 after this many messages.
    #[arg(long, env = "WIRE_ACADEMY_COUNT")]
    count: Option<u64>,
    /// Exit 1 if --count messages have not arrived within this many seconds.
    #[arg(long, env = "WIRE_ACADEMY_TIMEOUT", value_parser = secs)]
    timeout: Option<Secs>,
    /// Publish this text once receiving (repeatable).
    #[arg(long, env = "WIRE_ACADEMY_SEND")]
    send: Vec<String>,
    /// Resume after this message id.
    #[arg(long, env = "WIRE_ACADEMY_AFTER")]
    after: Option<u64>,
    /// Seconds between short polls.
    #[arg(long, env = "WIRE_ACADEMY_INTERVAL", value_parser = secs, default_value_t = Secs(config::DEFAULT_SHORT_POLL_INTERVAL))]
    interval: Secs,
    /// Seconds each long-poll asks to be held.
    #[arg(long, env = "WIRE_ACADEMY_HOLD", value_parser = secs, default_value_t = Secs(config::DEFAULT_LONG_POLL_TIMEOUT))]
    hold: Secs,
    /// With auto: seconds a transport has to prove it carries data before the next is tried.
    #[arg(long, env = "WIRE_ACADEMY_PROBE_TIMEOUT", value_parser = secs, default_value_t = Secs(config::DEFAULT_PROBE_TIMEOUT))]
    probe_timeout: Secs,
    #[command(flatten)]
    trace: TraceArgs,
}

/// Flags shared by every command that opens connections.
#[derive(Args)]
struct TraceArgs {
    /// Print every byte read and written on every connection as an annotated hexdump.
    #[arg(long, env = "WIRE_ACADEMY_TRACE_BYTES", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    trace_bytes: bool,
    /// Send the trace to this file instead of stderr (implies --trace-bytes).
    #[arg(long, env = "WIRE_ACADEMY_TRACE_OUT", value_name = "FILE")]
    trace_out: Option<PathBuf>,
}

impl TraceArgs {
    fn target(&self) -> TraceTarget {
        match (&self.trace_out, self.trace_bytes) {
            (Some(path), _) => TraceTarget::File(path.clone()),
            (None, true) => TraceTarget::Stderr,
            (None, false) => TraceTarget::Off,
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WIRE_ACADEMY_ADDR", default_value = config::DEFAULT_ADDR)]
    addr: SocketAddr,
    #[command(flatten)]
    trace: TraceArgs,
    /// Messages each channel keeps for clients resuming with a cursor.
    #[arg(long, env = "WIRE_ACADEMY_HISTORY", default_value_t = config::DEFAULT_HISTORY)]
    history: usize,
    /// Largest message (and request body), in bytes.
    #[arg(long, env = "WIRE_ACADEMY_MAX_MESSAGE", default_value_t = config::DEFAULT_MAX_MESSAGE)]
    max_message: usize,
    /// Largest header section, in bytes (past it: 431).
    #[arg(long, env = "WIRE_ACADEMY_MAX_HEADER", default_value_t = config::DEFAULT_MAX_HEADER)]
    max_header: usize,
    /// Longest request target, in bytes (past it: 414).
    #[arg(long, env = "WIRE_ACADEMY_MAX_TARGET", default_value_t = config::DEFAULT_MAX_TARGET)]
    max_target: usize,
    /// Seconds a client has to finish a request's header section (past it: 408).
    #[arg(long, env = "WIRE_ACADEMY_HEADER_TIMEOUT", value_parser = secs, default_value_t = Secs(config::DEFAULT_HEADER_TIMEOUT))]
    header_timeout: Secs,
    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, env = "WIRE_ACADEMY_KEEP_ALIVE_TIMEOUT", value_parser = secs, default_value_t = Secs(config::DEFAULT_KEEP_ALIVE_TIMEOUT))]
    keep_alive_timeout: Secs,
    /// Longest a long-poll may be held, in seconds.
    #[arg(long, env = "WIRE_ACADEMY_MAX_HOLD", value_parser = secs, default_value_t = Secs(config::DEFAULT_MAX_HOLD))]
    max_hold: Secs,
    /// Seconds of silence after which an SSE stream sends a `: ` comment (0: never).
    #[arg(long, env = "WIRE_ACADEMY_HEARTBEAT", value_parser = secs, default_value_t = Secs(config::DEFAULT_HEARTBEAT))]
    heartbeat: Secs,
    /// Connections served at once (past it: 503).
    #[arg(long, env = "WIRE_ACADEMY_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Messages a subscriber may fall behind before it is cut off.
    #[arg(long, env = "WIRE_ACADEMY_MAX_QUEUE", default_value_t = config::DEFAULT_MAX_QUEUE)]
    max_queue: usize,
    /// Where channels live: `memory` (one process, the default; nothing to install), or a
    /// Redis every instance shares: redis://[:PASSWORD@]HOST[:PORT][/DB] or
    /// unix://[:PASSWORD@]/PATH[?db=DB]. Redis unreachable at start: exit 1.
    #[arg(long, env = "WIRE_ACADEMY_BROKER", default_value = config::DEFAULT_BROKER)]
    broker: String,
    /// Channels that may exist at once; idle ones make room for new ones (past it: 503).
    #[arg(long, env = "WIRE_ACADEMY_MAX_CHANNELS", default_value_t = config::DEFAULT_MAX_CHANNELS)]
    max_channels: usize,
    /// Seconds between the pings the server sends each WebSocket peer (0: never ping).
    #[arg(long, env = "WIRE_ACADEMY_PING_INTERVAL", value_parser = secs, default_value_t = Secs(config::DEFAULT_PING_INTERVAL))]
    ping_interval: Secs,
    /// Seconds a WebSocket peer has, after a ping, to send anything at all before it is
    /// closed as a zombie.
    #[arg(long, env = "WIRE_ACADEMY_PING_TIMEOUT", value_parser = secs, default_value_t = Secs(config::DEFAULT_PING_TIMEOUT))]
    ping_timeout: Secs,
    /// An Origin allowed to open WebSockets (repeatable; the variable takes a comma-separated
    /// list). None given: any origin. Requests without Origin (non-browsers) are always allowed.
    #[arg(long = "allowed-origin", env = "WIRE_ACADEMY_ALLOWED_ORIGIN", value_name = "ORIGIN", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// A WebSocket subprotocol the server speaks (repeatable, most preferred first; the
    /// variable takes a comma-separated list). None given: no subprotocol is ever selected.
    #[arg(long = "subprotocol", env = "WIRE_ACADEMY_SUBPROTOCOL", value_name = "NAME", value_delimiter = ',')]
    subprotocols: Vec<String>,
    /// Seconds a graceful shutdown waits for connections to finish.
    #[arg(long, env = "WIRE_ACADEMY_SHUTDOWN_TIMEOUT", value_parser = secs, default_value_t = Secs(config::DEFAULT_SHUTDOWN_TIMEOUT))]
    shutdown_timeout: Secs,
}

/// A number of seconds on the command line, whole or fractional: `10`, `0.5`. Shown in
/// `--help` as the same number, so clap's defaults can be the constants in `config`.
#[derive(Clone, Copy, Debug)]
struct Secs(Duration);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

fn secs(s: &str) -> Result<Secs, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Duration::try_from_secs_f64(v)
            .map(Secs)
            .map_err(|_| format!("{s:?} is more seconds than this program can count")),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wire-academy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Client(args) => runtime.block_on(client(args)),
        Command::Proxy(args) => runtime.block_on(proxy(args)),
        Command::Compare(args) => runtime.block_on(compare(args)),
    }
}

async fn compare(args: CompareArgs) -> ExitCode {
    use wire_academy::compare::{self, CompareConfig, Progress, svg};
    let cfg = CompareConfig {
        url: args.url,
        channel: args.channel,
        rate: args.rate,
        duration: args.duration.0,
        interval: args.interval.0,
        clients: args.clients as usize,
        latency: args.latency.map(Duration::from_millis),
        block_websocket: args.block_websocket,
        buffer_responses: args.buffer_responses,
    };
    let report = match compare::run(cfg, Progress::for_terminal()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wire-academy compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.svg
        && let Err(e) = std::fs::write(path, svg::render(&report))
    {
        eprintln!("wire-academy compare: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if args.json {
        say(&report.json().to_string());
    } else {
        say(report.table().trim_end());
    }
    // A run in which anything was lost, repeated, reordered or failed says so in its
    // exit status too, for scripts.
    let healthy = report.rows.iter().all(|r| {
        r.error.is_none() && r.delivery.lost == 0 && r.delivery.duplicated == 0 && r.delivery.out_of_order == 0
    });
    if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn proxy(args: ProxyArgs) -> ExitCode {
    use wire_academy::proxy::{self, ProxyConfig};
    let tracer = match Tracer::start(&args.trace.target()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("wire-academy proxy: cannot open the trace output: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = ProxyConfig {
        listen: args.listen,
        upstream: args.upstream,
        block_websocket: args.block_websocket,
        buffer_responses: args.buffer_responses,
        idle_timeout: args.idle_timeout.map(|s| s.0),
        latency: Duration::from_millis(args.latency),
    };
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wire-academy proxy: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    say(&format!(
        "wire-academy proxy listening on http://{} -> {}{}{}{}{}",
        listener.local_addr().map_or(cfg.listen, |a| a),
        cfg.upstream,
        if cfg.block_websocket { ", blocking WebSocket" } else { "" },
        if cfg.buffer_responses { ", buffering responses" } else { "" },
        cfg.idle_timeout.map_or(String::new(), |t| format!(", cutting connections idle for {}s", t.as_secs_f64())),
        if cfg.latency.is_zero() { String::new() } else { format!(", {} ms added each way", cfg.latency.as_millis()) },
    ));
    let result = proxy::run_on(listener, cfg, tracer.clone(), Default::default(), shutdown_signal()).await;
    if let Some(t) = &tracer {
        t.flush();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wire-academy proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn client(args: ClientArgs) -> ExitCode {
    use wire_academy::client::{self, BaseUrl, ClientConfig, Protocol, sink::Sink};
    let fail = |why: String| {
        eprintln!("wire-academy client: {why}");
        ExitCode::FAILURE
    };
    let protocol = match Protocol::parse(&args.protocol) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let url = match BaseUrl::parse(&args.url) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let trace = match Tracer::start(&args.trace.target()) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot open the trace output: {e}")),
    };
    let cfg = ClientConfig {
        url,
        channel: args.channel,
        after: args.after,
        send: args.send,
        interval: args.interval.0,
        hold: args.hold.0,
        probe: args.probe_timeout.0,
        trace,
        meter: None,
    };
    let mut sink = Sink::stdout(args.json, args.count);
    let run = client::run(protocol, &cfg, &mut sink);
    let result = match args.timeout.map(|s| s.0) {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("timed out after {:?} with {} message(s)", limit, sink.received())),
        },
        None => run.await.map_err(|e| e.to_string()),
    };
    // The connections are closed by now: their last trace blocks are out before we exit.
    if let Some(t) = &cfg.trace {
        t.flush();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = Config {
        addr: args.addr,
        history: args.history,
        max_message: args.max_message,
        max_header: args.max_header,
        max_target: args.max_target,
        header_timeout: args.header_timeout.0,
        keep_alive_timeout: args.keep_alive_timeout.0,
        max_hold: args.max_hold.0,
        heartbeat: args.heartbeat.0,
        max_connections: args.max_connections,
        max_queue: args.max_queue,
        max_channels: args.max_channels,
        broker: args.broker,
        ping_interval: args.ping_interval.0,
        ping_timeout: args.ping_timeout.0,
        allowed_origins: args.allowed_origins,
        subprotocols: args.subprotocols,
        shutdown_timeout: args.shutdown_timeout.0,
        trace: args.trace.target(),
        ..Config::default()
    };
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wire-academy: cannot start on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    say(&format!("wire-academy listening on http://{}", server.local_addr()));
    server.run(shutdown_signal()).await;
    say("wire-academy stopped");
    ExitCode::SUCCESS
}

/// A status line on stdout. A closed stdout (the reader went away) is no reason for a
/// server to panic, so write errors are ignored.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
