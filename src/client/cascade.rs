//! `--protocol auto`: the negotiation cascade, best transport first, as SignalR and
//! SockJS do it (Socket.IO instead starts on long polling and upgrades; docs/cascade.md).
//!
//! Real networks have middleboxes that break real-time transports in specific ways:
//!
//! | what is in the way | what breaks | how the client notices |
//! | --- | --- | --- |
//! | a proxy that refuses `Upgrade` | WebSocket | the `101` never comes (a `403`, a `400`) |
//! | a proxy that upgrades but drops frames | WebSocket | no pong to our ping in time |
//! | a buffering proxy | SSE | no first byte (not even `retry:`) in time |
//! | a load balancer that cuts idle connections | long polling | a held request is cut before its answer |
//!
//! So the client asks the server what it offers (`GET /negotiate/{channel}`), then tries
//! each transport in that order, proving each carries data before relying on it, and
//! falls to the next when one fails its proof. Short polling is the floor: ordinary
//! requests answered at once work through anything that passes HTTP at all.
//!
//! The cursor (the last id delivered) is shared by every attempt, so however many
//! switches happen, no message is lost or repeated. Every run starts from the top again:
//! the network may have changed since.

use std::io;
use std::time::Duration;

use super::http::HttpClient;
use super::poll::{self, PollKind};
use super::sink::Sink;
use super::{ClientConfig, Ended, sse, ws};

/// Transports in the order the client prefers when the server does not say.
pub const DEFAULT_ORDER: [&str; 4] = ["websocket", "sse", "long-poll", "short-poll"];

/// Asks the server what it offers. A server without the endpoint gets the default order.
pub async fn negotiate(cfg: &ClientConfig) -> (Vec<String>, Option<u64>) {
    let mut http = HttpClient::new(&cfg.url.authority, cfg.taps());
    let target = cfg.url.target(&format!("/negotiate/{}", cfg.channel));
    let answer = match http.request("GET", &target, b"", Duration::from_secs(10)).await {
        Ok(r) if r.status() == 200 => serde_json::from_slice::<serde_json::Value>(&r.body).ok(),
        _ => None,
    };
    let order = answer
        .as_ref()
        .and_then(|a| a["transports"].as_array())
        .map(|t| t.iter().filter_map(|x| x.as_str().map(String::from)).collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_ORDER.iter().map(|s| s.to_string()).collect());
    (order, answer.and_then(|a| a["cursor"].as_u64()))
}

/// Runs the cascade until `--count` messages arrived.
pub async fn run(cfg: &ClientConfig, sink: &mut Sink, sends: &mut Vec<String>, probe: Duration) -> io::Result<()> {
    sink.announce_settling();
    let (order, cursor) = negotiate(cfg).await;
    if sink.cursor.is_none() && cfg.after.is_none() {
        sink.cursor = cursor; // start at the live head as of the handshake
    }
    for (i, transport) in order.iter().enumerate() {
        let last = i + 1 == order.len();
        let ended = match transport.as_str() {
            "websocket" => ws::run(cfg, sink, sends, Some(probe)).await?,
            "sse" => sse::run(cfg, sink, sends, Some(probe)).await?,
            "long-poll" => poll::run(cfg, PollKind::Long, sink, sends, !last).await?,
            "short-poll" => poll::run(cfg, PollKind::Short, sink, sends, false).await?,
            other => Ended::Fallback(format!("unknown transport {other:?}")),
        };
        match ended {
            Ended::Done => return Ok(()),
            Ended::Fallback(why) => sink.fell_back(transport, &why),
        }
    }
    Err(io::Error::other("no transport works"))
}
