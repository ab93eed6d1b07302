//! The **isolated** executor: every job is rendered by a single-use child process (the worker
//! binary's hidden `__render-child` subcommand) that gets the job over a pipe, writes the
//! result back and exits.
//!
//! Every byte of pixels dies with that process. A decoder crash, abort or runaway allocation
//! kills one child, not the worker. The kernel enforces the job's memory (RLIMIT_AS, sized from
//! the inputs' declared dimensions) and CPU time; the worker enforces wall-clock time and kills
//! a child that overruns it. No child ever serves a second job.
//!
//! Start-up (fork, exec, loading, installing seccomp) is taken off the job's path by a pool of
//! pre-started renderers: each waits, already confined, for its one job on stdin (one end of a
//! Unix socket pair, so spill files can follow the job as descriptors). When a job takes one, a
//! replacement is started in the background. A pre-started renderer is exec'd with the largest
//! memory limit; the worker lowers it to the job's own limit (`prlimit`) before sending the job.
//!
//! The renderer's answer is hostile input: it is read length-first within bounds and checked
//! against the job ([`super::accept`]) before anything of it is used.

use super::answer::accept;
use super::messages::{encode_job, EncodedJob, READY};
use super::pool::{start_spawner, Renderer, Spares};
use super::sandbox::Sandbox;
use super::{BoxFuture, Executor};
use crate::job::Job;
use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::render::Rendered;
use crate::wipe::{Ledger, SecretBuf};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Memory every renderer gets besides its pixels: code, stacks, codec tables.
const BASE_MEMORY: u64 = 256 << 20;

/// Renders each job in its own single-use child process.
pub struct Isolated {
    limits: Limits,
    max_memory: u64,
    slots: Arc<Semaphore>,
    spares: Arc<Spares>,
}

/// Asks for a 1 MiB pipe buffer (the default limit for unprivileged processes); a refusal
/// only costs speed.
fn widen_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a pipe descriptor we own; F_SETPIPE_SZ takes an int.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
}

/// Lowers the address-space limit of the running renderer `pid` to `bytes`.
fn set_memory_limit(pid: u32, bytes: u64) -> std::io::Result<()> {
    let rl = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: prlimit on our own child with a valid pointer; the old value is not requested.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_AS,
            &rl,
            std::ptr::null_mut(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Isolated {
    /// Runs renderers from `binary` (the worker binary itself), at most `concurrency` at once,
    /// each limited to at most `max_memory` bytes of address space, with `concurrency`
    /// renderers pre-started.
    pub fn new(binary: PathBuf, limits: Limits, concurrency: usize, max_memory: u64) -> Self {
        Self::with_spares(binary, limits, concurrency, max_memory, concurrency)
    }

    /// The same, keeping `spares` renderers pre-started (0: start each one on demand).
    /// Must be called within a Tokio runtime when `spares > 0`.
    pub fn with_spares(
        binary: PathBuf,
        limits: Limits,
        concurrency: usize,
        max_memory: u64,
        spares: usize,
    ) -> Self {
        let (wake, woken) = std::sync::mpsc::channel();
        let spares = Arc::new(Spares {
            binary,
            sandbox: Sandbox {
                memory_bytes: max_memory,
                cpu_seconds: limits.max_job_seconds + 1,
            },
            target: spares,
            ready: std::sync::Mutex::new(Vec::new()),
            wake: (spares > 0).then(|| std::sync::Mutex::new(wake)),
        });
        if spares.target > 0 {
            start_spawner(&spares, woken);
            spares.refill();
        }
        Self {
            limits,
            max_memory,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            spares,
        }
    }

    /// The largest first frame a renderer may announce: the reply limit and some room.
    fn max_answer_bytes(&self) -> u64 {
        self.limits.max_reply_bytes as u64 + (1 << 20)
    }

    /// The memory limit for `job`: a base, plus six times the largest decoded form of its
    /// inputs (decoder buffers, conversions, resize intermediates), three copies of every output
    /// at the size it will really have (not the box it asked for), and the peak of drawing its
    /// recipe, capped by the configured maximum.
    pub fn memory_for(&self, job: &Job) -> u64 {
        let pixels: u64 = job
            .inputs
            .iter()
            .map(|i| {
                let (w, h) = i.header.extent();
                u64::from(w) * u64::from(h)
            })
            .sum();
        let outputs: u64 = crate::render::output_pixels(job);
        let shapes = job.shapes();
        let shape = |name: &str| shapes.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
        let canvas = job
            .recipe
            .as_ref()
            .map_or(0, |r| crate::recipe::estimate(r, &shape).peak_bytes);
        (BASE_MEMORY + pixels * 4 * 6 + outputs * 4 * 3 + canvas).min(self.max_memory)
    }
}

impl Executor for Isolated {
    fn pool(&self) -> Option<(usize, usize)> {
        Some((self.spares.ready_count(), self.spares.target))
    }

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
        let memory = self.memory_for(&job);
        // Only a HEIC or AVIF job's renderer loads libheif (and is started for that job).
        let heif = job.inputs.iter().any(|i| {
            matches!(
                i.header.format,
                crate::job::InputFormat::Heic | crate::job::InputFormat::Avif
            )
        });
        let (encoded, mut job) = {
            // Encoding copies every input: off the async runtime.
            let limits = self.limits.clone();
            tokio::task::spawn_blocking(move || {
                let encoded = encode_job(&job, &limits);
                // The renderer gets its own copy of in-memory inputs: wipe ours now. Spill files
                // stay (the renderer reads them) and are wiped when the job is dropped, after it
                // exits.
                job.inputs
                    .retain(|i| !matches!(i.data, crate::job::InputData::Memory(_)));
                crate::wipe::scrub_stack();
                (encoded, job)
            })
            .await
            .map_err(|_| internal("encoding the job for the renderer failed"))?
        };
        let result = self.converse(encoded, &mut job, memory, heif).await;
        // Dropping the job wipes its spill files (overwrite, fsync, read back, unlink): off the
        // runtime, and before the reply's receipt is taken, whichever way the renderer ended.
        crate::wipe::off_runtime(job).await;
        result
    }

    /// Hands the encoded job to a renderer and reads its answer, checked against `job`.
    async fn converse(
        &self,
        encoded: Result<EncodedJob, JobError>,
        job: &mut Job,
        memory: u64,
        heif: bool,
    ) -> Result<Rendered, JobError> {
        let EncodedJob {
            message,
            descriptors,
        } = encoded?;
        let spare = if heif { None } else { self.spares.take() };
        let Renderer { mut child, socket } = match spare {
            Some(renderer) => renderer,
            None => self
                .spares
                .spawn(false, heif)
                .map_err(|e| internal(format!("cannot start a renderer: {e}")))?,
        };
        self.spares.refill();
        let socket = tokio::net::UnixStream::from_std(socket)
            .map_err(|e| internal(format!("renderer socket: {e}")))?;
        let (mut stdout, stderr) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let deadline = tokio::time::Instant::now() + self.limits.job_timeout();
        // Only once the renderer has applied its own limits may they be lowered for the job
        // (it never raises a limit, so the lower one wins either way).
        let mut ready = [0u8; 1];
        let started = tokio::time::timeout_at(deadline, stdout.read_exact(&mut ready)).await;
        if !matches!(started, Ok(Ok(_))) || ready[0] != READY {
            let _ = child.kill().await;
            return Err(internal("the renderer did not start"));
        }
        let pid = child
            .id()
            .ok_or_else(|| internal("the renderer exited before its job"))?;
        set_memory_limit(pid, memory)
            .map_err(|e| internal(format!("cannot limit the renderer's memory: {e}")))?;
        // A big pipe: the answer crosses in a few writes instead of 64 KiB ping-pong.
        widen_pipe(stdout.as_raw_fd());
        let writer = send_job(socket, message, descriptors);
        let ledger = job.ledger.clone();
        let max = self.max_answer_bytes();
        let reader = async {
            let first = read_frame(&mut stdout, &ledger, "renderer.reply", max).await?;
            let report = read_frame(&mut stdout, &ledger, "renderer.report", 1 << 20).await?;
            Ok((first, report))
        };
        let work = async { tokio::join!(writer, reader).1 };
        let outcome = tokio::time::timeout_at(deadline, work).await;
        let Ok(answer) = outcome else {
            let _ = child.kill().await;
            return Err(JobError::new(
                ErrorCode::JobTimeout,
                format!(
                    "rendering took longer than {} s (max_job_seconds)",
                    self.limits.max_job_seconds
                ),
            ));
        };
        let answer = match answer {
            Ok(frames) => Some(frames),
            Err(Frame::Oversized) => {
                let _ = child.kill().await;
                return Err(internal(
                    "the renderer announced a larger answer than allowed",
                ));
            }
            Err(Frame::Ended) => None,
        };
        if let Some((first, report)) = answer {
            // A whole answer: the renderer is exiting; reap it off the job's path.
            drop(stderr);
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            let (plans, limits) = (std::mem::take(&mut job.outputs), self.limits.clone());
            // Checking copies the outputs into the job's buffers: off the runtime too.
            return tokio::task::spawn_blocking(move || {
                let accepted = accept(&first, &report, &plans, &limits, &ledger);
                crate::wipe::scrub_stack();
                accepted
            })
            .await
            .unwrap_or_else(|_| Err(internal("checking the renderer's answer failed")));
        }
        // No whole answer: the renderer died. Its exit status and last words say why.
        let ended = async {
            let diag = read_tail(stderr).await;
            (diag, child.wait().await)
        };
        match tokio::time::timeout_at(deadline, ended).await {
            Ok((diag, Ok(status))) => Err(classify(status, &diag, &self.limits)),
            Ok((_, Err(e))) => Err(internal(format!("renderer: {e}"))),
            Err(_) => {
                let _ = child.kill().await;
                Err(internal("the renderer closed its output but did not exit"))
            }
        }
    }
}

/// Sends the job on the renderer's socket: its length, the message, the number of spill
/// descriptors, then the descriptors themselves. Failures are not reported here: a renderer
/// that did not get its job does not answer, and that is reported.
async fn send_job(
    mut socket: tokio::net::UnixStream,
    message: SecretBuf,
    descriptors: Vec<std::fs::File>,
) {
    let length = (message.len() as u64).to_le_bytes();
    let count = [descriptors.len() as u8];
    let sent = async {
        socket.write_all(&length).await?;
        socket.write_all(message.as_slice()).await?;
        socket.write_all(&count).await?;
        if !descriptors.is_empty() {
            let fds: Vec<_> = descriptors.iter().map(AsRawFd::as_raw_fd).collect();
            socket
                .async_io(tokio::io::Interest::WRITABLE, || {
                    super::fdpass::send(socket.as_raw_fd(), &fds)
                })
                .await?;
        }
        std::io::Result::Ok(())
    };
    let _ = sent.await;
    crate::wipe::off_runtime(message).await;
    drop(descriptors);
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
        Some(sig) => JobError::crashed(format!("the renderer died (signal {sig})")),
        None => JobError::crashed(format!(
            "the renderer failed (exit code {})",
            status.code().unwrap_or(-1)
        )),
    }
}

/// Why a frame of the renderer's answer was not read.
enum Frame {
    /// The stream ended first (the renderer died).
    Ended,
    /// It announced more bytes than a frame may have.
    Oversized,
}

/// Reads one length-framed frame of the renderer's answer, at most `max` bytes.
async fn read_frame(
    from: &mut (impl AsyncRead + Unpin),
    ledger: &Ledger,
    artifact: &str,
    max: u64,
) -> Result<SecretBuf, Frame> {
    let mut length = [0u8; 8];
    from.read_exact(&mut length)
        .await
        .map_err(|_| Frame::Ended)?;
    let length = u64::from_le_bytes(length);
    if length > max {
        return Err(Frame::Oversized);
    }
    let length = usize::try_from(length).map_err(|_| Frame::Oversized)?;
    let mut buf = SecretBuf::new(vec![0; length], artifact, ledger);
    from.read_exact(buf.as_mut_slice())
        .await
        .map_err(|_| Frame::Ended)?;
    Ok(buf)
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
