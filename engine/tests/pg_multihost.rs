//! PostgreSQL across machines and failures (issue 6).
//!
//! All tests here need a PostgreSQL server (`DBOS_TEST_PG`, printed by
//! `tests/pg/start`) and are skipped, loudly, without one. Most of them
//! also start clusters of their own (as the `postgres` user through
//! `runuser`, so they need root) and the two-host test needs `ip netns`.
//!
//! - `two_hosts_write_one_state_over_tcp`: two network namespaces joined by a
//!   veth pair, a PostgreSQL server in the first, writers in both talking
//!   TCP to it at once: nothing lost, conflicts reported, ids in commit order,
//!   periods' system time agreeing with commit order.
//! - `server_killed_during_commits_loses_nothing_acknowledged`: a writer of
//!   large multi-file transactions while its server is SIGKILLed and restarted
//!   several times: every acknowledged transaction whole, none partial, a
//!   clear error (never a panic) and a reconnect each time.
//! - `lost_commit_reply_is_not_reported_as_rolled_back`: the connection drops
//!   after the server received `COMMIT` but before the reply (a proxy cuts it).
//! - `connection_errors_are_clear`, `extension_permission_error_is_not_reported_as_missing`,
//!   `passwords_from_url_env_and_pgpass`, `unix_socket_connection_works`:
//!   what a user sees when connecting fails, and the ways a password is found.
//!
//! Limitation: namespaces made by `ip netns` share the UTS namespace, so both
//! "hosts" record the machine's host name; the host column is checked to be
//! that name, and the side a transaction came from is told by its author.
//!
//! Children: the test binary re-executes itself (as `concurrency.rs` does);
//! with `DBOS_PGMH_CHILD=<role>` set, `pgmh_child` plays that role and
//! reports on stdout in lines starting with `@@ `.

mod common;

use dbos_engine::{Actor, Engine, Error, TxId, TxInfo, VPath};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DBOS_PGMH_CHILD";
const DB_ENV: &str = "DBOS_PGMH_DB";
const ID_ENV: &str = "DBOS_PGMH_ID";
const COUNT_ENV: &str = "DBOS_PGMH_COUNT";
const AUTHOR_ENV: &str = "DBOS_PGMH_AUTHOR";
const ACK_ENV: &str = "DBOS_PGMH_ACKS";
const STOP_ENV: &str = "DBOS_PGMH_STOP";
const CHILD_TEST: &str = "pgmh_child";

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The two-host network; it exists only inside the namespaces the test makes.
const NET_SERVER: &str = "10.231.0.1";
const NET_CLIENT: &str = "10.231.0.2";
const NET_HBA: &str = "host all all 10.231.0.0/24 trust";

/// Files each two-host writer commits (one autocommit each).
const WRITES: usize = 100;
/// Every this many files, the writer increments `/counter`.
const INC_EVERY: usize = 4;
/// Files per transaction in the crash test, and their size.
const CRASH_FILES: usize = 12;
const CRASH_FILE_BYTES: usize = 192 * 1024;
/// Times the crash test kills the server.
const CRASH_ROUNDS: usize = 3;

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The shared server's URL, or `None` after a loud message.
fn server(test: &str) -> Option<String> {
    match std::env::var("DBOS_TEST_PG") {
        Ok(s) if !s.is_empty() => Some(s),
        _ => {
            skip(
                test,
                "DBOS_TEST_PG is not set (start a server with tests/pg/start)",
            );
            None
        }
    }
}

fn skip(test: &str, why: &str) {
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {why}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} not set"))
}

/// The variant name and message of an error, on one line.
fn describe_err(e: &Error) -> String {
    let dbg = format!("{e:?}");
    let variant: String = dbg.chars().take_while(|c| c.is_alphanumeric()).collect();
    format!("{variant} {}", e.to_string().replace('\n', " "))
}

/// Content of writer `k`'s file `i`.
fn writer_content(k: usize, i: usize) -> Vec<u8> {
    format!("writer {k} file {i}\n{}\n", "y".repeat(i % 61)).into_bytes()
}

/// Content of file `j` of generation `g` in the crash test: incompressible,
/// so each transaction carries megabytes.
fn crash_content(g: u64, j: usize) -> Vec<u8> {
    let mut out = format!("generation {g} file {j}\n").into_bytes();
    let mut s = g.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (j as u64 + 1) ^ 0x5555;
    while out.len() < CRASH_FILE_BYTES {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

// ----- the children ----------------------------------------------------------

/// The child roles (does nothing in a normal test run).
#[test]
fn pgmh_child() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    match role.as_str() {
        "writer" => writer(),
        "crasher" => crasher(),
        "connect" => connect(),
        "commit" => commit_once(),
        other => panic!("unknown role {other}"),
    }
}

/// Autocommits its own files; every `INC_EVERY`th one it also increments
/// `/counter` in an explicit read-modify-write transaction, retrying on
/// conflict.
fn writer() {
    let k: usize = env(ID_ENV).parse().unwrap();
    let count: usize = env(COUNT_ENV).parse().unwrap();
    let actor = Actor {
        author: env(AUTHOR_ENV),
        uid: 1000 + k as u32,
        gid: 1000,
    };
    let mut engine = Engine::open(&env(DB_ENV)).expect("child: open");
    say(format!("host {}", engine.host()));
    let dir = format!("/w{k}");
    engine
        .autocommit("main", &actor, &format!("mkdir {dir}"), |tx| {
            tx.mkdir(&vp(&dir), true, 0o755)
        })
        .expect("child: mkdir");
    let counter = vp("/counter");
    let (mut increments, mut conflicts) = (0u64, 0u64);
    for i in 0..count {
        let path = format!("{dir}/f{i}");
        let body = writer_content(k, i);
        let (_, info) = engine
            .autocommit("main", &actor, &format!("write {path}"), |tx| {
                tx.write_bytes(&vp(&path), &body)
            })
            .expect("child: autocommit");
        say(format!("file {i} {}", info.expect("a change").id));
        if i % INC_EVERY != 0 {
            continue;
        }
        loop {
            let mut tx = engine.begin("main", &actor).unwrap();
            let n: u64 = String::from_utf8(tx.read_file(&counter).unwrap())
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            tx.write_bytes(&counter, format!("{}\n", n + 1).as_bytes())
                .unwrap();
            // Widen the read-modify-write window so the writers do collide.
            std::thread::sleep(Duration::from_millis(10));
            match tx.commit("increment /counter", None) {
                Ok(info) => {
                    say(format!("inc {} {}", info.expect("a change").id, n + 1));
                    increments += 1;
                    break;
                }
                Err(Error::Conflict { .. }) => {
                    conflicts += 1;
                    assert!(conflicts < 10_000, "child: endless conflicts");
                }
                Err(e) => panic!("child: increment failed: {e}"),
            }
        }
    }
    say(format!("done {increments} {conflicts}"));
}

fn append_line(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("child: open the acknowledgement file");
    writeln!(f, "{line}").expect("child: acknowledge");
    f.flush().unwrap();
}

/// Commits large multi-file transactions until the stop file appears. Before
/// each commit it writes `commit G`, after it `ack G TX MICROS` (the time
/// `commit` took) to the
/// acknowledgement file; an error is written as `error G PHASE VARIANT
/// MESSAGE`, after which it reconnects (the server is being restarted).
fn crasher() {
    let url = env(DB_ENV);
    let acks = env(ACK_ENV);
    let stop = PathBuf::from(env(STOP_ENV));
    let actor = Actor::default();
    let mut g: u64 = 0;
    let mut reopen_failures = 0u64;
    let mut last_reopen_error = String::new();
    'outer: loop {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut engine = loop {
            if stop.exists() {
                break 'outer;
            }
            match Engine::open(&url) {
                Ok(e) => break e,
                Err(e) => {
                    reopen_failures += 1;
                    last_reopen_error = describe_err(&e);
                    assert!(
                        Instant::now() < deadline,
                        "child: cannot reconnect: {last_reopen_error}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        loop {
            if stop.exists() {
                break 'outer;
            }
            g += 1;
            let mut phase = "begin";
            let mut committing = Instant::now();
            let result = (|| -> Result<Option<TxInfo>, Error> {
                let mut tx = engine.begin("main", &actor)?;
                phase = "write";
                tx.mkdir(&vp("/c"), true, 0o755)?;
                for j in 0..CRASH_FILES {
                    tx.write_bytes(&vp(&format!("/c/f{j}")), &crash_content(g, j))?;
                }
                tx.config_set("crash.gen", &g.to_string())?;
                phase = "commit";
                append_line(&acks, &format!("commit {g}"));
                committing = Instant::now();
                tx.commit(&format!("gen {g}"), None)
            })();
            match result {
                Ok(info) => {
                    let id = info.expect("a change").id;
                    let took = committing.elapsed().as_micros();
                    append_line(&acks, &format!("ack {g} {id} {took}"));
                }
                Err(e) => {
                    append_line(&acks, &format!("error {g} {phase} {}", describe_err(&e)));
                    continue 'outer;
                }
            }
        }
    }
    say(format!(
        "done {g} reopen-failures {reopen_failures} last {last_reopen_error}"
    ));
}

/// Opens the database and makes one change: `ok TX`, or `err VARIANT MSG`.
fn connect() {
    let url = env(DB_ENV);
    match Engine::open(&url) {
        Ok(mut e) => {
            let (_, info) = e
                .autocommit("main", &Actor::default(), "connect", |tx| {
                    tx.write_bytes(&vp(&format!("/connected-{}", std::process::id())), b"yes\n")
                })
                .expect("child: write after connecting");
            say(format!("ok {}", info.expect("a change").id));
        }
        Err(e) => say(format!("err {}", describe_err(&e))),
    }
}

/// One autocommit writing `/lost`: `ok TX` or `err VARIANT MSG`.
fn commit_once() {
    let mut e = Engine::open(&env(DB_ENV)).expect("child: open");
    say("ready".to_string());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    match e.autocommit("main", &Actor::default(), "write /lost", |tx| {
        tx.write_bytes(&vp("/lost"), b"committed?\n")
    }) {
        Ok((_, info)) => say(format!("ok {}", info.expect("a change").id)),
        Err(err) => say(format!("err {}", describe_err(&err))),
    }
}

// ----- processes -------------------------------------------------------------

/// A child process, killed if the parent panics.
struct Proc(Option<Child>);

impl Proc {
    /// Re-execute this test binary as `role`, optionally inside a network
    /// namespace, with `vars` added to the environment.
    fn spawn(netns: Option<&str>, role: &str, vars: &[(&str, String)]) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Proc(Some(cmd.spawn().expect("spawn child")))
    }

    /// Wait for the child; panic with its output unless it succeeded.
    /// Returns its report lines (without the `@@ ` prefix) and all its output.
    fn finish(&mut self, what: &str) -> (Vec<String>, String) {
        let out: Output = self.0.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        (report_lines(&stdout), format!("{stdout}\n{stderr}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The harness may print `test pgmh_child ... ` without a newline just
/// before the first report, so look inside lines.
fn report_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find("@@ ").map(|i| l[i + 3..].trim_end().to_string()))
        .collect()
}

/// Run a command; its combined output, or an error naming it.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}): {text}", out.status))
    }
}

fn pid_alive(pid: u32) -> bool {
    // A zombie has exited already: it holds no socket, memory or lock.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ----- clusters ----------------------------------------------------------------

/// A PostgreSQL cluster of the test's own, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    listen: String,
    port: u16,
    netns: Option<String>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `initdb` (trust authentication), extra `pg_hba.conf` lines, start.
    fn create(
        listen: &str,
        port: u16,
        netns: Option<&str>,
        hba: &[&str],
    ) -> Result<Cluster, String> {
        if !Path::new(&format!("{PG_BIN}/initdb")).exists() {
            return Err(format!(
                "{PG_BIN}/initdb not found (tests/pg/start installs it)"
            ));
        }
        let tmp = tempfile::Builder::new()
            .prefix("dbos-pgmh.")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let dir = tmp.path().to_path_buf();
        run(Command::new("chown").arg("postgres").arg(&dir))?;
        run(Command::new("chmod").arg("700").arg(&dir))?;
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]))?;
        if !hba.is_empty() {
            let path = dir.join("data/pg_hba.conf");
            let mut text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            for l in hba {
                text.push_str(l);
                text.push('\n');
            }
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
        }
        let c = Cluster {
            dir,
            listen: listen.to_string(),
            port,
            netns: netns.map(str::to_string),
            _tmp: tmp,
        };
        c.start()?;
        Ok(c)
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "runuser"]);
                c
            }
            None => Command::new("runuser"),
        };
        cmd.args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"));
        cmd
    }

    fn start(&self) -> Result<(), String> {
        // pg_ctl's own output goes to a file: the server must not inherit a
        // pipe this process waits on.
        let log = self.dir.join("pg_ctl.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let status = self
            .pg_ctl()
            .args(["-w", "-t", "120", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-c listen_addresses={} -p {} -k {} -c fsync=on -c log_connections=on \
                 -c max_connections=100",
                self.listen,
                self.port,
                self.dir.display()
            ))
            .arg("start")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                self.server_log()
            ))
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Through the Unix socket: reachable from any network namespace.
    /// (`sslmode=disable`: TLS is meaningless on a Unix socket, see
    /// `unix_socket_connection_works`.)
    fn socket_url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db} sslmode=disable",
            self.dir.display(),
            self.port
        )
    }

    fn tcp_url(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.listen, self.port)
    }

    fn admin(&self, db: &str) -> postgres::Client {
        let url = format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.display(),
            self.port
        );
        postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL the postmaster and every process it started, at once (a
    /// crash of the server machine), and wait until they are gone.
    fn kill_hard(&self) -> usize {
        let pm = self.postmaster_pid().expect("postmaster.pid");
        let mut pids = vec![pm];
        pids.extend(children_of(pm));
        let mut cmd = Command::new("kill");
        cmd.arg("-KILL");
        for p in &pids {
            cmd.arg(p.to_string());
        }
        let _ = cmd.status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| pid_alive(p)) {
            assert!(Instant::now() < deadline, "killed server processes linger");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The dead postmaster may linger as a zombie until init reaps it,
        // which a new postmaster would take for a live one: remove its lock
        // files (it is dead, so they are stale).
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
        pids.len()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pm) = self.postmaster_pid() {
            if pid_alive(pm) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pm.to_string()])
                    .status();
            }
        }
    }
}

/// Two network namespaces joined by a veth pair; removed on drop.
struct NetLab {
    ns: [String; 2],
    veth: [String; 2],
}

impl NetLab {
    fn create() -> Result<NetLab, String> {
        let tag = std::process::id() % 1_000_000;
        let lab = NetLab {
            ns: [format!("dbosmh{tag}s"), format!("dbosmh{tag}c")],
            veth: [format!("dbmh{tag}s"), format!("dbmh{tag}c")],
        };
        let ip = |args: &[&str]| run(Command::new("ip").args(args)).map(|_| ());
        let (s, c) = (&lab.ns[0], &lab.ns[1]);
        let (vs, vc) = (&lab.veth[0], &lab.veth[1]);
        ip(&["netns", "add", s])?;
        ip(&["netns", "add", c])?;
        ip(&["link", "add", vs, "type", "veth", "peer", "name", vc])?;
        ip(&["link", "set", vs, "netns", s])?;
        ip(&["link", "set", vc, "netns", c])?;
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("{NET_SERVER}/24"),
            "dev",
            vs,
        ])?;
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{NET_CLIENT}/24"),
            "dev",
            vc,
        ])?;
        for (ns, v) in [(s, vs), (c, vc)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", v, "up"])?;
        }
        Ok(lab)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
        }
        // Only left in the root namespace if moving it failed.
        let _ = run(Command::new("ip").args(["link", "del", &self.veth[0]]));
    }
}

/// Everything a root-only test needs, or why not.
fn root_tools() -> Result<(), String> {
    let uid = run(Command::new("id").arg("-u")).map_err(|e| format!("id -u: {e}"))?;
    if uid.trim() != "0" {
        return Err("not running as root (runuser and ip netns need it)".to_string());
    }
    run(Command::new("id").arg("postgres")).map_err(|_| "no postgres user".to_string())?;
    Ok(())
}

// ----- checks --------------------------------------------------------------------

fn read_at(engine: &mut Engine, at: TxId, path: &str) -> Option<Vec<u8>> {
    let mut v = engine.view_at("main", at).unwrap();
    v.stat(&vp(path)).unwrap()?;
    Some(v.read_file(&vp(path)).unwrap())
}

/// No version without its transaction row, and periods' system time in
/// commit order: every version of a transaction starts at that
/// transaction's start time, starts never go back as ids grow, each
/// replaced version ends where its successor starts, and current rows
/// never end. Returns (versions checked, transactions whose recorded time
/// was clamped above their start).
fn check_periods(db: &mut postgres::Client) -> (usize, usize) {
    let orphans: i64 = db
        .query_one(
            "SELECT count(*) FROM versions_with_history v \
             WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = v.tx_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "versions without their transaction row");
    let rows = db
        .query(
            "SELECT v.tx_id, (extract(epoch FROM v.system_time_start) * 1000000)::bigint, t.time_us \
             FROM versions_with_history v JOIN transactions t ON t.id = v.tx_id \
             ORDER BY v.tx_id, v.key_id",
            &[],
        )
        .unwrap();
    let mut last: Option<(i64, i64)> = None;
    let mut clamped = BTreeSet::new();
    for r in &rows {
        let (tx, start, time_us): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert!(
            start <= time_us,
            "T{tx}: periods start {start} after the recorded commit time {time_us}"
        );
        if start < time_us {
            clamped.insert(tx);
        }
        if let Some((ltx, lstart)) = last {
            if ltx == tx {
                assert_eq!(start, lstart, "T{tx}: versions with different start times");
            } else {
                assert!(
                    start > lstart,
                    "periods system_time_start goes back from T{ltx} ({lstart}) to T{tx} ({start})"
                );
            }
        }
        last = Some((tx, start));
    }
    let gaps: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT system_time_end, lead(system_time_start) \
             OVER (PARTITION BY key_id, branch_id ORDER BY tx_id) AS next \
             FROM versions_with_history) s WHERE next IS NOT NULL AND next <> system_time_end",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        gaps, 0,
        "a replaced version does not end where its successor starts"
    );
    let open: i64 = db
        .query_one(
            "SELECT count(*) FROM versions WHERE system_time_end <> 'infinity'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "current versions with an end");
    (rows.len(), clamped.len())
}

// ----- 1. two hosts ------------------------------------------------------------------

#[test]
fn two_hosts_write_one_state_over_tcp() {
    const TEST: &str = "two_hosts_write_one_state_over_tcp";
    if is_child() || server(TEST).is_none() {
        return;
    }
    if let Err(e) = root_tools() {
        return skip(TEST, &e);
    }
    let started = Instant::now();
    let lab = match NetLab::create() {
        Ok(l) => l,
        Err(e) => return skip(TEST, &format!("ip netns / veth not permitted: {e}")),
    };
    let (ns_server, ns_client) = (lab.ns[0].clone(), lab.ns[1].clone());
    // A real link has latency; without netem the test still runs.
    let netem = run(Command::new("ip").args([
        "netns",
        "exec",
        &ns_client,
        "tc",
        "qdisc",
        "add",
        "dev",
        &lab.veth[1],
        "root",
        "netem",
        "delay",
        "1ms",
    ]))
    .is_ok();
    let cluster = Cluster::create(NET_SERVER, 5432, Some(&ns_server), &[NET_HBA])
        .expect("start the cluster in the server namespace");
    cluster
        .admin("postgres")
        .batch_execute("CREATE DATABASE dbos_mh")
        .unwrap();
    // The parent sits in neither namespace: it uses the Unix socket.
    let local = cluster.socket_url("dbos_mh");
    {
        let mut e = Engine::open(&local).unwrap();
        e.autocommit("main", &Actor::default(), "init counter", |tx| {
            tx.write_bytes(&vp("/counter"), b"0\n")
        })
        .unwrap();
    }
    let remote = cluster.tcp_url("dbos_mh");
    assert!(remote.contains(NET_SERVER));
    // Two writers on the server's machine, two on the other one.
    let places = [&ns_server, &ns_client, &ns_server, &ns_client];
    let authors: Vec<String> = places
        .iter()
        .enumerate()
        .map(|(k, ns)| {
            let side = if **ns == ns_server {
                "server"
            } else {
                "client"
            };
            format!("{side}-host-w{k}")
        })
        .collect();
    let mut children: Vec<Proc> = places
        .iter()
        .enumerate()
        .map(|(k, ns)| {
            Proc::spawn(
                Some(ns),
                "writer",
                &[
                    (DB_ENV, remote.clone()),
                    (ID_ENV, k.to_string()),
                    (COUNT_ENV, WRITES.to_string()),
                    (AUTHOR_ENV, authors[k].clone()),
                ],
            )
        })
        .collect();
    let reports: Vec<Vec<String>> = children
        .iter_mut()
        .enumerate()
        .map(|(k, c)| c.finish(&format!("writer {k}")).0)
        .collect();
    let writing = started.elapsed();

    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let mut e = Engine::open(&local).unwrap();
    let head = e.head().unwrap();
    let mut incs: Vec<(TxId, u64)> = Vec::new();
    let (mut total_incs, mut total_conflicts) = (0u64, 0u64);
    let mut expected_txs = 2; // init, counter
    let mut by_author: BTreeMap<String, BTreeSet<TxId>> = BTreeMap::new();
    for (k, lines) in reports.iter().enumerate() {
        let mut files = BTreeMap::new();
        let mut done = None;
        for l in lines {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w[0] {
                "host" => assert_eq!(w.get(1).copied(), Some(machine.as_str()), "writer {k}"),
                "file" => {
                    files.insert(
                        w[1].parse::<usize>().unwrap(),
                        w[2].parse::<TxId>().unwrap(),
                    );
                }
                "inc" => {
                    let t: TxId = w[1].parse().unwrap();
                    incs.push((t, w[2].parse().unwrap()));
                    by_author.entry(authors[k].clone()).or_default().insert(t);
                }
                "done" => done = Some((w[1].parse::<u64>().unwrap(), w[2].parse::<u64>().unwrap())),
                _ => panic!("writer {k}: unexpected report {l:?}"),
            }
        }
        let (i, c) = done.unwrap_or_else(|| panic!("writer {k} did not finish"));
        assert_eq!(
            i,
            WRITES.div_ceil(INC_EVERY) as u64,
            "writer {k}: increments"
        );
        total_incs += i;
        total_conflicts += c;
        expected_txs += 1 + WRITES + i as usize;
        assert_eq!(
            files.keys().copied().collect::<Vec<_>>(),
            (0..WRITES).collect::<Vec<_>>(),
            "writer {k}: files acknowledged"
        );
        // Every acknowledged file exists with its content, at the head and
        // from the transaction that wrote it on, and not before it.
        for (&i, &tx) in &files {
            let path = format!("/w{k}/f{i}");
            let want = writer_content(k, i);
            let info = e.tx_info(tx).unwrap();
            assert_eq!(info.command, format!("write {path}"));
            assert_eq!(info.author, authors[k], "T{tx}: author");
            by_author.entry(authors[k].clone()).or_default().insert(tx);
            assert_eq!(read_at(&mut e, head, &path), Some(want.clone()), "{path}");
            assert_eq!(read_at(&mut e, tx, &path), Some(want), "{path} at T{tx}");
            assert_eq!(read_at(&mut e, tx - 1, &path), None, "{path} before T{tx}");
        }
    }
    // No lost update: the increments, in commit order, saw 0, 1, 2, ...
    incs.sort_unstable();
    let values: Vec<u64> = incs.iter().map(|i| i.1).collect();
    assert_eq!(
        values,
        (1..=total_incs).collect::<Vec<_>>(),
        "counter values"
    );
    for &(tx, v) in &incs {
        assert_eq!(
            read_at(&mut e, tx, "/counter"),
            Some(format!("{v}\n").into_bytes())
        );
    }
    assert_eq!(
        read_at(&mut e, head, "/counter"),
        Some(format!("{total_incs}\n").into_bytes()),
        "final counter"
    );
    assert!(
        total_conflicts > 0,
        "four writers incrementing one counter over TCP never conflicted"
    );
    let log = common::checked_log(&mut e);
    assert_eq!(log.len(), expected_txs, "every commit is one transaction");
    // Every transaction records the host it came from. Namespaces made by
    // `ip netns` share the UTS namespace, so both "hosts" have the machine's
    // name: the host column is checked to be that name (and the namespace a
    // transaction came from through its author).
    for t in &log {
        assert!(!t.host.is_empty(), "T{}: empty host", t.id);
        assert_eq!(t.host, machine, "T{}: host", t.id);
    }
    // Each writer's transactions carry its author (and so the namespace it
    // ran in): its mkdir, its files and its increments, nothing else.
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for t in &log {
        *counted.entry(t.author.clone()).or_default() += 1;
    }
    for (k, a) in authors.iter().enumerate() {
        assert_eq!(
            counted.get(a).copied(),
            Some(1 + WRITES + WRITES.div_ceil(INC_EVERY)),
            "writer {k} ({a}): transactions recorded"
        );
    }
    // The writers really interleaved: each author's transactions are not one run.
    let first_client = by_author
        .iter()
        .filter(|(a, _)| a.starts_with("client"))
        .filter_map(|(_, s)| s.iter().next().copied())
        .min()
        .unwrap();
    let last_server = by_author
        .iter()
        .filter(|(a, _)| a.starts_with("server"))
        .filter_map(|(_, s)| s.iter().next_back().copied())
        .max()
        .unwrap();
    assert!(
        first_client < last_server,
        "the two hosts did not write at once"
    );
    common::assert_chain_intact(&mut e, 1);
    drop(e);
    let mut db = cluster.admin("dbos_mh");
    let (versions, clamped) = check_periods(&mut db);
    // As of each counter version's own system start time, periods shows
    // exactly that version: its time travel agrees with dbos's.
    let wrong: i64 = db
        .query_one(
            "SELECT count(*) FROM versions_with_history v JOIN keys k ON k.id = v.key_id \
             WHERE k.space = 'file' AND k.path = '/counter' AND v.tx_id <> \
             (SELECT a.tx_id FROM versions__as_of(v.system_time_start) a \
              WHERE a.key_id = v.key_id AND a.branch_id = v.branch_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0, "versions__as_of disagrees with transaction order");
    // The client namespace's writers reached the server over the veth.
    let log_text = cluster.server_log();
    for addr in [NET_SERVER, NET_CLIENT] {
        assert!(
            log_text.contains(&format!("connection received: host={addr} ")),
            "no connection from {addr} in the server log"
        );
    }
    eprintln!(
        "two hosts ({}): {} writers x {WRITES} files, {} transactions in {writing:.1?} \
         ({:.1?} in all), {total_incs} increments, {total_conflicts} conflicts retried, \
         {versions} versions checked against periods ({clamped} commit times clamped); \
         host column = {machine:?} everywhere (namespaces share the UTS namespace)",
        if netem {
            "1 ms netem delay on the client link"
        } else {
            "no netem"
        },
        places.len(),
        log.len(),
        started.elapsed()
    );
}

// ----- 2. server killed during commits -------------------------------------------------

#[derive(Debug, Default)]
struct AckFile {
    /// Generation → transaction id, acknowledged.
    acks: BTreeMap<u64, TxId>,
    /// Microseconds each acknowledged `commit` took.
    commit_us: Vec<u64>,
    /// (generation, phase, message).
    errors: Vec<(u64, String, String)>,
    /// The last line was `commit G`: a commit is in flight.
    in_commit: bool,
}

fn read_acks(path: &Path) -> AckFile {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = AckFile::default();
    for l in text.lines() {
        let w: Vec<&str> = l.splitn(4, ' ').collect();
        match w[0] {
            "commit" => out.in_commit = true,
            "ack" if w.len() == 4 => {
                out.in_commit = false;
                out.acks
                    .insert(w[1].parse().unwrap(), w[2].parse().unwrap());
                out.commit_us.push(w[3].parse().unwrap());
            }
            "error" if w.len() == 4 => {
                out.in_commit = false;
                out.errors
                    .push((w[1].parse().unwrap(), w[2].to_string(), w[3].to_string()));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn server_killed_during_commits_loses_nothing_acknowledged() {
    const TEST: &str = "server_killed_during_commits_loses_nothing_acknowledged";
    if is_child() || server(TEST).is_none() {
        return;
    }
    if let Err(e) = root_tools() {
        return skip(TEST, &e);
    }
    let started = Instant::now();
    let seed: u64 = std::env::var("DBOS_PGMH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let port = free_port();
    let cluster = Cluster::create("127.0.0.1", port, None, &[]).expect("start a dedicated cluster");
    cluster
        .admin("postgres")
        .batch_execute("CREATE DATABASE dbos_crash")
        .unwrap();
    let url = cluster.tcp_url("dbos_crash");
    drop(Engine::open(&url).unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let acks = scratch.path().join("acks");
    let stop = scratch.path().join("stop");
    let mut child = Proc::spawn(
        None,
        "crasher",
        &[
            (DB_ENV, url.clone()),
            (ACK_ENV, acks.display().to_string()),
            (STOP_ENV, stop.display().to_string()),
        ],
    );
    let wait_for = |what: &str, pred: &dyn Fn(&AckFile) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let a = read_acks(&acks);
            if pred(&a) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {a:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let mut kills = Vec::new();
    for round in 0..CRASH_ROUNDS {
        let before = read_acks(&acks).acks.len();
        let a = wait_for("acknowledged commits", &|a| a.acks.len() >= before + 3);
        // Kill somewhere inside a commit: a random point of the typical
        // (median) commit's duration after `commit G` was written.
        let mut took = a.commit_us.clone();
        took.sort_unstable();
        let typical = took[took.len() / 2].max(1_000);
        // Wait for a commit to be in flight, then kill within its window.
        let errors = wait_for("a commit in flight", &|a| a.in_commit)
            .errors
            .len();
        let delay = rng.gen_range(0..typical);
        std::thread::sleep(Duration::from_micros(delay));
        let killed = cluster.kill_hard();
        let at = read_acks(&acks);
        kills.push(format!(
            "round {round}: killed {killed} server processes {delay} us into a commit \
             (typical transaction {typical} us), {} acknowledged",
            at.acks.len()
        ));
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        cluster.start().expect("restart after the kill");
        wait_for("the writer to notice", &|a| a.errors.len() > errors);
    }
    let before = read_acks(&acks).acks.len();
    wait_for("commits after the last restart", &|a| {
        a.acks.len() >= before + 2
    });
    std::fs::write(&stop, b"stop").unwrap();
    let (reports, output) = child.finish("crash writer");
    assert!(
        !output.contains("panicked"),
        "the writer panicked:\n{output}"
    );
    let done = reports
        .iter()
        .find(|l| l.starts_with("done "))
        .unwrap_or_else(|| panic!("the writer did not finish: {output}"))
        .clone();
    let a = read_acks(&acks);

    // The errors: one per kill at least, each a clear database error naming
    // the server, never anything else.
    assert!(
        a.errors.len() >= CRASH_ROUNDS,
        "{} errors for {CRASH_ROUNDS} kills: {:?}",
        a.errors.len(),
        a.errors
    );
    let location = format!("127.0.0.1:{port}");
    for (g, phase, msg) in &a.errors {
        assert!(
            msg.starts_with("Database "),
            "gen {g} ({phase}): not a database error: {msg}"
        );
        assert!(
            msg.contains(&location),
            "gen {g} ({phase}): the error does not name the server: {msg}"
        );
        let lower = msg.to_lowercase();
        assert!(
            [
                "connection",
                "communicat",
                "terminat",
                "shut",
                "closed",
                "reset",
                "eof"
            ]
            .iter()
            .any(|w| lower.contains(w)),
            "gen {g} ({phase}): unclear error: {msg}"
        );
    }

    let mut e = Engine::open(&url).unwrap();
    let head = e.head().unwrap();
    let log = common::checked_log(&mut e);
    // Every acknowledged transaction is there, whole.
    for (&g, &tx) in &a.acks {
        let info = e.tx_info(tx).unwrap();
        assert_eq!(info.command, format!("gen {g}"), "T{tx}");
    }
    // No transaction is partial at any moment: each shows exactly one
    // generation, all of its files, and only its files.
    let mut by_gen: BTreeMap<u64, TxId> = BTreeMap::new();
    for t in log.iter().filter(|t| t.command.starts_with("gen ")) {
        let g: u64 = t.command[4..].parse().unwrap();
        assert!(
            by_gen.insert(g, t.id).is_none(),
            "generation {g} committed twice"
        );
        let mut v = e.view_at("main", t.id).unwrap();
        assert_eq!(
            v.config_get("crash.gen").unwrap(),
            Some(g.to_string()),
            "T{}: generation",
            t.id
        );
        let names: Vec<String> = v
            .read_dir(&vp("/c"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut want: Vec<String> = (0..CRASH_FILES).map(|j| format!("f{j}")).collect();
        want.sort();
        assert_eq!(names, want, "T{}: files", t.id);
        for j in 0..CRASH_FILES {
            assert!(
                v.read_file(&vp(&format!("/c/f{j}"))).unwrap() == crash_content(g, j),
                "T{}: /c/f{j} is not generation {g}: a partial transaction is visible",
                t.id
            );
        }
        drop(v);
        let writes = e.backend().tx_writes(t.id).unwrap();
        let n = writes.iter().filter(|w| w.path != "/c").count();
        assert_eq!(n, CRASH_FILES + 1, "T{}: rows written", t.id);
    }
    for (&g, &tx) in &a.acks {
        assert_eq!(by_gen.get(&g), Some(&tx), "acknowledged generation {g}");
    }
    // A commit cut by the kill either happened whole or not at all; if it
    // happened, the writer could not know (its acknowledgement was lost).
    let mut unknown = Vec::new();
    for (g, phase, msg) in &a.errors {
        if phase == "commit" && by_gen.contains_key(g) {
            unknown.push(format!(
                "gen {g} committed as T{} though the writer got: {msg}",
                by_gen[g]
            ));
        }
    }
    common::assert_chain_intact(&mut e, 1);
    drop(e);
    let mut db = cluster.admin("dbos_crash");
    let (versions, _) = check_periods(&mut db);
    eprintln!(
        "server killed {CRASH_ROUNDS} times (seed {seed}): {} acknowledged, {} transactions \
         (head T{head}), {versions} versions whole, in {:.1?}\n  {}\n  errors seen by the writer:\n    {}\n  \
         commits that happened although reported failed: {}\n  writer: {done}",
        a.acks.len(),
        log.len(),
        started.elapsed(),
        kills.join("\n  "),
        a.errors
            .iter()
            .map(|(g, p, m)| format!("gen {g} during {p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n    "),
        if unknown.is_empty() { "none".to_string() } else { unknown.join("; ") },
    );
}

// ----- 2b. the reply to COMMIT lost -------------------------------------------------------

/// A TCP proxy to the server that, once armed, forwards the next `COMMIT`
/// and then cuts the connection before the server's reply reaches the client.
struct CutProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicU32>,
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Arc<AtomicBool>,
    watch: Option<(Arc<AtomicBool>, Arc<AtomicU32>)>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        if let Some((armed, cuts)) = &watch {
            if data.windows(7).any(|w| w == b"COMMIT\0") && armed.swap(false, Ordering::SeqCst) {
                // From now on nothing goes back to the client; the server
                // gets the COMMIT and has time to perform it.
                cut.store(true, Ordering::SeqCst);
                let _ = to.write_all(data);
                std::thread::sleep(Duration::from_millis(500));
                cuts.fetch_add(1, Ordering::SeqCst);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        } else if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(data).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl CutProxy {
    fn start(upstream: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU32::new(0));
        let (a, c) = (armed.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let cut = Arc::new(AtomicBool::new(false));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (cut1, watch) = (cut.clone(), Some((a.clone(), c.clone())));
                std::thread::spawn(move || pump(client, server, cut1, watch));
                std::thread::spawn(move || pump(s2, c2, cut, None));
            }
        });
        CutProxy { port, armed, cuts }
    }
}

fn fresh_db(server: &str, tag: &str) -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "dbos_mh_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut c =
        postgres::Client::connect(server, postgres::NoTls).expect("connect to DBOS_TEST_PG");
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    (name.clone(), format!("{base}/{name}"))
}

/// `postgres://user@host:port/db` → `host:port`.
fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap().to_string()
}

#[test]
fn lost_commit_reply_is_not_reported_as_rolled_back() {
    const TEST: &str = "lost_commit_reply_is_not_reported_as_rolled_back";
    let Some(server) = server(TEST) else { return };
    if is_child() {
        return;
    }
    let (name, url) = fresh_db(&server, "cut");
    let _cleanup = Cleanup {
        server: server.clone(),
        sql: vec![format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")],
    };
    drop(Engine::open(&url).unwrap());
    let proxy = CutProxy::start(host_port(&url));
    // Plain text, so the proxy can see the COMMIT go by.
    let via = format!(
        "{}?sslmode=disable",
        url.replace(&host_port(&url), &format!("127.0.0.1:{}", proxy.port))
    );
    let mut child = Proc::spawn(None, "commit", &[(DB_ENV, via)]);
    // Arm only once the child is connected and migrated.
    let stdout = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut before = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l.contains("@@ ready") {
            break;
        }
        before.push(l);
        assert!(
            before.len() < 100,
            "the child never became ready: {before:?}"
        );
    }
    proxy.armed.store(true, Ordering::SeqCst);
    drop(child.0.as_mut().unwrap().stdin.take());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.0.take().unwrap().wait().unwrap();
    assert!(status.success(), "the child failed: {rest:?}");
    let report = report_lines(&rest.join("\n")).join(" ");
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy never cut a COMMIT"
    );
    let mut e = Engine::open(&url).unwrap();
    let head = e.head().unwrap();
    let committed = read_at(&mut e, head, "/lost").is_some();
    eprintln!("commit reply lost: the writer got {report:?}; committed on the server: {committed}");
    assert!(report.starts_with("err Database"), "{report}");
    assert!(
        !(committed && report.contains("rolled back")),
        "the transaction committed, but the error says it was rolled back: {report}"
    );
}

// ----- 3. connection errors -----------------------------------------------------------

fn open_err(url: &str) -> String {
    match Engine::open(url) {
        Ok(_) => panic!("{url}: opened, but should have failed"),
        Err(Error::Database(m)) => m,
        Err(e) => panic!("{url}: not a database error: {e:?}"),
    }
}

/// Drops the test roles and databases at the end.
struct Cleanup {
    server: String,
    sql: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.server, postgres::NoTls) {
            for s in self.sql.iter().rev() {
                let _ = c.batch_execute(s);
            }
        }
    }
}

/// A database owned by postgres that role `role` may connect to, prepared
/// by `grants` (run in the new database).
fn restricted_db(server: &str, role: &str, grants: &[String], cleanup: &mut Cleanup) -> String {
    let (name, url) = fresh_db(server, "np");
    cleanup
        .sql
        .push(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    let mut c = postgres::Client::connect(server, postgres::NoTls).unwrap();
    c.batch_execute(&format!("REVOKE CREATE ON DATABASE {name} FROM PUBLIC"))
        .unwrap();
    let mut d = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for g in grants {
        d.batch_execute(&g.replace("{db}", &name)).unwrap();
    }
    url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1)
}

fn create_role(server: &str, role: &str, extra: &str, cleanup: &mut Cleanup) {
    let mut c = postgres::Client::connect(server, postgres::NoTls).unwrap();
    let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
    c.batch_execute(&format!("CREATE ROLE {role} LOGIN {extra}"))
        .unwrap();
    cleanup.sql.insert(0, format!("DROP ROLE IF EXISTS {role}"));
}

#[test]
fn connection_errors_are_clear() {
    const TEST: &str = "connection_errors_are_clear";
    if is_child() {
        return;
    }
    let Some(server) = server(TEST) else { return };

    // Nobody listens: the message names host and port, and why.
    let t = Instant::now();
    let msg = open_err("postgres://x@127.0.0.1:1/db");
    let took = t.elapsed();
    eprintln!("unreachable ({took:.1?}): {msg}");
    assert!(msg.contains("127.0.0.1:1/"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let msg = open_err("postgres://x@127.0.0.1:1/db?connect_timeout=1");
    assert!(msg.contains("127.0.0.1:1/"), "{msg}");
    let msg = open_err("postgres://x@:::nonsense");
    assert!(msg.contains("connection string"), "{msg}");

    // A database where CREATE EXTENSION fails: a role without the CREATE
    // privilege on the database (the package cannot be removed here).
    let mut cleanup = Cleanup {
        server: server.clone(),
        sql: Vec::new(),
    };
    let role = format!("nopriv_{}", std::process::id());
    create_role(&server, &role, "", &mut cleanup);
    // As the brief has it: no CREATE on the database, none on schema public.
    let url = restricted_db(&server, &role, &[], &mut cleanup);
    let where_ = url
        .split_once('?')
        .map(|(u, _)| u)
        .unwrap_or(&url)
        .to_string();
    let msg = open_err(&url);
    eprintln!("no CREATE privilege at all: {msg}");
    assert!(
        msg.contains(&where_),
        "the error does not name the server ({where_}): {msg}"
    );
    assert!(msg.contains("permission denied"), "{msg}");
    // Tables may be created, extensions not: CREATE EXTENSION itself fails.
    let url = restricted_db(
        &server,
        &role,
        &[format!("GRANT CREATE ON SCHEMA public TO {role}")],
        &mut cleanup,
    );
    let msg = open_err(&url);
    eprintln!("CREATE on schema public only: {msg}");
    assert!(
        msg.contains(&url),
        "the error does not name the server ({url}): {msg}"
    );
    assert!(msg.contains("extension"), "{msg}");
    assert!(msg.contains("permission denied"), "{msg}");
    assert!(!msg.contains("not installed"), "{msg}");
}

#[test]
fn extension_permission_error_is_not_reported_as_missing() {
    const TEST: &str = "extension_permission_error_is_not_reported_as_missing";
    if is_child() {
        return;
    }
    let Some(server) = server(TEST) else { return };
    let mut cleanup = Cleanup {
        server: server.clone(),
        sql: Vec::new(),
    };
    let role = format!("noext_{}", std::process::id());
    create_role(&server, &role, "", &mut cleanup);
    // CREATE on the database and the schema: the trusted btree_gist would
    // install, the untrusted periods needs a superuser.
    let url = restricted_db(
        &server,
        &role,
        &[
            format!("GRANT CREATE ON DATABASE {{db}} TO {role}"),
            format!("GRANT CREATE ON SCHEMA public TO {role}"),
        ],
        &mut cleanup,
    );
    let msg = open_err(&url);
    eprintln!("not a superuser: {msg}");
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("permission denied"), "{msg}");
    assert!(
        !msg.contains("not installed"),
        "the extension is installed; the role may not create it: {msg}"
    );
}

/// Restores `pg_hba.conf` of the shared cluster and reloads it.
struct HbaGuard {
    path: PathBuf,
    original: String,
    server: String,
}

impl Drop for HbaGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.original);
        if let Ok(mut c) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = c.batch_execute("SELECT pg_reload_conf()");
        }
    }
}

#[test]
fn passwords_from_url_env_and_pgpass() {
    const TEST: &str = "passwords_from_url_env_and_pgpass";
    if is_child() {
        return;
    }
    let Some(server) = server(TEST) else { return };
    let Some(dir) = std::env::var_os("DBOS_TEST_PG_DIR").filter(|d| !d.is_empty()) else {
        return skip(
            TEST,
            "DBOS_TEST_PG_DIR (the shared cluster's folder, printed by tests/pg/start) is not set",
        );
    };
    let hba = PathBuf::from(dir).join("data/pg_hba.conf");
    let original =
        std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("{}: {e}", hba.display()));
    let mut cleanup = Cleanup {
        server: server.clone(),
        sql: Vec::new(),
    };
    let right = format!("Right-{}-pw", std::process::id());
    let wrong = format!("Wr0ng-{}-secret", std::process::id());
    // A superuser, so that it can create the periods extension.
    create_role(
        &server,
        "pwuser",
        &format!("SUPERUSER PASSWORD '{right}'"),
        &mut cleanup,
    );
    let _guard = HbaGuard {
        path: hba.clone(),
        original: original.clone(),
        server: server.clone(),
    };
    std::fs::write(
        &hba,
        format!("host all pwuser 127.0.0.1/32 scram-sha-256\n{original}"),
    )
    .unwrap();
    postgres::Client::connect(&server, postgres::NoTls)
        .unwrap()
        .batch_execute("SELECT pg_reload_conf()")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (name, url) = fresh_db(&server, "pw");
    cleanup
        .sql
        .push(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    let hp = host_port(&url);
    let plain = format!("postgres://pwuser@{hp}/{name}");
    let with = |pw: &str| format!("postgres://pwuser:{pw}@{hp}/{name}");
    let home = tempfile::tempdir().unwrap();
    let empty_home = tempfile::tempdir().unwrap();
    let attempt = |what: &str, url: &str, pgpassword: Option<&str>, home: &Path| -> String {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "connect")
            .env(DB_ENV, url)
            .env("HOME", home)
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env_remove("PGUSER");
        if let Some(pw) = pgpassword {
            cmd.env("PGPASSWORD", pw);
        }
        let mut p = Proc(Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let (lines, all) = p.finish(what);
        for secret in [&right, &wrong] {
            assert!(
                !all.contains(secret.as_str()),
                "{what}: the password was printed:\n{all}"
            );
        }
        let line = lines.first().cloned().unwrap_or_default();
        eprintln!("{what}: {line}");
        line
    };
    let is_auth_error = |line: &str| {
        line.starts_with("err Database")
            && line.contains(&format!("pwuser@{hp}/{name}"))
            && line.contains("password")
    };
    let r = attempt(
        "wrong password in the URL",
        &with(&wrong),
        None,
        empty_home.path(),
    );
    assert!(is_auth_error(&r), "{r}");
    assert!(r.contains("authentication failed"), "{r}");
    let r = attempt("wrong PGPASSWORD", &plain, Some(&wrong), empty_home.path());
    assert!(is_auth_error(&r), "{r}");
    let r = attempt("no password anywhere", &plain, None, empty_home.path());
    assert!(is_auth_error(&r), "{r}");
    let r = attempt(
        "right password in the URL",
        &with(&right),
        None,
        empty_home.path(),
    );
    assert!(r.starts_with("ok "), "{r}");
    let r = attempt("right PGPASSWORD", &plain, Some(&right), empty_home.path());
    assert!(r.starts_with("ok "), "{r}");
    let port = hp.rsplit_once(':').unwrap().1;
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("# dbos test\n127.0.0.1:{port}:{name}:pwuser:{right}\n"),
    )
    .unwrap();
    run(Command::new("chmod").arg("600").arg(&pgpass)).unwrap();
    let r = attempt("~/.pgpass", &plain, None, home.path());
    assert!(r.starts_with("ok "), "{r}");
    // PGPASSWORD wins over ~/.pgpass, as with libpq.
    let r = attempt(
        "wrong PGPASSWORD, right ~/.pgpass",
        &plain,
        Some(&wrong),
        home.path(),
    );
    assert!(is_auth_error(&r), "{r}");
}

#[test]
fn unix_socket_connection_works() {
    const TEST: &str = "unix_socket_connection_works";
    if is_child() {
        return;
    }
    let Some(server) = server(TEST) else { return };
    let Some(dir) = std::env::var_os("DBOS_TEST_PG_DIR").filter(|d| !d.is_empty()) else {
        return skip(
            TEST,
            "DBOS_TEST_PG_DIR (the shared cluster's folder) is not set",
        );
    };
    let (name, url) = fresh_db(&server, "sock");
    let _cleanup = Cleanup {
        server: server.clone(),
        sql: vec![format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")],
    };
    let port = host_port(&url).rsplit_once(':').unwrap().1.to_string();
    // tests/pg/start puts the server's socket in its folder (-k).
    let dir = PathBuf::from(dir);
    let socket = format!(
        "host={} port={port} user=postgres dbname={name}",
        dir.display()
    );
    let mut e = Engine::open(&socket).unwrap_or_else(|e| panic!("{socket}: {e}"));
    e.autocommit("main", &Actor::default(), "sock", |tx| {
        tx.write_bytes(&vp("/sock"), b"unix\n")
    })
    .unwrap();
    assert!(
        e.location().contains(&dir.display().to_string()),
        "{}",
        e.location()
    );
}
