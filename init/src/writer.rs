//! The writer thread: the one owner of the `Engine`. Everything dbos-init
//! stores (log rows, process records, metric and boot rows) arrives here over
//! a channel and is committed in batches: at most every `interval`, or sooner
//! once `max_lines` log rows are waiting, so a flood of syslog lines costs a
//! transaction per batch, not per line. Stopping flushes what is pending.

use dbos_engine::{Actor, Engine, Error, LogEntry, Moment, ProcessRecord, Space, TxId};
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the writer writes, and how it batches.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Branch written (and whose config is read).
    pub branch: String,
    /// Booted read-only at this moment: config is read there, nothing is
    /// written (log rows go to standard error instead).
    pub read_only: Option<Moment>,
    /// Longest a pending row waits before its batch commits.
    pub interval: Duration,
    /// A batch commits as soon as this many log rows wait.
    pub max_lines: usize,
}

enum Event {
    Log(LogEntry),
    Put(Space, String, String),
    AllocId(Sender<u64>),
    Config(Sender<Result<Vec<(String, String)>, String>>),
    Head(Sender<Option<TxId>>),
    Flush(Sender<()>),
    Stop,
}

/// A cloneable way to reach the writer thread. Sends never block; requests
/// with an answer wait for it (None when the writer is gone).
#[derive(Clone)]
pub struct Handle {
    tx: Sender<Event>,
}

/// The running writer thread.
pub struct Writer {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl Handle {
    /// Queue a log row.
    pub fn log(&self, entry: LogEntry) {
        let _ = self.tx.send(Event::Log(entry));
    }

    /// Queue a log row from dbos-init itself (source `init`), time now.
    pub fn init_log(&self, severity: u8, message: impl Into<String>, process_id: Option<u64>) {
        self.log(LogEntry {
            time_us: now_us(),
            source: "init".to_string(),
            severity,
            message: message.into(),
            process_id,
        });
    }

    /// Queue a new version of a keyed value (a JSON text) in `space`.
    pub fn put(&self, space: Space, key: &str, value: String) {
        let _ = self.tx.send(Event::Put(space, key.to_string(), value));
    }

    /// Queue a new version of a process record.
    pub fn process(&self, rec: &ProcessRecord) {
        match serde_json::to_string(rec) {
            Ok(json) => self.put(Space::Process, &rec.id.to_string(), json),
            Err(e) => eprintln!("dbos-init: process record {}: {e}", rec.id),
        }
    }

    /// A process id no record uses (nor any id handed out before).
    pub fn alloc_process_id(&self) -> Option<u64> {
        let (tx, rx) = channel();
        self.tx.send(Event::AllocId(tx)).ok()?;
        rx.recv().ok()
    }

    /// Every config row of the booted branch (or moment).
    pub fn config(&self) -> Result<Vec<(String, String)>, String> {
        let (tx, rx) = channel();
        self.tx
            .send(Event::Config(tx))
            .map_err(|_| "writer stopped".to_string())?;
        rx.recv().map_err(|_| "writer stopped".to_string())?
    }

    /// The newest transaction id of the database.
    pub fn head(&self) -> Option<TxId> {
        let (tx, rx) = channel();
        self.tx.send(Event::Head(tx)).ok()?;
        rx.recv().ok().flatten()
    }

    /// Commit everything queued so far; returns once it is stored.
    pub fn flush(&self) {
        let (tx, rx) = channel();
        if self.tx.send(Event::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

pub use dbos_procs::record::now_us;

impl Writer {
    /// Start the writer thread, which opens the engine at `location` and is
    /// its only user (an `Engine` stays on the thread that opened it).
    pub fn spawn(location: &str, cfg: WriterConfig) -> Result<Writer, Error> {
        let (tx, rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let location = location.to_string();
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || match Engine::open(&location) {
                Ok(engine) => {
                    let _ = ready_tx.send(Ok(()));
                    State::new(engine, cfg).run(rx)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Database(format!("starting the writer thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Writer {
                handle: Handle { tx },
                thread,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Database("the writer thread died".into())),
        }
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Flush what is pending and end the thread.
    pub fn stop(self) {
        let _ = self.handle.tx.send(Event::Stop);
        if self.thread.join().is_err() {
            eprintln!("dbos-init: the writer thread panicked");
        }
    }
}

struct State {
    engine: Engine,
    cfg: WriterConfig,
    actor: Actor,
    logs: Vec<LogEntry>,
    puts: BTreeMap<(Space, String), String>,
    since: Option<Instant>,
    next_id: u64,
}

impl State {
    fn new(engine: Engine, cfg: WriterConfig) -> State {
        State {
            engine,
            cfg,
            actor: Actor {
                author: "dbos-init".to_string(),
                uid: 0,
                gid: 0,
            },
            logs: Vec::new(),
            puts: BTreeMap::new(),
            since: None,
            next_id: 1,
        }
    }

    fn run(mut self, rx: Receiver<Event>) {
        loop {
            let wait = match self.since {
                Some(t) => self.cfg.interval.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let due = self.since.is_some_and(|t| t.elapsed() >= self.cfg.interval);
            if due || self.logs.len() >= self.cfg.max_lines {
                self.commit();
            }
        }
    }

    fn pending(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Log(e) => {
                self.logs.push(e);
                self.pending();
            }
            Event::Put(space, key, value) => {
                // A second version of a key in one batch would hide the
                // first: commit the first on its own.
                if self.puts.contains_key(&(space, key.clone())) {
                    self.commit();
                }
                self.puts.insert((space, key), value);
                self.pending();
            }
            Event::AllocId(reply) => {
                let stored = self.read(|tx| tx.next_process_id()).unwrap_or(1);
                let id = stored.max(self.next_id);
                self.next_id = id + 1;
                let _ = reply.send(id);
            }
            Event::Config(reply) => {
                let rows = self.read(|tx| tx.config_list()).map_err(|e| e.to_string());
                let _ = reply.send(rows);
            }
            Event::Head(reply) => {
                let _ = reply.send(self.engine.head().ok());
            }
            Event::Flush(reply) => {
                self.commit();
                let _ = reply.send(());
            }
            Event::Stop => {}
        }
    }

    /// Run a read on the booted branch, or at the booted moment.
    fn read<T>(
        &mut self,
        f: impl FnOnce(&mut dbos_engine::Txn<'_>) -> dbos_engine::Result<T>,
    ) -> dbos_engine::Result<T> {
        let mut tx = match &self.cfg.read_only {
            Some(m) => self.engine.view_at(&m.branch, m.tx)?,
            None => self.engine.begin(&self.cfg.branch, &self.actor)?,
        };
        f(&mut tx)
    }

    fn commit(&mut self) {
        self.since = None;
        if self.logs.is_empty() && self.puts.is_empty() {
            return;
        }
        let logs = std::mem::take(&mut self.logs);
        let puts = std::mem::take(&mut self.puts);
        if self.cfg.read_only.is_some() {
            // Writes are refused at a past moment: the console gets the logs.
            for l in logs {
                eprintln!("{} [{}] {}", l.source, l.severity, l.message);
            }
            return;
        }
        let command = format!("dbos-init: {} log rows, {} keys", logs.len(), puts.len());
        let mut attempt = 0u32;
        loop {
            match self.try_commit(&logs, &puts, &command) {
                Ok(()) => return,
                Err(e) if e.is_retryable() && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 << attempt.min(6)));
                }
                Err(e) => {
                    eprintln!(
                        "dbos-init: could not store {} log rows and {} rows: {e}",
                        logs.len(),
                        puts.len()
                    );
                    return;
                }
            }
        }
    }

    fn try_commit(
        &mut self,
        logs: &[LogEntry],
        puts: &BTreeMap<(Space, String), String>,
        command: &str,
    ) -> Result<(), Error> {
        let mut tx = self.engine.begin(&self.cfg.branch, &self.actor)?;
        for ((space, key), value) in puts {
            tx.put(*space, key, Some(dbos_engine::Entry::Value(value.clone())))?;
        }
        for l in logs {
            tx.log(l.clone())?;
        }
        tx.commit(command, None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbos_engine::LogFilter;

    fn cfg() -> WriterConfig {
        WriterConfig {
            branch: "main".into(),
            read_only: None,
            interval: Duration::from_millis(100),
            max_lines: 500,
        }
    }

    #[test]
    fn batches_and_flushes_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db").display().to_string();
        let before = Engine::open(&db).unwrap().head().unwrap();
        let w = Writer::spawn(&db, cfg()).unwrap();
        let h = w.handle();
        for i in 0..1200 {
            h.init_log(6, format!("line {i}"), None);
        }
        let id1 = h.alloc_process_id().unwrap();
        let id2 = h.alloc_process_id().unwrap();
        assert!(id2 > id1);
        h.put(Space::Metric, "00000000000000000001", "{}".into());
        w.stop();
        let mut e = Engine::open(&db).unwrap();
        let after = e.head().unwrap();
        assert!(
            after - before <= 6,
            "batched: {} transactions",
            after - before
        );
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        let logs = tx.logs(&LogFilter::default()).unwrap();
        assert_eq!(logs.len(), 1200);
        assert!(tx
            .get(Space::Metric, "00000000000000000001")
            .unwrap()
            .is_some());
    }
}
