//! Audit queries on SQLite: a separate connection opened read-only, with
//! `PRAGMA query_only` and an authorizer that admits reads and nothing
//! else. The database refuses writes; the query text is never inspected.

use super::sqlite::SqliteBackend;
use super::{no_rows, stray_text, KeyRow};
use crate::audit::{SqlRows, SqlValue};
use crate::error::{Error, Result};
use crate::types::TxId;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pragmas that only read, and whether their argument names a table (and
/// so may be given) rather than a value to set. Any other pragma, and any
/// of these given a value to set, is refused.
const READ_PRAGMAS: &[(&str, bool)] = &[
    ("table_info", true),
    ("table_xinfo", true),
    ("table_list", true),
    ("index_list", true),
    ("index_info", true),
    ("index_xinfo", true),
    ("foreign_key_list", true),
    ("integrity_check", true),
    ("quick_check", true),
    ("database_list", false),
    ("collation_list", false),
    ("function_list", false),
    ("module_list", false),
    ("pragma_list", false),
    ("compile_options", false),
    ("page_count", false),
    ("page_size", false),
    ("freelist_count", false),
    ("user_version", false),
    ("schema_version", false),
    ("data_version", false),
];
/// Functions with effects outside the query.
const EFFECT_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// What the authorizer says of one action: None to allow, else a
/// description of what was refused.
fn refusal(action: &AuthAction<'_>) -> Option<String> {
    Some(match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => return None,
        AuthAction::Function { function_name } => {
            let f = function_name.to_ascii_lowercase();
            if !EFFECT_FUNCTIONS.contains(&f.as_str()) {
                return None;
            }
            format!("function {function_name}() has effects outside the query")
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let p = pragma_name.to_ascii_lowercase();
            let reads = READ_PRAGMAS
                .iter()
                .any(|(name, table_arg)| *name == p && (pragma_value.is_none() || *table_arg));
            if reads {
                return None;
            }
            match pragma_value {
                Some(v) => format!("PRAGMA {pragma_name} = {v}"),
                None => format!("PRAGMA {pragma_name}"),
            }
        }
        AuthAction::Insert { table_name } => format!("INSERT into {table_name}"),
        AuthAction::Update { table_name, .. } => format!("UPDATE of {table_name}"),
        AuthAction::Delete { table_name } => format!("DELETE from {table_name}"),
        AuthAction::Attach { filename } => format!("ATTACH of {filename:?}"),
        AuthAction::Detach { database_name } => format!("DETACH of {database_name}"),
        AuthAction::Transaction { operation } => format!("transaction control ({operation:?})"),
        AuthAction::Savepoint { savepoint_name, .. } => format!("SAVEPOINT {savepoint_name}"),
        AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
            format!("CREATE TABLE {table_name}")
        }
        AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name } => {
            format!("CREATE VIEW {view_name}")
        }
        AuthAction::CreateIndex { index_name, .. }
        | AuthAction::CreateTempIndex { index_name, .. } => format!("CREATE INDEX {index_name}"),
        AuthAction::CreateTrigger { trigger_name, .. }
        | AuthAction::CreateTempTrigger { trigger_name, .. } => {
            format!("CREATE TRIGGER {trigger_name}")
        }
        AuthAction::DropTable { table_name } | AuthAction::DropTempTable { table_name } => {
            format!("DROP TABLE {table_name}")
        }
        AuthAction::DropView { view_name } | AuthAction::DropTempView { view_name } => {
            format!("DROP VIEW {view_name}")
        }
        AuthAction::DropIndex { index_name, .. } | AuthAction::DropTempIndex { index_name, .. } => {
            format!("DROP INDEX {index_name}")
        }
        AuthAction::DropTrigger { trigger_name, .. }
        | AuthAction::DropTempTrigger { trigger_name, .. } => {
            format!("DROP TRIGGER {trigger_name}")
        }
        AuthAction::AlterTable { table_name, .. } => format!("ALTER TABLE {table_name}"),
        AuthAction::Reindex { index_name } => format!("REINDEX {index_name}"),
        AuthAction::Analyze { table_name } => format!("ANALYZE {table_name}"),
        AuthAction::CreateVtable { table_name, .. } => format!("CREATE VIRTUAL TABLE {table_name}"),
        AuthAction::DropVtable { table_name, .. } => format!("DROP of virtual table {table_name}"),
        other => format!("{other:?}"),
    })
}

impl SqliteBackend {
    /// Run one read-only statement (see `Backend::query_readonly`).
    pub(super) fn audit_query(
        &mut self,
        sql: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<SqlRows> {
        let location = self.path.display().to_string();
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Database(format!("{location}: opening read-only: {e}")))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", true)?;
        let refused: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&refused);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match refusal(&ctx.action) {
                None => Authorization::Allow,
                Some(what) => {
                    if let Ok(mut slot) = seen.lock() {
                        slot.get_or_insert(what);
                    }
                    Authorization::Deny
                }
            }
        }));
        if let Some(stop) = cancel {
            conn.progress_handler(10_000, Some(stop));
        }
        let explain = |e: rusqlite::Error| -> Error {
            if let Some(what) = refused.lock().ok().and_then(|s| s.clone()) {
                return Error::Sql(format!(
                    "refused: {what}: audit queries are read-only; nothing was changed"
                ));
            }
            match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::OperationInterrupted =>
                {
                    Error::Sql("interrupted; nothing was changed".to_string())
                }
                rusqlite::Error::MultipleStatement => Error::Sql(
                    "only one statement at a time: remove what follows the first `;`".to_string(),
                ),
                rusqlite::Error::SqliteFailure(_, Some(msg)) => Error::Sql(msg),
                other => Error::Sql(other.to_string()),
            }
        };
        let mut stmt = conn.prepare(sql).map_err(explain)?;
        if !stmt.readonly() {
            return Err(Error::Sql(
                "refused: the statement would write; audit queries are read-only; nothing was changed"
                    .to_string(),
            ));
        }
        if stmt.column_count() == 0 {
            return Err(no_rows());
        }
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = stmt.query([]).map_err(explain)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(explain)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(match row.get_ref(i).map_err(explain)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(v) => SqlValue::Integer(v),
                    ValueRef::Real(v) => SqlValue::Real(v),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(SqlRows { columns, rows: out })
    }

    /// See `Backend::stray_row`.
    pub(super) fn audit_stray_row(&mut self, from: TxId) -> Result<Option<(TxId, String)>> {
        let mut found: Vec<(TxId, String)> = Vec::new();
        for (table, what) in [("versions", "a version row"), ("log_entries", "a log row")] {
            let sql = format!(
                "SELECT r.tx_id, r.branch_id, t.branch_id FROM {table} r \
                 LEFT JOIN transactions t ON t.id = r.tx_id \
                 WHERE r.tx_id >= ?1 AND (t.id IS NULL OR t.branch_id <> r.branch_id) \
                 ORDER BY r.tx_id LIMIT 1"
            );
            let row: Option<(i64, i64, Option<i64>)> = self
                .conn
                .query_row(&sql, [from as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            if let Some((tx, branch, tx_branch)) = row {
                found.push((tx as TxId, stray_text(what, tx as TxId, branch, tx_branch)));
            }
        }
        Ok(found.into_iter().min_by_key(|f| f.0))
    }
}

impl SqliteBackend {
    /// See `Backend::file_keys`.
    pub(super) fn audit_file_keys(&mut self) -> Result<Vec<KeyRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT k.id, k.path, k.parent_id, k.name, \
             (SELECT min(v.tx_id) FROM versions v WHERE v.key_id = k.id) \
             FROM keys k WHERE k.space = 'file'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyRow {
                id: r.get(0)?,
                path: r.get(1)?,
                parent_id: r.get(2)?,
                name: r.get(3)?,
                first_tx: r.get::<_, Option<i64>>(4)?.map(|t| t as TxId),
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_allowed_and_writes_named() {
        assert_eq!(refusal(&AuthAction::Select), None);
        assert_eq!(
            refusal(&AuthAction::Insert {
                table_name: "versions"
            })
            .as_deref(),
            Some("INSERT into versions")
        );
        assert!(refusal(&AuthAction::Pragma {
            pragma_name: "table_info",
            pragma_value: Some("keys")
        })
        .is_none());
        assert!(refusal(&AuthAction::Pragma {
            pragma_name: "user_version",
            pragma_value: Some("7")
        })
        .is_some());
        assert!(refusal(&AuthAction::Function {
            function_name: "LOAD_EXTENSION"
        })
        .is_some());
        assert!(refusal(&AuthAction::Function {
            function_name: "json_extract"
        })
        .is_none());
    }
}
