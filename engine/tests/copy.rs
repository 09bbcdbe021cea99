//! Whole-database copy (`dbos_engine::copy`): the copy has the same
//! transactions (ids, times, hashes), branches, tags, logs, shell history
//! and content, and reads the same at every past transaction on every
//! branch; bad sources and destinations are refused; a failed copy leaves
//! no usable half-copy behind. The source is on the backend under test
//! (`DBOS_TEST_BACKEND`); the round trip through PostgreSQL needs
//! `DBOS_TEST_PG` and is skipped loudly without it.

mod common;

use dbos_engine::backend::sqlite::SqliteBackend;
use dbos_engine::backend::{Backend, CommitMeta, ImportItem, IMPORT_UNFINISHED_US};
use dbos_engine::copy::{copy, CopyError, CopyOptions, CopyReport};
use dbos_engine::{Actor, Engine, LogEntry, LogFilter, ProcessRecord, ProcessState, Space, VPath};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn actor(name: &str) -> Actor {
    Actor {
        author: name.to_string(),
        uid: 1000,
        gid: 1000,
    }
}

/// Pseudo-random bytes (barely compressible), the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn log(source: &str, message: &str, process_id: Option<u64>) -> LogEntry {
    LogEntry {
        time_us: 1_700_000_000_000_000,
        source: source.to_string(),
        severity: 6,
        message: message.to_string(),
        process_id,
    }
}

fn process(id: u64, state: ProcessState) -> ProcessRecord {
    ProcessRecord {
        id,
        argv: vec!["/bin/sleep".to_string(), "5".to_string()],
        cwd: "/".to_string(),
        state,
        pid: Some(4242),
        user: "alice".to_string(),
        exit_status: (state == ProcessState::Exited).then_some(0),
        signal: None,
        start_us: 1_700_000_000_000_000,
        end_us: (state == ProcessState::Exited).then_some(1_700_000_001_000_000),
        error: None,
    }
}

/// A history with everything a copy must carry: files, symlinks, a large
/// multi-chunk file and an edit of it, config, process records, log rows
/// (one transaction with logs only), a branch merged back with merge
/// metadata, a deleted branch, a renamed one, tags, shell history.
fn build_history(location: &str) -> Engine {
    let mut e = Engine::open(location).unwrap();
    let alice = actor("alice");
    let bob = actor("bob");
    e.autocommit("main", &alice, "setup /etc", |tx| {
        tx.mkdir(&p("/etc"), true, 0o755)?;
        tx.write_bytes(&p("/etc/hosts"), b"127.0.0.1 localhost\n")?;
        tx.symlink("hosts", &p("/etc/link"))?;
        tx.config_set("net.hostname", "alpha")?;
        tx.log(log("setup", "configured /etc", None))
    })
    .unwrap();
    let big = noise(7, 300_000);
    e.autocommit("main", &alice, "store big", |tx| {
        tx.mkdir(&p("/data"), true, 0o700)?;
        tx.write_bytes(&p("/data/big.bin"), &big)?;
        tx.process_put(&process(1, ProcessState::Running))?;
        tx.log(log("sleep", "started", Some(1)))
    })
    .unwrap();
    let mut edited = big.clone();
    edited[150_000..150_100].copy_from_slice(&[0u8; 100]);
    e.autocommit("main", &bob, "edit big", |tx| {
        tx.write_bytes(&p("/data/big.bin"), &edited)?;
        tx.chmod(&p("/etc/hosts"), 0o600)?;
        tx.process_put(&process(1, ProcessState::Exited))?;
        tx.log(log("sleep", "exited", Some(1)))
    })
    .unwrap();
    let mut tx = e.begin("main", &bob).unwrap();
    tx.log(log("audit", "only a log row", None)).unwrap();
    tx.commit("logger", Some("logs only".to_string())).unwrap();

    let head = e.head().unwrap();
    e.create_branch("exp", "main", head).unwrap();
    e.autocommit("exp", &alice, "experiment", |tx| {
        tx.write_bytes(&p("/etc/exp.conf"), b"debug = on\n")?;
        tx.config_set("feature.x", "on")?;
        tx.log(log("exp", "trying", None))
    })
    .unwrap();
    e.autocommit("main", &bob, "hosts on main", |tx| {
        tx.write_bytes(&p("/etc/hosts"), b"127.0.0.1 localhost alpha\n")
    })
    .unwrap();
    let exp = e.branch("exp").unwrap();
    let exp_tip = e.branch_tip(&exp).unwrap();
    let mut tx = e.begin("main", &alice).unwrap();
    tx.write_bytes(&p("/etc/exp.conf"), b"debug = on\n")
        .unwrap();
    tx.config_set("feature.x", "on").unwrap();
    tx.commit_with(CommitMeta {
        author: "alice".to_string(),
        command: "merge exp".to_string(),
        message: Some("merge exp into main".to_string()),
        merge: Some((exp.id, exp_tip)),
    })
    .unwrap();

    let head = e.head().unwrap();
    e.create_branch("gone", "main", head).unwrap();
    e.autocommit("gone", &bob, "doomed", |tx| {
        tx.write_bytes(&p("/gone.txt"), b"soon deleted\n")
    })
    .unwrap();
    let gone = e.branch("gone").unwrap();
    e.backend().delete_branch(gone.id).unwrap();
    let tmp = e.create_branch("tmp", "exp", exp_tip).unwrap();
    e.backend().rename_branch(tmp.id, "renamed").unwrap();
    e.autocommit("renamed", &bob, "on renamed", |tx| {
        tx.remove(&p("/etc/link"), false)
    })
    .unwrap();
    let mut tx = e.begin("main", &alice).unwrap();
    tx.remove(&p("/etc/link"), false).unwrap();
    tx.config_unset("net.hostname").unwrap();
    tx.commit("cleanup", Some("remove the link".to_string()))
        .unwrap();

    let main = e.branch("main").unwrap();
    e.backend().create_tag("v1", main.id, 4).unwrap();
    e.backend().create_tag("exp-tip", exp.id, exp_tip).unwrap();
    e.backend()
        .add_shell_history("alice", "main", "ls /etc")
        .unwrap();
    e.backend()
        .add_shell_history("bob", "exp", "cat /etc/exp.conf")
        .unwrap();
    e.backend()
        .add_shell_history("alice", "main", "log --graph --all")
        .unwrap();
    e
}

/// Everything one lineage sees, with file contents read in full.
fn state(e: &mut Engine, info: &dbos_engine::BranchInfo, t: u64) -> Vec<String> {
    let lineage = e.lineage(info, t).unwrap();
    let mut v = e.view_lineage(lineage, "test").unwrap();
    let mut out = Vec::new();
    for (path, entry) in v.walk(&VPath::root()).unwrap() {
        let meta = entry.meta().copied();
        let detail = match &entry {
            dbos_engine::Entry::File { .. } => {
                let bytes = v.read_file(&path).unwrap();
                format!("file {}", blake3::hash(&bytes).to_hex())
            }
            other => format!("{other:?}"),
        };
        out.push(format!("{path} {meta:?} {detail}"));
    }
    for (k, val) in v.config_list().unwrap() {
        out.push(format!("config {k}={val}"));
    }
    for r in v.process_list().unwrap() {
        out.push(format!("process {r:?}"));
    }
    for l in v.logs(&LogFilter::default()).unwrap() {
        out.push(format!("log {l:?}"));
    }
    out
}

/// Two databases hold the same: transactions (hashes included), branches
/// (deleted ones too), tags, shell history, and the same state at every
/// transaction on every branch.
fn assert_same(a: &mut Engine, b: &mut Engine) {
    let head = a.head().unwrap();
    assert_eq!(head, b.head().unwrap(), "heads");
    for t in 1..=head {
        assert_eq!(a.tx_info(t).unwrap(), b.tx_info(t).unwrap(), "T{t}");
    }
    let branches = a.backend().export_branches().unwrap();
    assert_eq!(branches, b.backend().export_branches().unwrap());
    assert_eq!(
        a.backend().export_tags().unwrap(),
        b.backend().export_tags().unwrap()
    );
    assert_eq!(
        a.backend().export_shell_history(0, 1000).unwrap(),
        b.backend().export_shell_history(0, 1000).unwrap()
    );
    for who in ["alice", "bob"] {
        assert_eq!(
            a.backend().shell_history(who, 100).unwrap(),
            b.backend().shell_history(who, 100).unwrap()
        );
    }
    for br in &branches {
        for t in 1..=head {
            assert_eq!(
                state(a, &br.info, t),
                state(b, &br.info, t),
                "{}@T{t}",
                br.info.name
            );
        }
    }
    let big = |e: &mut Engine| {
        e.history("main", None, Space::File, "/data/big.bin")
            .unwrap()
            .into_iter()
            .map(|(i, en)| (i.id, en))
            .collect::<Vec<_>>()
    };
    assert_eq!(big(a), big(b));
}

fn quiet_copy(src: &str, dst: &str, opts: &CopyOptions) -> Result<CopyReport, CopyError> {
    let mut lines = Vec::new();
    let r = copy(src, dst, opts, &mut |l: &str| lines.push(l.to_string()));
    if r.is_ok() {
        assert!(
            lines.iter().any(|l| l.contains("verified")),
            "progress: {lines:?}"
        );
    }
    r
}

/// After a copy, the copy is an ordinary database: commits continue the
/// chain, new branches, tags, log rows and history lines get fresh ids.
fn still_usable(location: &str) {
    let mut e = Engine::open(location).unwrap();
    let head = e.head().unwrap();
    let (_, info) = e
        .autocommit("main", &actor("carol"), "after copy", |tx| {
            tx.write_bytes(&p("/after.txt"), b"new\n")?;
            tx.log(log("after", "a new row", None))
        })
        .unwrap();
    assert_eq!(info.unwrap().id, head + 1);
    let max_branch = e
        .backend()
        .export_branches()
        .unwrap()
        .iter()
        .map(|b| b.info.id)
        .max()
        .unwrap();
    let nb = e.create_branch("later", "main", head + 1).unwrap();
    assert!(nb.id > max_branch);
    e.backend()
        .add_shell_history("carol", "main", "echo hi")
        .unwrap();
    assert_eq!(
        e.backend().shell_history("carol", 10).unwrap(),
        vec!["echo hi"]
    );
    let logs = e
        .view_at("main", head + 1)
        .unwrap()
        .logs(&LogFilter::default());
    assert_eq!(logs.unwrap().last().unwrap().entry.message, "a new row");
}

#[test]
fn copies_every_transaction_branch_and_chunk_and_reads_the_same() {
    let src = common::fresh();
    let mut a = build_history(&src.location);
    let dst = src.dir.path().join("copy.db").display().to_string();
    let opts = CopyOptions {
        verify_all: true,
        ..CopyOptions::default()
    };
    let report = quiet_copy(&src.location, &dst, &opts).unwrap();
    let head = a.head().unwrap();
    assert_eq!(report.transactions, head);
    assert_eq!(report.branches, 4, "main, exp, gone (deleted), renamed");
    assert!(
        report.chunks > 40,
        "the big file is many chunks: {report:?}"
    );
    assert_eq!(report.tags, 2);
    assert_eq!(report.shell_lines, 3);
    assert_eq!(report.log_rows, 5);
    assert!(report.states_compared >= head);
    let mut b = Engine::open(&dst).unwrap();
    assert_same(&mut a, &mut b);
    let merge = (1..=head)
        .map(|t| b.tx_info(t).unwrap())
        .find(|i| i.merge.is_some())
        .expect("the merge");
    assert_eq!(merge.message.as_deref(), Some("merge exp into main"));
    assert!(b.branch("gone").is_err(), "deleted stays deleted");
    assert!(b.branch("renamed").is_ok());
    drop(b);
    still_usable(&dst);
}

#[test]
fn sampled_verification_copies_the_same() {
    let src = common::fresh();
    let mut a = build_history(&src.location);
    let dst = src.dir.path().join("sampled.db").display().to_string();
    let opts = CopyOptions {
        samples: 3,
        progress_every: 2,
        ..CopyOptions::default()
    };
    let mut lines = Vec::new();
    let report = copy(&src.location, &dst, &opts, &mut |l: &str| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert!(report.states_compared < report.transactions * 4);
    assert!(
        lines.iter().filter(|l| l.contains("copied")).count() >= 3,
        "progress every 2 transactions: {lines:?}"
    );
    let mut b = Engine::open(&dst).unwrap();
    assert_same(&mut a, &mut b);
}

fn pg_database(server: &str, name: &str) -> String {
    let mut c = postgres::Client::connect(server, postgres::NoTls).expect("connect");
    c.execute(&format!("DROP DATABASE IF EXISTS {name}"), &[])
        .expect("drop");
    c.execute(&format!("CREATE DATABASE {name}"), &[])
        .expect("create");
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    format!("{base}/{name}")
}

#[test]
fn sqlite_to_postgres_and_back_keeps_everything() {
    let Ok(server) = std::env::var("DBOS_TEST_PG") else {
        eprintln!("SKIPPED: DBOS_TEST_PG not set (tests/run starts a server)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("orig.db").display().to_string();
    let mut a = build_history(&lite);
    let pg = pg_database(&server, &format!("dbos_copy_rt_{}", std::process::id()));
    let back = dir.path().join("back.db").display().to_string();
    let opts = CopyOptions::default();
    let r1 = quiet_copy(&lite, &pg, &opts).unwrap();
    let r2 = quiet_copy(&pg, &back, &opts).unwrap();
    assert_eq!(
        (r1.transactions, r1.branches, r1.chunks),
        (r2.transactions, r2.branches, r2.chunks)
    );
    let mut on_pg = Engine::open(&pg).unwrap();
    assert_same(&mut a, &mut on_pg);
    let mut b = Engine::open(&back).unwrap();
    assert_same(&mut a, &mut b);
    // History went through the periods-versioned table.
    let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM versions_history", &[])
        .unwrap()
        .get(0);
    assert!(n >= 4, "replaced versions are in versions_history: {n}");
    drop(on_pg);
    still_usable(&pg);
    still_usable(&back);
    // Into a non-empty PostgreSQL database: refused, nothing changed.
    let head = Engine::open(&pg).unwrap().head().unwrap();
    let err = quiet_copy(&lite, &pg, &opts).unwrap_err();
    assert!(matches!(err, CopyError::Destination(_)), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(Engine::open(&pg).unwrap().head().unwrap(), head);
    // An unfinished import on PostgreSQL is unusable, then cleared.
    let pg2 = pg_database(&server, &format!("dbos_copy_un_{}", std::process::id()));
    let mut raw = dbos_engine::backend::postgres::PostgresBackend::open(&pg2).unwrap();
    unfinished_import(&mut raw, &mut a);
    drop(raw);
    let err = quiet_copy(&lite, &pg2, &opts).unwrap_err();
    assert!(err.to_string().contains("unfinished copy"), "{err}");
    let mut raw = dbos_engine::backend::postgres::PostgresBackend::open(&pg2).unwrap();
    raw.import_abort().unwrap();
    assert_eq!(raw.head().unwrap(), 0);
    drop(raw);
    quiet_copy(&lite, &pg2, &opts).unwrap();
    assert_same(&mut a, &mut Engine::open(&pg2).unwrap());
}

/// Import the branches and T1 of `src` into `raw`, without finishing.
fn unfinished_import(raw: &mut dyn Backend, src: &mut Engine) {
    let mut items = vec![];
    for b in src.backend().export_branches().unwrap() {
        items.push(ImportItem::Branch(b));
    }
    items.push(ImportItem::Tx {
        info: src.tx_info(1).unwrap(),
        writes: src.backend().tx_writes(1).unwrap(),
        logs: vec![],
    });
    let mut it = items.into_iter();
    raw.import(&mut || Ok(it.next())).unwrap();
    let hidden = raw.export_branches().unwrap();
    assert!(hidden
        .iter()
        .all(|b| b.deleted_us == Some(IMPORT_UNFINISHED_US)));
}

#[test]
fn an_unfinished_copy_is_not_usable_and_is_refused() {
    let src = common::fresh();
    let mut a = build_history(&src.location);
    let dst = src.dir.path().join("half.db");
    let mut raw = SqliteBackend::open(&dst).unwrap();
    unfinished_import(&mut raw, &mut a);
    drop(raw);
    // Opening it is refused, saying why: it does not pass for a database.
    let err = Engine::open(dst.to_str().unwrap()).err().expect("refused");
    assert!(
        err.to_string().contains("it holds an unfinished copy"),
        "{err}"
    );
    let mut raw = SqliteBackend::open(&dst).unwrap();
    assert_eq!(raw.head().unwrap(), 1, "not bootstrapped again");
    drop(raw);
    let err = quiet_copy(
        &src.location,
        dst.to_str().unwrap(),
        &CopyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::Destination(_)), "{err}");
    assert!(err.to_string().contains("unfinished copy"), "{err}");
    // import_abort refuses a real database, clears an unfinished one.
    let head = a.head().unwrap();
    let err = a.backend().import_abort().unwrap_err();
    assert!(
        err.to_string().contains("not an unfinished import"),
        "{err}"
    );
    assert_eq!(a.head().unwrap(), head, "the source is intact");
    assert_eq!(a.branches().unwrap().len(), 3);
    let mut raw = SqliteBackend::open(&dst).unwrap();
    raw.import_abort().unwrap();
    assert_eq!(raw.head().unwrap(), 0);
    assert!(raw.export_branches().unwrap().is_empty());
    drop(raw);
    quiet_copy(
        &src.location,
        dst.to_str().unwrap(),
        &CopyOptions::default(),
    )
    .unwrap();
    assert_same(&mut a, &mut Engine::open(dst.to_str().unwrap()).unwrap());
}

#[test]
fn refuses_a_destination_that_is_not_new() {
    let src = common::fresh();
    build_history(&src.location);
    let opts = CopyOptions::default();
    // A database opened once already holds T1.
    let used = src.dir.path().join("used.db").display().to_string();
    Engine::open(&used).unwrap();
    let err = quiet_copy(&src.location, &used, &opts).unwrap_err();
    assert!(matches!(err, CopyError::Destination(_)), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(Engine::open(&used).unwrap().head().unwrap(), 1);
    // A file that is not a dbos database is left alone.
    let text = src.dir.path().join("notes.txt");
    std::fs::write(&text, "precious\n").unwrap();
    let err = quiet_copy(&src.location, text.to_str().unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("not a dbos database"), "{err}");
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "precious\n");
    // A folder.
    let err = quiet_copy(&src.location, src.dir.path().to_str().unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    // The source itself.
    if !common::on_postgres() {
        let err = quiet_copy(&src.location, &src.location, &opts).unwrap_err();
        assert!(err.to_string().contains("source itself"), "{err}");
    }
    // A migrated but empty dbos file is new enough.
    let empty = src.dir.path().join("empty.db");
    drop(SqliteBackend::open(&empty).unwrap());
    quiet_copy(&src.location, empty.to_str().unwrap(), &opts).unwrap();
}

#[test]
fn refuses_bad_sources_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst.db");
    let opts = CopyOptions::default();
    let missing = dir.path().join("missing.db");
    let err = quiet_copy(missing.to_str().unwrap(), dst.to_str().unwrap(), &opts).unwrap_err();
    assert!(matches!(err, CopyError::Source(_)), "{err}");
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(!missing.exists(), "the source is not created");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 5000]).unwrap();
    let err = quiet_copy(junk.to_str().unwrap(), dst.to_str().unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("not a dbos database"), "{err}");
    assert_eq!(std::fs::read(&junk).unwrap(), vec![7u8; 5000]);
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let err = quiet_copy(other.to_str().unwrap(), dst.to_str().unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("not a dbos database"), "{err}");
    let empty = dir.path().join("empty.db");
    drop(SqliteBackend::open(&empty).unwrap());
    let err = quiet_copy(empty.to_str().unwrap(), dst.to_str().unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("no transactions"), "{err}");
    let err = quiet_copy(
        "postgres://nobody@127.0.0.1:1/nothing",
        dst.to_str().unwrap(),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::Source(_)), "{err}");
    assert!(!dst.exists(), "no destination was created");
}

#[test]
fn a_broken_source_chain_stops_the_copy_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build_history(src.to_str().unwrap());
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute(
            "UPDATE transactions SET message = 'forged' WHERE id = 3",
            [],
        )
        .unwrap();
    let dst = dir.path().join("dst.db");
    let err = quiet_copy(
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        &CopyOptions::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CopyError::Failed { .. }), "{text}");
    assert!(text.contains("T3") && text.contains("hash chain"), "{text}");
    assert!(text.contains("was removed"), "{text}");
    assert!(!dst.exists());
}

#[test]
fn a_copy_that_fails_verification_is_removed_or_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build_history(src.to_str().unwrap());
    // Damage one stored chunk: the hash chain (which covers digests) still
    // holds, but the chunk no longer decodes to its hash.
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute(
            "UPDATE chunks SET data = zeroblob(length(data)) WHERE id = (SELECT max(id) FROM chunks)",
            [],
        )
        .unwrap();
    let new = dir.path().join("new.db");
    let err = quiet_copy(
        src.to_str().unwrap(),
        new.to_str().unwrap(),
        &CopyOptions::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CopyError::Mismatch { .. }), "{text}");
    assert!(text.contains("chunk"), "{text}");
    assert!(text.contains("was removed"), "{text}");
    assert!(!new.exists());
    // A destination that existed (empty) is emptied again, not removed.
    let empty = dir.path().join("empty.db");
    drop(SqliteBackend::open(&empty).unwrap());
    let err = quiet_copy(
        src.to_str().unwrap(),
        empty.to_str().unwrap(),
        &CopyOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("emptied again"), "{err}");
    let mut raw = SqliteBackend::open(&empty).unwrap();
    assert_eq!(raw.head().unwrap(), 0);
    assert!(raw.export_branches().unwrap().is_empty());
    assert!(raw.export_chunks(0, 10).unwrap().is_empty());
}
