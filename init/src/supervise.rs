//! Starting, watching, restarting and stopping services.
//!
//! Each start is a new process record (state `running`, then `exited`,
//! `killed` or `failed`) plus a log row from source `init`; a service's
//! stdout and stderr lines become log rows from `service/NAME` with its
//! process id. Every child of this process (services and the orphans
//! re-parented to it) is reaped by one `waitpid(-1)` loop in `reap`.
//!
//! Starting a program, its process rows, its output lines and signals are
//! `dbos_procs`'s (as for the shell's `run` and `spawn`); what is init's
//! own is the policy: when to restart, how long to wait, in which order.
//!
//! Restarts back off exponentially (`Backoff`): 100 ms doubling to a 30 s
//! cap, reset once a run lasted 10 s. A crash-looping service is never
//! given up on: at the cap it costs one start every 30 s, and it comes back
//! by itself once what it needs appears. `restart = never` or removing its
//! config rows (then SIGHUP) stops it for good.

use crate::services::{Plan, Restart, ServiceSpec};
use crate::writer::Handle;
use dbos_engine::{LogEntry, ProcessRecord, Severity};
use dbos_procs::launch::{spawn_error, Input, Launch, Output};
use dbos_procs::record::{self, now_us};
use dbos_procs::watch::read_lines;
use dbos_procs::{severity, signal, user};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
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

/// Reap every child that has ended (services, shells, adopted orphans).
pub fn reap() -> Vec<(i32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        out.push((pid, ExitStatus::from_raw(status)));
    }
}

/// Send `sig` to a service's process group (every service leads one).
fn signal(pid: i32, sig: libc::c_int) {
    if let Ok(pid) = u32::try_from(pid) {
        let _ = signal::send(pid, sig);
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
    pub fn tick(&mut self) -> Vec<(i32, ExitStatus)> {
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
        let launch = launch(&svc.spec);
        let user = svc.spec.user.clone().unwrap_or_else(user::current_name);
        let rec = record::new(
            id,
            launch.argv.clone(),
            launch.working_directory(),
            user,
            now_us(),
        );
        match spawn(&launch, &svc.spec.name, &self.writer, id) {
            Ok((pid, readers)) => {
                let mut rec = rec;
                rec.pid = Some(pid as u32);
                store(
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
                let rec = record::failed(&rec, &e, now_us());
                // A user that does not exist, or that this process may not
                // become, stays so until the config changes: no retries.
                if let dbos_procs::Error::User { .. } = e {
                    store(
                        &self.writer,
                        &rec,
                        3,
                        format!("not starting service {name}: {e}"),
                    );
                    svc.state = State::Done;
                    return;
                }
                store(
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
    fn exited(&mut self, pid: i32, exit: ExitStatus) -> bool {
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
        let end = record::ended(&run.rec, exit, now_us());
        let sev = if exit.success() || self.stopping {
            6
        } else {
            4
        };
        store(
            &self.writer,
            &end,
            sev,
            format!(
                "service {name} {} after {:.1} s",
                record::describe_end(&end),
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

/// Store a version of a process record with its log row, both through
/// the batching writer.
fn store(writer: &Handle, rec: &ProcessRecord, severity: Severity, message: String) {
    writer.process(rec);
    writer.init_log(severity, message, Some(rec.id));
}

/// How a service is started: its own process group, nothing to read,
/// output piped into log rows, `DBOS_SERVICE` set, in its directory (`/`
/// by default) as its user.
fn launch(spec: &ServiceSpec) -> Launch {
    let mut l = Launch::new(spec.argv.clone(), format!("service {}", spec.name));
    l.env = vec![("DBOS_SERVICE".to_string(), spec.name.clone())];
    l.stdin = Input::Null;
    l.stdout = Output::Piped;
    l.stderr = Output::Piped;
    l.own_group = true;
    l.cwd = Some(spec.cwd.clone().unwrap_or_else(|| "/".to_string()));
    l.user = spec.user.clone();
    l
}

/// Start a service's process; its stdout and stderr lines become log rows
/// of `service/NAME`. The child is reaped by `reap`, not through `Child`.
fn spawn(
    launch: &Launch,
    name: &str,
    writer: &Handle,
    process_id: u64,
) -> dbos_procs::Result<(i32, Vec<JoinHandle<()>>)> {
    let program = launch.argv.first().ok_or(dbos_procs::Error::Empty)?;
    let mut child = launch
        .command()?
        .spawn()
        .map_err(|e| spawn_error(program, e))?;
    let pid = child.id() as i32;
    let source = format!("service/{name}");
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(forward(out, writer, &source, severity::STDOUT, process_id));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(forward(err, writer, &source, severity::STDERR, process_id));
    }
    drop(child);
    Ok((pid, readers))
}

/// A thread passing each line of `r` to the writer as a log row.
fn forward<R: Read + Send + 'static>(
    r: R,
    writer: &Handle,
    source: &str,
    severity: Severity,
    process_id: u64,
) -> JoinHandle<()> {
    let (writer, source) = (writer.clone(), source.to_string());
    std::thread::spawn(move || {
        read_lines(r, |message| {
            writer.log(LogEntry {
                time_us: now_us(),
                source: source.clone(),
                severity,
                message,
                process_id: Some(process_id),
            })
        })
    })
}

/// Whether `restart` may bring a service back after `exit`.
pub fn restarts_after(restart: Restart, exit: ExitStatus) -> bool {
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
    fn restarts_after_failures_only_by_default() {
        let killed = ExitStatus::from_raw(libc::SIGTERM);
        let ok = ExitStatus::from_raw(0);
        assert!(restarts_after(Restart::OnFailure, killed));
        assert!(!restarts_after(Restart::OnFailure, ok));
        assert!(restarts_after(Restart::Always, ok));
    }
}
