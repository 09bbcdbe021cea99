//! Starting a host program: spawn it, then commit its `running` row (or a
//! `failed` row saying why it could not start).

use crate::error::{Error, Result};
use crate::record::{self, now_us, Target};
use dbos_engine::{Engine, ProcessRecord, ProcessState};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Where a program's standard input comes from.
#[derive(Debug)]
pub enum Input {
    /// The caller's own standard input (a terminal, usually).
    Inherit,
    /// Nothing: end of file at once.
    Null,
    /// These bytes, written by a helper thread.
    Bytes(Vec<u8>),
}

/// Where a program's standard output or error goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The caller's own descriptor (a terminal, usually).
    Inherit,
    /// A pipe the caller reads (`Child::stdout` / `stderr`).
    Piped,
    /// Discarded.
    Null,
}

impl Output {
    fn stdio(self) -> Stdio {
        match self {
            Output::Inherit => Stdio::inherit(),
            Output::Piped => Stdio::piped(),
            Output::Null => Stdio::null(),
        }
    }
}

/// What to start and how.
#[derive(Debug)]
pub struct Launch {
    /// Program and arguments; the program is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Standard input.
    pub stdin: Input,
    /// Standard output.
    pub stdout: Output,
    /// Standard error.
    pub stderr: Output,
    /// Put the program in a process group of its own (background programs:
    /// a Ctrl-C at the terminal is not theirs, and a signal can reach the
    /// whole group).
    pub own_group: bool,
    /// Command text of the transaction that records the start.
    pub command: String,
}

/// A started program and its committed `running` row.
#[derive(Debug)]
pub struct Started {
    /// The row as committed.
    pub record: ProcessRecord,
    /// The running program (its pipes, when piped, are still in it).
    pub child: Child,
}

/// Start a program and commit its `running` row on `target`'s branch. A
/// program that cannot start gets a `failed` row with the reason, and the
/// error says why (`NotFound`, `PermissionDenied`, `Spawn`). A program whose
/// row cannot be committed is killed: dbos never leaves running a process
/// it has no row for.
pub fn start(engine: &mut Engine, target: &Target, launch: Launch) -> Result<Started> {
    let program = launch.argv.first().cloned().ok_or(Error::Empty)?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(&launch.argv[1..])
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdout(launch.stdout.stdio())
        .stderr(launch.stderr.stdio())
        .stdin(match launch.stdin {
            Input::Inherit => Stdio::inherit(),
            Input::Null => Stdio::null(),
            Input::Bytes(_) => Stdio::piped(),
        });
    if launch.own_group {
        cmd.process_group(0);
    }
    let base = |id: u64, start_us: i64| ProcessRecord {
        id,
        argv: launch.argv.clone(),
        cwd: cwd.clone(),
        state: ProcessState::Running,
        pid: None,
        user: target.actor.author.clone(),
        exit_status: None,
        signal: None,
        start_us,
        end_us: None,
        error: None,
    };
    let start_us = now_us();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let err = match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound { program },
                std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { program },
                _ => Error::Spawn {
                    program,
                    reason: e.to_string(),
                },
            };
            let end_us = now_us();
            record::commit_new(engine, target, &launch.command, |id| {
                let mut r = base(id, start_us);
                r.state = ProcessState::Failed;
                r.end_us = Some(end_us);
                r.error = Some(err.to_string());
                r
            })?;
            return Err(err);
        }
    };
    let pid = child.id();
    let committed = record::commit_new(engine, target, &launch.command, |id| {
        let mut r = base(id, start_us);
        r.pid = Some(pid);
        r
    });
    let record = match committed {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    if let Input::Bytes(bytes) = launch.stdin {
        if let Some(mut pipe) = child.stdin.take() {
            // A program that stops reading early closes the pipe: not an
            // error of ours.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
    }
    Ok(Started { record, child })
}
