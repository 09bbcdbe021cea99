//! logs: the append-only log rows (the output of background programs,
//! among others), filtered, and followed as they arrive.

use super::{parse, Ctx, Spec};
use crate::output;
use crate::session::{CmdResult, Failure, Session};
use crate::spec;
use clap::Parser;
use dbos_engine::{LogFilter, StoredLog, TxId};
use dbos_procs::severity::{parse_severity, severity_name};
use serde_json::json;
use std::io::Write;
use std::time::Duration;

pub fn specs() -> Vec<Spec> {
    vec![spec!(Logs, logs)]
}

/// How `logs` prints rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
enum LogFormat {
    /// One line per row: time, severity, source[process]: message.
    #[default]
    #[value(alias = "text")]
    Table,
    /// A JSON array (with -f: one JSON object per line).
    Json,
}

/// Show log rows.
#[derive(Parser)]
#[command(
    name = "logs",
    about = "Show log rows (output of background processes), oldest first; -f follows",
    long_about = "Show the append-only log rows of the branch, oldest first. Severities are \
                  syslog's: emerg, alert, crit, err, warning, notice, info, debug; \
                  --severity LEVEL shows that level and more severe ones. -f prints the \
                  last rows (10 unless -n says) and then new ones as they are committed, \
                  until Ctrl-C.",
    disable_version_flag = true
)]
struct Logs {
    /// Only rows stored after the moment REF names (T42, 10m ago, a tag...).
    #[arg(long, value_name = "REF")]
    since: Option<String>,
    /// Only rows of this severity or more severe (err, warning, 4...).
    #[arg(long, value_name = "LEVEL")]
    severity: Option<String>,
    /// Only rows of this source (a program's name, for its output).
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Only rows of this dbos process id.
    #[arg(long = "process", value_name = "ID")]
    process: Option<u64>,
    /// Keep printing new rows as they are committed, until Ctrl-C.
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// Only the newest N rows.
    #[arg(short = 'n', long = "lines", value_name = "N")]
    lines: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: LogFormat,
}

/// How often `logs -f` looks for new rows.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Rows `logs -f` shows before following, unless `-n` says.
const FOLLOW_LINES: usize = 10;

/// Log rows at the branch's newest state (rows are committed by other
/// connections, so not at the working transaction's snapshot), or at the
/// session's `asof` moment.
fn read_logs(sess: &mut Session, filter: &LogFilter) -> Result<Vec<StoredLog>, Failure> {
    if sess.asof.is_some() {
        return sess.read(None, |tx| Ok(tx.logs(filter)?));
    }
    let (branch, actor) = (sess.branch.clone(), sess.actor.clone());
    let mut tx = sess.engine.begin(&branch, &actor)?;
    Ok(tx.logs(filter)?)
}

fn line(l: &StoredLog, color: bool) -> String {
    let time = chrono::DateTime::from_timestamp_micros(l.entry.time_us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| l.entry.time_us.to_string());
    let sev = format!("{:<7}", severity_name(l.entry.severity));
    let sev = match l.entry.severity {
        0..=3 => output::paint(color, "31", &sev),
        4 => output::paint(color, "33", &sev),
        _ => sev,
    };
    let who = match l.entry.process_id {
        Some(p) => format!("{}[{p}]", l.entry.source),
        None => l.entry.source.clone(),
    };
    format!("{time} {sev} {who}: {}", l.entry.message)
}

fn json_row(l: &StoredLog) -> serde_json::Value {
    json!({
        "id": l.id,
        "tx": l.tx,
        "time": output::time_rfc3339(l.entry.time_us),
        "source": l.entry.source,
        "severity": severity_name(l.entry.severity),
        "level": l.entry.severity,
        "message": l.entry.message,
        "process_id": l.entry.process_id,
    })
}

fn logs(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Logs>(ctx, argv)? else {
        return Ok(0);
    };
    let max_severity = a
        .severity
        .as_deref()
        .map(parse_severity)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let after_tx = match &a.since {
        Some(r) => Some(ctx.sess.moment(r)?.tx),
        None => None,
    };
    if a.follow && !ctx.out_direct {
        return Err(Failure::Usage(
            "-f writes to the shell's standard output: not into a pipe or a file".to_string(),
        ));
    }
    let mut filter = LogFilter {
        after_tx,
        max_severity,
        source: a.source,
        process_id: a.process,
        limit: a.lines.or(a.follow.then_some(FOLLOW_LINES)),
    };
    let rows = read_logs(ctx.sess, &filter)?;
    let color = ctx.color();
    if !a.follow {
        if a.format == LogFormat::Json {
            let v: Vec<serde_json::Value> = rows.iter().map(json_row).collect();
            ctx.print(&output::json(&serde_json::Value::Array(v)));
        } else {
            for l in &rows {
                ctx.println(&line(l, color));
            }
        }
        return Ok(0);
    }
    // Follow: rows of one transaction commit together, so "after the
    // newest transaction seen" misses none and repeats none.
    let mut last: TxId = rows
        .last()
        .map(|l| l.tx)
        .unwrap_or(0)
        .max(after_tx.unwrap_or(0));
    if last == 0 {
        last = ctx.sess.engine.head()?;
    }
    filter.limit = None;
    let mut out = std::io::stdout();
    let mut batch = rows;
    loop {
        for l in &batch {
            let text = match a.format {
                LogFormat::Json => json_row(l).to_string(),
                LogFormat::Table => line(l, color),
            };
            writeln!(out, "{text}")?;
            last = last.max(l.tx);
        }
        out.flush()?;
        if crate::interrupt::requested() {
            return Ok(0);
        }
        std::thread::sleep(FOLLOW_POLL);
        filter.after_tx = Some(last);
        batch = read_logs(ctx.sess, &filter)?;
    }
}
