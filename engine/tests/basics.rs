//! Basic behaviour of the engine through its public API.

use dbos_engine::{Actor, Engine, Entry, Error, Space, VPath};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

mod common;

fn open() -> (common::TestDb, Engine) {
    let db = common::fresh();
    let e = Engine::open(&db.location).unwrap();
    (db, e)
}

#[test]
fn new_database_has_root_and_t1() {
    let (_d, mut e) = open();
    assert_eq!(e.head().unwrap(), 1);
    let info = e.tx_info(1).unwrap();
    assert_eq!(info.command, "init");
    let mut v = e.view_at("main", 1).unwrap();
    assert!(v.stat(&p("/")).unwrap().unwrap().is_dir());
    assert!(v.read_dir(&p("/")).unwrap().is_empty());
}

#[test]
fn write_read_and_time_travel() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let (_, t1) = e
        .autocommit("main", &a, "echo one > /f", |tx| {
            tx.write_bytes(&p("/f"), b"one\n")
        })
        .unwrap();
    let (_, t2) = e
        .autocommit("main", &a, "echo two >> /f", |tx| {
            tx.write_file(&p("/f"), &b"two\n"[..], true)
        })
        .unwrap();
    let (_, t3) = e
        .autocommit("main", &a, "rm /f", |tx| tx.remove(&p("/f"), false))
        .unwrap();
    let (t1, t2, t3) = (t1.unwrap().id, t2.unwrap().id, t3.unwrap().id);
    assert!(t1 < t2 && t2 < t3);
    assert_eq!(
        e.view_at("main", t1).unwrap().read_file(&p("/f")).unwrap(),
        b"one\n"
    );
    assert_eq!(
        e.view_at("main", t2).unwrap().read_file(&p("/f")).unwrap(),
        b"one\ntwo\n"
    );
    assert!(e
        .view_at("main", t3)
        .unwrap()
        .stat(&p("/f"))
        .unwrap()
        .is_none());
    let h = e.file_history("main", &p("/f")).unwrap();
    assert_eq!(h.len(), 3);
    assert!(h[0].1.is_none());
    assert_eq!(h[2].0.command, "echo one > /f");
    let ch = e.changes(t2).unwrap();
    assert_eq!(ch.len(), 1);
    assert!(ch[0].before.is_some() && ch[0].after.is_some());
}

#[test]
fn explicit_transaction_is_atomic_and_rollback_discards() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let mut tx = e.begin("main", &a).unwrap();
    tx.mkdir(&p("/etc"), false, 0o755).unwrap();
    tx.write_bytes(&p("/etc/a"), b"a").unwrap();
    let st = tx.into_state();
    // Not visible to others before commit.
    let head = e.head().unwrap();
    assert!(e
        .view_at("main", head)
        .unwrap()
        .stat(&p("/etc"))
        .unwrap()
        .is_none());
    let tx = e.resume(st);
    tx.rollback();
    assert_eq!(e.head().unwrap(), 1);
    let mut tx = e.begin("main", &a).unwrap();
    tx.mkdir(&p("/etc"), false, 0o755).unwrap();
    tx.write_bytes(&p("/etc/a"), b"a").unwrap();
    tx.write_bytes(&p("/etc/b"), b"b").unwrap();
    let info = tx.commit("multi", Some("msg".into())).unwrap().unwrap();
    assert_eq!(e.changes(info.id).unwrap().len(), 3);
    assert_eq!(e.tx_info(info.id).unwrap().message.as_deref(), Some("msg"));
}

#[test]
fn conflicting_commit_fails_and_changes_nothing() {
    let (_d, mut e) = open();
    let a = Actor::default();
    e.autocommit("main", &a, "w", |tx| tx.write_bytes(&p("/f"), b"0"))
        .unwrap();
    let mut t1 = e.begin("main", &a).unwrap();
    t1.write_bytes(&p("/f"), b"1").unwrap();
    let s1 = t1.into_state();
    e.autocommit("main", &a, "w2", |tx| tx.write_bytes(&p("/f"), b"2"))
        .unwrap();
    let head = e.head().unwrap();
    let err = e.resume(s1).commit("w1", None).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(e.head().unwrap(), head);
    assert_eq!(
        e.view_at("main", head)
            .unwrap()
            .read_file(&p("/f"))
            .unwrap(),
        b"2"
    );
}

#[test]
fn bad_input_is_refused() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let mut tx = e.begin("main", &a).unwrap();
    assert!(matches!(
        tx.write_bytes(&p("/no/f"), b"x"),
        Err(Error::NotFound(_))
    ));
    tx.write_bytes(&p("/file"), b"x").unwrap();
    assert!(matches!(
        tx.write_bytes(&p("/file/x"), b"x"),
        Err(Error::NotADirectory(_))
    ));
    tx.mkdir(&p("/d"), false, 0o755).unwrap();
    tx.write_bytes(&p("/d/x"), b"x").unwrap();
    assert!(matches!(
        tx.remove(&p("/d"), false),
        Err(Error::DirectoryNotEmpty(_))
    ));
    assert!(matches!(
        tx.rename(&p("/d"), &p("/d/sub")),
        Err(Error::MoveIntoSelf { .. })
    ));
    assert!(matches!(
        tx.remove(&p("/"), true),
        Err(Error::RootImmutable)
    ));
    assert!(tx.config_set("bad key", "v").is_err());
    assert!(tx.config_set("", "v").is_err());
    tx.rename(&p("/d"), &p("/e")).unwrap();
    assert_eq!(tx.read_file(&p("/e/x")).unwrap(), b"x");
    assert!(tx.stat(&p("/d/x")).unwrap().is_none());
}

#[test]
fn config_and_processes_share_the_mechanism() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let (_, t) = e
        .autocommit("main", &a, "config set", |tx| {
            tx.config_set("net.hostname", "box")
        })
        .unwrap();
    e.autocommit("main", &a, "config set", |tx| {
        tx.config_set("net.hostname", "box2")
    })
    .unwrap();
    let mut v = e.view_at("main", t.unwrap().id).unwrap();
    assert_eq!(
        v.config_get("net.hostname").unwrap().as_deref(),
        Some("box")
    );
    let h = e
        .history("main", None, Space::Config, "net.hostname")
        .unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].1, Some(Entry::Value("box2".into())));
}

#[test]
fn diff_between_moments_lists_only_changes() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let mut t = e.begin("main", &a).unwrap();
    for i in 0..50 {
        t.write_bytes(&p(&format!("/f{i}")), b"same").unwrap();
    }
    let base = t.commit("many", None).unwrap().unwrap().id;
    e.autocommit("main", &a, "edit", |tx| {
        tx.write_bytes(&p("/f3"), b"changed")
    })
    .unwrap();
    e.autocommit("main", &a, "rm", |tx| tx.remove(&p("/f7"), false))
        .unwrap();
    e.autocommit("main", &a, "cfg", |tx| tx.config_set("k", "v"))
        .unwrap();
    let now = e.head().unwrap();
    let m = |tx| dbos_engine::Moment {
        branch: "main".into(),
        tx,
    };
    let d = e.diff(&m(base), &m(now)).unwrap();
    let paths: Vec<_> = d.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["/f3", "/f7", "k"]);
    assert!(d[1].after.is_none());
    // Reverse direction swaps before and after.
    let r = e.diff(&m(now), &m(base)).unwrap();
    assert_eq!(r.len(), 3);
    assert!(r[1].before.is_none() && r[1].after.is_some());
    // A branch forked at base sees none of main's later changes.
    e.create_branch("exp", "main", base).unwrap();
    e.autocommit("exp", &a, "exp", |tx| tx.write_bytes(&p("/x"), b"x"))
        .unwrap();
    let exp_head = e.head().unwrap();
    let d = e
        .diff(
            &m(now),
            &dbos_engine::Moment {
                branch: "exp".into(),
                tx: exp_head,
            },
        )
        .unwrap();
    let paths: Vec<_> = d.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["/f3", "/f7", "/x", "k"]);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    if common::on_postgres() {
        return; // SQLite file format specifics; the PostgreSQL runner shares the check.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let loc = path.to_str().unwrap();
    drop(Engine::open(loc).unwrap());
    {
        let be = dbos_engine::backend::sqlite::SqliteBackend::open(&path).unwrap();
        be.connection()
            .execute(
                "INSERT INTO schema_migrations(version, name, applied_us) VALUES (999, 'future', 0)",
                [],
            )
            .unwrap();
        be.connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Engine::open(loc)
        .err()
        .expect("a newer schema must not open");
    assert!(
        matches!(err, Error::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer"));
    assert_eq!(std::fs::read(&path).unwrap(), before, "file left untouched");
}

/// A reader producing `len` pseudo-random bytes without holding them.
struct Gen {
    left: u64,
    state: u64,
}

impl std::io::Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.state >> 56) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn large_files_stream_in_and_out() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let len = 48 << 20; // over the 32 MiB in-memory chunk budget
    let mut tx = e.begin("main", &a).unwrap();
    tx.write_file(
        &p("/big"),
        Gen {
            left: len,
            state: 1,
        },
        false,
    )
    .unwrap();
    tx.commit("big", None).unwrap();
    let head = e.head().unwrap();
    let mut v = e.view_at("main", head).unwrap();
    let mut expected = Gen {
        left: len,
        state: 1,
    };
    let mut reader = v.open(&p("/big")).unwrap();
    let mut got = vec![0u8; 1 << 16];
    let mut want = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        use std::io::Read;
        let n = reader.read(&mut got).unwrap();
        if n == 0 {
            break;
        }
        expected.read_exact(&mut want[..n]).unwrap();
        assert_eq!(got[..n], want[..n], "at offset {total}");
        total += n as u64;
    }
    assert_eq!(total, len);
}

#[test]
fn identical_content_is_stored_once() {
    if common::on_postgres() {
        return; // counts rows through a SQLite connection
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut e = Engine::open(path.to_str().unwrap()).unwrap();
    let a = Actor::default();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    e.autocommit("main", &a, "w1", |tx| tx.write_bytes(&p("/a"), &data))
        .unwrap();
    let count = |path: &std::path::Path| -> i64 {
        dbos_engine::backend::sqlite::SqliteBackend::open(path)
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
            .unwrap()
    };
    let after_one = count(&path);
    e.autocommit("main", &a, "w2", |tx| tx.write_bytes(&p("/b"), &data))
        .unwrap();
    e.autocommit("main", &a, "cp", |tx| tx.copy(&p("/a"), &p("/c"), false))
        .unwrap();
    assert_eq!(count(&path), after_one, "same content adds no chunk");
    let mut edited = data.clone();
    edited[100_000] ^= 0xff;
    e.autocommit("main", &a, "w3", |tx| tx.write_bytes(&p("/a"), &edited))
        .unwrap();
    assert!(
        count(&path) - after_one <= 3,
        "a one-byte edit adds few chunks"
    );
}

#[test]
fn process_records_and_logs_travel_in_time() {
    use dbos_engine::{LogEntry, LogFilter, ProcessRecord, ProcessState};
    let (_d, mut e) = open();
    let a = Actor::default();
    let mut rec = ProcessRecord {
        id: 0,
        argv: vec!["sleep".into(), "1".into()],
        cwd: "/".into(),
        state: ProcessState::Running,
        pid: Some(4242),
        user: "root".into(),
        exit_status: None,
        signal: None,
        start_us: 1,
        end_us: None,
        error: None,
    };
    let (_, started) = e
        .autocommit("main", &a, "run sleep 1", |tx| {
            rec.id = tx.next_process_id()?;
            tx.process_put(&rec)?;
            tx.log(LogEntry {
                time_us: 5,
                source: "sleep".into(),
                severity: 6,
                message: "started".into(),
                process_id: Some(rec.id),
            })
        })
        .unwrap();
    let started = started.unwrap().id;
    assert_eq!(rec.id, 1);
    rec.state = ProcessState::Exited;
    rec.exit_status = Some(0);
    rec.end_us = Some(2);
    e.autocommit("main", &a, "exit", |tx| {
        tx.process_put(&rec)?;
        tx.log(LogEntry {
            time_us: 6,
            source: "sleep".into(),
            severity: 3,
            message: "done".into(),
            process_id: Some(rec.id),
        })
    })
    .unwrap();
    let head = e.head().unwrap();
    let mut then = e.view_at("main", started).unwrap();
    let p = then.process_get(1).unwrap().unwrap();
    assert_eq!(p.state, ProcessState::Running);
    assert_eq!(then.logs(&LogFilter::default()).unwrap().len(), 1);
    let mut now = e.view_at("main", head).unwrap();
    assert_eq!(now.process_list().unwrap()[0].state, ProcessState::Exited);
    let all = now.logs(&LogFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].entry.message, "done");
    let errors = now
        .logs(&LogFilter {
            max_severity: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(now.next_process_id().unwrap(), 2);
}

#[test]
fn as_of_by_time_gives_the_state_committed_by_then() {
    let (_d, mut e) = open();
    let a = Actor::default();
    let (_, t1) = e
        .autocommit("main", &a, "v1", |tx| tx.write_bytes(&p("/f"), b"1"))
        .unwrap();
    let t1 = e.tx_info(t1.unwrap().id).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    e.autocommit("main", &a, "v2", |tx| tx.write_bytes(&p("/f"), b"2"))
        .unwrap();
    let at = e.tx_at_time(t1.time_us).unwrap();
    assert_eq!(at, t1.id);
    assert_eq!(
        e.view_at("main", at).unwrap().read_file(&p("/f")).unwrap(),
        b"1"
    );
    let m = e
        .resolve_ref(
            "main",
            &chrono::DateTime::from_timestamp_micros(t1.time_us + 1000)
                .unwrap()
                .to_rfc3339(),
        )
        .unwrap();
    assert_eq!(m.tx, t1.id);
    assert!(matches!(
        e.tx_at_time(0),
        Err(Error::NoTransactionAtTime(_))
    ));
}
