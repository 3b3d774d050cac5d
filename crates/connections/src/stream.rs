//! [`TimedStream`]: a connection's socket that keeps the timeout of the
//! connection's phase.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Sleep, sleep_until},
};

use super::{Phase, Slot};

/// A connection's socket: the first bytes that arrive on an idle
/// connection start the read timeout, and a read or a write that waits
/// past the deadline of the phase fails with `TimedOut`, which ends the
/// connection. A busy connection has no deadline.
#[derive(Debug)]
pub struct TimedStream<S> {
    inner: S,
    slot: Arc<Slot>,
    /// Set to the deadline when a read or a write first has to wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> TimedStream<S> {
    pub(super) fn new(inner: S, slot: Arc<Slot>) -> Self {
        Self {
            inner,
            slot,
            timer: None,
        }
    }

    /// Ready with the error to fail with once the deadline of the phase
    /// has passed; pending, with a wake-up at the deadline, before it.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.slot.socket_waiter.register(cx.waker());
        let Some(deadline) = self.slot.deadline() else {
            return Poll::Pending;
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.timer.insert(Box::pin(sleep_until(deadline))),
        };
        ready!(timer.as_mut().poll(cx));
        let limits = &self.slot.table.limits;
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            match self.slot.phase() {
                Phase::Reading => format!(
                    "the request did not arrive within {} s of its first byte",
                    limits.read_timeout.as_secs()
                ),
                _ => format!(
                    "no request within the idle timeout of {} s",
                    limits.idle_timeout.as_secs()
                ),
            },
        ))
    }

    /// `poll` of the inner socket, or the timeout's error while it waits.
    fn or_timeout<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Pending => self.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = this.or_timeout(cx, |inner, cx| inner.poll_read(cx, buf));
        if matches!(read, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && this.slot.phase() == Phase::Idle
        {
            this.slot.reading();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .or_timeout(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .or_timeout(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .or_timeout(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .or_timeout(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}
