//! The `dbos` command language: a POSIX-like parser (built with `nom`) and
//! word expansion.
//!
//! * [`parse_script`] turns a whole script (several lines, here-documents
//!   included) into a [`Script`], or a [`ParseError`] that can be
//!   [rendered](ParseError::render) with a caret under the fault.
//! * [`is_incomplete`] tells an interactive reader to ask for more input.
//! * [`expand_word`] / [`expand_words`] perform parameter expansion, field
//!   splitting and globbing with caller-supplied lookup and glob closures;
//!   [`expand_glob_with`] implements the latter over a directory listing.
//!
//! Not supported (reported as parse errors where they have syntax):
//! command substitution, arithmetic, `${...}` operators, subshells and
//! grouping, background jobs `&`, `<&`/`<>`, file descriptors above 2.
//! Compound commands (`if`, `while`, ...), `!`, tilde expansion and aliases
//! are not recognised (their words are plain words).

// The shell driver adopts this API piece by piece.
#![allow(dead_code, unused_imports)]

mod ast;
mod error;
mod expand;
mod glob;
mod lex;
mod parse;

#[cfg(test)]
mod tests;

pub use ast::{
    AndOr, AndOrOp, Assignment, Command, HereDoc, ListItem, Pipeline, RedirKind, RedirTarget,
    Redirection, Script, Separator, Span, Word, WordPart,
};
pub use error::ParseError;
pub use expand::{expand_heredoc, expand_no_split, expand_word, expand_words};
pub use glob::{expand_glob_with, GlobPattern};
pub use parse::{is_incomplete, parse_script};
