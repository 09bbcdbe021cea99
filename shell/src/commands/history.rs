//! History: log, history.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_engine::{BranchId, BranchInfo, Entry, Lineage, LineageStep, Space, TxId, TxInfo};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub fn specs() -> Vec<Spec> {
    vec![spec!(Log, log), spec!(History, history)]
}

/// A transaction as JSON (the shape `log --format json` documents).
pub fn tx_json(t: &TxInfo) -> serde_json::Value {
    json!({
        "id": t.id,
        "ref": format!("T{}", t.id),
        "time": output::time_rfc3339(t.time_us),
        "author": t.author,
        "host": t.host,
        "command": t.command,
        "message": t.message,
        "hash": dbos_engine::hex(&t.hash),
    })
}

/// A transaction as one log line: `T<id>  time  author  command  (message)`.
pub fn tx_line(t: &TxInfo, color: bool) -> String {
    let line = tx_plain_line(t);
    if !color {
        return line;
    }
    let id_len = format!("T{}", t.id).len();
    format!(
        "{}{}",
        output::paint(true, "33", &line[..id_len]),
        &line[id_len..]
    )
}

fn tx_plain_line(t: &TxInfo) -> String {
    let msg = t
        .message
        .as_ref()
        .map(|m| format!("  ({m})"))
        .unwrap_or_default();
    format!(
        "T{:<5} {}  {:<10} {}{}",
        t.id,
        output::time(t.time_us),
        t.author,
        t.command,
        msg
    )
}

/// List transactions, newest first.
#[derive(Parser)]
#[command(
    name = "log",
    about = "List transactions, newest first",
    long_about = "List the transactions visible on the current branch, newest first.\n\n\
'log BRANCH' lists another branch's; 'log PATH' only the transactions that changed PATH (a \
name that is both a branch and a path means the branch). 'log --graph' draws the history with a \
column per branch, like 'git log --graph': '*' marks a transaction in its branch's column, '|\\' \
a merge joining the merged branch's column, '|/' the point a branch was forked from. Without \
--all the graph shows the branch's own history and what was merged into it; with --all every \
branch's, deleted ones included.",
    disable_version_flag = true
)]
struct Log {
    /// Show at most N transactions.
    #[arg(short = 'n', value_name = "N")]
    count: Option<usize>,
    /// Start from a past moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Draw the history as a graph, a column per branch.
    #[arg(long)]
    graph: bool,
    /// With --graph: every branch, deleted ones included.
    #[arg(long, requires = "graph")]
    all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// A branch (its log), or a path (only transactions that changed it).
    #[arg(value_name = "BRANCH|PATH")]
    path: Option<String>,
}

fn log(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Log>(ctx, argv)? else {
        return Ok(0);
    };
    let limit = a.count.unwrap_or(usize::MAX);
    // A name of an existing branch means that branch; anything else a path.
    let named_branch = match &a.path {
        Some(p) => ctx.sess.engine.backend().branch_by_name(p)?.map(|b| b.name),
        None => None,
    };
    let path = if named_branch.is_some() {
        None
    } else {
        a.path.clone()
    };
    let at = match (&a.as_of, &named_branch) {
        (Some(r), Some(b)) => Some(ctx.sess.engine.resolve_ref(b, r)?),
        (Some(r), None) => Some(ctx.sess.moment(r)?),
        (None, Some(_)) => None,
        (None, None) => ctx.sess.asof.clone(),
    };
    let branch = named_branch
        .or_else(|| at.as_ref().map(|m| m.branch.clone()))
        .unwrap_or_else(|| ctx.sess.branch.clone());
    if a.graph {
        if path.is_some() {
            return Err(Failure::Usage(format!(
                "--graph takes a branch, and {:?} is not one (try --help)",
                path.unwrap_or_default()
            )));
        }
        return log_graph(ctx, &branch, at.map(|m| m.tx), a.all, limit, a.format);
    }
    let txs: Vec<TxInfo> = match &path {
        None => ctx.sess.engine.log(&branch, at.map(|m| m.tx), limit)?,
        Some(p) => {
            let path = ctx.sess.abs(p)?;
            let mut v: Vec<TxInfo> = ctx
                .sess
                .engine
                .history(&branch, at.map(|m| m.tx), Space::File, path.as_str())?
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            v.truncate(limit);
            v
        }
    };
    if a.format == Format::Json {
        let v: Vec<_> = txs.iter().map(tx_json).collect();
        ctx.print(&output::json(&json!(v)));
    } else {
        let color = ctx.color();
        for t in &txs {
            ctx.println(&tx_line(t, color));
        }
    }
    Ok(0)
}

/// `log --graph`: collect the transactions to draw, lay them out, print.
fn log_graph(
    ctx: &mut Ctx<'_>,
    branch: &str,
    at: Option<TxId>,
    all: bool,
    limit: usize,
    format: Format,
) -> CmdResult {
    let engine = &mut ctx.sess.engine;
    let head = engine.head()?;
    let upto = at.unwrap_or(head);
    let every = engine.backend().all_branches()?;
    let live: BTreeSet<BranchId> = engine.branches()?.iter().map(|b| b.id).collect();
    let by_id: HashMap<BranchId, BranchInfo> = every.iter().map(|b| (b.id, b.clone())).collect();
    let mut txs: BTreeMap<TxId, TxInfo> = BTreeMap::new();
    if all {
        for b in &every {
            let own = Lineage {
                steps: vec![LineageStep { branch: b.id, upto }],
            };
            for t in engine.backend().transactions(&own, None, usize::MAX)? {
                txs.insert(t.id, t);
            }
        }
    } else {
        // The branch's lineage, plus (recursively) what was merged into it.
        let start = engine.branch(branch)?;
        let mut seen: HashMap<BranchId, TxId> = HashMap::new();
        let mut todo = vec![(start, upto)];
        while let Some((b, upto)) = todo.pop() {
            let lineage = engine.lineage(&b, upto)?;
            for step in lineage.steps {
                let done = seen.get(&step.branch).copied();
                if done.is_some_and(|d| d >= step.upto) {
                    continue;
                }
                seen.insert(step.branch, step.upto);
                let one = Lineage { steps: vec![step] };
                for t in engine.backend().transactions(&one, None, usize::MAX)? {
                    if done.is_some_and(|d| t.id <= d) {
                        continue;
                    }
                    if let Some((mb, mt)) = t.merge {
                        if let Some(info) = by_id.get(&mb) {
                            todo.push((info.clone(), mt));
                        }
                    }
                    txs.insert(t.id, t);
                }
            }
        }
    }
    // Where each branch's column ends: the transaction it was forked from.
    let mut fork_base: HashMap<BranchId, TxId> = HashMap::new();
    for b in &every {
        if let (Some(p), Some(f)) = (b.parent, b.fork_tx) {
            let Some(parent) = by_id.get(&p) else {
                continue;
            };
            let lineage = engine.lineage(parent, f)?;
            if let Some(t) = engine.backend().transactions(&lineage, None, 1)?.first() {
                fork_base.insert(b.id, t.id);
            }
        }
    }
    let mut rows: Vec<TxInfo> = txs.into_values().rev().collect();
    rows.truncate(limit);
    let nodes: Vec<GraphNode> = rows
        .iter()
        .map(|t| GraphNode {
            id: t.id,
            branch: t.branch_id,
            merge: t.merge.map(|(b, _)| b),
        })
        .collect();
    let lines = graph_layout(&nodes, &fork_base);
    let label = |id: BranchId| match by_id.get(&id) {
        Some(b) if live.contains(&id) => b.name.clone(),
        Some(b) => format!("{}, deleted", b.name),
        None => format!("#{id}"),
    };
    if format == Format::Json {
        let v: Vec<_> = lines
            .iter()
            .map(|(g, row)| match row {
                Some(i) => {
                    let t = &rows[*i];
                    let mut tx = tx_json(t);
                    tx["branch"] = json!(by_id.get(&t.branch_id).map(|b| b.name.clone()));
                    tx["branch_deleted"] = json!(!live.contains(&t.branch_id));
                    tx["merge"] = json!(t.merge.map(|(b, mt)| json!({
                        "branch": by_id.get(&b).map(|b| b.name.clone()),
                        "tx": mt,
                    })));
                    json!({"graph": g, "tx": tx})
                }
                None => json!({"graph": g, "tx": null}),
            })
            .collect();
        ctx.print(&output::json(&json!(v)));
        return Ok(0);
    }
    let color = ctx.color();
    for (g, row) in &lines {
        match row {
            Some(i) => {
                let t = &rows[*i];
                let id = output::paint(color, "33", &format!("T{}", t.id));
                let msg = t
                    .message
                    .as_ref()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default();
                ctx.println(&format!(
                    "{g} {id} ({}) {} {}{msg}",
                    label(t.branch_id),
                    t.author,
                    t.command
                ));
            }
            None => ctx.println(g),
        }
    }
    Ok(0)
}

/// One transaction of a graph: its id, its branch and, for a merge, the
/// branch merged in.
#[derive(Clone, Copy, Debug)]
struct GraphNode {
    id: TxId,
    branch: BranchId,
    merge: Option<BranchId>,
}

/// The lowest free column at or after `from`.
fn free_lane(lanes: &[Option<BranchId>], from: usize) -> usize {
    (from..)
        .find(|&i| lanes.get(i).is_none_or(|l| l.is_none()))
        .unwrap_or(from)
}

fn set_lane(lanes: &mut Vec<Option<BranchId>>, i: usize, b: Option<BranchId>) {
    if lanes.len() <= i {
        lanes.resize(i + 1, None);
    }
    lanes[i] = b;
}

/// The columns as characters: `|` for a live column, `*` at `star`.
fn lane_chars(lanes: &[Option<BranchId>], star: Option<usize>, min_len: usize) -> Vec<char> {
    let len = (lanes.len() * 2).max(min_len);
    let mut buf = vec![' '; len];
    for (i, l) in lanes.iter().enumerate() {
        if l.is_some() {
            buf[2 * i] = '|';
        }
    }
    if let Some(c) = star {
        buf[2 * c] = '*';
    }
    buf
}

fn chars_line(buf: &[char]) -> String {
    buf.iter().collect::<String>().trim_end().to_string()
}

/// Lay transactions (newest first) out in columns, one per branch alive at
/// that row, like `git log --graph`. A branch's column runs from its newest
/// transaction down to the transaction it was forked from (`fork_base`),
/// where it joins that transaction's column (`|/`); a merge opens (or
/// joins) the merged branch's column (`|\`). Returns the lines: the graph
/// text and, for a transaction's line, the index of its node (connector
/// lines have None).
fn graph_layout(
    nodes: &[GraphNode],
    fork_base: &HashMap<BranchId, TxId>,
) -> Vec<(String, Option<usize>)> {
    let mut lanes: Vec<Option<BranchId>> = Vec::new();
    let mut out = Vec::new();
    let base_of = |b: &BranchId| fork_base.get(b).copied();
    for (i, n) in nodes.iter().enumerate() {
        // A column whose fork point is not drawn ends where it was passed.
        for l in lanes.iter_mut() {
            if l.is_some_and(|b| b != n.branch && base_of(&b).is_some_and(|f| f > n.id)) {
                *l = None;
            }
        }
        // Columns of branches forked from this transaction.
        let mut waiting: Vec<usize> = lanes
            .iter()
            .enumerate()
            .filter_map(|(j, l)| match l {
                Some(b) if *b != n.branch && base_of(b) == Some(n.id) => Some(j),
                _ => None,
            })
            .collect();
        let mut col = match lanes.iter().position(|l| *l == Some(n.branch)) {
            Some(c) => c,
            // The history of a forked branch continues its column.
            None if !waiting.is_empty() => waiting.remove(0),
            None => free_lane(&lanes, 0),
        };
        set_lane(&mut lanes, col, Some(n.branch));

        // The other forked branches' columns join this one (`|/`) above it,
        // right to left.
        waiting.sort_unstable_by(|a, b| b.cmp(a));
        let ending: BTreeSet<usize> = waiting.iter().copied().collect();
        for f in waiting {
            let (keep, gone) = (col.min(f), col.max(f));
            let mut buf = lane_chars(&lanes, None, 0);
            // Columns between that end here too need no route drawn.
            let route = (keep + 1..gone).any(|j| !ending.contains(&j) || lanes[j].is_none());
            if route {
                for c in buf.iter_mut().take(2 * gone - 1).skip(2 * keep + 1) {
                    if *c == ' ' {
                        *c = '-';
                    }
                }
            }
            buf[2 * gone - 1] = '/';
            buf[2 * gone] = ' ';
            out.push((chars_line(&buf), None));
            set_lane(&mut lanes, gone, None);
            set_lane(&mut lanes, keep, Some(n.branch));
            col = keep;
        }

        out.push((chars_line(&lane_chars(&lanes, Some(col), 0)), Some(i)));

        // A merge opens (or joins) the merged branch's column below (`|\\`).
        if let Some(mb) = n.merge.filter(|mb| *mb != n.branch) {
            let m = lanes
                .iter()
                .position(|l| *l == Some(mb))
                .unwrap_or_else(|| free_lane(&lanes, col + 1));
            let mut buf = lane_chars(&lanes, None, 2 * m + 1);
            if m > col {
                for c in buf.iter_mut().take(2 * m - 1).skip(2 * col + 1) {
                    if *c == ' ' {
                        *c = '-';
                    }
                }
                buf[2 * m - 1] = '\\';
            } else {
                buf[2 * m + 1] = '/';
                for c in buf.iter_mut().take(2 * col).skip(2 * m + 2) {
                    if *c == ' ' {
                        *c = '-';
                    }
                }
            }
            out.push((chars_line(&buf), None));
            set_lane(&mut lanes, m, Some(mb));
        }
        while lanes.last().is_some_and(|l| l.is_none()) {
            lanes.pop();
        }
    }
    out
}

/// List every version of a path.
#[derive(Parser)]
#[command(
    name = "history",
    about = "List every version of a path, newest first, with the transaction that made it",
    disable_version_flag = true
)]
struct History {
    /// Only versions visible at a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// The path.
    path: String,
}

fn history(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<History>(ctx, argv)? else {
        return Ok(0);
    };
    let path = ctx.sess.abs(&a.path)?;
    let at = match &a.as_of {
        Some(r) => Some(ctx.sess.moment(r)?),
        None => ctx.sess.asof.clone(),
    };
    let branch = at
        .as_ref()
        .map(|m| m.branch.clone())
        .unwrap_or_else(|| ctx.sess.branch.clone());
    let versions =
        ctx.sess
            .engine
            .history(&branch, at.map(|m| m.tx), Space::File, path.as_str())?;
    if versions.is_empty() {
        return Err(crate::session::Failure::Failed(format!(
            "{path}: no history (never existed on branch {branch})"
        )));
    }
    let mut rows = Vec::new();
    for (i, (t, e)) in versions.iter().enumerate() {
        let older_exists = versions
            .get(i + 1)
            .map(|(_, e)| e.is_some())
            .unwrap_or(false);
        let change = match (e, older_exists) {
            (None, _) => "removed",
            (Some(_), false) => "created",
            (Some(_), true) => "modified",
        };
        rows.push((t, e, change));
    }
    if a.format == Format::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|(t, e, change)| {
                json!({
                    "tx": tx_json(t),
                    "change": change,
                    "type": e.as_ref().map(output::kind_name),
                    "size": e.as_ref().map(Entry::size),
                    "mode": e.as_ref().and_then(|e| e.meta()).map(|m| format!("{:04o}", m.mode)),
                })
            })
            .collect();
        ctx.print(&output::json(&json!(v)));
        return Ok(0);
    }
    for (t, e, change) in rows {
        let detail = match e {
            Some(e) => format!("{} {} bytes", output::mode_string(e), e.size()),
            None => "-".to_string(),
        };
        ctx.println(&format!(
            "T{:<5} {}  {:<8} {:<22} {:<10} {}",
            t.id,
            output::time(t.time_us),
            change,
            detail,
            t.author,
            t.command
        ));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: BranchId = 1;
    const A: BranchId = 2;
    const B: BranchId = 3;

    fn node(id: TxId, branch: BranchId) -> GraphNode {
        GraphNode {
            id,
            branch,
            merge: None,
        }
    }

    fn merge(id: TxId, branch: BranchId, from: BranchId) -> GraphNode {
        GraphNode {
            id,
            branch,
            merge: Some(from),
        }
    }

    /// The graph with each transaction line ending in `T<id>`.
    fn draw(nodes: &[GraphNode], bases: &[(BranchId, TxId)]) -> String {
        let bases: HashMap<BranchId, TxId> = bases.iter().copied().collect();
        graph_layout(nodes, &bases)
            .into_iter()
            .map(|(g, row)| match row {
                Some(i) => format!("{g} T{}\n", nodes[i].id),
                None => format!("{g}\n"),
            })
            .collect()
    }

    #[test]
    fn linear_history_is_one_column() {
        let g = draw(&[node(3, MAIN), node(2, MAIN), node(1, MAIN)], &[]);
        assert_eq!(g, "* T3\n* T2\n* T1\n");
    }

    #[test]
    fn fork_and_merge() {
        // main: T1 T2 T4 T6(merge a) T7; a forked at T2: T3 T5.
        let nodes = [
            node(7, MAIN),
            merge(6, MAIN, A),
            node(5, A),
            node(4, MAIN),
            node(3, A),
            node(2, MAIN),
            node(1, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2)]);
        assert_eq!(
            g,
            "* T7\n* T6\n|\\\n| * T5\n* | T4\n| * T3\n|/\n* T2\n* T1\n"
        );
    }

    #[test]
    fn unmerged_branch_newer_than_main() {
        // a (forked at T2) has the newest transactions.
        let nodes = [
            node(5, A),
            node(4, MAIN),
            node(3, A),
            node(2, MAIN),
            node(1, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2)]);
        assert_eq!(g, "* T5\n| * T4\n* | T3\n|/\n* T2\n* T1\n");
    }

    #[test]
    fn branch_alone_continues_into_its_parent() {
        // Only a's lineage: its own transactions, then main's before the fork.
        let nodes = [node(5, A), node(3, A), node(2, MAIN), node(1, MAIN)];
        let g = draw(&nodes, &[(A, 2)]);
        assert_eq!(g, "* T5\n* T3\n* T2\n* T1\n");
    }

    #[test]
    fn two_branches_forked_at_one_point() {
        let nodes = [
            node(6, MAIN),
            node(5, A),
            node(4, B),
            node(2, MAIN),
            node(1, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2), (B, 2)]);
        assert_eq!(g, "* T6\n| * T5\n| | * T4\n| |/\n|/\n* T2\n* T1\n");
    }

    #[test]
    fn branch_crossing_another_routes_around_it() {
        // b forked at T1, a at T2; b's column passes a's to join main.
        let nodes = [
            node(6, MAIN),
            node(5, A),
            node(4, B),
            node(2, MAIN),
            node(1, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2), (B, 1)]);
        assert_eq!(g, "* T6\n| * T5\n| | * T4\n|/  |\n*   | T2\n|--/\n* T1\n");
    }

    #[test]
    fn merge_of_the_parent_into_a_branch() {
        // a forked at T2, then main (T3) merged into a (T4).
        let nodes = [
            merge(4, A, MAIN),
            node(3, MAIN),
            node(2, MAIN),
            node(1, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2)]);
        assert_eq!(g, "* T4\n|\\\n| * T3\n|/\n* T2\n* T1\n");
    }

    #[test]
    fn merge_into_an_existing_column_to_the_left() {
        // main (column 0) is merged into a (column 1) while main goes on.
        let nodes = [
            node(5, MAIN),
            merge(4, A, MAIN),
            node(3, MAIN),
            node(2, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2)]);
        assert_eq!(g, "* T5\n| * T4\n|/|\n* | T3\n|/\n* T2\n");
    }

    #[test]
    fn far_merge_routes_past_other_columns() {
        // main merges b while a's column lies between.
        let nodes = [
            node(7, A),
            merge(6, MAIN, B),
            node(5, B),
            node(3, A),
            node(2, MAIN),
        ];
        let g = draw(&nodes, &[(A, 2), (B, 2)]);
        assert_eq!(
            g,
            "* T7\n| * T6\n| |\\\n| | * T5\n* | | T3\n| |/\n|/\n* T2\n"
        );
    }
}
