//! The WebSocket client (RFC 6455, the client's side).
//!
//! The opening handshake is an HTTP/1.1 request with a random `Sec-WebSocket-Key`; the
//! server proves it understood by answering `101` with the matching
//! `Sec-WebSocket-Accept` (§4.1). From then on the codec's [`Session`] does the work:
//! every frame we send is masked with a fresh key from the operating system's random
//! source (§5.3: the key "MUST be derived from a strong source of entropy"), pings are
//! answered with pongs, and a close is answered with a close.
//!
//! Each message from `/ws/{channel}` is `{"id":N,"data":"…"}` (or `{"truncated":true}`);
//! on reconnect the client asks for `?after=` its last id, so nothing is lost or doubled.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backoff::Backoff;
use super::http::{HttpClient, Stream, connect, final_head};
use super::poll::{Round, next_round, retry};
use super::sink::{Delivery, Sink, status};
use super::{ClientConfig, Ended};
use crate::config::{DEFAULT_MAX_HEADER, DEFAULT_MAX_MESSAGE, READ_BUFFER};
use crate::proto::http::{Asked, HeadLimits, MessageStream};
use crate::proto::ws::handshake::{client_request_offering, client_verify_offering};
use crate::proto::ws::{Event, Session, SessionLimits, deflate, handshake};

const TRANSPORT: &str = "websocket";
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The largest frame this client accepts. The server takes messages of up to
/// `--max-message` (1 MiB by default) and sends each as `{"id":N,"data":"…"}`, where JSON
/// escaping can make the text up to six times longer (a control byte becomes `\u00XX`).
const MAX_INCOMING: usize = 6 * DEFAULT_MAX_MESSAGE + 64;

/// A fresh masking key for each frame, from the operating system.
fn mask_key() -> [u8; 4] {
    let mut k = [0u8; 4];
    crate::random::fill(&mut k);
    k
}

/// Opens `/ws/{channel}?after=cursor`: the handshake, verified. Returns the stream and a
/// client session already holding any bytes that arrived right after the `101`.
pub async fn open(cfg: &ClientConfig, cursor: u64) -> io::Result<(Box<dyn Stream>, Session)> {
    let mut conn = connect(&cfg.url.authority, &cfg.taps()).await?;
    super::meter::count(&cfg.meter, |m| &m.requests); // the opening handshake
    let mut nonce = [0u8; 16];
    crate::random::fill(&mut nonce);
    let key = handshake::client_key(nonce);
    let path = cfg.url.target(&format!("/ws/{}?after={cursor}", cfg.channel));
    let offer = cfg.deflate.then(deflate::client_offer);
    conn.write_all(&client_request_offering(&cfg.url.authority, &path, &key, &[], offer.as_deref())).await?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    // The same message stream as every HTTP reader: interim 1xx heads are skipped,
    // and what follows the 101 in the same read stays in `buf` for the session.
    let mut http = MessageStream::responses(HeadLimits {
        max_header: DEFAULT_MAX_HEADER,
        max_target: DEFAULT_MAX_HEADER,
        max_body: MAX_INCOMING,
    });
    http.expect(Asked { head: false, upgrade: true });
    let head = tokio::time::timeout(HANDSHAKE_LIMIT, final_head(&mut conn, &mut http, &mut buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no handshake answer in time"))?
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the handshake"),
            _ => e,
        })?;
    let headers: Vec<(&str, &[u8])> = head.headers().collect();
    let agreed = match client_verify_offering(&key, head.status, &headers, cfg.deflate) {
        Ok((_, agreed)) => agreed,
        Err(e) => return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("upgrade refused: {e}"))),
    };
    let limits = SessionLimits { max_message: MAX_INCOMING, max_frame: MAX_INCOMING };
    let mut session = Session::client(limits, mask_key);
    if let Some(params) = agreed {
        session = session.with_deflate(params);
    }
    // Bytes read past the 101 are the first frames: hand them to the session.
    session.receive_data(&buf);
    Ok((conn, session))
}

/// Writes everything the session has queued (pongs, close replies, our messages).
async fn flush(conn: &mut Box<dyn Stream>, session: &mut Session) -> io::Result<()> {
    while let Some(bytes) = session.take_outgoing() {
        conn.write_all(&bytes).await?;
    }
    Ok(())
}

/// Runs the WebSocket client until `--count` is reached (or forever). With `probe` (the
/// cascade), a refused upgrade or a connection that does not carry a ping/pong round
/// trip within that time ends with [`Ended::Fallback`].
pub async fn run(
    cfg: &ClientConfig,
    sink: &mut Sink,
    sends: &mut Vec<String>,
    probe: Option<Duration>,
) -> io::Result<Ended> {
    let mut http = HttpClient::new(&cfg.url.authority, cfg.taps());
    let mut backoff = Backoff::default();
    loop {
        let cursor = match next_round(&mut http, cfg, sink, &mut backoff, TRANSPORT).await {
            Round::Done => return Ok(Ended::Done),
            Round::Again => continue,
            Round::From(c) => c,
        };
        let (mut conn, mut session) = match open(cfg, cursor).await {
            Ok(o) => o,
            Err(e) if probe.is_some() => return Ok(Ended::Fallback(e.to_string())),
            Err(e) => {
                retry(cfg, &mut backoff, TRANSPORT, &e).await;
                continue;
            }
        };
        if let Some(limit) = probe {
            match round_trip(&mut conn, &mut session, limit, sink).await {
                Ok(true) => return Ok(Ended::Done),
                Ok(false) => {}
                Err(e) => {
                    return Ok(Ended::Fallback(format!("the upgrade succeeded but no ping/pong round trip ({e})")));
                }
            }
        }
        sink.established(TRANSPORT);
        let received_before = sink.received();
        let why = match receive(&mut conn, &mut session, sink, sends).await {
            Ok(true) => {
                // Done: say goodbye properly (§7: the closing handshake).
                let _ = session.close(1000, "done");
                let _ = flush(&mut conn, &mut session).await;
                return Ok(Ended::Done);
            }
            Ok(false) => "the server closed the connection".to_string(),
            Err(e) => e.to_string(),
        };
        // A connection that carried messages was a success: start the backoff afresh. One
        // that failed before delivering anything (a message this client cannot take, a
        // server that closes at once) must not be retried at full speed forever.
        if sink.received() > received_before {
            backoff.reset();
        }
        let delay = backoff.delay();
        super::meter::failed(&cfg.meter, &why);
        status(&format!(
            "[websocket] {why}; reconnecting in {} ms after id {}",
            delay.as_millis(),
            sink.cursor.unwrap_or(cursor)
        ));
        tokio::time::sleep(delay).await;
    }
}

/// Sends a ping and waits for its pong: proof that frames really cross whatever is in
/// between, both ways. Messages that arrive meanwhile are delivered. `Ok(true)` if
/// `--count` was reached on the way.
async fn round_trip(
    conn: &mut Box<dyn Stream>,
    session: &mut Session,
    limit: Duration,
    sink: &mut Sink,
) -> io::Result<bool> {
    let payload = b"wire-academy probe";
    session.send_ping(payload).map_err(io::Error::other)?;
    flush(conn, session).await?;
    tokio::time::timeout(limit, async {
        loop {
            while let Some(ev) = session.next_event() {
                let done = match ev {
                    Event::Pong(p) if &p[..] == payload => return Ok(false),
                    Event::Text(t) => deliver(sink, t.as_str())?,
                    Event::Close { .. } | Event::ProtocolError { .. } => {
                        return Err(io::Error::other("closed during the probe"));
                    }
                    _ => false,
                };
                if done {
                    return Ok(true);
                }
            }
            flush(conn, session).await?;
            if conn.read_buf(session.read_buf()).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the probe"));
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no pong within {limit:?}")))?
}

/// Receives until `--count` (`Ok(true)`) or until the connection ends (`Ok(false)`).
async fn receive(
    conn: &mut Box<dyn Stream>,
    session: &mut Session,
    sink: &mut Sink,
    sends: &mut Vec<String>,
) -> io::Result<bool> {
    // What was asked to be published goes over the socket itself. The texts are let go
    // only once written: if this connection fails first, the next one sends them.
    if !sends.is_empty() {
        for text in sends.iter() {
            session.send_text(text).map_err(io::Error::other)?;
        }
        flush(conn, session).await?;
        sends.clear();
    }
    loop {
        while let Some(ev) = session.next_event() {
            let done = match ev {
                Event::Text(t) => deliver(sink, t.as_str())?,
                Event::Close { code, reason } => {
                    flush(conn, session).await?;
                    return Err(io::Error::other(format!("the server closed with {code:?} {reason}")));
                }
                Event::ProtocolError { code, reason } => {
                    flush(conn, session).await?;
                    return Err(io::Error::other(format!("protocol error {code}: {reason}")));
                }
                _ => false, // pings are answered by the session; pongs need nothing
            };
            if done {
                return Ok(true);
            }
        }
        flush(conn, session).await?;
        if conn.read_buf(session.read_buf()).await? == 0 {
            return Ok(false);
        }
    }
}

/// Delivers one `{"id":N,"data":"…"}` or `{"truncated":true}` message.
fn deliver(sink: &mut Sink, text: &str) -> io::Result<bool> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not JSON: {e}")))?;
    if v["truncated"] == true {
        return Ok(sink.deliver(TRANSPORT, Delivery::Truncated));
    }
    match (v["id"].as_u64(), v["data"].as_str()) {
        (Some(id), Some(data)) => Ok(sink.deliver(TRANSPORT, Delivery::Message { id, data: data.to_string() })),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected message: {text}"))),
    }
}
