//! `Engine::doctor`: a healthy database reports healthy; damage behind the
//! engine's back is reported with what it concerns, while what is intact
//! is still counted as readable.

use dbos_engine::{Actor, Engine, VPath};

fn build(path: &std::path::Path) {
    let mut e = Engine::open(path.to_str().expect("utf-8 path")).expect("open");
    let actor = Actor::default();
    for (p, text) in [("/a", "alpha\n"), ("/b", "bravo\n"), ("/c", "charlie\n")] {
        e.autocommit("main", &actor, "write", |tx| {
            tx.write_bytes(&VPath::parse(p)?, text.as_bytes())
        })
        .expect("commit");
    }
}

#[test]
fn healthy_database_reports_healthy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    build(&db);
    let mut e = Engine::open(db.to_str().expect("utf-8")).expect("open");
    let r = e.doctor();
    assert!(r.healthy(), "{r:?}");
    assert!(e.check_storage().expect("check").is_empty());
    assert_eq!(r.head, Some(4));
    assert_eq!(r.readable_transactions, 4);
    let main = &r.branches.as_ref().expect("branches")[0];
    assert_eq!((main.name.as_str(), main.tip), ("main", Some(4)));
    // The root directory and its three files.
    assert_eq!(main.readable, 4);
}

#[test]
fn a_lost_chunk_names_the_file_and_keeps_the_rest_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    build(&db);
    {
        let c = rusqlite::Connection::open(&db).expect("sqlite");
        let digest = blake3::hash(b"bravo\n");
        let n = c
            .execute(
                "UPDATE chunks SET data = x'00' WHERE hash = ?1",
                [digest.as_bytes().to_vec()],
            )
            .expect("damage");
        assert_eq!(n, 1, "the chunk of /b is found by its hash");
    }
    let mut e = Engine::open(db.to_str().expect("utf-8")).expect("open");
    let r = e.doctor();
    assert!(!r.healthy());
    assert!(
        r.storage.is_empty(),
        "SQLite's pages are fine: {:?}",
        r.storage
    );
    assert!(
        r.chain.as_deref().is_some_and(|c| c.contains("/b")),
        "{r:?}"
    );
    let main = &r.branches.as_ref().expect("branches")[0];
    assert_eq!(main.failures.count, 1, "{main:?}");
    assert!(main.failures.first[0].starts_with("/b: "), "{main:?}");
    assert_eq!(main.readable, 3, "the root, /a and /c still read");
}
