//! The process's open-file limit. Each connection is a file descriptor, so 10,000 held
//! long-polls need a limit above 10,000; many systems start processes at 1,024.

/// Descriptors kept free beyond the connections: the listener, the trace file, the
/// sockets refused with 503 (each needs a descriptor long enough to be answered).
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` toward `want` (up to the hard limit). Returns the
/// limit now in force, and an explanation naming the fix when `want` was out of reach.
pub fn raise_nofile(want: u64) -> (u64, Option<String>) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, Some("could not read the open-file limit (getrlimit failed)".into()));
    }
    if lim.rlim_cur >= want {
        return (lim.rlim_cur, None);
    }
    let target = want.min(lim.rlim_max);
    let new = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
    // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the hard
    // limit needs no privilege.
    let now = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 { target } else { lim.rlim_cur };
    if now >= want {
        (now, None)
    } else {
        (
            now,
            Some(format!(
                "the open-file limit is {now} (hard limit {}), too low for {want} descriptors; \
                 raise the hard limit (as root: `ulimit -Hn {want}` before starting, or LimitNOFILE= \
                 in a systemd unit, or /etc/security/limits.conf) or lower --max-connections",
                lim.rlim_max
            )),
        )
    }
}
