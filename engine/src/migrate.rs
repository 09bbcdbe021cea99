//! Numbered schema migrations, applied in order and recorded in
//! `schema_migrations`. A database newer than this binary is refused before
//! anything is written to it.

use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// The SQLite migrations built into this binary, in order.
pub const SQLITE: &[(u32, &str, &str)] = &[
    (
        1,
        "temporal_core",
        include_str!("../../migrations/sqlite/0001_temporal_core.sql"),
    ),
    (
        2,
        "shell_history",
        include_str!("../../migrations/sqlite/0002_shell_history.sql"),
    ),
];

/// The newest schema version this binary knows.
pub fn latest(migrations: &[(u32, &str, &str)]) -> u32 {
    migrations.iter().map(|m| m.0).max().unwrap_or(0)
}

/// The schema version recorded in the database (0 for a new file).
pub fn current_version(conn: &Connection) -> Result<u32> {
    let has_table: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if has_table.is_none() {
        return Ok(0);
    }
    let v: Option<u32> = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0))
}

/// Refuse a database whose schema is newer than this binary knows.
pub fn check_not_newer(conn: &Connection, location: &str) -> Result<u32> {
    let found = current_version(conn)?;
    let supported = latest(SQLITE);
    if found > supported {
        return Err(Error::SchemaTooNew {
            location: location.to_string(),
            found,
            supported,
        });
    }
    Ok(found)
}

/// Apply every migration newer than the database's version, in one
/// transaction, recording each.
pub fn apply(conn: &mut Connection, location: &str, now_us: i64) -> Result<()> {
    if check_not_newer(conn, location)? == latest(SQLITE) {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us INTEGER NOT NULL)",
    )?;
    let found = check_not_newer(&tx, location)?;
    for (version, name, sql) in SQLITE.iter().filter(|m| m.0 > found) {
        tx.execute_batch(sql)
            .map_err(|e| Error::Database(format!("migration {version:04}_{name} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations(version, name, applied_us) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now_us],
        )?;
    }
    tx.commit()?;
    Ok(())
}
