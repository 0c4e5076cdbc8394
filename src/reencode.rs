//! Smaller bytes for what is viewed: a derivative made on a miss was
//! encoded fast (someone was waiting). It is queued here and, when the
//! transform pool is idle, made again at the encoder's highest effort
//! (`transform::polish`); the cached copy — memory, disk, shared tier — is
//! replaced only when the new one is smaller at an equal or better score.
//!
//! Never on a request's path and never while a request's transform waits:
//! a candidate starts only when the server is quiet — the pool has nothing
//! running or queued and the process used under a tenth of a CPU for a
//! second (a burst of hits is not quiet either) —
//! runs on its own thread at the `SCHED_IDLE` priority (it gets a CPU only
//! when nothing else wants one), and gives way — stops at its next check —
//! the moment a request's transform is admitted. The queue holds
//! `transform.reencode_queue` candidates (0: off); when full, new ones are
//! dropped (counted). Outcomes are counted in `mediaedge_reencode_total`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::cache::{Derivative, DerivativeKey};
use crate::key::ObjectKey;
use crate::metrics;
use crate::store::OriginalMeta;
use crate::transform::{TransformError, TransformSpec, Transformer, polish};

/// A re-encode may take this many transform timeouts: at the idle
/// priority on a busy machine it gets little CPU, and it gives way anyway.
const BACKGROUND_TIMEOUT_FACTOR: u32 = 10;
/// How often a waiting candidate looks whether the server is quiet.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Quiet means: no transform running or queued, and the whole process
/// used at most this share of one CPU, for [`QUIET_POLLS`] polls in a row.
/// A burst of misses or of hits is not quiet, so the re-encode never takes
/// memory bandwidth or a hyper-thread sibling from requests.
const QUIET_CPU_SHARE: f64 = 0.10;
const QUIET_POLLS: u32 = 4;

/// What the re-encoder needs of the derivative path (the pipeline).
pub trait Derivatives: Send + Sync + 'static {
    /// The original's bytes, if it is still there.
    fn source(
        &self,
        key: &ObjectKey,
        meta: &Arc<OriginalMeta>,
    ) -> impl Future<Output = Option<Bytes>> + Send;
    /// Puts `better` in the place of the cached derivative `key`, if that
    /// still is the one with `fast_etag`; whether it did.
    fn replace(
        &self,
        key: &DerivativeKey,
        fast_etag: &str,
        better: Derivative,
    ) -> impl Future<Output = bool> + Send;
}

/// A derivative a miss made, to be made again with more effort.
pub struct Candidate {
    /// Re-queued once when it gave way to a request.
    pub retried: bool,
    pub key: DerivativeKey,
    pub meta: Arc<OriginalMeta>,
    pub spec: TransformSpec,
    pub fast: Derivative,
}

/// The queue's sending end (cheap to clone); off when the queue size is 0.
#[derive(Clone)]
pub struct Reencoder {
    queue: Option<mpsc::Sender<Candidate>>,
}

impl Reencoder {
    pub fn off() -> Self {
        Self { queue: None }
    }

    /// Starts the worker: candidates taken one at a time, each when the
    /// pool is idle.
    pub fn start(queue: usize, transformer: Transformer, derivatives: impl Derivatives) -> Self {
        if queue == 0 {
            return Self::off();
        }
        let (tx, rx) = mpsc::channel(queue);
        let Some(thread) = IdleThread::start() else {
            return Self::off();
        };
        tokio::spawn(run(rx, tx.downgrade(), transformer, derivatives, thread));
        Self { queue: Some(tx) }
    }

    /// Queues a miss's derivative; dropped (and counted) when the queue is full.
    pub fn offer(&self, candidate: Candidate) {
        if let Some(q) = &self.queue
            && q.try_send(candidate).is_err()
        {
            metrics::reencoded("dropped", 0);
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Candidate>,
    again: mpsc::WeakSender<Candidate>,
    transformer: Transformer,
    derivatives: impl Derivatives,
    thread: IdleThread,
) {
    while let Some(c) = rx.recv().await {
        wait_until_quiet(&transformer).await;
        let Some(src) = derivatives.source(&c.key.object, &c.meta).await else {
            metrics::reencoded("gone", 0);
            continue;
        };
        let job = transformer.background_job(BACKGROUND_TIMEOUT_FACTOR);
        let (media, spec, fast) = (c.meta.media, c.spec.clone(), c.fast.body.clone());
        let outcome = thread
            .run(move || polish::polish(&src, media, &spec, &fast, &job))
            .await;
        match outcome {
            Ok(Some(p)) => {
                let saved = c.fast.body.len().saturating_sub(p.bytes.len()) as u64;
                let better = Derivative::new(
                    Bytes::from(p.bytes),
                    p.media,
                    c.fast.last_modified,
                    c.fast.width,
                    c.fast.height,
                );
                if derivatives.replace(&c.key, &c.fast.etag, better).await {
                    tracing::debug!(
                        key = c.key.object.as_str(),
                        variant = &*c.key.variant,
                        saved,
                        quality = p.quality,
                        "re-encoded smaller"
                    );
                    metrics::reencoded("smaller", saved);
                } else {
                    metrics::reencoded("gone", 0);
                }
            }
            Ok(None) => metrics::reencoded("kept", 0),
            Err(TransformError::Overloaded) => {
                metrics::reencoded("yielded", 0);
                // Once more, at the back of the queue (if there is room).
                if !c.retried
                    && let Some(tx) = again.upgrade()
                {
                    let _ = tx.try_send(Candidate { retried: true, ..c });
                }
            }
            Err(e) => {
                tracing::debug!(key = c.key.object.as_str(), error = %e, "re-encode failed");
                metrics::reencoded("error", 0);
            }
        }
    }
}

/// Returns once the server has been quiet (see [`QUIET_CPU_SHARE`]) for
/// [`QUIET_POLLS`] polls in a row.
async fn wait_until_quiet(transformer: &Transformer) {
    let mut quiet = 0;
    let mut used = process_cpu();
    while quiet < QUIET_POLLS {
        tokio::time::sleep(IDLE_POLL).await;
        let now = process_cpu();
        let share = (now - used).as_secs_f64() / IDLE_POLL.as_secs_f64();
        used = now;
        quiet = if transformer.is_idle() && share <= QUIET_CPU_SHARE {
            quiet + 1
        } else {
            0
        };
    }
}

/// CPU time the whole process has used (user + system).
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

type Task = Box<dyn FnOnce() + Send>;

/// One thread at the idle scheduling class for the re-encodes.
struct IdleThread {
    tasks: std::sync::mpsc::Sender<Task>,
}

impl IdleThread {
    fn start() -> Option<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        let spawned = std::thread::Builder::new()
            .name("reencode".into())
            .spawn(move || {
                idle_priority();
                while let Ok(task) = rx.recv() {
                    task();
                }
            });
        match spawned {
            Ok(_) => Some(Self { tasks: tx }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the re-encode thread; re-encoding is off");
                None
            }
        }
    }

    /// Runs `f` on the thread; a panic is an error, not a lost thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, TransformError> + Send + 'static,
    ) -> Result<T, TransformError> {
        let (done, result) = oneshot::channel();
        let task: Task = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done
                .send(outcome.unwrap_or_else(|_| {
                    Err(TransformError::Internal("re-encode panicked".into()))
                }));
        });
        if self.tasks.send(task).is_err() {
            return Err(TransformError::Internal("re-encode thread is gone".into()));
        }
        result
            .await
            .unwrap_or_else(|_| Err(TransformError::Internal("re-encode thread ended".into())))
    }
}

/// `SCHED_IDLE` for the calling thread (Linux): it runs only when a CPU
/// has nothing else to do. Best effort.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets the calling thread's own scheduling policy (pid 0).
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}
