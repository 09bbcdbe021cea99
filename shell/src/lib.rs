//! The dbos shell as a library: the command language, the executor, the
//! built-in commands and the interactive loop. `main.rs` is a thin binary
//! over it; benchmarks and tests drive it in-process.

pub mod commands;
pub mod exec;
pub mod interrupt;
pub mod lang;
pub mod output;
pub mod pager;
pub mod repl;
pub mod session;
