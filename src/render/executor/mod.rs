//! Where the pure pipeline runs (the **executor** seam of stage 2).
//!
//! [`InProcess`] runs [`crate::render::render`] on tokio's blocking pool, at most
//! `concurrency` at once, with a wall-clock limit and panics caught. A job that overruns its
//! limit is answered `job.timeout` at once; its thread keeps its concurrency slot until it
//! really ends, so the limit on parallel work holds.

mod answer;
mod fdpass;
pub mod isolated;
pub mod messages;
mod pool;
pub mod renderer;
mod sandbox;
pub mod seccomp;
pub mod selftest;

pub use answer::accept;
pub use isolated::Isolated;

use crate::job::Job;
use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::render::Rendered;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The pipeline as a function, so tests can put a failing one behind the seam.
pub type RenderFn = fn(&Job, &Limits) -> Result<Rendered, JobError>;

/// A boxed future returned by executors.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that renders jobs.
pub trait Executor: Send + Sync + 'static {
    /// Renders `job`. The job (and every input it holds) is wiped before the result returns.
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<Rendered, JobError>>;

    /// Pre-started renderers: how many are ready now, and how many the pool keeps ready
    /// (`None` for an executor without a pool).
    fn pool(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Renders in this process, on the blocking thread pool.
pub struct InProcess {
    limits: Limits,
    slots: Arc<Semaphore>,
    render: RenderFn,
}

impl InProcess {
    /// An executor running at most `concurrency` renders at once.
    pub fn new(limits: Limits, concurrency: usize) -> Self {
        Self::with_render(limits, concurrency, crate::render::render)
    }

    /// The same, with another render function (tests).
    pub fn with_render(limits: Limits, concurrency: usize, render: RenderFn) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            render,
        }
    }
}

impl Executor for InProcess {
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<Rendered, JobError>> {
        Box::pin(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let limits = self.limits.clone();
            let render = self.render;
            let task = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let result = catch_unwind(AssertUnwindSafe(|| render(&job, &limits)));
                drop(job);
                // Decoders and resizers leave rows of pixels in dead frames of this thread.
                crate::wipe::scrub_stack();
                result
            });
            match tokio::time::timeout(self.limits.job_timeout(), task).await {
                Ok(Ok(Ok(result))) => result,
                Ok(Ok(Err(_))) | Ok(Err(_)) => Err(JobError::new(
                    ErrorCode::Internal,
                    "the renderer crashed on this job",
                )),
                Err(_elapsed) => Err(JobError::new(
                    ErrorCode::JobTimeout,
                    format!(
                        "rendering took longer than {} s",
                        self.limits.max_job_seconds
                    ),
                )),
            }
        })
    }
}
