//! Kernel limits a renderer applies to itself first thing after `exec`, before it reads a
//! byte of its job (so the worker can start it with `posix_spawn`, without a fork-time hook
//! that would copy the worker's page tables).
//!
//! Only async-signal-safe system calls are made here: no allocation, no locks.

use std::io;

/// Limits for one renderer.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox {
    /// Address-space limit (RLIMIT_AS), bytes.
    pub memory_bytes: u64,
    /// CPU-time limit (RLIMIT_CPU), seconds: SIGXCPU at the soft limit, SIGKILL one later.
    pub cpu_seconds: u64,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lowers `resource` to `soft`/`hard`, never raising it: if the worker already set a lower
/// limit on this process (`prlimit` on a pre-started renderer), that one stays.
fn limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to stack values.
    check(unsafe { libc::getrlimit(resource, &mut now) })?;
    let rl = libc::rlimit {
        rlim_cur: soft.min(now.rlim_cur),
        rlim_max: hard.min(now.rlim_max),
    };
    // SAFETY: as above.
    check(unsafe { libc::setrlimit(resource, &rl) })
}

impl Sandbox {
    /// The limits as command-line arguments for the renderer.
    pub fn to_args(self) -> [String; 2] {
        [self.memory_bytes.to_string(), self.cpu_seconds.to_string()]
    }

    /// Reads the limits back from the renderer's arguments.
    pub fn from_args(memory: &str, cpu: &str) -> Option<Self> {
        Some(Self {
            memory_bytes: memory.parse().ok()?,
            cpu_seconds: cpu.parse().ok()?,
        })
    }

    /// Applies the limits to the calling process. `parent` is the worker's pid: if the worker
    /// is already gone when the parent-death signal is armed, the renderer exits.
    pub fn apply(self, parent: libc::pid_t) -> io::Result<()> {
        limit(libc::RLIMIT_AS, self.memory_bytes, self.memory_bytes)?;
        limit(libc::RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1)?;
        limit(libc::RLIMIT_CORE, 0, 0)?;
        // SAFETY: prctl with integer arguments only.
        unsafe {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            // Die with the worker: a renderer must never outlive its supervisor.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if libc::getppid() != parent {
                return Err(io::Error::other("the worker is gone"));
            }
        }
        Ok(())
    }
}
