//! Where a black-box test's database lives: a SQLite file in the test's
//! folder, or with `DBOS_TEST_BACKEND=postgres` a fresh database on the
//! server named by `DBOS_TEST_PG` (see `tests/pg/start`). The same tests run
//! on both backends.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("DBOS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh database: `DIR/s.db`, or a new PostgreSQL database.
pub fn location(dir: &Path) -> String {
    if !on_postgres() {
        return dir.join("s.db").display().to_string();
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("DBOS_TEST_PG").expect("DBOS_TEST_PG names the test server");
    let name = format!(
        "dbos_s_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0)
    );
    let mut client =
        postgres::Client::connect(&server, postgres::NoTls).expect("connect to DBOS_TEST_PG");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    format!("{base}/{name}")
}

/// What one run of `dbos` gave.
pub struct Run {
    /// Exit status.
    pub code: i32,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// A fresh database in a temporary folder (T1 is `init`), and ways to run
/// the real `dbos` binary on it as user `tester`.
pub struct Shell {
    /// Scratch folder (also `HOME`).
    pub dir: tempfile::TempDir,
    /// The database location given with `--db`.
    pub db: String,
}

impl Shell {
    /// A fresh database on the backend under test.
    pub fn new() -> Shell {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = location(dir.path());
        Shell { dir, db }
    }

    /// Run `dbos --db DB --user tester ARGS...`.
    pub fn args(&self, args: &[&str]) -> Run {
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_dbos"))
            .env_remove("DBOS_DB")
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .args(["--db", &self.db, "--user", "tester"])
            .args(args)
            .output()
            .expect("run dbos");
        Run {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run a `-c` script (on main).
    pub fn run(&self, script: &str) -> Run {
        self.args(&["-c", script])
    }

    /// Run a `-c` script on a branch.
    pub fn run_on(&self, branch: &str, script: &str) -> Run {
        self.args(&["--branch", branch, "-c", script])
    }

    /// Run a `-c` script that must succeed; its standard output.
    pub fn ok(&self, script: &str) -> String {
        expect_code(self.run(script), 0, script).out
    }

    /// Run a `-c` script on a branch that must succeed; its standard output.
    pub fn ok_on(&self, branch: &str, script: &str) -> String {
        expect_code(
            self.run_on(branch, script),
            0,
            &format!("{script} on {branch}"),
        )
        .out
    }

    /// Run a `-c` script that must fail with `code`; its standard error.
    pub fn fails(&self, script: &str, code: i32) -> String {
        expect_code(self.run(script), code, script).err
    }

    /// Run a `-c` script on a branch that must fail with `code`; its
    /// standard error.
    pub fn fails_on(&self, branch: &str, script: &str, code: i32) -> String {
        expect_code(
            self.run_on(branch, script),
            code,
            &format!("{script} on {branch}"),
        )
        .err
    }

    /// Run a `-c` script that must succeed and print JSON; the document.
    pub fn json(&self, script: &str) -> serde_json::Value {
        let out = self.ok(script);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{script:?}: bad JSON ({e}): {out}"))
    }
}

/// Check a run's exit status, showing its output when it is wrong.
pub fn expect_code(r: Run, code: i32, what: &str) -> Run {
    assert_eq!(
        r.code, code,
        "{what:?} gave {} instead of {code}:\nstdout: {}\nstderr: {}",
        r.code, r.out, r.err
    );
    r
}
