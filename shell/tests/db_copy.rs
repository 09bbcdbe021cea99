//! Black-box tests of `dbos db copy SRC DST`: a whole database copied and
//! verified, reading the same as the original; a non-empty destination and
//! bad sources refused with clear messages and exit statuses. The source is
//! on the backend under test; the trip through PostgreSQL needs
//! `DBOS_TEST_PG` and is skipped loudly without it.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn dbos() -> Command {
    let mut c = Command::cargo_bin("dbos").unwrap();
    c.env_remove("DBOS_DB");
    c
}

/// `dbos --color never --db DB -c SCRIPT`.
fn shell(db: &str, script: &str) -> Command {
    let mut c = dbos();
    c.args(["--color", "never", "--db", db, "-c", script]);
    c
}

/// Run commands on a database; gives standard output, checking success.
fn run(db: &str, script: &str) -> String {
    let o = shell(db, script).output().unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A history with files, config, a branch merged back, a tag, a big file.
fn build(db: &str, dir: &Path) {
    run(
        db,
        "mkdir -p /etc /srv\n\
         echo 'ntp = pool' > /etc/ntp.conf\n\
         config set app.mode prod\n\
         branch exp\n\
         tag before-exp",
    );
    run(
        db,
        "switch exp\n\
         echo 'debug = on' > /etc/app.conf\n\
         config set app.debug on",
    );
    let big: String = (0..6_000)
        .map(|i| format!("line {i} {}\n", i * 7919 % 10007))
        .collect();
    std::fs::write(dir.join("big.txt"), &big).unwrap();
    // Appended in pieces: one long here-document parses slowly.
    let lines: Vec<&str> = big.split_inclusive('\n').collect();
    let script: String = lines
        .chunks(500)
        .map(|piece| format!("cat >> /srv/big.txt <<END\n{}END\n", piece.concat()))
        .collect();
    run(db, &script);
    run(
        db,
        "merge exp\nrm /etc/ntp.conf\necho changed >> /srv/big.txt",
    );
}

/// What a user sees of a database: every transaction, branch, tag, the
/// changes of each transaction and the state at several moments.
fn views(db: &str) -> String {
    let mut out = run(
        db,
        "log --graph --all\nbranch\ntag\nconfig list\nls -l /etc\n\
         cat --as-of before-exp /etc/ntp.conf\nconfig list --as-of exp\n\
         cat --as-of exp /etc/app.conf\nwc /srv/big.txt",
    );
    let head: u64 = run(db, "log -n 1")
        .split_whitespace()
        .next()
        .and_then(|t| t.strip_prefix('T'))
        .and_then(|n| n.parse().ok())
        .expect("log -n 1 starts with T<id>");
    for t in 1..=head {
        out.push_str(&run(db, &format!("show T{t}\nls -l --as-of T{t} /")));
    }
    out
}

fn copy(src: &str, dst: &str) -> std::process::Output {
    dbos().args(["db", "copy", src, dst]).output().unwrap()
}

fn assert_copied(o: &std::process::Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "copy failed: {err}");
    assert!(
        out.starts_with("Copied ") && out.trim_end().ends_with("chunks; verified"),
        "summary: {out}"
    );
    assert!(err.contains("transactions: T"), "progress on stderr: {err}");
    out
}

#[test]
fn copies_a_whole_database_that_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::location(dir.path());
    build(&src, dir.path());
    let dst = dir.path().join("copy.db").display().to_string();
    let out = assert_copied(&copy(&src, &dst));
    assert!(out.contains(" 2 branches, "), "{out}");
    assert_eq!(views(&src), views(&dst));
    let big = run(&dst, "cat /srv/big.txt");
    let want = std::fs::read_to_string(dir.path().join("big.txt")).unwrap() + "changed\n";
    assert!(
        big == want,
        "the big file reads back whole ({} bytes)",
        big.len()
    );
    // The copy goes on like any database.
    run(&dst, "echo more > /more.txt");
    assert!(run(&dst, "cat /more.txt").contains("more"));
}

#[test]
fn sqlite_to_postgres_and_back() {
    let Ok(server) = std::env::var("DBOS_TEST_PG") else {
        eprintln!("SKIPPED: DBOS_TEST_PG not set (tests/run starts a server)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("orig.db").display().to_string();
    build(&lite, dir.path());
    let name = format!("dbos_cli_copy_{}", std::process::id());
    let mut c = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    let pg = format!("{base}/{name}");
    assert_copied(&copy(&lite, &pg));
    let back = dir.path().join("back.db").display().to_string();
    assert_copied(&copy(&pg, &back));
    let original = views(&lite);
    assert_eq!(original, views(&pg));
    assert_eq!(original, views(&back));
    assert!(
        original.contains("Hash:"),
        "show prints every hash: {original}"
    );
    // Into the now non-empty PostgreSQL database: refused.
    let o = copy(&lite, &pg);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}

#[test]
fn refuses_a_destination_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::location(dir.path());
    build(&src, dir.path());
    let dst = dir.path().join("used.db").display().to_string();
    run(&dst, "echo mine > /mine.txt");
    let before = run(&dst, "log");
    let o = copy(&src, &dst);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dbos: db copy: cannot copy to")
            && err.contains("not empty")
            && err.contains("new database"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    assert_eq!(run(&dst, "log"), before, "the destination is untouched");
    assert_eq!(run(&dst, "cat /mine.txt"), "mine\n");
}

#[test]
fn bad_sources_and_usage_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("dst.db");
    let missing = dir.path().join("missing.db").display().to_string();
    dbos()
        .args(["db", "copy", &missing, dst.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "dbos: db copy: cannot copy from {missing}: no such file"
        )));
    assert!(!Path::new(&missing).exists());
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "not a database\n").unwrap();
    dbos()
        .args(["db", "copy", junk.to_str().unwrap(), dst.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not a dbos database"));
    assert!(!dst.exists(), "nothing created on a refused copy");
    dbos()
        .args(["db", "copy", junk.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("DST"));
    dbos()
        .args(["db", "copy", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--verify-all"));
}

#[test]
fn quiet_copy_with_full_verification() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::location(dir.path());
    run(&src, "echo a > /a\necho b > /b\nbranch x");
    let dst = dir.path().join("q.db").display().to_string();
    let o = dbos()
        .args(["db", "copy", "--quiet", "--verify-all", &src, &dst])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Copied 3 transactions, 2 branches, 2 chunks; verified\n"
    );
}

/// A copy killed after SQLite created the destination file (its WAL header
/// written) but before the schema was committed leaves a SQLite file with
/// no table: copying again into it works (it used to be refused as "not a
/// dbos database", found by the kill -9 loop in kill_loops.rs).
#[test]
fn copies_into_a_blank_sqlite_file_left_by_a_killed_copy() {
    if common::on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = common::location(dir.path());
    run(&src, "echo a > /a");
    let dst = dir.path().join("blank.db");
    let conn = rusqlite::Connection::open(&dst).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    drop(conn);
    assert!(std::fs::metadata(&dst).unwrap().len() > 0);
    let dst = dst.display().to_string();
    assert_copied(&copy(&src, &dst));
    assert_eq!(run(&dst, "cat /a"), "a\n");
}

/// A copy killed between its import and its verification leaves every
/// branch hidden: opening it says it is an unfinished copy (it used to say
/// "no such branch: main"), and copying onto it is refused the same way.
#[test]
fn an_unfinished_copy_is_refused_with_a_clear_message() {
    if common::on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = common::location(dir.path());
    run(&src, "echo a > /a");
    let dst = dir.path().join("half.db").display().to_string();
    assert_copied(&copy(&src, &dst));
    // What the import leaves before `import_finish` reveals the branches.
    let conn = rusqlite::Connection::open(&dst).unwrap();
    conn.execute("UPDATE branches SET deleted_us = -1", [])
        .unwrap();
    drop(conn);
    let o = shell(&dst, "ls /").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("it holds an unfinished copy") && err.contains("copy again"),
        "{err}"
    );
    let o = copy(&src, &dst);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unfinished copy"));
}
