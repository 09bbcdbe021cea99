//! dbos-hostdir: copy real host directory trees into the versioned tree of
//! dbos ([`import()`]) and write present or past states of it back out as real
//! directories ([`export()`]).
//!
//! Invariants: nothing here follows a symbolic link below the directory the
//! caller named (links are read and written as links, with their target
//! text), and export never creates, changes or removes anything outside the
//! host directory it was given: every host entry below it is reached with
//! `*at` system calls, one checked name at a time, with `O_NOFOLLOW`.
//!
//! Progress goes through the [`Progress`] trait, so a caller draws it as it
//! likes (the shell draws a bar on a terminal).

mod error;
pub mod export;
mod host;
pub mod import;
mod walk;

pub use error::{show_host, Error, Result, SkipReason, Skipped};
pub use export::{export, ExportOptions, ExportReport};
pub use import::{import, ImportOptions, ImportReport};

/// Receives progress of an import or export. Every method has a default
/// that does nothing.
pub trait Progress {
    /// Counting phase: entries and file bytes found so far.
    fn scanning(&mut self, _entries: u64, _bytes: u64) {}
    /// Counting done: the work phase covers `entries` entries and `bytes`
    /// bytes of file content.
    fn start(&mut self, _entries: u64, _bytes: u64) {}
    /// More work done: `entries` more entries, `bytes` more content bytes.
    fn advance(&mut self, _entries: u64, _bytes: u64) {}
    /// The work is over (successfully or not).
    fn finish(&mut self) {}
    /// True when the caller wants the work stopped (checked often); the
    /// operation then fails with [`Error::Interrupted`].
    fn interrupted(&self) -> bool {
        false
    }
}

/// A progress receiver that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A reader that reports the bytes passing through it.
pub(crate) struct Counted<'p, R> {
    pub inner: R,
    pub progress: &'p mut dyn Progress,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.progress.interrupted() {
            // Not `ErrorKind::Interrupted`: readers retry that one.
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.progress.advance(0, n as u64);
        Ok(n)
    }
}
