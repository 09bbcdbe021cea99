//! End-to-end tests of the time-travel commands (show, diff, revert, reset,
//! asof), driving the real `dbos` binary with `-c`: every `-c` string is one
//! input unit, committed as one transaction when it changes something.

mod common;

use dbos_engine::{Actor, Engine, VPath};
use serde_json::Value;

/// A fresh database (T1 is `init`) and the real binary to run on it.
type Db = common::Shell;

impl Db {
    /// The transactions, newest first, as `log --format json` gives them.
    fn log(&self) -> Vec<Value> {
        match self.json("log --format json") {
            Value::Array(v) => v,
            other => panic!("log is not an array: {other}"),
        }
    }

    /// The newest transaction id.
    fn head(&self) -> u64 {
        self.log()[0]["id"].as_u64().expect("id")
    }

    /// Commit a file with arbitrary bytes directly through the engine.
    fn write_raw(&self, path: &str, bytes: &[u8]) -> u64 {
        let mut engine = Engine::open(&self.db).expect("open");
        let p = VPath::parse(path).expect("path");
        let (_, info) = engine
            .autocommit("main", &Actor::default(), "raw write", |tx| {
                tx.write_bytes(&p, bytes)
            })
            .expect("commit");
        info.expect("a transaction").id
    }
}

/// T2 writes `old` to /f, T3 changes it to `new`.
fn fixture() -> Db {
    let db = Db::new();
    db.ok("echo old > /f");
    db.ok("echo new > /f");
    assert_eq!(db.head(), 3, "fixture transactions are T2 and T3");
    db
}

// ----- help -----------------------------------------------------------------

#[test]
fn every_command_has_help() {
    let db = Db::new();
    for cmd in ["show", "diff", "revert", "reset", "asof"] {
        let out = db.ok(&format!("{cmd} --help"));
        assert!(out.contains("Usage:"), "{cmd} --help: {out}");
        assert!(
            out.contains("REF forms"),
            "{cmd} --help names the REF forms"
        );
        let out = db.ok(&format!("help {cmd}"));
        assert!(out.contains(cmd), "help {cmd}: {out}");
    }
    let out = db.ok("diff --help");
    assert!(out.contains("leading ./ or /"));
    assert!(out.contains("Pending changes of an open transaction are not included"));
}

// ----- diff -----------------------------------------------------------------

#[test]
fn diff_two_refs_shows_a_unified_diff() {
    let db = fixture();
    let out = db.ok("diff T2 T3");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "M /f");
    assert!(out.contains("--- a/f\n+++ b/f\n"), "{out}");
    assert!(out.contains("\n-old\n+new\n"), "{out}");
    // The other way round.
    let out = db.ok("diff T3 T2");
    assert!(out.contains("\n-new\n+old\n"), "{out}");
    // Other REF forms naming the same moments.
    assert_eq!(db.ok("diff HEAD~1 HEAD"), db.ok("diff T2 T3"));
    assert_eq!(db.ok("diff main@T2 main@T3"), db.ok("diff T2 T3"));
    // No difference, no output.
    assert_eq!(db.ok("diff T3 T3"), "");
}

#[test]
fn diff_one_ref_compares_with_the_present() {
    let db = fixture();
    db.ok("echo third > /f; echo g > /g; mkdir /d");
    let out = db.ok("diff T2");
    let summary: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(summary, ["A /d", "M /f", "A /g"]);
    assert!(out.contains("-old\n+third\n"), "{out}");
    assert!(
        out.contains("--- /dev/null\n+++ b/g\n@@ -0,0 +1 @@\n+g\n"),
        "{out}"
    );
    // Removed files diff against /dev/null.
    let out = db.ok("diff HEAD T2");
    assert!(out.contains("D /g"), "{out}");
    assert!(out.contains("--- a/g\n+++ /dev/null\n"), "{out}");
    assert!(out.contains("\n-g\n"), "{out}");
}

#[test]
fn diff_ignores_pending_changes_of_an_open_transaction() {
    let db = fixture();
    let out = db.ok("begin; echo pending > /f; diff T3; rollback");
    assert!(!out.contains("M /f"), "{out}");
}

#[test]
fn diff_restricted_to_a_path() {
    let db = fixture();
    db.ok("mkdir /d; echo a > /d/a; echo b > /db; echo changed > /f; config set k v");
    let out = db.ok("diff T3 /d");
    let summary: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(summary, ["A /d", "A /d/a"], "{out}");
    // Relative paths resolve against the working directory.
    let out = db.ok("cd /d; diff T3 a");
    assert_eq!(out.lines().next(), Some("A /d/a"), "{out}");
    // A single file.
    let out = db.ok("diff T2 T3 /f");
    assert_eq!(out.lines().next(), Some("M /f"));
    // Config keys only without a PATH.
    assert!(db.ok("diff T3").contains("A config k"));
    assert!(!db.ok("diff T3 /").contains("config"));
    // A path that reads as a REF is written with ./ or /.
    db.ok("echo x > /T3");
    let out = db.ok("diff T3 ./T3");
    assert_eq!(out.lines().next(), Some("A /T3"), "{out}");
    let out = db.ok("diff T3 /T3");
    assert_eq!(out.lines().next(), Some("A /T3"), "{out}");
    // A path that names nothing gives no output.
    assert_eq!(db.ok("diff T2 T3 /nothing"), "");
}

#[test]
fn diff_stat_prints_only_the_summary() {
    let db = fixture();
    db.ok("echo g > /g");
    let out = db.ok("diff --stat T2");
    assert_eq!(
        out,
        "M /f\nA /g\n2 paths changed (1 added, 1 modified, 0 removed)\n"
    );
    assert_eq!(
        db.ok("diff T2 T3 --stat"),
        "M /f\n1 path changed (0 added, 1 modified, 0 removed)\n"
    );
}

#[test]
fn diff_shows_mode_changes() {
    let db = fixture();
    db.ok("chmod 755 /f");
    let out = db.ok("diff T3");
    assert_eq!(out, "M /f (mode 0644 -> 0755)\n");
}

#[test]
fn diff_of_binary_and_large_files() {
    let db = fixture();
    let t1 = db.write_raw("/bin", b"a\0b");
    let t2 = db.write_raw("/bin", b"a\0c");
    let out = db.ok(&format!("diff T{t1} T{t2}"));
    assert!(out.starts_with("M /bin\n"), "{out}");
    assert!(out.contains("Binary files differ"), "{out}");
    // Not UTF-8.
    let t3 = db.write_raw("/latin", b"caf\xe9\n");
    let out = db.ok(&format!("diff T{t2} T{t3}"));
    assert!(out.contains("A /latin"), "{out}");
    assert!(out.contains("Binary files differ"), "{out}");
    // 1 MiB or more: not diffed.
    let big = "line\n".repeat(300_000);
    let t4 = db.write_raw("/big", big.as_bytes());
    let t5 = db.write_raw("/big", format!("{big}more\n").as_bytes());
    let out = db.ok(&format!("diff T{t4} T{t5}"));
    assert!(out.contains("M /big"), "{out}");
    assert!(out.contains("Large files differ"), "{out}");
    assert!(!out.contains("+more"), "{out}");
    let v = db.json(&format!("diff T{t1} T{t2} --format json"));
    assert_eq!(v[0]["binary"], Value::Bool(true));
    assert_eq!(v[0]["diff"], Value::Null);
}

#[test]
fn diff_json() {
    let db = fixture();
    db.ok("echo g > /g; config set net.host example");
    let v = db.json("diff T2 --format json");
    let items = v.as_array().expect("an array");
    assert_eq!(items.len(), 3, "{v}");
    let by_path = |p: &str| {
        items
            .iter()
            .find(|i| i["path"] == p)
            .unwrap_or_else(|| panic!("{p} in {v}"))
    };
    let f = by_path("/f");
    assert_eq!(f["space"], "file");
    assert_eq!(f["change"], "modified");
    assert_eq!(f["before"]["type"], "file");
    assert_eq!(f["before"]["size"], 4);
    assert_eq!(f["after"]["mode"], "0644");
    let d = f["diff"].as_str().expect("a diff");
    assert!(d.contains("-old\n+new\n"), "{d}");
    let g = by_path("/g");
    assert_eq!(g["change"], "added");
    assert_eq!(g["before"], Value::Null);
    let c = by_path("net.host");
    assert_eq!(c["space"], "config");
    assert_eq!(c["after"]["value"], "example");
    // --stat leaves the diffs out.
    let v = db.json("diff T2 --stat --format json");
    assert!(v
        .as_array()
        .expect("array")
        .iter()
        .all(|i| i["diff"].is_null()));
}

#[test]
fn diff_errors() {
    let db = fixture();
    let err = db.fails("diff T999", 1);
    assert!(err.starts_with("dbos: diff: "), "{err}");
    assert!(err.contains("T999"), "{err}");
    let err = db.fails("diff T2 T999", 1);
    assert!(err.contains("T999"), "{err}");
    let err = db.fails("diff 'HEAD~x'", 2);
    assert!(err.starts_with("dbos: diff: "), "{err}");
    assert!(err.contains("HEAD~x"), "{err}");
    let err = db.fails("diff 'nonsense ago'", 2);
    assert!(err.contains("nonsense ago"), "{err}");
    let err = db.fails("diff T2 '10 parsecs ago'", 2);
    assert!(err.contains("10 parsecs ago"), "{err}");
    let err = db.fails("diff /f", 2);
    assert!(err.starts_with("dbos: diff: "), "{err}");
    db.fails("diff", 2);
    db.fails("diff T2 T3 /f /g", 2);
    let err = db.fails("diff T2 /f /g", 2);
    assert!(err.contains("only one PATH"), "{err}");
    db.fails("diff --format yaml T2", 2);
}

// ----- show -----------------------------------------------------------------

#[test]
fn show_text() {
    let db = fixture();
    let out = db.ok("show T3");
    assert!(out.starts_with("T3\n"), "{out}");
    assert!(out.contains("Branch:  main\n"), "{out}");
    assert!(out.contains("Author:  tester\n"), "{out}");
    assert!(out.contains("Command: echo new > /f\n"), "{out}");
    assert!(out.contains("Host:    "), "{out}");
    assert!(out.contains("Time:    "), "{out}");
    assert!(out.contains("Hash:    "), "{out}");
    assert!(out.contains("  modified  /f\n"), "{out}");
    assert!(out.contains("--- a/f\n+++ b/f\n"), "{out}");
    assert!(out.contains("\n-old\n+new\n"), "{out}");
    let out = db.ok("show T2");
    assert!(out.contains("  added     /f\n"), "{out}");
    assert!(out.contains("--- /dev/null\n+++ b/f\n"), "{out}");
    let out = db.ok("show --stat T3");
    assert!(out.contains("  modified  /f\n"), "{out}");
    assert!(!out.contains("+new"), "{out}");
}

#[test]
fn show_config_removals_and_messages() {
    let db = fixture();
    db.ok("begin; config set net.host example; rm /f; commit -m 'tidy up'");
    let out = db.ok("show HEAD");
    assert!(out.starts_with("T4\n"), "{out}");
    assert!(out.contains("Message: tidy up\n"), "{out}");
    assert!(out.contains("  added     config net.host\n"), "{out}");
    assert!(out.contains("  removed   /f\n"), "{out}");
    assert!(out.contains("+example"), "{out}");
    assert!(out.contains("--- a/f\n+++ /dev/null\n"), "{out}");
    // The first transaction created the root directory.
    let out = db.ok("show T1");
    assert!(out.contains("Command: init"), "{out}");
    assert!(out.contains("  added     /\n"), "{out}");
}

#[test]
fn show_json() {
    let db = fixture();
    let v = db.json("show T3 --format json");
    assert_eq!(v["id"], 3);
    assert_eq!(v["ref"], "T3");
    assert_eq!(v["author"], "tester");
    assert_eq!(v["command"], "echo new > /f");
    assert_eq!(v["branch"], "main");
    assert!(v["hash"].as_str().is_some_and(|h| h.len() == 64), "{v}");
    assert!(v["time"].is_string());
    let changes = v["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["path"], "/f");
    assert_eq!(changes[0]["change"], "modified");
    assert!(changes[0]["diff"]
        .as_str()
        .is_some_and(|d| d.contains("+new")));
}

#[test]
fn show_errors() {
    let db = fixture();
    let err = db.fails("show Tx", 2);
    assert!(err.starts_with("dbos: show: "), "{err}");
    assert!(err.contains("Tx"), "{err}");
    let err = db.fails("show T999", 1);
    assert!(err.starts_with("dbos: show: "), "{err}");
    assert!(err.contains("T999"), "{err}");
    db.fails("show", 2);
    db.fails("show T2 T3", 2);
}

// ----- revert ---------------------------------------------------------------

#[test]
fn revert_restores_and_adds_a_transaction() {
    let db = fixture();
    let out = db.ok("revert T3");
    assert_eq!(out, "Reverted T3\n");
    assert_eq!(db.ok("cat /f"), "old\n");
    let log = db.log();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["command"], "revert T3");
    // Reverting the revert brings the change back.
    db.ok("revert T4");
    assert_eq!(db.ok("cat /f"), "new\n");
    // Reverting a creation removes the file.
    db.ok("echo g > /g");
    let t = db.head();
    db.ok(&format!("revert T{t}"));
    db.fails("cat /g", 1);
}

#[test]
fn revert_conflict_changes_nothing() {
    let db = fixture();
    db.ok("echo newer > /f");
    let before = db.log();
    let err = db.fails("revert T3", 1);
    assert!(err.starts_with("dbos: revert: conflict: /f"), "{err}");
    assert!(err.contains("T4"), "names the later change: {err}");
    assert_eq!(db.log(), before, "the log is unchanged");
    assert_eq!(db.ok("cat /f"), "newer\n");
    // Nothing is half-done either when other keys were fine.
    db.ok("begin; echo a > /a; echo b > /f; commit");
    let t = db.head();
    db.ok("echo c > /f");
    let before = db.log();
    db.fails(&format!("revert T{t}"), 1);
    assert_eq!(db.log(), before);
    assert_eq!(db.ok("cat /a"), "a\n");
}

#[test]
fn revert_restores_removed_directories() {
    let db = Db::new();
    db.ok("mkdir /d; echo x > /d/x");
    db.ok("rm -r /d");
    db.ok("revert T3");
    assert_eq!(db.ok("cat /d/x"), "x\n");
}

#[test]
fn revert_needs_the_directory_of_restored_files() {
    let db = Db::new();
    db.ok("mkdir /d; echo x > /d/x"); // T2
    db.ok("rm /d/x"); // T3
    db.ok("rmdir /d"); // T4
    let before = db.log();
    let err = db.fails("revert T3", 1);
    assert!(err.starts_with("dbos: revert: "), "{err}");
    assert!(err.contains("/d/x") && err.contains("/d"), "{err}");
    assert_eq!(db.log(), before);
}

#[test]
fn revert_refuses_to_remove_a_directory_holding_later_files() {
    let db = Db::new();
    db.ok("mkdir /d"); // T2
    db.ok("echo y > /d/y"); // T3
    let err = db.fails("revert T2", 1);
    assert!(err.contains("/d/y"), "{err}");
    assert_eq!(db.ok("cat /d/y"), "y\n");
}

#[test]
fn revert_inside_a_transaction() {
    let db = fixture();
    let out = db.ok("begin; revert T3; cat /f; commit -m undo");
    assert!(out.contains("Reverted T3\nold\n"), "{out}");
    assert!(out.contains("Transaction T4 committed"), "{out}");
    assert_eq!(db.log()[0]["message"], "undo");
}

#[test]
fn revert_errors() {
    let db = fixture();
    let err = db.fails("revert T999", 1);
    assert!(err.starts_with("dbos: revert: "), "{err}");
    assert!(err.contains("T999"), "{err}");
    let err = db.fails("revert Tx", 2);
    assert!(err.contains("Tx"), "{err}");
    let err = db.fails("revert T1", 1);
    assert!(err.contains("root"), "{err}");
    db.fails("revert", 2);
    let err = db.fails("asof T2; revert T3", 1);
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(db.log().len(), 3);
}

// ----- reset ----------------------------------------------------------------

#[test]
fn reset_whole_state() {
    let db = fixture();
    db.ok("echo g > /g; config set k v");
    let out = db.ok("reset T2");
    assert_eq!(out, "Reset 3 paths to T2\n");
    assert_eq!(db.ok("cat /f"), "old\n");
    db.fails("cat /g", 1);
    db.fails("config get k", 1);
    let log = db.log();
    assert_eq!(log[0]["command"], "reset T2");
    // Nothing is lost: the present before the reset is still there.
    assert_eq!(db.ok("cat --as-of T4 /g"), "g\n");
    // Already equal: nothing to do, no transaction.
    assert_eq!(db.ok("reset T5"), "Reset 0 paths to T5\n");
    assert_eq!(db.log().len(), log.len());
}

#[test]
fn reset_only_touches_the_given_subtree() {
    let db = Db::new();
    db.ok("mkdir /dir; echo 1 > /dir/a; echo 1 > /other"); // T2
    db.ok("echo 2 > /dir/a; echo 2 > /dir/b; echo 2 > /other; echo 2 > /dirx"); // T3
    let out = db.ok("reset T2 /dir");
    assert_eq!(out, "Reset 2 paths to T2\n");
    assert_eq!(db.ok("cat /dir/a"), "1\n");
    db.fails("cat /dir/b", 1);
    assert_eq!(db.ok("cat /other"), "2\n");
    assert_eq!(db.ok("cat /dirx"), "2\n");
    // Several paths, relative to the working directory.
    db.ok("cd /dir; reset T3 b ../other");
    assert_eq!(db.ok("cat /dir/b /other"), "2\n2\n");
    assert_eq!(db.ok("cat /dir/a"), "1\n");
}

#[test]
fn reset_restores_missing_directories_above_a_path() {
    let db = Db::new();
    db.ok("mkdir -p /a/b; echo x > /a/b/c; echo y > /a/b/d"); // T2
    db.ok("rm -r /a"); // T3
    let out = db.ok("reset T2 /a/b/c");
    assert_eq!(out, "Reset 3 paths to T2\n");
    assert_eq!(db.ok("cat /a/b/c"), "x\n");
    db.fails("cat /a/b/d", 1);
}

#[test]
fn reset_refuses_to_replace_a_file_above_a_path() {
    let db = Db::new();
    db.ok("mkdir /a; echo x > /a/c"); // T2
    db.ok("rm -r /a; echo file > /a"); // T3
    let err = db.fails("reset T2 /a/c", 1);
    assert!(err.starts_with("dbos: reset: "), "{err}");
    assert!(err.contains("/a"), "{err}");
    assert_eq!(db.ok("cat /a"), "file\n");
    // With the directory itself in the paths, it works.
    db.ok("reset T2 /a");
    assert_eq!(db.ok("cat /a/c"), "x\n");
}

#[test]
fn reset_includes_pending_changes_of_an_open_transaction() {
    let db = fixture();
    let out = db.ok("begin; echo zzz > /f; echo n > /new; reset T2; cat /f; ls /; commit");
    assert!(out.contains("Reset 2 paths to T2\nold\nf\n"), "{out}");
    db.fails("cat /new", 1);
    assert_eq!(db.ok("cat /f"), "old\n");
}

#[test]
fn reset_errors() {
    let db = fixture();
    let err = db.fails("reset 'nonsense ago'", 2);
    assert!(err.starts_with("dbos: reset: "), "{err}");
    assert!(err.contains("nonsense ago"), "{err}");
    let err = db.fails("reset T999", 1);
    assert!(err.contains("T999"), "{err}");
    db.fails("reset", 2);
    let err = db.fails("asof T2; reset T2", 1);
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(db.log().len(), 3);
    assert_eq!(db.ok("cat /f"), "new\n");
}

// ----- asof -----------------------------------------------------------------

#[test]
fn asof_views_the_past_read_only() {
    let db = fixture();
    let r = db.run("asof T2; cat /f; echo x > /g");
    assert_eq!(r.code, 1, "{}", r.err);
    assert_eq!(r.out, "Viewing main@T2 (read-only)\nold\n");
    assert!(r.err.starts_with("dbos: echo: "), "{}", r.err);
    assert!(r.err.contains("read-only"), "{}", r.err);
    assert_eq!(db.log().len(), 3, "nothing was committed");
    let out = db.ok("asof T2; asof; asof now; asof; cat /f");
    assert_eq!(
        out,
        "Viewing main@T2 (read-only)\nViewing main@T2 (read-only)\n\
         Back to the present of branch main\nViewing the present of branch main\nnew\n"
    );
    let out = db.ok("asof HEAD~1; cat /f; asof HEAD; echo x > /g; cat /g");
    assert_eq!(
        out,
        "Viewing main@T2 (read-only)\nold\nBack to the present of branch main\nx\n"
    );
    // A diff with one REF under asof compares with the moment viewed.
    assert_eq!(db.ok("asof T3; diff T3"), "Viewing main@T3 (read-only)\n");
}

#[test]
fn asof_errors() {
    let db = fixture();
    let err = db.fails("begin; asof T2", 1);
    assert!(err.contains("dbos: asof: "), "{err}");
    assert!(err.contains("transaction is open"), "{err}");
    let err = db.fails("asof T999", 1);
    assert!(err.contains("T999"), "{err}");
    let err = db.fails("asof 'x y'", 2);
    assert!(err.starts_with("dbos: asof: "), "{err}");
    assert!(err.contains("x y"), "{err}");
    db.fails("asof T2 T3", 2);
}
