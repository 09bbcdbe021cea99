//! Errors of starting, watching and signalling processes.

/// Something went wrong with a process or its rows.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program was not found (exit status 127 in a shell).
    #[error("{}: command not found", dbos_engine::shown::shown(program))]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// The program exists but may not be run (exit status 126).
    #[error("{}: permission denied", dbos_engine::shown::shown(program))]
    PermissionDenied {
        /// The program as given.
        program: String,
    },
    /// The program could not be started for another reason (126).
    #[error("{}: cannot start: {reason}", dbos_engine::shown::shown(program))]
    Spawn {
        /// The program as given.
        program: String,
        /// What the operating system said.
        reason: String,
    },
    /// The user a program should run as does not exist, or this process
    /// may not switch to it.
    #[error("user {user}: {reason}")]
    User {
        /// The user as given.
        user: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Nothing to run.
    #[error("no program given")]
    Empty,
    /// A signal name or number that does not exist.
    #[error("unknown signal {0:?} (use a name such as TERM or KILL, or a number)")]
    BadSignal(String),
    /// A severity name or number that does not exist.
    #[error(
        "unknown severity {0:?} (use emerg, alert, crit, err, warning, notice, info, debug or 0-7)"
    )]
    BadSeverity(String),
    /// Signalling a process failed.
    #[error("process {id}: {reason}")]
    Signal {
        /// dbos process id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The writer thread is gone (its database connection failed).
    #[error("the process recorder stopped: {0}")]
    RecorderGone(String),
    /// The database refused a row.
    #[error(transparent)]
    Engine(#[from] dbos_engine::Error),
    /// An operating system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The exit status a shell gives for this error: 127 not found, 126
    /// cannot be started, 1 anything else.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::NotFound { .. } => 127,
            Error::PermissionDenied { .. } | Error::Spawn { .. } | Error::User { .. } => 126,
            _ => 1,
        }
    }
}

/// Result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;
