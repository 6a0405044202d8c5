//! The tokio drivers: the accept loop and one driver per protocol. They move bytes
//! between sockets and the pure codecs in `proto/`, and decide only about time and
//! about closing.
//!
//! - [`server`]: accept loop, connection limit, graceful shutdown.
//! - [`http`]: one HTTP/1.1 connection (requests, short and long polls); it hands a
//!   request for `/sse/{channel}` to [`sse`], which streams until the end, and one for
//!   `/trace` to [`trace`], the live byte trace.

pub mod date;
pub mod http;
pub mod rlimit;
pub mod server;
pub mod sse;
pub mod trace;
pub mod ws;

use std::sync::Arc;

use tokio::sync::watch;

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
    /// Becomes `true` when the server starts shutting down. The sender lives here, as
    /// long as any connection, so a receiver's `wait_for` never sees it dropped.
    pub shutdown: watch::Sender<bool>,
    /// The byte tracer when `--trace-bytes` (or `--trace-out`) is on: `GET /trace`
    /// streams its blocks live.
    pub tracer: Option<Arc<Tracer>>,
}

pub use server::{Running, Server};

/// A deadline that never comes in practice: where a driver parks a timer it makes once
/// and resets when it has a real deadline (made afresh per turn of its loop instead, a
/// timer would register with the runtime's wheel once per message).
pub(crate) fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86400 * 365)
}
