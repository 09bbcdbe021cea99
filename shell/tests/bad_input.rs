//! Bad input, command by command (issue 11): every built-in is given
//! missing, extra, empty, over-long and malformed arguments, and each case
//! must fail with the right exit status (2 usage or parse error, 1 failed
//! operation), one line on standard error naming the command and what was
//! wrong, no panic, and the whole history unchanged.
//!
//! The table is checked against `help`: a command without a row (and
//! without a written exclusion) fails the test, so new commands get rows.

mod common;

use common::Shell;
use std::collections::BTreeSet;

/// A program that could not start is still recorded, as a `failed` process
/// row with its error, in a transaction of its own (see `commands/procs.rs`).
const FAILED_START: &str = "a failed start is recorded as a failed process row";

/// One bad invocation and what it must give.
struct Case {
    /// The command under test (as `help` lists it).
    cmd: &'static str,
    /// Which kind of bad input.
    what: &'static str,
    /// The `-c` script.
    script: String,
    /// Expected exit status.
    code: i32,
    /// Text the error line must contain (besides `dbos: CMD:`).
    needle: String,
    /// Why this case is meant to record something (None: the history must
    /// stay unchanged).
    records: Option<&'static str>,
}

impl Case {
    /// The case records a transaction by design; `why` says what.
    fn records(mut self, why: &'static str) -> Case {
        self.records = Some(why);
        self
    }
}

/// Commands `help` lists that have no row, and why. (None at present:
/// `poweroff` and `reboot` are driven with `DBOS_INIT_CONTROL=/nonexistent`,
/// `run` and `spawn` with a missing program. `mount` is a `dbos` subcommand,
/// not a shell command, so `help` does not list it.)
const EXCLUDED: &[(&str, &str)] = &[];

const USAGE: i32 = 2;
const FAILED: i32 = 1;

fn case(cmd: &'static str, what: &'static str, script: &str, code: i32, needle: &str) -> Case {
    Case {
        cmd,
        what,
        script: script.to_string(),
        code,
        needle: needle.to_string(),
        records: None,
    }
}

/// The table. `long` is a 5,000-byte path, `huge` a 70,000-byte word.
fn table(long: &str, huge: &str) -> Vec<Case> {
    let unexpected = "unexpected argument";
    let required = "required arguments were not provided";
    let empty = "empty path";
    let missing = "no such file or directory";
    let invalid_path = "invalid path";
    let bad_ref = "bad REF";
    let no_tx = "no such transaction";
    let digit = "invalid digit";
    let mut v = vec![
        // asof
        case("asof", "extra", "asof T1 T2", USAGE, unexpected),
        case("asof", "unknown flag", "asof --bogus", USAGE, "--bogus"),
        case("asof", "no such tx", "asof T999", FAILED, no_tx),
        case("asof", "malformed ref", "asof HEAD~x", USAGE, bad_ref),
        case("asof", "empty", "asof ''", USAGE, bad_ref),
        // begin
        case("begin", "extra", "begin x", USAGE, unexpected),
        case("begin", "unknown flag", "begin --bogus", USAGE, "--bogus"),
        // branch
        case("branch", "unknown flag", "branch --bogus", USAGE, "--bogus"),
        case(
            "branch",
            "empty",
            "branch ''",
            FAILED,
            "invalid branch name",
        ),
        case(
            "branch",
            "over-long",
            &format!("branch {huge}"),
            FAILED,
            "invalid branch name",
        ),
        case(
            "branch",
            "control char",
            "branch 'x\ny'",
            FAILED,
            "not allowed",
        ),
        case("branch", "exists", "branch b1", FAILED, "b1"),
        case(
            "branch",
            "malformed from",
            "branch nb --from T-1",
            USAGE,
            bad_ref,
        ),
        case(
            "branch",
            "delete missing",
            "branch -d nosuch",
            FAILED,
            "nosuch",
        ),
        case("branch", "rename missing arg", "branch -m", USAGE, "-m"),
        case("branch", "rename extra", "branch -m a b c", USAGE, "-m"),
        case(
            "branch",
            "bad format",
            "branch --format x",
            USAGE,
            "--format",
        ),
        // cat
        case("cat", "unknown flag", "cat --bogus", USAGE, "--bogus"),
        case("cat", "empty", "cat ''", FAILED, empty),
        case("cat", "missing file", "cat /nosuch", FAILED, missing),
        case(
            "cat",
            "over-long",
            &format!("cat {long}"),
            FAILED,
            invalid_path,
        ),
        case(
            "cat",
            "malformed as-of",
            "cat --as-of nosuch@T1 /d/f",
            FAILED,
            "nosuch",
        ),
        case("cat", "a directory", "cat /d", FAILED, "/d"),
        // cd
        case("cd", "extra", "cd / /d", USAGE, unexpected),
        case("cd", "empty", "cd ''", FAILED, empty),
        case("cd", "missing dir", "cd /nosuch", FAILED, missing),
        case("cd", "a file", "cd /d/f", FAILED, "/d/f"),
        case(
            "cd",
            "over-long",
            &format!("cd {long}"),
            FAILED,
            invalid_path,
        ),
        // chmod
        case("chmod", "missing mode", "chmod", USAGE, "missing operand"),
        case(
            "chmod",
            "missing path",
            "chmod 644",
            USAGE,
            "missing operand after \'644\'",
        ),
        case("chmod", "bad mode", "chmod zz /d/f", USAGE, "invalid mode"),
        case(
            "chmod",
            "bad octal",
            "chmod 999 /d/f",
            USAGE,
            "invalid mode",
        ),
        case(
            "chmod",
            "empty mode",
            "chmod '' /d/f",
            USAGE,
            "invalid mode",
        ),
        case("chmod", "empty path", "chmod 644 ''", FAILED, empty),
        case(
            "chmod",
            "missing file",
            "chmod 644 /nosuch",
            FAILED,
            missing,
        ),
        case(
            "chmod",
            "unknown flag",
            "chmod --bogus 644 /d/f",
            USAGE,
            "--bogus",
        ),
        // commit
        case(
            "commit",
            "none open",
            "commit",
            FAILED,
            "no transaction is open",
        ),
        case("commit", "extra", "commit x", USAGE, unexpected),
        case("commit", "missing message", "commit -m", USAGE, "-m"),
        // config
        case("config", "missing subcommand", "config", USAGE, "config"),
        case(
            "config",
            "unknown subcommand",
            "config bogus",
            USAGE,
            "bogus",
        ),
        case("config", "get missing key", "config get", USAGE, required),
        case(
            "config",
            "set missing value",
            "config set app.x",
            USAGE,
            required,
        ),
        case(
            "config",
            "set extra",
            "config set app.x 1 2",
            USAGE,
            unexpected,
        ),
        case(
            "config",
            "set invalid key",
            "config set 'a b' 1",
            FAILED,
            "invalid config key",
        ),
        case(
            "config",
            "set empty key",
            "config set '' 1",
            FAILED,
            "invalid config key",
        ),
        case(
            "config",
            "set control char",
            "config set 'a\nb' 1",
            FAILED,
            "not allowed",
        ),
        case(
            "config",
            "over-long key",
            &format!("config get {huge}"),
            FAILED,
            "invalid config key",
        ),
        case(
            "config",
            "get missing",
            "config get no.such",
            FAILED,
            "no.such",
        ),
        case(
            "config",
            "unset missing",
            "config unset no.such",
            FAILED,
            "no.such",
        ),
        case(
            "config",
            "unknown flag",
            "config list --bogus",
            USAGE,
            "--bogus",
        ),
        // cp
        case("cp", "missing operands", "cp", USAGE, "missing"),
        case("cp", "missing dest", "cp /d/f", USAGE, "destination"),
        case("cp", "empty", "cp '' /x", FAILED, empty),
        case("cp", "missing source", "cp /nosuch /x", FAILED, missing),
        case("cp", "dir without -r", "cp /d /e", FAILED, "/d"),
        case(
            "cp",
            "over-long",
            &format!("cp /d/f {long}"),
            FAILED,
            invalid_path,
        ),
        case("cp", "unknown flag", "cp --bogus /d/f /x", USAGE, "--bogus"),
        // diff
        case("diff", "missing ref", "diff", USAGE, "diff"),
        case("diff", "no such tx", "diff T999", FAILED, no_tx),
        case("diff", "malformed ref", "diff HEAD~x", USAGE, "HEAD~x"),
        case("diff", "extra", "diff T1 T2 /d /e", USAGE, "/e"),
        case("diff", "unknown flag", "diff --bogus T1", USAGE, "--bogus"),
        // echo (prints its arguments: only flags can be bad)
        case(
            "echo",
            "bad redirect",
            "echo x > ''",
            USAGE,
            "empty redirection target",
        ),
        // exit
        case("exit", "not a number", "exit x", USAGE, digit),
        case("exit", "extra", "exit 1 2", USAGE, unexpected),
        case("exit", "unknown flag", "exit --bogus", USAGE, "--bogus"),
        // export
        case("export", "missing hostdir", "export /d/f", USAGE, "export"),
        case(
            "export",
            "missing source",
            "export /nosuch /tmp/x",
            FAILED,
            missing,
        ),
        case(
            "export",
            "bad hostdir",
            "export /d /nonexistent/x/y",
            FAILED,
            "/nonexistent/x/y",
        ),
        case(
            "export",
            "malformed as-of",
            "export --as-of T-1 /d /tmp/x",
            USAGE,
            bad_ref,
        ),
        case(
            "export",
            "extra",
            "export --force /d /tmp/x /tmp/y",
            USAGE,
            unexpected,
        ),
        // false
        case("false", "extra", "false x", USAGE, unexpected),
        // find
        case("find", "bad type", "find / -type q", USAGE, "-type"),
        case(
            "find",
            "bad depth",
            "find / -maxdepth x",
            USAGE,
            "-maxdepth",
        ),
        case("find", "missing glob", "find / -name", USAGE, "-name"),
        case("find", "missing path", "find /nosuch", FAILED, missing),
        case("find", "empty path", "find ''", FAILED, empty),
        case("find", "unknown test", "find / -bogus", USAGE, "-bogus"),
        // grep
        case("grep", "missing pattern", "grep", USAGE, "PATTERN"),
        case("grep", "missing file", "grep x /nosuch", USAGE, missing),
        case("grep", "empty file", "grep x ''", USAGE, empty),
        case(
            "grep",
            "unknown flag",
            "grep --bogus x /d/f",
            USAGE,
            "--bogus",
        ),
        // head
        case("head", "bad number", "head -n x /d/f", USAGE, digit),
        case("head", "missing number", "head /d/f -n", USAGE, "--lines"),
        case("head", "missing file", "head /nosuch", FAILED, missing),
        case("head", "empty", "head ''", FAILED, empty),
        case(
            "head",
            "unknown flag",
            "head --bogus /d/f",
            USAGE,
            "--bogus",
        ),
        // help
        case("help", "no such command", "help nosuch", USAGE, "nosuch"),
        case("help", "extra", "help ls cat", USAGE, unexpected),
        case("help", "empty", "help ''", USAGE, "no such command"),
        // history
        case("history", "missing path", "history", USAGE, required),
        case("history", "empty", "history ''", FAILED, empty),
        case("history", "extra", "history /d/f /d/g", USAGE, unexpected),
        case(
            "history",
            "over-long",
            &format!("history {long}"),
            FAILED,
            invalid_path,
        ),
        case(
            "history",
            "malformed as-of",
            "history --as-of HEAD~x /d/f",
            USAGE,
            bad_ref,
        ),
        // import
        case("import", "missing hostdir", "import", USAGE, required),
        case("import", "empty hostdir", "import '' /x", USAGE, "HOSTDIR"),
        case(
            "import",
            "missing hostdir dir",
            "import /nonexistent/dir /x",
            FAILED,
            "/nonexistent/dir",
        ),
        case("import", "extra", "import /tmp /x /y", USAGE, unexpected),
        case(
            "import",
            "unknown flag",
            "import --bogus /tmp /x",
            USAGE,
            "--bogus",
        ),
        // kill
        case("kill", "missing id", "kill", USAGE, required),
        case(
            "kill",
            "bad signal",
            "kill -s BOGUS 1",
            USAGE,
            "unknown signal",
        ),
        case(
            "kill",
            "no such process",
            "kill 999",
            FAILED,
            "no such process",
        ),
        case("kill", "not a number", "kill x", USAGE, "x"),
        case("kill", "empty", "kill ''", USAGE, "kill"),
        // ln
        case("ln", "missing operands", "ln -s", USAGE, "missing"),
        case("ln", "hard link", "ln /d/f /h", USAGE, "hard links"),
        case("ln", "exists", "ln -s /d/f /d/g", FAILED, "/d/g"),
        case("ln", "empty link name", "ln -s /d/f ''", FAILED, empty),
        case("ln", "extra", "ln -s a b c", USAGE, unexpected),
        case(
            "ln",
            "over-long name",
            &format!("ln -s /d/f {long}"),
            FAILED,
            invalid_path,
        ),
        // log
        case("log", "bad number", "log -n x", USAGE, digit),
        case("log", "malformed as-of", "log --as-of T-1", USAGE, bad_ref),
        case("log", "extra", "log main b1", USAGE, unexpected),
        case("log", "unknown flag", "log --bogus", USAGE, "--bogus"),
        // logs
        case("logs", "bad number", "logs -n x", USAGE, digit),
        case(
            "logs",
            "malformed since",
            "logs --since HEAD~x",
            USAGE,
            bad_ref,
        ),
        case("logs", "bad format", "logs --format x", USAGE, "--format"),
        case("logs", "extra", "logs x", USAGE, unexpected),
        // ls
        case("ls", "unknown flag", "ls --bogus", USAGE, "--bogus"),
        case("ls", "empty", "ls ''", FAILED, empty),
        case("ls", "missing", "ls /nosuch", FAILED, missing),
        case(
            "ls",
            "over-long",
            &format!("ls {long}"),
            FAILED,
            invalid_path,
        ),
        case(
            "ls",
            "malformed as-of",
            "ls --as-of nosuch@T1 /",
            FAILED,
            "nosuch",
        ),
        // merge
        case("merge", "missing branch", "merge", USAGE, required),
        case("merge", "no such branch", "merge nosuch", FAILED, "nosuch"),
        case("merge", "extra", "merge b1 b2", USAGE, unexpected),
        case("merge", "empty", "merge ''", FAILED, "merge"),
        case(
            "merge",
            "unknown flag",
            "merge --bogus b1",
            USAGE,
            "--bogus",
        ),
        // metrics
        case("metrics", "bad number", "metrics -n x", USAGE, digit),
        case(
            "metrics",
            "malformed since",
            "metrics --since T-1",
            USAGE,
            bad_ref,
        ),
        case("metrics", "extra", "metrics x", USAGE, unexpected),
        // mkdir
        case("mkdir", "missing path", "mkdir", USAGE, required),
        case("mkdir", "empty", "mkdir ''", FAILED, empty),
        case("mkdir", "exists", "mkdir /d", FAILED, "/d"),
        case(
            "mkdir",
            "missing parent",
            "mkdir /nosuch/x",
            FAILED,
            "/nosuch",
        ),
        case("mkdir", "bad mode", "mkdir -m zz /e", USAGE, "zz"),
        case(
            "mkdir",
            "over-long",
            &format!("mkdir {long}"),
            FAILED,
            invalid_path,
        ),
        // mv
        case("mv", "missing operands", "mv", USAGE, "missing"),
        case("mv", "missing dest", "mv /d/f", USAGE, "destination"),
        case("mv", "missing source", "mv /nosuch /x", FAILED, missing),
        case("mv", "empty", "mv /d/f ''", FAILED, empty),
        case(
            "mv",
            "over-long",
            &format!("mv /d/f {long}"),
            FAILED,
            invalid_path,
        ),
        case("mv", "unknown flag", "mv --bogus /d/f /x", USAGE, "--bogus"),
        // poweroff / reboot (no control socket)
        case("poweroff", "no init", "poweroff", FAILED, "no dbos-init"),
        case("poweroff", "extra", "poweroff now", USAGE, unexpected),
        case("reboot", "no init", "reboot", FAILED, "no dbos-init"),
        case("reboot", "extra", "reboot now", USAGE, unexpected),
        // ps
        case("ps", "malformed as-of", "ps --as-of T-1", USAGE, bad_ref),
        case("ps", "extra", "ps x", USAGE, unexpected),
        case("ps", "bad format", "ps --format x", USAGE, "--format"),
        // pwd
        case("pwd", "extra", "pwd x", USAGE, unexpected),
        // reset
        case("reset", "missing ref", "reset", USAGE, required),
        case("reset", "no such tx", "reset T999", FAILED, no_tx),
        case("reset", "malformed ref", "reset HEAD~x", USAGE, bad_ref),
        case(
            "reset",
            "foreign branch ref",
            "reset nosuch@T1",
            FAILED,
            "nosuch",
        ),
        case("reset", "empty ref", "reset ''", USAGE, bad_ref),
        case("reset", "empty path", "reset T1 ''", FAILED, empty),
        // revert
        case("revert", "missing ref", "revert", USAGE, required),
        case("revert", "no such tx", "revert T999", FAILED, no_tx),
        case("revert", "malformed ref", "revert T-1", USAGE, bad_ref),
        case("revert", "extra", "revert T2 T3", USAGE, unexpected),
        // rm
        case("rm", "missing", "rm /nosuch", FAILED, missing),
        case("rm", "empty", "rm ''", FAILED, empty),
        case("rm", "directory", "rm /d", FAILED, "/d"),
        case(
            "rm",
            "over-long",
            &format!("rm {long}"),
            FAILED,
            invalid_path,
        ),
        case("rm", "unknown flag", "rm --bogus /d/f", USAGE, "--bogus"),
        // rmdir
        case("rmdir", "not empty", "rmdir /d", FAILED, "not empty"),
        case("rmdir", "missing", "rmdir /nosuch", FAILED, missing),
        case("rmdir", "empty", "rmdir ''", FAILED, empty),
        case(
            "rmdir",
            "unknown flag",
            "rmdir --bogus /d",
            USAGE,
            "--bogus",
        ),
        // rollback
        case(
            "rollback",
            "none open",
            "rollback",
            FAILED,
            "no transaction is open",
        ),
        case("rollback", "extra", "rollback x", USAGE, unexpected),
        // run / spawn (a missing program: 127, as POSIX shells give)
        case("run", "missing program", "run", USAGE, required),
        case(
            "run",
            "no such program",
            "run /nonexistent/prog",
            127,
            "command not found",
        )
        .records(FAILED_START),
        // The empty name makes this read `run: : command not found`.
        case("run", "empty program", "run ''", 127, "command not found").records(FAILED_START),
        case("spawn", "missing program", "spawn", USAGE, required),
        case(
            "spawn",
            "no such program",
            "spawn /nonexistent/prog",
            127,
            "command not found",
        )
        .records(FAILED_START),
        // show
        case("show", "missing ref", "show", USAGE, required),
        case("show", "malformed ref", "show T-1", USAGE, bad_ref),
        case("show", "bad HEAD~", "show HEAD~x", USAGE, "HEAD~x"),
        case("show", "no such branch", "show nosuch@T1", FAILED, "nosuch"),
        case("show", "over-long", &format!("show {huge}"), USAGE, bad_ref),
        case("show", "extra", "show T1 T2", USAGE, unexpected),
        // sort
        case("sort", "missing", "sort /nosuch", FAILED, missing),
        case("sort", "empty", "sort ''", FAILED, empty),
        case("sort", "unknown flag", "sort --bogus", USAGE, "--bogus"),
        // sql
        case("sql", "missing query", "sql", USAGE, required),
        case("sql", "syntax", "sql 'SELEC'", FAILED, "syntax error"),
        case(
            "sql",
            "write",
            "sql 'DELETE FROM transactions'",
            FAILED,
            "read-only",
        ),
        case(
            "sql",
            "bad format",
            "sql --format x 'SELECT 1'",
            USAGE,
            "--format",
        ),
        case(
            "sql",
            "malformed as-of",
            "sql --as-of T-1 'SELECT 1'",
            USAGE,
            bad_ref,
        ),
        // stat
        case("stat", "missing", "stat /nosuch", FAILED, missing),
        case("stat", "empty", "stat ''", FAILED, empty),
        case(
            "stat",
            "over-long",
            &format!("stat {long}"),
            FAILED,
            invalid_path,
        ),
        case("stat", "unknown flag", "stat --bogus /d", USAGE, "--bogus"),
        // status
        case("status", "extra", "status x", USAGE, unexpected),
        case(
            "status",
            "bad format",
            "status --format x",
            USAGE,
            "--format",
        ),
        // switch
        case("switch", "missing branch", "switch", USAGE, required),
        case(
            "switch",
            "no such branch",
            "switch nosuch",
            FAILED,
            "nosuch",
        ),
        case("switch", "empty", "switch ''", FAILED, "no such branch"),
        case("switch", "create exists", "switch -c b1", FAILED, "b1"),
        case(
            "switch",
            "create control char",
            "switch -c 'x\ny'",
            FAILED,
            "not allowed",
        ),
        case("switch", "extra", "switch b1 b2", USAGE, unexpected),
        // tag
        case("tag", "exists", "tag v1", FAILED, "v1"),
        case("tag", "empty", "tag ''", FAILED, "invalid tag name"),
        case("tag", "control char", "tag 'x\ny'", FAILED, "not allowed"),
        case(
            "tag",
            "over-long",
            &format!("tag {huge}"),
            FAILED,
            "invalid tag name",
        ),
        case("tag", "malformed ref", "tag v2 T-1", USAGE, bad_ref),
        case("tag", "extra", "tag v2 T1 T2", USAGE, unexpected),
        // tail
        case("tail", "bad number", "tail -n x /d/f", USAGE, "x"),
        case("tail", "missing", "tail /nosuch", FAILED, missing),
        case("tail", "empty", "tail ''", FAILED, empty),
        case("tail", "unknown flag", "tail --bogus", USAGE, "--bogus"),
        // touch
        case("touch", "missing path", "touch", USAGE, required),
        case("touch", "empty", "touch ''", FAILED, empty),
        case(
            "touch",
            "missing parent",
            "touch /nosuch/x",
            FAILED,
            "/nosuch",
        ),
        case(
            "touch",
            "over-long",
            &format!("touch {long}"),
            FAILED,
            invalid_path,
        ),
        case(
            "touch",
            "unknown flag",
            "touch --bogus /x",
            USAGE,
            "--bogus",
        ),
        // tree
        case("tree", "bad level", "tree -L x", USAGE, digit),
        case("tree", "missing", "tree /nosuch", FAILED, missing),
        case("tree", "empty", "tree ''", FAILED, empty),
        case("tree", "extra", "tree / /d", USAGE, unexpected),
        // true
        case("true", "extra", "true x", USAGE, unexpected),
        // unset
        case("unset", "missing name", "unset", USAGE, required),
        case(
            "unset",
            "empty",
            "unset ''",
            USAGE,
            "not a valid variable name",
        ),
        case(
            "unset",
            "malformed",
            "unset 'a b'",
            USAGE,
            "not a valid variable name",
        ),
        // doctor
        case("doctor", "extra", "doctor x", USAGE, unexpected),
        case("doctor", "unknown flag", "doctor --bogus", USAGE, "--bogus"),
        // verify
        case("verify", "no such tx", "verify --from T999", FAILED, no_tx),
        case(
            "verify",
            "malformed from",
            "verify --from HEAD~x",
            USAGE,
            bad_ref,
        ),
        case("verify", "extra", "verify x", USAGE, unexpected),
        // wait
        case(
            "wait",
            "no such process",
            "wait 999",
            FAILED,
            "no such process",
        ),
        case("wait", "not a number", "wait x", USAGE, "x"),
        // wc
        case("wc", "missing", "wc /nosuch", FAILED, missing),
        case("wc", "empty", "wc ''", FAILED, empty),
        case("wc", "unknown flag", "wc --bogus", USAGE, "--bogus"),
    ];
    // echo prints whatever it is given, flags included; its row above
    // exercises a bad redirection target instead.
    v.sort_by_key(|c| c.cmd);
    v
}

/// The whole recorded history, as text: transactions (with their hashes),
/// every file and config version, process rows, branches and tags.
fn fingerprint(sh: &Shell) -> String {
    let queries = [
        "SELECT id, hash, branch FROM transactions ORDER BY id",
        "SELECT * FROM file_history ORDER BY path, valid_from_tx",
        "SELECT * FROM config_history ORDER BY key, valid_from_tx",
        "SELECT * FROM process_history ORDER BY id, valid_from_tx",
        "SELECT * FROM branches ORDER BY id",
        "SELECT * FROM logs ORDER BY id",
    ];
    let mut script: Vec<String> = queries
        .iter()
        .map(|q| format!("sql --format tsv \"{q}\""))
        .collect();
    script.push("tag".into());
    sh.ok(&script.join("; "))
}

/// The commands `help` lists.
fn listed_commands(sh: &Shell) -> BTreeSet<String> {
    sh.ok("help")
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_rejects_bad_input_cleanly() {
    let sh = Shell::new();
    sh.ok("mkdir -p /d/sub; echo hello > /d/f; echo two > /d/g; ln -s /d/f /l");
    sh.ok("config set app.name demo; config set app.port 80");
    sh.ok("branch b1; tag v1");
    sh.ok("echo again > /d/f; config unset app.port");

    let long = format!("/{}", "a".repeat(5_000));
    let huge = "v".repeat(70_000);
    let cases = table(&long, &huge);

    // Every listed command has a row or a written exclusion; no row is stale.
    let listed = listed_commands(&sh);
    assert!(
        listed.len() > 40,
        "help listed too few commands: {listed:?}"
    );
    let covered: BTreeSet<String> = cases
        .iter()
        .map(|c| c.cmd.to_string())
        .chain(EXCLUDED.iter().map(|(c, _)| c.to_string()))
        .collect();
    let untested: Vec<_> = listed.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&listed).collect();
    assert!(
        untested.is_empty(),
        "commands without a bad-input row (add some to tests/bad_input.rs): {untested:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for commands help does not list: {stale:?}"
    );

    let mut before = fingerprint(&sh);
    let mut failures = Vec::new();
    for c in &cases {
        let r = run(&sh, &c.script);
        let shown: String = c.script.chars().take(60).collect();
        let err_shown: String = r.err.chars().take(300).collect();
        let mut wrong = Vec::new();
        if r.code != c.code {
            wrong.push(format!("exit {} instead of {}", r.code, c.code));
        }
        let lines: Vec<&str> = r.err.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != 1 {
            wrong.push(format!("{} lines on stderr instead of 1", lines.len()));
        }
        if r.err.contains("panicked") {
            wrong.push("panicked".into());
        }
        let first = lines.first().copied().unwrap_or("");
        let prefix = format!("dbos: {}:", c.cmd);
        if !first.starts_with(&prefix) {
            wrong.push(format!("error does not start with {prefix:?}"));
        }
        if !first.contains(&c.needle) {
            wrong.push(format!("error does not mention {:?}", c.needle));
        }
        let after = fingerprint(&sh);
        match (c.records, after == before) {
            (None, false) => wrong.push("the history changed".into()),
            (Some(why), true) => wrong.push(format!("nothing was recorded, though {why}")),
            _ => {}
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} / {}: `{shown}`: {}\n    stderr: {err_shown:?}",
                c.cmd,
                c.what,
                wrong.join("; ")
            ));
        }
        // Later cases compare with the state this one left.
        before = after;
    }
    eprintln!("bad-input cases: {}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Run a script with no dbos-init to talk to, so `poweroff` and `reboot`
/// fail cleanly instead of reaching a real one.
fn run(sh: &Shell, script: &str) -> common::Run {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_dbos"))
        .env_remove("DBOS_DB")
        .env("HOME", sh.dir.path())
        .env("NO_COLOR", "1")
        .env("DBOS_INIT_CONTROL", "/nonexistent")
        .args(["--db", &sh.db, "--user", "tester", "-c", script])
        .output()
        .expect("run dbos");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
