//! Ctrl-C while a command runs: the interactive shell catches SIGINT, the
//! running unit stops at the next check, and nothing it changed is
//! committed. At the prompt, the line editor handles Ctrl-C itself.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catch SIGINT instead of dying from it (interactive mode only).
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
