//! PostgreSQL backend performance (issue 6), each figure a ratio against a
//! baseline measured in the same run on the same server, because the machine
//! is shared and noisy.
//!
//! Needs a server: `DBOS_TEST_PG` (a URL to its `postgres` database, printed
//! by `tests/pg/start`); without it the bench prints a message and exits.
//!
//! Run: `DBOS_TEST_PG=postgres://... cargo bench -p dbos-engine --bench postgres`
//! Quick: `DBOS_BENCH_QUICK=1` (fewer iterations, 2,000 files, 3 s runs).
//! Arguments pick parts (`-- 3`).
//!
//! 1. one-file autocommit (100 B) vs a bare `BEGIN; INSERT; COMMIT` through
//!    the same driver (`postgres` crate), interleaved: goal <= 2x.
//! 2. 10,000 small files in one transaction vs the same (path, bytes) rows
//!    inserted bare in one transaction: goal <= 2x.
//! 3. commits per second with 1, 4 and 16 concurrent clients (threads, each
//!    its own `Engine`, autocommits of 100 B files on its own paths), all on
//!    one branch and each on its own branch, against
//!    `pgbench -b simple-update -c N -j N -T secs` on the same server.
//! 4. `dbos db copy` of a SQLite database holding 10^5 versions (2,000
//!    transactions of 50 files of 100 B over 5,000 paths) into PostgreSQL,
//!    and of that copy back into a new SQLite file: time and versions/s,
//!    split into import and verification (no goal set; no baseline).

mod support;
use support::*;

use dbos_engine::{Actor, Engine, VPath};
use postgres::{Client, NoTls};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Problem sizes; `DBOS_BENCH_QUICK=1` shrinks them.
struct Sizes {
    quick: bool,
    commit_warmup: usize,
    commit_iters: usize,
    bulk_files: usize,
    bulk_rounds: usize,
    run_secs: u64,
    copy_txs: usize,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("DBOS_BENCH_QUICK")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if quick {
            Sizes {
                quick,
                commit_warmup: 10,
                commit_iters: 100,
                bulk_files: 2_000,
                bulk_rounds: 3,
                run_secs: 3,
                copy_txs: 200,
            }
        } else {
            Sizes {
                quick,
                commit_warmup: 30,
                commit_iters: 500,
                bulk_files: 10_000,
                bulk_rounds: 5,
                run_secs: 10,
                copy_txs: 2_000,
            }
        }
    }
}

// ----- helpers -------------------------------------------------------------------

/// Fresh databases on the server, dropped at the end.
struct Server {
    url: String,
    made: Vec<String>,
}

impl Server {
    fn fresh(&mut self, tag: &str) -> BenchResult<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dbos_bench_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Client::connect(&self.url, NoTls)?.batch_execute(&format!("CREATE DATABASE {name}"))?;
        self.made.push(name.clone());
        let base = self
            .url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&self.url);
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.url, NoTls) {
            for name in &self.made {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

fn bare_table(url: &str) -> BenchResult<Client> {
    let mut c = Client::connect(url, NoTls)?;
    c.batch_execute("CREATE TABLE IF NOT EXISTS files(path text NOT NULL, data bytea NOT NULL)")?;
    Ok(c)
}

// ----- 1: one-file commit ----------------------------------------------------------

fn goal_commit(srv: &mut Server, sz: &Sizes) -> BenchResult<()> {
    let url = srv.fresh("commit")?;
    let mut engine = Engine::open(&url)?;
    let mut base = bare_table(&url)?;
    let insert = base.prepare("INSERT INTO files(path, data) VALUES ($1, $2)")?;
    let actor = Actor::default();
    let file = vp("/f");
    let mut rng = StdRng::seed_from_u64(1);
    let mut eng_t = Vec::with_capacity(sz.commit_iters);
    let mut base_t = Vec::with_capacity(sz.commit_iters);
    for i in 0..sz.commit_warmup + sz.commit_iters {
        let bytes = random_text(&mut rng, 100);
        let run_engine = |engine: &mut Engine| -> BenchResult<Duration> {
            let (r, d) = time(|| {
                engine.autocommit("main", &actor, "write /f", |tx| {
                    tx.write_bytes(&file, &bytes)
                })
            });
            r?.1.ok_or("the one-file commit recorded no transaction")?;
            Ok(d)
        };
        let run_base = |base: &mut Client| -> BenchResult<Duration> {
            let (r, d) = time(|| -> BenchResult<()> {
                let mut tx = base.transaction()?;
                tx.execute(&insert, &[&"/f", &bytes])?;
                tx.commit()?;
                Ok(())
            });
            r?;
            Ok(d)
        };
        // Alternate the order so neither side always runs right after the other.
        let (e, b) = if i % 2 == 0 {
            let e = run_engine(&mut engine)?;
            (e, run_base(&mut base)?)
        } else {
            let b = run_base(&mut base)?;
            (run_engine(&mut engine)?, b)
        };
        if i >= sz.commit_warmup {
            eng_t.push(e);
            base_t.push(b);
        }
    }
    let (em, ep) = median_p99(&eng_t);
    let (bm, bp) = median_p99(&base_t);
    let r = ratio(em, bm);
    println!(
        "1. one-file commit ({} iters, 100 B): engine autocommit median {} p99 {} | \
         bare BEGIN+INSERT+COMMIT median {} p99 {} | ratio median {:.2}x p99 {:.2}x | \
         goal <= 2x: {}",
        sz.commit_iters,
        fmt_dur(em),
        fmt_dur(ep),
        fmt_dur(bm),
        fmt_dur(bp),
        r,
        ratio(ep, bp),
        verdict(r <= 2.0)
    );
    // Where the time goes: an empty read-only round trip, and the engine's
    // two halves (begin + write in memory, then commit).
    let mut rt = Vec::new();
    let mut work_t = Vec::new();
    let mut commit_t = Vec::new();
    for _ in 0..sz.commit_iters.min(200) {
        rt.push(time(|| base.simple_query("SELECT 1")).1);
        let bytes = random_text(&mut rng, 100);
        let t0 = Instant::now();
        let mut tx = engine.begin("main", &actor)?;
        tx.write_bytes(&file, &bytes)?;
        work_t.push(t0.elapsed());
        let (r, c) = time(|| tx.commit("write /f", None));
        r?;
        commit_t.push(c);
    }
    println!(
        "  info: one round trip (SELECT 1) {}; engine begin + write {}, commit {}",
        fmt_dur(median(&rt)),
        fmt_dur(median(&work_t)),
        fmt_dur(median(&commit_t))
    );
    Ok(())
}

// ----- 2: many small files in one transaction -----------------------------------------

fn goal_bulk(srv: &mut Server, sz: &Sizes) -> BenchResult<()> {
    let url = srv.fresh("bulk")?;
    let mut engine = Engine::open(&url)?;
    let mut base = bare_table(&url)?;
    let insert = base.prepare("INSERT INTO files(path, data) VALUES ($1, $2)")?;
    let actor = Actor::default();
    let mut rng = StdRng::seed_from_u64(2);
    let (mut eng_t, mut base_t, mut commit_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut total_bytes = 0usize;
    for round in 0..sz.bulk_rounds {
        let (dir_path, files) = bulk_files(&mut rng, round, sz.bulk_files);
        total_bytes = files.iter().map(|(_, b)| b.len()).sum();
        let mut run_engine = |engine: &mut Engine| -> BenchResult<Duration> {
            let (d, c) = engine_bulk_write(engine, &actor, &dir_path, &files)?;
            commit_t.push(c);
            Ok(d)
        };
        let run_base = |base: &mut Client| -> BenchResult<Duration> {
            let (r, d) = time(|| -> BenchResult<()> {
                let mut tx = base.transaction()?;
                for (p, bytes) in &files {
                    tx.execute(&insert, &[p, bytes])?;
                }
                tx.commit()?;
                Ok(())
            });
            r?;
            Ok(d)
        };
        let (e, b) = if round % 2 == 0 {
            let e = run_engine(&mut engine)?;
            (e, run_base(&mut base)?)
        } else {
            let b = run_base(&mut base)?;
            (run_engine(&mut engine)?, b)
        };
        eng_t.push(e);
        base_t.push(b);
    }
    let (em, bm) = (median(&eng_t), median(&base_t));
    let r = ratio(em, bm);
    let per = |d: Duration| fmt_dur(d / sz.bulk_files as u32);
    println!(
        "2. {} files (100-1000 B, {:.1} MiB) in one transaction (median of {} rounds): \
         engine {} ({}/file) | bare inserts {} ({}/file) | ratio {:.2}x | goal <= 2x: {}",
        sz.bulk_files,
        total_bytes as f64 / (1024.0 * 1024.0),
        sz.bulk_rounds,
        fmt_dur(em),
        per(em),
        fmt_dur(bm),
        per(bm),
        r,
        verdict(r <= 2.0)
    );
    let cm = median(&commit_t);
    println!(
        "  info: engine split: begin + write_bytes {} ({}/file), commit {} ({}/file)",
        fmt_dur(em.saturating_sub(cm)),
        per(em.saturating_sub(cm)),
        fmt_dur(cm),
        per(cm)
    );
    Ok(())
}

// ----- 3: concurrent clients ---------------------------------------------------------------

/// `clients` threads, each with its own engine, autocommitting 100-byte
/// files on their own paths for `secs`; on branch `main` or, with
/// `branches`, each on its own branch. Commits per second and the median
/// commit latency.
fn engine_throughput(
    url: &str,
    clients: usize,
    branches: bool,
    secs: u64,
) -> BenchResult<(f64, Duration)> {
    let mut setup = Engine::open(url)?;
    let actor = Actor::default();
    let run = format!("{}{clients}", if branches { "b" } else { "m" });
    let names: Vec<String> = (0..clients)
        .map(|i| {
            if branches {
                format!("{run}-c{i}")
            } else {
                "main".to_string()
            }
        })
        .collect();
    // Each client's folder first (on main), then the branches from there,
    // so that the measured commits never conflict.
    setup.autocommit("main", &actor, "setup", |tx| {
        for i in 0..clients {
            tx.mkdir(&vp(&format!("/{run}-c{i}")), false, 0o755)?;
        }
        Ok(())
    })?;
    let head = setup.head()?;
    if branches {
        for n in &names {
            setup.create_branch(n, "main", head)?;
        }
    }
    drop(setup);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (url, branch, barrier) = (url.to_string(), names[i].clone(), barrier.clone());
            let dir = format!("/{run}-c{i}");
            std::thread::spawn(move || -> BenchResult<(usize, Vec<Duration>)> {
                let mut engine = Engine::open(&url)?;
                let actor = Actor::default();
                let mut rng = StdRng::seed_from_u64(i as u64);
                barrier.wait();
                let start = Instant::now();
                let mut lat = Vec::new();
                while start.elapsed() < Duration::from_secs(secs) {
                    let path = vp(&format!("{dir}/f{}", lat.len()));
                    let bytes = random_text(&mut rng, 100);
                    let (r, d) = time(|| {
                        engine.autocommit(&branch, &actor, "write", |tx| {
                            tx.write_bytes(&path, &bytes)
                        })
                    });
                    r?.1.ok_or("no transaction")?;
                    lat.push(d);
                }
                Ok((lat.len(), lat))
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut total = 0;
    let mut lat = Vec::new();
    for h in handles {
        let (n, l) = h.join().map_err(|_| "a client thread panicked")??;
        total += n;
        lat.extend(l);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((total as f64 / elapsed, median(&lat)))
}

fn pgbench_bin() -> Option<String> {
    let own = "/usr/lib/postgresql/15/bin/pgbench";
    if std::path::Path::new(own).exists() {
        return Some(own.to_string());
    }
    let out = Command::new("which").arg("pgbench").output().ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then_some(p)
}

fn pgbench(bin: &str, url: &str, clients: usize, secs: u64) -> BenchResult<(f64, String)> {
    let out = Command::new(bin)
        .args(["-n", "-b", "simple-update"])
        .args(["-c", &clients.to_string(), "-j", &clients.to_string()])
        .args(["-T", &secs.to_string(), url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no tps in pgbench output: {text}"))?;
    let lat = text
        .lines()
        .find_map(|l| l.strip_prefix("latency average = "))
        .unwrap_or("?")
        .to_string();
    Ok((tps, lat))
}

fn goal_concurrency(srv: &mut Server, sz: &Sizes) -> BenchResult<()> {
    let secs = sz.run_secs;
    let bench = pgbench_bin();
    let pg_url = match &bench {
        Some(bin) => {
            let url = srv.fresh("pgbench")?;
            let out = Command::new(bin)
                .args(["-i", "-q", "-s", "1", &url])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "pgbench -i failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            Some(url)
        }
        None => {
            println!("3. pgbench not found (postgresql-contrib / postgresql-client): no baseline");
            None
        }
    };
    let url = srv.fresh("conc")?;
    println!(
        "3. commits/s, {secs} s per run, 100 B autocommits on own paths; \
         pgbench -b simple-update -c N -j N -T {secs} (scale 1):"
    );
    for clients in [1usize, 4, 16] {
        let (one, one_lat) = engine_throughput(&url, clients, false, secs)?;
        let own = if clients > 1 {
            Some(engine_throughput(&url, clients, true, secs)?)
        } else {
            None
        };
        let base = match (&bench, &pg_url) {
            (Some(bin), Some(u)) => Some(pgbench(bin, u, clients, secs)?),
            _ => None,
        };
        let mut line = format!(
            "   {clients:>2} clients: engine one branch {one:.0}/s (median {})",
            fmt_dur(one_lat)
        );
        if let Some((o, l)) = own {
            line.push_str(&format!(
                " | engine {clients} branches {o:.0}/s (median {})",
                fmt_dur(l)
            ));
        }
        if let Some((tps, lat)) = &base {
            line.push_str(&format!(
                " | pgbench {tps:.0} tps (latency {lat}) | pgbench/engine one branch {:.2}x",
                tps / one.max(1e-9)
            ));
            if let Some((o, _)) = own {
                line.push_str(&format!(", {:.2}x on branches", tps / o.max(1e-9)));
            }
        }
        println!("{line}");
    }
    Ok(())
}

// ----- 4: dbos db copy ---------------------------------------------------------------------

/// Files written by each transaction of the copied database.
const COPY_FILES_PER_TX: usize = 50;
/// Distinct paths they cycle through (each rewritten many times).
const COPY_PATHS: usize = 5_000;
/// Directories the paths are spread over.
const COPY_DIRS: usize = 50;

/// Time one `dbos db copy`, split where verification starts.
fn timed_copy(src: &str, dst: &str) -> BenchResult<(Duration, Duration, u64)> {
    let start = Instant::now();
    let mut verify_at = None;
    let report = dbos_engine::copy::copy(
        src,
        dst,
        &dbos_engine::copy::CopyOptions::default(),
        &mut |msg: &str| {
            if verify_at.is_none() && msg.starts_with("verifying") {
                verify_at = Some(start.elapsed());
            }
        },
    )?;
    let total = start.elapsed();
    Ok((total, verify_at.unwrap_or(total), report.transactions))
}

fn goal_copy(srv: &mut Server, sz: &Sizes) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("source.db");
    let src = src
        .to_str()
        .ok_or("temporary path is not UTF-8")?
        .to_string();
    let actor = Actor::default();
    let mut rng = StdRng::seed_from_u64(4);
    let (made, _) = time(|| -> BenchResult<()> {
        let mut engine = Engine::open(&src)?;
        engine.autocommit("main", &actor, "mkdir", |tx| {
            for d in 0..COPY_DIRS {
                tx.mkdir(&vp(&format!("/d{d:02}")), false, 0o755)?;
            }
            Ok(())
        })?;
        let mut next = 0usize;
        for _ in 0..sz.copy_txs {
            let files: Vec<(VPath, Vec<u8>)> = (0..COPY_FILES_PER_TX)
                .map(|_| {
                    let i = next % COPY_PATHS;
                    next += 1;
                    let path = vp(&format!("/d{:02}/f{i:04}", i % COPY_DIRS));
                    (path, random_text(&mut rng, 100))
                })
                .collect();
            engine.autocommit("main", &actor, "write", |tx| {
                for (p, b) in &files {
                    tx.write_bytes(p, b)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    });
    made?;
    let versions = sz.copy_txs * COPY_FILES_PER_TX + COPY_DIRS + 1;
    let rate = |d: Duration| versions as f64 / d.as_secs_f64().max(1e-9);
    let pg = srv.fresh("copy")?;
    let (total, import, txs) = timed_copy(&src, &pg)?;
    println!(
        "4. dbos db copy, {versions} versions in {txs} transactions: SQLite -> PostgreSQL {} \
         ({:.0} versions/s; import {} = {:.0} versions/s, verification {})",
        fmt_dur(total),
        rate(total),
        fmt_dur(import),
        rate(import),
        fmt_dur(total.saturating_sub(import))
    );
    let back = dir.path().join("back.db");
    let back = back
        .to_str()
        .ok_or("temporary path is not UTF-8")?
        .to_string();
    let (total, import, _) = timed_copy(&pg, &back)?;
    println!(
        "   PostgreSQL -> SQLite {} ({:.0} versions/s; import {} = {:.0} versions/s, verification {})",
        fmt_dur(total),
        rate(total),
        fmt_dur(import),
        rate(import),
        fmt_dur(total.saturating_sub(import))
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let Some(url) = std::env::var("DBOS_TEST_PG").ok().filter(|u| !u.is_empty()) else {
        println!(
            "postgres bench SKIPPED: set DBOS_TEST_PG to a server URL \
             (read url dir < <(tests/pg/start); DBOS_TEST_PG=$url cargo bench -p dbos-engine --bench postgres)"
        );
        return Ok(());
    };
    // `cargo bench` passes `--bench`; any other argument picks parts by number.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let sz = Sizes::from_env();
    let mut srv = Server {
        url: url.clone(),
        made: Vec::new(),
    };
    let version: String = Client::connect(&url, NoTls)?
        .query_one("SHOW server_version", &[])?
        .get(0);
    println!(
        "dbos-engine PostgreSQL benchmarks ({} mode), server {version} at {}",
        if sz.quick { "quick" } else { "full" },
        url.split('@').nth(1).unwrap_or("?")
    );
    let start = Instant::now();
    if wanted("1") {
        goal_commit(&mut srv, &sz)?;
    }
    if wanted("2") {
        goal_bulk(&mut srv, &sz)?;
    }
    if wanted("3") {
        goal_concurrency(&mut srv, &sz)?;
    }
    if wanted("4") {
        goal_copy(&mut srv, &sz)?;
    }
    println!("total time {}", fmt_dur(start.elapsed()));
    Ok(())
}
