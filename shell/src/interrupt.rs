//! Ctrl-C while a command runs: the shell (interactive, a script or `-c`)
//! catches SIGINT, the running unit stops at the next check (a foreground
//! `run` passes SIGINT on to its program and records its end), and nothing
//! the unit changed is committed. At the prompt, the line editor handles
//! Ctrl-C itself; a script ends with status 130.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Like INTERRUPTED, but only `take_seen` clears it: a script learns that a
/// unit was interrupted after the unit has cleared its own flag.
static SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    SEEN.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C came since the last call (and forget it).
pub fn take_seen() -> bool {
    SEEN.swap(false, Ordering::SeqCst)
}

/// Catch SIGINT instead of dying from it.
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}

/// True when Ctrl-C was pressed since the last `clear`.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Forget an earlier Ctrl-C (before running a new unit).
pub fn clear() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}
