//! File tree operations: rmdir, mv, cp, ln, chmod, stat, tree, find.
//!
//! Commands that change the tree are atomic: either every operand is done,
//! or (on the first error) none is and the state is left unchanged.
//! Commands that only read report a missing operand on standard error,
//! go on with the others and exit with status 1.

use super::{parse, Ctx, Spec};
use crate::lang::GlobPattern;
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_engine::{Entry, NodeKind, Space, TxInfo, Txn, VPath};
use serde_json::json;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Rmdir, rmdir),
        spec!(Mv, mv),
        spec!(Cp, cp),
        spec!(Ln, ln),
        spec!(Chmod, chmod),
        spec!(Stat, stat),
        spec!(Tree, tree),
        spec!(FindHelp, find),
    ]
}

/// Every argument made absolute against the working directory.
fn abs_all(ctx: &Ctx<'_>, args: &[String]) -> Result<Vec<VPath>, Failure> {
    args.iter().map(|p| ctx.sess.abs(p)).collect()
}

/// The last name of a path as typed (`a/b/` gives `b`), if it is a real name.
fn base_name(arg: &str) -> Option<&str> {
    arg.rsplit('/')
        .find(|c| !c.is_empty())
        .filter(|c| *c != "." && *c != "..")
}

/// Where an operand goes when the destination may be a directory: into it
/// (DEST/name) when `dest_dir` is set, else the destination itself.
fn target_for(src: &VPath, dest: &VPath, dest_dir: bool) -> Result<VPath, Failure> {
    if !dest_dir {
        return Ok(dest.clone());
    }
    if src.is_root() {
        return Err(Failure::Failed(
            "the root directory cannot be moved or copied into a directory".into(),
        ));
    }
    Ok(dest.join(src.name())?)
}

/// Split `SRC... DEST` operands, with GNU-style messages when one is missing.
fn split_operands(operands: &[String]) -> Result<(&[String], &String), Failure> {
    match operands {
        [] => Err(Failure::Usage("missing file operand (try --help)".into())),
        [only] => Err(Failure::Usage(format!(
            "missing destination file operand after '{only}' (try --help)"
        ))),
        [srcs @ .., dest] => Ok((srcs, dest)),
    }
}

/// Resolve a destination: (the path to use, whether it is an existing
/// directory, following symbolic links to it).
fn resolve_dest(tx: &mut Txn<'_>, dest: &VPath) -> Result<(VPath, bool), Failure> {
    let followed = tx.canonicalize(dest, true)?;
    if let Some(Entry::Dir { .. }) = tx.stat(&followed)? {
        return Ok((followed, true));
    }
    Ok((tx.canonicalize(dest, false)?, false))
}

// ----- rmdir -----------------------------------------------------------------

/// Remove empty directories.
#[derive(Parser)]
#[command(
    name = "rmdir",
    about = "Remove empty directories",
    long_about = "Remove empty directories. A directory that has entries, or an operand that \
is not a directory, is an error and nothing is removed.",
    disable_version_flag = true
)]
struct Rmdir {
    /// Also remove each parent directory named in the operand, when it becomes empty.
    #[arg(short = 'p')]
    parents: bool,
    /// Directories.
    #[arg(value_name = "DIR")]
    dirs: Vec<String>,
}

fn rmdir(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Rmdir>(ctx, argv)? else {
        return Ok(0);
    };
    if a.dirs.is_empty() {
        return Err(Failure::Usage("missing operand (try --help)".into()));
    }
    // Each operand, then with -p its leading parts as named (a/b/c, a/b, a).
    let mut paths = Vec::new();
    for arg in &a.dirs {
        paths.push(ctx.sess.abs(arg)?);
        if a.parents {
            let mut named = arg.trim_end_matches('/');
            while let Some(i) = named.rfind('/') {
                named = named[..i].trim_end_matches('/');
                if named.is_empty() {
                    break;
                }
                paths.push(ctx.sess.abs(named)?);
            }
        }
    }
    ctx.sess.write(|tx| {
        for p in &paths {
            let real = tx.canonicalize(p, false)?;
            tx.rmdir(&real)?;
        }
        Ok(0)
    })
}

// ----- mv --------------------------------------------------------------------

/// Move or rename files and directories.
#[derive(Parser)]
#[command(
    name = "mv",
    about = "Move or rename files and directories",
    long_about = "Move or rename files and directories.\n\n\
mv SRC DEST renames SRC to DEST; when DEST is an existing directory (or a symbolic link to \
one), SRC is moved into it as DEST/name. With several SOURCEs, DEST must be a directory. A \
file replaces a file, a directory replaces only an empty directory. All the moves are one \
change: if one fails, none is made.",
    disable_version_flag = true
)]
struct Mv {
    /// Sources, then the destination.
    #[arg(value_name = "SRC... DEST")]
    operands: Vec<String>,
}

fn mv(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Mv>(ctx, argv)? else {
        return Ok(0);
    };
    let (srcs, dest_arg) = split_operands(&a.operands)?;
    let srcs_abs = abs_all(ctx, srcs)?;
    let dest = ctx.sess.abs(dest_arg)?;
    ctx.sess.write(|tx| {
        let (dest, dest_dir) = resolve_dest(tx, &dest)?;
        if srcs.len() > 1 && !dest_dir {
            return Err(Failure::Failed(format!(
                "target '{dest_arg}' is not a directory"
            )));
        }
        for (arg, src) in srcs.iter().zip(&srcs_abs) {
            let from = tx.canonicalize(src, false)?;
            tx.entry(&from)?;
            let to = target_for(&from, &dest, dest_dir)?;
            if from == to {
                return Err(Failure::Failed(format!(
                    "'{arg}' and '{to}' are the same file"
                )));
            }
            tx.rename(&from, &to)?;
        }
        Ok(0)
    })
}

// ----- cp --------------------------------------------------------------------

/// Copy files and directories.
#[derive(Parser)]
#[command(
    name = "cp",
    about = "Copy files and directories (content is shared, not duplicated)",
    long_about = "Copy files and directories. Content is shared with the source, not stored \
twice.\n\n\
cp SRC DEST copies SRC to DEST; when DEST is an existing directory, SRC is copied into it as \
DEST/name. With several SOURCEs, DEST must be a directory. Directories are copied only with \
-r; copying a directory onto an existing directory merges them. Without -r, symbolic links \
given as SOURCE are followed; with -r they are copied as links. All the copies are one \
change: if one fails, none is made.",
    disable_version_flag = true
)]
struct Cp {
    /// Copy directories and everything in them.
    #[arg(short = 'r', short_alias = 'R', long = "recursive")]
    recursive: bool,
    /// Sources, then the destination.
    #[arg(value_name = "SRC... DEST")]
    operands: Vec<String>,
}

/// Copy `from` to `to`, merging into an existing directory.
fn copy_merge(tx: &mut Txn<'_>, from: &VPath, to: &VPath, recursive: bool) -> Result<(), Failure> {
    let src = tx.entry(from)?;
    match tx.stat(to)? {
        None => Ok(tx.copy(from, to, recursive)?),
        Some(Entry::Dir { .. }) if src.is_dir() => {
            for (name, _) in tx.read_dir(from)? {
                copy_merge(tx, &from.join(&name)?, &to.join(&name)?, recursive)?;
            }
            Ok(())
        }
        Some(Entry::Dir { .. }) => Err(Failure::Failed(format!(
            "cannot overwrite directory '{to}' with non-directory '{from}'"
        ))),
        Some(_) if src.is_dir() => Err(Failure::Failed(format!(
            "cannot overwrite non-directory '{to}' with directory '{from}'"
        ))),
        Some(_) => Ok(tx.copy(from, to, recursive)?),
    }
}

fn cp(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Cp>(ctx, argv)? else {
        return Ok(0);
    };
    let (srcs, dest_arg) = split_operands(&a.operands)?;
    let srcs_abs = abs_all(ctx, srcs)?;
    let dest = ctx.sess.abs(dest_arg)?;
    ctx.sess.write(|tx| {
        let (dest_dir_path, dest_dir) = resolve_dest(tx, &dest)?;
        // A non-directory destination is written through a symbolic link.
        let dest = if dest_dir {
            dest_dir_path
        } else {
            tx.canonicalize(&dest, true)?
        };
        if srcs.len() > 1 && !dest_dir {
            return Err(Failure::Failed(format!(
                "target '{dest_arg}' is not a directory"
            )));
        }
        for (arg, src) in srcs.iter().zip(&srcs_abs) {
            let from = tx.canonicalize(src, !a.recursive)?;
            let entry = tx.entry(&from)?;
            if entry.is_dir() && !a.recursive {
                return Err(Failure::Failed(format!(
                    "-r not specified; omitting directory '{arg}'"
                )));
            }
            let to = target_for(&from, &dest, dest_dir)?;
            if from == to {
                return Err(Failure::Failed(format!(
                    "'{arg}' and '{to}' are the same file"
                )));
            }
            if entry.is_dir() && to.starts_with(&from) {
                return Err(Failure::Failed(format!(
                    "cannot copy a directory, '{arg}', into itself, '{to}'"
                )));
            }
            copy_merge(tx, &from, &to, a.recursive)?;
        }
        Ok(0)
    })
}

// ----- ln --------------------------------------------------------------------

/// Make symbolic links.
#[derive(Parser)]
#[command(
    name = "ln",
    about = "Make a symbolic link (ln -s TARGET [LINKNAME])",
    long_about = "Make a symbolic link LINKNAME pointing to TARGET. Only symbolic links are \
supported, so -s is required. TARGET is stored as written (a relative TARGET is resolved from \
the link's directory when the link is followed). When LINKNAME is an existing directory, or \
is omitted (the working directory), the link is created in it as DIR/name-of-TARGET.",
    disable_version_flag = true
)]
struct Ln {
    /// Make a symbolic link (required: hard links are not supported).
    #[arg(short = 's', long = "symbolic")]
    symbolic: bool,
    /// Replace an existing LINKNAME that is not a directory.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// What the link points to (stored as written).
    #[arg(value_name = "TARGET")]
    target: Option<String>,
    /// The link to create (default: the working directory).
    #[arg(value_name = "LINKNAME")]
    link: Option<String>,
}

fn ln(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Ln>(ctx, argv)? else {
        return Ok(0);
    };
    if !a.symbolic {
        return Err(Failure::Usage(
            "hard links are not supported; use 'ln -s TARGET LINKNAME' for a symbolic link".into(),
        ));
    }
    let Some(target) = a.target.clone() else {
        return Err(Failure::Usage("missing file operand (try --help)".into()));
    };
    let link = ctx.sess.abs(a.link.as_deref().unwrap_or("."))?;
    ctx.sess.write(|tx| {
        let (dest, dest_dir) = resolve_dest(tx, &link)?;
        let path = if dest_dir {
            let name = base_name(&target).ok_or_else(|| {
                Failure::Failed(format!(
                    "cannot name a link after '{target}' in directory '{dest}'; give LINKNAME"
                ))
            })?;
            dest.join(name)?
        } else {
            dest
        };
        if a.force {
            // Replacing the target by a link to itself would lose it.
            let base = path.parent().unwrap_or_else(VPath::root);
            if VPath::resolve(&base, &target).ok().as_ref() == Some(&path) {
                return Err(Failure::Failed(format!(
                    "'{target}' and '{path}' are the same file"
                )));
            }
            match tx.stat(&path)? {
                Some(Entry::Dir { .. }) => {
                    return Err(Failure::Failed(format!("{path}: is a directory")))
                }
                Some(_) => tx.remove(&path, false)?,
                None => {}
            }
        }
        tx.symlink(&target, &path)?;
        Ok(0)
    })
}

// ----- chmod -----------------------------------------------------------------

/// Change permission bits.
#[derive(Parser)]
#[command(
    name = "chmod",
    about = "Change permission bits",
    long_about = "Change permission bits of files and directories (symbolic links are \
followed).\n\n\
MODE is octal (755, 0644) or symbolic: comma-separated clauses [ugoa]*[+-=][rwxXst]* or \
[ugoa]*[+-=][ugo], e.g. u+x, go-w, a=r, +x, u=rw,g=r,o=. With no u/g/o/a, 'a' is meant \
(there is no umask). X means x only for directories and for files already executable by \
someone. All the changes are one change: if one fails, none is made.",
    disable_version_flag = true
)]
struct Chmod {
    /// Change directories and everything in them (links inside are not followed).
    #[arg(short = 'R', long = "recursive")]
    recursive: bool,
    /// The new mode: octal, or symbolic such as u+x or go-w.
    #[arg(value_name = "MODE", allow_hyphen_values = true)]
    mode: Option<String>,
    /// Files and directories.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

/// A mode given to chmod: octal, or symbolic clauses.
enum ModeSpec {
    Octal(u32),
    Symbolic(String),
}

impl ModeSpec {
    fn parse(s: &str) -> Result<ModeSpec, Failure> {
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(ModeSpec::Octal(super::files::parse_mode(s)?));
        }
        // Validate once against a sample mode, to fail before any change.
        apply_symbolic(s, 0, false)?;
        Ok(ModeSpec::Symbolic(s.to_string()))
    }

    fn apply(&self, mode: u32, is_dir: bool) -> Result<u32, Failure> {
        match self {
            ModeSpec::Octal(m) => Ok(*m),
            ModeSpec::Symbolic(s) => apply_symbolic(s, mode, is_dir),
        }
    }
}

/// Apply a symbolic mode (`u+x`, `go-w,a=r`, `g=u`) to `mode`.
fn apply_symbolic(spec: &str, mode: u32, is_dir: bool) -> Result<u32, Failure> {
    let bad = |why: &str| Failure::Usage(format!("invalid mode {spec:?}: {why}"));
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let cs: Vec<char> = clause.chars().collect();
        let mut i = 0;
        let mut who = 0u32;
        while let Some(c) = cs.get(i).filter(|c| "ugoa".contains(**c)) {
            who |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            };
            i += 1;
        }
        if who == 0 {
            who = 0o7777;
        }
        if i >= cs.len() {
            return Err(bad("expected an operator (+, - or =) in each clause"));
        }
        while let Some(&op) = cs.get(i) {
            if !"+-=".contains(op) {
                return Err(bad(&format!("unexpected {op:?}")));
            }
            i += 1;
            let mut perm = 0u32;
            if let Some(c) = cs.get(i).filter(|c| "ugo".contains(**c)) {
                let bits = match c {
                    'u' => (mode >> 6) & 7,
                    'g' => (mode >> 3) & 7,
                    _ => mode & 7,
                };
                perm = bits * 0o111;
                i += 1;
            } else {
                while let Some(c) = cs.get(i).filter(|c| "rwxXst".contains(**c)) {
                    perm |= match c {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' => 0o111,
                        'X' if is_dir || mode & 0o111 != 0 => 0o111,
                        'X' => 0,
                        's' => 0o6000,
                        _ => 0o1000,
                    };
                    i += 1;
                }
            }
            let perm = perm & who;
            match op {
                '+' => mode |= perm,
                '-' => mode &= !perm,
                _ => mode = (mode & !who) | perm,
            }
        }
    }
    Ok(mode)
}

fn chmod(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Chmod>(ctx, argv)? else {
        return Ok(0);
    };
    let Some(mode_text) = a.mode.as_deref() else {
        return Err(Failure::Usage("missing operand (try --help)".into()));
    };
    if a.paths.is_empty() {
        return Err(Failure::Usage(format!(
            "missing operand after '{mode_text}' (try --help)"
        )));
    }
    let spec = ModeSpec::parse(mode_text)?;
    let paths = abs_all(ctx, &a.paths)?;
    ctx.sess.write(|tx| {
        for p in &paths {
            let real = tx.canonicalize(p, true)?;
            let targets = if a.recursive {
                tx.walk(&real)?
            } else {
                vec![(real.clone(), tx.entry(&real)?)]
            };
            for (path, e) in targets {
                // Links are not followed inside a recursive change.
                if let Entry::Symlink { .. } = e {
                    continue;
                }
                let old = e.meta().map(|m| m.mode).unwrap_or(0);
                let new = spec.apply(old, e.is_dir())?;
                tx.chmod(&path, new)?;
            }
        }
        Ok(0)
    })
}

// ----- stat ------------------------------------------------------------------

/// Show what is known about entries of the tree.
#[derive(Parser)]
#[command(
    name = "stat",
    about = "Show an entry's type, size, mode, owner, time and last change",
    long_about = "Show an entry's type, size, mode (octal and rwx), owner, group, modification \
time, link target, and the transaction that last changed it ('pending' when the change is \
not committed yet). Symbolic links are shown themselves unless -L is given.",
    disable_version_flag = true
)]
struct Stat {
    /// Follow symbolic links.
    #[arg(short = 'L', long = "dereference")]
    follow: bool,
    /// Show the state as of a moment (T<id>, a time, '10m ago', BRANCH@REF).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Files, directories or links.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

/// What `stat` shows about one entry.
struct StatInfo {
    path: VPath,
    entry: Entry,
    /// The transaction that wrote the visible version, if committed.
    last: Option<TxInfo>,
    /// True when the visible version is an uncommitted change.
    pending: bool,
}

fn stat_json(s: &StatInfo) -> serde_json::Value {
    let m = s.entry.meta().copied();
    json!({
        "path": s.path.as_str(),
        "type": output::kind_name(&s.entry),
        "size": s.entry.size(),
        "mode": m.map(|m| format!("{:04o}", m.mode)),
        "permissions": output::mode_string(&s.entry),
        "uid": m.map(|m| m.uid),
        "gid": m.map(|m| m.gid),
        "mtime": m.map(|m| output::time_rfc3339(m.mtime_ns.div_euclid(1000))),
        "target": match &s.entry { Entry::Symlink { target, .. } => Some(target.clone()), _ => None },
        "last_change": s.last.as_ref().map(super::history::tx_json),
        "pending": s.pending,
    })
}

fn stat_text(s: &StatInfo) -> String {
    let m = s.entry.meta().copied();
    let name = match &s.entry {
        Entry::Symlink { target, .. } => format!("{} -> {target}", s.path),
        _ => s.path.to_string(),
    };
    let change = if s.pending {
        "pending (not committed yet)".to_string()
    } else {
        match &s.last {
            Some(t) => format!(
                "T{} {} by {}: {}",
                t.id,
                output::time(t.time_us),
                t.author,
                t.command
            ),
            None => "unknown".to_string(),
        }
    };
    let mtime = m
        .map(|m| {
            let ns = m.mtime_ns;
            chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), 0)
                .map(|t| {
                    format!(
                        "{}.{:09} UTC",
                        t.format("%Y-%m-%d %H:%M:%S"),
                        ns.rem_euclid(1_000_000_000)
                    )
                })
                .unwrap_or_else(|| ns.to_string())
        })
        .unwrap_or_default();
    format!(
        "  File: {name}\n  Type: {}\n  Size: {}\n  Mode: {:04o} ({})\n   Uid: {}\n   Gid: {}\nModify: {mtime}\nChange: {change}\n",
        output::kind_name(&s.entry),
        s.entry.size(),
        m.map(|m| m.mode).unwrap_or(0),
        output::mode_string(&s.entry),
        m.map(|m| m.uid).unwrap_or(0),
        m.map(|m| m.gid).unwrap_or(0),
    )
}

fn stat(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Stat>(ctx, argv)? else {
        return Ok(0);
    };
    if a.paths.is_empty() {
        return Err(Failure::Usage("missing operand (try --help)".into()));
    }
    // Where the history is read: the viewed moment, else the branch now.
    let (branch, at) = match &a.as_of {
        Some(r) => {
            let m = ctx.sess.moment(r)?;
            (m.branch, Some(m.tx))
        }
        None => match &ctx.sess.asof {
            Some(m) => (m.branch.clone(), Some(m.tx)),
            None => (ctx.sess.branch.clone(), None),
        },
    };
    let mut status = 0;
    let mut infos = Vec::new();
    for arg in &a.paths {
        let got = ctx.sess.abs(arg).and_then(|path| {
            let (path, entry) = ctx.sess.read(a.as_of.as_deref(), |tx| {
                let real = tx.canonicalize(&path, a.follow)?;
                let e = tx.entry(&real)?;
                Ok((real, e))
            })?;
            let versions = ctx
                .sess
                .engine
                .history(&branch, at, Space::File, path.as_str())?;
            let newest = versions.into_iter().next();
            let pending = newest.as_ref().and_then(|(_, e)| e.as_ref()) != Some(&entry);
            Ok(StatInfo {
                path,
                entry,
                last: newest.map(|(t, _)| t),
                pending,
            })
        });
        match got {
            Ok(info) => infos.push(info),
            Err(f) => {
                ctx.warn(&format!("dbos: stat: {}", f.message()));
                status = 1;
            }
        }
    }
    if a.format == Format::Json {
        let docs: Vec<_> = infos.iter().map(stat_json).collect();
        let doc = if a.paths.len() > 1 {
            json!(docs)
        } else {
            docs.into_iter().next().unwrap_or(json!(null))
        };
        ctx.print(&output::json(&doc));
    } else {
        for (i, info) in infos.iter().enumerate() {
            if i > 0 {
                ctx.println("");
            }
            ctx.print(&stat_text(info));
        }
    }
    Ok(status)
}

// ----- tree ------------------------------------------------------------------

/// Show a directory as an indented tree.
#[derive(Parser)]
#[command(
    name = "tree",
    about = "Show a directory and everything below it as a tree",
    long_about = "Show a directory and everything below it as an indented tree, directories \
with a trailing '/', symbolic links as 'name -> target' (not followed), then a summary line \
'N directories, M files' (links count as files).",
    disable_version_flag = true
)]
struct Tree {
    /// Include names starting with '.'.
    #[arg(short = 'a')]
    all: bool,
    /// Descend at most LEVEL directories.
    #[arg(short = 'L', value_name = "LEVEL")]
    level: Option<usize>,
    /// Show the state as of a moment (T<id>, a time, '10m ago', BRANCH@REF).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Directory (default: the working directory).
    #[arg(value_name = "PATH")]
    path: Option<String>,
}

/// Lines and counts of a tree being drawn.
#[derive(Default)]
struct TreeOut {
    lines: Vec<String>,
    dirs: usize,
    files: usize,
}

fn tree_label(name: &str, e: &Entry) -> String {
    match e {
        Entry::Dir { .. } => format!("{name}/"),
        Entry::Symlink { target, .. } => format!("{name} -> {target}"),
        _ => name.to_string(),
    }
}

fn tree_walk(
    tx: &mut Txn<'_>,
    dir: &VPath,
    prefix: &str,
    depth: usize,
    a: &Tree,
    out: &mut TreeOut,
) -> Result<(), Failure> {
    if a.level.is_some_and(|l| depth >= l) {
        return Ok(());
    }
    let kids: Vec<(String, Entry)> = tx
        .read_dir(dir)?
        .into_iter()
        .filter(|(n, _)| a.all || !n.starts_with('.'))
        .collect();
    let n = kids.len();
    for (i, (name, e)) in kids.into_iter().enumerate() {
        let last = i + 1 == n;
        let branch = if last { "└── " } else { "├── " };
        out.lines
            .push(format!("{prefix}{branch}{}", tree_label(&name, &e)));
        if e.is_dir() {
            out.dirs += 1;
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            tree_walk(tx, &dir.join(&name)?, &deeper, depth + 1, a, out)?;
        } else {
            out.files += 1;
        }
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn tree(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Tree>(ctx, argv)? else {
        return Ok(0);
    };
    let arg = a.path.clone().unwrap_or_else(|| ".".to_string());
    let path = ctx.sess.abs(&arg)?;
    let out = ctx.sess.read(a.as_of.as_deref(), |tx| {
        let real = tx.canonicalize(&path, true)?;
        let e = tx.entry(&real)?;
        let mut out = TreeOut::default();
        if e.is_dir() {
            out.lines.push(arg.clone());
            tree_walk(tx, &real, "", 0, &a, &mut out)?;
        } else {
            let own = tx.canonicalize(&path, false)?;
            out.lines.push(tree_label(&arg, &tx.entry(&own)?));
            out.files += 1;
        }
        Ok(out)
    })?;
    for line in &out.lines {
        ctx.println(line);
    }
    ctx.println("");
    ctx.println(&format!(
        "{}, {}",
        plural(out.dirs, "directory", "directories"),
        plural(out.files, "file", "files")
    ));
    Ok(0)
}

// ----- find ------------------------------------------------------------------

/// Search the tree for entries by name and type.
#[derive(Parser)]
#[command(
    name = "find",
    about = "Search the tree for entries by name and type",
    long_about = "Search the tree below each PATH (default: the working directory) and print \
every entry that matches all the tests, one path per line, depth first in name order. \
Symbolic links are not followed.",
    override_usage = "find [--as-of REF] [PATH...] [-name GLOB] [-iname GLOB] [-type f|d|l] \
[-maxdepth N] [-mindepth N]",
    after_help = "Tests (single dash, after the paths):\n  \
-name GLOB     the entry's name matches GLOB (*, ?, [...]; quote it)\n  \
-iname GLOB    like -name, ignoring case\n  \
-type f|d|l    regular file, directory or symbolic link\n  \
-maxdepth N    descend at most N levels below PATH\n  \
-mindepth N    skip entries less than N levels below PATH",
    disable_version_flag = true
)]
struct FindHelp {
    /// Search the state as of a moment (T<id>, a time, '10m ago', BRANCH@REF).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Where to search (default: the working directory).
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

/// Parsed `find` arguments.
#[derive(Default)]
struct FindArgs {
    as_of: Option<String>,
    paths: Vec<String>,
    name: Option<GlobPattern>,
    iname: Option<GlobPattern>,
    kind: Option<NodeKind>,
    maxdepth: Option<usize>,
    mindepth: usize,
}

fn parse_find(argv: &[String]) -> Result<FindArgs, Failure> {
    let mut f = FindArgs::default();
    let mut it = argv.iter().skip(1);
    let mut in_tests = false;
    let need = |opt: &str, v: Option<&String>| -> Result<String, Failure> {
        v.cloned()
            .ok_or_else(|| Failure::Usage(format!("missing argument to '{opt}' (try --help)")))
    };
    let number = |opt: &str, v: String| -> Result<usize, Failure> {
        v.parse().map_err(|_| {
            Failure::Usage(format!(
                "'{opt}' expects a non-negative number, not {v:?} (try --help)"
            ))
        })
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--as-of" => f.as_of = Some(need(arg, it.next())?),
            s if s.starts_with("--as-of=") => f.as_of = Some(s["--as-of=".len()..].to_string()),
            "-name" => {
                in_tests = true;
                f.name = Some(GlobPattern::parse(&need(arg, it.next())?));
            }
            "-iname" => {
                in_tests = true;
                let pat = need(arg, it.next())?.to_lowercase();
                f.iname = Some(GlobPattern::parse(&pat));
            }
            "-type" => {
                in_tests = true;
                f.kind = Some(match need(arg, it.next())?.as_str() {
                    "f" => NodeKind::File,
                    "d" => NodeKind::Dir,
                    "l" => NodeKind::Symlink,
                    other => {
                        return Err(Failure::Usage(format!(
                            "unknown argument to -type: {other:?} (use f, d or l)"
                        )))
                    }
                });
            }
            "-maxdepth" => {
                in_tests = true;
                f.maxdepth = Some(number(arg, need(arg, it.next())?)?);
            }
            "-mindepth" => {
                in_tests = true;
                f.mindepth = number(arg, need(arg, it.next())?)?;
            }
            "-print" => in_tests = true,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(Failure::Usage(format!(
                    "unknown predicate '{s}' (try --help)"
                )))
            }
            path if !in_tests => f.paths.push(path.to_string()),
            other => {
                return Err(Failure::Usage(format!(
                    "paths must precede the tests: '{other}' (try --help)"
                )))
            }
        }
    }
    Ok(f)
}

fn find(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    if argv.iter().skip(1).any(|a| a == "--help") {
        parse::<FindHelp>(ctx, &["find".to_string(), "--help".to_string()])?;
        return Ok(0);
    }
    let f = parse_find(argv)?;
    let paths = if f.paths.is_empty() {
        vec![".".to_string()]
    } else {
        f.paths.clone()
    };
    let mut status = 0;
    for arg in &paths {
        let got = ctx.sess.abs(arg).and_then(|path| {
            ctx.sess.read(f.as_of.as_deref(), |tx| {
                let real = tx.canonicalize(&path, false)?;
                Ok(tx.walk(&real).map(|w| (real, w))?)
            })
        });
        let (start, walk) = match got {
            Ok(w) => w,
            Err(e) => {
                ctx.warn(&format!("dbos: find: {}", e.message()));
                status = 1;
                continue;
            }
        };
        for (p, e) in walk {
            let rel = if p == start {
                ""
            } else if start.is_root() {
                &p.as_str()[1..]
            } else {
                p.as_str()[start.as_str().len()..].trim_start_matches('/')
            };
            let depth = rel.split('/').filter(|c| !c.is_empty()).count();
            if f.maxdepth.is_some_and(|m| depth > m) || depth < f.mindepth {
                continue;
            }
            let shown = if rel.is_empty() {
                arg.clone()
            } else if arg.ends_with('/') {
                format!("{arg}{rel}")
            } else {
                format!("{arg}/{rel}")
            };
            let name = if rel.is_empty() {
                base_name(arg)
                    .map(str::to_string)
                    .unwrap_or_else(|| arg.trim_end_matches('/').to_string())
            } else {
                p.name().to_string()
            };
            let name = if name.is_empty() {
                "/".to_string()
            } else {
                name
            };
            if f.name.as_ref().is_some_and(|g| !g.matches(&name)) {
                continue;
            }
            if f.iname
                .as_ref()
                .is_some_and(|g| !g.matches(&name.to_lowercase()))
            {
                continue;
            }
            if f.kind.is_some_and(|k| e.kind() != k) {
                continue;
            }
            ctx.println(&shown);
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        let m = |spec: &str, mode: u32, dir: bool| apply_symbolic(spec, mode, dir).ok();
        assert_eq!(m("u+x", 0o644, false), Some(0o744));
        assert_eq!(m("go-w", 0o777, false), Some(0o755));
        assert_eq!(m("a=r", 0o777, false), Some(0o444));
        assert_eq!(m("+x", 0o644, false), Some(0o755));
        assert_eq!(m("g=u,o=", 0o700, false), Some(0o770));
        assert_eq!(m("a+X", 0o600, true), Some(0o711));
        assert_eq!(m("a+X", 0o600, false), Some(0o600));
        assert_eq!(m("u+s,g+s,+t", 0o755, false), Some(0o7755));
        assert_eq!(m("u=", 0o4755, false), Some(0o055));
        assert_eq!(m("u+r-w=x", 0o644, false), Some(0o144));
        for bad in ["", "u", "u+q", "x+r", "u+r,", ",u+r", "ug"] {
            assert!(m(bad, 0o644, false).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/a/b/"), Some("b"));
        assert_eq!(base_name("../x"), Some("x"));
        assert_eq!(base_name("x"), Some("x"));
        assert_eq!(base_name("/"), None);
        assert_eq!(base_name(".."), None);
        assert_eq!(base_name("a/."), None);
    }

    #[test]
    fn find_arguments() {
        let argv = |s: &str| -> Vec<String> {
            std::iter::once("find")
                .chain(s.split_whitespace())
                .map(str::to_string)
                .collect()
        };
        let Ok(f) = parse_find(&argv("/a b --as-of T3 -name *.rs -type d -maxdepth 2")) else {
            panic!("valid arguments refused");
        };
        assert_eq!(f.paths, ["/a", "b"]);
        assert_eq!(f.as_of.as_deref(), Some("T3"));
        assert_eq!(f.kind, Some(NodeKind::Dir));
        assert_eq!(f.maxdepth, Some(2));
        assert!(f
            .name
            .is_some_and(|g| g.matches("x.rs") && !g.matches("x.rc")));
        for bad in [
            "-type",
            "-type q",
            "-name",
            "-x",
            "-name a b",
            "-maxdepth -1",
        ] {
            assert!(parse_find(&argv(bad)).is_err(), "{bad:?} must be refused");
        }
    }
}
