//! Signal names and numbers: `TERM`, `SIGTERM`, `term` and `15` are one
//! signal.

use crate::error::{Error, Result};

/// Known signals by their name without the `SIG` prefix.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

/// Largest signal number accepted as a number.
const MAX_SIGNAL: i32 = 64;

/// Parse a signal: a name with or without `SIG` in any case (`TERM`,
/// `sigterm`), or a number from 1 to 64 (`9`). `0` is accepted too: it
/// checks that a process exists without signalling it.
pub fn parse_signal(text: &str) -> Result<i32> {
    let bad = || Error::BadSignal(text.to_string());
    if let Ok(n) = text.parse::<i32>() {
        return if (0..=MAX_SIGNAL).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(bad)
}

/// The name of a signal with its `SIG` prefix (`SIGTERM`), or `SIG<n>` for
/// one without a name.
pub fn signal_name(signal: i32) -> String {
    match SIGNALS.iter().find(|(_, s)| *s == signal) {
        Some((n, _)) => format!("SIG{n}"),
        None => format!("SIG{signal}"),
    }
}

/// Send `signal` to the process `pid`, and to its whole process group
/// when it leads one (a background program started in a group of its own:
/// what it started itself stops with it).
pub fn send(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    let target = match crate::liveness::stat(pid as u32) {
        Some(st) if st.pgrp == pid => -pid,
        _ => pid,
    };
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(target, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("USR1").unwrap(), libc::SIGUSR1);
    }

    #[test]
    fn unknown_signals_are_refused() {
        for bad in ["", "SIG", "TERMINATE", "65", "-1", "1.5", "SIGSIGTERM"] {
            assert!(
                matches!(parse_signal(bad), Err(Error::BadSignal(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for (name, n) in SIGNALS {
            assert_eq!(signal_name(*n), format!("SIG{name}"));
            assert_eq!(parse_signal(&signal_name(*n)).unwrap(), *n);
        }
        assert_eq!(signal_name(40), "SIG40");
    }
}
