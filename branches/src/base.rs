//! The merge base of two branches: the newest state both contain. It is
//! their common ancestor at the older of the two fork points, unless a later
//! merge between them (in either direction) recorded a newer shared state.

use crate::error::Result;
use dbos_engine::{BranchInfo, Engine, Lineage, TxId};

/// The lineage of the newest state both `ours` and `theirs` contain.
pub fn merge_base(engine: &mut Engine, ours: &BranchInfo, theirs: &BranchInfo) -> Result<Lineage> {
    let tip_o = engine.branch_tip(ours)?;
    let tip_t = engine.branch_tip(theirs)?;
    let lo = engine.lineage(ours, tip_o)?;
    let lt = engine.lineage(theirs, tip_t)?;
    let mut best: Option<(TxId, Lineage)> = None;
    for so in &lo.steps {
        if let Some(st) = lt.steps.iter().find(|s| s.branch == so.branch) {
            let upto = so.upto.min(st.upto);
            let b = engine
                .backend()
                .branch_by_id(so.branch)?
                .ok_or_else(|| dbos_engine::Error::NoSuchBranch(format!("#{}", so.branch)))?;
            best = Some((upto, engine.lineage(&b, upto)?));
            break;
        }
    }
    // ours already contains theirs up to the transaction it last merged ...
    if let Some((_, t)) = engine.backend().last_merge(ours.id, theirs.id)? {
        if best.as_ref().is_none_or(|(u, _)| t > *u) {
            best = Some((t, engine.lineage(theirs, t)?));
        }
    }
    // ... and theirs contains ours up to what it last merged from us.
    if let Some((_, t)) = engine.backend().last_merge(theirs.id, ours.id)? {
        if best.as_ref().is_none_or(|(u, _)| t > *u) {
            best = Some((t, engine.lineage(ours, t)?));
        }
    }
    Ok(match best {
        Some((_, l)) => l,
        None => engine.lineage(ours, 0)?,
    })
}
