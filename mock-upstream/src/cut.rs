//! Cutting a connection mid-body: the connection's IO fails its next flush once a response
//! asked for the cut, so every byte already handed to hyper reaches the socket first.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between one connection's IO and the responses on it.
#[derive(Debug, Default)]
pub(crate) struct CutSwitch(AtomicBool);

impl CutSwitch {
    /// Asks for the connection to be aborted at its next flush.
    pub(crate) fn cut(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A connection's IO that fails once its [`CutSwitch`] is thrown and pending writes are flushed.
#[derive(Debug)]
pub(crate) struct CuttableIo<T> {
    inner: T,
    switch: Arc<CutSwitch>,
}

impl<T> CuttableIo<T> {
    /// Wraps `inner`, controlled by `switch`.
    pub(crate) fn new(inner: T, switch: Arc<CutSwitch>) -> Self {
        Self { inner, switch }
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "mock scenario cut the connection")
}

impl<T: AsyncRead + Unpin> AsyncRead for CuttableIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CuttableIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        if self.switch.is_cut() { Poll::Ready(Err(aborted())) } else { Poll::Ready(Ok(())) }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
