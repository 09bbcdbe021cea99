//! How user-supplied text appears inside an error message: one line, never
//! longer than a screen line's worth of the value, and an empty value shown
//! as `""` rather than as nothing.

use std::fmt;

/// Values longer than this many characters are cut in messages.
const MAX_CHARS: usize = 160;

/// A user-supplied value as shown in a message (see [`shown`] and [`quoted`]).
pub struct Shown<'a> {
    text: &'a str,
    always_quote: bool,
}

/// `text` as it appears in a message: bare when short and printable, quoted
/// when empty or holding control characters, and cut after 160 characters
/// with its full length in bytes.
pub fn shown(text: &str) -> Shown<'_> {
    Shown {
        text,
        always_quote: false,
    }
}

/// Like [`shown`], but always in double quotes.
pub fn quoted(text: &str) -> Shown<'_> {
    Shown {
        text,
        always_quote: true,
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let long = self.text.chars().nth(MAX_CHARS).is_some();
        let head: String = self.text.chars().take(MAX_CHARS).collect();
        let needs_quotes =
            self.always_quote || self.text.is_empty() || self.text.chars().any(|c| c.is_control());
        if needs_quotes {
            write!(f, "{head:?}")?;
        } else {
            f.write_str(&head)?;
        }
        if long {
            write!(f, "… ({} bytes)", self.text.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_unchanged() {
        assert_eq!(shown("main").to_string(), "main");
        assert_eq!(quoted("/a b").to_string(), "\"/a b\"");
    }

    #[test]
    fn empty_and_control_values_are_quoted() {
        assert_eq!(shown("").to_string(), "\"\"");
        assert_eq!(shown("a\nb").to_string(), "\"a\\nb\"");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = "x".repeat(3000);
        let s = quoted(&long).to_string();
        assert!(
            s.starts_with(&format!("\"{}\"", "x".repeat(MAX_CHARS))),
            "{s}"
        );
        assert!(s.ends_with("… (3000 bytes)"), "{s}");
        assert!(s.chars().count() < MAX_CHARS + 30, "{s}");
    }
}
