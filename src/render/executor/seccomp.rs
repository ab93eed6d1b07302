//! The renderer's system-call allowlist (seccomp-bpf), installed by the renderer itself once
//! it has started and before it reads its job.
//!
//! After this, a renderer can only compute: read its job (stdin, a Unix socket, and the spill
//! descriptors passed over it), allocate non-executable memory, start threads (a decoder's
//! worker threads), write its answer to stdout (and a last word to stderr) and exit.
//!
//! - Files: no `open`/`openat` at all (spill files arrive as descriptors), no path-based
//!   `stat`; `fstat` on its own descriptors only.
//! - Signals: `tgkill` only to its own process (what `abort` and thread wake-ups use); no
//!   `kill`, no `F_SETOWN` (which would have the kernel signal another process).
//! - Memory: `mmap`/`mprotect` never with `PROT_EXEC`, so no page becomes executable.
//! - Nothing else: no sockets, no `execve`, no `fork` (`clone` only with `CLONE_THREAD`), no
//!   `ptrace`, no `process_vm_readv`, no `prctl`. Everything unlisted fails with EPERM.
//!
//! `clone3` and `statx` pass their arguments in memory, where a filter cannot look: a second
//! filter answers them ENOSYS, and the C library and Rust's standard library fall back to
//! `clone` and `fstat`.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::io;

/// System calls a renderer may make without conditions.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_close,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_getrusage,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // What a new thread sets up.
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_clone3,
    libc::SYS_statx,
];

/// `fcntl` commands a renderer may use: duplicating and flag reading, nothing that routes
/// signals or locks.
const FCNTL_COMMANDS: &[libc::c_int] = &[
    libc::F_DUPFD_CLOEXEC,
    libc::F_GETFD,
    libc::F_SETFD,
    libc::F_GETFL,
];

fn arg(
    index: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
}

fn dword(
    index: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
}

fn filter(own_pid: u32) -> Result<BpfProgram, seccompiler::BackendError> {
    use SeccompCmpOp::{Eq, MaskedEq};
    let rule = |conditions| SeccompRule::new(conditions);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|&nr| (nr, vec![])).collect();
    let no_exec = || dword(2, MaskedEq(libc::PROT_EXEC as u64), 0);
    rules.insert(libc::SYS_mmap, vec![rule(vec![no_exec()?])?]);
    rules.insert(libc::SYS_mprotect, vec![rule(vec![no_exec()?])?]);
    // Writes go to stdout (the answer) and stderr (the runtime's last words) only.
    for nr in [libc::SYS_write, libc::SYS_writev] {
        rules.insert(
            nr,
            vec![rule(vec![dword(0, Eq, 1)?])?, rule(vec![dword(0, Eq, 2)?])?],
        );
    }
    // The spill descriptors arrive on stdin.
    rules.insert(libc::SYS_recvmsg, vec![rule(vec![dword(0, Eq, 0)?])?]);
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![dword(0, Eq, u64::from(own_pid))?])?],
    );
    let fcntl = FCNTL_COMMANDS
        .iter()
        .map(|&cmd| rule(vec![dword(1, Eq, cmd as u64)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_fcntl, fcntl);
    // clone(flags, ...): threads only.
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![arg(0, MaskedEq(thread), thread)?])?],
    );
    let arch = std::env::consts::ARCH.try_into()?;
    SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )?
    .try_into()
}

/// The second filter: `clone3` and `statx` answer ENOSYS (so threads are made with the
/// filtered `clone`, and metadata is read with `fstat`); everything else is left to the first.
fn fallbacks() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        [(libc::SYS_clone3, vec![]), (libc::SYS_statx, vec![])].into();
    let arch = std::env::consts::ARCH.try_into()?;
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?
    .try_into()
}

/// Confines the calling process (single-threaded) to the renderer's allowlist. Irreversible.
pub fn confine() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only. Seccomp requires no_new_privs.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The fallback filter goes first: once the allowlist is in, installing a filter is denied.
    let program = fallbacks().map_err(io::Error::other)?;
    seccompiler::apply_filter(&program).map_err(io::Error::other)?;
    let program = filter(std::process::id()).map_err(io::Error::other)?;
    seccompiler::apply_filter(&program).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `probe` in a forked, confined child; returns its exit code.
    fn in_confined_child(probe: fn() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and _exits; it never returns into the test
        // harness or touches its locks.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let code = if confine().is_ok() { probe() } else { 99 };
                libc::_exit(code);
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status), "child died: {status}");
            libc::WEXITSTATUS(status)
        }
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    #[test]
    fn a_confined_renderer_can_start_threads_but_no_process() {
        let code = in_confined_child(|| {
            let thread = std::thread::spawn(|| 21 * 2).join();
            // SAFETY: plain system call; a child, were one made, exits at once.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe { libc::_exit(0) };
            }
            match (thread, pid) {
                (Ok(42), -1) if errno() == libc::EPERM => 0,
                (Err(_), _) => 1,
                _ => 2,
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_confined_renderer_cannot_open_a_network_socket() {
        let code = in_confined_child(|| {
            // SAFETY: plain system call.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            if fd == -1 && errno() == libc::EPERM {
                0
            } else {
                1
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_confined_renderer_cannot_open_any_file() {
        let code = in_confined_child(|| {
            let path = c"/tmp/midnit-seccomp-probe";
            // SAFETY: plain system calls with a valid C string.
            let (w, r, x) = unsafe {
                (
                    libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o600),
                    libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY),
                    libc::fork(),
                )
            };
            match (w, r, x) {
                (-1, -1, -1) => 0,
                (w, _, _) if w >= 0 => 1,
                (_, r, _) if r >= 0 => 2,
                _ => 3,
            }
        });
        assert_eq!(code, 0);
    }
}
