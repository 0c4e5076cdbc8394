//! What one transform may spend: a deadline that its decoders check, so a
//! job past its timeout really stops using the CPU instead of running on
//! unobserved, and a share of the process-wide memory budget, reserved from
//! the header's numbers *before* any pixel buffer exists.
//!
//! The budget is in bytes across every running job (`transform.memory_mb`),
//! not per job: forty files that each stay under the pixel limit but expand
//! to hundreds of megabytes cannot all be decoded at once. A job larger than
//! the whole budget is refused (422); one that fits waits for earlier jobs
//! to give memory back, until its deadline (then 503).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::TransformError;

/// Memory shared by all running transforms.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

impl MemoryBudget {
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(Self {
            total,
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// Bytes reserved by running jobs now.
    pub fn in_use(&self) -> u64 {
        self.used.lock().map_or(0, |u| *u)
    }

    fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        deadline: Option<Instant>,
    ) -> Result<Reservation, TransformError> {
        if bytes > self.total {
            return Err(TransformError::TooManyPixels(format!(
                "decoding it needs about {} MiB, more than transform.memory_mb ({} MiB)",
                bytes.div_ceil(1 << 20),
                self.total >> 20
            )));
        }
        fn poisoned<T>(_: T) -> TransformError {
            TransformError::Internal("memory budget lock poisoned".into())
        }
        let mut used = self.used.lock().map_err(poisoned)?;
        while *used + bytes > self.total {
            used = match deadline {
                None => self.freed.wait(used).map_err(poisoned)?,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(TransformError::TimedOut);
                    }
                    self.freed.wait_timeout(used, left).map_err(poisoned)?.0
                }
            };
        }
        *used += bytes;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Memory held by one job; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut used) = self.budget.used.lock() {
            *used = used.saturating_sub(self.bytes);
        }
        self.budget.freed.notify_all();
    }
}

/// Says whether other work is waiting for the pool: background work then
/// gives way.
#[derive(Clone)]
pub struct GiveWay(Arc<dyn Fn() -> bool + Send + Sync>);

impl GiveWay {
    pub fn new(waiting: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(waiting))
    }
}

impl std::fmt::Debug for GiveWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GiveWay")
    }
}

/// The limits of one running transform.
#[derive(Debug, Clone, Default)]
pub struct Job {
    deadline: Option<Instant>,
    budget: Option<Arc<MemoryBudget>>,
    /// Background work (the re-encode) stops when this says others wait.
    give_way: Option<GiveWay>,
    /// The pool's worker places, one of which the job may borrow for a
    /// helper thread while it is free ([`Job::spare_worker`]).
    workers: Option<Arc<Semaphore>>,
}

impl Job {
    pub fn new(deadline: Instant, budget: Arc<MemoryBudget>) -> Self {
        Self {
            deadline: Some(deadline),
            budget: Some(budget),
            give_way: None,
            workers: None,
        }
    }

    /// The same limits, for a job that may borrow an idle worker's place
    /// from `workers` (the pool's) for a second thread.
    pub fn sharing(self, workers: Arc<Semaphore>) -> Self {
        Self {
            workers: Some(workers),
            ..self
        }
    }

    /// A second worker's place, if the pool has one free right now (no other
    /// job running or waiting for it), held until the returned [`Helper`] is
    /// dropped: work that splits into two stages (decoding frames while
    /// encoding earlier ones) then ends sooner on an idle server, and on a
    /// busy one runs on its own thread alone — the pool never runs more
    /// threads than it has places.
    pub fn spare_worker(&self) -> Option<Helper> {
        let permit = self.workers.as_ref()?.clone().try_acquire_owned().ok()?;
        Some(Helper { _place: permit })
    }

    /// The same limits, for work that stops (`Overloaded`) at its next
    /// check once `give_way` says a request's transform is waiting.
    pub fn in_background(self, give_way: GiveWay) -> Self {
        Self {
            give_way: Some(give_way),
            ..self
        }
    }

    /// No deadline and no budget (benchmarks, fuzzing, tests).
    pub fn unbounded() -> Self {
        Self::default()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// `TimedOut` once the deadline has passed. Decoders call it between
    /// rows or passes.
    pub fn check(&self) -> Result<(), TransformError> {
        if let Some(g) = &self.give_way
            && (g.0)()
        {
            return Err(TransformError::Overloaded);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(TransformError::TimedOut),
            _ => Ok(()),
        }
    }

    /// The whole memory budget (`transform.memory_mb`), if the job has one.
    pub fn budget_total(&self) -> Option<u64> {
        self.budget.as_ref().map(|b| b.total)
    }

    /// Takes `bytes` of the budget for the rest of the job.
    pub fn reserve(&self, bytes: u64) -> Result<Option<Reservation>, TransformError> {
        match &self.budget {
            Some(b) => b.reserve(bytes, self.deadline).map(Some),
            None => Ok(None),
        }
    }
}

/// A borrowed worker place (see [`Job::spare_worker`]).
#[derive(Debug)]
pub struct Helper {
    _place: OwnedSemaphorePermit,
}

impl Helper {
    /// Runs `beside` on a helper thread (at the transform threads' lower
    /// priority) while `here` runs on this one; both results once both
    /// have ended. A panic in either surfaces here, as the pool expects.
    pub fn run<A, B>(
        self,
        beside: impl FnOnce() -> A + Send,
        here: impl FnOnce() -> B,
    ) -> Result<(A, B), TransformError>
    where
        A: Send,
    {
        std::thread::scope(|s| {
            let helper = std::thread::Builder::new()
                .name("transform-helper".into())
                .spawn_scoped(s, || {
                    lower_priority();
                    beside()
                })
                .map_err(|e| TransformError::Internal(format!("no helper thread: {e}")))?;
            let b = here();
            match helper.join() {
                Ok(a) => Ok((a, b)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// Niceness of the transform threads: below the runtime's, which serve hits.
pub(super) const TRANSFORM_NICE: i32 = 10;

/// Raises this thread's niceness (Linux: per thread). Best effort: a
/// refusal leaves it at the process's priority.
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, TRANSFORM_NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_spare_worker_is_lent_only_while_free_and_given_back() {
        let workers = Arc::new(Semaphore::new(2));
        let job = Job::unbounded().sharing(workers.clone());
        let _own = workers.clone().try_acquire_owned().unwrap();
        let helper = job.spare_worker().expect("one place is free");
        assert!(job.spare_worker().is_none(), "no third place");
        let (a, b) = helper
            .run(|| std::thread::current().name().map(String::from), || 2)
            .unwrap();
        assert_eq!((a.as_deref(), b), (Some("transform-helper"), 2));
        assert_eq!(workers.available_permits(), 1, "given back once both ended");
        // Jobs outside the pool (benchmarks, background work) never borrow.
        assert!(Job::unbounded().spare_worker().is_none());
    }

    #[test]
    fn reservations_wait_for_memory_and_give_it_back() {
        let budget = MemoryBudget::new(100);
        let job = Job::new(Instant::now() + Duration::from_secs(30), budget.clone());
        let a = job.reserve(60).unwrap();
        assert_eq!(budget.in_use(), 60);
        // More than the whole budget: refused at once.
        assert!(matches!(
            job.reserve(101),
            Err(TransformError::TooManyPixels(_))
        ));
        // Fits the budget but not next to `a`: waits until `a` is dropped.
        let waiter = {
            let job = job.clone();
            std::thread::spawn(move || job.reserve(50).map(|r| r.is_some()))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(budget.in_use(), 60);
        drop(a);
        assert_eq!(waiter.join().unwrap(), Ok(true));
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn waiting_ends_at_the_deadline() {
        let budget = MemoryBudget::new(100);
        let held = Job::new(Instant::now() + Duration::from_secs(30), budget.clone())
            .reserve(90)
            .unwrap();
        let late = Job::new(Instant::now() + Duration::from_millis(20), budget.clone());
        assert_eq!(late.reserve(20).unwrap_err(), TransformError::TimedOut);
        assert_eq!(late.check(), Err(TransformError::TimedOut));
        drop(held);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(Job::unbounded().check(), Ok(()));
        assert!(Job::unbounded().reserve(u64::MAX).unwrap().is_none());
    }
}
