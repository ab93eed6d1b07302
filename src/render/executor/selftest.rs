//! The renderer's confinement, tried from inside: `midnit-worker __renderer-selftest PARENT
//! MEMORY CPU PATH PID` limits and confines itself exactly as a renderer does, then attempts
//! what a compromised decoder would — open a file, stat it, signal another process, map
//! executable memory, start a program, trace its parent, open sockets, fork — and prints one
//! JSON object saying how each attempt ended (`"ok"` or the errno's name). The tests run it
//! as the real binary; it touches no job data.

use super::renderer::{confine_as_renderer, Exit};
use std::ffi::CString;
use std::io::Write;

/// The hidden subcommand.
pub const SELFTEST_COMMAND: &str = "__renderer-selftest";

fn outcome(rc: i64) -> String {
    if rc >= 0 {
        return "ok".into();
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::ENOSYS) => "ENOSYS".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(n) => format!("errno {n}"),
        None => "failed".into(),
    }
}

/// Runs the self-test with the arguments after the subcommand; returns the exit code.
pub fn run_selftest(args: &[String]) -> i32 {
    let (Some(path), Some(other)) = (
        args.get(3).and_then(|p| CString::new(p.as_str()).ok()),
        args.get(4).and_then(|p| p.parse::<libc::pid_t>().ok()),
    ) else {
        return Exit::Usage as i32;
    };
    let parent: libc::pid_t = args.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    if let Err(exit) = confine_as_renderer(args) {
        return exit as i32;
    }
    let mut results: Vec<(&str, String)> = Vec::new();
    let mut attempt = |name: &'static str, rc: i64| results.push((name, outcome(rc)));
    // SAFETY: each call is a plain system call with valid arguments; anything that succeeds
    // against expectations is undone or harmless (signal 0 delivers nothing; a forked child
    // exits at once; a mapping is unmapped).
    unsafe {
        attempt(
            "open_read",
            i64::from(libc::open(path.as_ptr(), libc::O_RDONLY)),
        );
        attempt(
            "open_create",
            i64::from(libc::open(
                c"/tmp/midnit-selftest".as_ptr(),
                libc::O_WRONLY | libc::O_CREAT,
                0o600,
            )),
        );
        let mut st: libc::stat = std::mem::zeroed();
        attempt("stat_path", i64::from(libc::stat(path.as_ptr(), &mut st)));
        attempt("kill_other", i64::from(libc::kill(other, 0)));
        attempt("kill_parent", i64::from(libc::kill(parent, 0)));
        attempt(
            "tgkill_other",
            libc::syscall(libc::SYS_tgkill, other, other, 0),
        );
        attempt(
            "tgkill_self",
            libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), 0),
        );
        attempt(
            "fcntl_setown",
            i64::from(libc::fcntl(0, libc::F_SETOWN, other)),
        );
        let exec = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        attempt("mmap_exec", if exec == libc::MAP_FAILED { -1 } else { 0 });
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        attempt(
            "mprotect_exec",
            i64::from(libc::mprotect(
                page,
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
            )),
        );
        libc::munmap(page, 4096);
        let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        attempt(
            "execve",
            i64::from(libc::execve(
                c"/bin/true".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )),
        );
        attempt(
            "ptrace_parent",
            libc::ptrace(libc::PTRACE_ATTACH, parent, 0, 0),
        );
        attempt(
            "socket_inet",
            i64::from(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
        );
        attempt(
            "socket_unix",
            i64::from(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
        );
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        attempt("fork", i64::from(pid));
        let mut local = [0u8; 8];
        let iov_local = libc::iovec {
            iov_base: local.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let iov_remote = libc::iovec {
            iov_base: 0x1000 as *mut libc::c_void,
            iov_len: 8,
        };
        attempt(
            "process_vm_readv",
            libc::process_vm_readv(parent, &iov_local, 1, &iov_remote, 1, 0) as i64,
        );
    }
    let thread = std::thread::spawn(|| 7).join();
    results.push((
        "thread",
        if matches!(thread, Ok(7)) {
            "ok"
        } else {
            "failed"
        }
        .into(),
    ));
    let json: Vec<String> = results
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{{{}}}", json.join(",")).and_then(|()| out.flush());
    match written {
        Ok(()) => Exit::Answered as i32,
        Err(_) => Exit::NoAnswer as i32,
    }
}
