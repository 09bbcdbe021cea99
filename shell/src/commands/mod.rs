//! The built-in commands, one per file. Each file declares its arguments
//! with clap derive: that one definition drives parsing, `CMD --help`,
//! `help CMD`, completion and the man page.

use crate::session::{CmdResult, Failure, Session};

mod audit;
mod branch;
mod config;
mod control;
pub mod doctor;
mod files;
mod filters;
mod fsops;
mod history;
mod hostdir;
mod logs;
mod metrics;
mod power;
mod procs;
mod timetravel;
mod txn;
mod vars;

/// What a running command gets: the session, its input and its outputs.
pub struct Ctx<'a> {
    /// The shell session.
    pub sess: &'a mut Session,
    /// Standard input: piped, redirected or a here-document (None: nothing).
    pub stdin: Option<Vec<u8>>,
    /// Standard output.
    pub out: Vec<u8>,
    /// Standard error (besides the `dbos: CMD: message` of a failure).
    pub err: Vec<u8>,
    /// True when standard output is a terminal (not piped or redirected).
    pub out_is_tty: bool,
    /// True when standard output goes straight to the shell's own (last
    /// stage of a pipeline, not redirected): a host program may write it
    /// directly.
    pub out_direct: bool,
    /// True when standard error goes straight to the shell's own.
    pub err_direct: bool,
}

impl Ctx<'_> {
    /// Write text to standard output.
    pub fn print(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }
    /// Write a line to standard output.
    pub fn println(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'\n');
    }
    /// True when this command's output should be coloured.
    pub fn color(&self) -> bool {
        self.sess.color_always || (self.sess.color && self.out_is_tty)
    }
    /// Write a warning line to standard error.
    pub fn warn(&mut self, s: &str) {
        self.err.extend_from_slice(s.as_bytes());
        self.err.push(b'\n');
    }
}

/// A built-in command: its name, one-line description, argument definition
/// and implementation.
pub struct Spec {
    /// Name typed by the user.
    pub name: String,
    /// One-line description.
    pub about: String,
    /// The clap definition (help, completion, man page).
    pub command: fn() -> clap::Command,
    /// Run it with `argv` (argv[0] is the name).
    pub run: fn(&mut Ctx<'_>, &[String]) -> CmdResult,
}

/// Parse `argv` with a clap definition. `Ok(None)` means help was printed.
pub fn parse<A: clap::Parser>(ctx: &mut Ctx<'_>, argv: &[String]) -> Result<Option<A>, Failure> {
    let cmd = A::command().color(if ctx.sess.color {
        clap::ColorChoice::Always
    } else {
        clap::ColorChoice::Never
    });
    match cmd.try_get_matches_from(argv) {
        Ok(m) => A::from_arg_matches(&m)
            .map(Some)
            .map_err(|e| Failure::Usage(clap_message(&e))),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ctx.print(&e.render().to_string());
                Ok(None)
            }
            _ => Err(Failure::Usage(clap_message(&e))),
        },
    }
}

/// The first paragraph of a clap error on one line, without its `error: `
/// prefix, plus a hint.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = para.join(" ");
    let msg = joined.strip_prefix("error: ").unwrap_or(&joined);
    let msg = if msg.is_empty() {
        "invalid arguments"
    } else {
        msg
    };
    format!("{msg} (try --help)")
}

/// Every built-in, sorted by name.
pub fn all() -> &'static [Spec] {
    static ALL: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
    ALL.get_or_init(build_all)
}

fn build_all() -> Vec<Spec> {
    let mut v = Vec::new();
    v.extend(files::specs());
    v.extend(txn::specs());
    v.extend(history::specs());
    v.extend(config::specs());
    v.extend(control::specs());
    v.extend(vars::specs());
    v.extend(fsops::specs());
    v.extend(filters::specs());
    v.extend(timetravel::specs());
    v.extend(branch::specs());
    v.extend(audit::specs());
    v.extend(hostdir::specs());
    v.extend(metrics::specs());
    v.extend(power::specs());
    v.extend(procs::specs());
    v.extend(logs::specs());
    v.extend(doctor::specs());
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Look a built-in up by name.
pub fn find(name: &str) -> Option<&'static Spec> {
    all().iter().find(|s| s.name == name)
}

/// Build a Spec from a clap-derive type and a run function.
#[macro_export]
macro_rules! spec {
    ($args:ty, $run:expr) => {{
        let c = <$args as clap::CommandFactory>::command();
        $crate::commands::Spec {
            name: c.get_name().to_string(),
            about: c.get_about().map(|a| a.to_string()).unwrap_or_default(),
            command: <$args as clap::CommandFactory>::command,
            run: $run,
        }
    }};
}
