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
}

impl Job {
    pub fn new(deadline: Instant, budget: Arc<MemoryBudget>) -> Self {
        Self {
            deadline: Some(deadline),
            budget: Some(budget),
            give_way: None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
