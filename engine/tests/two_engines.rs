//! Two engines on one database, interleaved in one thread: what one commits
//! the other sees at its next transaction, whatever either remembered
//! (PostgreSQL remembers absent keys and carries its point reads over its
//! own commits). Runs on both backends (`DBOS_TEST_BACKEND=postgres`).

mod common;

use dbos_engine::{Actor, Engine, Error, VPath};

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn read(e: &mut Engine, path: &str) -> Option<Vec<u8>> {
    let mut tx = e.begin("main", &Actor::default()).unwrap();
    let p = vp(path);
    tx.stat(&p).unwrap()?;
    Some(tx.read_file(&p).unwrap())
}

fn write(e: &mut Engine, path: &str, bytes: &[u8]) -> u64 {
    let p = vp(path);
    let (_, info) = e
        .autocommit("main", &Actor::default(), "write", |tx| {
            tx.write_bytes(&p, bytes)
        })
        .unwrap();
    info.unwrap().id
}

#[test]
fn each_engine_sees_the_others_commits() {
    let db = common::fresh();
    let mut a = Engine::open(&db.location).unwrap();
    let mut b = Engine::open(&db.location).unwrap();
    let actor = Actor::default();

    // A finds /d/x absent (and /d too); B creates both; A must see them.
    assert_eq!(read(&mut a, "/d/x"), None);
    b.autocommit("main", &actor, "mkdir", |tx| {
        tx.mkdir(&vp("/d"), false, 0o755)
    })
    .unwrap();
    write(&mut b, "/d/x", b"b");
    assert_eq!(read(&mut a, "/d/x").as_deref(), Some(&b"b"[..]));

    // Own consecutive commits: the newest is read back; the past stays.
    let t1 = write(&mut a, "/g", b"1");
    write(&mut a, "/g", b"2");
    assert_eq!(read(&mut a, "/g").as_deref(), Some(&b"2"[..]));
    let mut past = a.view_at("main", t1).unwrap();
    assert_eq!(past.read_file(&vp("/g")).unwrap(), b"1");
    drop(past);

    // A commits, then B: A's next transaction sees B's version.
    write(&mut a, "/f", b"a1");
    assert_eq!(read(&mut a, "/f").as_deref(), Some(&b"a1"[..]));
    write(&mut b, "/f", b"b1");
    assert_eq!(read(&mut a, "/f").as_deref(), Some(&b"b1"[..]));

    // Absent at T for A, created by B after: still absent at T, present now.
    let t = a.head().unwrap();
    assert_eq!(read(&mut a, "/h"), None);
    write(&mut b, "/h", b"h");
    let mut then = a.view_at("main", t).unwrap();
    assert_eq!(then.stat(&vp("/h")).unwrap(), None);
    drop(then);
    assert_eq!(read(&mut a, "/h").as_deref(), Some(&b"h"[..]));

    // A removal by A is seen by both.
    a.autocommit("main", &actor, "rm", |tx| tx.remove(&vp("/f"), false))
        .unwrap();
    assert_eq!(read(&mut a, "/f"), None);
    assert_eq!(read(&mut b, "/f"), None);

    // First committer wins, even when A's read came from what it remembered.
    write(&mut a, "/c", b"a");
    let mut tx = a.begin("main", &actor).unwrap();
    assert_eq!(tx.read_file(&vp("/c")).unwrap(), b"a");
    write(&mut b, "/c", b"b");
    tx.write_bytes(&vp("/c2"), b"from a").unwrap();
    match tx.commit("write", None) {
        Err(Error::Conflict { path, .. }) => assert_eq!(path, "/c"),
        other => panic!("expected a conflict on /c, got {other:?}"),
    }
    assert_eq!(read(&mut a, "/c").as_deref(), Some(&b"b"[..]));
    assert_eq!(read(&mut a, "/c2"), None);

    // B commits between A's snapshot and A's commit (no conflict): what A
    // read before must not hide B's version afterwards.
    write(&mut a, "/k", b"a");
    assert_eq!(read(&mut a, "/k").as_deref(), Some(&b"a"[..]));
    let mut tx = a.begin("main", &actor).unwrap();
    tx.write_bytes(&vp("/other"), b"o").unwrap();
    write(&mut b, "/k", b"b");
    tx.commit("write", None).unwrap();
    assert_eq!(read(&mut a, "/k").as_deref(), Some(&b"b"[..]));

    // A new directory written in bulk, then read back by the other engine.
    a.autocommit("main", &actor, "bulk", |tx| {
        tx.mkdir(&vp("/bulk"), false, 0o755)?;
        for i in 0..50 {
            tx.write_bytes(&vp(&format!("/bulk/f{i}")), format!("{i}").as_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    for i in [0, 25, 49] {
        assert_eq!(
            read(&mut b, &format!("/bulk/f{i}")),
            Some(format!("{i}").into_bytes())
        );
        assert_eq!(
            read(&mut a, &format!("/bulk/f{i}")),
            Some(format!("{i}").into_bytes())
        );
    }
}
