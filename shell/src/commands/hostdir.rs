//! import and export: between real host directories and the versioned tree
//! (the work is done by the dbos-hostdir crate; this file parses arguments,
//! draws the progress bar and reports).

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_hostdir::{ExportOptions, ImportOptions, Progress};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

pub fn specs() -> Vec<Spec> {
    vec![spec!(Import, import), spec!(Export, export)]
}

/// A progress bar on standard error when it is a terminal; nothing otherwise.
/// Ctrl-C stops the work.
struct Bar {
    bar: ProgressBar,
    verb: &'static str,
    bytes: u64,
    total_bytes: u64,
}

impl Bar {
    fn new(verb: &'static str) -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} scanning: {pos} entries, {msg}")
        {
            bar.set_style(style);
        }
        Bar {
            bar,
            verb,
            bytes: 0,
            total_bytes: 0,
        }
    }

    fn show_bytes(&self) {
        if !self.bar.is_hidden() {
            self.bar.set_message(format!(
                "{} / {}",
                HumanBytes(self.bytes),
                HumanBytes(self.total_bytes)
            ));
        }
    }
}

impl Progress for Bar {
    fn scanning(&mut self, entries: u64, bytes: u64) {
        self.bar.set_position(entries);
        if !self.bar.is_hidden() {
            self.bar.set_message(HumanBytes(bytes).to_string());
        }
    }

    fn start(&mut self, entries: u64, bytes: u64) {
        let template = format!(
            "{} [{{bar:30}}] {{pos}}/{{len}} entries, {{msg}} ({{elapsed}})",
            self.verb
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_length(entries);
        self.bar.set_position(0);
        self.bytes = 0;
        self.total_bytes = bytes;
        self.show_bytes();
    }

    fn advance(&mut self, entries: u64, bytes: u64) {
        if entries > 0 {
            self.bar.inc(entries);
        }
        if bytes > 0 {
            self.bytes += bytes;
            self.show_bytes();
        }
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }

    fn interrupted(&self) -> bool {
        crate::interrupt::requested()
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn failed(e: dbos_hostdir::Error) -> Failure {
    match e {
        dbos_hostdir::Error::Engine(e) => e.into(),
        other => Failure::Failed(other.to_string()),
    }
}

// ----- import ----------------------------------------------------------------

/// Copy a real host directory into the versioned tree.
#[derive(Parser)]
#[command(
    name = "import",
    about = "Copy a real host directory into the versioned tree (one transaction)",
    long_about = "Copy a real directory of the host into the versioned tree, as one \
transaction recorded with the command line. Afterwards PATH is an exact copy of HOSTDIR: \
files (content byte for byte), directories and symbolic links, with their permission bits \
(setuid, setgid and sticky included), owners and modification times (nanoseconds). Entries \
under PATH that HOSTDIR does not have are removed. PATH is created, with missing parents, if \
it does not exist; it defaults to the working directory.\n\n\
Only differences are written: importing an unchanged tree records no transaction, and a \
changed tree records only what changed. A file counts as unchanged when mode, owner, mtime, \
size and content (read and hashed whenever the size matches) are all equal.\n\n\
Symbolic links are stored as links with their target text and never followed, wherever they \
point (HOSTDIR itself may be a link to a directory). HOSTDIR is a host path, relative to the \
directory dbos was started in.\n\n\
Entries the tree cannot hold are skipped, each reported on standard error with its host path \
and the reason: FIFOs, sockets, devices, names or link targets that are not valid UTF-8, \
paths too long, and entries that cannot be read. The rest is imported and the command exits \
with status 1 ('import: N files skipped'). An entry that was skipped keeps what the tree \
already holds under its name. With --strict, anything to skip makes the whole import fail \
and nothing is changed.\n\n\
Examples:\n  \
import /etc /etc                 # version a copy of the host's /etc\n  \
import --strict ./site /srv/www  # all or nothing\n  \
dbos import /etc /etc            # from the command line",
    disable_version_flag = true
)]
struct Import {
    /// Fail and change nothing if any entry would be skipped.
    #[arg(long)]
    strict: bool,
    /// The host directory to copy.
    #[arg(value_name = "HOSTDIR")]
    host: PathBuf,
    /// Where it goes in the versioned tree (default: HOSTDIR's last name in
    /// the working directory, as `cp -r` would put it). PATH becomes a
    /// mirror of HOSTDIR: entries HOSTDIR lacks are removed from PATH.
    #[arg(value_name = "PATH")]
    path: Option<String>,
}

/// Where `import HOSTDIR` goes without a PATH: HOSTDIR's last name, in the
/// working directory. Never the working directory itself, which the
/// mirror would empty of everything HOSTDIR lacks.
fn default_import_path(host: &std::path::Path) -> Result<String, Failure> {
    let name = host
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()))
        .or_else(|| host.file_name().map(|n| n.to_os_string()));
    match name.as_ref().and_then(|n| n.to_str()) {
        Some(n) => Ok(format!("./{n}")),
        None => Err(Failure::Usage(format!(
            "{}: give the PATH to import it to (it has no usable last name)",
            host.display()
        ))),
    }
}

fn import(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Import>(ctx, argv)? else {
        return Ok(0);
    };
    let dest = match &a.path {
        Some(p) => ctx.sess.abs(p)?,
        None => ctx.sess.abs(&default_import_path(&a.host)?)?,
    };
    let opts = ImportOptions { strict: a.strict };
    let mut bar = Bar::new("importing");
    let mut refused = Vec::new();
    let result = ctx.sess.write(|tx| {
        // Follow links in PATH as other commands do; a missing PATH is
        // created.
        let real = match tx.canonicalize(&dest, true) {
            Ok(p) => p,
            Err(dbos_engine::Error::NotFound(_)) => dest.clone(),
            Err(e) => return Err(e.into()),
        };
        match dbos_hostdir::import(tx, &a.host, &real, &opts, &mut bar) {
            Ok(r) => Ok((real, r)),
            Err(e) => {
                if let dbos_hostdir::Error::Strict(s) = &e {
                    refused = s.clone();
                }
                Err(failed(e))
            }
        }
    });
    drop(bar);
    for s in &refused {
        ctx.warn(&format!("dbos: import: cannot import {s}"));
    }
    let (real, report) = result?;
    let host = dbos_hostdir::show_host(&a.host);
    if report.changed_anything() {
        ctx.println(&format!(
            "imported {host} into {real}: {} added, {} changed, {} removed, {} unchanged ({} stored)",
            report.added,
            report.changed,
            report.removed,
            report.unchanged,
            HumanBytes(report.bytes)
        ));
    } else {
        ctx.println(&format!(
            "imported {host} into {real}: nothing changed ({} entries)",
            report.unchanged
        ));
    }
    if report.skipped.is_empty() {
        return Ok(0);
    }
    for s in &report.skipped {
        ctx.warn(&format!("dbos: import: skipped {s}"));
    }
    let n = report.skipped.len();
    ctx.warn(&format!(
        "dbos: import: {n} {} skipped",
        if n == 1 { "file" } else { "files" }
    ));
    Ok(1)
}

// ----- export ----------------------------------------------------------------

/// Write a present or past state out as a real host directory (or, in the
/// variable form, export shell variables).
#[derive(Parser)]
#[command(
    name = "export",
    about = "Write a file or directory, present or past, to a host directory; or export variables",
    override_usage = "export [OPTIONS] PATH HOSTDIR\n       export [NAME[=VALUE]]...",
    long_about = "export [--as-of REF] PATH HOSTDIR writes PATH, as it is now or as it was at --as-of REF, out as a real directory \
tree on the host: file content byte for byte, permission bits (setuid, setgid and sticky \
included), modification times (nanoseconds; a directory's are set after its entries are \
written) and symbolic links as links with their target text. When PATH is a directory its \
entries go directly into HOSTDIR, which gets its mode and mtime; a file or link goes into \
HOSTDIR under its own name. A symbolic link given as PATH is followed.\n\n\
HOSTDIR is created if missing (its parent must exist). It must be empty unless --force: then \
entries in the way are replaced, a symbolic link in the way being removed, not followed.\n\n\
Nothing is ever written outside HOSTDIR, whatever names or links the tree holds or HOSTDIR \
already contains: every entry is created relative to its parent directory, opened without \
following links, and no existing file is opened for writing.\n\n\
Owners and groups are restored when dbos runs as root (unless --no-owner); otherwise the \
files belong to the user running dbos.\n\n\
export NAME[=VALUE]... (every operand a variable name, optionally with a value, and no \
option) is the shell's variable export, as in POSIX shells; with no operand it lists the \
exported variables. So a relative PATH that looks like a variable name needs a slash: \
export ./etc out.\n\n\
Examples:\n  \
export /etc /tmp/etc-now\n  \
export --as-of T42 /etc /tmp/etc-T42\n  \
export --as-of 'before-upgrade' /etc/nginx/nginx.conf /tmp/old\n  \
dbos export --as-of '2 hours ago' /srv/www ./www-then",
    disable_version_flag = true
)]
struct Export {
    /// Export the state as of a moment (T<id>, a time, '10m ago', BRANCH@REF, a tag).
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Write into a HOSTDIR that is not empty, replacing entries in the way.
    #[arg(long)]
    force: bool,
    /// Do not restore owners and groups, even when running as root.
    #[arg(long = "no-owner")]
    no_owner: bool,
    /// The directory export even when every operand looks like a variable
    /// name (`dbos export etc out` passes it).
    #[arg(long, hide = true)]
    tree: bool,
    /// File or directory of the versioned tree.
    #[arg(value_name = "PATH")]
    path: String,
    /// Host directory to write into.
    #[arg(value_name = "HOSTDIR")]
    host: PathBuf,
}

/// `export etc out` sets two variables, as in any POSIX shell; when `etc`
/// is also an entry of the working directory and neither is a variable,
/// the user most likely meant the directory export: say how to get it.
fn warn_if_meant_a_path(ctx: &mut Ctx<'_>, operands: &[String]) {
    let [first, second] = operands else {
        return;
    };
    if first.contains('=') || second.contains('=') {
        return;
    }
    if ctx.sess.vars.contains_key(first) || ctx.sess.vars.contains_key(second) {
        return;
    }
    let Ok(path) = ctx.sess.abs(first) else {
        return;
    };
    let exists = ctx
        .sess
        .read(None, |tx| Ok(tx.stat(&path)?.is_some()))
        .unwrap_or(false);
    if exists {
        ctx.warn(&format!(
            "dbos: export: took '{first}' and '{second}' as variable names; \
             to export the directory, write: export ./{first} {second}"
        ));
    }
}

fn export(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let operands = argv.get(1..).unwrap_or_default();
    if super::vars::is_variable_export(operands) {
        warn_if_meant_a_path(ctx, operands);
        return super::vars::export_vars(ctx, argv);
    }
    let Some(a) = parse::<Export>(ctx, argv)? else {
        return Ok(0);
    };
    let path = ctx.sess.abs(&a.path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let opts = ExportOptions {
        force: a.force,
        owner: root && !a.no_owner,
    };
    let mut bar = Bar::new("exporting");
    let (real, report) = ctx.sess.read(a.as_of.as_deref(), |tx| {
        let real = tx.canonicalize(&path, true)?;
        let r = dbos_hostdir::export(tx, &real, &a.host, &opts, &mut bar).map_err(failed)?;
        Ok((real, r))
    })?;
    drop(bar);
    let when = a
        .as_of
        .as_deref()
        .map(|r| format!(" as of {r}"))
        .unwrap_or_default();
    ctx.println(&format!(
        "exported {real}{when} to {}: {} directories, {} files, {} symbolic links ({})",
        dbos_hostdir::show_host(&a.host),
        report.dirs,
        report.files,
        report.symlinks,
        HumanBytes(report.bytes)
    ));
    Ok(0)
}
