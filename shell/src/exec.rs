//! Runs parsed scripts: and-or lists, pipelines (in-memory between
//! commands), redirections and here-documents reading and writing the
//! versioned tree, variable and glob expansion against the viewed moment.

use crate::commands::{self, Ctx};
use crate::lang::{
    expand_glob_with, expand_heredoc, expand_no_split, expand_words, parse_script, AndOrOp,
    Command, GlobPattern, Pipeline, RedirKind, RedirTarget, Script,
};
use crate::session::{Failure, Session};
use dbos_engine::VPath;
use std::cell::RefCell;
use std::io::Write;

/// Where a command's output descriptor goes.
#[derive(Clone, Debug, PartialEq)]
enum Sink {
    /// Standard output of the pipeline stage (the next stage, or the shell's).
    Out,
    /// The shell's standard error.
    Err,
    /// A file of the versioned tree.
    File { path: VPath, append: bool },
}

/// The shell's real output streams.
pub struct Streams<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// True when standard output is a terminal.
    pub out_is_tty: bool,
}

/// Parse and run one input unit (a line, a `-c` string, a script chunk) as
/// one implicit transaction. Returns the exit status.
pub fn run_unit(sess: &mut Session, src: &str, io: &mut Streams<'_>) -> i32 {
    let script = match parse_script(src) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(io.err, "dbos: parse error: {}", e.message);
            let rendered = e.render(src);
            let _ = write!(io.err, "{rendered}");
            if !rendered.ends_with('\n') {
                let _ = writeln!(io.err);
            }
            sess.last_status = 2;
            return 2;
        }
    };
    if script.is_empty() {
        return sess.last_status;
    }
    // A read-only snapshot left by completion or an earlier read must not
    // make this unit read stale state.
    if sess.line.as_ref().is_some_and(|st| st.is_clean()) {
        sess.line = None;
    }
    sess.line_text = src.trim().to_string();
    let was_open = sess.explicit.is_some();
    crate::interrupt::clear();
    let mut status = run_script(sess, &script, io);
    if crate::interrupt::requested() {
        crate::interrupt::clear();
        // Nothing of an interrupted line is committed.
        sess.line = None;
        let _ = writeln!(
            io.err,
            "dbos: interrupted; this line's changes were discarded"
        );
        sess.last_status = 130;
        return 130;
    }
    // Units run wholly inside begin ... commit make up its command text.
    if was_open && sess.explicit.is_some() {
        let text = sess.line_text.clone();
        sess.explicit_lines.push(text);
    }
    match sess.end_unit() {
        Ok(_) => {}
        Err(f) => {
            let _ = writeln!(io.err, "dbos: {}", f.message());
            status = 1;
        }
    }
    sess.last_status = status;
    status
}

fn run_script(sess: &mut Session, script: &Script, io: &mut Streams<'_>) -> i32 {
    let mut status = sess.last_status;
    for item in &script.items {
        if crate::interrupt::requested() {
            return 130;
        }
        status = run_pipeline(sess, &item.and_or.first, io);
        sess.last_status = status;
        for (op, pipeline) in &item.and_or.rest {
            let run = match op {
                AndOrOp::And => status == 0,
                AndOrOp::Or => status != 0,
            };
            if run {
                status = run_pipeline(sess, pipeline, io);
                sess.last_status = status;
            }
        }
        if sess.exit_requested.is_some() {
            break;
        }
    }
    status
}

fn run_pipeline(sess: &mut Session, p: &Pipeline, io: &mut Streams<'_>) -> i32 {
    let mut input: Option<Vec<u8>> = None;
    let mut status = 0;
    let n = p.commands.len();
    for (i, cmd) in p.commands.iter().enumerate() {
        if crate::interrupt::requested() {
            return 130;
        }
        let last = i + 1 == n;
        let (st, out) = run_command(sess, cmd, input.take(), last, io);
        status = st;
        if last {
            let paged_cmd = cmd
                .words
                .first()
                .and_then(|w| w.as_literal())
                .is_some_and(|n| crate::pager::PAGED.contains(&n.as_str()));
            if !(sess.interactive && io.out_is_tty && paged_cmd && crate::pager::page(&out)) {
                let _ = io.out.write_all(&out);
                let _ = io.out.flush();
            }
        } else {
            input = Some(out);
        }
    }
    status
}

fn lookup(sess: &Session, name: &str) -> Option<String> {
    match name {
        "?" => Some(sess.last_status.to_string()),
        "$" => Some(std::process::id().to_string()),
        "PWD" => Some(sess.cwd.to_string()),
        _ => sess
            .vars
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok()),
    }
}

/// Expand a command's words: variables, field splitting, globs against the
/// versioned tree as the session views it.
fn expand_argv(sess: &mut Session, words: &[crate::lang::Word]) -> Vec<String> {
    let cell = RefCell::new(sess);
    let look = |name: &str| lookup(&cell.borrow(), name);
    let glob = |pat: &GlobPattern| {
        expand_glob_with(pat, |dir: &str| {
            let mut s = cell.borrow_mut();
            let path = s.abs(if dir == "." { "." } else { dir }).ok()?;
            s.read(None, |tx| {
                Ok(tx
                    .read_dir(&path)?
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>())
            })
            .ok()
        })
    };
    expand_words(words, look, glob)
}

fn run_command(
    sess: &mut Session,
    cmd: &Command,
    mut stdin: Option<Vec<u8>>,
    last: bool,
    io: &mut Streams<'_>,
) -> (i32, Vec<u8>) {
    let out_is_tty = last && io.out_is_tty;
    // Assignments alone set shell variables.
    if cmd.words.is_empty() {
        for a in &cmd.assignments {
            let v = expand_no_split(&a.value, |n| lookup(sess, n));
            sess.vars.insert(a.name.clone(), v);
        }
        if cmd.redirections.is_empty() {
            return (0, Vec::new());
        }
    }
    let argv = expand_argv(sess, &cmd.words);
    let name = argv.first().cloned().unwrap_or_default();
    let label = if name.is_empty() {
        "dbos".to_string()
    } else {
        name.clone()
    };

    let mut out_sink = Sink::Out;
    let mut err_sink = Sink::Err;
    for r in &cmd.redirections {
        let step: Result<(), Failure> = (|| {
            match (&r.kind, &r.target) {
                (RedirKind::HereDoc, RedirTarget::HereDoc(doc)) => {
                    stdin = Some(expand_heredoc(doc, |n| lookup(sess, n)).into_bytes());
                }
                (RedirKind::Input, RedirTarget::Word(w)) => {
                    let target = expand_no_split(w, |n| lookup(sess, n));
                    let path = sess.abs(&target)?;
                    let bytes = sess.read(None, |tx| {
                        let real = tx.canonicalize(&path, true)?;
                        Ok(tx.read_file(&real)?)
                    })?;
                    stdin = Some(bytes);
                }
                (RedirKind::Output | RedirKind::Append, RedirTarget::Word(w)) => {
                    let target = expand_no_split(w, |n| lookup(sess, n));
                    if target.is_empty() {
                        return Err(Failure::Usage("empty redirection target".into()));
                    }
                    let path = sess.abs(&target)?;
                    let path = sess.read(None, |tx| Ok(tx.canonicalize(&path, true)?))?;
                    let sink = Sink::File {
                        path,
                        append: r.kind == RedirKind::Append,
                    };
                    if r.fd == 2 {
                        err_sink = sink;
                    } else {
                        out_sink = sink;
                    }
                }
                (RedirKind::DupOutput, RedirTarget::Fd(target)) => {
                    if r.fd == 2 && *target == 1 {
                        err_sink = out_sink.clone();
                    } else if r.fd == 1 && *target == 2 {
                        out_sink = err_sink.clone();
                    }
                }
                _ => return Err(Failure::Usage("unsupported redirection".into())),
            }
            Ok(())
        })();
        if let Err(f) = step {
            let _ = writeln!(io.err, "dbos: {label}: {}", f.message());
            return (f.status(), Vec::new());
        }
    }
    if name.is_empty() {
        return (0, Vec::new());
    }

    // `NAME=value cmd`: variables for this command only.
    let saved: Vec<(String, Option<String>)> = cmd
        .assignments
        .iter()
        .map(|a| {
            let v = expand_no_split(&a.value, |n| lookup(sess, n));
            (a.name.clone(), sess.vars.insert(a.name.clone(), v))
        })
        .collect();

    let mut ctx = Ctx {
        sess,
        stdin,
        out: Vec::new(),
        err: Vec::new(),
        out_is_tty: out_is_tty && out_sink == Sink::Out,
        out_direct: last && out_sink == Sink::Out,
        err_direct: err_sink == Sink::Err,
    };
    let result = match commands::find(&name) {
        Some(spec) => (spec.run)(&mut ctx, &argv),
        None => Err(Failure::Usage("command not found (try 'help')".to_string())),
    };
    let Ctx {
        sess, out, mut err, ..
    } = ctx;
    for (k, old) in saved.into_iter().rev() {
        match old {
            Some(v) => sess.vars.insert(k, v),
            None => sess.vars.remove(&k),
        };
    }
    let status = match &result {
        Ok(s) => *s,
        Err(f) => {
            err.extend_from_slice(format!("dbos: {name}: {}\n", f.message()).as_bytes());
            f.status()
        }
    };

    let mut stage_out = Vec::new();
    let mut status = status;
    // Route output then errors; a failed command writes no file.
    for (bytes, sink) in [(out, out_sink), (err, err_sink)] {
        match sink {
            Sink::Out => stage_out.extend_from_slice(&bytes),
            Sink::Err => {
                let _ = io.err.write_all(&bytes);
            }
            Sink::File { path, append } => {
                if result.is_err() && bytes.is_empty() {
                    continue;
                }
                if let Err(f) = sess.write(|tx| Ok(tx.write_file(&path, &bytes[..], append)?)) {
                    let _ = writeln!(io.err, "dbos: {name}: {}", f.message());
                    status = 1;
                }
            }
        }
    }
    (status, stage_out)
}
