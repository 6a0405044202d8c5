//! The Redis broker against a real `redis-server` (each test starts its own on a free
//! loopback port and stops it), and the RESP codec against Redis and `redis-cli`, peers
//! this project did not write.
//!
//! Needs redis-server and redis-cli (Debian: redis-server, redis-tools; scripts/test.sh
//! installs them). Missing: said loudly, and a failure under CI=true.

mod common;

use bytes::BytesMut;
use common::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire_academy::proto::resp::{self, Limits, Value};

/// Sends one command with the codec and reads its reply with the codec, byte by byte
/// as it arrives (so every reply is also parsed from each of its prefixes).
async fn command(s: &mut TcpStream, args: &[&[u8]]) -> Value {
    let mut out = BytesMut::new();
    resp::encode_command(args, &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some((v, n)) = resp::parse(&buf, &Limits::default()).unwrap() {
            assert_eq!(n, buf.len(), "one reply per command, nothing more");
            return v;
        }
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(common::LIMIT, s.read(&mut byte)).await.expect("Redis answers").unwrap();
        assert_eq!(n, 1, "Redis closed the connection mid-reply: {:?}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
}

fn bulk(s: &[u8]) -> Value {
    Value::Bulk(bytes::Bytes::copy_from_slice(s))
}

#[tokio::test]
async fn the_codec_speaks_resp_with_a_real_redis_and_redis_cli_agrees() {
    let Some(redis) = RedisServer::start() else { return };
    let mut s = TcpStream::connect(("127.0.0.1", redis.port)).await.unwrap();

    assert_eq!(command(&mut s, &[b"PING"]).await, Value::Simple("PONG".into()));
    // A value with CRLF, a NUL and non-ASCII inside: bulk strings are binary-safe.
    let odd: &[u8] = b"line one\r\nline two \x00 \xc3\xa9";
    assert_eq!(command(&mut s, &[b"SET", b"odd", odd]).await, Value::Simple("OK".into()));
    assert_eq!(command(&mut s, &[b"GET", b"odd"]).await, bulk(odd));
    assert_eq!(command(&mut s, &[b"STRLEN", b"odd"]).await, Value::Integer(odd.len() as i64));
    // redis-cli, another client, reads what our encoder wrote, byte for byte.
    assert_eq!(redis.cli(&["--no-raw", "GET", "odd"]), r#""line one\r\nline two \x00 \xc3\xa9""#);
    // And we read what redis-cli wrote.
    redis.cli(&["RPUSH", "list", "a", "", "ccc"]);
    assert_eq!(
        command(&mut s, &[b"LRANGE", b"list", b"0", b"-1"]).await,
        Value::Array(vec![bulk(b"a"), bulk(b""), bulk(b"ccc")])
    );
    assert_eq!(command(&mut s, &[b"GET", b"missing"]).await, Value::Null, "null bulk string");
    assert_eq!(command(&mut s, &[b"INCR", b"n"]).await, Value::Integer(1));
    assert_eq!(command(&mut s, &[b"INCRBY", b"n", b"-5"]).await, Value::Integer(-4), "negative integers");
    match command(&mut s, &[b"INCR", b"list"]).await {
        Value::Error(e) => assert!(e.starts_with("WRONGTYPE"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    match command(&mut s, &[b"NOSUCHCOMMAND"]).await {
        Value::Error(e) => assert!(e.starts_with("ERR unknown command"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Nested arrays and a null inside one, from a Lua script (what the broker's scripts return).
    let nested = command(&mut s, &[b"EVAL", b"return {1, {2, 'x'}, redis.call('GET', 'missing')}", b"0"]).await;
    // (A missing key is Lua `false` inside the script, which Redis sends as a null bulk string.)
    let want = Value::Array(vec![Value::Integer(1), Value::Array(vec![Value::Integer(2), bulk(b"x")]), Value::Null]);
    assert_eq!(nested, want);
    // A large bulk string (past one read): 1 MiB.
    let big = vec![b'z'; 1 << 20];
    assert_eq!(command(&mut s, &[b"SET", b"big", &big]).await, Value::Simple("OK".into()));
    assert_eq!(redis.cli(&["STRLEN", "big"]), (1u32 << 20).to_string());
    let mut out = BytesMut::new();
    resp::encode_command(&[&b"GET"[..], b"big"], &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, _)) = resp::parse(&buf, &Limits::default()).unwrap() {
            break v;
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(v, bulk(&big));
    // A limit below it refuses it from the length line alone.
    let small = Limits { max_bulk: 1000, ..Limits::default() };
    assert_eq!(resp::parse(&buf, &small).unwrap_err(), resp::RespError::BulkTooLong(1 << 20));
}

#[tokio::test]
async fn the_codec_reads_pubsub_messages_published_by_redis_cli() {
    let Some(redis) = RedisServer::start() else { return };
    let mut sub = TcpStream::connect(("127.0.0.1", redis.port)).await.unwrap();
    let confirm = command(&mut sub, &[b"SUBSCRIBE", b"news"]).await;
    assert_eq!(confirm, Value::Array(vec![bulk(b"subscribe"), bulk(b"news"), Value::Integer(1)]));
    assert_eq!(redis.cli(&["PUBLISH", "news", "hello\r\nworld"]), "1", "one subscriber received it");
    // Read it in pieces as small as one byte.
    let mut buf = Vec::new();
    let v = loop {
        if let Some((v, n)) = resp::parse(&buf, &Limits::default()).unwrap() {
            assert_eq!(n, buf.len());
            break v;
        }
        let mut byte = [0u8; 1];
        assert_eq!(tokio::time::timeout(common::LIMIT, sub.read(&mut byte)).await.unwrap().unwrap(), 1);
        buf.push(byte[0]);
    };
    assert_eq!(v, Value::Array(vec![bulk(b"message"), bulk(b"news"), bulk(b"hello\r\nworld")]));
}
