//! Audit SQL (issue 7) through the engine's API, on the backend under test
//! (`DBOS_TEST_BACKEND=postgres` runs it on PostgreSQL): every view's
//! columns, the temporal clauses against the engine's own as-of API over
//! random histories, writes refused with the state unchanged, and tamper
//! evidence: rows edited, deleted or inserted behind the engine's back are
//! found by `verify`, which names the transaction.

mod common;

use dbos_engine::audit::{SqlRows, SqlValue};
use dbos_engine::{hex, Actor, Engine, Entry, Error, LogEntry, ProcessRecord, ProcessState};
use dbos_engine::{Space, VPath};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn sql(e: &mut Engine, branch: &str, q: &str) -> SqlRows {
    e.sql(branch, None, q)
        .unwrap_or_else(|err| panic!("{q}: {err}"))
}

/// Rows as text (NULL as "NULL").
fn texts(rows: &SqlRows) -> Vec<Vec<String>> {
    rows.rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    SqlValue::Null => "NULL".to_string(),
                    SqlValue::Integer(i) => i.to_string(),
                    SqlValue::Real(f) => f.to_string(),
                    SqlValue::Text(t) => t.clone(),
                    SqlValue::Blob(b) => hex(b),
                })
                .collect()
        })
        .collect()
}

fn kind(e: &Entry) -> &'static str {
    match e {
        Entry::File { .. } => "file",
        Entry::Dir { .. } => "dir",
        Entry::Symlink { .. } => "symlink",
        Entry::Value(_) => "value",
    }
}

fn digest(e: &Entry) -> String {
    match e {
        Entry::File { content, .. } => hex(&content.digest),
        _ => "NULL".to_string(),
    }
}

#[test]
fn every_view_has_its_documented_columns() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    let expect: &[(&str, &str)] = &[
        ("transactions", "id time author host branch command message hash merge_branch merge_tx"),
        ("branches", "id name parent fork_tx head_tx created deleted"),
        ("files", "path name type mode uid gid size mtime digest target author branch valid_from_tx valid_from"),
        ("file_history", "path name type mode uid gid size mtime digest target author branch valid_from_tx valid_from valid_to_tx valid_to"),
        ("config", "key value author branch valid_from_tx valid_from"),
        ("config_history", "key value author branch valid_from_tx valid_from valid_to_tx valid_to"),
        ("processes", "id argv cwd state pid started_by exit_status signal started ended error author branch valid_from_tx valid_from"),
        ("process_history", "id argv cwd state pid started_by exit_status signal started ended error author branch valid_from_tx valid_from valid_to_tx valid_to"),
        ("logs", "id tx branch time source severity level message process_id"),
        ("shell_history", "id time author branch line"),
        ("boots", "boot_id kernel as_of started ended how pid1 hostname author branch valid_from_tx valid_from"),
        ("metrics", "time load1 load5 load15 mem_total_kb mem_available_kb processes tx_per_sec db_bytes author branch valid_from_tx valid_from"),
    ];
    assert_eq!(expect.len(), dbos_engine::audit::VIEWS.len());
    for (view, cols) in expect {
        let r = sql(&mut e, "main", &format!("SELECT * FROM {view}"));
        assert_eq!(r.columns.join(" "), *cols, "columns of {view}");
    }
}

#[test]
fn boots_and_metrics_read_dbos_inits_json() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    let boot = |end: &str| {
        format!(
            r#"{{"id":"b-1","kernel":"6.1.0","branch":"main","as_of":null,"start_us":1795000000000000,"pid1":true,"hostname":"vm1","end_us":{end},"ended":{how}}}"#,
            how = if end == "null" {
                "null"
            } else {
                "\"poweroff\""
            }
        )
    };
    let value = |v: String| Some(Entry::Value(v));
    e.autocommit("main", &Actor::default(), "boot", |tx| {
        tx.put(Space::Boot, "b-1", value(boot("null")))?;
        tx.put(
            Space::Metric,
            "00001795000000000000",
            value(r#"{"time_us":1795000000000000,"load":[0.5,1.25,2.0],"mem_total_kb":2048,"mem_available_kb":1024,"processes":42,"tps":null,"db_bytes":4096}"#.to_string()),
        )?;
        tx.put(
            Space::Metric,
            "00001795000010000000",
            value(r#"{"time_us":1795000010000000,"load":[1.0,0.0,0.0],"mem_total_kb":2048,"mem_available_kb":512,"processes":43,"tps":3.5,"db_bytes":null}"#.to_string()),
        )?;
        Ok(())
    })
    .unwrap();
    let running = sql(
        &mut e,
        "main",
        "SELECT boot_id, kernel, as_of, started, ended, how, pid1, hostname, branch FROM boots",
    );
    assert_eq!(
        texts(&running),
        [[
            "b-1",
            "6.1.0",
            "NULL",
            "2026-11-18T11:06:40.000000Z",
            "NULL",
            "NULL",
            "1",
            "vm1",
            "main"
        ]]
    );
    e.autocommit("main", &Actor::default(), "boot end", |tx| {
        tx.put(Space::Boot, "b-1", value(boot("1795000060500000")))
    })
    .unwrap();
    let ended = sql(&mut e, "main", "SELECT ended, how FROM boots");
    assert_eq!(texts(&ended), [["2026-11-18T11:07:40.500000Z", "poweroff"]]);
    let m = sql(
        &mut e,
        "main",
        "SELECT time, load1, load5, load15, mem_total_kb, mem_available_kb, processes, tx_per_sec, db_bytes \
         FROM metrics WHERE time >= '2026-11-18T11:06:45' ORDER BY time",
    );
    assert_eq!(
        texts(&m),
        [[
            "2026-11-18T11:06:50.000000Z",
            "1",
            "0",
            "0",
            "2048",
            "512",
            "43",
            "3.5",
            "NULL"
        ]]
    );
    let all = sql(
        &mut e,
        "main",
        "SELECT load1, load5, load15, db_bytes FROM metrics ORDER BY time",
    );
    assert_eq!(texts(&all)[0], ["0.5", "1.25", "2", "4096"]);
    // The boot row as of before its end: still running.
    let past = sql(
        &mut e,
        "main",
        "SELECT how FROM boots FOR SYSTEM_TIME ALL ORDER BY valid_from_tx",
    );
    assert_eq!(texts(&past), [["NULL"], ["poweroff"]]);
}

/// A random history on main and a branch: files, directories, symlinks,
/// config keys, process records and log rows.
fn random_history(e: &mut Engine, seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let a = Actor {
        author: "alice".into(),
        ..Actor::default()
    };
    e.autocommit("main", &a, "mkdir", |tx| {
        tx.mkdir(&p("/d0"), false, 0o755)?;
        tx.mkdir(&p("/d1"), false, 0o700)
    })
    .unwrap();
    for step in 0..steps {
        let branch = if step > steps / 2 && rng.gen_bool(0.4) {
            "exp"
        } else {
            "main"
        };
        if step == steps / 2 {
            let head = e.head().unwrap();
            e.create_branch("exp", "main", head).unwrap();
        }
        let ops: Vec<(u8, u32, u32)> = (0..rng.gen_range(1..4))
            .map(|_| {
                (
                    rng.gen_range(0..7),
                    rng.gen_range(0..2),
                    rng.gen_range(0..4),
                )
            })
            .collect();
        let len = rng.gen_range(0..200);
        let _ = e.autocommit(branch, &a, &format!("step {step}"), |tx| {
            for &(op, d, f) in &ops {
                let path = p(&format!("/d{d}/f{f}"));
                match op {
                    0 | 1 => tx.write_bytes(&path, &vec![b'a' + (step % 26) as u8; len])?,
                    2 => {
                        if tx.stat(&path)?.is_some() {
                            tx.remove(&path, false)?;
                        }
                    }
                    3 => {
                        if tx.stat(&path)?.is_none() {
                            tx.symlink(&format!("/d{f}"), &path)?;
                        }
                    }
                    4 => tx.config_set(&format!("k{f}"), &format!("v{step}"))?,
                    5 => tx.config_unset(&format!("k{f}"))?,
                    _ => {
                        let id = u64::from(f) + 1;
                        tx.process_put(&ProcessRecord {
                            id,
                            argv: vec!["sleep".into(), step.to_string()],
                            cwd: "/".into(),
                            state: if step % 2 == 0 {
                                ProcessState::Running
                            } else {
                                ProcessState::Exited
                            },
                            pid: Some(100 + step as u32),
                            user: "alice".into(),
                            exit_status: (step % 2 == 1).then_some(0),
                            signal: None,
                            start_us: 1_700_000_000_000_000 + step as i64,
                            end_us: None,
                            error: None,
                        })?;
                        tx.log(LogEntry {
                            time_us: 1_700_000_000_000_000 + step as i64,
                            source: "test".into(),
                            severity: (step % 8) as u8,
                            message: format!("step {step}"),
                            process_id: Some(id),
                        })?;
                    }
                }
            }
            Ok(())
        });
    }
}

/// The file state the engine's own as-of API gives: path -> (type, size, digest).
fn engine_files(
    e: &mut Engine,
    branch: &str,
    t: u64,
) -> BTreeMap<String, (String, String, String)> {
    let mut v = e.view_at(branch, t).unwrap();
    let mut out = BTreeMap::new();
    for (path, entry) in v.list_space(Space::File).unwrap() {
        out.insert(
            path,
            (
                kind(&entry).to_string(),
                entry.size().to_string(),
                digest(&entry),
            ),
        );
    }
    out
}

fn sql_files(
    e: &mut Engine,
    branch: &str,
    clause: &str,
) -> BTreeMap<String, (String, String, String)> {
    let r = sql(
        e,
        branch,
        &format!("SELECT path, type, size, digest FROM files {clause}"),
    );
    texts(&r)
        .into_iter()
        .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone(), r[3].clone())))
        .collect()
}

#[test]
fn as_of_clauses_agree_with_the_engines_as_of_reads() {
    for seed in 0..3u64 {
        let db = common::fresh();
        let mut e = Engine::open(&db.location).unwrap();
        random_history(&mut e, seed, 24);
        let head = e.head().unwrap();
        let exp_fork = e.branch("exp").unwrap().fork_tx.unwrap_or(0);
        for t in 1..=head {
            let clause = format!("FOR SYSTEM_TIME AS OF T{t}");
            assert_eq!(
                sql_files(&mut e, "main", &clause),
                engine_files(&mut e, "main", t),
                "seed {seed}, main, T{t}"
            );
            if t >= exp_fork {
                assert_eq!(
                    sql_files(&mut e, "exp", &clause),
                    engine_files(&mut e, "exp", t),
                    "seed {seed}, exp, T{t}"
                );
                // BRANCH@REF reaches another branch from main.
                assert_eq!(
                    sql_files(&mut e, "main", &format!("FOR SYSTEM_TIME AS OF exp@T{t}")),
                    engine_files(&mut e, "exp", t),
                );
            }
            let config: Vec<(String, String)> = texts(&sql(
                &mut e,
                "main",
                &format!("SELECT key, value FROM config {clause} ORDER BY key"),
            ))
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
            let mut want = e.view_at("main", t).unwrap().config_list().unwrap();
            want.sort();
            assert_eq!(config, want, "config, seed {seed}, T{t}");
            let procs: Vec<(String, String, String)> = texts(&sql(
                &mut e,
                "main",
                &format!("SELECT id, state, argv FROM processes {clause} ORDER BY id"),
            ))
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
            .collect();
            let want: Vec<(String, String, String)> = e
                .view_at("main", t)
                .unwrap()
                .process_list()
                .unwrap()
                .into_iter()
                .map(|r| {
                    let state = serde_json::to_value(r.state).unwrap();
                    (
                        r.id.to_string(),
                        state.as_str().unwrap().to_string(),
                        serde_json::to_string(&r.argv).unwrap(),
                    )
                })
                .collect();
            assert_eq!(procs, want, "processes, seed {seed}, T{t}");
            let logs: Vec<String> = texts(&sql(
                &mut e,
                "main",
                &format!("SELECT message FROM logs {clause} ORDER BY id"),
            ))
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
            let want: Vec<String> = e
                .view_at("main", t)
                .unwrap()
                .logs(&dbos_engine::LogFilter::default())
                .unwrap()
                .into_iter()
                .map(|l| l.entry.message)
                .collect();
            assert_eq!(logs, want, "logs, seed {seed}, T{t}");
        }
        // Without a clause, files is the branch's head, and --as-of moves it.
        assert_eq!(
            sql_files(&mut e, "main", ""),
            engine_files(&mut e, "main", head)
        );
        let mid = head / 2;
        let r = e
            .sql(
                "main",
                Some(&format!("T{mid}")),
                "SELECT path, type, size, digest FROM files",
            )
            .unwrap();
        let got: BTreeMap<_, _> = texts(&r)
            .into_iter()
            .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone(), r[3].clone())))
            .collect();
        assert_eq!(got, engine_files(&mut e, "main", mid));
    }
}

/// Versions of every file path on main's lineage at `upto`, from the
/// engine's history API: (path, from, to) for each non-removed version.
fn engine_versions(e: &mut Engine, upto: u64) -> BTreeSet<(String, u64, Option<u64>)> {
    let mut paths = BTreeSet::new();
    for t in 1..=upto {
        paths.extend(engine_files(e, "main", t).into_keys());
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let mut h = e.history("main", Some(upto), Space::File, &path).unwrap();
        h.sort_by_key(|(info, _)| info.id);
        for (i, (info, entry)) in h.iter().enumerate() {
            if entry.is_some() {
                out.insert((path.clone(), info.id, h.get(i + 1).map(|n| n.0.id)));
            }
        }
    }
    out
}

fn sql_versions(e: &mut Engine, q: &str) -> BTreeSet<(String, u64, Option<u64>)> {
    texts(&sql(e, "main", q))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].parse().ok()))
        .collect()
}

#[test]
fn between_and_all_agree_with_the_engines_history() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    random_history(&mut e, 7, 20);
    let head = e.head().unwrap();
    let all = engine_versions(&mut e, head);
    assert_eq!(
        sql_versions(
            &mut e,
            "SELECT path, valid_from_tx, valid_to_tx FROM file_history"
        ),
        all
    );
    assert_eq!(
        sql_versions(
            &mut e,
            "SELECT path, valid_from_tx, valid_to_tx FROM files FOR SYSTEM_TIME ALL"
        ),
        all
    );
    for (a, b) in [(1, head), (2, 5), (head / 2, head / 2), (head - 3, head)] {
        let known = engine_versions(&mut e, b);
        let want: BTreeSet<_> = known
            .into_iter()
            .filter(|(_, from, to)| *from <= b && to.is_none_or(|t| t > a))
            .collect();
        let got = sql_versions(
            &mut e,
            &format!(
                "SELECT path, valid_from_tx, valid_to_tx FROM file_history FOR SYSTEM_TIME BETWEEN T{a} AND T{b}"
            ),
        );
        assert_eq!(got, want, "BETWEEN T{a} AND T{b}");
    }
    let err = e
        .sql(
            "main",
            None,
            "SELECT * FROM files FOR SYSTEM_TIME BETWEEN T5 AND T2",
        )
        .unwrap_err();
    assert!(err.to_string().contains("after"), "{err}");
}

#[test]
fn transactions_and_branches_views_match_the_log() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    random_history(&mut e, 3, 12);
    let head = e.head().unwrap();
    let rows = texts(&sql(
        &mut e,
        "main",
        "SELECT id, author, branch, command, hash, time FROM transactions ORDER BY id",
    ));
    assert_eq!(rows.len() as u64, head);
    let branches: BTreeMap<i64, String> = e
        .branches()
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.name))
        .collect();
    for r in &rows {
        let info = e.tx_info(r[0].parse().unwrap()).unwrap();
        assert_eq!(r[1], info.author);
        assert_eq!(r[2], branches[&info.branch_id]);
        assert_eq!(r[3], info.command);
        assert_eq!(r[4], hex(&info.hash));
        let want = chrono::DateTime::from_timestamp_micros(info.time_us)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        assert_eq!(r[5], want);
    }
    let b = texts(&sql(
        &mut e,
        "main",
        "SELECT name, parent FROM branches ORDER BY id",
    ));
    assert_eq!(
        b,
        vec![
            vec!["main".to_string(), "NULL".to_string()],
            vec!["exp".into(), "main".into()]
        ]
    );
    // AS OF on transactions: those committed by then.
    let n = texts(&sql(
        &mut e,
        "main",
        "SELECT count(*) FROM transactions FOR SYSTEM_TIME AS OF T3",
    ));
    assert_eq!(n[0][0], "3");
    // Clauses on views without system time are refused by name.
    let err = e
        .sql("main", None, "SELECT * FROM branches FOR SYSTEM_TIME ALL")
        .unwrap_err();
    assert!(
        err.to_string().contains("does not apply to branches"),
        "{err}"
    );
}

/// A summary of everything stored, to show a refused write changed nothing.
fn fingerprint(e: &mut Engine) -> Vec<Vec<String>> {
    let mut out = vec![vec![e.head().unwrap().to_string()]];
    for table in [
        "keys",
        "versions",
        "chunks",
        "log_entries",
        "tags",
        "branches",
    ] {
        out.extend(texts(&sql(
            e,
            "main",
            &format!("SELECT '{table}', count(*) FROM {table}"),
        )));
    }
    out.extend(texts(&sql(
        e,
        "main",
        "SELECT id, author, command, hash FROM transactions ORDER BY id",
    )));
    out
}

#[test]
fn writes_are_refused_by_the_database_and_change_nothing() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    random_history(&mut e, 11, 6);
    let before = fingerprint(&mut e);
    let mut attempts: Vec<String> = vec![
        "INSERT INTO keys(space, path, name) VALUES ('file', '/planted', 'planted')".into(),
        "UPDATE transactions SET author = 'mallory'".into(),
        "DELETE FROM versions".into(),
        "DELETE FROM chunks WHERE id > 0".into(),
        "CREATE TABLE planted(x integer)".into(),
        "DROP TABLE chunks".into(),
        "ALTER TABLE keys ADD COLUMN planted integer".into(),
        "CREATE INDEX planted ON keys(name)".into(),
        "WITH x AS (SELECT 1) INSERT INTO tags(name, branch_id, tx_id, created_us) SELECT 'x', 1, 1, 1 FROM x".into(),
        "SELECT 1; DELETE FROM versions".into(),
        "CREATE TEMP TABLE planted(x integer)".into(),
    ];
    if common::on_postgres() {
        attempts.extend(
            [
                "SELECT nextval('keys_id_seq')",
                "SELECT setval('keys_id_seq', 1000)",
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT lo_import('/etc/passwd')",
                "COPY keys FROM '/etc/passwd'",
                "SET ROLE postgres",
                "COMMIT",
                "TRUNCATE log_entries",
            ]
            .map(String::from),
        );
    } else {
        let attach = db.dir.path().join("attached.db");
        attempts.extend([
            format!("ATTACH '{}' AS planted", attach.display()),
            "PRAGMA journal_mode = DELETE".into(),
            "PRAGMA user_version = 99".into(),
            "PRAGMA query_only = 0".into(),
            "SELECT load_extension('/nonexistent/ext')".into(),
            "BEGIN".into(),
            "VACUUM".into(),
            "REINDEX".into(),
            "ANALYZE".into(),
        ]);
    }
    for q in &attempts {
        match e.sql("main", None, q) {
            Err(Error::Sql(m)) => assert!(
                m.contains("refused") || m.contains("one statement"),
                "{q}: unclear message: {m}"
            ),
            other => panic!("{q}: not refused: {other:?}"),
        }
        assert_eq!(fingerprint(&mut e), before, "{q} changed the state");
    }
    if !common::on_postgres() {
        assert!(!db.dir.path().join("attached.db").exists());
    }
    let report = e.verify(1, &mut |_, _| {}).unwrap();
    assert_eq!(report.broken, None);
}

// ----- tamper evidence --------------------------------------------------

/// Run SQL on the database directly, as someone with sqlite3 or psql would.
fn tamper(location: &str, statements: &str) {
    if common::on_postgres() {
        let mut c = postgres::Client::connect(location, postgres::NoTls).unwrap();
        c.batch_execute(statements)
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    } else {
        // The sqlite3 shell leaves foreign keys off; rusqlite's bundled
        // SQLite turns them on.
        let c = rusqlite::Connection::open(location).unwrap();
        c.execute_batch(&format!("PRAGMA foreign_keys = OFF; {statements}"))
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }
}

/// T1 init, T2 /a and a config key, T3 /b only, T4 /c only, T5 a log row
/// and /d, T6 a branch commit on `exp`.
fn tamper_fixture() -> (common::TestDb, Engine) {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    let a = Actor::default();
    e.autocommit("main", &a, "T2", |tx| {
        tx.write_bytes(&p("/a"), b"a\n")?;
        tx.config_set("net.dns", "1.1.1.1")
    })
    .unwrap();
    e.autocommit("main", &a, "T3", |tx| tx.write_bytes(&p("/b"), b"b\n"))
        .unwrap();
    e.autocommit("main", &a, "T4", |tx| tx.write_bytes(&p("/c"), b"c\n"))
        .unwrap();
    e.autocommit("main", &a, "T5", |tx| {
        tx.write_bytes(&p("/d"), b"d\n")?;
        tx.log(LogEntry {
            time_us: 1,
            source: "t".into(),
            severity: 6,
            message: "hello".into(),
            process_id: None,
        })
    })
    .unwrap();
    e.create_branch("exp", "main", 5).unwrap();
    e.autocommit("exp", &a, "T6", |tx| tx.write_bytes(&p("/e"), b"e\n"))
        .unwrap();
    assert_eq!(e.head().unwrap(), 6);
    let clean = e.verify(1, &mut |_, _| {}).unwrap();
    assert_eq!(clean.broken, None);
    assert_eq!(clean.checked, 6);
    (db, e)
}

/// Tamper, reopen, verify: the transaction named.
fn broken_at(statements: &str) -> (u64, String) {
    let (db, e) = tamper_fixture();
    drop(e);
    tamper(&db.location, statements);
    let mut e = Engine::open(&db.location).unwrap();
    let r = e.verify(1, &mut |_, _| {}).unwrap();
    let b = r
        .broken
        .unwrap_or_else(|| panic!("not detected: {statements}"));
    (b.tx, b.reason)
}

#[test]
fn a_clean_database_verifies_from_any_point() {
    let (_db, mut e) = tamper_fixture();
    for from in 1..=6 {
        let r = e.verify(from, &mut |_, _| {}).unwrap();
        assert_eq!(r.broken, None);
        assert_eq!(r.checked, 7 - from);
        assert_eq!(r.head_hash, e.tx_info(6).unwrap().hash);
    }
}

#[test]
fn an_edited_version_is_found() {
    let (tx, why) = broken_at("UPDATE versions SET size = 999 WHERE tx_id = 3");
    assert_eq!(tx, 3, "{why}");
}

#[test]
fn a_deleted_version_is_found() {
    let del = if common::on_postgres() {
        "DELETE FROM versions WHERE tx_id = 4; DELETE FROM versions_history WHERE tx_id = 4"
    } else {
        "DELETE FROM versions WHERE tx_id = 4"
    };
    assert_eq!(broken_at(del).0, 4);
}

#[test]
fn an_inserted_version_is_found() {
    let plant = "INSERT INTO keys(space, path, parent_id, name) \
                 SELECT 'file', '/planted', id, 'planted' FROM keys WHERE space = 'file' AND path = '/'; \
                 INSERT INTO versions(key_id, branch_id, tx_id, kind, mode) \
                 SELECT id, 1, 3, 2, 493 FROM keys WHERE path = '/planted'";
    assert_eq!(broken_at(plant).0, 3);
}

#[test]
fn a_version_stamped_with_a_missing_or_foreign_transaction_is_found() {
    let plant = |tx: u64, branch: u64| {
        format!(
            "INSERT INTO keys(space, path, parent_id, name) \
             SELECT 'file', '/planted', id, 'planted' FROM keys WHERE space = 'file' AND path = '/'; \
             INSERT INTO versions(key_id, branch_id, tx_id, kind, mode) \
             SELECT id, {branch}, {tx}, 2, 493 FROM keys WHERE path = '/planted'"
        )
    };
    let (tx, why) = broken_at(&plant(999, 1));
    assert_eq!(tx, 999);
    assert!(why.contains("does not exist"), "{why}");
    let (tx, why) = broken_at(&plant(3, 2));
    assert_eq!(tx, 3);
    assert!(why.contains("branch"), "{why}");
}

#[test]
fn a_deleted_transaction_is_found() {
    let (tx, why) = broken_at("DELETE FROM transactions WHERE id = 4");
    assert_eq!(tx, 4);
    assert!(why.contains("missing"), "{why}");
}

#[test]
fn edited_transaction_metadata_and_hashes_are_found() {
    assert_eq!(
        broken_at("UPDATE transactions SET author = 'mallory' WHERE id = 2").0,
        2
    );
    assert_eq!(
        broken_at("UPDATE transactions SET command = 'nothing to see' WHERE id = 6").0,
        6
    );
    let set_hash = if common::on_postgres() {
        // Flip the first byte: overwriting it with 0x00 was a no-op (and
        // the test failed) for the 1 in 256 hashes that start with 0x00.
        "UPDATE transactions SET hash = set_byte(hash, 0, 255 - get_byte(hash, 0)) WHERE id = 3"
    } else {
        "UPDATE transactions SET hash = zeroblob(32) WHERE id = 3"
    };
    assert_eq!(broken_at(set_hash).0, 3);
}

#[test]
fn edited_logs_config_and_key_paths_are_found() {
    assert_eq!(
        broken_at("UPDATE log_entries SET message = 'bye' WHERE tx_id = 5").0,
        5
    );
    let cfg = "UPDATE versions SET value = '6.6.6.6' WHERE value = '1.1.1.1'";
    assert_eq!(broken_at(cfg).0, 2);
    // Renaming a key changes every transaction that wrote it; the first is named.
    assert_eq!(
        broken_at("UPDATE keys SET path = '/evil' WHERE space = 'file' AND path = '/c'").0,
        4
    );
}

#[test]
fn edited_or_missing_file_content_is_found() {
    let blob = if common::on_postgres() {
        "'\\x00'::bytea"
    } else {
        "X'00'"
    };
    let edit = format!(
        "UPDATE chunks SET data = {blob} WHERE hash = (SELECT digest FROM versions WHERE tx_id = 3 AND kind = 1)"
    );
    let (tx, why) = broken_at(&edit);
    assert_eq!(tx, 3, "{why}");
    assert!(why.contains("/b"), "{why}");
    let (tx, why) = broken_at(
        "DELETE FROM chunks WHERE hash = (SELECT digest FROM versions WHERE tx_id = 4 AND kind = 1)",
    );
    assert_eq!(tx, 4, "{why}");
    // The chain alone does not read content.
    let (db, e) = tamper_fixture();
    drop(e);
    tamper(&db.location, &edit);
    let mut e = Engine::open(&db.location).unwrap();
    assert_eq!(
        e.verify_with(1, false, &mut |_, _| {}).unwrap().broken,
        None
    );
}

#[test]
fn a_file_pointed_at_other_chunks_is_found_even_when_its_content_was_seen() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    let a = Actor::default();
    e.autocommit("main", &a, "T2", |tx| tx.write_bytes(&p("/a"), b"same\n"))
        .unwrap();
    e.autocommit("main", &a, "T3", |tx| tx.write_bytes(&p("/c"), b"same\n"))
        .unwrap();
    e.autocommit("main", &a, "T4", |tx| tx.write_bytes(&p("/b"), b"other\n"))
        .unwrap();
    drop(e);
    tamper(
        &db.location,
        "UPDATE versions SET manifest = (SELECT manifest FROM versions WHERE tx_id = 4 AND kind = 1) \
         WHERE tx_id = 3 AND kind = 1",
    );
    let mut e = Engine::open(&db.location).unwrap();
    let b = e
        .verify(1, &mut |_, _| {})
        .unwrap()
        .broken
        .expect("detected");
    assert_eq!(b.tx, 3, "{}", b.reason);
}

#[test]
fn a_key_renamed_or_moved_by_hand_is_found() {
    let (tx, why) =
        broken_at("UPDATE keys SET name = 'moved' WHERE space = 'file' AND path = '/d'");
    assert_eq!(tx, 5, "{why}");
    assert!(why.contains("/d"), "{why}");
    let (tx, _) = broken_at(
        "UPDATE keys SET parent_id = (SELECT id FROM keys WHERE space = 'file' AND path = '/a') \
         WHERE space = 'file' AND path = '/c'",
    );
    assert_eq!(tx, 4);
}

#[test]
fn verify_from_trusts_the_predecessor() {
    let (db, e) = tamper_fixture();
    drop(e);
    tamper(
        &db.location,
        "UPDATE transactions SET author = 'mallory' WHERE id = 2",
    );
    let mut e = Engine::open(&db.location).unwrap();
    assert_eq!(e.verify(3, &mut |_, _| {}).unwrap().broken, None);
    assert_eq!(e.verify(2, &mut |_, _| {}).unwrap().broken.unwrap().tx, 2);
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn after_300ms() -> bool {
    STARTED
        .get()
        .is_some_and(|t| t.elapsed() > std::time::Duration::from_millis(300))
}

#[test]
fn a_running_query_can_be_cancelled() {
    let db = common::fresh();
    let mut e = Engine::open(&db.location).unwrap();
    STARTED.get_or_init(std::time::Instant::now);
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let err = e
        .sql_cancellable("main", None, endless, Some(after_300ms))
        .unwrap_err();
    assert!(
        err.to_string().contains("interrupted") || err.to_string().contains("cancel"),
        "{err}"
    );
    // The engine (and its connection) is still usable.
    assert_eq!(
        texts(&sql(&mut e, "main", "SELECT count(*) FROM transactions"))[0][0],
        "1"
    );
}
