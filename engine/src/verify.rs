//! `verify`: recompute the hash chain from the stored rows and name the
//! first transaction whose rows no longer match what was committed.
//!
//! Each transaction's hash covers its metadata, every version and log row it
//! wrote and its predecessor's hash (`chain.rs`). Editing, deleting or
//! inserting any of those rows by hand changes the recomputed hash of the
//! transaction they belong to; deleting a transaction row leaves a gap in the
//! dense ids; a row stamped with a transaction that does not exist, or with
//! the wrong branch, is found by `Backend::stray_row`. A file is covered by
//! its digest; the content check reads each distinct content back through
//! its chunks (each chunk checked against its own hash on the way), so a
//! chunk row edited or replaced is found too. The chain is not
//! keyed: someone who rewrites rows *and* recomputes every later hash is
//! caught only by comparing the head hash with one recorded elsewhere
//! (`verify` prints it).

use crate::backend::{Backend, Write};
use crate::chain::{chain_hash, tx_logs};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::{hex, ChunkRef, Entry, Hash, TxId};
use std::collections::{HashMap, HashSet};

/// The first transaction found broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// Its id.
    pub tx: TxId,
    /// What is wrong.
    pub reason: String,
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// First transaction checked.
    pub from: TxId,
    /// Last transaction checked (the head when it started).
    pub head: TxId,
    /// How many transactions were recomputed.
    pub checked: u64,
    /// The head's stored hash (record it elsewhere to detect a rewrite of
    /// the whole chain).
    pub head_hash: Hash,
    /// The first broken transaction, if any.
    pub broken: Option<Broken>,
}

impl Engine {
    /// Recompute the chain from transaction `from` (trusting its
    /// predecessor's stored hash) to the head, and check that every file
    /// content written in that range still reads back to its digest.
    /// `progress(done, total)` is called as transactions are checked.
    pub fn verify(
        &mut self,
        from: TxId,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifyReport> {
        self.verify_with(from, true, progress)
    }

    /// `verify`, with the content check (reading every distinct file
    /// content once) only when `content` is true. The chain covers a file
    /// by its digest; the content check covers the chunks behind it.
    pub fn verify_with(
        &mut self,
        from: TxId,
        content: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifyReport> {
        let head = self.head()?;
        let from = from.max(1).min(head + 1);
        let mut report = VerifyReport {
            from,
            head,
            checked: 0,
            head_hash: [0u8; 32],
            broken: None,
        };
        let b = self.backend();
        let mut prev: Hash = [0u8; 32];
        if from > 1 {
            match b.tx_info(from - 1)? {
                Some(i) => prev = i.hash,
                None => {
                    report.broken = Some(missing(from - 1));
                    return Ok(report);
                }
            }
        }
        let stray = match b.stray_row(from)? {
            Some(s) => Some(s),
            None => misplaced_key(&mut *b, from)?,
        };
        let mut seen: HashSet<(Hash, Vec<ChunkRef>)> = HashSet::new();
        let total = head.saturating_sub(from) + 1;
        for id in from..=head {
            let Some(info) = b.tx_info(id)? else {
                report.broken = Some(missing(id));
                return Ok(report);
            };
            let rows = b
                .tx_writes(id)
                .and_then(|w| tx_logs(&mut *b, &info).map(|l| (w, l)));
            let (writes, logs) = match rows {
                Ok(r) => r,
                Err(Error::Corrupt { reason, .. }) => {
                    report.broken = Some(Broken {
                        tx: id,
                        reason: format!("T{id}: a stored row cannot be read: {reason}"),
                    });
                    return Ok(report);
                }
                Err(e) => return Err(e),
            };
            let recomputed = chain_hash(&prev, &info, &writes, &logs);
            if recomputed != info.hash {
                report.broken = Some(Broken {
                    tx: id,
                    reason: format!(
                        "T{id}: its stored rows do not match its recorded hash: the transaction row, \
                         a version, a key's path or a log row of it was changed, added or removed after \
                         it was committed (recorded {}, recomputed {})",
                        short(&info.hash),
                        short(&recomputed)
                    ),
                });
                return Ok(report);
            }
            if content {
                if let Some(reason) = content_mismatch(&mut *b, &writes, &mut seen)? {
                    report.broken = Some(Broken {
                        tx: id,
                        reason: format!("T{id}: {reason}"),
                    });
                    return Ok(report);
                }
            }
            if let Some((t, why)) = &stray {
                if *t == id {
                    report.broken = Some(Broken {
                        tx: id,
                        reason: format!("T{id}: {why}"),
                    });
                    return Ok(report);
                }
            }
            prev = info.hash;
            report.checked += 1;
            if report.checked.is_multiple_of(1000) || id == head {
                progress(report.checked, total);
            }
        }
        report.head_hash = prev;
        if let Some((t, why)) = stray {
            report.broken = Some(Broken {
                tx: t,
                reason: format!("T{t}: {why}"),
            });
        }
        Ok(report)
    }
}

/// The first file written here whose content (not checked before) no
/// longer reads back to its digest, described.
fn content_mismatch(
    b: &mut dyn Backend,
    writes: &[Write],
    seen: &mut HashSet<(Hash, Vec<ChunkRef>)>,
) -> Result<Option<String>> {
    for w in writes {
        let Some(Entry::File { content, .. }) = &w.entry else {
            continue;
        };
        // The same digest over other chunks is another claim to check.
        if !seen.insert((content.digest, content.chunks.to_vec())) {
            continue;
        }
        let mut h = blake3::Hasher::new();
        let mut size = 0u64;
        for r in content.chunks.iter() {
            match b.read_chunk(*r) {
                Ok(bytes) => {
                    size += bytes.len() as u64;
                    h.update(&bytes);
                }
                Err(Error::Corrupt { reason, .. }) => {
                    return Ok(Some(format!(
                        "the content of {} cannot be read back: {reason} (a chunk row was changed or removed)",
                        w.path
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        if size != content.size || h.finalize().as_bytes() != &content.digest {
            return Ok(Some(format!(
                "the content of {} no longer matches its digest (its chunks were replaced)",
                w.path
            )));
        }
    }
    Ok(None)
}

/// A file key whose name or parent does not agree with its path (the chain
/// covers paths; listings follow names and parents): its first transaction
/// at or after `from`, described.
fn misplaced_key(b: &mut dyn Backend, from: TxId) -> Result<Option<(TxId, String)>> {
    let keys = b.file_keys()?;
    let by_id: HashMap<i64, &str> = keys.iter().map(|k| (k.id, k.path.as_str())).collect();
    let mut worst: Option<(TxId, String)> = None;
    for k in &keys {
        let (want_parent, want_name) = match k.path.rsplit_once('/') {
            _ if k.path == "/" => (None, ""),
            Some(("", name)) => (Some("/"), name),
            Some((parent, name)) => (Some(parent), name),
            None => (None, k.path.as_str()),
        };
        let parent = k.parent_id.and_then(|p| by_id.get(&p).copied());
        if parent == want_parent && k.name == want_name {
            continue;
        }
        let Some(tx) = k.first_tx.filter(|t| *t >= from) else {
            continue;
        };
        if worst.as_ref().is_none_or(|w| tx < w.0) {
            worst = Some((
                tx,
                format!(
                    "the key of {} has name {:?} and parent {:?}, which do not match its path (a keys row was changed by hand)",
                    k.path,
                    k.name,
                    parent.unwrap_or("(none)")
                ),
            ));
        }
    }
    Ok(worst)
}

fn missing(id: TxId) -> Broken {
    Broken {
        tx: id,
        reason: format!(
            "T{id} is missing: transaction ids are dense, so its row was deleted (or never committed by dbos)"
        ),
    }
}

fn short(h: &Hash) -> String {
    hex(&h[..8])
}
