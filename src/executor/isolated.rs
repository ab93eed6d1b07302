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
//! pre-started renderers: each waits, already confined, for its one job on stdin. When a job
//! takes one, a replacement is started in the background. A pre-started renderer is exec'd
//! with the largest memory limit; the worker lowers it to the job's own limit (`prlimit`)
//! before sending the job.

use super::child::{child_args, decode_reply, encode_job, READY};
use super::sandbox::Sandbox;
use super::{BoxFuture, Executor};
use crate::config::Limits;
use crate::intake::Job;
use crate::pipeline::Rendered;
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{Ledger, SecretBuf};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
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

/// Pre-started renderers waiting for their job.
struct Spares {
    binary: PathBuf,
    sandbox: Sandbox,
    /// How many to keep ready (0: start each renderer when its job comes).
    target: usize,
    ready: std::sync::Mutex<Vec<Child>>,
    /// Wakes the spawner thread (absent when `target` is 0).
    wake: Option<std::sync::Mutex<std::sync::mpsc::Sender<()>>>,
}

impl Spares {
    /// Starts a renderer; a `warm` one exercises the pipeline while it waits for its job.
    fn spawn(&self, warm: bool) -> std::io::Result<Child> {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(child_args(std::process::id(), self.sandbox, warm))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // No pre_exec hook: the renderer limits itself before reading its job, and the standard
        // library can start it with posix_spawn instead of fork.
        command.spawn()
    }

    /// A ready renderer that is still alive, if there is one.
    fn take(&self) -> Option<Child> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut child) = ready.pop() {
            if matches!(child.try_wait(), Ok(None)) {
                return Some(child);
            }
        }
        None
    }

    /// Starts renderers in the background until `target` are ready.
    fn refill(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.lock().unwrap_or_else(|e| e.into_inner()).send(());
        }
    }

    fn fill(&self) {
        loop {
            if self.ready.lock().map_or(0, |r| r.len()) >= self.target {
                return;
            }
            match self.spawn(true) {
                Ok(child) => self
                    .ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(child),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pre-start a renderer");
                    return;
                }
            }
        }
    }
}

/// Starts the thread that pre-starts renderers. It must be a thread that lives as long as the
/// pool: a renderer's parent-death signal fires when the *thread* that started it ends.
fn start_spawner(spares: &Arc<Spares>, wake: std::sync::mpsc::Receiver<()>) {
    let weak = Arc::downgrade(spares);
    let runtime = tokio::runtime::Handle::current();
    let started = std::thread::Builder::new()
        .name("renderer-spawner".into())
        .spawn(move || {
            let _inside = runtime.enter();
            while wake.recv().is_ok() {
                match weak.upgrade() {
                    Some(spares) => spares.fill(),
                    None => return,
                }
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the renderer spawner; renderers start on demand");
    }
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

    /// The largest reply a renderer may announce: every output at its largest, as RGBA PNG.
    fn max_reply_bytes(&self) -> u64 {
        let l = &self.limits;
        (l.max_outputs as u64).saturating_mul(l.max_output_pixels.saturating_mul(4)) + (1 << 20)
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
        let canvas = job.recipe.as_ref().map_or(0, |r| r.working_bytes());
        (BASE_MEMORY + pixels * 4 * 6 + outputs * 4 * 3 + canvas).min(self.max_memory)
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
        let memory = self.memory_for(&job);
        // The renderer gets its own copy of in-memory inputs: wipe ours now. Spill files stay
        // (the renderer reads them) and are wiped when the job is dropped, after it exits.
        job.inputs
            .retain(|i| !matches!(i.data, crate::intake::InputData::Memory(_)));
        let mut child = match self.spares.take() {
            Some(child) => child,
            None => self
                .spares
                .spawn(false)
                .map_err(|e| internal(format!("cannot start a renderer: {e}")))?,
        };
        self.spares.refill();
        let (mut stdin, mut stdout, stderr) = (
            child.stdin.take().expect("piped"),
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
        // Big pipes: the job and the reply cross in a few writes instead of 64 KiB ping-pong.
        for fd in [stdin.as_raw_fd(), stdout.as_raw_fd()] {
            widen_pipe(fd);
        }
        let ledger = job.ledger.clone();
        let writer = async move {
            let length = (request.len() as u64).to_le_bytes();
            let _ = stdin.write_all(&length).await;
            let _ = stdin.write_all(request.as_slice()).await;
            drop(stdin); // the child reads exactly `length` bytes, then renders
            request.wipe();
        };
        let reader = read_reply(stdout, ledger.clone(), self.max_reply_bytes());
        let work = async { tokio::join!(writer, reader).1 };
        let outcome = tokio::time::timeout_at(deadline, work).await;
        let Ok(reply) = outcome else {
            let _ = child.kill().await;
            return Err(JobError::new(
                ErrorCode::JobTimeout,
                format!(
                    "rendering took longer than {} s",
                    self.limits.max_job_seconds
                ),
            ));
        };
        if let Some(reply) = reply {
            // A whole reply: the renderer is exiting; reap it off the job's path.
            drop(stderr);
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return decode_reply(&reply, &ledger);
        }
        // No whole reply: the renderer died. Its exit status and last words say why.
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

/// Reads the renderer's length-framed reply; `None` if the stream ends before a whole reply
/// (the renderer died) or announces more than `max` bytes.
async fn read_reply(
    mut from: impl AsyncRead + Unpin,
    ledger: Ledger,
    max: u64,
) -> Option<SecretBuf> {
    let mut length = [0u8; 8];
    from.read_exact(&mut length).await.ok()?;
    let length = u64::from_le_bytes(length);
    if length > max {
        return None;
    }
    let length = usize::try_from(length).ok()?;
    let mut buf = SecretBuf::new(vec![0; length], "renderer.reply", &ledger);
    from.read_exact(buf.as_mut_slice()).await.ok()?;
    Some(buf)
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
