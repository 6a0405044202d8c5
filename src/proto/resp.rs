//! RESP, the Redis serialization protocol: what a Redis client and server say to each
//! other (<https://redis.io/docs/latest/develop/reference/protocol-spec/>, "RESP
//! protocol description", cited below as "spec §NAME").
//!
//! Pure, like every codec here: [`parse`] takes the bytes read so far and returns one
//! [`Value`] and how many bytes it used, or `Ok(None)` when more bytes are needed;
//! [`encode_command`] turns a command's arguments into the bytes to send.
//!
//! RESP2 is what the broker speaks (a connection is RESP2 until it sends `HELLO 3`, and
//! the broker never does): simple strings `+`, errors `-`, integers `:`, bulk strings
//! `$` (with the null bulk `$-1`) and arrays `*` (with the null array `*-1`). The three
//! RESP3 types a RESP2 reader may still meet from a peer that speaks RESP3 (null `_`,
//! boolean `#`, push `>`) are read too; the rest of RESP3 (maps, doubles, verbatim
//! strings…) is refused as unknown, since nothing the broker sends can provoke them.
//!
//! Every length comes from the peer, so each is bounded before anything is allocated
//! ([`Limits`]): a bulk string's length, an array's element count, how deeply arrays
//! nest. A value past a bound is an error, not a wait for more bytes.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest bulk string accepted: Redis's own default `proto-max-bulk-len` (512 MB).
pub const MAX_BULK: usize = 512 * 1024 * 1024;

/// Most elements in one array. A reply to a history read holds at most `--history`
/// messages plus a few numbers; a million is far above any configuration in use and
/// still bounds what a confused peer can make the reader reserve.
pub const MAX_ARRAY: usize = 1 << 20;

/// Deepest nesting of arrays. The broker's replies nest two deep at most (a pub/sub
/// message, a script's reply with its list of messages); 16 leaves room and keeps a
/// hostile `*1\r\n*1\r\n…` from recursing without end.
pub const MAX_DEPTH: usize = 16;

/// Longest line of a simple string, an error or a length (`+…`, `-…`, `:…`, `$N`).
/// Redis's own error messages are far shorter; a line is held whole while it arrives.
pub const MAX_LINE: usize = 64 * 1024;

/// The bounds a reader enforces; [`Limits::default`] is the constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_bulk: usize,
    pub max_array: usize,
    pub max_depth: usize,
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk: MAX_BULK, max_array: MAX_ARRAY, max_depth: MAX_DEPTH, max_line: MAX_LINE }
    }
}

/// One RESP value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK\r\n` (spec §Simple strings).
    Simple(String),
    /// `-ERR message\r\n` (spec §Simple errors): the command failed, the connection is fine.
    Error(String),
    /// `:1000\r\n` (spec §Integers).
    Integer(i64),
    /// `$5\r\nhello\r\n` (spec §Bulk strings): binary-safe.
    Bulk(Bytes),
    /// `*2\r\n…` (spec §Arrays).
    Array(Vec<Value>),
    /// RESP2's null bulk string `$-1\r\n` and null array `*-1\r\n` (spec §Null bulk
    /// strings, §Null arrays), and RESP3's `_\r\n` (spec §Nulls).
    Null,
    /// RESP3 `#t\r\n` / `#f\r\n` (spec §Booleans).
    Boolean(bool),
    /// RESP3 `>` (spec §Pushes): out-of-band data such as a pub/sub message.
    Push(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array (or a push).
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }
}

/// Why bytes are not RESP (or not RESP this reader accepts). The connection cannot be
/// trusted after one: the reader does not know where the next value starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A first byte that names no type this reader knows.
    UnknownType(u8),
    /// A length or integer that is not a decimal number (or is negative where a count is).
    BadNumber(String),
    /// A line not ended by CRLF, or a bulk string not followed by CRLF (spec: "the
    /// terminator is always CRLF").
    MissingCrlf,
    /// A bulk string longer than [`Limits::max_bulk`].
    BulkTooLong(usize),
    /// An array with more elements than [`Limits::max_array`].
    ArrayTooLong(usize),
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// A line longer than [`Limits::max_line`].
    LineTooLong,
    /// A simple string or error that is not UTF-8 text.
    NotText,
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "RESP: unknown type byte {:?}", *b as char),
            RespError::BadNumber(s) => write!(f, "RESP: {s:?} is not a valid number here"),
            RespError::MissingCrlf => write!(f, "RESP: a line or bulk string is not ended by CRLF"),
            RespError::BulkTooLong(n) => write!(f, "RESP: a bulk string of {n} bytes is over the limit"),
            RespError::ArrayTooLong(n) => write!(f, "RESP: an array of {n} elements is over the limit"),
            RespError::TooDeep => write!(f, "RESP: arrays nested deeper than the limit"),
            RespError::LineTooLong => write!(f, "RESP: a line is longer than the limit"),
            RespError::NotText => write!(f, "RESP: a simple string or error is not UTF-8"),
        }
    }
}

impl std::error::Error for RespError {}

/// Reads one value from the start of `buf`: `Ok(Some((value, bytes used)))`, or
/// `Ok(None)` when `buf` holds only the beginning of one.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, RespError> {
    let mut at = 0;
    Ok(value(buf, &mut at, limits, 0)?.map(|v| (v, at)))
}

/// One CRLF-terminated line from `at` (without its CRLF); moves `at` past it.
fn line<'a>(buf: &'a [u8], at: &mut usize, limits: &Limits) -> Result<Option<&'a [u8]>, RespError> {
    let rest = &buf[*at..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) if i > limits.max_line + 1 => Err(RespError::LineTooLong),
        // The spec's terminator is CRLF; a bare LF is refused (spec §RESP protocol description).
        Some(i) if i == 0 || rest[i - 1] != b'\r' => Err(RespError::MissingCrlf),
        Some(i) => {
            *at += i + 1;
            Ok(Some(&rest[..i - 1]))
        }
        None if rest.len() > limits.max_line + 1 => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Result<i64, RespError> {
    // Spec §Integers: an optional sign, then digits. Rust's parse also takes a leading
    // '+', which the spec allows too; nothing else (no spaces, no empty string).
    std::str::from_utf8(text)
        .ok()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| RespError::BadNumber(String::from_utf8_lossy(text).into_owned()))
}

fn text(bytes: &[u8]) -> Result<String, RespError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| RespError::NotText)
}

fn value(buf: &[u8], at: &mut usize, limits: &Limits, depth: usize) -> Result<Option<Value>, RespError> {
    let Some(&kind) = buf.get(*at) else { return Ok(None) };
    let mut pos = *at + 1;
    let Some(head) = line(buf, &mut pos, limits)? else { return Ok(None) };
    let v = match kind {
        b'+' => Value::Simple(text(head)?),
        b'-' => Value::Error(text(head)?),
        b':' => Value::Integer(number(head)?),
        b'_' if head.is_empty() => Value::Null,
        b'#' => match head {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => return Err(RespError::BadNumber(String::from_utf8_lossy(head).into_owned())),
        },
        b'$' => {
            let n = number(head)?;
            if n == -1 {
                Value::Null // spec §Null bulk strings
            } else {
                let n = usize::try_from(n).map_err(|_| RespError::BadNumber(n.to_string()))?;
                if n > limits.max_bulk {
                    return Err(RespError::BulkTooLong(n));
                }
                if buf.len() < pos + n + 2 {
                    return Ok(None);
                }
                if &buf[pos + n..pos + n + 2] != b"\r\n" {
                    return Err(RespError::MissingCrlf);
                }
                let data = Bytes::copy_from_slice(&buf[pos..pos + n]);
                pos += n + 2;
                Value::Bulk(data)
            }
        }
        b'*' | b'>' => {
            let n = number(head)?;
            if n == -1 && kind == b'*' {
                Value::Null // spec §Null arrays
            } else {
                let n = usize::try_from(n).map_err(|_| RespError::BadNumber(n.to_string()))?;
                if n > limits.max_array {
                    return Err(RespError::ArrayTooLong(n));
                }
                if depth + 1 > limits.max_depth {
                    return Err(RespError::TooDeep);
                }
                // Reserve no more than the bytes present could hold (each element is at
                // least three bytes): a large count costs nothing until it arrives.
                let mut items = Vec::with_capacity(n.min((buf.len() - pos) / 3));
                for _ in 0..n {
                    match value(buf, &mut pos, limits, depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                if kind == b'*' { Value::Array(items) } else { Value::Push(items) }
            }
        }
        other => return Err(RespError::UnknownType(other)),
    };
    *at = pos;
    Ok(Some(v))
}

/// Appends a command as the spec says clients send one: an array of bulk strings
/// (spec §Sending commands to a Redis server).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.put_u8(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.put_u8(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends any value in its RESP2 form (RESP3-only types as their RESP2 equivalents:
/// null as `$-1`, booleans as integers, a push as an array). For tests and tools; the
/// broker only ever sends commands.
pub fn encode(v: &Value, out: &mut BytesMut) {
    let line = |out: &mut BytesMut, kind: u8, body: &[u8]| {
        out.put_u8(kind);
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    };
    match v {
        Value::Simple(s) => line(out, b'+', s.as_bytes()),
        Value::Error(s) => line(out, b'-', s.as_bytes()),
        Value::Integer(i) => line(out, b':', i.to_string().as_bytes()),
        Value::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
        Value::Null => line(out, b'$', b"-1"),
        Value::Bulk(b) => {
            line(out, b'$', b.len().to_string().as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Array(items) | Value::Push(items) => {
            line(out, b'*', items.len().to_string().as_bytes());
            for i in items {
                encode(i, out);
            }
        }
    }
}

/// A value in one line, for the trace and for error messages: bulk strings as quoted
/// text (non-printable bytes escaped, long ones cut), arrays in brackets.
pub fn describe(v: &Value) -> String {
    const SHOWN: usize = 60;
    match v {
        Value::Simple(s) => format!("+{s}"),
        Value::Error(s) => format!("error {s:?}"),
        Value::Integer(i) => format!("{i}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Null => "nil".to_string(),
        Value::Bulk(b) => {
            let shown = String::from_utf8_lossy(&b[..b.len().min(SHOWN)]).into_owned();
            let more = if b.len() > SHOWN { format!("…({} bytes)", b.len()) } else { String::new() };
            format!("{shown:?}{more}")
        }
        Value::Array(items) | Value::Push(items) => {
            let inner: Vec<String> = items.iter().map(describe).collect();
            let kind = if matches!(v, Value::Push(_)) { "push" } else { "" };
            format!("{kind}[{}]", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::from(s.to_string()))
    }

    fn one(bytes: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
        parse(bytes, &Limits::default())
    }

    /// The examples of the spec, each with the value it stands for.
    fn spec_examples() -> Vec<(&'static [u8], Value)> {
        vec![
            (b"+OK\r\n", Value::Simple("OK".into())),
            (b"-Error message\r\n", Value::Error("Error message".into())),
            (
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                Value::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into()),
            ),
            (b":0\r\n", Value::Integer(0)),
            (b":1000\r\n", Value::Integer(1000)),
            (b":-42\r\n", Value::Integer(-42)),
            (b":+7\r\n", Value::Integer(7)),
            (b"$5\r\nhello\r\n", bulk("hello")),
            (b"$0\r\n\r\n", bulk("")),
            (b"$-1\r\n", Value::Null),
            (b"*0\r\n", Value::Array(vec![])),
            (b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", Value::Array(vec![bulk("hello"), bulk("world")])),
            (b"*3\r\n:1\r\n:2\r\n:3\r\n", Value::Array(vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)])),
            (
                b"*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n$5\r\nhello\r\n",
                Value::Array(vec![
                    Value::Integer(1),
                    Value::Integer(2),
                    Value::Integer(3),
                    Value::Integer(4),
                    bulk("hello"),
                ]),
            ),
            (
                b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n",
                Value::Array(vec![
                    Value::Array(vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]),
                    Value::Array(vec![Value::Simple("Hello".into()), Value::Error("World".into())]),
                ]),
            ),
            (b"*-1\r\n", Value::Null),
            (
                b"*3\r\n$5\r\nhello\r\n$-1\r\n$5\r\nworld\r\n",
                Value::Array(vec![bulk("hello"), Value::Null, bulk("world")]),
            ),
            (b"_\r\n", Value::Null),
            (b"#t\r\n", Value::Boolean(true)),
            (b"#f\r\n", Value::Boolean(false)),
            (
                b">3\r\n$7\r\nmessage\r\n$5\r\nfirst\r\n$5\r\nHello\r\n",
                Value::Push(vec![bulk("message"), bulk("first"), bulk("Hello")]),
            ),
        ]
    }

    #[test]
    fn the_specs_examples() {
        for (bytes, want) in spec_examples() {
            assert_eq!(one(bytes).unwrap(), Some((want, bytes.len())), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn every_example_split_at_every_offset_needs_more_then_parses() {
        for (bytes, want) in spec_examples() {
            for cut in 0..bytes.len() {
                assert_eq!(one(&bytes[..cut]).unwrap(), None, "{:?} cut at {cut}", String::from_utf8_lossy(bytes));
            }
            // And followed by the next value: only its own bytes are used.
            let mut two = bytes.to_vec();
            two.extend_from_slice(b"+next\r\n");
            let (v, n) = one(&two).unwrap().unwrap();
            assert_eq!((v, n), (want, bytes.len()));
            assert_eq!(one(&two[n..]).unwrap().unwrap().0, Value::Simple("next".into()));
        }
    }

    #[test]
    fn a_pubsub_message_arriving_byte_by_byte() {
        // What a subscribed connection reads (spec §Pub/Sub messages in RESP2).
        let wire = b"*3\r\n$7\r\nmessage\r\n$11\r\nwa:messages\r\n$9\r\nlobby 1 x\r\n";
        let mut buf = Vec::new();
        let mut got = None;
        for &b in wire.iter() {
            assert!(got.is_none(), "a value before its last byte");
            buf.push(b);
            got = one(&buf).unwrap();
        }
        let (v, n) = got.unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(v, Value::Array(vec![bulk("message"), bulk("wa:messages"), bulk("lobby 1 x")]));
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = BytesMut::new();
        encode_command(&["LLEN", "mylist"], &mut out);
        // The spec's own example (spec §Sending commands to a Redis server).
        assert_eq!(&out[..], b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n");
        out.clear();
        encode_command(&[&b"SET"[..], b"k", b"a\r\nb\x00"], &mut out);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\x00\r\n", "binary-safe");
        let (v, n) = one(&out).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(v.as_array().unwrap()[2].as_bytes().unwrap(), b"a\r\nb\x00");
    }

    #[test]
    fn encode_then_parse_is_the_same_value() {
        for (bytes, want) in spec_examples() {
            let mut out = BytesMut::new();
            encode(&want, &mut out);
            let back = one(&out).unwrap().unwrap().0;
            let expect = match want {
                Value::Boolean(b) => Value::Integer(b as i64),
                Value::Push(v) => Value::Array(v),
                v => v,
            };
            assert_eq!(back, expect, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(one(b"!5\r\n").unwrap_err(), RespError::UnknownType(b'!'));
        assert_eq!(one(b"+OK\n").unwrap_err(), RespError::MissingCrlf, "bare LF");
        assert_eq!(one(b":12a\r\n").unwrap_err(), RespError::BadNumber("12a".into()));
        assert_eq!(one(b":\r\n").unwrap_err(), RespError::BadNumber("".into()));
        assert_eq!(one(b"$-2\r\n").unwrap_err(), RespError::BadNumber("-2".into()));
        assert_eq!(one(b"*-5\r\n").unwrap_err(), RespError::BadNumber("-5".into()));
        assert_eq!(one(b">-1\r\n").unwrap_err(), RespError::BadNumber("-1".into()), "a push is never null");
        assert_eq!(one(b"$3\r\nabcd\r\n").unwrap_err(), RespError::MissingCrlf, "bulk longer than its length");
        assert_eq!(one(b"#x\r\n").unwrap_err(), RespError::BadNumber("x".into()));
        assert_eq!(one(b"+\xff\r\n").unwrap_err(), RespError::NotText);
        assert_eq!(one(b"%1\r\n").unwrap_err(), RespError::UnknownType(b'%'), "RESP3 maps are not read");
    }

    #[test]
    fn limits_are_refused_before_the_bytes_arrive() {
        let limits = Limits { max_bulk: 10, max_array: 3, max_depth: 2, max_line: 8 };
        let p = |b: &[u8]| parse(b, &limits);
        assert_eq!(p(b"$10\r\n0123456789\r\n").unwrap().unwrap().1, 17, "at the limit: fine");
        assert_eq!(p(b"$11\r\n").unwrap_err(), RespError::BulkTooLong(11), "refused from the length alone");
        assert_eq!(p(b"*4\r\n").unwrap_err(), RespError::ArrayTooLong(4));
        assert!(p(b"*1\r\n*1\r\n:1\r\n").unwrap().is_some(), "two deep: fine");
        assert_eq!(p(b"*1\r\n*1\r\n*1\r\n").unwrap_err(), RespError::TooDeep);
        assert_eq!(p(b"+123456789").unwrap(), None, "eight bytes and a CR may yet be a line");
        assert_eq!(p(b"+1234567890").unwrap_err(), RespError::LineTooLong, "an endless line is refused unfinished");
        assert_eq!(p(b"+12345678\r\n").unwrap().unwrap().0, Value::Simple("12345678".into()));
        assert_eq!(p(b"+123456789\r\n").unwrap_err(), RespError::LineTooLong);
        // The defaults are the named constants.
        let d = Limits::default();
        assert_eq!((d.max_bulk, d.max_array, d.max_depth, d.max_line), (MAX_BULK, MAX_ARRAY, MAX_DEPTH, MAX_LINE));
        assert_eq!(one(format!("${}\r\n", MAX_BULK + 1).as_bytes()).unwrap_err(), RespError::BulkTooLong(MAX_BULK + 1));
        assert_eq!(
            one(format!("*{}\r\n", MAX_ARRAY + 1).as_bytes()).unwrap_err(),
            RespError::ArrayTooLong(MAX_ARRAY + 1)
        );
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(one(deep.as_bytes()).unwrap_err(), RespError::TooDeep);
    }

    #[test]
    fn a_huge_announced_array_reserves_nothing_up_front() {
        // A million elements announced, three bytes present: need more, no panic, no
        // million-element allocation.
        assert_eq!(one(b"*1000000\r\n:1\r\n").unwrap(), None);
    }

    #[test]
    fn describe_is_one_readable_line() {
        let v = Value::Array(vec![bulk("message"), bulk("wa:messages"), bulk("lobby 3 hi")]);
        assert_eq!(describe(&v), r#"["message", "wa:messages", "lobby 3 hi"]"#);
        assert_eq!(describe(&Value::Integer(3)), "3");
        assert_eq!(describe(&Value::Error("ERR x".into())), r#"error "ERR x""#);
        let long = bulk(&"x".repeat(100));
        assert!(describe(&long).ends_with("…(100 bytes)"));
    }
}
