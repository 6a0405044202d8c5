//! The router: API.md's endpoint table as a pure function of method and path.

use super::stats::Transport;
use crate::proto::http::{cut, list_elements};

/// One row of API.md's endpoint table, with its channel where it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Publish(String),
    Poll(String),
    LongPoll(String),
    Negotiate(String),
    /// `GET /sse/{channel}`: a `text/event-stream` that stays open.
    Sse(String),
    /// `GET /ws/{channel}`: a WebSocket upgrade onto a channel.
    WebSocket(String),
    /// `GET /echo`: a WebSocket that echoes every message (for conformance suites).
    Echo,
    Stats,
    /// `GET /`: the live dashboard, one page with a browser client per transport.
    Dashboard,
    /// `GET /trace`: the byte trace of every connection, live, as an event stream (only
    /// while tracing is on).
    Trace,
}

impl Route {
    pub fn transport(&self) -> Transport {
        match self {
            Route::Publish(_) => Transport::Publish,
            Route::Poll(_) => Transport::ShortPoll,
            Route::LongPoll(_) => Transport::LongPoll,
            Route::Sse(_) => Transport::Sse,
            Route::WebSocket(_) | Route::Echo => Transport::WebSocket,
            Route::Negotiate(_) | Route::Stats | Route::Dashboard | Route::Trace => Transport::Other,
        }
    }
}

/// Why no route matched; each maps to a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// `404`: no such path.
    NotFound,
    /// `405` with `Allow`: the path exists, the method does not.
    MethodNotAllowed(&'static str),
    /// `400`: a channel name outside API.md's rule.
    BadChannel,
}

/// Longest channel name (API.md: 1 to 64 characters).
pub const MAX_CHANNEL_NAME: usize = 64;

/// API.md: "A channel name is 1 to 64 of `A-Z a-z 0-9 _ . -`; anything else is 400."
pub fn valid_channel(name: &str) -> bool {
    (1..=MAX_CHANNEL_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

const GET: &str = "GET, HEAD";
const POST: &str = "POST";

/// Matches a request to a route. GET routes also answer HEAD (RFC 9110 §9.3.2).
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let (allow, route) = match cut(path, b'/').map(|(_, rest)| cut(rest, b'/')) {
        // The WebSocket endpoints take any method: the opening handshake itself refuses
        // a method other than GET with `400` (RFC 6455 §4.2.1 item 1, API.md), which
        // says more than a 405 would.
        Some(Some(("ws", channel))) if valid_channel(channel) => return Ok(Route::WebSocket(channel.to_string())),
        Some(Some(("ws", _))) => return Err(RouteError::BadChannel),
        Some(None) if path == "/echo" => return Ok(Route::Echo),
        Some(Some((kind, channel))) => {
            let make: fn(String) -> Route = match kind {
                "publish" => Route::Publish,
                "poll" => Route::Poll,
                "long-poll" => Route::LongPoll,
                "negotiate" => Route::Negotiate,
                "sse" => Route::Sse,
                _ => return Err(RouteError::NotFound),
            };
            let allow = if kind == "publish" { POST } else { GET };
            if !allowed(allow, method) {
                return Err(RouteError::MethodNotAllowed(allow));
            }
            if !valid_channel(channel) {
                return Err(RouteError::BadChannel);
            }
            return Ok(make(channel.to_string())); // the method was allowed above
        }
        Some(None) if path == "/stats" => (GET, Route::Stats),
        Some(None) if path == "/" => (GET, Route::Dashboard),
        Some(None) if path == "/trace" => (GET, Route::Trace),
        _ => return Err(RouteError::NotFound),
    };
    if !allowed(allow, method) {
        return Err(RouteError::MethodNotAllowed(allow));
    }
    Ok(route)
}

/// Whether `method` is one of `allow`'s (a list such as `GET, HEAD`).
fn allowed(allow: &str, method: &str) -> bool {
    list_elements(allow).any(|listed| listed == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists() {
        for (allow, method, yes) in [
            (GET, "GET", true),
            (GET, "HEAD", true),
            (GET, "POST", false),
            (GET, "GE", false),
            (GET, "", false),
            (POST, "POST", true),
            (POST, "GET", false),
        ] {
            assert_eq!(allowed(allow, method), yes, "{method:?} in {allow:?}");
        }
    }

    #[test]
    fn routes_and_errors() {
        assert_eq!(route("POST", "/publish/chat"), Ok(Route::Publish("chat".into())));
        assert_eq!(route("GET", "/poll/a.b-c_D9"), Ok(Route::Poll("a.b-c_D9".into())));
        assert_eq!(route("HEAD", "/long-poll/x"), Ok(Route::LongPoll("x".into())));
        assert_eq!(route("GET", "/stats"), Ok(Route::Stats));
        assert_eq!(route("GET", "/negotiate/x"), Ok(Route::Negotiate("x".into())));
        assert_eq!(route("GET", "/sse/lobby"), Ok(Route::Sse("lobby".into())));
        assert_eq!(route("HEAD", "/sse/lobby"), Ok(Route::Sse("lobby".into())));
        assert_eq!(route("POST", "/sse/lobby"), Err(RouteError::MethodNotAllowed("GET, HEAD")));
        assert_eq!(route("GET", "/sse/no%20spaces"), Err(RouteError::BadChannel));
        assert_eq!(Route::Sse("x".into()).transport(), Transport::Sse);
        assert_eq!(route("GET", "/ws/lobby"), Ok(Route::WebSocket("lobby".into())));
        assert_eq!(route("POST", "/ws/lobby"), Ok(Route::WebSocket("lobby".into())), "the handshake says 400");
        assert_eq!(route("GET", "/ws/bad%20name"), Err(RouteError::BadChannel));
        assert_eq!(route("GET", "/echo"), Ok(Route::Echo));
        assert_eq!(route("GET", "/echo/x"), Err(RouteError::NotFound));
        assert_eq!(Route::Echo.transport(), Transport::WebSocket);
        assert_eq!(route("GET", "/publish/chat"), Err(RouteError::MethodNotAllowed("POST")));
        assert_eq!(route("POST", "/poll/chat"), Err(RouteError::MethodNotAllowed("GET, HEAD")));
        assert_eq!(route("DELETE", "/stats"), Err(RouteError::MethodNotAllowed("GET, HEAD")));
        assert_eq!(route("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/nope/x"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/poll/"), Err(RouteError::BadChannel));
        assert_eq!(route("GET", "/poll/a/b"), Err(RouteError::BadChannel));
        assert_eq!(route("GET", "/poll/caf%C3%A9"), Err(RouteError::BadChannel));
        assert_eq!(route("GET", &format!("/poll/{}", "a".repeat(65))), Err(RouteError::BadChannel));
        assert_eq!(route("GET", &format!("/poll/{}", "a".repeat(64))), Ok(Route::Poll("a".repeat(64))));
    }

    #[test]
    fn the_dashboard_is_the_root() {
        assert_eq!(route("GET", "/"), Ok(Route::Dashboard));
        assert_eq!(route("HEAD", "/"), Ok(Route::Dashboard));
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            assert_eq!(route(method, "/"), Err(RouteError::MethodNotAllowed("GET, HEAD")), "{method} /");
        }
        assert_eq!(Route::Dashboard.transport(), Transport::Other, "a page, not a transport");
        // Only the root: the dashboard is not a catch-all for unknown paths.
        assert_eq!(route("GET", "//"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/index.html"), Err(RouteError::NotFound));
        assert_eq!(route("GET", ""), Err(RouteError::NotFound));
    }

    #[test]
    fn the_live_trace() {
        assert_eq!(route("GET", "/trace"), Ok(Route::Trace));
        assert_eq!(route("HEAD", "/trace"), Ok(Route::Trace));
        assert_eq!(route("POST", "/trace"), Err(RouteError::MethodNotAllowed("GET, HEAD")));
        assert_eq!(route("GET", "/trace/x"), Err(RouteError::NotFound));
        assert_eq!(Route::Trace.transport(), Transport::Other);
    }
}
