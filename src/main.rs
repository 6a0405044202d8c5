//! The `wire-academy` command line: clap -> `Config` -> run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wire_academy::config::{self, Config, PcapTarget, TraceTarget};
use wire_academy::net::Server;
use wire_academy::trace::{PcapWriter, Recorders, Tracer};

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
    /// Read captured bytes (hex as pasted, or raw) as the trace reads them.
    Decode(DecodeArgs),
    /// Run the published test vectors (RFC 6455, RFC 9112, WHATWG, RFC 3629) against the codecs.
    Vectors(VectorsArgs),
}

#[derive(Args)]
struct DecodeArgs {
    /// What the bytes are: http (messages from a connection's start), chunked (a chunked
    /// body), sse (an event-stream body), ws (WebSocket frames).
    #[arg(value_parser = ["http", "chunked", "sse", "ws"])]
    kind: String,
    /// Which side wrote the bytes (for ws it decides whether frames must be masked);
    /// guessed when not given.
    #[arg(long, env = "WIRE_ACADEMY_FROM", value_parser = ["client", "server"])]
    from: Option<String>,
    /// The input is the bytes themselves, not hex.
    #[arg(long, env = "WIRE_ACADEMY_RAW", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    raw: bool,
    /// Hex to read (as words on the command line), a FILE, or `-` for standard input
    /// (also when nothing is given). Plain hex with or without spaces, xxd or trace rows
    /// with offsets, Wireshark's hex stream or hex dump, or \x escapes.
    input: Vec<String>,
}

#[derive(Args)]
struct VectorsArgs {
    /// Only the vectors whose id, source or title contains TEXT (any case).
    #[arg(long, env = "WIRE_ACADEMY_FILTER", value_name = "TEXT")]
    filter: Option<String>,
    /// Print the result as one JSON document.
    #[arg(long, env = "WIRE_ACADEMY_JSON", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    json: bool,
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
    /// Connections the kernel may hold completed and not yet accepted (listen(2)'s
    /// backlog, as for serve).
    #[arg(long, env = "WIRE_ACADEMY_LISTEN_BACKLOG", value_parser = at_least_one, default_value_t = config::DEFAULT_LISTEN_BACKLOG)]
    listen_backlog: usize,
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
    /// On websocket: do not offer permessage-deflate (RFC 7692).
    #[arg(long, env = "WIRE_ACADEMY_NO_DEFLATE", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    no_deflate: bool,
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
    /// Also write every connection's bytes as a pcap capture (synthetic TCP/IP packets)
    /// that Wireshark and tshark open.
    #[arg(long, env = "WIRE_ACADEMY_TRACE_PCAP", value_name = "FILE")]
    trace_pcap: Option<PathBuf>,
    /// Largest the capture may grow, in bytes; past it the capture stops, on a whole packet.
    #[arg(long, env = "WIRE_ACADEMY_TRACE_PCAP_LIMIT", value_name = "BYTES", default_value_t = config::DEFAULT_TRACE_PCAP_LIMIT)]
    trace_pcap_limit: u64,
}

impl TraceArgs {
    fn target(&self) -> TraceTarget {
        match (&self.trace_out, self.trace_bytes) {
            (Some(path), _) => TraceTarget::File(path.clone()),
            (None, true) => TraceTarget::Stderr,
            (None, false) => TraceTarget::Off,
        }
    }

    fn pcap(&self) -> Option<PcapTarget> {
        self.trace_pcap.as_ref().map(|path| PcapTarget { path: path.clone(), limit: self.trace_pcap_limit })
    }

    /// Starts the trace's and the capture's writers, as asked.
    fn recorders(&self) -> Result<Recorders, String> {
        let trace = Tracer::start(&self.target()).map_err(|e| format!("cannot open the trace output: {e}"))?;
        let pcap = PcapWriter::start(self.pcap().as_ref()).map_err(|e| {
            let path = self.trace_pcap.as_deref().unwrap_or(std::path::Path::new("")).display().to_string();
            format!("cannot create the capture {path}: {e}")
        })?;
        Ok(Recorders { trace, pcap })
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
    /// At --max-connections, make room for a new connection by closing those that have
    /// waited longest for a request head (408 if one had begun), as nginx does with idle
    /// keep-alive connections, instead of answering 503.
    #[arg(long, env = "WIRE_ACADEMY_RECLAIM_WAITING")]
    reclaim_waiting: bool,
    /// Messages a subscriber may fall behind before it is cut off (at least 1).
    #[arg(long, env = "WIRE_ACADEMY_MAX_QUEUE", value_parser = at_least_one, default_value_t = config::DEFAULT_MAX_QUEUE)]
    max_queue: usize,
    /// Kernel send buffer of each connection, in bytes (SO_SNDBUF; 0: the kernel's autotuning).
    #[arg(long, env = "WIRE_ACADEMY_SEND_BUFFER", default_value_t = config::DEFAULT_SEND_BUFFER)]
    send_buffer: usize,
    /// Unsent bytes a connection's socket may hold before it refuses more
    /// (TCP_NOTSENT_LOWAT; bytes in flight do not count; 0: no limit but the send buffer).
    #[arg(long, env = "WIRE_ACADEMY_NOTSENT_LOWAT", default_value_t = config::DEFAULT_NOTSENT_LOWAT)]
    notsent_lowat: usize,
    /// Connections the kernel may hold completed and not yet accepted (listen(2)'s
    /// backlog, capped by net.core.somaxconn; past it, a client's SYN is dropped and it
    /// waits a second to retry).
    #[arg(long, env = "WIRE_ACADEMY_LISTEN_BACKLOG", value_parser = at_least_one, default_value_t = config::DEFAULT_LISTEN_BACKLOG)]
    listen_backlog: usize,
    /// Bytes all connections may hold at once for request bodies and WebSocket messages in
    /// progress; past it, one over its fair share gets 503, or close 1013 (0: no limit).
    #[arg(long, env = "WIRE_ACADEMY_MAX_BODY_MEMORY", default_value_t = config::DEFAULT_MAX_BODY_MEMORY)]
    max_body_memory: usize,
    /// Least seconds between two writes of channel messages to one WebSocket or SSE
    /// subscriber, or two long-poll answers with messages on one connection; those that
    /// come sooner leave together (0: each at once; at most 1).
    #[arg(long, env = "WIRE_ACADEMY_COALESCE", value_parser = coalesce, default_value_t = Secs(config::DEFAULT_COALESCE))]
    coalesce: Secs,
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
    /// Decline permessage-deflate (RFC 7692) when a WebSocket client offers it.
    #[arg(long, env = "WIRE_ACADEMY_NO_DEFLATE", value_parser = clap::builder::FalseyValueParser::new(), default_value_t = false)]
    no_deflate: bool,
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

fn coalesce(s: &str) -> Result<Secs, String> {
    let v = secs(s)?;
    if v.0 > config::MAX_COALESCE {
        return Err(format!("{s:?} is longer than {} s", config::MAX_COALESCE.as_secs_f64()));
    }
    Ok(v)
}

/// A count that 0 would make meaningless: `--max-queue 0` would let no subscriber hold
/// even the message it is being sent (the channel's ring has at least one slot).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("at least 1 is needed".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?}: {e}")),
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
        Command::Decode(args) => decode(args),
        Command::Vectors(args) => vectors(args),
    }
}

fn decode(args: DecodeArgs) -> ExitCode {
    use std::io::Read;
    use wire_academy::proto::Role;
    use wire_academy::study::decode::{self, Kind};
    use wire_academy::trace::hexread;
    let fail = |why: String| {
        eprintln!("wire-academy decode: {why}");
        ExitCode::from(2)
    };
    let kind = match args.kind.as_str() {
        "http" => Kind::Http,
        "chunked" => Kind::Chunked,
        "sse" => Kind::Sse,
        _ => Kind::Ws,
    };
    let from = args.from.as_deref().map(|f| if f == "client" { Role::Client } else { Role::Server });
    let input: Vec<u8> = match args.input.as_slice() {
        [] => read_all(&mut std::io::stdin()),
        [one] if one == "-" => read_all(&mut std::io::stdin()),
        [one] if std::path::Path::new(one).is_file() => match std::fs::read(one) {
            Ok(b) => Ok(b),
            Err(e) => return fail(format!("cannot read {one}: {e}")),
        },
        words => Ok(words.join(" ").into_bytes()),
    }
    .unwrap_or_default();
    fn read_all(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
        let mut b = Vec::new();
        r.read_to_end(&mut b).map(|_| b)
    }
    let (bytes, offset) = if args.raw {
        (input, 0)
    } else {
        match hexread::read(&String::from_utf8_lossy(&input)) {
            Ok(hex) => (hex.bytes, hex.offset),
            Err(e) => return fail(format!("not hex: {e}")),
        }
    };
    let (text, whole) = decode::decode(kind, from, &bytes, offset);
    say(text.trim_end());
    if whole { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn vectors(args: VectorsArgs) -> ExitCode {
    use wire_academy::study::vectors;
    let filter = args.filter.map(|f| f.to_lowercase());
    let chosen: Vec<_> = vectors::run()
        .into_iter()
        .filter(|v| {
            filter
                .as_ref()
                .is_none_or(|f| [v.id.as_str(), v.source, v.title].iter().any(|field| field.to_lowercase().contains(f)))
        })
        .collect();
    let failed = chosen.iter().filter(|v| !v.passed()).count();
    if args.json {
        let list: Vec<_> = chosen
            .iter()
            .map(|v| {
                serde_json::json!({
                    "id": v.id, "source": v.source, "title": v.title, "fed": v.fed,
                    "expected": v.expected, "got": v.got, "passed": v.passed(),
                })
            })
            .collect();
        say(&serde_json::json!({ "vectors": list, "passed": chosen.len() - failed, "failed": failed }).to_string());
    } else {
        let mut out = String::new();
        for v in &chosen {
            let verdict = if v.passed() { "PASS" } else { "FAIL" };
            out.push_str(&format!("{verdict}  {}  ({}: {})\n", v.id, v.source, v.title));
            out.push_str(&format!(
                "      fed       {}\n      expected  {}\n      got       {}\n",
                v.fed, v.expected, v.got
            ));
        }
        let plural = if chosen.len() == 1 { "" } else { "s" };
        out.push_str(&format!("{} vector{plural}: {} passed, {failed} failed", chosen.len(), chosen.len() - failed));
        say(&out);
    }
    if chosen.is_empty() {
        eprintln!("wire-academy vectors: no vector matches the filter");
        return ExitCode::from(2);
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
    let recorders = match args.trace.recorders() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wire-academy proxy: {e}");
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
    let listener = match wire_academy::net::server::listen(cfg.listen, args.listen_backlog) {
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
    let result = proxy::run_recorded(listener, cfg, recorders.clone(), Default::default(), shutdown_signal()).await;
    recorders.flush();
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
    let recorders = match args.trace.recorders() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let cfg = ClientConfig {
        url,
        channel: args.channel,
        after: args.after,
        send: args.send,
        interval: args.interval.0,
        hold: args.hold.0,
        probe: args.probe_timeout.0,
        deflate: !args.no_deflate,
        trace: recorders.trace.clone(),
        pcap: recorders.pcap.clone(),
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
    // The connections are closed by now: their last trace blocks and packets are out
    // before we exit.
    recorders.flush();
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
        reclaim_waiting: args.reclaim_waiting,
        max_queue: args.max_queue,
        send_buffer: args.send_buffer,
        notsent_lowat: args.notsent_lowat,
        listen_backlog: args.listen_backlog,
        coalesce: args.coalesce.0,
        max_body_memory: args.max_body_memory,
        max_channels: args.max_channels,
        broker: args.broker,
        ping_interval: args.ping_interval.0,
        ping_timeout: args.ping_timeout.0,
        allowed_origins: args.allowed_origins,
        subprotocols: args.subprotocols,
        deflate: !args.no_deflate,
        shutdown_timeout: args.shutdown_timeout.0,
        trace: args.trace.target(),
        pcap: args.trace.pcap(),
        ..Config::default()
    };
    // The drivers' timers on a thread of their own, so that the workers park with
    // nothing to wait for but their sockets (`net::timers`).
    if let Err(e) = wire_academy::net::timers::start() {
        eprintln!("wire-academy: cannot start the timer thread: {e}");
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wire-academy: cannot start on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    say(&format!("wire-academy listening on http://{}", server.local_addr()));
    // On a worker thread, not this one: each connection's task is then spawned onto
    // the accepting worker's own queue, without waking another thread through the
    // runtime's shared injection queue once per connection.
    if tokio::spawn(server.run(shutdown_signal())).await.is_err() {
        eprintln!("wire-academy: the server stopped abnormally");
        return ExitCode::FAILURE;
    }
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
