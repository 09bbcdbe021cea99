//! Host programs: run, spawn, ps, kill, wait.
//!
//! Every program started is a process row committed at once in its own
//! transaction (`running`, then `exited`/`killed`, or `failed`), even inside
//! `begin ... rollback`: it records what happened outside, which a
//! rollback cannot undo. Redirections still read and write the versioned
//! tree through the session's transaction, like any command.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure, Session};
use crate::spec;
use clap::Parser;
use dbos_engine::{ProcessRecord, ProcessState, Space};
use dbos_procs::launch::{Input, Launch, Output};
use dbos_procs::record::{self, now_us, shell_status};
use dbos_procs::{liveness, signal, Target};
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Run, run),
        spec!(Spawn, spawn),
        spec!(Ps, ps),
        spec!(Kill, kill),
        spec!(Wait, wait),
    ]
}

/// Run a host program in the foreground.
#[derive(Parser)]
#[command(
    name = "run",
    about = "Run a host program in the foreground, recorded as a process",
    long_about = "Run a host program in the foreground, recorded as a process row \
                  (running, then exited or killed). It writes to the terminal, or into a \
                  pipe or a versioned file when redirected; it reads the terminal, or a \
                  pipe, a versioned file (<) or a here-document. Exit status: the \
                  program's, 128+N when killed by signal N, 127 when not found, 126 when \
                  it cannot be started.",
    disable_version_flag = true,
    trailing_var_arg = true
)]
struct Run {
    /// The program (looked up in PATH) and its arguments.
    #[arg(required = true, allow_hyphen_values = true, num_args = 1..)]
    argv: Vec<String>,
}

/// Start a host program in the background.
#[derive(Parser)]
#[command(
    name = "spawn",
    about = "Start a host program in the background; prints its dbos id",
    long_about = "Start a host program in the background and print its dbos process id. \
                  Its output lines become log rows (source: the program's name; stdout \
                  info, stderr warning), its end a new version of its process row. It \
                  reads nothing unless given input with <, a pipe or a here-document.",
    disable_version_flag = true,
    trailing_var_arg = true
)]
struct Spawn {
    /// The program (looked up in PATH) and its arguments.
    #[arg(required = true, allow_hyphen_values = true, num_args = 1..)]
    argv: Vec<String>,
}

/// List processes.
#[derive(Parser)]
#[command(
    name = "ps",
    about = "List running processes (-a: all), now or as of a moment",
    disable_version_flag = true
)]
struct Ps {
    /// Every process row, ended ones too.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// What the process rows said at this moment (T42, a time, a tag...).
    #[arg(long, value_name = "REF")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Signal processes.
#[derive(Parser)]
#[command(
    name = "kill",
    about = "Send a signal (default TERM) to processes by dbos id",
    long_about = "Send a signal to processes by dbos id: kill ID, kill -9 ID, kill -KILL ID, \
                  kill -s SIGHUP ID. A process leading its own process group (every \
                  spawned one) is signalled with its whole group.",
    disable_version_flag = true
)]
struct Kill {
    /// Signal name (TERM, SIGTERM) or number.
    #[arg(
        short = 's',
        long = "signal",
        value_name = "SIGNAL",
        default_value = "TERM"
    )]
    signal: String,
    /// dbos process ids.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<u64>,
}

/// Wait for processes.
#[derive(Parser)]
#[command(
    name = "wait",
    about = "Wait for background processes to end (Ctrl-C interrupts)",
    long_about = "Wait for processes to end: the given ids, or every background process \
                  this shell started. The exit status is that of the last one: its exit \
                  status, or 128+N when killed by signal N.",
    disable_version_flag = true
)]
struct Wait {
    /// dbos process ids (default: every one this shell started).
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
}

/// Where this session's process rows go.
fn target(sess: &Session) -> Target {
    Target {
        branch: sess.branch.clone(),
        actor: sess.actor.clone(),
    }
}

/// Exported shell variables, for a program's environment.
fn exported_env(sess: &Session) -> Vec<(String, String)> {
    sess.exported
        .iter()
        .filter_map(|k| sess.vars.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// A program that could not start: `dbos: CMD: PROGRAM: reason`, and the
/// exit status for it (127 not found, 126 cannot start).
fn start_failed(ctx: &mut Ctx<'_>, cmd: &str, e: dbos_procs::Error) -> CmdResult {
    match e {
        dbos_procs::Error::Engine(e) => Err(e.into()),
        e => {
            ctx.warn(&format!("dbos: {cmd}: {e}"));
            Ok(e.exit_status())
        }
    }
}

fn run(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Run>(ctx, argv)? else {
        return Ok(0);
    };
    let stdin = match ctx.stdin.take() {
        Some(bytes) => Input::Bytes(bytes),
        None if std::io::stdin().is_terminal() => Input::Inherit,
        None => Input::Null,
    };
    let direct = |d: bool| if d { Output::Inherit } else { Output::Piped };
    let launch = Launch {
        command: format!("run {}", command_line(&a.argv)),
        argv: a.argv,
        env: exported_env(ctx.sess),
        stdin,
        stdout: direct(ctx.out_direct),
        stderr: direct(ctx.err_direct),
        own_group: false,
        cwd: None,
        user: None,
    };
    let target = target(ctx.sess);
    // What the shell printed so far comes before what the program prints.
    let _ = std::io::stdout().flush();
    let mut started = match dbos_procs::start(&mut ctx.sess.engine, &target, launch) {
        Ok(s) => s,
        Err(e) => return start_failed(ctx, "run", e),
    };
    // Pipes are drained by threads while this one waits, so that Ctrl-C
    // (SIGINT caught by the shell) is passed on to the program even when it
    // is not on the terminal's process group: it then ends, and its row
    // says so.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut pipe| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let r = pipe.read_to_end(&mut v);
                (v, r.err())
            })
        })
    };
    let out_reader = drain(
        started
            .child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_reader = drain(
        started
            .child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let waited = wait_interruptibly(&mut started.child);
    if let Some((bytes, e)) = out_reader.and_then(|t| t.join().ok()) {
        ctx.out.extend_from_slice(&bytes);
        if let Some(e) = e {
            ctx.warn(&format!("dbos: run: reading its output: {e}"));
        }
    }
    if let Some((bytes, _)) = err_reader.and_then(|t| t.join().ok()) {
        ctx.err.extend_from_slice(&bytes);
    }
    let end = match waited {
        Ok(status) => record::ended(&started.record, status, now_us()),
        Err(e) => record::lost(
            &started.record,
            format!("cannot wait for it: {e}"),
            now_us(),
        ),
    };
    let command = record::end_command(&end);
    record::commit_version(&mut ctx.sess.engine, &target, &command, &end)
        .map_err(|e| Failure::Failed(format!("end of process {} not recorded: {e}", end.id)))?;
    Ok(shell_status(&end))
}

/// How long a foreground program gets after the SIGINT passed on to it
/// before SIGKILL.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// Wait for a foreground program. On Ctrl-C, pass SIGINT on to it (a
/// program on the terminal got one already; one whose input or output is
/// redirected may not have), then SIGKILL if it is still there
/// `INTERRUPT_GRACE` later.
fn wait_interruptibly(
    child: &mut std::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    let mut signalled: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        match signalled {
            None if crate::interrupt::requested() => {
                let _ = signal::send(child.id(), libc::SIGINT);
                signalled = Some(Instant::now());
            }
            Some(t) if t.elapsed() >= INTERRUPT_GRACE => {
                let _ = child.kill();
                signalled = Some(Instant::now() + Duration::from_secs(3600));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The short name of a program: the last part of its path.
fn program_name(argv0: &str) -> String {
    argv0
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(argv0)
        .to_string()
}

fn spawn(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Spawn>(ctx, argv)? else {
        return Ok(0);
    };
    let source = program_name(&a.argv[0]);
    let launch = Launch {
        command: format!("spawn {}", command_line(&a.argv)),
        argv: a.argv,
        env: exported_env(ctx.sess),
        stdin: match ctx.stdin.take() {
            Some(bytes) => Input::Bytes(bytes),
            None => Input::Null,
        },
        stdout: Output::Piped,
        stderr: Output::Piped,
        own_group: true,
        cwd: None,
        user: None,
    };
    let target = target(ctx.sess);
    let sess = &mut *ctx.sess;
    match sess.jobs.spawn(&mut sess.engine, &target, launch, &source) {
        Ok(job) => {
            ctx.println(&job.id().to_string());
            Ok(0)
        }
        Err(e) => start_failed(ctx, "spawn", e),
    }
}

/// The process rows at the branch's newest state (not the working
/// transaction's snapshot: rows are committed by other connections), or at
/// `as_of` / the session's `asof` moment.
fn process_rows(sess: &mut Session, as_of: Option<&str>) -> Result<Vec<ProcessRecord>, Failure> {
    if as_of.is_some() || sess.asof.is_some() {
        return sess.read(as_of, |tx| Ok(tx.process_list()?));
    }
    let (branch, actor) = (sess.branch.clone(), sess.actor.clone());
    let mut tx = sess.engine.begin(&branch, &actor)?;
    Ok(tx.process_list()?)
}

/// One process row as it is now on the session's branch.
fn process_row(sess: &mut Session, id: u64) -> Result<ProcessRecord, Failure> {
    let (branch, actor) = (sess.branch.clone(), sess.actor.clone());
    let mut tx = sess.engine.begin(&branch, &actor)?;
    tx.process_get(id)?
        .ok_or_else(|| Failure::Failed(format!("{id}: no such process")))
}

fn state_name(s: ProcessState) -> &'static str {
    match s {
        ProcessState::Running => "running",
        ProcessState::Exited => "exited",
        ProcessState::Killed => "killed",
        ProcessState::Failed => "failed",
        ProcessState::Lost => "lost",
    }
}

/// How a process ended, in a word: its status, its signal, or why.
fn outcome(r: &ProcessRecord) -> String {
    match r.state {
        ProcessState::Running => "-".to_string(),
        ProcessState::Exited => r.exit_status.map(|s| s.to_string()).unwrap_or_default(),
        ProcessState::Killed => r.signal.map(signal::signal_name).unwrap_or_default(),
        ProcessState::Failed | ProcessState::Lost => r.error.clone().unwrap_or_default(),
    }
}

/// argv as one line, arguments with blanks or quotes single-quoted.
fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.chars().any(|c| c.is_whitespace() || "'\"\\$".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ps(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Ps>(ctx, argv)? else {
        return Ok(0);
    };
    let rows: Vec<ProcessRecord> = process_rows(ctx.sess, a.as_of.as_deref())?
        .into_iter()
        .filter(|r| a.all || r.state == ProcessState::Running)
        .collect();
    if a.format == Format::Json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "argv": r.argv,
                    "cwd": r.cwd,
                    "state": state_name(r.state),
                    "pid": r.pid,
                    "user": r.user,
                    "exit_status": r.exit_status,
                    "signal": r.signal,
                    "signal_name": r.signal.map(signal::signal_name),
                    "started": output::time_rfc3339(r.start_us),
                    "ended": r.end_us.map(output::time_rfc3339),
                    "error": r.error,
                })
            })
            .collect();
        ctx.print(&output::json(&serde_json::Value::Array(v)));
        return Ok(0);
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(vec![
        "ID", "PID", "USER", "STATE", "STATUS", "STARTED", "ENDED", "COMMAND",
    ]);
    for r in &rows {
        t.add_row(vec![
            r.id.to_string(),
            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.user.clone(),
            state_name(r.state).to_string(),
            outcome(r),
            output::time(r.start_us),
            r.end_us.map(output::time).unwrap_or_else(|| "-".into()),
            command_line(&r.argv),
        ]);
    }
    let text = t.to_string();
    // The preset pads every cell with a blank on each side.
    for line in text.lines() {
        ctx.println(line.strip_prefix(' ').unwrap_or(line).trim_end());
    }
    Ok(0)
}

/// `kill -9 ID`, `kill -TERM ID`: the signal as `-s SIGNAL`, for clap.
fn normalize_kill_args(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len() + 1);
    let mut rest = argv.iter();
    if let Some(name) = rest.next() {
        out.push(name.clone());
    }
    let mut first = true;
    for a in rest {
        let sig = a
            .strip_prefix('-')
            .filter(|s| first && !s.is_empty() && !s.starts_with('-') && *s != "s" && *s != "h");
        match sig {
            Some(s) => {
                out.push("-s".to_string());
                out.push(s.to_string());
            }
            None => out.push(a.clone()),
        }
        first = false;
    }
    out
}

/// Whether `rec`'s pid, on this host, is still that process: a program
/// this shell watches, or one whose row this host wrote and whose pid
/// still has the recorded start time.
fn runs_here(sess: &mut Session, rec: &ProcessRecord) -> Result<bool, Failure> {
    if sess.jobs.get(rec.id).is_some_and(|j| j.is_running()) {
        return Ok(true);
    }
    let Some(pid) = rec.pid else {
        return Ok(false);
    };
    if liveness::is_same_process(pid, rec.start_us) != Some(true) {
        return Ok(false);
    }
    let branch = sess.branch.clone();
    let host = sess.engine.host().to_string();
    let history = sess
        .engine
        .history(&branch, None, Space::Process, &rec.id.to_string())?;
    Ok(history.first().is_some_and(|(info, _)| info.host == host))
}

fn kill(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let argv = normalize_kill_args(argv);
    let Some(a) = parse::<Kill>(ctx, &argv)? else {
        return Ok(0);
    };
    let sig = signal::parse_signal(&a.signal).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut status = 0;
    for id in a.ids {
        let res = (|| {
            let rec = process_row(ctx.sess, id)?;
            if rec.state != ProcessState::Running {
                return Err(Failure::Failed(format!(
                    "{id}: not running ({})",
                    state_name(rec.state)
                )));
            }
            if !runs_here(ctx.sess, &rec)? {
                return Err(Failure::Failed(format!(
                    "{id}: not a process of this host that is still running"
                )));
            }
            let pid = rec.pid.unwrap_or(0);
            signal::send(pid, sig).map_err(|e| Failure::Failed(format!("{id}: {e}")))
        })();
        if let Err(f) = res {
            ctx.warn(&format!("dbos: kill: {}", f.message()));
            status = 1;
        }
    }
    Ok(status)
}

/// How often `wait` looks at a row another shell watches.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// How long a row may say `running` after its process is gone before
/// `wait` gives up on its end being recorded.
const UNRECORDED_GRACE: Duration = Duration::from_secs(3);

fn wait(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Wait>(ctx, argv)? else {
        return Ok(0);
    };
    let ids: Vec<u64> = if a.ids.is_empty() {
        ctx.sess.jobs.all().map(|j| j.id()).collect()
    } else {
        a.ids
    };
    let mut status = 0;
    for id in ids {
        status = wait_one(ctx.sess, id)?;
        if status == INTERRUPTED {
            break;
        }
    }
    for e in ctx.sess.jobs.take_errors() {
        ctx.warn(&format!("dbos: warning: {e}"));
    }
    Ok(status)
}

const INTERRUPTED: i32 = 130;

/// Wait for one process; its shell exit status (130 when interrupted).
fn wait_one(sess: &mut Session, id: u64) -> CmdResult {
    if let Some(job) = sess.jobs.get(id).cloned() {
        loop {
            if crate::interrupt::requested() {
                return Ok(INTERRUPTED);
            }
            match job.wait_timeout(WAIT_POLL) {
                Some(Ok(rec)) => return Ok(shell_status(&rec)),
                Some(Err(e)) => return Err(Failure::Failed(e)),
                None => {}
            }
        }
    }
    // A process another shell (or a crashed one) started: follow its row.
    let mut gone_since: Option<Instant> = None;
    loop {
        let rec = process_row(sess, id)?;
        if rec.state != ProcessState::Running {
            return Ok(shell_status(&rec));
        }
        if crate::interrupt::requested() {
            return Ok(INTERRUPTED);
        }
        let gone = rec
            .pid
            .is_some_and(|p| liveness::is_same_process(p, rec.start_us) == Some(false));
        match (gone, gone_since) {
            (false, _) => gone_since = None,
            (true, None) => gone_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() > UNRECORDED_GRACE => {
                return Err(Failure::Failed(format!(
                    "{id}: ended, but its end was never recorded (its shell is gone)"
                )));
            }
            (true, Some(_)) => {}
        }
        std::thread::sleep(WAIT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kill_signal_forms() {
        assert_eq!(
            normalize_kill_args(&v(&["kill", "-9", "3"])),
            v(&["kill", "-s", "9", "3"])
        );
        assert_eq!(
            normalize_kill_args(&v(&["kill", "-TERM", "3", "4"])),
            v(&["kill", "-s", "TERM", "3", "4"])
        );
        assert_eq!(
            normalize_kill_args(&v(&["kill", "-s", "HUP", "3"])),
            v(&["kill", "-s", "HUP", "3"])
        );
        assert_eq!(
            normalize_kill_args(&v(&["kill", "--help"])),
            v(&["kill", "--help"])
        );
        assert_eq!(normalize_kill_args(&v(&["kill", "3"])), v(&["kill", "3"]));
    }

    #[test]
    fn command_lines_quote_what_needs_it() {
        assert_eq!(
            command_line(&v(&["sh", "-c", "echo hi", "it's", ""])),
            "sh -c 'echo hi' 'it'\\''s' ''"
        );
        assert_eq!(program_name("/usr/bin/sort"), "sort");
        assert_eq!(program_name("sort"), "sort");
    }
}
