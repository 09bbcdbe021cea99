//! The audit views as SQL, one definition per view for both dialects.
//!
//! Each view is emitted as a common table expression in front of the
//! user's query, with the lineage it reads (a branch's own transactions up
//! to a cut-off, then its ancestors' up to their fork points) written in as
//! constants. The same text, apart from a handful of dialect helpers below,
//! runs on SQLite and PostgreSQL, so both give the same columns and values.

use crate::types::Lineage;

/// The SQL dialect of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3 (the state database is schema `main`).
    Sqlite,
    /// PostgreSQL (versions split into `versions` and `versions_history`),
    /// with the schema that holds dbos's tables.
    Postgres {
        /// Schema name.
        schema: String,
    },
}

/// A base table, schema-qualified: the views' CTEs shadow the unqualified
/// names `transactions`, `branches` and `shell_history`.
fn table(d: &Dialect, name: &str) -> String {
    match d {
        Dialect::Sqlite => format!("main.{name}"),
        Dialect::Postgres { schema } => format!("\"{}\".{name}", schema.replace('"', "\"\"")),
    }
}

/// Which versions a state or history view shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The state at the lineage's cut-off (state views without a clause,
    /// and `AS OF`).
    State,
    /// Every version whose validity overlaps `[from, to]` (`BETWEEN`).
    Between(u64, u64),
    /// Every version on the lineage (history views, `ALL`).
    All,
}

/// What a view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Versions of one space on a lineage (`history`: valid_to columns).
    Versions {
        /// The key space (`file`, `config`, `process`, `boot`, `metric`).
        space: &'static str,
        /// True for the `_history` views.
        history: bool,
    },
    /// Log rows on a lineage.
    Logs,
    /// Every transaction of every branch.
    Transactions,
    /// Every branch.
    Branches,
    /// The interactive shell's line history.
    ShellHistory,
}

const fn state(space: &'static str, history: bool) -> Kind {
    Kind::Versions { space, history }
}

/// Every view and what it reads, in documentation order.
pub const VIEWS: &[(&str, Kind)] = &[
    ("transactions", Kind::Transactions),
    ("branches", Kind::Branches),
    ("files", state("file", false)),
    ("file_history", state("file", true)),
    ("config", state("config", false)),
    ("config_history", state("config", true)),
    ("processes", state("process", false)),
    ("process_history", state("process", true)),
    ("logs", Kind::Logs),
    ("shell_history", Kind::ShellHistory),
    ("boots", state("boot", false)),
    ("metrics", state("metric", false)),
];

/// What a view name reads (None: not a view).
pub fn kind(view: &str) -> Option<Kind> {
    VIEWS
        .iter()
        .find(|(name, _)| *name == view)
        .map(|(_, k)| *k)
}

/// ISO 8601 UTC text with microseconds (`2026-11-23T10:00:00.000000Z`) of a
/// microseconds-since-the-epoch integer expression, the same on both.
fn iso(d: &Dialect, us: &str) -> String {
    match d {
        Dialect::Sqlite => format!(
            "(strftime('%Y-%m-%dT%H:%M:%S', ({us}) / 1000000, 'unixepoch') || '.' || printf('%06d', ({us}) % 1000000) || 'Z')"
        ),
        Dialect::Postgres { .. } => format!(
            "(to_char(to_timestamp((({us}) / 1000000)::double precision) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || lpad((({us}) % 1000000)::text, 6, '0') || 'Z')"
        ),
    }
}

/// Lower-case hex of a blob.
fn hex(d: &Dialect, blob: &str) -> String {
    match d {
        Dialect::Sqlite => format!("lower(hex({blob}))"),
        Dialect::Postgres { .. } => format!("encode({blob}, 'hex')"),
    }
}

/// The SQL type a JSON field is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum J {
    /// Text (a JSON string).
    Text,
    /// An integer.
    Int,
    /// A floating-point number.
    Real,
    /// A JSON boolean, as 1 or 0.
    Bool,
}

/// A JSON field of a text column, read as `ty`. `field` is a name, or a
/// name and an array index (`load[0]`).
fn json(d: &Dialect, col: &str, field: &str, ty: J) -> String {
    let (name, index) = match field.split_once('[') {
        Some((n, i)) => (n, Some(i.trim_end_matches(']'))),
        None => (field, None),
    };
    match d {
        Dialect::Sqlite => format!("json_extract({col}, '$.{field}')"),
        Dialect::Postgres { .. } => {
            let text = match index {
                Some(i) => format!("(({col})::json -> '{name}' ->> {i})"),
                None => format!("(({col})::json ->> '{name}')"),
            };
            match ty {
                J::Text => text,
                J::Int => format!("{text}::bigint"),
                J::Real => format!("{text}::double precision"),
                J::Bool => format!("(CASE {text} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"),
            }
        }
    }
}

/// A JSON field holding JSON (an array), as compact JSON text.
fn json_raw(d: &Dialect, col: &str, field: &str) -> String {
    match d {
        Dialect::Sqlite => format!("json_extract({col}, '$.{field}')"),
        Dialect::Postgres { .. } => format!("((({col})::json -> '{field}')::text)"),
    }
}

/// Text to integer.
fn int(d: &Dialect, text: &str) -> String {
    match d {
        Dialect::Sqlite => format!("CAST({text} AS INTEGER)"),
        Dialect::Postgres { .. } => format!("({text})::bigint"),
    }
}

/// Every version row, current and replaced.
fn versions_source(d: &Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "versions",
        Dialect::Postgres { .. } => {
            "(SELECT key_id, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, value FROM @versions \
             UNION ALL SELECT key_id, branch_id, tx_id, kind, mode, uid, gid, size, mtime_ns, digest, value FROM @versions_history)"
        }
    }
}

/// `(v.branch_id = 3 AND v.tx_id <= 17) OR ...`: rows the lineage sees.
fn lineage_cond(alias: &str, l: &Lineage) -> String {
    if l.steps.is_empty() {
        return "0 = 1".to_string();
    }
    l.steps
        .iter()
        .map(|s| {
            format!(
                "({alias}.branch_id = {} AND {alias}.tx_id <= {})",
                s.branch, s.upto
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The `SELECT` body of a view: `lineage` is what lineage-based views read,
/// `window` which versions they show (ignored by the others, which the
/// caller filters with `tx_filter` instead).
pub fn body(d: &Dialect, kind: Kind, lineage: &Lineage, window: Window) -> String {
    qualify(d, &unqualified_body(d, kind, lineage, window))
}

/// Replace each `@table` with the schema-qualified table.
fn qualify(d: &Dialect, sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let name_len = rest[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - at - 1);
        out.push_str(&table(d, &rest[at + 1..at + 1 + name_len]));
        rest = &rest[at + 1 + name_len..];
    }
    out.push_str(rest);
    out
}

fn unqualified_body(d: &Dialect, kind: Kind, lineage: &Lineage, window: Window) -> String {
    match kind {
        Kind::Versions { space, history } => versions_body(d, space, history, lineage, window),
        Kind::Logs => {
            let window = match window {
                Window::Between(a, b) => format!(" AND l.tx_id >= {a} AND l.tx_id <= {b}"),
                _ => String::new(),
            };
            format!(
                "SELECT l.id AS id, l.tx_id AS tx, b.name AS branch, {time} AS time, l.source AS source, \
                 l.severity AS severity, \
                 CASE l.severity WHEN 0 THEN 'emerg' WHEN 1 THEN 'alert' WHEN 2 THEN 'crit' WHEN 3 THEN 'err' \
                 WHEN 4 THEN 'warning' WHEN 5 THEN 'notice' WHEN 6 THEN 'info' ELSE 'debug' END AS level, \
                 l.message AS message, l.process_id AS process_id \
                 FROM @log_entries l JOIN @branches b ON b.id = l.branch_id \
                 WHERE ({cond}){window}",
                time = iso(d, "l.time_us"),
                cond = lineage_cond("l", lineage),
            )
        }
        Kind::Transactions => {
            let window = match window {
                Window::Between(a, b) => format!("WHERE t.id >= {a} AND t.id <= {b}"),
                Window::State => format!("WHERE t.id <= {}", lineage.upto()),
                Window::All => String::new(),
            };
            format!(
                "SELECT t.id AS id, {time} AS time, t.author AS author, t.host AS host, b.name AS branch, \
                 t.command AS command, t.message AS message, {hash} AS hash, \
                 mb.name AS merge_branch, t.merge_tx AS merge_tx \
                 FROM @transactions t JOIN @branches b ON b.id = t.branch_id \
                 LEFT JOIN @branches mb ON mb.id = t.merge_branch_id {window}",
                time = iso(d, "t.time_us"),
                hash = hex(d, "t.hash"),
            )
        }
        Kind::Branches => format!(
            "SELECT b.id AS id, b.name AS name, p.name AS parent, b.fork_tx AS fork_tx, \
             (SELECT max(t.id) FROM @transactions t WHERE t.branch_id = b.id) AS head_tx, \
             {created} AS created, CASE WHEN b.deleted_us IS NULL THEN NULL ELSE {deleted} END AS deleted \
             FROM @branches b LEFT JOIN @branches p ON p.id = b.parent_id \
             WHERE b.deleted_us IS NULL OR b.deleted_us > 0",
            created = iso(d, "b.created_us"),
            deleted = iso(d, "b.deleted_us"),
        ),
        Kind::ShellHistory => format!(
            "SELECT h.id AS id, {time} AS time, h.author AS author, h.branch AS branch, h.line AS line \
             FROM @shell_history h",
            time = iso(d, "h.time_us"),
        ),
    }
}

fn versions_body(d: &Dialect, space: &str, history: bool, l: &Lineage, window: Window) -> String {
    // Every version of the space on the lineage, with the transaction that
    // replaced it (next_tx, NULL while current).
    let lv = format!(
        "SELECT v.key_id, v.branch_id, v.tx_id, v.kind, v.mode, v.uid, v.gid, v.size, v.mtime_ns, v.digest, v.value, \
         k.path, k.name, LEAD(v.tx_id) OVER (PARTITION BY v.key_id ORDER BY v.tx_id) AS next_tx \
         FROM {src} v JOIN @keys k ON k.id = v.key_id \
         WHERE k.space = '{space}' AND ({cond})",
        src = versions_source(d),
        cond = lineage_cond("v", l),
    );
    let filter = match window {
        Window::State => "lv.next_tx IS NULL".to_string(),
        Window::Between(a, b) => {
            format!("lv.tx_id <= {b} AND (lv.next_tx IS NULL OR lv.next_tx > {a})")
        }
        Window::All => "1 = 1".to_string(),
    };
    let cols = match space {
        "file" => format!(
            "lv.path AS path, lv.name AS name, \
             CASE lv.kind WHEN 1 THEN 'file' WHEN 2 THEN 'dir' WHEN 3 THEN 'symlink' ELSE 'other' END AS type, \
             ('' || ((lv.mode >> 9) & 7) || ((lv.mode >> 6) & 7) || ((lv.mode >> 3) & 7) || (lv.mode & 7)) AS mode, lv.uid AS uid, lv.gid AS gid, lv.size AS size, {mtime} AS mtime, \
             CASE WHEN lv.kind = 1 THEN {digest} END AS digest, \
             CASE WHEN lv.kind = 3 THEN lv.value END AS target",
            mtime = iso(d, "(lv.mtime_ns / 1000)"),
            digest = hex(d, "lv.digest"),
        ),
        "config" => "lv.path AS key, lv.value AS value".to_string(),
        "boot" => {
            let end = json(d, "lv.value", "end_us", J::Int);
            format!(
                "lv.path AS boot_id, {kernel} AS kernel, {as_of} AS as_of, {started} AS started, \
                 CASE WHEN {end} IS NULL THEN NULL ELSE {ended} END AS ended, {how} AS how, \
                 {pid1} AS pid1, {hostname} AS hostname",
                kernel = json(d, "lv.value", "kernel", J::Text),
                as_of = json(d, "lv.value", "as_of", J::Text),
                started = iso(d, &json(d, "lv.value", "start_us", J::Int)),
                ended = iso(d, &end),
                how = json(d, "lv.value", "ended", J::Text),
                pid1 = json(d, "lv.value", "pid1", J::Bool),
                hostname = json(d, "lv.value", "hostname", J::Text),
            )
        }
        "metric" => format!(
            "{time} AS time, {l1} AS load1, {l5} AS load5, {l15} AS load15, \
             {total} AS mem_total_kb, {avail} AS mem_available_kb, {procs} AS processes, \
             {tps} AS tx_per_sec, {db} AS db_bytes",
            time = iso(d, &int(d, "lv.path")),
            l1 = json(d, "lv.value", "load[0]", J::Real),
            l5 = json(d, "lv.value", "load[1]", J::Real),
            l15 = json(d, "lv.value", "load[2]", J::Real),
            total = json(d, "lv.value", "mem_total_kb", J::Int),
            avail = json(d, "lv.value", "mem_available_kb", J::Int),
            procs = json(d, "lv.value", "processes", J::Int),
            tps = json(d, "lv.value", "tps", J::Real),
            db = json(d, "lv.value", "db_bytes", J::Int),
        ),
        _ => format!(
            "{id} AS id, {argv} AS argv, {cwd} AS cwd, {state} AS state, {pid} AS pid, \
             {user} AS started_by, {exit} AS exit_status, {signal} AS signal, \
             {started} AS started, CASE WHEN {end} IS NULL THEN NULL ELSE {ended} END AS ended, \
             {error} AS error",
            id = int(d, "lv.path"),
            argv = json_raw(d, "lv.value", "argv"),
            cwd = json(d, "lv.value", "cwd", J::Text),
            state = json(d, "lv.value", "state", J::Text),
            pid = json(d, "lv.value", "pid", J::Int),
            user = json(d, "lv.value", "user", J::Text),
            exit = json(d, "lv.value", "exit_status", J::Int),
            signal = json(d, "lv.value", "signal", J::Int),
            started = iso(d, &json(d, "lv.value", "start_us", J::Int)),
            end = json(d, "lv.value", "end_us", J::Int),
            ended = iso(d, &json(d, "lv.value", "end_us", J::Int)),
            error = json(d, "lv.value", "error", J::Text),
        ),
    };
    let to = if history || window != Window::State {
        format!(
            ", lv.next_tx AS valid_to_tx, CASE WHEN lv.next_tx IS NULL THEN NULL ELSE {} END AS valid_to",
            iso(d, "tn.time_us")
        )
    } else {
        String::new()
    };
    let to_join = if to.is_empty() {
        ""
    } else {
        " LEFT JOIN @transactions tn ON tn.id = lv.next_tx"
    };
    format!(
        "SELECT {cols}, t.author AS author, b.name AS branch, lv.tx_id AS valid_from_tx, {from} AS valid_from{to} \
         FROM ({lv}) lv JOIN @transactions t ON t.id = lv.tx_id JOIN @branches b ON b.id = lv.branch_id{to_join} \
         WHERE lv.kind <> 0 AND {filter}",
        from = iso(d, "t.time_us"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LineageStep;

    #[test]
    fn views_are_found_by_name() {
        for (v, k) in VIEWS {
            assert_eq!(kind(v), Some(*k), "{v}");
        }
        assert!(kind("versions").is_none());
    }

    #[test]
    fn lineage_conditions_name_each_step() {
        let l = Lineage {
            steps: vec![
                LineageStep {
                    branch: 3,
                    upto: 17,
                },
                LineageStep {
                    branch: 1,
                    upto: 10,
                },
            ],
        };
        assert_eq!(
            lineage_cond("v", &l),
            "(v.branch_id = 3 AND v.tx_id <= 17) OR (v.branch_id = 1 AND v.tx_id <= 10)"
        );
        assert_eq!(lineage_cond("v", &Lineage { steps: vec![] }), "0 = 1");
    }
}
