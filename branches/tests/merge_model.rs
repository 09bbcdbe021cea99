//! Model-based property test of forks and merges: the engine plus
//! `dbos_branches` against a plain in-memory model.
//!
//! # What runs
//!
//! Random sequences (up to 30 operations) over a small name space so that
//! merges both combine and collide often: files `/a` `/b` `/c` `/d`, a
//! directory `/dir` holding `/dir/x` and `/dir/y`, and config keys `k1`..`k3`.
//! A fixed first transaction on `main` creates `/a` `/b` `/c` `/dir` `/dir/x`
//! and `k1`, so forks share content to merge. Operations:
//! - a transaction on any branch of 1 to 3 steps: write a file (a whole new
//!   text, or one line replaced, inserted or deleted in the current text;
//!   lines come from a five-letter alphabet, so line merges are sometimes
//!   clean and sometimes conflict), remove a file or `rm -r /dir`, `mkdir
//!   /dir`, config set (three values) or unset. A step the model says must
//!   fail must fail in the engine too, and rolls the transaction back;
//! - `Fork`: a new branch from any branch at its tip (`dbos_branches::create`,
//!   at most five branches);
//! - `Merge` of any branch into any other (both directions, repeatedly) with
//!   `Strategy::Refuse`, `Ours` or `Theirs`.
//!
//! `two_branch_merges_match_model` runs the same with `main` and one fork
//! only, so that most merges meet changes on both sides (line merges,
//! conflicts, `rm -r /dir` against changes inside it).
//!
//! # The model
//!
//! Per branch: its parent and fork point, the whole state (path -> file text
//! / directory, config key -> value) after each of its transactions, and
//! the merges it recorded. Each entry carries a *stamp* standing for its
//! mtime: the engine compares whole entries, so rewriting a file with the
//! same text is a change; merged metadata takes the newer stamp. The test
//! checks that stamps map one-to-one onto the engine's mtimes.
//!
//! **The merge base rule modelled** (that of `base.rs` and ARCHITECTURE.md,
//! "Branches and merges"): for `merge THEIRS into OURS`, the candidates are
//! (1) the common ancestor in the fork tree, at the older of the two
//! cut-offs (walk OURS' lineage from the nearest branch; the first branch
//! also in THEIRS' lineage, up to the smaller of the two limits); (2) THEIRS
//! as of the tip OURS last merged from it; (3) OURS as of the tip THEIRS last
//! merged from it. The base is the candidate with the highest transaction
//! id. Within one pair this is the newest state both contain: after
//! OURS merges THEIRS@t, THEIRS@t is in both, and in the other direction too;
//! the newest merge of the pair always contains every older sync point of
//! that pair (a tip taken by a later merge is newer than any merge
//! transaction before it). The model also checks `merge_base` itself, step
//! by step of the lineage.
//!
//! **But that rule is pairwise**, and states also travel through forks and
//! third branches: a branch forked from X contains everything X had merged,
//! and a merge brings in whatever the merged side had merged. The model
//! therefore also tracks, per state, a version vector (for each branch W,
//! the newest W@t it contains) and computes the *newest common state* (the
//! candidate W@min(ours[W], theirs[W]) that contains all the others). Where
//! the two rules differ the pairwise base is older, and the merge reports
//! spurious conflicts, or silently drops a change or brings back a removed
//! key (the newest base is right: see `bug_stale_base_*` below, minimal
//! histories of the bug the first pairwise implementation had). The
//! implementation now computes the newest common state from version
//! vectors too, and the property tests model that rule; the `Documented`
//! (pairwise) rule is kept only to count where the two would differ.
//!
//! A merge is then computed as the implementation is specified: start from
//! OURS; every key THEIRS changed since the base and OURS did not takes
//! THEIRS' value; equal changes stay; files both changed merge line by line
//! with `textmerge::merge3` (the one piece taken from the implementation; it
//! has its own tests); directories both changed merge; anything else is a
//! conflict. Then the tree must stay a tree: an entry added in a directory
//! OURS removed is a conflict, as is a directory THEIRS removed that still
//! holds entries here. `Refuse` lists every conflict and changes nothing;
//! `Ours` keeps our side (drops the addition / keeps the directory);
//! `Theirs` takes theirs (restores the directories from THEIRS / removes
//! what was kept). The test checks, per merge: no transaction exactly when
//! THEIRS changed nothing since the base (or OURS merged THEIRS' tip
//! already); the conflict list (as a set of keys) on refusal, with the head
//! and OURS' state unchanged; otherwise the new transaction's id and branch,
//! the keys applied, the files merged line by line, the conflicts decided,
//! and OURS' whole new state.
//!
//! After every operation the branch it touched is compared with the model
//! (kinds, file bytes and modes, config, the walk of the tree: no orphans);
//! after the run, every branch as of every transaction since its fork, so
//! isolation is checked too (no branch sees another's writes before a merge).
//!
//! 48 cases per property unless `PROPTEST_CASES` says otherwise (about 2 s
//! each in a debug build); statistics (merges clean, refused, decided, files
//! merged by lines, tree conflicts...) are printed with `--nocapture`.

use dbos_branches::textmerge::{merge3, MergeOutcome};
use dbos_branches::{Error as BError, Strategy};
use dbos_engine::{Actor, BranchId, Engine, Entry, Space, TxId, VPath};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

const FILES: &[&str] = &["/a", "/b", "/c", "/d", "/dir/x", "/dir/y"];
const DIR: &str = "/dir";
/// Every tree path of the name space, probed with `stat`.
const TREE: &[&str] = &["/", "/a", "/b", "/c", "/d", "/dir", "/dir/x", "/dir/y"];
const KEYS: &[&str] = &["k1", "k2", "k3"];
const VALUES: &[&str] = &["v1", "v2", "v3"];
const LETTERS: &[&str] = &["a\n", "b\n", "c\n", "d\n", "e\n"];
/// Most branches of a run (main included).
const MAX_BRANCHES: usize = 5;

type Key = (Space, String);

fn fkey(p: &str) -> Key {
    (Space::File, p.to_string())
}

/// What a key holds in the model. `stamp` stands for the mtime.
#[derive(Clone, PartialEq, Eq)]
enum Val {
    File { text: String, stamp: u64 },
    Dir { stamp: u64 },
    Value(String),
}

impl fmt::Debug for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::File { text, stamp } => write!(f, "{text:?}@{stamp}"),
            Val::Dir { stamp } => write!(f, "dir@{stamp}"),
            Val::Value(v) => write!(f, "{v:?}"),
        }
    }
}

type State = BTreeMap<Key, Val>;
/// For each branch (model index), the newest transaction of its line whose
/// state is contained.
type Vv = BTreeMap<usize, TxId>;

// ----- operations -----------------------------------------------------------

/// A new file text: a whole text, or one line edited in the current one.
#[derive(Clone, Debug)]
enum Edit {
    Whole(Vec<usize>),
    Replace(usize, usize),
    Insert(usize, usize),
    Delete(usize),
}

impl Edit {
    fn apply(&self, old: &str) -> String {
        let mut lines: Vec<String> = old.split_inclusive('\n').map(str::to_string).collect();
        let n = lines.len();
        match self {
            Edit::Whole(ls) => lines = ls.iter().map(|l| LETTERS[*l].to_string()).collect(),
            Edit::Replace(i, l) if n > 0 => lines[i % n] = LETTERS[*l].to_string(),
            Edit::Replace(_, l) | Edit::Insert(_, l) if n == 0 => {
                lines.push(LETTERS[*l].to_string())
            }
            Edit::Insert(i, l) => lines.insert(i % (n + 1), LETTERS[*l].to_string()),
            Edit::Delete(i) if n > 0 => {
                lines.remove(i % n);
            }
            _ => {}
        }
        lines.concat()
    }
}

#[derive(Clone, Debug)]
enum FsOp {
    /// Write `FILES[file]`.
    Write {
        file: usize,
        edit: Edit,
    },
    /// Remove `FILES[target]`, or `rm -r /dir` when `target == FILES.len()`.
    /// As generated, `target` picks among the entries that exist (see
    /// `resolve`).
    Remove {
        target: usize,
    },
    Mkdir,
    Set {
        key: usize,
        value: usize,
    },
    /// As generated, `key` picks among the keys that are set.
    Unset {
        key: usize,
    },
}

/// Turn the picks of `Remove` and `Unset` into existing entries, so that
/// most steps do something (with nothing to pick, the step fails).
fn resolve(st: &State, op: &FsOp) -> FsOp {
    match op {
        FsOp::Remove { target } => {
            let existing: Vec<usize> = (0..=FILES.len())
                .filter(|i| st.contains_key(&fkey(FILES.get(*i).copied().unwrap_or(DIR))))
                .collect();
            let target = match existing.len() {
                0 => target % (FILES.len() + 1),
                n => existing[target % n],
            };
            FsOp::Remove { target }
        }
        FsOp::Unset { key } => {
            let set: Vec<usize> = (0..KEYS.len())
                .filter(|i| st.contains_key(&(Space::Config, KEYS[*i].to_string())))
                .collect();
            let key = match set.len() {
                0 => key % KEYS.len(),
                n => set[key % n],
            };
            FsOp::Unset { key }
        }
        other => other.clone(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// One transaction on branch `branch % n`.
    Tx { branch: usize, ops: Vec<FsOp> },
    /// A new branch from `from % n` at its tip.
    Fork { from: usize },
    /// Merge branch `theirs` into `ours` (indices picked among the others).
    Merge {
        ours: usize,
        theirs: usize,
        strategy: Strategy,
    },
}

fn vp(s: &str) -> VPath {
    VPath::parse(s).expect("valid path")
}

fn parent_of(p: &str) -> Option<String> {
    if p == "/" {
        return None;
    }
    let i = p.rfind('/').expect("absolute path");
    Some(if i == 0 {
        "/".to_string()
    } else {
        p[..i].to_string()
    })
}

/// The text `op` writes, computed from the state it applies to.
fn text_for(st: &State, op: &FsOp) -> String {
    match op {
        FsOp::Write { file, edit } => {
            let old = match st.get(&fkey(FILES[*file])) {
                Some(Val::File { text, .. }) => text.as_str(),
                _ => "",
            };
            edit.apply(old)
        }
        _ => String::new(),
    }
}

/// Apply one step to the model; Err when it must fail (nothing changed).
fn apply_model(st: &mut State, op: &FsOp, text: &str, stamp: u64) -> Result<(), ()> {
    match op {
        FsOp::Write { file, .. } => {
            let p = FILES[*file];
            let parent = parent_of(p).expect("not the root");
            if !matches!(st.get(&fkey(&parent)), Some(Val::Dir { .. })) {
                return Err(());
            }
            st.insert(
                fkey(p),
                Val::File {
                    text: text.to_string(),
                    stamp,
                },
            );
        }
        FsOp::Remove { target } => {
            let p = FILES.get(*target).copied().unwrap_or(DIR);
            if st.remove(&fkey(p)).is_none() {
                return Err(());
            }
            let prefix = format!("{p}/");
            st.retain(|k, _| !(k.0 == Space::File && k.1.starts_with(&prefix)));
        }
        FsOp::Mkdir => {
            if st.contains_key(&fkey(DIR)) {
                return Err(());
            }
            st.insert(fkey(DIR), Val::Dir { stamp });
        }
        FsOp::Set { key, value } => {
            st.insert(
                (Space::Config, KEYS[*key].to_string()),
                Val::Value(VALUES[*value].to_string()),
            );
        }
        FsOp::Unset { key } => {
            if st
                .remove(&(Space::Config, KEYS[*key].to_string()))
                .is_none()
            {
                return Err(());
            }
        }
    }
    Ok(())
}

/// The keys a step puts in the transaction's overlay (when it succeeds).
fn puts(st: &State, op: &FsOp) -> Vec<Key> {
    match op {
        FsOp::Write { file, .. } => vec![fkey(FILES[*file])],
        FsOp::Remove { target } => {
            let p = FILES.get(*target).copied().unwrap_or(DIR);
            let prefix = format!("{p}/");
            st.keys()
                .filter(|k| k.0 == Space::File && (k.1 == p || k.1.starts_with(&prefix)))
                .cloned()
                .collect()
        }
        FsOp::Mkdir => vec![fkey(DIR)],
        FsOp::Set { key, .. } | FsOp::Unset { key } => {
            vec![(Space::Config, KEYS[*key].to_string())]
        }
    }
}

fn apply_engine(tx: &mut dbos_engine::Txn<'_>, op: &FsOp, text: &str) -> dbos_engine::Result<()> {
    match op {
        FsOp::Write { file, .. } => tx.write_bytes(&vp(FILES[*file]), text.as_bytes()),
        FsOp::Remove { target } => match FILES.get(*target) {
            Some(p) => tx.remove(&vp(p), false),
            None => tx.remove(&vp(DIR), true),
        },
        FsOp::Mkdir => tx.mkdir(&vp(DIR), false, 0o755),
        FsOp::Set { key, value } => tx.config_set(KEYS[*key], VALUES[*value]),
        FsOp::Unset { key } => tx.config_unset(KEYS[*key]),
    }
}

// ----- the model --------------------------------------------------------------

struct Commit {
    tx: TxId,
    state: Arc<State>,
    vv: Vv,
}

struct Branch {
    name: String,
    id: BranchId,
    /// Parent index and fork transaction.
    parent: Option<(usize, TxId)>,
    commits: Vec<Commit>,
    /// Merges recorded on this branch: (merge tx, from branch, its tip).
    merges: Vec<(TxId, usize, TxId)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BaseRule {
    /// Pairwise, as `base.rs` and ARCHITECTURE.md describe it.
    Documented,
    /// The newest state both sides contain (version vectors).
    Newest,
}

struct Model {
    branches: Vec<Branch>,
    next_tx: TxId,
    stamp: u64,
}

impl Model {
    fn state_at(&self, b: usize, t: TxId) -> Arc<State> {
        let br = &self.branches[b];
        if let Some(c) = br.commits.iter().rev().find(|c| c.tx <= t) {
            return c.state.clone();
        }
        match br.parent {
            Some((p, fork)) => self.state_at(p, t.min(fork)),
            None => Arc::new(State::new()),
        }
    }

    fn latest(&self, b: usize) -> Arc<State> {
        self.state_at(b, TxId::MAX)
    }

    /// The version vector of branch `b` as of `t` (t at or after its fork).
    fn vv_at(&self, b: usize, t: TxId) -> Vv {
        let br = &self.branches[b];
        let mut v = match br.commits.iter().rev().find(|c| c.tx <= t) {
            Some(c) => c.vv.clone(),
            None => match br.parent {
                Some((p, fork)) => self.vv_at(p, t.min(fork)),
                None => Vv::new(),
            },
        };
        v.insert(b, t);
        v
    }

    /// `Engine::branch_tip`: the newest own transaction, else the fork point.
    fn tip(&self, b: usize) -> TxId {
        let br = &self.branches[b];
        match (br.commits.last(), br.parent) {
            (Some(c), _) => c.tx,
            (None, Some((_, f))) => f,
            (None, None) => 0,
        }
    }

    /// `Engine::lineage`, as (branch index, upto) steps.
    fn lineage(&self, b: usize, upto: TxId) -> Vec<(usize, TxId)> {
        let mut steps = vec![(b, upto)];
        let mut cur = b;
        while let Some((p, fork)) = self.branches[cur].parent {
            let limit = steps.last().map(|s| s.1).unwrap_or(upto).min(fork);
            steps.push((p, limit));
            cur = p;
        }
        steps
    }

    fn last_merge(&self, into: usize, from: usize) -> Option<(TxId, TxId)> {
        self.branches[into]
            .merges
            .iter()
            .rev()
            .find(|m| m.1 == from)
            .map(|m| (m.0, m.2))
    }

    /// The documented (pairwise) base: the lineage of which branch, up to.
    fn documented_base(&self, o: usize, t: usize) -> (usize, TxId) {
        let lo = self.lineage(o, self.tip(o));
        let lt = self.lineage(t, self.tip(t));
        let mut best: Option<(TxId, usize)> = None;
        for (bo, uo) in &lo {
            if let Some((_, ut)) = lt.iter().find(|(bt, _)| bt == bo) {
                best = Some(((*uo).min(*ut), *bo));
                break;
            }
        }
        if let Some((_, x)) = self.last_merge(o, t) {
            if best.is_none_or(|(u, _)| x > u) {
                best = Some((x, t));
            }
        }
        if let Some((_, x)) = self.last_merge(t, o) {
            if best.is_none_or(|(u, _)| x > u) {
                best = Some((x, o));
            }
        }
        match best {
            Some((u, b)) => (b, u),
            None => (o, 0),
        }
    }

    /// The newest state both contain, or None when no candidate contains
    /// all the others (a criss-cross history).
    fn newest_base(&self, o: usize, t: usize) -> Option<(usize, TxId)> {
        let vo = self.vv_at(o, self.tip(o));
        let vt = self.vv_at(t, self.tip(t));
        let cands: Vec<(usize, TxId, Vv)> = vo
            .iter()
            .filter_map(|(w, x)| vt.get(w).map(|y| (*w, (*x).min(*y))))
            .map(|(w, m)| (w, m, self.vv_at(w, m)))
            .collect();
        let dominates = |a: &Vv, b: &Vv| b.iter().all(|(w, x)| a.get(w).is_some_and(|y| y >= x));
        cands
            .iter()
            .find(|(_, _, v)| cands.iter().all(|(_, _, w)| dominates(v, w)))
            .map(|(w, m, _)| (*w, *m))
    }

    fn record(&mut self, b: usize, tx: TxId, state: State, vv: Vv) {
        self.branches[b].commits.push(Commit {
            tx,
            state: Arc::new(state),
            vv,
        });
        self.next_tx = tx + 1;
    }
}

// ----- the merge, as specified ------------------------------------------------

#[derive(Debug, PartialEq)]
enum Outcome {
    UpToDate,
    Refused(Vec<Key>),
    Merged(State),
}

#[derive(Debug)]
struct Plan {
    outcome: Outcome,
    applied: Vec<Key>,
    line_merged: Vec<String>,
    decided: Vec<Key>,
    tree_conflicts: usize,
    both_changed: usize,
    line_conflicts: usize,
}

impl Plan {
    fn up_to_date() -> Plan {
        Plan {
            outcome: Outcome::UpToDate,
            applied: Vec::new(),
            line_merged: Vec::new(),
            decided: Vec::new(),
            tree_conflicts: 0,
            both_changed: 0,
            line_conflicts: 0,
        }
    }
}

/// Combine two different changes of one key: Some((value, merged by lines))
/// or None for a conflict.
fn combine(base: Option<&Val>, o: Option<&Val>, t: Option<&Val>) -> Option<(Val, bool)> {
    match (o, t) {
        (
            Some(Val::File {
                text: ot,
                stamp: os,
            }),
            Some(Val::File {
                text: tt,
                stamp: ts,
            }),
        ) => {
            let stamp = (*os).max(*ts);
            if ot == tt {
                return Some((
                    Val::File {
                        text: ot.clone(),
                        stamp,
                    },
                    false,
                ));
            }
            let base_text = match base {
                Some(Val::File { text, .. }) => text.as_str(),
                None => "",
                Some(_) => return None,
            };
            match merge3(base_text, ot, tt) {
                MergeOutcome::Clean(text) => Some((Val::File { text, stamp }, true)),
                MergeOutcome::Conflicts(_) => None,
            }
        }
        (Some(Val::Dir { stamp: os }), Some(Val::Dir { stamp: ts })) => Some((
            Val::Dir {
                stamp: (*os).max(*ts),
            },
            false,
        )),
        _ => None,
    }
}

fn plan_merge(base: &State, ours: &State, theirs: &State, strategy: Strategy) -> Plan {
    let keys: BTreeSet<&Key> = base.keys().chain(theirs.keys()).collect();
    let theirs_changes: BTreeSet<Key> = keys
        .into_iter()
        .filter(|k| base.get(*k) != theirs.get(*k))
        .cloned()
        .collect();
    if theirs_changes.is_empty() {
        return Plan::up_to_date();
    }
    let mut plan: BTreeMap<Key, Option<Val>> = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut decided = Vec::new();
    let mut line_merged = Vec::new();
    let mut tree_conflicts = 0;
    let mut both_changed = 0;
    let mut line_conflicts = 0;
    for k in &theirs_changes {
        let (b, o, t) = (base.get(k), ours.get(k), theirs.get(k));
        if b == o {
            plan.insert(k.clone(), t.cloned());
            continue;
        }
        if o == t {
            continue;
        }
        both_changed += 1;
        let files = matches!((o, t), (Some(Val::File { .. }), Some(Val::File { .. })));
        match combine(b, o, t) {
            Some((v, by_lines)) => {
                if by_lines {
                    line_merged.push(k.1.clone());
                }
                plan.insert(k.clone(), Some(v));
            }
            None => {
                line_conflicts += usize::from(files);
                match strategy {
                    Strategy::Refuse => conflicts.push(k.clone()),
                    Strategy::Ours => decided.push(k.clone()),
                    Strategy::Theirs => {
                        plan.insert(k.clone(), t.cloned());
                        decided.push(k.clone());
                    }
                }
            }
        }
    }
    // The tree must stay a tree.
    let is_dir = |v: Option<&Val>| matches!(v, Some(Val::Dir { .. }));
    let written: Vec<(Key, bool)> = plan.iter().map(|(k, v)| (k.clone(), v.is_some())).collect();
    for (key, creates) in written {
        if key.0 != Space::File || key.1 == "/" {
            continue;
        }
        if creates {
            let Some(parent) = parent_of(&key.1) else {
                continue;
            };
            let pk = fkey(&parent);
            let parent_is_dir = match plan.get(&pk) {
                Some(v) => is_dir(v.as_ref()),
                None => is_dir(ours.get(&pk)),
            };
            if !parent_is_dir {
                tree_conflicts += 1;
                match strategy {
                    Strategy::Refuse => conflicts.push(key),
                    Strategy::Ours => {
                        plan.remove(&key);
                        decided.push(key);
                    }
                    Strategy::Theirs => {
                        let mut p = parent;
                        loop {
                            let k = fkey(&p);
                            if is_dir(ours.get(&k)) && !plan.contains_key(&k) {
                                break;
                            }
                            let v = theirs.get(&k).cloned();
                            plan.insert(k, v);
                            match parent_of(&p) {
                                Some(pp) => p = pp,
                                None => break,
                            }
                        }
                        decided.push(key);
                    }
                }
            }
        } else if is_dir(ours.get(&key)) {
            let prefix = format!("{}/", key.1);
            let kept: Vec<Key> = ours
                .keys()
                .filter(|k| k.0 == Space::File && k.1.starts_with(&prefix))
                .filter(|k| !matches!(plan.get(*k), Some(None)))
                .cloned()
                .collect();
            if !kept.is_empty() {
                tree_conflicts += 1;
                match strategy {
                    Strategy::Refuse => conflicts.push(key),
                    Strategy::Ours => {
                        plan.remove(&key);
                        decided.push(key);
                    }
                    Strategy::Theirs => {
                        for k in kept {
                            plan.insert(k, None);
                        }
                        decided.push(key);
                    }
                }
            }
        }
    }
    let outcome = if !conflicts.is_empty() {
        conflicts.sort();
        Outcome::Refused(conflicts)
    } else {
        let mut st = ours.clone();
        for (k, v) in &plan {
            match v {
                Some(v) => st.insert(k.clone(), v.clone()),
                None => st.remove(k),
            };
        }
        Outcome::Merged(st)
    };
    line_merged.sort();
    decided.sort();
    Plan {
        outcome,
        applied: plan.into_keys().collect(),
        line_merged,
        decided,
        tree_conflicts,
        both_changed,
        line_conflicts,
    }
}

// ----- comparing the engine with the model ------------------------------------

fn e2s(e: impl fmt::Display) -> String {
    format!("engine error: {e}")
}

/// The engine's mtimes, one-to-one with the model's stamps.
#[derive(Default)]
struct Stamps {
    fwd: HashMap<u64, i64>,
    back: HashMap<i64, u64>,
}

impl Stamps {
    fn check(&mut self, path: &str, stamp: u64, mtime: i64) -> Result<(), String> {
        let a = *self.fwd.entry(stamp).or_insert(mtime);
        let b = *self.back.entry(mtime).or_insert(stamp);
        if a != mtime || b != stamp {
            return Err(format!(
                "{path}: mtime {mtime} for model stamp {stamp}, but stamp {stamp} was mtime {a} \
                 and mtime {mtime} was stamp {b} (the model's notion of a changed entry is off)"
            ));
        }
        Ok(())
    }
}

fn compare(
    engine: &mut Engine,
    branch: &str,
    at: TxId,
    want: &State,
    stamps: &mut Stamps,
) -> Result<(), String> {
    let mut v = engine.view_at(branch, at).map_err(e2s)?;
    for p in TREE {
        let e = v.stat(&vp(p)).map_err(e2s)?;
        let m = want.get(&fkey(p));
        let ok = match (&e, m) {
            (None, None) => true,
            (Some(Entry::File { meta, .. }), Some(Val::File { text, stamp })) => {
                stamps.check(p, *stamp, meta.mtime_ns)?;
                let bytes = v.read_file(&vp(p)).map_err(e2s)?;
                meta.mode == 0o644 && bytes == text.as_bytes()
            }
            (Some(Entry::Dir { meta }), Some(Val::Dir { stamp })) => {
                stamps.check(p, *stamp, meta.mtime_ns)?;
                meta.mode == 0o755
            }
            _ => false,
        };
        if !ok {
            return Err(format!("{branch}@T{at}: {p} is {e:?}, model has {m:?}"));
        }
    }
    let walked: BTreeSet<String> = v
        .walk(&VPath::root())
        .map_err(e2s)?
        .into_iter()
        .map(|(p, _)| p.as_str().to_string())
        .collect();
    let files: BTreeSet<String> = want
        .keys()
        .filter(|k| k.0 == Space::File)
        .map(|k| k.1.clone())
        .collect();
    if walked != files {
        return Err(format!(
            "{branch}@T{at}: walk of / gives {walked:?}, model has {files:?}"
        ));
    }
    let config = v.config_list().map_err(e2s)?;
    let want_config: Vec<(String, String)> = want
        .iter()
        .filter_map(|(k, v)| match v {
            Val::Value(x) if k.0 == Space::Config => Some((k.1.clone(), x.clone())),
            _ => None,
        })
        .collect();
    if config != want_config {
        return Err(format!(
            "{branch}@T{at}: config {config:?}, model has {want_config:?}"
        ));
    }
    Ok(())
}

// ----- running a sequence -------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    cases: usize,
    ops: usize,
    txs: usize,
    failed_steps: usize,
    forks: usize,
    merges: usize,
    up_to_date: usize,
    refused: usize,
    merged: usize,
    merged_with_decided: usize,
    files_merged_by_lines: usize,
    /// Keys both sides changed differently (combined or not).
    both_changed: usize,
    /// Files both sides changed whose line merge conflicted.
    line_conflicts: usize,
    tree_conflicts: usize,
    pairwise_base_older: usize,
    pairwise_base_changes_outcome: usize,
    criss_cross: usize,
    /// With the newest base: merges that leave OURS as it was where the
    /// model is up to date.
    empty_merges_accepted: usize,
    max_head: TxId,
}

struct Run<'a> {
    engine: Engine,
    m: Model,
    stamps: Stamps,
    actor: Actor,
    rule: BaseRule,
    max_branches: usize,
    stats: &'a RefCell<Stats>,
}

impl Run<'_> {
    fn head(&mut self) -> Result<TxId, String> {
        self.engine.head().map_err(e2s)
    }

    fn check_latest(&mut self, b: usize) -> Result<(), String> {
        let head = self.head()?;
        let name = self.m.branches[b].name.clone();
        let want = self.m.latest(b);
        compare(&mut self.engine, &name, head, &want, &mut self.stamps)
    }

    fn tx(&mut self, b: usize, ops: &[FsOp]) -> Result<(), String> {
        let name = self.m.branches[b].name.clone();
        let before = self.m.latest(b);
        let mut pending: State = (*before).clone();
        let mut touched: BTreeSet<Key> = BTreeSet::new();
        let mut tx = self.engine.begin(&name, &self.actor).map_err(e2s)?;
        for (j, op) in ops.iter().enumerate() {
            self.m.stamp += 1;
            let op = &resolve(&pending, op);
            let text = text_for(&pending, op);
            let puts = puts(&pending, op);
            let want = apply_model(&mut pending, op, &text, self.m.stamp);
            if want.is_ok() {
                touched.extend(puts);
            }
            let got = apply_engine(&mut tx, op, &text);
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err(()), Err(_)) => {
                    tx.rollback();
                    self.stats.borrow_mut().failed_steps += 1;
                    return self.check_latest(b);
                }
                (Ok(()), Err(e)) => return Err(format!("step {j} {op:?} failed: {e}")),
                (Err(()), Ok(())) => {
                    return Err(format!(
                        "step {j} {op:?} succeeded; the model says it fails"
                    ))
                }
            }
        }
        // The engine drops removals of keys absent at the snapshot.
        let writes = touched
            .iter()
            .any(|k| before.contains_key(k) || pending.contains_key(k));
        let info = match (tx.commit("model tx", None).map_err(e2s)?, writes) {
            (Some(info), true) => info,
            (None, false) => return self.check_latest(b),
            (got, _) => {
                return Err(format!(
                    "commit gave {:?}; the model wrote {touched:?}",
                    got.map(|i| i.id)
                ))
            }
        };
        if info.id != self.m.next_tx || info.branch_id != self.m.branches[b].id {
            return Err(format!(
                "committed T{} on #{}, expected T{} on #{}",
                info.id, info.branch_id, self.m.next_tx, self.m.branches[b].id
            ));
        }
        let mut vv = self.m.vv_at(b, info.id - 1);
        vv.insert(b, info.id);
        self.m.record(b, info.id, pending, vv);
        self.stats.borrow_mut().txs += 1;
        self.check_latest(b)
    }

    fn fork(&mut self, from: usize) -> Result<(), String> {
        let n = self.m.branches.len();
        if n >= self.max_branches {
            return Ok(());
        }
        let from = from % n;
        let name = format!("b{n}");
        let parent = self.m.branches[from].name.clone();
        let info = dbos_branches::create(&mut self.engine, &name, &parent, None).map_err(e2s)?;
        let tip = self.m.tip(from);
        if info.fork_tx != Some(tip) {
            return Err(format!(
                "{name} forked at {:?}, the tip of {parent} is T{tip}",
                info.fork_tx
            ));
        }
        self.m.branches.push(Branch {
            name,
            id: info.id,
            parent: Some((from, tip)),
            commits: Vec::new(),
            merges: Vec::new(),
        });
        self.stats.borrow_mut().forks += 1;
        self.check_latest(n)
    }

    fn merge(&mut self, ours: usize, theirs: usize, strategy: Strategy) -> Result<(), String> {
        let n = self.m.branches.len();
        if n < 2 {
            return Ok(());
        }
        let o = ours % n;
        let mut t = theirs % (n - 1);
        if t >= o {
            t += 1;
        }
        let (oname, tname) = (
            self.m.branches[o].name.clone(),
            self.m.branches[t].name.clone(),
        );
        let ours_state = self.m.latest(o);
        let theirs_state = self.m.latest(t);
        let tip_t = self.m.tip(t);

        let documented = self.m.documented_base(o, t);
        let newest = self.m.newest_base(o, t);
        let doc_up_to_date = self.m.last_merge(o, t).is_some_and(|(_, x)| x >= tip_t);
        let plan_with = |base: (usize, TxId), up_to_date: bool| {
            if up_to_date {
                Plan::up_to_date()
            } else {
                let bs = self.m.state_at(base.0, base.1);
                plan_merge(&bs, &ours_state, &theirs_state, strategy)
            }
        };
        let doc_plan = plan_with(documented, doc_up_to_date);
        let newest_plan = newest.map(|b| plan_with(b, false));
        {
            let mut s = self.stats.borrow_mut();
            match (&newest, &newest_plan) {
                (Some(nb), Some(np)) => {
                    if self.m.state_at(nb.0, nb.1) != self.m.state_at(documented.0, documented.1) {
                        s.pairwise_base_older += 1;
                    }
                    if np.outcome != doc_plan.outcome {
                        s.pairwise_base_changes_outcome += 1;
                    }
                }
                _ => s.criss_cross += 1,
            }
        }
        let plan = match (self.rule, newest_plan) {
            (BaseRule::Newest, Some(p)) => p,
            _ => doc_plan,
        };
        if self.rule == BaseRule::Documented {
            // `merge_base` itself, as a lineage.
            let ob = self.engine.branch(&oname).map_err(e2s)?;
            let tb = self.engine.branch(&tname).map_err(e2s)?;
            let got = dbos_branches::merge_base(&mut self.engine, &ob, &tb).map_err(e2s)?;
            let got: Vec<(BranchId, TxId)> = got.steps.iter().map(|s| (s.branch, s.upto)).collect();
            let want: Vec<(BranchId, TxId)> = self
                .m
                .lineage(documented.0, documented.1)
                .into_iter()
                .map(|(b, u)| (self.m.branches[b].id, u))
                .collect();
            if got != want {
                return Err(format!("merge_base is {got:?}, the model's {want:?}"));
            }
        }

        let head = self.head()?;
        let res = dbos_branches::merge(
            &mut self.engine,
            &oname,
            &tname,
            &self.actor,
            "model merge",
            strategy,
        );
        let what = format!("merge {tname} into {oname} ({strategy:?})");
        self.stats.borrow_mut().merges += 1;
        let mut outcome = plan.outcome;
        let mut lenient = false;
        if let (BaseRule::Newest, Outcome::UpToDate, Ok(r)) = (self.rule, &outcome, &res) {
            // Against an older base the implementation finds changes both
            // sides made and records a merge that leaves OURS as it was
            // (checked below): harmless, accepted here.
            if r.tx.is_some() {
                outcome = Outcome::Merged((*ours_state).clone());
                lenient = true;
                self.stats.borrow_mut().empty_merges_accepted += 1;
            }
        }
        match (res, outcome) {
            (Ok(r), Outcome::UpToDate) => {
                if let Some(info) = r.tx {
                    return Err(format!(
                        "{what} made T{}; the model says up to date",
                        info.id
                    ));
                }
                if self.head()? != head {
                    return Err(format!("{what}: up to date, but the head moved"));
                }
                self.stats.borrow_mut().up_to_date += 1;
            }
            (Ok(r), Outcome::Merged(state)) => {
                let Some(info) = r.tx else {
                    return Err(format!(
                        "{what}: up to date; the model merges {:?}",
                        plan.applied
                    ));
                };
                if info.id != self.m.next_tx || info.branch_id != self.m.branches[o].id {
                    return Err(format!(
                        "{what} committed T{} on #{}, expected T{} on #{}",
                        info.id, info.branch_id, self.m.next_tx, self.m.branches[o].id
                    ));
                }
                if info.merge != Some((self.m.branches[t].id, tip_t)) {
                    return Err(format!("{what} recorded merge {:?}", info.merge));
                }
                if !lenient && r.applied != plan.applied {
                    return Err(format!(
                        "{what} applied {:?}, the model {:?}",
                        r.applied, plan.applied
                    ));
                }
                let mut lines = r.merged_text.clone();
                lines.sort();
                if !lenient && lines != plan.line_merged {
                    return Err(format!(
                        "{what} merged by lines {lines:?}, the model {:?}",
                        plan.line_merged
                    ));
                }
                let mut decided: Vec<Key> = r
                    .decided
                    .iter()
                    .map(|c| (c.space, c.path.clone()))
                    .collect();
                decided.sort();
                if !lenient && decided != plan.decided {
                    return Err(format!(
                        "{what} decided {decided:?}, the model {:?}",
                        plan.decided
                    ));
                }
                let mut vv = self.m.vv_at(o, info.id - 1);
                for (w, x) in self.m.vv_at(t, tip_t) {
                    let e = vv.entry(w).or_insert(x);
                    *e = (*e).max(x);
                }
                vv.insert(o, info.id);
                self.m.record(o, info.id, state, vv);
                self.m.branches[o].merges.push((info.id, t, tip_t));
                let mut s = self.stats.borrow_mut();
                s.merged += 1;
                s.merged_with_decided += usize::from(!plan.decided.is_empty());
                s.files_merged_by_lines += plan.line_merged.len();
                s.tree_conflicts += plan.tree_conflicts;
                s.both_changed += plan.both_changed;
                s.line_conflicts += plan.line_conflicts;
            }
            (Err(BError::Conflicts { conflicts, .. }), Outcome::Refused(want)) => {
                let mut got: Vec<Key> = conflicts
                    .iter()
                    .map(|c| (c.space, c.path.clone()))
                    .collect();
                got.sort();
                if got != want {
                    return Err(format!("{what}: conflicts {got:?}, the model {want:?}"));
                }
                if strategy != Strategy::Refuse {
                    return Err(format!("{what} refused"));
                }
                if self.head()? != head {
                    return Err(format!("{what} refused, but the head moved"));
                }
                let mut s = self.stats.borrow_mut();
                s.refused += 1;
                s.tree_conflicts += plan.tree_conflicts;
                s.both_changed += plan.both_changed;
                s.line_conflicts += plan.line_conflicts;
            }
            (res, want) => {
                let got = match res {
                    Ok(r) => format!("{:?} applying {:?}", r.tx.map(|i| i.id), r.applied),
                    Err(e) => format!("error {e}"),
                };
                return Err(format!("{what}: {got}; the model expects {want:?}"));
            }
        }
        self.check_latest(o)
    }

    /// Every branch as of every transaction since its fork.
    fn check_all(&mut self) -> Result<(), String> {
        let head = self.head()?;
        if head + 1 != self.m.next_tx {
            return Err(format!(
                "head T{head}, the model expects T{}",
                self.m.next_tx - 1
            ));
        }
        for b in 0..self.m.branches.len() {
            let first = self.m.branches[b].parent.map(|p| p.1).unwrap_or(1);
            let name = self.m.branches[b].name.clone();
            for t in first..=head {
                let want = self.m.state_at(b, t);
                compare(&mut self.engine, &name, t, &want, &mut self.stamps)?;
            }
        }
        Ok(())
    }
}

/// The first transaction on `main`, shared by every branch.
fn setup_ops() -> Vec<FsOp> {
    let whole = |file, ls: &[usize]| FsOp::Write {
        file,
        edit: Edit::Whole(ls.to_vec()),
    };
    vec![
        FsOp::Mkdir,
        whole(0, &[0, 1, 2, 3, 4, 0, 1, 2]),
        whole(1, &[0, 1, 2, 3, 4]),
        whole(2, &[2, 3, 4, 0]),
        whole(4, &[1, 2, 3]),
        FsOp::Set { key: 0, value: 0 },
    ]
}

fn run(ops: &[Op], shape: Shape, stats: &RefCell<Stats>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let location = dir.path().join("state.db").display().to_string();
    let mut engine = Engine::open(&location).map_err(e2s)?;
    let main = engine.branch("main").map_err(e2s)?;
    let head = engine.head().map_err(e2s)?;
    let root = [(fkey("/"), Val::Dir { stamp: 0 })].into_iter().collect();
    let m = Model {
        branches: vec![Branch {
            name: "main".to_string(),
            id: main.id,
            parent: None,
            commits: vec![Commit {
                tx: head,
                state: Arc::new(root),
                vv: [(0, head)].into_iter().collect(),
            }],
            merges: Vec::new(),
        }],
        next_tx: head + 1,
        stamp: 0,
    };
    let mut r = Run {
        engine,
        m,
        stamps: Stamps::default(),
        actor: Actor::default(),
        rule: shape.rule,
        max_branches: shape.max_branches,
        stats,
    };
    r.tx(0, &setup_ops()).map_err(|e| format!("setup: {e}"))?;
    if shape.max_branches == 2 {
        r.fork(0).map_err(|e| format!("setup: {e}"))?;
    }
    for (i, op) in ops.iter().enumerate() {
        let n = r.m.branches.len();
        let res = match op {
            Op::Tx { branch, ops } => r.tx(branch % n, ops),
            Op::Fork { from } => r.fork(*from),
            Op::Merge {
                ours,
                theirs,
                strategy,
            } => r.merge(*ours, *theirs, *strategy),
        };
        res.map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    r.check_all().map_err(|e| format!("after the run: {e}"))?;
    let head = r.head()?;
    let mut s = stats.borrow_mut();
    s.cases += 1;
    s.ops += ops.len();
    s.max_head = s.max_head.max(head);
    Ok(())
}

// ----- strategies -------------------------------------------------------------

fn edit_s() -> impl proptest::strategy::Strategy<Value = Edit> {
    prop_oneof![
        1 => prop::collection::vec(0..LETTERS.len(), 1..=6).prop_map(Edit::Whole),
        3 => (0usize..8, 0..LETTERS.len()).prop_map(|(i, l)| Edit::Replace(i, l)),
        2 => (0usize..8, 0..LETTERS.len()).prop_map(|(i, l)| Edit::Insert(i, l)),
        1 => (0usize..8).prop_map(Edit::Delete),
    ]
}

/// Mostly the longest file, where line merges can be clean, and the files
/// in `/dir`, which a removal of `/dir` on the other side collides with.
fn file_s() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![5 => Just(0usize), 2 => Just(1usize), 2 => 2usize..4, 3 => 4..FILES.len()]
}

fn fs_op_s() -> impl proptest::strategy::Strategy<Value = FsOp> {
    prop_oneof![
        6 => (file_s(), edit_s()).prop_map(|(file, edit)| FsOp::Write { file, edit }),
        2 => (0usize..8).prop_map(|target| FsOp::Remove { target }),
        1 => Just(FsOp::Mkdir),
        2 => (0..KEYS.len(), 0..VALUES.len()).prop_map(|(key, value)| FsOp::Set { key, value }),
        1 => (0usize..4).prop_map(|key| FsOp::Unset { key }),
    ]
}

fn strategy_s() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        2 => Just(Strategy::Refuse),
        1 => Just(Strategy::Ours),
        1 => Just(Strategy::Theirs),
    ]
}

fn op_s() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..8, prop::collection::vec(fs_op_s(), 1..=3))
            .prop_map(|(branch, ops)| Op::Tx { branch, ops }),
        1 => (0usize..8).prop_map(|from| Op::Fork { from }),
        4 => (0usize..8, 0usize..8, strategy_s())
            .prop_map(|(ours, theirs, strategy)| Op::Merge { ours, theirs, strategy }),
    ]
}

/// 48 cases unless `PROPTEST_CASES` says otherwise; no regression files.
fn config() -> PtConfig {
    let mut c = PtConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 48;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        c.max_shrink_iters = 2048;
    }
    c.failure_persistence = None;
    c
}

/// Which runs: the base rule modelled, and how many branches (with two,
/// `b1` is forked from `main` right after the setup).
#[derive(Clone, Copy)]
struct Shape {
    rule: BaseRule,
    max_branches: usize,
}

fn run_property(shape: Shape) {
    let stats = RefCell::new(Stats::default());
    let mut runner = TestRunner::new(config());
    let result = runner.run(&prop::collection::vec(op_s(), 10..=30), |ops| {
        run(&ops, shape, &stats).map_err(TestCaseError::fail)
    });
    eprintln!("{:#?}", stats.borrow());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn merges_match_model() {
    run_property(Shape {
        rule: BaseRule::Newest,
        max_branches: MAX_BRANCHES,
    });
}

/// The same with `main` and one branch only: repeated merges of one pair in
/// both directions, where most merges have changes on both sides.
#[test]
fn two_branch_merges_match_model() {
    run_property(Shape {
        rule: BaseRule::Newest,
        max_branches: 2,
    });
}

// ----- fixed sequences ----------------------------------------------------------

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(&dir.path().join("state.db").display().to_string()).expect("open");
    (dir, engine)
}

fn commit(engine: &mut Engine, branch: &str, f: impl FnOnce(&mut dbos_engine::Txn<'_>)) -> TxId {
    let mut tx = engine.begin(branch, &Actor::default()).expect("begin");
    f(&mut tx);
    tx.commit("test", None)
        .expect("commit")
        .expect("a change")
        .id
}

fn merge(engine: &mut Engine, ours: &str, theirs: &str, s: Strategy) {
    dbos_branches::merge(engine, ours, theirs, &Actor::default(), "merge", s).expect("merge");
}

fn config_at(engine: &mut Engine, branch: &str, key: &str) -> Option<String> {
    let head = engine.head().expect("head");
    let mut v = engine.view_at(branch, head).expect("view");
    v.config_get(key).expect("config_get")
}

/// Merge, fork, merge back and forth: the documented rule end to end.
#[test]
fn repeated_merges_both_directions() {
    let (_d, mut e) = open();
    commit(&mut e, "main", |tx| {
        tx.write_bytes(&vp("/f"), b"a\nb\nc\nd\n").unwrap();
        tx.config_set("k", "1").unwrap();
    });
    dbos_branches::create(&mut e, "b", "main", None).unwrap();
    commit(&mut e, "b", |tx| {
        tx.write_bytes(&vp("/f"), b"A\nb\nc\nd\n").unwrap()
    });
    commit(&mut e, "main", |tx| {
        tx.write_bytes(&vp("/f"), b"a\nb\nc\nD\n").unwrap()
    });
    merge(&mut e, "main", "b", Strategy::Refuse);
    merge(&mut e, "b", "main", Strategy::Refuse);
    // Both now hold both edits; a second round only carries new changes.
    commit(&mut e, "b", |tx| tx.config_set("k", "2").unwrap());
    merge(&mut e, "main", "b", Strategy::Refuse);
    let head = e.head().unwrap();
    for b in ["main", "b"] {
        let mut v = e.view_at(b, head).unwrap();
        assert_eq!(v.read_file(&vp("/f")).unwrap(), b"A\nb\nc\nD\n", "{b}");
    }
    assert_eq!(config_at(&mut e, "main", "k").as_deref(), Some("2"));
}

/// A branch forked from `main` after `main` merged `b` contains `b` as
/// merged; a later change on `b` (here a revert) must reach it. The newest
/// state both contain is b@T3 (k = v2), so b changed k back to v1 and c did
/// not change it: c must end with v1. The pairwise base is main@T2 (k = v1),
/// against which b changed nothing, so the merge says "up to date" and c
/// keeps v2. (Setting k to v3 on b instead gives a spurious conflict.)
#[test]
fn bug_stale_base_after_fork_drops_a_revert() {
    let (_d, mut e) = open();
    commit(&mut e, "main", |tx| tx.config_set("k", "v1").unwrap()); // T2
    dbos_branches::create(&mut e, "b", "main", None).unwrap();
    commit(&mut e, "b", |tx| tx.config_set("k", "v2").unwrap()); // T3
    merge(&mut e, "main", "b", Strategy::Refuse); // T4: main has v2
    dbos_branches::create(&mut e, "c", "main", None).unwrap(); // c at T4: v2
    commit(&mut e, "b", |tx| tx.config_set("k", "v1").unwrap()); // T5: revert
    let report = dbos_branches::merge(
        &mut e,
        "c",
        "b",
        &Actor::default(),
        "merge",
        Strategy::Refuse,
    )
    .expect("merge");
    assert!(report.tx.is_some(), "merge of b into c found nothing to do");
    assert_eq!(config_at(&mut e, "c", "k").as_deref(), Some("v1"));
}

/// b1 merges main@T2 and then removes k; b2 is a fork of main at T2, so b1
/// already contains all of b2 and merging b2 into b1 has nothing to do. The
/// pairwise base is main@T1 (the fork point of b1), against which b2 "added"
/// k: the merge silently brings the removed key back.
#[test]
fn bug_stale_base_resurrects_a_removed_key() {
    let (_d, mut e) = open();
    dbos_branches::create(&mut e, "b1", "main", None).unwrap(); // at T1
    commit(&mut e, "main", |tx| tx.config_set("k", "v1").unwrap()); // T2
    merge(&mut e, "b1", "main", Strategy::Refuse); // T3: b1 has k
    commit(&mut e, "b1", |tx| tx.config_unset("k").unwrap()); // T4
    dbos_branches::create(&mut e, "b2", "main", None).unwrap(); // at T2
    merge(&mut e, "b1", "b2", Strategy::Refuse);
    assert_eq!(
        config_at(&mut e, "b1", "k"),
        None,
        "the removed key came back"
    );
}

/// main removes /dir (with /dir/x); b, which still has /dir, adds /dir/y.
/// Merging b into main with Theirs must give b's side: /dir back with
/// /dir/y in it. (A first version of `merge.rs` restored /dir with main's
/// entry, none, so /dir/y was written under a directory that did not exist:
/// `stat` found it, `walk` from / did not.)
#[test]
fn theirs_restores_directory_only_ours_removed() {
    let (_d, mut e) = open();
    commit(&mut e, "main", |tx| {
        tx.mkdir(&vp("/dir"), false, 0o755).unwrap();
        tx.write_bytes(&vp("/dir/x"), b"x\n").unwrap();
    });
    dbos_branches::create(&mut e, "b", "main", None).unwrap();
    commit(&mut e, "main", |tx| tx.remove(&vp("/dir"), true).unwrap());
    commit(&mut e, "b", |tx| {
        tx.write_bytes(&vp("/dir/y"), b"y\n").unwrap()
    });
    merge(&mut e, "main", "b", Strategy::Theirs);
    let head = e.head().unwrap();
    let mut v = e.view_at("main", head).unwrap();
    let has_y = v.stat(&vp("/dir/y")).unwrap().is_some();
    let dir = v.stat(&vp("/dir")).unwrap();
    let walked: Vec<String> = v
        .walk(&VPath::root())
        .unwrap()
        .into_iter()
        .map(|(p, _)| p.as_str().to_string())
        .collect();
    assert!(has_y, "/dir/y was not merged");
    assert!(
        matches!(dir, Some(Entry::Dir { .. })),
        "/dir/y merged but /dir is {dir:?}; walk gives {walked:?}"
    );
}
