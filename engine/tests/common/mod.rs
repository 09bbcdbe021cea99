//! Where a test's database lives: a fresh SQLite file, or with
//! `DBOS_TEST_BACKEND=postgres` a fresh database on the server named by
//! `DBOS_TEST_PG` (a URL to its `postgres` database; `tests/pg/start`
//! starts one). The same tests run on both backends.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh database for one test; dropped with the test.
pub struct TestDb {
    /// What to pass to `Engine::open`.
    pub location: String,
    /// The folder of a SQLite database (also scratch space for tests).
    pub dir: tempfile::TempDir,
}

/// True when the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("DBOS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh, empty database on the backend under test.
pub fn fresh() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    if !on_postgres() {
        let location = dir.path().join("state.db").display().to_string();
        return TestDb { location, dir };
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("DBOS_TEST_PG")
        .expect("DBOS_TEST_BACKEND=postgres needs DBOS_TEST_PG (tests/pg/start prints it)");
    let name = format!(
        "dbos_t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    let mut client =
        postgres::Client::connect(&server, postgres::NoTls).expect("connect to DBOS_TEST_PG");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    TestDb {
        location: format!("{base}/{name}"),
        dir,
    }
}
