//! The one backend API. Everything above it (transactions, file operations,
//! branches, the shell) is written against this trait; SQLite implements it
//! today and PostgreSQL plugs in beside it.
//!
//! Backends store immutable rows only: a committed version, transaction,
//! chunk or log row is never updated or deleted through this API.

pub mod sqlite;

use crate::content::EncodedChunk;
use crate::error::Result;
use crate::types::{
    BranchId, BranchInfo, ChunkRef, Entry, Lineage, LogEntry, Space, StoredLog, TxId, TxInfo,
    VersionRecord,
};

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
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A storage backend: reads at a lineage, chunk storage, atomic commits.
pub trait Backend {
    /// Where the database is (a path, or a URL without its password).
    fn location(&self) -> String;

    /// The newest committed transaction id (0 when there is none).
    fn head(&mut self) -> Result<TxId>;

    /// Create the `main` branch and the first transaction (root directory)
    /// when the database is new. Safe against concurrent openers.
    fn bootstrap(&mut self, meta: &CommitMeta, host: &str, root: &Entry) -> Result<()>;

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
}
