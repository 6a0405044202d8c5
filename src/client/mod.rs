//! The clients: one per transport, each a thin loop over the same pure codecs the server
//! uses, seen from the other end of the wire.
//!
//! - [`http`]: a hand-written HTTP/1.1 client on `TcpStream` (keep-alive reuse).
//! - [`poll`]: the short-poll and long-poll clients.
//! - [`sse`]: the EventSource-like client (the project's WHATWG parser, `retry:`,
//!   reconnection with `Last-Event-ID`).
//! - [`ws`]: the WebSocket client (masked frames, ping/pong, the close handshake).
//! - [`sink`]: what a client does with what it receives: print, count, stop.
//! - [`cascade`]: `--protocol auto`, trying each transport and falling back.
//!
//! Every client keeps a cursor (the last id it delivered) and resumes from it after a
//! reconnect, so a dropped connection loses nothing still in the server's history.

pub mod backoff;
pub mod cascade;
pub mod http;
pub mod meter;
pub mod poll;
pub mod sink;
pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use crate::trace::{PcapWriter, Tracer};

/// Where the server is: `http://host:port[/prefix]`, as given to `--url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// `host:port`, to connect to.
    pub authority: String,
    /// A path prefix (without a trailing slash), usually empty.
    pub prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: the server's URL starts with http:// (ws:// is derived from it)"))?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let prefix = path.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        Ok(BaseUrl { authority, prefix })
    }

    /// The target for an endpoint path such as `/poll/lobby?after=3`.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

/// What every client needs to know.
#[derive(Clone)]
pub struct ClientConfig {
    pub url: BaseUrl,
    pub channel: String,
    /// Resume after this id; `None` starts at the live head.
    pub after: Option<u64>,
    /// Texts to publish once the client is receiving.
    pub send: Vec<String>,
    /// Seconds between short polls.
    pub interval: Duration,
    /// How long each long-poll asks to be held (`timeout=`).
    pub hold: Duration,
    /// With `auto`: how long a transport has to prove it works.
    pub probe: Duration,
    /// On websocket: offer permessage-deflate (`--no-deflate` clears it).
    pub deflate: bool,
    pub trace: Option<Arc<Tracer>>,
    /// `--trace-pcap`: the capture every connection of this client is recorded into.
    pub pcap: Option<Arc<PcapWriter>>,
    /// Counts what the client's connections carry (`compare`); `None` otherwise.
    pub meter: Option<Arc<meter::Meter>>,
}

impl ClientConfig {
    /// What wraps each connection this client opens.
    pub fn taps(&self) -> http::Taps {
        http::Taps { trace: self.trace.clone(), pcap: self.pcap.clone(), meter: self.meter.clone() }
    }
}

/// How a client loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// `--count` messages arrived.
    Done,
    /// The transport does not work through whatever is between us and the server; the
    /// reason says what was seen. Only when probing (the cascade), never otherwise: a
    /// plain client reconnects instead.
    Fallback(String),
}

/// The transports a client can speak (`--protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    ShortPoll,
    LongPoll,
    Sse,
    WebSocket,
    Auto,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s {
            "short-poll" => Ok(Protocol::ShortPoll),
            "long-poll" => Ok(Protocol::LongPoll),
            "sse" => Ok(Protocol::Sse),
            "websocket" => Ok(Protocol::WebSocket),
            "auto" => Ok(Protocol::Auto),
            other => Err(format!("unknown protocol {other:?}: short-poll, long-poll, sse, websocket or auto")),
        }
    }
}

/// Runs a client until `--count` messages arrived (or forever, reconnecting as needed).
pub async fn run(protocol: Protocol, cfg: &ClientConfig, sink: &mut sink::Sink) -> std::io::Result<()> {
    let mut sends = cfg.send.clone();
    match protocol {
        Protocol::ShortPoll => poll::run(cfg, poll::PollKind::Short, sink, &mut sends, false).await?,
        Protocol::LongPoll => poll::run(cfg, poll::PollKind::Long, sink, &mut sends, false).await?,
        Protocol::Sse => sse::run(cfg, sink, &mut sends, None).await?,
        Protocol::WebSocket => ws::run(cfg, sink, &mut sends, None).await?,
        Protocol::Auto => return cascade::run(cfg, sink, &mut sends, cfg.probe).await,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.authority.as_str(), u.target("/poll/a")), ("127.0.0.1:8080", "/poll/a".to_string()));
        let u = BaseUrl::parse("http://localhost/app/").unwrap();
        assert_eq!((u.authority.as_str(), u.target("/poll/a")), ("localhost:80", "/app/poll/a".to_string()));
        assert!(BaseUrl::parse("ws://x").is_err());
        assert!(BaseUrl::parse("http://").is_err());
    }
}
