//! Per-connection limits: the idle keep-alive deadline, the header deadline,
//! and the cap on open connections.
//!
//! hyper has one timer, `header_read_timeout`, which starts when the
//! connection waits for its next request, so it would be the header limit
//! and the keep-alive limit at once. [`TimedIo`] keeps them apart around
//! the socket: while no request is being answered, a connection with no
//! traffic for `idle_timeout` is closed, and once a request's first byte
//! has arrived its headers must be complete within `header_read_timeout`.
//! While a request is being answered the socket has no deadline of ours
//! (bodies have the handlers' own timeouts). Written by hand: no crate
//! wraps a tokio stream with request-aware deadlines.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What the service tells its connection. Set by [`Activity::started`] and
/// [`Activity::answered`] around every request.
#[derive(Debug, Default)]
pub struct Activity {
    busy: AtomicBool,
    answered: AtomicU64,
}

impl Activity {
    pub fn started(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    pub fn answered(&self) {
        self.busy.store(false, Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// A socket with the idle and header deadlines.
pub struct TimedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    idle: Duration,
    header: Duration,
    /// Registered no later than the deadline in force; when it fires early
    /// it is moved on, so a deadline moving later costs no timer update.
    timer: Pin<Box<Sleep>>,
    /// `activity.answered` when we last looked: a change starts a new idle period.
    answered_seen: u64,
    /// Last traffic while idle.
    last_traffic: Instant,
    /// When the first byte of the next request arrived.
    head_started: Option<Instant>,
}

impl TimedIo {
    pub fn new(
        inner: TcpStream,
        activity: Arc<Activity>,
        idle: Duration,
        header: Duration,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            activity,
            idle,
            header,
            timer: Box::pin(tokio::time::sleep_until(now + idle.min(header))),
            answered_seen: 0,
            last_traffic: now,
            head_started: None,
        }
    }

    /// The deadline in force while no request is being answered.
    fn deadline(&self) -> Instant {
        match self.head_started {
            Some(first_byte) => first_byte + self.header,
            None => self.last_traffic + self.idle,
        }
    }

    /// A finished write is traffic: it keeps an answer being sent from
    /// counting as idle.
    fn wrote<T>(&mut self, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.last_traffic = Instant::now();
        }
        res
    }

    /// Called when a read would wait: errors once the deadline has passed,
    /// else makes sure the timer wakes us no later than it.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = self.deadline();
        if Instant::now() >= deadline {
            let what = if self.head_started.is_some() {
                "request headers not received in time"
            } else {
                "idle keep-alive connection"
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        if self.timer.deadline() > deadline || self.timer.as_mut().poll(cx).is_ready() {
            self.timer.as_mut().reset(deadline);
            let _ = self.timer.as_mut().poll(cx);
        }
        Poll::Pending
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let answered = this.activity.answered.load(Ordering::Relaxed);
        if answered != this.answered_seen {
            this.answered_seen = answered;
            this.last_traffic = Instant::now();
            this.head_started = None;
        }
        let busy = this.activity.busy.load(Ordering::Relaxed);
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !busy && buf.filled().len() > before && this.head_started.is_none() {
                    this.head_started = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if !busy => this.wait(cx),
            other => other,
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The whole answer to a connection over `server.max_connections`: sent
/// without reading the request, then the connection is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 20\r\n\
\r\n\
Too Many Connections";

/// Answers 503 on a connection over the cap, then drops it. What the
/// client sent is read and discarded first (closing with unread bytes would
/// reset the connection before the client reads the answer); all of it
/// bounded to a second.
pub async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(TOO_MANY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_response() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.starts_with("HTTP/1.1 503 "));
    }
}
