//! Black-box tests of how `dbos` is invoked: -c, scripts, standard input,
//! exit statuses, errors, help and the acceptance script of the seeds.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;

struct Db {
    dir: tempfile::TempDir,
    path: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = common::location(dir.path());
    Db { dir, path }
}

fn dbos(db: &Db) -> Command {
    let mut c = Command::cargo_bin("dbos").unwrap();
    c.arg("--db").arg(&db.path).arg("--color").arg("never");
    c.env_remove("DBOS_DB");
    c
}

fn run_c(db: &Db, script: &str) -> std::process::Output {
    dbos(db).arg("-c").arg(script).output().unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const ACCEPTANCE: &str = "touch newfile.txt
echo \"Hello DBOS\" > newfile.txt
ls
begin
rm newfile.txt
commit
history newfile.txt
";

fn check_acceptance(out: &str) {
    assert!(out.contains("newfile.txt\n"), "ls shows the file: {out}");
    assert!(out.contains("committed"), "{out}");
    let hist: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('T') && l[1..].starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(
        hist.len(),
        3,
        "history shows both versions and the removal: {out}"
    );
    assert!(hist[0].contains("removed"));
    assert!(hist[1].contains("modified") && hist[1].contains("11 bytes"));
    assert!(hist[2].contains("created") && hist[2].contains("0 bytes"));
}

#[test]
fn acceptance_through_stdin() {
    let d = db();
    let o = dbos(&d).write_stdin(ACCEPTANCE).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    check_acceptance(&out);
    assert!(
        !out.contains("dbos main"),
        "no prompt when stdin is not a terminal"
    );
}

#[test]
fn acceptance_through_dash_c() {
    let d = db();
    // The whole sequence as one -c string (newline-separated, verbatim).
    let o = run_c(&d, ACCEPTANCE);
    assert!(o.status.success(), "{o:?}");
    check_acceptance(&stdout(&o));
    // And line by line, one process per line where no transaction spans them.
    let d = db();
    let mut all = String::new();
    for line in [
        "touch newfile.txt",
        "echo \"Hello DBOS\" > newfile.txt",
        "ls",
    ] {
        all.push_str(&stdout(&run_c(&d, line)));
    }
    all.push_str(&stdout(&run_c(&d, "begin\nrm newfile.txt\ncommit")));
    all.push_str(&stdout(&run_c(&d, "history newfile.txt")));
    check_acceptance(&all);
}

#[test]
fn acceptance_as_script_file() {
    let d = db();
    let script = d.dir.path().join("s.dbos");
    std::fs::write(&script, ACCEPTANCE).unwrap();
    let o = dbos(&d).arg(&script).output().unwrap();
    assert!(o.status.success());
    check_acceptance(&stdout(&o));
}

#[test]
fn each_line_is_one_transaction_recorded_with_its_text() {
    let d = db();
    run_c(&d, "mkdir /etc; echo a > /etc/a; echo b > /etc/b");
    run_c(&d, "config set net.hostname box");
    let out = stdout(&run_c(&d, "log"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("T3") && lines[0].contains("config set net.hostname box"));
    assert!(
        lines[1].starts_with("T2")
            && lines[1].contains("mkdir /etc; echo a > /etc/a; echo b > /etc/b")
    );
    // Reading commands make no transaction.
    run_c(&d, "ls /etc; cat /etc/a; config list");
    assert_eq!(stdout(&run_c(&d, "log")).lines().count(), 3);
}

#[test]
fn exit_status_is_that_of_the_last_command() {
    let d = db();
    dbos(&d).args(["-c", "true"]).assert().code(0);
    dbos(&d).args(["-c", "false"]).assert().code(1);
    dbos(&d).args(["-c", "false; true"]).assert().code(0);
    dbos(&d)
        .args(["-c", "cat /missing"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "dbos: cat: /missing: no such file or directory",
        ));
    dbos(&d)
        .args(["-c", "ls --bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("dbos: ls: "));
    dbos(&d)
        .args(["-c", "nosuchcommand"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("dbos: nosuchcommand:"));
    dbos(&d).args(["-c", "exit 7"]).assert().code(7);
    dbos(&d)
        .args(["-c", "false; echo $?"])
        .assert()
        .code(0)
        .stdout("1\n");
    dbos(&d)
        .args(["-c", "false && echo no || echo yes"])
        .assert()
        .stdout("yes\n");
}

#[test]
fn parse_error_shows_caret_and_changes_nothing() {
    let d = db();
    let before = stdout(&run_c(&d, "log"));
    dbos(&d)
        .args(["-c", "echo a > /f; echo 'unterminated"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "echo a > /f; echo 'unterminated\n                  ^",
        ));
    assert_eq!(stdout(&run_c(&d, "log")), before);
    dbos(&d).args(["-c", "cat /f"]).assert().code(1);
}

#[test]
fn failed_command_changes_nothing() {
    let d = db();
    run_c(&d, "mkdir /d; echo x > /d/f");
    let before = stdout(&run_c(&d, "log"));
    for bad in [
        "rm /d",
        "mkdir /d",
        "echo x > /nodir/f",
        "echo x > /d/f/g",
        "cd /nowhere",
        "touch ''",
        "mkdir /a/../../b",
        "config set 'bad key' v",
        "config unset never.set",
    ] {
        let o = run_c(&d, bad);
        assert_ne!(o.status.code(), Some(0), "{bad} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("dbos: "), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad}: one-line error: {err}");
        assert_eq!(
            stdout(&run_c(&d, "log")),
            before,
            "{bad} changed the history"
        );
    }
}

#[test]
fn explicit_transaction_left_open_is_rolled_back_with_a_warning() {
    let d = db();
    dbos(&d)
        .args(["-c", "begin; echo x > /f"])
        .assert()
        .success()
        .stderr(predicate::str::contains("rolled back"));
    dbos(&d).args(["-c", "cat /f"]).assert().code(1);
    dbos(&d)
        .write_stdin("begin\necho x > /g\nexit\n")
        .assert()
        .stderr(predicate::str::contains("rolled back"));
    dbos(&d).args(["-c", "cat /g"]).assert().code(1);
}

#[test]
fn begin_commit_rollback_and_status() {
    let d = db();
    let o = dbos(&d)
        .write_stdin("begin\necho 1 > /a\necho 2 > /b\nstatus\ncommit -m 'two files'\nlog -n 1\n")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(out.contains("Open transaction"), "{out}");
    assert!(out.contains("/a") && out.contains("/b"));
    assert!(out.contains("Transaction T2 committed"), "{out}");
    assert!(out.contains("(two files)"), "{out}");
    let o = dbos(&d)
        .write_stdin("begin\nrm /a\nrollback\ncat /a\n")
        .output()
        .unwrap();
    assert!(stdout(&o).contains("rolled back"));
    assert!(stdout(&o).ends_with("1\n"));
    dbos(&d)
        .args(["-c", "commit"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no transaction is open"));
    dbos(&d).args(["-c", "begin; begin"]).assert().code(1);
}

#[test]
fn variables_quotes_globs_heredocs_and_pipes() {
    let d = db();
    let script = "X=hello
export Y=world
echo \"$X ${Y}\" '$X' \\$X
mkdir /g; touch /g/a.conf /g/b.conf /g/c.txt
echo /g/*.conf
echo '/g/*.conf'
cat <<END > /g/doc
line $X
END
cat /g/doc
echo one two | cat
cat /nope 2> /g/err; cat /g/err
echo out 2>&1 > /g/o; cat /g/o
";
    let o = dbos(&d).write_stdin(script).output().unwrap();
    let expected = "hello world $X $X\n/g/a.conf /g/b.conf\n/g/*.conf\nline hello\none two\n\
dbos: cat: /nope: no such file or directory\nout\n";
    assert_eq!(
        stdout(&o),
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn as_of_reads_the_past() {
    let d = db();
    run_c(&d, "echo old > /f");
    run_c(&d, "echo new > /f");
    dbos(&d)
        .args(["-c", "cat --as-of T2 /f"])
        .assert()
        .stdout("old\n");
    dbos(&d)
        .args(["-c", "cat --as-of HEAD~1 /f"])
        .assert()
        .stdout("old\n");
    dbos(&d)
        .args(["-c", "cat --as-of HEAD /f"])
        .assert()
        .stdout("new\n");
    dbos(&d).args(["-c", "ls --as-of T1 /"]).assert().stdout("");
    dbos(&d)
        .args(["-c", "cat --as-of '1 day ago' /f"])
        .assert()
        .code(1);
    dbos(&d)
        .args(["-c", "cat --as-of T99 /f"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("T99"));
    dbos(&d)
        .args(["-c", "cat --as-of 'x y' /f"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad REF"));
}

#[test]
fn help_version_completions_and_man() {
    let d = db();
    dbos(&d)
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--db"));
    dbos(&d)
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("dbos"));
    dbos(&d)
        .args(["-c", "help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("history"));
    dbos(&d)
        .args(["-c", "help ls"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--as-of"));
    dbos(&d).args(["-c", "help nosuch"]).assert().code(2);
    let bin = || Command::cargo_bin("dbos").unwrap();
    for shell in ["bash", "zsh", "fish"] {
        bin()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("dbos"));
    }
    bin()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH"));
    // Every command answers --help with status 0 and a usage line.
    let o = run_c(&d, "help");
    for line in stdout(&o).lines().skip(1) {
        let name = line.split_whitespace().next().unwrap();
        let h = run_c(&d, &format!("{name} --help"));
        assert_eq!(h.status.code(), Some(0), "{name} --help");
        assert!(
            stdout(&h).contains("Usage"),
            "{name} --help: {}",
            stdout(&h)
        );
    }
}

#[test]
fn json_outputs_parse() {
    let d = db();
    run_c(&d, "mkdir /e; echo hi > /e/f; config set a.b c");
    for cmd in [
        "ls -l --format json /e",
        "log --format json",
        "history --format json /e/f",
        "status --format json",
        "config list --format json",
    ] {
        let o = run_c(&d, cmd);
        assert!(o.status.success(), "{cmd}");
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert!(!v.is_null(), "{cmd}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run_c(&d, "log --format json").stdout).unwrap();
    assert_eq!(v[0]["id"], 2);
    assert_eq!(v[0]["ref"], "T2");
}

#[test]
fn database_errors_are_clear() {
    if common::on_postgres() {
        return; // writes garbage into a SQLite file
    }
    let d = db();
    std::fs::write(
        &d.path,
        b"this is not a database, just text that is long enough to look like a header....",
    )
    .unwrap();
    dbos(&d)
        .args(["-c", "ls"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(d.path.as_str()));
    let d2 = db();
    dbos(&d2)
        .args(["--branch", "nosuch", "-c", "ls"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such branch"));
}

#[test]
fn default_database_location_follows_xdg() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::cargo_bin("dbos").unwrap();
    c.env_remove("DBOS_DB")
        .env("XDG_DATA_HOME", dir.path())
        .args(["-c", "echo x > /f"]);
    c.assert().success();
    let db = dir.path().join("dbos/state.db");
    assert!(db.exists());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&dir.path().join("dbos")), 0o700);
    let mut c = Command::cargo_bin("dbos").unwrap();
    c.env("DBOS_DB", db.to_str().unwrap())
        .args(["-c", "cat /f"])
        .assert()
        .stdout("x\n");
}
