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
    use crate::proto::http::cut;
    let mut rest = query?;
    loop {
        // `a=1&b&c=3`: a pair without `=` is a name with an empty value.
        let (pair, next) = cut(rest, b'&').map_or((rest, None), |(pair, next)| (pair, Some(next)));
        let (key, value) = cut(pair, b'=').unwrap_or((pair, ""));
        if key == name {
            return Some(value);
        }
        rest = next?;
    }
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

#[cfg(test)]
mod tests {
    use super::query_param;

    /// The scan gives what splitting on `&` and then on the first `=` gives.
    #[test]
    fn query_parameters() {
        let by_split = |q: &'static str, name: &str| {
            q.split('&').map(|kv| kv.split_once('=').unwrap_or((kv, ""))).find(|(k, _)| *k == name).map(|(_, v)| v)
        };
        let queries = [
            "",
            "after=3",
            "after=3&timeout=5",
            "timeout=5&after=3",
            "after",
            "after=",
            "a=1&after=1=2",
            "&&after=2&",
            "after=1&after=2",
            "xafter=1&after=2",
            "after=%33",
            "=1&after=4",
            "timeout=1e3",
        ];
        for q in queries {
            for name in ["after", "timeout", "a", ""] {
                assert_eq!(query_param(Some(q), name), by_split(q, name), "{q:?} {name:?}");
            }
        }
        assert_eq!(query_param(None, "after"), None);
    }
}
