//! The interactive shell: rustyline with a prompt showing branch, directory
//! and open transaction; completion of commands, options and versioned
//! paths; line history kept in the database.

use crate::commands;
use crate::exec::{self, Streams};
use crate::lang;
use crate::session::Session;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;

const HISTORY_LINES: usize = 5000;

struct ShellHelper {
    sess: Rc<RefCell<Session>>,
}

impl Helper for ShellHelper {}
impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| c.is_whitespace() || ";|&<>".contains(c))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &before[start..];
        let first_word = before[..start]
            .rsplit(|c: char| ";|&".contains(c))
            .next()
            .unwrap_or("")
            .trim()
            .is_empty();
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: s,
        };
        if first_word {
            let v = commands::all()
                .iter()
                .filter(|s| s.name.starts_with(word))
                .map(|s| pair(format!("{} ", s.name)))
                .collect();
            return Ok((start, v));
        }
        if word.starts_with('-') {
            // The command of the segment being typed (after the last ; | &).
            let segment = before[..start]
                .rsplit(|c: char| ";|&".contains(c))
                .next()
                .unwrap_or("");
            let name = segment.split_whitespace().next().unwrap_or("");
            if let Some(spec) = commands::find(name) {
                let cmd = (spec.command)();
                let mut v: Vec<Pair> = Vec::new();
                for arg in cmd.get_arguments() {
                    if let Some(l) = arg.get_long() {
                        let o = format!("--{l}");
                        if o.starts_with(word) {
                            v.push(pair(format!("{o} ")));
                        }
                    }
                    if let Some(s) = arg.get_short() {
                        let o = format!("-{s}");
                        if o.starts_with(word) {
                            v.push(pair(format!("{o} ")));
                        }
                    }
                }
                return Ok((start, v));
            }
            return Ok((start, Vec::new()));
        }
        // Paths from the versioned tree.
        let (dir_part, name_part) = match word.rfind('/') {
            Some(i) => (&word[..=i], &word[i + 1..]),
            None => ("", word),
        };
        let mut sess = self.sess.borrow_mut();
        let Ok(dir) = sess.abs(if dir_part.is_empty() { "." } else { dir_part }) else {
            return Ok((start, Vec::new()));
        };
        let entries = sess
            .read(None, |tx| Ok(tx.read_dir(&dir)?))
            .unwrap_or_default();
        let v = entries
            .into_iter()
            .filter(|(n, _)| {
                n.starts_with(name_part) && (name_part.starts_with('.') || !n.starts_with('.'))
            })
            .map(|(n, e)| {
                let suffix = if e.is_dir() { "/" } else { " " };
                Pair {
                    display: format!("{n}{}", if e.is_dir() { "/" } else { "" }),
                    replacement: format!("{dir_part}{}{suffix}", escape(&n)),
                }
            })
            .collect();
        Ok((start, v))
    }
}

/// Backslash-escape the characters the language treats specially, so a
/// completed name is one word.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c.is_alphanumeric() || "._-+,:@%^=/".contains(c)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Tell dbos-init that the console shell reached its prompt, so the boot
/// counts as good. A failure is only worth a warning: the shell works.
fn signal_ready() {
    use dbos_procs::control::{send, socket_path, Request};
    if let Err(e) = send(&socket_path(), Request::Ready) {
        eprintln!("dbos: warning: could not mark this boot good: {e}");
    }
}

/// Run the interactive loop until `exit` or Ctrl-D.
pub fn run(sess: Session) -> i32 {
    let author = sess.actor.author.clone();
    let sess = Rc::new(RefCell::new(sess));
    let mut rl: Editor<ShellHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dbos: cannot start the line editor: {e}");
            return 1;
        }
    };
    rl.set_helper(Some(ShellHelper { sess: sess.clone() }));
    let past = sess
        .borrow_mut()
        .engine
        .backend()
        .shell_history(&author, HISTORY_LINES)
        .unwrap_or_default();
    for line in past {
        let _ = rl.add_history_entry(line);
    }
    let stdout_tty = std::io::stdout().is_terminal();
    crate::interrupt::install();
    let mut status = 0;
    let mut pending = String::new();
    let mut ready = std::env::var_os(dbos_procs::control::READY_ENV).is_some();
    loop {
        if std::mem::take(&mut ready) {
            signal_ready();
        }
        let prompt = if pending.is_empty() {
            sess.borrow().prompt()
        } else {
            "> ".to_string()
        };
        match rl.readline(&prompt) {
            Ok(line) => {
                pending.push_str(&line);
                pending.push('\n');
                if lang::is_incomplete(&pending) {
                    continue;
                }
                let unit = std::mem::take(&mut pending);
                let trimmed = unit.trim_end().to_string();
                if trimmed.trim().is_empty() {
                    continue;
                }
                let _ = rl.add_history_entry(trimmed.as_str());
                let mut s = sess.borrow_mut();
                let branch = s.branch.clone();
                if let Err(e) = s
                    .engine
                    .backend()
                    .add_shell_history(&author, &branch, &trimmed)
                {
                    eprintln!("dbos: warning: line history not saved: {e}");
                }
                let mut out = std::io::stdout();
                let mut err = std::io::stderr();
                let mut io = Streams {
                    out: &mut out,
                    err: &mut err,
                    out_is_tty: stdout_tty,
                };
                status = exec::run_unit(&mut s, &unit, &mut io);
                if let Some(code) = s.exit_requested {
                    s.stop_jobs();
                    return code;
                }
            }
            Err(ReadlineError::Interrupted) => {
                // Ctrl-C: cancel the line being typed, keep the shell.
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => {
                let mut s = sess.borrow_mut();
                // Like exit: background processes warn once, then stop.
                let running = s.jobs.running().len();
                if running > 0 && !s.exit_warned {
                    s.exit_warned = true;
                    eprintln!(
                        "dbos: {running} background process{} still running (see ps); \
                         Ctrl-D or exit again to stop {}",
                        if running == 1 { "" } else { "es" },
                        if running == 1 { "it" } else { "them" }
                    );
                    continue;
                }
                s.stop_jobs();
                if let Some(st) = s.explicit.take() {
                    eprintln!(
                        "dbos: warning: open transaction rolled back ({} pending changes discarded)",
                        st.pending().len()
                    );
                }
                return status;
            }
            Err(e) => {
                eprintln!("dbos: reading input: {e}");
                return 1;
            }
        }
    }
}
