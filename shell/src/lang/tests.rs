//! Unit tests, an oracle comparison with `/bin/sh`, and a no-panic fuzz test.

use std::collections::HashMap;

use super::*;

// ---------------------------------------------------------------- helpers

fn lit(text: &str, quoted: bool) -> WordPart {
    WordPart::Literal {
        text: text.to_string(),
        quoted,
    }
}

fn var(name: &str, quoted: bool) -> WordPart {
    WordPart::Var {
        name: name.to_string(),
        quoted,
    }
}

fn parse(src: &str) -> Script {
    match parse_script(src) {
        Ok(s) => s,
        Err(e) => panic!("parse of {src:?} failed:\n{}", e.render(src)),
    }
}

fn err(src: &str) -> ParseError {
    match parse_script(src) {
        Ok(s) => panic!("parse of {src:?} unexpectedly succeeded: {s:?}"),
        Err(e) => e,
    }
}

/// The commands of a script, flattened in order.
fn commands(script: &Script) -> Vec<&Command> {
    let mut out = Vec::new();
    for item in &script.items {
        out.extend(item.and_or.first.commands.iter());
        for (_, p) in &item.and_or.rest {
            out.extend(p.commands.iter());
        }
    }
    out
}

fn first_command(src: &str) -> Command {
    let script = parse(src);
    match commands(&script).first() {
        Some(c) => (*c).clone(),
        None => panic!("no command in {src:?}"),
    }
}

/// The parts of each word of the first command.
fn word_parts(src: &str) -> Vec<Vec<WordPart>> {
    first_command(src)
        .words
        .into_iter()
        .map(|w| w.parts)
        .collect()
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Expands the words of the first command of `src` with `env` and no glob
/// matches.
fn expand_src(src: &str, env: &HashMap<String, String>) -> Vec<String> {
    let cmd = first_command(src);
    expand_words(&cmd.words, |n| env.get(n).cloned(), |_| Vec::new())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn heredoc(cmd: &Command, index: usize) -> HereDoc {
    match &cmd.redirections[index].target {
        RedirTarget::HereDoc(doc) => doc.clone(),
        other => panic!("not a here-document: {other:?}"),
    }
}

fn target_text(r: &Redirection) -> String {
    match &r.target {
        RedirTarget::Word(w) => w.as_literal().unwrap_or_default(),
        RedirTarget::Fd(fd) => format!("&{fd}"),
        RedirTarget::HereDoc(doc) => format!("<<{}", doc.delimiter),
    }
}

// ---------------------------------------------------------------- words

#[test]
fn plain_words_and_blanks() {
    assert_eq!(
        word_parts("  echo \t hello   world  "),
        vec![
            vec![lit("echo", false)],
            vec![lit("hello", false)],
            vec![lit("world", false)]
        ]
    );
}

#[test]
fn single_quotes_are_literal() {
    assert_eq!(
        word_parts(r#"echo 'a $X \n "q" `x` ${' b'c'"#),
        vec![
            vec![lit("echo", false)],
            vec![lit(r#"a $X \n "q" `x` ${"#, true)],
            vec![lit("b", false), lit("c", true)],
        ]
    );
    assert_eq!(word_parts("echo ''")[1], vec![lit("", true)]);
}

#[test]
fn double_quotes_with_variables_and_escapes() {
    assert_eq!(
        word_parts(r#"echo "a $X-${Y}z $? \$ \` \" \\ \n end""#)[1],
        vec![
            lit("a ", true),
            var("X", true),
            lit("-", true),
            var("Y", true),
            lit("z ", true),
            var("?", true),
            lit(r#" $ ` " \ \n end"#, true),
        ]
    );
    assert_eq!(word_parts("echo \"\"")[1], vec![lit("", true)]);
    // backslash-newline inside double quotes is removed
    assert_eq!(word_parts("echo \"a\\\nb\"")[1], vec![lit("ab", true)]);
    // a newline inside double quotes is kept
    assert_eq!(word_parts("echo \"a\nb\"")[1], vec![lit("a\nb", true)]);
}

#[test]
fn unquoted_variables_and_dollar_literals() {
    assert_eq!(
        word_parts("echo $X ${Y}z a$1b $? $$ $ a$ $-x")[1..],
        vec![
            vec![var("X", false)],
            vec![var("Y", false), lit("z", false)],
            vec![lit("a", false), var("1", false), lit("b", false)],
            vec![var("?", false)],
            vec![var("$", false)],
            vec![lit("$", false)],
            vec![lit("a$", false)],
            vec![var("-", false), lit("x", false)],
        ]
    );
    assert_eq!(word_parts("echo ${10} ${?}")[1][0], var("10", false));
    assert_eq!(word_parts("echo ${10} ${?}")[2][0], var("?", false));
    // `$` before a quote stays literal
    assert_eq!(
        word_parts("echo $'x'")[1],
        vec![lit("$", false), lit("x", true)]
    );
}

#[test]
fn backslash_outside_quotes() {
    assert_eq!(
        word_parts(r"echo a\ b \$X \* \\ \'")[1..],
        vec![
            vec![lit("a", false), lit(" ", true), lit("b", false)],
            vec![lit("$", true), lit("X", false)],
            vec![lit("*", true)],
            vec![lit("\\", true)],
            vec![lit("'", true)],
        ]
    );
    // line continuation inside and between words
    assert_eq!(
        word_parts("echo ab\\\ncd \\\n ef"),
        vec![
            vec![lit("echo", false)],
            vec![lit("abcd", false)],
            vec![lit("ef", false)]
        ]
    );
    // a final backslash is literal (like `sh -c 'echo a\'`)
    assert_eq!(
        word_parts("echo a\\")[1],
        vec![lit("a", false), lit("\\", true)]
    );
}

#[test]
fn mixed_quoting_in_one_word() {
    assert_eq!(
        word_parts(r#"printf '%s\n' a"b c"'d'\ e $X "${X}y""#)[2..],
        vec![
            vec![lit("a", false), lit("b cd ", true), lit("e", false)],
            vec![var("X", false)],
            vec![var("X", true), lit("y", true)],
        ]
    );
}

#[test]
fn multibyte_text() {
    assert_eq!(
        word_parts("echo héllo 'wörld' \"ünï $X\" €")[1..],
        vec![
            vec![lit("héllo", false)],
            vec![lit("wörld", true)],
            vec![lit("ünï ", true), var("X", true)],
            vec![lit("€", false)],
        ]
    );
}

#[test]
fn comments_only_at_word_start() {
    assert_eq!(
        word_parts("echo a#b #c d"),
        vec![vec![lit("echo", false)], vec![lit("a#b", false)]]
    );
    assert!(parse("# just a comment").is_empty());
    assert!(parse("\n  # c1\n\n# c2\n").is_empty());
    let s = parse("echo a;#c\necho b");
    assert_eq!(commands(&s).len(), 2);
    assert_eq!(word_parts("echo '#' \\#x")[1], vec![lit("#", true)]);
}

#[test]
fn word_helpers_and_spans() {
    let cmd = first_command("  echo 'a'b $X");
    assert_eq!(cmd.words[1].span, Span { start: 7, end: 11 });
    assert_eq!(cmd.words[1].as_literal(), Some("ab".to_string()));
    assert!(cmd.words[1].has_quotes());
    assert!(!cmd.words[0].has_quotes());
    assert_eq!(cmd.words[2].as_literal(), None);
    assert!(cmd.words[2].has_vars());
    assert_eq!(cmd.span, Span { start: 2, end: 14 });
}

// ---------------------------------------------------------------- structure

#[test]
fn separators_and_lists() {
    let s = parse("a; b && c || d\ne");
    assert_eq!(s.items.len(), 3);
    assert_eq!(s.items[0].separator, Separator::Semicolon);
    assert_eq!(s.items[1].separator, Separator::Newline);
    assert_eq!(s.items[2].separator, Separator::End);
    let ao = &s.items[1].and_or;
    assert_eq!(ao.rest.len(), 2);
    assert_eq!(ao.rest[0].0, AndOrOp::And);
    assert_eq!(ao.rest[1].0, AndOrOp::Or);
    let names: Vec<String> = commands(&s)
        .iter()
        .filter_map(|c| c.words[0].as_literal())
        .collect();
    assert_eq!(names, strings(&["a", "b", "c", "d", "e"]));
    // trailing `;` is fine
    assert_eq!(parse("a;").items[0].separator, Separator::Semicolon);
    // newlines after && / || / | continue the list
    let s = parse("a &&\n\n b ||\n c |\n d");
    assert_eq!(s.items.len(), 1);
    assert_eq!(s.items[0].and_or.rest[1].1.commands.len(), 2);
}

#[test]
fn pipelines() {
    let s = parse("a x | b y|c");
    let p = &s.items[0].and_or.first;
    assert_eq!(p.commands.len(), 3);
    assert_eq!(p.commands[2].words[0].as_literal(), Some("c".to_string()));
    let s = parse("a | b && c | d");
    assert_eq!(s.items[0].and_or.first.commands.len(), 2);
    assert_eq!(s.items[0].and_or.rest[0].1.commands.len(), 2);
}

#[test]
fn operators_need_no_spaces() {
    let s = parse("a&&b||c;d|e");
    assert_eq!(commands(&s).len(), 5);
}

// ---------------------------------------------------------------- assignments

#[test]
fn assignments() {
    let c = first_command("A=1 B=$X C= cmd D=4");
    assert_eq!(c.assignments.len(), 3);
    assert_eq!(c.assignments[0].name, "A");
    assert_eq!(c.assignments[0].value.parts, vec![lit("1", false)]);
    assert_eq!(c.assignments[1].value.parts, vec![var("X", false)]);
    assert!(c.assignments[2].value.parts.is_empty());
    assert_eq!(c.words.len(), 2);
    assert_eq!(c.words[1].as_literal(), Some("D=4".to_string()));

    // only assignments: sets shell variables
    let c = first_command("X='a b' Y=\"$Z\"");
    assert!(c.words.is_empty());
    assert_eq!(c.assignments[0].value.parts, vec![lit("a b", true)]);
    assert_eq!(c.assignments[1].value.parts, vec![var("Z", true)]);

    // not assignments
    for src in ["\"A\"=1", "1A=2", "=x", "A-B=1", "\\A=1", "A\\=1"] {
        let c = first_command(src);
        assert!(c.assignments.is_empty(), "{src}");
        assert_eq!(c.words.len(), 1, "{src}");
    }
    // redirections may be mixed into the prefix
    let c = first_command("A=1 >f B=2 cmd");
    assert_eq!(c.assignments.len(), 2);
    assert_eq!(c.redirections.len(), 1);
    // value with `=` and span
    let c = first_command("A=b=c");
    assert_eq!(c.assignments[0].value.parts, vec![lit("b=c", false)]);
    assert_eq!(c.assignments[0].value.span, Span { start: 2, end: 5 });
    let env = vars(&[("X", "1  2")]);
    assert_eq!(
        expand_no_split(&first_command("A=$X'*'").assignments[0].value, |n| env
            .get(n)
            .cloned()),
        "1  2*"
    );
}

// ---------------------------------------------------------------- redirections

#[test]
fn redirections() {
    let c = first_command("cmd a >out 2>err b >>app 2>>eapp <in 2>&1 >&2 >|clob");
    assert_eq!(c.words.len(), 3);
    let got: Vec<(u32, RedirKind, String)> = c
        .redirections
        .iter()
        .map(|r| (r.fd, r.kind, target_text(r)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, RedirKind::Output, "out".to_string()),
            (2, RedirKind::Output, "err".to_string()),
            (1, RedirKind::Append, "app".to_string()),
            (2, RedirKind::Append, "eapp".to_string()),
            (0, RedirKind::Input, "in".to_string()),
            (2, RedirKind::DupOutput, "&1".to_string()),
            (1, RedirKind::DupOutput, "&2".to_string()),
            (1, RedirKind::Output, "clob".to_string()),
        ]
    );
}

#[test]
fn redirection_spacing_and_fd_words() {
    let c = first_command("echo > 'my file' 2> \"$E\" 1>o 0<i 2>& 1");
    assert_eq!(c.redirections.len(), 5);
    assert_eq!(
        c.redirections[0].target,
        RedirTarget::Word(Word {
            parts: vec![lit("my file", true)],
            span: Span { start: 7, end: 16 }
        })
    );
    assert_eq!(c.redirections[0].span, Span { start: 5, end: 16 });
    assert_eq!(c.redirections[2].fd, 1);
    assert_eq!(c.redirections[3].fd, 0);
    assert_eq!(c.redirections[4].target, RedirTarget::Fd(1));
    // digits not directly before the operator are words
    let c = first_command("echo a2>f 2 >g \"2\">h");
    let w: Vec<String> = c.words.iter().filter_map(|w| w.as_literal()).collect();
    assert_eq!(w, strings(&["echo", "a2", "2", "2"]));
    assert!(c.redirections.iter().all(|r| r.fd == 1));
    // redirection only
    let c = first_command(">f");
    assert!(c.words.is_empty());
    assert_eq!(c.redirections.len(), 1);
    // the order is kept
    let c = first_command("cmd 2>&1 >f");
    assert_eq!(c.redirections[0].kind, RedirKind::DupOutput);
    assert_eq!(c.redirections[1].kind, RedirKind::Output);
}

// ---------------------------------------------------------------- here-documents

#[test]
fn heredoc_basic() {
    let s = parse("cat <<EOF\nhello $X\n  ${Y}!\nEOF\necho after");
    let cmds = commands(&s);
    assert_eq!(cmds.len(), 2);
    let doc = heredoc(cmds[0], 0);
    assert_eq!(cmds[0].redirections[0].kind, RedirKind::HereDoc);
    assert_eq!(cmds[0].redirections[0].fd, 0);
    assert_eq!(doc.delimiter, "EOF");
    assert!(!doc.quoted);
    assert!(!doc.strip_tabs);
    assert_eq!(
        doc.body.parts,
        vec![
            lit("hello ", true),
            var("X", true),
            lit("\n  ", true),
            var("Y", true),
            lit("!\n", true),
        ]
    );
    assert_eq!(cmds[1].words[1].as_literal(), Some("after".to_string()));
    let env = vars(&[("X", "a  *"), ("Y", "y")]);
    assert_eq!(
        expand_heredoc(&doc, |n| env.get(n).cloned()),
        "hello a  *\n  y!\n"
    );
}

#[test]
fn heredoc_quoted_delimiters_keep_body_literal() {
    for (src, delim) in [
        ("cat <<'E O'\n$X \\$ `x`\nE O\n", "E O"),
        ("cat <<\"EOF\"\n$X \\$ `x`\nEOF\n", "EOF"),
        ("cat <<\\EOF\n$X \\$ `x`\nEOF", "EOF"),
        ("cat <<E'O'F\n$X \\$ `x`\nEOF", "EOF"),
    ] {
        let doc = heredoc(&first_command(src), 0);
        assert!(doc.quoted, "{src}");
        assert_eq!(doc.delimiter, delim);
        assert_eq!(doc.body.parts, vec![lit("$X \\$ `x`\n", true)], "{src}");
    }
}

#[test]
fn heredoc_unquoted_escapes() {
    let doc = heredoc(&first_command("cat <<E\na\\$X \\\\ \\\" \\q\\\nb\nE\n"), 0);
    assert_eq!(doc.body.parts, vec![lit("a$X \\ \\\" \\qb\n", true)]);
    // a continued line cannot end the body; quoted bodies do not join lines
    let doc = heredoc(&first_command("cat <<E\na\\\nE\nE\n"), 0);
    assert_eq!(doc.body.parts, vec![lit("aE\n", true)]);
    let doc = heredoc(&first_command("cat <<'E'\na\\\nE\n"), 0);
    assert_eq!(doc.body.parts, vec![lit("a\\\n", true)]);
    let doc = heredoc(&first_command("cat <<E\na\\\\\nE\n"), 0);
    assert_eq!(doc.body.parts, vec![lit("a\\\n", true)]);
}

#[test]
fn heredoc_strip_tabs() {
    let doc = heredoc(&first_command("cat <<-END\n\t\tone\n\t  two\n\tEND\n"), 0);
    assert!(doc.strip_tabs);
    assert_eq!(doc.body.parts, vec![lit("one\n  two\n", true)]);
    // without `-` tabs are kept and the tabbed delimiter does not end it
    let doc = heredoc(&first_command("cat <<END\n\tone\n\tEND\nEND"), 0);
    assert_eq!(doc.body.parts, vec![lit("\tone\n\tEND\n", true)]);
}

#[test]
fn heredoc_multiple_and_in_pipelines() {
    let s = parse("cat <<A <<'B' | wc -l; echo x\nbody a\nA\nbody $b\nB\necho next\n");
    let cmds = commands(&s);
    assert_eq!(cmds.len(), 4);
    assert_eq!(heredoc(cmds[0], 0).body.parts, vec![lit("body a\n", true)]);
    assert_eq!(heredoc(cmds[0], 1).body.parts, vec![lit("body $b\n", true)]);
    assert_eq!(cmds[3].words[0].as_literal(), Some("echo".to_string()));
    // body read after the newline that follows `|`
    let s = parse("cat <<E |\nin body\nE\nwc");
    let cmds = commands(&s);
    assert_eq!(heredoc(cmds[0], 0).body.parts, vec![lit("in body\n", true)]);
    assert_eq!(cmds[1].words[0].as_literal(), Some("wc".to_string()));
    // an empty body, and the delimiter as the very last line without newline
    let doc = heredoc(&first_command("cat <<E\nE"), 0);
    assert!(doc.body.parts.is_empty());
    assert_eq!(expand_heredoc(&doc, |_| None), "");
    // several commands with here-docs, filled in source order
    let s = parse("a <<X\n1\nX\nb <<Y\n2\nY\n");
    let cmds = commands(&s);
    assert_eq!(heredoc(cmds[0], 0).body.parts, vec![lit("1\n", true)]);
    assert_eq!(heredoc(cmds[1], 0).body.parts, vec![lit("2\n", true)]);
    // `<< EOF` with a blank before the delimiter
    assert_eq!(
        heredoc(&first_command("cat << EOF\nx\nEOF\n"), 0).delimiter,
        "EOF"
    );
}

// ---------------------------------------------------------------- errors

/// (input, expected message fragment, line, column)
const ERROR_CASES: &[(&str, &str, usize, usize)] = &[
    ("echo 'abc", "unterminated single quote", 1, 6),
    (
        "echo ok\necho x\"abc\ndef",
        "unterminated double quote",
        2,
        7,
    ),
    ("| wc", "`|` with nothing before it", 1, 1),
    ("ls |", "`|` with nothing after it", 1, 4),
    ("ls | | wc", "`|` with nothing after it", 1, 4),
    ("ls |;", "`|` with nothing after it", 1, 4),
    ("&& b", "`&&` with nothing before it", 1, 1),
    ("a &&", "`&&` with nothing after it", 1, 3),
    ("a && || b", "`&&` with nothing after it", 1, 3),
    ("|| b", "`||` with nothing before it", 1, 1),
    ("a ||", "`||` with nothing after it", 1, 3),
    ("a || ; b", "`||` with nothing after it", 1, 3),
    ("; a", "`;` with nothing before it", 1, 1),
    ("a ; ; b", "`;` with nothing before it", 1, 5),
    ("a\n  ;", "`;` with nothing before it", 2, 3),
    ("echo >", "redirection `>` without a target", 1, 6),
    ("echo a > ;", "redirection `>` without a target", 1, 8),
    ("echo 2>>", "redirection `>>` without a target", 1, 7),
    ("cat <", "redirection `<` without a target", 1, 5),
    ("cat < | wc", "redirection `<` without a target", 1, 5),
    ("cat <<", "redirection `<<` without a target", 1, 5),
    ("echo > #c", "redirection `>` without a target", 1, 6),
    ("echo ${X", "unterminated `${`", 1, 6),
    ("echo \"${", "unterminated `${`", 1, 7),
    ("echo ${}", "bad variable name", 1, 8),
    ("echo ${X-y}", "bad variable name", 1, 9),
    ("echo ${X:-y}", "bad variable name", 1, 9),
    ("echo ${#X}", "bad variable name", 1, 9),
    ("echo ${a b}", "bad variable name", 1, 9),
    ("echo ${1a}", "bad variable name", 1, 9),
    ("cat <<EOF\nline\n", "unterminated here-document", 1, 5),
    ("cat <<EOF", "unterminated here-document", 1, 5),
    (
        "x\ncat <<-END | wc\n\tEN\n",
        "unterminated here-document",
        2,
        5,
    ),
    ("cat <<'EOF\nx\nEOF", "unterminated single quote", 1, 7),
    ("echo 2>&2", "`2>&` must be followed by `1`", 1, 9),
    ("echo 2>&x", "`2>&` must be followed by `1`", 1, 9),
    ("echo 2>&", "`2>&` must be followed by `1`", 1, 9),
    ("echo 2>&12", "`2>&` must be followed by `1`", 1, 9),
    ("echo >&1", "`>&` must be followed by `2`", 1, 8),
    ("echo 0>&1", "not supported", 1, 6),
    ("echo 3>f", "file descriptor 3 is not supported", 1, 6),
    ("cat <&3", "redirection `<&` is not supported", 1, 5),
    ("cat <>f", "redirection `<>` is not supported", 1, 5),
    ("sleep 1 &", "background jobs", 1, 9),
    ("sleep 1 & echo", "background jobs", 1, 9),
    ("& echo", "background jobs", 1, 1),
    ("echo $(ls)", "command substitution", 1, 6),
    ("echo \"$(ls)\"", "command substitution", 1, 7),
    ("echo `ls`", "command substitution", 1, 6),
    ("echo \"`ls`\"", "command substitution", 1, 7),
    ("(echo)", "subshells", 1, 1),
    ("echo a)", "subshells", 1, 7),
    ("cat <<E\n`x`\nE", "command substitution", 2, 1),
    ("cat <<E\n${a-b}\nE", "bad variable name", 2, 4),
    ("é'ü", "unterminated single quote", 1, 2),
    ("\tx 'y", "unterminated single quote", 1, 4),
];

#[test]
fn error_messages_and_positions() {
    for &(src, message, line, column) in ERROR_CASES {
        let e = err(src);
        assert!(
            e.message.contains(message),
            "{src:?}: message {:?} does not contain {message:?}",
            e.message
        );
        assert_eq!(
            (e.line, e.column),
            (line, column),
            "{src:?}: wrong position for {:?}\n{}",
            e.message,
            e.render(src)
        );
    }
}

#[test]
fn render_shows_line_and_caret() {
    let src = "echo 'abc";
    assert_eq!(
        err(src).render(src),
        "echo 'abc\n     ^ unterminated single quote"
    );
    let src = "echo ok\nls | | wc\necho later";
    assert_eq!(
        err(src).render(src),
        "ls | | wc\n   ^ `|` with nothing after it"
    );
    // tabs are kept so the caret lines up, multi-byte chars count once
    let src = "\té \"x";
    let e = err(src);
    assert_eq!(e.column, 4);
    assert_eq!(e.render(src), "\té \"x\n\t  ^ unterminated double quote");
    // a column past the end of the line
    let e = ParseError {
        message: "m".to_string(),
        line: 1,
        column: 5,
    };
    assert_eq!(e.render("ab"), "ab\n    ^ m");
    // a line that does not exist renders an empty line
    let e = ParseError {
        message: "m".to_string(),
        line: 9,
        column: 1,
    };
    assert_eq!(e.render("ab"), "\n^ m");
    assert_eq!(
        err("ls |").to_string(),
        "syntax error at line 1, column 4: `|` with nothing after it"
    );
}

#[test]
fn incomplete_inputs() {
    let incomplete = [
        "echo 'abc",
        "echo 'abc\ndef",
        "echo \"abc",
        "echo \"a\\\"",
        "ls |",
        "ls |\n",
        "ls | \n  # comment\n",
        "a &&",
        "a ||\n",
        "echo a \\",
        "echo a \\\n",
        "echo a\\\n",
        "cat <<EOF",
        "cat <<EOF\n",
        "cat <<EOF\nbody\n",
        "cat <<EOF\nbody\nEO",
        "cat <<'EOF\n",
        "cat <<-E | wc\n\tbody",
    ];
    for src in incomplete {
        assert!(is_incomplete(src), "{src:?} should be incomplete");
        assert!(parse_script(src).is_err() || src.ends_with('\\') || src.ends_with("\\\n"));
    }
    let complete = [
        "",
        "echo a",
        "echo a;",
        "echo a\n",
        "echo 'a'\n",
        "echo a \\\\",
        "echo 'a\\'",
        "echo a # trailing \\",
        "cat <<EOF\nbody\nEOF",
        "cat <<EOF\nbody\nEOF\n",
        // errors that more input cannot fix
        "| a",
        "a | | b",
        "echo ${",
        "echo >",
        "a ; ; b",
        "echo $(x)",
    ];
    for src in complete {
        assert!(!is_incomplete(src), "{src:?} should not be incomplete");
    }
}

#[test]
fn never_unwraps_on_odd_input() {
    for src in [
        "\\", "'", "\"", "$", "${", "$'", "<<", "<<-", "2>", "2>&", "\n\n", "#", "é", "\u{0}",
        "\r\n", "<<\"", "a=", "=", "2", "2<", ">>>", "<<<", ";;", "||||", "&&&&",
    ] {
        if let Err(e) = parse_script(src) {
            let _ = e.render(src);
        }
        let _ = is_incomplete(src);
    }
}

// ---------------------------------------------------------------- expansion

#[test]
fn expansion_field_splitting() {
    let env = vars(&[
        ("X", "hello world"),
        ("E", ""),
        ("S", "  lead  trail  "),
        ("T", "a\tb\nc"),
        ("SP", " "),
        ("?", "3"),
    ]);
    let cases: &[(&str, &[&str])] = &[
        ("c $X", &["hello", "world"]),
        ("c \"$X\"", &["hello world"]),
        ("c $E", &[]),
        ("c \"$E\"", &[""]),
        ("c ''", &[""]),
        ("c ''$E", &[""]),
        ("c a$E", &["a"]),
        ("c $E$E", &[]),
        ("c $S", &["lead", "trail"]),
        ("c x${S}y", &["x", "lead", "trail", "y"]),
        ("c x\"$S\"y", &["x  lead  trail  y"]),
        ("c $T", &["a", "b", "c"]),
        ("c a$SP", &["a"]),
        ("c $SP$SP", &[]),
        ("c a${SP}b", &["a", "b"]),
        ("c $X$X", &["hello", "worldhello", "world"]),
        ("c ${X}_$X_", &["hello", "world_"]),
        ("c $?", &["3"]),
        ("c $UNSET", &[]),
        ("c \"$UNSET\"", &[""]),
        ("c '$X'", &["$X"]),
    ];
    for (src, want) in cases {
        assert_eq!(expand_src(src, &env)[1..], strings(want)[..], "{src}");
    }
}

#[test]
fn expansion_globbing_respects_quotes() {
    let env = vars(&[("G", "*.txt"), ("Q", "a b*")]);
    let seen = std::cell::RefCell::new(Vec::new());
    let glob = |p: &GlobPattern| {
        seen.borrow_mut().push(p.text());
        if p.matches("x.txt") {
            strings(&["x.txt", "y.txt"])
        } else {
            Vec::new()
        }
    };
    let run = |src: &str| {
        let cmd = first_command(src);
        expand_words(&cmd.words[1..], |n| env.get(n).cloned(), glob)
    };
    assert_eq!(run("c *.txt"), strings(&["x.txt", "y.txt"]));
    assert_eq!(run("c \"*.txt\""), strings(&["*.txt"]));
    assert_eq!(run("c '*'.txt \\*.txt"), strings(&["*.txt", "*.txt"]));
    assert_eq!(run("c $G"), strings(&["x.txt", "y.txt"]));
    assert_eq!(run("c \"$G\""), strings(&["*.txt"]));
    // no match: the word stays literal
    assert_eq!(run("c *.none"), strings(&["*.none"]));
    assert_eq!(run("c $Q"), strings(&["a", "b*"]));
    // the closure is only asked about patterns with unquoted magic
    seen.borrow_mut().clear();
    let _ = run("c plain \"q*\" '[a]' x\\? *.txt [ab] [");
    assert_eq!(*seen.borrow(), strings(&["*.txt", "[ab]"]));
    // a quoted char inside a bracket does not break it; quoted `]` doesn't close
    let cmd = first_command("c [\"a\"b]x");
    let hit = expand_word(
        &cmd.words[1],
        |_| None,
        |p: &GlobPattern| {
            if p.matches("ax") {
                strings(&["ax"])
            } else {
                Vec::new()
            }
        },
    );
    assert_eq!(hit, strings(&["ax"]));
}

#[test]
fn expand_no_split_and_heredoc() {
    let env = vars(&[("X", " a  b ")]);
    let cmd = first_command("c \"x\"$X'*'");
    assert_eq!(
        expand_no_split(&cmd.words[1], |n| env.get(n).cloned()),
        "x a  b *"
    );
}

// ---------------------------------------------------------------- glob patterns

#[test]
fn glob_matches() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "abc", true),
        ("*", "", true),
        ("a*", "abc", true),
        ("*c", "abc", true),
        ("*b*", "abc", true),
        ("*d", "abc", false),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbYd", false),
        ("?", "a", true),
        ("?", "", false),
        ("??", "é€", true),
        ("a?c", "abc", true),
        ("[abc]", "b", true),
        ("[abc]", "d", false),
        ("[a-z]x", "qx", true),
        ("[a-z]x", "Qx", false),
        ("[!x]", "y", true),
        ("[!x]", "x", false),
        ("[^x]", "y", true),
        ("[^x]", "x", false),
        ("[]]", "]", true),
        ("[!]]", "]", false),
        ("[a-]", "-", true),
        ("[[:digit:]]*", "7up", true),
        ("[[:upper:]]", "a", false),
        ("[", "[", true),
        ("[a", "[a", true),
        ("a]", "a]", true),
        ("\\*", "*", true),
        ("\\*", "x", false),
        ("*.txt", ".hidden.txt", false),
        ("?hidden", ".hidden", false),
        ("[.]hidden", ".hidden", false),
        (".*", ".hidden", true),
        (".h*", ".hidden", true),
        ("*", ".", false),
        ("***a", "bba", true),
        ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
    ];
    for &(pattern, name, want) in cases {
        assert_eq!(
            GlobPattern::parse(pattern).matches(name),
            want,
            "{pattern} vs {name}"
        );
    }
    assert!(!GlobPattern::literal("*").has_magic());
    assert!(GlobPattern::literal("*").matches("*"));
    assert!(!GlobPattern::literal("*").matches("x"));
    assert!(GlobPattern::parse("a/*").has_magic());
    assert!(!GlobPattern::parse("[a").has_magic());
    assert!(!GlobPattern::parse("a[/]b").has_magic());
}

#[test]
fn glob_components() {
    let p = GlobPattern::parse("/etc/*.conf");
    assert!(p.is_absolute());
    assert!(!p.has_trailing_slash());
    let comps: Vec<String> = p.components().iter().map(|c| c.text()).collect();
    assert_eq!(comps, strings(&["etc", "*.conf"]));
    assert!(!p.components()[0].has_magic());
    assert!(p.components()[1].has_magic());
    let p = GlobPattern::parse("a//b*/");
    assert!(!p.is_absolute());
    assert!(p.has_trailing_slash());
    let comps: Vec<String> = p.components().iter().map(|c| c.text()).collect();
    assert_eq!(comps, strings(&["a", "b*"]));
}

/// A fake directory tree for [`expand_glob_with`].
fn fake_fs(path: &str) -> Option<Vec<String>> {
    let entries: &[&str] = match path {
        "." | "dir/.." => &["a.txt", "b.txt", ".hid", "dir", "dir2", "z.conf"],
        "/" => &["etc", "home"],
        "/etc" => &["a.conf", "b.conf", "passwd", ".x.conf"],
        "dir" => &["x.conf", "sub"],
        "dir2" => &["x.conf"],
        "dir/sub" => &[],
        "/home" => &[],
        _ => return None,
    };
    Some(strings(entries))
}

#[test]
fn glob_expansion_over_a_tree() {
    let run = |p: &str| expand_glob_with(&GlobPattern::parse(p), fake_fs);
    assert_eq!(run("*.txt"), strings(&["a.txt", "b.txt"]));
    assert_eq!(run("/etc/*.conf"), strings(&["/etc/a.conf", "/etc/b.conf"]));
    assert_eq!(run("/etc/.*"), strings(&["/etc/.x.conf"]));
    assert_eq!(run("*/x.conf"), strings(&["dir/x.conf", "dir2/x.conf"]));
    assert_eq!(run("dir*/"), strings(&["dir/", "dir2/"]));
    assert_eq!(run("*/"), strings(&["dir/", "dir2/"]));
    assert_eq!(run("dir/*"), strings(&["dir/sub", "dir/x.conf"]));
    assert_eq!(run("/*/"), strings(&["/etc/", "/home/"]));
    assert_eq!(run("./a*"), strings(&["./a.txt"]));
    assert_eq!(run("dir/../*.conf"), strings(&["dir/../z.conf"]));
    assert_eq!(run("nope/*"), Vec::<String>::new());
    assert_eq!(run("*.none"), Vec::<String>::new());
    assert_eq!(run("dir/missing*"), Vec::<String>::new());
    assert_eq!(run("*/nothere"), Vec::<String>::new());
}

// ---------------------------------------------------------------- oracle

/// Argument texts compared with `/bin/sh`. Each is used as
/// `printf '%s\n' <args>` (for our parser) and `set -- <args>` (for sh).
const ORACLE_CASES: &[&str] = &[
    r#"a"b c"'d'\ e $X "${X}y""#,
    "$X",
    "\"$X\"",
    "$E",
    "\"$E\"",
    "''",
    "\"\"",
    "a$E",
    "''$E",
    "$E$E x",
    "$S",
    "x$S\"y\"",
    "\"$S\"",
    "${X}",
    "pre${X}post",
    "$X$X",
    "${X}_$X_",
    "'$X'",
    "\"\\$X\"",
    "\\$X",
    "\"a\\\\b\"",
    "\"a\\b\"",
    "'a\\b'",
    "\"\\\"\"",
    "\\\"",
    "a\\ b",
    "\"it's\"",
    "'say \"hi\"'",
    "$Q",
    "\"$NL\"",
    "$NL",
    "$T",
    "\"$T\"",
    "$B",
    "\"$B\"",
    "\\\\",
    "'\\\\'",
    "\"\\\\$X\"",
    "é\"ü\"'ñ'",
    "\\'",
    "a#b c # comment",
    "$ a$ \"$\" '$'",
    "$? \"$?\" ${?}",
    "a$1b",
    "\"$X\"$E\"$X\"",
    "$X\"$X\"$X",
    "$X.txt",
    "x=1 y=$X",
    "\"a\"'b'c\\d",
    "a\\\nb",
    "\"a\nb\"",
    "a \\\n b",
    "\"a\\\nb\"",
    "\"\\a\\'\\x\"",
    "*.txt",
    "\"*.txt\"",
    "'*'.txt",
    "\\*.txt",
    "$G",
    "\"$G\"",
    "*.nomatch",
    "?.txt",
    "[ab].txt",
    "[!a].txt",
    "[a-c].txt",
    "*",
    ".h*",
    "dir/*.conf",
    "*/x.conf",
    "d*/",
    "$STAR",
    "\"$STAR\"",
    "[ \"[\" a] *[",
    "s*",
    "$SG",
    "[\"a\"b].txt",
    "${NOPE}x \"${NOPE}\" $NOPE",
];

/// Files created in the oracle's scratch directory.
const ORACLE_FILES: &[&str] = &[
    "a.txt",
    "b.txt",
    "c.txt",
    "ab.txt",
    ".hidden.txt",
    "s p.txt",
    "e.dat",
    "dir/x.conf",
    "dir/y.conf",
];

fn oracle_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("X", "hello world"),
        ("E", ""),
        ("S", "  lead  trail  "),
        ("G", "*.txt"),
        ("NL", "a\nb"),
        ("Q", "it's"),
        ("B", "back\\slash"),
        ("STAR", "*"),
        ("T", "a\tb"),
        ("SG", " s* "),
    ]
}

/// A scratch directory removed on drop.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_sh(dir: &std::path::Path, args: &str, env: &[(&str, &str)]) -> Vec<String> {
    let script = format!("(exit 3); set -- {args}\nprintf '%s\\0' \"$#\" \"$@\"");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LC_ALL", "C");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running /bin/sh");
    assert!(
        out.status.success(),
        "sh failed for {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 from sh");
    let mut fields: Vec<String> = text.split('\0').map(str::to_string).collect();
    assert_eq!(fields.pop().as_deref(), Some(""), "output of {args:?}");
    let count: usize = fields.remove(0).parse().expect("argument count");
    assert_eq!(count, fields.len(), "sh output for {args:?}");
    fields
}

fn run_ours(dir: &std::path::Path, args: &str, env: &[(&str, &str)]) -> Vec<String> {
    let src = format!("printf '%s\\n' {args}");
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(std::iter::once(("?".to_string(), "3".to_string())))
        .collect();
    let cmd = first_command(&src);
    let list_dir = |p: &str| -> Option<Vec<String>> {
        let entries = std::fs::read_dir(dir.join(p)).ok()?;
        Some(
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
        )
    };
    let all = expand_words(
        &cmd.words,
        |n| map.get(n).cloned(),
        |p| expand_glob_with(p, list_dir),
    );
    assert_eq!(all[..2], strings(&["printf", "%s\\n"])[..], "{src}");
    all[2..].to_vec()
}

#[test]
fn oracle_against_bin_sh() {
    assert!(ORACLE_CASES.len() >= 40);
    let dir = std::env::temp_dir().join(format!("dbos-lang-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let scratch = ScratchDir(dir);
    for f in ORACLE_FILES {
        let path = scratch.0.join(f);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, b"").expect("write file");
    }
    let env = oracle_env();
    // sanity: sh really globs in the scratch directory and sees our variables
    assert_eq!(
        run_sh(&scratch.0, "*.txt $X", &env),
        strings(&["a.txt", "ab.txt", "b.txt", "c.txt", "s p.txt", "hello", "world"])
    );
    let mut failures = Vec::new();
    for args in ORACLE_CASES {
        let want = run_sh(&scratch.0, args, &env);
        let got = run_ours(&scratch.0, args, &env);
        if want != got {
            failures.push(format!("{args:?}: sh {want:?} vs ours {got:?}"));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- fuzz

#[test]
fn random_inputs_never_panic() {
    const PIECES: &[&str] = &[
        "'", "\"", "\\", "$", "{", "}", "|", "&", ";", "<", ">", "#", "\n", "a", "b", "X", "1",
        "2", " ", " ", "\t", "é", "€", "=", "*", "?", "[", "]", "-", "<<", "EOF", "(", "`",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut ok = 0usize;
    for _ in 0..5000 {
        let len = next() % 24;
        let src: String = (0..len).map(|_| PIECES[next() % PIECES.len()]).collect();
        let _ = is_incomplete(&src);
        match parse_script(&src) {
            Ok(script) => {
                ok += 1;
                for cmd in commands(&script) {
                    let _ = expand_words(
                        &cmd.words,
                        |_| Some(" a * ".to_string()),
                        |p| vec![p.text()],
                    );
                    for r in &cmd.redirections {
                        if let RedirTarget::HereDoc(doc) = &r.target {
                            let _ = expand_heredoc(doc, |_| None);
                        }
                    }
                }
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1, "{src:?}");
                let rendered = e.render(&src);
                assert!(rendered.contains('^'), "{src:?}");
            }
        }
    }
    assert!(ok > 100, "only {ok} random inputs parsed");
}
