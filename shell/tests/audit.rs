//! Black-box tests of `sql` and `verify` (issue 7), driving the real `dbos`
//! binary on the backend under test: every output format parsed back, the
//! temporal clauses and `--as-of` from the command line, the shell's branch,
//! refused writes, exit statuses, and on SQLite tampering with the file and
//! reading it with plain SQLite.

mod common;

use common::{expect_code, Shell};
use serde_json::Value;

/// T2 writes /etc/hostname and a config key, T3 changes both, T4 removes
/// the file, T5 a file on branch `exp`.
fn fixture() -> Shell {
    let s = Shell::new();
    s.ok("mkdir /etc; echo one > /etc/hostname; config set net.dns 1.1.1.1");
    s.ok("echo two > /etc/hostname; config set net.dns 9.9.9.9");
    s.ok("rm /etc/hostname");
    s.ok("branch exp; switch exp; echo x > /x");
    s
}

fn json(s: &Shell, args: &[&str]) -> Value {
    let r = expect_code(s.args(args), 0, &args.join(" "));
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", r.out))
}

#[test]
fn json_output_parses_and_types_values() {
    let s = fixture();
    let v = json(
        &s,
        &[
            "sql",
            "--format",
            "json",
            "SELECT id, author, command, message FROM transactions ORDER BY id",
        ],
    );
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[0]["command"], "init");
    assert_eq!(rows[1]["author"], "tester");
    assert_eq!(rows[1]["message"], Value::Null);
    assert!(rows[3]["command"]
        .as_str()
        .unwrap()
        .contains("rm /etc/hostname"));
}

#[test]
fn tsv_has_a_header_then_one_row_per_line() {
    let s = fixture();
    let r = expect_code(
        s.args(&[
            "sql",
            "--format",
            "tsv",
            "SELECT path, size, valid_from_tx, valid_to_tx, author FROM file_history WHERE path = '/etc/hostname' ORDER BY valid_from_tx",
        ]),
        0,
        "tsv",
    );
    assert_eq!(
        r.out,
        "path\tsize\tvalid_from_tx\tvalid_to_tx\tauthor\n\
         /etc/hostname\t4\t2\t3\ttester\n\
         /etc/hostname\t4\t3\t4\ttester\n"
    );
}

#[test]
fn csv_and_table_formats() {
    let s = fixture();
    let r = expect_code(
        s.args(&[
            "sql",
            "--format",
            "csv",
            "SELECT key, value, 'a,\"b\"' AS odd FROM config_history ORDER BY valid_from_tx",
        ]),
        0,
        "csv",
    );
    let mut rd = csv::Reader::from_reader(r.out.as_bytes());
    assert_eq!(rd.headers().unwrap(), vec!["key", "value", "odd"]);
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["net.dns", "1.1.1.1", "a,\"b\""],
            vec!["net.dns", "9.9.9.9", "a,\"b\""]
        ]
    );
    let out = s.ok("sql 'SELECT key, value FROM config'");
    assert!(out.contains("| net.dns | 9.9.9.9 |"), "{out}");
    assert!(out.trim_end().ends_with("(1 row)"), "{out}");
}

#[test]
fn temporal_clauses_and_as_of_from_the_command_line() {
    let s = fixture();
    let q = |extra: &[&str], query: &str| -> String {
        // Options of dbos itself (--branch) go before `sql`; the rest after.
        let (before, after): (Vec<&str>, Vec<&str>) = if extra.first() == Some(&"--branch") {
            (extra.to_vec(), vec![])
        } else {
            (vec![], extra.to_vec())
        };
        let mut args = before;
        args.extend(["sql", "--format", "tsv"]);
        args.extend(after);
        args.push(query);
        expect_code(s.args(&args), 0, query).out
    };
    assert_eq!(
        q(&[], "SELECT value FROM config FOR SYSTEM_TIME AS OF T2"),
        "value\n1.1.1.1\n"
    );
    assert_eq!(
        q(&["--as-of", "T2"], "SELECT value FROM config"),
        "value\n1.1.1.1\n"
    );
    assert_eq!(
        q(
            &[],
            "SELECT count(*) AS n FROM files FOR SYSTEM_TIME AS OF T3 WHERE path = '/etc/hostname'"
        ),
        "n\n1\n"
    );
    assert_eq!(
        q(
            &[],
            "SELECT count(*) AS n FROM files WHERE path = '/etc/hostname'"
        ),
        "n\n0\n"
    );
    assert_eq!(
        q(
            &[],
            "SELECT valid_from_tx FROM file_history FOR SYSTEM_TIME BETWEEN T3 AND T4 WHERE path = '/etc/hostname'"
        ),
        "valid_from_tx\n3\n"
    );
    assert_eq!(
        q(&[], "SELECT count(*) AS n FROM config FOR SYSTEM_TIME ALL"),
        "n\n2\n"
    );
    // The shell's branch decides what the state views show.
    assert_eq!(q(&[], "SELECT path FROM files WHERE path = '/x'"), "path\n");
    assert_eq!(
        q(
            &["--branch", "exp"],
            "SELECT path, branch FROM files WHERE path = '/x'"
        ),
        "path\tbranch\n/x\texp\n"
    );
    // A quoted time REF (one far ahead: every transaction so far).
    assert_eq!(
        q(
            &[],
            "SELECT count(*) AS n FROM transactions FOR SYSTEM_TIME AS OF '2999-01-01 00:00'"
        ),
        "n\n5\n"
    );
    // Inside the shell, after `asof`, queries read that moment.
    let out = s.ok("asof T2; sql --format tsv 'SELECT value FROM config'");
    assert!(out.ends_with("value\n1.1.1.1\n"), "{out}");
}

#[test]
fn bad_queries_fail_clearly_and_change_nothing() {
    let s = fixture();
    let head = || s.ok("sql --format tsv 'SELECT max(id) FROM transactions'");
    let before = head();
    let err = s.fails("sql 'SELECT * FROM nosuch'", 1);
    assert!(err.contains("nosuch"), "{err}");
    let err = s.fails("sql 'DELETE FROM versions'", 1);
    assert!(
        err.contains("refused") && err.contains("nothing was changed"),
        "{err}"
    );
    let err = s.fails("sql \"UPDATE transactions SET author = 'x'\"", 1);
    assert!(err.contains("refused"), "{err}");
    let err = s.fails("sql 'SELECT 1; DROP TABLE keys'", 1);
    assert!(err.contains("one statement"), "{err}");
    let err = s.fails("sql 'SELECT * FROM files FOR SYSTEM_TIME AS OF T999'", 1);
    assert!(err.contains("T999"), "{err}");
    let err = s.fails("sql 'SELECT * FROM files FOR SYSTEM_TIME SOMETIME'", 1);
    assert!(
        err.contains("AS OF REF, BETWEEN REF AND REF, or ALL"),
        "{err}"
    );
    let err = s.fails("sql --format xml 'SELECT 1'", 2);
    assert!(err.contains("xml"), "{err}");
    s.fails("sql", 2);
    assert_eq!(head(), before);
    let help = s.ok("sql --help");
    for view in [
        "transactions",
        "file_history",
        "config_history",
        "process_history",
        "shell_history",
    ] {
        assert!(help.contains(view), "help lacks {view}");
    }
    // Pipes and the exit status of `dbos sql` itself.
    let out = s.ok("sql --format tsv 'SELECT command FROM transactions' | grep -c hostname");
    assert_eq!(out.trim(), "3");
    let r = s.args(&["sql", "SELECT * FROM nosuch"]);
    assert_eq!(r.code, 1, "{}", r.err);
}

#[test]
fn verify_reports_an_intact_chain() {
    let s = fixture();
    let out = s.ok("verify");
    assert!(out.contains("T1..T5") && out.contains("intact"), "{out}");
    let r = expect_code(s.args(&["verify", "--from", "T3", "--quiet"]), 0, "verify");
    assert_eq!(r.out, "");
}

#[test]
fn sqlite_state_is_an_ordinary_file_and_tampering_is_named() {
    if common::on_postgres() {
        return;
    }
    let s = fixture();
    // Plain SQLite reads it, directly and attached to another database.
    let c = rusqlite::Connection::open(&s.db).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
    let other = rusqlite::Connection::open(s.dir.path().join("other.db")).unwrap();
    other
        .execute(&format!("ATTACH '{}' AS dbos", s.db), [])
        .unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM dbos.versions", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 6);
    drop(other);
    if let Ok(out) = std::process::Command::new("sqlite3")
        .args([&s.db, "SELECT command FROM transactions WHERE id = 1"])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "init");
    }
    // Edit T3's author behind dbos's back: verify fails and names T3.
    c.execute(
        "UPDATE transactions SET author = 'mallory' WHERE id = 3",
        [],
    )
    .unwrap();
    drop(c);
    let err = s.fails("verify", 1);
    assert!(err.contains("broken at T3"), "{err}");
    let r = s.args(&["verify", "--from", "T4"]);
    assert_eq!(r.code, 0, "{}", r.err);
}

/// The README's ready-made audit queries, run exactly as printed there.
#[test]
fn the_readme_audit_queries_run() {
    if common::on_postgres() {
        return; // they use SQLite's date functions, as the README says
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Audit with SQL")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("an 'Audit with SQL' section");
    let lines: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("dbos sql "))
        .collect();
    assert!(lines.len() >= 5, "{lines:?}");
    let s = fixture();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_dbos"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in lines {
        let out = std::process::Command::new("bash")
            .args(["-c", line])
            .env("PATH", &path)
            .env("DBOS_DB", &s.db)
            .env("HOME", s.dir.path())
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(" row"), "{line}: {text}");
        if line.contains("/etc/hostname") {
            assert!(text.contains("(2 rows)"), "{line}: {text}");
        }
    }
}
