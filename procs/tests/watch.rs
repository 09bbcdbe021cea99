//! The procs crate against a real database: rows of started, ended, failed
//! and lost programs, and output lines arriving as log rows, none lost.

use dbos_engine::{Actor, Engine, LogFilter, ProcessRecord, ProcessState};
use dbos_procs::launch::{Input, Launch, Output};
use dbos_procs::{reconcile, Jobs, Target};
use std::time::Duration;

fn target() -> Target {
    Target {
        branch: "main".to_string(),
        actor: Actor {
            author: "tester".to_string(),
            ..Actor::default()
        },
    }
}

fn background(argv: &[&str]) -> Launch {
    Launch {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        stdin: Input::Null,
        stdout: Output::Piped,
        stderr: Output::Piped,
        own_group: true,
        cwd: None,
        user: None,
        command: "test".to_string(),
    }
}

fn row(engine: &mut Engine, id: u64) -> ProcessRecord {
    let mut tx = engine.begin("main", &Actor::default()).unwrap();
    tx.process_get(id).unwrap().expect("a process row")
}

#[test]
fn ten_thousand_lines_all_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
    let mut jobs = Jobs::default();
    let script = "i=0; while [ $i -lt 10000 ]; do echo line $i; i=$((i+1)); done; echo bye >&2";
    let job = jobs
        .spawn(
            &mut engine,
            &target(),
            background(&["sh", "-c", script]),
            "sh",
        )
        .unwrap();
    let end = job
        .wait_timeout(Duration::from_secs(60))
        .expect("ended in time")
        .expect("end recorded");
    assert_eq!(end.state, ProcessState::Exited);
    assert_eq!(end.exit_status, Some(0));
    let mut tx = engine.begin("main", &Actor::default()).unwrap();
    let logs = tx
        .logs(&LogFilter {
            process_id: Some(job.id()),
            ..LogFilter::default()
        })
        .unwrap();
    let out: Vec<&str> = logs
        .iter()
        .filter(|l| l.entry.severity == 6)
        .map(|l| l.entry.message.as_str())
        .collect();
    assert_eq!(out.len(), 10_000);
    for (i, m) in out.iter().enumerate() {
        assert_eq!(*m, format!("line {i}"));
    }
    let err: Vec<&str> = logs
        .iter()
        .filter(|l| l.entry.severity == 4)
        .map(|l| l.entry.message.as_str())
        .collect();
    assert_eq!(err, vec!["bye"]);
    assert!(logs.iter().all(|l| l.entry.source == "sh"));
    // Batched: far fewer transactions than lines.
    let mut txs: Vec<u64> = logs.iter().map(|l| l.tx).collect();
    txs.dedup();
    assert!(
        txs.len() <= 10_001 / 100 + 5,
        "{} log transactions",
        txs.len()
    );
}

#[test]
fn rows_of_a_killed_program_and_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
    let mut jobs = Jobs::default();
    let t = target();
    // Several programs writing at once, while this connection commits too.
    let mut started = Vec::new();
    for _ in 0..4 {
        let script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; done";
        started.push(
            jobs.spawn(&mut engine, &t, background(&["sh", "-c", script]), "sh")
                .unwrap(),
        );
    }
    let sleeper = jobs
        .spawn(&mut engine, &t, background(&["sleep", "100"]), "sleep")
        .unwrap();
    assert_eq!(row(&mut engine, sleeper.id()).state, ProcessState::Running);
    for i in 0..20 {
        engine
            .autocommit("main", &t.actor, "config", |tx| {
                tx.config_set("k", &i.to_string())
            })
            .unwrap();
    }
    for j in &started {
        let end = j.wait_timeout(Duration::from_secs(30)).unwrap().unwrap();
        assert_eq!(end.exit_status, Some(0));
    }
    let ids: Vec<u64> = started.iter().map(|j| j.id()).collect();
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "distinct ids: {ids:?}");
    dbos_procs::signal::send(sleeper.pid().unwrap(), libc_term()).unwrap();
    let end = sleeper
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(end.state, ProcessState::Killed);
    assert_eq!(end.signal, Some(15));
    assert_eq!(row(&mut engine, sleeper.id()), end);
    let mut tx = engine.begin("main", &Actor::default()).unwrap();
    assert_eq!(
        tx.logs(&LogFilter::default()).unwrap().len(),
        40,
        "every line of the four programs"
    );
}

fn libc_term() -> i32 {
    dbos_procs::signal::parse_signal("TERM").unwrap()
}

#[test]
fn a_missing_program_gets_a_failed_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
    let err = dbos_procs::start(
        &mut engine,
        &target(),
        background(&["dbos-no-such-program-x"]),
    )
    .unwrap_err();
    assert_eq!(err.exit_status(), 127);
    assert_eq!(err.to_string(), "dbos-no-such-program-x: command not found");
    let rec = row(&mut engine, 1);
    assert_eq!(rec.state, ProcessState::Failed);
    assert_eq!(
        rec.error.as_deref(),
        Some("dbos-no-such-program-x: command not found")
    );
    assert_eq!(rec.pid, None);
}

#[test]
fn shutdown_stops_programs_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
    let mut jobs = Jobs::default();
    let job = jobs
        .spawn(
            &mut engine,
            &target(),
            background(&["sleep", "100"]),
            "sleep",
        )
        .unwrap();
    assert_eq!(jobs.shutdown(Duration::from_secs(5)), 1);
    let rec = row(&mut engine, job.id());
    assert_eq!(rec.state, ProcessState::Killed);
    assert_eq!(rec.signal, Some(15));
}

#[test]
fn rows_left_running_by_a_dead_watcher_are_marked_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
    let t = target();
    // A running row whose program ended unwatched: started, reaped by
    // this test, its end never recorded.
    let mut l = background(&["true"]);
    l.stdout = Output::Null;
    l.stderr = Output::Null;
    let mut gone = dbos_procs::start(&mut engine, &t, l).unwrap();
    gone.child.wait().unwrap();
    // And one still alive.
    let mut alive = dbos_procs::start(&mut engine, &t, background(&["sleep", "100"])).unwrap();
    let marked = reconcile(&mut engine, &t).unwrap();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].id, gone.record.id);
    let rec = row(&mut engine, gone.record.id);
    assert_eq!(rec.state, ProcessState::Lost);
    assert!(rec.error.unwrap().contains("not recorded"));
    assert_eq!(
        row(&mut engine, alive.record.id).state,
        ProcessState::Running
    );
    alive.child.kill().unwrap();
    alive.child.wait().unwrap();
}
