//! The study tools: what a learner runs beside the server.
//!
//! - [`vectors`]: the published test vectors (RFC 6455, RFC 9112, WHATWG, RFC 3629) run
//!   against the codecs, the same table the unit tests run.
//! - [`decode`]: captured bytes (hex as people paste it) read as `--trace-bytes` reads
//!   them, from the same code.

pub mod decode;
pub mod vectors;
