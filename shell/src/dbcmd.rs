//! `dbos db ...`: operations on whole databases, outside the shell.
//!
//! `dbos db copy SRC DST` copies every transaction (same ids, times and
//! hash chain), branch, tag, log row, shell history line and content chunk
//! to a new database, SQLite or PostgreSQL either way, then verifies the
//! copy against the source (see `dbos_engine::copy`).

use clap::{Args, Subcommand};
use dbos_engine::copy::{copy, CopyOptions};

/// Whole-database operations.
#[derive(Subcommand)]
pub enum DbOp {
    /// Copy a whole database to a new one (SQLite or PostgreSQL, either way) and verify it.
    #[command(
        long_about = "Copy a whole database to a new one, SQLite or PostgreSQL either way: \
every transaction with its id, time, author, host, command, message and merge fields and the same \
hash chain, every branch (deleted ones too), tag, log row, shell history line and content chunk. \
The copy reads the same as the original at every past transaction.\n\n\
SRC and DST are locations as --db takes them: a file path, a postgres:// URL or a key-value \
string (host=... dbname=...). DST must be new: a file that does not exist yet, or an empty \
PostgreSQL database (CREATE DATABASE). A database dbos has opened already holds T1 and is refused.\n\n\
Afterwards the copy is verified: every chunk, every transaction (metadata, hash, writes, log \
rows, hash chain), branches, tags, shell history, and the whole state (file tree, config, \
process records, logs) of every branch at a sample of transactions (--verify-all: at every one). \
The copy becomes usable only once verified: on any failure it is removed or emptied again, and \
the error says what failed.\n\n\
Progress goes to standard error; the summary to standard output. Exit status 0 when copied and \
verified, 1 on any failure, 2 on a usage error."
    )]
    Copy(CopyArgs),
}

/// Arguments of `db copy`.
#[derive(Args)]
pub struct CopyArgs {
    /// The database to copy (a file path, or a PostgreSQL URL or key-value string).
    #[arg(value_name = "SRC")]
    src: String,
    /// The new database to create (a new file, or an empty PostgreSQL database).
    #[arg(value_name = "DST")]
    dst: String,
    /// Compare the whole state at every transaction, not at a sample.
    #[arg(long)]
    verify_all: bool,
    /// How many transactions the whole state is compared at (spread evenly).
    #[arg(long, value_name = "N", default_value_t = 16)]
    samples: usize,
    /// Report progress every N transactions.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    progress_every: u64,
    /// Print no progress, only the summary and errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Run a `db` subcommand; gives the exit status.
pub fn run(op: &DbOp) -> i32 {
    match op {
        DbOp::Copy(a) => run_copy(a),
    }
}

fn run_copy(a: &CopyArgs) -> i32 {
    let opts = CopyOptions {
        verify_all: a.verify_all,
        samples: a.samples,
        progress_every: a.progress_every,
    };
    let mut progress = |line: &str| {
        if !a.quiet {
            eprintln!("dbos: db copy: {line}");
        }
    };
    match copy(&a.src, &a.dst, &opts, &mut progress) {
        Ok(r) => {
            println!(
                "Copied {} transactions, {} branches, {} chunks; verified",
                r.transactions, r.branches, r.chunks
            );
            0
        }
        Err(e) => {
            eprintln!("dbos: db copy: {e}");
            1
        }
    }
}
