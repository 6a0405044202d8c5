//! Recording connections: `--trace-bytes` (every byte read and written, as an annotated
//! hexdump, API.md § Trace) and `--trace-pcap` (the same bytes as a capture file).
//!
//! - [`hexdump`]: the `xxd`-style rows (pure).
//! - [`annotate`]: reads each direction of a connection with the protocol codecs and
//!   says what each run of bytes means (pure).
//! - [`observed`]: the stream wrapper between the socket and the driver that shows each
//!   read and write to an observer: the trace's and the capture's.
//! - [`tap`]: the trace's observer, and the writer thread that prints.
//! - [`pcap`]: a connection's bytes as synthetic TCP/IP packets of a pcap file (pure).
//! - [`pcap_tap`]: the capture's observer, and the thread that writes the file.
//!
//! The data path reads left to right: socket -> taps -> driver buffer -> codec -> app.
//! The codecs never know a tap is there.

pub mod annotate;
pub mod hexdump;
pub mod hexread;
pub mod observed;
pub mod pcap;
pub mod pcap_tap;
pub mod tap;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use pcap_tap::{PcapTap, PcapWriter};
pub use tap::{Role, Tap, Tracer, closing_because, connection_scope, unwatched};

/// Any byte stream a connection's driver can use: a socket, or a recorded socket.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What records a command's connections: the byte trace, the capture, both, or neither.
#[derive(Clone, Default)]
pub struct Recorders {
    pub trace: Option<Arc<Tracer>>,
    pub pcap: Option<Arc<PcapWriter>>,
}

impl Recorders {
    /// Whether anything records: when not, a caller hands its driver the bare socket.
    pub fn any(&self) -> bool {
        self.trace.is_some() || self.pcap.is_some()
    }

    /// `tcp` wrapped in whichever recorders are on; `label` names the peer in the trace
    /// (the capture takes the socket's own addresses).
    pub fn wrap(&self, tcp: TcpStream, label: String, role: Role) -> Box<dyn Stream> {
        let addrs = tcp.local_addr().and_then(|l| Ok((l, tcp.peer_addr()?)));
        let captured: Box<dyn Stream> = match (&self.pcap, addrs) {
            (Some(w), Ok((local, peer))) => Box::new(PcapTap::new(tcp, local, peer, role, w.clone())),
            _ => Box::new(tcp),
        };
        match &self.trace {
            Some(t) => Box::new(Tap::new(captured, label, role, t.clone())),
            None => captured,
        }
    }

    /// Waits until everything recorded so far is written out: before the process exits.
    pub fn flush(&self) {
        if let Some(t) = &self.trace {
            t.flush();
        }
        if let Some(p) = &self.pcap {
            p.flush();
        }
    }
}
