//! Three-way merge of one branch into another, applied as one transaction.
//!
//! The changes on each side since the merge base are computed in proportion
//! to the changes (`Engine::diff_lineages`). Keys only one side changed take
//! that side's value; keys both changed identically stay; text files both
//! changed merge line by line; anything else is a conflict. Conflicts are all
//! listed and nothing is applied, unless `Strategy::Ours` or `Theirs` decides.

use crate::base::merge_base_with;
use crate::error::{Conflict, Error, Result};
use crate::textmerge::{is_mergeable_text, merge3, MergeOutcome as TextOutcome};
use dbos_engine::{Actor, CommitMeta, Content, Engine, Entry, Meta, Space, TxInfo, Txn, VPath};
use std::collections::BTreeMap;

/// How conflicts are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// List them and apply nothing.
    Refuse,
    /// Keep our side.
    Ours,
    /// Take their side.
    Theirs,
}

/// What a merge did.
#[derive(Clone, Debug)]
pub struct MergeReport {
    /// The merge transaction (None when already up to date).
    pub tx: Option<TxInfo>,
    /// Keys written, sorted.
    pub applied: Vec<(Space, String)>,
    /// Text files merged line by line.
    pub merged_text: Vec<String>,
    /// Conflicts decided by the strategy.
    pub decided: Vec<Conflict>,
}

enum Planned {
    Entry(Option<Entry>),
    Text { meta: Meta, text: String },
}

fn describe(e: &Option<Entry>) -> &'static str {
    match e {
        None => "removed",
        Some(Entry::File { .. }) => "a file",
        Some(Entry::Dir { .. }) => "a directory",
        Some(Entry::Symlink { .. }) => "a symlink",
        Some(Entry::Value(_)) => "a value",
    }
}

fn merge_field(base: Option<u32>, o: u32, t: u32) -> Option<u32> {
    if o == t {
        Some(o)
    } else if base == Some(o) {
        Some(t)
    } else if base == Some(t) {
        Some(o)
    } else {
        None
    }
}

fn merge_meta(base: Option<&Meta>, o: &Meta, t: &Meta) -> std::result::Result<Meta, String> {
    let mode = merge_field(base.map(|m| m.mode), o.mode, t.mode).ok_or_else(|| {
        format!(
            "mode changed on both sides ({:04o} here, {:04o} there)",
            o.mode, t.mode
        )
    })?;
    let uid = merge_field(base.map(|m| m.uid), o.uid, t.uid)
        .ok_or_else(|| "owner changed on both sides".to_string())?;
    let gid = merge_field(base.map(|m| m.gid), o.gid, t.gid)
        .ok_or_else(|| "group changed on both sides".to_string())?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime_ns: o.mtime_ns.max(t.mtime_ns),
    })
}

fn read_all(tx: &mut Txn<'_>, c: &Content) -> dbos_engine::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(c.size as usize);
    for r in c.chunks.iter() {
        out.extend(tx.read_chunk(*r)?);
    }
    Ok(out)
}

/// Combine two different changes of one key, or explain the conflict.
fn combine(
    tx: &mut Txn<'_>,
    base: &Option<Entry>,
    o: &Option<Entry>,
    t: &Option<Entry>,
) -> Result<std::result::Result<Planned, String>> {
    let conflict = |s: String| Ok(Err(s));
    match (base, o, t) {
        (
            _,
            Some(Entry::File {
                meta: om,
                content: oc,
            }),
            Some(Entry::File {
                meta: tm,
                content: tc,
            }),
        ) => {
            let bm = base.as_ref().and_then(|b| b.meta());
            let meta = match merge_meta(bm, om, tm) {
                Ok(m) => m,
                Err(e) => return conflict(e),
            };
            if oc == tc {
                return Ok(Ok(Planned::Entry(Some(Entry::File {
                    meta,
                    content: oc.clone(),
                }))));
            }
            let base_bytes = match base {
                Some(Entry::File { content, .. }) => read_all(tx, content)?,
                None => Vec::new(),
                Some(_) => return conflict("changed into a file on both sides".into()),
            };
            if oc.size > 8 << 20 || tc.size > 8 << 20 {
                return conflict("large file changed on both sides".into());
            }
            let ob = read_all(tx, oc)?;
            let tb = read_all(tx, tc)?;
            if !(is_mergeable_text(&base_bytes) && is_mergeable_text(&ob) && is_mergeable_text(&tb))
            {
                return conflict("binary file changed on both sides".into());
            }
            let to_str = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            match merge3(&to_str(&base_bytes), &to_str(&ob), &to_str(&tb)) {
                TextOutcome::Clean(text) => Ok(Ok(Planned::Text { meta, text })),
                TextOutcome::Conflicts(regions) => {
                    let lines: Vec<String> = regions
                        .iter()
                        .map(|r| {
                            if r.base_lines.is_empty() {
                                format!("at line {}", r.base_lines.start + 1)
                            } else {
                                format!("lines {}-{}", r.base_lines.start + 1, r.base_lines.end)
                            }
                        })
                        .collect();
                    conflict(format!(
                        "both sides changed the same lines ({})",
                        lines.join(", ")
                    ))
                }
            }
        }
        (_, Some(Entry::Dir { meta: om }), Some(Entry::Dir { meta: tm })) => {
            match merge_meta(base.as_ref().and_then(|b| b.meta()), om, tm) {
                Ok(meta) => Ok(Ok(Planned::Entry(Some(Entry::Dir { meta })))),
                Err(e) => conflict(e),
            }
        }
        (_, Some(Entry::Value(a)), Some(Entry::Value(b))) => {
            conflict(format!("set to different values (here {a:?}, there {b:?})"))
        }
        _ => conflict(format!(
            "{} here, {} there",
            if base.is_some() && o.is_none() {
                "removed"
            } else if base.is_none() {
                "added"
            } else {
                "changed"
            },
            match (base.is_some(), t) {
                (true, None) => "removed".to_string(),
                (false, t) => format!("added as {}", describe(t)),
                (true, t) => format!("changed into {}", describe(t)),
            }
        )),
    }
}

/// Merge branch `theirs` into `ours` as one transaction.
pub fn merge(
    engine: &mut Engine,
    ours: &str,
    theirs: &str,
    actor: &Actor,
    command: &str,
    strategy: Strategy,
) -> Result<MergeReport> {
    if ours == theirs {
        return Err(Error::SelfMerge(ours.to_string()));
    }
    let ob = engine.branch(ours)?;
    let tb = engine.branch(theirs)?;
    let theirs_tip = engine.branch_tip(&tb)?;
    let (base, contained) = merge_base_with(engine, &ob, &tb)?;
    let lt = engine.lineage(&tb, theirs_tip)?;
    let up_to_date = MergeReport {
        tx: None,
        applied: Vec::new(),
        merged_text: Vec::new(),
        decided: Vec::new(),
    };
    // Everything theirs holds is already here.
    if contained {
        return Ok(up_to_date);
    }
    let mut tx = engine.begin(ours, actor)?;
    let lo = tx.lineage().clone();
    let theirs_changes = tx.engine().diff_lineages(&base, &lt)?;
    if theirs_changes.is_empty() {
        return Ok(up_to_date);
    }
    let ours_changes: BTreeMap<(Space, String), Option<Entry>> = tx
        .engine()
        .diff_lineages(&base, &lo)?
        .into_iter()
        .map(|c| ((c.space, c.path), c.after))
        .collect();

    let mut plan: BTreeMap<(Space, String), Planned> = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut decided = Vec::new();
    let mut merged_text = Vec::new();
    let mut theirs_val: BTreeMap<(Space, String), Option<Entry>> = BTreeMap::new();
    for c in theirs_changes {
        let key = (c.space, c.path.clone());
        theirs_val.insert(key.clone(), c.after.clone());
        let decision = match ours_changes.get(&key) {
            None => Ok(Planned::Entry(c.after.clone())),
            Some(o) if *o == c.after => continue,
            Some(o) => combine(&mut tx, &c.before, o, &c.after)?,
        };
        match decision {
            Ok(p) => {
                if matches!(p, Planned::Text { .. }) {
                    merged_text.push(c.path.clone());
                }
                plan.insert(key, p);
            }
            Err(reason) => {
                let conflict = Conflict {
                    space: c.space,
                    path: c.path.clone(),
                    reason,
                };
                match strategy {
                    Strategy::Refuse => conflicts.push(conflict),
                    Strategy::Ours => decided.push(conflict),
                    Strategy::Theirs => {
                        plan.insert(key, Planned::Entry(c.after.clone()));
                        decided.push(conflict);
                    }
                }
            }
        }
    }

    // The tree must stay a tree: an entry needs its directory, and a
    // directory removed by them must not keep entries we added.
    let written: Vec<((Space, String), bool)> = plan
        .iter()
        .map(|(k, p)| (k.clone(), !matches!(p, Planned::Entry(None))))
        .collect();
    for ((space, path), creates) in written {
        if space != Space::File || path == "/" {
            continue;
        }
        let vp = VPath::parse(&path)?;
        if creates {
            let Some(parent) = vp.parent() else { continue };
            let parent_key = (Space::File, parent.as_str().to_string());
            let parent_is_dir = match plan.get(&parent_key) {
                Some(Planned::Entry(e)) => matches!(e, Some(Entry::Dir { .. })),
                Some(Planned::Text { .. }) => false,
                None => matches!(tx.stat(&parent)?, Some(Entry::Dir { .. })),
            };
            if !parent_is_dir {
                let c = Conflict {
                    space,
                    path: path.clone(),
                    reason: format!("added there, but its directory {parent} is gone here"),
                };
                match strategy {
                    Strategy::Refuse => conflicts.push(c),
                    Strategy::Ours => {
                        plan.remove(&(space, path.clone()));
                        decided.push(c);
                    }
                    Strategy::Theirs => {
                        // Restore the directories from their side.
                        let mut p = parent.clone();
                        loop {
                            let k = (Space::File, p.as_str().to_string());
                            if matches!(tx.stat(&p)?, Some(Entry::Dir { .. }))
                                && !plan.contains_key(&k)
                            {
                                break;
                            }
                            // Their side's directory (ours removed it).
                            let theirs_entry = match theirs_val.get(&k) {
                                Some(e) => e.clone(),
                                None => tx
                                    .engine()
                                    .backend()
                                    .read(&lt, Space::File, p.as_str())?
                                    .and_then(|v| v.entry),
                            };
                            plan.insert(k, Planned::Entry(theirs_entry));
                            match p.parent() {
                                Some(pp) => p = pp,
                                None => break,
                            }
                        }
                        decided.push(c);
                    }
                }
            }
        } else if let Some(Entry::Dir { .. }) = tx.stat(&vp)? {
            // They removed a directory: what do we still have in it?
            let mut kept = Vec::new();
            for (child, _) in tx.walk(&vp)?.into_iter().skip(1) {
                let k = (Space::File, child.as_str().to_string());
                if !matches!(plan.get(&k), Some(Planned::Entry(None))) {
                    kept.push(k);
                }
            }
            if !kept.is_empty() {
                let c = Conflict {
                    space,
                    path: path.clone(),
                    reason: format!("removed there, but it holds {} entries here", kept.len()),
                };
                match strategy {
                    Strategy::Refuse => conflicts.push(c),
                    Strategy::Ours => {
                        plan.remove(&(space, path.clone()));
                        decided.push(c);
                    }
                    Strategy::Theirs => {
                        for k in kept {
                            plan.insert(k, Planned::Entry(None));
                        }
                        decided.push(c);
                    }
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflicts {
            ours: ours.to_string(),
            theirs: theirs.to_string(),
            conflicts,
        });
    }

    let mut applied = Vec::with_capacity(plan.len());
    for ((space, path), p) in plan {
        let entry = match p {
            Planned::Entry(e) => e,
            Planned::Text { meta, text } => {
                let content = tx.store_content(text.as_bytes())?;
                Some(Entry::File { meta, content })
            }
        };
        tx.put(space, &path, entry)?;
        applied.push((space, path));
    }
    let info = tx.commit_with(CommitMeta {
        author: actor.author.clone(),
        command: command.to_string(),
        message: Some(format!("merge {theirs} into {ours}")),
        merge: Some((tb.id, theirs_tip)),
    })?;
    Ok(MergeReport {
        tx: info,
        applied,
        merged_text,
        decided,
    })
}
