//! Engine performance goals (issue 3), each reported as a ratio against a
//! baseline measured in the same run, because the machine is shared and noisy.
//!
//! Run: `cargo bench -p dbos-engine --bench engine`
//! Quick (CI, well under a minute): `DBOS_BENCH_QUICK=1 cargo bench -p dbos-engine --bench engine`
//! The databases go to a temporary folder (in `$DBOS_BENCH_DIR` if set, else
//! the system temporary folder); it should be on a real disk, since commits
//! are synced.
//!
//! Goals:
//! 1. commit of a one-file change (autocommit, 100-byte file) vs a bare
//!    SQLite INSERT + COMMIT (WAL, synchronous=FULL): <= 2x.
//! 2. 10,000 small files in one transaction vs bare SQLite inserts of
//!    (path, bytes) in one transaction: <= 2x.
//! 3. point read as of a random past transaction with 10^4, 10^5, 10^6
//!    versions of history: growth per 10x <= 1.5x.
//! 4. 1,000 one-line edits (autocommits) of a 1 MiB text file: database
//!    growth < 5 MiB (after a WAL checkpoint).

mod support;
use support::*;

use dbos_engine::{Actor, Engine, VPath};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::{Duration, Instant};

/// Problem sizes; `DBOS_BENCH_QUICK=1` shrinks them.
struct Sizes {
    quick: bool,
    commit_warmup: usize,
    commit_iters: usize,
    bulk_files: usize,
    bulk_rounds: usize,
    history_keys: usize,
    history_sizes: Vec<usize>,
    read_batches: usize,
    reads_per_batch: usize,
    text_bytes: usize,
    edits: usize,
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
                history_keys: 1_000,
                history_sizes: vec![10_000, 100_000],
                read_batches: 8,
                reads_per_batch: 250,
                text_bytes: 1 << 20,
                edits: 100,
            }
        } else {
            Sizes {
                quick,
                commit_warmup: 30,
                commit_iters: 500,
                bulk_files: 10_000,
                bulk_rounds: 5,
                history_keys: 1_000,
                history_sizes: vec![10_000, 100_000, 1_000_000],
                read_batches: 20,
                reads_per_batch: 500,
                text_bytes: 1 << 20,
                edits: 1_000,
            }
        }
    }
}

// ----- small helpers ---------------------------------------------------------

/// A bare SQLite database with the engine's durability settings.
fn baseline_db(path: &Path) -> BenchResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS files(path TEXT NOT NULL, data BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS blobs(path TEXT PRIMARY KEY, data BLOB NOT NULL);",
    )?;
    Ok(conn)
}

fn baseline_insert(conn: &mut Connection, path: &str, data: &[u8]) -> BenchResult<()> {
    let tx = conn.transaction()?;
    tx.prepare_cached("INSERT INTO files(path, data) VALUES (?1, ?2)")?
        .execute(params![path, data])?;
    tx.commit()?;
    Ok(())
}

/// Checkpoint the WAL into the database (truncating it) through a separate
/// connection, then return the size of the database file plus its WAL.
fn checkpointed_size(path: &Path) -> BenchResult<u64> {
    let conn = Connection::open(path)?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        return Err("wal_checkpoint(TRUNCATE) was blocked".into());
    }
    drop(conn);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(size(path) + size(Path::new(&wal)))
}

// ----- goal 1: one-file commit -----------------------------------------------

fn goal_commit(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let mut engine = open_engine(&dir.join("g1-engine.db"))?;
    let mut base = baseline_db(&dir.join("g1-sqlite.db"))?;
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
            let (_, info) = r?;
            info.ok_or("the one-file commit recorded no transaction")?;
            Ok(d)
        };
        let run_base = |base: &mut Connection| -> BenchResult<Duration> {
            let (r, d) = time(|| baseline_insert(base, "/f", &bytes));
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
        "goal 1 one-file commit ({} iters, 100 B, WAL+FULL): engine median {} p99 {} | \
         sqlite INSERT+COMMIT median {} p99 {} | ratio median {:.2}x p99 {:.2}x | goal <= 2x: {}",
        sz.commit_iters,
        fmt_dur(em),
        fmt_dur(ep),
        fmt_dur(bm),
        fmt_dur(bp),
        r,
        ratio(ep, bp),
        verdict(r <= 2.0)
    );
    Ok(())
}

// ----- goal 2: many small files in one transaction ---------------------------

fn goal_bulk(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let mut engine = open_engine(&dir.join("g2-engine.db"))?;
    let mut base = baseline_db(&dir.join("g2-sqlite.db"))?;
    let actor = Actor::default();
    let mut rng = StdRng::seed_from_u64(2);
    let mut eng_t = Vec::new();
    let mut base_t = Vec::new();
    let mut commit_t = Vec::new();
    let mut total_bytes = 0usize;
    for round in 0..sz.bulk_rounds {
        let (dir_path, files) = bulk_files(&mut rng, round, sz.bulk_files);
        total_bytes = files.iter().map(|(_, b)| b.len()).sum();
        let mut run_engine = |engine: &mut Engine| -> BenchResult<Duration> {
            let (d, c) = engine_bulk_write(engine, &actor, &dir_path, &files)?;
            commit_t.push(c);
            Ok(d)
        };
        let run_base = |base: &mut Connection| -> BenchResult<Duration> {
            let (r, d) = time(|| -> BenchResult<()> {
                let tx = base.transaction()?;
                {
                    let mut stmt =
                        tx.prepare_cached("INSERT INTO files(path, data) VALUES (?1, ?2)")?;
                    for (p, bytes) in &files {
                        stmt.execute(params![p, bytes])?;
                    }
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
    let em = median(&eng_t);
    let bm = median(&base_t);
    let r = ratio(em, bm);
    let per = |d: Duration| fmt_dur(d / sz.bulk_files as u32);
    println!(
        "goal 2 {} files (100-1000 B, {:.1} MiB) in one transaction (median of {} rounds): \
         engine {} ({}/file) | sqlite inserts {} ({}/file) | ratio {:.2}x | goal <= 2x: {}",
        sz.bulk_files,
        mib(total_bytes as u64),
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
        "  info: engine bulk split: Txn::write_bytes calls {} ({}/file), commit {} ({}/file)",
        fmt_dur(em.saturating_sub(cm)),
        per(em.saturating_sub(cm)),
        fmt_dur(cm),
        per(cm)
    );
    Ok(())
}

// ----- goal 3: point reads into deep history ---------------------------------

struct HistoryDb {
    versions: usize,
    engine: Engine,
    first_tx: u64,
    head: u64,
    view_t: Vec<Duration>,
    read_t: Vec<Duration>,
    total_t: Vec<Duration>,
}

/// Build a history of `versions` file versions over `keys` files: each
/// explicit transaction rewrites every file once.
fn build_history(path: &Path, versions: usize, keys: usize) -> BenchResult<HistoryDb> {
    let mut engine = open_engine(path)?;
    let actor = Actor::default();
    let rounds = versions.div_ceil(keys);
    let names: Vec<VPath> = (0..keys).map(|k| vp(&format!("/h/k{k:04}"))).collect();
    let start = Instant::now();
    let mut first_tx = 0;
    for r in 0..rounds {
        let mut tx = engine.begin("main", &actor)?;
        if r == 0 {
            tx.mkdir(&vp("/h"), false, 0o755)?;
        }
        for (k, name) in names.iter().enumerate() {
            let body = format!("file k{k:04} version {r:07}\n");
            tx.write_bytes(name, body.as_bytes())?;
        }
        let info = tx
            .commit("history", None)?
            .ok_or("history commit recorded no transaction")?;
        if r == 0 {
            first_tx = info.id;
        }
    }
    let took = start.elapsed();
    let head = engine.head()?;
    println!(
        "  info: built {} versions ({} transactions x {} files) in {} ({:.0} versions/s), db {:.1} MiB",
        rounds * keys,
        rounds,
        keys,
        fmt_dur(took),
        (rounds * keys) as f64 / took.as_secs_f64(),
        mib(checkpointed_size(path)?)
    );
    Ok(HistoryDb {
        versions: rounds * keys,
        engine,
        first_tx,
        head,
        view_t: Vec::new(),
        read_t: Vec::new(),
        total_t: Vec::new(),
    })
}

fn goal_history(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let keys = sz.history_keys;
    let mut dbs = Vec::new();
    for &v in &sz.history_sizes {
        dbs.push(build_history(&dir.join(format!("g3-{v}.db")), v, keys)?);
    }
    let names: Vec<VPath> = (0..keys).map(|k| vp(&format!("/h/k{k:04}"))).collect();
    let mut rng = StdRng::seed_from_u64(3);
    // Warm up each database (key-id cache, statement cache, page cache).
    for db in &mut dbs {
        for name in &names {
            db.engine.view_at("main", db.head)?.read_file(name)?;
        }
    }
    // Interleave batches over the sizes so machine noise hits them alike.
    for _ in 0..sz.read_batches {
        for db in &mut dbs {
            for _ in 0..sz.reads_per_batch {
                let k = rng.gen_range(0..keys);
                let t = rng.gen_range(db.first_tx..=db.head);
                let start = Instant::now();
                let mut view = db.engine.view_at("main", t)?;
                let mid = Instant::now();
                let bytes = view.read_file(&names[k])?;
                let end = Instant::now();
                let round = (t - db.first_tx) as usize;
                let want = format!("file k{k:04} version {round:07}\n");
                if bytes != want.as_bytes() {
                    return Err(format!(
                        "history read of k{k:04} at T{t} gave {:?}, want {want:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                    .into());
                }
                db.view_t.push(mid - start);
                db.read_t.push(end - mid);
                db.total_t.push(end - start);
            }
        }
    }
    let mut parts = Vec::new();
    let mut growth = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        let (m, p) = median_p99(&db.total_t);
        parts.push(format!(
            "10^{:.0}: {} (p99 {})",
            (db.versions as f64).log10(),
            fmt_dur(m),
            fmt_dur(p)
        ));
        println!(
            "  info: {} versions: view_at median {}, read_file median {}, total median {} p99 {}",
            db.versions,
            fmt_dur(median(&db.view_t)),
            fmt_dur(median(&db.read_t)),
            fmt_dur(m),
            fmt_dur(p)
        );
        if i > 0 {
            growth.push(ratio(m, median(&dbs[i - 1].total_t)));
        }
    }
    let worst = growth.iter().copied().fold(0.0f64, f64::max);
    let growth_txt: Vec<String> = growth.iter().map(|g| format!("{g:.2}x")).collect();
    println!(
        "goal 3 point read at a random past transaction ({} files, {} reads per size, view_at + read_file): \
         {} | growth per 10x {} | goal <= 1.5x per 10x: {}",
        keys,
        sz.read_batches * sz.reads_per_batch,
        parts.join(", "),
        growth_txt.join(", "),
        verdict(worst <= 1.5)
    );
    Ok(())
}

// ----- goal 4: storage of small edits to a large file ------------------------

const WORDS: &[&str] = &[
    "the",
    "system",
    "state",
    "version",
    "branch",
    "commit",
    "file",
    "engine",
    "temporal",
    "history",
    "process",
    "config",
    "value",
    "log",
    "write",
    "read",
    "moment",
    "transaction",
    "chunk",
    "content",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
    "on",
    "a",
    "row",
    "index",
    "lineage",
    "snapshot",
    "merge",
    "tree",
    "path",
    "key",
    "space",
    "time",
    "hash",
    "database",
];

fn random_line(rng: &mut StdRng) -> String {
    let n = rng.gen_range(6..14);
    let mut line: Vec<&str> = (0..n)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect();
    let num = rng.gen_range(0..100_000).to_string();
    line.push(&num);
    line.join(" ")
}

fn goal_storage(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let db_path = dir.join("g4-engine.db");
    let mut engine = open_engine(&db_path)?;
    let mut base = baseline_db(&dir.join("g4-sqlite.db"))?;
    let actor = Actor::default();
    let mut rng = StdRng::seed_from_u64(4);
    let mut lines = Vec::new();
    let mut len = 0;
    while len < sz.text_bytes {
        let l = random_line(&mut rng);
        len += l.len() + 1;
        lines.push(l);
    }
    let render = |lines: &[String]| -> Vec<u8> {
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        out
    };
    let file = vp("/big.txt");
    let text = render(&lines);
    let text_len = text.len();
    engine.autocommit("main", &actor, "write /big.txt", |tx| {
        tx.write_bytes(&file, &text)
    })?;
    let before = checkpointed_size(&db_path)?;
    let stats = |p: &Path| -> BenchResult<(i64, i64, i64)> {
        let c = Connection::open(p)?;
        Ok(c.query_row(
            "SELECT (SELECT count(*) FROM chunks), (SELECT coalesce(sum(length(data)), 0) FROM chunks), \
             (SELECT coalesce(sum(length(manifest)), 0) FROM versions)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    };
    let (chunks0, chunk_bytes0, manifest0) = stats(&db_path)?;
    let mut eng_t = Vec::with_capacity(sz.edits);
    let mut base_t = Vec::with_capacity(sz.edits);
    for i in 0..sz.edits {
        let at = rng.gen_range(0..lines.len());
        lines[at] = random_line(&mut rng);
        let text = render(&lines);
        let (r, e) = time(|| {
            engine.autocommit("main", &actor, "edit /big.txt", |tx| {
                tx.write_bytes(&file, &text)
            })
        });
        r?.1.ok_or("an edit recorded no transaction")?;
        // Baseline: rewrite the whole file as one blob in place.
        let (r, b) = time(|| -> BenchResult<()> {
            let tx = base.transaction()?;
            tx.prepare_cached("INSERT OR REPLACE INTO blobs(path, data) VALUES (?1, ?2)")?
                .execute(params!["/big.txt", &text])?;
            tx.commit()?;
            Ok(())
        });
        r?;
        if i > 0 {
            eng_t.push(e);
            base_t.push(b);
        }
    }
    let after = checkpointed_size(&db_path)?;
    let (chunks1, chunk_bytes1, manifest1) = stats(&db_path)?;
    let growth = mib(after.saturating_sub(before));
    let goal = 5.0 * sz.edits as f64 / 1000.0;
    println!(
        "goal 4 {} one-line edits (autocommit) of a {:.2} MiB text file: db {:.2} -> {:.2} MiB, \
         growth {:.2} MiB ({:.1} KiB/edit) | ratio to goal {:.2}x | goal < {:.1} MiB: {}",
        sz.edits,
        mib(text_len as u64),
        mib(before),
        mib(after),
        growth,
        growth * 1024.0 / sz.edits as f64,
        growth / goal,
        goal,
        verdict(growth < goal)
    );
    println!(
        "  info: +{} chunks, +{:.2} MiB chunk data, +{:.2} MiB manifests; \
         edit commit median {} vs sqlite 1 MiB blob rewrite median {} ({:.2}x)",
        chunks1 - chunks0,
        mib((chunk_bytes1 - chunk_bytes0) as u64),
        mib((manifest1 - manifest0) as u64),
        fmt_dur(median(&eng_t)),
        fmt_dur(median(&base_t)),
        ratio(median(&eng_t), median(&base_t))
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let wanted = wanted_parts();
    let sz = Sizes::from_env();
    let dir = bench_dir()?;
    println!(
        "dbos-engine benchmarks ({} mode), databases in {}",
        if sz.quick { "quick" } else { "full" },
        dir.path().display()
    );
    let start = Instant::now();
    if wanted("1") {
        goal_commit(dir.path(), &sz)?;
    }
    if wanted("2") {
        goal_bulk(dir.path(), &sz)?;
    }
    if wanted("3") {
        goal_history(dir.path(), &sz)?;
    }
    if wanted("4") {
        goal_storage(dir.path(), &sz)?;
    }
    println!("total time {}", fmt_dur(start.elapsed()));
    Ok(())
}
