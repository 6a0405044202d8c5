//! A human-readable reading of frames (RFC 6455 §5.2, §5.3, §5.5.1), for the
//! byte-trace annotator (`--trace-bytes`) and `decode ws`.
//!
//! Pure functions from bytes to lines of text. The trace tap that calls them
//! sits beside the socket; the session never knows it exists. For example,
//! the RFC's masked "Hello" (§5.7) reads:
//!
//! ```text
//! FIN=1 RSV=000 opcode=0x1 text MASK=1 len=5 (7-bit) key=37fa213d
//! masking key: 37 fa 21 3d
//! payload (5 bytes, UTF-8): "Hello"
//! ```

use super::frame::{CloseBodyError, FrameError, FrameHeader, OpCode, close_code_name, parse_close_body};
use super::mask::apply_mask;

/// Payloads longer than this are shown in part, with a count of the rest;
/// the hexdump above the annotation still shows every byte.
pub const MAX_SHOWN_PAYLOAD: usize = 1024;

/// Describe one frame: its header, its masking key, and its payload
/// unmasked, as text if it is UTF-8 and as hex otherwise; for a Close frame,
/// its code and reason. `payload` is the payload as it was on the wire
/// (masked if the header has a key); it may be shorter than the header
/// announces if only part has been seen.
pub fn annotate_frame(header: &FrameHeader, payload: &[u8]) -> Vec<String> {
    let mut lines = vec![header.describe()];
    let mut data = payload.to_vec();
    if let Some(k) = header.mask {
        lines.push(format!("masking key: {:02x} {:02x} {:02x} {:02x}", k[0], k[1], k[2], k[3]));
        apply_mask(&mut data, k, 0);
    }
    if (data.len() as u64) < header.payload_len {
        lines.push(format!("partial payload: {} of {} bytes", data.len(), header.payload_len));
    }

    if header.opcode == OpCode::Close {
        lines.push(match parse_close_body(&data) {
            Ok(None) => "close: no status code".to_string(),
            Ok(Some((code, reason))) => format!("close code={code} ({}) reason={reason:?}", close_code_name(code)),
            Err(CloseBodyError::OneByte) => "close body of 1 byte: invalid (a code needs 2)".to_string(),
            Err(CloseBodyError::InvalidCode(code)) => {
                format!("close code={code} ({}): invalid in a Close frame", close_code_name(code))
            }
            Err(CloseBodyError::InvalidUtf8) => format!(
                "close code={}: reason is not UTF-8: {}",
                u16::from_be_bytes([data[0], data[1]]),
                hex(&data[2..])
            ),
        });
        return lines;
    }

    lines.push(describe_payload(&data));
    lines
}

/// `payload (N bytes, UTF-8): "..."` or `payload (N bytes, hex): ..`.
pub fn describe_payload(data: &[u8]) -> String {
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

/// Describe every complete frame at the start of `buf` (e.g. the bytes
/// given to `decode ws`). Returns the lines and how many bytes the complete
/// frames used; an incomplete last frame is mentioned but not consumed, and
/// an unreadable header stops the walk.
pub fn annotate_frames(buf: &[u8]) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        let (header, header_len) = match FrameHeader::parse(rest) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                lines.push(format!("incomplete header at offset {offset}: {} bytes", rest.len()));
                break;
            }
            Err(e @ FrameError::LengthMsbSet) => {
                lines.push(format!("invalid header at offset {offset}: {e}"));
                break;
            }
        };
        let available = (rest.len() - header_len) as u64;
        if available < header.payload_len {
            lines.push(format!(
                "incomplete frame at offset {offset}: {} of {} payload bytes present",
                available, header.payload_len
            ));
            break;
        }
        let len = header.payload_len as usize;
        lines.push(format!("frame at offset {offset}: {header_len}-byte header, {len}-byte payload"));
        for line in annotate_frame(&header, &rest[header_len..header_len + len]) {
            lines.push(format!("  {line}"));
        }
        offset += header_len + len;
    }
    (lines, offset)
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_frame;
    use super::*;

    fn annotate(wire: &[u8]) -> Vec<String> {
        let (h, n) = FrameHeader::parse(wire).unwrap().unwrap();
        annotate_frame(&h, &wire[n..])
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
    fn walks_a_byte_stream() {
        let mut buf = vec![0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        buf.extend_from_slice(&[0x81, 0x05, b'H']); // incomplete
        let (lines, used) = annotate_frames(&buf);
        assert_eq!(used, 9);
        assert_eq!(lines[0], "frame at offset 0: 2-byte header, 3-byte payload");
        assert_eq!(lines[1], "  FIN=0 RSV=000 opcode=0x1 text MASK=0 len=3 (7-bit)");
        assert_eq!(lines[2], "  payload (3 bytes, UTF-8): \"Hel\"");
        assert_eq!(lines[3], "frame at offset 5: 2-byte header, 2-byte payload");
        assert_eq!(lines[4], "  FIN=1 RSV=000 opcode=0x0 continuation MASK=0 len=2 (7-bit)");
        assert_eq!(lines[6], "incomplete frame at offset 9: 1 of 5 payload bytes present");
        let (lines, used) = annotate_frames(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(used, 0);
        assert!(lines[0].starts_with("invalid header at offset 0"));
    }

    #[test]
    fn partial_payload_is_flagged() {
        let wire = encode_frame(OpCode::Text, true, b"Hello", None);
        let (h, n) = FrameHeader::parse(&wire).unwrap().unwrap();
        let lines = annotate_frame(&h, &wire[n..n + 2]);
        assert_eq!(lines[1], "partial payload: 2 of 5 bytes");
        assert_eq!(lines[2], "payload (2 bytes, UTF-8): \"He\"");
    }
}
