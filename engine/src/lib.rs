//! dbos-engine: the temporal storage engine of dbos.
//!
//! All system state (a file tree, config rows, process records, log rows) is
//! kept as immutable row versions, each stamped by the transaction that wrote
//! it and the branch it was written on. Any past moment of any branch can be
//! read with index lookups; nothing committed is ever overwritten.
//!
//! ```no_run
//! use dbos_engine::{Engine, Actor, VPath};
//! let mut engine = Engine::open("/tmp/state.db")?;
//! let actor = Actor::default();
//! let (_, info) = engine.autocommit("main", &actor, "echo hi > /hello", |tx| {
//!     tx.write_bytes(&VPath::parse("/hello")?, b"hi\n")
//! })?;
//! let t = info.expect("a change was made").id;
//! let mut past = engine.view_at("main", t)?;
//! assert_eq!(past.read_file(&VPath::parse("/hello")?)?, b"hi\n");
//! # Ok::<(), dbos_engine::Error>(())
//! ```

pub mod audit;
pub mod backend;
pub mod chain;
pub mod content;
pub mod copy;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod migrate;
pub mod path;
pub mod refs;
pub mod shown;
pub mod txn;
pub mod types;
pub mod verify;

pub use backend::{CommitMeta, LogFilter};
pub use engine::{check_branch_name, default_location, is_postgres, Engine};
pub use error::{Error, Result};
pub use path::VPath;
pub use refs::{parse_ref, Moment, RefSpec};
pub use txn::{check_config_key, Actor, ContentReader, Savepoint, TxState, Txn};
pub use types::*;
