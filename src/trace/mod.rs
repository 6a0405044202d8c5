//! `--trace-bytes`: every byte read and written, as an annotated hexdump (API.md § Trace).
//!
//! - [`hexdump`]: the `xxd`-style rows (pure).
//! - [`annotate`]: reads each direction of a connection with the protocol codecs and
//!   says what each run of bytes means (pure).
//! - [`tap`]: the stream wrapper between the socket and the driver, and the writer
//!   thread that prints.
//!
//! The data path reads left to right: socket -> tap -> driver buffer -> codec -> app.
//! The codecs never know the tap is there.

pub mod annotate;
pub mod hexdump;
pub mod hexread;
pub mod tap;

pub use tap::{Role, Tap, Tracer, closing_because, connection_scope, unwatched};
