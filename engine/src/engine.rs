//! The engine: opens a backend, resolves branches and moments into lineages,
//! and hands out transactions and read-only views.

use crate::backend::postgres::PostgresBackend;
use crate::backend::sqlite::SqliteBackend;
use crate::backend::{Backend, CommitMeta, IMPORT_UNFINISHED_US};
use crate::error::{Error, Result};
use crate::path::VPath;
use crate::txn::{Actor, TxState, Txn};
use crate::types::{BranchInfo, Change, Entry, Lineage, LineageStep, Meta, Space, TxId, TxInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many times an autocommit is retried after a conflict or a busy lock.
const AUTOCOMMIT_RETRIES: u32 = 20;

/// The temporal storage engine over one database.
pub struct Engine {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) host: String,
    /// Ancestry of branches by id: (parent, fork point). Never changes once
    /// a branch exists, so it is safe to remember.
    ancestry: HashMap<i64, (Option<i64>, Option<TxId>)>,
    /// The audit views' SQL dialect, asked of the backend once.
    pub(crate) dialect: Option<crate::audit::Dialect>,
}

/// The database used when none is named: `$DBOS_DB`, else
/// `$XDG_DATA_HOME/dbos/state.db`, else `~/.local/share/dbos/state.db`.
pub fn default_location() -> Result<String> {
    if let Ok(db) = std::env::var("DBOS_DB") {
        if !db.is_empty() {
            return Ok(db);
        }
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/share"),
            None => {
                return Err(Error::Database(
                    "no database given: set --db, DBOS_DB, XDG_DATA_HOME or HOME".to_string(),
                ))
            }
        },
    };
    Ok(data.join("dbos").join("state.db").display().to_string())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// True when `location` names a PostgreSQL server rather than a file.
pub fn is_postgres(location: &str) -> bool {
    let l = location.trim_start();
    l.starts_with("postgres://")
        || l.starts_with("postgresql://")
        || (!l.starts_with('/')
            && !l.starts_with('.')
            && l.split_whitespace().next().is_some_and(|w| {
                ["host=", "hostaddr=", "dbname=", "user=", "port="]
                    .iter()
                    .any(|k| w.starts_with(k))
            }))
}

/// Check a branch name: 1 to 100 characters of letters, digits and `._-/`,
/// not starting with `-` or `/`, without `..` or `@`, and not a REF keyword.
pub fn check_branch_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidBranch {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > 100 {
        return Err(bad("must be 1 to 100 characters"));
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return Err(bad("must not start with '-' or '/' or end with '/'"));
    }
    if name.contains("..") || name.contains("//") {
        return Err(bad("must not contain '..' or '//'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/".contains(*c)))
    {
        return Err(bad(&format!("character {c:?} not allowed")));
    }
    if name == "HEAD"
        || name == "now"
        || (name.starts_with('T') && name[1..].parse::<u64>().is_ok())
    {
        return Err(bad("reserved: it reads as a moment"));
    }
    Ok(())
}

impl Engine {
    /// Open the database at `location` (a file path), creating it on first use.
    /// `postgres://...`, `postgresql://...` and key-value strings
    /// (`host=... dbname=...`) select the PostgreSQL backend; anything else
    /// is a SQLite file path.
    /// A database holding only an unfinished copy (`dbos db copy` killed
    /// before it verified) is refused, saying so.
    pub fn open(location: &str) -> Result<Engine> {
        let mut engine = if is_postgres(location) {
            Self::with_backend(Box::new(PostgresBackend::open(location)?))?
        } else {
            Self::with_backend(Box::new(SqliteBackend::open(Path::new(location))?))?
        };
        engine.refuse_unfinished_copy()?;
        Ok(engine)
    }

    /// Err when every branch is hidden by an import that never finished.
    fn refuse_unfinished_copy(&mut self) -> Result<()> {
        let branches = self.backend.export_branches()?;
        let unfinished = !branches.is_empty()
            && branches
                .iter()
                .all(|b| b.deleted_us == Some(IMPORT_UNFINISHED_US));
        if unfinished {
            return Err(Error::Database(format!(
                "{}: it holds an unfinished copy (an interrupted `dbos db copy`); \
                 remove it (delete the file, or DROP DATABASE) and copy again",
                self.backend.location()
            )));
        }
        Ok(())
    }

    /// Open the default database (see `default_location`).
    pub fn open_default() -> Result<Engine> {
        Self::open(&default_location()?)
    }

    /// Wrap a backend, bootstrapping a new database (branch `main`, T1
    /// creating the root directory).
    pub fn with_backend(mut backend: Box<dyn Backend>) -> Result<Engine> {
        let host = host_name();
        if backend.head()? == 0 {
            let root = Entry::Dir {
                meta: Meta {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
                },
            };
            let meta = CommitMeta {
                author: "dbos".to_string(),
                command: "init".to_string(),
                message: Some("new database".to_string()),
                merge: None,
            };
            backend
                .bootstrap(&meta, &host, &root)
                .map_err(|e| e.at(&backend.location()))?;
        }
        Ok(Engine {
            backend,
            host,
            ancestry: HashMap::new(),
            dialect: None,
        })
    }

    /// Where the database is.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The host name recorded with transactions.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Direct access to the backend (for tools such as `verify`).
    pub fn backend(&mut self) -> &mut dyn Backend {
        &mut *self.backend
    }

    /// The newest committed transaction id.
    pub fn head(&mut self) -> Result<TxId> {
        self.backend.head()
    }

    // ----- branches ----------------------------------------------------

    /// A live branch by name.
    pub fn branch(&mut self, name: &str) -> Result<BranchInfo> {
        self.backend
            .branch_by_name(name)?
            .ok_or_else(|| Error::NoSuchBranch(name.to_string()))
    }

    /// Every live branch.
    pub fn branches(&mut self) -> Result<Vec<BranchInfo>> {
        self.backend.branches()
    }

    /// Create a branch of `from` as it was at transaction `at`. Copies no rows.
    pub fn create_branch(&mut self, name: &str, from: &str, at: TxId) -> Result<BranchInfo> {
        check_branch_name(name)?;
        let parent = self.branch(from)?;
        if at > self.backend.head()? {
            return Err(Error::NoSuchTransaction(at));
        }
        let made = self.backend.create_branch(name, parent.id, at);
        made.map_err(|e| e.at(&self.location()))
    }

    /// The newest transaction visible on a branch (its own or inherited).
    pub fn branch_tip(&mut self, branch: &BranchInfo) -> Result<TxId> {
        let own = self.backend.branch_head(branch.id)?;
        Ok(match (own, branch.fork_tx) {
            (Some(t), _) => t,
            (None, Some(f)) => f,
            (None, None) => 0,
        })
    }

    /// What `branch` sees at transaction `upto`: its own versions up to
    /// `upto`, then each ancestor's up to the fork point.
    pub fn lineage(&mut self, branch: &BranchInfo, upto: TxId) -> Result<Lineage> {
        let mut steps = vec![LineageStep {
            branch: branch.id,
            upto,
        }];
        let mut link = (branch.parent, branch.fork_tx);
        let mut seen = BTreeSet::new();
        while let (Some(parent), Some(fork)) = link {
            if !seen.insert(parent) {
                return Err(Error::Corrupt {
                    location: self.location(),
                    reason: "branch ancestry has a cycle".to_string(),
                });
            }
            let limit = steps.last().map(|s| s.upto).unwrap_or(upto).min(fork);
            steps.push(LineageStep {
                branch: parent,
                upto: limit,
            });
            link = match self.ancestry.get(&parent) {
                Some(l) => *l,
                None => {
                    let p = self
                        .backend
                        .branch_by_id(parent)?
                        .ok_or_else(|| Error::Corrupt {
                            location: String::new(),
                            reason: format!("branch {parent} is missing"),
                        })?;
                    self.ancestry.insert(parent, (p.parent, p.fork_tx));
                    (p.parent, p.fork_tx)
                }
            };
        }
        Ok(Lineage { steps })
    }

    // ----- transactions and views ---------------------------------------

    /// Begin a transaction on `branch`, reading the newest committed state.
    pub fn begin(&mut self, branch: &str, actor: &Actor) -> Result<Txn<'_>> {
        let (b, snapshot) = self.backend.branch_and_head(branch)?;
        let b = b.ok_or_else(|| Error::NoSuchBranch(branch.to_string()))?;
        let lineage = self.lineage(&b, snapshot)?;
        Ok(Txn {
            engine: self,
            st: TxState::fresh(b, snapshot, lineage, None, actor.clone()),
        })
    }

    /// A read-only view of `branch` as it was right after transaction `at`.
    pub fn view_at(&mut self, branch: &str, at: TxId) -> Result<Txn<'_>> {
        let b = self.branch(branch)?;
        if at > self.backend.head()? {
            return Err(Error::NoSuchTransaction(at));
        }
        let lineage = self.lineage(&b, at)?;
        let label = format!("{}@T{at}", b.name);
        Ok(Txn {
            engine: self,
            st: TxState::fresh(b, at, lineage, Some(label), Actor::default()),
        })
    }

    /// A read-only view of an arbitrary lineage (see `lineage`).
    pub fn view_lineage(&mut self, lineage: Lineage, label: &str) -> Result<Txn<'_>> {
        let first = lineage.steps.first().map(|s| s.branch).unwrap_or(0);
        let branch = self
            .backend
            .branch_by_id(first)?
            .ok_or_else(|| Error::NoSuchBranch(label.to_string()))?;
        let snapshot = lineage.upto();
        Ok(Txn {
            engine: self,
            st: TxState::fresh(
                branch,
                snapshot,
                lineage,
                Some(label.to_string()),
                Actor::default(),
            ),
        })
    }

    /// Continue a transaction kept open with `Txn::into_state`.
    pub fn resume(&mut self, st: TxState) -> Txn<'_> {
        Txn { engine: self, st }
    }

    /// Run `work` in its own transaction and commit it. On a conflict with a
    /// concurrent commit (or a busy lock) the work is run again on a fresh
    /// snapshot, a bounded number of times with growing back-off.
    pub fn autocommit<T>(
        &mut self,
        branch: &str,
        actor: &Actor,
        command: &str,
        mut work: impl FnMut(&mut Txn<'_>) -> Result<T>,
    ) -> Result<(T, Option<TxInfo>)> {
        let mut attempt = 0;
        loop {
            let mut tx = self.begin(branch, actor)?;
            let out = work(&mut tx)?;
            let started = std::time::Instant::now();
            match tx.commit(command, None) {
                Ok(info) => return Ok((out, info)),
                // A lock held past the whole timeout is reported, not waited
                // out again; a conflict or a brief busy is retried.
                Err(e @ Error::Busy { .. })
                    if started.elapsed() >= crate::error::lock_timeout() =>
                {
                    return Err(e)
                }
                Err(e) if e.is_retryable() && attempt < AUTOCOMMIT_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(
                        (1u64 << attempt.min(6)) + u64::from(std::process::id() % 7),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ----- history -------------------------------------------------------

    /// A transaction's metadata.
    pub fn tx_info(&mut self, id: TxId) -> Result<TxInfo> {
        self.backend
            .tx_info(id)?
            .ok_or(Error::NoSuchTransaction(id))
    }

    /// The newest transaction committed at or before a time (microseconds
    /// since the epoch).
    pub fn tx_at_time(&mut self, time_us: i64) -> Result<TxId> {
        self.backend.tx_at_time(time_us)?.ok_or_else(|| {
            Error::NoTransactionAtTime(
                chrono::DateTime::from_timestamp_micros(time_us)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| time_us.to_string()),
            )
        })
    }

    /// Transactions visible on `branch` at `at`, newest first.
    pub fn log(&mut self, branch: &str, at: Option<TxId>, limit: usize) -> Result<Vec<TxInfo>> {
        let b = self.branch(branch)?;
        let upto = match at {
            Some(t) => t,
            None => self.backend.head()?,
        };
        let lineage = self.lineage(&b, upto)?;
        self.backend.transactions(&lineage, None, limit)
    }

    /// Every version of a key visible on `branch` at `at`, newest first,
    /// with the transaction that wrote it (entry None = removed).
    pub fn history(
        &mut self,
        branch: &str,
        at: Option<TxId>,
        space: Space,
        path: &str,
    ) -> Result<Vec<(TxInfo, Option<Entry>)>> {
        let b = self.branch(branch)?;
        let upto = match at {
            Some(t) => t,
            None => self.backend.head()?,
        };
        let lineage = self.lineage(&b, upto)?;
        let versions = self.backend.history(&lineage, space, path)?;
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let info = self.tx_info(v.tx)?;
            out.push((info, v.entry));
        }
        Ok(out)
    }

    /// History of a file path (convenience for `history(..., Space::File, ...)`).
    pub fn file_history(
        &mut self,
        branch: &str,
        path: &VPath,
    ) -> Result<Vec<(TxInfo, Option<Entry>)>> {
        self.history(branch, None, Space::File, path.as_str())
    }

    /// The lineage of a resolved moment.
    pub fn moment_lineage(&mut self, m: &crate::refs::Moment) -> Result<Lineage> {
        let b = self.branch(&m.branch)?;
        self.lineage(&b, m.tx)
    }

    /// Keys that may differ between two lineages: those written in the
    /// transaction ranges one lineage sees and the other does not. The cost
    /// is proportional to those ranges' changes, not to the state's size.
    pub fn candidate_keys(
        &mut self,
        a: &Lineage,
        b: &Lineage,
    ) -> Result<BTreeSet<(Space, String)>> {
        let mut ranges: BTreeMap<i64, (TxId, TxId)> = BTreeMap::new();
        for s in &a.steps {
            ranges.entry(s.branch).or_insert((0, 0)).0 = s.upto;
        }
        for s in &b.steps {
            ranges.entry(s.branch).or_insert((0, 0)).1 = s.upto;
        }
        let mut keys = BTreeSet::new();
        for (branch, (ua, ub)) in ranges {
            if ua != ub {
                keys.extend(self.backend.keys_written(branch, ua.min(ub), ua.max(ub))?);
            }
        }
        Ok(keys)
    }

    /// Every key whose entry differs between moments `a` and `b`, sorted by
    /// space and path, with `before` read at `a` and `after` at `b`.
    pub fn diff(
        &mut self,
        a: &crate::refs::Moment,
        b: &crate::refs::Moment,
    ) -> Result<Vec<Change>> {
        let la = self.moment_lineage(a)?;
        let lb = self.moment_lineage(b)?;
        self.diff_lineages(&la, &lb)
    }

    /// `diff` between two lineages (for merge bases, which may lie on
    /// deleted branches).
    pub fn diff_lineages(&mut self, la: &Lineage, lb: &Lineage) -> Result<Vec<Change>> {
        let (la, lb) = (la.clone(), lb.clone());
        let mut out = Vec::new();
        for (space, path) in self.candidate_keys(&la, &lb)? {
            let before = self.backend.read(&la, space, &path)?.and_then(|v| v.entry);
            let after = self.backend.read(&lb, space, &path)?.and_then(|v| v.entry);
            if before != after {
                out.push(Change {
                    space,
                    path,
                    before,
                    after,
                });
            }
        }
        Ok(out)
    }

    /// What one transaction changed: each key with its state before and after.
    pub fn changes(&mut self, id: TxId) -> Result<Vec<Change>> {
        let info = self.tx_info(id)?;
        let b = self
            .backend
            .branch_by_id(info.branch_id)?
            .ok_or_else(|| Error::NoSuchBranch(format!("#{}", info.branch_id)))?;
        let before = self.lineage(&b, id.saturating_sub(1))?;
        let writes = self.backend.tx_writes(id)?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let prev = self
                .backend
                .read(&before, w.space, &w.path)?
                .and_then(|v| v.entry);
            out.push(Change {
                space: w.space,
                path: w.path,
                before: prev,
                after: w.entry,
            });
        }
        Ok(out)
    }
}
