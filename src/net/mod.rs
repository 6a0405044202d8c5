//! The tokio drivers: the accept loop and one driver per protocol. They move bytes
//! between sockets and the pure codecs in `proto/`, and decide about closing. The
//! WebSocket and event-stream timers are pure tables too (`proto::ws::liveness`,
//! `proto::sse_timers`): the drivers of [`ws`], [`sse`] and [`trace`] (an event stream
//! too) hold one `Alarm` each, sleep until the table's next deadline and do what it says
//! is due. The HTTP driver's own limits in time (the header and keep-alive timeouts, a
//! long poll's hold) are still measured in [`http`].
//!
//! - this file: [`Shared`], what every connection shares (the config, the broker, the
//!   counters, the shutdown signal, the tracer), and `Alarm`, a driver's one timer.
//! - [`server`]: accept loop, connection limit, graceful shutdown.
//! - [`http`]: one HTTP/1.1 connection (requests, short and long polls); it hands a
//!   request for `/sse/{channel}` to [`sse`], which streams until the end, one for
//!   `/trace` to [`trace`], the live byte trace, and a WebSocket upgrade to [`ws`],
//!   which runs the protocol on the upgraded socket.
//! - [`timers`]: the timer thread, which keeps the drivers' far deadlines so that a
//!   worker parks with no timeout.
//! - [`date`]: the `Date` header's value, formatted once a second.
//! - [`rlimit`]: raising the open-file limit to fit `--max-connections`.
//! - [`reclaim`]: at `--max-connections`, room for a new connection made by letting go
//!   of those that have waited longest for a request head.

pub mod budget;
pub mod date;
pub mod http;
pub mod reclaim;
pub mod rlimit;
pub mod server;
pub mod sse;
pub mod timers;
pub mod trace;
pub mod trim;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::app::broker::Broker;
use crate::app::stats::Stats;
use crate::config::Config;
use crate::trace::Tracer;

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    /// Where channels live (`--broker`).
    pub broker: Broker,
    pub stats: Stats,
    /// Becomes `true` when the server starts shutting down ([`Shared::stop`], the only
    /// way to send it, so that it and `stopping` always agree). The sender lives here, as
    /// long as any connection, so a receiver's `wait_for` never sees it dropped.
    shutdown: watch::Sender<bool>,
    /// Set by [`Shared::stop`] before `shutdown` changes: what a connection's loop looks at
    /// in each turn (see [`watch_stop`]).
    stopping: std::sync::atomic::AtomicBool,
    /// The byte tracer when `--trace-bytes` (or `--trace-out`) is on: `GET /trace`
    /// streams its blocks live.
    pub tracer: Option<Arc<Tracer>>,
    /// The bytes of request bodies and WebSocket messages in progress that all connections
    /// hold at once (`--max-body-memory`).
    pub bodies: budget::BodyBudget,
    /// When to give memory freed by closed connections back to the system.
    pub trim: trim::TrimPolicy,
    /// The connections that may wait for a request head, oldest first when a new
    /// connection needs room (`reclaim`).
    pub heads: Arc<reclaim::Registry>,
}

impl Shared {
    /// What the connections of a server with `config` share: an empty embedded broker
    /// sized by it, zeroed stats, not shutting down.
    pub fn new(config: Config, tracer: Option<Arc<Tracer>>) -> Shared {
        let broker = Broker::memory(config.history, config.max_queue, config.max_channels);
        Shared::with_broker(config, broker, tracer)
    }

    /// What every connection shares, around the broker `--broker` chose.
    pub fn with_broker(config: Config, broker: Broker, tracer: Option<Arc<Tracer>>) -> Shared {
        let bodies = budget::BodyBudget::new(config.max_body_memory);
        Shared {
            broker,
            stats: Stats::default(),
            shutdown: watch::channel(false).0,
            stopping: std::sync::atomic::AtomicBool::new(false),
            tracer,
            bodies,
            trim: trim::TrimPolicy::default(),
            heads: Arc::default(),
            config,
        }
    }
}

impl Shared {
    /// Starts the shutdown: every connection waiting on `shutdown` is woken, and each
    /// loop that looks at [`is_stopping`](Self::is_stopping) sees it.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        self.shutdown.send_replace(true);
    }

    /// Whether the server is shutting down: one atomic load.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A receiver of the shutdown, for a connection to wait on (`wait_for(|stop| *stop)`).
    pub fn watch_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// Polls `stopping`, a connection's wait for [`Shared::shutdown`], once: from then on the
/// shutdown wakes this task, and the loop need not poll it again until
/// [`Shared::is_stopping`] says the server stops (then [`stopped`]). Returns whether it
/// had stopped already.
///
/// A loop that polled the wait in every turn would walk the watch's waiter machinery each
/// time it goes to sleep: about 230 instructions per echoed WebSocket message, measured
/// with callgrind (docs/performance.md), for an event that comes once in the process's life.
pub(crate) async fn watch_stop<F: std::future::Future>(stopping: std::pin::Pin<&mut F>) -> bool {
    let mut stopping = stopping;
    std::future::poll_fn(|cx| std::task::Poll::Ready(stopping.as_mut().poll(cx).is_ready())).await
}

/// Completes when the server stops: at once if [`watch_stop`] already saw it (`seen`; a
/// finished wait must not be polled again), else once [`Shared::is_stopping`] and
/// `stopping` has completed. Each poll before the shutdown is one atomic load: the flag
/// is read at every poll (a `select!` guard is read once per `select!`, and the
/// shutdown's wake-up comes in the middle of one).
pub(crate) fn stopped<'a, F: std::future::Future>(
    shared: &'a Shared,
    mut stopping: std::pin::Pin<&'a mut F>,
    seen: bool,
) -> impl std::future::Future<Output = ()> + 'a {
    std::future::poll_fn(move |cx| {
        if seen {
            return std::task::Poll::Ready(());
        }
        if !shared.is_stopping() {
            // The wait registered by `watch_stop` wakes this task when that changes.
            return std::task::Poll::Pending;
        }
        stopping.as_mut().poll(cx).map(drop)
    })
}

pub use server::{Running, Server};

/// Bytes one read may take into the thread's scratch buffer, when the connection's own
/// buffer has no room (see [`poll_read_lean`]): a request head, a burst of small frames,
/// or the first part of a large one.
pub(crate) const SCRATCH_READ: usize = 64 * 1024;

thread_local! {
    /// The scratch buffer of [`poll_read_scratch`], one per thread of the runtime. It was
    /// an array on the stack of each poll: 64 KiB of stack made every poll of a waiting
    /// connection's socket probe 16 pages of stack, whether or not anything had arrived
    /// (about 130 instructions per delivered message of a fan-out).
    static SCRATCH: std::cell::RefCell<Box<[std::mem::MaybeUninit<u8>]>> =
        std::cell::RefCell::new(Box::new_uninit_slice(SCRATCH_READ));
}

/// Reads into `buf` without making an idle connection hold a buffer while it waits.
///
/// A read must be given its buffer before the socket has anything for it: the waiting
/// itself would hold the memory, and most connections of a real-time server wait most
/// of the time. So when `buf` has no spare room, the read goes into the thread's scratch
/// buffer (shared by every connection the thread polls, not in any connection's state)
/// and what arrived is copied into `buf`, sized to it. When `buf` already has room (a
/// message is arriving; the caller reserved for it), the read goes straight in, without
/// a copy.
pub(crate) fn poll_read_lean<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut std::task::Context<'_>,
    buf: &mut bytes::BytesMut,
) -> std::task::Poll<std::io::Result<usize>> {
    if buf.capacity() > buf.len() {
        // `read_buf` keeps no state between polls: a fresh future per poll is fine.
        use std::future::Future;
        use tokio::io::AsyncReadExt;
        return std::pin::pin!(io.read_buf(buf)).poll(cx);
    }
    poll_read_scratch(io, cx, |bytes| buf.extend_from_slice(bytes))
}

/// One read into the thread's scratch buffer ([`SCRATCH_READ`] bytes); `take` gets what
/// arrived (nothing at end of stream) before the poll returns. Returns the bytes read.
pub(crate) fn poll_read_scratch<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut std::task::Context<'_>,
    take: impl FnOnce(&[u8]),
) -> std::task::Poll<std::io::Result<usize>> {
    use std::pin::Pin;
    use std::task::{Poll, ready};
    use tokio::io::ReadBuf;

    SCRATCH.with(|scratch| {
        // Borrowed for this one read: `take` copies out of it before the poll returns,
        // and nothing it does polls another socket.
        let mut scratch = scratch.borrow_mut();
        let mut read = ReadBuf::uninit(&mut scratch[..]);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        take(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    })
}

/// [`poll_read_lean`] as a future: the bytes read, 0 at end of stream.
pub(crate) async fn read_lean<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut bytes::BytesMut,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_lean(io, cx, buf)).await
}

/// One source of a task's wake-ups told apart from the others: a waker that notes that
/// this source woke the task, then wakes the task.
///
/// A channel's subscriber is woken by its channel once per message, and in each of those
/// turns it would also look at its socket, to find nothing to read (`poll_read` on an
/// empty socket takes the runtime's readiness lock and stores the waker again, about 300
/// instructions per delivery). But an `AsyncRead` that returned `Pending` keeps the waker
/// it was given until it wakes it (the trait's contract): a socket left pending with this
/// waker need not be looked at again until [`take_woken`](Self::take_woken) says it woke.
/// The same holds for a write left pending.
pub(crate) struct WakeSource {
    inner: Arc<SourceInner>,
    waker: std::task::Waker,
    /// The task's waker as last handed over, to tell without a lock whether it changed.
    task: Option<std::task::Waker>,
}

struct SourceInner {
    woken: std::sync::atomic::AtomicBool,
    task: std::sync::Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for SourceInner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Noted before the task is woken: the poll the wake causes sees it.
        self.woken.store(true, std::sync::atomic::Ordering::Release);
        if let Some(task) = &*self.task.lock().unwrap_or_else(|e| e.into_inner()) {
            task.wake_by_ref();
        }
    }
}

impl WakeSource {
    pub(crate) fn new() -> WakeSource {
        let inner = Arc::new(SourceInner { woken: false.into(), task: std::sync::Mutex::new(None) });
        WakeSource { waker: std::task::Waker::from(inner.clone()), inner, task: None }
    }

    /// The waker to poll the source with, for the task whose waker is `task`.
    pub(crate) fn waker(&mut self, task: &std::task::Waker) -> &std::task::Waker {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(task)) {
            *self.inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.clone());
            self.task = Some(task.clone());
        }
        &self.waker
    }

    /// Whether the source woke the task since this was last asked; asking forgets it.
    pub(crate) fn take_woken(&self) -> bool {
        self.inner.woken.swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

/// A subscriber's socket, polled with its own waker ([`WakeSource`]) once its channel
/// has handed over messages, and not looked at while it is armed: left pending with
/// that waker (both directions keep it until they wake it) and not woken since.
/// Before the first messages, and after [`release`](Self::release), it is polled with
/// the task's waker every time, and holds nothing.
#[derive(Default)]
pub(crate) struct SubscriberSocket {
    /// Boxed: an idle connection's state holds one pointer for it, not five.
    wake: Option<Box<WakeSource>>,
    armed: bool,
}

impl SubscriberSocket {
    /// The channel handed over messages: wake-ups by it are to come, and are told apart
    /// from the socket's from now on.
    pub(crate) fn on_messages(&mut self) {
        if self.wake.is_none() {
            self.wake = Some(Box::new(WakeSource::new()));
            self.armed = false; // the socket holds the task's waker yet
        }
    }

    /// Whether the socket has its own waker (since the first messages).
    pub(crate) fn has_own_waker(&self) -> bool {
        self.wake.is_some()
    }

    /// The connection went idle: its waker is let go of (the next poll hands the socket
    /// the task's again).
    pub(crate) fn release(&mut self) {
        *self = SubscriberSocket::default();
    }

    /// `poll` (the socket branch), unless the socket is armed and `writing` is false (a
    /// write that is due is always tried). A pending `poll` arms it if it polled the read
    /// side (`reading`).
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        writing: bool,
        reading: bool,
        poll: impl FnOnce(&mut std::task::Context<'_>) -> std::task::Poll<T>,
    ) -> std::task::Poll<T> {
        match self.wake.as_mut() {
            None => poll(cx),
            Some(wake) if wake.take_woken() || !self.armed || writing => {
                let polled = poll(&mut std::task::Context::from_waker(wake.waker(cx.waker())));
                self.armed = polled.is_pending() && reading;
                polled
            }
            Some(_) => std::task::Poll::Pending, // armed, and not woken
        }
    }
}

/// The one timer of a driver: it sleeps until the deadline its pure timer table asks
/// for (`proto::ws::liveness`, `proto::sse_timers`), and the table says what, if
/// anything, is due when it wakes.
///
/// A deadline at least [`FAR_TIMER`](crate::config::FAR_TIMER) away (a ping, a heartbeat, a zombie's timeout) is
/// kept by the timer thread, so that a worker with an idle connection parks with no
/// timeout ([`timers`]); a nearer one (a coalescing flush, a backlog check, a closing
/// handshake's timeout) by the workers' own wheel, where it fires without waking a
/// worker from another thread: those come while messages flow, thousands a second on a
/// busy channel with `--coalesce`. Each has its slot, made once and moved, never made
/// afresh per turn of the loop (it would register with a timer wheel once per message,
/// for every subscriber of a busy channel); the near one is made at the first near
/// deadline and let go of with the idle buffers ([`release`](Self::release)).
pub(crate) struct Alarm {
    far: AlarmSlot,
    near: Option<Box<AlarmSlot>>,
    /// What the table last asked for; `None`: nothing to wait for.
    due: Option<std::time::Instant>,
}

/// One `Sleep` of an [`Alarm`].
///
/// It is moved only to an earlier deadline, or after it fired: a deadline that moves
/// later (traffic postpones a heartbeat with every message) leaves it where it is; it
/// then wakes early, the table finds nothing due, and it is moved then.
///
/// Polling a pending `Sleep` costs more than a turn of an echo loop otherwise does (it
/// takes the timer's lock to store the waker again). So once it has been polled, has
/// stored this task's waker and not been moved since, the slot answers `Pending` itself
/// until the timer has fired (`Sleep::is_elapsed`, one load): the stored waker is
/// the one that would be stored again.
struct AlarmSlot {
    sleep: std::pin::Pin<Box<Sleep>>,
    /// Whether it holds a deadline that has not fired yet (only such a slot is polled).
    waiting: bool,
    /// The waker the `Sleep` holds since it was last polled, if it has not been moved
    /// since (moving it registers it with the timer wheel afresh).
    armed: Option<std::task::Waker>,
}

impl AlarmSlot {
    fn new(sleep: Sleep) -> AlarmSlot {
        AlarmSlot { sleep: Box::pin(sleep), waiting: false, armed: None }
    }

    fn set(&mut self, due: Instant) {
        if !self.waiting || due < self.sleep.deadline() {
            self.sleep.as_mut().reset(due);
            self.waiting = true;
            self.armed = None;
        }
    }

    fn poll_fired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if !self.waiting {
            return std::task::Poll::Pending;
        }
        let armed = self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if armed && !self.sleep.is_elapsed() {
            return std::task::Poll::Pending; // the timer will wake this task
        }
        if std::future::Future::poll(self.sleep.as_mut(), cx).is_ready() {
            self.waiting = false;
            self.armed = None;
            return std::task::Poll::Ready(());
        }
        if !armed {
            self.armed = Some(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

impl Alarm {
    pub(crate) fn new() -> Alarm {
        // Parked where no deadline comes in practice, until the first `set`.
        let never = Instant::now() + Duration::from_secs(86400 * 365);
        Alarm { far: AlarmSlot::new(timers::sleep_until(never)), near: None, due: None }
    }

    /// Waits for `due` from now on (the table's `poll_timeout()`).
    pub(crate) fn set(&mut self, due: Option<std::time::Instant>) {
        self.due = due;
        let Some(due) = due.map(Instant::from_std) else { return };
        // The common case, in every turn of a busy loop: a slot already wakes at or
        // before `due`, so nothing moves (and the clock is not read).
        let wakes_by = |slot: &AlarmSlot| slot.waiting && slot.sleep.deadline() <= due;
        if wakes_by(&self.far) || self.near.as_deref().is_some_and(wakes_by) {
            return;
        }
        if timers::is_far(due) {
            self.far.set(due);
        } else {
            self.near.get_or_insert_with(|| Box::new(AlarmSlot::new(tokio::time::sleep_until(due)))).set(due);
        }
    }

    /// Lets go of the near slot if it waits for nothing (with the idle buffers: an idle
    /// connection keeps only its far slot).
    pub(crate) fn release(&mut self) {
        if self.near.as_ref().is_some_and(|near| !near.waiting) {
            self.near = None;
        }
    }

    /// Whether there is a deadline to wait for: the guard of [`fired`](Self::fired)'s
    /// `select!` branch.
    pub(crate) fn is_set(&self) -> bool {
        self.due.is_some()
    }

    /// Completes when the timer fires, with the time then: what to hand the table's
    /// `handle_timeout`. Poll only while [`is_set`](Self::is_set).
    pub(crate) async fn fired(&mut self) -> std::time::Instant {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }

    /// [`fired`](Self::fired) as a poll, for a hand-written `select` that polls it in
    /// every turn (no future to make and poll around it).
    pub(crate) fn poll_fired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::time::Instant> {
        let near = self.near.as_mut().is_some_and(|near| near.poll_fired(cx).is_ready());
        if near || self.far.poll_fired(cx).is_ready() {
            return std::task::Poll::Ready(now());
        }
        std::task::Poll::Pending
    }
}

/// The time to hand a pure timer table: the runtime's clock (paused and advanced by
/// hand in tests), as a plain `std::time::Instant`.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// For the drivers' tests: a stream that counts what is done with it.
#[cfg(test)]
pub(crate) mod counted {
    use std::io::IoSlice;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite};

    #[derive(Default)]
    pub(crate) struct Counts {
        /// Writes that took bytes.
        pub(crate) writes: std::sync::atomic::AtomicUsize,
        /// Reads tried: the times the driver looked at its socket's read side.
        pub(crate) reads: std::sync::atomic::AtomicUsize,
    }

    /// A stream that counts what is done with it.
    pub(crate) struct Counted<S> {
        pub(crate) inner: S,
        pub(crate) counts: Arc<Counts>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.counts.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                self.counts.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                self.counts.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r
        }
        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod alarm_tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use tokio::time::{Duration, Instant, sleep};

    use super::Alarm;

    /// Whether the alarm fires within `within` (paused time: the clock jumps to it).
    async fn fires_within(alarm: &mut Alarm, within: Duration) -> bool {
        tokio::select! {
            _ = alarm.fired() => true,
            _ = sleep(within) => false,
        }
    }

    /// A near deadline takes the near slot while a far one waits in the far slot; each
    /// fires once, at its time, and a slot that fired is not polled again until it is
    /// set again (else the loop would spin on an elapsed timer).
    #[tokio::test(start_paused = true)]
    async fn near_and_far_deadlines_each_fire_once_at_their_time() {
        let start = Instant::now();
        let mut alarm = Alarm::new();
        let far = start + Duration::from_secs(20);
        alarm.set(Some(far.into_std()));
        assert!(!fires_within(&mut alarm, Duration::from_secs(1)).await);
        let near = Instant::now() + Duration::from_millis(30);
        alarm.set(Some(near.into_std()));
        assert!(alarm.near.is_some(), "a near deadline has its own slot");
        assert!(fires_within(&mut alarm, Duration::from_secs(1)).await);
        assert_eq!(Instant::now(), near);
        // Back to the far deadline: the near slot fired and waits for nothing.
        alarm.set(Some(far.into_std()));
        let polled = poll_fn(|cx| Poll::Ready(alarm.poll_fired(cx).is_ready())).await;
        assert!(!polled, "a fired slot is not polled again");
        alarm.release();
        assert!(alarm.near.is_none(), "an idle alarm lets go of its near slot");
        assert!(fires_within(&mut alarm, Duration::from_secs(30)).await);
        assert_eq!(Instant::now(), far);
    }

    /// A deadline that moves later leaves the slot where it is: it wakes early, and the
    /// table (here: the test) finds nothing due.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_moves_later_wakes_early_once() {
        let start = Instant::now();
        let mut alarm = Alarm::new();
        alarm.set(Some((start + Duration::from_secs(10)).into_std()));
        alarm.set(Some((start + Duration::from_secs(15)).into_std()));
        assert!(fires_within(&mut alarm, Duration::from_secs(60)).await);
        assert_eq!(Instant::now(), start + Duration::from_secs(10));
        alarm.set(Some((start + Duration::from_secs(15)).into_std()));
        assert!(fires_within(&mut alarm, Duration::from_secs(60)).await);
        assert_eq!(Instant::now(), start + Duration::from_secs(15));
    }
}
