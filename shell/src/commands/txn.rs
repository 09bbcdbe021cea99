//! Transaction control: begin, commit, rollback, status.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use serde_json::json;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Begin, begin),
        spec!(Commit, commit),
        spec!(Rollback, rollback),
        spec!(Status, status),
    ]
}

/// Open a transaction.
#[derive(Parser)]
#[command(
    name = "begin",
    about = "Open a transaction: later changes are pending until commit",
    disable_version_flag = true
)]
struct Begin {}

fn begin(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    if parse::<Begin>(ctx, argv)?.is_none() {
        return Ok(0);
    }
    if ctx.sess.explicit.is_some() {
        return Err(Failure::Failed(
            "a transaction is already open (commit or rollback it first)".into(),
        ));
    }
    if let Some(m) = &ctx.sess.asof {
        return Err(Failure::Failed(format!(
            "read-only view asof T{}: run 'asof now' first",
            m.tx
        )));
    }
    // Changes made earlier on this line are committed on their own first.
    ctx.sess.end_unit()?;
    let branch = ctx.sess.branch.clone();
    let actor = ctx.sess.actor.clone();
    let st = ctx.sess.engine.begin(&branch, &actor)?.into_state();
    ctx.sess.explicit = Some(st);
    ctx.sess.explicit_lines.clear();
    Ok(0)
}

/// Commit the open transaction.
#[derive(Parser)]
#[command(
    name = "commit",
    about = "Commit the open transaction atomically",
    disable_version_flag = true
)]
struct Commit {
    /// A message recorded with the transaction.
    #[arg(short = 'm', long = "message", value_name = "MSG")]
    message: Option<String>,
}

fn commit(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Commit>(ctx, argv)? else {
        return Ok(0);
    };
    let Some(st) = ctx.sess.explicit.take() else {
        return Err(Failure::Failed("no transaction is open (use begin)".into()));
    };
    let lines = std::mem::take(&mut ctx.sess.explicit_lines);
    let text = if lines.is_empty() {
        ctx.sess.line_text.clone()
    } else {
        lines.join("; ")
    };
    match ctx.sess.engine.resume(st).commit(&text, a.message)? {
        Some(info) => ctx.println(&format!("Transaction T{} committed", info.id)),
        None => ctx.println("Nothing to commit"),
    }
    Ok(0)
}

/// Discard the open transaction.
#[derive(Parser)]
#[command(
    name = "rollback",
    about = "Discard the open transaction and every pending change",
    disable_version_flag = true
)]
struct Rollback {}

fn rollback(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    if parse::<Rollback>(ctx, argv)?.is_none() {
        return Ok(0);
    }
    let Some(st) = ctx.sess.explicit.take() else {
        return Err(Failure::Failed("no transaction is open".into()));
    };
    ctx.sess.explicit_lines.clear();
    let n = st.pending().len();
    ctx.println(&format!(
        "Transaction rolled back ({n} pending changes discarded)"
    ));
    Ok(0)
}

/// Show the session's state.
#[derive(Parser)]
#[command(
    name = "status",
    about = "Show branch, database, open transaction and its pending changes",
    disable_version_flag = true
)]
struct Status {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn status(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Status>(ctx, argv)? else {
        return Ok(0);
    };
    let head = ctx.sess.engine.head()?;
    let db = ctx.sess.engine.location();
    let pending = ctx
        .sess
        .explicit
        .as_ref()
        .map(|st| (st.snapshot(), st.pending()));
    if a.format == Format::Json {
        let v = json!({
            "branch": ctx.sess.branch,
            "database": db,
            "head": head,
            "cwd": ctx.sess.cwd.to_string(),
            "asof": ctx.sess.asof.as_ref().map(|m| json!({"branch": m.branch, "tx": m.tx})),
            "transaction": pending.as_ref().map(|(snap, p)| json!({
                "snapshot": snap,
                "pending": p.iter().map(|(s, path, set)| json!({
                    "space": s.as_str(), "path": path, "change": if *set { "set" } else { "removed" }
                })).collect::<Vec<_>>(),
            })),
        });
        ctx.print(&output::json(&v));
        return Ok(0);
    }
    ctx.println(&format!("On branch {}", ctx.sess.branch));
    ctx.println(&format!("Database: {db}"));
    ctx.println(&format!("Newest transaction: T{head}"));
    if let Some(m) = &ctx.sess.asof {
        let line = format!(
            "Viewing {}@T{} (read-only; 'asof now' to return)",
            m.branch, m.tx
        );
        ctx.println(&line);
    }
    match pending {
        None => ctx.println("No open transaction"),
        Some((snap, p)) => {
            ctx.println(&format!(
                "Open transaction (begun at T{snap}), {} pending changes:",
                p.len()
            ));
            for (space, path, set) in p {
                let what = if set { "set    " } else { "removed" };
                let space = if space == dbos_engine::Space::File {
                    String::new()
                } else {
                    format!("{} ", space.as_str())
                };
                ctx.println(&format!("  {what} {space}{path}"));
            }
        }
    }
    Ok(0)
}
