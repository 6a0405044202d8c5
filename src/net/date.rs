//! The `Date` header's value (RFC 9110 §6.6.1), formatted at most once a second per
//! worker thread rather than once per response, and lent out rather than copied.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `f` with now, as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn with_now<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        f(&c.1)
    })
}

/// Now, as an IMF-fixdate (a copy: for a caller that keeps it across an `.await`).
pub fn now() -> String {
    with_now(str::to_owned)
}
