//! Parse errors as values, with caret rendering.

use std::fmt;

/// A syntax error found while parsing a script.
///
/// `line` and `column` are 1-based; `column` counts characters (not bytes)
/// from the start of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Human readable description of the problem.
    pub message: String,
    /// 1-based line number of the offending input.
    pub line: usize,
    /// 1-based column (in characters) of the offending input.
    pub column: usize,
}

impl ParseError {
    /// Builds an error pointing at byte `offset` of `source` (clamped to the
    /// source and rounded down to a character boundary).
    pub fn at_offset(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(source, offset);
        ParseError {
            message: message.into(),
            line,
            column,
        }
    }

    /// Renders the offending source line followed by a caret under the
    /// column at fault and the message, e.g.
    ///
    /// ```text
    /// echo 'abc
    ///      ^ unterminated single quote
    /// ```
    pub fn render(&self, source: &str) -> String {
        let text = source
            .split('\n')
            .nth(self.line.saturating_sub(1))
            .unwrap_or("");
        let text = text.strip_suffix('\r').unwrap_or(text);
        let wanted = self.column.saturating_sub(1);
        // Keep tabs so the caret lines up with the echoed line.
        let mut pad: String = text
            .chars()
            .take(wanted)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let have = text.chars().take(wanted).count();
        pad.push_str(&" ".repeat(wanted - have));
        format!("{text}\n{pad}^ {}", self.message)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syntax error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Converts a byte offset into a 1-based (line, column-in-chars) pair.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Internal error: a byte offset plus whether more input could fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawError {
    /// Byte offset into the source where the error is reported.
    pub offset: usize,
    /// Description of the problem.
    pub message: String,
    /// True when the input merely ended too early (an interactive reader
    /// should ask for a continuation line).
    pub incomplete: bool,
}

impl RawError {
    /// Converts to the public error type.
    pub fn into_parse_error(self, source: &str) -> ParseError {
        ParseError::at_offset(source, self.offset, self.message)
    }
}
