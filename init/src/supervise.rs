//! Starting, watching, restarting and stopping services.
//!
//! Each start is a new process record (state `running`, then `exited`,
//! `killed` or `failed`) plus a log row from source `init`; a service's
//! stdout and stderr lines become log rows from `service/NAME` with its
//! process id. Every child of this process (services and the orphans
//! re-parented to it) is reaped by one `waitpid(-1)` loop in `reap`.
//!
//! Restarts back off exponentially (`Backoff`): 100 ms doubling to a 30 s
//! cap, reset once a run lasted 10 s. A crash-looping service is never
//! given up on: at the cap it costs one start every 30 s, and it comes back
//! by itself once what it needs appears. `restart = never` or removing its
//! config rows (then SIGHUP) stops it for good.

use crate::services::{Plan, Restart, ServiceSpec};
use crate::writer::{now_us, Handle};
use dbos_engine::{LogEntry, ProcessRecord, ProcessState};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// First restart delay.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A run at least this long resets the back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Restart delays of one service.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    fast_failures: u32,
}

impl Backoff {
    /// The delay before the restart following a run of `uptime`.
    pub fn next(&mut self, uptime: Duration) -> Duration {
        if uptime >= BACKOFF_RESET {
            self.fast_failures = 0;
        }
        let d = BACKOFF_START
            .saturating_mul(1u32 << self.fast_failures.min(16))
            .min(BACKOFF_CAP);
        self.fast_failures = self.fast_failures.saturating_add(1);
        d
    }

    /// Consecutive quick exits so far.
    pub fn failures(&self) -> u32 {
        self.fast_failures
    }
}

/// How a child ended, decoded from a wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with a status.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl Exit {
    /// Decode a `waitpid` status.
    pub fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Exit status 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exited with status {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
        }
    }
}

/// Reap every child that has ended (services, shells, adopted orphans).
pub fn reap() -> Vec<(i32, Exit)> {
    let mut out = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        out.push((pid, Exit::from_status(status)));
    }
}

/// Send `sig` to a service's process group, or to the process alone if it
/// has no group of its own.
fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: plain system calls on a pid we started.
    unsafe {
        if libc::killpg(pid, sig) != 0 {
            libc::kill(pid, sig);
        }
    }
}

struct Running {
    pid: i32,
    rec: ProcessRecord,
    started: Instant,
    readers: Vec<JoinHandle<()>>,
}

enum State {
    Running(Running),
    Waiting(Instant),
    Done,
}

struct Service {
    spec: ServiceSpec,
    state: State,
    backoff: Backoff,
}

/// The supervisor: every configured service and its state.
pub struct Supervisor {
    writer: Handle,
    services: BTreeMap<String, Service>,
    order: Vec<String>,
    stop_timeout: Duration,
    stopping: bool,
    /// Output readers of services that have exited, still draining.
    draining: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// A supervisor with no services yet.
    pub fn new(writer: Handle, stop_timeout: Duration) -> Supervisor {
        Supervisor {
            writer,
            services: BTreeMap::new(),
            order: Vec::new(),
            stop_timeout,
            stopping: false,
            draining: Vec::new(),
        }
    }

    /// Bring the running set in line with a plan: report its problems, stop
    /// services no longer in it or whose definition changed (in reverse
    /// order), start new ones in order.
    pub fn apply(&mut self, plan: &Plan) {
        for p in &plan.problems {
            self.writer.init_log(3, p.clone(), None);
        }
        let wanted: BTreeMap<&str, &ServiceSpec> =
            plan.order.iter().map(|s| (s.name.as_str(), s)).collect();
        let gone: Vec<String> = self
            .order
            .iter()
            .rev()
            .filter(|n| wanted.get(n.as_str()).copied() != self.services.get(*n).map(|s| &s.spec))
            .cloned()
            .collect();
        for name in gone {
            self.stop_one(&name);
            self.services.remove(&name);
        }
        for spec in &plan.order {
            if !self.services.contains_key(&spec.name) {
                self.services.insert(
                    spec.name.clone(),
                    Service {
                        spec: spec.clone(),
                        state: State::Waiting(Instant::now()),
                        backoff: Backoff::default(),
                    },
                );
                self.start(&spec.name);
            }
        }
        self.order = plan.order.iter().map(|s| s.name.clone()).collect();
    }

    /// Handle ended children and due restarts. Returns the ends of children
    /// that are not services (the console shell, adopted orphans).
    pub fn tick(&mut self) -> Vec<(i32, Exit)> {
        let mut others = Vec::new();
        for (pid, exit) in reap() {
            if !self.exited(pid, exit) {
                others.push((pid, exit));
            }
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .order
            .iter()
            .filter(|n| {
                matches!(self.services.get(*n), Some(Service { state: State::Waiting(t), .. }) if *t <= now)
            })
            .cloned()
            .collect();
        for name in due {
            self.start(&name);
        }
        self.draining.retain(|h| !h.is_finished());
        others
    }

    /// Process ids of running services.
    pub fn running_pids(&self) -> Vec<i32> {
        self.services
            .values()
            .filter_map(|s| match &s.state {
                State::Running(r) => Some(r.pid),
                _ => None,
            })
            .collect()
    }

    fn start(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let id = self.writer.alloc_process_id().unwrap_or(0);
        let mut rec = ProcessRecord {
            id,
            argv: svc.spec.argv.clone(),
            cwd: svc.spec.cwd.clone().unwrap_or_else(|| "/".to_string()),
            state: ProcessState::Running,
            pid: None,
            user: svc.spec.user.clone().unwrap_or_else(current_user),
            exit_status: None,
            signal: None,
            start_us: now_us(),
            end_us: None,
            error: None,
        };
        match spawn(&svc.spec, &self.writer, id) {
            Ok((pid, readers)) => {
                rec.pid = Some(pid as u32);
                record(
                    &self.writer,
                    &rec,
                    6,
                    format!("started service {name} (pid {pid})"),
                );
                svc.state = State::Running(Running {
                    pid,
                    rec,
                    started: Instant::now(),
                    readers,
                });
            }
            Err(e) => {
                rec.state = ProcessState::Failed;
                rec.end_us = Some(now_us());
                rec.error = Some(e.to_string());
                record(
                    &self.writer,
                    &rec,
                    3,
                    format!("service {name} could not start: {e}"),
                );
                let delay = svc.backoff.next(Duration::ZERO);
                self.schedule(name, delay, false);
            }
        }
    }

    /// Decide what follows an end (restart after a delay, or nothing).
    fn schedule(&mut self, name: &str, delay: Duration, success: bool) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if self.stopping || !svc.spec.restart.wants_restart(success) {
            svc.state = State::Done;
            return;
        }
        svc.state = State::Waiting(Instant::now() + delay);
        let n = svc.backoff.failures();
        self.writer.init_log(
            5,
            format!(
                "restarting service {name} in {} ms (quick exit {n} in a row)",
                delay.as_millis()
            ),
            None,
        );
    }

    /// Handle the end of `pid`; false when it is not a running service.
    fn exited(&mut self, pid: i32, exit: Exit) -> bool {
        let Some(name) = self.services.iter().find_map(|(n, s)| match &s.state {
            State::Running(r) if r.pid == pid => Some(n.clone()),
            _ => None,
        }) else {
            return false;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return false;
        };
        let State::Running(mut run) = std::mem::replace(&mut svc.state, State::Done) else {
            return false;
        };
        let uptime = run.started.elapsed();
        run.rec.end_us = Some(now_us());
        match exit {
            Exit::Code(c) => {
                run.rec.state = ProcessState::Exited;
                run.rec.exit_status = Some(c);
            }
            Exit::Signal(s) => {
                run.rec.state = ProcessState::Killed;
                run.rec.signal = Some(s);
            }
        }
        let sev = if exit.success() || self.stopping {
            6
        } else {
            4
        };
        record(
            &self.writer,
            &run.rec,
            sev,
            format!(
                "service {name} {} after {:.1} s",
                exit.describe(),
                uptime.as_secs_f64()
            ),
        );
        self.draining.append(&mut run.readers);
        let delay = svc.backoff.next(uptime);
        self.schedule(&name, delay, exit.success());
        true
    }

    /// Stop one service: TERM to its group, KILL after the stop timeout.
    /// Other children ending meanwhile are reaped and handled.
    fn stop_one(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let pid = match &svc.state {
            State::Running(r) => r.pid,
            _ => {
                svc.state = State::Done;
                return;
            }
        };
        let was_stopping = self.stopping;
        self.stopping = true;
        self.writer
            .init_log(6, format!("stopping service {name} (pid {pid})"), None);
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + self.stop_timeout;
        let mut killed = false;
        loop {
            for (p, exit) in reap() {
                self.exited(p, exit);
            }
            let still = matches!(
                self.services.get(name),
                Some(Service { state: State::Running(r), .. }) if r.pid == pid
            );
            if !still {
                break;
            }
            if Instant::now() >= deadline {
                if killed {
                    self.writer.init_log(
                        3,
                        format!("service {name} (pid {pid}) did not die after SIGKILL"),
                        None,
                    );
                    break;
                }
                self.writer.init_log(
                    4,
                    format!(
                        "service {name} still running {} s after SIGTERM: SIGKILL",
                        self.stop_timeout.as_secs_f64()
                    ),
                    None,
                );
                signal(pid, libc::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stopping = was_stopping;
    }

    /// Stop every service in reverse dependency order, then give their
    /// output readers a moment to pass on the last lines.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        for name in self.order.clone().iter().rev() {
            self.stop_one(name);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.draining.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Store a version of a process record with its log row. This is the one
/// place a service's process row is written (to swap for `dbos_procs`).
fn record(writer: &Handle, rec: &ProcessRecord, severity: u8, message: String) {
    writer.process(rec);
    writer.init_log(severity, message, Some(rec.id));
}

/// The name of the user this runs as.
fn current_user() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    lookup_user_by_uid(uid).unwrap_or_else(|| uid.to_string())
}

fn lookup_user_by_uid(uid: u32) -> Option<String> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buffers are owned and sized; out is checked before use.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// uid, gid and home of a user name (or a numeric uid).
fn lookup_user(name: &str) -> std::io::Result<(u32, u32)> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::other(format!("bad user name {name:?}")))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in lookup_user_by_uid.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        return Ok((pw.pw_uid, pw.pw_gid));
    }
    match name.parse::<u32>() {
        Ok(uid) => Ok((uid, uid)),
        Err(_) => Err(std::io::Error::other(format!("no such user {name:?}"))),
    }
}

/// Start a service's process in its own process group, stdin from
/// /dev/null, stdout and stderr into log rows.
fn spawn(
    spec: &ServiceSpec,
    writer: &Handle,
    process_id: u64,
) -> std::io::Result<(i32, Vec<JoinHandle<()>>)> {
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::other("empty command line"));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(spec.cwd.as_deref().unwrap_or("/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env("DBOS_SERVICE", &spec.name);
    if let Some(user) = &spec.user {
        let (uid, gid) = lookup_user(user)?;
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let source = format!("service/{}", spec.name);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(read_lines(
            out,
            writer.clone(),
            source.clone(),
            6,
            process_id,
        ));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(read_lines(err, writer.clone(), source, 4, process_id));
    }
    // The child is reaped by `reap`, not through `Child`.
    drop(child);
    Ok((pid, readers))
}

fn read_lines<R: Read + Send + 'static>(
    r: R,
    writer: Handle,
    source: String,
    severity: u8,
    process_id: u64,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    writer.log(LogEntry {
                        time_us: now_us(),
                        source: source.clone(),
                        severity,
                        message: text.trim_end_matches(['\n', '\r']).to_string(),
                        process_id: Some(process_id),
                    });
                }
            }
        }
    })
}

/// Whether `restart` may bring a service back after `exit`.
pub fn restarts_after(restart: Restart, exit: Exit) -> bool {
    restart.wants_restart(exit.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(50);
        let got: Vec<u128> = (0..12).map(|_| b.next(quick).as_millis()).collect();
        assert_eq!(
            got,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            assert_eq!(b.next(quick), BACKOFF_CAP);
        }
        assert_eq!(b.next(Duration::from_secs(10)), BACKOFF_START);
        assert_eq!(b.next(quick).as_millis(), 200);
    }

    #[test]
    fn exit_decoding() {
        assert_eq!(Exit::from_status(0), Exit::Code(0));
        assert_eq!(Exit::from_status(3 << 8), Exit::Code(3));
        assert_eq!(
            Exit::from_status(libc::SIGKILL),
            Exit::Signal(libc::SIGKILL)
        );
        assert!(restarts_after(Restart::OnFailure, Exit::Signal(15)));
        assert!(!restarts_after(Restart::OnFailure, Exit::Code(0)));
    }
}
