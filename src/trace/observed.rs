//! One stream wrapper for whatever watches a connection's bytes go by: the byte trace
//! ([`super::Tap`]), the capture ([`super::PcapTap`]) and `compare`'s meter
//! ([`crate::client::meter::Metered`]) are each an [`Observer`] of it.
//!
//! The wrapper does the polling, once: each completed read or write is passed on
//! unchanged, then shown to the observer. The observer never touches the bytes, and
//! what it sees is exactly what the kernel took and gave.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a watcher of a stream does with what crosses it.
pub trait Observer {
    /// A read returned `bytes` (never empty).
    fn read(&mut self, bytes: &[u8]);
    /// A read returned end of stream: the peer closed its side. Said again by each read
    /// after it.
    fn eof(&mut self) {}
    /// A write took `bytes`.
    fn wrote(&mut self, bytes: &[u8]);
    /// A vectored write took the first `n` bytes of `bufs`: by default shown to
    /// [`wrote`](Self::wrote) as one run of bytes, however it was sliced. An observer
    /// that only counts overrides it and copies nothing.
    fn wrote_vectored(&mut self, bufs: &[IoSlice<'_>], n: usize) {
        let mut written = Vec::with_capacity(n);
        for b in bufs {
            let take = (n - written.len()).min(b.len());
            written.extend_from_slice(&b[..take]);
            if written.len() == n {
                break;
            }
        }
        self.wrote(&written);
    }
    /// Our side was shut down: no more bytes from us (a FIN).
    fn shut_down(&mut self) {}
}

/// A stream whose traffic an observer sees.
pub struct Observed<S, O> {
    inner: S,
    pub(crate) observer: O,
}

impl<S, O> Observed<S, O> {
    pub(crate) fn with(inner: S, observer: O) -> Self {
        Observed { inner, observer }
    }
}

impl<S: AsyncRead + Unpin, O: Observer + Unpin> AsyncRead for Observed<S, O> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let this = &mut *self;
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            this.observer.read(fresh);
        } else if room {
            // Nothing read into a buffer with room: end of stream (a full buffer reads
            // nothing and means nothing).
            this.observer.eof();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin, O: Observer + Unpin> AsyncWrite for Observed<S, O> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.observer.wrote(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.observer.wrote_vectored(bufs, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        self.observer.shut_down();
        Poll::Ready(Ok(()))
    }
}
