//! The embedded SQLite backend: one ordinary SQLite file in WAL mode.
//!
//! Durability: `journal_mode=WAL` with `synchronous=EXTRA`, so the WAL is
//! synced at every commit and a power cut loses no committed transaction
//! (EXTRA rather than FULL for the journal of a new database's switch to
//! WAL; see `open_once`).
//! Commits take the write lock with `BEGIN IMMEDIATE` for the few
//! milliseconds they need; reads never take it, and since committed rows are
//! immutable, a transaction reads its snapshot without holding anything open.

use super::{
    corrupt, decode_version, Backend, BranchRecord, CommitMeta, CommitRequest, ImportItem,
    LogFilter, RawVersion, ShellLine, TagRecord, Write, IMPORT_UNFINISHED_US,
};
use crate::chain::writes_hash;
use crate::content::{decode_chunk, encode_manifest, EncodedChunk};
use crate::error::{Error, Result};
use crate::migrate;
use crate::types::{
    BranchId, BranchInfo, ChunkId, ChunkRef, Entry, Hash, KeyRange, Lineage, LogEntry, Space,
    StoredLog, TxId, TxInfo, VersionRecord,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const KEY_CACHE_MAX: usize = 200_000;

/// The SQLite backend.
pub struct SqliteBackend {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// (space, path) -> key id. Keys are never removed, so entries stay true;
    /// only keys seen committed are cached.
    key_ids: HashMap<(Space, String), i64>,
}

const VERSION_COLS: &str = "tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value";

/// Decode a version row selected with `VERSION_COLS`.
fn version_from_row(row: &Row<'_>) -> rusqlite::Result<(TxId, i64, RawVersion)> {
    Ok((
        row.get::<_, i64>(0)? as TxId,
        row.get(1)?,
        RawVersion {
            mode: row.get(2)?,
            uid: row.get(3)?,
            gid: row.get(4)?,
            size: row.get(5)?,
            mtime_ns: row.get(6)?,
            digest: row.get(7)?,
            manifest: row.get(8)?,
            value: row.get(9)?,
        },
    ))
}

fn tx_from_row(row: &Row<'_>) -> rusqlite::Result<TxInfo> {
    let merge_branch: Option<i64> = row.get(7)?;
    let merge_tx: Option<i64> = row.get(8)?;
    let hash: Vec<u8> = row.get(9)?;
    let mut h = [0u8; 32];
    if hash.len() == 32 {
        h.copy_from_slice(&hash);
    }
    Ok(TxInfo {
        id: row.get::<_, i64>(0)? as TxId,
        branch_id: row.get(1)?,
        time_us: row.get(2)?,
        author: row.get(3)?,
        host: row.get(4)?,
        command: row.get(5)?,
        message: row.get(6)?,
        merge: merge_branch.zip(merge_tx.map(|t| t as TxId)),
        hash: h,
    })
}

const TX_COLS: &str =
    "id, branch_id, time_us, author, host, command, message, merge_branch_id, merge_tx, hash";

fn branch_from_row(row: &Row<'_>) -> rusqlite::Result<BranchInfo> {
    Ok(BranchInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        parent: row.get(2)?,
        fork_tx: row.get::<_, Option<i64>>(3)?.map(|t| t as TxId),
        created_us: row.get(4)?,
    })
}

const BRANCH_COLS: &str = "id, name, parent_id, fork_tx, created_us";

/// SQL reading the visible version of a key over a lineage of `depth` steps:
/// one index seek per step, in one statement.
fn point_read_sql(depth: usize) -> String {
    let parts: Vec<String> = (0..depth)
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT {VERSION_COLS} FROM versions WHERE key_id = ?1 \
                 AND branch_id = ?{} AND tx_id <= ?{} ORDER BY tx_id DESC LIMIT 1)",
                2 + 2 * i,
                3 + 2 * i
            )
        })
        .collect();
    if depth == 1 {
        parts[0].clone()
    } else {
        format!(
            "SELECT * FROM ({}) ORDER BY tx_id DESC LIMIT 1",
            parts.join(" UNION ALL ")
        )
    }
}

fn lineage_params(key_id: i64, lineage: &Lineage) -> Vec<i64> {
    let mut p = vec![key_id];
    for s in &lineage.steps {
        p.push(s.branch);
        p.push(s.upto as i64);
    }
    p
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `path`, refusing one whose
    /// schema is newer than this binary. A new database's folder is created
    /// 0700 and its file 0600.
    pub fn open(path: &Path) -> Result<SqliteBackend> {
        Self::open_with_vfs(path, None)
    }

    /// Open through a named SQLite VFS (tests use this to record writes and
    /// syncs and build crash images).
    pub fn open_with_vfs(path: &Path, vfs: Option<&str>) -> Result<SqliteBackend> {
        // Several processes may create the same new database at once: one
        // of them migrates while the others may find it locked past the
        // busy handler (switching to WAL needs exclusive access). Retry.
        let mut attempt = 0;
        loop {
            match Self::open_once(path, vfs) {
                Err(Error::Busy { .. }) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50 << attempt));
                }
                other => return other.map_err(|e| e.at(&path.display().to_string())),
            }
        }
    }

    fn open_once(path: &Path, vfs: Option<&str>) -> Result<SqliteBackend> {
        match Self::open_writable(path, vfs) {
            // A database on a read-only filesystem, or whose file this user
            // may not write, can still be read: writes are then refused
            // with the same typed error.
            Err(e @ Error::ReadOnlyDatabase { .. }) if path.exists() => {
                Self::open_read_only(path, vfs).map_err(|_| e)
            }
            other => other,
        }
    }

    /// Open without writing anything. A WAL database needs its shared
    /// memory file: on a read-only filesystem where it cannot be created,
    /// the file is opened immutable, which is safe only when no WAL holds
    /// commits not yet in the file (then the open is refused instead).
    fn open_read_only(path: &Path, vfs: Option<&str>) -> Result<SqliteBackend> {
        let location = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}", uri_escape(&location));
        let try_open = |uri: &str| -> Result<Connection> {
            let conn = match vfs {
                Some(v) => Connection::open_with_flags_and_vfs(uri, flags, v),
                None => Connection::open_with_flags(uri, flags),
            }?;
            conn.busy_timeout(crate::error::lock_timeout())?;
            // Reading the schema proves the file reads in this mode; one
            // that still needs a migration cannot be used unwritten.
            if migrate::check_not_newer(&conn, &location)? != migrate::latest(migrate::SQLITE) {
                return Err(Error::ReadOnlyDatabase {
                    location: location.clone(),
                });
            }
            Ok(conn)
        };
        let wal = PathBuf::from(format!("{location}-wal"));
        let wal_empty = std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        // `immutable` takes no locks and ignores the WAL: safe only where no
        // writer can exist, i.e. on a read-only filesystem.
        let fs_read_only = matches!(
            std::fs::OpenOptions::new().append(true).open(path),
            Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
        );
        let conn = match try_open(&uri) {
            Ok(c) => c,
            Err(_) if wal_empty && fs_read_only => try_open(&format!("{uri}?immutable=1"))?,
            Err(e) => return Err(e),
        };
        Ok(SqliteBackend {
            conn,
            path: path.to_path_buf(),
            key_ids: HashMap::new(),
        })
    }

    fn open_writable(path: &Path, vfs: Option<&str>) -> Result<SqliteBackend> {
        let location = path.display().to_string();
        let is_new = !path.exists();
        if is_new {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.exists() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                        path: dir.to_path_buf(),
                        source: e,
                    })?;
                    set_mode(dir, 0o700)?;
                }
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match vfs {
            Some(v) => Connection::open_with_flags_and_vfs(path, flags, v),
            None => Connection::open_with_flags(path, flags),
        }
        .map_err(|e| open_failure(e.into(), path))?;
        if is_new {
            set_mode(path, 0o600)?;
        }
        conn.busy_timeout(crate::error::lock_timeout())?;
        conn.set_prepared_statement_cache_capacity(128);
        // Refuse a newer schema before touching anything (even the journal mode).
        migrate::check_not_newer(&conn, &location).map_err(|e| open_failure(e, path))?;
        // EXTRA, not FULL, and set before the switch to WAL: a new database
        // switches with a rollback journal, and only EXTRA fsyncs the folder
        // after unlinking it. Without that a power cut can bring the journal
        // back, its rollback truncates the database to nothing and SQLite
        // then deletes the WAL: every commit lost (tests/powerloss.rs found
        // it). In WAL mode EXTRA costs nothing more per commit than FULL.
        conn.pragma_update(None, "synchronous", "EXTRA")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_failure(e.into(), path))?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // 16 MiB of page cache (the default is 2 MiB): history and content
        // indexes stay hot.
        conn.pragma_update(None, "cache_size", -16384)?;
        let mut me = SqliteBackend {
            conn,
            path: path.to_path_buf(),
            key_ids: HashMap::new(),
        };
        migrate::apply(&mut me.conn, &location, now_us())
            .map_err(|e| with_location(e, &location))?;
        Ok(me)
    }

    /// The underlying connection, for read-only inspection by tests and tools.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn key_id(&mut self, space: Space, path: &str) -> Result<Option<i64>> {
        if let Some(id) = self.key_ids.get(&(space, path.to_string())) {
            return Ok(Some(*id));
        }
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM keys WHERE space = ?1 AND path = ?2")?
            .query_row(params![space.as_str(), path], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            if self.key_ids.len() > KEY_CACHE_MAX {
                self.key_ids.clear();
            }
            self.key_ids.insert((space, path.to_string()), id);
        }
        Ok(id)
    }

    fn read_by_key(&self, key_id: i64, lineage: &Lineage) -> Result<Option<VersionRecord>> {
        let sql = point_read_sql(lineage.steps.len());
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let row = stmt
            .query_row(
                rusqlite::params_from_iter(lineage_params(key_id, lineage)),
                version_from_row,
            )
            .optional()?;
        match row {
            Some((tx, kind, raw)) => Ok(Some(decode_version(tx, kind, raw)?)),
            None => Ok(None),
        }
    }

    fn existing_of_keys(
        &self,
        keys: Vec<(i64, String)>,
        lineage: &Lineage,
    ) -> Result<Vec<(String, VersionRecord)>> {
        let mut out = Vec::new();
        for (id, name) in keys {
            if let Some(v) = self.read_by_key(id, lineage)? {
                if v.entry.is_some() {
                    out.push((name, v));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn with_location(e: Error, location: &str) -> Error {
    match e {
        Error::Corrupt { reason, .. } => Error::Corrupt {
            location: location.to_string(),
            reason: if reason.contains("not a database") {
                "not a dbos database (file is not SQLite, or is damaged)".to_string()
            } else {
                reason
            },
        },
        Error::Database(msg) => Error::Database(format!("{location}: {msg}")),
        other => other,
    }
}

/// SQLite's full integrity check (pages, free list, every index against
/// its table): the first problems it reports, or why it could not run.
fn integrity_problems(conn: &Connection) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check(50)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match run() {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Vec::new(),
        Ok(lines) => lines,
        Err(e) => vec![format!("the integrity check could not run: {e}")],
    }
}

/// Run SQLite's integrity check on a database file opened read-only,
/// without migrating or writing anything: for a file the engine refuses
/// to open. Each problem, described; empty when SQLite finds none.
pub fn check_file(path: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_failure(e.into(), path))?;
    Ok(integrity_problems(&conn))
}

/// Whether the SQLite file at `path` holds a dbos database (its
/// `transactions` table), read without writing anything: no journal-mode
/// switch, no migration, no bootstrap. An empty file holds none.
pub fn holds_database(path: &Path) -> Result<bool> {
    let empty = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    if empty {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_failure(e.into(), path))?;
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'transactions'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| open_failure(e.into(), path))?;
    Ok(n > 0)
}

/// A file path made safe inside a `file:` URI.
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error met while opening `path`, made to say why: a file that cannot
/// be opened is probed with the host filesystem for the precise reason
/// (permission denied, no such folder, read-only filesystem).
fn open_failure(e: Error, path: &Path) -> Error {
    let location = path.display().to_string();
    match e {
        Error::CannotOpen { reason, .. } => {
            let probe = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .err()
                .or_else(|| {
                    // The file itself opens: the folder (for the WAL and
                    // shared-memory files beside it) is what refuses.
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
                    let probe = dir.join(format!(".dbos-open-probe-{}", std::process::id()));
                    match std::fs::File::create(&probe) {
                        Ok(_) => {
                            let _ = std::fs::remove_file(&probe);
                            None
                        }
                        Err(e) => Some(e),
                    }
                });
            match probe {
                Some(io) if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                    Error::ReadOnlyDatabase { location }
                }
                Some(io) => Error::CannotOpen {
                    location,
                    reason: io.to_string(),
                },
                None => Error::CannotOpen { location, reason },
            }
        }
        other => with_location(other, &location).at(&location),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Commit-time work inside the write lock, shared by `commit` and `bootstrap`.
struct Committer<'c> {
    tx: &'c rusqlite::Transaction<'c>,
    /// Keys known committed (the backend's cache), read-only here.
    known: &'c HashMap<(Space, String), i64>,
    /// Keys looked up or created by this commit; merged into the cache
    /// only once the commit succeeded.
    new_keys: HashMap<(Space, String), i64>,
    /// Chunks inserted by this commit, by hash.
    new_chunks: HashMap<Hash, ChunkId>,
}

impl<'c> Committer<'c> {
    fn new(tx: &'c rusqlite::Transaction<'c>, known: &'c HashMap<(Space, String), i64>) -> Self {
        Committer {
            tx,
            known,
            new_keys: HashMap::new(),
            new_chunks: HashMap::new(),
        }
    }

    fn key_id(&self, space: Space, path: &str) -> Result<Option<i64>> {
        let k = (space, path.to_string());
        if let Some(id) = self.known.get(&k).or_else(|| self.new_keys.get(&k)) {
            return Ok(Some(*id));
        }
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM keys WHERE space = ?1 AND path = ?2")?
            .query_row(params![space.as_str(), path], |r| r.get(0))
            .optional()?)
    }

    fn ensure_key(&mut self, space: Space, path: &str) -> Result<i64> {
        let k = (space, path.to_string());
        if let Some(id) = self.known.get(&k).or_else(|| self.new_keys.get(&k)) {
            return Ok(*id);
        }
        let (parent_id, name) = if space == Space::File && path != "/" {
            let cut = path.rfind('/').unwrap_or(0);
            let parent = if cut == 0 { "/" } else { &path[..cut] };
            (Some(self.ensure_key(space, parent)?), &path[cut + 1..])
        } else {
            (None, if path == "/" { "" } else { path })
        };
        // Insert, or find the key that already exists: one statement for
        // the common case of a new key.
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO keys(space, path, parent_id, name) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![space.as_str(), path, parent_id, name])?;
        let id = if inserted == 1 {
            self.tx.last_insert_rowid()
        } else {
            self.key_id(space, path)?
                .ok_or_else(|| corrupt(format!("key {path} vanished during commit")))?
        };
        self.new_keys.insert(k, id);
        Ok(id)
    }

    fn chunk_id(&self, chunk: &ChunkRef) -> Result<ChunkId> {
        match chunk {
            ChunkRef::Stored(id) => Ok(*id),
            ChunkRef::Pending(hash) if self.new_chunks.contains_key(hash) => {
                Ok(self.new_chunks[hash])
            }
            ChunkRef::Pending(hash) => self
                .tx
                .prepare_cached("SELECT id FROM chunks WHERE hash = ?1")?
                .query_row(params![&hash[..]], |r| r.get(0))
                .optional()?
                .ok_or_else(|| corrupt("a pending chunk was never stored")),
        }
    }

    fn insert_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()> {
        self.new_chunks = insert_chunks(self.tx, chunks)?;
        Ok(())
    }

    fn insert_version(&mut self, branch: BranchId, tx_id: TxId, w: &Write) -> Result<()> {
        let key = self.ensure_key(w.space, &w.path)?;
        let c = super::columns(&w.entry);
        let manifest = match c.chunks {
            Some(chunks) => {
                let ids = chunks
                    .iter()
                    .map(|r| self.chunk_id(r))
                    .collect::<Result<Vec<_>>>()?;
                Some(encode_manifest(&ids))
            }
            None => None,
        };
        let (kind, m, size, digest, value) = (c.kind, c.meta, c.size, c.digest, c.value);
        self.tx
            .prepare_cached(
                "INSERT INTO versions(key_id, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, manifest, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                key, branch, tx_id as i64, kind, m.mode, m.uid, m.gid, size as i64, m.mtime_ns, digest, manifest, value
            ])?;
        Ok(())
    }

    /// Newest transaction id, its time and hash.
    fn head(&self) -> Result<(TxId, i64, Hash)> {
        let row: Option<(i64, i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT id, time_us, hash FROM transactions ORDER BY id DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(match row {
            Some((id, t, h)) => (id as TxId, t, h.try_into().unwrap_or([0u8; 32])),
            None => (0, 0, [0u8; 32]),
        })
    }

    /// Write the transaction row and everything it carries.
    fn write_tx(
        &mut self,
        head: (TxId, i64, Hash),
        branch: BranchId,
        meta: &CommitMeta,
        host: &str,
        writes: &[Write],
        logs: &[LogEntry],
    ) -> Result<TxInfo> {
        let (head, head_time, prev_hash) = head;
        let id = head + 1;
        let time_us = now_us().max(head_time);
        for w in writes {
            self.insert_version(branch, id, w)?;
        }
        for l in logs {
            self.tx
                .prepare_cached(
                    "INSERT INTO log_entries(branch_id, tx_id, time_us, source, severity, message, process_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    branch, id as i64, l.time_us, l.source, l.severity, l.message,
                    l.process_id.map(|p| p as i64)
                ])?;
        }
        let mut info = TxInfo {
            id,
            branch_id: branch,
            time_us,
            author: meta.author.clone(),
            host: host.to_string(),
            command: meta.command.clone(),
            message: meta.message.clone(),
            merge: meta.merge,
            hash: [0u8; 32],
        };
        info.hash = writes_hash(&prev_hash, &info, writes, logs);
        insert_tx_row(self.tx, &info)?;
        Ok(info)
    }

    /// First-committer-wins validation: fail when anything the transaction
    /// read, wrote or listed changed on its branch after its snapshot.
    fn validate(&self, req: &CommitRequest) -> Result<()> {
        let check = |space: Space, path: &str| -> Result<()> {
            if let Some(key) = self.key_id(space, path)? {
                let newer: Option<i64> = self
                    .tx
                    .prepare_cached(
                        "SELECT max(tx_id) FROM versions WHERE key_id = ?1 AND branch_id = ?2 AND tx_id > ?3",
                    )?
                    .query_row(params![key, req.branch, req.snapshot as i64], |r| r.get(0))?;
                if let Some(tx) = newer {
                    return Err(Error::Conflict {
                        path: path.to_string(),
                        tx: tx as TxId,
                        snapshot: req.snapshot,
                    });
                }
            }
            Ok(())
        };
        for (space, path) in &req.reads {
            check(*space, path)?;
        }
        for w in &req.writes {
            check(w.space, &w.path)?;
        }
        for dir in &req.listed_dirs {
            if let Some(key) = self.key_id(Space::File, dir)? {
                let newer: Option<(i64, String)> = self
                    .tx
                    .prepare_cached(
                        "SELECT v.tx_id, k.path FROM keys k JOIN versions v ON v.key_id = k.id \
                         WHERE k.parent_id = ?1 AND v.branch_id = ?2 AND v.tx_id > ?3 LIMIT 1",
                    )?
                    .query_row(params![key, req.branch, req.snapshot as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                if let Some((tx, path)) = newer {
                    return Err(Error::Conflict {
                        path,
                        tx: tx as TxId,
                        snapshot: req.snapshot,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Insert a transaction's row (commits and verbatim imports alike).
fn insert_tx_row(conn: &Connection, info: &TxInfo) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO transactions({TX_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        info.id as i64,
        info.branch_id,
        info.time_us,
        info.author,
        info.host,
        info.command,
        info.message,
        info.merge.map(|m| m.0),
        info.merge.map(|m| m.1 as i64),
        &info.hash[..]
    ])?;
    Ok(())
}

/// Refuse a name a live branch already has.
fn refuse_taken_name(conn: &Connection, name: &str) -> Result<()> {
    let taken: Option<i64> = conn
        .query_row(
            "SELECT id FROM branches WHERE name = ?1 AND deleted_us IS NULL",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(Error::InvalidBranch {
            name: name.to_string(),
            reason: "a branch with that name already exists".to_string(),
        });
    }
    Ok(())
}

/// Store chunks not stored yet; gives the ids of those it inserted.
fn insert_chunks(conn: &Connection, chunks: &[EncodedChunk]) -> Result<HashMap<Hash, ChunkId>> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO chunks(hash, size, codec, data) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut ids = HashMap::with_capacity(chunks.len());
    for c in chunks {
        if stmt.execute(params![&c.hash[..], c.size, c.codec, c.data])? == 1 {
            ids.insert(c.hash, conn.last_insert_rowid());
        }
    }
    Ok(ids)
}

impl Backend for SqliteBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn head(&mut self) -> Result<TxId> {
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(id) FROM transactions")?
            .query_row([], |r| r.get(0))?;
        Ok(id.unwrap_or(0) as TxId)
    }

    fn bootstrap(&mut self, meta: &CommitMeta, host: &str, root: &Entry) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM branches LIMIT 1", [], |r| r.get(0))
            .optional()?;
        if exists.is_some() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO branches(name, parent_id, fork_tx, created_us) VALUES ('main', NULL, NULL, ?1)",
            params![now_us()],
        )?;
        let main = tx.last_insert_rowid();
        {
            let mut c = Committer::new(&tx, &self.key_ids);
            let writes = [Write {
                space: Space::File,
                path: "/".to_string(),
                entry: Some(root.clone()),
            }];
            let head = c.head()?;
            c.write_tx(head, main, meta, host, &writes, &[])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn branches(&mut self) -> Result<Vec<BranchInfo>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {BRANCH_COLS} FROM branches WHERE deleted_us IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], branch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn branch_by_name(&mut self, name: &str) -> Result<Option<BranchInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {BRANCH_COLS} FROM branches WHERE name = ?1 AND deleted_us IS NULL"
            ))?
            .query_row(params![name], branch_from_row)
            .optional()?)
    }

    fn branch_by_id(&mut self, id: BranchId) -> Result<Option<BranchInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {BRANCH_COLS} FROM branches WHERE id = ?1"))?
            .query_row(params![id], branch_from_row)
            .optional()?)
    }

    fn create_branch(&mut self, name: &str, parent: BranchId, fork_tx: TxId) -> Result<BranchInfo> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        refuse_taken_name(&tx, name)?;
        let created = now_us();
        tx.execute(
            "INSERT INTO branches(name, parent_id, fork_tx, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![name, parent, fork_tx as i64, created],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(BranchInfo {
            id,
            name: name.to_string(),
            parent: Some(parent),
            fork_tx: Some(fork_tx),
            created_us: created,
        })
    }

    fn branch_head(&mut self, id: BranchId) -> Result<Option<TxId>> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(id) FROM transactions WHERE branch_id = ?1")?
            .query_row(params![id], |r| r.get(0))?;
        Ok(v.map(|v| v as TxId))
    }

    fn rename_branch(&mut self, id: BranchId, new_name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        refuse_taken_name(&tx, new_name)?;
        tx.execute(
            "UPDATE branches SET name = ?1 WHERE id = ?2",
            params![new_name, id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_branch(&mut self, id: BranchId) -> Result<()> {
        self.conn.execute(
            "UPDATE branches SET deleted_us = ?1 WHERE id = ?2 AND deleted_us IS NULL",
            params![now_us(), id],
        )?;
        Ok(())
    }

    fn last_merge(&mut self, into: BranchId, from: BranchId) -> Result<Option<(TxId, TxId)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, merge_tx FROM transactions WHERE branch_id = ?1 AND merge_branch_id = ?2 \
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![into, from], |r| {
                Ok((r.get::<_, i64>(0)? as TxId, r.get::<_, i64>(1)? as TxId))
            })
            .optional()?)
    }

    fn merges_into(&mut self, branch: BranchId) -> Result<Vec<(TxId, BranchId, TxId)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, merge_branch_id, merge_tx FROM transactions \
             WHERE branch_id = ?1 AND merge_branch_id IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map(params![branch], |r| {
            Ok((
                r.get::<_, i64>(0)? as TxId,
                r.get(1)?,
                r.get::<_, i64>(2)? as TxId,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn merged_upto(&mut self, branch: BranchId) -> Result<Option<TxId>> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(merge_tx) FROM transactions WHERE merge_branch_id = ?1")?
            .query_row(params![branch], |r| r.get(0))?;
        Ok(v.map(|v| v as TxId))
    }

    fn all_branches(&mut self) -> Result<Vec<BranchInfo>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {BRANCH_COLS} FROM branches ORDER BY id"))?;
        let rows = stmt.query_map([], branch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn read(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Option<VersionRecord>> {
        match self.key_id(space, path)? {
            Some(key) => self.read_by_key(key, lineage),
            None => Ok(None),
        }
    }

    fn children(&mut self, lineage: &Lineage, dir: &str) -> Result<Vec<(String, VersionRecord)>> {
        let Some(dir_key) = self.key_id(Space::File, dir)? else {
            return Ok(Vec::new());
        };
        let keys = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, name FROM keys WHERE parent_id = ?1")?;
            let rows = stmt.query_map(params![dir_key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()?
        };
        self.existing_of_keys(keys, lineage)
    }

    fn list_space(
        &mut self,
        lineage: &Lineage,
        space: Space,
    ) -> Result<Vec<(String, VersionRecord)>> {
        let keys = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, path FROM keys WHERE space = ?1")?;
            let rows = stmt.query_map(params![space.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()?
        };
        self.existing_of_keys(keys, lineage)
    }

    fn list_space_range(
        &mut self,
        lineage: &Lineage,
        space: Space,
        range: &KeyRange,
    ) -> Result<Vec<(String, VersionRecord)>> {
        // Keys in order, a page at a time, until the limit is met by keys
        // that exist at the lineage's cut-off (deleted ones are skipped).
        const PAGE: i64 = 256;
        let order = if range.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT id, path FROM keys WHERE space = ?1 AND path >= ?2 AND \
             (?3 IS NULL OR path {cmp} ?3) ORDER BY path {order} LIMIT {PAGE}",
            cmp = if range.descending { "<" } else { ">" },
        );
        let from = range.from.clone().unwrap_or_default();
        let limit = range.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < limit {
            let keys = {
                let mut stmt = self.conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![space.as_str(), from, after], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()?
            };
            let Some((_, last)) = keys.last() else {
                break;
            };
            after = Some(last.clone());
            let full = keys.len() as i64 == PAGE;
            for (id, key) in keys {
                if out.len() >= limit {
                    break;
                }
                if let Some(v) = self.read_by_key(id, lineage)? {
                    if v.entry.is_some() {
                        out.push((key, v));
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    fn history(
        &mut self,
        lineage: &Lineage,
        space: Space,
        path: &str,
    ) -> Result<Vec<VersionRecord>> {
        let Some(key) = self.key_id(space, path)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE key_id = ?1 AND branch_id = ?2 AND tx_id <= ?3 \
             ORDER BY tx_id DESC"
        ))?;
        for step in &lineage.steps {
            let rows = stmt.query_map(
                params![key, step.branch, step.upto as i64],
                version_from_row,
            )?;
            for row in rows {
                let (tx, kind, raw) = row?;
                out.push(decode_version(tx, kind, raw)?);
            }
        }
        Ok(out)
    }

    fn transactions(
        &mut self,
        lineage: &Lineage,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<Vec<TxInfo>> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TX_COLS} FROM transactions WHERE branch_id = ?1 AND id <= ?2 ORDER BY id DESC LIMIT ?3"
        ))?;
        for step in &lineage.steps {
            if out.len() >= limit {
                break;
            }
            let mut upto = step.upto;
            if let Some(b) = before {
                upto = upto.min(b.saturating_sub(1));
            }
            let rows = stmt.query_map(
                params![step.branch, upto as i64, (limit - out.len()) as i64],
                tx_from_row,
            )?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.id));
        out.truncate(limit);
        Ok(out)
    }

    fn tx_info(&mut self, id: TxId) -> Result<Option<TxInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {TX_COLS} FROM transactions WHERE id = ?1"))?
            .query_row(params![id as i64], tx_from_row)
            .optional()?)
    }

    fn tx_at_time(&mut self, time_us: i64) -> Result<Option<TxId>> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(id) FROM transactions WHERE time_us <= ?1")?
            .query_row(params![time_us], |r| r.get(0))?;
        Ok(v.map(|v| v as TxId))
    }

    fn tx_writes(&mut self, id: TxId) -> Result<Vec<Write>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.space, k.path, v.tx_id, v.kind, v.mode, v.uid, v.gid, v.size, v.mtime_ns, v.digest, v.manifest, v.value \
             FROM versions v JOIN keys k ON k.id = v.key_id \
             WHERE v.branch_id = (SELECT branch_id FROM transactions WHERE id = ?1) AND v.tx_id = ?1 \
             ORDER BY k.space, k.path",
        )?;
        let rows = stmt.query_map(params![id as i64], |r| {
            let space: String = r.get(0)?;
            let path: String = r.get(1)?;
            let raw = RawVersion {
                mode: r.get(4)?,
                uid: r.get(5)?,
                gid: r.get(6)?,
                size: r.get(7)?,
                mtime_ns: r.get(8)?,
                digest: r.get(9)?,
                manifest: r.get(10)?,
                value: r.get(11)?,
            };
            Ok((space, path, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, raw))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (space, path, tx, kind, raw) = row?;
            let space = Space::from_name(&space)
                .ok_or_else(|| corrupt(format!("unknown space {space}")))?;
            out.push(Write {
                space,
                path,
                entry: decode_version(tx as TxId, kind, raw)?.entry,
            });
        }
        Ok(out)
    }

    fn keys_written(
        &mut self,
        branch: BranchId,
        after: TxId,
        upto: TxId,
    ) -> Result<Vec<(Space, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT k.space, k.path FROM versions v JOIN keys k ON k.id = v.key_id \
             WHERE v.branch_id = ?1 AND v.tx_id > ?2 AND v.tx_id <= ?3",
        )?;
        let rows = stmt.query_map(params![branch, after as i64, upto as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (space, path) = row?;
            let space = Space::from_name(&space)
                .ok_or_else(|| corrupt(format!("unknown space {space}")))?;
            out.push((space, path));
        }
        Ok(out)
    }

    fn read_chunk(&mut self, chunk: ChunkRef) -> Result<Vec<u8>> {
        let row: Option<(Vec<u8>, u32, u8, Vec<u8>)> = match chunk {
            ChunkRef::Stored(id) => self
                .conn
                .prepare_cached("SELECT hash, size, codec, data FROM chunks WHERE id = ?1")?
                .query_row(params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?,
            ChunkRef::Pending(h) => self
                .conn
                .prepare_cached("SELECT hash, size, codec, data FROM chunks WHERE hash = ?1")?
                .query_row(params![&h[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?,
        };
        let (hash, size, codec, data) =
            row.ok_or_else(|| corrupt(format!("missing chunk {chunk:?}")))?;
        let hash: Hash = hash
            .try_into()
            .map_err(|_| corrupt("chunk hash of the wrong length"))?;
        decode_chunk(&hash, size, codec, &data)
    }

    fn store_chunks(&mut self, chunks: &[EncodedChunk]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_chunks(&tx, chunks)?;
        tx.commit()?;
        Ok(())
    }

    fn commit(&mut self, req: CommitRequest) -> Result<TxInfo> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (info, new_keys) = {
            let mut c = Committer::new(&tx, &self.key_ids);
            let head = c.head()?;
            if req.snapshot < head.0 {
                c.validate(&req)?;
            }
            c.insert_chunks(&req.chunks)?;
            let info = c.write_tx(
                head,
                req.branch,
                &req.meta,
                &req.host,
                &req.writes,
                &req.logs,
            )?;
            (info, c.new_keys)
        };
        tx.commit()?;
        for (k, id) in new_keys {
            if self.key_ids.len() < KEY_CACHE_MAX {
                self.key_ids.insert(k, id);
            }
        }
        Ok(info)
    }

    fn logs(&mut self, lineage: &Lineage, filter: &LogFilter) -> Result<Vec<StoredLog>> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tx_id, time_us, source, severity, message, process_id FROM log_entries \
             WHERE branch_id = ?1 AND tx_id <= ?2 AND tx_id > ?3 \
             AND (?4 IS NULL OR severity <= ?4) AND (?5 IS NULL OR source = ?5) \
             AND (?7 IS NULL OR process_id = ?7) ORDER BY id DESC LIMIT ?6",
        )?;
        let limit = filter.limit.unwrap_or(usize::MAX).min(i64::MAX as usize);
        for step in &lineage.steps {
            let rows = stmt.query_map(
                params![
                    step.branch,
                    step.upto as i64,
                    filter.after_tx.unwrap_or(0) as i64,
                    filter.max_severity,
                    filter.source,
                    (limit.saturating_sub(out.len())) as i64,
                    filter.process_id.map(|p| p as i64)
                ],
                |r| {
                    Ok(StoredLog {
                        id: r.get(0)?,
                        tx: r.get::<_, i64>(1)? as TxId,
                        entry: LogEntry {
                            time_us: r.get(2)?,
                            source: r.get(3)?,
                            severity: r.get(4)?,
                            message: r.get(5)?,
                            process_id: r.get::<_, Option<i64>>(6)?.map(|p| p as u64),
                        },
                    })
                },
            )?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_by_key(|l| (l.tx, l.id));
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }

    fn tag(&mut self, name: &str) -> Result<Option<(BranchId, TxId)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT branch_id, tx_id FROM tags WHERE name = ?1")?
            .query_row(params![name], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as TxId))
            })
            .optional()?)
    }

    fn create_tag(&mut self, name: &str, branch: BranchId, tx: TxId) -> Result<()> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO tags(name, branch_id, tx_id, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![name, branch, tx as i64, now_us()],
        )?;
        if n == 0 {
            return Err(Error::InvalidBranch {
                name: name.to_string(),
                reason: "a tag with that name already exists".to_string(),
            });
        }
        Ok(())
    }

    fn tags(&mut self) -> Result<Vec<(String, BranchId, TxId)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, branch_id, tx_id FROM tags ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as TxId))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn add_shell_history(&mut self, author: &str, branch: &str, line: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO shell_history(time_us, author, branch, line) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![now_us(), author, branch, line])?;
        Ok(())
    }

    fn shell_history(&mut self, author: &str, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT line FROM (SELECT id, line FROM shell_history WHERE author = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![author, limit.min(i64::MAX as usize) as i64], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn export_branches(&mut self) -> Result<Vec<BranchRecord>> {
        self.copy_export_branches()
    }
    fn export_tags(&mut self) -> Result<Vec<TagRecord>> {
        self.copy_export_tags()
    }
    fn export_shell_history(&mut self, after: i64, limit: usize) -> Result<Vec<ShellLine>> {
        self.copy_export_shell_history(after, limit)
    }
    fn export_chunks(
        &mut self,
        after: ChunkId,
        limit: usize,
    ) -> Result<Vec<(ChunkId, EncodedChunk)>> {
        self.copy_export_chunks(after, limit)
    }
    fn import(&mut self, next: &mut dyn FnMut() -> Result<Option<ImportItem>>) -> Result<()> {
        self.copy_import(next)
    }
    fn import_finish(&mut self, branches: &[BranchRecord]) -> Result<()> {
        self.copy_import_finish(branches)
    }
    fn import_abort(&mut self) -> Result<()> {
        self.copy_import_abort()
    }
    fn dialect(&mut self) -> Result<crate::audit::Dialect> {
        Ok(crate::audit::Dialect::Sqlite)
    }
    fn query_readonly(
        &mut self,
        sql: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<crate::audit::SqlRows> {
        self.audit_query(sql, cancel)
    }
    fn stray_row(&mut self, from: TxId) -> Result<Option<(TxId, String)>> {
        self.audit_stray_row(from)
    }
    fn check_storage(&mut self) -> Result<Vec<String>> {
        Ok(integrity_problems(&self.conn))
    }

    fn file_keys(&mut self) -> Result<Vec<super::KeyRow>> {
        self.audit_file_keys()
    }
}

// ----- whole-database copy (copy.rs): export rows, import them verbatim ----

/// Every table an import fills, children before parents (for deletion).
const IMPORT_TABLES: [&str; 8] = [
    "versions",
    "log_entries",
    "tags",
    "transactions",
    "keys",
    "chunks",
    "shell_history",
    "branches",
];

impl Committer<'_> {
    /// Write one transaction exactly as given: id, time, hash, versions and
    /// log rows (with their ids).
    fn import_tx(&mut self, info: &TxInfo, writes: &[Write], logs: &[StoredLog]) -> Result<()> {
        for w in writes {
            self.insert_version(info.branch_id, info.id, w)?;
        }
        for l in logs {
            self.tx
                .prepare_cached(
                    "INSERT INTO log_entries(id, branch_id, tx_id, time_us, source, severity, message, process_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    l.id,
                    info.branch_id,
                    info.id as i64,
                    l.entry.time_us,
                    l.entry.source,
                    l.entry.severity,
                    l.entry.message,
                    l.entry.process_id.map(|p| p as i64)
                ])?;
        }
        insert_tx_row(self.tx, info)?;
        Ok(())
    }
}

impl SqliteBackend {
    fn copy_export_branches(&mut self) -> Result<Vec<BranchRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {BRANCH_COLS}, deleted_us FROM branches ORDER BY id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(BranchRecord {
                info: branch_from_row(r)?,
                deleted_us: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn copy_export_tags(&mut self) -> Result<Vec<TagRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, branch_id, tx_id, created_us FROM tags ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(TagRecord {
                name: r.get(0)?,
                branch: r.get(1)?,
                tx: r.get::<_, i64>(2)? as TxId,
                created_us: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn copy_export_shell_history(&mut self, after: i64, limit: usize) -> Result<Vec<ShellLine>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, time_us, author, branch, line FROM shell_history WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit.min(i64::MAX as usize) as i64], |r| {
            Ok(ShellLine {
                id: r.get(0)?,
                time_us: r.get(1)?,
                author: r.get(2)?,
                branch: r.get(3)?,
                line: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn copy_export_chunks(
        &mut self,
        after: ChunkId,
        limit: usize,
    ) -> Result<Vec<(ChunkId, EncodedChunk)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, hash, size, codec, data FROM chunks WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, u8>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hash, size, codec, data) = row?;
            let hash: Hash = hash
                .try_into()
                .map_err(|_| corrupt(format!("chunk {id}: hash of the wrong length")))?;
            out.push((
                id,
                EncodedChunk {
                    hash,
                    size,
                    codec,
                    data,
                },
            ));
        }
        Ok(out)
    }

    /// Everything in one SQLite transaction: a failure leaves nothing.
    fn copy_import(&mut self, next: &mut dyn FnMut() -> Result<Option<ImportItem>>) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for table in IMPORT_TABLES {
            let any: Option<i64> = tx
                .query_row(&format!("SELECT 1 FROM {table} LIMIT 1"), [], |r| r.get(0))
                .optional()?;
            if any.is_some() {
                return Err(Error::Database(format!(
                    "{}: not empty (table {table} has rows); an import needs a new database",
                    self.path.display()
                )));
            }
        }
        {
            let known = HashMap::new();
            let mut c = Committer::new(&tx, &known);
            let mut expected: TxId = 1;
            while let Some(item) = next()? {
                match item {
                    ImportItem::Branch(b) => {
                        tx.prepare_cached(
                            "INSERT INTO branches(id, name, parent_id, fork_tx, created_us, deleted_us) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            b.info.id,
                            b.info.name,
                            b.info.parent,
                            b.info.fork_tx.map(|t| t as i64),
                            b.info.created_us,
                            IMPORT_UNFINISHED_US
                        ])?;
                    }
                    ImportItem::Chunks(chunks) => {
                        insert_chunks(&tx, &chunks)?;
                    }
                    ImportItem::Tx { info, writes, logs } => {
                        if info.id != expected {
                            return Err(corrupt(format!(
                                "import: T{} given where T{expected} was expected",
                                info.id
                            )));
                        }
                        expected += 1;
                        c.import_tx(&info, &writes, &logs)?;
                    }
                    ImportItem::Tag(t) => {
                        tx.prepare_cached(
                            "INSERT INTO tags(name, branch_id, tx_id, created_us) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![t.name, t.branch, t.tx as i64, t.created_us])?;
                    }
                    ImportItem::ShellLines(lines) => {
                        let mut stmt = tx.prepare_cached(
                            "INSERT INTO shell_history(id, time_us, author, branch, line) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?;
                        for l in lines {
                            stmt.execute(params![l.id, l.time_us, l.author, l.branch, l.line])?;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn copy_import_finish(&mut self, branches: &[BranchRecord]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for b in branches {
            let n = tx.execute(
                "UPDATE branches SET deleted_us = ?2 WHERE id = ?1 AND deleted_us = ?3",
                params![b.info.id, b.deleted_us, IMPORT_UNFINISHED_US],
            )?;
            if n != 1 {
                return Err(corrupt(format!(
                    "branch {} ({}) is not part of an unfinished import",
                    b.info.id, b.info.name
                )));
            }
        }
        let left: i64 = tx.query_row(
            "SELECT count(*) FROM branches WHERE deleted_us = ?1",
            params![IMPORT_UNFINISHED_US],
            |r| r.get(0),
        )?;
        if left != 0 {
            return Err(corrupt(format!(
                "{left} imported branches were not given to import_finish"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    fn copy_import_abort(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let visible: i64 = tx.query_row(
            "SELECT count(*) FROM branches WHERE deleted_us IS NOT ?1",
            params![IMPORT_UNFINISHED_US],
            |r| r.get(0),
        )?;
        if visible != 0 {
            return Err(Error::Database(format!(
                "{}: not an unfinished import ({visible} usable branches); nothing was deleted",
                self.path.display()
            )));
        }
        for table in IMPORT_TABLES {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.commit()?;
        self.key_ids.clear();
        Ok(())
    }
}
