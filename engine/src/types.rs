//! The data model shared by every backend: transactions, branches, keys,
//! versions and their entries.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A transaction id, shown to users as `T<id>`. Global and strictly
/// increasing in commit order across all branches.
pub type TxId = u64;
/// A branch's internal id.
pub type BranchId = i64;
/// A backend-local id of a stored chunk.
pub type ChunkId = i64;
/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// The kinds of keyed state, all versioned by the same mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// The file tree: directories, regular files, symlinks.
    File,
    /// Configuration rows: key to value.
    Config,
    /// Process records, keyed by process id.
    Process,
    /// Machine samples taken by `dbos-init`, keyed by sample time
    /// (zero-padded microseconds since the epoch, so keys sort), JSON values.
    Metric,
    /// Boot records written by `dbos-init`, keyed by boot id, JSON values.
    Boot,
}

impl Space {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::File => "file",
            Space::Config => "config",
            Space::Process => "process",
            Space::Metric => "metric",
            Space::Boot => "boot",
        }
    }

    /// Parse the stored name.
    pub fn from_name(s: &str) -> Option<Space> {
        match s {
            "file" => Some(Space::File),
            "config" => Some(Space::Config),
            "process" => Some(Space::Process),
            "metric" => Some(Space::Metric),
            "boot" => Some(Space::Boot),
            _ => None,
        }
    }
}

/// Ownership, permissions and modification time of a tree entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// Where one chunk of a file's content lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkRef {
    /// Already in the database.
    Stored(ChunkId),
    /// Written by the open transaction, addressed by its hash.
    Pending(Hash),
}

/// A file's content: the ordered chunks plus the digest of the whole.
#[derive(Clone, Debug)]
pub struct Content {
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3 of the whole content; equal digests mean equal content.
    pub digest: Hash,
    /// The chunks, in order.
    pub chunks: Arc<Vec<ChunkRef>>,
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.digest == other.digest
    }
}
impl Eq for Content {}

impl Content {
    /// The empty content.
    pub fn empty() -> Content {
        Content {
            size: 0,
            digest: *blake3::hash(b"").as_bytes(),
            chunks: Arc::new(Vec::new()),
        }
    }
}

/// What a key holds in one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File { meta: Meta, content: Content },
    /// A directory.
    Dir { meta: Meta },
    /// A symbolic link.
    Symlink { meta: Meta, target: String },
    /// A config value or a process record (JSON).
    Value(String),
}

/// The kind of a tree entry, for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Config or process value.
    Value,
}

impl Entry {
    /// The kind of entry.
    pub fn kind(&self) -> NodeKind {
        match self {
            Entry::File { .. } => NodeKind::File,
            Entry::Dir { .. } => NodeKind::Dir,
            Entry::Symlink { .. } => NodeKind::Symlink,
            Entry::Value(_) => NodeKind::Value,
        }
    }

    /// Metadata of tree entries.
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Entry::File { meta, .. } | Entry::Dir { meta } | Entry::Symlink { meta, .. } => {
                Some(meta)
            }
            Entry::Value(_) => None,
        }
    }

    /// Size in bytes (file length, link target length, value length; 0 for
    /// directories).
    pub fn size(&self) -> u64 {
        match self {
            Entry::File { content, .. } => content.size,
            Entry::Dir { .. } => 0,
            Entry::Symlink { target, .. } => target.len() as u64,
            Entry::Value(v) => v.len() as u64,
        }
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self, Entry::Dir { .. })
    }
}

/// One step of a lineage: versions of `branch` up to and including `upto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineageStep {
    /// Branch whose versions are visible.
    pub branch: BranchId,
    /// Last transaction of that branch that is visible.
    pub upto: TxId,
}

/// What is visible from a branch at a moment: its own versions up to a
/// transaction, then its parent's up to the fork point, and so on. Because
/// transaction ids are global and increasing, the visible version of a key is
/// simply the visible one with the highest transaction id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// Nearest branch first.
    pub steps: Vec<LineageStep>,
}

impl Lineage {
    /// True when transaction `tx` written on `branch` is visible.
    pub fn sees(&self, branch: BranchId, tx: TxId) -> bool {
        self.steps
            .iter()
            .any(|s| s.branch == branch && tx <= s.upto)
    }

    /// The newest visible transaction id.
    pub fn upto(&self) -> TxId {
        self.steps.first().map(|s| s.upto).unwrap_or(0)
    }
}

/// A committed transaction's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxInfo {
    /// Transaction id.
    pub id: TxId,
    /// Branch it was committed on.
    pub branch_id: BranchId,
    /// Commit time, microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    /// Who committed it.
    pub author: String,
    /// Host it came from.
    pub host: String,
    /// The command text that made it.
    pub command: String,
    /// Optional message.
    pub message: Option<String>,
    /// For merges: the branch merged in and its transaction.
    pub merge: Option<(BranchId, TxId)>,
    /// Hash chaining this transaction to its predecessor.
    #[serde(serialize_with = "hex_hash")]
    pub hash: Hash,
}

fn hex_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(h))
}

/// Lower-case hexadecimal of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One version of a key: the transaction and what it left (None = removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// The transaction that wrote this version.
    pub tx: TxId,
    /// The entry, or None when the key was removed.
    pub entry: Option<Entry>,
}

/// What one transaction changed on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Kind of state.
    pub space: Space,
    /// Path or key.
    pub path: String,
    /// Before the transaction (None: did not exist).
    pub before: Option<Entry>,
    /// After the transaction (None: removed).
    pub after: Option<Entry>,
}

/// A branch as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BranchInfo {
    /// Internal id.
    pub id: BranchId,
    /// Name.
    pub name: String,
    /// Parent branch (None for `main`).
    pub parent: Option<BranchId>,
    /// Last parent transaction visible on this branch.
    pub fork_tx: Option<TxId>,
    /// Creation time, microseconds since the epoch.
    pub created_us: i64,
}

/// Severity of a log row (syslog numbering: 0 emergency .. 7 debug).
pub type Severity = u8;

/// One appended log row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Time of the event, microseconds since the epoch.
    pub time_us: i64,
    /// Where it came from.
    pub source: String,
    /// Syslog severity.
    pub severity: Severity,
    /// The text.
    pub message: String,
    /// Process record it belongs to, if any.
    pub process_id: Option<u64>,
}

/// A stored log row with the transaction that stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredLog {
    /// Row id.
    pub id: i64,
    /// Transaction that stored it.
    pub tx: TxId,
    /// The row.
    #[serde(flatten)]
    pub entry: LogEntry,
}

/// Lifecycle state of a process record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Still running.
    Running,
    /// Exited on its own.
    Exited,
    /// Ended by a signal.
    Killed,
    /// Could not be started.
    Failed,
    /// Its end was never recorded: the program watching it ended first (a
    /// crashed shell), and the process was found gone later.
    Lost,
}

/// A process record, versioned as it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// dbos process id (not the OS pid).
    pub id: u64,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Lifecycle state.
    pub state: ProcessState,
    /// OS process id, once started.
    pub pid: Option<u32>,
    /// Who started it.
    pub user: String,
    /// Exit status, when exited.
    pub exit_status: Option<i32>,
    /// Signal number, when killed.
    pub signal: Option<i32>,
    /// Start time, microseconds since the epoch.
    pub start_us: i64,
    /// End time, microseconds since the epoch.
    pub end_us: Option<i64>,
    /// Why it failed to start, if it did.
    pub error: Option<String>,
}

/// A slice of a key space in key order (`Txn::list_space_range`): reads
/// only the keys it names, not the whole space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Keys at or after this one, in byte order (None: from the first).
    pub from: Option<String>,
    /// At most this many entries (None: every one).
    pub limit: Option<usize>,
    /// Largest keys first, so that `limit` keeps the last ones.
    pub descending: bool,
}
