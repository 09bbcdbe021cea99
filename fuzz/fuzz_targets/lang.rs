//! The shell's command-language parser (`dbos_shell::lang`): parsing,
//! "needs more input", error rendering and word expansion must never panic,
//! and every span must be a valid range of the source.
#![no_main]

use dbos_shell::lang::{
    expand_glob_with, expand_heredoc, expand_word, is_incomplete, parse_script, Command,
    RedirTarget, Span,
};
use libfuzzer_sys::fuzz_target;

fn check_span(src: &str, span: Span) {
    assert!(
        span.start <= span.end && span.end <= src.len(),
        "span {span:?} out of {}",
        src.len()
    );
    assert!(src.is_char_boundary(span.start) && src.is_char_boundary(span.end));
}

fn lookup(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/u".into()),
        "S" => Some(" a  b\t*c ".into()),
        "E" => Some(String::new()),
        _ => None,
    }
}

/// A listing where only `dir` (at any depth) is a directory: a stub where
/// every name was a directory made `*/*/*/...` grow as 4^depth, which a
/// real tree of that shape would do too (as in any POSIX shell).
fn list(dir: &str) -> Option<Vec<String>> {
    let is_dir = dir == "." || dir == "/" || dir.trim_end_matches('/').ends_with("dir");
    (is_dir && dir.len() < 256)
        .then(|| vec!["a".into(), "b.txt".into(), ".hidden".into(), "dir".into()])
}

fn command(src: &str, c: &Command) {
    check_span(src, c.span);
    for a in &c.assignments {
        let _ = expand_word(&a.value, lookup, |p| expand_glob_with(p, list));
    }
    for w in &c.words {
        check_span(src, w.span);
        let _ = expand_word(w, lookup, |p| expand_glob_with(p, list));
    }
    for r in &c.redirections {
        check_span(src, r.span);
        match &r.target {
            RedirTarget::Word(w) => {
                let _ = expand_word(w, lookup, |p| expand_glob_with(p, list));
            }
            RedirTarget::HereDoc(d) => {
                let _ = expand_heredoc(d, lookup);
            }
            RedirTarget::Fd(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_incomplete(src);
    match parse_script(src) {
        Ok(script) => {
            for item in &script.items {
                let pipes = std::iter::once(&item.and_or.first)
                    .chain(item.and_or.rest.iter().map(|(_, p)| p));
                for p in pipes {
                    for c in &p.commands {
                        command(src, c);
                    }
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e:?}");
            let _ = e.render(src);
        }
    }
});
