//! Per-connection limits: the idle keep-alive deadline, the header deadline,
//! the deadline on a stalled answer, and the cap on open connections.
//!
//! hyper has one timer, `header_read_timeout`, which starts when the
//! connection waits for its next request, so it would be the header limit
//! and the keep-alive limit at once. [`TimedIo`] keeps them apart around
//! the socket, from what the service tells it through [`Activity`]: a
//! count of the requests being handled (no response head yet) and of the
//! requests in flight (their response body not yet sent to the end, nor
//! dropped). A [`RequestGuard`] taken when the service is called keeps the
//! counts; its response body ([`GuardedBody`]) carries it until hyper
//! drops the body, so a request still counts while its body streams, and a
//! request abandoned early (a future or body dropped, an h2 stream reset)
//! stops counting at once.
//!
//! - While a request is being handled, the socket has no deadline of ours
//!   (the handlers have their own timeouts: storage, transforms, upload
//!   bodies).
//! - While a response body is being sent and none is being handled, the
//!   connection is closed once no write has completed for `idle_timeout`:
//!   a client that stops reading (or, over h2, stops granting flow-control
//!   window) does not hold the connection, and the body's file, for ever.
//!   Bytes the client sends meanwhile are not the start of a new request:
//!   over h2 they are mostly WINDOW_UPDATE frames for the body being sent
//!   (taking them for a request's first bytes armed the header deadline and
//!   cut long h2 downloads), over HTTP/1.1 a pipelined request that hyper
//!   parses only after this answer.
//! - With nothing in flight, a connection with no traffic for
//!   `idle_timeout` is closed, and once a byte has arrived, a request must
//!   reach the service within `header_read_timeout` (slowloris). Over h2
//!   that byte may be a frame other than a request (a WINDOW_UPDATE or PING
//!   after the last stream ended): then the connection is closed after
//!   `header_read_timeout` rather than `idle_timeout`, with no stream open.
//!
//! Counting per request rather than per connection is what makes h2 work:
//! its streams overlap, and its flow-control frames arrive while bodies
//! are sent. Written by hand: no crate wraps a tokio stream with
//! request-aware deadlines.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Response;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// One request being handled, in [`Activity::state`].
const HANDLING: u64 = 1;
/// One request in flight (handled or its body being sent).
const IN_FLIGHT: u64 = 1 << 20;
/// One event that starts a new period: a response head ready, a request ended.
const EVENT: u64 = 1 << 40;
/// Either count: 20 bits, far above hyper's 200 concurrent h2 streams (one
/// for HTTP/1.1).
const COUNT: u64 = IN_FLIGHT - 1;

/// What the service tells its connection, shared by the socket
/// ([`TimedIo`]) and every [`RequestGuard`] of the connection.
#[derive(Debug)]
pub struct Activity {
    /// The requests being handled (bits 0-19), the requests in flight
    /// (bits 20-39) and a count of events (bits 40-63, wrapping). One word,
    /// so the socket never sees a count that dropped without the event that
    /// dropped it.
    state: AtomicU64,
    /// When the last event happened, in nanoseconds since `epoch`; written
    /// before the event is counted in `state`.
    event_at: AtomicU64,
    epoch: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: AtomicU64::new(0),
            event_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Activity {
    /// A request reaches the service: counted as handled and in flight
    /// until the guard's [`RequestGuard::answered`] and drop.
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.state
            .fetch_add(HANDLING + IN_FLIGHT, Ordering::Release);
        RequestGuard {
            activity: self.clone(),
            handling: true,
        }
    }

    /// Counts an event that takes `counts` off the counts.
    fn event(&self, counts: u64) {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.event_at.store(since, Ordering::Relaxed);
        // Adds one event and takes `counts` off in one step: each count is
        // at least the one being taken off, so no borrow crosses fields;
        // the event count wraps off the top of the word.
        self.state
            .fetch_add(EVENT.wrapping_sub(counts), Ordering::Release);
    }

    fn event_at(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.event_at.load(Ordering::Relaxed))
    }
}

/// What the socket makes of [`Activity::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing in flight: the idle and header deadlines.
    Idle,
    /// Response bodies being sent, none being handled: the stall deadline.
    Sending,
    /// A request being handled: no deadline of ours.
    Handling,
}

impl Phase {
    fn of(state: u64) -> Self {
        if state & COUNT != 0 {
            Self::Handling
        } else if (state >> 20) & COUNT != 0 {
            Self::Sending
        } else {
            Self::Idle
        }
    }
}

/// One request, from the call of the service until its response body has
/// been sent to the end or dropped.
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
    /// No response head yet.
    handling: bool,
}

impl RequestGuard {
    /// The response head is ready: the request is no longer handled, and
    /// stays in flight until hyper drops the returned body.
    pub fn answered<B>(mut self, res: Response<B>) -> Response<GuardedBody<B>> {
        self.activity.event(HANDLING);
        self.handling = false;
        res.map(|body| GuardedBody { body, _guard: self })
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let handling = if self.handling { HANDLING } else { 0 };
        self.activity.event(IN_FLIGHT + handling);
    }
}

/// A response body that keeps its request counted until it is dropped
/// (hyper drops it once the last frame is sent, or when the stream or
/// connection goes away). No allocation: the guard is one `Arc`.
#[derive(Debug)]
pub struct GuardedBody<B> {
    body: B,
    _guard: RequestGuard,
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket with the idle, header and stall deadlines.
pub struct TimedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    idle: Duration,
    header: Duration,
    /// Registered no later than the deadline in force; when it fires early
    /// it is moved on, so a deadline moving later costs no timer update.
    timer: Pin<Box<Sleep>>,
    /// The event count of `activity` when we last looked: a change starts
    /// a new period.
    events_seen: u64,
    /// The last completed write, or the last event if later.
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
            events_seen: 0,
            last_traffic: now,
            head_started: None,
        }
    }

    /// The deadline in force in `phase` (not `Handling`).
    fn deadline(&self, phase: Phase) -> Instant {
        match (phase, self.head_started) {
            (Phase::Idle, Some(first_byte)) => first_byte + self.header,
            _ => self.last_traffic + self.idle,
        }
    }

    /// A finished write is traffic: it keeps an answer being sent from
    /// counting as stalled, and an idle period starts after it.
    fn wrote<T>(&mut self, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.last_traffic = Instant::now();
        }
        res
    }

    /// Called when a read would wait and no request is being handled:
    /// errors once the deadline has passed, else makes sure the timer wakes
    /// us no later than it.
    fn wait(&mut self, phase: Phase, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = self.deadline(phase);
        if Instant::now() >= deadline {
            let what = match (phase, self.head_started) {
                (Phase::Sending, _) => "response not read by the client in time",
                (_, Some(_)) => "request headers not received in time",
                (_, None) => "idle keep-alive connection",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        self.arm(deadline, cx);
        Poll::Pending
    }

    /// Called when a read would wait while a request is handled: no
    /// deadline, but the timer wakes us within `idle` to look again. An h2
    /// request ends on its stream's task, which wakes this one (h2 does, as
    /// the stream's handles go) usually just before the guard goes: if we
    /// looked in between, only the timer brings us back.
    fn watch(&mut self, cx: &mut Context<'_>) {
        let latest = Instant::now() + self.idle;
        self.arm(latest, cx);
    }

    fn arm(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        if self.timer.deadline() > deadline || self.timer.as_mut().poll(cx).is_ready() {
            self.timer.as_mut().reset(deadline);
            let _ = self.timer.as_mut().poll(cx);
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = this.activity.state.load(Ordering::Acquire);
        let events = state >> 40;
        if events != this.events_seen {
            // A response head is ready or a request ended: the bytes that
            // started a head deadline were its request's, and the stall
            // or idle period starts again.
            this.events_seen = events;
            this.last_traffic = this.last_traffic.max(this.activity.event_at());
            this.head_started = None;
        }
        let phase = Phase::of(state);
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if phase == Phase::Idle
                    && buf.filled().len() > before
                    && this.head_started.is_none()
                {
                    this.head_started = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if phase == Phase::Handling => {
                this.watch(cx);
                Poll::Pending
            }
            Poll::Pending => this.wait(phase, cx),
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
    use http_body_util::{BodyExt, Full};

    fn phase(a: &Activity) -> Phase {
        Phase::of(a.state.load(Ordering::Acquire))
    }

    fn events(a: &Activity) -> u64 {
        a.state.load(Ordering::Acquire) >> 40
    }

    #[test]
    fn a_request_counts_until_its_body_is_dropped() {
        let a = Arc::new(Activity::default());
        assert_eq!(phase(&a), Phase::Idle);
        let request = a.start();
        assert_eq!(phase(&a), Phase::Handling);
        assert_eq!(events(&a), 0);
        let res = request.answered(Response::new(()));
        assert_eq!(phase(&a), Phase::Sending);
        assert_eq!(events(&a), 1);
        drop(res);
        assert_eq!(phase(&a), Phase::Idle);
        assert_eq!(events(&a), 2);
    }

    #[test]
    fn a_request_dropped_before_its_answer_stops_counting() {
        let a = Arc::new(Activity::default());
        drop(a.start());
        assert_eq!(phase(&a), Phase::Idle);
        assert_eq!(events(&a), 1);
    }

    #[test]
    fn overlapping_streams_count_apart() {
        let a = Arc::new(Activity::default());
        let (one, two) = (a.start(), a.start());
        let one = one.answered(Response::new(()));
        assert_eq!(phase(&a), Phase::Handling, "two is still handled");
        let two = two.answered(Response::new(()));
        assert_eq!(phase(&a), Phase::Sending);
        drop(one);
        assert_eq!(phase(&a), Phase::Sending, "two is still sent");
        let three = a.start();
        drop(two);
        assert_eq!(phase(&a), Phase::Handling);
        drop(three);
        assert_eq!(phase(&a), Phase::Idle);
        assert_eq!(events(&a), 5);
    }

    #[test]
    fn the_event_count_wraps_without_touching_the_counts() {
        let a = Arc::new(Activity::default());
        a.state.store(!COUNT & !(COUNT << 20), Ordering::Relaxed);
        let request = a.start();
        drop(request.answered(Response::new(())));
        assert_eq!(phase(&a), Phase::Idle);
        assert_eq!(events(&a), 1);
    }

    #[tokio::test]
    async fn a_guarded_body_is_the_body() {
        let a = Arc::new(Activity::default());
        let res = a
            .start()
            .answered(Response::new(Full::new(bytes::Bytes::from_static(b"abc"))));
        assert_eq!(res.body().size_hint().exact(), Some(3));
        assert!(!res.body().is_end_stream());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abc");
        assert_eq!(phase(&a), Phase::Idle, "collected and dropped");
    }

    #[test]
    fn refusal_is_a_complete_response() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.starts_with("HTTP/1.1 503 "));
    }
}
