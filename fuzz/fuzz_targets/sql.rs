//! The `sql` command's front end: scanning a query for audit views and
//! SQL:2011 `FOR SYSTEM_TIME` clauses, rewriting them into common table
//! expressions (`dbos_engine::audit::rewrite::scan`, `Engine::sql_text`),
//! then running the result read-only against a small SQLite database.
//!
//! Input: an optional first line `@REF` (the `--as-of` REF), then the query.
//! Never a panic; the database never changes (same head, same files).
#![no_main]

use dbos_engine::audit::rewrite::{scan, temporal_name};
use dbos_engine::audit::VIEWS;
use dbos_engine::{Actor, Engine, VPath};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

struct Db {
    engine: Engine,
    dir: tempfile::TempDir,
    head: u64,
}

thread_local! {
    /// The database, made on first use (the engine is not `Send`).
    static DB: RefCell<Option<Db>> = const { RefCell::new(None) };
}
/// Milliseconds since the epoch after which the running query is cancelled.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn past_deadline() -> bool {
    now_ms() > DEADLINE_MS.load(Ordering::Relaxed)
}

fn setup() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.db");
    let mut engine = Engine::open(&path.display().to_string()).expect("open engine");
    let actor = Actor::default();
    for (i, body) in [&b"one\n"[..], b"two\n", b""].iter().enumerate() {
        engine
            .autocommit("main", &actor, "write", |tx| {
                tx.mkdir(&VPath::parse("/etc")?, true, 0o755)?;
                tx.write_bytes(&VPath::parse(&format!("/etc/f{i}"))?, body)?;
                tx.write_bytes(&VPath::parse("/etc/same")?, body)
            })
            .expect("seed write");
    }
    engine
        .autocommit("main", &actor, "ln", |tx| {
            tx.symlink("/etc/f0", &VPath::parse("/link")?)
        })
        .expect("seed link");
    let head = engine.head().expect("head");
    engine.create_branch("dev", "main", head).expect("branch");
    Db { engine, dir, head }
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list db dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // SQLite's own side files come and go with connections.
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm") && !n.ends_with("-journal"))
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (as_of, query) = match input.strip_prefix('@') {
        Some(rest) => match rest.split_once('\n') {
            Some((r, q)) => (Some(r), q),
            None => (None, rest),
        },
        None => (None, input),
    };

    // The scanner alone: every temporal reference is named in the text.
    let is_view = |v: &str| VIEWS.iter().any(|(n, _)| *n == v);
    if let Ok(s) = scan(query, is_view) {
        for i in 0..s.temporal.len() {
            assert!(s.text.contains(&temporal_name(i)), "{query:?} -> {s:?}");
        }
        if let Some(at) = s.with_at {
            assert!(
                s.text.is_char_boundary(at) && at <= s.text.len(),
                "{query:?} -> {s:?}"
            );
        }
    }

    DB.with_borrow_mut(|db| run(db.get_or_insert_with(setup), input, as_of, query));
});

fn run(db: &mut Db, input: &str, as_of: Option<&str>, query: &str) {
    let before = files(db.dir.path());
    let _ = db.engine.sql_text("main", as_of, query);
    DEADLINE_MS.store(now_ms() + 300, Ordering::Relaxed);
    let _ = db
        .engine
        .sql_cancellable("dev", as_of, query, Some(past_deadline));
    assert_eq!(
        db.engine.head().expect("head"),
        db.head,
        "{input:?} wrote a transaction"
    );
    assert_eq!(files(db.dir.path()), before, "{input:?} created a file");
}
