//! Starting a host program: spawn it, then commit its `running` row (or a
//! `failed` row saying why it could not start).

use crate::error::{Error, Result};
use crate::record::{self, now_us, Target};
use crate::user;
use dbos_engine::{Engine, ProcessRecord};
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
    /// Working directory (default: the caller's).
    pub cwd: Option<String>,
    /// Run as this host user (a name or a number; needs root unless it is
    /// the caller's own user). None: the caller's user.
    pub user: Option<String>,
    /// Command text of the transaction that records the start.
    pub command: String,
}

impl Launch {
    /// Launch `argv` with nothing to read, output discarded, the caller's
    /// environment, directory and user, in the caller's process group.
    pub fn new(argv: Vec<String>, command: impl Into<String>) -> Launch {
        Launch {
            argv,
            env: Vec::new(),
            stdin: Input::Null,
            stdout: Output::Null,
            stderr: Output::Null,
            own_group: false,
            cwd: None,
            user: None,
            command: command.into(),
        }
    }

    /// The working directory the program gets, as its row records it.
    pub fn working_directory(&self) -> String {
        match &self.cwd {
            Some(d) => d.clone(),
            None => std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// The `Command` that starts this program: arguments, environment,
    /// standard descriptors, directory, process group and user. Fails
    /// (`Error::User`) when the user does not exist or this process may not
    /// become it; spawning it may fail too (see `spawn_error`).
    pub fn command(&self) -> Result<Command> {
        let program = self.argv.first().ok_or(Error::Empty)?;
        let mut cmd = Command::new(program);
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(self.stdout.stdio())
            .stderr(self.stderr.stdio())
            .stdin(match self.stdin {
                Input::Inherit => Stdio::inherit(),
                Input::Null => Stdio::null(),
                Input::Bytes(_) => Stdio::piped(),
            });
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.own_group {
            cmd.process_group(0);
        }
        if let Some(name) = &self.user {
            let user = user::lookup(name)?;
            // SAFETY: getuid cannot fail.
            if user.uid != unsafe { libc::getuid() } {
                if !user::is_root() {
                    return Err(Error::User {
                        user: name.clone(),
                        reason: "running a program as another user needs root".to_string(),
                    });
                }
                // SAFETY: become_user makes only system calls (setgroups,
                // setgid, setuid) on memory resolved before the fork.
                unsafe {
                    cmd.pre_exec(move || user::become_user(&user));
                }
            }
        }
        Ok(cmd)
    }
}

/// The error of a program that could not be spawned: `NotFound` (127 in a
/// shell), `PermissionDenied` (126) or `Spawn`.
pub fn spawn_error(program: &str, e: std::io::Error) -> Error {
    let program = program.to_string();
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound { program },
        std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { program },
        _ => Error::Spawn {
            program,
            reason: e.to_string(),
        },
    }
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
    let cwd = launch.working_directory();
    let user = launch
        .user
        .clone()
        .unwrap_or_else(|| target.actor.author.clone());
    let base = |id: u64, start_us: i64| {
        record::new(id, launch.argv.clone(), cwd.clone(), user.clone(), start_us)
    };
    let fail = |engine: &mut Engine, err: Error, start_us: i64| -> Result<Started> {
        let end_us = now_us();
        record::commit_new(engine, target, &launch.command, |id| {
            record::failed(&base(id, start_us), &err, end_us)
        })?;
        Err(err)
    };
    let start_us = now_us();
    let mut cmd = match launch.command() {
        Ok(c) => c,
        Err(e) => return fail(engine, e, start_us),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(engine, spawn_error(&program, e), start_us),
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
