//! Helpers shared by the benchmarks (`engine/benches/*.rs`, and
//! `branches/benches/branches.rs` through `#[path]`): timing, medians,
//! formatting, where the databases go, which parts to run.

#![allow(dead_code)]

use dbos_engine::{Actor, Engine, VPath};
use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::Rng;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A benchmark step's result.
pub type BenchResult<T> = std::result::Result<T, Box<dyn StdError + Send + Sync>>;

/// A path known to be valid.
pub fn vp(s: &str) -> VPath {
    VPath::parse(s).expect("valid bench path")
}

/// The `q` quantile (0.5: median) of the samples; zero when there are none.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Median of the samples.
pub fn median(samples: &[Duration]) -> Duration {
    quantile(samples, 0.5)
}

/// Median and 99th percentile.
pub fn median_p99(samples: &[Duration]) -> (Duration, Duration) {
    (quantile(samples, 0.5), quantile(samples, 0.99))
}

/// A duration in s, ms or us.
pub fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000_000 {
        format!("{:.3} s", d.as_secs_f64())
    } else if ns >= 1_000_000 {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} us", d.as_secs_f64() * 1e6)
    }
}

/// `a / b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

/// A goal's outcome as printed.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

/// Run `f` and time it.
pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Open (creating) an engine on a SQLite file.
pub fn open_engine(path: &Path) -> BenchResult<Engine> {
    Ok(Engine::open(path.to_str().ok_or("non-UTF-8 bench path")?)?)
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A temporary folder for the databases: in `$DBOS_BENCH_DIR` if set, else
/// the system's (it should be on a real disk, since commits are synced).
pub fn bench_dir() -> BenchResult<tempfile::TempDir> {
    Ok(match std::env::var_os("DBOS_BENCH_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d)?;
            tempfile::tempdir_in(d)?
        }
        _ => tempfile::tempdir()?,
    })
}

/// Which numbered parts to run: `cargo bench` passes `--bench`; any other
/// argument picks a part by number (none: every part).
pub fn wanted_parts() -> impl Fn(&str) -> bool {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    move |n: &str| only.is_empty() || only.iter().any(|o| o == n)
}

/// `len` bytes of alphanumeric text.
pub fn random_text(rng: &mut StdRng, len: usize) -> Vec<u8> {
    rng.sample_iter(&Alphanumeric).take(len).collect()
}

/// One round of the bulk-write goal: `n` files of 100–1000 B of text under
/// `/r{round}`; the folder and the files.
pub fn bulk_files(rng: &mut StdRng, round: usize, n: usize) -> (String, Vec<(String, Vec<u8>)>) {
    let dir = format!("/r{round}");
    let files = (0..n)
        .map(|i| {
            let len = rng.gen_range(100..=1000);
            (format!("{dir}/f{i:05}"), random_text(rng, len))
        })
        .collect();
    (dir, files)
}

/// Write a bulk round in one engine transaction (the folder, then every
/// file): the whole time and the commit's share of it.
pub fn engine_bulk_write(
    engine: &mut Engine,
    actor: &Actor,
    dir: &str,
    files: &[(String, Vec<u8>)],
) -> BenchResult<(Duration, Duration)> {
    let paths: Vec<VPath> = files.iter().map(|(p, _)| vp(p)).collect();
    let (r, whole) = time(|| -> BenchResult<Duration> {
        let mut tx = engine.begin("main", actor)?;
        tx.mkdir(&vp(dir), false, 0o755)?;
        for (p, (_, bytes)) in paths.iter().zip(files) {
            tx.write_bytes(p, bytes)?;
        }
        let (info, commit) = time(|| tx.commit("bulk write", None));
        info?.ok_or("the bulk commit recorded no transaction")?;
        Ok(commit)
    });
    Ok((whole, r?))
}
