//! The tamper-evident hash chain: each transaction's hash covers its
//! predecessor's hash, its metadata and every version and log row it wrote.
//! Backends compute it at commit with this one function, and `verify`
//! recomputes it from stored rows with the same function.

use crate::backend::{Backend, LogFilter, Write};
use crate::error::Result;
use crate::types::{Entry, Hash, Lineage, LineageStep, LogEntry, Space, StoredLog, TxInfo};

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn entry_fields(h: &mut blake3::Hasher, entry: Option<&Entry>) {
    match entry {
        None => {
            h.update(&[0]);
        }
        Some(e) => {
            let kind: u8 = match e {
                Entry::File { .. } => 1,
                Entry::Dir { .. } => 2,
                Entry::Symlink { .. } => 3,
                Entry::Value(_) => 4,
            };
            h.update(&[kind]);
            if let Some(m) = e.meta() {
                h.update(&m.mode.to_le_bytes());
                h.update(&m.uid.to_le_bytes());
                h.update(&m.gid.to_le_bytes());
                h.update(&m.mtime_ns.to_le_bytes());
            }
            h.update(&e.size().to_le_bytes());
            match e {
                Entry::File { content, .. } => field(h, &content.digest),
                Entry::Symlink { target, .. } => field(h, target.as_bytes()),
                Entry::Value(v) => field(h, v.as_bytes()),
                Entry::Dir { .. } => {}
            }
        }
    }
}

/// One written version as the chain sees it.
pub struct ChainWrite<'a> {
    /// Kind of state.
    pub space: Space,
    /// Path or key.
    pub path: &'a str,
    /// What was written (None: removed).
    pub entry: Option<&'a Entry>,
}

/// Hash of one transaction given its predecessor's hash. `info.hash` is
/// ignored. Writes are hashed in (space, path) order whatever order they come
/// in; log rows in the order given (their insertion order).
pub fn tx_hash(prev: &Hash, info: &TxInfo, writes: &[ChainWrite<'_>], logs: &[LogEntry]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"dbos-tx-v1");
    h.update(prev);
    h.update(&info.id.to_le_bytes());
    h.update(&info.branch_id.to_le_bytes());
    h.update(&info.time_us.to_le_bytes());
    field(&mut h, info.author.as_bytes());
    field(&mut h, info.host.as_bytes());
    field(&mut h, info.command.as_bytes());
    match &info.message {
        Some(m) => {
            h.update(&[1]);
            field(&mut h, m.as_bytes());
        }
        None => {
            h.update(&[0]);
        }
    }
    match info.merge {
        Some((b, t)) => {
            h.update(&[1]);
            h.update(&b.to_le_bytes());
            h.update(&t.to_le_bytes());
        }
        None => {
            h.update(&[0]);
        }
    }
    let mut order: Vec<&ChainWrite<'_>> = writes.iter().collect();
    order.sort_by(|a, b| (a.space, a.path).cmp(&(b.space, b.path)));
    h.update(&(order.len() as u64).to_le_bytes());
    for w in order {
        field(&mut h, w.space.as_str().as_bytes());
        field(&mut h, w.path.as_bytes());
        entry_fields(&mut h, w.entry);
    }
    h.update(&(logs.len() as u64).to_le_bytes());
    for l in logs {
        h.update(&l.time_us.to_le_bytes());
        field(&mut h, l.source.as_bytes());
        h.update(&[l.severity]);
        field(&mut h, l.message.as_bytes());
        h.update(&l.process_id.map(|p| p as i64).unwrap_or(-1).to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// The log rows one transaction stored, in insertion order.
pub fn tx_logs(b: &mut dyn Backend, info: &TxInfo) -> Result<Vec<StoredLog>> {
    let lineage = Lineage {
        steps: vec![LineageStep {
            branch: info.branch_id,
            upto: info.id,
        }],
    };
    b.logs(
        &lineage,
        &LogFilter {
            after_tx: Some(info.id.saturating_sub(1)),
            ..LogFilter::default()
        },
    )
}

/// The chain hash of a transaction from its writes and log rows (what a
/// commit computes).
pub fn writes_hash(prev: &Hash, info: &TxInfo, writes: &[Write], logs: &[LogEntry]) -> Hash {
    let chain: Vec<ChainWrite<'_>> = writes
        .iter()
        .map(|w| ChainWrite {
            space: w.space,
            path: &w.path,
            entry: w.entry.as_ref(),
        })
        .collect();
    tx_hash(prev, info, &chain, logs)
}

/// The chain hash of a transaction recomputed from its stored rows.
pub fn chain_hash(prev: &Hash, info: &TxInfo, writes: &[Write], logs: &[StoredLog]) -> Hash {
    let entries: Vec<LogEntry> = logs.iter().map(|l| l.entry.clone()).collect();
    writes_hash(prev, info, writes, &entries)
}
