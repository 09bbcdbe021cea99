//! The one backend API. Everything above it (transactions, file operations,
//! branches, the shell) is written against this trait; SQLite implements it
//! today and PostgreSQL plugs in beside it.
//!
//! Backends store immutable rows only: a committed version, transaction,
//! chunk or log row is never updated or deleted through this API.

mod pg_audit;
mod pg_check;
mod pg_tls;
pub mod postgres;
pub mod sqlite;
mod sqlite_audit;

use crate::content::{decode_manifest, EncodedChunk};
use crate::error::Result;
use crate::types::{
    BranchId, BranchInfo, ChunkId, ChunkRef, Content, Entry, KeyRange, Lineage, LogEntry, Meta,
    Space, StoredLog, TxId, TxInfo, VersionRecord,
};
use std::sync::Arc;

/// Metadata of a transaction about to be committed.
#[derive(Clone, Debug, Default)]
pub struct CommitMeta {
    /// Who commits it.
    pub author: String,
    /// The command text that made it.
    pub command: String,
    /// Optional message.
    pub message: Option<String>,
    /// For merges: the branch merged in and its transaction.
    pub merge: Option<(BranchId, TxId)>,
}

/// One key written by a transaction.
#[derive(Clone, Debug)]
pub struct Write {
    /// Kind of state.
    pub space: Space,
    /// Normalised path or key.
    pub path: String,
    /// New entry, or None to remove the key.
    pub entry: Option<Entry>,
}

/// Everything a commit needs, validated and applied atomically.
#[derive(Clone, Debug)]
pub struct CommitRequest {
    /// Branch to commit on.
    pub branch: BranchId,
    /// The global transaction id the transaction read from.
    pub snapshot: TxId,
    /// Keys whose value the transaction depended on.
    pub reads: Vec<(Space, String)>,
    /// Directories whose listing the transaction depended on.
    pub listed_dirs: Vec<String>,
    /// Keys written, parents before children.
    pub writes: Vec<Write>,
    /// Chunks not yet stored that the writes reference.
    pub chunks: Vec<EncodedChunk>,
    /// Log rows appended.
    pub logs: Vec<LogEntry>,
    /// Who, what, why.
    pub meta: CommitMeta,
    /// Host name recorded with the transaction.
    pub host: String,
}

/// Filter for log rows.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Only rows stored after this transaction.
    pub after_tx: Option<TxId>,
    /// Only rows at least this severe (numerically at most).
    pub max_severity: Option<u8>,
    /// Only rows from this source.
    pub source: Option<String>,
    /// Only rows of this process record.
    pub process_id: Option<u64>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

// ----- whole-database copy (`copy.rs`): rows exported and imported verbatim ---

/// A branch row as stored, with its deletion time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchRecord {
    /// The branch.
    pub info: BranchInfo,
    /// When it was deleted (None: live).
    pub deleted_us: Option<i64>,
}

/// A tag row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRecord {
    /// Name.
    pub name: String,
    /// Branch it names a moment of.
    pub branch: BranchId,
    /// The transaction.
    pub tx: TxId,
    /// Creation time, microseconds since the epoch.
    pub created_us: i64,
}

/// A shell history row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellLine {
    /// Row id (kept by an import).
    pub id: i64,
    /// When it was typed, microseconds since the epoch.
    pub time_us: i64,
    /// Who typed it.
    pub author: String,
    /// Branch the shell was on.
    pub branch: String,
    /// The line.
    pub line: String,
}

/// One thing handed to `Backend::import`, in this order: every branch, the
/// chunks, the transactions by increasing id, the tags, the shell history.
#[derive(Clone, Debug)]
pub enum ImportItem {
    /// A branch row (imported hidden, see `IMPORT_UNFINISHED_US`).
    Branch(BranchRecord),
    /// Chunks, stored under this database's own ids.
    Chunks(Vec<EncodedChunk>),
    /// A committed transaction, verbatim: its id, time, hash and merge
    /// fields are kept. Writes reference chunks as `ChunkRef::Pending(hash)`
    /// (imported before); log rows keep their ids.
    Tx {
        /// Metadata, hash included.
        info: TxInfo,
        /// What it wrote.
        writes: Vec<Write>,
        /// Its log rows, in insertion order.
        logs: Vec<StoredLog>,
    },
    /// A tag row.
    Tag(TagRecord),
    /// Shell history rows (their ids are kept).
    ShellLines(Vec<ShellLine>),
}

/// `deleted_us` of every branch of an import not finished yet: no name
/// lookup sees such a branch, so a half-written or unverified copy is not a
/// usable database. `Backend::import_finish` gives branches their real value.
pub const IMPORT_UNFINISHED_US: i64 = -1;

/// A storage backend: reads at a lineage, chunk storage, atomic commits.
pub trait Backend {
    /// Where the database is (a path, or a URL without its password).
    fn location(&self) -> String;

    /// The newest committed transaction id (0 when there is none).
    fn head(&mut self) -> Result<TxId>;

    /// Create the `main` branch and the first transaction (root directory)
    /// when the database is new. Safe against concurrent openers.
    fn bootstrap(&mut self, meta: &CommitMeta, host: &str, root: &Entry) -> Result<()>;

    /// A live branch by name and the newest committed transaction id, read
    /// together when a transaction begins (a backend may answer both at once).
    fn branch_and_head(&mut self, name: &str) -> Result<(Option<BranchInfo>, TxId)> {
        let branch = self.branch_by_name(name)?;
        Ok((branch, self.head()?))
    }

    /// Live branches, by id.
    fn branches(&mut self) -> Result<Vec<BranchInfo>>;
    /// A live branch by name.
    fn branch_by_name(&mut self, name: &str) -> Result<Option<BranchInfo>>;
    /// Any branch by id, deleted ones included.
    fn branch_by_id(&mut self, id: BranchId) -> Result<Option<BranchInfo>>;
    /// Create a branch (copies no rows).
    fn create_branch(&mut self, name: &str, parent: BranchId, fork_tx: TxId) -> Result<BranchInfo>;
    /// Newest transaction written on the branch itself.
    fn branch_head(&mut self, id: BranchId) -> Result<Option<TxId>>;
    /// Rename a live branch (its id, and so its history, stays).
    fn rename_branch(&mut self, id: BranchId, new_name: &str) -> Result<()>;
    /// Mark a branch deleted: its name is freed, its transactions stay.
    fn delete_branch(&mut self, id: BranchId) -> Result<()>;
    /// The newest merge of `from` into `into`: (merge transaction, the
    /// transaction of `from` it merged).
    fn last_merge(&mut self, into: BranchId, from: BranchId) -> Result<Option<(TxId, TxId)>>;
    /// Every merge recorded on `branch` itself: (merge transaction, branch
    /// merged, the transaction of it merged), oldest first.
    fn merges_into(&mut self, branch: BranchId) -> Result<Vec<(TxId, BranchId, TxId)>>;
    /// The newest transaction of `branch` merged into any other branch.
    fn merged_upto(&mut self, branch: BranchId) -> Result<Option<TxId>>;
    /// Every branch, deleted ones included (for graphs and audit).
    fn all_branches(&mut self) -> Result<Vec<BranchInfo>>;

    /// The visible version of one key.
    fn read(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Option<VersionRecord>>;
    /// Existing children of a directory, with their entries, sorted by name.
    fn children(&mut self, lineage: &Lineage, dir: &str) -> Result<Vec<(String, VersionRecord)>>;
    /// Existing keys of a space, sorted.
    fn list_space(
        &mut self,
        lineage: &Lineage,
        space: Space,
    ) -> Result<Vec<(String, VersionRecord)>>;
    /// Existing keys of a space in `range` (at or after its start, in
    /// byte order, ascending or descending, at most its limit), reading
    /// only those keys.
    fn list_space_range(
        &mut self,
        lineage: &Lineage,
        space: Space,
        range: &KeyRange,
    ) -> Result<Vec<(String, VersionRecord)>>;
    /// Every visible version of a key, newest first.
    fn history(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Vec<VersionRecord>>;

    /// Visible transactions, newest first, with ids below `before` if given.
    fn transactions(
        &mut self,
        lineage: &Lineage,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<Vec<TxInfo>>;
    /// One transaction.
    fn tx_info(&mut self, id: TxId) -> Result<Option<TxInfo>>;
    /// The newest transaction committed at or before a time.
    fn tx_at_time(&mut self, time_us: i64) -> Result<Option<TxId>>;
    /// What one transaction wrote, sorted by space and path.
    fn tx_writes(&mut self, id: TxId) -> Result<Vec<Write>>;
    /// Keys written on `branch` by transactions in `(after, upto]`.
    fn keys_written(
        &mut self,
        branch: BranchId,
        after: TxId,
        upto: TxId,
    ) -> Result<Vec<(Space, String)>>;

    /// The raw bytes of a chunk.
    fn read_chunk(&mut self, chunk: ChunkRef) -> Result<Vec<u8>>;
    /// Store chunks ahead of a commit (content-addressed; duplicates ignored).
    fn store_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()>;

    /// Validate against commits since the snapshot and apply atomically.
    fn commit(&mut self, req: CommitRequest) -> Result<TxInfo>;

    /// Visible log rows, oldest first.
    fn logs(&mut self, lineage: &Lineage, filter: &LogFilter) -> Result<Vec<StoredLog>>;

    /// A tag: the branch and transaction it names.
    fn tag(&mut self, name: &str) -> Result<Option<(BranchId, TxId)>>;
    /// Name a moment; a taken name is an error.
    fn create_tag(&mut self, name: &str, branch: BranchId, tx: TxId) -> Result<()>;
    /// Every tag: name, branch, transaction.
    fn tags(&mut self) -> Result<Vec<(String, BranchId, TxId)>>;

    /// Append a line to the interactive shell history.
    fn add_shell_history(&mut self, author: &str, branch: &str, line: &str) -> Result<()>;
    /// The newest `limit` history lines of an author, oldest first.
    fn shell_history(&mut self, author: &str, limit: usize) -> Result<Vec<String>>;

    // ----- whole-database copy (`copy.rs`) ------------------------------

    /// Every branch row, deleted ones included, by id.
    fn export_branches(&mut self) -> Result<Vec<BranchRecord>>;
    /// Every tag row, by name.
    fn export_tags(&mut self) -> Result<Vec<TagRecord>>;
    /// Shell history rows with ids above `after`, by id, at most `limit`.
    fn export_shell_history(&mut self, after: i64, limit: usize) -> Result<Vec<ShellLine>>;
    /// Stored chunks (as stored, not decoded) with ids above `after`, by
    /// id, at most `limit`.
    fn export_chunks(
        &mut self,
        after: ChunkId,
        limit: usize,
    ) -> Result<Vec<(ChunkId, EncodedChunk)>>;
    /// Import a whole database, pulling items from `next` until it gives
    /// None. Refuses a database holding any row (branch, transaction, key,
    /// chunk, log, tag or shell history line). Branches are written hidden
    /// (`IMPORT_UNFINISHED_US`) until `import_finish`. SQLite writes
    /// everything in one transaction; PostgreSQL commits in batches (the
    /// periods extension keeps only one version of a row per database
    /// transaction) while holding the commit lock, so history lands in
    /// `versions_history` stamped with the time of the import.
    fn import(&mut self, next: &mut dyn FnMut() -> Result<Option<ImportItem>>) -> Result<()>;
    /// Make an imported database usable: give every branch its real
    /// deletion time, in one transaction.
    fn import_finish(&mut self, branches: &[BranchRecord]) -> Result<()>;
    /// Empty a database that holds only an unfinished import (every branch
    /// hidden), so the copy can be retried. The one code path that deletes
    /// history rows; it refuses any other database.
    fn import_abort(&mut self) -> Result<()>;

    // ----- audit (`audit/`, `verify.rs`) ---------------------------------

    /// The SQL dialect the audit views are written in for this backend.
    fn dialect(&mut self) -> Result<crate::audit::Dialect>;
    /// Run one statement with writes refused by the database itself (a
    /// read-only connection with an authorizer on SQLite; a read-only
    /// transaction under a read-only role on PostgreSQL) and return every
    /// row. Errors are `Error::Sql`. `cancel`, polled while the query runs,
    /// stops it when it returns true (Ctrl-C).
    fn query_readonly(
        &mut self,
        sql: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<crate::audit::SqlRows>;
    /// The first version or log row, at or after transaction `from`, whose
    /// transaction does not exist or was committed on another branch: a row
    /// the hash chain cannot cover. Gives its transaction id and a
    /// description.
    fn stray_row(&mut self, from: TxId) -> Result<Option<(TxId, String)>>;
    /// Every key of the file tree, with the first transaction that wrote a
    /// version of it.
    fn file_keys(&mut self) -> Result<Vec<KeyRow>>;

    /// Check the storage layer below the rows (SQLite's integrity check;
    /// PostgreSQL's amcheck when installed, else a scan of every table):
    /// each problem found, described; empty when the storage is sound.
    fn check_storage(&mut self) -> Result<Vec<String>>;
}

/// A statement that returns no columns is not a query; it is refused
/// before it runs.
pub(super) fn no_rows() -> crate::error::Error {
    crate::error::Error::Sql(
        "refused: the statement returns no rows (SET, COMMIT, DDL...): audit queries run SELECT, \
         WITH, VALUES, EXPLAIN or SHOW; nothing was changed"
            .to_string(),
    )
}

/// Describe a row the chain cannot cover.
pub(super) fn stray_text(what: &str, tx: TxId, branch: i64, tx_branch: Option<i64>) -> String {
    match tx_branch {
        None => format!("{what} names transaction T{tx}, which does not exist (a row was added by hand, or its transaction deleted)"),
        Some(b) => format!(
            "{what} of T{tx} is stamped with branch {branch}, but T{tx} was committed on branch {b} (a row was added or changed by hand)"
        ),
    }
}

/// A `keys` row of the file tree, for `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    /// Key id.
    pub id: i64,
    /// Its path.
    pub path: String,
    /// Its parent directory's key.
    pub parent_id: Option<i64>,
    /// Its last path component.
    pub name: String,
    /// The first transaction that wrote a version of it.
    pub first_tx: Option<TxId>,
}

pub(crate) fn corrupt(reason: impl Into<String>) -> crate::error::Error {
    crate::error::Error::Corrupt {
        location: String::new(),
        reason: reason.into(),
    }
}

fn to_hash(bytes: Option<Vec<u8>>) -> Result<crate::types::Hash> {
    let b = bytes.ok_or_else(|| corrupt("file version without digest"))?;
    b.try_into()
        .map_err(|_| corrupt("digest of the wrong length"))
}

/// The stored columns of one version row, as every backend reads them.
pub(crate) struct RawVersion {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: i64,
    pub(crate) mtime_ns: i64,
    pub(crate) digest: Option<Vec<u8>>,
    pub(crate) manifest: Option<Vec<u8>>,
    pub(crate) value: Option<String>,
}

pub(crate) fn decode_version(tx: TxId, kind: i64, raw: RawVersion) -> Result<VersionRecord> {
    let meta = Meta {
        mode: raw.mode,
        uid: raw.uid,
        gid: raw.gid,
        mtime_ns: raw.mtime_ns,
    };
    let entry = match kind {
        0 => None,
        1 => {
            let ids = decode_manifest(raw.manifest.as_deref().unwrap_or(&[0, 0]))?;
            Some(Entry::File {
                meta,
                content: Content {
                    size: raw.size as u64,
                    digest: to_hash(raw.digest)?,
                    chunks: Arc::new(ids.into_iter().map(ChunkRef::Stored).collect()),
                },
            })
        }
        2 => Some(Entry::Dir { meta }),
        3 => Some(Entry::Symlink {
            meta,
            target: raw.value.unwrap_or_default(),
        }),
        4 => Some(Entry::Value(raw.value.unwrap_or_default())),
        k => return Err(corrupt(format!("unknown version kind {k}"))),
    };
    Ok(VersionRecord { tx, entry })
}

/// The columns of a version row for an entry (None: a removal), before
/// the backend turns chunk references into its own ids.
pub(crate) struct Columns<'a> {
    pub(crate) kind: i64,
    pub(crate) meta: Meta,
    pub(crate) size: u64,
    pub(crate) digest: Option<Vec<u8>>,
    pub(crate) chunks: Option<&'a [ChunkRef]>,
    pub(crate) value: Option<&'a str>,
}

pub(crate) fn columns(entry: &Option<Entry>) -> Columns<'_> {
    let zero = Meta {
        mode: 0,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
    };
    let c = |kind, meta, size, digest, chunks, value| Columns {
        kind,
        meta,
        size,
        digest,
        chunks,
        value,
    };
    match entry {
        None => c(0, zero, 0, None, None, None),
        Some(Entry::File { meta, content }) => c(
            1,
            *meta,
            content.size,
            Some(content.digest.to_vec()),
            Some(&content.chunks[..]),
            None,
        ),
        Some(Entry::Dir { meta }) => c(2, *meta, 0, None, None, None),
        Some(Entry::Symlink { meta, target }) => c(
            3,
            *meta,
            target.len() as u64,
            None,
            None,
            Some(target.as_str()),
        ),
        Some(Entry::Value(v)) => c(4, zero, v.len() as u64, None, None, Some(v.as_str())),
    }
}
