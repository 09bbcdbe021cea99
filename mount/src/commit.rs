//! How a change through the mount becomes a transaction.
//!
//! - Metadata operations (create, mkdir, mknod, symlink, unlink, rmdir,
//!   rename, chmod, chown, truncate without an open buffer, utimens) commit
//!   at once, one transaction each, from a fresh transaction on the branch
//!   head, so other writers' commits are seen.
//! - Data written to an open file is kept in the inode's buffer and committed
//!   when the file is flushed (every close(2)), fsynced or released, if it
//!   changed since the last commit.
//!
//! Every transaction's command text says what happened and who did it:
//! `mount: OP PATH[ -> PATH2] by pid PID (COMMAND LINE)`, for example
//! `mount: write /etc/hosts by pid 1234 (vim /etc/hosts)`. The author is the
//! user who ran `dbos mount`.
//!
//! On a conflict (someone else committed the same path since the snapshot)
//! the work is applied once more on a fresh head: for data this means the
//! last close wins, as on a plain filesystem; the retry is logged. A busy
//! database is retried a few times with a short back-off.

use dbos_engine::{Actor, Engine, Error, Result, TxInfo, Txn};
use std::time::Duration;

/// Retries after the database was busy.
const BUSY_RETRIES: u32 = 10;

/// Where and as whom the mount commits.
#[derive(Clone, Debug)]
pub struct Committer {
    /// The branch written.
    pub branch: String,
    /// The author recorded (the user who mounted).
    pub author: String,
}

/// The command text of a mount transaction.
pub fn command(op: &str, path: &str, who: &str) -> String {
    format!("mount: {op} {path} by {who}")
}

impl Committer {
    /// Run `work` in a transaction on the branch head as the caller
    /// `uid`/`gid` (owner of new entries) and commit it with `command`.
    /// A conflict is retried once from a fresh head, a busy database a few
    /// times. Nothing is committed when `work` fails.
    pub fn run<T>(
        &self,
        engine: &mut Engine,
        uid: u32,
        gid: u32,
        command: &str,
        mut work: impl FnMut(&mut Txn<'_>) -> Result<T>,
    ) -> Result<(T, Option<TxInfo>)> {
        let actor = Actor {
            author: self.author.clone(),
            uid,
            gid,
        };
        let mut conflicts = 0;
        let mut busy = 0;
        loop {
            let mut tx = engine.begin(&self.branch, &actor)?;
            let out = work(&mut tx)?;
            match tx.commit(command, None) {
                Ok(info) => return Ok((out, info)),
                Err(e @ Error::Conflict { .. }) if conflicts < 1 => {
                    conflicts += 1;
                    eprintln!("dbos mount: {e}; applying {command:?} again on the new head");
                }
                Err(Error::Busy { .. }) if busy < BUSY_RETRIES => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(5u64 << busy.min(6)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbos_engine::VPath;

    #[test]
    fn commits_one_transaction_with_the_command_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(&dir.path().join("s.db").display().to_string()).unwrap();
        let c = Committer {
            branch: "main".into(),
            author: "alice".into(),
        };
        let cmd = command("mkdir", "/d", "pid 7 (mkdir /d)");
        let (_, info) = c
            .run(&mut engine, 1000, 1000, &cmd, |tx| {
                tx.mkdir(&VPath::parse("/d")?, false, 0o755)
            })
            .unwrap();
        let info = info.unwrap();
        assert_eq!(info.command, "mount: mkdir /d by pid 7 (mkdir /d)");
        assert_eq!(info.author, "alice");
        let mut v = engine.view_at("main", info.id).unwrap();
        let e = v.entry(&VPath::parse("/d").unwrap()).unwrap();
        assert_eq!(e.meta().unwrap().uid, 1000);
        // A failing operation commits nothing.
        let err = c
            .run(&mut engine, 0, 0, "x", |tx| {
                tx.mkdir(&VPath::parse("/d")?, false, 0o755)
            })
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)));
        assert_eq!(engine.head().unwrap(), info.id);
    }
}
