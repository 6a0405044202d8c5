//! The tokio drivers: the accept loop and one driver per protocol. They move bytes
//! between sockets and the pure codecs in `proto/`, and decide only about time and
//! about closing.
//!
//! - [`server`]: accept loop, connection limit, graceful shutdown.
//! - [`http`]: one HTTP/1.1 connection (requests, short and long polls); it hands a
//!   request for `/sse/{channel}` to [`sse`], which streams until the end.

pub mod date;
pub mod http;
pub mod rlimit;
pub mod server;
pub mod sse;
pub mod ws;

use tokio::sync::watch;

use crate::app::broker::Broker;
use crate::app::stats::Stats;
use crate::config::Config;

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    /// Where channels live (`--broker`).
    pub broker: Broker,
    pub stats: Stats,
    /// Becomes `true` when the server starts shutting down. The sender lives here, as
    /// long as any connection, so a receiver's `wait_for` never sees it dropped.
    pub shutdown: watch::Sender<bool>,
}

pub use server::{Running, Server};
