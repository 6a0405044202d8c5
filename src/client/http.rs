//! A hand-written HTTP/1.1 client on `TcpStream` (RFC 9112, the client's side).
//!
//! It writes requests with `proto::http::write_request` and reads responses with the
//! message stream the server, the proxy and the tracer step too
//! (`proto::http::MessageStream`: interim 1xx heads skipped, the body framed by the
//! one reading of RFC 9112 §6.3). One
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
use crate::proto::http::{Asked, Event, HeadLimits, MessageStream, ResponseHead, Unit, Version, write_request};
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
    /// The responses on `conn`.
    http: MessageStream,
}

/// What this client reads: heads up to `DEFAULT_MAX_HEADER` (the body limit is
/// `MAX_RESPONSE_BODY`, checked as it arrives).
const LIMITS: HeadLimits =
    HeadLimits { max_header: DEFAULT_MAX_HEADER, max_target: DEFAULT_MAX_HEADER, max_body: MAX_RESPONSE_BODY };

/// Reads until the final response head, past any interim ones (`100 Continue`, RFC 9110
/// §15.2: they precede the answer, they are not it). Bytes after the head stay in `buf`.
pub async fn final_head(
    conn: &mut Box<dyn Stream>,
    http: &mut MessageStream,
    buf: &mut BytesMut,
) -> io::Result<ResponseHead> {
    loop {
        match http.read(buf).map_err(invalid)? {
            Some(Unit { event: Event::Response(head), .. }) if head.status >= 200 || head.status == 101 => {
                return Ok(head);
            }
            Some(_) => {} // an interim head, and its end
            None => {
                if conn.read_buf(buf).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"));
                }
            }
        }
    }
}

impl HttpClient {
    pub fn new(authority: &str, taps: Taps) -> HttpClient {
        HttpClient {
            authority: authority.to_string(),
            taps,
            conn: None,
            buf: BytesMut::with_capacity(READ_BUFFER),
            http: MessageStream::responses(LIMITS),
        }
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
        self.http = MessageStream::responses(LIMITS);
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

        self.http.expect(Asked { head: method == "HEAD", upgrade: false });
        let head = final_head(conn, &mut self.http, &mut self.buf).await.map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => e,
            _ => aborted(e),
        })?;
        let mut keep = head.version == Version::Http11 && !head.has_token("connection", "close");
        let mut body = BytesMut::new();
        loop {
            match self.http.read(&mut self.buf).map_err(invalid)? {
                Some(Unit { event: Event::Data(_), bytes }) => {
                    if body.len() + bytes.len() > MAX_RESPONSE_BODY {
                        return Err(invalid("response body too large"));
                    }
                    body.extend_from_slice(&bytes);
                }
                Some(Unit { event: Event::End, .. }) => break,
                Some(_) => {}
                None if conn.read_buf(&mut self.buf).await? > 0 => {}
                // The close ends a body that runs until close, and nothing else.
                None if self.http.reads_until_close() => {
                    keep = false;
                    break;
                }
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed in the middle of a body")),
            }
        }
        if !keep {
            self.drop_conn();
        }
        Ok(ClientResponse { head, body: body.freeze() })
    }

    /// Takes the connection for a response that streams (SSE): sends the request, reads
    /// the final head, and hands back the stream, the bytes read past the head, and the
    /// message stream that frames the body still to come.
    pub async fn open(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> io::Result<(ResponseHead, Box<dyn Stream>, BytesMut, MessageStream)> {
        self.drop_conn();
        let fut = async {
            let mut conn = connect(&self.authority, &self.taps).await?;
            super::meter::count(&self.taps.meter, |m| &m.requests);
            let mut out = BytesMut::new();
            write_request(&mut out, method, target, &self.authority, headers, b"");
            conn.write_all(&out).await?;
            let mut buf = BytesMut::with_capacity(READ_BUFFER);
            let mut http = MessageStream::responses(LIMITS);
            http.expect(Asked { head: method == "HEAD", upgrade: false });
            let head = final_head(&mut conn, &mut http, &mut buf).await?;
            Ok((head, conn, buf, http))
        };
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no response head in time")))
    }
}

fn invalid(e: impl std::fmt::Debug) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))
}
