//! Where a black-box test's database lives: a SQLite file in the test's
//! folder, or with `DBOS_TEST_BACKEND=postgres` a fresh database on the
//! server named by `DBOS_TEST_PG` (see `tests/pg/start`). The same tests run
//! on both backends.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("DBOS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh database: `DIR/s.db`, or a new PostgreSQL database.
pub fn location(dir: &Path) -> String {
    if !on_postgres() {
        return dir.join("s.db").display().to_string();
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("DBOS_TEST_PG").expect("DBOS_TEST_PG names the test server");
    let name = format!(
        "dbos_s_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0)
    );
    let mut client =
        postgres::Client::connect(&server, postgres::NoTls).expect("connect to DBOS_TEST_PG");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    format!("{base}/{name}")
}
