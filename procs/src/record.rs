//! Committing process rows. Every row is its own transaction, committed at
//! once: a process row records a fact about the outside world (a program
//! started, a program ended), which no rollback of other work can undo.

use crate::error::Result;
use crate::liveness;
use dbos_engine::{Actor, Engine, ProcessRecord, ProcessState, Space};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Where process rows go: a branch, written as an actor.
#[derive(Clone, Debug)]
pub struct Target {
    /// Branch whose process space holds the rows.
    pub branch: String,
    /// Author of the transactions (also the row's `user`).
    pub actor: Actor,
}

/// Now, microseconds since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A record in state `running` that has no pid yet.
pub fn new(id: u64, argv: Vec<String>, cwd: String, user: String, start_us: i64) -> ProcessRecord {
    ProcessRecord {
        id,
        argv,
        cwd,
        state: ProcessState::Running,
        pid: None,
        user,
        exit_status: None,
        signal: None,
        start_us,
        end_us: None,
        error: None,
    }
}

/// The version of `rec` saying it could not start, and why.
pub fn failed(rec: &ProcessRecord, why: &dyn std::fmt::Display, end_us: i64) -> ProcessRecord {
    let mut r = rec.clone();
    r.state = ProcessState::Failed;
    r.end_us = Some(end_us);
    r.error = Some(why.to_string());
    r
}

/// The version of `rec` saying its end could not be learnt, and why.
pub fn lost(rec: &ProcessRecord, why: String, end_us: i64) -> ProcessRecord {
    let mut r = rec.clone();
    r.state = ProcessState::Lost;
    r.end_us = Some(end_us);
    r.error = Some(why);
    r
}

/// How `rec` ended, in words: `exited with status 3`, `killed by
/// SIGTERM`, `lost`, `failed: WHY`.
pub fn describe_end(rec: &ProcessRecord) -> String {
    match rec.state {
        ProcessState::Exited => format!("exited with status {}", rec.exit_status.unwrap_or(0)),
        ProcessState::Killed => format!(
            "killed by {}",
            crate::signal::signal_name(rec.signal.unwrap_or(0))
        ),
        ProcessState::Lost => "lost".to_string(),
        ProcessState::Failed => format!("failed: {}", rec.error.as_deref().unwrap_or("?")),
        ProcessState::Running => "running".to_string(),
    }
}

/// Commit a new process record, `make` filling it in for the id chosen (an
/// id never used on the branch). Two writers choosing the same id conflict
/// on that key, and the loser retries with the next one.
pub fn commit_new(
    engine: &mut Engine,
    target: &Target,
    command: &str,
    make: impl Fn(u64) -> ProcessRecord,
) -> Result<ProcessRecord> {
    let (rec, _) = engine.autocommit(&target.branch, &target.actor, command, |tx| {
        let id = tx.next_process_id()?;
        let rec = make(id);
        tx.process_put(&rec)?;
        Ok(rec)
    })?;
    Ok(rec)
}

/// Commit a new version of a record (its end, usually).
pub fn commit_version(
    engine: &mut Engine,
    target: &Target,
    command: &str,
    rec: &ProcessRecord,
) -> Result<()> {
    engine.autocommit(&target.branch, &target.actor, command, |tx| {
        tx.process_put(rec)
    })?;
    Ok(())
}

/// The version of `rec` that records how it ended: `exited` with its
/// status, or `killed` with its signal.
pub fn ended(rec: &ProcessRecord, status: ExitStatus, end_us: i64) -> ProcessRecord {
    let mut r = rec.clone();
    r.end_us = Some(end_us);
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            r.state = ProcessState::Exited;
            r.exit_status = Some(code);
        }
        (None, Some(sig)) => {
            r.state = ProcessState::Killed;
            r.signal = Some(sig);
        }
        (None, None) => {
            return lost(
                rec,
                format!("ended with an unknown status ({status})"),
                end_us,
            )
        }
    }
    r
}

/// Command text of the transaction that records how `rec` ended:
/// `process 5 exited (0)`, `process 6 killed (SIGTERM)`.
pub fn end_command(rec: &ProcessRecord) -> String {
    let how = match rec.state {
        ProcessState::Exited => format!("exited ({})", rec.exit_status.unwrap_or(0)),
        ProcessState::Killed => format!(
            "killed ({})",
            crate::signal::signal_name(rec.signal.unwrap_or(0))
        ),
        ProcessState::Lost => "lost".to_string(),
        ProcessState::Failed => "failed".to_string(),
        ProcessState::Running => "running".to_string(),
    };
    format!("process {} {how}", rec.id)
}

/// The exit status a shell gives for an ended record: its exit status,
/// 128 + its signal, 127/126 when it could not start, 1 when lost.
pub fn shell_status(rec: &ProcessRecord) -> i32 {
    match rec.state {
        ProcessState::Exited => rec.exit_status.unwrap_or(0),
        ProcessState::Killed => 128 + rec.signal.unwrap_or(0),
        ProcessState::Failed => {
            if rec
                .error
                .as_deref()
                .is_some_and(|e| e.ends_with("command not found"))
            {
                127
            } else {
                126
            }
        }
        ProcessState::Lost | ProcessState::Running => 1,
    }
}

/// Mark as `lost` the rows of `target`'s branch that say `running` for a
/// process this host started and that is gone (or whose pid another
/// program now has): the program that watched it ended without recording
/// its end (a crashed shell, a dbos-init that lost power). Rows written from other hosts, and processes
/// still alive, are left alone. Returns the rows marked.
pub fn reconcile(engine: &mut Engine, target: &Target) -> Result<Vec<ProcessRecord>> {
    let running: Vec<ProcessRecord> = {
        let mut tx = engine.begin(&target.branch, &target.actor)?;
        tx.process_list()?
            .into_iter()
            .filter(|r| r.state == ProcessState::Running)
            .collect()
    };
    let host = engine.host().to_string();
    let mut marked = Vec::new();
    for rec in running {
        let Some(pid) = rec.pid else { continue };
        if liveness::is_same_process(pid, rec.start_us) != Some(false) {
            continue;
        }
        // Only rows this host wrote name this host's pids.
        let history = engine.history(&target.branch, None, Space::Process, &rec.id.to_string())?;
        if history.first().is_none_or(|(info, _)| info.host != host) {
            continue;
        }
        let command = format!("process {} lost", rec.id);
        let (done, _) = engine.autocommit(&target.branch, &target.actor, &command, |tx| {
            // Its watcher may have recorded the end meanwhile: that wins.
            match tx.process_get(rec.id)? {
                Some(now) if now.state == ProcessState::Running => {
                    let gone = lost(
                        &now,
                        "its end was not recorded: the program watching it ended first".to_string(),
                        now_us(),
                    );
                    tx.process_put(&gone)?;
                    Ok(Some(gone))
                }
                _ => Ok(None),
            }
        })?;
        marked.extend(done);
    }
    Ok(marked)
}
