//! End-to-end tests of branches: branch, switch, merge, tag and
//! `log BRANCH` / `log --graph`, driving the real `dbos` binary. Every `-c`
//! string runs line by line in one session, each line one input unit
//! (committed as one transaction when it changes something).

mod common;

use serde_json::Value;

/// A fresh database (T1 is `init`) and the real binary to run on it.
type Db = common::Shell;

impl Db {
    /// The log of a branch as text (every transaction).
    fn log(&self, branch: &str) -> String {
        self.ok(&format!("log {branch}"))
    }

    /// The newest transaction id.
    fn head(&self) -> u64 {
        let v = self.json("log --format json -n 1");
        v[0]["id"].as_u64().expect("id")
    }

    /// A file's content on a branch (None: absent).
    fn cat(&self, branch: &str, path: &str) -> Option<String> {
        let r = self.run_on(branch, &format!("cat {path}"));
        (r.code == 0).then_some(r.out)
    }

    /// The branches as `branch --format json` lists them.
    fn branches(&self) -> Vec<Value> {
        match self.json("branch --format json") {
            Value::Array(v) => v,
            other => panic!("branch listing is not an array: {other}"),
        }
    }
}

/// A line writing `content` (ending in a newline) to `path` with a
/// here-document.
fn put(path: &str, content: &str) -> String {
    format!("cat > {path} <<EOF\n{content}EOF")
}

/// A database with `exp` forked from main after T2 (`echo base > /base`).
fn forked() -> Db {
    let db = Db::new();
    db.ok("echo base > /base");
    db.ok("branch exp");
    db
}

// ----- help -----------------------------------------------------------------

#[test]
fn every_command_has_help() {
    let db = Db::new();
    for (cmd, words) in [
        ("branch", "--from"),
        ("switch", "transaction is open"),
        ("merge", "--theirs"),
        ("tag", "REF"),
        ("log", "--graph"),
    ] {
        let out = db.ok(&format!("{cmd} --help"));
        assert!(out.contains("Usage:"), "{cmd} --help: {out}");
        assert!(out.contains(words), "{cmd} --help mentions {words}: {out}");
        let out = db.ok(&format!("help {cmd}"));
        assert!(out.contains(cmd), "help {cmd}: {out}");
    }
    let out = db.ok("help");
    for cmd in ["branch", "switch", "merge", "tag"] {
        assert!(out.contains(cmd), "help lists {cmd}: {out}");
    }
}

// ----- the acceptance -----------------------------------------------------

#[test]
fn seed_acceptance_branch_switch_merge() {
    let db = Db::new();
    let out = db.ok("branch experimental\n\
         switch experimental\n\
         echo new feature > /feature.txt\n\
         cat /feature.txt\n\
         switch main\n\
         cat /feature.txt || echo absent on main");
    assert!(out.contains("Created branch experimental at T1"), "{out}");
    assert!(out.contains("Switched to branch experimental"), "{out}");
    assert!(out.contains("new feature\n"), "{out}");
    assert!(out.contains("Switched to branch main"), "{out}");
    assert!(out.ends_with("absent on main\n"), "{out}");
    // Still invisible on main from another session, visible on experimental.
    assert_eq!(db.cat("main", "/feature.txt"), None);
    assert_eq!(
        db.cat("experimental", "/feature.txt").as_deref(),
        Some("new feature\n")
    );
    let out = db.ok("merge experimental");
    assert!(out.starts_with("Merged experimental into main: T"), "{out}");
    assert!(
        out.contains("(1 changes, 0 text files merged line by line)"),
        "{out}"
    );
    assert_eq!(
        db.cat("main", "/feature.txt").as_deref(),
        Some("new feature\n")
    );
}

#[test]
fn writes_on_a_branch_are_recorded_on_it() {
    let db = forked();
    db.ok("switch exp; echo x > /x");
    let log = db.json("log exp --format json");
    assert_eq!(log[0]["command"], "switch exp; echo x > /x");
    // main's log does not have it.
    assert!(!db.log("main").contains("echo x"));
}

#[test]
fn switch_commits_what_the_line_wrote_before_on_the_old_branch() {
    let db = forked();
    db.ok("echo on-main > /a; switch exp; echo on-exp > /b");
    assert_eq!(db.cat("main", "/a").as_deref(), Some("on-main\n"));
    assert_eq!(db.cat("main", "/b"), None);
    assert_eq!(db.cat("exp", "/b").as_deref(), Some("on-exp\n"));
    assert_eq!(db.cat("exp", "/a"), None);
}

// ----- branch: list, create ----------------------------------------------

#[test]
fn branch_lists_with_current_tip_and_fork_point() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    let out = db.ok("branch");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("  exp "), "{out}");
    assert!(lines[0].contains(" T3 "), "{out}");
    assert!(lines[0].contains("from main@T2, 20"), "{out}");
    assert!(lines[0].ends_with(" UTC"), "{out}");
    assert!(lines[1].starts_with("* main "), "{out}");
    assert!(lines[1].contains(" T2 "), "{out}");
    // From the other branch, the mark moves.
    let out = db.ok_on("exp", "branch");
    assert!(out.contains("* exp "), "{out}");
    assert!(out.contains("  main "), "{out}");

    let v = db.branches();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["name"], "exp");
    assert_eq!(v[0]["current"], false);
    assert_eq!(v[0]["tip"], 3);
    assert_eq!(v[0]["parent"], "main");
    assert_eq!(v[0]["fork_tx"], 2);
    assert!(v[0]["created"].as_str().unwrap().starts_with("20"));
    assert_eq!(v[1]["name"], "main");
    assert_eq!(v[1]["current"], true);
    assert_eq!(v[1]["tip"], 2);
    assert_eq!(v[1]["parent"], Value::Null);
    assert_eq!(v[1]["fork_tx"], Value::Null);
}

#[test]
fn branch_from_a_past_moment() {
    let db = Db::new();
    db.ok("echo one > /f"); // T2
    db.ok("echo two > /f"); // T3
    db.ok("echo g > /g"); // T4
    let out = db.ok("branch old --from T2");
    assert_eq!(out, "Created branch old at T2\n");
    assert_eq!(db.cat("old", "/f").as_deref(), Some("one\n"));
    assert_eq!(db.cat("old", "/g"), None);
    let out = db.ok("branch mid --from main@T3");
    assert_eq!(out, "Created branch mid at T3\n");
    assert_eq!(db.cat("mid", "/f").as_deref(), Some("two\n"));
    assert_eq!(db.cat("mid", "/g"), None);
    // From another branch's moment, then from a branch's head.
    db.ok_on("mid", "echo m > /m"); // T5
    db.ok("branch fromname --from mid");
    assert_eq!(db.cat("fromname", "/m").as_deref(), Some("m\n"));
    assert_eq!(db.cat("fromname", "/g"), None);
    // HEAD~1 of the current branch.
    db.ok("branch back --from HEAD~1");
    assert_eq!(db.cat("back", "/f").as_deref(), Some("two\n"));
    // Under asof, the viewed moment is the default.
    let out = db.ok("asof T2\nbranch viewed");
    assert!(out.ends_with("\nCreated branch viewed at T2\n"), "{out}");
    assert_eq!(db.cat("viewed", "/f").as_deref(), Some("one\n"));
    // The branch lists where it came from.
    let v = db.branches();
    let old = v.iter().find(|b| b["name"] == "old").unwrap();
    assert_eq!(old["fork_tx"], 2);
    let mid = v.iter().find(|b| b["name"] == "mid").unwrap();
    assert_eq!(mid["tip"], 5);
    let fromname = v.iter().find(|b| b["name"] == "fromname").unwrap();
    assert_eq!(fromname["parent"], "mid");
}

#[test]
fn branch_created_on_the_same_line_includes_what_it_wrote() {
    let db = Db::new();
    db.ok("echo x > /x; branch b");
    assert_eq!(db.cat("b", "/x").as_deref(), Some("x\n"));
}

#[test]
fn branch_creation_errors_change_nothing() {
    let db = forked();
    let before = db.branches();
    let err = db.fails("branch exp", 1);
    assert!(
        err.contains("dbos: branch: branch exp already exists"),
        "{err}"
    );
    let err = db.fails("branch 'bad name'", 1);
    assert!(err.contains("invalid branch name \"bad name\""), "{err}");
    let err = db.fails("branch T5", 1);
    assert!(err.contains("reserved"), "{err}");
    let err = db.fails("branch ..x", 1);
    assert!(err.contains("invalid branch name"), "{err}");
    let err = db.fails("branch new --from T99", 1);
    assert!(err.contains("no such transaction T99"), "{err}");
    let err = db.fails("branch new --from nosuch@T1", 1);
    assert!(err.contains("no such branch: nosuch"), "{err}");
    let err = db.fails("branch new --from 'not a ref!'", 2);
    assert!(err.contains("bad REF"), "{err}");
    // Usage errors.
    let err = db.fails("branch a b", 2);
    assert!(err.contains("one branch at a time"), "{err}");
    let err = db.fails("branch --from T1", 2);
    assert!(err.contains("--from needs the NAME"), "{err}");
    let err = db.fails("branch --bogus", 2);
    assert!(err.contains("try --help"), "{err}");
    assert_eq!(db.branches(), before);
}

// ----- switch ---------------------------------------------------------------

#[test]
fn switch_errors_change_nothing() {
    let db = forked();
    let err = db.fails("switch nosuch", 1);
    assert!(
        err.contains("dbos: switch: no such branch: nosuch"),
        "{err}"
    );
    let err = db.fails("switch", 2);
    assert!(err.contains("try --help"), "{err}");
    // An open transaction: refused, nothing changed, still on main.
    let r = db.run("begin\necho pending > /p\nswitch exp\nstatus\ncommit");
    assert!(
        r.err
            .contains("dbos: switch: a transaction is open on branch main: commit or rollback it"),
        "{}",
        r.err
    );
    assert!(r.out.contains("On branch main"), "{}", r.out);
    // The transaction went on and committed on main.
    assert_eq!(db.cat("main", "/p").as_deref(), Some("pending\n"));
    assert_eq!(db.cat("exp", "/p"), None);
    // A past view: refused.
    let r = db.run("asof T1\nswitch exp\nstatus");
    assert!(
        r.err.contains("run 'asof now' before switching branch"),
        "{}",
        r.err
    );
    assert!(r.out.contains("On branch main"), "{}", r.out);
    // Already there.
    assert_eq!(db.ok("switch main"), "Already on branch main\n");
}

#[test]
fn switch_create() {
    let db = Db::new();
    let out = db.ok("switch -c topic\necho t > /t\nstatus");
    assert!(out.contains("Created branch topic at T1"), "{out}");
    assert!(out.contains("Switched to branch topic"), "{out}");
    assert!(out.contains("On branch topic"), "{out}");
    assert_eq!(db.cat("topic", "/t").as_deref(), Some("t\n"));
    assert_eq!(db.cat("main", "/t"), None);
}

// ----- reading across branches ----------------------------------------------

#[test]
fn cat_as_of_another_branch_and_diff_between_branches() {
    let db = forked();
    db.ok_on("exp", "echo one > /e"); // T3
    db.ok_on("exp", "echo two > /e"); // T4
    db.ok("echo m > /m"); // T5
    assert_eq!(db.ok("cat --as-of exp@T3 /e"), "one\n");
    assert_eq!(db.ok("cat --as-of exp@T4 /e"), "two\n");
    assert_eq!(db.ok("cat --as-of exp /e"), "two\n");
    db.fails("cat --as-of exp@T2 /e", 1);
    let out = db.ok("diff main exp");
    let summary: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(summary, ["A /e", "D /m"], "{out}");
    assert!(out.contains("+two\n"), "{out}");
}

#[test]
fn log_of_a_branch_and_of_a_path() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    db.ok("echo m > /m");
    let exp = db.log("exp");
    assert!(exp.contains("echo e > /e"), "{exp}");
    assert!(exp.contains("echo base > /base"), "{exp}");
    assert!(!exp.contains("echo m > /m"), "{exp}");
    let main = db.log("main");
    assert!(
        main.contains("echo m > /m") && !main.contains("echo e"),
        "{main}"
    );
    // Not a branch: a path, as before.
    let out = db.ok("log /m");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("echo m > /m"), "{out}");
    assert_eq!(db.ok("log /nothing"), "");
    // -n and JSON apply to a branch's log too.
    let v = db.json("log exp -n 1 --format json");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["command"], "echo e > /e");
    // --as-of is read on the named branch.
    let out = db.ok("log exp --as-of T2");
    assert!(!out.contains("echo e"), "{out}");
    assert!(out.contains("echo base"), "{out}");
}

// ----- merge ----------------------------------------------------------------

#[test]
fn merge_combines_disjoint_changes() {
    let db = forked();
    db.ok_on(
        "exp",
        "echo e > /e; mkdir /dir; echo d > /dir/d; config set k.exp 1",
    );
    db.ok("echo m > /m; rm /base");
    let out = db.ok("merge exp");
    assert!(out.contains("Merged exp into main: T"), "{out}");
    assert!(
        out.contains("(4 changes, 0 text files merged line by line)"),
        "{out}"
    );
    assert_eq!(db.cat("main", "/e").as_deref(), Some("e\n"));
    assert_eq!(db.cat("main", "/dir/d").as_deref(), Some("d\n"));
    assert_eq!(db.cat("main", "/m").as_deref(), Some("m\n"));
    assert_eq!(db.cat("main", "/base"), None);
    assert_eq!(db.ok("config get k.exp"), "1\n");
    // exp is untouched by merging it.
    assert_eq!(db.cat("exp", "/m"), None);
    assert_eq!(db.cat("exp", "/base").as_deref(), Some("base\n"));
    // The merge is one transaction recorded with its command.
    let v = db.json("log --format json -n 1");
    assert_eq!(v[0]["command"], "merge exp");
    assert_eq!(v[0]["author"], "tester");
}

#[test]
fn merge_text_file_changed_in_different_regions_line_by_line() {
    let db = Db::new();
    db.ok(&put("/t.txt", "a\nb\nc\nd\ne\nf\ng\n"));
    assert_eq!(db.ok("cat /t.txt"), "a\nb\nc\nd\ne\nf\ng\n");
    db.ok("branch exp");
    db.ok_on("exp", &put("/t.txt", "a\nB\nc\nd\ne\nf\ng\n"));
    db.ok(&put("/t.txt", "a\nb\nc\nd\ne\nF\ng\n"));
    let out = db.ok("merge exp");
    assert!(
        out.contains("(1 changes, 1 text files merged line by line)"),
        "{out}"
    );
    assert_eq!(
        db.cat("main", "/t.txt").as_deref(),
        Some("a\nB\nc\nd\ne\nF\ng\n")
    );
}

#[test]
fn merge_conflict_lists_it_and_applies_nothing() {
    let db = Db::new();
    db.ok(&put("/t.txt", "one\ntwo\nthree\n"));
    db.ok("branch exp");
    db.ok_on(
        "exp",
        &format!("{}\necho e > /e", put("/t.txt", "one\nTWO here\nthree\n")),
    );
    db.ok(&put("/t.txt", "one\nTWO there\nthree\n"));
    let log_before = db.log("main");
    let head_before = db.head();
    let err = db.fails("merge exp", 1);
    assert!(
        err.starts_with(
            "dbos: merge: merge of exp into main has 1 conflict(s); nothing was applied"
        ),
        "{err}"
    );
    assert!(
        err.contains("\n  /t.txt: both sides changed the same lines"),
        "{err}"
    );
    assert_eq!(db.log("main"), log_before);
    assert_eq!(db.head(), head_before);
    assert_eq!(db.cat("main", "/e"), None);
    assert_eq!(
        db.cat("main", "/t.txt").as_deref(),
        Some("one\nTWO there\nthree\n")
    );
    // --ours keeps main's side, takes the rest, and says what it decided.
    let out = db.ok("merge exp --ours");
    assert!(out.contains("Merged exp into main: T"), "{out}");
    assert!(
        out.contains("1 conflict(s) decided (kept main's side):"),
        "{out}"
    );
    assert!(
        out.contains("\n  /t.txt: both sides changed the same lines"),
        "{out}"
    );
    assert_eq!(
        db.cat("main", "/t.txt").as_deref(),
        Some("one\nTWO there\nthree\n")
    );
    assert_eq!(db.cat("main", "/e").as_deref(), Some("e\n"));
}

#[test]
fn merge_theirs_takes_their_side() {
    let db = Db::new();
    db.ok("echo base > /f");
    db.ok("branch exp");
    db.ok_on("exp", "echo theirs > /f");
    db.ok("echo ours > /f");
    db.fails("merge exp", 1);
    let out = db.ok("merge --theirs exp");
    assert!(
        out.contains("1 conflict(s) decided (took exp's side):"),
        "{out}"
    );
    assert!(out.contains("  /f: "), "{out}");
    assert_eq!(db.cat("main", "/f").as_deref(), Some("theirs\n"));
    // --ours and --theirs together is a usage error.
    let err = db.fails("merge --ours --theirs exp", 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn merge_file_added_in_a_directory_removed_here() {
    let db = Db::new();
    db.ok("mkdir /d; echo a > /d/a");
    db.ok("branch exp");
    db.ok_on("exp", "echo b > /d/b");
    db.ok("rm -r /d");
    let head = db.head();
    let err = db.fails("merge exp", 1);
    assert!(
        err.contains("/d/b: added there, but its directory /d is gone here"),
        "{err}"
    );
    assert_eq!(db.head(), head);
    // --ours keeps the removal.
    db.ok("merge exp --ours");
    assert_eq!(db.cat("main", "/d/b"), None);
    db.fails("ls /d", 1);
}

/// dbos-branches bug: `merge --theirs` restores a removed directory from
/// our (removed) side instead of theirs, so /d/b is committed without its
/// directory /d.
#[test]
fn merge_theirs_restores_the_directory_of_a_file_added_there() {
    let db = Db::new();
    db.ok("mkdir /d; echo a > /d/a");
    db.ok("branch exp");
    db.ok_on("exp", "echo b > /d/b");
    db.ok("rm -r /d");
    db.ok("merge exp --theirs");
    assert_eq!(db.cat("main", "/d/b").as_deref(), Some("b\n"));
    assert!(db.ok("ls /d").contains('b'));
}

#[test]
fn merge_config_key_conflict() {
    let db = Db::new();
    db.ok("config set color red");
    db.ok("branch exp");
    db.ok_on("exp", "config set color blue");
    db.ok("config set color green");
    let err = db.fails("merge exp", 1);
    assert!(err.contains("1 conflict(s)"), "{err}");
    assert!(
        err.contains("\n  config color: set to different values"),
        "{err}"
    );
    assert_eq!(db.ok("config get color"), "green\n");
    db.ok("merge exp --theirs");
    assert_eq!(db.ok("config get color"), "blue\n");
}

#[test]
fn second_merge_brings_only_what_is_new() {
    let db = forked();
    db.ok_on("exp", "echo one > /one");
    db.ok("merge exp");
    // Unchanged since: nothing to do, no transaction.
    let head = db.head();
    assert_eq!(db.ok("merge exp"), "Already up to date\n");
    assert_eq!(db.head(), head);
    // main removed /one since; a new change on exp merges without bringing
    // /one back.
    db.ok("rm /one");
    db.ok_on("exp", "echo two > /two");
    let out = db.ok("merge exp");
    assert!(out.contains("(1 changes,"), "{out}");
    assert_eq!(db.cat("main", "/two").as_deref(), Some("two\n"));
    assert_eq!(db.cat("main", "/one"), None);
    assert_eq!(db.ok("merge exp"), "Already up to date\n");
}

#[test]
fn merge_the_other_way_and_back() {
    let db = forked();
    db.ok("echo m > /m");
    db.ok_on("exp", "echo e > /e");
    // main into exp, then exp into main.
    let out = db.ok_on("exp", "merge main");
    assert!(out.contains("Merged main into exp"), "{out}");
    assert_eq!(db.cat("exp", "/m").as_deref(), Some("m\n"));
    db.ok("merge exp");
    assert_eq!(db.cat("main", "/e").as_deref(), Some("e\n"));
    assert_eq!(db.ok("diff main exp"), "");
}

#[test]
fn merge_errors_change_nothing() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    let head = db.head();
    let err = db.fails("merge nosuch", 1);
    assert!(err.contains("dbos: merge: no such branch: nosuch"), "{err}");
    let err = db.fails("merge main", 1);
    assert!(
        err.contains("cannot merge branch main into itself"),
        "{err}"
    );
    let err = db.fails("merge", 2);
    assert!(err.contains("try --help"), "{err}");
    let r = db.run("begin\nmerge exp\nrollback");
    assert!(
        r.err.contains("dbos: merge: a transaction is open on branch main: commit or rollback it before merging"),
        "{}",
        r.err
    );
    let r = db.run("asof T1\nmerge exp");
    assert_eq!(r.code, 1);
    assert!(r.err.contains("run 'asof now' before merging"), "{}", r.err);
    assert_eq!(db.head(), head);
    assert_eq!(db.cat("main", "/e"), None);
}

#[test]
fn merge_commits_what_the_line_wrote_first() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    db.ok("echo m > /m; merge exp");
    let v = db.json("log --format json -n 2");
    assert_eq!(v[0]["message"], "merge exp into main");
    assert_eq!(v[1]["command"], "echo m > /m; merge exp");
    assert_eq!(db.cat("main", "/m").as_deref(), Some("m\n"));
    assert_eq!(db.cat("main", "/e").as_deref(), Some("e\n"));
}

#[test]
fn merge_json() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    let v = db.json("merge exp --format json");
    assert_eq!(v["ours"], "main");
    assert_eq!(v["theirs"], "exp");
    assert!(v["tx"].as_u64().is_some());
    assert_eq!(v["applied"][0]["path"], "/e");
    let v = db.json("merge exp --format json");
    assert_eq!(v["tx"], Value::Null);
}

// ----- rename and delete ----------------------------------------------------

#[test]
fn rename_branches() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    assert_eq!(
        db.ok("branch -m exp feature"),
        "Renamed branch exp to feature\n"
    );
    assert_eq!(db.cat("feature", "/e").as_deref(), Some("e\n"));
    assert!(db.log("feature").contains("echo e > /e"));
    db.fails("switch exp", 1);
    // Renaming the current branch moves the session with it.
    let out = db.ok("branch -m trunk\nstatus\necho t > /t");
    assert!(out.contains("Renamed branch main to trunk"), "{out}");
    assert!(out.contains("On branch trunk"), "{out}");
    assert_eq!(db.cat("trunk", "/t").as_deref(), Some("t\n"));
    let out = db.ok_on("trunk", "branch -m trunk main\nstatus");
    assert!(out.contains("On branch main"), "{out}");
    // Errors.
    let err = db.fails("branch -m nosuch other", 1);
    assert!(err.contains("no such branch: nosuch"), "{err}");
    let err = db.fails("branch -m feature main", 1);
    assert!(err.contains("already exists"), "{err}");
    let err = db.fails("branch -m feature 'bad name'", 1);
    assert!(err.contains("invalid branch name"), "{err}");
    let err = db.fails("branch -m a b c", 2);
    assert!(err.contains("-m takes OLD NEW"), "{err}");
    let names: Vec<Value> = db.branches().iter().map(|b| b["name"].clone()).collect();
    assert_eq!(names, ["feature", "main"]);
}

#[test]
fn delete_branches() {
    let db = forked();
    db.ok_on("exp", "echo e > /e");
    // The current branch: refused.
    let err = db.fails_on("exp", "branch -d exp", 1);
    assert!(
        err.contains("cannot delete branch exp: it is the current branch"),
        "{err}"
    );
    // Unmerged work: refused with -d.
    let err = db.fails("branch -d exp", 1);
    assert!(
        err.contains("branch exp has work not merged anywhere"),
        "{err}"
    );
    assert!(err.contains("use -D"), "{err}");
    assert_eq!(db.branches().len(), 2);
    // Merged: -d works.
    db.ok("branch merged; switch merged; echo x > /x; switch main; merge merged");
    assert_eq!(
        db.ok("branch -d merged"),
        format!("Deleted branch merged (was T{})\n", db.head() - 1)
    );
    // -D deletes unmerged work; its transactions stay in the history.
    let out = db.ok("branch -D exp");
    assert!(out.starts_with("Deleted branch exp (was T"), "{out}");
    assert_eq!(db.branches().len(), 1);
    db.fails("switch exp", 1);
    let graph = db.ok("log --graph --all");
    assert!(
        graph.contains("(exp, deleted) tester echo e > /e"),
        "{graph}"
    );
    assert!(graph.contains("(merged, deleted) tester"), "{graph}");
    // Its name is free again.
    db.ok("branch exp");
    assert_eq!(db.cat("exp", "/e"), None);
    // Errors.
    let err = db.fails("branch -d nosuch", 1);
    assert!(err.contains("no such branch: nosuch"), "{err}");
    let err = db.fails("branch -d", 2);
    assert!(err.contains("need the name"), "{err}");
}

// ----- tags -----------------------------------------------------------------

#[test]
fn tag_names_a_moment() {
    let db = Db::new();
    db.ok("echo v1 > /app.conf");
    let out = db.ok("tag before-upgrade");
    assert_eq!(out, "Tagged main@T2 as before-upgrade\n");
    db.ok("echo v2 > /app.conf");
    assert_eq!(db.ok("cat --as-of before-upgrade /app.conf"), "v1\n");
    assert_eq!(db.ok("cat /app.conf"), "v2\n");
    // With a REF.
    db.ok("tag first T1");
    db.fails("cat --as-of first /app.conf", 1);
    // A branch from a tag.
    db.ok("branch fix --from before-upgrade");
    assert_eq!(db.cat("fix", "/app.conf").as_deref(), Some("v1\n"));
    // A tag on another branch.
    db.ok_on("fix", "echo fixed > /app.conf; tag fixed");
    assert_eq!(db.ok("cat --as-of fixed /app.conf"), "fixed\n");
    // The list.
    let out = db.ok("tag");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("before-upgrade  main  T2"), "{out}");
    assert!(lines[1].starts_with("first"), "{out}");
    assert!(lines[1].ends_with("main  T1"), "{out}");
    assert!(
        lines[2].starts_with("fixed") && lines[2].contains("fix"),
        "{out}"
    );
    let v = db.json("tag --format json");
    assert_eq!(v[0]["name"], "before-upgrade");
    assert_eq!(v[0]["branch"], "main");
    assert_eq!(v[0]["tx"], 2);
    // Errors.
    let err = db.fails("tag first", 1);
    assert!(err.contains("tag first already exists"), "{err}");
    let err = db.fails("tag fix", 1);
    assert!(err.contains("fix is a branch"), "{err}");
    let err = db.fails("branch first", 1);
    assert!(err.contains("first is a tag"), "{err}");
    let err = db.fails("tag 'a b'", 1);
    assert!(err.contains("invalid tag name \"a b\""), "{err}");
    let err = db.fails("tag x T99", 1);
    assert!(err.contains("no such transaction T99"), "{err}");
    let err = db.fails("tag x bad@", 2);
    assert!(err.contains("bad REF"), "{err}");
}

#[test]
fn tag_on_the_same_line_includes_what_it_wrote() {
    let db = Db::new();
    db.ok("echo x > /x; tag t");
    assert_eq!(db.ok("cat --as-of t /x"), "x\n");
}

// ----- log --graph ----------------------------------------------------------

#[test]
fn log_graph_draws_forks_and_merges() {
    let db = forked(); // T2 base, exp forked at T2
    db.ok_on("exp", "echo e > /e"); // T3
    db.ok("echo m > /m"); // T4
    db.ok("merge exp"); // T5
    let out = db.ok("log --graph");
    let expected = "\
* T5 (main) tester merge exp  (merge exp into main)
|\\
* | T4 (main) tester echo m > /m
| * T3 (exp) tester echo e > /e
|/
* T2 (main) tester echo base > /base
* T1 (main) dbos init  (new database)
";
    assert_eq!(out, expected);
    assert_eq!(db.ok("log --graph --all"), expected);
    // -n limits the transactions drawn.
    let out = db.ok("log --graph -n 2");
    assert_eq!(out, "* T5 (main) tester merge exp  (merge exp into main)\n|\\\n* | T4 (main) tester echo m > /m\n");
    // Only exp's lineage: a straight line.
    let out = db.ok("log exp --graph");
    assert_eq!(
        out,
        "* T3 (exp) tester echo e > /e\n* T2 (main) tester echo base > /base\n* T1 (main) dbos init  (new database)\n"
    );
}

#[test]
fn log_graph_all_shows_every_branch() {
    let db = forked();
    db.ok_on("exp", "echo e > /e"); // T3
    db.ok("branch other; switch other; echo o > /o"); // T4
    db.ok("echo m > /m"); // T5
    let mine = db.ok("log --graph");
    assert!(
        !mine.contains("(exp)") && !mine.contains("(other)"),
        "{mine}"
    );
    let out = db.ok("log --graph --all");
    assert!(out.contains("* T5 (main)"), "{out}");
    assert!(out.contains("(exp) tester echo e > /e"), "{out}");
    assert!(out.contains("(other) tester"), "{out}");
    assert!(out.contains("|/"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"* T1 (main) dbos init  (new database)"));
    // Every transaction once.
    for t in 1..=5 {
        let n = lines
            .iter()
            .filter(|l| l.contains(&format!("T{t} (")))
            .count();
        assert_eq!(n, 1, "T{t} in {out}");
    }
    let v = db.json("log --graph --all --format json");
    let rows = v.as_array().unwrap();
    assert!(rows.iter().any(|r| r["tx"]["branch"] == "exp"));
    assert!(rows
        .iter()
        .any(|r| r["tx"] == Value::Null && r["graph"] == "|/"));
    // --all needs --graph; --graph takes a branch, not a path.
    db.fails("log --all", 2);
    let err = db.fails("log --graph /m", 2);
    assert!(err.contains("not one"), "{err}");
}

#[test]
fn log_graph_merge_marker_with_a_text_merge() {
    let db = Db::new();
    db.ok(&put("/n", "1\n2\n3\n4\n5\n"));
    db.ok("branch exp");
    db.ok_on("exp", &put("/n", "1\nTWO\n3\n4\n5\n"));
    db.ok(&put("/n", "1\n2\n3\n4\nFIVE\n"));
    db.ok("merge exp");
    let out = db.ok("log --graph --all");
    assert!(out.contains('*'), "{out}");
    assert!(out.contains("|\\"), "{out}");
    assert!(out.contains("merge exp"), "{out}");
}

// ----- concurrency ----------------------------------------------------------

#[test]
fn two_processes_writing_on_two_branches_at_once() {
    let db = Db::new();
    db.ok("branch left");
    db.ok("branch right");
    let script = |name: &str| -> String {
        (0..50)
            .map(|i| format!("echo {name}-{i} > /{name}-{i}\n"))
            .collect()
    };
    let spawn = |branch: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dbos"))
            .env_remove("DBOS_DB")
            .env("HOME", db.dir.path())
            .args([
                "--db",
                &db.db,
                "--user",
                "tester",
                "--branch",
                branch,
                "-c",
                &script(branch),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn dbos")
    };
    let a = spawn("left");
    let b = spawn("right");
    for (name, child) in [("left", a), ("right", b)] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for branch in ["left", "right"] {
        let other = if branch == "left" { "right" } else { "left" };
        let files: Vec<String> = (0..50).map(|i| format!("/{branch}-{i}")).collect();
        let expected: String = (0..50).map(|i| format!("{branch}-{i}\n")).collect();
        assert_eq!(
            db.ok_on(branch, &format!("cat {}", files.join(" "))),
            expected
        );
        let listing = db.ok_on(branch, "ls /");
        assert!(!listing.contains(other), "{listing}");
        let log = db.json(&format!("log {branch} --format json"));
        assert_eq!(log.as_array().unwrap().len(), 51);
    }
    assert_eq!(db.cat("main", "/left-0"), None);
}
