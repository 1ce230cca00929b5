//! Where slow-on-purpose hashes run (Argon2id for recovery codes, about
//! 19 MiB and tens of milliseconds each): a few threads of their own, as
//! many as the machine has cores, behind a gate that refuses work when
//! they are all busy instead of queueing it.
//!
//! SECURITY: the gate is what keeps a flood of answers from exhausting
//! memory or stalling the async workers. A caller takes a [`Permit`]
//! first — before it writes anything, so a refusal changes nothing — and
//! the permit is what runs the job. Threads of their own (not tokio's
//! blocking pool, which grows to hundreds) keep the memory the allocator
//! holds on to after a hash bounded by the number of threads.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The slow-hash threads and their gate.
pub struct SlowHasher {
    gate: Arc<Semaphore>,
    jobs: SyncSender<Job>,
}

/// The right to run one job now (taken with [`SlowHasher::try_permit`]).
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

/// Every slow-hash thread is busy; try again in a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saturated;

impl SlowHasher {
    /// `threads` workers (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        // Room for every permit's job, so a send never blocks.
        let (jobs, queue) = sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("slow-hash-{n}")).spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a slow-hash thread");
            }
        }
        Self { gate: Arc::new(Semaphore::new(threads)), jobs }
    }

    /// As many threads as the machine has cores.
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// A permit if a thread is free now; never waits.
    pub fn try_permit(&self) -> Result<Permit, Saturated> {
        match self.gate.clone().try_acquire_owned() {
            Ok(permit) => Ok(Permit { _held: permit }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(Saturated),
        }
    }

    /// Runs `job` on a slow-hash thread under `permit`, which is given
    /// back when the job ends (even if the caller stopped waiting).
    pub async fn run<T: Send + 'static>(
        &self,
        permit: Permit,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Saturated> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let _ = done.send(job());
        });
        // The channel has room for every permit, so this fails only if the
        // threads are gone.
        self.jobs.try_send(job).map_err(|_| Saturated)?;
        result.await.map_err(|_| Saturated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_beyond_the_threads_is_refused_not_queued() {
        let hasher = SlowHasher::new(2);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let first = hasher.try_permit().unwrap();
        let second = hasher.try_permit().unwrap();
        assert_eq!(hasher.try_permit().err(), Some(Saturated), "both threads are spoken for");
        let w = wait.clone();
        let running = tokio::spawn({
            let hasher = Arc::new(hasher);
            let h = hasher.clone();
            async move {
                let a = h.run(first, move || w.lock().map(|r| r.recv().is_ok()).unwrap_or(false));
                let b = h.run(second, || 7);
                let (a, b) = tokio::join!(a, b);
                (a, b, hasher)
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        let (a, b, hasher) = running.await.unwrap();
        assert_eq!((a, b), (Ok(true), Ok(7)));
        assert!(hasher.try_permit().is_ok(), "permits come back when jobs end");
    }
}
