//! Audit queries on PostgreSQL: one statement in a `READ ONLY` transaction
//! under the `dbos_reader` role (SELECT only, created by migration 0003
//! when the migrating user may create roles). The server refuses writes;
//! the query text is never inspected. The transaction is always rolled
//! back, and session-level advisory locks the query took are released.

use super::postgres::{Conn, PostgresBackend};
use super::{no_rows, stray_text, KeyRow};
use crate::audit::{Dialect, SqlRows, SqlValue};
use crate::error::{Error, Result};
use crate::types::TxId;
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// SQLSTATEs that mean "refused": read-only transaction, no privilege.
const REFUSED: &[&str] = &["25006", "42501"];

fn sql_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if REFUSED.contains(&db.code().code()) => Error::Sql(format!(
            "refused: {}: audit queries are read-only; nothing was changed",
            db.message()
        )),
        Some(db) if db.message().contains("multiple commands") => Error::Sql(
            "only one statement at a time: remove what follows the first `;`".to_string(),
        ),
        Some(db) => {
            let mut m = db.message().to_string();
            if let Some(h) = db.hint() {
                m.push_str(&format!(" (hint: {h})"));
            }
            Error::Sql(m)
        }
        None => Error::Sql(e.to_string()),
    }
}

/// A value in PostgreSQL's text form, typed by its column type.
fn value(ty: &Type, text: Option<&str>) -> SqlValue {
    let Some(t) = text else {
        return SqlValue::Null;
    };
    let int = || t.parse::<i64>().ok().map(SqlValue::Integer);
    let real = || t.parse::<f64>().ok().map(SqlValue::Real);
    let typed = match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => int(),
        Type::FLOAT4 | Type::FLOAT8 => real(),
        Type::NUMERIC => int().or_else(real),
        Type::BOOL => Some(SqlValue::Integer(i64::from(t == "t"))),
        Type::BYTEA => t.strip_prefix("\\x").and_then(unhex).map(SqlValue::Blob),
        _ => None,
    };
    typed.unwrap_or_else(|| SqlValue::Text(t.to_string()))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Prepare `sql` (which proves it is one statement and gives the column
/// types), then run it with the simple protocol, which gives every value in
/// its text form whatever its type. While it runs, `cancel` is asked every
/// 50 ms; when it says stop, the server gets a cancel request (over a plain
/// connection: the server checks a cancel request's secret key, not
/// pg_hba, so this works beside TLS sessions too).
fn run_statement(conn: &Conn, sql: &str, cancel: Option<fn() -> bool>) -> Result<SqlRows> {
    let client = &conn.client;
    let work = async {
        let stmt = client.prepare(sql).await.map_err(sql_error)?;
        if stmt.columns().is_empty() {
            return Err(no_rows());
        }
        let columns: Vec<String> = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let mut rows = Vec::new();
        for m in client.simple_query(sql).await.map_err(sql_error)? {
            if let SimpleQueryMessage::Row(r) = m {
                rows.push(
                    types
                        .iter()
                        .enumerate()
                        .map(|(i, ty)| value(ty, r.get(i)))
                        .collect(),
                );
            }
        }
        Ok(SqlRows { columns, rows })
    };
    let Some(stop) = cancel else {
        return conn.rt.block_on(work);
    };
    let token = client.cancel_token();
    conn.rt.block_on(async {
        tokio::pin!(work);
        let mut cancelled = false;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tokio::time::sleep(Duration::from_millis(50)), if !cancelled => {
                    if stop() {
                        cancelled = true;
                        let _ = token.cancel_query(NoTls).await;
                    }
                }
            }
        }
    })
}

impl PostgresBackend {
    /// The schema holding dbos's tables (the first on the search path).
    pub(super) fn audit_dialect(&mut self) -> Result<Dialect> {
        let rows = self.conn.query(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 'versions' AND c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid)",
            &[],
        )?;
        let schema: String = match rows.first() {
            Some(r) => r.try_get(0).map_err(self.conn.err())?,
            None => "public".to_string(),
        };
        Ok(Dialect::Postgres { schema })
    }

    /// Run one read-only statement (see `Backend::query_readonly`).
    pub(super) fn audit_query(
        &mut self,
        sql: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<SqlRows> {
        let conn = &mut self.conn;
        conn.batch("BEGIN READ ONLY")?;
        let result = (|| {
            let reader = conn.query(
                "SELECT 1 FROM pg_roles WHERE rolname = 'dbos_reader' \
                 AND pg_has_role(current_user, oid, 'MEMBER')",
                &[],
            )?;
            if !reader.is_empty() {
                conn.batch("SET LOCAL ROLE dbos_reader")?;
            }
            run_statement(conn, sql, cancel)
        })();
        if !conn.client.is_closed() {
            let _ = conn.batch("ROLLBACK");
            // A query may have taken session-level advisory locks (a
            // read-only transaction allows it); dbos holds none between
            // commits.
            let _ = conn.batch("SELECT pg_advisory_unlock_all()");
        }
        result
    }

    /// See `Backend::stray_row`.
    pub(super) fn audit_stray_row(&mut self, from: TxId) -> Result<Option<(TxId, String)>> {
        let mut found = Vec::new();
        for (source, what) in [
            (
                "(SELECT branch_id, tx_id FROM versions UNION ALL SELECT branch_id, tx_id FROM versions_history)",
                "a version row",
            ),
            ("log_entries", "a log row"),
        ] {
            let rows = self.conn.query(
                    &format!(
                        "SELECT r.tx_id, r.branch_id, t.branch_id FROM {source} r \
                         LEFT JOIN transactions t ON t.id = r.tx_id \
                         WHERE r.tx_id >= $1 AND (t.id IS NULL OR t.branch_id <> r.branch_id) \
                         ORDER BY r.tx_id LIMIT 1"
                    ),
                    &[&(from as i64)],
                )?;
            if let Some(r) = rows.first() {
                let tx: i64 = r.try_get(0).map_err(self.conn.err())?;
                let branch: i64 = r.try_get(1).map_err(self.conn.err())?;
                let tx_branch: Option<i64> = r.try_get(2).map_err(self.conn.err())?;
                found.push((tx as TxId, stray_text(what, tx as TxId, branch, tx_branch)));
            }
        }
        Ok(found.into_iter().min_by_key(|f| f.0))
    }
}

impl PostgresBackend {
    /// See `Backend::file_keys`.
    pub(super) fn audit_file_keys(&mut self) -> Result<Vec<KeyRow>> {
        let rows = self.conn.query(
            "SELECT k.id, k.path, k.parent_id, k.name, \
                 (SELECT min(v.tx_id) FROM (SELECT key_id, tx_id FROM versions \
                  UNION ALL SELECT key_id, tx_id FROM versions_history) v WHERE v.key_id = k.id) \
                 FROM keys k WHERE k.space = 'file'",
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(KeyRow {
                id: r.try_get(0).map_err(self.conn.err())?,
                path: r.try_get(1).map_err(self.conn.err())?,
                parent_id: r.try_get(2).map_err(self.conn.err())?,
                name: r.try_get(3).map_err(self.conn.err())?,
                first_tx: r
                    .try_get::<_, Option<i64>>(4)
                    .map_err(self.conn.err())?
                    .map(|t| t as TxId),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_are_typed_by_column() {
        assert_eq!(value(&Type::INT8, Some("42")), SqlValue::Integer(42));
        assert_eq!(value(&Type::NUMERIC, Some("7")), SqlValue::Integer(7));
        assert_eq!(value(&Type::NUMERIC, Some("1.5")), SqlValue::Real(1.5));
        assert_eq!(value(&Type::BOOL, Some("t")), SqlValue::Integer(1));
        assert_eq!(
            value(&Type::BYTEA, Some("\\x0aff")),
            SqlValue::Blob(vec![10, 255])
        );
        assert_eq!(value(&Type::TEXT, None), SqlValue::Null);
        assert_eq!(
            value(&Type::TIMESTAMPTZ, Some("2026-11-23 10:00:00+00")),
            SqlValue::Text("2026-11-23 10:00:00+00".into())
        );
    }
}
