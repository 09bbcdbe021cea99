//! Process death of the supervisor: the real `dbos-init` on an ordinary host
//! (`--state DB`, no PID 1 duties), with live services declared in config
//! rows, is SIGKILLed at random moments (while it opens the state, recovers,
//! starts services, and while it commits their output lines), then started
//! again. After every kill: the hash chain verifies; once the new run is up,
//! no process row of the killed run still says `running` (each got its
//! `lost` version, or its real end); and the services start again.
//!
//! The test process makes itself a child subreaper, so the services
//! orphaned by the kill become its children: it ends them (by pid, checking
//! that they are its own children) before the restart, as the kernel would
//! when PID 1 dies.
//!
//! Rounds: 6 by default, `DBOS_KILL_ROUNDS=<n>` for long runs.

use dbos_engine::{Actor, Engine, LogFilter, ProcessRecord, ProcessState};
use rand::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICES: [(&str, &str); 2] = [
    ("service.sleeper.exec", "sleep 600"),
    (
        "service.ticker.exec",
        "sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.01; done'",
    ),
];

fn rounds() -> usize {
    std::env::var("DBOS_KILL_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("DBOS_KILL_ROUNDS must be a number"))
        .unwrap_or(6)
}

fn start(db: &str, sock: &Path) -> Child {
    let _ = std::fs::remove_file(sock);
    Command::new(env!("CARGO_BIN_EXE_dbos-init"))
        .args(["--state", db, "--log-socket"])
        .arg(sock)
        .args([
            "--no-shell",
            "--stop-timeout",
            "5",
            "--metrics-interval",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dbos-init")
}

fn processes(db: &str) -> Vec<ProcessRecord> {
    let mut e = Engine::open(db).expect("open the state");
    let mut tx = e.begin("main", &Actor::default()).expect("begin");
    tx.process_list().expect("process rows")
}

/// Ids of the `started service NAME` log rows after log id `after`.
fn started_after(db: &str, service: &str, after: i64) -> usize {
    let mut e = Engine::open(db).expect("open the state");
    let mut tx = e.begin("main", &Actor::default()).expect("begin");
    let needle = format!("started service {service} ");
    tx.logs(&LogFilter {
        source: Some("init".to_string()),
        ..LogFilter::default()
    })
    .expect("logs")
    .into_iter()
    .filter(|l| l.id > after && l.entry.message.starts_with(&needle))
    .count()
}

fn last_log_id(db: &str) -> i64 {
    let mut e = Engine::open(db).expect("open the state");
    let mut tx = e.begin("main", &Actor::default()).expect("begin");
    tx.logs(&LogFilter {
        source: Some("init".to_string()),
        ..LogFilter::default()
    })
    .expect("logs")
    .last()
    .map_or(0, |l| l.id)
}

fn assert_verifies(db: &str) -> u64 {
    let mut e = Engine::open(db).expect("reopen after kill");
    let r = e.verify(1, &mut |_, _| {}).expect("verify");
    assert!(r.broken.is_none(), "hash chain broken: {:?}", r.broken);
    r.head
}

/// Wait until both services were started after log row `after`; how long.
fn wait_services(db: &str, after: i64, init: &mut Child) -> Duration {
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    while SERVICES.iter().any(|(k, _)| {
        let name = k.trim_start_matches("service.").trim_end_matches(".exec");
        started_after(db, name, after) == 0
    }) {
        if let Some(st) = init.try_wait().expect("try_wait") {
            panic!("dbos-init exited ({st}) before starting its services");
        }
        assert!(Instant::now() < deadline, "services did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

/// End the services the killed supervisor left behind (now our children,
/// as we are a subreaper; no supervisor runs when this is called), and
/// reap them. Gives how many there were.
fn end_orphans() -> usize {
    let me = std::process::id();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if parent_of(pid) == Some(me) {
            // SAFETY: a signal to our own child, then reaping it.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
            n += 1;
        }
    }
    n
}

#[test]
fn kill_9_of_dbos_init_with_live_services() {
    // SAFETY: prctl with integer arguments only.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db").display().to_string();
    let sock: PathBuf = dir.path().join("run/log.sock");
    {
        let mut e = Engine::open(&db).expect("create the state");
        e.autocommit("main", &Actor::default(), "config", |tx| {
            for (k, v) in SERVICES {
                tx.config_set(k, v)?;
            }
            Ok(())
        })
        .expect("service rows");
    }
    // Measure: start to both services started.
    let mut init = start(&db, &sock);
    let boot = wait_services(&db, 0, &mut init);
    let mut rng = rand::thread_rng();
    let mut points: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut lost_total, mut orphans_total) = (0, 0);
    let started = Instant::now();
    let max = boot * 3;
    for round in 0..rounds() {
        // The running supervisor (up, its services running) is killed;
        // then a fresh one after a random delay from its start.
        init.kill().expect("SIGKILL");
        assert_eq!(init.wait().expect("wait").signal(), Some(9));
        *points
            .entry("services up, committing their output")
            .or_default() += 1;
        assert_verifies(&db);
        orphans_total += end_orphans();
        let after = last_log_id(&db);
        let t = Instant::now();
        init = start(&db, &sock);
        let delay = Duration::from_micros(rng.gen_range(0..max.as_micros() as u64));
        std::thread::sleep(delay.saturating_sub(t.elapsed()));
        let exited = init.try_wait().expect("try_wait");
        assert!(exited.is_none(), "dbos-init exited: {exited:?}");
        init.kill().expect("SIGKILL");
        assert_eq!(init.wait().expect("wait").signal(), Some(9));
        let up = usize::from(started_after(&db, "sleeper", after) > 0)
            + usize::from(started_after(&db, "ticker", after) > 0);
        let point = match up {
            0 => "booting (no service started yet)",
            1 => "starting services",
            _ => "services up, committing their output",
        };
        *points.entry(point).or_default() += 1;
        assert_verifies(&db);
        let orphans = end_orphans();
        orphans_total += orphans;
        let running_before: Vec<u64> = processes(&db)
            .into_iter()
            .filter(|p| p.state == ProcessState::Running)
            .map(|p| p.id)
            .collect();
        // Start again: the killed runs' rows are handled, services start.
        let after = last_log_id(&db);
        let restart_us = now_us();
        init = start(&db, &sock);
        wait_services(&db, after, &mut init);
        let now = processes(&db);
        for p in &now {
            if p.state == ProcessState::Running {
                assert!(
                    p.start_us >= restart_us,
                    "process {} ({:?}) of a killed run still says running",
                    p.id,
                    p.argv
                );
            }
        }
        let lost = now
            .iter()
            .filter(|p| running_before.contains(&p.id) && p.state == ProcessState::Lost)
            .count();
        assert_eq!(
            lost,
            running_before.len(),
            "rows running at the kill were not all marked lost"
        );
        lost_total += lost;
        eprintln!(
            "round {round}: killed {delay:.2?} after its start ({point}); {orphans} orphans \
             ended, {lost} rows marked lost at restart"
        );
    }
    // A clean stop at the end.
    // SAFETY: a signal to our child.
    assert_eq!(unsafe { libc::kill(init.id() as i32, libc::SIGTERM) }, 0);
    let st = init.wait().expect("wait");
    assert_eq!(st.code(), Some(0), "clean stop: {st}");
    assert_eq!(end_orphans(), 0, "a clean stop leaves no service behind");
    assert_verifies(&db);
    assert!(processes(&db)
        .iter()
        .all(|p| p.state != ProcessState::Running));
    let kills: usize = points.values().sum();
    eprintln!(
        "kill-loops: dbos-init: survived {kills} kill -9 points in {:.1?} (start to services up \
         takes {boot:.2?}; delays over 0..{max:.2?}); {lost_total} rows marked lost, \
         {orphans_total} orphaned services ended; {points:?}",
        started.elapsed()
    );
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
