//! Real directories in and out (issue 8), each figure a ratio against git or
//! tmpfs measured in the same run, because the machine is shared and noisy.
//! Everything goes through the real `dbos` binary, as a user would run it.
//!
//! Run: `cargo bench -p dbos-shell --bench hostdir`
//! Quick (a fast check): `DBOS_BENCH_QUICK=1 cargo bench -p dbos-shell --bench hostdir`
//! Arguments pick parts (`-- 4`). The databases and trees go to a temporary
//! folder (in `$DBOS_BENCH_DIR` if set).
//!
//! 1. `dbos import TREE /data` of a fresh 10,000-file tree (100 folders of
//!    100 files, 100 B to 4 KiB of text) into a new database, against
//!    `git add -A && git commit` of the same tree into a new repository.
//! 2. Re-import after 100 files changed, against `git add -A && git commit`.
//! 3. `dbos export --as-of HEAD~1 /data OUT` (the first import's state) into
//!    a new folder, against `git checkout HEAD~1 -- .` into a clean work tree
//!    (a new index file, an empty folder).
//! 4. 1,000 small files (1 KiB, each created, written and closed: one
//!    transaction each) through `dbos mount`, against the same writes to a
//!    tmpfs folder (`/dev/shm`). Skipped, loudly, without `/dev/fuse`.
//!
//! No numeric goal: the issue asks for the ratios.

#[path = "../../engine/benches/support/mod.rs"]
mod support;
use support::*;

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DBOS: &str = env!("CARGO_BIN_EXE_dbos");

/// Problem sizes; `DBOS_BENCH_QUICK=1` shrinks them.
struct Sizes {
    files: usize,
    changed: usize,
    rounds: usize,
    small_files: usize,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("DBOS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Sizes {
                files: 2_000,
                changed: 100,
                rounds: 1,
                small_files: 200,
            }
        } else {
            Sizes {
                files: 10_000,
                changed: 100,
                rounds: 3,
                small_files: 1_000,
            }
        }
    }
}

/// Run a command to success, or say what failed.
fn run(cmd: &mut Command) -> BenchResult<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dbos --db DB -c LINE`.
fn dbos(db: &Path, line: &str) -> BenchResult<String> {
    run(Command::new(DBOS).arg("--db").arg(db).arg("-c").arg(line))
}

/// `git --git-dir=G --work-tree=W ARGS`, with an identity and no hooks.
fn git(gitdir: &Path, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-c")
        .arg("user.name=bench")
        .arg("-c")
        .arg("user.email=bench@example.invalid")
        .arg("-c")
        .arg("core.hooksPath=/dev/null")
        .arg(format!("--git-dir={}", gitdir.display()))
        .arg(format!("--work-tree={}", work.display()))
        .args(args);
    c
}

fn text(rng: &mut StdRng, len: usize) -> Vec<u8> {
    rng.sample_iter(&Alphanumeric).take(len).collect()
}

/// A tree of `files` files in folders of 100.
fn make_tree(root: &Path, files: usize, rng: &mut StdRng) -> BenchResult<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let p = dir.join(format!("f{:03}.txt", i % 100));
        let len = rng.gen_range(100..4096);
        std::fs::write(&p, text(rng, len))?;
        paths.push(p);
    }
    Ok(paths)
}

/// Files under `root`, recursively.
fn count_files(root: &Path) -> BenchResult<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            n += count_files(&e.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// Median times of one round of parts 1–3, dbos then git.
struct Round {
    import: (Duration, Duration),
    reimport: (Duration, Duration),
    export: (Duration, Duration),
}

fn round(sz: &Sizes, seed: u64) -> BenchResult<Round> {
    let dir = bench_dir()?;
    let tree = dir.path().join("tree");
    let db = dir.path().join("state.db");
    let gitdir = dir.path().join("repo.git");
    let mut rng = StdRng::seed_from_u64(seed);
    let paths = make_tree(&tree, sz.files, &mut rng)?;
    run(Command::new("git")
        .arg("init")
        .arg("-q")
        .arg("--bare")
        .arg(&gitdir))?;
    // The database exists before timing, as the repository does.
    dbos(&db, "true")?;
    let import_line = format!("import {} /data", tree.display());

    let (r, d_import) = time(|| dbos(&db, &import_line));
    r?;
    let (r, g_import) = time(|| -> BenchResult<()> {
        run(&mut git(&gitdir, &tree, &["add", "-A"]))?;
        run(&mut git(&gitdir, &tree, &["commit", "-q", "-m", "import"]))?;
        Ok(())
    });
    r?;

    for p in paths.iter().step_by(paths.len() / sz.changed) {
        let len = rng.gen_range(100..4096);
        std::fs::write(p, text(&mut rng, len))?;
    }
    let (r, d_re) = time(|| dbos(&db, &import_line));
    r?;
    let (r, g_re) = time(|| -> BenchResult<()> {
        run(&mut git(&gitdir, &tree, &["add", "-A"]))?;
        run(&mut git(
            &gitdir,
            &tree,
            &["commit", "-q", "-m", "reimport"],
        ))?;
        Ok(())
    });
    r?;

    let out_d = dir.path().join("export-dbos");
    let out_g = dir.path().join("export-git");
    std::fs::create_dir(&out_g)?;
    let (r, d_export) = time(|| {
        dbos(
            &db,
            &format!("export --as-of HEAD~1 /data {}", out_d.display()),
        )
    });
    r?;
    let index = dir.path().join("fresh-index");
    let (r, g_export) = time(|| {
        run(git(&gitdir, &out_g, &["checkout", "HEAD~1", "--", "."]).env("GIT_INDEX_FILE", &index))
    });
    r?;
    for out in [&out_d, &out_g] {
        let n = count_files(out)?;
        if n != sz.files {
            return Err(format!("{} holds {n} files, not {}", out.display(), sz.files).into());
        }
    }
    Ok(Round {
        import: (d_import, g_import),
        reimport: (d_re, g_re),
        export: (d_export, g_export),
    })
}

fn report(what: &str, pairs: &[(Duration, Duration)], base: &str) {
    let d = median(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let g = median(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    println!(
        "{what}: dbos {} vs {base} {}: {:.2}x",
        fmt_dur(d),
        fmt_dur(g),
        ratio(d, g)
    );
}

fn parts_1_to_3(sz: &Sizes) -> BenchResult<()> {
    println!(
        "parts 1-3: {} files, {} changed, median of {} rounds",
        sz.files, sz.changed, sz.rounds
    );
    let mut rounds = Vec::new();
    for i in 0..sz.rounds {
        rounds.push(round(sz, 42 + i as u64)?);
    }
    report(
        "1. import",
        &rounds.iter().map(|r| r.import).collect::<Vec<_>>(),
        "git add -A && git commit",
    );
    report(
        "2. re-import after changes",
        &rounds.iter().map(|r| r.reimport).collect::<Vec<_>>(),
        "git add -A && git commit",
    );
    report(
        "3. export of the first state",
        &rounds.iter().map(|r| r.export).collect::<Vec<_>>(),
        "git checkout into a clean work tree",
    );
    Ok(())
}

/// The mount process, unmounted (SIGTERM) when dropped.
struct Mount {
    child: Child,
}

impl Drop for Mount {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn mounted(point: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = point.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
}

fn write_small(dir: &Path, n: usize) -> BenchResult<Duration> {
    std::fs::create_dir_all(dir)?;
    let body = vec![b'x'; 1024];
    let start = Instant::now();
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i:04}")), &body)?;
    }
    Ok(start.elapsed())
}

fn part_4(sz: &Sizes) -> BenchResult<()> {
    if !Path::new("/dev/fuse").exists() {
        println!("4. SKIPPED: /dev/fuse is absent, no mount figure");
        return Ok(());
    }
    let dir = bench_dir()?;
    let db = dir.path().join("state.db");
    let point = dir.path().join("mnt");
    std::fs::create_dir(&point)?;
    dbos(&db, "true")?;
    let child = Command::new(DBOS)
        .arg("--db")
        .arg(&db)
        .arg("mount")
        .arg(&point)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let _mount = Mount { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mounted(&point) {
        if Instant::now() > deadline {
            return Err("dbos mount did not mount within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let shm = tempfile::tempdir_in("/dev/shm")?;
    let mut pairs = Vec::new();
    for round in 0..3 {
        let d = write_small(&point.join(format!("r{round}")), sz.small_files)?;
        let t = write_small(&shm.path().join(format!("r{round}")), sz.small_files)?;
        pairs.push((d, t));
    }
    let per_file = |d: Duration| d / sz.small_files as u32;
    let d = median(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let t = median(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    println!(
        "4. {} small files through the mount: {} ({} per file) vs tmpfs {} ({} per file): {:.1}x",
        sz.small_files,
        fmt_dur(d),
        fmt_dur(per_file(d)),
        fmt_dur(t),
        fmt_dur(per_file(t)),
        ratio(d, t)
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let sz = Sizes::from_env();
    let wanted = wanted_parts();
    if ["1", "2", "3"].iter().any(|p| wanted(p)) {
        parts_1_to_3(&sz)?;
    }
    if wanted("4") {
        part_4(&sz)?;
    }
    Ok(())
}
