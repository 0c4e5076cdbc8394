//! A bounded pool for CPU-heavy transforms: `workers` run at once (one per
//! core by default), at most `queue` more wait, anything beyond is refused at
//! once with `Overloaded` (503) — never an unbounded queue of decoded images.
//! Each job has a deadline; a job past it answers `TimedOut` while its thread
//! finishes and keeps its worker slot, so CPU use stays bounded too.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::TransformError;
use crate::metrics;

#[derive(Clone)]
pub struct Transformer {
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    timeout: Duration,
}

impl Transformer {
    pub fn new(workers: usize, queue: usize, timeout: Duration) -> Self {
        Self {
            admission: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            timeout,
        }
    }

    /// Takes a place in the pool or its queue, or refuses at once with
    /// `Overloaded`. Taken *before* the source is read, so at most
    /// `workers + queue` sources are ever in memory for transforms.
    pub fn admit(&self) -> Result<Admission, TransformError> {
        match self.admission.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                slot,
                workers: self.workers.clone(),
                timeout: self.timeout,
            }),
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
        F: FnOnce() -> Result<T, TransformError> + Send + 'static,
    {
        self.admit()?.run(job).await
    }
}

/// A place in the pool or its queue, held until the job has really ended.
pub struct Admission {
    slot: OwnedSemaphorePermit,
    workers: Arc<Semaphore>,
    timeout: Duration,
}

impl Admission {
    /// Waits for a worker and runs `job` on the blocking pool, within the timeout.
    pub async fn run<T, F>(self, job: F) -> Result<T, TransformError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, TransformError> + Send + 'static,
    {
        let Admission {
            slot,
            workers,
            timeout,
        } = self;
        let started = Instant::now();
        let work = async move {
            let worker = workers
                .acquire_owned()
                .await
                .map_err(|_| TransformError::Internal("transform pool closed".into()))?;
            let _in_flight = metrics::InFlight::transforms();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _request = span.enter(); // log lines keep the request id
                // Both places are released when the work is really done.
                let _places = (slot, worker);
                catch_unwind(AssertUnwindSafe(job))
            })
            .await
            .map_err(|e| TransformError::Internal(format!("transform task failed: {e}")))
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
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_workers_plus_queue() {
        let pool = Transformer::new(1, 1, Duration::from_secs(10));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut running = Vec::new();
        for _ in 0..2 {
            let (pool, rx) = (pool.clone(), rx.clone());
            running.push(tokio::spawn(async move {
                pool.run(move || {
                    let _ = rx.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.run(|| Ok(())).await, Err(TransformError::Overloaded));
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        for r in running {
            r.await.unwrap().unwrap();
        }
        assert_eq!(pool.run(|| Ok(7)).await, Ok(7));
    }

    #[tokio::test]
    async fn admission_is_held_until_run_ends() {
        let pool = Transformer::new(1, 0, Duration::from_secs(10));
        let ticket = pool.admit().unwrap();
        assert!(matches!(pool.admit(), Err(TransformError::Overloaded)));
        assert_eq!(ticket.run(|| Ok(3)).await, Ok(3));
        drop(pool.admit().unwrap());
        assert!(pool.admit().is_ok());
    }

    #[tokio::test]
    async fn times_out_and_catches_panics() {
        let pool = Transformer::new(1, 0, Duration::from_millis(50));
        let r = pool.run(|| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        });
        assert_eq!(r.await, Err(TransformError::TimedOut));
        // The slow job still holds the only slot until it really ends.
        assert_eq!(pool.run(|| Ok(())).await, Err(TransformError::Overloaded));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pool.run(|| Ok(1)).await, Ok(1));
        let pool = Transformer::new(1, 0, Duration::from_secs(30));
        let r: Result<(), _> = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(TransformError::Internal(_))));
    }
}
