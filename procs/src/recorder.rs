//! The writer thread: one database connection of its own (an `Engine` is
//! not shared between threads) that commits the log rows of every watched
//! program in batches, and their end rows. Messages arrive on a bounded
//! channel: a program writing faster than the database keeps up is slowed
//! down (its pipe fills), never loses lines.

use crate::batch::{Batcher, Policy};
use crate::error::{Error, Result};
use crate::record::{self, Target};
use dbos_engine::{Actor, Engine, LogEntry, ProcessRecord};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages waiting in the channel at most.
const CHANNEL_ROWS: usize = 10_000;

/// How a watched program ended, once its end row is committed.
#[derive(Debug, Default)]
pub struct Done {
    end: Mutex<Option<std::result::Result<ProcessRecord, String>>>,
    cv: Condvar,
}

impl Done {
    /// The committed end row (Err: it could not be committed), if there is
    /// one yet.
    pub fn get(&self) -> Option<std::result::Result<ProcessRecord, String>> {
        self.end.lock().ok().and_then(|g| g.clone())
    }

    /// Wait up to `timeout` for the end row.
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> Option<std::result::Result<ProcessRecord, String>> {
        let guard = self.end.lock().ok()?;
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |e| e.is_none())
            .ok()?;
        guard.clone()
    }

    pub(crate) fn set(&self, end: std::result::Result<ProcessRecord, String>) {
        if let Ok(mut g) = self.end.lock() {
            *g = Some(end);
        }
        self.cv.notify_all();
    }
}

pub(crate) enum Msg {
    Log {
        branch: String,
        entry: LogEntry,
    },
    End {
        branch: String,
        record: ProcessRecord,
        done: Arc<Done>,
    },
    Flush(mpsc::Sender<()>),
    Stop,
}

/// Sends rows to a recorder thread (cheap to clone, one per reader thread).
#[derive(Clone)]
pub struct Sink {
    tx: SyncSender<Msg>,
}

impl Sink {
    /// Queue a log row for `branch`. Fails only when the recorder is gone.
    pub fn log(&self, branch: &str, entry: LogEntry) -> Result<()> {
        self.send(Msg::Log {
            branch: branch.to_string(),
            entry,
        })
    }

    /// Queue the end row of a program (committed after every row queued
    /// before it); `done` learns when it is committed.
    pub fn end(&self, branch: &str, record: ProcessRecord, done: Arc<Done>) -> Result<()> {
        self.send(Msg::End {
            branch: branch.to_string(),
            record,
            done,
        })
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| Error::RecorderGone("its thread has ended".to_string()))
    }
}

/// The writer thread and its channel. Dropping it commits what waits and
/// stops the thread.
pub struct Recorder {
    sink: Sink,
    thread: Option<JoinHandle<()>>,
    pub(crate) errors: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// Open a connection to the database at `location` in a new thread,
    /// which commits as `actor` with batches under `policy`.
    pub fn start(location: &str, actor: Actor, policy: Policy) -> Result<Recorder> {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_ROWS);
        let (ready_tx, ready_rx) = mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let location = location.to_string();
        let errs = errors.clone();
        let thread = std::thread::Builder::new()
            .name("dbos-recorder".to_string())
            .spawn(move || match Engine::open(&location) {
                Ok(engine) => {
                    let _ = ready_tx.send(Ok(()));
                    run(engine, actor, policy, rx, errs);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Recorder {
                sink: Sink { tx },
                thread: Some(thread),
                errors,
            }),
            Ok(Err(e)) => Err(Error::RecorderGone(e)),
            Err(_) => Err(Error::RecorderGone("its thread ended at start".to_string())),
        }
    }

    /// A sender of rows to this recorder.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Commit every row queued so far, and return when it is done.
    pub fn flush(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.sink.send(Msg::Flush(tx))?;
        rx.recv()
            .map_err(|_| Error::RecorderGone("its thread has ended".to_string()))
    }

    /// Errors met while committing since the last call (rows that could
    /// not be stored), for the caller to report.
    pub fn take_errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.sink.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's loop: batch log rows, commit when due, on an end row, a
/// flush or at the end.
fn run(
    mut engine: Engine,
    actor: Actor,
    policy: Policy,
    rx: Receiver<Msg>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut batch: Batcher<(String, LogEntry)> = Batcher::new(policy);
    let mut w = Writer {
        engine: &mut engine,
        actor,
        errors,
    };
    loop {
        let timeout = batch
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(timeout) {
            Ok(Msg::Log { branch, entry }) => {
                batch.push((branch, entry), Instant::now());
                if batch.due(Instant::now()) {
                    w.commit_logs(batch.take());
                }
            }
            Ok(Msg::End {
                branch,
                record,
                done,
            }) => {
                w.commit_logs(batch.take());
                done.set(w.commit_end(&branch, &record).map(|_| record));
            }
            Ok(Msg::Flush(reply)) => {
                w.commit_logs(batch.take());
                let _ = reply.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                if batch.due(Instant::now()) {
                    w.commit_logs(batch.take());
                }
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                w.commit_logs(batch.take());
                return;
            }
        }
    }
}

struct Writer<'a> {
    engine: &'a mut Engine,
    actor: Actor,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Writer<'_> {
    fn report(&self, what: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(what);
        }
    }

    /// One transaction per branch, rows in arrival order.
    fn commit_logs(&mut self, rows: Vec<(String, LogEntry)>) {
        let mut groups: Vec<(String, Vec<LogEntry>)> = Vec::new();
        for (branch, entry) in rows {
            match groups.iter_mut().find(|(b, _)| *b == branch) {
                Some((_, v)) => v.push(entry),
                None => groups.push((branch, vec![entry])),
            }
        }
        for (branch, entries) in groups {
            let mut ids: Vec<u64> = entries.iter().filter_map(|e| e.process_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            let command = format!("output of process {}", list.join(", "));
            let res = self
                .engine
                .autocommit(&branch, &self.actor, &command, |tx| {
                    for e in &entries {
                        tx.log(e.clone())?;
                    }
                    Ok(())
                });
            if let Err(e) = res {
                self.report(format!(
                    "{} log rows of process {} not stored: {e}",
                    entries.len(),
                    list.join(", ")
                ));
            }
        }
    }

    fn commit_end(&mut self, branch: &str, rec: &ProcessRecord) -> std::result::Result<(), String> {
        let target = Target {
            branch: branch.to_string(),
            actor: self.actor.clone(),
        };
        let command = record::end_command(rec);
        record::commit_version(self.engine, &target, &command, rec).map_err(|e| {
            let msg = format!("end of process {} not recorded: {e}", rec.id);
            self.report(msg.clone());
            msg
        })
    }
}
