//! Transactions: a snapshot of one branch plus the changes made on top of it,
//! kept in memory (content in chunks, flushed early when large) until commit.
//!
//! A transaction holds no database lock while open: it reads committed rows at
//! its snapshot (which never change) and takes the write lock only inside
//! `commit`, where first-committer-wins validation refuses it if anything it
//! read, wrote or listed changed on its branch since the snapshot.

use crate::backend::{Backend, CommitMeta, CommitRequest, LogFilter, Write};
use crate::content::{chunk_stream, EncodedChunk};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::path::VPath;
use crate::types::{
    BranchInfo, ChunkRef, Content, Entry, Hash, KeyRange, Lineage, LogEntry, Meta, ProcessRecord,
    Space, StoredLog, TxId, TxInfo,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::Arc;

/// Pending chunk bytes kept in memory before they are stored ahead of commit.
const CHUNK_FLUSH_BYTES: usize = 32 << 20;
/// Most symbolic links followed while resolving one path.
const MAX_SYMLINKS: usize = 40;

/// Who is making changes: recorded as author, and owner of new entries.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Author name recorded with each transaction.
    pub author: String,
    /// Owner of new entries.
    pub uid: u32,
    /// Group of new entries.
    pub gid: u32,
}

impl Default for Actor {
    fn default() -> Self {
        Actor {
            author: "dbos".to_string(),
            uid: 0,
            gid: 0,
        }
    }
}

/// The state of a transaction between uses, so a shell can keep one open
/// across command lines without borrowing the engine.
#[derive(Debug, Clone)]
pub struct TxState {
    pub(crate) branch: BranchInfo,
    pub(crate) snapshot: TxId,
    pub(crate) lineage: Lineage,
    pub(crate) read_only: Option<String>,
    pub(crate) overlay: BTreeMap<(Space, String), Option<Entry>>,
    pub(crate) reads: BTreeSet<(Space, String)>,
    pub(crate) listed: BTreeSet<String>,
    pub(crate) chunks: HashMap<Hash, EncodedChunk>,
    pub(crate) chunk_bytes: usize,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) actor: Actor,
    /// Committed entries read at the snapshot. The snapshot never changes,
    /// so they stay true for the whole transaction.
    pub(crate) cache: HashMap<(Space, String), Option<Entry>>,
}

/// Most snapshot reads remembered by one transaction.
const READ_CACHE_MAX: usize = 100_000;

impl TxState {
    /// A transaction that has read and changed nothing yet: reading
    /// `lineage` (whose newest visible transaction is `snapshot`), writable
    /// unless `read_only` names the moment it views.
    pub(crate) fn fresh(
        branch: BranchInfo,
        snapshot: TxId,
        lineage: Lineage,
        read_only: Option<String>,
        actor: Actor,
    ) -> TxState {
        TxState {
            branch,
            snapshot,
            lineage,
            read_only,
            overlay: BTreeMap::new(),
            reads: BTreeSet::new(),
            listed: BTreeSet::new(),
            chunks: HashMap::new(),
            chunk_bytes: 0,
            logs: Vec::new(),
            actor,
            cache: HashMap::new(),
        }
    }

    /// The branch this transaction works on.
    pub fn branch(&self) -> &BranchInfo {
        &self.branch
    }
    /// The transaction id it reads from.
    pub fn snapshot(&self) -> TxId {
        self.snapshot
    }
    /// Pending changes, sorted by space and path (None = removal).
    pub fn pending(&self) -> Vec<(Space, String, bool)> {
        self.overlay
            .iter()
            .map(|((s, p), e)| (*s, p.clone(), e.is_some()))
            .collect()
    }
    /// True when nothing has been changed yet.
    pub fn is_clean(&self) -> bool {
        self.overlay.is_empty() && self.logs.is_empty()
    }

    /// Remember the pending changes, to undo a failed command with `restore`.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            overlay: self.overlay.clone(),
            logs: self.logs.len(),
        }
    }

    /// Undo every change made since `sp` was taken.
    pub fn restore(&mut self, sp: Savepoint) {
        self.overlay = sp.overlay;
        self.logs.truncate(sp.logs);
    }
}

/// Pending changes at one point of a transaction (see `TxState::savepoint`).
#[derive(Debug, Clone)]
pub struct Savepoint {
    overlay: BTreeMap<(Space, String), Option<Entry>>,
    logs: usize,
}

/// An open transaction (or a read-only view of a past moment) on one branch.
pub struct Txn<'e> {
    pub(crate) engine: &'e mut Engine,
    pub(crate) st: TxState,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Validate a config key: 1 to 255 bytes of letters, digits and `._-:/@`.
pub fn check_config_key(key: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    if key.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:/@".contains(*c)))
    {
        return Err(bad(&format!(
            "character {c:?} not allowed (use letters, digits and ._-:/@)"
        )));
    }
    Ok(())
}

impl<'e> Txn<'e> {
    /// The state, detached from the engine (to keep the transaction open).
    pub fn into_state(self) -> TxState {
        self.st
    }

    /// The state, for inspection.
    pub fn state(&self) -> &TxState {
        &self.st
    }

    /// The lineage this transaction reads.
    pub fn lineage(&self) -> &Lineage {
        &self.st.lineage
    }

    /// The engine (for reads outside this transaction).
    pub fn engine(&mut self) -> &mut Engine {
        self.engine
    }

    fn check_writable(&self) -> Result<()> {
        match &self.st.read_only {
            Some(label) => Err(Error::ReadOnly(label.clone())),
            None => Ok(()),
        }
    }

    // ----- generic keyed reads and writes (one mechanism for every space) ---

    /// The entry of a key as this transaction sees it.
    pub fn get(&mut self, space: Space, path: &str) -> Result<Option<Entry>> {
        let key = (space, path.to_string());
        if let Some(e) = self.st.overlay.get(&key) {
            return Ok(e.clone());
        }
        if let Some(e) = self.st.cache.get(&key) {
            return Ok(e.clone());
        }
        let v = self
            .engine
            .backend
            .read(&self.st.lineage, space, path)?
            .and_then(|v| v.entry);
        if self.st.cache.len() >= READ_CACHE_MAX {
            self.st.cache.clear();
        }
        self.st.cache.insert(key.clone(), v.clone());
        if self.st.read_only.is_none() {
            self.st.reads.insert(key);
        }
        Ok(v)
    }

    /// Set (or with None, remove) a key in this transaction.
    pub fn put(&mut self, space: Space, path: &str, entry: Option<Entry>) -> Result<()> {
        self.check_writable()?;
        self.st.overlay.insert((space, path.to_string()), entry);
        Ok(())
    }

    /// Existing keys of a space with their entries, sorted.
    pub fn list_space(&mut self, space: Space) -> Result<Vec<(String, Entry)>> {
        let mut map: BTreeMap<String, Entry> = self
            .engine
            .backend
            .list_space(&self.st.lineage, space)?
            .into_iter()
            .filter_map(|(k, v)| v.entry.map(|e| (k, e)))
            .collect();
        for ((s, k), e) in &self.st.overlay {
            if *s == space {
                match e {
                    Some(e) => map.insert(k.clone(), e.clone()),
                    None => map.remove(k),
                };
            }
        }
        Ok(map.into_iter().collect())
    }

    /// Existing keys of a space in `range`, with this transaction's own
    /// writes, reading only the keys the range covers (not the whole
    /// space): `metrics --since` reads the samples after a time this way.
    pub fn list_space_range(
        &mut self,
        space: Space,
        range: &KeyRange,
    ) -> Result<Vec<(String, Entry)>> {
        let from = range.from.as_deref().unwrap_or("");
        let mine: Vec<(String, Option<Entry>)> = self
            .st
            .overlay
            .iter()
            .filter(|((s, k), _)| *s == space && k.as_str() >= from)
            .map(|((_, k), e)| (k.clone(), e.clone()))
            .collect();
        // Each of our own deletions may hide one stored key: read as many
        // more.
        let stored_range = KeyRange {
            limit: range.limit.map(|n| n.saturating_add(mine.len())),
            ..range.clone()
        };
        let mut map: BTreeMap<String, Entry> = self
            .engine
            .backend
            .list_space_range(&self.st.lineage, space, &stored_range)?
            .into_iter()
            .filter_map(|(k, v)| v.entry.map(|e| (k, e)))
            .collect();
        for (k, e) in mine {
            match e {
                Some(e) => map.insert(k, e),
                None => map.remove(&k),
            };
        }
        let mut out: Vec<(String, Entry)> = map.into_iter().collect();
        if range.descending {
            out.reverse();
        }
        // At most `mine.len()` of the stored keys read are gone, so the
        // first `limit` of the merge are the range's first `limit`.
        out.truncate(range.limit.unwrap_or(usize::MAX));
        Ok(out)
    }

    // ----- file tree reads -------------------------------------------------

    /// The entry at `path`, not following a final symlink.
    pub fn stat(&mut self, path: &VPath) -> Result<Option<Entry>> {
        self.get(Space::File, path.as_str())
    }

    /// The entry at `path`, or NotFound.
    pub fn entry(&mut self, path: &VPath) -> Result<Entry> {
        self.stat(path)?
            .ok_or_else(|| Error::NotFound(path.to_string()))
    }

    /// Follow symbolic links in every component of `path` (and in the last
    /// one when `follow_last`), giving the path of the entry itself. Missing
    /// final components are allowed (for creating them).
    pub fn canonicalize(&mut self, path: &VPath, follow_last: bool) -> Result<VPath> {
        let mut todo: Vec<String> = path.components().map(str::to_string).collect();
        todo.reverse();
        let mut cur = VPath::root();
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            let next = cur.join(&name)?;
            let last = todo.is_empty();
            match self.stat(&next)? {
                Some(Entry::Symlink { target, .. }) if !last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Error::SymlinkLoop(path.to_string()));
                    }
                    let base = if target.starts_with('/') {
                        VPath::root()
                    } else {
                        cur.clone()
                    };
                    let resolved = VPath::resolve(&base, &target)?;
                    let mut rest: Vec<String> = resolved.components().map(str::to_string).collect();
                    rest.reverse();
                    todo.extend(rest);
                    cur = VPath::root();
                }
                Some(Entry::Dir { .. }) | Some(Entry::Symlink { .. }) => cur = next,
                Some(_) if last => cur = next,
                Some(_) => return Err(Error::NotADirectory(next.to_string())),
                None if last => cur = next,
                None => return Err(Error::NotFound(next.to_string())),
            }
        }
        Ok(cur)
    }

    /// The entries of a directory, sorted by name.
    pub fn read_dir(&mut self, path: &VPath) -> Result<Vec<(String, Entry)>> {
        match self.entry(path)? {
            Entry::Dir { .. } => {}
            _ => return Err(Error::NotADirectory(path.to_string())),
        }
        let mut map: BTreeMap<String, Entry> = self
            .engine
            .backend
            .children(&self.st.lineage, path.as_str())?
            .into_iter()
            .filter_map(|(k, v)| v.entry.map(|e| (k, e)))
            .collect();
        let prefix = if path.is_root() {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let start = (Space::File, prefix.clone());
        for ((space, p), e) in self.st.overlay.range(start..) {
            // Config and process keys may look like paths: they are not
            // tree entries.
            if *space != Space::File {
                break;
            }
            let Some(rest) = p.strip_prefix(&prefix) else {
                break;
            };
            if rest.is_empty() || rest.contains('/') {
                continue;
            }
            match e {
                Some(e) => map.insert(rest.to_string(), e.clone()),
                None => map.remove(rest),
            };
        }
        if self.st.read_only.is_none() {
            self.st.listed.insert(path.as_str().to_string());
        }
        Ok(map.into_iter().collect())
    }

    /// Every entry under `path` (itself first), depth first, sorted.
    pub fn walk(&mut self, path: &VPath) -> Result<Vec<(VPath, Entry)>> {
        let mut out = Vec::new();
        let mut stack = vec![(path.clone(), self.entry(path)?)];
        while let Some((p, e)) = stack.pop() {
            if e.is_dir() {
                let kids = self.read_dir(&p)?;
                for (name, ke) in kids.into_iter().rev() {
                    stack.push((p.join(&name)?, ke));
                }
            }
            out.push((p, e));
        }
        Ok(out)
    }

    /// A streaming reader over a regular file's content.
    pub fn open(&mut self, path: &VPath) -> Result<ContentReader<'_, 'e>> {
        match self.entry(path)? {
            Entry::File { content, .. } => Ok(ContentReader {
                txn: self,
                chunks: content.chunks.clone(),
                next: 0,
                buf: Vec::new(),
                pos: 0,
            }),
            Entry::Dir { .. } => Err(Error::IsADirectory(path.to_string())),
            _ => Err(Error::NotFound(path.to_string())),
        }
    }

    /// A whole file in memory (for small files and tests).
    pub fn read_file(&mut self, path: &VPath) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(path)?
            .read_to_end(&mut out)
            .map_err(Error::Stream)?;
        Ok(out)
    }

    /// The bytes of one chunk.
    pub fn read_chunk(&mut self, chunk: ChunkRef) -> Result<Vec<u8>> {
        ChunkStore {
            backend: &mut *self.engine.backend,
            chunks: &mut self.st.chunks,
            bytes: &mut self.st.chunk_bytes,
        }
        .read(chunk)
    }

    // ----- file tree writes ------------------------------------------------

    fn new_meta(&self, mode: u32) -> Meta {
        Meta {
            mode,
            uid: self.st.actor.uid,
            gid: self.st.actor.gid,
            mtime_ns: now_ns(),
        }
    }

    fn require_parent_dir(&mut self, path: &VPath) -> Result<()> {
        let parent = path.parent().ok_or(Error::RootImmutable)?;
        match self.stat(&parent)? {
            Some(Entry::Dir { .. }) => Ok(()),
            Some(_) => Err(Error::NotADirectory(parent.to_string())),
            None => Err(Error::NotFound(parent.to_string())),
        }
    }

    /// Create a directory; with `parents`, create missing ancestors and accept
    /// an existing directory.
    pub fn mkdir(&mut self, path: &VPath, parents: bool, mode: u32) -> Result<()> {
        self.check_writable()?;
        match self.stat(path)? {
            Some(Entry::Dir { .. }) if parents => return Ok(()),
            Some(_) => return Err(Error::AlreadyExists(path.to_string())),
            None => {}
        }
        if parents {
            if let Some(parent) = path.parent() {
                self.mkdir(&parent, true, mode)?;
            }
        } else {
            self.require_parent_dir(path)?;
        }
        let meta = self.new_meta(mode & 0o7777);
        self.put(Space::File, path.as_str(), Some(Entry::Dir { meta }))
    }

    /// Store a stream as content (chunked, compressed), without holding it
    /// whole in memory.
    pub fn store_content<R: Read>(&mut self, reader: R) -> Result<Content> {
        self.store_content_after(None, reader)
    }

    /// Store `prefix` (the first `limit` bytes of existing content, read
    /// chunk by chunk) followed by `tail`, in bounded memory. Content-defined
    /// chunking keeps unchanged chunks identical, so they are stored once.
    fn store_content_after<R: Read>(
        &mut self,
        prefix: Option<(&Content, u64)>,
        tail: R,
    ) -> Result<Content> {
        self.check_writable()?;
        let store = RefCell::new(ChunkStore {
            backend: &mut *self.engine.backend,
            chunks: &mut self.st.chunks,
            bytes: &mut self.st.chunk_bytes,
        });
        let head = PrefixReader {
            store: &store,
            chunks: prefix.map(|(c, _)| c.chunks.clone()).unwrap_or_default(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            left: prefix.map(|(_, limit)| limit).unwrap_or(0),
        };
        let chunked = chunk_stream(head.chain(tail), |c| store.borrow_mut().add(c))?;
        Ok(Content {
            size: chunked.size,
            digest: chunked.digest,
            chunks: Arc::new(chunked.chunks.into_iter().map(ChunkRef::Pending).collect()),
        })
    }

    /// Write a regular file from a stream: create it (mode 0644), replace
    /// its content, or with `append` add to its end. Mode and owner of an
    /// existing file are kept.
    pub fn write_file<R: Read>(&mut self, path: &VPath, reader: R, append: bool) -> Result<()> {
        self.check_writable()?;
        self.require_parent_dir(path)?;
        let old = self.stat(path)?;
        let meta = match &old {
            Some(Entry::Dir { .. }) => return Err(Error::IsADirectory(path.to_string())),
            Some(Entry::File { meta, .. }) => Meta {
                mtime_ns: now_ns(),
                ..*meta
            },
            Some(_) => return Err(Error::AlreadyExists(path.to_string())),
            None => self.new_meta(0o644),
        };
        let content = match (&old, append) {
            (Some(Entry::File { content: oldc, .. }), true) => {
                self.store_content_after(Some((oldc, oldc.size)), reader)?
            }
            _ => self.store_content(reader)?,
        };
        self.put(
            Space::File,
            path.as_str(),
            Some(Entry::File { meta, content }),
        )
    }

    /// Write a file from bytes in memory.
    pub fn write_bytes(&mut self, path: &VPath, bytes: &[u8]) -> Result<()> {
        self.write_file(path, bytes, false)
    }

    /// Create an empty file, or update an existing entry's mtime.
    pub fn touch(&mut self, path: &VPath) -> Result<()> {
        self.check_writable()?;
        match self.stat(path)? {
            None => {
                self.require_parent_dir(path)?;
                let meta = self.new_meta(0o644);
                self.put(
                    Space::File,
                    path.as_str(),
                    Some(Entry::File {
                        meta,
                        content: Content::empty(),
                    }),
                )
            }
            Some(e) => self.set_mtime_entry(path, e, now_ns()),
        }
    }

    fn set_mtime_entry(&mut self, path: &VPath, e: Entry, mtime_ns: i64) -> Result<()> {
        let updated = match e {
            Entry::File { meta, content } => Entry::File {
                meta: Meta { mtime_ns, ..meta },
                content,
            },
            Entry::Dir { meta } => Entry::Dir {
                meta: Meta { mtime_ns, ..meta },
            },
            Entry::Symlink { meta, target } => Entry::Symlink {
                meta: Meta { mtime_ns, ..meta },
                target,
            },
            Entry::Value(_) => return Err(Error::NotFound(path.to_string())),
        };
        self.put(Space::File, path.as_str(), Some(updated))
    }

    /// Set an entry's modification time.
    pub fn set_mtime(&mut self, path: &VPath, mtime_ns: i64) -> Result<()> {
        self.check_writable()?;
        let e = self.entry(path)?;
        self.set_mtime_entry(path, e, mtime_ns)
    }

    fn with_meta(&mut self, path: &VPath, f: impl Fn(Meta) -> Meta) -> Result<()> {
        self.check_writable()?;
        let updated = match self.entry(path)? {
            Entry::File { meta, content } => Entry::File {
                meta: f(meta),
                content,
            },
            Entry::Dir { meta } => Entry::Dir { meta: f(meta) },
            Entry::Symlink { meta, target } => Entry::Symlink {
                meta: f(meta),
                target,
            },
            Entry::Value(_) => return Err(Error::NotFound(path.to_string())),
        };
        self.put(Space::File, path.as_str(), Some(updated))
    }

    /// Change permission bits.
    pub fn chmod(&mut self, path: &VPath, mode: u32) -> Result<()> {
        let now = now_ns();
        self.with_meta(path, |m| Meta {
            mode: mode & 0o7777,
            mtime_ns: now.max(m.mtime_ns),
            ..m
        })
    }

    /// Change owner and group.
    pub fn chown(&mut self, path: &VPath, uid: u32, gid: u32) -> Result<()> {
        self.with_meta(path, |m| Meta { uid, gid, ..m })
    }

    /// Set a file's length: cut it, or extend it with zero bytes.
    pub fn truncate(&mut self, path: &VPath, len: u64) -> Result<()> {
        self.check_writable()?;
        let (meta, content) = match self.entry(path)? {
            Entry::File { meta, content } => (meta, content),
            Entry::Dir { .. } => return Err(Error::IsADirectory(path.to_string())),
            _ => return Err(Error::NotFound(path.to_string())),
        };
        let zeros = std::io::repeat(0).take(len.saturating_sub(content.size));
        let content = self.store_content_after(Some((&content, len.min(content.size))), zeros)?;
        let meta = Meta {
            mtime_ns: now_ns(),
            ..meta
        };
        self.put(
            Space::File,
            path.as_str(),
            Some(Entry::File { meta, content }),
        )
    }

    /// Create a symbolic link at `path` pointing to `target` (stored as is).
    pub fn symlink(&mut self, target: &str, path: &VPath) -> Result<()> {
        self.check_writable()?;
        if target.is_empty() || target.contains('\0') || target.len() > crate::path::MAX_PATH {
            return Err(Error::InvalidPath {
                path: target.to_string(),
                reason: "not a valid symlink target".to_string(),
            });
        }
        self.require_parent_dir(path)?;
        if self.stat(path)?.is_some() {
            return Err(Error::AlreadyExists(path.to_string()));
        }
        let meta = self.new_meta(0o777);
        self.put(
            Space::File,
            path.as_str(),
            Some(Entry::Symlink {
                meta,
                target: target.to_string(),
            }),
        )
    }

    /// Remove an entry; a non-empty directory only with `recursive`.
    pub fn remove(&mut self, path: &VPath, recursive: bool) -> Result<()> {
        self.check_writable()?;
        if path.is_root() {
            return Err(Error::RootImmutable);
        }
        let e = self.entry(path)?;
        if e.is_dir() {
            let kids = self.read_dir(path)?;
            if !kids.is_empty() && !recursive {
                return Err(Error::DirectoryNotEmpty(path.to_string()));
            }
            for (p, _) in self.walk(path)? {
                self.put(Space::File, p.as_str(), None)?;
            }
            Ok(())
        } else {
            self.put(Space::File, path.as_str(), None)
        }
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, path: &VPath) -> Result<()> {
        match self.entry(path)? {
            Entry::Dir { .. } => self.remove(path, false),
            _ => Err(Error::NotADirectory(path.to_string())),
        }
    }

    /// Rename as POSIX rename(2) does: a file replaces a file, a directory
    /// replaces an empty directory; a directory moves with everything in it.
    pub fn rename(&mut self, from: &VPath, to: &VPath) -> Result<()> {
        self.check_writable()?;
        if from.is_root() || to.is_root() {
            return Err(Error::RootImmutable);
        }
        let src = self.entry(from)?;
        if from == to {
            return Ok(());
        }
        if src.is_dir() && to.starts_with(from) {
            return Err(Error::MoveIntoSelf {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        self.require_parent_dir(to)?;
        match (self.stat(to)?, src.is_dir()) {
            (None, _) => {}
            (Some(Entry::Dir { .. }), true) => {
                if !self.read_dir(to)?.is_empty() {
                    return Err(Error::DirectoryNotEmpty(to.to_string()));
                }
            }
            (Some(Entry::Dir { .. }), false) => return Err(Error::IsADirectory(to.to_string())),
            (Some(_), true) => return Err(Error::NotADirectory(to.to_string())),
            (Some(_), false) => {}
        }
        let moved = if src.is_dir() {
            self.walk(from)?
        } else {
            vec![(from.clone(), src)]
        };
        for (p, e) in &moved {
            self.put(Space::File, p.as_str(), None)?;
            let dest = p.rebase(from, to)?;
            self.put(Space::File, dest.as_str(), Some(e.clone()))?;
        }
        Ok(())
    }

    /// Copy an entry (a directory only with `recursive`). Content is shared,
    /// not duplicated. The destination must not be a directory.
    pub fn copy(&mut self, from: &VPath, to: &VPath, recursive: bool) -> Result<()> {
        self.check_writable()?;
        let src = self.entry(from)?;
        if src.is_dir() && !recursive {
            return Err(Error::IsADirectory(from.to_string()));
        }
        if src.is_dir() && to.starts_with(from) {
            return Err(Error::MoveIntoSelf {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        self.require_parent_dir(to)?;
        match self.stat(to)? {
            Some(Entry::Dir { .. }) => return Err(Error::IsADirectory(to.to_string())),
            Some(_) if src.is_dir() => return Err(Error::AlreadyExists(to.to_string())),
            _ => {}
        }
        let now = now_ns();
        for (p, e) in self.walk(from)? {
            let dest = p.rebase(from, to)?;
            let e = match e {
                Entry::File { meta, content } => Entry::File {
                    meta: Meta {
                        mtime_ns: now,
                        ..meta
                    },
                    content,
                },
                other => other,
            };
            self.put(Space::File, dest.as_str(), Some(e))?;
        }
        Ok(())
    }

    // ----- config ----------------------------------------------------------

    /// A config value.
    pub fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        check_config_key(key)?;
        Ok(match self.get(Space::Config, key)? {
            Some(Entry::Value(v)) => Some(v),
            _ => None,
        })
    }

    /// Set a config value.
    pub fn config_set(&mut self, key: &str, value: &str) -> Result<()> {
        check_config_key(key)?;
        if value.contains('\0') {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "value contains a NUL byte".to_string(),
            });
        }
        self.put(Space::Config, key, Some(Entry::Value(value.to_string())))
    }

    /// Remove a config key (NotFound when it is not set).
    pub fn config_unset(&mut self, key: &str) -> Result<()> {
        self.check_writable()?;
        if self.config_get(key)?.is_none() {
            return Err(Error::NotFound(format!("config key {key}")));
        }
        self.put(Space::Config, key, None)
    }

    /// Every config key and value, sorted by key.
    pub fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self
            .list_space(Space::Config)?
            .into_iter()
            .filter_map(|(k, e)| match e {
                Entry::Value(v) => Some((k, v)),
                _ => None,
            })
            .collect())
    }

    // ----- processes -------------------------------------------------------

    /// A process record by id.
    pub fn process_get(&mut self, id: u64) -> Result<Option<ProcessRecord>> {
        match self.get(Space::Process, &id.to_string())? {
            Some(Entry::Value(json)) => Ok(Some(serde_json::from_str(&json).map_err(|e| {
                Error::Corrupt {
                    location: String::new(),
                    reason: format!("process record {id}: {e}"),
                }
            })?)),
            _ => Ok(None),
        }
    }

    /// Store a new version of a process record.
    pub fn process_put(&mut self, rec: &ProcessRecord) -> Result<()> {
        let json = serde_json::to_string(rec).map_err(|e| Error::Database(e.to_string()))?;
        self.put(
            Space::Process,
            &rec.id.to_string(),
            Some(Entry::Value(json)),
        )
    }

    /// Every process record, by id.
    pub fn process_list(&mut self) -> Result<Vec<ProcessRecord>> {
        let mut out = Vec::new();
        for (_, e) in self.list_space(Space::Process)? {
            if let Entry::Value(json) = e {
                if let Ok(r) = serde_json::from_str::<ProcessRecord>(&json) {
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// An id no process record uses yet on this branch (ids are never
    /// reused: the largest key ever written plus one).
    pub fn next_process_id(&mut self) -> Result<u64> {
        let max_committed = self
            .engine
            .backend
            .list_space(&self.st.lineage, Space::Process)?
            .iter()
            .filter_map(|(k, _)| k.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let max_pending = self
            .st
            .overlay
            .keys()
            .filter(|(s, _)| *s == Space::Process)
            .filter_map(|(_, k)| k.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(max_committed.max(max_pending) + 1)
    }

    // ----- logs ------------------------------------------------------------

    /// Append a log row (stored when the transaction commits).
    pub fn log(&mut self, entry: LogEntry) -> Result<()> {
        self.check_writable()?;
        self.st.logs.push(entry);
        Ok(())
    }

    /// Log rows visible to this transaction, oldest first.
    pub fn logs(&mut self, filter: &LogFilter) -> Result<Vec<StoredLog>> {
        self.engine.backend.logs(&self.st.lineage, filter)
    }

    // ----- commit ----------------------------------------------------------

    /// Discard every pending change.
    pub fn rollback(self) {}

    /// Commit with a command text and optional message. Returns None when
    /// nothing changed (no transaction is recorded then).
    pub fn commit(self, command: &str, message: Option<String>) -> Result<Option<TxInfo>> {
        let author = self.st.actor.author.clone();
        self.commit_with(CommitMeta {
            author,
            command: command.to_string(),
            message,
            merge: None,
        })
    }

    /// Commit with full metadata (merges set `meta.merge`).
    pub fn commit_with(mut self, meta: CommitMeta) -> Result<Option<TxInfo>> {
        self.check_writable()?;
        let overlay = std::mem::take(&mut self.st.overlay);
        let mut writes = Vec::with_capacity(overlay.len());
        for ((space, path), entry) in overlay {
            if entry.is_none() {
                // Removing what never existed at the snapshot is no change.
                // The snapshot read cache usually knows already.
                let existed = match self.st.cache.get(&(space, path.clone())) {
                    Some(e) => e.is_some(),
                    None => self
                        .engine
                        .backend
                        .read(&self.st.lineage, space, &path)?
                        .and_then(|v| v.entry)
                        .is_some(),
                };
                if !existed {
                    continue;
                }
            }
            writes.push(Write { space, path, entry });
        }
        if writes.is_empty() && self.st.logs.is_empty() && meta.merge.is_none() {
            return Ok(None);
        }
        let req = CommitRequest {
            branch: self.st.branch.id,
            snapshot: self.st.snapshot,
            reads: std::mem::take(&mut self.st.reads).into_iter().collect(),
            listed_dirs: std::mem::take(&mut self.st.listed).into_iter().collect(),
            writes,
            chunks: self.st.chunks.drain().map(|(_, c)| c).collect(),
            logs: std::mem::take(&mut self.st.logs),
            meta,
            host: self.engine.host.clone(),
        };
        let done = self.engine.backend.commit(req);
        done.map(Some)
            .map_err(|e| e.at(&self.engine.backend.location()))
    }
}

/// Streams a file's content chunk by chunk.
pub struct ContentReader<'t, 'e> {
    txn: &'t mut Txn<'e>,
    chunks: Arc<Vec<ChunkRef>>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ContentReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            let Some(c) = self.chunks.get(self.next).copied() else {
                return Ok(0);
            };
            self.next += 1;
            self.buf = self
                .txn
                .read_chunk(c)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The open transaction's chunks: pending ones in memory (flushed to the
/// database ahead of commit when they grow large), stored ones in the backend.
struct ChunkStore<'a> {
    backend: &'a mut dyn Backend,
    chunks: &'a mut HashMap<Hash, EncodedChunk>,
    bytes: &'a mut usize,
}

impl ChunkStore<'_> {
    fn read(&mut self, chunk: ChunkRef) -> Result<Vec<u8>> {
        if let ChunkRef::Pending(h) = chunk {
            if let Some(c) = self.chunks.get(&h) {
                return crate::content::decode_chunk(&c.hash, c.size, c.codec, &c.data);
            }
        }
        self.backend.read_chunk(chunk)
    }

    fn add(&mut self, c: EncodedChunk) -> Result<()> {
        if !self.chunks.contains_key(&c.hash) {
            *self.bytes += c.data.len();
            self.chunks.insert(c.hash, c);
        }
        if *self.bytes > CHUNK_FLUSH_BYTES {
            let batch: Vec<EncodedChunk> = self.chunks.drain().map(|(_, v)| v).collect();
            let stored = self.backend.store_chunks(&batch);
            stored.map_err(|e| e.at(&self.backend.location()))?;
            *self.bytes = 0;
        }
        Ok(())
    }
}

/// Reads the first `left` bytes of existing content, one chunk at a time.
struct PrefixReader<'s, 'a> {
    store: &'s RefCell<ChunkStore<'a>>,
    chunks: Arc<Vec<ChunkRef>>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Read for PrefixReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        while self.pos >= self.buf.len() {
            let Some(c) = self.chunks.get(self.next).copied() else {
                return Ok(0);
            };
            self.next += 1;
            self.buf = self
                .store
                .borrow_mut()
                .read(c)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out
            .len()
            .min(self.buf.len() - self.pos)
            .min(self.left.min(usize::MAX as u64) as usize);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}
