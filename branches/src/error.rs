//! Errors of branch operations and merges.

use dbos_engine::Space;

/// A key both sides changed in ways that cannot be combined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Kind of state.
    pub space: Space,
    /// Path or key.
    pub path: String,
    /// What each side did.
    pub reason: String,
}

/// What can go wrong with branches and merges.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the engine.
    #[error(transparent)]
    Engine(#[from] dbos_engine::Error),
    /// Deleting the branch the shell is on.
    #[error("cannot delete branch {0}: it is the current branch (switch to another first)")]
    IsCurrent(String),
    /// Deleting a branch whose work was never merged.
    #[error(
        "branch {name} has work not merged anywhere (up to T{head}); use -D to delete it anyway"
    )]
    Unmerged { name: String, head: u64 },
    /// A branch or tag name already names the other kind of thing.
    #[error("{name:?} is already the name of a {what}; branches and tags share one namespace")]
    NameTaken { name: String, what: &'static str },
    /// Merging a branch into itself.
    #[error("cannot merge branch {0} into itself")]
    SelfMerge(String),
    /// The merge found conflicts and applied nothing.
    #[error("merge of {theirs} into {ours} has {} conflict(s); nothing was applied (use --ours or --theirs to decide):{}", .conflicts.len(), list(.conflicts))]
    Conflicts {
        ours: String,
        theirs: String,
        conflicts: Vec<Conflict>,
    },
}

fn list(c: &[Conflict]) -> String {
    c.iter()
        .map(|c| {
            let space = if c.space == Space::File {
                String::new()
            } else {
                format!("{} ", c.space.as_str())
            };
            format!("\n  {space}{}: {}", c.path, c.reason)
        })
        .collect()
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
