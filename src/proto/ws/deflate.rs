//! permessage-deflate, RFC 7692: negotiation (§5, §7.1) and the per-message
//! codec (§7.2), sans-I/O.
//!
//! # Negotiation
//!
//! The client offers the extension in `Sec-WebSocket-Extensions`, possibly several
//! times with different parameters, most preferred first (§5.1). The server takes
//! the first offer it can honour ([`server_negotiate`]); an offer it cannot honour
//! (an unknown or repeated parameter, a bad value, §7: "A server MUST decline an
//! extension negotiation offer for this extension if any of the following
//! conditions are met") is skipped, and with no acceptable offer the extension is
//! declined by not mentioning it in the `101` (RFC 6455 §9.1). The client checks
//! the response ([`client_check_response`]) and fails the connection on anything
//! it did not ask for or cannot honour (§7: "the client MUST _Fail the WebSocket
//! Connection_").
//!
//! | parameter | who may send it | what it means here |
//! | --- | --- | --- |
//! | `server_no_context_takeover` | offer, response | the server resets its compressor after each message (§7.1.1.1) |
//! | `client_no_context_takeover` | offer, response | the client resets its compressor after each message (§7.1.1.2) |
//! | `server_max_window_bits=N` | offer, response | the server's LZ77 window is at most 2^N bytes (§7.1.2.1) |
//! | `client_max_window_bits[=N]` | offer (value optional), response (value) | the client's window; without a value the offer only says the client supports the parameter (§7.1.2.2) |
//!
//! # The codec
//!
//! A compressed message is one DEFLATE stream segment (RFC 1951) flushed with
//! a sync flush, whose trailing empty stored block `00 00 ff ff` is removed
//! before sending (§7.2.1) and put back before inflating (§7.2.2). Only the
//! first frame of a message carries RSV1 (§6.1); control frames are never
//! compressed (§6.1, "An endpoint MUST NOT set the RSV1 bit on control frames").
//!
//! [`Inflater::inflate`] writes into a buffer that may never grow past a limit
//! (the session's `max_message`): inflation stops at the first byte over it, so
//! a small frame that would inflate to a gigabyte costs at most the limit in
//! memory and in work (§8.1 warns of exactly this).
//!
//! # Window sizes and the backend
//!
//! zlib and zlib-rs (flate2's pure-Rust backend, docs/dependencies.md) refuse a
//! raw deflate window of 2^8 bytes. With a 2^9 window, zlib never emits a match
//! farther back than `w_size - MIN_LOOKAHEAD` = 512 - 262 = 250 bytes (its
//! `MAX_DIST`), so a 2^9 compressor is a valid 2^8 one; that is also what zlib
//! itself does for `windowBits = 8`. An inflater with a larger window than the
//! peer's reads the peer's stream unchanged, so incoming data is always inflated
//! with a window of at least 2^9.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's registered name (§5).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// §7.2.1: the last four octets of a sync-flushed stream segment, removed
/// before sending and appended before inflating.
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// §7.1.2: window sizes are 2^8 to 2^15 bytes; 15 when nothing is said.
pub const MIN_WINDOW_BITS: u8 = 8;
pub const MAX_WINDOW_BITS: u8 = 15;

/// The smallest raw-deflate window the backend accepts (see the module doc).
const BACKEND_MIN_WINDOW_BITS: u8 = 9;

/// Inflated bytes are produced in steps of at most this many bytes, so the
/// limit is checked often and the buffer grows in bounded steps.
const INFLATE_STEP: usize = 64 * 1024;

/// What both ends agreed on for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value a server answers with (§7.1).
    /// `client_max_window_bits` is never sent: the server inflates with the
    /// largest window, which reads whatever window the client uses.
    pub fn response(&self) -> String {
        let mut r = EXTENSION_NAME.to_string();
        if self.server_no_context_takeover {
            r.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            r.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits != MAX_WINDOW_BITS {
            r.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        r
    }

    /// (no context takeover, window bits) for what `role` sends.
    fn sending(&self, role: super::Role) -> (bool, u8) {
        match role {
            super::Role::Server => (self.server_no_context_takeover, self.server_max_window_bits),
            super::Role::Client => (self.client_no_context_takeover, self.client_max_window_bits),
        }
    }

    /// (no context takeover, window bits) for what `role` receives.
    fn receiving(&self, role: super::Role) -> (bool, u8) {
        let peer = match role {
            super::Role::Server => super::Role::Client,
            super::Role::Client => super::Role::Server,
        };
        self.sending(peer)
    }

    /// Whether a server's compressed messages may be shared between
    /// connections: each message is compressed alone (no context carried
    /// over) with the default window, so the same bytes are right for every
    /// connection with these parameters.
    pub fn server_output_is_shareable(&self) -> bool {
        self.server_no_context_takeover && self.server_max_window_bits == MAX_WINDOW_BITS
    }
}

/// The server's side of the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerDeflateConfig {
    /// Accept the extension at all (`--no-deflate` clears it).
    pub enabled: bool,
    /// Answer with `server_no_context_takeover` even when the client did not
    /// ask (§7.1.1.1 allows it): each message is then compressed alone, which
    /// lets a fan-out compress it once for every subscriber and keeps no
    /// compressor alive between messages.
    pub force_server_no_context_takeover: bool,
}

/// One `name[=value]` parameter of an extension element.
type Param<'a> = (&'a str, Option<String>);

/// Parse a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
/// `extension *( "," extension )`, `extension = token *( ";" param )`,
/// `param = token [ "=" ( token / quoted-string ) ]`. A quoted value must
/// itself be a token once unquoted. `None` if the value does not follow the
/// grammar.
fn parse_extensions(value: &str) -> Option<Vec<(&str, Vec<Param<'_>>)>> {
    let mut out = Vec::new();
    for element in split_outside_quotes(value, ',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue; // RFC 9110 §5.6.1: empty list elements are ignored
        }
        let mut parts = split_outside_quotes(element, ';').into_iter();
        let name = parts.next()?.trim_matches([' ', '\t']);
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim_matches([' ', '\t']);
            let (k, v) = match p.split_once('=') {
                None => (p, None),
                Some((k, v)) => {
                    let v = v.trim_matches([' ', '\t']);
                    let v = match v.strip_prefix('"') {
                        Some(q) => unquote(q.strip_suffix('"')?)?,
                        None => v.to_string(),
                    };
                    if !is_token(&v) {
                        return None;
                    }
                    (k.trim_matches([' ', '\t']), Some(v))
                }
            };
            if !is_token(k) {
                return None;
            }
            params.push((k, v));
        }
        out.push((name, params));
    }
    Some(out)
}

/// Split on `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The content of a quoted-string (RFC 9110 §5.6.4), backslash escapes removed.
fn unquote(q: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 9110 §5.6.2 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A window-bits value: 1*DIGIT in 8..=15, no leading zero (§7.1.2.1:
/// "decimal integer value without leading zeroes between 8 to 15").
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || v.len() > 2 {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(b))
}

/// Every `permessage-deflate` offer in the request's extension headers, in
/// order; `None` when a header does not follow the grammar.
fn offers<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Vec<Vec<Param<'a>>>> {
    let mut out = Vec::new();
    for v in values {
        let v = std::str::from_utf8(v).ok()?;
        for (name, params) in parse_extensions(v)? {
            if name.eq_ignore_ascii_case(EXTENSION_NAME) {
                out.push(params);
            }
        }
    }
    Some(out)
}

/// The server's choice (§5.1, §7): the parameters of the first acceptable
/// offer among the values of `Sec-WebSocket-Extensions`, or `None` to decline.
/// A header that breaks the §9.1 grammar declines the extension as a whole.
pub fn server_negotiate<'a>(
    header_values: impl Iterator<Item = &'a [u8]>,
    config: ServerDeflateConfig,
) -> Option<DeflateParams> {
    if !config.enabled {
        return None;
    }
    offers(header_values)?.iter().find_map(|offer| accept_offer(offer, config))
}

/// One offer, accepted (`Some`) or declined.
fn accept_offer(offer: &[Param<'_>], config: ServerDeflateConfig) -> Option<DeflateParams> {
    let mut p =
        DeflateParams { server_no_context_takeover: config.force_server_no_context_takeover, ..Default::default() };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in offer {
        // §7: "The negotiation offer contains multiple extension parameters
        // with the same name" -> decline.
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return None;
        }
        seen.push(name);
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = window_bits(v)?,
            // §7.1.2.2: with no value, the client only says it supports the
            // parameter; the server need not use it (we inflate with 2^15).
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => p.client_max_window_bits = window_bits(v)?,
            // §7: "an extension parameter not defined for use in an offer",
            // or a defined one with an invalid value (no value where one is
            // needed, a value where none is allowed) -> decline.
            _ => return None,
        }
    }
    Some(p)
}

/// What a client offers: browsers' offer, with room for the server to cap our
/// window (§7.1.2.2).
pub fn client_offer() -> String {
    format!("{EXTENSION_NAME}; client_max_window_bits")
}

/// Why a client fails the connection on the server's response (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The header breaks the §9.1 grammar, or names another extension, or
    /// accepts permessage-deflate more than once.
    Malformed,
    /// An unknown or repeated parameter, or an invalid value.
    BadParameter,
}

/// The client's check of the `101`'s extension headers against
/// [`client_offer`]: `Ok(None)` if the server declined, the agreed
/// parameters if it accepted, an error (fail the connection) otherwise.
pub fn client_check_response<'a>(
    header_values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<DeflateParams>, ResponseError> {
    let mut accepted = None;
    for v in header_values {
        let v = std::str::from_utf8(v).map_err(|_| ResponseError::Malformed)?;
        for (name, params) in parse_extensions(v).ok_or(ResponseError::Malformed)? {
            // RFC 6455 §9.1: only extensions the client offered; and one
            // permessage-deflate element at most (we offered one).
            if !name.eq_ignore_ascii_case(EXTENSION_NAME) || accepted.is_some() {
                return Err(ResponseError::Malformed);
            }
            accepted = Some(check_response_params(&params)?);
        }
    }
    Ok(accepted)
}

fn check_response_params(params: &[Param<'_>]) -> Result<DeflateParams, ResponseError> {
    let mut p = DeflateParams::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return Err(ResponseError::BadParameter);
        }
        seen.push(name);
        let bits = |v: &str| window_bits(v).ok_or(ResponseError::BadParameter);
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = bits(v)?,
            // §7.1.2.2: in a response it must have a value; we offered the
            // parameter, so the server may use it.
            ("client_max_window_bits", Some(v)) => p.client_max_window_bits = bits(v)?,
            _ => return Err(ResponseError::BadParameter),
        }
    }
    Ok(p)
}

/// The sending half: compresses whole messages (§7.2.1).
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("no_context_takeover", &self.no_context_takeover).finish_non_exhaustive()
    }
}

impl Deflater {
    pub fn new(no_context_takeover: bool, window_bits: u8) -> Deflater {
        let bits = window_bits.max(BACKEND_MIN_WINDOW_BITS);
        Deflater { compress: Compress::new_with_window_bits(Compression::default(), false, bits), no_context_takeover }
    }

    /// For `role`'s outgoing messages under `params`.
    pub fn for_role(params: &DeflateParams, role: super::Role) -> Deflater {
        let (no_context_takeover, bits) = params.sending(role);
        Deflater::new(no_context_takeover, bits)
    }

    /// One message's compressed payload: a sync-flushed segment with its
    /// trailing `00 00 ff ff` removed (§7.2.1). An empty message becomes the
    /// single byte `00` (§7.2.3.6).
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if data.is_empty() {
            // A second sync flush with no new input makes zlib emit nothing (it
            // reports "no progress"), so say "empty" directly: the header bits of
            // an empty stored block, which the receiver's `00 00 ff ff` completes.
            // The window is untouched either way.
            return vec![0x00];
        }
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            // A sync flush is complete when it leaves room in the output.
            let status = self
                .compress
                .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
                .expect("deflate on valid parameters does not fail");
            let all_in = (self.compress.total_in() - start_in) as usize == data.len();
            if all_in && out.len() < out.capacity() && status != Status::BufError {
                break;
            }
        }
        debug_assert!(out.ends_with(&TRAILER));
        out.truncate(out.len() - TRAILER.len());
        if self.no_context_takeover {
            // §7.1.1.1: the next message must not refer to this one.
            self.compress.reset();
        }
        out
    }
}

/// Why inflating stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates past the limit (close 1009).
    TooBig,
    /// The bytes are not DEFLATE data (close 1007, "data inconsistent with
    /// the message type", as Autobahn's reference peers do).
    BadData,
}

/// The receiving half: inflates messages as their frames arrive (§7.2.2).
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
    /// Bytes inflated over this inflater's life, to measure the work a
    /// compression bomb got out of us.
    inflated: u64,
    /// A block with BFINAL set ended the stream (§7.2.3.4): the message may
    /// not go on, and the next one starts afresh.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("inflated", &self.inflated).finish_non_exhaustive()
    }
}

impl Inflater {
    /// Always with the largest window: it reads a stream made with any
    /// smaller one unchanged, whatever the peer's window bits.
    pub fn new(no_context_takeover: bool) -> Inflater {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS),
            no_context_takeover,
            inflated: 0,
            ended: false,
        }
    }

    /// For what `role` receives under `params`.
    pub fn for_role(params: &DeflateParams, role: super::Role) -> Inflater {
        Inflater::new(params.receiving(role).0)
    }

    /// Total bytes inflated so far.
    pub fn inflated(&self) -> u64 {
        self.inflated
    }

    /// Inflate `input` (part of a message's compressed payload, in order)
    /// onto `out`, which must not grow past `limit` bytes: at most
    /// `limit - out.len() + 1` bytes are produced before `TooBig`.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        if self.ended {
            // §7.2.3.4: after a block with BFINAL set, the message may still
            // hold the header bits of an empty stored block ("necessary to
            // allow the payload to be decompressed in the same manner"); the
            // stream is over, so whatever follows is not DEFLATE data to read.
            return Ok(());
        }
        let mut consumed = 0;
        loop {
            // One byte past the limit is enough to know it is crossed.
            let room = (limit + 1).saturating_sub(out.len()).min(INFLATE_STEP);
            if room == 0 {
                return Err(InflateError::TooBig);
            }
            let start = out.len();
            if out.capacity() < start + room {
                // Grow geometrically, but never past the limit.
                let target = (out.capacity() * 2).clamp(start + room, (limit + 1).max(start + room));
                out.reserve_exact(target - start);
            }
            out.resize(start + room, 0);
            let (in0, out0) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self.decompress.decompress(&input[consumed..], &mut out[start..], FlushDecompress::None);
            let produced = (self.decompress.total_out() - out0) as usize;
            consumed += (self.decompress.total_in() - in0) as usize;
            out.truncate(start + produced);
            self.inflated += produced as u64;
            match status {
                Err(_) => return Err(InflateError::BadData),
                // BFINAL: §7.2.3.4 allows a final block; the stream is over.
                Ok(Status::StreamEnd) => {
                    self.ended = true;
                    return if out.len() > limit { Err(InflateError::TooBig) } else { Ok(()) };
                }
                Ok(_) => {}
            }
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            // Done with this input once it is all consumed and the output was
            // not the limiting factor (the inflater holds nothing back).
            if consumed == input.len() && produced < room {
                return Ok(());
            }
        }
    }

    /// The message's last frame has been inflated: append the trailer
    /// (§7.2.2) to flush what the inflater holds, and reset the context if the
    /// peer does not keep it (§7.1.1).
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let r = if self.ended { Ok(()) } else { self.inflate(&TRAILER, out, limit) };
        if self.no_context_takeover || self.ended {
            // §7.2.3.4: after a block with BFINAL set, the next message starts
            // a new stream, with no context.
            self.reset();
        }
        r
    }

    /// Abandon a half-inflated message (the connection is failing anyway, but
    /// keep the state consistent).
    pub fn reset(&mut self) {
        self.decompress.reset(false);
        self.ended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(offers: &[&str]) -> Option<String> {
        let cfg = ServerDeflateConfig { enabled: true, force_server_no_context_takeover: false };
        server_negotiate(offers.iter().map(|o| o.as_bytes()), cfg).map(|p| p.response())
    }

    #[test]
    fn the_server_takes_the_first_acceptable_offer() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["permessage-deflate"], Some("permessage-deflate")),
            // What browsers send.
            (&["permessage-deflate; client_max_window_bits"], Some("permessage-deflate")),
            (&["permessage-deflate; client_max_window_bits=10"], Some("permessage-deflate")),
            (
                &["permessage-deflate; server_no_context_takeover"],
                Some("permessage-deflate; server_no_context_takeover"),
            ),
            (
                &["permessage-deflate; client_no_context_takeover"],
                Some("permessage-deflate; client_no_context_takeover"),
            ),
            (&["permessage-deflate; server_max_window_bits=8"], Some("permessage-deflate; server_max_window_bits=8")),
            (
                &["permessage-deflate; server_max_window_bits=\"12\""],
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            (
                &["PerMessage-Deflate ;  SERVER_NO_CONTEXT_TAKEOVER"],
                Some("permessage-deflate; server_no_context_takeover"),
            ),
            // Other extensions are skipped; several headers are one list.
            (
                &["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=10, permessage-deflate"],
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            // §7: declined offers fall through to the next one.
            (
                &["permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover"],
                Some("permessage-deflate; client_no_context_takeover"),
            ),
            (&["permessage-deflate; server_max_window_bits=16"], None),
            (&["permessage-deflate; server_max_window_bits=08"], None),
            (&["permessage-deflate; server_max_window_bits"], None),
            (&["permessage-deflate; client_max_window_bits=0"], None),
            (&["permessage-deflate; server_no_context_takeover=1"], None),
            (&["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
            (&["permessage-deflate; mystery"], None),
            // Not the §9.1 grammar: the whole header is declined.
            (&["permessage-deflate; server_max_window_bits=\"1 2\""], None),
            (&["permessage-deflate; =3"], None),
            (&["x-other"], None),
            (&[], None),
        ];
        for (offers, expected) in cases {
            assert_eq!(server(offers).as_deref(), *expected, "{offers:?}");
        }
        let off = ServerDeflateConfig { enabled: false, force_server_no_context_takeover: true };
        assert_eq!(server_negotiate([&b"permessage-deflate"[..]].into_iter(), off), None);
        let forced = ServerDeflateConfig { enabled: true, force_server_no_context_takeover: true };
        let p = server_negotiate([&b"permessage-deflate"[..]].into_iter(), forced).unwrap();
        assert_eq!(p.response(), "permessage-deflate; server_no_context_takeover");
        assert!(p.server_output_is_shareable());
    }

    #[test]
    fn the_client_checks_the_response() {
        let check = |h: &[&str]| client_check_response(h.iter().map(|v| v.as_bytes()));
        assert_eq!(check(&[]), Ok(None));
        assert_eq!(check(&["permessage-deflate"]), Ok(Some(DeflateParams::default())));
        let p = check(&[
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9; server_max_window_bits=10",
        ])
        .unwrap()
        .unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!((p.client_max_window_bits, p.server_max_window_bits), (9, 10));
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; foo",
        ] {
            assert_eq!(check(&[bad]), Err(ResponseError::BadParameter), "{bad}");
        }
        assert_eq!(check(&["permessage-deflate, permessage-deflate"]), Err(ResponseError::Malformed));
        assert_eq!(check(&["x-webkit-deflate-frame"]), Err(ResponseError::Malformed));
        assert_eq!(check(&["permessage-deflate; a=\"b"]), Err(ResponseError::Malformed));
        assert_eq!(client_offer(), "permessage-deflate; client_max_window_bits");
    }

    /// Inflate a whole message, the compressed bytes cut at `cut`.
    fn inflate_split(data: &[u8], cut: usize, limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut i = Inflater::new(false);
        let mut out = Vec::new();
        i.inflate(&data[..cut], &mut out, limit)?;
        i.inflate(&data[cut..], &mut out, limit)?;
        i.finish(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn rfc_7692_7_2_3_payloads_at_every_split() {
        let vectors: &[&[u8]] = &[
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], // §7.2.3.1
            &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00], // §7.2.3.3
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], // §7.2.3.4
            &[0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00], // §7.2.3.5
        ];
        for v in vectors {
            for cut in 0..=v.len() {
                assert_eq!(inflate_split(v, cut, 5).as_deref(), Ok(&b"Hello"[..]), "{v:02x?} cut at {cut}");
            }
            // One byte short of room: too big.
            assert_eq!(inflate_split(v, v.len(), 4), Err(InflateError::TooBig));
        }
        // §7.2.3.1 and §7.2.3.2: our compressor produces the RFC's bytes, and
        // with context takeover the second "Hello" is a back-reference.
        let mut d = Deflater::new(false, MAX_WINDOW_BITS);
        assert_eq!(d.compress(b"Hello"), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(d.compress(b"Hello"), [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut i = Inflater::new(false);
        for m in [&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..], &[0xf2, 0x00, 0x11, 0x00, 0x00]] {
            let mut out = Vec::new();
            i.inflate(m, &mut out, 100).unwrap();
            i.finish(&mut out, 100).unwrap();
            assert_eq!(out, b"Hello");
        }
        // Without context takeover, each message stands alone.
        let mut d = Deflater::new(true, MAX_WINDOW_BITS);
        assert_eq!(d.compress(b"Hello"), d.compress(b"Hello"));
        // §7.2.3.6: an empty message.
        assert_eq!(Deflater::new(false, 15).compress(b""), [0x00]);
        assert_eq!(inflate_split(&[0x00], 0, 0).as_deref(), Ok(&b""[..]));
    }

    #[test]
    fn round_trips_with_every_window() {
        let text: Vec<u8> = (0..20_000u32).map(|i| b"abcdefghij"[(i * i % 7) as usize]).collect();
        for bits in MIN_WINDOW_BITS..=MAX_WINDOW_BITS {
            for no_context in [false, true] {
                let mut d = Deflater::new(no_context, bits);
                let mut i = Inflater::new(no_context);
                for _ in 0..3 {
                    let c = d.compress(&text);
                    assert!(c.len() < text.len());
                    let mut out = Vec::new();
                    i.inflate(&c, &mut out, text.len()).unwrap();
                    i.finish(&mut out, text.len()).unwrap();
                    assert_eq!(out, text);
                }
            }
        }
    }

    #[test]
    fn garbage_is_bad_data_and_a_final_block_ends_the_stream() {
        assert_eq!(inflate_split(&[0xff, 0xff, 0xff], 1, 100), Err(InflateError::BadData));
        // §7.2.3.4's final block: the next message starts a new stream.
        let mut i = Inflater::new(false);
        for _ in 0..2 {
            let mut out = Vec::new();
            i.inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], &mut out, 100).unwrap();
            i.finish(&mut out, 100).unwrap();
            assert_eq!(out, b"Hello");
        }
    }

    #[test]
    fn a_bomb_stops_one_byte_past_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = Deflater::new(true, 15).compress(&zeros);
        assert!(bomb.len() < 2048, "1 MiB of zeros is about 1 KiB compressed: {}", bomb.len());
        for limit in [0, 1, 1000, 64 * 1024, (1 << 20) - 1] {
            let mut i = Inflater::new(false);
            let mut out = Vec::new();
            let r = i.inflate(&bomb, &mut out, limit).and_then(|()| i.finish(&mut out, limit));
            assert_eq!(r, Err(InflateError::TooBig), "limit {limit}");
            assert_eq!(i.inflated(), limit as u64 + 1, "work done");
            assert!(out.capacity() <= limit + 1, "memory: {} for limit {limit}", out.capacity());
        }
    }
}
