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
    /// The shell program (default: `dbos` beside this binary, else on PATH).
    #[arg(long, value_name = "PATH")]
    shell: Option<PathBuf>,
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
    let (branch, read_only) =
        choose_state(&mut engine, &branch, as_of.as_deref(), fork.as_deref())?;
    let writable = read_only.is_none().then_some(branch.as_str());
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
    let control = ctl_path.and_then(|p| match Control::bind(&p) {
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

    let shell_prog = cli.shell.clone().unwrap_or_else(default_shell);
    let mut shell = if cli.no_shell {
        None
    } else {
        start_shell(
            &w,
            &shell_prog,
            &location,
            &branch,
            read_only.as_ref(),
            pid1,
        )
    };
    let mut shell_restart: Option<Instant> = None;

    let end = loop {
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        // Off PID 1 with a shell on the terminal, ^C belongs to the shell.
        if sig != 0 && !(sig == libc::SIGINT && shell.is_some() && !pid1) {
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
            if shell == Some(pid) {
                shell = None;
                if !pid1 {
                    w.init_log(6, format!("shell ended ({exit})"), None);
                    continue;
                }
                w.init_log(
                    4,
                    format!("console shell ended ({exit}); restarting it"),
                    None,
                );
                shell_restart = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        if shell.is_none() && !cli.no_shell && !pid1 {
            break End::ShellExited;
        }
        if shell_restart.is_some_and(|t| Instant::now() >= t) {
            shell_restart = None;
            shell = start_shell(
                &w,
                &shell_prog,
                &location,
                &branch,
                read_only.as_ref(),
                pid1,
            );
            if shell.is_none() {
                shell_restart = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    w.init_log(6, format!("stopping: {}", end.describe()), None);
    if let Some(pid) = shell {
        // SAFETY: a signal to the shell we started.
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

/// Start the dbos shell: on /dev/console (its own session, console as
/// controlling terminal) as PID 1, on our own terminal otherwise. A
/// read-only boot starts it viewing that moment (`--as-of`).
fn start_shell(
    w: &Handle,
    prog: &Path,
    db: &str,
    branch: &str,
    read_only: Option<&Moment>,
    pid1: bool,
) -> Option<i32> {
    let mut cmd = Command::new(prog);
    cmd.args(["--db", db, "--branch", branch]);
    if let Some(m) = read_only {
        cmd.arg("--as-of").arg(format!("{}@T{}", m.branch, m.tx));
    }
    if pid1 {
        let console = |_: ()| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/console")
        };
        match (console(()), console(()), console(())) {
            (Ok(i), Ok(o), Ok(e)) => {
                cmd.stdin(Stdio::from(i))
                    .stdout(Stdio::from(o))
                    .stderr(Stdio::from(e));
            }
            _ => {
                w.init_log(3, "cannot open /dev/console for the shell", None);
                return None;
            }
        }
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
    }
    match cmd.spawn() {
        Ok(child) => Some(child.id() as i32),
        Err(e) => {
            w.init_log(
                3,
                format!("starting the shell {}: {e}", prog.display()),
                None,
            );
            None
        }
    }
}
