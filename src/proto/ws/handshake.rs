//! The opening handshake, RFC 6455 §1.3, §4.1 (client) and §4.2 (server).
//!
//! A WebSocket connection starts life as an HTTP/1.1 request:
//!
//! ```text
//! GET /chat HTTP/1.1
//! Host: server.example.com
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
//! Origin: http://example.com
//! Sec-WebSocket-Protocol: chat, superchat
//! Sec-WebSocket-Version: 13
//! ```
//!
//! and the server agrees with `101 Switching Protocols`, proving it read the
//! request by hashing the client's key into `Sec-WebSocket-Accept`. From the
//! next byte on, both sides speak frames (`frame.rs`, `session.rs`).
//!
//! Nothing here parses HTTP: the HTTP layer has already split the request
//! into a method and `(name, value)` header pairs, exactly as received.
//! Header names are compared case-insensitively, a header may occur several
//! times, and list-valued headers (`Connection`, `Upgrade`,
//! `Sec-WebSocket-Protocol`) are comma-separated tokens across all of their
//! occurrences. Anything the HTTP layer read past the end of the request
//! head belongs to the WebSocket session: hand it to `Session::receive_data`.
//!
//! Extensions (`Sec-WebSocket-Extensions`, §9.1): permessage-deflate (RFC
//! 7692, `deflate.rs`) is accepted when the options allow it and the client
//! offers it acceptably; every other extension is declined the way §9.1
//! allows: by not mentioning it in the response.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use super::deflate::{self, DeflateParams, ServerDeflateConfig};
use crate::proto::http::trim_ows;

/// §1.3 / §4.2.2: the fixed string appended to the client's key. Any server
/// that does not speak WebSocket is unlikely to know it, which is the point.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this codec speaks (§4.2.1 item 6, §4.4).
pub const VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (§4.2.2 item
/// 5.4): "constructed by concatenating /key/ ... with the string
/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", taking the SHA-1 hash of this
/// concatenated value to obtain a 20-byte value and base64-encoding ... this
/// 20-byte hash." The key is used as the text it was sent as, not decoded.
pub fn accept_key(client_key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(client_key);
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Build a `Sec-WebSocket-Key` from 16 bytes the caller got from a random
/// source (§4.1: "a randomly selected 16-byte value that has been
/// base64-encoded"). Randomness stays outside the codec.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// What the server is willing to accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeOptions {
    /// Origins allowed to connect, e.g. `https://example.com`. Empty means
    /// any. Requests without an `Origin` header (non-browser clients, which
    /// could forge one anyway) are always allowed: the check exists to stop
    /// other web pages from using a visitor's browser against us (§10.2).
    pub allowed_origins: Vec<String>,
    /// Subprotocols the server speaks, most preferred first. Empty means the
    /// server never selects one.
    pub subprotocols: Vec<String>,
    /// Whether (and how) to accept permessage-deflate.
    pub deflate: ServerDeflateConfig,
}

/// A successful server handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The subprotocol the server selected, if any.
    pub protocol: Option<String>,
    /// permessage-deflate, if accepted: its parameters, and
    /// [`DeflateParams::response`] is the `Sec-WebSocket-Extensions` value.
    pub deflate: Option<DeflateParams>,
}

/// Why a handshake was refused. The first group is detected by the server
/// ([`server_accept`]) and maps to an HTTP status; the second by the client
/// ([`client_verify`]), which answers no one and just fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The method is not GET.
    NotGet,
    /// No `Host` header.
    MissingHost,
    /// No `Upgrade` header containing the token `websocket`.
    MissingUpgrade,
    /// No `Connection` header containing the token `Upgrade`.
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` header.
    MissingKey,
    /// A key that is not base64 of exactly 16 bytes, or more than one key.
    InvalidKey,
    /// `Sec-WebSocket-Version` absent or not 13.
    UnsupportedVersion,
    /// `Origin` not in the allowed list.
    ForbiddenOrigin,

    /// Client side: the server did not answer 101.
    NotSwitchingProtocols(u16),
    /// Client side: `Sec-WebSocket-Accept` missing or wrong.
    BadAccept,
    /// Client side: the server selected an extension we never offered.
    UnexpectedExtension,
    /// Client side: the server selected a subprotocol we never offered.
    UnexpectedProtocol,
}

impl HandshakeError {
    /// The HTTP status a server answers with. Client-side variants are never
    /// sent anywhere; they report 400 only so that the function is total.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::ForbiddenOrigin => 403,
            _ => 400,
        }
    }

    /// A one-line explanation, suitable for a log line or a response body.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::NotGet => "a WebSocket handshake must be a GET request",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::MissingUpgrade => "missing Upgrade: websocket",
            HandshakeError::MissingConnectionUpgrade => "missing Connection: Upgrade",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key",
            HandshakeError::InvalidKey => "Sec-WebSocket-Key must appear once and be base64 of 16 bytes",
            HandshakeError::UnsupportedVersion => "only Sec-WebSocket-Version 13 is supported",
            HandshakeError::ForbiddenOrigin => "Origin not allowed",
            HandshakeError::NotSwitchingProtocols(_) => "server did not answer 101",
            HandshakeError::BadAccept => "missing or wrong Sec-WebSocket-Accept",
            HandshakeError::UnexpectedExtension => "server selected an extension we did not offer",
            HandshakeError::UnexpectedProtocol => "server selected a subprotocol we did not offer",
        }
    }

    /// Headers the error response must carry besides the usual ones.
    /// §4.2.2: on a version mismatch the server sends "an appropriate HTTP
    /// error code (such as 426 Upgrade Required) and a
    /// |Sec-WebSocket-Version| header field indicating the version(s) the
    /// server is capable of understanding."
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", VERSION)],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::NotSwitchingProtocols(s) => {
                write!(f, "server answered {s} instead of 101")
            }
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Every value of header `name` (case-insensitive), in order received.
fn values<'a>(headers: &'a [(&'a str, &'a [u8])], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// The single value of header `name`, trimmed of optional whitespace.
/// `Err(())` if it appears more than once.
fn single<'a>(headers: &'a [(&'a str, &'a [u8])], name: &'a str) -> Result<Option<&'a [u8]>, ()> {
    let mut it = values(headers, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(());
    }
    Ok(first.map(trim_ows))
}

/// The comma-separated tokens of every occurrence of header `name` (the HTTP layer's
/// one list rule: `proto::http::header_tokens`).
fn tokens<'a>(headers: &'a [(&'a str, &'a [u8])], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    crate::proto::http::header_tokens(headers.iter().copied(), name)
}

fn has_token(headers: &[(&str, &[u8])], name: &str, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Check a client's opening handshake and decide the answer (§4.2.1, §4.2.2).
///
/// §4.2.1: "If the server, while reading the handshake, finds that the client
/// did not send a handshake that matches the description below ..., the
/// server MUST stop processing the client's handshake and return an HTTP
/// response with an appropriate error code (such as 400 Bad Request)."
///
/// The checks run in the order of that description; the first failure wins.
pub fn server_accept(
    method: &str,
    headers: &[(&str, &[u8])],
    opts: &HandshakeOptions,
) -> Result<Accepted, HandshakeError> {
    // 1. "An HTTP/1.1 or higher GET request". (The HTTP layer has already
    //    checked the version.)
    if method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    // 2. "A |Host| header field containing the server's authority."
    if values(headers, "host").next().is_none() {
        return Err(HandshakeError::MissingHost);
    }
    // 3. "An |Upgrade| header field containing the value "websocket",
    //    treated as an ASCII case-insensitive value." Items 3 and 4 together are
    //    `proto::http::is_websocket_upgrade`, which the proxy and the trace apply;
    //    checked one by one here to say which is missing.
    if !has_token(headers, "upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    // 4. "A |Connection| header field that includes the token "Upgrade",
    //    treated as an ASCII case-insensitive value." (Browsers send
    //    `Connection: keep-alive, Upgrade`, hence the token list.)
    if !has_token(headers, "connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // 5. "A |Sec-WebSocket-Key| header field with a base64-encoded ... value
    //    that, when decoded, is 16 bytes in length." And §11.3.1: it "MUST
    //    NOT appear more than once in an HTTP request."
    let key = match single(headers, "sec-websocket-key") {
        Err(()) => return Err(HandshakeError::InvalidKey),
        Ok(None) => return Err(HandshakeError::MissingKey),
        Ok(Some(k)) => k,
    };
    // Decoded into a buffer on the stack, not a new Vec: a key longer than it could hold
    // could not decode to 16 bytes either.
    match BASE64.decode_slice(key, &mut [0u8; 64]) {
        Ok(16) => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    // 6. "A |Sec-WebSocket-Version| header field, with a value of 13."
    //    A missing or repeated header gets the same 426 as a wrong number:
    //    the answer tells the client which version to use.
    match single(headers, "sec-websocket-version") {
        Ok(Some(v)) if v == VERSION.as_bytes() => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    // 7. Origin, §4.2.2 item 4: "If the server does not wish to accept this
    //    connection, it MUST return an appropriate HTTP error code (e.g., 403
    //    Forbidden) and abort the WebSocket handshake". Origins are
    //    serialized in lower case, but compare case-insensitively anyway.
    //    (Several Origin headers: every one of them must be allowed.)
    let allowed = |origin: &[u8]| {
        let origin = trim_ows(origin);
        opts.allowed_origins.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
    };
    if !opts.allowed_origins.is_empty() && !values(headers, "origin").all(allowed) {
        return Err(HandshakeError::ForbiddenOrigin);
    }
    // 8. Subprotocol, §4.2.2: "The value chosen MUST be derived from the
    //    client's handshake, specifically by selecting one of the values from
    //    the |Sec-WebSocket-Protocol| field that the server is willing to use
    //    for this connection (if any)." We take the server's preference
    //    order; names are compared exactly, as browsers do.
    let protocol = opts
        .subprotocols
        .iter()
        .find(|ours| tokens(headers, "sec-websocket-protocol").any(|t| t == ours.as_str()))
        .cloned();
    // 9. Extensions, §4.2.2 item 4 /extensions/: permessage-deflate from the
    //    first acceptable offer (RFC 7692 §5.1); the rest declined by silence.
    let deflate = deflate::server_negotiate(values(headers, "sec-websocket-extensions"), opts.deflate);
    Ok(Accepted { accept: accept_key(key), protocol, deflate })
}

/// The client's opening handshake (§4.1). `key_b64` comes from
/// [`client_key`]; `protocols` are offered in preference order.
pub fn client_request(host: &str, path: &str, key_b64: &str, protocols: &[&str]) -> Vec<u8> {
    client_request_offering(host, path, key_b64, protocols, None)
}

/// [`client_request`] with a `Sec-WebSocket-Extensions` offer, e.g.
/// `deflate::client_offer()`.
pub fn client_request_offering(
    host: &str,
    path: &str,
    key_b64: &str,
    protocols: &[&str],
    extensions: Option<&str>,
) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key_b64}\r\n\
         Sec-WebSocket-Version: {VERSION}\r\n"
    );
    if !protocols.is_empty() {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(&protocols.join(", "));
        r.push_str("\r\n");
    }
    if let Some(ext) = extensions {
        r.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Check the server's answer to [`client_request`] (§4.1, "the client MUST
/// validate the server's response as follows"). Returns the subprotocol the
/// server selected; check it with [`check_protocol_offered`], since this
/// function does not know what was offered.
pub fn client_verify(key_b64: &str, status: u16, headers: &[(&str, &[u8])]) -> Result<Option<String>, HandshakeError> {
    client_verify_offering(key_b64, status, headers, false).map(|(protocol, _)| protocol)
}

/// [`client_verify`] after a request that offered permessage-deflate (if
/// `offered_deflate`) with `deflate::client_offer()`: also returns the
/// parameters the server accepted, if it did.
pub fn client_verify_offering(
    key_b64: &str,
    status: u16,
    headers: &[(&str, &[u8])],
    offered_deflate: bool,
) -> Result<(Option<String>, Option<DeflateParams>), HandshakeError> {
    // 1. "If the status code received from the server is not 101, the client
    //    handles the response per HTTP [RFC2616] procedures."
    if status != 101 {
        return Err(HandshakeError::NotSwitchingProtocols(status));
    }
    // 2. "If the response lacks an |Upgrade| header field or the |Upgrade|
    //    header field contains a value that is not an ASCII case-insensitive
    //    match for the value "websocket", the client MUST _Fail the WebSocket
    //    Connection_."
    let upgrade = single(headers, "upgrade").map_err(|()| HandshakeError::MissingUpgrade)?;
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(b"websocket")) {
        return Err(HandshakeError::MissingUpgrade);
    }
    // 3. "If the response lacks a |Connection| header field or the
    //    |Connection| header field doesn't contain a token that is an ASCII
    //    case-insensitive match for the value "Upgrade", the client MUST
    //    _Fail the WebSocket Connection_."
    if !has_token(headers, "connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // 4. "If the response lacks a |Sec-WebSocket-Accept| header field or the
    //    |Sec-WebSocket-Accept| contains a value other than the
    //    base64-encoded SHA-1 of the concatenation of the |Sec-WebSocket-Key|
    //    ... with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" but
    //    ignoring any leading and trailing whitespace, the client MUST _Fail
    //    the WebSocket Connection_."
    let expected = accept_key(key_b64.trim().as_bytes());
    match single(headers, "sec-websocket-accept") {
        Ok(Some(a)) if a == expected.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    // 5. "If the response includes a |Sec-WebSocket-Extensions| header field
    //    and this header field indicates the use of an extension that was not
    //    present in the client's handshake ..., the client MUST _Fail the
    //    WebSocket Connection_." We offer permessage-deflate at most, and
    //    RFC 7692 §7 lists the responses the client must refuse.
    let deflate = if offered_deflate {
        deflate::client_check_response(values(headers, "sec-websocket-extensions"))
            .map_err(|_| HandshakeError::UnexpectedExtension)?
    } else if tokens(headers, "sec-websocket-extensions").next().is_some() {
        return Err(HandshakeError::UnexpectedExtension);
    } else {
        None
    };
    // 6. The subprotocol: exactly one value, or none.
    let protocol = match single(headers, "sec-websocket-protocol") {
        Err(()) => return Err(HandshakeError::UnexpectedProtocol),
        Ok(None) => None,
        Ok(Some(p)) => match std::str::from_utf8(p) {
            Ok(p) if !p.is_empty() && !p.contains(',') => Some(p.to_owned()),
            _ => return Err(HandshakeError::UnexpectedProtocol),
        },
    };
    Ok((protocol, deflate))
}

/// §4.1 item 6: "If the response includes a |Sec-WebSocket-Protocol| header
/// field and this header field indicates the use of a subprotocol that was
/// not present in the client's handshake ..., the client MUST _Fail the
/// WebSocket Connection_."
pub fn check_protocol_offered(selected: Option<&str>, offered: &[&str]) -> Result<(), HandshakeError> {
    match selected {
        Some(p) if !offered.contains(&p) => Err(HandshakeError::UnexpectedProtocol),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `101` head the server writes for `a` (the server's own is built by
    /// `net::http` with its response writer; this one is for reading back here).
    fn response_101(a: &Accepted) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            a.accept
        );
        // §4.2.2: no |Sec-WebSocket-Protocol| unless one was selected.
        if let Some(p) = &a.protocol {
            r.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        if let Some(d) = &a.deflate {
            r.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", d.response()));
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    type Headers = Vec<(&'static str, &'static [u8])>;

    /// The §1.3 request, header by header.
    fn rfc_request() -> Headers {
        vec![
            ("Host", b"server.example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY.as_bytes()),
            ("Origin", b"http://example.com"),
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            ("Sec-WebSocket-Version", b"13"),
        ]
    }

    /// `h` with header `name` set to `value`, or removed if `None`.
    fn with(mut h: Headers, name: &str, value: Option<&'static [u8]>) -> Headers {
        let i = h.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).unwrap();
        match value {
            Some(v) => h[i].1 = v,
            None => {
                h.remove(i);
            }
        }
        h
    }

    fn opts(subprotocols: &[&str]) -> HandshakeOptions {
        HandshakeOptions {
            allowed_origins: vec![],
            subprotocols: subprotocols.iter().map(|s| s.to_string()).collect(),
            deflate: ServerDeflateConfig::default(),
        }
    }

    #[test]
    fn rfc_1_3_accept_key() {
        assert_eq!(accept_key(RFC_KEY.as_bytes()), RFC_ACCEPT);
    }

    #[test]
    fn rfc_1_3_full_exchange() {
        let a = server_accept("GET", &rfc_request(), &opts(&["chat"])).unwrap();
        assert_eq!(a.accept, RFC_ACCEPT);
        assert_eq!(a.protocol.as_deref(), Some("chat"));
        assert_eq!(
            String::from_utf8(response_101(&a)).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn no_protocol_header_unless_one_is_selected() {
        let a = server_accept("GET", &rfc_request(), &opts(&[])).unwrap();
        assert_eq!(a.protocol, None);
        let text = String::from_utf8(response_101(&a)).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(text.ends_with(&format!("Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n")));
        // Server supports only something the client did not offer.
        let a = server_accept("GET", &rfc_request(), &opts(&["mqtt"])).unwrap();
        assert_eq!(a.protocol, None);
    }

    #[test]
    fn protocol_follows_server_preference_across_repeated_headers() {
        let mut h = with(rfc_request(), "Sec-WebSocket-Protocol", Some(b"chat"));
        h.push(("sec-websocket-protocol", b" superchat ,v2"));
        let a = server_accept("GET", &h, &opts(&["v2", "superchat", "chat"])).unwrap();
        assert_eq!(a.protocol.as_deref(), Some("v2"));
        // Exact match only.
        let a = server_accept("GET", &h, &opts(&["CHAT"])).unwrap();
        assert_eq!(a.protocol, None);
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let h: Vec<(&str, &[u8])> = vec![
            ("HOST", b"x"),
            ("upgrade", b"WebSocket"),
            ("CONNECTION", b"keep-alive, UPGRADE"),
            ("sec-websocket-key", b"  dGhlIHNhbXBsZSBub25jZQ==  "),
            ("Sec-Websocket-Version", b"13"),
        ];
        let a = server_accept("GET", &h, &opts(&[])).unwrap();
        assert_eq!(a.accept, RFC_ACCEPT, "surrounding whitespace is not part of the key");
        // Connection split over two header lines.
        let h2: Vec<(&str, &[u8])> = vec![
            ("Host", b"x"),
            ("Upgrade", b"h2c, websocket"),
            ("Connection", b"keep-alive"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY.as_bytes()),
            ("Sec-WebSocket-Version", b"13"),
        ];
        assert!(server_accept("GET", &h2, &opts(&[])).is_ok());
    }

    #[test]
    fn rejections_and_their_statuses() {
        let r = rfc_request;
        let o = opts(&[]);
        let cases: Vec<(&str, Headers, HandshakeError, u16)> = vec![
            ("POST", r(), HandshakeError::NotGet, 400),
            ("get", r(), HandshakeError::NotGet, 400),
            ("GET", with(r(), "Host", None), HandshakeError::MissingHost, 400),
            ("GET", with(r(), "Upgrade", None), HandshakeError::MissingUpgrade, 400),
            ("GET", with(r(), "Upgrade", Some(b"h2c")), HandshakeError::MissingUpgrade, 400),
            ("GET", with(r(), "Connection", None), HandshakeError::MissingConnectionUpgrade, 400),
            ("GET", with(r(), "Connection", Some(b"keep-alive")), HandshakeError::MissingConnectionUpgrade, 400),
            ("GET", with(r(), "Sec-WebSocket-Key", None), HandshakeError::MissingKey, 400),
            ("GET", with(r(), "Sec-WebSocket-Key", Some(b"abc")), HandshakeError::InvalidKey, 400),
            (
                "GET",
                // 15 bytes, valid base64.
                with(r(), "Sec-WebSocket-Key", Some(b"AAAAAAAAAAAAAAAAAAAA")),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                "GET",
                // 17 bytes.
                with(r(), "Sec-WebSocket-Key", Some(b"AAAAAAAAAAAAAAAAAAAAAAA=")),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                "GET",
                // 102 bytes, more than the buffer it is decoded into holds.
                with(r(), "Sec-WebSocket-Key", Some(&[b'A'; 136])),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                "GET",
                {
                    let mut h = r();
                    h.push(("Sec-WebSocket-Key", RFC_KEY.as_bytes()));
                    h
                },
                HandshakeError::InvalidKey,
                400,
            ),
            ("GET", with(r(), "Sec-WebSocket-Version", Some(b"8")), HandshakeError::UnsupportedVersion, 426),
            ("GET", with(r(), "Sec-WebSocket-Version", None), HandshakeError::UnsupportedVersion, 426),
        ];
        for (method, headers, err, status) in cases {
            let got = server_accept(method, &headers, &o);
            assert_eq!(got, Err(err), "{method} {headers:?}");
            assert_eq!(err.status(), status);
        }
    }

    #[test]
    fn version_426_carries_the_supported_version() {
        // The response itself is written by `net::http` (tests/ws.rs reads it back).
        let e = HandshakeError::UnsupportedVersion;
        assert_eq!((e.status(), e.extra_headers()), (426, &[("Sec-WebSocket-Version", "13")][..]));
        assert_eq!(HandshakeError::InvalidKey.status(), 400);
        assert!(HandshakeError::InvalidKey.extra_headers().is_empty());
    }

    #[test]
    fn origin_policy() {
        let mut o = opts(&[]);
        o.allowed_origins = vec!["http://example.com".into()];
        assert!(server_accept("GET", &rfc_request(), &o).is_ok());
        let upper = with(rfc_request(), "Origin", Some(b"HTTP://EXAMPLE.COM"));
        assert!(server_accept("GET", &upper, &o).is_ok());
        let evil = with(rfc_request(), "Origin", Some(b"http://evil.example"));
        assert_eq!(server_accept("GET", &evil, &o), Err(HandshakeError::ForbiddenOrigin));
        assert_eq!(HandshakeError::ForbiddenOrigin.status(), 403);
        // Non-browser clients send no Origin: allowed.
        let none = with(rfc_request(), "Origin", None);
        assert!(server_accept("GET", &none, &o).is_ok());
        // Two Origin headers: both must be allowed.
        let mut two = rfc_request();
        two.push(("Origin", b"http://evil.example"));
        assert_eq!(server_accept("GET", &two, &o), Err(HandshakeError::ForbiddenOrigin));
        // An empty allow-list means any origin.
        assert!(server_accept("GET", &evil, &opts(&[])).is_ok());
    }

    #[test]
    fn client_request_bytes() {
        let req = client_request("server.example.com", "/chat", RFC_KEY, &["chat", "superchat"]);
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
        );
        let plain = String::from_utf8(client_request("h", "/", RFC_KEY, &[])).unwrap();
        assert!(!plain.contains("Sec-WebSocket-Protocol"));
        assert_eq!(client_key(*b"the sample nonce"), RFC_KEY);
    }

    /// Split a response or request head into (first line, headers).
    fn parse_head(bytes: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let head = text.strip_suffix("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_string(), v.trim().as_bytes().to_vec())
            })
            .collect();
        (first, headers)
    }

    #[test]
    fn client_and_server_agree() {
        let key = client_key([7; 16]);
        let req = client_request("localhost:8080", "/ws/lobby", &key, &["b", "a"]);
        let (line, owned) = parse_head(&req);
        assert_eq!(line, "GET /ws/lobby HTTP/1.1");
        let headers: Vec<(&str, &[u8])> = owned.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let accepted = server_accept("GET", &headers, &opts(&["a", "b"])).unwrap();
        let (status_line, owned) = parse_head(&response_101(&accepted));
        assert_eq!(status_line, "HTTP/1.1 101 Switching Protocols");
        let headers: Vec<(&str, &[u8])> = owned.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let selected = client_verify(&key, 101, &headers).unwrap();
        assert_eq!(selected.as_deref(), Some("a"));
        assert_eq!(check_protocol_offered(selected.as_deref(), &["b", "a"]), Ok(()));
        assert_eq!(check_protocol_offered(Some("c"), &["b", "a"]), Err(HandshakeError::UnexpectedProtocol));
    }

    #[test]
    fn client_rejections() {
        let good: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Accept", RFC_ACCEPT.as_bytes()),
        ];
        assert_eq!(client_verify(RFC_KEY, 101, &good), Ok(None));
        assert_eq!(client_verify(RFC_KEY, 200, &good), Err(HandshakeError::NotSwitchingProtocols(200)));
        let mut h = good.clone();
        h[0].1 = b"h2c";
        assert_eq!(client_verify(RFC_KEY, 101, &h), Err(HandshakeError::MissingUpgrade));
        let mut h = good.clone();
        h[1].1 = b"close";
        assert_eq!(client_verify(RFC_KEY, 101, &h), Err(HandshakeError::MissingConnectionUpgrade));
        let mut h = good.clone();
        h[2].1 = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOA=";
        assert_eq!(client_verify(RFC_KEY, 101, &h), Err(HandshakeError::BadAccept));
        assert_eq!(client_verify(RFC_KEY, 101, &good[..2]), Err(HandshakeError::BadAccept));
        let mut h = good.clone();
        h.push(("Sec-WebSocket-Extensions", b"permessage-deflate"));
        assert_eq!(client_verify(RFC_KEY, 101, &h), Err(HandshakeError::UnexpectedExtension));
        let mut h = good.clone();
        h.push(("Sec-WebSocket-Protocol", b"chat, superchat"));
        assert_eq!(client_verify(RFC_KEY, 101, &h), Err(HandshakeError::UnexpectedProtocol));
        let mut h = good.clone();
        h.push(("Sec-WebSocket-Protocol", b"chat"));
        assert_eq!(client_verify(RFC_KEY, 101, &h), Ok(Some("chat".into())));
    }

    #[test]
    fn deflate_is_accepted_when_enabled_and_both_ends_agree() {
        let mut h = rfc_request();
        h.push(("Sec-WebSocket-Extensions", b"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"));
        let mut o = opts(&[]);
        o.deflate.enabled = true;
        let a = server_accept("GET", &h, &o).unwrap();
        assert_eq!(a.deflate, Some(DeflateParams::default()));
        let (_, headers) = parse_head(&response_101(&a));
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        assert_eq!(client_verify_offering(RFC_KEY, 101, &headers, true), Ok((None, Some(DeflateParams::default()))));
        // A client that offered nothing fails on it (§4.1 item 5).
        assert_eq!(client_verify(RFC_KEY, 101, &headers), Err(HandshakeError::UnexpectedExtension));
        // A declined offer: no header, and the client goes on without it.
        o.deflate.enabled = false;
        let a = server_accept("GET", &h, &o).unwrap();
        assert_eq!(a.deflate, None);
        let req = client_request_offering("h", "/", RFC_KEY, &[], Some(&deflate::client_offer()));
        assert!(
            String::from_utf8(req)
                .unwrap()
                .contains("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
        );
    }

    #[test]
    fn extensions_are_declined_silently() {
        let mut h = rfc_request();
        h.push(("Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"));
        let a = server_accept("GET", &h, &opts(&[])).unwrap();
        let text = String::from_utf8(response_101(&a)).unwrap();
        assert!(!text.contains("Extensions"));
    }
}
