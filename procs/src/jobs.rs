//! A table of watched background programs and their recorder, stopped
//! together when their owner ends: nothing stays `running` because the
//! program that watched it went away.

use crate::batch::Policy;
use crate::error::Result;
use crate::launch::{start, Launch};
use crate::liveness;
use crate::record::Target;
use crate::recorder::Recorder;
use crate::signal;
use crate::watch::{watch, Job, DRAIN_GRACE};
use dbos_engine::Engine;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long programs get to end after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Background programs started by one owner (a shell, a supervisor).
#[derive(Default)]
pub struct Jobs {
    recorder: Option<Recorder>,
    policy: Policy,
    jobs: BTreeMap<u64, Job>,
    /// Errors of a recorder already closed.
    late_errors: Vec<String>,
}

impl Jobs {
    /// An empty table whose log rows are batched under `policy`.
    pub fn new(policy: Policy) -> Jobs {
        Jobs {
            recorder: None,
            policy,
            jobs: BTreeMap::new(),
            late_errors: Vec::new(),
        }
    }

    /// Start a program in the background (see `launch::start`) and watch
    /// it; its output lines become log rows of `source`. The recorder (a
    /// second connection to `engine`'s database) opens on first use.
    pub fn spawn(
        &mut self,
        engine: &mut Engine,
        target: &Target,
        launch: Launch,
        source: &str,
    ) -> Result<Job> {
        let sink = match &self.recorder {
            Some(r) => r.sink(),
            None => {
                let r = Recorder::start(&engine.location(), target.actor.clone(), self.policy)?;
                self.recorder.insert(r).sink()
            }
        };
        let started = start(engine, target, launch)?;
        let job = watch(started, &target.branch, source, &sink);
        self.jobs.insert(job.id(), job.clone());
        Ok(job)
    }

    /// A program of this table by dbos id.
    pub fn get(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Every program of this table, by id.
    pub fn all(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Programs whose end row is not committed yet.
    pub fn running(&self) -> Vec<&Job> {
        self.jobs.values().filter(|j| j.is_running()).collect()
    }

    /// Commit every log row queued so far.
    pub fn flush(&self) -> Result<()> {
        match &self.recorder {
            Some(r) => r.flush(),
            None => Ok(()),
        }
    }

    /// Rows the recorder could not store since the last call.
    pub fn take_errors(&mut self) -> Vec<String> {
        let mut errors = std::mem::take(&mut self.late_errors);
        if let Some(r) = &self.recorder {
            errors.extend(r.take_errors());
        }
        errors
    }

    /// Stop every running program: SIGTERM, then SIGKILL to those still
    /// running after `grace`; wait for their end rows, commit what waits
    /// and close the recorder. Returns how many were running.
    pub fn shutdown(&mut self, grace: Duration) -> usize {
        let running: Vec<Job> = self.running().into_iter().cloned().collect();
        for j in &running {
            signal_job(j, libc::SIGTERM);
        }
        wait_all(&running, grace);
        for j in running.iter().filter(|j| j.is_running()) {
            signal_job(j, libc::SIGKILL);
        }
        wait_all(&running, DRAIN_GRACE + Duration::from_secs(2));
        // Dropping the recorder commits what waits and joins its thread.
        if let Some(r) = self.recorder.take() {
            let errors = r.errors.clone();
            drop(r);
            let late = errors
                .lock()
                .map(|mut e| std::mem::take(&mut *e))
                .unwrap_or_default();
            self.late_errors.extend(late);
        }
        running.len()
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.shutdown(STOP_GRACE);
    }
}

/// Signal a watched program, unless it has ended (its pid may be reused).
fn signal_job(job: &Job, sig: i32) {
    if !job.is_running() {
        return;
    }
    if let Some(pid) = job.pid() {
        if liveness::is_same_process(pid, job.record.start_us) != Some(false) {
            let _ = signal::send(pid, sig);
        }
    }
}

fn wait_all(jobs: &[Job], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for j in jobs {
        let left = deadline.saturating_duration_since(Instant::now());
        if j.wait_timeout(left).is_none() && left.is_zero() {
            return;
        }
    }
}
