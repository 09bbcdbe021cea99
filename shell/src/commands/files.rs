//! File commands: ls, cat, echo, touch, mkdir, rm, cd, pwd.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_engine::{Entry, VPath};
use serde_json::json;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Ls, ls),
        spec!(Cat, cat),
        spec!(Echo, echo),
        spec!(Touch, touch),
        spec!(Mkdir, mkdir),
        spec!(Rm, rm),
        spec!(Cd, cd),
        spec!(Pwd, pwd),
    ]
}

/// List directory contents.
#[derive(Parser)]
#[command(
    name = "ls",
    about = "List directory contents",
    disable_version_flag = true
)]
struct Ls {
    /// Long listing: mode, owner, size, modification time, name.
    #[arg(short = 'l')]
    long: bool,
    /// Include names starting with '.'.
    #[arg(short = 'a')]
    all: bool,
    /// Show the state as of a moment (T<id>, a time, '10m ago', BRANCH@REF).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Files or directories (default: the working directory).
    paths: Vec<String>,
}

fn entry_json(name: &str, e: &Entry) -> serde_json::Value {
    let m = e.meta().copied();
    json!({
        "name": name,
        "type": output::kind_name(e),
        "mode": m.map(|m| format!("{:04o}", m.mode)),
        "uid": m.map(|m| m.uid),
        "gid": m.map(|m| m.gid),
        "size": e.size(),
        "mtime": m.map(|m| output::time_rfc3339(m.mtime_ns / 1000)),
        "target": match e { Entry::Symlink { target, .. } => Some(target.clone()), _ => None },
    })
}

fn long_line(name: &str, e: &Entry) -> String {
    let m = e.meta().copied();
    let target = match e {
        Entry::Symlink { target, .. } => format!(" -> {target}"),
        _ => String::new(),
    };
    format!(
        "{} {:>5} {:>5} {:>9} {} {}{}",
        output::mode_string(e),
        m.map(|m| m.uid).unwrap_or(0),
        m.map(|m| m.gid).unwrap_or(0),
        e.size(),
        output::mtime(m.map(|m| m.mtime_ns).unwrap_or(0)),
        name,
        target
    )
}

fn ls(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Ls>(ctx, argv)? else {
        return Ok(0);
    };
    let paths = if a.paths.is_empty() {
        vec![".".to_string()]
    } else {
        a.paths.clone()
    };
    if let Some(r) = &a.as_of {
        ctx.sess.moment(r)?;
    }
    let multi = paths.len() > 1;
    let mut status = 0;
    let mut listing: Vec<(String, Vec<(String, Entry)>)> = Vec::new();
    for arg in &paths {
        let path = ctx.sess.abs(arg)?;
        let got = ctx.sess.read(a.as_of.as_deref(), |tx| {
            let real = tx.canonicalize(&path, true)?;
            let e = tx.entry(&real)?;
            if e.is_dir() {
                Ok(tx.read_dir(&real)?)
            } else {
                Ok(vec![(arg.clone(), tx.entry(&path)?)])
            }
        });
        match got {
            Ok(entries) => listing.push((arg.clone(), entries)),
            Err(f) => {
                ctx.warn(&format!("dbos: ls: {}", f.message()));
                status = 1;
            }
        }
    }
    if a.format == Format::Json {
        let v: Vec<_> = listing
            .iter()
            .map(|(p, es)| {
                json!({"path": p, "entries": es.iter()
                    .filter(|(n, _)| a.all || !n.starts_with('.'))
                    .map(|(n, e)| entry_json(n, e)).collect::<Vec<_>>()})
            })
            .collect();
        let doc = if multi {
            json!(v)
        } else {
            v.into_iter().next().unwrap_or(json!(null))
        };
        ctx.print(&output::json(&doc));
        return Ok(status);
    }
    for (i, (p, entries)) in listing.iter().enumerate() {
        if multi {
            if i > 0 {
                ctx.println("");
            }
            ctx.println(&format!("{p}:"));
        }
        let visible: Vec<_> = entries
            .iter()
            .filter(|(n, _)| a.all || !n.starts_with('.'))
            .collect();
        if a.long {
            for (n, e) in visible {
                ctx.println(&long_line(n, e));
            }
        } else if ctx.out_is_tty && !visible.is_empty() {
            let names: Vec<String> = visible
                .iter()
                .map(|(n, e)| {
                    if e.is_dir() {
                        format!("{n}/")
                    } else {
                        n.clone()
                    }
                })
                .collect();
            ctx.println(&names.join("  "));
        } else {
            for (n, _) in visible {
                ctx.println(n);
            }
        }
    }
    Ok(status)
}

/// Print files (or standard input) to standard output.
#[derive(Parser)]
#[command(
    name = "cat",
    about = "Print files, or standard input, to standard output",
    disable_version_flag = true
)]
struct Cat {
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Files ('-' for standard input).
    paths: Vec<String>,
}

fn cat(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Cat>(ctx, argv)? else {
        return Ok(0);
    };
    if a.paths.is_empty() {
        if let Some(input) = ctx.stdin.take() {
            ctx.out.extend_from_slice(&input);
        }
        return Ok(0);
    }
    if let Some(r) = &a.as_of {
        ctx.sess.moment(r)?;
    }
    let mut status = 0;
    for arg in &a.paths {
        if arg == "-" {
            if let Some(input) = ctx.stdin.take() {
                ctx.out.extend_from_slice(&input);
            }
            continue;
        }
        let path = ctx.sess.abs(arg)?;
        match ctx.sess.read(a.as_of.as_deref(), |tx| {
            let real = tx.canonicalize(&path, true)?;
            Ok(tx.read_file(&real)?)
        }) {
            Ok(bytes) => ctx.out.extend_from_slice(&bytes),
            Err(f) => {
                ctx.warn(&format!("dbos: cat: {}", f.message()));
                status = 1;
            }
        }
    }
    Ok(status)
}

/// Print arguments.
#[derive(Parser)]
#[command(
    name = "echo",
    about = "Print the arguments, separated by spaces",
    disable_version_flag = true
)]
struct Echo {
    /// Do not print the trailing newline.
    #[arg(short = 'n')]
    no_newline: bool,
    /// Words to print.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    words: Vec<String>,
}

fn echo(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    // Like POSIX echo, only a leading -n is an option; anything else is text.
    if argv.get(1).map(String::as_str) == Some("--help") {
        parse::<Echo>(ctx, argv)?;
        return Ok(0);
    }
    let mut words = &argv[1..];
    let mut newline = true;
    while words.first().map(String::as_str) == Some("-n") {
        newline = false;
        words = &words[1..];
    }
    ctx.print(&words.join(" "));
    if newline {
        ctx.print("\n");
    }
    Ok(0)
}

/// Create empty files or update modification times.
#[derive(Parser)]
#[command(
    name = "touch",
    about = "Create empty files, or update their modification time",
    disable_version_flag = true
)]
struct Touch {
    /// Files.
    #[arg(required = true)]
    paths: Vec<String>,
}

fn touch(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Touch>(ctx, argv)? else {
        return Ok(0);
    };
    let paths = a
        .paths
        .iter()
        .map(|p| ctx.sess.abs(p))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.sess.write(|tx| {
        for p in &paths {
            let real = tx.canonicalize(p, true)?;
            tx.touch(&real)?;
        }
        Ok(0)
    })
}

/// Make directories.
#[derive(Parser)]
#[command(
    name = "mkdir",
    about = "Make directories",
    disable_version_flag = true
)]
struct Mkdir {
    /// Make parent directories as needed; no error if a directory exists.
    #[arg(short = 'p')]
    parents: bool,
    /// Permission bits in octal (default 755).
    #[arg(short = 'm', value_name = "MODE")]
    mode: Option<String>,
    /// Directories.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// Parse an octal mode such as `755` or `0644`.
pub fn parse_mode(s: &str) -> Result<u32, Failure> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "invalid mode {s:?}: expected octal digits such as 755"
            ))
        })
}

fn mkdir(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Mkdir>(ctx, argv)? else {
        return Ok(0);
    };
    let mode = a
        .mode
        .as_deref()
        .map(parse_mode)
        .transpose()?
        .unwrap_or(0o755);
    let paths = a
        .paths
        .iter()
        .map(|p| ctx.sess.abs(p))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.sess.write(|tx| {
        for p in &paths {
            tx.mkdir(p, a.parents, mode)?;
        }
        Ok(0)
    })
}

/// Remove files or directories.
#[derive(Parser)]
#[command(
    name = "rm",
    about = "Remove files or directories",
    disable_version_flag = true
)]
struct Rm {
    /// Remove directories and their contents.
    #[arg(short = 'r', short_alias = 'R')]
    recursive: bool,
    /// Ignore missing files; never fail for them.
    #[arg(short = 'f')]
    force: bool,
    /// Paths.
    paths: Vec<String>,
}

fn rm(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    // Accept combined flags such as -rf.
    let Some(a) = parse::<Rm>(ctx, argv)? else {
        return Ok(0);
    };
    if a.paths.is_empty() && !a.force {
        return Err(Failure::Usage("missing operand".into()));
    }
    let paths = a
        .paths
        .iter()
        .map(|p| ctx.sess.abs(p))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.sess.write(|tx| {
        for p in &paths {
            match tx.stat(p)? {
                None if a.force => continue,
                Some(e) if e.is_dir() && !a.recursive => {
                    return Err(Failure::Failed(format!("{p}: is a directory (use -r)")))
                }
                _ => tx.remove(p, a.recursive)?,
            }
        }
        Ok(0)
    })
}

/// Change the working directory.
#[derive(Parser)]
#[command(
    name = "cd",
    about = "Change the working directory",
    disable_version_flag = true
)]
struct Cd {
    /// Directory (default: /).
    path: Option<String>,
}

fn cd(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Cd>(ctx, argv)? else {
        return Ok(0);
    };
    let path = ctx.sess.abs(a.path.as_deref().unwrap_or("/"))?;
    let real: VPath = ctx.sess.read(None, |tx| {
        let real = tx.canonicalize(&path, true)?;
        match tx.entry(&real)? {
            Entry::Dir { .. } => Ok(real),
            _ => Err(Failure::Failed(format!("{path}: not a directory"))),
        }
    })?;
    ctx.sess.cwd = real;
    Ok(0)
}

/// Print the working directory.
#[derive(Parser)]
#[command(
    name = "pwd",
    about = "Print the working directory",
    disable_version_flag = true
)]
struct Pwd {}

fn pwd(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    if parse::<Pwd>(ctx, argv)?.is_none() {
        return Ok(0);
    }
    let cwd = ctx.sess.cwd.to_string();
    ctx.println(&cwd);
    Ok(0)
}
