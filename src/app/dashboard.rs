//! `GET /`: the live dashboard (API.md), one page of hand-written HTML, CSS and
//! JavaScript compiled into the binary.
//!
//! Four panes, each a real browser client on the same channel: `fetch` short polling,
//! `fetch` long polling, `EventSource` and `WebSocket`. The page is teaching material and
//! is annotated as such: read `dashboard.html` beside docs/dashboard.md.
//!
//! It is served from the binary (`include_str!`), not from disk: nothing to install, no
//! build step, no framework, no CDN, so it works offline and a release binary carries it.

/// The page, byte for byte as the browser receives it.
pub const HTML: &str = include_str!("dashboard.html");

/// What the page may load and connect to: itself and nothing else. Inline script and
/// style are allowed (the whole page is one file); every fetch, EventSource and
/// WebSocket goes to the origin that served it (`'self'` covers `ws:` to the same host,
/// CSP Level 3 §6.7.2.8); nothing from elsewhere is ever loaded.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "//cdn", "<script src", "<link rel=\"stylesheet\"", "@import"] {
            assert!(!HTML.contains(needle), "the dashboard must work offline, but it contains {needle:?}");
        }
    }

    #[test]
    fn the_page_has_its_four_clients() {
        for needle in ["new EventSource(", "new WebSocket(", "/poll/", "/long-poll/", "/publish/", "<canvas"] {
            assert!(HTML.contains(needle), "the dashboard lost {needle:?}");
        }
        assert!(HTML.starts_with("<!doctype html>"), "no doctype: browsers would render in quirks mode");
    }
}
