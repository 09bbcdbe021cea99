//! Black-box tests of host programs in the shell: `run`, `spawn`, `ps`,
//! `kill`, `wait` and `logs`, driving the real `dbos` binary.

mod common;

use common::{expect_code, Shell};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every process row, by id (`ps -a --format json`).
fn rows(sh: &Shell) -> Vec<Value> {
    sh.json("ps -a --format json")
        .as_array()
        .expect("a JSON array")
        .clone()
}

fn row(sh: &Shell, id: u64) -> Value {
    rows(sh)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no process row {id}"))
}

/// The newest transaction id, from `log -n 1`.
fn head_tx(sh: &Shell) -> u64 {
    let out = sh.ok("log -n 1");
    out.strip_prefix('T')
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no T<id> in {out:?}"))
}

#[test]
fn run_gives_the_programs_status_and_records_each_end() {
    let sh = Shell::new();
    let out = sh.ok("run true; echo $?; run false; echo $?; run sh -c 'exit 3'; echo $?");
    assert_eq!(out, "0\n1\n3\n");
    let r = rows(&sh);
    assert_eq!(r.len(), 3, "{r:?}");
    for (rec, status, argv) in [
        (&r[0], 0, vec!["true"]),
        (&r[1], 1, vec!["false"]),
        (&r[2], 3, vec!["sh", "-c", "exit 3"]),
    ] {
        assert_eq!(rec["state"], "exited");
        assert_eq!(rec["exit_status"], status);
        assert_eq!(rec["argv"], serde_json::json!(argv));
        assert_eq!(rec["user"], "tester");
        assert!(rec["pid"].as_u64().is_some_and(|p| p > 0));
        assert!(rec["ended"].is_string());
    }
    // Each row went through `running` first: two versions per process.
    let versions = sh.ok(
        "sql --format tsv 'SELECT state FROM process_history WHERE id = 3 ORDER BY valid_from_tx'",
    );
    assert_eq!(versions, "state\nrunning\nexited\n");
    // A plain command's output reaches standard output.
    assert_eq!(sh.ok("run echo hello world"), "hello world\n");
}

#[test]
fn run_reads_and_writes_the_versioned_tree() {
    let sh = Shell::new();
    sh.ok("echo 'pear\napple\nfig' > /in");
    sh.ok("run sort < /in > /out");
    assert_eq!(sh.ok("cat /out"), "apple\nfig\npear\n");
    // In a pipe, both ways; standard error into a file too.
    assert_eq!(sh.ok("cat /in | run sort -r | head -n 1"), "pear\n");
    sh.ok("run sh -c 'echo oops >&2' 2> /err");
    assert_eq!(sh.ok("cat /err"), "oops\n");
    // A here-document as input.
    assert_eq!(sh.ok("run wc -l <<EOF\na\nb\nEOF"), "2\n");
}

#[test]
fn programs_that_cannot_start_fail_clearly_with_a_failed_row() {
    let sh = Shell::new();
    let r = expect_code(sh.run("run dbos-no-such-program"), 127, "not found");
    assert_eq!(
        r.err,
        "dbos: run: dbos-no-such-program: command not found\n"
    );
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "failed");
    assert_eq!(rec["error"], "dbos-no-such-program: command not found");
    assert_eq!(rec["pid"], Value::Null);

    let script = sh.dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho no\n").unwrap();
    let path = script.display().to_string();
    let r = expect_code(sh.run(&format!("run {path}")), 126, "permission denied");
    assert_eq!(r.err, format!("dbos: run: {path}: permission denied\n"));
    assert_eq!(row(&sh, 2)["state"], "failed");

    // spawn says the same.
    let r = expect_code(sh.run("spawn dbos-no-such-program"), 127, "spawn");
    assert!(r
        .err
        .contains("spawn: dbos-no-such-program: command not found"));
    // Usage errors.
    sh.fails("run", 2);
    sh.fails("kill -s NOPE 1", 2);
    sh.fails("logs --severity loud", 2);
    let err = sh.fails("kill 42", 1);
    assert!(err.contains("kill: 42: no such process"), "{err}");
    let err = sh.fails("wait 42", 1);
    assert!(err.contains("wait: 42: no such process"), "{err}");
    let err = sh.fails("kill 1", 1);
    assert!(err.contains("kill: 1: not running (failed)"), "{err}");
}

#[test]
fn spawned_output_becomes_log_rows() {
    let sh = Shell::new();
    let out = sh.ok(
        "spawn sh -c 'echo hi; echo err >&2; sleep 1'; wait 1; echo status=$?; logs --process 1",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    assert_eq!(lines.next(), Some("status=0"));
    // Standard output and error are separate pipes: their relative order
    // is not kept.
    let mut logs: Vec<&str> = lines.map(|l| &l[24..]).collect();
    logs.sort();
    assert_eq!(
        logs,
        vec!["info    sh[1]: hi", "warning sh[1]: err"],
        "{out}"
    );
    let j = sh.json("logs --process 1 --format json");
    let mut got: Vec<(String, String, u64)> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["message"].as_str().unwrap().to_string(),
                l["severity"].as_str().unwrap().to_string(),
                l["process_id"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("err".to_string(), "warning".to_string(), 1),
            ("hi".to_string(), "info".to_string(), 1)
        ]
    );
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "exited");
    assert_eq!(rec["exit_status"], 0);
    // wait's status is the last one's.
    assert_eq!(
        sh.ok("spawn sh -c 'exit 4'; spawn sh -c 'exit 5'; wait 2 3; echo $?"),
        "2\n3\n5\n"
    );
}

#[test]
fn kill_signals_a_spawned_process_and_its_row_says_killed() {
    let sh = Shell::new();
    let out = sh.ok("spawn sleep 100; ps --format json; kill -TERM 1; wait 1; echo $?");
    let mut parts = out.splitn(2, '\n');
    assert_eq!(parts.next(), Some("1"));
    let rest = parts.next().unwrap();
    assert!(rest.ends_with("143\n"), "{out}");
    let running: Value = serde_json::from_str(&rest[..rest.len() - 4]).unwrap();
    assert_eq!(running[0]["state"], "running");
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "killed");
    assert_eq!(rec["signal"], 15);
    assert_eq!(rec["signal_name"], "SIGTERM");
    // The other spellings.
    assert_eq!(
        sh.ok("spawn sleep 100; kill -9 2; wait 2; echo $?"),
        "2\n137\n"
    );
    assert_eq!(
        sh.ok("spawn sleep 100; kill -s SIGKILL 3; wait 3; echo $?"),
        "3\n137\n"
    );
    assert_eq!(row(&sh, 3)["signal"], 9);
    let err = sh.fails("kill 3", 1);
    assert!(err.contains("kill: 3: not running (killed)"), "{err}");
}

#[test]
fn ps_lists_running_processes_and_all_with_a() {
    let sh = Shell::new();
    let out = sh.ok("run true; spawn sleep 100; ps; ps -a; kill 2; wait 2; echo $?");
    let lines: Vec<&str> = out.lines().collect();
    // spawn's id, then ps: a header and the sleep only.
    assert_eq!(lines[0], "2");
    assert!(
        lines[1].starts_with("ID") && lines[1].contains("COMMAND"),
        "{out}"
    );
    assert!(
        lines[2].contains("running") && lines[2].ends_with("sleep 100"),
        "{out}"
    );
    assert!(lines[3].starts_with("ID"), "{out}");
    assert!(
        lines[4].contains("exited") && lines[4].ends_with("true"),
        "{out}"
    );
    assert!(lines[5].contains("running"), "{out}");
    assert_eq!(lines[6], "143");
    assert_eq!(lines.len(), 7, "{out}");
    // Now nothing runs.
    assert_eq!(sh.ok("ps").lines().count(), 1);
    assert_eq!(sh.json("ps --format json"), serde_json::json!([]));
}

#[test]
fn ps_as_of_shows_what_was_running_then() {
    let sh = Shell::new();
    // The transaction that recorded the start is the newest right after spawn.
    let out = sh.ok("spawn sleep 1; log -n 1; wait");
    let t_start = out
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix('T'))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let then = sh.json(&format!("ps --as-of T{t_start} --format json"));
    assert_eq!(then.as_array().unwrap().len(), 1, "{then}");
    assert_eq!(then[0]["state"], "running");
    assert_eq!(then[0]["argv"], serde_json::json!(["sleep", "1"]));
    assert_eq!(sh.json("ps --format json"), serde_json::json!([]));
    // Before it started, it did not exist at all.
    let before = sh.json(&format!("ps -a --as-of T{} --format json", t_start - 1));
    assert_eq!(before, serde_json::json!([]));
    assert_eq!(row(&sh, 1)["state"], "exited");
}

#[test]
fn logs_filter_by_time_severity_and_source() {
    let sh = Shell::new();
    sh.ok("spawn sh -c 'echo one; echo bad >&2'; wait");
    let t = head_tx(&sh);
    sh.ok("spawn printf 'two\\n'; wait");
    let all = sh.ok("logs");
    assert_eq!(all.lines().count(), 3, "{all}");
    let since = sh.ok(&format!("logs --since T{t}"));
    assert_eq!(since.lines().count(), 1, "{since}");
    assert!(since.ends_with("printf[2]: two\n"), "{since}");
    let warn = sh.ok("logs --severity warning");
    assert_eq!(warn.lines().count(), 1, "{warn}");
    assert!(warn.ends_with("sh[1]: bad\n"), "{warn}");
    assert_eq!(sh.ok("logs --severity err"), "");
    assert_eq!(sh.ok("logs --severity info").lines().count(), 3);
    let src = sh.ok("logs --source printf");
    assert_eq!(src.lines().count(), 1, "{src}");
    assert_eq!(sh.ok("logs -n 1"), since);
    // Standard output and error are separate pipes: their relative order
    // is not kept, each one's is.
    let j = sh.json("logs --source sh --format json");
    let mut got: Vec<(String, u64)> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["message"].as_str().unwrap().to_string(),
                l["level"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![("bad".to_string(), 4), ("one".to_string(), 6)]);
}

#[test]
fn logs_follow_prints_rows_as_they_are_committed() {
    let sh = Shell::new();
    let mut follower = Command::new(env!("CARGO_BIN_EXE_dbos"))
        .env_remove("DBOS_DB")
        .env("HOME", sh.dir.path())
        .args(["--db", &sh.db, "--user", "tester", "-c", "logs -f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logs -f");
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    sh.ok("spawn sh -c 'echo first; echo second'; wait");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(l);
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].ends_with("sh[1]: first"), "{seen:?}");
    assert!(seen[1].ends_with("sh[1]: second"), "{seen:?}");
    // Following into a pipe would never end: refused.
    sh.fails("logs -f > /followed", 2);
}

#[test]
fn leaving_stops_background_processes_and_finalises_their_rows() {
    let sh = Shell::new();
    let r = expect_code(sh.run("spawn sleep 100"), 0, "spawn");
    assert!(r.err.contains("stopping 1 background process"), "{}", r.err);
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "killed");
    assert_eq!(rec["signal"], 15);
    // A process ignoring SIGTERM gets SIGKILL after the grace period.
    let t0 = Instant::now();
    sh.ok("spawn sh -c 'trap \"\" TERM; echo ready; sleep 100'; run sleep 0.3");
    assert!(t0.elapsed() >= Duration::from_secs(5));
    let rec = row(&sh, 2);
    assert_eq!(rec["state"], "killed");
    assert_eq!(rec["signal"], 9);
    assert!(sh.ok("logs --process 2").ends_with("sh[2]: ready\n"));
}

#[test]
fn process_rows_survive_a_rollback() {
    let sh = Shell::new();
    sh.ok("begin; run sh -c 'echo x' > /f; rollback");
    // The file write was the transaction's and is gone; the process ran.
    sh.fails("cat /f", 1);
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "exited");
    // Inside a transaction, the program reads the transaction's files.
    let out = sh.ok("begin; echo pending > /g; run cat < /g; commit");
    assert!(out.starts_with("pending\nTransaction T"), "{out}");
}

#[test]
fn rows_a_crashed_shell_left_running_become_lost() {
    let sh = Shell::new();
    let mut shell = Command::new(env!("CARGO_BIN_EXE_dbos"))
        .env_remove("DBOS_DB")
        .env("HOME", sh.dir.path())
        .args([
            "--db",
            &sh.db,
            "--user",
            "tester",
            "-c",
            "spawn sleep 100; wait",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dbos");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let j = sh.json("ps --format json");
        if let Some(p) = j.get(0).and_then(|r| r["pid"].as_u64()) {
            break p;
        }
        assert!(Instant::now() < deadline, "spawn never recorded");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The shell dies without recording anything; the program lives on.
    shell.kill().unwrap();
    shell.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(row(&sh, 1)["state"], "running");
    // It ends unwatched; the next shell marks the row lost.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    std::thread::sleep(Duration::from_millis(300));
    let r = expect_code(sh.run("true"), 0, "next shell");
    assert!(r.err.contains("process 1 left running"), "{}", r.err);
    let rec = row(&sh, 1);
    assert_eq!(rec["state"], "lost");
    assert!(rec["error"].as_str().unwrap().contains("not recorded"));
}

#[test]
fn metrics_since_and_newest() {
    let sh = Shell::new();
    let mut e = dbos_engine::Engine::open(&sh.db).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let actor = dbos_engine::Actor::default();
    // Ten samples, one a transaction: five dated an hour ago, five an hour
    // ahead, so the commit of the fifth lies between them.
    let mut marks = Vec::new();
    for i in 0..10i64 {
        let hour = 3_600_000_000;
        let t = if i < 5 { now - hour } else { now + hour } + i * 1_000_000;
        let json = format!(
            r#"{{"time_us":{t},"load":[{i},0,0],"mem_total_kb":1,"mem_available_kb":1,"processes":{i},"tps":null,"db_bytes":null}}"#
        );
        let (_, info) = e
            .autocommit("main", &actor, "sample", |tx| {
                tx.put(
                    dbos_engine::Space::Metric,
                    &format!("{t:020}"),
                    Some(dbos_engine::Entry::Value(json.clone())),
                )
            })
            .unwrap();
        marks.push(info.map(|i| i.id).unwrap_or(0));
    }
    drop(e);
    let procs = |script: &str| -> Vec<u64> {
        sh.json(script)
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|s| s["processes"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(procs("metrics -n 3 --format json"), [7, 8, 9]);
    assert_eq!(procs("metrics --format json").len(), 10);
    // --since: the samples dated at or after that commit's time.
    let since = format!("metrics --since T{} --format json", marks[4]);
    assert_eq!(procs(&since), [5, 6, 7, 8, 9]);
    let since_n = format!("metrics --since T{} -n 2 --format json", marks[4]);
    assert_eq!(procs(&since_n), [8, 9]);
}

/// Start `dbos -c SCRIPT` on `sh`'s database, send it SIGINT once a
/// `running` row exists, and give its exit status and standard error.
fn interrupt_script(sh: &Shell, script: &str) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_dbos"))
        .env_remove("DBOS_DB")
        .env("HOME", sh.dir.path())
        .env("NO_COLOR", "1")
        .args(["--db", &sh.db, "--user", "tester", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rows(sh).iter().any(|r| r["state"] == "running") {
        assert!(Instant::now() < deadline, "the program never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ctrl_c_in_a_script_stops_the_running_program_and_the_script() {
    let sh = Shell::new();
    let started = Instant::now();
    // The program's output is piped (not on a terminal), so only the shell
    // gets the SIGINT: it must pass it on.
    let (code, err) = interrupt_script(&sh, "run sleep 60 | cat\necho not reached > /after");
    assert_eq!(code, Some(130), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(err.contains("interrupted"), "{err}");
    let r = &rows(&sh)[0];
    assert_eq!(r["state"], "killed", "{r}");
    assert_eq!(r["signal_name"], "SIGINT");
    assert_eq!(sh.run("cat /after").code, 1, "the script went on");
    // `wait` is interrupted too, and the spawned program stopped at the end.
    let sh = Shell::new();
    let (code, _) = interrupt_script(&sh, "spawn sleep 60\nwait");
    assert_eq!(code, Some(130));
    let r = &rows(&sh)[0];
    assert_ne!(r["state"], "running", "{r}");
}
