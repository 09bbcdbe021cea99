//! Shell benchmarks, each a ratio against a baseline measured in the same
//! run (the machine is shared and noisy):
//! 1. parse + dispatch of `echo x > /f` against the whole autocommit of it;
//! 2. `dbos -c 'ls /'` start-up on a database of 100,000 files against
//!    `sqlite3 DB 'select 1'`.
//!
//! `cargo bench -p dbos-shell --bench shell` (DBOS_BENCH_QUICK=1 for a
//! smaller run).

use dbos_engine::{Actor, Engine, VPath};
use dbos_shell::exec::{run_unit, Streams};
use dbos_shell::session::Session;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn parse_and_dispatch(quick: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    let engine = Engine::open(db.to_str().expect("utf8")).expect("open");
    let mut sess = Session::new(engine, "main", Actor::default()).expect("session");
    let n = if quick { 100 } else { 500 };
    let line = "echo x > /f";
    // Parse + dispatch: parsing, expansion-free lookup of the command and
    // its clap argument parsing, without touching the database.
    let mut parse = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let script = dbos_shell::lang::parse_script(line).expect("parse");
        let spec = dbos_shell::commands::find("echo").expect("echo");
        std::hint::black_box((&script, &spec.name));
        let cmd = (spec.command)();
        let m = cmd.try_get_matches_from(["echo", "x"]).expect("args");
        std::hint::black_box(m);
        parse.push(t.elapsed());
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut whole = Vec::with_capacity(n);
    for _ in 0..n {
        let mut io = Streams {
            out: &mut out,
            err: &mut err,
            out_is_tty: false,
        };
        let t = Instant::now();
        let st = run_unit(&mut sess, line, &mut io);
        whole.push(t.elapsed());
        assert_eq!(st, 0);
    }
    let (p, w) = (median(parse), median(whole));
    println!(
        "parse+dispatch of `{line}`: {:?} median; whole autocommit: {:?} median; ratio {:.1}% (goal < 10%)",
        p,
        w,
        100.0 * p.as_secs_f64() / w.as_secs_f64()
    );
}

fn startup(quick: bool) {
    let files = if quick { 10_000 } else { 100_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    {
        let mut e = Engine::open(db.to_str().expect("utf8")).expect("open");
        let a = Actor::default();
        let per_dir = 1000;
        for d in 0..files / per_dir {
            let mut tx = e.begin("main", &a).expect("begin");
            let dpath = VPath::parse(&format!("/d{d:03}")).expect("path");
            tx.mkdir(&dpath, false, 0o755).expect("mkdir");
            for f in 0..per_dir {
                let p = dpath.join(&format!("f{f}")).expect("path");
                tx.write_bytes(&p, format!("file {d} {f}\n").as_bytes())
                    .expect("write");
            }
            tx.commit("fill", None).expect("commit");
        }
    }
    let dbos = env!("CARGO_BIN_EXE_dbos");
    let runs = if quick { 5 } else { 21 };
    let time = |cmd: &mut Command| -> Duration {
        let mut v = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let o = cmd.output().expect("run");
            v.push(t.elapsed());
            assert!(o.status.success(), "{:?}", o);
        }
        median(v)
    };
    let ours = time(Command::new(dbos).arg("--db").arg(&db).args(["-c", "ls /"]));
    let has_sqlite = Command::new("sqlite3").arg("-version").output().is_ok();
    if !has_sqlite {
        println!(
            "startup: dbos -c 'ls /' {:?}; sqlite3 not installed, no ratio",
            ours
        );
        return;
    }
    let base = time(Command::new("sqlite3").arg(&db).arg("select 1"));
    println!(
        "startup with {files} files: dbos -c 'ls /' {:?}, sqlite3 DB 'select 1' {:?}: ratio {:.2}x (goal < 3x)",
        ours,
        base,
        ours.as_secs_f64() / base.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::var("DBOS_BENCH_QUICK").is_ok_and(|v| v == "1");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    parse_and_dispatch(quick);
    startup(quick);
}
