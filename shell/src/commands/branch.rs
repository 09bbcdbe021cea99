//! Branches: branch, switch, merge, tag.
//!
//! Branches are copy-on-write: creating one copies no rows, whatever the
//! size of the state. What is written on a branch is invisible elsewhere
//! until it is merged.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_branches::{Conflict, Strategy};
use dbos_engine::{Moment, Space};
use serde_json::json;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Branch, branch),
        spec!(Switch, switch),
        spec!(Merge, merge),
        spec!(Tag, tag),
    ]
}

impl From<dbos_branches::Error> for Failure {
    fn from(e: dbos_branches::Error) -> Self {
        match e {
            dbos_branches::Error::Engine(e) => Failure::from(e),
            other => Failure::Failed(other.to_string()),
        }
    }
}

/// Refuse a change of branch state while a transaction is open or a past
/// moment is being viewed.
fn refuse_open(ctx: &Ctx<'_>, what: &str) -> Result<(), Failure> {
    if ctx.sess.explicit.is_some() {
        return Err(Failure::Failed(format!(
            "a transaction is open on branch {}: commit or rollback it before {what}",
            ctx.sess.branch
        )));
    }
    if let Some(m) = &ctx.sess.asof {
        return Err(Failure::Failed(format!(
            "viewing {}@T{} (read-only): run 'asof now' before {what}",
            m.branch, m.tx
        )));
    }
    Ok(())
}

/// List, create, rename or delete branches.
#[derive(Parser)]
#[command(
    name = "branch",
    about = "List, create, rename or delete branches",
    long_about = "List, create, rename or delete branches.\n\n\
With no argument, list the branches (the current one marked with '*'), each with its newest \
transaction and where and when it was forked. 'branch NAME' creates NAME from the current \
branch's newest state (or from the moment viewed with 'asof'); '--from REF' creates it from \
any moment (T<id>, a time, a tag, BRANCH@REF). Creating a branch copies nothing.\n\n\
'branch -m OLD NEW' renames (the history stays), 'branch -m NEW' renames the current branch. \
'branch -d NAME' deletes a branch whose work has been merged; 'branch -D NAME' deletes it \
anyway. The transactions of a deleted branch stay in the history ('log --graph --all').",
    disable_version_flag = true
)]
struct Branch {
    /// Rename: OLD NEW, or NEW for the current branch.
    #[arg(short = 'm', conflicts_with_all = ["delete", "force_delete", "from"])]
    rename: bool,
    /// Delete branches whose work has been merged.
    #[arg(short = 'd', conflicts_with_all = ["force_delete", "from"])]
    delete: bool,
    /// Delete branches even with unmerged work.
    #[arg(short = 'D', conflicts_with = "from")]
    force_delete: bool,
    /// Create the branch from this moment (T<id>, a time, a tag, BRANCH@REF).
    #[arg(long, value_name = "REF")]
    from: Option<String>,
    /// Output format (of the listing).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Branch names.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

fn branch(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Branch>(ctx, argv)? else {
        return Ok(0);
    };
    if a.rename {
        let (old, new) = match a.names.as_slice() {
            [new] => (ctx.sess.branch.clone(), new.clone()),
            [old, new] => (old.clone(), new.clone()),
            _ => {
                return Err(Failure::Usage(
                    "-m takes OLD NEW, or NEW to rename the current branch (try --help)".into(),
                ))
            }
        };
        return rename(ctx, &old, &new);
    }
    if a.delete || a.force_delete {
        if a.names.is_empty() {
            return Err(Failure::Usage(
                "-d/-D need the name of a branch to delete (try --help)".into(),
            ));
        }
        let mut status = 0;
        for name in &a.names {
            if let Err(f) = delete(ctx, name, a.force_delete) {
                ctx.warn(&format!("dbos: branch: {}", f.message()));
                status = status.max(f.status());
            }
        }
        return Ok(status);
    }
    match a.names.as_slice() {
        [] => {
            if a.from.is_some() {
                return Err(Failure::Usage(
                    "--from needs the NAME of the branch to create (try --help)".into(),
                ));
            }
            list(ctx, a.format)
        }
        [name] => create(ctx, name, a.from.as_deref()),
        _ => Err(Failure::Usage(
            "one branch at a time: branch NAME [--from REF] (try --help)".into(),
        )),
    }
}

fn list(ctx: &mut Ctx<'_>, format: Format) -> CmdResult {
    let mut rows = dbos_branches::list(&mut ctx.sess.engine)?;
    rows.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    let current = ctx.sess.branch.clone();
    if format == Format::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.info.name,
                    "current": r.info.name == current,
                    "tip": r.tip,
                    "parent": r.parent_name,
                    "fork_tx": r.info.fork_tx,
                    "created": output::time_rfc3339(r.info.created_us),
                })
            })
            .collect();
        ctx.print(&output::json(&json!(v)));
        return Ok(0);
    }
    let width = rows.iter().map(|r| r.info.name.len()).max().unwrap_or(0);
    let tip_width = rows
        .iter()
        .map(|r| format!("T{}", r.tip).len())
        .max()
        .unwrap_or(0);
    let color = ctx.color();
    for r in &rows {
        let is_current = r.info.name == current;
        let mark = if is_current { '*' } else { ' ' };
        let name = format!("{:<width$}", r.info.name);
        let name = output::paint(color && is_current, "32", &name);
        let origin = match (&r.parent_name, r.info.fork_tx) {
            (Some(p), Some(f)) => {
                format!("from {p}@T{f}, {}", output::time(r.info.created_us))
            }
            (None, Some(f)) => format!(
                "from a deleted branch@T{f}, {}",
                output::time(r.info.created_us)
            ),
            _ => format!("root, {}", output::time(r.info.created_us)),
        };
        let tip = format!("T{}", r.tip);
        ctx.println(&format!("{mark} {name}  {tip:<tip_width$}  {origin}"));
    }
    Ok(0)
}

/// Refuse a new branch name that a tag already uses (a REF naming it would
/// be ambiguous).
fn refuse_tag_name(ctx: &mut Ctx<'_>, name: &str) -> Result<(), Failure> {
    if ctx.sess.engine.backend().tag(name)?.is_some() {
        return Err(Failure::Failed(format!(
            "{name} is a tag: tags and branches share one set of names"
        )));
    }
    Ok(())
}

fn create(ctx: &mut Ctx<'_>, name: &str, from: Option<&str>) -> CmdResult {
    dbos_engine::check_branch_name(name)?;
    if ctx.sess.engine.backend().branch_by_name(name)?.is_some() {
        return Err(Failure::Failed(format!(
            "branch {name} already exists (switch to it with 'switch {name}')"
        )));
    }
    refuse_tag_name(ctx, name)?;
    let moment = match from {
        Some(r) => Some(ctx.sess.moment(r)?),
        None => ctx.sess.asof.clone(),
    };
    let info = match moment {
        Some(m) => dbos_branches::create(&mut ctx.sess.engine, name, &m.branch, Some(m.tx))?,
        None => {
            // What this line wrote before belongs in the new branch.
            ctx.sess.end_unit()?;
            if ctx.sess.explicit.as_ref().is_some_and(|st| !st.is_clean()) {
                ctx.warn(
                    "dbos: branch: note: the open transaction's pending changes are not in the new branch",
                );
            }
            let current = ctx.sess.branch.clone();
            dbos_branches::create(&mut ctx.sess.engine, name, &current, None)?
        }
    };
    let at = info.fork_tx.unwrap_or(0);
    ctx.println(&format!("Created branch {name} at T{at}"));
    Ok(0)
}

fn rename(ctx: &mut Ctx<'_>, old: &str, new: &str) -> CmdResult {
    ctx.sess.engine.branch(old)?;
    if old == new {
        return Err(Failure::Failed(format!(
            "branch {old} already has that name"
        )));
    }
    refuse_tag_name(ctx, new)?;
    dbos_branches::rename(&mut ctx.sess.engine, old, new)?;
    if ctx.sess.branch == old {
        ctx.sess.branch = new.to_string();
    }
    if let Some(m) = ctx.sess.asof.as_mut() {
        if m.branch == old {
            m.branch = new.to_string();
        }
    }
    ctx.println(&format!("Renamed branch {old} to {new}"));
    Ok(0)
}

fn delete(ctx: &mut Ctx<'_>, name: &str, force: bool) -> Result<(), Failure> {
    if ctx.sess.asof.as_ref().is_some_and(|m| m.branch == name) {
        return Err(Failure::Failed(format!(
            "cannot delete branch {name}: it is being viewed with asof (run 'asof now' first)"
        )));
    }
    let b = ctx.sess.engine.branch(name)?;
    let tip = ctx.sess.engine.branch_tip(&b)?;
    let current = ctx.sess.branch.clone();
    dbos_branches::delete(&mut ctx.sess.engine, name, &current, force)?;
    ctx.println(&format!("Deleted branch {name} (was T{tip})"));
    Ok(())
}

/// Make another branch the current one.
#[derive(Parser)]
#[command(
    name = "switch",
    about = "Make another branch the current one",
    long_about = "Make another branch the current one: later commands read and write it.\n\n\
Refused while a transaction is open (commit or rollback first) or while viewing a past moment \
with 'asof' ('asof now' first). Changes made earlier on the same line are committed on the \
branch they were made on before switching.",
    disable_version_flag = true
)]
struct Switch {
    /// Create the branch (from the current branch's newest state) first.
    #[arg(short = 'c', long = "create")]
    create: bool,
    /// The branch.
    #[arg(value_name = "NAME")]
    name: String,
}

fn switch(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Switch>(ctx, argv)? else {
        return Ok(0);
    };
    refuse_open(ctx, "switching branch")?;
    if a.create {
        create(ctx, &a.name, None)?;
    } else {
        ctx.sess.engine.branch(&a.name)?;
    }
    if a.name == ctx.sess.branch {
        ctx.println(&format!("Already on branch {}", a.name));
        return Ok(0);
    }
    // This line's changes so far belong to the branch they were made on.
    ctx.sess.end_unit()?;
    ctx.sess.line = None;
    ctx.sess.branch = a.name.clone();
    ctx.println(&format!("Switched to branch {}", a.name));
    Ok(0)
}

/// Merge another branch into the current one.
#[derive(Parser)]
#[command(
    name = "merge",
    about = "Merge another branch into the current one (three-way, line by line for text)",
    long_about = "Merge branch NAME into the current branch as one transaction.\n\n\
Keys changed on one side only take that side's value; text files changed on both sides in \
different places are merged line by line. Anything else is a conflict: every conflict is listed \
and nothing is applied (exit status 1), unless --ours (keep the current branch's side) or \
--theirs (take NAME's side) decides them. A second merge only brings what is new.\n\n\
Refused while a transaction is open or while viewing a past moment with 'asof'.",
    disable_version_flag = true
)]
struct Merge {
    /// Decide conflicts by keeping the current branch's side.
    #[arg(long, conflicts_with = "theirs")]
    ours: bool,
    /// Decide conflicts by taking the merged branch's side.
    #[arg(long)]
    theirs: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// The branch to merge.
    #[arg(value_name = "NAME")]
    name: String,
}

fn conflict_line(c: &Conflict) -> String {
    let space = if c.space == Space::File {
        String::new()
    } else {
        format!("{} ", c.space.as_str())
    };
    format!("{space}{}: {}", c.path, c.reason)
}

fn merge(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Merge>(ctx, argv)? else {
        return Ok(0);
    };
    refuse_open(ctx, "merging")?;
    let strategy = if a.ours {
        Strategy::Ours
    } else if a.theirs {
        Strategy::Theirs
    } else {
        Strategy::Refuse
    };
    ctx.sess.engine.branch(&a.name)?;
    // Changes made earlier on this line are committed on their own first.
    ctx.sess.end_unit()?;
    ctx.sess.line = None;
    let current = ctx.sess.branch.clone();
    let actor = ctx.sess.actor.clone();
    let command = ctx.sess.line_text.trim().to_string();
    let mut attempt = 0;
    let report = loop {
        match dbos_branches::merge(
            &mut ctx.sess.engine,
            &current,
            &a.name,
            &actor,
            &command,
            strategy,
        ) {
            Err(dbos_branches::Error::Engine(e)) if e.is_retryable() && attempt < 10 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 << attempt.min(5)));
            }
            other => break other?,
        }
    };
    if a.format == Format::Json {
        let v = json!({
            "ours": current,
            "theirs": a.name,
            "tx": report.tx.as_ref().map(|t| t.id),
            "applied": report.applied.iter().map(|(s, p)| json!({"space": s.as_str(), "path": p})).collect::<Vec<_>>(),
            "merged_text": report.merged_text,
            "decided": report.decided.iter().map(|c| json!({"space": c.space.as_str(), "path": c.path, "reason": c.reason})).collect::<Vec<_>>(),
        });
        ctx.print(&output::json(&v));
        return Ok(0);
    }
    let Some(tx) = &report.tx else {
        ctx.println("Already up to date");
        return Ok(0);
    };
    ctx.println(&format!(
        "Merged {} into {current}: T{} ({} changes, {} text files merged line by line)",
        a.name,
        tx.id,
        report.applied.len(),
        report.merged_text.len()
    ));
    if !report.decided.is_empty() {
        let how = match strategy {
            Strategy::Theirs => format!("took {}'s side", a.name),
            _ => format!("kept {current}'s side"),
        };
        ctx.println(&format!(
            "{} conflict(s) decided ({how}):",
            report.decided.len()
        ));
        for c in &report.decided {
            ctx.println(&format!("  {}", conflict_line(c)));
        }
    }
    Ok(0)
}

/// List tags, or name a moment.
#[derive(Parser)]
#[command(
    name = "tag",
    about = "List tags, or name a moment so it can be used as a REF",
    long_about = "With no argument, list the tags: name, branch, transaction. 'tag NAME [REF]' \
names a moment (default: the current branch's newest state, or the moment viewed with 'asof'); \
the name can then be used wherever a REF is accepted, e.g. 'cat --as-of NAME FILE'.",
    disable_version_flag = true
)]
struct Tag {
    /// Output format (of the listing).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// The tag's name.
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// The moment to name (T<id>, a time, BRANCH, BRANCH@REF).
    #[arg(value_name = "REF")]
    at: Option<String>,
}

fn tag(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Tag>(ctx, argv)? else {
        return Ok(0);
    };
    let Some(name) = a.name else {
        let tags = dbos_branches::tags(&mut ctx.sess.engine)?;
        if a.format == Format::Json {
            let v: Vec<_> = tags
                .iter()
                .map(|(n, b, t)| json!({"name": n, "branch": b, "tx": t}))
                .collect();
            ctx.print(&output::json(&json!(v)));
            return Ok(0);
        }
        let w = tags.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        let bw = tags.iter().map(|(_, b, _)| b.len()).max().unwrap_or(0);
        for (n, b, t) in tags {
            ctx.println(&format!("{n:<w$}  {b:<bw$}  T{t}"));
        }
        return Ok(0);
    };
    if let Err(e) = dbos_engine::check_branch_name(&name) {
        return Err(match e {
            dbos_engine::Error::InvalidBranch { reason, .. } => {
                Failure::Failed(format!("invalid tag name {name:?}: {reason}"))
            }
            other => other.into(),
        });
    }
    if ctx.sess.engine.backend().tag(&name)?.is_some() {
        return Err(Failure::Failed(format!("tag {name} already exists")));
    }
    if ctx.sess.engine.backend().branch_by_name(&name)?.is_some() {
        return Err(Failure::Failed(format!(
            "{name} is a branch: tags and branches share one set of names"
        )));
    }
    let m: Moment = match (&a.at, &ctx.sess.asof) {
        (Some(r), _) => ctx.sess.moment(r)?,
        (None, Some(m)) => m.clone(),
        (None, None) => {
            // What this line wrote before is part of the moment named.
            ctx.sess.end_unit()?;
            ctx.sess.moment("HEAD")?
        }
    };
    dbos_branches::tag(&mut ctx.sess.engine, &name, &m.branch, m.tx)?;
    ctx.println(&format!("Tagged {}@T{} as {name}", m.branch, m.tx));
    Ok(0)
}
