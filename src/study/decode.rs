//! `wire-academy decode KIND`: bytes a learner captured, read as the trace reads them.
//!
//! The bytes (hex in any form people paste, see [`crate::trace::hexread`], or raw) go
//! through the same [`Conversation`] the `--trace-bytes` tap feeds, started where the
//! bytes start ([`Start`]), and come out as the trace prints them: `xxd` rows, then a note
//! per unit. What the notes cannot say is added after them: bytes left over that do not
//! complete a unit (and, for a frame, how many more it needs), and for `ws` what the
//! receiving end's session would do with the frames: deliver them, or fail the
//! connection with which close code (an unmasked frame from a client is a `1002`,
//! RFC 6455 §5.1).
//!
//! Pure: bytes in, text out. The command line (`main.rs`) reads the input.

use std::fmt::Write as _;

use crate::proto::Role;
use crate::proto::ws::frame::FrameParts;
use crate::proto::ws::{Event as WsEvent, FrameHeader, Session, SessionLimits, annotate_frame};
use crate::trace::annotate::{Conversation, Start};
use crate::trace::{hexdump, tap::render_notes};

/// What the bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 messages from the start of a connection (requests or responses).
    Http,
    /// A chunked body alone (RFC 9112 §7.1).
    Chunked,
    /// An event-stream body alone (WHATWG HTML §9.2).
    Sse,
    /// WebSocket frames (RFC 6455 §5.2).
    Ws,
}

/// Largest message the `ws` session accepts while decoding (the server's default).
const MAX_MESSAGE: usize = crate::config::DEFAULT_MAX_MESSAGE;

/// Reads `bytes`, written by `from` (when `None`: guessed, and the guess said), that
/// sit at stream offset `offset`. Returns the reading, and whether the bytes were all
/// understood (no leftover, no failure).
pub fn decode(kind: Kind, from: Option<Role>, bytes: &[u8], offset: u64) -> (String, bool) {
    let mut out = String::new();
    let writer = from.unwrap_or_else(|| guess(kind, bytes));
    if from.is_none() && matches!(kind, Kind::Http | Kind::Ws) {
        let why = match (kind, writer) {
            (Kind::Http, Role::Server) => "it starts with a status line",
            (Kind::Http, Role::Client) => "it does not start with HTTP/",
            (_, Role::Client) => "its first frame is masked",
            (_, Role::Server) => "its first frame is not masked",
        };
        let other = name(if writer == Role::Client { Role::Server } else { Role::Client });
        let _ =
            writeln!(out, "read as written by the {} ({why}; --from {other} reads it the other way)\n", name(writer));
    }
    let start = match kind {
        Kind::Http => Start::Http,
        Kind::Chunked => Start::ChunkedBody,
        Kind::Sse => Start::EventStream,
        Kind::Ws => Start::WebSocket,
    };
    let mut conv = Conversation::starting(start);
    conv.set_offset(writer, offset);
    let notes = conv.bytes(writer, bytes);
    hexdump::rows(offset, bytes, &mut out);
    render_notes(&notes, &mut out);
    let mut whole = !notes.iter().any(|n| failed(&n.text));

    let left = conv.pending(writer);
    if !left.is_empty() {
        whole = false;
        let at = offset + (bytes.len() - left.len()) as u64;
        let _ = write!(out, "\nincomplete: the last {} bytes (from {at:08x}) ", left.len());
        let _ = match (kind, need_for_frame(left)) {
            (Kind::Ws, Some(more)) => {
                writeln!(out, "are part of a frame that needs {more} more byte{}", if more == 1 { "" } else { "s" })
            }
            (Kind::Ws, None) => writeln!(out, "are the start of a frame header"),
            (Kind::Http, _) => writeln!(out, "do not complete a unit yet (a head ends with an empty line)"),
            _ => writeln!(out, "do not complete a line yet"),
        };
        // A frame whose header has arrived: what the header already says.
        if kind == Kind::Ws
            && let Ok(Some(frame)) = FrameParts::read(left)
        {
            for line in annotate_frame(&frame) {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if kind == Kind::Ws {
        whole &= session_reading(writer, bytes, &mut out);
    }
    (out, whole)
}

fn name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
    }
}

/// Who most likely wrote the bytes.
fn guess(kind: Kind, bytes: &[u8]) -> Role {
    match kind {
        Kind::Http if !bytes.starts_with(b"HTTP/") => Role::Client,
        Kind::Ws if bytes.get(1).is_some_and(|b| b & 0x80 != 0) => Role::Client,
        _ => Role::Server,
    }
}

/// A note that says the reading stopped.
fn failed(text: &str) -> bool {
    ["refused", "unreadable", "not a readable", "framing error"].iter().any(|w| text.contains(w))
}

/// How many more bytes the frame at the front of `rest` needs, once its header says.
fn need_for_frame(rest: &[u8]) -> Option<u64> {
    match FrameHeader::parse(rest) {
        Ok(Some((header, header_len))) => Some(header_len as u64 + header.payload_len - rest.len() as u64),
        // The header's own length is known once its second byte is.
        Ok(None) => Some((FrameHeader::header_len(*rest.get(1)?) - rest.len()) as u64),
        Err(_) => None,
    }
}

/// What the receiving end's session makes of the frames: the messages it delivers, or
/// the close code it fails the connection with.
fn session_reading(writer: Role, bytes: &[u8], out: &mut String) -> bool {
    let limits = SessionLimits { max_message: MAX_MESSAGE, max_frame: MAX_MESSAGE };
    let mut session = match writer {
        Role::Client => Session::server(limits),
        Role::Server => Session::client(limits, || [0; 4]),
    };
    let reader = name(match writer {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    });
    let _ = writeln!(out, "\nthe {reader}'s session (RFC 6455 §5-§7) reads:");
    session.receive_data(bytes);
    let mut ok = true;
    let mut any = false;
    while let Some(event) = session.next_event() {
        any = true;
        let _ = match event {
            WsEvent::Text(t) => writeln!(out, "  text message ({} bytes): {:?}", t.len(), t.as_str()),
            WsEvent::Binary(b) => writeln!(out, "  binary message ({} bytes)", b.len()),
            WsEvent::Ping(p) => writeln!(out, "  ping ({} bytes): answered with a pong", p.len()),
            WsEvent::Pong(p) => writeln!(out, "  pong ({} bytes)", p.len()),
            WsEvent::Close { code, reason } => match code {
                Some(c) => writeln!(out, "  close {c} {reason:?}: answered with a close"),
                None => writeln!(out, "  close without a code: answered with a close"),
            },
            WsEvent::ProtocolError { code, reason } => {
                ok = false;
                writeln!(out, "  fails the connection: close {code} ({reason})")
            }
        };
    }
    if !any {
        let _ = writeln!(out, "  nothing yet: no complete message");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_client_frame_is_read_unmasked_and_delivered() {
        let (text, whole) =
            decode(Kind::Ws, None, &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58], 0);
        assert!(whole, "{text}");
        assert!(text.starts_with("read as written by the client (its first frame is masked"), "{text}");
        assert!(text.contains("ws unmasked payload (5 bytes, UTF-8): \"Hello\""), "{text}");
        assert!(text.contains("text message (5 bytes): \"Hello\""), "{text}");
    }

    #[test]
    fn an_unmasked_frame_from_a_client_fails_with_1002() {
        let (text, whole) = decode(Kind::Ws, Some(Role::Client), b"\x81\x05Hello", 0);
        assert!(!whole);
        assert!(text.contains("fails the connection: close 1002"), "{text}");
    }

    #[test]
    fn a_truncated_frame_says_how_much_more_it_needs() {
        let (text, whole) = decode(Kind::Ws, Some(Role::Server), b"\x81\x05Hel", 0);
        assert!(!whole);
        assert!(
            text.contains("the last 5 bytes (from 00000000) are part of a frame that needs 2 more bytes"),
            "{text}"
        );
        let (text, _) = decode(Kind::Ws, Some(Role::Server), b"\x82\x7e\x01", 0);
        assert!(text.contains("needs 1 more byte\n"), "{text}");
    }

    #[test]
    fn a_chunked_body_alone() {
        let (text, whole) = decode(Kind::Chunked, None, b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", 0);
        assert!(whole, "{text}");
        assert!(text.contains("chunked chunk-size line: 4 (hex) = 4 bytes of data follow"), "{text}");
        assert!(text.contains("chunk data, 5 bytes: \"pedia\""), "{text}");
        let (text, whole) = decode(Kind::Chunked, None, b"4\r\nWi", 0);
        assert!(whole, "data as it arrives is named: {text}");
        let (text, whole) = decode(Kind::Chunked, None, b"zz\r\n", 0);
        assert!(!whole && text.contains("chunked framing error"), "{text}");
    }

    #[test]
    fn an_event_stream_alone() {
        let (text, whole) = decode(Kind::Sse, None, b"retry: 3000\n\nid: 1\ndata: hello\n\n", 0);
        assert!(whole, "{text}");
        assert!(text.contains("sse blank line: dispatch event id=1"), "{text}");
    }
}
