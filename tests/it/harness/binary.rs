//! The real worker binary as a child process: started, watched through its log, its
//! renderers and its health listener, signalled, killed on drop.

use super::{amqp_url, strip_ansi, REPLY};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real worker binary as a child process, its stderr going to a file.
pub struct BinaryWorker {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn spawn_binary(queue: &str, concurrency: usize) -> BinaryWorker {
    spawn_binary_env(queue, concurrency, &[])
}

/// The real worker binary with extra `MIDNIT_*` settings (`env` wins over the defaults here),
/// once it is consuming.
pub fn spawn_binary_env(queue: &str, concurrency: usize, env: &[(&str, &str)]) -> BinaryWorker {
    let worker = spawn_binary_started(queue, concurrency, env);
    worker.wait_for_log("consuming", 1);
    worker
}

/// The real worker binary, as soon as it runs (it may not have reached the broker).
pub fn spawn_binary_started(queue: &str, concurrency: usize, env: &[(&str, &str)]) -> BinaryWorker {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("serve")
        .env("MIDNIT_AMQP_URL", amqp_url())
        .env("MIDNIT_QUEUE", queue)
        .env("MIDNIT_CONCURRENCY", concurrency.to_string())
        .env("MIDNIT_SPILL_DIR", dir.path().join("spill"))
        .env("MIDNIT_LOG", "info")
        .env("MIDNIT_HTTP_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the worker binary starts");
    BinaryWorker {
        child,
        log,
        _dir: dir,
    }
}

impl BinaryWorker {
    pub fn spill_dir(&self) -> PathBuf {
        self._dir.path().join("spill")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The address of its health and metrics listener, from its log.
    pub fn http_addr(&self) -> String {
        self.wait_for_log("health and metrics", 1);
        let log = strip_ansi(&self.log_text());
        let line = log
            .lines()
            .find(|l| l.contains("health and metrics"))
            .unwrap();
        let addr = line.split("addr=").nth(1).unwrap();
        addr.split_whitespace().next().unwrap().to_owned()
    }

    /// `GET path` on its health and metrics listener: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        super::http_get(&self.http_addr(), path)
    }

    /// The worker's live child processes (its renderers).
    pub fn children(&self) -> Vec<u32> {
        let mut children = Vec::new();
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
        for task in tasks.filter_map(Result::ok) {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        children.sort_unstable();
        children
    }

    /// Waits until the worker's children satisfy `ok` (bounded, never a perf check).
    pub fn wait_for_children(&self, what: &str, ok: impl Fn(&[u32]) -> bool) -> Vec<u32> {
        let deadline = Instant::now() + REPLY;
        loop {
            let children = self.children();
            if ok(&children) {
                return children;
            }
            assert!(Instant::now() < deadline, "{what}: children {children:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until `needle` appears `count` times in the log (bounded, never a perf check).
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + REPLY;
        while self.log_text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` x{count} in:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + REPLY;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BinaryWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
