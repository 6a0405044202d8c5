//! The server's timers, on a thread of their own.
//!
//! A tokio runtime parks a worker with no work in `epoll_wait`, and passes it the time
//! to the earliest timer of its own timer wheel. With no timer pending that is `-1`
//! (wait for ever); with one, even a ping 20 s away, it is a timeout, and the kernel arms
//! and cancels a high-resolution timer for every such wait: `perf stat` on a
//! one-connection echo counts one `timer:hrtimer_start` and one `hrtimer_cancel` per
//! echoed message, against none for a server with no timers (fastwebsockets' echo has
//! none). On a virtual machine, programming the timer can leave the guest. What that
//! costs here is in docs/performance.md.
//!
//! So the drivers' timers that are far ahead ([`FAR_TIMER`] or more: a ping, a
//! heartbeat, a long poll's hold, the deadline for a request's head or body) are
//! registered with a second runtime, one thread that only keeps time ([`start`]), and a
//! worker whose connections are idle in between parks with nothing to wait for but its
//! sockets. The near ones (a coalescing flush, a backlog check, a closing handshake's
//! timeout) stay on the workers' own wheel: they come while messages flow, and fired
//! there they wake no worker from another thread (with `--coalesce` on a busy channel,
//! the timer thread would do that thousands of times a second: 5 % more CPU per
//! delivery, measured). When a timer fires, that thread wakes the connection's task on
//! the workers, as any waker would. A `Sleep` keeps the runtime it was made in, so
//! polling, moving and dropping it from a worker is what tokio already does across
//! threads.
//!
//! Without [`start`] (the library's tests, under tokio's paused clock) every timer is
//! made in the current runtime, as before: `sleep_until` here is the one difference,
//! and it only chooses the wheel. The `wire-academy serve` command calls [`start`].

use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

use crate::config::FAR_TIMER;

/// The timer thread's runtime, once [`start`] has run.
static TIMERS: OnceLock<Handle> = OnceLock::new();

/// The timer thread's name, as `top -H` and `/proc/PID/task/*/comm` show it.
pub const TIMER_THREAD: &str = "wa-timers";

/// Starts the timer thread (once per process; later calls do nothing). It runs for as long
/// as the process does: a `Sleep` whose runtime has shut down panics when polled, so the
/// runtime is never shut down.
/// (The server's `main` calls it once, before anything is served.)
pub fn start() -> std::io::Result<()> {
    if TIMERS.get().is_none() {
        let _ = TIMERS.set(timer_thread()?);
    }
    Ok(())
}

/// A thread running a runtime that only keeps time; its handle, once the thread runs
/// (named, so that it shows as such from the moment the server says it listens).
fn timer_thread() -> std::io::Result<Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new().name(TIMER_THREAD.into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(e) => return drop(tx.send(Err(e))),
        };
        let _ = tx.send(Ok(runtime.handle().clone()));
        // Its driver fires the timers while the thread is parked in `block_on`.
        runtime.block_on(std::future::pending::<()>());
    })?;
    rx.recv().map_err(|_| std::io::Error::other("the timer thread ended before it started"))?
}

/// Whether a timer due at `deadline` is kept by the timer thread (once [`start`] has
/// run): [`FAR_TIMER`] or more ahead.
pub(crate) fn is_far(deadline: Instant) -> bool {
    deadline.saturating_duration_since(Instant::now()) >= FAR_TIMER
}

/// A `Sleep` until `deadline`: on the timer thread if it is far ([`is_far`]) and [`start`]
/// has run, else in the current runtime.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    sleep_until_in(TIMERS.get().filter(|_| is_far(deadline)), deadline)
}

/// `tokio::time::timeout` with its timer where [`sleep_until`] puts one.
pub(crate) fn timeout<F: std::future::IntoFuture>(
    duration: Duration,
    future: F,
) -> tokio::time::Timeout<F::IntoFuture> {
    made_in(TIMERS.get().filter(|_| duration >= FAR_TIMER), || tokio::time::timeout(duration, future))
}

fn sleep_until_in(timers: Option<&Handle>, deadline: Instant) -> Sleep {
    made_in(timers, || tokio::time::sleep_until(deadline))
}

/// A `Sleep` of `duration` from now (see [`sleep_until`]).
pub(crate) fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Makes a timer in the timer thread's runtime if `timers` is given, else in the
/// current one (a tokio timer registers with the runtime it is made in).
fn made_in<T>(timers: Option<&Handle>, make: impl FnOnce() -> T) -> T {
    let _in_timers = timers.map(Handle::enter);
    make()
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A timer made on a timer thread fires there and wakes a task of another runtime,
    /// which moves it and drops it. (Not through [`start`]: the process-wide timer thread
    /// would take the timers of the other tests, which run under a paused clock.)
    #[test]
    fn a_timer_on_the_timer_thread_wakes_a_task_of_another_runtime() {
        let timers = timer_thread().unwrap();
        let workers = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        workers.block_on(async move {
            let started = Instant::now();
            let mut sleep = Box::pin(sleep_until_in(Some(&timers), started + Duration::from_millis(5)));
            std::future::poll_fn(|cx| {
                counted.fetch_add(1, Ordering::Relaxed);
                sleep.as_mut().poll(cx)
            })
            .await;
            assert!(started.elapsed() >= Duration::from_millis(5));
            // Moved and fired again, then one dropped while pending: each from this runtime.
            sleep.as_mut().reset(Instant::now() + Duration::from_millis(2));
            sleep.as_mut().await;
            drop(sleep_until_in(Some(&timers), Instant::now() + Duration::from_secs(3600)));
        });
        // Pending once, then woken by the timer thread: not polled in a loop.
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}
