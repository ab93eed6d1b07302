//! Kernel limits applied to a renderer process between fork and exec.
//!
//! Everything here runs in the forked child before `exec`, so it may only make
//! async-signal-safe system calls: no allocation, no locks.

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

fn limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit with a valid pointer to a stack value.
    check(unsafe { libc::setrlimit(resource, &rl) })
}

impl Sandbox {
    /// Applies the limits to the calling process (the forked child).
    pub fn apply(self) -> io::Result<()> {
        limit(libc::RLIMIT_AS, self.memory_bytes, self.memory_bytes)?;
        limit(libc::RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1)?;
        limit(libc::RLIMIT_CORE, 0, 0)?;
        // SAFETY: prctl with integer arguments only.
        unsafe {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            // Die with the worker: a renderer must never outlive its supervisor.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        }
        Ok(())
    }
}
