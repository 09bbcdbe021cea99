//! Is a pid still the process a row describes? A pid is reused once its
//! process is gone, so a live pid proves nothing alone: its start time, read
//! from `/proc/PID/stat`, must match the row's start time too.

use std::time::Duration;

/// How far a process's start time (kernel clock ticks after boot, boot
/// time in whole seconds) may lie from the start time its row records.
pub const START_TOLERANCE: Duration = Duration::from_secs(3);

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter (`R`, `S`, `Z` zombie, `X` dead, ...).
    pub state: char,
    /// Process group.
    pub pgrp: i32,
    /// Start time, in clock ticks after boot.
    pub start_ticks: u64,
}

/// Parse the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); pgrp is field 5, starttime field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of a live process (None: no such process, or no /proc).
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Boot time, microseconds since the epoch (from `/proc/stat`).
fn boot_time_us() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(secs * 1_000_000)
}

/// Start time of a live process, microseconds since the epoch.
pub fn start_time_us(pid: u32) -> Option<i64> {
    let st = stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    let after_boot = (st.start_ticks as i128 * 1_000_000 / ticks as i128) as i64;
    Some(boot_time_us()? + after_boot)
}

/// Whether `pid` is still the process started at `start_us` (microseconds
/// since the epoch): Some(true) it is, Some(false) it is gone (or a zombie,
/// or another program now has its pid), None this system cannot tell (no
/// `/proc`).
pub fn is_same_process(pid: u32, start_us: i64) -> Option<bool> {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    let Some(st) = stat(pid) else {
        return Some(false);
    };
    if matches!(st.state, 'Z' | 'X' | 'x') {
        return Some(false);
    }
    let started = start_time_us(pid)?;
    Some((started - start_us).unsigned_abs() <= START_TOLERANCE.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let text = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                pgrp: 1234,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_itself_and_not_another() {
        let me = std::process::id();
        let started = start_time_us(me).expect("own start time");
        assert_eq!(is_same_process(me, started), Some(true));
        // Same pid, a start time an hour away: a reused pid.
        assert_eq!(is_same_process(me, started - 3_600_000_000), Some(false));
    }

    #[test]
    fn an_ended_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        let start = start_time_us(pid).unwrap_or(0);
        child.wait().expect("wait");
        assert_eq!(is_same_process(pid, start), Some(false));
    }
}
