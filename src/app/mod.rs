//! The application: routes, the channel hub and the counters. Transport-independent:
//! the drivers in `net/` turn wire events into calls here.

pub mod hub;
pub mod routes;
pub mod stats;

/// Parses a query string into `after` and `timeout`, the two parameters the API uses.
/// Unknown parameters are ignored, as browsers and proxies add their own (cache busters).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).find(|(k, _)| *k == name).map(|(_, v)| v)
}
