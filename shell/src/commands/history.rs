//! History: log, history.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::CmdResult;
use crate::spec;
use clap::Parser;
use dbos_engine::{Entry, Space, TxInfo};
use serde_json::json;

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
    disable_version_flag = true
)]
struct Log {
    /// Show at most N transactions.
    #[arg(short = 'n', value_name = "N")]
    count: Option<usize>,
    /// Start from a past moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Only transactions that changed this path.
    path: Option<String>,
}

fn log(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Log>(ctx, argv)? else {
        return Ok(0);
    };
    let limit = a.count.unwrap_or(usize::MAX);
    let at = match &a.as_of {
        Some(r) => Some(ctx.sess.moment(r)?),
        None => ctx.sess.asof.clone(),
    };
    let branch = at
        .as_ref()
        .map(|m| m.branch.clone())
        .unwrap_or_else(|| ctx.sess.branch.clone());
    let txs: Vec<TxInfo> = match &a.path {
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
