//! Machine samples: load averages, memory, process count (from /proc), the
//! engine's transactions per second since the previous sample and the
//! database size. Each sample is a `metric` row keyed by its time
//! (`metric_key`), JSON valued (`Sample`).

use crate::writer::{now_us, Handle};
use dbos_engine::Space;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One sample, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken, microseconds since the epoch.
    pub time_us: i64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// MemTotal, KiB.
    pub mem_total_kb: u64,
    /// MemAvailable, KiB.
    pub mem_available_kb: u64,
    /// Processes (numeric entries of /proc).
    pub processes: u64,
    /// Transactions committed per second since the previous sample
    /// (including dbos-init's own).
    pub tps: Option<f64>,
    /// Size of the database files (SQLite file plus WAL), bytes.
    pub db_bytes: Option<u64>,
}

/// The key of a sample taken at `time_us`: zero-padded so keys sort by time.
pub fn metric_key(time_us: i64) -> String {
    format!("{:020}", time_us.max(0))
}

/// The three load averages of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// MemTotal and MemAvailable (KiB) of /proc/meminfo. Kernels older than
/// 3.14 lack MemAvailable: MemFree + Buffers + Cached stands in.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut avail = None;
    let mut fallback = 0u64;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let Some(n) = v
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        match k.trim() {
            "MemTotal" => total = Some(n),
            "MemAvailable" => avail = Some(n),
            "MemFree" | "Buffers" | "Cached" => fallback += n,
            _ => {}
        }
    }
    Some((total?, avail.unwrap_or(fallback)))
}

/// Number of processes: numeric directory names under `proc`.
pub fn count_processes(proc: &Path) -> u64 {
    std::fs::read_dir(proc)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u64
        })
        .unwrap_or(0)
}

/// Bytes of a SQLite database and its WAL (None when it is not a file).
pub fn db_size(db: &Path) -> Option<u64> {
    let main = std::fs::metadata(db).ok()?.len();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    Some(
        main + std::fs::metadata(PathBuf::from(wal))
            .map(|m| m.len())
            .unwrap_or(0),
    )
}

/// Take a sample now. `tps` is computed by the caller.
pub fn sample(proc: &Path, db: Option<&Path>, tps: Option<f64>) -> Sample {
    let read = |f: &str| std::fs::read_to_string(proc.join(f)).unwrap_or_default();
    let (mem_total_kb, mem_available_kb) = parse_meminfo(&read("meminfo")).unwrap_or((0, 0));
    Sample {
        time_us: now_us(),
        load: parse_loadavg(&read("loadavg")).unwrap_or([0.0; 3]),
        mem_total_kb,
        mem_available_kb,
        processes: count_processes(proc),
        tps,
        db_bytes: db.and_then(db_size),
    }
}

/// The sampler thread: a sample every `interval` until `stop` is set.
pub fn spawn(
    writer: Handle,
    interval: Duration,
    db: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut last = (Instant::now(), writer.head());
            let mut next = Instant::now() + interval;
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()));
                    continue;
                }
                next += interval;
                let head = writer.head();
                let secs = last.0.elapsed().as_secs_f64();
                let tps = match (last.1, head) {
                    (Some(a), Some(b)) if secs > 0.0 => Some(b.saturating_sub(a) as f64 / secs),
                    _ => None,
                };
                last = (Instant::now(), head);
                let s = sample(Path::new("/proc"), db.as_deref(), tps);
                match serde_json::to_string(&s) {
                    Ok(json) => writer.put(Space::Metric, &metric_key(s.time_us), json),
                    Err(e) => eprintln!("dbos-init: metric sample: {e}"),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16314320 kB\nMemFree:         1234567 kB\n\
MemAvailable:    9876543 kB\nBuffers:          100000 kB\nCached:          2000000 kB\n\
SwapCached:            0 kB\nHugePages_Total:       0\n";

    #[test]
    fn meminfo() {
        assert_eq!(parse_meminfo(MEMINFO), Some((16_314_320, 9_876_543)));
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n";
        assert_eq!(parse_meminfo(old), Some((1000, 150)));
        assert_eq!(parse_meminfo("garbage\n::\nMemFree: x kB"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.52 1.05 2.50 3/1234 56789\n"),
            Some([0.52, 1.05, 2.5])
        );
        assert_eq!(parse_loadavg("0.1 x 3"), None);
        assert_eq!(parse_loadavg("0.1"), None);
    }

    #[test]
    fn keys_sort_by_time() {
        assert_eq!(metric_key(5), "00000000000000000005");
        assert!(metric_key(999_999) < metric_key(1_000_000));
        assert!(metric_key(1_700_000_000_000_000) < metric_key(17_000_000_000_000_000));
    }

    #[test]
    fn counts_numeric_proc_entries() {
        let d = tempfile::tempdir().unwrap();
        for n in ["1", "42", "self", "7x"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        std::fs::write(d.path().join("meminfo"), MEMINFO).unwrap();
        std::fs::write(d.path().join("loadavg"), "1 2 3 1/2 3").unwrap();
        assert_eq!(count_processes(d.path()), 2);
        let s = sample(d.path(), None, Some(1.5));
        assert_eq!(s.load, [1.0, 2.0, 3.0]);
        assert_eq!(s.mem_total_kb, 16_314_320);
        assert_eq!(s.processes, 2);
    }
}
