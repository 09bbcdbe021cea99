//! Branch porcelain: list, create (from any moment), rename, delete, tags.

use crate::error::{Error, Result};
use dbos_engine::{check_branch_name, BranchInfo, Engine, TxId};

/// A branch as `branch` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchRow {
    /// The stored branch.
    pub info: BranchInfo,
    /// The newest transaction visible on it (own or inherited).
    pub tip: TxId,
    /// The newest transaction written on the branch itself.
    pub own_head: Option<TxId>,
    /// Name of the branch it was forked from.
    pub parent_name: Option<String>,
}

/// Every live branch with its tip and where it forked.
pub fn list(engine: &mut Engine) -> Result<Vec<BranchRow>> {
    let all = engine.backend().all_branches()?;
    let mut rows = Vec::new();
    for b in engine.branches()? {
        let own_head = engine.backend().branch_head(b.id)?;
        let tip = engine.branch_tip(&b)?;
        let parent_name = b
            .parent
            .and_then(|p| all.iter().find(|x| x.id == p))
            .map(|p| p.name.clone());
        rows.push(BranchRow {
            info: b,
            tip,
            own_head,
            parent_name,
        });
    }
    Ok(rows)
}

/// Create `name` from `from` as of `at` (None: its newest state). Copies
/// no rows: the cost is one row whatever the size of the state.
pub fn create(engine: &mut Engine, name: &str, from: &str, at: Option<TxId>) -> Result<BranchInfo> {
    refuse_tag_name(engine, name)?;
    let parent = engine.branch(from)?;
    let at = match at {
        Some(t) => t,
        None => engine.branch_tip(&parent)?,
    };
    Ok(engine.create_branch(name, from, at)?)
}

/// Branches and tags share one namespace: refuse a tag's name.
fn refuse_tag_name(engine: &mut Engine, name: &str) -> Result<()> {
    if engine.backend().tag(name)?.is_some() {
        return Err(Error::NameTaken {
            name: name.to_string(),
            what: "tag",
        });
    }
    Ok(())
}

/// Rename a branch.
pub fn rename(engine: &mut Engine, old: &str, new: &str) -> Result<()> {
    check_branch_name(new)?;
    refuse_tag_name(engine, new)?;
    let b = engine.branch(old)?;
    engine.backend().rename_branch(b.id, new)?;
    Ok(())
}

/// Delete a branch: never the current one, and one with work not merged
/// anywhere only with `force`. Its transactions stay in the history.
pub fn delete(engine: &mut Engine, name: &str, current: &str, force: bool) -> Result<()> {
    if name == current {
        return Err(Error::IsCurrent(name.to_string()));
    }
    let b = engine.branch(name)?;
    if !force {
        if let Some(head) = engine.backend().branch_head(b.id)? {
            let merged = engine.backend().merged_upto(b.id)?.unwrap_or(0);
            if merged < head {
                return Err(Error::Unmerged {
                    name: name.to_string(),
                    head,
                });
            }
        }
    }
    engine.backend().delete_branch(b.id)?;
    Ok(())
}

/// Name a moment.
pub fn tag(engine: &mut Engine, name: &str, branch: &str, at: TxId) -> Result<()> {
    check_branch_name(name)?;
    if engine.backend().branch_by_name(name)?.is_some() {
        return Err(Error::NameTaken {
            name: name.to_string(),
            what: "branch",
        });
    }
    let b = engine.branch(branch)?;
    engine.backend().create_tag(name, b.id, at)?;
    Ok(())
}

/// Every tag: name, branch name, transaction.
pub fn tags(engine: &mut Engine) -> Result<Vec<(String, String, TxId)>> {
    let all = engine.backend().all_branches()?;
    Ok(engine
        .backend()
        .tags()?
        .into_iter()
        .map(|(n, b, t)| {
            let bn = all
                .iter()
                .find(|x| x.id == b)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| format!("#{b}"));
            (n, bn, t)
        })
        .collect())
}
