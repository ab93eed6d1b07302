//! Start-up as an operator meets it, with the real binary: a setting that can never work ends
//! the process at once with exit code 2 and one line that names the setting (never a
//! password); what can heal (a broker that is down, refused credentials) is retried with
//! backoff; Kubernetes' service-link variables are tolerated; the spill directory's medium is
//! checked; a list of broker URLs is worked through node by node.

use crate::harness::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `serve` with `env` and waits (bounded) for it to exit on its own.
fn serve_until_exit(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("serve")
        .env("MIDNIT_QUEUE", unique_queue("startup"))
        .env("MIDNIT_SPILL_DIR", dir.path().join("spill"))
        .env("MIDNIT_HTTP_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes what a worker declared for `queue` (these tests are not async).
fn forget(queue: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(delete_queue(queue));
}

fn assert_fails_fast(env: &[(&str, &str)], names: &str) -> String {
    let (code, err) = serve_until_exit(env);
    assert_eq!(code, Some(2), "exit code for {env:?}; stderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{err}");
    assert!(
        lines[0].starts_with("configuration error:") && lines[0].contains(names),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "a password was printed: {err}");
    err
}

#[test]
fn a_malformed_or_foreign_broker_url_ends_the_worker_with_exit_code_2_and_one_line() {
    for url in [
        "amqp://midnit:s3cret@127.0.0.1:notaport/%2f",
        "http://midnit:s3cret@127.0.0.1:5672/",
        "amqp://midnit:s3cret@127.0.0.1:5672/%2f,rabbit://midnit:s3cret@b/",
    ] {
        assert_fails_fast(&[("MIDNIT_AMQP_URL", url)], "amqp_url");
    }
}

#[test]
fn an_unreadable_ca_or_key_file_ends_the_worker_with_exit_code_2() {
    let url = "amqps://midnit:s3cret@127.0.0.1:5671/%2f";
    assert_fails_fast(
        &[
            ("MIDNIT_AMQP_URL", url),
            ("MIDNIT_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ],
        "tls_ca_file",
    );
    assert_fails_fast(
        &[("MIDNIT_RECEIPT_KEY_FILE", "/nonexistent/receipt.key")],
        "receipt_key_file",
    );
    assert_fails_fast(
        &[
            ("MIDNIT_SEALED", "required"),
            ("MIDNIT_KEY_STATE_FILE", "/nonexistent/state.json"),
        ],
        "/nonexistent/state.json",
    );
    // A CA file that exists but holds no certificate cannot heal either.
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not a certificate").unwrap();
    assert_fails_fast(
        &[
            ("MIDNIT_AMQP_URL", url),
            ("MIDNIT_TLS_CA_FILE", junk.path().to_str().unwrap()),
        ],
        "tls_ca_file",
    );
}

#[test]
fn keys_init_makes_the_key_state_file_the_settings_name_and_serve_then_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("keys/state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let state = state.to_str().unwrap();
    let env = [
        ("MIDNIT_SEALED", "required"),
        ("MIDNIT_KEY_STATE_FILE", state),
    ];
    // As the systemd unit's ExecStartPre runs it: the file does not exist yet.
    let init = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(["keys", "init", "--if-missing", "--state", state])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let queue = unique_queue("keystate");
    let mut worker = spawn_binary_env(&queue, 1, &env);
    assert_eq!(worker.get("/readyz").0, 200);
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    forget(&queue);
}

#[test]
fn refused_credentials_are_retried_with_backoff_and_said_clearly() {
    let queue = unique_queue("refused");
    let mut worker = spawn_binary_started(
        &queue,
        1,
        &[
            (
                "MIDNIT_AMQP_URL",
                "amqp://guest:not-the-password@127.0.0.1:5672/%2f",
            ),
            ("MIDNIT_RECONNECT_INITIAL_MS", "50"),
            ("MIDNIT_RECONNECT_MAX_MS", "200"),
        ],
    );
    worker.wait_for_log("broker unreachable; retrying", 1);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "refused credentials may be mended on the broker: keep trying"
    );
    let log = worker.log_text();
    assert!(
        log.contains("ACCESS_REFUSED") || log.contains("access refused") || log.contains("auth"),
        "the log says why:\n{log}"
    );
    assert!(!log.contains("not-the-password"), "{log}");
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success(), "{}", worker.log_text());
    forget(&queue);
}

#[test]
fn kubernetes_service_link_variables_do_not_stop_the_worker() {
    let queue = unique_queue("servicelinks");
    let mut worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_WORKER_SERVICE_HOST", "10.96.0.12"),
            ("MIDNIT_WORKER_SERVICE_PORT", "9464"),
            ("MIDNIT_WORKER_PORT", "tcp://10.96.0.12:9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP", "tcp://10.96.0.12:9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP_PROTO", "tcp"),
            ("MIDNIT_WORKER_PORT_9464_TCP_PORT", "9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP_ADDR", "10.96.0.12"),
            // A Service named exactly `midnit`.
            ("MIDNIT_SERVICE_HOST", "10.96.0.13"),
            ("MIDNIT_PORT", "tcp://10.96.0.13:5672"),
            ("MIDNIT_PORT_5672_TCP", "tcp://10.96.0.13:5672"),
        ],
    );
    assert_eq!(worker.get("/readyz").0, 200);
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    forget(&queue);
    // A misspelt setting still stops it.
    let (code, err) = serve_until_exit(&[("MIDNIT_CONCURENCY", "2")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("concurency"), "{err}");
}

/// Whether `path` is on tmpfs, as `stat -f` says.
fn fs_type(path: &std::path::Path) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_spill_directory_on_disk_is_refused_when_tmpfs_is_required_and_warned_about_otherwise() {
    // The target directory is on the machine's disk; /dev/shm is a tmpfs.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    assert_ne!(
        fs_type(disk.path()),
        "tmpfs",
        "the test needs a disk-backed directory"
    );
    let spill = disk.path().join("spill");
    let spill = spill.to_str().unwrap();
    let err = assert_fails_fast(
        &[
            ("MIDNIT_SPILL_DIR", spill),
            ("MIDNIT_SPILL_REQUIRE_TMPFS", "true"),
        ],
        "not on tmpfs",
    );
    assert!(err.contains(spill), "{err}");

    let queue = unique_queue("spilldisk");
    let mut warned = spawn_binary_env(&queue, 1, &[("MIDNIT_SPILL_DIR", spill)]);
    assert!(
        warned
            .log_text()
            .contains("the spill directory is not on tmpfs"),
        "{}",
        warned.log_text()
    );
    warned.signal(libc::SIGTERM);
    assert!(warned.wait_exit().success());
    forget(&queue);

    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    assert_eq!(fs_type(shm.path()), "tmpfs");
    let spill = shm.path().join("spill");
    let queue = unique_queue("spilltmpfs");
    let mut on_memory = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_SPILL_DIR", spill.to_str().unwrap()),
            ("MIDNIT_SPILL_REQUIRE_TMPFS", "true"),
        ],
    );
    assert!(!on_memory.log_text().contains("not on tmpfs"));
    on_memory.signal(libc::SIGTERM);
    assert!(on_memory.wait_exit().success());
    forget(&queue);
}

#[test]
fn a_list_of_broker_urls_moves_past_a_node_that_is_down() {
    // The first node refuses connections; the second is the test broker.
    let urls = format!("amqp://guest:guest@127.0.0.1:1/%2f,{}", amqp_url());
    let queue = unique_queue("urllist");
    let mut worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_AMQP_URL", urls.as_str()),
            ("MIDNIT_RECONNECT_INITIAL_MS", "20"),
        ],
    );
    assert_eq!(worker.get("/readyz").0, 200);
    let log = worker.log_text();
    let second = amqp_url();
    let host = second.split('@').nth(1).unwrap().split('/').next().unwrap();
    assert!(log.contains(host), "consuming on the second node:\n{log}");
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    forget(&queue);
}

#[test]
fn text_logs_carry_no_colour_when_not_on_a_terminal() {
    let queue = unique_queue("nocolour");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // No NO_COLOR here: the worker must see for itself that stderr is a file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("serve")
        .env("MIDNIT_QUEUE", &queue)
        .env("MIDNIT_SPILL_DIR", dir.path().join("spill"))
        .env("MIDNIT_HTTP_ADDR", "127.0.0.1:0")
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + REPLY;
    while !std::fs::read_to_string(&log).unwrap().contains("consuming") {
        assert!(Instant::now() < deadline, "the worker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(child.id());
    child.wait().unwrap();
    forget(&queue);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "escape codes in:\n{text}");
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
