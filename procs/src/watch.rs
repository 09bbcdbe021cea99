//! Watching a started program: a thread per output pipe turns lines into
//! log rows, and a thread waits for the program's end and queues its end
//! row, after every line it wrote (or after a short grace period, when a
//! descendant keeps its pipes open).

use crate::launch::Started;
use crate::record::{ended, lost, now_us};
use crate::recorder::{Done, Sink};
use crate::severity;
use dbos_engine::{LogEntry, ProcessRecord, Severity};
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest log row; a longer line is cut into rows of this size.
pub const MAX_LINE: usize = 64 * 1024;
/// How long after a program's end its pipes may stay open (held by a
/// process it left behind) before its end row is written anyway.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// A watched program.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its row as committed when it started.
    pub record: ProcessRecord,
    /// Branch of its rows.
    pub branch: String,
    done: Arc<Done>,
}

impl Job {
    /// dbos process id.
    pub fn id(&self) -> u64 {
        self.record.id
    }

    /// OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.record.pid
    }

    /// Its committed end row, once there is one (Err: it could not be
    /// committed).
    pub fn end(&self) -> Option<Result<ProcessRecord, String>> {
        self.done.get()
    }

    /// True until its end row is committed (or failed to be).
    pub fn is_running(&self) -> bool {
        self.done.get().is_none()
    }

    /// Wait up to `timeout` for its end row.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<ProcessRecord, String>> {
        self.done.wait_timeout(timeout)
    }
}

/// Watch a started program: its piped output becomes log rows of `source`
/// (stdout `info`, stderr `warning`, `process_id` set) on `branch`, and its
/// end becomes the row's next version, all committed by the recorder
/// behind `sink`.
pub fn watch(mut started: Started, branch: &str, source: &str, sink: &Sink) -> Job {
    let done = Arc::new(Done::default());
    let record = started.record.clone();
    let (fin_tx, fin_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    let pipes: [(Option<Box<dyn Read + Send>>, Severity); 2] = [
        (
            started
                .child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            severity::STDOUT,
        ),
        (
            started
                .child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            severity::STDERR,
        ),
    ];
    for (pipe, sev) in pipes {
        let Some(pipe) = pipe else { continue };
        readers += 1;
        let sink = sink.clone();
        let fin = fin_tx.clone();
        let (branch, source, id) = (branch.to_string(), source.to_string(), record.id);
        std::thread::spawn(move || {
            read_lines(pipe, |message| {
                let entry = LogEntry {
                    time_us: now_us(),
                    source: source.clone(),
                    severity: sev,
                    message,
                    process_id: Some(id),
                };
                // A gone recorder: keep draining so the program never blocks.
                let _ = sink.log(&branch, entry);
            });
            let _ = fin.send(());
        });
    }
    drop(fin_tx);
    let (waiter_sink, waiter_done, branch_s) = (sink.clone(), done.clone(), branch.to_string());
    let mut child = started.child;
    let rec = record.clone();
    std::thread::spawn(move || {
        let end = match child.wait() {
            Ok(status) => ended(&rec, status, now_us()),
            Err(e) => lost(&rec, format!("cannot wait for it: {e}"), now_us()),
        };
        let deadline = Instant::now() + DRAIN_GRACE;
        for _ in 0..readers {
            let left = deadline.saturating_duration_since(Instant::now());
            if fin_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        if let Err(e) = waiter_sink.end(&branch_s, end, waiter_done.clone()) {
            waiter_done.set(Err(e.to_string()));
        }
    });
    Job {
        record,
        branch: branch.to_string(),
        done,
    }
}

/// Call `each` with every line of `r` (without its line end, invalid UTF-8
/// replaced), lines longer than `MAX_LINE` cut, a last unterminated line
/// included. Stops at end of file or a read error.
pub fn read_lines(r: impl Read, mut each: impl FnMut(String)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                each(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        read_lines(input, |l| v.push(l));
        v
    }

    #[test]
    fn splits_lines() {
        assert_eq!(lines(b"a\nb\r\n\nlast"), vec!["a", "b", "", "last"]);
        assert_eq!(lines(b""), Vec::<String>::new());
        assert_eq!(lines(b"\xffx\n"), vec!["\u{fffd}x"]);
    }

    #[test]
    fn cuts_long_lines() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        let v = lines(&input);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len(), MAX_LINE);
        assert_eq!(v[1].len(), 10);
    }
}
