//! Formatting shared by commands: times, modes, sizes, JSON.

use dbos_engine::{Entry, NodeKind};

/// A commit time (microseconds since the epoch) as `2026-11-23 20:41:07 UTC`.
pub fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| us.to_string())
}

/// A time as RFC 3339 with microseconds (for JSON).
pub fn time_rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| us.to_string())
}

/// An mtime in nanoseconds as `2026-11-23 20:41`.
pub fn mtime(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// `ls -l` style mode string, e.g. `drwxr-xr-x`.
pub fn mode_string(e: &Entry) -> String {
    let kind = match e.kind() {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        _ => '-',
    };
    let mode = e.meta().map(|m| m.mode).unwrap_or(0);
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The kind of an entry as a word (`file`, `dir`, `symlink`).
pub fn kind_name(e: &Entry) -> &'static str {
    match e.kind() {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Value => "value",
    }
}

/// Output format chosen with `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Pretty JSON text with a trailing newline.
pub fn json(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".to_string());
    s.push('\n');
    s
}

/// Wrap text in an ANSI colour when `on`.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
