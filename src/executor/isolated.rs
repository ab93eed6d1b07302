//! The **isolated** executor: every job is rendered by a single-use child process (the worker
//! binary's hidden `__render-child` subcommand) that gets the job over a pipe, writes the
//! result back and exits.
//!
//! Every byte of pixels dies with that process. A decoder crash, abort or runaway allocation
//! kills one child, not the worker. The kernel enforces the job's memory (RLIMIT_AS, sized from
//! the inputs' declared dimensions) and CPU time; the worker enforces wall-clock time and kills
//! a child that overruns it. No child ever serves a second job.

use super::child::{decode_reply, encode_job, CHILD_COMMAND};
use super::sandbox::Sandbox;
use super::{BoxFuture, Executor};
use crate::config::Limits;
use crate::intake::Job;
use crate::pipeline::Rendered;
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{Ledger, SecretBuf};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Memory every renderer gets besides its pixels: code, stacks, codec tables.
const BASE_MEMORY: u64 = 256 << 20;

/// Renders each job in its own single-use child process.
pub struct Isolated {
    binary: PathBuf,
    limits: Limits,
    max_memory: u64,
    slots: Arc<Semaphore>,
}

impl Isolated {
    /// Runs renderers from `binary` (the worker binary itself), at most `concurrency` at once,
    /// each limited to at most `max_memory` bytes of address space.
    pub fn new(binary: PathBuf, limits: Limits, concurrency: usize, max_memory: u64) -> Self {
        Self {
            binary,
            limits,
            max_memory,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// The memory limit for `job`: a base, plus six times the largest decoded form of its
    /// inputs (decoder buffers, conversions, resize intermediates), capped by the configured
    /// maximum.
    pub fn memory_for(&self, job: &Job) -> u64 {
        let pixels: u64 = job
            .inputs
            .iter()
            .map(|i| u64::from(i.header.width) * u64::from(i.header.height))
            .sum();
        let outputs: u64 = job
            .outputs
            .iter()
            .map(|o| u64::from(o.width.unwrap_or(0)) * u64::from(o.height.unwrap_or(0)))
            .sum();
        (BASE_MEMORY + pixels * 4 * 6 + outputs * 4 * 3).min(self.max_memory)
    }
}

impl Executor for Isolated {
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<Rendered, JobError>> {
        Box::pin(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _slot = self.slots.acquire().await.expect("semaphore open");
            self.run(job).await
        })
    }
}

fn internal(message: impl Into<String>) -> JobError {
    JobError::new(ErrorCode::Internal, message)
}

impl Isolated {
    async fn run(&self, mut job: Job) -> Result<Rendered, JobError> {
        let request = encode_job(&job, &self.limits);
        let sandbox = Sandbox {
            memory_bytes: self.memory_for(&job),
            cpu_seconds: self.limits.max_job_seconds + 1,
        };
        // The renderer gets its own copy of in-memory inputs: wipe ours now. Spill files stay
        // (the renderer reads them) and are wiped when the job is dropped, after it exits.
        job.inputs
            .retain(|i| !matches!(i.data, crate::intake::InputData::Memory(_)));
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg(CHILD_COMMAND)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: Sandbox::apply only calls setrlimit and prctl, which are async-signal-safe.
        unsafe { command.pre_exec(move || sandbox.apply()) };
        let mut child = command
            .spawn()
            .map_err(|e| internal(format!("cannot start a renderer: {e}")))?;
        let (mut stdin, stdout, stderr) = (
            child.stdin.take().expect("piped"),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let ledger = job.ledger.clone();
        let writer = async move {
            let _ = stdin.write_all(request.as_slice()).await;
            drop(stdin); // EOF: the child starts rendering
            request.wipe();
        };
        let reader = read_all(stdout, ledger.clone());
        let diagnostics = read_tail(stderr);
        let work = async {
            let ((), reply, diag) = tokio::join!(writer, reader, diagnostics);
            let status = child.wait().await;
            (reply, diag, status)
        };
        let limit = self.limits.job_timeout();
        let outcome = tokio::time::timeout(limit, work).await;
        let Ok((reply, diag, status)) = outcome else {
            let _ = child.kill().await;
            return Err(JobError::new(
                ErrorCode::JobTimeout,
                format!(
                    "rendering took longer than {} s",
                    self.limits.max_job_seconds
                ),
            ));
        };
        let status = status.map_err(|e| internal(format!("renderer: {e}")))?;
        if status.success() {
            return decode_reply(&reply, &ledger);
        }
        Err(classify(status, &diag, &self.limits))
    }
}

/// Why a renderer died, from its exit status and the runtime's last words on stderr (which
/// never carry job data: the renderer logs nothing else).
fn classify(status: ExitStatus, stderr: &str, limits: &Limits) -> JobError {
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return JobError::new(
            ErrorCode::LimitsMemory,
            "rendering needed more memory than this job's limit",
        );
    }
    match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => JobError::new(
            ErrorCode::JobTimeout,
            format!(
                "rendering used more than {} s of CPU",
                limits.max_job_seconds
            ),
        ),
        Some(sig) => internal(format!("the renderer died (signal {sig})")),
        None => internal(format!(
            "the renderer failed (exit code {})",
            status.code().unwrap_or(-1)
        )),
    }
}

async fn read_all(mut from: impl AsyncRead + Unpin, ledger: Ledger) -> SecretBuf {
    let mut buf = SecretBuf::with_capacity(64 * 1024, "renderer.reply", &ledger);
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let _ = buf.write_all(&chunk[..n]);
    }
    crate::wipe::wipe_bytes(&mut chunk);
    buf
}

/// The last few kilobytes of the renderer's stderr.
async fn read_tail(mut from: impl AsyncRead + Unpin) -> String {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = from.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 16 * 1024 {
            tail.drain(..tail.len() - 8 * 1024);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}
