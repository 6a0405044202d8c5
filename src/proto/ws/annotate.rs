//! A human-readable reading of frames (RFC 6455 §5.2, §5.3, §5.5.1), for the
//! byte-trace annotator (`--trace-bytes`) and `decode ws`.
//!
//! Pure functions from a frame's typed parts ([`FrameParts`], which
//! `frame.rs` reads: each part's byte range, the payload unmasked, a Close
//! body's code and reason) to lines of text; no rule of the layout is
//! restated here. The trace tap that calls them sits beside the socket; the
//! session never knows it exists. For example, the RFC's masked "Hello"
//! (§5.7) reads:
//!
//! ```text
//! FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d
//! masking key: 37 fa 21 3d
//! payload (5 bytes, UTF-8): "Hello"
//! ```

use super::frame::{CloseBody, CloseBodyError, FrameParts, close_code_name};

/// Payloads longer than this are shown in part, with a count of the rest;
/// the hexdump above the annotation still shows every byte.
pub const MAX_SHOWN_PAYLOAD: usize = 1024;

/// Describe one frame: its header, its masking key, and its payload
/// unmasked, as text if it is UTF-8 and as hex otherwise; for a Close frame,
/// its code and reason. Each line is one of the functions below, so a caller
/// that pins lines to bytes (the trace) uses them one part at a time.
pub fn annotate_frame(frame: &FrameParts) -> Vec<String> {
    let mut lines = vec![header_line(frame)];
    lines.extend(key_line(frame));
    lines.extend(partial_line(frame));
    lines.push(payload_line(frame));
    lines
}

/// The header (`frame.base` and `frame.ext_len`), e.g.
/// `FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d`.
pub fn header_line(frame: &FrameParts) -> String {
    frame.header.describe()
}

/// The masking key (`frame.key`), if the frame has one.
pub fn key_line(frame: &FrameParts) -> Option<String> {
    frame.header.mask.map(|k| format!("masking key: {:02x} {:02x} {:02x} {:02x}", k[0], k[1], k[2], k[3]))
}

/// How much of the payload has arrived, if not all of it.
pub fn partial_line(frame: &FrameParts) -> Option<String> {
    (!frame.is_complete())
        .then(|| format!("partial payload: {} of {} bytes", frame.data.len(), frame.header.payload_len))
}

/// The payload (`frame.payload`), unmasked: a Close frame's code and reason, or the
/// bytes as text or hex.
pub fn payload_line(frame: &FrameParts) -> String {
    match &frame.close {
        None => describe_payload(&frame.data),
        Some(CloseBody::NoCode) => "close: no status code".to_string(),
        Some(CloseBody::Code(code, reason)) => {
            format!("close code={code} ({}) reason={reason:?}", close_code_name(*code))
        }
        Some(CloseBody::Invalid(CloseBodyError::OneByte)) => {
            "close body of 1 byte: invalid (a code needs 2)".to_string()
        }
        Some(CloseBody::Invalid(CloseBodyError::InvalidCode(code))) => {
            format!("close code={code} ({}): invalid in a Close frame", close_code_name(*code))
        }
        Some(CloseBody::Invalid(CloseBodyError::InvalidUtf8(code))) => {
            format!("close code={code}: reason is not UTF-8: {}", hex(&frame.data[2..]))
        }
    }
}

/// `payload (N bytes, UTF-8): "..."` or `payload (N bytes, hex): ..`.
fn describe_payload(data: &[u8]) -> String {
    if data.is_empty() {
        return "payload: empty".to_string();
    }
    let shown = data.len().min(MAX_SHOWN_PAYLOAD);
    let more = if shown < data.len() { format!(" ... ({} more bytes)", data.len() - shown) } else { String::new() };
    match std::str::from_utf8(data) {
        Ok(text) => {
            // Cut at a character boundary; {:?} escapes control characters
            // so a payload cannot mess up the terminal.
            let cut = text.floor_char_boundary(shown);
            let more = if cut < data.len() { format!(" ... ({} more bytes)", data.len() - cut) } else { String::new() };
            format!("payload ({} bytes, UTF-8): {:?}{more}", data.len(), &text[..cut])
        }
        Err(_) => format!("payload ({} bytes, hex): {}{more}", data.len(), hex(&data[..shown])),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::frame::{OpCode, encode_frame};
    use super::*;

    fn annotate(wire: &[u8]) -> Vec<String> {
        annotate_frame(&FrameParts::read(wire).unwrap().unwrap())
    }

    #[test]
    fn rfc_masked_hello() {
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(
            annotate(&wire),
            [
                "FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d",
                "masking key: 37 fa 21 3d",
                "payload (5 bytes, UTF-8): \"Hello\"",
            ]
        );
    }

    #[test]
    fn binary_payload_as_hex_and_long_payload_cut() {
        let wire = encode_frame(OpCode::Binary, true, &[0xde, 0xad, 0xbe, 0xef], None);
        assert_eq!(annotate(&wire)[1], "payload (4 bytes, hex): de ad be ef");
        let long = encode_frame(OpCode::Text, true, &[b'a'; 2000], None);
        let lines = annotate(&long);
        assert!(lines[1].ends_with(" ... (976 more bytes)"), "{}", lines[1]);
        assert!(lines[0].contains("len=2000 (16-bit)"));
        let empty = encode_frame(OpCode::Ping, true, b"", None);
        assert_eq!(annotate(&empty)[1], "payload: empty");
        let ctl = encode_frame(OpCode::Text, true, b"a\nb", None);
        assert_eq!(annotate(&ctl)[1], "payload (3 bytes, UTF-8): \"a\\nb\"");
    }

    #[test]
    fn close_frames() {
        let key = Some([1, 2, 3, 4]);
        let wire = encode_frame(OpCode::Close, true, b"\x03\xe8bye", key);
        let lines = annotate(&wire);
        assert_eq!(lines[1], "masking key: 01 02 03 04");
        assert_eq!(lines[2], "close code=1000 (normal closure) reason=\"bye\"");
        let empty = encode_frame(OpCode::Close, true, b"", None);
        assert_eq!(annotate(&empty)[1], "close: no status code");
        let bad = encode_frame(OpCode::Close, true, b"\x03\xed", None);
        assert!(annotate(&bad)[1].contains("1005") && annotate(&bad)[1].contains("invalid"));
        let one = encode_frame(OpCode::Close, true, b"\x03", None);
        assert!(annotate(&one)[1].contains("1 byte"));
        let utf = encode_frame(OpCode::Close, true, b"\x03\xe8\xff", None);
        assert_eq!(annotate(&utf)[1], "close code=1000: reason is not UTF-8: ff");
    }

    #[test]
    fn partial_payload_is_flagged() {
        let wire = encode_frame(OpCode::Text, true, b"Hello", None);
        let lines = annotate(&wire[..4]);
        assert_eq!(lines[1], "partial payload: 2 of 5 bytes");
        assert_eq!(lines[2], "payload (2 bytes, UTF-8): \"He\"");
    }
}
