//! dbos-branches: copy-on-write branches, the merge base, three-way merge
//! (line by line for text files) and the branch porcelain, over the engine.

pub mod base;
pub mod error;
pub mod merge;
pub mod ops;
pub mod textmerge;

pub use base::merge_base;
pub use error::{Conflict, Error, Result};
pub use merge::{merge, MergeReport, Strategy};
pub use ops::{create, delete, list, rename, tag, tags, BranchRow};
