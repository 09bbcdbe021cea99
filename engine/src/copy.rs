//! Copy a whole database to a new one, from any backend to any backend
//! (`dbos db copy SRC DST`): every branch (deleted ones too), transaction
//! (same ids, times, authors, hosts, commands, messages, merge fields and
//! the same hash chain), version, log row, tag, shell history line and
//! content chunk.
//!
//! How:
//!
//! 1. The source is opened as it is (never bootstrapped) and must hold
//!    transactions; the destination is opened at the backend level, so no
//!    `T1` is created in it, and must be empty.
//! 2. The destination's `Backend::import` pulls everything from the source:
//!    branches, then every chunk as stored (re-addressed by hash: the
//!    destination gives them its own ids, and manifests are re-encoded with
//!    them), then each transaction verbatim in id order, then tags and the
//!    shell history. The source's hash chain is recomputed on the way; a
//!    broken chain stops the copy. The imported branches stay *hidden*
//!    (`IMPORT_UNFINISHED_US`): a half-written copy has no usable branch.
//! 3. The copy is verified against the source: every chunk decodes to its
//!    hash; every transaction's metadata (hash included), writes (chunk by
//!    chunk hash), and log rows are equal, and the hash chain recomputed from
//!    the copy's rows holds; branches, tags and shell history are equal; and
//!    for a sample of transactions (all with `verify_all`) the whole state
//!    (file tree, config, process records, visible logs) of every branch is
//!    read through the ordinary read path on both sides and compared.
//! 4. Only then does `Backend::import_finish` reveal the branches, in one
//!    destination transaction.
//!
//! On any failure the destination is cleaned: a SQLite file this copy
//! created is removed; otherwise `Backend::import_abort` empties it. If even
//! that fails (a lost connection), its branches stay hidden, and the error
//! says so.
//!
//! The copy covers the source as of the moment it starts: transactions
//! committed meanwhile are not copied (copy a quiet database for an exact
//! copy). On PostgreSQL, periods stamps the system time of the imported
//! versions with the time of the import, not of the original transactions;
//! `transactions.time_us`, which every dbos read uses, is the original.

use crate::backend::postgres::PostgresBackend;
use crate::backend::sqlite::SqliteBackend;
use crate::backend::{
    Backend, BranchRecord, ImportItem, LogFilter, ShellLine, TagRecord, Write, IMPORT_UNFINISHED_US,
};
use crate::chain::{chain_hash, tx_logs};
use crate::content::decode_chunk;
use crate::engine::{is_postgres, Engine};
use crate::error::Error;
use crate::path::VPath;
use crate::types::{
    hex, BranchId, ChunkId, ChunkRef, Content, Entry, Hash, Lineage, ProcessRecord, Space,
    StoredLog, TxId,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Chunks read from the source per round trip.
const CHUNK_PAGE: usize = 1000;
/// Shell history lines read per round trip.
const SHELL_PAGE: usize = 1000;

/// How to copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Compare the whole state at every transaction, not at a sample.
    pub verify_all: bool,
    /// How many transactions the whole state is compared at (spread evenly,
    /// the first and the last included).
    pub samples: usize,
    /// Report progress every this many transactions (0: never).
    pub progress_every: u64,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            verify_all: false,
            samples: 16,
            progress_every: 1000,
        }
    }
}

/// What a successful copy copied and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The source (a path, or a URL without password).
    pub source: String,
    /// The destination.
    pub destination: String,
    /// Transactions copied (T1 to T`transactions`).
    pub transactions: u64,
    /// Branches copied, deleted ones included.
    pub branches: usize,
    /// Content chunks copied.
    pub chunks: u64,
    /// Tags copied.
    pub tags: usize,
    /// Log rows copied.
    pub log_rows: u64,
    /// Shell history lines copied.
    pub shell_lines: u64,
    /// (branch, transaction) states read and compared on both sides.
    pub states_compared: u64,
}

/// Why a copy did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source cannot be copied (missing, not a dbos database, empty,
    /// unreachable). Nothing was written anywhere.
    #[error("cannot copy from {0}")]
    Source(String),
    /// The destination cannot receive a copy (not new and empty,
    /// unreachable). Nothing was written to it.
    #[error("cannot copy to {0}")]
    Destination(String),
    /// Reading, writing or checking failed; `aftermath` says what became of
    /// the destination.
    #[error("copy failed while {stage}: {error}; {aftermath}")]
    Failed {
        /// What was being done.
        stage: String,
        /// The error.
        error: String,
        /// The state the destination was left in.
        aftermath: String,
    },
    /// The copy differs from the source.
    #[error("verification failed: {detail}; {aftermath}")]
    Mismatch {
        /// The first difference found.
        detail: String,
        /// The state the destination was left in.
        aftermath: String,
    },
}

/// What the source holds as of the start of the copy.
struct Plan {
    head: TxId,
    branches: Vec<BranchRecord>,
    tags: Vec<TagRecord>,
}

/// Copy the database at `src` to the new database at `dst` (locations as
/// `Engine::open` takes them), then verify the copy. `progress` receives
/// one line at a time, for standard error.
pub fn copy(
    src: &str,
    dst: &str,
    opts: &CopyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CopyReport, CopyError> {
    let mut src = Engine::with_backend(open_source(src)?)
        .map_err(|e| CopyError::Source(format!("the source: {e}")))?;
    let src_loc = src.location();
    let plan = make_plan(src.backend())
        .map_err(|e| CopyError::Source(format!("{src_loc}: {}", show(&e))))?;

    let (mut dst_backend, created) = open_destination(src_loc.as_str(), dst)?;
    let dst_loc = dst_backend.location();
    check_empty(&mut *dst_backend, &dst_loc)?;

    progress(&format!(
        "copying {src_loc} to {dst_loc}: {} transactions, {} branches",
        plan.head,
        plan.branches.len()
    ));
    let mut report = CopyReport {
        source: src_loc.clone(),
        destination: dst_loc.clone(),
        transactions: plan.head,
        branches: plan.branches.len(),
        tags: plan.tags.len(),
        ..CopyReport::default()
    };

    // ----- import ----------------------------------------------------------
    let mut ex = Exporter {
        src: src.backend(),
        plan: &plan,
        opts,
        progress: &mut *progress,
        stage: Stage::Branches(0),
        src_chunks: HashMap::new(),
        prev_hash: [0u8; 32],
        doing: "the branches".to_string(),
        source_failed: false,
        started: false,
        log_rows: 0,
        shell_lines: 0,
        shell_last: 0,
    };
    let imported = dst_backend.import(&mut || ex.next());
    let (source_failed, started, doing) = (ex.source_failed, ex.started, ex.doing.clone());
    let (src_chunks, log_rows, shell_lines, shell_last) =
        (ex.src_chunks, ex.log_rows, ex.shell_lines, ex.shell_last);
    if let Err(e) = imported {
        let stage = if source_failed {
            format!("reading {doing} from the source")
        } else {
            format!("writing {doing} to {dst_loc}")
        };
        let aftermath = if started {
            clean_up(dst_backend, created.as_deref())
        } else {
            "nothing was written to the destination".to_string()
        };
        return Err(CopyError::Failed {
            stage,
            error: show(&e),
            aftermath,
        });
    }
    report.chunks = src_chunks.len() as u64;
    report.log_rows = log_rows;
    report.shell_lines = shell_lines;

    // ----- verify ----------------------------------------------------------
    let mut dst_engine = match Engine::with_backend(dst_backend) {
        Ok(e) => e,
        Err(e) => {
            let aftermath = match created.as_deref() {
                Some(path) => {
                    remove_sqlite(path);
                    format!("{dst_loc} was removed")
                }
                None => destination_left_hidden(&dst_loc),
            };
            return Err(CopyError::Failed {
                stage: format!("reopening {dst_loc} to verify it"),
                error: show(&e),
                aftermath,
            });
        }
    };
    let mut v = Verifier {
        src: &mut src,
        dst: &mut dst_engine,
        plan: &plan,
        opts,
        progress: &mut *progress,
        src_chunks: &src_chunks,
        shell_last,
    };
    let checked = v.run();
    let states = match checked {
        Ok(n) => n,
        Err(fail) => {
            let aftermath = clean_up(into_backend(dst_engine), created.as_deref());
            return Err(match fail {
                Fail::Mismatch(detail) => CopyError::Mismatch { detail, aftermath },
                Fail::Error(stage, e) => CopyError::Failed {
                    stage,
                    error: show(&e),
                    aftermath,
                },
            });
        }
    };
    report.states_compared = states;

    // ----- reveal ----------------------------------------------------------
    if let Err(e) = dst_engine.backend().import_finish(&plan.branches) {
        let aftermath = clean_up(into_backend(dst_engine), created.as_deref());
        return Err(CopyError::Failed {
            stage: format!("making the branches of {dst_loc} usable"),
            error: show(&e),
            aftermath,
        });
    }
    match dst_engine.backend().export_branches() {
        Ok(b) if b == plan.branches => {}
        Ok(b) => {
            return Err(CopyError::Mismatch {
                detail: format!(
                    "after completion the branches differ: {}",
                    first_diff(&plan.branches, &b).unwrap_or_default()
                ),
                aftermath: format!("{dst_loc} is complete but should not be trusted"),
            })
        }
        Err(e) => {
            return Err(CopyError::Failed {
                stage: format!("reading the branches of {dst_loc} back"),
                error: show(&e),
                aftermath: format!("{dst_loc} is complete but was not checked after completion"),
            })
        }
    }
    Ok(report)
}

// ----- opening ---------------------------------------------------------------

/// True when the SQLite file at `path` has the dbos tables. Opens it read
/// only, so a file that is not a dbos database is never changed.
fn sqlite_is_dbos(path: &Path) -> std::result::Result<bool, String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('schema_migrations', 'transactions', 'branches', 'versions')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => "not an SQLite file".to_string(),
            _ => e.to_string(),
        })?;
    Ok(n == 4)
}

/// True when the SQLite file at `path` holds no table at all (a database
/// created, its schema never committed). Opens it read only.
fn sqlite_is_blank(path: &Path) -> std::result::Result<bool, String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    Ok(n == 0)
}

fn open_source(src: &str) -> Result<Box<dyn Backend>, CopyError> {
    let bad = |m: String| CopyError::Source(m);
    let backend: Box<dyn Backend> = if is_postgres(src) {
        Box::new(PostgresBackend::open(src).map_err(|e| bad(format!("the source: {e}")))?)
    } else {
        let path = Path::new(src);
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(format!("{src}: no such file")))
            }
            Err(e) => return Err(bad(format!("{src}: {e}"))),
            Ok(m) if m.is_dir() => return Err(bad(format!("{src}: is a directory"))),
            Ok(_) => {}
        }
        match sqlite_is_dbos(path) {
            Ok(true) => {}
            Ok(false) => return Err(bad(format!("{src}: not a dbos database"))),
            Err(e) => return Err(bad(format!("{src}: not a dbos database ({e})"))),
        }
        Box::new(SqliteBackend::open(path).map_err(|e| bad(format!("{src}: {}", show(&e))))?)
    };
    let mut backend = backend;
    let loc = backend.location();
    match backend.head() {
        Ok(0) => Err(bad(format!("{loc}: it holds no transactions"))),
        Ok(_) => Ok(backend),
        Err(e) => Err(bad(format!("{loc}: {}", show(&e)))),
    }
}

/// Open the destination without bootstrapping it. Gives the file created
/// when the destination is a SQLite file that did not exist.
fn open_destination(
    src_loc: &str,
    dst: &str,
) -> Result<(Box<dyn Backend>, Option<PathBuf>), CopyError> {
    let bad = |m: String| CopyError::Destination(m);
    if is_postgres(dst) {
        let b = PostgresBackend::open(dst).map_err(|e| bad(format!("the destination: {e}")))?;
        if b.location() == src_loc {
            return Err(bad(format!("{}: it is the source itself", b.location())));
        }
        return Ok((Box::new(b), None));
    }
    let path = Path::new(dst);
    let created = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(path.to_path_buf()),
        Err(e) => return Err(bad(format!("{dst}: {e}"))),
        Ok(m) if m.is_dir() => return Err(bad(format!("{dst}: is a directory"))),
        Ok(m) => {
            if !is_postgres(src_loc) {
                let same = std::fs::canonicalize(path)
                    .ok()
                    .zip(std::fs::canonicalize(src_loc).ok())
                    .is_some_and(|(a, b)| a == b);
                if same {
                    return Err(bad(format!("{dst}: it is the source itself")));
                }
            }
            // A SQLite file without tables is blank: what a copy killed
            // before its schema was committed leaves behind.
            if m.len() > 0 && sqlite_is_blank(path) != Ok(true) {
                let why = match sqlite_is_dbos(path) {
                    Ok(true) => None,
                    Ok(false) => Some(String::new()),
                    Err(e) => Some(format!(" ({e})")),
                };
                if let Some(why) = why {
                    return Err(bad(format!(
                        "{dst}: the file exists and is not a dbos database{why}; name a new file"
                    )));
                }
            }
            None
        }
    };
    match SqliteBackend::open(path) {
        Ok(b) => Ok((Box::new(b), created)),
        Err(e) => {
            if let Some(p) = &created {
                remove_sqlite(p);
            }
            Err(bad(format!("{dst}: {}", show(&e))))
        }
    }
}

/// Refuse a destination holding any branch or transaction.
fn check_empty(dst: &mut dyn Backend, loc: &str) -> Result<(), CopyError> {
    let bad = |m: String| CopyError::Destination(m);
    let head = dst
        .head()
        .map_err(|e| bad(format!("{loc}: {}", show(&e))))?;
    let branches = dst
        .export_branches()
        .map_err(|e| bad(format!("{loc}: {}", show(&e))))?;
    if !branches.is_empty()
        && branches
            .iter()
            .all(|b| b.deleted_us == Some(IMPORT_UNFINISHED_US))
    {
        return Err(bad(format!(
            "{loc}: it holds an unfinished copy (an earlier copy was interrupted); \
             remove it (delete the file, or DROP DATABASE) and copy again"
        )));
    }
    if head > 0 || !branches.is_empty() {
        return Err(bad(format!(
            "{loc}: it is not empty ({head} transactions, {} branches); \
             the destination must be a new database (a new file, or one made with CREATE DATABASE)",
            branches.len()
        )));
    }
    Ok(())
}

fn make_plan(src: &mut dyn Backend) -> crate::Result<Plan> {
    // The head first: branches and tags listed after it cover every
    // transaction up to it.
    let head = src.head()?;
    let all = src.export_branches()?;
    if all
        .iter()
        .any(|b| b.deleted_us == Some(IMPORT_UNFINISHED_US))
    {
        return Err(Error::Corrupt {
            location: String::new(),
            reason: "it holds an unfinished copy (its branches are hidden)".to_string(),
        });
    }
    // Branches made after the head was read may fork past it: leave them out.
    let mut kept: HashSet<BranchId> = HashSet::new();
    let mut branches = Vec::new();
    for b in all {
        let fork_ok = b.info.fork_tx.is_none_or(|f| f <= head);
        let parent_ok = b.info.parent.is_none_or(|p| kept.contains(&p));
        if fork_ok && parent_ok {
            kept.insert(b.info.id);
            branches.push(b);
        }
    }
    let tags = src
        .export_tags()?
        .into_iter()
        .filter(|t| t.tx <= head && kept.contains(&t.branch))
        .collect();
    Ok(Plan {
        head,
        branches,
        tags,
    })
}

// ----- cleaning up -----------------------------------------------------------

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn destination_left_hidden(loc: &str) -> String {
    format!(
        "{loc} holds an unfinished copy whose branches are hidden, so it is not usable; \
         remove it (delete the file, or DROP DATABASE) before copying again"
    )
}

/// Undo a started import: remove the file this copy created, or empty the
/// destination. Says what became of it.
fn clean_up(mut dst: Box<dyn Backend>, created: Option<&Path>) -> String {
    let loc = dst.location();
    if let Some(path) = created {
        drop(dst);
        remove_sqlite(path);
        return if path.exists() {
            destination_left_hidden(&loc)
        } else {
            format!("{loc} was removed")
        };
    }
    match dst.import_abort() {
        Ok(()) => format!("{loc} was emptied again"),
        Err(e) => format!(
            "{} (emptying it failed: {})",
            destination_left_hidden(&loc),
            show(&e)
        ),
    }
}

/// Take an engine's backend back (to hand it to `clean_up`).
fn into_backend(engine: Engine) -> Box<dyn Backend> {
    engine.backend
}

// ----- reading the source ----------------------------------------------------

/// An error's text, without the empty location of a corruption found
/// away from any one database.
fn show(e: &Error) -> String {
    match e {
        Error::Corrupt { location, reason } if location.is_empty() => reason.clone(),
        other => other.to_string(),
    }
}

fn corrupt(reason: String) -> Error {
    Error::Corrupt {
        location: String::new(),
        reason,
    }
}

enum Stage {
    Branches(usize),
    Chunks(ChunkId),
    Txs(TxId),
    Tags(usize),
    Shell(i64),
    Done,
}

/// Feeds the destination's import from the source, one item at a time.
struct Exporter<'a> {
    src: &'a mut dyn Backend,
    plan: &'a Plan,
    opts: &'a CopyOptions,
    progress: &'a mut dyn FnMut(&str),
    stage: Stage,
    /// Source chunk id to hash, for every chunk copied.
    src_chunks: HashMap<ChunkId, Hash>,
    prev_hash: Hash,
    /// What is being copied (for error messages).
    doing: String,
    /// True when the last error came from reading the source.
    source_failed: bool,
    /// True once the destination asked for the first item (it found itself
    /// empty and began writing).
    started: bool,
    log_rows: u64,
    shell_lines: u64,
    shell_last: i64,
}

impl Exporter<'_> {
    fn next(&mut self) -> crate::Result<Option<ImportItem>> {
        self.started = true;
        let out = self.step();
        self.source_failed = out.is_err();
        out
    }

    fn step(&mut self) -> crate::Result<Option<ImportItem>> {
        loop {
            match self.stage {
                Stage::Branches(i) => match self.plan.branches.get(i) {
                    Some(b) => {
                        self.stage = Stage::Branches(i + 1);
                        self.doing = format!("branch {}", b.info.name);
                        return Ok(Some(ImportItem::Branch(b.clone())));
                    }
                    None => self.stage = Stage::Chunks(0),
                },
                Stage::Chunks(after) => {
                    self.doing = format!("the chunks after chunk {after}");
                    let page = self.src.export_chunks(after, CHUNK_PAGE)?;
                    let Some(last) = page.last().map(|c| c.0) else {
                        (self.progress)(&format!("chunks: {} copied", self.src_chunks.len()));
                        self.stage = Stage::Txs(1);
                        continue;
                    };
                    let before = self.src_chunks.len() / 10_000;
                    let mut chunks = Vec::with_capacity(page.len());
                    for (id, c) in page {
                        self.src_chunks.insert(id, c.hash);
                        chunks.push(c);
                    }
                    if self.src_chunks.len() / 10_000 != before {
                        (self.progress)(&format!("chunks: {} copied", self.src_chunks.len()));
                    }
                    self.stage = Stage::Chunks(last);
                    return Ok(Some(ImportItem::Chunks(chunks)));
                }
                Stage::Txs(id) if id <= self.plan.head => {
                    self.doing = format!("T{id}");
                    let item = self.read_tx(id)?;
                    let every = self.opts.progress_every;
                    if (every > 0 && id % every == 0) || id == self.plan.head {
                        (self.progress)(&format!(
                            "transactions: T{id} of T{} copied",
                            self.plan.head
                        ));
                    }
                    self.stage = Stage::Txs(id + 1);
                    return Ok(Some(item));
                }
                Stage::Txs(_) => self.stage = Stage::Tags(0),
                Stage::Tags(i) => match self.plan.tags.get(i) {
                    Some(t) => {
                        self.stage = Stage::Tags(i + 1);
                        self.doing = format!("tag {}", t.name);
                        return Ok(Some(ImportItem::Tag(t.clone())));
                    }
                    None => self.stage = Stage::Shell(0),
                },
                Stage::Shell(after) => {
                    self.doing = "the shell history".to_string();
                    let lines = self.src.export_shell_history(after, SHELL_PAGE)?;
                    match lines.last() {
                        Some(l) => {
                            self.stage = Stage::Shell(l.id);
                            self.shell_last = l.id;
                            self.shell_lines += lines.len() as u64;
                            return Ok(Some(ImportItem::ShellLines(lines)));
                        }
                        None => self.stage = Stage::Done,
                    }
                }
                Stage::Done => {
                    self.doing = "the last rows".to_string();
                    return Ok(None);
                }
            }
        }
    }

    /// One transaction, its chunk references turned into hashes, checked
    /// against the source's hash chain.
    fn read_tx(&mut self, id: TxId) -> crate::Result<ImportItem> {
        let info = self
            .src
            .tx_info(id)?
            .ok_or_else(|| corrupt(format!("T{id} is missing (ids must be dense)")))?;
        let mut writes = self.src.tx_writes(id)?;
        let logs = tx_logs(self.src, &info)?;
        if chain_hash(&self.prev_hash, &info, &writes, &logs) != info.hash {
            return Err(corrupt(format!(
                "T{id}: its stored hash does not match its rows (the source's hash chain is broken)"
            )));
        }
        self.prev_hash = info.hash;
        self.log_rows += logs.len() as u64;
        for w in &mut writes {
            if let Some(Entry::File { content, .. }) = &mut w.entry {
                let mut refs = Vec::with_capacity(content.chunks.len());
                for r in content.chunks.iter() {
                    refs.push(match r {
                        ChunkRef::Stored(c) => {
                            ChunkRef::Pending(*self.src_chunks.get(c).ok_or_else(|| {
                                corrupt(format!(
                                    "T{id}: {} uses chunk {c}, which is missing",
                                    w.path
                                ))
                            })?)
                        }
                        ChunkRef::Pending(h) => ChunkRef::Pending(*h),
                    });
                }
                *content = Content {
                    size: content.size,
                    digest: content.digest,
                    chunks: Arc::new(refs),
                };
            }
        }
        Ok(ImportItem::Tx { info, writes, logs })
    }
}

// ----- verifying the copy ----------------------------------------------------

enum Fail {
    /// The copy differs from the source.
    Mismatch(String),
    /// Reading failed while doing this.
    Error(String, Error),
}

/// A value as shown in a verification message: one clipped line.
fn clip(text: String) -> String {
    crate::shown::shown(&text).to_string()
}

/// The first difference between two lists, described.
fn first_diff<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T]) -> Option<String> {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return Some(format!(
                "item {i}: source {} / copy {}",
                clip(format!("{x:?}")),
                clip(format!("{y:?}"))
            ));
        }
    }
    (a.len() != b.len()).then(|| format!("the source has {} items, the copy {}", a.len(), b.len()))
}

fn describe(e: &Option<Entry>) -> String {
    match e {
        None => "removed".to_string(),
        Some(Entry::File { meta, content }) => format!(
            "file mode {:o} uid {} gid {} mtime {} size {} digest {}",
            meta.mode,
            meta.uid,
            meta.gid,
            meta.mtime_ns,
            content.size,
            hex(&content.digest)
        ),
        Some(other) => clip(format!("{other:?}")),
    }
}

/// The whole state one lineage sees.
#[derive(Debug, PartialEq)]
struct State {
    tree: std::result::Result<Vec<(String, String)>, String>,
    config: Vec<(String, String)>,
    processes: Vec<ProcessRecord>,
    process_rows: Vec<(String, String)>,
    logs: Vec<StoredLog>,
}

fn read_state(engine: &mut Engine, lineage: Lineage, label: &str) -> crate::Result<State> {
    let mut view = engine.view_lineage(lineage, label)?;
    let tree = match view.walk(&VPath::root()) {
        Ok(items) => Ok(items
            .into_iter()
            .map(|(p, e)| (p.to_string(), describe(&Some(e))))
            .collect()),
        Err(e) => Err(e.to_string()),
    };
    let process_rows = view
        .list_space(Space::Process)?
        .into_iter()
        .map(|(k, e)| (k, describe(&Some(e))))
        .collect();
    Ok(State {
        tree,
        config: view.config_list()?,
        processes: view.process_list()?,
        process_rows,
        logs: view.logs(&LogFilter::default())?,
    })
}

struct Verifier<'a> {
    src: &'a mut Engine,
    dst: &'a mut Engine,
    plan: &'a Plan,
    opts: &'a CopyOptions,
    progress: &'a mut dyn FnMut(&str),
    src_chunks: &'a HashMap<ChunkId, Hash>,
    shell_last: i64,
}

impl Verifier<'_> {
    /// Everything; gives the number of states compared.
    fn run(&mut self) -> Result<u64, Fail> {
        let dst_chunks = self.chunks()?;
        self.metadata()?;
        self.transactions(&dst_chunks)?;
        self.states()
    }

    /// Every chunk of the copy decodes to its hash, and the copy has
    /// exactly the source's chunks. Gives the copy's id -> hash.
    fn chunks(&mut self) -> Result<HashMap<ChunkId, Hash>, Fail> {
        (self.progress)("verifying chunks");
        let src_hashes: HashSet<&Hash> = self.src_chunks.values().collect();
        let mut out = HashMap::with_capacity(self.src_chunks.len());
        let mut after = 0;
        loop {
            let page = self
                .dst
                .backend()
                .export_chunks(after, CHUNK_PAGE)
                .map_err(|e| Fail::Error("reading the copy's chunks".to_string(), e))?;
            let Some(last) = page.last().map(|c| c.0) else {
                break;
            };
            for (id, c) in page {
                if let Err(e) = decode_chunk(&c.hash, c.size, c.codec, &c.data) {
                    let whose = match self.src.backend().read_chunk(ChunkRef::Pending(c.hash)) {
                        Ok(_) => "the copy's",
                        Err(_) => "damaged in the source, so in the copy:",
                    };
                    return Err(Fail::Mismatch(format!("{whose} {}", show(&e))));
                }
                if !src_hashes.contains(&c.hash) {
                    return Err(Fail::Mismatch(format!(
                        "the copy has chunk {} the source does not",
                        hex(&c.hash)
                    )));
                }
                out.insert(id, c.hash);
            }
            after = last;
        }
        if out.len() != src_hashes.len() {
            return Err(Fail::Mismatch(format!(
                "the source has {} chunks, the copy {}",
                src_hashes.len(),
                out.len()
            )));
        }
        Ok(out)
    }

    /// Branches (but their hidden deletion time), tags, shell history.
    fn metadata(&mut self) -> Result<(), Fail> {
        let err = |what: &str| {
            let what = what.to_string();
            move |e| Fail::Error(what.clone(), e)
        };
        let mut branches = self
            .dst
            .backend()
            .export_branches()
            .map_err(err("reading the copy's branches"))?;
        for b in &mut branches {
            if b.deleted_us == Some(IMPORT_UNFINISHED_US) {
                b.deleted_us = self
                    .plan
                    .branches
                    .iter()
                    .find(|p| p.info.id == b.info.id)
                    .and_then(|p| p.deleted_us);
            }
        }
        if let Some(d) = first_diff(&self.plan.branches, &branches) {
            return Err(Fail::Mismatch(format!("branches differ: {d}")));
        }
        let tags = self
            .dst
            .backend()
            .export_tags()
            .map_err(err("reading the copy's tags"))?;
        if let Some(d) = first_diff(&self.plan.tags, &tags) {
            return Err(Fail::Mismatch(format!("tags differ: {d}")));
        }
        let (mut a, mut b) = (0, 0);
        loop {
            let s: Vec<ShellLine> = self
                .src
                .backend()
                .export_shell_history(a, SHELL_PAGE)
                .map_err(err("reading the source's shell history"))?
                .into_iter()
                .filter(|l| l.id <= self.shell_last)
                .collect();
            let d = self
                .dst
                .backend()
                .export_shell_history(b, SHELL_PAGE)
                .map_err(err("reading the copy's shell history"))?;
            if let Some(diff) = first_diff(&s, &d) {
                return Err(Fail::Mismatch(format!("shell history differs: {diff}")));
            }
            match (s.last(), d.last()) {
                (Some(x), Some(y)) => (a, b) = (x.id, y.id),
                _ => break,
            }
        }
        Ok(())
    }

    /// Every transaction: metadata and hash, writes, log rows, and the hash
    /// chain recomputed from the copy's rows.
    fn transactions(&mut self, dst_chunks: &HashMap<ChunkId, Hash>) -> Result<(), Fail> {
        let mut prev: Hash = [0u8; 32];
        for id in 1..=self.plan.head {
            let what = format!("verifying T{id}");
            let e = |e| Fail::Error(what.clone(), e);
            let si = self.src.backend().tx_info(id).map_err(e)?;
            let di = self.dst.backend().tx_info(id).map_err(e)?;
            let (Some(si), Some(di)) = (si, di) else {
                return Err(Fail::Mismatch(format!("T{id} is missing from the copy")));
            };
            if si != di {
                return Err(Fail::Mismatch(format!(
                    "T{id}: metadata differs: source {} / copy {}",
                    clip(format!("{si:?}")),
                    clip(format!("{di:?}"))
                )));
            }
            let sw = self.src.backend().tx_writes(id).map_err(e)?;
            let dw = self.dst.backend().tx_writes(id).map_err(e)?;
            same_writes(id, &sw, self.src_chunks, &dw, dst_chunks).map_err(Fail::Mismatch)?;
            let sl = tx_logs(self.src.backend(), &si).map_err(e)?;
            let dl = tx_logs(self.dst.backend(), &di).map_err(e)?;
            if let Some(d) = first_diff(&sl, &dl) {
                return Err(Fail::Mismatch(format!("T{id}: log rows differ: {d}")));
            }
            if chain_hash(&prev, &di, &dw, &dl) != di.hash {
                return Err(Fail::Mismatch(format!(
                    "T{id}: the copy's rows do not give its hash (hash chain broken)"
                )));
            }
            prev = di.hash;
            let every = self.opts.progress_every;
            if (every > 0 && id % every == 0) || id == self.plan.head {
                (self.progress)(&format!(
                    "transactions: T{id} of T{} verified",
                    self.plan.head
                ));
            }
        }
        Ok(())
    }

    /// The whole state of every branch at the sampled transactions.
    fn states(&mut self) -> Result<u64, Fail> {
        let head = self.plan.head;
        let points: Vec<TxId> = if self.opts.verify_all || self.opts.samples as u64 >= head {
            (1..=head).collect()
        } else if self.opts.samples <= 1 {
            vec![head]
        } else {
            let n = self.opts.samples as u64;
            let mut v: Vec<TxId> = (0..n).map(|i| 1 + (head - 1) * i / (n - 1)).collect();
            v.dedup();
            v
        };
        let mut compared = 0u64;
        for (i, &t) in points.iter().enumerate() {
            for b in &self.plan.branches {
                if b.info.fork_tx.is_some_and(|f| f > t) {
                    continue;
                }
                let label = format!("{}@T{t}", b.info.name);
                let what = format!("reading {label}");
                let e = |e| Fail::Error(what.clone(), e);
                let sl = self.src.lineage(&b.info, t).map_err(e)?;
                let dl = self.dst.lineage(&b.info, t).map_err(e)?;
                if sl != dl {
                    return Err(Fail::Mismatch(format!("{label}: lineage differs")));
                }
                let s = read_state(self.src, sl, &label).map_err(e)?;
                let d = read_state(self.dst, dl, &label).map_err(e)?;
                if s != d {
                    return Err(Fail::Mismatch(state_diff(&label, &s, &d)));
                }
                compared += 1;
            }
            let every = self.opts.progress_every.max(1) as usize;
            if (i + 1) % every.min(100) == 0 || i + 1 == points.len() {
                (self.progress)(&format!(
                    "states: {} of {} transactions compared on every branch",
                    i + 1,
                    points.len()
                ));
            }
        }
        Ok(compared)
    }
}

fn state_diff(label: &str, s: &State, d: &State) -> String {
    let detail = match (&s.tree, &d.tree) {
        (Ok(a), Ok(b)) if a != b => first_diff(a, b).map(|x| format!("file tree: {x}")),
        (a, b) if a != b => Some(format!(
            "file tree: source {} / copy {}",
            clip(format!("{a:?}")),
            clip(format!("{b:?}"))
        )),
        _ => None,
    }
    .or_else(|| first_diff(&s.config, &d.config).map(|x| format!("config: {x}")))
    .or_else(|| first_diff(&s.process_rows, &d.process_rows).map(|x| format!("processes: {x}")))
    .or_else(|| first_diff(&s.processes, &d.processes).map(|x| format!("processes: {x}")))
    .or_else(|| first_diff(&s.logs, &d.logs).map(|x| format!("logs: {x}")))
    .unwrap_or_else(|| "state differs".to_string());
    format!("{label}: {detail}")
}

/// Same keys, same entries, and files made of the same chunks in the same
/// order (compared by hash: the two databases number chunks differently).
fn same_writes(
    id: TxId,
    a: &[Write],
    ah: &HashMap<ChunkId, Hash>,
    b: &[Write],
    bh: &HashMap<ChunkId, Hash>,
) -> std::result::Result<(), String> {
    if a.len() != b.len() {
        return Err(format!(
            "T{id}: the source wrote {} keys, the copy {}",
            a.len(),
            b.len()
        ));
    }
    let hashes = |refs: &[ChunkRef], map: &HashMap<ChunkId, Hash>| -> Option<Vec<Hash>> {
        refs.iter()
            .map(|r| match r {
                ChunkRef::Stored(c) => map.get(c).copied(),
                ChunkRef::Pending(h) => Some(*h),
            })
            .collect()
    };
    for (x, y) in a.iter().zip(b) {
        if (x.space, &x.path) != (y.space, &y.path) {
            return Err(format!(
                "T{id}: the source wrote {} {}, the copy {} {}",
                x.space.as_str(),
                x.path,
                y.space.as_str(),
                y.path
            ));
        }
        if x.entry != y.entry {
            return Err(format!(
                "T{id}: {} {}: source {} / copy {}",
                x.space.as_str(),
                x.path,
                describe(&x.entry),
                describe(&y.entry)
            ));
        }
        if let (Some(Entry::File { content: cx, .. }), Some(Entry::File { content: cy, .. })) =
            (&x.entry, &y.entry)
        {
            let hx = hashes(&cx.chunks, ah);
            let hy = hashes(&cy.chunks, bh);
            if hx.is_none() || hy.is_none() || hx != hy {
                return Err(format!(
                    "T{id}: {}: the copy's content is not made of the source's chunks",
                    x.path
                ));
            }
        }
    }
    Ok(())
}
