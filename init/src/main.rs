//! dbos-init: PID 1 of a dbos machine, or an unprivileged supervisor,
//! syslog listener and metrics sampler on an ordinary host.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dbos_engine::{Engine, Moment, Space};
use dbos_init::boot::{self, BootRecord};
use dbos_init::control::{Control, Request};
use dbos_init::logsock::Listener;
use dbos_init::pid1::{self, Power};
use dbos_init::supervise::Supervisor;
use dbos_init::writer::{now_us, Handle, Writer, WriterConfig};
use dbos_init::{cmdline, metrics, modules, services, share};
use dbos_procs::signal::signal_name;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Supervisor, syslog listener and metrics sampler of dbos (PID 1 of a dbos machine).
#[derive(Parser, Debug)]
#[command(name = "dbos-init", version)]
struct Cli {
    /// Database (default /state/dbos.db as PID 1; required otherwise).
    #[arg(long, value_name = "DB")]
    state: Option<String>,
    /// Branch to boot (the kernel's dbos.branch= wins as PID 1).
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
    /// Boot the state as of REF, read-only (kernel: dbos.asof=).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// With --as-of: fork a new branch there and boot it (kernel: dbos.fork=).
    #[arg(long, value_name = "NAME", requires = "as_of")]
    fork: Option<String>,
    /// Syslog datagram socket.
    #[arg(long, value_name = "PATH", default_value = "/run/log.sock")]
    log_socket: PathBuf,
    /// Control socket for poweroff/reboot/reload (default /run/dbos-init.ctl as PID 1, none otherwise).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Seconds between metric samples (default: config init.metrics.interval, else 10; 0 disables).
    #[arg(long, value_name = "SECS")]
    metrics_interval: Option<f64>,
    /// Seconds a service gets between SIGTERM and SIGKILL when stopping.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    stop_timeout: f64,
    /// Do not run the dbos shell.
    #[arg(long)]
    no_shell: bool,
    /// The shell program (default: config init.shell, else `dbos` beside
    /// this binary, else on PATH).
    #[arg(long, value_name = "PATH")]
    shell: Option<PathBuf>,
    /// Boot the last good state if the previous boot never reached the
    /// shell prompt (kernel: dbos.fallback=1).
    #[arg(long)]
    fallback: bool,
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        HUP.store(true, Ordering::SeqCst);
    } else {
        SIGNAL.store(sig, Ordering::SeqCst);
    }
}

fn install_signals() -> Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!("sigaction: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Why the run ends.
enum End {
    Signal(i32),
    Power(Power),
    ShellExited,
}

impl End {
    fn describe(&self) -> String {
        match self {
            End::Signal(s) => format!("signal {}", signal_name(*s)),
            End::Power(Power::Off) => "poweroff".into(),
            End::Power(Power::Reboot) => "reboot".into(),
            End::ShellExited => "shell exited".into(),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let pid1 = pid1::is_pid1();
    match run(cli, pid1) {
        Ok(end) => {
            if pid1 {
                let p = match end {
                    End::Power(p) => p,
                    _ => Power::Off,
                };
                let e = pid1::power(p);
                eprintln!("dbos-init: reboot(2) failed: {e}");
                // PID 1 must not exit: the kernel would panic.
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("dbos-init: {e:#}");
            if pid1 {
                pid1::sync();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            std::process::exit(1);
        }
    }
}

/// Resolve what to boot: (branch written, read-only moment).
fn choose_state(
    engine: &mut Engine,
    branch: &str,
    as_of: Option<&str>,
    fork: Option<&str>,
) -> Result<(String, Option<Moment>)> {
    let Some(r) = as_of else {
        engine
            .branch(branch)
            .with_context(|| format!("branch {branch}"))?;
        return Ok((branch.to_string(), None));
    };
    let m = engine
        .resolve_ref(branch, r)
        .with_context(|| format!("REF {r}"))?;
    match fork {
        Some(name) => {
            engine
                .create_branch(name, &m.branch, m.tx)
                .with_context(|| format!("forking {name} at {}@T{}", m.branch, m.tx))?;
            Ok((name.to_string(), None))
        }
        None => Ok((m.branch.clone(), Some(m))),
    }
}

fn run(cli: Cli, pid1: bool) -> Result<End> {
    let mut early = Vec::new();
    let mut args = cmdline::BootArgs::default();
    let mut ramdisk = None;
    if pid1 {
        early.extend(pid1::mount_basics());
        early.extend(modules::load_list(Path::new(modules::MODULE_LIST)));
        if let pid1::StateVolume::Ramdisk(why) = pid1::mount_state() {
            ramdisk = Some(why);
        }
        match share::mount_host_share() {
            Ok(true) => eprintln!("dbos-init: host share mounted on {}", share::SHARE_DIR),
            Ok(false) => {}
            Err(e) => early.push(e),
        }
        args = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    } else if let Err(e) = pid1::become_subreaper() {
        early.push(format!("PR_SET_CHILD_SUBREAPER: {e} (orphans go to PID 1)"));
    }
    let location = match (&cli.state, pid1) {
        (Some(s), _) => s.clone(),
        (None, true) => pid1::STATE_DB.to_string(),
        (None, false) => bail!("--state DB is required when not running as PID 1"),
    };
    let branch = args
        .branch
        .clone()
        .or(cli.branch.clone())
        .unwrap_or_else(|| "main".to_string());
    let as_of = args.asof.clone().or(cli.as_of.clone());
    let fork = args.fork.clone().or(cli.fork.clone());

    let mut engine =
        Engine::open(&location).with_context(|| format!("opening the state {location}"))?;
    let boots = boot::boots(&mut engine, &branch).unwrap_or_default();
    let changed =
        boot::previous(&boots).is_some_and(|b| changed_since(&mut engine, &branch, b.start_us));
    let plan = plan_boot(&boots, as_of, args.fallback || cli.fallback, changed);
    for line in &plan.notices {
        loud(line);
    }
    let as_of = plan.as_of;
    let (branch, read_only) =
        choose_state(&mut engine, &branch, as_of.as_deref(), fork.as_deref())?;
    let writable = read_only.is_none().then_some(branch.as_str());
    // Boots of this branch still `started` never reached the prompt.
    let failed: Vec<BootRecord> = if writable.is_some() && fork.is_none() {
        boots
            .iter()
            .filter(|b| b.outcome.as_deref() == Some(boot::STARTED))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut repairs = pid1::recover(&mut engine, if pid1 { writable } else { None });
    if let Some(b) = writable {
        // Services of an earlier run that lost power (or was killed) still
        // say `running`: they are gone, and get their `lost` version.
        repairs.extend(mark_lost(&mut engine, b));
    }

    drop(engine);
    let writer = Writer::spawn(
        &location,
        WriterConfig {
            branch: branch.clone(),
            read_only: read_only.clone(),
            interval: Duration::from_millis(100),
            max_lines: 500,
        },
    )
    .context("starting the writer thread")?;
    let w = writer.handle();
    if let Some(why) = &ramdisk {
        w.init_log(
            1,
            format!("NO STATE DISK, running on a RAM disk (lost at power off): {why}"),
            None,
        );
    }
    for e in early {
        w.init_log(3, e, None);
    }
    for r in repairs {
        w.init_log(4, format!("recovery: {r}"), None);
    }
    for line in &plan.notices {
        w.init_log(2, line.clone(), None);
    }
    for mut b in failed {
        w.init_log(
            4,
            format!("boot {} never reached the shell prompt: failed", b.id),
            None,
        );
        b.outcome = Some(boot::FAILED.to_string());
        put_boot(&w, &b);
    }

    let config = w.config().unwrap_or_else(|e| {
        w.init_log(3, format!("reading config: {e}"), None);
        Vec::new()
    });
    let get = |k: &str| {
        config
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if pid1 {
        if let Some(h) = get("system.hostname") {
            if let Err(e) = pid1::set_hostname(&h) {
                w.init_log(3, format!("setting host name {h:?}: {e}"), None);
            }
        }
    }

    let mut rec = BootRecord {
        id: boot::new_boot_id(),
        kernel: boot::kernel_release(),
        branch: branch.clone(),
        as_of: read_only
            .as_ref()
            .map(|m| format!("{}@T{}", m.branch, m.tx)),
        start_us: now_us(),
        pid1,
        hostname: boot::hostname(),
        end_us: None,
        ended: None,
        outcome: Some(boot::STARTED.to_string()),
        good_tx: None,
    };
    put_boot(&w, &rec);
    w.init_log(
        6,
        format!(
            "dbos-init starting: boot {} on {}{} (pid {})",
            rec.id,
            branch,
            rec.as_of
                .as_ref()
                .map(|a| format!(" as of {a}, read-only"))
                .unwrap_or_default(),
            std::process::id()
        ),
        None,
    );

    install_signals()?;
    let stop = Arc::new(AtomicBool::new(false));
    let listener = match Listener::bind(&cli.log_socket) {
        Ok(l) => Some(l.spawn(w.clone(), stop.clone())?),
        Err(e) => {
            let msg = format!(
                "log socket {}: {e}; syslog disabled",
                cli.log_socket.display()
            );
            eprintln!("dbos-init: {msg}");
            w.init_log(3, msg, None);
            None
        }
    };
    let ctl_path = cli
        .control_socket
        .clone()
        .or_else(|| pid1.then(|| PathBuf::from("/run/dbos-init.ctl")));
    let control = ctl_path.clone().and_then(|p| match Control::bind(&p) {
        Ok(c) => Some(c),
        Err(e) => {
            w.init_log(3, format!("control socket {}: {e}", p.display()), None);
            None
        }
    });
    let interval = cli
        .metrics_interval
        .or_else(|| get("init.metrics.interval").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(10.0);
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let sampler = if interval > 0.0 && interval.is_finite() {
        let db = (!dbos_engine::is_postgres(&location)).then(|| PathBuf::from(&location));
        Some(metrics::spawn(
            w.clone(),
            Duration::from_secs_f64(interval.max(0.05)),
            db,
            metrics_stop.clone(),
        )?)
    } else {
        None
    };

    let stop_timeout = Duration::from_secs_f64(cli.stop_timeout.clamp(0.0, 86_400.0));
    let mut sup = Supervisor::new(w.clone(), stop_timeout);
    sup.apply(&services::plan(&config));

    let shell_prog = cli
        .shell
        .clone()
        .or_else(|| get("init.shell").map(PathBuf::from))
        .unwrap_or_else(default_shell);
    let spec = ShellSpec {
        prog: shell_prog,
        db: location.clone(),
        branch: branch.clone(),
        read_only: read_only.clone(),
        pid1,
        control: control.is_some().then_some(ctl_path).flatten(),
    };
    let mut consoles: Vec<Console> = if cli.no_shell {
        Vec::new()
    } else if pid1 {
        let mut c = vec![Console::new(Some(PathBuf::from("/dev/console")))];
        if second_console_wanted() {
            c.push(Console::new(Some(PathBuf::from("/dev/tty1"))));
        }
        c
    } else {
        vec![Console::new(None)]
    };
    for c in &mut consoles {
        c.start(&w, &spec);
    }
    // Without a console shell, or without the socket it reports on, nothing
    // can ever say `ready`: count the boot good now rather than have the
    // next `dbos.fallback=1` boot fall back from a healthy machine.
    if (consoles.is_empty() || control.is_none()) && read_only.is_none() && !rec.is_good() {
        mark_good(
            &w,
            &mut rec,
            "no console shell can report its prompt: this boot counts as good at start",
        );
    }

    let end = loop {
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        let shell_runs = consoles.iter().any(|c| c.pid.is_some());
        // Off PID 1 with a shell on the terminal, ^C belongs to the shell.
        if sig != 0 && !(sig == libc::SIGINT && shell_runs && !pid1) {
            break End::Signal(sig);
        }
        let mut reload = HUP.swap(false, Ordering::SeqCst);
        let mut power = None;
        if let Some(c) = &control {
            while let Some(req) = c.poll() {
                match req {
                    Ok(Request::Reload) => reload = true,
                    Ok(Request::Poweroff) => power = Some(Power::Off),
                    Ok(Request::Reboot) => power = Some(Power::Reboot),
                    // A read-only boot records nothing, its outcome neither.
                    Ok(Request::Ready) if !rec.is_good() && read_only.is_none() => {
                        mark_good(
                            &w,
                            &mut rec,
                            "the shell reached its prompt: this boot is good",
                        );
                    }
                    Ok(Request::Ready) => {}
                    Err(word) => {
                        w.init_log(4, format!("control socket: unknown request {word:?}"), None)
                    }
                }
            }
        }
        if let Some(p) = power {
            break End::Power(p);
        }
        if reload {
            w.init_log(6, "reloading services from config", None);
            match w.config() {
                Ok(cfg) => sup.apply(&services::plan(&cfg)),
                Err(e) => w.init_log(3, format!("reading config: {e}"), None),
            }
        }
        for (pid, exit) in sup.tick() {
            let Some(c) = consoles.iter_mut().find(|c| c.pid == Some(pid)) else {
                continue;
            };
            c.pid = None;
            if !pid1 {
                w.init_log(6, format!("shell ended ({exit})"), None);
                continue;
            }
            w.init_log(
                4,
                format!("shell on {} ended ({exit}); restarting it", c.name()),
                None,
            );
            c.restart = Some(Instant::now() + Duration::from_secs(1));
        }
        if !pid1 && !cli.no_shell && consoles.iter().all(|c| c.pid.is_none()) {
            break End::ShellExited;
        }
        for c in &mut consoles {
            if c.restart.is_some_and(|t| Instant::now() >= t) {
                c.start(&w, &spec);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    w.init_log(6, format!("stopping: {}", end.describe()), None);
    for pid in consoles.iter().filter_map(|c| c.pid) {
        // SAFETY: a signal to a shell we started.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }
    sup.stop_all();
    stop.store(true, Ordering::SeqCst);
    if let Some(h) = listener {
        let _ = h.join();
    }
    metrics_stop.store(true, Ordering::SeqCst);
    if let Some(h) = sampler {
        let _ = h.join();
    }
    rec.end_us = Some(now_us());
    rec.ended = Some(end.describe());
    put_boot(&w, &rec);
    w.init_log(6, format!("dbos-init stopped: {}", end.describe()), None);
    drop(control);
    writer.stop();
    pid1::sync();
    Ok(end)
}

/// Give the rows of vanished processes of `branch` their `lost` version
/// (`dbos_procs::reconcile`); what was marked, in words.
fn mark_lost(engine: &mut Engine, branch: &str) -> Vec<String> {
    let target = dbos_procs::Target {
        branch: branch.to_string(),
        actor: dbos_engine::Actor {
            author: "dbos-init".to_string(),
            uid: 0,
            gid: 0,
        },
    };
    match dbos_procs::reconcile(engine, &target) {
        Ok(marked) => marked
            .iter()
            .map(|r| {
                format!(
                    "process {} ({}) was running: marked lost",
                    r.id,
                    r.argv.join(" ")
                )
            })
            .collect(),
        Err(e) => vec![format!("checking running process rows: {e}")],
    }
}

/// Record that this boot is good, with the state it had at that moment.
fn mark_good(w: &Handle, rec: &mut BootRecord, why: &str) {
    w.flush();
    rec.good_tx = w.head();
    rec.outcome = Some(boot::GOOD.to_string());
    put_boot(w, rec);
    w.init_log(6, why, None);
}

fn put_boot(w: &Handle, rec: &BootRecord) {
    match serde_json::to_string(rec) {
        Ok(json) => w.put(Space::Boot, &rec.id, json),
        Err(e) => eprintln!("dbos-init: boot record: {e}"),
    }
}

fn default_shell() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("dbos")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("dbos"))
}

/// What every console shell is started with.
struct ShellSpec {
    prog: PathBuf,
    db: String,
    branch: String,
    read_only: Option<Moment>,
    pid1: bool,
    /// The bound control socket: the shell reports its prompt there.
    control: Option<PathBuf>,
}

/// One terminal with a dbos shell on it, restarted when it exits.
struct Console {
    /// The terminal device (PID 1), or None for our own terminal.
    tty: Option<PathBuf>,
    pid: Option<i32>,
    restart: Option<Instant>,
    /// A failure to start was already shouted on the console.
    shouted: bool,
}

impl Console {
    fn new(tty: Option<PathBuf>) -> Console {
        Console {
            tty,
            pid: None,
            restart: None,
            shouted: false,
        }
    }

    fn name(&self) -> String {
        self.tty
            .as_ref()
            .map(|t| t.display().to_string())
            .unwrap_or_else(|| "the terminal".to_string())
    }

    /// Start the shell; on failure try again in 5 s.
    fn start(&mut self, w: &Handle, spec: &ShellSpec) {
        self.restart = None;
        match start_shell(spec, self.tty.as_deref()) {
            Ok(pid) => self.pid = Some(pid),
            Err(e) => {
                let msg = format!("starting the shell on {}: {e}", self.name());
                if spec.pid1 && !std::mem::replace(&mut self.shouted, true) {
                    loud(&format!("{msg}; trying again every 5 s"));
                }
                w.init_log(3, msg, None);
                self.restart = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }
}

/// A second shell on /dev/tty1 when it exists and is not already the
/// console (`console=tty0` last on the command line).
fn second_console_wanted() -> bool {
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let last = active.split_whitespace().last().unwrap_or("");
    pid1::exists("/dev/tty1") && !matches!(last, "tty0" | "tty1")
}

/// A message for the console, framed so it cannot be missed.
fn loud(msg: &str) {
    let bar = "!".repeat(72);
    eprintln!("\n{bar}\n!!! dbos-init: {msg}\n{bar}\n");
}

/// What to boot after `last-good` and `dbos.fallback` are applied.
#[derive(Debug, PartialEq, Eq)]
struct BootPlan {
    /// The REF to boot read-only (or fork at), if any.
    as_of: Option<String>,
    /// Messages to shout on the console and keep as log rows.
    notices: Vec<String>,
}

/// Whether anyone but dbos-init committed on `branch` after `since_us`
/// (a repair, a `reset`: worth trying the current state again).
fn changed_since(engine: &mut Engine, branch: &str, since_us: i64) -> bool {
    // Page back through the branch's log (newest first) until `since_us`:
    // a chatty service's batches, authored by dbos-init, may bury a repair
    // under any number of transactions.
    let mut at = None;
    loop {
        let Ok(page) = engine.log(branch, at, 500) else {
            return false;
        };
        for t in &page {
            if t.time_us <= since_us {
                return false;
            }
            if t.author != "dbos-init" {
                return true;
            }
        }
        match page.last() {
            Some(t) if page.len() == 500 && t.id > 1 => at = Some(t.id - 1),
            _ => return false,
        }
    }
}

/// Apply `dbos.fallback` (the previous boot never reached the prompt and
/// nobody changed the branch since: boot `last-good` instead) and resolve
/// `last-good` to a transaction.
fn plan_boot(
    boots: &[BootRecord],
    as_of: Option<String>,
    fallback: bool,
    changed: bool,
) -> BootPlan {
    let mut notices = Vec::new();
    let mut as_of = as_of;
    if fallback && as_of.is_none() {
        if let Some(prev) = boot::previous(boots).filter(|b| !b.is_good()) {
            if changed {
                notices.push(format!(
                    "the previous boot {} never reached the shell prompt, but the branch \
                     changed since: trying the current state again",
                    prev.id
                ));
                return BootPlan { as_of, notices };
            }
            notices.push(format!(
                "FALLBACK: the previous boot {} never reached the shell prompt",
                prev.id
            ));
            as_of = Some(boot::LAST_GOOD.to_string());
        }
    }
    if as_of.as_deref() == Some(boot::LAST_GOOD) {
        match boot::last_good(boots) {
            Some((b, tx)) => {
                notices.push(format!(
                    "booting the state of the last good boot {} (T{tx}), read-only; \
                     `reset T{tx}` makes it current again",
                    b.id
                ));
                as_of = Some(format!("T{tx}"));
            }
            None => {
                notices.push("no good boot is recorded: booting the current state".into());
                as_of = None;
            }
        }
    }
    BootPlan { as_of, notices }
}

/// Start the dbos shell: on `tty` (its own session, that terminal as its
/// controlling terminal) as PID 1, on our own terminal otherwise. A
/// read-only boot starts it viewing that moment (`--as-of`).
fn start_shell(spec: &ShellSpec, tty: Option<&Path>) -> std::io::Result<i32> {
    let mut cmd = Command::new(&spec.prog);
    cmd.args(["--db", &spec.db, "--branch", &spec.branch]);
    if let Some(m) = &spec.read_only {
        cmd.arg("--as-of").arg(format!("{}@T{}", m.branch, m.tx));
    }
    if let Some(ctl) = &spec.control {
        cmd.env(dbos_procs::control::ENV_VAR, ctl)
            .env(dbos_procs::control::READY_ENV, "1");
    }
    if let Some(tty) = tty.filter(|_| spec.pid1) {
        let open = || std::fs::OpenOptions::new().read(true).write(true).open(tty);
        cmd.stdin(Stdio::from(open()?))
            .stdout(Stdio::from(open()?))
            .stderr(Stdio::from(open()?));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
    }
    Ok(cmd.spawn()?.id() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, start_us: i64, outcome: &str, good_tx: Option<u64>) -> BootRecord {
        BootRecord {
            id: id.into(),
            kernel: "k".into(),
            branch: "main".into(),
            as_of: None,
            start_us,
            pid1: true,
            hostname: "h".into(),
            end_us: None,
            ended: None,
            outcome: Some(outcome.into()),
            good_tx,
        }
    }

    #[test]
    fn fallback_only_after_a_boot_that_was_not_good() {
        let good = [rec("a", 1, boot::GOOD, Some(7))];
        let bad = [
            rec("a", 1, boot::GOOD, Some(7)),
            rec("b", 2, boot::STARTED, None),
        ];
        // The previous boot was good: nothing changes.
        assert_eq!(plan_boot(&good, None, true, false).as_of, None);
        // It was not: the last good state, with a notice.
        let p = plan_boot(&bad, None, true, false);
        assert_eq!(p.as_of.as_deref(), Some("T7"));
        assert!(p.notices[0].contains("FALLBACK"), "{:?}", p.notices);
        // Someone repaired the branch since: the current state again.
        let p = plan_boot(&bad, None, true, true);
        assert_eq!(p.as_of, None);
        assert!(p.notices[0].contains("changed since"), "{:?}", p.notices);
        // Without dbos.fallback the current state boots anyway.
        assert_eq!(plan_boot(&bad, None, false, false).as_of, None);
        // An explicit REF wins over the fallback.
        let p = plan_boot(&bad, Some("T3".into()), true, false);
        assert_eq!(p.as_of.as_deref(), Some("T3"));
        // last-good asked for directly; none recorded: the current state.
        let p = plan_boot(&good, Some("last-good".into()), false, false);
        assert_eq!(p.as_of.as_deref(), Some("T7"));
        let none = plan_boot(&[], Some("last-good".into()), false, false);
        assert_eq!(none.as_of, None);
        assert_eq!(none.notices.len(), 1);
    }
}
