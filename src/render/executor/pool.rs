//! Pre-started renderers: each waits, already limited, confined and warmed up, for its one job,
//! so a job never waits for a process to start. (A job with a HEIC or AVIF input gets a
//! renderer started for it, with libheif loaded: pre-started ones do not load it.) A long-lived spawner thread starts the
//! replacements (a renderer's parent-death signal is tied to the *thread* that started it).

use super::renderer::child_args;
use super::sandbox::Sandbox;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::Child;

/// A started renderer and the worker's end of its stdin socket.
pub(super) struct Renderer {
    pub(super) child: Child,
    pub(super) socket: std::os::unix::net::UnixStream,
}

/// Pre-started renderers waiting for their job.
pub(super) struct Spares {
    pub(super) binary: PathBuf,
    pub(super) sandbox: Sandbox,
    /// How many to keep ready (0: start each renderer when its job comes).
    pub(super) target: usize,
    pub(super) ready: std::sync::Mutex<Vec<Renderer>>,
    /// Wakes the spawner thread (absent when `target` is 0).
    pub(super) wake: Option<std::sync::Mutex<std::sync::mpsc::Sender<()>>>,
}

impl Spares {
    /// Starts a renderer; a `warm` one exercises the pipeline while it waits for its job, a
    /// `heif` one loads libheif before it is confined.
    pub(super) fn spawn(&self, warm: bool, heif: bool) -> std::io::Result<Renderer> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(child_args(std::process::id(), self.sandbox, warm, heif))
            .env_clear()
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // No pre_exec hook: the renderer limits itself before reading its job, and the standard
        // library can start it with posix_spawn instead of fork.
        let child = command.spawn()?;
        ours.set_nonblocking(true)?;
        Ok(Renderer {
            child,
            socket: ours,
        })
    }

    /// How many renderers wait for a job now.
    pub(super) fn ready_count(&self) -> usize {
        self.ready.lock().map_or(0, |r| r.len())
    }

    /// A ready renderer that is still alive, if there is one.
    pub(super) fn take(&self) -> Option<Renderer> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut renderer) = ready.pop() {
            if matches!(renderer.child.try_wait(), Ok(None)) {
                return Some(renderer);
            }
        }
        None
    }

    /// Starts renderers in the background until `target` are ready.
    pub(super) fn refill(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.lock().unwrap_or_else(|e| e.into_inner()).send(());
        }
    }

    fn fill(&self) {
        loop {
            if self.ready.lock().map_or(0, |r| r.len()) >= self.target {
                return;
            }
            match self.spawn(true, false) {
                Ok(renderer) => self
                    .ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(renderer),
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
pub(super) fn start_spawner(spares: &Arc<Spares>, wake: std::sync::mpsc::Receiver<()>) {
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
