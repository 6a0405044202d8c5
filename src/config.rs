//! The program's limits and defaults in one place, named.
//!
//! The command line (`main.rs`) fills a [`Config`]; everything else reads it; clap's
//! defaults are these constants, so no number is written twice. A codec's own bounds
//! (how many field lines, how long a chunk-size line) live with the codec in `proto/`,
//! which imports nothing from here. A limit that
//! an RFC sets cites the RFC; the rest are operational choices, each explained where it is
//! declared, so a reader can tell a protocol rule from a tuning knob.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server listens unless told otherwise (API.md, "Binary and commands").
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The same server as a client's base URL (`client --url`); a test keeps the two equal.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Where the proxy listens unless told otherwise (`proxy --listen`).
pub const DEFAULT_PROXY_ADDR: &str = "127.0.0.1:8081";

/// The embedded broker: one process, channels in memory, nothing to install.
pub const DEFAULT_BROKER: &str = "memory";

/// Messages each channel keeps for clients that resume with a cursor (API.md `--history`).
pub const DEFAULT_HISTORY: usize = 1000;

/// Largest message a client may publish, in bytes (API.md `--max-message`, 1 MiB). Also
/// the largest request body: a publish body *is* a message. The WebSocket session's own
/// default, so that the codec and the program cannot disagree.
pub const DEFAULT_MAX_MESSAGE: usize = crate::proto::ws::session::DEFAULT_MAX_MESSAGE;

/// Largest header section (the field lines after the request line), in bytes. RFC 9112
/// §2.3 leaves the limit to the server; 8 KiB is what most servers use. Past it: `431`.
pub const DEFAULT_MAX_HEADER: usize = 8 * 1024;

/// Largest request target, in bytes. RFC 9112 §3 recommends supporting at least 8000
/// octets. Past it: `414`.
pub const DEFAULT_MAX_TARGET: usize = 8 * 1024;

/// A client has this long to finish a request's header section before it gets `408`
/// (API.md `--header-timeout`). Slowloris-style clients hold sockets by sending slowly.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle keep-alive connection may wait for its next request before the
/// server closes it quietly (RFC 9112 §9.8 lets a server close idle connections).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a long-poll is held when the client does not say (API.md: default 30 s).
pub const DEFAULT_LONG_POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a long-poll may ask to be held (API.md `--max-hold`). Proxies commonly
/// cut idle requests at 60-120 s, so holding longer gains nothing.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(120);

/// Seconds between SSE comment heartbeats (API.md `--heartbeat`, default 15).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Seconds between a short-poll client's questions (`client --interval`, `compare
/// --interval`), and what `/negotiate` tells a cascading client.
pub const DEFAULT_SHORT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// With `client --protocol auto`: how long each transport has to prove it carries data
/// before the next is tried (`--probe-timeout`).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `compare`: messages published per second, and for how long (`--rate`, `--duration`).
pub const DEFAULT_COMPARE_RATE: f64 = 10.0;
pub const DEFAULT_COMPARE_DURATION: Duration = Duration::from_secs(10);

/// Reconnection delay an SSE stream asks the browser to use, sent as `retry:` when the
/// stream opens and again when a graceful shutdown ends it.
pub const DEFAULT_SSE_RETRY: Duration = Duration::from_millis(3000);

/// Most buffers handed to one vectored write (`writev`) of a stream's queued bytes. Linux
/// accepts 1024 (IOV_MAX); 64 already lets a burst of events leave in one system call.
pub const WRITE_VECTORS: usize = 64;

/// Bytes an open event stream reads at a time, into the stack. The client has nothing
/// to say once the stream has begun, so what it sends is read only to notice it closing,
/// and discarded; the stream itself holds no read buffer.
pub const SSE_READ_SINK: usize = 512;

/// Connections served at once (API.md `--max-connections`); past it, `503` and close.
/// The process's open-file limit is raised to fit at start-up (see `net::rlimit`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// At `--max-connections`, how many of the connections that have waited longest for a
/// request head are let go of at a time to make room for new ones (`net::reclaim`); the
/// new connections that follow take the rest of the room. nginx drains 32 at a time.
pub const RECLAIM_BATCH: usize = 8;

/// How long a new connection at `--max-connections` waits for the room made for it
/// before it is answered `503` (a connection let go of frees its slot within a write
/// and a close; the wait is only long when nothing could be let go of).
pub const RECLAIM_WAIT: Duration = Duration::from_millis(500);

/// How many new connections may wait for room at once at `--max-connections`; past it,
/// `503` at once. Their descriptors come out of `net::rlimit::RESERVED_FDS`.
pub const MAX_WAITING_FOR_ROOM: usize = 64;

/// Channels that may exist at once (`--max-channels`). Each holds its history and a
/// broadcast ring of `--max-queue` slots, so without a bound, clients inventing channel
/// names could grow memory without end. Idle channels make room for new ones.
pub const DEFAULT_MAX_CHANNELS: usize = 10_000;

/// The most message bytes one poll answer carries (at least one message always); the
/// answer's `next` tells the client where to continue.
pub const MAX_POLL_ANSWER: usize = 4 << 20;

/// Bytes all connections together may hold while request bodies and WebSocket messages
/// arrive (`--max-body-memory`, `net::budget`): past it, one larger than its fair share of
/// it (this divided by those in progress) is refused with `503` (close `1013` on
/// WebSocket). Bounds what a thousand never-ending bodies cost at about twice this,
/// instead of `--max-connections` × `--max-message` (docs/abuse.md). 64 such full-size
/// messages at once at the defaults. 0: no limit.
pub const DEFAULT_MAX_BODY_MEMORY: usize = 64 << 20;

/// Messages one subscriber may fall behind before it is cut off (API.md `--max-queue`).
/// A client that stops reading must not make the server buffer without bound.
pub const DEFAULT_MAX_QUEUE: usize = 1024;

/// Kernel send buffer of each accepted connection, in bytes (`--send-buffer`; set as
/// `SO_SNDBUF`, which Linux doubles for its own bookkeeping). Left alone, Linux grows a
/// socket's send buffer up to `net.ipv4.tcp_wmem`'s maximum (4 MiB by default), and it
/// does so for a client that never reads just as for one that does: a thousand
/// WebSocket clients that stopped reading on a busy channel then made the server copy
/// about 1 GiB into kernel buffers nobody would read, at the cost of the healthy
/// clients' latency (docs/abuse.md). Capped, such a client's socket refuses bytes after
/// about this much, its backlog counts against `--max-queue` within seconds, and it is
/// cut. 256 KiB still keeps a loopback or LAN stream at full speed. 0: the kernel's
/// autotuning.
pub const DEFAULT_SEND_BUFFER: usize = 256 * 1024;

/// Bytes written and not yet sent that a connection's socket holds before it refuses
/// more (`--notsent-lowat`; `TCP_NOTSENT_LOWAT`, tcp(7)). Bytes in flight, sent and not
/// yet acknowledged, do not count, so a healthy stream keeps its pace; what the limit
/// stops is a queue of unsent bytes in the kernel for a client whose receive window is
/// closed (one that stopped reading). Such a client then stops costing writes after its
/// own receive buffer and this much, not after the whole send buffer: on a busy channel
/// a thousand of them cost under a second of the fan-out's work each instead of three
/// (docs/abuse.md). 16 KiB is the value Cloudflare and Apple suggest for HTTP/2 servers.
/// 0: no limit but the send buffer.
pub const DEFAULT_NOTSENT_LOWAT: usize = 16 * 1024;

/// Connections the kernel may hold completed and not yet accepted (`--listen-backlog`;
/// the `backlog` of listen(2), which Linux caps at `net.core.somaxconn`, 4096 by
/// default since 5.4). Past it, Linux drops the next client's SYN, and that client
/// waits for its retransmission: one second, then three. A real-time server meets its
/// clients in bursts (every page of a deploy reconnecting at once, a reconnect storm
/// after a restart), and the 128 that Rust's `TcpListener::bind` asks for overflowed
/// under 200 concurrent connection attempts on a busy two-core machine: each overflow
/// held one client back a whole second (docs/performance.md, session 18). 4096 is what
/// Go asks for (it reads somaxconn); nginx asks for 511.
pub const DEFAULT_LISTEN_BACKLOG: usize = 4096;

/// How often the server pings an idle WebSocket peer (`--ping-interval`).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

/// How long a WebSocket peer has to answer a ping before it is culled (`--ping-timeout`).
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// After sending a Close frame, how long the server waits for the peer's Close before it
/// closes TCP anyway. RFC 6455 §7.1.1 lets the server close TCP once the handshake is
/// done; a peer that never answers (a zombie, a client that stopped reading) must not
/// hold the connection, so the wait is bounded. Also bounds how long a graceful shutdown
/// waits for WebSocket clients to answer its `1001`.
pub const WS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// While a subscriber's socket refuses bytes, how often its driver counts what its
/// channel sent meanwhile and judges its backlog against `--max-queue`. All that time it
/// takes nothing from the channel (the messages wait in the channel's shared ring), so a
/// client that stopped reading costs no work per message: a thousand of them on a busy
/// channel cost a thousand wake-ups a second, not a thousand per message
/// (docs/abuse.md). It is also how late, at most, such a client is cut once its backlog
/// passes `--max-queue`.
pub const BACKLOG_CHECK: Duration = Duration::from_secs(1);

/// A driver's timer due at least this far ahead (a ping, a heartbeat, a long poll's hold,
/// the deadline for a request head) is kept by the timer thread, so that a worker whose
/// connections are idle in between parks with no timeout; a nearer one (a coalescing
/// flush, a backlog check, a closing handshake's timeout, the linger at a close) by the
/// workers' own timer wheel, where firing wakes no worker from another thread
/// (`net::timers`). Past the longest of the near ones ([`MAX_COALESCE`],
/// [`BACKLOG_CHECK`], [`WS_CLOSE_TIMEOUT`]).
pub const FAR_TIMER: Duration = Duration::from_secs(2);

/// Write coalescing (`--coalesce`): the least time between two writes of channel
/// messages to one subscriber (WebSocket and SSE), or between two long-poll answers with
/// messages on one connection; those that come sooner are held and leave together
/// (`proto::coalesce`). Off by default: every message is written as it
/// comes. On, it trades a delay of at most this much for fewer `write` calls when a
/// channel sends more often than this (docs/performance.md).
pub const DEFAULT_COALESCE: Duration = Duration::ZERO;

/// The longest `--coalesce` accepted: past it, held messages (and the control frames held
/// with them: a Pong, the server's own Ping) would wait longer than a real-time stream
/// should.
pub const MAX_COALESCE: Duration = Duration::from_secs(1);

/// A coalescing hold ends as soon as it holds this many messages: they fill a write
/// already, and a channel sending faster than this per `--coalesce` interval must not be
/// able to overtake a subscriber that reads (its ring is `--max-queue` long).
pub const COALESCE_MOST: usize = 64;

/// How long a graceful shutdown waits for connections to finish (`--shutdown-timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the read buffers of the client and the proxy, reused for every read on their
/// connection; large enough for a typical response head in one read. (The server's
/// connections read into a scratch buffer of their thread between messages instead,
/// `net::SCRATCH_READ`, so an idle one holds no buffer.)
pub const READ_BUFFER: usize = 8 * 1024;

/// After answering with an error and `Connection: close`, the server keeps reading (and
/// discarding) for this long before it closes, so the client's unsent bytes do not turn
/// the close into a TCP reset that destroys the answer before it is read (RFC 9112 §9.6).
pub const LINGER_TIME: Duration = Duration::from_millis(500);

/// The most bytes discarded during that lingering close.
pub const LINGER_BYTES: usize = 64 * 1024;

/// How long a write to a live trace watcher (`GET /trace`) may take before that watcher
/// is cut: a browser tab that stopped reading must not hold its task for ever.
pub const TRACE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes a `--trace-pcap` file may hold (`--trace-pcap-limit`, 100 MiB): a
/// capture left running must not fill the disk. Past it the capture stops, on a whole
/// packet, and says so on stderr.
pub const DEFAULT_TRACE_PCAP_LIMIT: u64 = 100 << 20;

/// Everything the server needs to know, filled from the command line or by tests.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub history: usize,
    pub max_message: usize,
    pub max_header: usize,
    pub max_target: usize,
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_hold: Duration,
    pub heartbeat: Duration,
    pub sse_retry: Duration,
    pub max_connections: usize,
    /// At `max_connections`, make room for a new connection by letting go of those that
    /// have waited longest for a request head (`--reclaim-waiting`; `net::reclaim`).
    pub reclaim_waiting: bool,
    pub max_queue: usize,
    pub send_buffer: usize,
    pub notsent_lowat: usize,
    pub listen_backlog: usize,
    pub max_body_memory: usize,
    pub coalesce: Duration,
    pub max_channels: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub allowed_origins: Vec<String>,
    /// Where channels live: `memory` (API.md `--broker`).
    pub broker: String,
    /// WebSocket subprotocols the server agrees to (`--subprotocol`), most preferred
    /// first. Empty: the `101` never carries `Sec-WebSocket-Protocol` (RFC 6455 §4.2.2).
    pub subprotocols: Vec<String>,
    /// Accept permessage-deflate (RFC 7692) when a client offers it; `--no-deflate`
    /// turns it off.
    pub deflate: bool,
    pub trace: TraceTarget,
    /// `--trace-pcap`: where the capture goes, if anywhere.
    pub pcap: Option<PcapTarget>,
}

/// Where `--trace-bytes` output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceTarget {
    Off,
    Stderr,
    File(PathBuf),
}

/// Where `--trace-pcap` writes, and how much at most (`--trace-pcap-limit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapTarget {
    pub path: PathBuf,
    pub limit: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: DEFAULT_ADDR.parse().expect("DEFAULT_ADDR is a valid address"),
            history: DEFAULT_HISTORY,
            max_message: DEFAULT_MAX_MESSAGE,
            max_header: DEFAULT_MAX_HEADER,
            max_target: DEFAULT_MAX_TARGET,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_hold: DEFAULT_MAX_HOLD,
            heartbeat: DEFAULT_HEARTBEAT,
            sse_retry: DEFAULT_SSE_RETRY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reclaim_waiting: false,
            max_queue: DEFAULT_MAX_QUEUE,
            send_buffer: DEFAULT_SEND_BUFFER,
            notsent_lowat: DEFAULT_NOTSENT_LOWAT,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            max_body_memory: DEFAULT_MAX_BODY_MEMORY,
            coalesce: DEFAULT_COALESCE,
            max_channels: DEFAULT_MAX_CHANNELS,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            allowed_origins: Vec::new(),
            broker: DEFAULT_BROKER.to_string(),
            subprotocols: Vec::new(),
            deflate: true,
            trace: TraceTarget::Off,
            pcap: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_default_url_is_the_servers_default_address() {
        assert_eq!(DEFAULT_URL, format!("http://{DEFAULT_ADDR}"));
    }
}
