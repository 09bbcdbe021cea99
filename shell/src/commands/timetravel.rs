//! Time travel: show, diff, revert, reset, asof.
//!
//! Every REF is resolved by the engine (`T<id>`, `HEAD`, `HEAD~N`, ISO
//! times, `10m ago`, branch and tag names, `BRANCH@REF`). Changes are read
//! from the engine (`changes`, `diff`); file contents are read chunk by chunk
//! from read-only views, so nothing here can modify the past.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_engine::{parse_ref, Change, Content, Engine, Entry, Moment, RefSpec, Space, Txn, VPath};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Show, show),
        spec!(Diff, diff),
        spec!(Revert, revert),
        spec!(Reset, reset),
        spec!(Asof, asof),
    ]
}

/// Files at least this large are not diffed line by line.
const MAX_TEXT_DIFF: u64 = 1 << 20;

/// The REF forms, for help texts.
macro_rules! ref_forms {
    () => {
        "REF forms: T<id>, HEAD, HEAD~N, an ISO time ('2026-11-20T10:00:00Z', \
'2026-11-20 10:00', UTC unless an offset is given), a relative time ('10m ago', '2 hours ago'), \
a branch or tag name (its newest state), BRANCH@REF ('main@T40', 'exp@10m ago')."
    };
}

// ----- shared helpers -----------------------------------------------------

/// `T<id>`, or `BRANCH@T<id>` when the moment is on another branch.
fn moment_label(m: &Moment, current_branch: &str) -> String {
    if m.branch == current_branch {
        format!("T{}", m.tx)
    } else {
        format!("{}@T{}", m.branch, m.tx)
    }
}

/// How a key is shown: a path, `config KEY` or `process ID`.
fn key_label(space: Space, path: &str) -> String {
    match space {
        Space::File => path.to_string(),
        Space::Config => format!("config {path}"),
        Space::Process => format!("process {path}"),
        Space::Metric => format!("metric {path}"),
        Space::Boot => format!("boot {path}"),
    }
}

/// `added`, `modified` or `removed`.
fn change_kind(c: &Change) -> &'static str {
    match (&c.before, &c.after) {
        (None, Some(_)) => "added",
        (Some(_), Some(_)) => "modified",
        _ => "removed",
    }
}

/// Git-style letter of a change kind.
fn change_letter(kind: &str) -> char {
    match kind {
        "added" => 'A',
        "removed" => 'D',
        _ => 'M',
    }
}

/// What changed besides content, as `mode 0644 -> 0755`, `file -> dir`, ...
fn annotations(c: &Change) -> Vec<String> {
    let (Some(b), Some(a)) = (&c.before, &c.after) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if b.kind() != a.kind() {
        out.push(format!(
            "{} -> {}",
            output::kind_name(b),
            output::kind_name(a)
        ));
        return out;
    }
    if let (Some(mb), Some(ma)) = (b.meta(), a.meta()) {
        if mb.mode != ma.mode {
            out.push(format!("mode {:04o} -> {:04o}", mb.mode, ma.mode));
        }
        if (mb.uid, mb.gid) != (ma.uid, ma.gid) {
            out.push(format!(
                "owner {}:{} -> {}:{}",
                mb.uid, mb.gid, ma.uid, ma.gid
            ));
        }
    }
    if let (Entry::Symlink { target: tb, .. }, Entry::Symlink { target: ta, .. }) = (b, a) {
        if tb != ta {
            out.push(format!("target {tb} -> {ta}"));
        }
    }
    out
}

/// One summary line: `M /f (mode 0644 -> 0755)`.
fn summary_line(c: &Change) -> String {
    let notes = annotations(c);
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    format!(
        "{} {}{}",
        change_letter(change_kind(c)),
        key_label(c.space, &c.path),
        notes
    )
}

/// An entry as JSON.
fn entry_json(e: &Entry) -> serde_json::Value {
    let mut v = json!({ "type": output::kind_name(e) });
    if let Some(m) = e.meta() {
        v["mode"] = json!(format!("{:04o}", m.mode));
        v["uid"] = json!(m.uid);
        v["gid"] = json!(m.gid);
        v["mtime"] = json!(output::time_rfc3339(m.mtime_ns / 1000));
    }
    match e {
        Entry::File { content, .. } => {
            v["size"] = json!(content.size);
            v["digest"] = json!(dbos_engine::hex(&content.digest));
        }
        Entry::Symlink { target, .. } => v["target"] = json!(target),
        Entry::Value(s) => v["value"] = json!(s),
        Entry::Dir { .. } => {}
    }
    v
}

/// The bytes of a stored content, read through a read-only view of `at`.
fn read_content(engine: &mut Engine, at: &Moment, content: &Content) -> Result<Vec<u8>, Failure> {
    let mut view = engine.view_at(&at.branch, at.tx)?;
    let mut out = Vec::new();
    for chunk in content.chunks.iter() {
        out.extend_from_slice(&view.read_chunk(*chunk)?);
    }
    Ok(out)
}

/// The detailed difference of one change.
enum Detail {
    /// A unified diff of text.
    Text(String),
    /// Binary content differs.
    Binary,
    /// Content differs but is too large to diff.
    Large(u64, u64),
}

fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

fn unified(old: &str, new: &str, a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(a, b)
        .to_string()
}

/// The content difference of a change (None when there is no content
/// difference to show: directories, symlinks, processes, metadata only).
/// `at_before` / `at_after` are the moments whose views read each side.
fn detail(
    engine: &mut Engine,
    c: &Change,
    at_before: &Moment,
    at_after: &Moment,
) -> Result<Option<Detail>, Failure> {
    match c.space {
        Space::Process | Space::Metric | Space::Boot => return Ok(None),
        Space::Config => {
            let text = |e: &Option<Entry>| match e {
                Some(Entry::Value(v)) => format!("{v}\n"),
                _ => String::new(),
            };
            let (old, new) = (text(&c.before), text(&c.after));
            if old == new {
                return Ok(None);
            }
            let a = format!("config {} (before)", c.path);
            let b = format!("config {} (after)", c.path);
            return Ok(Some(Detail::Text(unified(&old, &new, &a, &b))));
        }
        Space::File => {}
    }
    let content = |e: &Option<Entry>| match e {
        Some(Entry::File { content, .. }) => Some(content.clone()),
        _ => None,
    };
    let (cb, ca) = (content(&c.before), content(&c.after));
    if cb.is_none() && ca.is_none() {
        return Ok(None);
    }
    if let (Some(x), Some(y)) = (&cb, &ca) {
        if x == y {
            return Ok(None);
        }
    }
    let size = |c: &Option<Content>| c.as_ref().map(|c| c.size).unwrap_or(0);
    if size(&cb) >= MAX_TEXT_DIFF || size(&ca) >= MAX_TEXT_DIFF {
        return Ok(Some(Detail::Large(size(&cb), size(&ca))));
    }
    let old = match &cb {
        Some(c) => read_content(engine, at_before, c)?,
        None => Vec::new(),
    };
    let new = match &ca {
        Some(c) => read_content(engine, at_after, c)?,
        None => Vec::new(),
    };
    if !is_text(&old) || !is_text(&new) {
        return Ok(Some(Detail::Binary));
    }
    let (a, b) = diff_headers(c, cb.is_some(), ca.is_some());
    let old = String::from_utf8_lossy(&old);
    let new = String::from_utf8_lossy(&new);
    Ok(Some(Detail::Text(unified(&old, &new, &a, &b))))
}

/// Git-style headers: `a/path`, `b/path`, `/dev/null` for a missing side.
fn diff_headers(c: &Change, has_before: bool, has_after: bool) -> (String, String) {
    let a = if has_before {
        format!("a{}", c.path)
    } else {
        "/dev/null".to_string()
    };
    let b = if has_after {
        format!("b{}", c.path)
    } else {
        "/dev/null".to_string()
    };
    (a, b)
}

/// Text of a detail, ready to print.
fn detail_text(c: &Change, d: &Detail) -> String {
    let (a, b) = diff_headers(c, c.before.is_some(), c.after.is_some());
    match d {
        Detail::Text(t) => t.clone(),
        Detail::Binary => format!("--- {a}\n+++ {b}\nBinary files differ\n"),
        Detail::Large(x, y) => {
            format!("--- {a}\n+++ {b}\nLarge files differ ({x} -> {y} bytes; not diffed)\n")
        }
    }
}

/// Changes with their details, rendered as text or as JSON values.
struct Rendered {
    lines: Vec<String>,
    diffs: Vec<String>,
    json: Vec<serde_json::Value>,
}

fn render(
    engine: &mut Engine,
    changes: &[Change],
    at_before: &Moment,
    at_after: &Moment,
    with_details: bool,
) -> Result<Rendered, Failure> {
    let mut r = Rendered {
        lines: Vec::new(),
        diffs: Vec::new(),
        json: Vec::new(),
    };
    for c in changes {
        let d = if with_details {
            detail(engine, c, at_before, at_after)?
        } else {
            None
        };
        r.lines.push(summary_line(c));
        if let Some(d) = &d {
            r.diffs.push(detail_text(c, d));
        }
        r.json.push(json!({
            "path": c.path,
            "space": c.space.as_str(),
            "change": change_kind(c),
            "before": c.before.as_ref().map(entry_json),
            "after": c.after.as_ref().map(entry_json),
            "diff": match &d { Some(Detail::Text(t)) => Some(t.clone()), _ => None },
            "binary": matches!(d, Some(Detail::Binary)),
        }));
    }
    Ok(r)
}

/// `3 paths changed (1 added, 1 modified, 1 removed)`.
fn stat_line(changes: &[Change]) -> String {
    let count = |k: &str| changes.iter().filter(|c| change_kind(c) == k).count();
    let n = changes.len();
    format!(
        "{n} path{} changed ({} added, {} modified, {} removed)",
        if n == 1 { "" } else { "s" },
        count("added"),
        count("modified"),
        count("removed")
    )
}

/// True when a key is a file-space key at or below `p`.
fn under(space: Space, key: &str, p: &VPath) -> bool {
    space == Space::File
        && (p.is_root()
            || key == p.as_str()
            || (key.starts_with(p.as_str()) && key.as_bytes().get(p.as_str().len()) == Some(&b'/')))
}

// ----- show ---------------------------------------------------------------

/// Show a transaction: its metadata and what it changed.
#[derive(Parser)]
#[command(
    name = "show",
    about = "Show a transaction: who made it, when, with which command, and what it changed",
    disable_version_flag = true,
    after_help = concat!(
        "Each changed key is listed as added, modified or removed (files by path, \
config keys as 'config KEY', process records as 'process ID'), followed by a unified diff \
of changed text files. The transaction can be named by any REF; it is the last transaction \
visible at that moment.\n\nExample: show T42\n\n",
        ref_forms!()
    )
)]
struct Show {
    /// List the changes only, without diffs.
    #[arg(long)]
    stat: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// The transaction (T<id>, or any REF).
    #[arg(value_name = "T<id>")]
    tx: String,
}

fn show(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Show>(ctx, argv)? else {
        return Ok(0);
    };
    let m = ctx.sess.moment(&a.tx)?;
    let info = ctx.sess.engine.tx_info(m.tx)?;
    let changes = ctx.sess.engine.changes(info.id)?;
    let branches = ctx.sess.engine.branches()?;
    let branch_name = |id: i64| {
        branches
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let branch = branch_name(info.branch_id);
    // Stored contents are shared by every view: read both sides through a
    // view of the session's branch at its newest state.
    let head = ctx.sess.engine.head()?;
    let reader = Moment {
        branch: ctx.sess.branch.clone(),
        tx: head,
    };
    let r = render(&mut ctx.sess.engine, &changes, &reader, &reader, !a.stat)?;
    if a.format == Format::Json {
        let mut v = super::history::tx_json(&info);
        v["branch"] = json!(branch);
        v["merge"] = match info.merge {
            Some((b, t)) => json!({"branch": branch_name(b), "tx": t}),
            None => json!(null),
        };
        v["changes"] = json!(r.json);
        ctx.print(&output::json(&v));
        return Ok(0);
    }
    ctx.println(&format!("T{}", info.id));
    ctx.println(&format!("Branch:  {branch}"));
    ctx.println(&format!("Time:    {}", output::time(info.time_us)));
    ctx.println(&format!("Author:  {}", info.author));
    ctx.println(&format!("Host:    {}", info.host));
    ctx.println(&format!("Command: {}", info.command));
    if let Some(msg) = &info.message {
        ctx.println(&format!("Message: {msg}"));
    }
    if let Some((b, t)) = info.merge {
        ctx.println(&format!("Merge:   {}@T{t}", branch_name(b)));
    }
    ctx.println(&format!("Hash:    {}", dbos_engine::hex(&info.hash)));
    ctx.println("");
    if changes.is_empty() {
        ctx.println("No changes to files, config or processes.");
        return Ok(0);
    }
    ctx.println(&format!("Changes ({}):", changes.len()));
    for c in &changes {
        let notes = annotations(c);
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        ctx.println(&format!(
            "  {:<9} {}{}",
            change_kind(c),
            key_label(c.space, &c.path),
            notes
        ));
    }
    if !r.diffs.is_empty() {
        ctx.println("");
        for d in &r.diffs {
            ctx.print(d);
        }
    }
    Ok(0)
}

// ----- diff ---------------------------------------------------------------

/// Compare two moments.
#[derive(Parser)]
#[command(
    name = "diff",
    about = "Show what differs between two moments, or between a moment and the present",
    disable_version_flag = true,
    override_usage = "diff [--stat] [--format text|json] REF [REF] [PATH]",
    after_help = concat!(
        "With one REF, compare it with the present state of the current branch: its \
newest committed transaction (or, under 'asof', the moment viewed). Pending changes of an open \
transaction are not included. With two REFs, compare the first with the second.\n\n\
An argument that reads as a REF is a REF, otherwise it is a PATH: paths that also read as a \
REF must be written with a leading ./ or /. With a PATH, only that file, or everything under \
that directory, is compared; config keys and process records are compared only when no PATH \
is given.\n\n\
Output: a line per change (A added, M modified, D removed; mode changes as \
'M path (mode 0644 -> 0755)'), then a unified diff of each changed text file (binary files: \
'Binary files differ'; files of 1 MiB or more are not diffed).\n\n",
        ref_forms!()
    )
)]
struct Diff {
    /// Print only the change lines and a count.
    #[arg(long)]
    stat: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// REF [REF] [PATH].
    #[arg(value_name = "REF|PATH", required = true, num_args = 1..=3)]
    args: Vec<String>,
}

/// True when text is written as a path (`/x`, `./x`, `../x`, `.`).
fn written_as_path(text: &str) -> bool {
    text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "."
}

/// True when text is unmistakably meant as a REF (not a branch or tag name,
/// which could as well be a file name).
fn ref_like(text: &str) -> bool {
    match parse_ref(text, 0) {
        Ok(RefSpec::Name(_)) => false,
        Ok(_) => true,
        Err(_) => {
            let t = text.trim();
            t.starts_with("HEAD") || t.ends_with("ago")
        }
    }
}

fn diff(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Diff>(ctx, argv)? else {
        return Ok(0);
    };
    let mut refs: Vec<Moment> = Vec::new();
    let mut path: Option<VPath> = None;
    for (i, arg) in a.args.iter().enumerate() {
        if path.is_some() {
            return Err(Failure::Usage(format!(
                "unexpected argument {arg:?}: only one PATH may be given (try --help)"
            )));
        }
        if i == 0 {
            if written_as_path(arg) {
                return Err(Failure::Usage(format!(
                    "expected a REF before the path {arg:?} (try --help)"
                )));
            }
            refs.push(ctx.sess.moment(arg)?);
            continue;
        }
        if refs.len() < 2 && !written_as_path(arg) {
            match ctx.sess.moment(arg) {
                Ok(m) => {
                    refs.push(m);
                    continue;
                }
                Err(f) if ref_like(arg) => return Err(f),
                Err(_) => {}
            }
        }
        path = Some(ctx.sess.abs(arg)?);
    }
    let (from, to) = match refs.as_slice() {
        [one] => {
            let present = match &ctx.sess.asof {
                Some(m) => m.clone(),
                None => Moment {
                    branch: ctx.sess.branch.clone(),
                    tx: ctx.sess.engine.head()?,
                },
            };
            (one.clone(), present)
        }
        [x, y] => (x.clone(), y.clone()),
        _ => return Err(Failure::Usage("expected REF [REF] [PATH]".into())),
    };
    let mut changes = ctx.sess.engine.diff(&from, &to)?;
    if let Some(p) = &path {
        changes.retain(|c| under(c.space, &c.path, p));
    }
    let r = render(&mut ctx.sess.engine, &changes, &from, &to, !a.stat)?;
    if a.format == Format::Json {
        ctx.print(&output::json(&json!(r.json)));
        return Ok(0);
    }
    for l in &r.lines {
        ctx.println(l);
    }
    if a.stat {
        ctx.println(&stat_line(&changes));
        return Ok(0);
    }
    if !r.diffs.is_empty() {
        ctx.println("");
        for d in &r.diffs {
            ctx.print(d);
        }
    }
    Ok(0)
}

// ----- revert -------------------------------------------------------------

/// Undo one transaction with a new one.
#[derive(Parser)]
#[command(
    name = "revert",
    about = "Undo one transaction: put back what it changed, as a new transaction",
    disable_version_flag = true,
    after_help = concat!(
        "Every key the transaction changed must still hold what it left; if one was \
changed since, revert fails naming it and changes nothing. A file is restored only if its \
directory exists (or is restored too). History keeps everything, the reverted transaction \
included.\n\nExample: revert T42\n\n",
        ref_forms!()
    )
)]
struct Revert {
    /// The transaction to undo (T<id>, or any REF).
    #[arg(value_name = "T<id>")]
    tx: String,
}

/// Why a key differs from what transaction `id` left: ` (changed by T<n>)`,
/// ` (changed in the open transaction)` or nothing.
fn changed_by(tx: &mut Txn<'_>, branch: &str, id: u64, space: Space, path: &str) -> String {
    let pending = tx
        .state()
        .pending()
        .iter()
        .any(|(s, p, _)| *s == space && p == path);
    if pending {
        return " (changed in the open transaction)".to_string();
    }
    match tx.engine().history(branch, None, space, path) {
        Ok(v) => match v.first() {
            Some((t, _)) if t.id > id => format!(" (changed by T{})", t.id),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

fn revert(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Revert>(ctx, argv)? else {
        return Ok(0);
    };
    let id = ctx.sess.moment(&a.tx)?.tx;
    let changes = ctx.sess.engine.changes(id)?;
    if changes.is_empty() {
        ctx.println(&format!(
            "T{id} changed no files, config or processes: nothing to revert"
        ));
        return Ok(0);
    }
    if changes
        .iter()
        .any(|c| c.space == Space::File && c.path == "/" && c.before.is_none())
    {
        return Err(Failure::Failed(format!(
            "T{id} created the root directory; it cannot be reverted"
        )));
    }
    let branch = ctx.sess.branch.clone();
    ctx.sess.write(|tx| {
        // Every key must still hold what the transaction left.
        for c in &changes {
            if tx.get(c.space, &c.path)? != c.after {
                let why = changed_by(tx, &branch, id, c.space, &c.path);
                return Err(Failure::Failed(format!(
                    "conflict: {} has changed since T{id}{why}; nothing was reverted",
                    key_label(c.space, &c.path)
                )));
            }
        }
        // Directories the revert removes must hold only what the
        // transaction added.
        let gone: BTreeSet<&str> = changes
            .iter()
            .filter(|c| c.space == Space::File && c.before.is_none())
            .map(|c| c.path.as_str())
            .collect();
        for c in &changes {
            let was_dir = matches!(c.after, Some(Entry::Dir { .. }));
            let stays_dir = matches!(c.before, Some(Entry::Dir { .. }));
            if c.space != Space::File || !was_dir || stays_dir {
                continue;
            }
            let dir = VPath::parse(&c.path)?;
            for (name, _) in tx.read_dir(&dir)? {
                let child = dir.join(&name)?;
                if !gone.contains(child.as_str()) {
                    return Err(Failure::Failed(format!(
                        "cannot revert T{id}: {dir} would be removed, but it now holds {child}, \
                         which T{id} did not create; nothing was reverted"
                    )));
                }
            }
        }
        for c in &changes {
            tx.put(c.space, &c.path, c.before.clone())?;
        }
        // Every restored entry needs its directory.
        for c in &changes {
            if c.space != Space::File || c.before.is_none() {
                continue;
            }
            let Some(parent) = VPath::parse(&c.path)?.parent() else {
                continue;
            };
            match tx.get(Space::File, parent.as_str())? {
                Some(Entry::Dir { .. }) => {}
                Some(_) => {
                    return Err(Failure::Failed(format!(
                        "cannot revert T{id}: {} would be restored, but {parent} is no longer \
                         a directory; nothing was reverted",
                        c.path
                    )))
                }
                None => {
                    return Err(Failure::Failed(format!(
                        "cannot revert T{id}: {} would be restored, but its directory {parent} \
                         was removed since; nothing was reverted",
                        c.path
                    )))
                }
            }
        }
        Ok(())
    })?;
    ctx.println(&format!("Reverted T{id}"));
    Ok(0)
}

// ----- reset --------------------------------------------------------------

/// Make the present (or some paths) equal to a past moment.
#[derive(Parser)]
#[command(
    name = "reset",
    about = "Make the present state, or only some paths, equal to a moment, as a new transaction",
    disable_version_flag = true,
    after_help = concat!(
        "Nothing is lost: history keeps every version, and the reset itself can be \
reverted. Without PATH, every file, config key and process record is reset; with PATHs, only \
those files or directory subtrees (and any missing directories above them). Changes pending \
in an open transaction are reset too.\n\nExamples: reset T42    reset '1 hour ago' /etc\n\n",
        ref_forms!()
    )
)]
struct Reset {
    /// The moment to return to.
    #[arg(value_name = "REF")]
    target: String,
    /// Only these files or directories (everything under them).
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

fn reset(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Reset>(ctx, argv)? else {
        return Ok(0);
    };
    let target = ctx.sess.moment(&a.target)?;
    let paths = a
        .paths
        .iter()
        .map(|p| ctx.sess.abs(p))
        .collect::<Result<Vec<_>, _>>()?;
    let in_scope =
        |space: Space, key: &str| paths.is_empty() || paths.iter().any(|p| under(space, key, p));
    let branch = ctx.sess.branch.clone();
    let label = moment_label(&target, &branch);
    let count = ctx.sess.write(|tx| {
        let present = Moment {
            branch: branch.clone(),
            tx: tx.state().snapshot(),
        };
        let pending: Vec<(Space, String)> = tx
            .state()
            .pending()
            .into_iter()
            .map(|(s, p, _)| (s, p))
            .collect();
        let engine = tx.engine();
        // What each key in scope must hold: its state at the target.
        let mut want: BTreeMap<(Space, String), Option<Entry>> = engine
            .diff(&present, &target)?
            .into_iter()
            .filter(|c| in_scope(c.space, &c.path))
            .map(|c| ((c.space, c.path), c.after))
            .collect();
        let mut view = engine.view_at(&target.branch, target.tx)?;
        for (s, p) in pending {
            if in_scope(s, &p) && !want.contains_key(&(s, p.clone())) {
                let e = view.get(s, &p)?;
                want.insert((s, p), e);
            }
        }
        // Directories above restored entries, as they were at the target.
        let mut above: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        for ((s, p), e) in &want {
            if *s != Space::File || e.is_none() {
                continue;
            }
            let mut cur = VPath::parse(p)?.parent();
            while let Some(d) = cur {
                if d.is_root()
                    || want.contains_key(&(Space::File, d.to_string()))
                    || above.contains_key(d.as_str())
                {
                    break;
                }
                above.insert(d.to_string(), view.get(Space::File, d.as_str())?);
                cur = d.parent();
            }
        }
        drop(view);
        let mut n = 0usize;
        for ((s, p), e) in &want {
            if *s == Space::File && p == "/" && e.is_none() {
                return Err(Failure::Failed(format!(
                    "{label} is before the root directory existed; nothing was reset"
                )));
            }
            if tx.get(*s, p)? != *e {
                tx.put(*s, p, e.clone())?;
                n += 1;
            }
        }
        // Parents sort before their children, so missing directories are
        // restored from the top down.
        for (d, e) in &above {
            match (tx.get(Space::File, d)?, e) {
                (Some(Entry::Dir { .. }), _) => {}
                (None, Some(dir @ Entry::Dir { .. })) => {
                    tx.put(Space::File, d, Some(dir.clone()))?;
                    n += 1;
                }
                (Some(now), _) => {
                    return Err(Failure::Failed(format!(
                        "cannot restore entries under {d}: it is a {} now (add {d} to the \
                         paths to reset it too); nothing was reset",
                        output::kind_name(&now)
                    )))
                }
                (None, _) => {
                    return Err(Failure::Failed(format!(
                        "cannot restore entries under {d}: it was not a directory at {label}"
                    )))
                }
            }
        }
        Ok(n)
    })?;
    ctx.println(&format!(
        "Reset {count} path{} to {label}",
        if count == 1 { "" } else { "s" }
    ));
    Ok(0)
}

// ----- asof ---------------------------------------------------------------

/// View a past moment, read-only.
#[derive(Parser)]
#[command(
    name = "asof",
    about = "View a past moment read-only (asof REF), or return to the present (asof now)",
    disable_version_flag = true,
    after_help = concat!(
        "While viewing a moment, commands read the state of that moment and every \
change is refused. 'asof now' (or 'asof HEAD') returns to the present. Without REF, show \
what is being viewed. Not allowed while a transaction is open.\n\nExample: asof '1 hour ago'\n\n",
        ref_forms!()
    )
)]
struct Asof {
    /// The moment to view ('now' or 'HEAD': back to the present).
    #[arg(value_name = "REF")]
    target: Option<String>,
}

fn asof(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Asof>(ctx, argv)? else {
        return Ok(0);
    };
    let Some(text) = a.target else {
        let line = match &ctx.sess.asof {
            Some(m) => format!("Viewing {}@T{} (read-only)", m.branch, m.tx),
            None => format!("Viewing the present of branch {}", ctx.sess.branch),
        };
        ctx.println(&line);
        return Ok(0);
    };
    if matches!(text.trim(), "now" | "HEAD") {
        ctx.sess.asof = None;
        let line = format!("Back to the present of branch {}", ctx.sess.branch);
        ctx.println(&line);
        return Ok(0);
    }
    if ctx.sess.explicit.is_some() {
        return Err(Failure::Failed(
            "a transaction is open: commit or rollback it before viewing the past".into(),
        ));
    }
    let m = ctx.sess.moment(&text)?;
    ctx.println(&format!("Viewing {}@T{} (read-only)", m.branch, m.tx));
    ctx.sess.asof = Some(m);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_like_tells_refs_from_names() {
        assert!(ref_like("T3"));
        assert!(ref_like("HEAD~2"));
        assert!(ref_like("HEAD~x"));
        assert!(ref_like("10 parsecs ago"));
        assert!(ref_like("main@T3"));
        assert!(!ref_like("notes.txt"));
        assert!(!ref_like("dir/file"));
        assert!(!ref_like("x y"));
    }

    #[test]
    fn under_matches_subtrees_only() {
        let d = VPath::parse("/d").unwrap();
        assert!(under(Space::File, "/d", &d));
        assert!(under(Space::File, "/d/x", &d));
        assert!(!under(Space::File, "/dx", &d));
        assert!(!under(Space::Config, "/d", &d));
        assert!(under(Space::File, "/anything", &VPath::root()));
    }
}
