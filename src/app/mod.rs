//! The application: routes, the channel hub and the counters. Transport-independent:
//! the drivers in `net/` turn wire events into calls here.

pub mod broker;
pub mod dashboard;
pub mod feed;
pub mod hub;
pub mod redis;
pub mod routes;
pub mod stats;

/// Parses a query string into `after` and `timeout`, the two parameters the API uses.
/// Unknown parameters are ignored, as browsers and proxies add their own (cache busters).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The cascade's handshake (`GET /negotiate/{channel}`), after SignalR's `/negotiate`:
/// a session id, the transports in order of preference, and the timings a client needs
/// to tell a working transport from a blocked or buffered one. `cursor` is the channel's
/// live head, so a client that starts here misses nothing published after this answer.
pub async fn negotiate(shared: &crate::net::Shared, channel: &str) -> Result<String, broker::BrokerError> {
    let c = &shared.config;
    let cursor = shared.broker.since(channel, None).await?.next;
    Ok(serde_json::json!({
        "session": crate::random::hex(16),
        "channel": channel,
        "transports": ["websocket", "sse", "long-poll", "short-poll"],
        "heartbeat": c.heartbeat.as_secs_f64(),
        "ping_interval": c.ping_interval.as_secs_f64(),
        "long_poll_timeout": crate::config::DEFAULT_LONG_POLL_TIMEOUT.min(c.max_hold).as_secs_f64(),
        "short_poll_interval": crate::config::DEFAULT_SHORT_POLL_INTERVAL.as_secs_f64(),
        "cursor": cursor,
    })
    .to_string())
}
