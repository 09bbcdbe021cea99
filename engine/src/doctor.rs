//! `doctor`: is a database damaged, and what can still be read from it?
//!
//! Three checks, each run to the end even when an earlier one failed: the
//! storage layer's own check (`Backend::check_storage`: SQLite's
//! `integrity_check`), the hash chain (`verify`), and a read of everything
//! reachable: every transaction's row, writes and log rows, and the whole
//! state at the head of every live branch (every directory listed, every
//! file read back through its chunks, every config and process row). Each
//! failure is kept with what it concerns, so the report can say which
//! transactions, branches and paths are readable and which are not.

use crate::backend::LogFilter;
use crate::chain::tx_logs;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::{Entry, Lineage, Space, TxId};

/// At most this many failures are kept per kind (all are counted).
const KEEP: usize = 20;

/// Failures of one kind: how many, and the first few described.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// How many there were.
    pub count: u64,
    /// The first `KEEP`, each naming what failed and why.
    pub first: Vec<String>,
}

impl Failures {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.first.len() < KEEP {
            self.first.push(what);
        }
    }
}

/// What doctor found on one live branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchHealth {
    /// Its name.
    pub name: String,
    /// The transaction its head is at, when that could be read.
    pub tip: Option<TxId>,
    /// Entries (files, directories, links, rows) read back intact.
    pub readable: u64,
    /// Paths or rows that could not be read.
    pub failures: Failures,
}

/// Everything doctor found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoctorReport {
    /// The database's location.
    pub location: String,
    /// Problems the storage layer reports (pages, indexes).
    pub storage: Vec<String>,
    /// The hash chain's first break, or why it could not be checked.
    pub chain: Option<String>,
    /// The newest transaction id, when it could be read.
    pub head: Option<TxId>,
    /// Transactions whose row, writes and log rows all read back.
    pub readable_transactions: u64,
    /// Transactions that could not be read.
    pub transaction_failures: Failures,
    /// The branches' health; None when the branch list itself is unreadable.
    pub branches: Option<Vec<BranchHealth>>,
    /// Why the branch list could not be read.
    pub branch_list_error: Option<String>,
}

impl DoctorReport {
    /// True when nothing was found wrong.
    pub fn healthy(&self) -> bool {
        self.storage.is_empty()
            && self.chain.is_none()
            && self.head.is_some()
            && self.transaction_failures.count == 0
            && self.branch_list_error.is_none()
            && self
                .branches
                .as_ref()
                .is_some_and(|bs| bs.iter().all(|b| b.tip.is_some() && b.failures.count == 0))
    }
}

impl Engine {
    /// Check the storage layer (`Backend::check_storage`), without the rest.
    pub fn check_storage(&mut self) -> Result<Vec<String>> {
        self.backend.check_storage()
    }

    /// Run every check (storage, hash chain, a read of every transaction
    /// and of every branch's head) and report what is damaged and what is
    /// still readable. Damage is reported, never returned as an error.
    pub fn doctor(&mut self) -> DoctorReport {
        let location = self.location();
        let storage = match self.check_storage() {
            Ok(p) => p,
            Err(e) => vec![format!("the storage check failed: {e}")],
        };
        let chain = match self.verify(1, &mut |_, _| {}) {
            Ok(r) => r.broken.map(|b| b.reason),
            Err(e) => Some(format!("the hash chain could not be checked: {e}")),
        };
        let head = self.head().ok();
        let mut report = DoctorReport {
            location,
            storage,
            chain,
            head,
            readable_transactions: 0,
            transaction_failures: Failures::default(),
            branches: None,
            branch_list_error: None,
        };
        if let Some(head) = head {
            for id in 1..=head {
                match self.read_transaction(id) {
                    Ok(()) => report.readable_transactions += 1,
                    Err(e) => report.transaction_failures.add(format!("T{id}: {e}")),
                }
            }
        }
        match self.branches() {
            Ok(list) => {
                let mut out = Vec::with_capacity(list.len());
                for b in list {
                    out.push(self.branch_health(&b));
                }
                report.branches = Some(out);
            }
            Err(e) => report.branch_list_error = Some(e.to_string()),
        }
        report
    }

    /// Read one transaction's row, the versions and the log rows it wrote.
    fn read_transaction(&mut self, id: TxId) -> Result<()> {
        let b = self.backend();
        let info = b.tx_info(id)?.ok_or(Error::NoSuchTransaction(id))?;
        b.tx_writes(id)?;
        tx_logs(&mut *b, &info)?;
        Ok(())
    }

    /// Read the whole state at a branch's head.
    fn branch_health(&mut self, b: &crate::types::BranchInfo) -> BranchHealth {
        let mut h = BranchHealth {
            name: b.name.clone(),
            tip: None,
            readable: 0,
            failures: Failures::default(),
        };
        let lineage = match self.branch_tip(b).and_then(|t| {
            h.tip = Some(t);
            self.lineage(b, t)
        }) {
            Ok(l) => l,
            Err(e) => {
                h.tip = None;
                h.failures.add(format!("its head: {e}"));
                return h;
            }
        };
        self.walk_tree(&lineage, "/", &mut h, 0);
        for space in [Space::Config, Space::Process, Space::Metric, Space::Boot] {
            match self.backend.list_space(&lineage, space) {
                Ok(rows) => h.readable += rows.len() as u64,
                Err(e) => h.failures.add(format!("{} rows: {e}", space.as_str())),
            }
        }
        if let Err(e) = self.backend.logs(&lineage, &LogFilter::default()) {
            h.failures.add(format!("log rows: {e}"));
        }
        h
    }

    /// List `dir` and everything below it, reading every file's content
    /// back and checking it against its digest.
    fn walk_tree(&mut self, lineage: &Lineage, dir: &str, h: &mut BranchHealth, depth: usize) {
        if depth > 4096 {
            h.failures
                .add(format!("{dir}: directories nested too deep (a cycle?)"));
            return;
        }
        let children = match self.backend.children(lineage, dir) {
            Ok(c) => c,
            Err(e) => {
                h.failures.add(format!("{dir} (listing): {e}"));
                return;
            }
        };
        h.readable += 1;
        for (name, v) in children {
            let path = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            match v.entry {
                Some(Entry::Dir { .. }) => self.walk_tree(lineage, &path, h, depth + 1),
                Some(Entry::File { content, .. }) => {
                    let mut hasher = blake3::Hasher::new();
                    let mut size = 0u64;
                    let mut failed = None;
                    for c in content.chunks.iter() {
                        match self.backend.read_chunk(*c) {
                            Ok(bytes) => {
                                size += bytes.len() as u64;
                                hasher.update(&bytes);
                            }
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    if failed.is_none()
                        && (size != content.size || hasher.finalize().as_bytes() != &content.digest)
                    {
                        failed = Some("content does not match its digest".to_string());
                    }
                    match failed {
                        Some(why) => h.failures.add(format!("{path}: {why}")),
                        None => h.readable += 1,
                    }
                }
                _ => h.readable += 1,
            }
        }
    }
}
