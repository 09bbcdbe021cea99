//! Black-box tests: the real `dbos-init` binary, unprivileged style, on a
//! temporary SQLite state with config rows set through the engine.

use dbos_engine::{Actor, Engine, Entry, LogFilter, ProcessRecord, ProcessState, Space, StoredLog};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Init {
    child: Child,
    db: String,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(config: &[(&str, &str)], extra: &[&str]) -> Init {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db").display().to_string();
    let sock = dir.path().join("run/log.sock");
    let mut e = Engine::open(&db).unwrap();
    if !config.is_empty() {
        e.autocommit("main", &Actor::default(), "config", |tx| {
            for (k, v) in config {
                tx.config_set(k, v)?;
            }
            Ok(())
        })
        .unwrap();
    }
    drop(e);
    let mut args = vec![
        "--state",
        &db,
        "--log-socket",
        sock.to_str().unwrap(),
        "--no-shell",
        "--stop-timeout",
        "5",
    ];
    if !extra.contains(&"--metrics-interval") {
        args.extend(["--metrics-interval", "0"]);
    }
    args.extend(extra);
    let child = Command::new(env!("CARGO_BIN_EXE_dbos-init"))
        .args(&args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let init = Init {
        child,
        db,
        sock,
        _dir: dir,
    };
    wait_for("log socket", || init.sock.exists());
    init
}

impl Init {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn logs(&self) -> Vec<StoredLog> {
        let mut e = Engine::open(&self.db).unwrap();
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        tx.logs(&LogFilter::default()).unwrap()
    }

    fn has_log(&self, source: &str, text: &str) -> bool {
        self.logs()
            .iter()
            .any(|l| l.entry.source == source && l.entry.message.contains(text))
    }

    fn processes(&self) -> Vec<ProcessRecord> {
        let mut e = Engine::open(&self.db).unwrap();
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        tx.process_list().unwrap()
    }

    fn space(&self, space: Space) -> Vec<(String, String)> {
        let mut e = Engine::open(&self.db).unwrap();
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        tx.list_space(space)
            .unwrap()
            .into_iter()
            .filter_map(|(k, e)| match e {
                Entry::Value(v) => Some((k, v)),
                _ => None,
            })
            .collect()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// SIGTERM, then the exit status (waiting generously).
    fn stop(mut self) -> (i32, Self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), self);
            }
            assert!(Instant::now() < deadline, "dbos-init did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn started_rows(init: &Init, service: &str) -> Vec<StoredLog> {
    let needle = format!("started service {service} ");
    init.logs()
        .into_iter()
        .filter(|l| l.entry.source == "init" && l.entry.message.starts_with(&needle))
        .collect()
}

#[test]
fn crashing_service_restarts_with_growing_gaps() {
    let init = start(&[("service.crash.exec", "sh -c 'exit 1'")], &[]);
    wait_for("five starts", || started_rows(&init, "crash").len() >= 5);
    let (code, init) = init.stop();
    assert_eq!(code, 0);
    let starts = started_rows(&init, "crash");
    let procs = init.processes();
    let ids: Vec<u64> = starts.iter().filter_map(|l| l.entry.process_id).collect();
    assert_eq!(ids.len(), starts.len());
    let recs: Vec<&ProcessRecord> = ids
        .iter()
        .map(|id| procs.iter().find(|p| p.id == *id).expect("process row"))
        .collect();
    for r in &recs {
        assert_eq!(r.argv, ["sh", "-c", "exit 1"]);
        assert_eq!(r.state, ProcessState::Exited);
        assert_eq!(r.exit_status, Some(1));
        assert!(r.end_us.is_some());
    }
    // Each restart waits at least its back-off: 100, 200, 400, 800 ms.
    let gaps: Vec<i64> = recs
        .windows(2)
        .map(|w| w[1].start_us - w[0].end_us.unwrap())
        .collect();
    for (i, g) in gaps.iter().take(4).enumerate() {
        let want = 100_000i64 << i;
        assert!(*g >= want * 9 / 10, "gap {i} was {g} us, want >= {want}");
    }
    assert!(gaps[3] > gaps[0], "gaps grow: {gaps:?}");
    let restarts = init
        .logs()
        .iter()
        .filter(|l| l.entry.message.starts_with("restarting service crash in"))
        .count();
    assert!(restarts >= 4);
}

#[test]
fn dependency_order_and_reload() {
    let init = start(
        &[
            ("service.c.exec", "sleep 60"),
            ("service.c.after", "b"),
            ("service.b.exec", "sleep 60"),
            ("service.b.after", "a"),
            ("service.a.exec", "sleep 60"),
            ("service.loop1.exec", "sleep 60"),
            ("service.loop1.after", "loop2"),
            ("service.loop2.exec", "sleep 60"),
            ("service.loop2.after", "loop1"),
        ],
        &[],
    );
    wait_for("c started", || !started_rows(&init, "c").is_empty());
    let first = |s: &str| started_rows(&init, s)[0].id;
    assert!(first("a") < first("b") && first("b") < first("c"));
    wait_for("cycle reported", || {
        init.has_log("init", "service loop1 not started: dependency cycle")
    });
    assert!(started_rows(&init, "loop1").is_empty());

    // SIGHUP: a new service starts, a removed one stops.
    let mut e = Engine::open(&init.db).unwrap();
    e.autocommit("main", &Actor::default(), "config", |tx| {
        tx.config_set("service.d.exec", "sleep 60")?;
        tx.config_unset("service.a.exec")
    })
    .unwrap();
    drop(e);
    init.signal(libc::SIGHUP);
    wait_for("d started", || !started_rows(&init, "d").is_empty());
    wait_for("a stopped", || init.has_log("init", "stopping service a"));
    let (code, init) = init.stop();
    assert_eq!(code, 0);
    // Stopped in reverse order: c before b.
    let stop_row = |s: &str| {
        init.logs()
            .iter()
            .find(|l| {
                l.entry
                    .message
                    .starts_with(&format!("stopping service {s} "))
            })
            .map(|l| l.id)
            .unwrap()
    };
    assert!(stop_row("c") < stop_row("b"));
    assert!(init
        .processes()
        .iter()
        .all(|p| p.state != ProcessState::Running));
}

#[test]
fn graceful_stop_keeps_every_line() {
    let init = start(
        &[(
            "service.trapper.exec",
            "sh -c 'trap \"echo final line; exit 0\" TERM; echo ready; while :; do sleep 0.1; done'",
        )],
        &[],
    );
    wait_for("ready", || init.has_log("service/trapper", "ready"));
    let client = UnixDatagram::unbound().unwrap();
    for i in 0..1000 {
        client
            .send_to(format!("<14>flood[1]: line {i:04}").as_bytes(), &init.sock)
            .unwrap();
    }
    let (code, init) = init.stop();
    assert_eq!(code, 0);
    let logs = init.logs();
    let got: std::collections::BTreeSet<&str> = logs
        .iter()
        .filter(|l| l.entry.source == "syslog/flood")
        .map(|l| l.entry.message.as_str())
        .collect();
    for i in 0..1000 {
        let want = format!("line {i:04} [facility=user pid=1]");
        assert!(got.contains(want.as_str()), "missing {want}");
    }
    assert!(init.has_log("service/trapper", "final line"));
    let p = init
        .processes()
        .into_iter()
        .find(|p| p.argv.first().map(String::as_str) == Some("sh"))
        .unwrap();
    assert_eq!((p.state, p.exit_status), (ProcessState::Exited, Some(0)));
    // Batched: far fewer transactions than lines.
    let txs: std::collections::BTreeSet<u64> = logs.iter().map(|l| l.tx).collect();
    assert!(txs.len() < 200, "{} transactions", txs.len());
    // The boot row records the end.
    let boots = init.space(Space::Boot);
    assert_eq!(boots.len(), 1);
    let b: serde_json::Value = serde_json::from_str(&boots[0].1).unwrap();
    assert_eq!(b["ended"], "signal SIGTERM");
    assert!(b["end_us"].as_i64().unwrap() >= b["start_us"].as_i64().unwrap());
    assert_eq!(b["pid1"], false);
    assert!(!init.sock.exists(), "socket removed at stop");
}

fn children_of(pid: i32) -> Vec<(i32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if f.get(1).and_then(|s| s.parse::<i32>().ok()) == Some(pid) {
            let state = f[0].chars().next().unwrap_or('?');
            out.push((p, state, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

#[test]
fn orphans_are_adopted_and_reaped() {
    let init = start(
        &[(
            "service.forker.exec",
            "sh -c '(sleep 2.345 &); echo forked; exec sleep 60'",
        )],
        &[],
    );
    let pid = init.pid();
    // The grandchild outlives its parent subshell and is adopted by dbos-init.
    wait_for("orphan adopted", || {
        children_of(pid)
            .iter()
            .any(|(_, _, cmd)| cmd.contains("sleep 2.345"))
    });
    // After it exits, nothing of dbos-init's is left a zombie.
    wait_for("orphan gone", || {
        !children_of(pid)
            .iter()
            .any(|(_, _, cmd)| cmd.contains("sleep 2.345"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let zombies: Vec<_> = children_of(pid)
        .into_iter()
        .filter(|(_, s, _)| *s == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    let (code, _) = init.stop();
    assert_eq!(code, 0);
}

fn logger(sock: &Path, args: &[&str]) {
    let st = Command::new("logger")
        .arg("-u")
        .arg(sock)
        .args(args)
        .status()
        .expect("logger(1) from bsdutils");
    assert!(st.success());
}

#[test]
fn syslog_from_logger_and_malformed_datagrams() {
    let init = start(&[], &[]);
    logger(
        &init.sock,
        &[
            "--rfc3164",
            "-t",
            "app3164",
            "-p",
            "daemon.err",
            "hello 3164",
        ],
    );
    logger(
        &init.sock,
        &[
            "--rfc5424",
            "-t",
            "app5424",
            "--msgid",
            "MID",
            "--sd-id",
            "ex@32473",
            "--sd-param",
            "k=\"v\"",
            "hello 5424",
        ],
    );
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(b"no pri \xff\xfe here", &init.sock).unwrap();
    client.send_to(b"<999>too high", &init.sock).unwrap();
    client.send_to(b"", &init.sock).unwrap();
    client.send_to(b"<13>1 - h", &init.sock).unwrap();
    client.send_to(b"<13>after: garbage", &init.sock).unwrap();
    wait_for("last datagram", || init.has_log("syslog/after", "garbage"));
    let logs = init.logs();
    let find = |src: &str, text: &str| {
        logs.iter()
            .find(|l| l.entry.source == src && l.entry.message.contains(text))
            .unwrap_or_else(|| panic!("no {src} row with {text:?}: {logs:#?}"))
    };
    let a = find("syslog/app3164", "hello 3164");
    assert_eq!(a.entry.severity, 3);
    assert!(a.entry.message.contains("facility=daemon"));
    let b = find("syslog/app5424", "hello 5424");
    assert!(b.entry.message.contains("msgid=MID"));
    assert!(b.entry.message.contains("[ex@32473 k=\"v\"]"));
    for raw in ["no pri \u{fffd}\u{fffd} here", "<999>too high", "<13>1 - h"] {
        let r = find("syslog", raw);
        assert_eq!(r.entry.severity, 5);
        assert_eq!(r.entry.message, raw);
    }
    let (code, _) = init.stop();
    assert_eq!(code, 0);
}

#[test]
fn metrics_are_sampled() {
    let init = start(&[], &["--metrics-interval", "1"]);
    wait_for("three samples", || init.space(Space::Metric).len() >= 3);
    let (code, init) = init.stop();
    assert_eq!(code, 0);
    let rows = init.space(Space::Metric);
    let mut last = 0;
    for (k, v) in &rows {
        let s: dbos_init::metrics::Sample = serde_json::from_str(v).unwrap();
        assert_eq!(k, &dbos_init::metrics::metric_key(s.time_us));
        assert!(s.time_us > last);
        last = s.time_us;
        assert!(s.mem_total_kb > 0 && s.mem_available_kb <= s.mem_total_kb);
        assert!(s.processes > 0);
        assert!(s.db_bytes.unwrap() > 0);
    }
    let gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].0.parse::<i64>().unwrap() - w[0].0.parse::<i64>().unwrap())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 900_000), "{gaps:?}");
}

#[test]
fn poweroff_request_on_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let mut init = start(
        &[("service.s.exec", "sleep 60")],
        &["--control-socket", ctl.to_str().unwrap()],
    );
    wait_for("s started", || !started_rows(&init, "s").is_empty());
    dbos_init::control::send(&ctl, dbos_init::control::Request::Poweroff).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(st) = init.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "no stop after poweroff");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let b: serde_json::Value = serde_json::from_str(&init.space(Space::Boot)[0].1).unwrap();
    assert_eq!(b["ended"], "poweroff");
    assert!(init
        .processes()
        .iter()
        .all(|p| p.state != ProcessState::Running));
}

#[test]
fn as_of_boot_is_read_only_and_uses_past_config() {
    let init = start(&[("service.old.exec", "sleep 60")], &[]);
    let (_, init) = init.stop();
    let mut e = Engine::open(&init.db).unwrap();
    let past = e.head().unwrap();
    e.autocommit("main", &Actor::default(), "config", |tx| {
        tx.config_unset("service.old.exec")?;
        tx.config_set("service.new.exec", "sleep 60")
    })
    .unwrap();
    let head = e.head().unwrap();
    drop(e);
    let child = Command::new(env!("CARGO_BIN_EXE_dbos-init"))
        .args(["--state", &init.db, "--no-shell", "--metrics-interval", "0"])
        .args(["--log-socket", init.sock.to_str().unwrap()])
        .args(["--as-of", &format!("T{past}")])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("socket", || init.sock.exists());
    // The past config's service runs: a sleep child of this dbos-init.
    let pid = child.id() as i32;
    wait_for("old service", || {
        children_of(pid)
            .iter()
            .any(|(_, _, c)| c.contains("sleep 60"))
    });
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("started service old"), "{err}");
    assert!(!err.contains("started service new"), "{err}");
    // Nothing was written.
    assert_eq!(Engine::open(&init.db).unwrap().head().unwrap(), head);
}

/// The `dbos` shell binary, built beside dbos-init (built here when a
/// narrower `cargo test -p dbos-init` did not).
fn dbos_shell() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_dbos-init")).with_file_name("dbos");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let ok = Command::new(cargo)
            .args(["build", "-q", "-p", "dbos-shell", "--bin", "dbos"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the dbos shell");
    }
    bin
}

#[test]
fn poweroff_and_reboot_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("ctl");
    let shell = |db: &str, cmd: &str| {
        Command::new(dbos_shell())
            .args(["--db", db, "-c", cmd])
            .env("DBOS_INIT_CONTROL", &ctl)
            .output()
            .unwrap()
    };
    // Nobody listening: a clear error, a failed status.
    let lonely = dir.path().join("lonely.db").display().to_string();
    let out = shell(&lonely, "poweroff");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "no dbos-init is running (no control socket at {})",
            ctl.display()
        )),
        "{err}"
    );

    for (word, ended) in [("poweroff", "poweroff"), ("reboot", "reboot")] {
        let mut init = start(
            &[("service.s.exec", "sleep 60")],
            &["--control-socket", ctl.to_str().unwrap()],
        );
        wait_for("s started", || !started_rows(&init, "s").is_empty());
        let out = shell(&init.db, word);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let code = loop {
            if let Some(st) = init.child.try_wait().unwrap() {
                break st.code();
            }
            assert!(Instant::now() < deadline, "no stop after {word}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(code, Some(0));
        let boots = init.space(Space::Boot);
        let b: serde_json::Value = serde_json::from_str(&boots[0].1).unwrap();
        assert_eq!(b["ended"], ended);
        assert!(init.has_log("init", "stopping service s"));
        assert!(init
            .processes()
            .iter()
            .all(|p| p.state != ProcessState::Running));
    }
}

/// Whether these tests run as root (services may then switch user).
fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn services_run_as_their_user() {
    let init = start(
        &[
            ("service.who.exec", "sh -c 'id -u; id -g; id -un'"),
            ("service.who.user", "nobody"),
            ("service.who.restart", "never"),
            ("service.ghost.exec", "true"),
            ("service.ghost.user", "no-such-user-dbos"),
        ],
        &[],
    );
    wait_for("ghost refused", || {
        init.has_log(
            "init",
            "not starting service ghost: user no-such-user-dbos: no such user",
        )
    });
    if is_root() {
        wait_for("who's output", || init.has_log("service/who", "nobody"));
        let nobody = dbos_procs::user::lookup("nobody").unwrap();
        assert!(init.has_log("service/who", &nobody.uid.to_string()));
        let who = init
            .processes()
            .into_iter()
            .find(|p| p.argv.first().is_some_and(|a| a == "sh"))
            .expect("who's row");
        assert_eq!(who.user, "nobody");
    } else {
        wait_for("who refused", || {
            init.has_log(
                "init",
                "not starting service who: user nobody: running a program as another user needs root",
            )
        });
    }
    let (code, init) = init.stop();
    assert_eq!(code, 0);
    // Neither refused service was retried.
    let starts = |name: &str| {
        init.logs()
            .iter()
            .filter(|l| {
                l.entry
                    .message
                    .starts_with(&format!("not starting service {name}"))
            })
            .count()
    };
    assert_eq!(starts("ghost"), 1);
    let ghost = init
        .processes()
        .into_iter()
        .find(|p| p.argv == ["true"])
        .expect("ghost's failed row");
    assert_eq!(ghost.state, ProcessState::Failed);
}
