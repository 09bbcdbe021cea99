//! Word expansion: parameter substitution, field splitting and pathname
//! expansion (globbing), following POSIX with the default `IFS`.

use super::ast::{HereDoc, Word, WordPart};
use super::glob::GlobPattern;

/// Default IFS whitespace: space, tab and newline.
fn is_ifs(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\n'
}

/// Accumulates fields while walking a word's parts.
#[derive(Default)]
struct Fields {
    done: Vec<GlobPattern>,
    current: GlobPattern,
    /// The current field exists (even if empty, e.g. from `""`).
    started: bool,
}

impl Fields {
    fn push(&mut self, text: &str, active: bool) {
        self.current.push_str(text, active);
        self.started = true;
    }

    fn finish(&mut self) {
        if self.started {
            self.done.push(std::mem::take(&mut self.current));
            self.started = false;
        }
    }

    /// Adds an unquoted expansion result: split on IFS whitespace, its
    /// characters remain glob-active.
    fn push_split(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        if value.starts_with(is_ifs) {
            self.finish();
        }
        let mut pieces = value.split(is_ifs).filter(|s| !s.is_empty()).peekable();
        while let Some(piece) = pieces.next() {
            self.push(piece, true);
            if pieces.peek().is_some() {
                self.finish();
            }
        }
        if value.ends_with(is_ifs) {
            self.finish();
        }
    }
}

/// Expands a word into the final argument strings.
///
/// * `lookup` gives the value of a parameter (`"HOME"`, `"?"`, `"1"`...);
///   `None` means unset, which expands to nothing.
/// * Unquoted variable results are split into fields on spaces, tabs and
///   newlines (POSIX field splitting with the default IFS); quoted ones are
///   not. A word with no quotes whose expansion is empty yields no field;
///   `""` or `"$EMPTY"` yields one empty field.
/// * Each field containing an unquoted `*`, `?` or bracket expression (from
///   the literal text or from an unquoted variable) becomes a [`GlobPattern`]
///   passed to `glob`; when `glob` returns nothing the field stays literal.
pub fn expand_word<L, G>(word: &Word, lookup: L, glob: G) -> Vec<String>
where
    L: Fn(&str) -> Option<String>,
    G: Fn(&GlobPattern) -> Vec<String>,
{
    let mut fields = Fields::default();
    for part in &word.parts {
        match part {
            WordPart::Literal { text, quoted } => fields.push(text, !quoted),
            WordPart::Var { name, quoted: true } => {
                fields.push(&lookup(name).unwrap_or_default(), false);
            }
            WordPart::Var {
                name,
                quoted: false,
            } => fields.push_split(&lookup(name).unwrap_or_default()),
        }
    }
    fields.finish();
    let mut out = Vec::new();
    for pattern in fields.done {
        if pattern.has_magic() {
            let found = glob(&pattern);
            if !found.is_empty() {
                out.extend(found);
                continue;
            }
        }
        out.push(pattern.text());
    }
    out
}

/// Expands several words (e.g. a command's words) into one argument list.
pub fn expand_words<L, G>(words: &[Word], lookup: L, glob: G) -> Vec<String>
where
    L: Fn(&str) -> Option<String>,
    G: Fn(&GlobPattern) -> Vec<String>,
{
    words
        .iter()
        .flat_map(|w| expand_word(w, &lookup, &glob))
        .collect()
}

/// Expands a word into a single string: variables substituted, no field
/// splitting and no globbing. This is the POSIX rule for assignment values
/// (`NAME=$X`); it is also a simple choice for redirection targets.
pub fn expand_no_split<L>(word: &Word, lookup: L) -> String
where
    L: Fn(&str) -> Option<String>,
{
    let mut out = String::new();
    for part in &word.parts {
        match part {
            WordPart::Literal { text, .. } => out.push_str(text),
            WordPart::Var { name, .. } => out.push_str(&lookup(name).unwrap_or_default()),
        }
    }
    out
}

/// The text of a here-document body: variables substituted unless the
/// delimiter was quoted (then the body is already literal).
pub fn expand_heredoc<L>(doc: &HereDoc, lookup: L) -> String
where
    L: Fn(&str) -> Option<String>,
{
    expand_no_split(&doc.body, lookup)
}
