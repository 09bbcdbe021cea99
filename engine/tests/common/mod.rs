//! Where a test's database lives: a fresh SQLite file, or with
//! `DBOS_TEST_BACKEND=postgres` a fresh database on the server named by
//! `DBOS_TEST_PG` (a URL to its `postgres` database; `tests/pg/start`
//! starts one). The same tests run on both backends.

#![allow(dead_code)]

pub mod model;

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

/// Every transaction on main, oldest first, checked: ids 1..=head,
/// contiguous and strictly increasing, commit times non-decreasing.
pub fn checked_log(engine: &mut dbos_engine::Engine) -> Vec<dbos_engine::TxInfo> {
    let head = engine.head().unwrap();
    let mut log = engine.log("main", None, 10_000_000).unwrap();
    log.reverse();
    for w in log.windows(2) {
        assert!(
            w[0].id < w[1].id,
            "ids not increasing: T{} T{}",
            w[0].id,
            w[1].id
        );
        assert!(
            w[0].time_us <= w[1].time_us,
            "commit time goes back from T{} to T{}",
            w[0].id,
            w[1].id
        );
    }
    let ids: Vec<dbos_engine::TxId> = log.iter().map(|t| t.id).collect();
    assert_eq!(ids, (1..=head).collect::<Vec<_>>(), "transaction ids");
    log
}

/// The hash chain recomputed from the stored rows, from transaction `from`
/// to the head (trusting `from`'s predecessor): any torn, partial or
/// altered transaction breaks it.
pub fn assert_chain_intact(engine: &mut dbos_engine::Engine, from: dbos_engine::TxId) {
    let report = engine.verify(from, &mut |_, _| {}).unwrap();
    assert_eq!(report.broken, None, "hash chain broken");
}
