//! The storage check of `doctor` on PostgreSQL: amcheck over every B-tree
//! index when the extension is installed, and a full scan of every table
//! (a damaged heap page or TOAST value is an error when read).

use super::postgres::PostgresBackend;
use crate::error::Result;

/// Every table of the schema, each scanned by the storage check.
const CHECKED_TABLES: &[&str] = &[
    "branches",
    "transactions",
    "keys",
    "versions",
    "versions_history",
    "chunks",
    "log_entries",
    "tags",
    "shell_history",
];

impl PostgresBackend {
    /// With the amcheck extension installed, check every B-tree index of
    /// the schema against its heap; always scan every table whole, so a
    /// damaged heap page is met (PostgreSQL reports it as an error).
    pub(super) fn storage_problems(&mut self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let amcheck = !self
            .conn
            .query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])?
            .is_empty();
        if amcheck {
            let indexes = self.conn.query(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_am a ON a.oid = c.relam \
                 WHERE a.amname = 'btree' AND c.relnamespace = current_schema()::regnamespace",
                &[],
            )?;
            for r in &indexes {
                let name: String = r.try_get(0).map_err(self.conn.err())?;
                if let Err(e) = self.conn.query(
                    "SELECT bt_index_check(c.oid, true) FROM pg_class c \
                     WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
                    &[&name],
                ) {
                    problems.push(format!("index {name}: {e}"));
                }
            }
        }
        for table in CHECKED_TABLES {
            // Reading every column of every row touches every heap page
            // and every TOASTed value.
            let sql = format!("SELECT count(*), sum(length(t::text)) FROM {table} t");
            if let Err(e) = self.conn.query(&sql, &[]) {
                problems.push(format!("table {table}: {e}"));
            }
        }
        Ok(problems)
    }
}
