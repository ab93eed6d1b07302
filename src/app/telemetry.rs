//! Logs: `tracing` to stderr, one span per job carrying its id; never payload bytes.
//!
//! The panic hook prints where a panic happened but not its message: a message may be built
//! from data (a decoder formatting what it choked on), and crash output must never carry a
//! user's photo.

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber (`MIDNIT_LOG`, then `RUST_LOG`, default `info`) and the panic
/// hook. `json` selects one JSON object per line.
pub fn init(json: bool) {
    let filter = std::env::var("MIDNIT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter_with_guards(&filter))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    install_panic_hook();
}

/// The operator's filter, with the AMQP library silenced: lapin logs a returned message with
/// its whole body at WARN and frames at DEBUG/TRACE, and repeats an ERROR line for every failed
/// connection attempt. The worker logs each broker transition itself, once, with its cause.
/// These targets can never be turned up.
pub fn filter_with_guards(filter: &str) -> EnvFilter {
    let mut f = EnvFilter::new(filter);
    for guard in [
        "lapin=off",
        "amq_protocol=off",
        "lapin::returned_messages=off",
    ] {
        f = f.add_directive(guard.parse().expect("static directive"));
    }
    f
}

/// Replaces the default panic hook with one that logs the location only.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(%location, "panic (message withheld: it may carry job data)");
    }));
}

/// No core files, and no ptrace or core dump by unprivileged processes: a crash must never
/// write a job's pixels to disk. Called first thing by the binary, whatever the command.
pub fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid pointer; prctl with integer arguments only.
    let ok = unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero) == 0
            && libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    };
    if !ok {
        tracing::warn!("could not disable core dumps");
    }
}
