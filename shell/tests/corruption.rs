//! Corruption (issue 11): random bytes overwritten in a database file are
//! detected by `dbos doctor`, never turned into a panic, and never into
//! wrong data served silently.
//!
//! A database with history (an import with a multi-chunk file, edits,
//! removals, a branch) is built once, and every read command's output on it
//! recorded. Then, round after round, a copy gets random bytes overwritten
//! (random offsets and lengths, a share of them on page headers), and the
//! real binary runs `doctor` and the reads on it. None may panic. Either
//! doctor reports damage (exit 1), or every read gives exactly the
//! original output: bytes in free space may be undetectable, but they must
//! then change nothing that is served.
//!
//! Rounds: `DBOS_CORRUPTION_ROUNDS` (default 40); seed:
//! `DBOS_CORRUPTION_SEED` (default from the clock, printed).

use assert_cmd::Command;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Duration;

/// SQLite's page size for a new database (the engine keeps the default).
const PAGE: usize = 4096;

/// One run of the binary: exit status and outputs. A run that had to be
/// killed (a hang) gives code -1.
struct Out {
    code: i32,
    out: String,
    err: String,
}

fn dbos(db: &Path, home: &Path, args: &[&str]) -> Out {
    let o = Command::cargo_bin("dbos")
        .expect("dbos binary")
        .env("HOME", home)
        .env("USER", "tester")
        .env("DBOS_LOCK_TIMEOUT", "2")
        .env_remove("DBOS_DB")
        .arg("--db")
        .arg(db)
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run dbos");
    Out {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The reads checked each round, each its own process.
const READS: &[&[&str]] = &[
    &["-c", "ls -l /"],
    &["-c", "tree /"],
    &["-c", "cat /etc/motd /etc/big /notes"],
    &["-c", "log"],
    &["-c", "history /notes"],
    &["-c", "config list"],
    &["--branch", "dev", "-c", "tree /; cat /dev-only"],
    &["verify"],
];

/// stdout with what legitimately changes between runs removed (verify's
/// elapsed time).
fn stable(cmd: &[&str], out: &str) -> String {
    if cmd == ["verify"] {
        out.split(" in ").next().unwrap_or_default().to_string()
    } else {
        out.to_string()
    }
}

fn panicked(o: &Out) -> bool {
    o.code == 101 || o.err.contains("panicked") || o.code == -1
}

/// Build the database with history; give its bytes.
fn build(dir: &Path) -> Vec<u8> {
    let db = dir.join("orig.db");
    let host = dir.join("tree");
    std::fs::create_dir_all(host.join("etc/sub")).expect("host tree");
    std::fs::write(host.join("etc/motd"), "welcome\n").expect("write");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let big: String = (0..6000)
        .map(|i| format!("line {i} {}\n", rng.gen::<u64>()))
        .collect();
    std::fs::write(host.join("etc/big"), big).expect("write");
    for i in 0..30 {
        std::fs::write(host.join(format!("etc/sub/f{i}")), format!("file {i}\n")).expect("write");
    }
    let run = |args: &[&str]| {
        let o = dbos(&db, dir, args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.err);
    };
    run(&["import", &host.display().to_string(), "/"]);
    for i in 0..12 {
        run(&[
            "-c",
            &format!("echo note {i} >> /notes; config set app.n {i}"),
        ]);
    }
    run(&[
        "-c",
        "rm /etc/sub/f3; mv /etc/sub/f4 /etc/f4; mkdir -p /var/lib/x",
    ]);
    run(&["-c", "branch dev"]);
    run(&[
        "--branch",
        "dev",
        "-c",
        "echo only here > /dev-only; rm /etc/motd",
    ]);
    run(&["-c", "echo after branch >> /notes"]);
    assert!(
        !dir.join("orig.db-wal").exists(),
        "the last close checkpoints the WAL into the file"
    );
    std::fs::read(&db).expect("read database")
}

/// Overwrite 1 to 3 random ranges; a third of them start on a page header.
fn corrupt(rng: &mut impl Rng, bytes: &mut [u8]) -> Vec<(usize, usize)> {
    let mut done = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        let pages = bytes.len() / PAGE;
        let off = if rng.gen_bool(0.33) {
            let p = rng.gen_range(0..pages);
            // Page 1's b-tree header follows the 100-byte file header.
            p * PAGE
                + if p == 0 {
                    rng.gen_range(0..112)
                } else {
                    rng.gen_range(0..12)
                }
        } else {
            rng.gen_range(0..bytes.len())
        };
        let len = if rng.gen_bool(0.8) {
            rng.gen_range(1..=16)
        } else {
            rng.gen_range(17..=600)
        }
        .min(bytes.len() - off);
        rng.fill(&mut bytes[off..off + len]);
        done.push((off, len));
    }
    done
}

#[test]
fn random_overwrites_are_detected_or_harmless_and_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = build(dir.path());
    let orig_db = dir.path().join("orig.db");
    let baseline: Vec<(i32, String)> = READS
        .iter()
        .map(|cmd| {
            let o = dbos(&orig_db, dir.path(), cmd);
            assert_eq!(o.code, 0, "{cmd:?} on the intact database: {}", o.err);
            (o.code, stable(cmd, &o.out))
        })
        .collect();
    let healthy = dbos(&orig_db, dir.path(), &["doctor"]);
    assert_eq!(
        healthy.code, 0,
        "intact database: {}{}",
        healthy.out, healthy.err
    );
    assert!(healthy
        .out
        .starts_with(&format!("database {}: OK", orig_db.display())));

    let rounds: u32 = std::env::var("DBOS_CORRUPTION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("DBOS_CORRUPTION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!(
        "corruption: {rounds} rounds, seed {seed} ({} pages)",
        orig.len() / PAGE
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut detected, mut harmless, mut unchanged) = (0u32, 0u32, 0u32);
    let db = dir.path().join("round.db");
    for round in 0..rounds {
        let mut bytes = orig.clone();
        let hits = corrupt(&mut rng, &mut bytes);
        if bytes == orig {
            unchanged += 1;
            continue;
        }
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
        std::fs::write(&db, &bytes).expect("write corrupted copy");
        let ctx = format!("round {round} (seed {seed}, overwritten {hits:?})");
        let doc = dbos(&db, dir.path(), &["doctor"]);
        assert!(
            !panicked(&doc),
            "{ctx}: doctor panicked or hung: {}",
            doc.err
        );
        assert!(
            doc.code == 0 || doc.code == 1,
            "{ctx}: doctor exit {}: {}",
            doc.code,
            doc.err
        );
        if doc.code == 1 {
            assert!(doc.out.contains(": DAMAGED"), "{ctx}: {}", doc.out);
            assert_eq!(
                doc.err.lines().count(),
                1,
                "{ctx}: one error line: {}",
                doc.err
            );
            detected += 1;
        } else {
            assert!(doc.out.contains(": OK"), "{ctx}: {}", doc.out);
        }
        for (cmd, (code, out)) in READS.iter().zip(&baseline) {
            let o = dbos(&db, dir.path(), cmd);
            assert!(!panicked(&o), "{ctx}: {cmd:?} panicked or hung: {}", o.err);
            if doc.code == 0 {
                assert_eq!(
                    (o.code, stable(cmd, &o.out)),
                    (*code, out.clone()),
                    "{ctx}: doctor found nothing, yet {cmd:?} served something else: {}",
                    o.err
                );
            } else if o.code != 0 {
                assert!(
                    o.err.lines().count() >= 1 && !o.err.trim().is_empty(),
                    "{ctx}: {cmd:?} failed without saying why"
                );
            }
        }
        if doc.code == 0 {
            harmless += 1;
        }
    }
    eprintln!(
        "corruption: {rounds} rounds: {detected} detected by doctor, {harmless} undetected \
         with every read identical to the original, {unchanged} left the file unchanged"
    );
    assert!(detected > 0 || rounds < 10, "no round was detected");
}

#[test]
fn a_garbage_header_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = build(dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    rng.fill(&mut bytes[..100]);
    let db = dir.path().join("garbage.db");
    std::fs::write(&db, &bytes).expect("write");
    let doc = dbos(&db, dir.path(), &["doctor"]);
    assert_eq!(doc.code, 1, "{}{}", doc.out, doc.err);
    assert!(doc
        .out
        .starts_with(&format!("database {}: DAMAGED", db.display())));
    assert_eq!(doc.err.lines().count(), 1, "{}", doc.err);
    assert!(doc.err.contains(&db.display().to_string()), "{}", doc.err);
    assert!(doc.err.contains("not a dbos database"), "{}", doc.err);
    let ls = dbos(&db, dir.path(), &["-c", "ls /"]);
    assert_eq!(ls.code, 1, "{}", ls.err);
    assert!(!panicked(&ls));
    assert_eq!(ls.err.lines().count(), 1, "{}", ls.err);
    assert!(ls.err.contains("not a dbos database"), "{}", ls.err);
    // The file was not "repaired" into a fresh database by opening it.
    assert_eq!(std::fs::read(&db).expect("read")[100..], bytes[100..]);
}

/// A database file wiped to nothing (what a power cut during creation or a
/// careless `: > state.db` leaves), or another program's SQLite file, is
/// damage: doctor must say so and must not turn it into a fresh, healthy
/// looking database by opening it.
#[test]
fn doctor_reports_an_empty_or_foreign_file_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    let doc = dbos(&empty, dir.path(), &["doctor"]);
    assert_eq!(doc.code, 1, "{}{}", doc.out, doc.err);
    assert!(doc.out.contains("DAMAGED"), "{}", doc.out);
    assert!(doc.err.contains("holds no dbos database"), "{}", doc.err);
    assert_eq!(std::fs::metadata(&empty).expect("stat").len(), 0);
    assert!(!dir.path().join("empty.db-wal").exists());

    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).expect("open");
    conn.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('x');")
        .expect("create");
    drop(conn);
    let before = std::fs::read(&foreign).expect("read");
    let doc = dbos(&foreign, dir.path(), &["doctor"]);
    assert_eq!(doc.code, 1, "{}{}", doc.out, doc.err);
    assert!(doc.err.contains("holds no dbos database"), "{}", doc.err);
    assert_eq!(std::fs::read(&foreign).expect("read"), before);
}
