//! The shell's session: which database, branch and directory it is on, its
//! variables, and the transaction work of the current command line.
//!
//! Outside `begin`, every input unit (a line, a `-c` string) runs in one
//! implicit transaction committed at its end with the unit's text. Inside
//! `begin ... commit`, changes accumulate in the explicit transaction.

use dbos_engine::{Actor, Engine, Error, Moment, TxInfo, TxState, Txn, VPath};
use std::collections::{BTreeMap, BTreeSet};

/// Everything a shell remembers between commands.
pub struct Session {
    /// The engine over the open database.
    pub engine: Engine,
    /// Current branch.
    pub branch: String,
    /// Who is recorded as author, and owner of new files.
    pub actor: Actor,
    /// Working directory.
    pub cwd: VPath,
    /// Shell variables.
    pub vars: BTreeMap<String, String>,
    /// Names of exported variables.
    pub exported: BTreeSet<String>,
    /// Exit status of the last command (`$?`).
    pub last_status: i32,
    /// `asof REF`: a read-only view of a moment, until `asof now`.
    pub asof: Option<Moment>,
    /// The explicit transaction opened by `begin`.
    pub explicit: Option<TxState>,
    /// Text of the input units run inside the explicit transaction.
    pub explicit_lines: Vec<String>,
    /// The implicit transaction of the current input unit.
    pub line: Option<TxState>,
    /// Text of the current input unit.
    pub line_text: String,
    /// Colour output on a terminal.
    pub color: bool,
    /// Colour output even when piped or redirected (`--color always`).
    pub color_always: bool,
    /// Running interactively on a terminal.
    pub interactive: bool,
    /// Set by `exit`: leave after the current unit with this status.
    pub exit_requested: Option<i32>,
    /// Background programs started with `spawn`, watched until they end.
    pub jobs: dbos_procs::Jobs,
    /// An interactive `exit` already warned about running background
    /// programs: the next one stops them and leaves.
    pub exit_warned: bool,
}

/// A command failed: the message, and whether it was a usage error.
#[derive(Debug)]
pub enum Failure {
    /// Bad invocation (exit status 2).
    Usage(String),
    /// The command could not do its work (exit status 1).
    Failed(String),
}

impl Failure {
    /// The exit status this failure gives.
    pub fn status(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        }
    }
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Failed(m) => m,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::BadRef { .. } => Failure::Usage(e.to_string()),
            other => Failure::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// Result of a command: its exit status.
pub type CmdResult = Result<i32, Failure>;

impl Session {
    /// A session on `branch` of an open engine.
    pub fn new(mut engine: Engine, branch: &str, actor: Actor) -> Result<Session, Error> {
        engine.branch(branch)?;
        Ok(Session {
            engine,
            branch: branch.to_string(),
            actor,
            cwd: VPath::root(),
            vars: BTreeMap::new(),
            exported: BTreeSet::new(),
            last_status: 0,
            asof: None,
            explicit: None,
            explicit_lines: Vec::new(),
            line: None,
            line_text: String::new(),
            color: false,
            color_always: false,
            interactive: false,
            exit_requested: None,
            jobs: dbos_procs::Jobs::default(),
            exit_warned: false,
        })
    }

    /// A path argument made absolute against the working directory.
    pub fn abs(&self, arg: &str) -> Result<VPath, Failure> {
        VPath::resolve(&self.cwd, arg).map_err(Failure::from)
    }

    /// Resolve a REF's text on the current branch.
    pub fn moment(&mut self, text: &str) -> Result<Moment, Failure> {
        let branch = self.branch.clone();
        Ok(self.engine.resolve_ref(&branch, text)?)
    }

    fn working_state(&mut self) -> Result<TxState, Error> {
        if let Some(st) = self.explicit.take() {
            return Ok(st);
        }
        if let Some(st) = self.line.take() {
            return Ok(st);
        }
        let branch = self.branch.clone();
        let actor = self.actor.clone();
        Ok(self.engine.begin(&branch, &actor)?.into_state())
    }

    fn put_back(&mut self, st: TxState, explicit: bool) {
        if explicit {
            self.explicit = Some(st);
        } else {
            self.line = Some(st);
        }
    }

    /// Run `f` on the working transaction (explicit, or the unit's implicit
    /// one). If `f` fails, every change it made is undone.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        if let Some(m) = &self.asof {
            return Err(Error::ReadOnly(format!(
                "asof {}@T{}; 'asof now' returns to the present",
                m.branch, m.tx
            ))
            .into());
        }
        let explicit = self.explicit.is_some();
        let st = self.working_state()?;
        let sp = st.savepoint();
        let mut txn = self.engine.resume(st);
        let out = f(&mut txn);
        let mut st = txn.into_state();
        if out.is_err() {
            st.restore(sp);
        }
        self.put_back(st, explicit);
        out
    }

    /// Run `f` on what the session reads: the moment `as_of` if given, else
    /// the `asof` view, else the working transaction (seeing its pending
    /// changes).
    pub fn read<T>(
        &mut self,
        as_of: Option<&str>,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let moment = match as_of {
            Some(text) => Some(self.moment(text)?),
            None => self.asof.clone(),
        };
        if let Some(m) = moment {
            let mut view = self.engine.view_at(&m.branch, m.tx)?;
            return f(&mut view);
        }
        let explicit = self.explicit.is_some();
        let st = self.working_state()?;
        let mut txn = self.engine.resume(st);
        let out = f(&mut txn);
        let st = txn.into_state();
        self.put_back(st, explicit);
        out
    }

    /// Commit the implicit transaction of the unit that just ran (if it
    /// changed anything), recorded with the unit's text.
    pub fn end_unit(&mut self) -> Result<Option<TxInfo>, Failure> {
        let Some(st) = self.line.take() else {
            return Ok(None);
        };
        if st.is_clean() {
            return Ok(None);
        }
        let text = self.line_text.trim().to_string();
        let info = self.engine.resume(st).commit(&text, None)?;
        Ok(info)
    }

    /// Stop the background programs still running (SIGTERM, SIGKILL after
    /// 5 s) so that their rows record their end, saying so on standard
    /// error. Called when the shell leaves.
    pub fn stop_jobs(&mut self) {
        let running = self.jobs.running().len();
        if running > 0 {
            eprintln!(
                "dbos: stopping {running} background process{} (SIGTERM, then SIGKILL after 5 s)",
                if running == 1 { "" } else { "es" }
            );
        }
        self.jobs.shutdown(dbos_procs::jobs::STOP_GRACE);
        for e in self.jobs.take_errors() {
            eprintln!("dbos: warning: {e}");
        }
    }

    /// The prompt: branch, directory and an open transaction or view.
    pub fn prompt(&self) -> String {
        let mut tags = Vec::new();
        if self.explicit.is_some() {
            tags.push("tx".to_string());
        }
        if let Some(m) = &self.asof {
            tags.push(format!("asof T{}", m.tx));
        }
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!(" ({})", tags.join(", "))
        };
        format!("dbos {}:{}{}> ", self.branch, self.cwd, tags)
    }
}
