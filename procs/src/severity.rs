//! Syslog severities by name: `emerg` (0) is the most severe, `debug` (7)
//! the least.

use crate::error::{Error, Result};
use dbos_engine::Severity;

/// The names, indexed by severity.
pub const NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Severity of a line a program wrote to standard output.
pub const STDOUT: Severity = 6;
/// Severity of a line a program wrote to standard error: a diagnostic,
/// not necessarily an error.
pub const STDERR: Severity = 4;

/// Parse a severity: a syslog name (`warning`), a common spelling of one
/// (`error`, `warn`, `critical`, `emergency`, `panic`), or `0`-`7`.
pub fn parse_severity(text: &str) -> Result<Severity> {
    if let Ok(n) = text.parse::<u8>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = NAMES.iter().position(|n| *n == lower) {
        return Ok(i as Severity);
    }
    match lower.as_str() {
        "emergency" | "panic" => Ok(0),
        "critical" => Ok(2),
        "error" => Ok(3),
        "warn" => Ok(4),
        _ => Err(Error::BadSeverity(text.to_string())),
    }
}

/// The syslog name of a severity (`debug` for anything past 7).
pub fn severity_name(s: Severity) -> &'static str {
    NAMES.get(usize::from(s)).copied().unwrap_or("debug")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_severity("warning").unwrap(), 4);
        assert_eq!(parse_severity("WARN").unwrap(), 4);
        assert_eq!(parse_severity("err").unwrap(), 3);
        assert_eq!(parse_severity("error").unwrap(), 3);
        assert_eq!(parse_severity("0").unwrap(), 0);
        assert_eq!(parse_severity("debug").unwrap(), 7);
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(parse_severity(n).unwrap() as usize, i);
            assert_eq!(severity_name(i as u8), *n);
        }
        assert!(parse_severity("8").is_err());
        assert!(parse_severity("loud").is_err());
        assert!(parse_severity("").is_err());
    }
}
