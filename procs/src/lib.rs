//! dbos-procs: host programs as versioned process rows.
//!
//! A program dbos starts is a process record (`dbos_engine::ProcessRecord`)
//! in the `process` space of a branch: a version in state `running` is
//! committed as soon as it has started, a new version when it ends
//! (`exited` or `killed`), or a `failed` one when it could not start. Each
//! of these is its own transaction: they record facts about the outside
//! world, which no rollback can undo. The output of a watched program
//! becomes log rows, committed in batches by one writer thread.
//!
//! Modules, one job each:
//! - [`launch`]: start a program and commit its first row;
//! - [`record`]: commit process rows (new, next version, lost);
//! - [`watch`]: follow a started program to its end, its output into logs;
//! - [`recorder`]: the writer thread that commits log rows and end rows;
//! - [`batch`]: when a batch of log rows is due;
//! - [`jobs`]: a table of watched programs, stopped together at exit;
//! - [`signal`], [`severity`]: names of signals and syslog severities;
//! - [`liveness`]: is a pid still the process a row describes;
//! - [`user`]: who a program runs as;
//! - [`control`]: the client of dbos-init's control socket.
//!
//! Everything goes through the engine API (`dbos_engine`), never SQL.

#![warn(missing_docs)]

pub mod batch;
pub mod control;
pub mod error;
pub mod jobs;
pub mod launch;
pub mod liveness;
pub mod record;
pub mod recorder;
pub mod severity;
pub mod signal;
pub mod user;
pub mod watch;

pub use error::{Error, Result};
pub use jobs::Jobs;
pub use launch::{start, Input, Launch, Output, Started};
pub use record::{reconcile, Target};
pub use recorder::Recorder;
pub use watch::{watch, Job};
