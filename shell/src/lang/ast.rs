//! Syntax tree of the `dbos` command language.

/// A byte range `start..end` in the parsed source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte of the construct.
    pub start: usize,
    /// One past the last byte of the construct.
    pub end: usize,
}

/// One piece of a [`Word`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordPart {
    /// Literal text after quote removal. `quoted` is true when the text came
    /// from single quotes, double quotes, a backslash escape or a here-document
    /// body; quoted text is never subject to globbing or field splitting.
    Literal {
        /// The text, with quotes and escaping backslashes removed.
        text: String,
        /// Whether the text was quoted.
        quoted: bool,
    },
    /// A parameter reference: `$NAME`, `${NAME}`, `$?`, `$1`, `$#`, `$$`...
    Var {
        /// Parameter name without `$` and braces (`"HOME"`, `"?"`, `"1"`).
        name: String,
        /// Whether the reference appeared inside double quotes (or a
        /// here-document body): quoted results are not field split or globbed.
        quoted: bool,
    },
}

/// A shell word: a sequence of literal and variable parts, remembering which
/// parts were quoted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    /// The parts, in source order. Adjacent literals with the same quoting are
    /// merged.
    pub parts: Vec<WordPart>,
    /// Where the word appears in the source.
    pub span: Span,
}

impl Word {
    /// Builds a word from parts with an empty span (handy for tests and for
    /// synthesising words).
    pub fn from_parts(parts: Vec<WordPart>) -> Self {
        Word {
            parts,
            span: Span::default(),
        }
    }

    /// The word's text after quote removal if it contains no variable
    /// reference, otherwise `None`.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                WordPart::Literal { text, .. } => out.push_str(text),
                WordPart::Var { .. } => return None,
            }
        }
        Some(out)
    }

    /// True if any part of the word was quoted or escaped.
    pub fn has_quotes(&self) -> bool {
        self.parts.iter().any(|p| match p {
            WordPart::Literal { quoted, .. } | WordPart::Var { quoted, .. } => *quoted,
        })
    }

    /// True if the word contains a variable reference.
    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, WordPart::Var { .. }))
    }
}

/// A leading `NAME=value` word of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name (a valid POSIX name).
    pub name: String,
    /// The value; expand it without field splitting or globbing
    /// (see [`super::expand_no_split`]).
    pub value: Word,
}

/// The operator of a [`Redirection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirKind {
    /// `<` (read a file).
    Input,
    /// `>` or `>|` (truncate and write a file).
    Output,
    /// `>>` (append to a file).
    Append,
    /// `2>&1` or `>&2` (make `fd` a copy of the target descriptor).
    DupOutput,
    /// `<<WORD` / `<<-WORD` (read a here-document).
    HereDoc,
}

/// What a redirection points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirTarget {
    /// A file name word (for `<`, `>`, `>>`).
    Word(Word),
    /// A file descriptor (for [`RedirKind::DupOutput`]).
    Fd(u32),
    /// A here-document (for [`RedirKind::HereDoc`]).
    HereDoc(HereDoc),
}

/// A here-document introduced by `<<WORD` or `<<-WORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HereDoc {
    /// The delimiter after quote removal.
    pub delimiter: String,
    /// True when any part of the delimiter was quoted (`<<'EOF'`,
    /// `<<"EOF"`, `<<\EOF`): the body is then taken literally.
    pub quoted: bool,
    /// True for `<<-`: leading tabs were stripped from body lines and from
    /// the delimiter line.
    pub strip_tabs: bool,
    /// The body (each line including its newline). When `quoted` is false it
    /// may contain variable parts; every part is marked quoted (no splitting,
    /// no globbing). Expand with [`super::expand_heredoc`].
    pub body: Word,
}

/// One redirection of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirection {
    /// The descriptor being redirected (0, 1 or 2).
    pub fd: u32,
    /// The redirection operator.
    pub kind: RedirKind,
    /// The file word, descriptor or here-document.
    pub target: RedirTarget,
    /// Where the redirection (from its fd number or operator) appears.
    pub span: Span,
}

/// A simple command: leading assignments, words and redirections (in source
/// order; redirections are applied left to right).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// Leading `NAME=value` words. With no `words`, they set shell variables.
    pub assignments: Vec<Assignment>,
    /// The command name and its arguments (unexpanded).
    pub words: Vec<Word>,
    /// Redirections, in the order they appear.
    pub redirections: Vec<Redirection>,
    /// Where the command appears in the source.
    pub span: Span,
}

/// Commands joined by `|`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pipeline {
    /// The commands, left to right (at least one).
    pub commands: Vec<Command>,
}

/// The operator joining two pipelines of an [`AndOr`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AndOrOp {
    /// `&&`: run the next pipeline only if the previous one succeeded.
    And,
    /// `||`: run the next pipeline only if the previous one failed.
    Or,
}

/// Pipelines joined by `&&` / `||`, evaluated left to right.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AndOr {
    /// The first pipeline.
    pub first: Pipeline,
    /// The following pipelines with the operator that precedes each.
    pub rest: Vec<(AndOrOp, Pipeline)>,
}

/// What terminated an item of a [`Script`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// `;`
    Semicolon,
    /// A newline.
    Newline,
    /// The end of the input.
    End,
}

/// One and-or list of a script with the separator that ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    /// The and-or list.
    pub and_or: AndOr,
    /// The separator that followed it.
    pub separator: Separator,
}

/// A whole parsed script: and-or lists run one after another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// The items in source order.
    pub items: Vec<ListItem>,
}

impl Script {
    /// True when the script contains no command (blank lines or comments only).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
