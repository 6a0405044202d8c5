//! The `wire-academy` command line: clap -> `Config` -> run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wire_academy::config::{self, Config, TraceTarget};
use wire_academy::net::Server;

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
    #[arg(long, env = "WIRE_ACADEMY_HEADER_TIMEOUT", value_parser = secs, default_value = "10")]
    header_timeout: Duration,
    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, env = "WIRE_ACADEMY_KEEP_ALIVE_TIMEOUT", value_parser = secs, default_value = "60")]
    keep_alive_timeout: Duration,
    /// Longest a long-poll may be held, in seconds.
    #[arg(long, env = "WIRE_ACADEMY_MAX_HOLD", value_parser = secs, default_value = "120")]
    max_hold: Duration,
    /// Connections served at once (past it: 503).
    #[arg(long, env = "WIRE_ACADEMY_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Messages a subscriber may fall behind before it is cut off.
    #[arg(long, env = "WIRE_ACADEMY_MAX_QUEUE", default_value_t = config::DEFAULT_MAX_QUEUE)]
    max_queue: usize,
    /// Seconds between the pings the server sends each WebSocket peer (0: never ping).
    #[arg(long, env = "WIRE_ACADEMY_PING_INTERVAL", value_parser = secs, default_value = "20")]
    ping_interval: Duration,
    /// Seconds a WebSocket peer has, after a ping, to send anything at all before it is
    /// closed as a zombie.
    #[arg(long, env = "WIRE_ACADEMY_PING_TIMEOUT", value_parser = secs, default_value = "20")]
    ping_timeout: Duration,
    /// An Origin allowed to open WebSockets (repeatable; the variable takes a comma-separated
    /// list). None given: any origin. Requests without Origin (non-browsers) are always allowed.
    #[arg(long = "allowed-origin", env = "WIRE_ACADEMY_ALLOWED_ORIGIN", value_name = "ORIGIN", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// A WebSocket subprotocol the server speaks (repeatable, most preferred first; the
    /// variable takes a comma-separated list). None given: no subprotocol is ever selected.
    #[arg(long = "subprotocol", env = "WIRE_ACADEMY_SUBPROTOCOL", value_name = "NAME", value_delimiter = ',')]
    subprotocols: Vec<String>,
    /// Seconds a graceful shutdown waits for connections to finish.
    #[arg(long, env = "WIRE_ACADEMY_SHUTDOWN_TIMEOUT", value_parser = secs, default_value = "5")]
    shutdown_timeout: Duration,
}

/// Seconds, whole or fractional: `10`, `0.5`.
fn secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v)),
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
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = Config {
        addr: args.addr,
        history: args.history,
        max_message: args.max_message,
        max_header: args.max_header,
        max_target: args.max_target,
        header_timeout: args.header_timeout,
        keep_alive_timeout: args.keep_alive_timeout,
        max_hold: args.max_hold,
        max_connections: args.max_connections,
        max_queue: args.max_queue,
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        allowed_origins: args.allowed_origins,
        subprotocols: args.subprotocols,
        shutdown_timeout: args.shutdown_timeout,
        trace: args.trace.target(),
        ..Config::default()
    };
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wire-academy: cannot listen on {}: {e}", args.addr);
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
