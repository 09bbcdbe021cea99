//! Grammar of the language: a recursive-descent driver over the `nom`
//! lexical parsers of [`super::lex`], with here-document bookkeeping.
//!
//! ```text
//! script    := linebreak (and_or (';' | NEWLINE) linebreak)* [and_or]
//! and_or    := pipeline (('&&' | '||') linebreak pipeline)*
//! pipeline  := command ('|' linebreak command)*
//! command   := (assignment | redirect)* (word | redirect)*
//! redirect  := [fd] ('<' | '>' | '>>' | '>|' | '>&' fd | '<<' word | '<<-' word)
//! ```

use super::ast::{
    AndOr, AndOrOp, Assignment, Command, HereDoc, ListItem, Pipeline, RedirKind, RedirTarget,
    Redirection, Script, Separator, Span, Word, WordPart,
};
use super::error::{ParseError, RawError};
use super::lex::{self, LexError, Op, Piece};

/// Parses a whole script (possibly several lines, including here-document
/// bodies).
pub fn parse_script(src: &str) -> Result<Script, ParseError> {
    let mut parser = Parser::new(src);
    parser.script().map_err(|e| e.into_parse_error(src))
}

/// True when `src` is a syntactically unfinished prefix of a script: an open
/// quote, a trailing `|` / `&&` / `||`, a trailing backslash (or
/// backslash-newline), or a here-document whose delimiter line has not been
/// seen yet. An interactive reader should then ask for a continuation line.
/// Complete scripts and scripts with other errors return false.
pub fn is_incomplete(src: &str) -> bool {
    let mut parser = Parser::new(src);
    match parser.script() {
        Ok(_) => parser.continuation_at_eof,
        Err(e) => e.incomplete,
    }
}

/// A here-document whose body has not been read yet.
struct PendingHereDoc {
    /// Offset of the `<<` operator (for error messages).
    op_offset: usize,
    delimiter: String,
    quoted: bool,
    strip_tabs: bool,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Here-documents whose bodies start after the next newline token.
    pending: Vec<PendingHereDoc>,
    /// Bodies read so far, in source order of their operators.
    bodies: Vec<Word>,
    /// The input ended with an unquoted backslash or backslash-newline.
    continuation_at_eof: bool,
}

type PResult<T> = Result<T, RawError>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            pending: Vec::new(),
            bodies: Vec::new(),
            continuation_at_eof: false,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    /// Byte offset of a suffix (or any sub-slice) of the source.
    fn offset_of(&self, s: &str) -> usize {
        let base = self.src.as_ptr() as usize;
        (s.as_ptr() as usize)
            .saturating_sub(base)
            .min(self.src.len())
    }

    fn error(&self, offset: usize, message: impl Into<String>, incomplete: bool) -> RawError {
        RawError {
            offset,
            message: message.into(),
            incomplete,
        }
    }

    fn lex_error(&self, e: nom::Err<LexError<'_>>) -> RawError {
        match e {
            nom::Err::Error(e) | nom::Err::Failure(e) => RawError {
                offset: self.offset_of(e.at),
                message: e.message,
                incomplete: e.incomplete,
            },
            nom::Err::Incomplete(_) => self.error(self.pos, "unexpected end of input", true),
        }
    }

    /// Skips blanks, continuations and comments.
    fn skip_blanks(&mut self) {
        if let Ok((rest, at_eof)) = lex::blanks(self.rest()) {
            self.pos = self.offset_of(rest);
            if at_eof {
                self.continuation_at_eof = true;
            }
        }
    }

    fn peek_op(&self) -> Option<(Op, usize)> {
        let rest = self.rest();
        lex::operator(rest)
            .ok()
            .map(|(r, op)| (op, rest.len() - r.len()))
    }

    fn at_eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Consumes a newline token and reads the bodies of pending
    /// here-documents that follow it.
    fn newline(&mut self) -> PResult<()> {
        self.pos += 1;
        let pending = std::mem::take(&mut self.pending);
        for doc in pending {
            let body = self.heredoc_body(&doc)?;
            self.bodies.push(body);
        }
        Ok(())
    }

    /// Skips blanks, comments and newlines (reading here-documents).
    fn linebreak(&mut self) -> PResult<()> {
        loop {
            self.skip_blanks();
            if self.rest().starts_with('\n') {
                self.newline()?;
            } else {
                return Ok(());
            }
        }
    }

    fn script(&mut self) -> PResult<Script> {
        let mut items = Vec::new();
        loop {
            self.linebreak()?;
            if self.at_eof() {
                break;
            }
            if let Some((op, _)) = self.peek_op() {
                match op {
                    Op::Semi | Op::AndIf | Op::OrIf | Op::Pipe => {
                        return Err(self.error(
                            self.pos,
                            format!("`{}` with nothing before it", op.text()),
                            false,
                        ));
                    }
                    Op::Amp => return Err(self.background_error()),
                    _ => {}
                }
            }
            let and_or = self.and_or()?;
            self.skip_blanks();
            let separator = match self.peek_op() {
                None if self.at_eof() => Separator::End,
                Some((Op::Semi, _)) => {
                    self.pos += 1;
                    Separator::Semicolon
                }
                Some((Op::Newline, _)) => {
                    self.newline()?;
                    Separator::Newline
                }
                Some((Op::Amp, _)) => return Err(self.background_error()),
                _ => {
                    return Err(self.error(self.pos, "unexpected input", false));
                }
            };
            items.push(ListItem { and_or, separator });
            if separator == Separator::End {
                break;
            }
        }
        if let Some(doc) = self.pending.first() {
            return Err(self.unterminated_heredoc(doc));
        }
        let mut script = Script { items };
        fill_heredocs(&mut script, &mut self.bodies.drain(..));
        Ok(script)
    }

    fn background_error(&self) -> RawError {
        self.error(self.pos, "background jobs (`&`) are not supported", false)
    }

    /// After a binary operator: allow newlines, then require a command.
    fn after_operator(&mut self, op: Op, op_offset: usize) -> PResult<()> {
        self.linebreak()?;
        if self.at_eof() {
            return Err(self.error(
                op_offset,
                format!("`{}` with nothing after it", op.text()),
                true,
            ));
        }
        match self.peek_op() {
            Some((Op::Semi | Op::AndIf | Op::OrIf | Op::Pipe | Op::Amp, _)) => Err(self.error(
                op_offset,
                format!("`{}` with nothing after it", op.text()),
                false,
            )),
            _ => Ok(()),
        }
    }

    fn and_or(&mut self) -> PResult<AndOr> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        loop {
            self.skip_blanks();
            let op = match self.peek_op() {
                Some((Op::AndIf, _)) => AndOrOp::And,
                Some((Op::OrIf, _)) => AndOrOp::Or,
                _ => break,
            };
            let op_offset = self.pos;
            self.pos += 2;
            let tok = if op == AndOrOp::And {
                Op::AndIf
            } else {
                Op::OrIf
            };
            self.after_operator(tok, op_offset)?;
            rest.push((op, self.pipeline()?));
        }
        Ok(AndOr { first, rest })
    }

    fn pipeline(&mut self) -> PResult<Pipeline> {
        let mut commands = vec![self.command()?];
        loop {
            self.skip_blanks();
            if !matches!(self.peek_op(), Some((Op::Pipe, _))) {
                break;
            }
            let op_offset = self.pos;
            self.pos += 1;
            self.after_operator(Op::Pipe, op_offset)?;
            commands.push(self.command()?);
        }
        Ok(Pipeline { commands })
    }

    fn command(&mut self) -> PResult<Command> {
        self.skip_blanks();
        let start = self.pos;
        let mut cmd = Command::default();
        loop {
            self.skip_blanks();
            let rest = self.rest();
            let Some(c) = rest.chars().next() else { break };
            if matches!(c, '\n' | ';' | '&' | '|') {
                break;
            }
            if c == '<' || c == '>' {
                let r = self.redirection(None, self.pos)?;
                cmd.redirections.push(r);
                continue;
            }
            if c.is_ascii_digit() {
                if let Ok((after, digits)) = lex::io_number(rest) {
                    let fd_offset = self.pos;
                    let fd = match digits.parse::<u32>() {
                        Ok(fd) if fd <= 2 => fd,
                        _ => {
                            return Err(self.error(
                                fd_offset,
                                format!(
                                    "file descriptor {digits} is not supported (only 0, 1 and 2)"
                                ),
                                false,
                            ))
                        }
                    };
                    self.pos = self.offset_of(after);
                    let r = self.redirection(Some(fd), fd_offset)?;
                    cmd.redirections.push(r);
                    continue;
                }
            }
            let word = self.word()?;
            if cmd.words.is_empty() {
                if let Some(assignment) = as_assignment(&word) {
                    cmd.assignments.push(assignment);
                    continue;
                }
            }
            cmd.words.push(word);
        }
        if cmd.assignments.is_empty() && cmd.words.is_empty() && cmd.redirections.is_empty() {
            return Err(self.error(self.pos, "expected a command", self.at_eof()));
        }
        cmd.span = Span {
            start,
            end: self.pos,
        };
        Ok(cmd)
    }

    /// Parses a word at the current position.
    fn word(&mut self) -> PResult<Word> {
        let start = self.pos;
        let (rest, pieces) = lex::word(self.rest()).map_err(|e| self.lex_error(e))?;
        self.pos = self.offset_of(rest);
        let mut parts = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Part(p) => parts.push(p),
                Piece::Many(ps) => parts.extend(ps),
                Piece::Continuation { at_eof } => {
                    if at_eof {
                        self.continuation_at_eof = true;
                    }
                }
                Piece::TrailingBackslash => {
                    self.continuation_at_eof = true;
                    parts.push(WordPart::Literal {
                        text: "\\".to_string(),
                        quoted: true,
                    });
                }
            }
        }
        Ok(Word {
            parts: merge_parts(parts),
            span: Span {
                start,
                end: self.pos,
            },
        })
    }

    /// True if the next token could be a word (not an operator, not EOF).
    fn at_word_start(&self) -> bool {
        match self.rest().chars().next() {
            None => false,
            Some(c) => !lex::is_word_end(c),
        }
    }

    /// Parses a redirection operator and its target; `fd` is an explicit
    /// descriptor number already consumed, `start` the offset of the whole
    /// redirection.
    fn redirection(&mut self, fd: Option<u32>, start: usize) -> PResult<Redirection> {
        let op_offset = self.pos;
        let Some((op, len)) = self.peek_op() else {
            return Err(self.error(op_offset, "expected a redirection operator", false));
        };
        self.pos += len;
        let no_target = |p: &Self| {
            p.error(
                op_offset,
                format!("redirection `{}` without a target", op.text()),
                false,
            )
        };
        let (kind, target) = match op {
            Op::Less | Op::Great | Op::Clobber | Op::DGreat => {
                self.skip_blanks();
                if !self.at_word_start() {
                    return Err(no_target(self));
                }
                let word = self.word()?;
                let kind = match op {
                    Op::Less => RedirKind::Input,
                    Op::DGreat => RedirKind::Append,
                    _ => RedirKind::Output,
                };
                (kind, RedirTarget::Word(word))
            }
            Op::GreatAnd => {
                let source = fd.unwrap_or(1);
                let wanted = match source {
                    2 => 1,
                    1 => 2,
                    _ => {
                        return Err(self.error(
                            start,
                            format!("`{source}>&` is not supported (only `2>&1` and `>&2`)"),
                            false,
                        ))
                    }
                };
                self.skip_blanks();
                let rest = self.rest();
                let digit = char::from(b'0' + wanted as u8);
                let target_ok = rest.starts_with(digit)
                    && match rest[1..].chars().next() {
                        None => true,
                        Some(c) => lex::is_word_end(c),
                    };
                if !target_ok {
                    let shown = if source == 2 { "2>&" } else { ">&" };
                    return Err(self.error(
                        self.pos,
                        format!("`{shown}` must be followed by `{wanted}`"),
                        false,
                    ));
                }
                self.pos += 1;
                (RedirKind::DupOutput, RedirTarget::Fd(wanted))
            }
            Op::DLess | Op::DLessDash => {
                self.skip_blanks();
                if !self.at_word_start() {
                    return Err(no_target(self));
                }
                let word = self.word()?;
                let raw = self
                    .src
                    .get(word.span.start..word.span.end)
                    .unwrap_or_default();
                let quoted = raw.contains(['\'', '"', '\\']);
                let delimiter = remove_quotes(raw);
                self.pending.push(PendingHereDoc {
                    op_offset,
                    delimiter: delimiter.clone(),
                    quoted,
                    strip_tabs: op == Op::DLessDash,
                });
                let doc = HereDoc {
                    delimiter,
                    quoted,
                    strip_tabs: op == Op::DLessDash,
                    body: Word::default(),
                };
                (RedirKind::HereDoc, RedirTarget::HereDoc(doc))
            }
            Op::LessAnd | Op::LessGreat => {
                return Err(self.error(
                    op_offset,
                    format!("redirection `{}` is not supported", op.text()),
                    false,
                ))
            }
            Op::AndIf | Op::OrIf | Op::Pipe | Op::Semi | Op::Amp | Op::Newline => {
                return Err(self.error(op_offset, "expected a redirection operator", false))
            }
        };
        let default_fd = if kind == RedirKind::Input || kind == RedirKind::HereDoc {
            0
        } else {
            1
        };
        Ok(Redirection {
            fd: fd.unwrap_or(default_fd),
            kind,
            target,
            span: Span {
                start,
                end: self.pos,
            },
        })
    }

    fn unterminated_heredoc(&self, doc: &PendingHereDoc) -> RawError {
        self.error(
            doc.op_offset,
            format!(
                "unterminated here-document (no line `{}` before the end of input)",
                doc.delimiter
            ),
            true,
        )
    }

    /// Reads the body of `doc` starting at the current position (the start of
    /// a line), up to and including its delimiter line.
    fn heredoc_body(&mut self, doc: &PendingHereDoc) -> PResult<Word> {
        let mut parts: Vec<WordPart> = Vec::new();
        let mut literal = String::new();
        // In an unquoted body a line ending in an escaping backslash is
        // joined with the next one, which therefore cannot be the delimiter.
        let mut joined = false;
        loop {
            if self.at_eof() {
                return Err(self.unterminated_heredoc(doc));
            }
            let rest = self.rest();
            let (line, next, has_newline) = match rest.find('\n') {
                Some(i) => (&rest[..i], i + 1, true),
                None => (rest, rest.len(), false),
            };
            let line = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            // The line including its newline, if any.
            let line_start = self.offset_of(line);
            let line_end = self.pos + next;
            self.pos = line_end;
            if line == doc.delimiter && !joined {
                break;
            }
            let trailing_backslashes = line.len() - line.trim_end_matches('\\').len();
            joined = !doc.quoted && has_newline && trailing_backslashes % 2 == 1;
            let text = self.src.get(line_start..line_end).unwrap_or_default();
            if doc.quoted {
                literal.push_str(text);
                continue;
            }
            let (_, pieces) = lex::heredoc_text(text).map_err(|e| self.lex_error(e))?;
            for piece in pieces {
                match piece {
                    Piece::Part(p) => parts.push(p),
                    Piece::Many(ps) => parts.extend(ps),
                    Piece::Continuation { .. } | Piece::TrailingBackslash => {}
                }
            }
        }
        if doc.quoted {
            parts.push(WordPart::Literal {
                text: literal,
                quoted: true,
            });
        }
        Ok(Word {
            parts: merge_parts(parts),
            span: Span::default(),
        })
    }
}

/// Puts the here-document bodies (in source order) into the script.
fn fill_heredocs(script: &mut Script, bodies: &mut dyn Iterator<Item = Word>) {
    let pipelines = script.items.iter_mut().flat_map(|item| {
        std::iter::once(&mut item.and_or.first).chain(item.and_or.rest.iter_mut().map(|(_, p)| p))
    });
    for pipeline in pipelines {
        for command in &mut pipeline.commands {
            for redirection in &mut command.redirections {
                if let RedirTarget::HereDoc(doc) = &mut redirection.target {
                    if let Some(body) = bodies.next() {
                        doc.body = body;
                    }
                }
            }
        }
    }
}

/// Merges adjacent literal parts with the same quoting.
fn merge_parts(parts: Vec<WordPart>) -> Vec<WordPart> {
    let mut out: Vec<WordPart> = Vec::with_capacity(parts.len());
    for part in parts {
        if let (
            Some(WordPart::Literal {
                text: prev,
                quoted: pq,
            }),
            WordPart::Literal { text, quoted },
        ) = (out.last_mut(), &part)
        {
            if pq == quoted {
                prev.push_str(text);
                continue;
            }
        }
        out.push(part);
    }
    out
}

/// Recognises `NAME=value` (the `NAME=` part unquoted).
fn as_assignment(word: &Word) -> Option<Assignment> {
    let Some(WordPart::Literal {
        text,
        quoted: false,
    }) = word.parts.first()
    else {
        return None;
    };
    let eq = text.find('=')?;
    let name = &text[..eq];
    if !lex::is_valid_name(name) {
        return None;
    }
    let mut parts = Vec::new();
    let after = &text[eq + 1..];
    if !after.is_empty() {
        parts.push(WordPart::Literal {
            text: after.to_string(),
            quoted: false,
        });
    }
    parts.extend(word.parts.iter().skip(1).cloned());
    Some(Assignment {
        name: name.to_string(),
        value: Word {
            parts,
            span: Span {
                start: word.span.start + eq + 1,
                end: word.span.end,
            },
        },
    })
}

/// Quote removal without expansion (for here-document delimiters).
fn remove_quotes(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&n) if matches!(n, '$' | '`' | '"' | '\\') => {
                                out.push(n);
                                chars.next();
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => out.push('\\'),
                        },
                        _ => out.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}
