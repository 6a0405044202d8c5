//! A hand-written HTTP/1.1 client on `TcpStream` (RFC 9112, the client's side).
//!
//! It writes requests with `proto::http::write_request` and reads responses with the
//! same pure codecs the tracer uses (`parse_response_head`, `BodyDecoder`). One
//! connection is kept and reused across requests (keep-alive) until the server says
//! `Connection: close`, the body runs until close, or the connection fails.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::meter::{Meter, Metered};
use crate::config::{DEFAULT_MAX_HEADER, READ_BUFFER};
use crate::proto::http::{BodyDecoder, ResponseBody, ResponseHead, Version, parse_response_head, write_request};
use crate::trace::{PcapWriter, Recorders, Role, Tracer};

/// Any byte stream a client can use: a socket, or a traced socket.
pub use crate::trace::Stream;

/// What wraps each connection a client opens: the byte trace (`--trace-bytes`), the
/// capture (`--trace-pcap`) and the meter (`compare`), each only when asked for.
#[derive(Clone, Default)]
pub struct Taps {
    pub trace: Option<Arc<Tracer>>,
    pub pcap: Option<Arc<PcapWriter>>,
    pub meter: Option<Arc<Meter>>,
}

/// Opens a TCP connection, traced and metered when asked.
pub async fn connect(authority: &str, taps: &Taps) -> io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect(authority).await?;
    let _ = tcp.set_nodelay(true);
    let recorders = Recorders { trace: taps.trace.clone(), pcap: taps.pcap.clone() };
    let traced = recorders.wrap(tcp, authority.to_string(), Role::Client);
    Ok(match &taps.meter {
        Some(m) => Box::new(Metered::new(traced, m.clone())),
        None => traced,
    })
}

/// A complete response.
#[derive(Debug)]
pub struct ClientResponse {
    pub head: ResponseHead,
    pub body: Bytes,
}

impl ClientResponse {
    pub fn status(&self) -> u16 {
        self.head.status
    }
}

/// Largest response body this client accepts (a poll answer of a full history of
/// 1 MiB messages would be larger; the server bounds it by `--history`).
pub const MAX_RESPONSE_BODY: usize = 64 << 20;

/// One server, one kept-alive connection.
pub struct HttpClient {
    authority: String,
    taps: Taps,
    conn: Option<Box<dyn Stream>>,
    buf: BytesMut,
}

impl HttpClient {
    pub fn new(authority: &str, taps: Taps) -> HttpClient {
        HttpClient { authority: authority.to_string(), taps, conn: None, buf: BytesMut::with_capacity(READ_BUFFER) }
    }

    /// Sends a request and reads the whole response, within `limit`. A GET that fails
    /// on a reused connection before any answer arrives is retried once on a fresh one:
    /// the server may have closed an idle keep-alive connection just as we reused it
    /// (RFC 9112 §9.3.1 allows retrying idempotent requests then).
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
        limit: Duration,
    ) -> io::Result<ClientResponse> {
        let reused = self.conn.is_some();
        match tokio::time::timeout(limit, self.exchange(method, target, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if reused && method == "GET" && e.kind() == io::ErrorKind::ConnectionAborted => {
                self.drop_conn();
                tokio::time::timeout(limit, self.exchange(method, target, body))
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")))
            }
            Ok(Err(e)) => {
                self.drop_conn();
                Err(e)
            }
            Err(_) => {
                self.drop_conn();
                Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))
            }
        }
    }

    fn drop_conn(&mut self) {
        self.conn = None;
        self.buf.clear();
    }

    async fn exchange(&mut self, method: &str, target: &str, body: &[u8]) -> io::Result<ClientResponse> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.authority, &self.taps).await?);
            self.buf.clear();
        }
        super::meter::count(&self.taps.meter, |m| &m.requests);
        let conn = self.conn.as_mut().expect("connected above");
        let mut out = BytesMut::new();
        let headers: &[(&str, &str)] =
            if body.is_empty() { &[] } else { &[("Content-Type", "text/plain; charset=utf-8")] };
        write_request(&mut out, method, target, &self.authority, headers, body);
        // A write or read failing with nothing received is reported as "aborted", the
        // one case `request` retries.
        let aborted = |e: io::Error| io::Error::new(io::ErrorKind::ConnectionAborted, e);
        conn.write_all(&out).await.map_err(aborted)?;

        let head = loop {
            if let Some(head) = parse_response_head(&mut self.buf, DEFAULT_MAX_HEADER).map_err(invalid)? {
                if head.status >= 100 && head.status < 200 && head.status != 101 {
                    continue; // an interim response (100 Continue): the real one follows
                }
                break head;
            }
            let n = conn.read_buf(&mut self.buf).await.map_err(aborted)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed before a response"));
            }
        };
        let framing = head.body(method == "HEAD").map_err(invalid)?;
        let mut body = BytesMut::new();
        let mut keep = head.version == Version::Http11 && !head.has_token("connection", "close");
        let mut decoder = match framing {
            ResponseBody::None => None,
            ResponseBody::Length(n) => Some(BodyDecoder::Length(n)),
            ResponseBody::Chunked => Some(BodyDecoder::Chunked(Default::default())),
            ResponseBody::UntilClose => {
                keep = false;
                loop {
                    body.extend_from_slice(&self.buf.split());
                    if body.len() > MAX_RESPONSE_BODY {
                        return Err(invalid("response body too large"));
                    }
                    if conn.read_buf(&mut self.buf).await? == 0 {
                        break;
                    }
                }
                None
            }
        };
        if let Some(dec) = decoder.as_mut() {
            while !dec.decode(&mut self.buf, &mut body, MAX_RESPONSE_BODY).map_err(invalid)? {
                if conn.read_buf(&mut self.buf).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed in the middle of a body"));
                }
            }
        }
        if !keep {
            self.drop_conn();
        }
        Ok(ClientResponse { head, body: body.freeze() })
    }

    /// Takes the connection for a response that streams (SSE) or an upgrade: sends the
    /// request, reads the head, and hands back the stream with any bytes read past it.
    pub async fn open(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> io::Result<(ResponseHead, Box<dyn Stream>, BytesMut)> {
        self.drop_conn();
        let fut = async {
            let mut conn = connect(&self.authority, &self.taps).await?;
            super::meter::count(&self.taps.meter, |m| &m.requests);
            let mut out = BytesMut::new();
            write_request(&mut out, method, target, &self.authority, headers, b"");
            conn.write_all(&out).await?;
            let mut buf = BytesMut::with_capacity(READ_BUFFER);
            loop {
                if let Some(head) = parse_response_head(&mut buf, DEFAULT_MAX_HEADER).map_err(invalid)? {
                    return Ok((head, conn, buf));
                }
                if conn.read_buf(&mut buf).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"));
                }
            }
        };
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no response head in time")))
    }
}

fn invalid(e: impl std::fmt::Debug) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))
}
