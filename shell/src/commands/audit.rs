//! sql and verify: read-only SQL over the audit views, and the hash chain
//! check.

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::{Parser, ValueEnum};
use dbos_engine::audit::{SqlRows, SqlValue};
use dbos_engine::hex;
use std::io::{IsTerminal, Write};

pub fn specs() -> Vec<Spec> {
    vec![spec!(Sql, sql), spec!(Verify, verify)]
}

/// How `sql` prints its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
enum SqlFormat {
    /// An aligned table, then the row count.
    #[default]
    Table,
    /// A header line, then one tab-separated row per line (tab, newline,
    /// carriage return and backslash escaped as \t \n \r \\).
    Tsv,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// Run a read-only SQL query over the audit views.
#[derive(Parser)]
#[command(
    name = "sql",
    about = "Run a read-only SQL query over the audit views of the whole history",
    long_about = "Run one read-only SQL statement over the audit views (the query's words are \
joined with spaces). The database itself refuses writes: INSERT, UPDATE, DELETE, DDL, ATTACH, \
PRAGMA writes and functions with side effects fail and change nothing.\n\n\
Views (the same columns on SQLite and PostgreSQL; times are UTC ISO 8601 text):\n  \
transactions     id, time, author, host, branch, command, message, hash, merge_branch, merge_tx\n  \
branches         id, name, parent, fork_tx, head_tx, created, deleted\n  \
files            path, name, type, mode, uid, gid, size, mtime, digest, target, author, branch, valid_from_tx, valid_from\n  \
file_history     the columns of files, then valid_to_tx, valid_to (NULL while current)\n  \
config           key, value, author, branch, valid_from_tx, valid_from\n  \
config_history   the columns of config, then valid_to_tx, valid_to\n  \
processes        id, argv, cwd, state, pid, started_by, exit_status, signal, started, ended, error, author, branch, valid_from_tx, valid_from\n  \
process_history  the columns of processes, then valid_to_tx, valid_to\n  \
logs             id, tx, branch, time, source, severity, level, message, process_id\n  \
shell_history    id, time, author, branch, line\n\n\
files, config, processes and logs show the shell's branch at its head (or at --as-of); the \
_history views every version on that branch's lineage. After a view name, \
FOR SYSTEM_TIME AS OF REF, FOR SYSTEM_TIME BETWEEN REF AND REF and FOR SYSTEM_TIME ALL pick \
other moments; REF is any form the shell accepts (T12, HEAD~2, main@T4, a tag, or a quoted \
time such as '2026-11-23 10:00' or '10m ago'). The changes of an open `begin` are not visible: \
queries read committed state.\n\n\
Examples:\n  \
sql \"SELECT valid_from, author, size FROM file_history WHERE path = '/etc/hostname'\"\n  \
sql --format json \"SELECT key, value FROM config FOR SYSTEM_TIME AS OF T12\"",
    disable_version_flag = true
)]
struct Sql {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: SqlFormat,
    /// Read the branch's views as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// The query (its words are joined with spaces).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    query: Vec<String>,
}

fn sql(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Sql>(ctx, argv)? else {
        return Ok(0);
    };
    let query = a.query.join(" ");
    let branch = ctx.sess.branch.clone();
    // Inside `asof REF`, queries read that moment unless told otherwise.
    let as_of = match (&a.as_of, &ctx.sess.asof) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(m)) => Some(format!("{}@T{}", m.branch, m.tx)),
        (None, None) => None,
    };
    let rows = ctx.sess.engine.sql_cancellable(
        &branch,
        as_of.as_deref(),
        &query,
        Some(crate::interrupt::requested),
    )?;
    let text = match a.format {
        SqlFormat::Table => table(&rows, ctx.out_is_tty),
        SqlFormat::Tsv => tsv(&rows),
        SqlFormat::Csv => csv(&rows)?,
        SqlFormat::Json => json(&rows)?,
    };
    ctx.print(&text);
    Ok(0)
}

/// A value as text (NULL is empty; bytes are `\x` and hex).
fn text(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => String::new(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => r.to_string(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => format!("\\x{}", hex(b)),
    }
}

fn table(rows: &SqlRows, tty: bool) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(if tty {
        comfy_table::presets::UTF8_FULL_CONDENSED
    } else {
        comfy_table::presets::ASCII_FULL_CONDENSED
    });
    t.set_header(rows.columns.clone());
    for r in &rows.rows {
        t.add_row(r.iter().map(text).collect::<Vec<_>>());
    }
    let n = rows.rows.len();
    format!("{t}\n({n} row{})\n", if n == 1 { "" } else { "s" })
}

fn tsv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

fn tsv(rows: &SqlRows) -> String {
    let mut out = String::new();
    let header: Vec<String> = rows.columns.iter().map(|c| tsv_field(c)).collect();
    out.push_str(&header.join("\t"));
    out.push('\n');
    for r in &rows.rows {
        let fields: Vec<String> = r.iter().map(|v| tsv_field(&text(v))).collect();
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

fn csv(rows: &SqlRows) -> Result<String, Failure> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Failure::Failed(format!("writing CSV: {e}"));
    w.write_record(&rows.columns).map_err(fail)?;
    for r in &rows.rows {
        w.write_record(r.iter().map(text)).map_err(fail)?;
    }
    w.flush()
        .map_err(|e| Failure::Failed(format!("writing CSV: {e}")))?;
    let bytes = w
        .into_inner()
        .map_err(|e| Failure::Failed(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn json(rows: &SqlRows) -> Result<String, Failure> {
    let value = |v: &SqlValue| match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => serde_json::Value::from(*i),
        SqlValue::Real(r) => serde_json::Number::from_f64(*r)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(r.to_string())),
        SqlValue::Text(t) => serde_json::Value::String(t.clone()),
        SqlValue::Blob(b) => serde_json::Value::String(hex(b)),
    };
    let list: Vec<serde_json::Value> = rows
        .rows
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, serde_json::Value> = rows
                .columns
                .iter()
                .cloned()
                .zip(r.iter().map(value))
                .collect();
            serde_json::Value::Object(obj)
        })
        .collect();
    Ok(crate::output::json(&serde_json::Value::Array(list)))
}

/// Check the tamper-evident hash chain.
#[derive(Parser)]
#[command(
    name = "verify",
    about = "Recompute the hash chain and name the first transaction whose stored rows changed",
    long_about = "Recompute every transaction's hash from its stored rows (its metadata, the \
versions and log rows it wrote, its predecessor's hash) and compare it with the recorded one. \
A row edited, deleted or inserted behind dbos's back (with sqlite3 or psql) is found, and the \
first transaction it affects is named. Exit status 0 when the chain is intact, 1 when it is \
broken. The head hash printed at the end can be recorded elsewhere: a rewrite of the whole \
chain changes it.",
    disable_version_flag = true
)]
struct Verify {
    /// Start at this moment (trusting its predecessor's recorded hash).
    #[arg(long, value_name = "REF")]
    from: Option<String>,
    /// Print nothing when the chain is intact.
    #[arg(short, long)]
    quiet: bool,
    /// Skip reading every file content back through its chunks (check the
    /// chain alone: faster on large histories).
    #[arg(long)]
    no_content: bool,
}

fn verify(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Verify>(ctx, argv)? else {
        return Ok(0);
    };
    let from = match &a.from {
        Some(r) => ctx.sess.moment(r)?.tx,
        None => 1,
    };
    let show_progress = !a.quiet && std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut progress = |done: u64, total: u64| {
        if show_progress && total >= 10_000 {
            let mut e = std::io::stderr();
            let _ = write!(e, "\rverify: {done}/{total} transactions");
            let _ = e.flush();
        }
    };
    let report = ctx
        .sess
        .engine
        .verify_with(from, !a.no_content, &mut progress)?;
    if show_progress && report.head >= report.from + 10_000 {
        eprintln!();
    }
    match report.broken {
        Some(b) => Err(Failure::Failed(format!(
            "hash chain broken at T{}: {}",
            b.tx,
            b.reason
                .strip_prefix(&format!("T{}: ", b.tx))
                .unwrap_or(&b.reason)
        ))),
        None => {
            if !a.quiet {
                ctx.println(&format!(
                    "verified T{}..T{} ({} transactions) in {:.2}s: the hash chain is intact; head hash {}",
                    report.from,
                    report.head,
                    report.checked,
                    started.elapsed().as_secs_f64(),
                    hex(&report.head_hash)
                ));
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> SqlRows {
        SqlRows {
            columns: vec!["a".into(), "b".into()],
            rows: vec![
                vec![SqlValue::Integer(1), SqlValue::Text("x\ty\n\"q\",".into())],
                vec![SqlValue::Null, SqlValue::Blob(vec![0xab])],
            ],
        }
    }

    #[test]
    fn tsv_escapes_and_keeps_one_row_per_line() {
        assert_eq!(tsv(&rows()), "a\tb\n1\tx\\ty\\n\"q\",\n\t\\\\xab\n");
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        assert_eq!(
            csv(&rows()).unwrap(),
            "a,b\n1,\"x\ty\n\"\"q\"\",\"\n,\\xab\n"
        );
    }

    #[test]
    fn json_types_values() {
        let v: serde_json::Value = serde_json::from_str(&json(&rows()).unwrap()).unwrap();
        assert_eq!(v[0]["a"], 1);
        assert_eq!(v[1]["a"], serde_json::Value::Null);
        assert_eq!(v[1]["b"], "ab");
    }
}
