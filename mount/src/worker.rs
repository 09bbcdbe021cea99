//! The engine thread. The engine is not `Send`, and FUSE handlers run on
//! fuser's threads, so one thread owns the engine and all mount state and
//! runs each request as a job; handlers wait for the answer. A job that
//! panics is caught: the request gets EIO and the mount stays up.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// A thread owning a value of type `C`, running jobs on it one at a time.
pub struct Worker<C> {
    jobs: Mutex<Option<mpsc::Sender<Job<C>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<C: 'static> Worker<C> {
    /// Start the thread and build its value there with `make`, which also
    /// gives a value `L` handed back to the caller; an error from `make` is
    /// returned and the thread ends.
    pub fn start<L: Send + 'static, E: Send + 'static>(
        make: impl FnOnce() -> Result<(C, L), E> + Send + 'static,
    ) -> std::io::Result<Result<(Worker<C>, L), E>> {
        let (job_tx, job_rx) = mpsc::channel::<Job<C>>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<L, E>>(1);
        let thread = std::thread::Builder::new()
            .name("dbos-engine".to_string())
            .spawn(move || {
                let mut core = match make() {
                    Ok((c, l)) => {
                        let _ = ready_tx.send(Ok(l));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = job_rx.recv() {
                    if catch_unwind(AssertUnwindSafe(|| job(&mut core))).is_err() {
                        eprintln!("dbos mount: internal error in a request (answered EIO)");
                    }
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(l)) => Ok(Ok((
                Worker {
                    jobs: Mutex::new(Some(job_tx)),
                    thread: Mutex::new(Some(thread)),
                },
                l,
            ))),
            Ok(Err(e)) => {
                let _ = thread.join();
                Ok(Err(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(std::io::Error::other(
                    "the engine thread ended while starting",
                ))
            }
        }
    }

    /// Run `f` on the thread's value and wait for its result. None when the
    /// thread is gone or `f` panicked.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut C) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job<C> = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        {
            let guard = self.jobs.lock().ok()?;
            guard.as_ref()?.send(job).ok()?;
        }
        rx.recv().ok()
    }

    /// Stop taking jobs, let the queued ones finish, and join the thread.
    pub fn stop(&self) {
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
        let t = self.thread.lock().ok().and_then(|mut g| g.take());
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_in_order_and_survives_a_panic() {
        let (w, label) = Worker::start(|| Ok::<_, String>((Vec::<u32>::new(), "x")))
            .unwrap()
            .unwrap();
        assert_eq!(label, "x");
        assert_eq!(w.call(|v| v.push(1)), Some(()));
        assert_eq!(w.call(|_| -> u32 { panic!("boom") }), None);
        assert_eq!(w.call(|v| v.clone()), Some(vec![1]));
        w.stop();
        assert_eq!(w.call(|v| v.len()), None);
    }

    #[test]
    fn a_failed_start_is_reported() {
        let r = Worker::<u32>::start(|| Err::<(u32, ()), _>("no".to_string())).unwrap();
        assert_eq!(r.err(), Some("no".to_string()));
    }
}
