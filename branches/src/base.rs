//! The merge base of two branches: the newest state both contain.
//!
//! What a branch contains at a moment is a *version vector*: for each
//! branch, the newest transaction of it whose state is included. A branch
//! at transaction T contains its own lineage (itself up to T, each ancestor
//! up to its fork point) and, transitively, every state a merge recorded in
//! that lineage brought in (`merge_branch_id`, `merge_tx`). The base is the
//! newest real state `B@t` whose own vector is contained in both sides'
//! vectors. Working on vectors rather than on the last merge between the two
//! branches keeps states that arrived through a fork or a third branch.

use crate::error::Result;
use dbos_engine::{BranchId, BranchInfo, Engine, Lineage, LineageStep, TxId};
use std::collections::{BTreeMap, HashMap};

/// For each branch, the newest transaction of it that a state contains.
pub type VersionVector = BTreeMap<BranchId, TxId>;

/// Computes version vectors, remembering what it already computed.
pub struct Contains<'e> {
    engine: &'e mut Engine,
    memo: HashMap<(BranchId, TxId), VersionVector>,
    merges: HashMap<BranchId, Vec<(TxId, BranchId, TxId)>>,
}

fn join(into: &mut VersionVector, other: &VersionVector) {
    for (b, t) in other {
        let e = into.entry(*b).or_insert(0);
        *e = (*e).max(*t);
    }
}

/// True when every state in `a` is also in `b`.
pub fn within(a: &VersionVector, b: &VersionVector) -> bool {
    a.iter().all(|(k, t)| b.get(k).is_some_and(|u| u >= t))
}

impl<'e> Contains<'e> {
    /// A calculator over `engine`.
    pub fn new(engine: &'e mut Engine) -> Self {
        Contains {
            engine,
            memo: HashMap::new(),
            merges: HashMap::new(),
        }
    }

    fn branch(&mut self, id: BranchId) -> Result<BranchInfo> {
        Ok(self
            .engine
            .backend()
            .branch_by_id(id)?
            .ok_or_else(|| dbos_engine::Error::NoSuchBranch(format!("#{id}")))?)
    }

    /// Merges recorded on `branch` itself: (merge tx, branch merged, its tx).
    fn merges_on(&mut self, branch: BranchId) -> Result<Vec<(TxId, BranchId, TxId)>> {
        if let Some(m) = self.merges.get(&branch) {
            return Ok(m.clone());
        }
        let found = self.engine.backend().merges_into(branch)?;
        self.merges.insert(branch, found.clone());
        Ok(found)
    }

    /// Everything `branch` contains at transaction `upto`.
    pub fn vector(&mut self, branch: BranchId, upto: TxId) -> Result<VersionVector> {
        if let Some(v) = self.memo.get(&(branch, upto)) {
            return Ok(v.clone());
        }
        let info = self.branch(branch)?;
        let lineage = self.engine.lineage(&info, upto)?;
        let mut vv = VersionVector::new();
        for step in &lineage.steps {
            join(&mut vv, &BTreeMap::from([(step.branch, step.upto)]));
            for (mtx, from, from_tx) in self.merges_on(step.branch)? {
                if mtx <= step.upto {
                    let sub = self.vector(from, from_tx)?;
                    join(&mut vv, &sub);
                }
            }
        }
        self.memo.insert((branch, upto), vv.clone());
        Ok(vv)
    }
}

/// The lineage of the newest state both `ours` and `theirs` contain, and
/// whether `theirs` is already wholly contained in `ours`.
pub fn merge_base_with(
    engine: &mut Engine,
    ours: &BranchInfo,
    theirs: &BranchInfo,
) -> Result<(Lineage, bool)> {
    let tip_o = engine.branch_tip(ours)?;
    let tip_t = engine.branch_tip(theirs)?;
    let mut c = Contains::new(engine);
    let vo = c.vector(ours.id, tip_o)?;
    let vt = c.vector(theirs.id, tip_t)?;
    let up_to_date = within(&vt, &vo);
    // Candidates: each branch both contain, at the older of the two points,
    // kept when the state is really contained in both.
    let mut common: Vec<(BranchId, TxId, VersionVector)> = Vec::new();
    for (b, to) in &vo {
        let Some(tt) = vt.get(b) else { continue };
        let t = (*to).min(*tt);
        let v = c.vector(*b, t)?;
        if within(&v, &vo) && within(&v, &vt) {
            common.push((*b, t, v));
        }
    }
    // The newest common state contains every other one. In a criss-cross
    // history there is none; then use the pairwise rule below.
    let newest = common
        .iter()
        .find(|(_, _, v)| common.iter().all(|(_, _, w)| within(w, v)));
    let lineage = match newest {
        Some((b, t, _)) => {
            let info = c.branch(*b)?;
            c.engine.lineage(&info, *t)?
        }
        None => pairwise_base(c.engine, ours, theirs)?,
    };
    Ok((lineage, up_to_date))
}

/// The fallback for criss-cross histories: the common ancestor branch at the
/// older of the two cut-offs, or the state recorded by the last merge
/// between the two branches (either direction), whichever is newer.
fn pairwise_base(engine: &mut Engine, ours: &BranchInfo, theirs: &BranchInfo) -> Result<Lineage> {
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
    if let Some((_, t)) = engine.backend().last_merge(ours.id, theirs.id)? {
        if best.as_ref().is_none_or(|(u, _)| t > *u) {
            best = Some((t, engine.lineage(theirs, t)?));
        }
    }
    if let Some((_, t)) = engine.backend().last_merge(theirs.id, ours.id)? {
        if best.as_ref().is_none_or(|(u, _)| t > *u) {
            best = Some((t, engine.lineage(ours, t)?));
        }
    }
    Ok(match best {
        Some((_, l)) => l,
        None => Lineage {
            steps: vec![LineageStep {
                branch: ours.id,
                upto: 0,
            }],
        },
    })
}

/// The lineage of the newest state both `ours` and `theirs` contain.
pub fn merge_base(engine: &mut Engine, ours: &BranchInfo, theirs: &BranchInfo) -> Result<Lineage> {
    Ok(merge_base_with(engine, ours, theirs)?.0)
}
