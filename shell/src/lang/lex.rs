//! Lexical pieces of the language, written with `nom` combinators.
//!
//! Every parser works on a suffix of the source text, so the remaining input
//! of a result (or the `at` of an error) tells the byte position.

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, take_until, take_while, take_while1};
use nom::character::complete::{char, digit1, one_of, satisfy};
use nom::combinator::{map, peek, recognize, value};
use nom::error::ErrorKind;
use nom::multi::{many0, many1};
use nom::sequence::{pair, terminated};
use nom::IResult;

use super::ast::WordPart;

/// Error of a lexical parser: where, what, and whether more input could fix it.
#[derive(Debug, Clone)]
pub(crate) struct LexError<'a> {
    /// Remaining input at the point of the error.
    pub at: &'a str,
    /// Description of the problem.
    pub message: String,
    /// True when the input ended too early.
    pub incomplete: bool,
}

impl<'a> nom::error::ParseError<&'a str> for LexError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        LexError {
            at: input,
            message: "syntax error".to_string(),
            incomplete: false,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// Result type of the lexical parsers.
pub(crate) type LResult<'a, T> = IResult<&'a str, T, LexError<'a>>;

/// Returns an unrecoverable (`cut`) error at `at`.
pub(crate) fn failure<'a, T>(
    at: &'a str,
    message: impl Into<String>,
    incomplete: bool,
) -> LResult<'a, T> {
    Err(nom::Err::Failure(LexError {
        at,
        message: message.into(),
        incomplete,
    }))
}

/// A lexical piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// One word part.
    Part(WordPart),
    /// Several parts (the inside of a double-quoted string).
    Many(Vec<WordPart>),
    /// Something that produces no text (a backslash-newline continuation);
    /// `at_eof` is true when it ends the input.
    Continuation { at_eof: bool },
    /// An unquoted backslash at the very end of the input (kept literally).
    TrailingBackslash,
}

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

/// True for a character that may start a POSIX name.
fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// True for a character that may continue a POSIX name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// True if `s` is a valid POSIX name (`[A-Za-z_][A-Za-z0-9_]*`).
pub(crate) fn is_valid_name(s: &str) -> bool {
    matches!(name(s), Ok(("", _)))
}

/// A POSIX name.
pub(crate) fn name(i: &str) -> LResult<'_, &str> {
    recognize(pair(satisfy(is_name_start), take_while(is_name_char)))(i)
}

/// Special parameters accepted after `$` (single character).
const SPECIAL_PARAMS: &str = "?$#!@*-0123456789";

/// `$...` : a parameter reference, or a literal `$` when nothing valid
/// follows. `quoted` is the quoting context.
fn dollar(quoted: bool) -> impl Fn(&str) -> LResult<'_, Piece> {
    move |input: &str| {
        let (rest, _) = char('$')(input)?;
        if let Ok((after_brace, _)) = char::<_, LexError>('{')(rest) {
            return braced(input, after_brace, quoted);
        }
        if let Ok((r, n)) = name(rest) {
            return Ok((r, Piece::Part(var(n, quoted))));
        }
        if let Ok((r, n)) = recognize(one_of::<_, _, LexError>(SPECIAL_PARAMS))(rest) {
            return Ok((r, Piece::Part(var(n, quoted))));
        }
        if rest.starts_with('(') {
            return failure(
                input,
                "command substitution `$(...)` is not supported (quote the `$`)",
                false,
            );
        }
        Ok((rest, Piece::Part(lit("$", quoted))))
    }
}

/// The rest of `${NAME}` after `${`; `dollar_at` points at the `$`.
fn braced<'a>(dollar_at: &'a str, after_brace: &'a str, quoted: bool) -> LResult<'a, Piece> {
    let inner = alt((
        name,
        digit1,
        recognize(one_of::<_, _, LexError>(SPECIAL_PARAMS)),
    ))(after_brace);
    let (after_name, n) = match inner {
        Ok(ok) => ok,
        Err(_) if after_brace.is_empty() => {
            return failure(dollar_at, "unterminated `${`", false);
        }
        Err(_) => return failure(after_brace, "bad variable name in `${...}`", false),
    };
    match char::<_, LexError>('}')(after_name) {
        Ok((r, _)) => Ok((r, Piece::Part(var(n, quoted)))),
        Err(_) if after_name.is_empty() => failure(dollar_at, "unterminated `${`", false),
        Err(_) => failure(after_name, "bad variable name in `${...}`", false),
    }
}

/// Characters that end an unquoted run of plain word text.
fn is_word_special(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' | '\'' | '"' | '\\' | '$' | '`'
    )
}

/// True for characters that end a word (blanks and operator characters).
pub(crate) fn is_word_end(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>')
}

/// `'...'`
fn single_quoted(input: &str) -> LResult<'_, Piece> {
    let (rest, _) = char('\'')(input)?;
    match terminated(take_until::<_, _, LexError>("'"), char('\''))(rest) {
        Ok((r, body)) => Ok((r, Piece::Part(lit(body, true)))),
        Err(_) => failure(input, "unterminated single quote", true),
    }
}

/// A backslash inside double quotes: escapes only `$`, `` ` ``, `"`, `\`
/// and newline; otherwise it is literal.
fn dq_backslash(input: &str) -> LResult<'_, Piece> {
    let (rest, _) = char('\\')(input)?;
    if let Ok((r, c)) = one_of::<_, _, LexError>("$`\"\\")(rest) {
        let mut buf = [0u8; 4];
        return Ok((r, Piece::Part(lit(c.encode_utf8(&mut buf), true))));
    }
    if let Ok((r, _)) = char::<_, LexError>('\n')(rest) {
        return Ok((
            r,
            Piece::Continuation {
                at_eof: r.is_empty(),
            },
        ));
    }
    Ok((rest, Piece::Part(lit("\\", true))))
}

fn backtick(input: &str) -> LResult<'_, Piece> {
    let _ = char('`')(input)?;
    failure(
        input,
        "command substitution with backquotes is not supported (quote the `` ` ``)",
        false,
    )
}

/// `"..."`
fn double_quoted(input: &str) -> LResult<'_, Piece> {
    let (rest, _) = char('"')(input)?;
    let (rest, pieces) = many0(alt((
        map(is_not("\"\\$`"), |s: &str| Piece::Part(lit(s, true))),
        dq_backslash,
        dollar(true),
        backtick,
    )))(rest)?;
    match char::<_, LexError>('"')(rest) {
        Ok((r, _)) => {
            let mut parts: Vec<WordPart> = Vec::new();
            for p in pieces {
                match p {
                    Piece::Part(part) => parts.push(part),
                    Piece::Many(more) => parts.extend(more),
                    Piece::Continuation { .. } | Piece::TrailingBackslash => {}
                }
            }
            if parts.is_empty() {
                parts.push(lit("", true));
            }
            Ok((r, Piece::Many(parts)))
        }
        Err(_) => failure(input, "unterminated double quote", true),
    }
}

/// A backslash outside quotes: escapes any character; backslash-newline is
/// a line continuation; a final backslash is literal.
fn backslash(input: &str) -> LResult<'_, Piece> {
    let (rest, _) = char('\\')(input)?;
    if let Ok((r, _)) = char::<_, LexError>('\n')(rest) {
        return Ok((
            r,
            Piece::Continuation {
                at_eof: r.is_empty(),
            },
        ));
    }
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) => {
            let mut buf = [0u8; 4];
            Ok((
                chars.as_str(),
                Piece::Part(lit(c.encode_utf8(&mut buf), true)),
            ))
        }
        None => Ok((rest, Piece::TrailingBackslash)),
    }
}

/// `(` and `)`: grouping and subshells are not part of the language.
fn paren(input: &str) -> LResult<'_, Piece> {
    let _ = one_of("()")(input)?;
    failure(
        input,
        "`(` and `)` (subshells, grouping) are not supported (quote them)",
        false,
    )
}

/// One piece of an unquoted word.
fn word_piece(input: &str) -> LResult<'_, Piece> {
    alt((
        map(take_while1(|c| !is_word_special(c)), |s: &str| {
            Piece::Part(lit(s, false))
        }),
        single_quoted,
        double_quoted,
        backslash,
        dollar(false),
        backtick,
        paren,
    ))(input)
}

/// A whole word: one or more pieces up to a blank or an operator.
pub(crate) fn word(input: &str) -> LResult<'_, Vec<Piece>> {
    many1(word_piece)(input)
}

/// A backslash in an unquoted here-document body: escapes `$`, `` ` ``,
/// `\` and newline only.
fn heredoc_backslash(input: &str) -> LResult<'_, Piece> {
    let (rest, _) = char('\\')(input)?;
    if let Ok((r, c)) = one_of::<_, _, LexError>("$`\\")(rest) {
        let mut buf = [0u8; 4];
        return Ok((r, Piece::Part(lit(c.encode_utf8(&mut buf), true))));
    }
    if let Ok((r, _)) = char::<_, LexError>('\n')(rest) {
        return Ok((r, Piece::Continuation { at_eof: false }));
    }
    Ok((rest, Piece::Part(lit("\\", true))))
}

fn heredoc_backtick(input: &str) -> LResult<'_, Piece> {
    let _ = char('`')(input)?;
    failure(
        input,
        "command substitution with backquotes is not supported (quote the here-document delimiter, e.g. <<'EOF')",
        false,
    )
}

/// The parts of (a line of) an unquoted here-document body.
pub(crate) fn heredoc_text(input: &str) -> LResult<'_, Vec<Piece>> {
    many0(alt((
        map(is_not("\\$`"), |s: &str| Piece::Part(lit(s, true))),
        heredoc_backslash,
        dollar(true),
        heredoc_backtick,
    )))(input)
}

/// Blanks, backslash-newline continuations and a comment (a `#` at the
/// start of a token runs to the end of the line). Returns true when a
/// backslash-newline continuation ended the input.
pub(crate) fn blanks(input: &str) -> LResult<'_, bool> {
    let (rest, items) = many0(alt((
        value(false, take_while1(|c| c == ' ' || c == '\t')),
        value(true, tag("\\\n")),
        value(false, recognize(pair(char('#'), take_while(|c| c != '\n')))),
    )))(input)?;
    let at_eof = rest.is_empty() && items.last().copied().unwrap_or(false);
    Ok((rest, at_eof))
}

/// Operators of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `&&`
    AndIf,
    /// `||`
    OrIf,
    /// `|`
    Pipe,
    /// `;`
    Semi,
    /// `&`
    Amp,
    /// newline
    Newline,
    /// `<<-`
    DLessDash,
    /// `<<`
    DLess,
    /// `<&`
    LessAnd,
    /// `<>`
    LessGreat,
    /// `<`
    Less,
    /// `>>`
    DGreat,
    /// `>&`
    GreatAnd,
    /// `>|`
    Clobber,
    /// `>`
    Great,
}

impl Op {
    /// The operator's text, for messages.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Op::AndIf => "&&",
            Op::OrIf => "||",
            Op::Pipe => "|",
            Op::Semi => ";",
            Op::Amp => "&",
            Op::Newline => "newline",
            Op::DLessDash => "<<-",
            Op::DLess => "<<",
            Op::LessAnd => "<&",
            Op::LessGreat => "<>",
            Op::Less => "<",
            Op::DGreat => ">>",
            Op::GreatAnd => ">&",
            Op::Clobber => ">|",
            Op::Great => ">",
        }
    }
}

/// An operator token (longest match).
pub(crate) fn operator(input: &str) -> LResult<'_, Op> {
    alt((
        alt((
            value(Op::AndIf, tag("&&")),
            value(Op::OrIf, tag("||")),
            value(Op::Pipe, tag("|")),
            value(Op::Semi, tag(";")),
            value(Op::Amp, tag("&")),
            value(Op::Newline, tag("\n")),
        )),
        alt((
            value(Op::DLessDash, tag("<<-")),
            value(Op::DLess, tag("<<")),
            value(Op::LessAnd, tag("<&")),
            value(Op::LessGreat, tag("<>")),
            value(Op::Less, tag("<")),
            value(Op::DGreat, tag(">>")),
            value(Op::GreatAnd, tag(">&")),
            value(Op::Clobber, tag(">|")),
            value(Op::Great, tag(">")),
        )),
    ))(input)
}

/// An IO number: digits immediately followed by `<` or `>`.
pub(crate) fn io_number(input: &str) -> LResult<'_, &str> {
    terminated(digit1, peek(one_of("<>")))(input)
}
