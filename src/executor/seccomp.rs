//! The renderer's system-call allowlist (seccomp-bpf), installed by the renderer itself once
//! it has started and before it reads the job.
//!
//! A renderer reads its job from stdin, may open its spill file read-only, allocates memory,
//! may start threads (a decoder's worker threads), writes the result to stdout and exits.
//! Everything else — sockets, writing or creating files, starting processes, ptrace — fails
//! with EPERM.
//!
//! Threads: `clone` is allowed only with `CLONE_THREAD` (a new process never is). `clone3`
//! passes its flags in memory, where a filter cannot look, so a second filter answers it
//! `ENOSYS`, and the C library falls back to `clone`.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::io;

/// System calls a renderer may make without conditions.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fcntl,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_brk,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // What a new thread sets up (failures here are tolerated by the C library, but allowing
    // them keeps threads ordinary).
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_clone3,
];

/// Open flags that would write, create or truncate.
const WRITE_FLAGS: u64 = (libc::O_WRONLY
    | libc::O_RDWR
    | libc::O_CREAT
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_TMPFILE) as u64;

fn filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|&nr| (nr, vec![])).collect();
    // openat(dirfd, path, flags, mode): only with no write/create flags.
    let read_only = SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(WRITE_FLAGS),
        0,
    )?;
    rules.insert(libc::SYS_openat, vec![SeccompRule::new(vec![read_only])?]);
    // clone(flags, ...): threads only.
    let thread = libc::CLONE_THREAD as u64;
    let threads_only = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(thread),
        thread,
    )?;
    rules.insert(libc::SYS_clone, vec![SeccompRule::new(vec![threads_only])?]);
    let arch = std::env::consts::ARCH.try_into()?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )?;
    filter.try_into()
}

/// The second filter: `clone3` answers ENOSYS (so threads are made with the filtered `clone`);
/// everything else is left to the first.
fn no_clone3() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, vec![])].into();
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
    // The clone3 filter goes first: once the allowlist is in, installing a filter is denied.
    let program = no_clone3().map_err(io::Error::other)?;
    seccompiler::apply_filter(&program).map_err(io::Error::other)?;
    let program = filter().map_err(io::Error::other)?;
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
    fn a_confined_renderer_cannot_create_or_write_files_but_can_read_them() {
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
                (-1, r, -1) if r >= 0 => 0,
                (w, _, _) if w >= 0 => 1,
                (_, -1, _) => 2,
                _ => 3,
            }
        });
        assert_eq!(code, 0);
    }
}
