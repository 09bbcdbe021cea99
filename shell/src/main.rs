//! `dbos`: a time-travel transactional shell. Every change is a transaction
//! in a versioned database; any past state can be read, compared, restored.
//!
//! Exit status: that of the last command; 0 success, 1 a command failed,
//! 2 a usage or parse error (unknown commands included).

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use dbos_engine::{Actor, Engine};
use dbos_shell::exec::{self, Streams};
use dbos_shell::session::Session;
use dbos_shell::{commands, lang, repl};
use std::io::{BufRead, IsTerminal, Write};

mod dbcmd;
mod mountcmd;

/// When to use colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// dbos: a shell whose every change is a transaction you can travel back to.
#[derive(Parser)]
#[command(
    name = "dbos",
    version,
    about = "A time-travel transactional shell: all state lives in versioned tables",
    long_about = "A time-travel transactional shell. Files, config rows, process records and logs \
live in a versioned database; every command line that changes state is one transaction, and any \
past state can be read (--as-of), compared (diff), restored (reset, revert) or branched.\n\n\
With no FILE and no -c, runs interactively on a terminal, or reads commands from standard input."
)]
struct Cli {
    /// Database: a file path (default: $DBOS_DB, else $XDG_DATA_HOME/dbos/state.db).
    #[arg(long, value_name = "PATH", global = true)]
    db: Option<String>,
    /// Branch to work on.
    #[arg(long, value_name = "NAME", default_value = "main", global = true)]
    branch: String,
    /// Start viewing the state as of REF, read-only (as `asof REF` does).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Author recorded with transactions (default: the OS user).
    #[arg(long, value_name = "NAME", global = true)]
    user: Option<String>,
    /// Colour output.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    color: ColorChoice,
    /// Run COMMANDS and exit.
    #[arg(short = 'c', value_name = "COMMANDS")]
    commands: Option<String>,
    /// A script file to run.
    #[arg(value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    sub: Option<Sub>,
}

#[derive(Subcommand)]
enum Sub {
    /// Print a shell completion script.
    Completions {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Run a read-only SQL query over the audit views (`dbos sql --help`).
    #[command(disable_help_flag = true)]
    Sql {
        /// Arguments of the shell's `sql` command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Recompute the hash chain (`dbos verify --help`).
    #[command(disable_help_flag = true)]
    Verify {
        /// Arguments of the shell's `verify` command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check the database for damage (`dbos doctor --help`).
    #[command(disable_help_flag = true)]
    Doctor {
        /// Arguments of the shell's `doctor` command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Copy a host directory into the versioned tree (`dbos import --help`).
    #[command(disable_help_flag = true)]
    Import {
        /// Arguments of the shell's `import` command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write a present or past state to a host directory (`dbos export --help`).
    #[command(disable_help_flag = true)]
    Export {
        /// Arguments of the shell's `export` command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Whole-database operations: `db copy SRC DST`.
    Db {
        #[command(subcommand)]
        op: dbcmd::DbOp,
    },
    /// Mount a branch as a FUSE filesystem (`dbos mount --help`).
    Mount(mountcmd::MountArgs),
}

fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let from_passwd = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
    });
    from_passwd.unwrap_or_else(|| format!("uid{uid}"))
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match &cli.sub {
        Some(Sub::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "dbos", &mut std::io::stdout());
            return 0;
        }
        Some(Sub::Man) => {
            let cmd = Cli::command();
            let mut out = std::io::stdout();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                eprintln!("dbos: man: {e}");
                return 1;
            }
            for spec in commands::all() {
                let _ = writeln!(out, ".SH \"{}\"", spec.name.to_uppercase());
                let help = (spec.command)().render_long_help().to_string();
                for line in help.lines() {
                    let _ = writeln!(
                        out,
                        "{}",
                        line.replace('\\', "\\\\").trim_start_matches('.')
                    );
                    let _ = writeln!(out, ".br");
                }
            }
            return 0;
        }
        Some(Sub::Db { op }) => return dbcmd::run(op),
        Some(Sub::Mount(args)) => {
            let author = cli.user.clone().unwrap_or_else(os_user);
            return mountcmd::run(args, cli.db.clone(), &cli.branch, author);
        }
        Some(Sub::Doctor { args }) => {
            // Not through the session: a damaged database may not open, or
            // may have no readable branch, and doctor must still report.
            return match cli
                .db
                .clone()
                .map(Ok)
                .unwrap_or_else(dbos_engine::default_location)
            {
                Ok(location) => commands::doctor::run_cli(&location, args),
                Err(e) => {
                    eprintln!("dbos: {e}");
                    2
                }
            };
        }
        Some(Sub::Sql { .. } | Sub::Verify { .. }) | None => {}
        Some(Sub::Import { .. } | Sub::Export { .. }) => {}
    }

    let location = match cli
        .db
        .clone()
        .map(Ok)
        .unwrap_or_else(dbos_engine::default_location)
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dbos: {e}");
            return 2;
        }
    };
    let engine = match Engine::open(&location) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dbos: {e}");
            return 1;
        }
    };
    let actor = Actor {
        author: cli.user.clone().unwrap_or_else(os_user),
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
    };
    let mut sess = match Session::new(engine, &cli.branch, actor) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dbos: {e}");
            return 2;
        }
    };
    if let Some(r) = &cli.as_of {
        match sess.moment(r) {
            Ok(m) => sess.asof = Some(m),
            Err(e) => {
                eprintln!("dbos: --as-of {r}: {}", e.message());
                return 2;
            }
        }
    }
    // Rows left `running` by a shell that ended without recording their
    // end (a crash): the process is gone, so they become `lost`.
    let target = dbos_procs::Target {
        branch: sess.branch.clone(),
        actor: sess.actor.clone(),
    };
    // Viewing the past (--as-of) writes nothing, this repair included.
    let reconciled = if sess.asof.is_some() {
        Ok(Vec::new())
    } else {
        dbos_procs::reconcile(&mut sess.engine, &target)
    };
    match reconciled {
        Ok(lost) if !lost.is_empty() => {
            let ids: Vec<String> = lost.iter().map(|r| r.id.to_string()).collect();
            eprintln!(
                "dbos: note: process {} left running by a shell that ended, now marked lost",
                ids.join(", ")
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("dbos: warning: checking process rows: {e}"),
    }
    let stdout_tty = std::io::stdout().is_terminal();
    sess.color_always = cli.color == ColorChoice::Always;
    sess.color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_tty && std::env::var_os("NO_COLOR").is_none(),
    };

    let status = if let Some((name, args)) = match &cli.sub {
        Some(Sub::Sql { args }) => Some(("sql", args)),
        Some(Sub::Verify { args }) => Some(("verify", args)),
        Some(Sub::Import { args }) => Some(("import", args)),
        // On the command line `export` always means the directory export
        // (shell variables die with this process): `--tree` says so.
        Some(Sub::Export { args }) => Some(("export --tree", args)),
        _ => None,
    } {
        // `dbos sql ...`: the shell command, its arguments quoted as they came.
        let mut line = name.to_string();
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        run_lines(
            &mut sess,
            std::io::Cursor::new(line.into_bytes()),
            stdout_tty,
        )
    } else if let Some(cmds) = &cli.commands {
        // Like a script: each line (with its continuations) is one unit.
        run_lines(&mut sess, std::io::Cursor::new(cmds.as_bytes()), stdout_tty)
    } else if let Some(file) = &cli.file {
        match std::fs::File::open(file) {
            Ok(f) => run_lines(&mut sess, std::io::BufReader::new(f), stdout_tty),
            Err(e) => {
                eprintln!("dbos: {}: {e}", file.display());
                return 2;
            }
        }
    } else if std::io::stdin().is_terminal() {
        sess.interactive = true;
        repl::run(sess)
    } else {
        run_lines(&mut sess, std::io::stdin().lock(), stdout_tty)
    };
    status
}

/// Run commands read line by line (a script or standard input), each
/// complete unit (several lines for here-documents and continuations) as
/// one implicit transaction.
fn run_lines(sess: &mut Session, reader: impl BufRead, stdout_tty: bool) -> i32 {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut io = Streams {
        out: &mut out,
        err: &mut err,
        out_is_tty: stdout_tty,
    };
    let mut pending = String::new();
    let mut status = 0;
    // Ctrl-C stops the running command (recording what it ran), then the
    // script: never dbos outright, which would leave rows `running`.
    dbos_shell::interrupt::install();
    dbos_shell::interrupt::take_seen();
    for line in reader.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("dbos: reading input: {e}");
                return 1;
            }
        };
        pending.push_str(&line);
        pending.push('\n');
        if lang::is_incomplete(&pending) {
            continue;
        }
        status = exec::run_unit(sess, &pending, &mut io);
        pending.clear();
        if dbos_shell::interrupt::take_seen() {
            status = 130;
            break;
        }
        if sess.exit_requested.is_some() {
            break;
        }
    }
    if !pending.trim().is_empty() {
        status = exec::run_unit(sess, &pending, &mut io);
    }
    finish(sess, status)
}

/// One argument as a single-quoted shell word.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// Stop background processes, roll back a transaction left open, and give
/// the final exit status.
fn finish(sess: &mut Session, status: i32) -> i32 {
    sess.stop_jobs();
    if let Some(st) = sess.explicit.take() {
        eprintln!(
            "dbos: warning: open transaction rolled back at exit ({} pending changes discarded)",
            st.pending().len()
        );
    }
    sess.exit_requested.unwrap_or(status)
}
