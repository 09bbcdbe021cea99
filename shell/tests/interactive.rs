//! Pseudo-terminal tests of the interactive shell: the real `dbos` binary
//! runs on a pty (via `expectrl`) and is driven by keystrokes, the way a
//! person at a terminal would.
//!
//! Output is matched after removing ANSI escape sequences, so the tests do
//! not depend on how rustyline redraws the line. A "fresh prompt" is a
//! prompt at the start of a line that nothing has followed yet; this tells
//! it apart from rustyline redrawing the line just accepted.

use expectrl::{Needle, WaitStatus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long to wait for any one piece of output (the machine is shared).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between polls of the pty when nothing has arrived.
const POLL: Duration = Duration::from_millis(5);

const ENTER: &str = "\r";
const TAB: &str = "\t";
const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";
const CTRL_R: &str = "\x12";
const UP: &str = "\x1b[A";

/// Which terminal the shell believes it is on.
#[derive(Clone, Copy)]
enum Term {
    /// Line editing (completion, history, key bindings).
    Xterm,
    /// rustyline's fallback: plain line reading, no editing.
    Dumb,
}

/// A temporary database.
struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("s.db");
        Db { _dir: dir, path }
    }

    /// Run `dbos -c CMDS` on this database (no terminal); its stdout.
    fn run_c(&self, cmds: &str) -> String {
        let out = base_command(&self.path)
            .args(["-c", cmds])
            .output()
            .expect("run dbos -c");
        assert!(
            out.status.success(),
            "dbos -c {cmds:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn base_command(db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbos"));
    cmd.arg("--db")
        .arg(db)
        .args(["--color", "never"])
        .env("USER", "tester")
        .env_remove("NO_COLOR")
        .env_remove("DBOS_DB");
    cmd
}

/// A pattern to wait for.
enum Pat<'a> {
    Lit(&'a str),
    Re(&'a str),
}

/// The shell running on a pty, with everything it printed so far.
struct Shell {
    p: expectrl::Session,
    /// Raw bytes read from the pty.
    raw: Vec<u8>,
    /// `raw` with escape sequences removed.
    text: Vec<u8>,
    /// How far into `text` earlier expectations have consumed.
    pos: usize,
    /// The pty reported end of output.
    eof: bool,
    /// The exit status, once collected.
    status: Option<WaitStatus>,
}

impl Shell {
    fn spawn(db: &Db, term: Term) -> Shell {
        let mut cmd = base_command(&db.path);
        cmd.env(
            "TERM",
            match term {
                Term::Xterm => "xterm",
                Term::Dumb => "dumb",
            },
        );
        let p = expectrl::Session::spawn(cmd).expect("spawn dbos on a pty");
        Shell {
            p,
            raw: Vec::new(),
            text: Vec::new(),
            pos: 0,
            eof: false,
            status: None,
        }
    }

    /// Read whatever output is available without blocking; false if none.
    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let mut got = false;
        while !self.eof {
            match self.p.try_read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    got = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Linux reports EIO on the master once the child side is closed.
                Err(_) => self.eof = true,
            }
        }
        if got {
            self.text = strip_ansi(&self.raw);
        }
        got
    }

    /// Wait for `pat` in the output after what was already consumed; the
    /// text up to and including the match, which is then consumed.
    fn expect_pat(&mut self, pat: Pat<'_>) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.pump();
            let hay = &self.text[self.pos..];
            let found = match &pat {
                Pat::Lit(s) => Needle::check(*s, hay, self.eof),
                Pat::Re(r) => expectrl::Regex(*r).check(hay, self.eof),
            }
            .expect("valid pattern");
            if let Some(end) = found.iter().map(|m| m.end()).min() {
                let got = String::from_utf8_lossy(&hay[..end]).into_owned();
                self.pos += end;
                return got;
            }
            if self.eof || Instant::now() > deadline {
                let what = match pat {
                    Pat::Lit(s) | Pat::Re(s) => s,
                };
                panic!(
                    "{} waiting for {what:?}\n--- unconsumed output (escapes removed):\n{}\n--- whole raw output:\n{}",
                    if self.eof { "end of output" } else { "timed out" },
                    String::from_utf8_lossy(&self.text[self.pos..]),
                    String::from_utf8_lossy(&self.raw).escape_debug()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn expect(&mut self, s: &str) -> String {
        self.expect_pat(Pat::Lit(s))
    }

    fn expect_re(&mut self, re: &str) -> String {
        self.expect_pat(Pat::Re(re))
    }

    /// Wait for a fresh prompt: `prompt` at the start of a line (or of the
    /// output), with nothing after it yet.
    fn expect_prompt(&mut self, prompt: &str) -> String {
        let re = format!(r"(?:\A|\n)\r*{}\r*\z", regex_escape(prompt));
        self.expect_re(&re)
    }

    fn send(&mut self, keys: &str) {
        self.p.send(keys).expect("write to the pty");
    }

    /// Type a line and press Enter.
    fn line(&mut self, text: &str) {
        self.send(text);
        self.send(ENTER);
    }

    /// Wait for the shell to exit; its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.pump();
            if self.status.is_none() {
                match self.p.get_process().status() {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(st) => self.status = Some(st),
                    Err(e) => panic!("waitpid: {e}"),
                }
            }
            match self.status {
                Some(WaitStatus::Exited(_, code)) => return code,
                Some(other) => panic!(
                    "dbos did not exit normally: {other:?}\noutput:\n{}",
                    self.transcript()
                ),
                None if Instant::now() > deadline => panic!(
                    "dbos did not exit within {TIMEOUT:?}\noutput:\n{}",
                    self.transcript()
                ),
                None => std::thread::sleep(POLL),
            }
        }
    }

    /// Everything printed so far, escapes removed.
    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// Remove ANSI escape sequences (CSI, OSC, two-byte escapes) and control
/// characters other than newline, carriage return and tab. An incomplete
/// sequence at the end yields nothing, so the result for a prefix of the
/// input is always a prefix of the result for the whole.
fn strip_ansi(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == 0x1b {
            match raw.get(i + 1) {
                None => break,
                Some(b'[') => {
                    // CSI: parameters and intermediates, then a final byte.
                    let mut j = i + 2;
                    while j < raw.len() && !(0x40..=0x7e).contains(&raw[j]) {
                        j += 1;
                    }
                    i = j + 1;
                }
                Some(b']') => {
                    // OSC: up to BEL or ESC \.
                    let mut j = i + 2;
                    while j < raw.len() && raw[j] != 0x07 && raw[j] != 0x1b {
                        j += 1;
                    }
                    i = if raw.get(j) == Some(&0x1b) {
                        j + 2
                    } else {
                        j + 1
                    };
                }
                Some(_) => i += 2,
            }
            continue;
        }
        if b >= 0x20 || b == b'\n' || b == b'\r' || b == b'\t' || b >= 0x80 {
            out.push(b);
        }
        i += 1;
    }
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

const ROOT: &str = "dbos main:/> ";

/// The prompt shows branch and directory, and `(tx)` while `begin` is open.
#[test]
fn prompt_shows_branch_directory_and_transaction() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("mkdir /etc");
    sh.expect_prompt(ROOT);
    sh.line("cd /etc");
    sh.expect_prompt("dbos main:/etc> ");
    sh.line("begin");
    sh.expect_prompt("dbos main:/etc (tx)> ");
    sh.line("touch hosts");
    sh.expect_prompt("dbos main:/etc (tx)> ");
    sh.line("commit");
    sh.expect_re(r"Transaction T\d+ committed");
    sh.expect_prompt("dbos main:/etc> ");
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
    assert!(db.run_c("ls /etc").contains("hosts"));
}

/// The acceptance sequence, typed at the prompt. Runs with TERM=dumb, where
/// rustyline reads plain lines, so this also covers that fallback.
#[test]
fn acceptance_sequence_typed_interactively() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Dumb);
    sh.expect_prompt(ROOT);
    sh.line("touch newfile.txt");
    sh.expect_prompt(ROOT);
    sh.line(r#"echo "Hello DBOS" > newfile.txt"#);
    sh.expect_prompt(ROOT);
    sh.line("ls");
    let out = sh.expect_prompt(ROOT);
    assert!(out.contains("newfile.txt"), "ls printed: {out:?}");
    sh.line("cat newfile.txt");
    let out = sh.expect_prompt(ROOT);
    assert!(out.contains("Hello DBOS"), "cat printed: {out:?}");
    sh.line("begin");
    sh.expect_prompt("dbos main:/ (tx)> ");
    sh.line("rm newfile.txt");
    sh.expect_prompt("dbos main:/ (tx)> ");
    sh.line("commit");
    sh.expect_re(r"Transaction T\d+ committed");
    sh.expect_prompt(ROOT);
    sh.line("history newfile.txt");
    let out = sh.expect_prompt(ROOT);
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('T'))
        .filter_map(|l| {
            ["removed", "modified", "created"]
                .into_iter()
                .find(|c| l.split_whitespace().any(|w| w == *c))
        })
        .collect();
    assert_eq!(
        changes,
        ["removed", "modified", "created"],
        "history printed: {out:?}"
    );
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Tab completes command names, versioned paths and long options.
#[test]
fn tab_completes_commands_paths_and_options() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);

    // A command name: the completed line is what runs.
    sh.send("ec");
    sh.send(TAB);
    sh.expect("dbos main:/> echo ");
    sh.line("completed-cmd");
    sh.expect_re(r"\ncompleted-cmd\r?\n");
    sh.expect_prompt(ROOT);

    // A file in the versioned tree.
    sh.line("echo alpha-content > /alpha.txt");
    sh.expect_prompt(ROOT);
    sh.send("cat al");
    sh.send(TAB);
    sh.expect("dbos main:/> cat alpha.txt ");
    sh.send(ENTER);
    sh.expect_re(r"\nalpha-content\r?\n");
    sh.expect_prompt(ROOT);

    // A directory gets a slash, ready for the next component.
    sh.line("mkdir /etc");
    sh.expect_prompt(ROOT);
    sh.send("cd /e");
    sh.send(TAB);
    sh.expect("dbos main:/> cd /etc/");
    sh.send(ENTER);
    sh.expect_prompt("dbos main:/etc> ");
    sh.line("cd /");
    sh.expect_prompt(ROOT);

    // A long option of the command on the line.
    sh.send("ls --fo");
    sh.send(TAB);
    sh.expect("dbos main:/> ls --format ");
    sh.line("json");
    sh.expect("\"alpha.txt\"");
    sh.expect_prompt(ROOT);

    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Ctrl-C drops the line being typed (and an unfinished multi-line unit),
/// and the shell carries on.
#[test]
fn ctrl_c_cancels_the_line_and_the_shell_continues() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.send("echo partial");
    sh.expect("echo partial");
    sh.send(CTRL_C);
    let between = sh.expect_prompt(ROOT);
    assert!(
        between
            .trim()
            .trim_end_matches(ROOT.trim())
            .trim()
            .is_empty(),
        "Ctrl-C ran or printed something: {between:?}"
    );
    assert!(sh.p.is_alive().unwrap(), "dbos died on Ctrl-C");

    // An unterminated quote asks for more lines; Ctrl-C abandons them.
    sh.line("echo \"unterminated");
    sh.expect_prompt("> ");
    sh.send(CTRL_C);
    sh.expect_prompt(ROOT);

    sh.line("pwd");
    sh.expect_re(r"\n/\r?\n");
    sh.expect_prompt(ROOT);
    let all = sh.transcript();
    // Output lines (not the echoed input) of a cancelled line would start
    // with its words.
    assert!(
        !all.lines()
            .map(|l| l.trim_matches('\r'))
            .any(|l| l.starts_with("partial") || l.starts_with("unterminated")),
        "a cancelled line ran: {all:?}"
    );
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Ctrl-C stops a runaway `sql` query; the shell stays usable.
#[test]
fn ctrl_c_stops_a_running_sql_query() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("sql 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'");
    std::thread::sleep(Duration::from_millis(500));
    sh.send(CTRL_C);
    sh.expect("interrupted");
    sh.expect_prompt(ROOT);
    sh.line("sql --format tsv 'SELECT count(*) AS n FROM transactions'");
    sh.expect_re(r"n\r?\n1\r?\n");
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Ctrl-D on an empty line leaves with status 0.
#[test]
fn ctrl_d_exits_with_status_zero() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("pwd");
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Ctrl-D with `begin` open warns, and the pending write is not committed.
#[test]
fn ctrl_d_rolls_back_an_open_transaction() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("touch /kept.txt");
    sh.expect_prompt(ROOT);
    sh.line("begin");
    sh.expect_prompt("dbos main:/ (tx)> ");
    sh.line("touch /pending.txt");
    sh.expect_prompt("dbos main:/ (tx)> ");
    sh.send(CTRL_D);
    sh.expect("rolled back");
    assert_eq!(sh.wait_exit(), 0);

    let ls = db.run_c("ls /");
    assert!(ls.contains("kept.txt"), "ls / printed: {ls:?}");
    assert!(
        !ls.contains("pending.txt"),
        "rolled-back write committed: {ls:?}"
    );
}

/// Lines typed in one session are kept in the database and come back with
/// the Up arrow in the next.
#[test]
fn line_history_persists_across_sessions() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("echo remembered");
    sh.expect_re(r"\nremembered\r?\n");
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
    drop(sh);

    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.send(UP);
    sh.expect("dbos main:/> echo remembered");
    sh.send(ENTER);
    sh.expect_re(r"\nremembered\r?\n");
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Ctrl-R searches back through the line history.
#[test]
fn ctrl_r_reverse_search_finds_an_earlier_line() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    for line in ["echo first-marker", "pwd", "echo second"] {
        sh.line(line);
        sh.expect_prompt(ROOT);
    }
    sh.send(CTRL_R);
    sh.expect("(reverse-i-search)");
    sh.send("first");
    sh.expect("(reverse-i-search)`first': echo first-marker");
    sh.send(ENTER);
    sh.expect_re(r"\nfirst-marker\r?\n");
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Each line reads the newest state: a commit made by another process
/// while the shell sits at its prompt is seen by the next line, and a
/// write made after it does not conflict with it.
#[test]
fn next_line_sees_commits_of_another_process() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("echo v1 > /f.txt");
    sh.expect_prompt(ROOT);
    db.run_c("echo v2 > /f.txt; touch /other.txt");
    sh.line("cat /f.txt");
    sh.expect_re(r"\nv2\r?\n");
    sh.expect_prompt(ROOT);
    sh.line("touch /g.txt");
    let out = sh.expect_prompt(ROOT);
    assert!(!out.contains("dbos:"), "touch failed: {out:?}");
    let ls = db.run_c("ls /");
    assert!(ls.contains("g.txt") && ls.contains("other.txt"), "{ls:?}");
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}

/// Completing a path must not leave a transaction behind: the next line
/// should still read the newest state and not conflict with commits made
/// since the Tab was pressed.
#[test]
fn tab_completion_leaves_no_stale_transaction() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.line("echo v1 > /f.txt");
    sh.expect_prompt(ROOT);

    // Complete a path, then abandon the line.
    sh.send("cat /f");
    sh.send(TAB);
    sh.expect("dbos main:/> cat /f.txt ");
    sh.send(CTRL_C);
    sh.expect_prompt(ROOT);
    // Another process commits; the next line must see it.
    db.run_c("echo v2 > /f.txt");
    sh.line("cat /f.txt");
    let out = sh.expect_prompt(ROOT);
    assert!(
        out.contains("\nv2\r\n"),
        "cat read a stale snapshot: {out:?}"
    );

    // Same again, but the next line writes: it must not conflict.
    sh.send("cat /f");
    sh.send(TAB);
    sh.expect("dbos main:/> cat /f.txt ");
    sh.send(CTRL_C);
    sh.expect_prompt(ROOT);
    db.run_c("touch /other.txt");
    sh.line("touch /g.txt");
    let out = sh.expect_prompt(ROOT);
    assert!(!out.contains("conflict"), "touch conflicted: {out:?}");
    sh.send(CTRL_D);
    sh.wait_exit();
}

/// Option completion should use the command being typed, not the first
/// command on the line.
#[test]
fn option_completion_after_pipe_and_semicolon() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.send("pwd | ls --fo");
    sh.send(TAB);
    sh.expect("dbos main:/> pwd | ls --format ");
    sh.send(CTRL_C);
    sh.expect_prompt(ROOT);
    sh.send("pwd; ls --fo");
    sh.send(TAB);
    sh.expect("dbos main:/> pwd; ls --format ");
    sh.send(CTRL_C);
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    sh.wait_exit();
}

/// A completed file name with a space must still name that one file.
#[test]
fn completed_name_with_space_is_quoted() {
    let db = Db::new();
    db.run_c("echo spaced-content > '/my file.txt'");
    let mut sh = Shell::spawn(&db, Term::Xterm);
    sh.expect_prompt(ROOT);
    sh.send("cat my");
    sh.send(TAB);
    sh.expect("file.txt");
    sh.send(ENTER);
    let out = sh.expect_prompt(ROOT);
    assert!(
        out.contains("\nspaced-content\r\n") && !out.contains("dbos: cat"),
        "the completed line did not cat the file: {out:?}"
    );
    sh.send(CTRL_D);
    sh.wait_exit();
}

/// A foreground `run` is attached to the terminal; `exit` with a running
/// background process warns once, and the second `exit` stops it and
/// records its end.
#[test]
fn run_uses_the_terminal_and_exit_stops_background_processes() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Dumb);
    sh.expect_prompt(ROOT);
    sh.line("run sh -c 'test -t 0 && test -t 1 && echo on-a-tty'");
    sh.expect("on-a-tty");
    sh.expect_prompt(ROOT);
    sh.line("spawn sleep 100");
    sh.expect_prompt(ROOT);
    sh.line("exit");
    sh.expect("1 background process still running");
    sh.expect_prompt(ROOT);
    sh.line("exit");
    sh.expect("stopping 1 background process");
    assert_eq!(sh.wait_exit(), 0);
    let rows = db.run_c("ps -a --format json");
    let v: serde_json::Value = serde_json::from_str(&rows).expect("JSON");
    assert_eq!(v[1]["state"], "killed", "{rows}");
    assert_eq!(v[1]["signal"], 15, "{rows}");
}

/// Ctrl-C interrupts `wait`; the background process keeps running.
#[test]
fn ctrl_c_interrupts_wait() {
    let db = Db::new();
    let mut sh = Shell::spawn(&db, Term::Dumb);
    sh.expect_prompt(ROOT);
    sh.line("spawn sleep 100");
    sh.expect_prompt(ROOT);
    sh.line("wait 1");
    std::thread::sleep(Duration::from_millis(300));
    sh.send(CTRL_C);
    sh.expect("interrupted");
    sh.expect_prompt(ROOT);
    sh.line("ps");
    sh.expect("sleep 100");
    sh.expect_prompt(ROOT);
    sh.line("kill 1; wait 1; echo status=$?");
    sh.expect("status=143");
    sh.expect_prompt(ROOT);
    sh.send(CTRL_D);
    assert_eq!(sh.wait_exit(), 0);
}
