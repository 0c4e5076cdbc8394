//! A bounded pool for CPU-heavy transforms: `workers` run at once (one per
//! core by default), at most `queue` more wait, anything beyond is refused
//! with `Overloaded` (503) — never an unbounded queue of decoded images.
//!
//! A refusal is answered after `refusal_delay` (100 ms by default), not at
//! once: a flood client that ignores `Retry-After` and asks again straight
//! away would otherwise have the server answer refusals as fast as it can,
//! on the cores that serve hits (bench/overload.py measured ~7,700 503s a
//! second from 96 connections). Held back, each connection gets at most
//! 1 / delay refusals a second, and a held refusal costs a timer — no slot,
//! no source, no worker (HAProxy's "tarpit", for the same reason).
//!
//! Each job has a deadline, which its decoders check (`job.rs`): a job past
//! it answers `TimedOut` and stops soon after; its worker slot and its
//! memory stay taken until it has really ended, so neither CPU nor memory
//! can be over-committed by jobs that were given up on. Every job also
//! reserves its share of the memory budget (`transform.memory_mb`) before
//! it decodes.
//!
//! Jobs run on the pool's own threads, started at a lower CPU priority
//! (nice +10): when transforms fill every core, the runtime's threads that
//! answer cache hits still get the CPU at once (`bench/overload.py`:
//! hit p99 during a transform flood, docs/RELIABILITY.md). Hand-written
//! (~40 lines) because the blocking pool's threads are shared with file I/O
//! that must not be slowed, and no pool crate sets thread priorities.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::TransformError;
use super::job::{Job, MemoryBudget, lower_priority};
use crate::metrics;

#[derive(Clone)]
pub struct Transformer {
    /// Places in the pool and its queue: `capacity` when nothing is asked of it.
    capacity: usize,
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    threads: Arc<Threads>,
    budget: Arc<MemoryBudget>,
    timeout: Duration,
    refusal_delay: Duration,
}

type Task = Box<dyn FnOnce() + Send>;

/// `n` threads taking jobs from one channel; they end when it closes (the
/// last `Transformer` clone dropped).
struct Threads {
    jobs: std::sync::mpsc::Sender<Task>,
}

impl Threads {
    fn start(n: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("transform-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // channel closed
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a transform thread");
            }
        }
        Self { jobs: tx }
    }

    fn send(&self, job: Task) -> bool {
        self.jobs.send(job).is_ok()
    }
}

impl Transformer {
    pub fn new(
        workers: usize,
        queue: usize,
        timeout: Duration,
        refusal_delay: Duration,
        memory_bytes: u64,
    ) -> Self {
        Self {
            capacity: workers + queue,
            admission: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            threads: Arc::new(Threads::start(workers)),
            budget: MemoryBudget::new(memory_bytes),
            timeout,
            refusal_delay,
        }
    }

    /// Bytes of the memory budget reserved by running jobs.
    pub fn memory_in_use(&self) -> u64 {
        self.budget.in_use()
    }

    /// No transform running or waiting.
    pub fn is_idle(&self) -> bool {
        self.admission.available_permits() == self.capacity
    }

    /// The limits of background work (the re-encode), which runs outside
    /// the pool's places: `timeouts` times the pool's timeout, its memory
    /// budget, and it gives way as soon as a request's transform is admitted.
    pub fn background_job(&self, timeouts: u32) -> Job {
        let (admission, capacity) = (self.admission.clone(), self.capacity);
        Job::new(
            Instant::now() + self.timeout * timeouts,
            self.budget.clone(),
        )
        .in_background(super::job::GiveWay::new(move || {
            admission.available_permits() < capacity
        }))
    }

    /// Takes a place in the pool or its queue, or refuses with `Overloaded`
    /// after the refusal delay. Taken *before* the source is read, so at most
    /// `workers + queue` sources are ever in memory for transforms.
    pub async fn admit(&self) -> Result<Admission, TransformError> {
        match self.admission.clone().try_acquire_owned() {
            Ok(slot) => Ok(self.admission(slot)),
            Err(_) => {
                metrics::transform_finished("rejected", None);
                if !self.refusal_delay.is_zero() {
                    tokio::time::sleep(self.refusal_delay).await;
                }
                Err(TransformError::Overloaded)
            }
        }
    }

    fn admission(&self, slot: OwnedSemaphorePermit) -> Admission {
        Admission {
            slot,
            workers: self.workers.clone(),
            threads: self.threads.clone(),
            budget: self.budget.clone(),
            timeout: self.timeout,
        }
    }

    /// Waits up to `patience` for a place instead of being refused at once
    /// (uploads: the client has already sent its bytes).
    pub async fn admit_waiting(&self, patience: Duration) -> Result<Admission, TransformError> {
        match tokio::time::timeout(patience, self.admission.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(self.admission(slot)),
            Ok(Err(_)) => Err(TransformError::Internal("transform pool closed".into())),
            Err(_) => {
                metrics::transform_finished("rejected", None);
                Err(TransformError::Overloaded)
            }
        }
    }

    /// Admits and runs `job` in one step (the pipeline admits first and reads
    /// the source in between; the tests need no gap).
    #[cfg(test)]
    pub async fn run<T, F>(&self, job: F) -> Result<T, TransformError>
    where
        T: Send + 'static,
        F: FnOnce(&Job) -> Result<T, TransformError> + Send + 'static,
    {
        self.admit().await?.run(job).await
    }
}

/// A place in the pool or its queue, held until the job has really ended.
pub struct Admission {
    slot: OwnedSemaphorePermit,
    workers: Arc<Semaphore>,
    threads: Arc<Threads>,
    budget: Arc<MemoryBudget>,
    timeout: Duration,
}

impl Admission {
    /// Waits for a worker and runs `job` on a transform thread, within the
    /// timeout; the job gets its limits (deadline, memory budget) as a [`Job`].
    pub async fn run<T, F>(self, job: F) -> Result<T, TransformError>
    where
        T: Send + 'static,
        F: FnOnce(&Job) -> Result<T, TransformError> + Send + 'static,
    {
        let Admission {
            slot,
            workers,
            threads,
            budget,
            timeout,
        } = self;
        let started = Instant::now();
        let limits = Job::new(started + timeout, budget).sharing(workers.clone());
        let work = async move {
            let worker = workers
                .acquire_owned()
                .await
                .map_err(|_| TransformError::Internal("transform pool closed".into()))?;
            let _in_flight = metrics::InFlight::transforms();
            let span = tracing::Span::current();
            let (done, result) = tokio::sync::oneshot::channel();
            let sent = threads.send(Box::new(move || {
                let _request = span.enter(); // log lines keep the request id
                let outcome = catch_unwind(AssertUnwindSafe(|| job(&limits)));
                // Both places are released when the work is really done, and
                // before the caller hears of it (so it may admit the next job).
                drop((slot, worker));
                let _ = done.send(outcome);
            }));
            if !sent {
                return Err(TransformError::Internal(
                    "transform threads are gone".into(),
                ));
            }
            result
                .await
                .map_err(|_| TransformError::Internal("transform thread ended".into()))
        };
        let result = match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(TransformError::TimedOut),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Err(_panic))) => Err(TransformError::Internal("transform panicked".into())),
            Ok(Ok(Ok(result))) => result,
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(TransformError::TimedOut) => "timeout",
            Err(_) => "error",
        };
        metrics::transform_finished(outcome, Some(started.elapsed()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::job::TRANSFORM_NICE;
    use super::*;

    /// A pool that refuses at once (the delay has its own test).
    fn new_pool(workers: usize, queue: usize, timeout: Duration) -> Transformer {
        Transformer::new(workers, queue, timeout, Duration::ZERO, 1 << 30)
    }

    /// Jobs run below the caller's priority, so hits get the CPU first.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn jobs_run_at_a_lower_priority() {
        let nice = || {
            // SAFETY: reads the calling thread's own niceness.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            }
        };
        let ours = nice();
        let pool = new_pool(1, 0, Duration::from_secs(10));
        let theirs = pool.run(move |_| Ok(nice())).await.unwrap();
        assert_eq!(theirs, (ours + TRANSFORM_NICE).min(19));
    }

    #[tokio::test]
    async fn refuses_beyond_workers_plus_queue() {
        let pool = new_pool(1, 1, Duration::from_secs(10));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut running = Vec::new();
        for _ in 0..2 {
            let (pool, rx) = (pool.clone(), rx.clone());
            running.push(tokio::spawn(async move {
                pool.run(move |_| {
                    let _ = rx.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.run(|_| Ok(())).await, Err(TransformError::Overloaded));
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        for r in running {
            r.await.unwrap().unwrap();
        }
        assert_eq!(pool.run(|_| Ok(7)).await, Ok(7));
    }

    #[tokio::test]
    async fn admission_is_held_until_run_ends() {
        let pool = new_pool(1, 0, Duration::from_secs(10));
        let ticket = pool.admit().await.unwrap();
        assert!(matches!(
            pool.admit().await,
            Err(TransformError::Overloaded)
        ));
        assert_eq!(ticket.run(|_| Ok(3)).await, Ok(3));
        drop(pool.admit().await.unwrap());
        assert!(pool.admit().await.is_ok());
    }

    /// A refusal is held back by the delay (so a client that ignores
    /// Retry-After cannot get refusals as fast as the server can answer),
    /// an admission is not.
    #[tokio::test(start_paused = true)]
    async fn refusals_wait_for_the_delay() {
        let delay = Duration::from_millis(100);
        let pool = Transformer::new(1, 0, Duration::from_secs(10), delay, 1 << 30);
        let start = tokio::time::Instant::now();
        let ticket = pool.admit().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        let early = tokio::time::timeout(delay - Duration::from_millis(1), pool.admit()).await;
        assert!(early.is_err(), "the refusal came before the delay");
        let start = tokio::time::Instant::now();
        assert!(matches!(
            pool.admit().await,
            Err(TransformError::Overloaded)
        ));
        assert_eq!(start.elapsed(), delay);
        drop(ticket);
        assert!(pool.admit().await.is_ok());
    }

    /// A job that checks its deadline really ends at the timeout: the slot
    /// it held is free again without waiting for work nobody will use.
    #[tokio::test]
    async fn jobs_see_their_deadline_and_end() {
        let pool = new_pool(1, 0, Duration::from_millis(50));
        let r: Result<(), _> = pool
            .run(|job| {
                loop {
                    job.check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .await;
        assert_eq!(r, Err(TransformError::TimedOut));
        let mut free = false;
        for _ in 0..100 {
            if pool.run(|_| Ok(())).await.is_ok() {
                free = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(free, "the slot stayed taken after the job's deadline");
    }

    /// A job may borrow a second place only while no other job has it.
    #[tokio::test]
    async fn jobs_borrow_an_idle_place() {
        let spare = |pool: Transformer| async move {
            pool.run(|job| Ok(job.spare_worker().is_some()))
                .await
                .unwrap()
        };
        assert!(spare(new_pool(2, 0, Duration::from_secs(10))).await);
        assert!(!spare(new_pool(1, 0, Duration::from_secs(10))).await);
    }

    #[tokio::test]
    async fn times_out_and_catches_panics() {
        let pool = new_pool(1, 0, Duration::from_millis(50));
        let r = pool.run(|_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        assert_eq!(r.await, Err(TransformError::TimedOut));
        // The slow job still holds the only slot until it really ends.
        assert_eq!(pool.run(|_| Ok(())).await, Err(TransformError::Overloaded));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pool.run(|_| Ok(1)).await, Ok(1));
        let pool = new_pool(1, 0, Duration::from_secs(30));
        let r: Result<(), _> = pool.run(|_| panic!("boom")).await;
        assert!(matches!(r, Err(TransformError::Internal(_))));
    }
}
