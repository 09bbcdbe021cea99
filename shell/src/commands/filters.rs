//! Text filters: grep, head, tail, wc, sort.
//!
//! Each reads the files named (from the tree, as of `--as-of` if given) or,
//! with none (or `-`), standard input: a pipe, a redirection or a
//! here-document. Data is handled as bytes and may be non-UTF-8.

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use std::cmp::Ordering;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Grep, grep),
        spec!(Head, head),
        spec!(Tail, tail),
        spec!(Wc, wc),
        spec!(Sort, sort),
    ]
}

/// One input of a filter: its name (`-` for standard input) and bytes.
struct Input {
    name: String,
    data: Vec<u8>,
}

/// Read the inputs of a filter. Files that cannot be read are reported as
/// `dbos: CMD: ...` on standard error and skipped; the second value is
/// true when that happened.
fn read_inputs(
    ctx: &mut Ctx<'_>,
    cmd: &str,
    files: &[String],
    as_of: Option<&str>,
) -> (Vec<Input>, bool) {
    let stdin_input = |ctx: &mut Ctx<'_>| Input {
        name: "-".to_string(),
        data: ctx.stdin.take().unwrap_or_default(),
    };
    if files.is_empty() {
        return (vec![stdin_input(ctx)], false);
    }
    let mut inputs = Vec::new();
    let mut failed = false;
    for arg in files {
        if arg == "-" {
            inputs.push(stdin_input(ctx));
            continue;
        }
        let got = ctx.sess.abs(arg).and_then(|path| {
            ctx.sess.read(as_of, |tx| {
                let real = tx.canonicalize(&path, true)?;
                Ok(tx.read_file(&real)?)
            })
        });
        match got {
            Ok(data) => inputs.push(Input {
                name: arg.clone(),
                data,
            }),
            Err(f) => {
                ctx.warn(&format!("dbos: {cmd}: {}", f.message()));
                failed = true;
            }
        }
    }
    (inputs, failed)
}

/// The lines of `data`, each with its terminating newline (the last one may
/// have none).
fn lines_with_ends(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|b| *b == b'\n').collect()
}

/// A line without its terminating newline.
fn strip_nl(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// True if `needle` occurs in `hay` (an empty needle is everywhere).
fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Rewrite the classic `-5` form of head and tail into `-n 5`.
fn classic_count(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len() + 1);
    let mut options = true;
    for (i, a) in argv.iter().enumerate() {
        if i > 0 && options {
            if a == "--" {
                options = false;
            } else if a.len() > 1
                && a.starts_with('-')
                && a[1..].bytes().all(|b| b.is_ascii_digit())
            {
                out.push("-n".to_string());
                out.push(a[1..].to_string());
                continue;
            }
        }
        out.push(a.clone());
    }
    out
}

// ----- grep ------------------------------------------------------------------

/// Print lines containing a string.
#[derive(Parser)]
#[command(
    name = "grep",
    about = "Print lines that contain a string (plain substring, no regular expressions)",
    long_about = "Print the lines of the FILEs (or of standard input) that contain PATTERN.\n\n\
PATTERN is a plain substring: regular expressions are not supported, so characters such as \
. * [ ] ^ $ match themselves. With several FILEs, each line is prefixed with 'FILE:'.\n\n\
Exit status: 0 if a line was selected, 1 if none was, 2 if an error occurred.",
    disable_version_flag = true
)]
struct Grep {
    /// Ignore case.
    #[arg(short = 'i', long = "ignore-case")]
    ignore_case: bool,
    /// Prefix each line with its line number.
    #[arg(short = 'n', long = "line-number")]
    line_number: bool,
    /// Select the lines that do NOT contain PATTERN.
    #[arg(short = 'v', long = "invert-match")]
    invert: bool,
    /// Print only the number of selected lines (per file).
    #[arg(short = 'c', long = "count")]
    count: bool,
    /// Print only the names of files with a selected line.
    #[arg(short = 'l', long = "files-with-matches")]
    files_with_matches: bool,
    /// Print nothing; only the exit status tells.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Accepted for compatibility: PATTERN is always a fixed string.
    #[arg(short = 'F', long = "fixed-strings")]
    _fixed: bool,
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// The substring to look for (use -- before one starting with '-').
    #[arg(value_name = "PATTERN")]
    pattern: Option<String>,
    /// Files ('-' or none: standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

fn grep(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    // POSIX grep: usage errors give status 2.
    let Some(a) = parse::<Grep>(ctx, argv)? else {
        return Ok(0);
    };
    let Some(pattern) = a.pattern.as_deref() else {
        return Err(Failure::Usage("missing PATTERN (try --help)".into()));
    };
    let (inputs, failed) = read_inputs(ctx, "grep", &a.files, a.as_of.as_deref());
    let prefix_names = a.files.len() > 1;
    let needle_lower = pattern.to_lowercase();
    let mut any = false;
    let mut out = Vec::new();
    for input in &inputs {
        let mut count = 0usize;
        for (i, raw) in lines_with_ends(&input.data).into_iter().enumerate() {
            let line = strip_nl(raw);
            let hit = if a.ignore_case {
                String::from_utf8_lossy(line)
                    .to_lowercase()
                    .contains(&needle_lower)
            } else {
                contains_bytes(line, pattern.as_bytes())
            };
            if hit == a.invert {
                continue;
            }
            count += 1;
            any = true;
            if a.quiet || a.count || a.files_with_matches {
                continue;
            }
            if prefix_names {
                out.extend_from_slice(input.name.as_bytes());
                out.push(b':');
            }
            if a.line_number {
                out.extend_from_slice(format!("{}:", i + 1).as_bytes());
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        if a.quiet {
            continue;
        }
        if a.files_with_matches {
            if count > 0 {
                let name = if input.name == "-" {
                    "(standard input)"
                } else {
                    &input.name
                };
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
            }
        } else if a.count {
            if prefix_names {
                out.extend_from_slice(input.name.as_bytes());
                out.push(b':');
            }
            out.extend_from_slice(format!("{count}\n").as_bytes());
        }
    }
    ctx.out.extend_from_slice(&out);
    Ok(if a.quiet && any {
        0
    } else if failed {
        2
    } else if any {
        0
    } else {
        1
    })
}

// ----- head and tail ---------------------------------------------------------

/// Print the first lines of files.
#[derive(Parser)]
#[command(
    name = "head",
    about = "Print the first lines (default 10) of files or standard input",
    long_about = "Print the first N lines (default 10) of each FILE, or of standard input. \
'-5' is accepted for '-n 5'. With several FILEs, each is preceded by '==> FILE <=='.",
    disable_version_flag = true
)]
struct Head {
    /// Number of lines.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    lines: usize,
    /// Print the first N bytes instead of lines.
    #[arg(
        short = 'c',
        long = "bytes",
        value_name = "N",
        conflicts_with = "lines"
    )]
    bytes: Option<usize>,
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Files ('-' or none: standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

/// Print the last lines of files.
#[derive(Parser)]
#[command(
    name = "tail",
    about = "Print the last lines (default 10) of files or standard input",
    long_about = "Print the last N lines (default 10) of each FILE, or of standard input; \
with '-n +N', from line N on. '-5' is accepted for '-n 5'. With several FILEs, each is \
preceded by '==> FILE <=='.",
    disable_version_flag = true
)]
struct Tail {
    /// Number of lines, or +N to start at line N.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value = "10")]
    lines: String,
    /// Print the last N bytes instead of lines.
    #[arg(short = 'c', long = "bytes", value_name = "N")]
    bytes: Option<usize>,
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Files ('-' or none: standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

/// Write each input's selected part, with `==> name <==` headers when
/// there are several.
fn emit_parts(ctx: &mut Ctx<'_>, inputs: &[Input], several: bool, part: impl Fn(&[u8]) -> &[u8]) {
    for (i, input) in inputs.iter().enumerate() {
        if several {
            if i > 0 {
                ctx.println("");
            }
            let name = if input.name == "-" {
                "standard input"
            } else {
                &input.name
            };
            ctx.println(&format!("==> {name} <=="));
        }
        ctx.out.extend_from_slice(part(&input.data));
    }
}

/// The first `n` lines of `data`, as stored.
fn first_lines(data: &[u8], n: usize) -> &[u8] {
    let end = lines_with_ends(data)
        .into_iter()
        .take(n)
        .map(<[u8]>::len)
        .sum();
    &data[..end]
}

fn head(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Head>(ctx, &classic_count(argv))? else {
        return Ok(0);
    };
    let (inputs, failed) = read_inputs(ctx, "head", &a.files, a.as_of.as_deref());
    emit_parts(ctx, &inputs, a.files.len() > 1, |data| match a.bytes {
        Some(n) => &data[..n.min(data.len())],
        None => first_lines(data, a.lines),
    });
    Ok(i32::from(failed))
}

/// What `tail -n` asks for.
enum TailCount {
    /// The last N lines.
    Last(usize),
    /// From line N (1-based) on.
    From(usize),
}

fn parse_tail_count(s: &str) -> Result<TailCount, Failure> {
    let bad = || Failure::Usage(format!("invalid number of lines: {s:?} (try --help)"));
    match s.strip_prefix('+') {
        Some(n) => n.parse().map(TailCount::From).map_err(|_| bad()),
        None => s.parse().map(TailCount::Last).map_err(|_| bad()),
    }
}

fn tail(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Tail>(ctx, &classic_count(argv))? else {
        return Ok(0);
    };
    let count = parse_tail_count(&a.lines)?;
    let (inputs, failed) = read_inputs(ctx, "tail", &a.files, a.as_of.as_deref());
    emit_parts(ctx, &inputs, a.files.len() > 1, |data| {
        if let Some(n) = a.bytes {
            return &data[data.len() - n.min(data.len())..];
        }
        let lines = lines_with_ends(data);
        let skip = match count {
            TailCount::Last(n) => lines.len().saturating_sub(n),
            TailCount::From(n) => n.saturating_sub(1).min(lines.len()),
        };
        let start: usize = lines[..skip].iter().map(|l| l.len()).sum();
        &data[start..]
    });
    Ok(i32::from(failed))
}

// ----- wc --------------------------------------------------------------------

/// Count lines, words and bytes.
#[derive(Parser)]
#[command(
    name = "wc",
    about = "Count lines, words and bytes",
    long_about = "Count newlines, words (runs of non-blank characters) and bytes of each FILE, \
or of standard input. With no option all three are printed, in that order; with options, \
only those asked for. The FILE name follows the numbers, and with several FILEs a 'total' \
line ends the output.",
    disable_version_flag = true
)]
struct Wc {
    /// Count lines (newline characters).
    #[arg(short = 'l', long = "lines")]
    lines: bool,
    /// Count words.
    #[arg(short = 'w', long = "words")]
    words: bool,
    /// Count bytes.
    #[arg(short = 'c', long = "bytes")]
    bytes: bool,
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Files ('-' or none: standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

/// Lines, words and bytes of `data`.
fn counts(data: &[u8]) -> [usize; 3] {
    let lines = data.iter().filter(|b| **b == b'\n').count();
    let words = data
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    [lines, words, data.len()]
}

fn wc(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Wc>(ctx, argv)? else {
        return Ok(0);
    };
    let mut show = [a.lines, a.words, a.bytes];
    if !show.iter().any(|s| *s) {
        show = [true; 3];
    }
    let (inputs, failed) = read_inputs(ctx, "wc", &a.files, a.as_of.as_deref());
    let columns = show.iter().filter(|s| **s).count();
    let line = |c: [usize; 3], name: Option<&str>| {
        let nums: Vec<String> = c
            .iter()
            .zip(show)
            .filter(|(_, s)| *s)
            .map(|(n, _)| {
                if columns > 1 {
                    format!("{n:>7}")
                } else {
                    n.to_string()
                }
            })
            .collect();
        match name {
            Some(name) => format!("{} {name}", nums.join(" ")),
            None => nums.join(" "),
        }
    };
    let mut total = [0usize; 3];
    for input in &inputs {
        let c = counts(&input.data);
        for (t, n) in total.iter_mut().zip(c) {
            *t += n;
        }
        let name = (!a.files.is_empty()).then_some(input.name.as_str());
        ctx.println(&line(c, name));
    }
    if a.files.len() > 1 {
        ctx.println(&line(total, Some("total")));
    }
    Ok(i32::from(failed))
}

// ----- sort ------------------------------------------------------------------

/// Sort lines.
#[derive(Parser)]
#[command(
    name = "sort",
    about = "Sort lines of files or standard input",
    long_about = "Write the lines of all FILEs (or of standard input) sorted, by bytes (as in \
the C locale) unless -n is given. With -n, lines compare by their leading number (lines \
without one count as 0), then by bytes.",
    disable_version_flag = true
)]
struct Sort {
    /// Reverse the order.
    #[arg(short = 'r', long = "reverse")]
    reverse: bool,
    /// Compare by leading numeric value.
    #[arg(short = 'n', long = "numeric-sort")]
    numeric: bool,
    /// Output only the first of lines that compare equal.
    #[arg(short = 'u', long = "unique")]
    unique: bool,
    /// Ignore case (fold lower case to upper case).
    #[arg(short = 'f', long = "ignore-case")]
    fold: bool,
    /// Read the files as of a moment.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Files ('-' or none: standard input).
    #[arg(value_name = "FILE")]
    files: Vec<String>,
}

/// The leading number of a line (after blanks): `-12.5kg` gives -12.5;
/// none gives 0.
fn leading_number(line: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_start();
    let mut end = 0;
    let mut seen_dot = false;
    for (i, c) in s.char_indices() {
        let ok = c.is_ascii_digit() || (i == 0 && c == '-') || (c == '.' && !seen_dot);
        if !ok {
            break;
        }
        seen_dot |= c == '.';
        end = i + c.len_utf8();
    }
    s[..end].parse().unwrap_or(0.0)
}

fn sort(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Sort>(ctx, argv)? else {
        return Ok(0);
    };
    let (inputs, failed) = read_inputs(ctx, "sort", &a.files, a.as_of.as_deref());
    let mut lines: Vec<&[u8]> = inputs
        .iter()
        .flat_map(|i| lines_with_ends(&i.data))
        .map(strip_nl)
        .collect();
    let key_cmp = |x: &[u8], y: &[u8]| -> Ordering {
        if a.numeric {
            leading_number(x).total_cmp(&leading_number(y))
        } else if a.fold {
            x.to_ascii_uppercase().cmp(&y.to_ascii_uppercase())
        } else {
            x.cmp(y)
        }
    };
    lines.sort_by(|x, y| {
        let o = key_cmp(x, y);
        // Lines equal by key keep a stable byte order (unless -u keeps one).
        let o = if a.unique {
            o
        } else {
            o.then_with(|| x.cmp(y))
        };
        if a.reverse {
            o.reverse()
        } else {
            o
        }
    });
    if a.unique {
        lines.dedup_by(|x, y| key_cmp(x, y) == Ordering::Equal);
    }
    for l in lines {
        ctx.out.extend_from_slice(l);
        ctx.out.push(b'\n');
    }
    Ok(i32::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;
    use dbos_engine::{Actor, Engine};

    /// Run a filter in-process on `input` (raw bytes) as standard input.
    fn run(
        f: fn(&mut Ctx<'_>, &[String]) -> CmdResult,
        args: &[&str],
        input: &[u8],
    ) -> (i32, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db").display().to_string();
        let engine = Engine::open(&path).expect("open");
        let mut sess = Session::new(engine, "main", Actor::default()).expect("session");
        let mut ctx = Ctx {
            sess: &mut sess,
            stdin: Some(input.to_vec()),
            out: Vec::new(),
            err: Vec::new(),
            out_is_tty: false,
            out_direct: false,
            err_direct: false,
        };
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let status = f(&mut ctx, &argv).unwrap_or_else(|e| e.status());
        (status, ctx.out)
    }

    const BIN: &[u8] = b"ok \xff\xfe line\nplain\n\xc3(bad \xff\n";

    #[test]
    fn non_utf8_data_passes_through() {
        assert_eq!(
            run(grep, &["grep", "line"], BIN),
            (0, b"ok \xff\xfe line\n".to_vec())
        );
        assert_eq!(
            run(grep, &["grep", "-i", "BAD"], BIN),
            (0, b"\xc3(bad \xff\n".to_vec())
        );
        assert_eq!(run(grep, &["grep", "-c", "zz"], BIN), (1, b"0\n".to_vec()));
        assert_eq!(
            run(sort, &["sort"], BIN),
            (0, b"ok \xff\xfe line\nplain\n\xc3(bad \xff\n".to_vec())
        );
        assert_eq!(run(wc, &["wc", "-w"], BIN), (0, b"6\n".to_vec()));
        assert_eq!(
            run(tail, &["tail", "-n", "1"], BIN),
            (0, b"\xc3(bad \xff\n".to_vec())
        );
        assert_eq!(
            run(head, &["head", "-c", "4"], BIN),
            (0, b"ok \xff".to_vec())
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(lines_with_ends(b"a\nb"), [&b"a\n"[..], &b"b"[..]]);
        assert!(lines_with_ends(b"").is_empty());
        assert!(contains_bytes(b"x\xffy", b"\xffy"));
        assert!(contains_bytes(b"", b""));
        assert!(!contains_bytes(b"ab", b"abc"));
        assert_eq!(counts(b"one two\n  three\n"), [2, 3, 16]);
        assert_eq!(leading_number(b"  -12.5kg"), -12.5);
        assert_eq!(leading_number(b"abc"), 0.0);
        assert_eq!(leading_number(b"-"), 0.0);
        assert_eq!(leading_number(b"3.1.4"), 3.1);
        let argv: Vec<String> = ["head", "-5", "--", "-3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(classic_count(&argv), ["head", "-n", "5", "--", "-3"]);
    }
}
