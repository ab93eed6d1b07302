//! What an operator sees and relies on, with the real binary and the real broker: health,
//! readiness and metrics over HTTP; a worker that waits for an unreachable broker without a
//! tight loop; a connection closed by the broker resumed within seconds.

use crate::harness::*;
use midnit_worker::client::Client;
use midnit_worker::protocol::Status;
use midnit_worker::tools::samples;
use std::time::{Duration, Instant};

fn small_job() -> midnit_worker::protocol::Request {
    request(
        samples::jpeg(&samples::figure_photo(320, 240, 5), 90),
        vec![output("t", "jpeg", Some(64), None)],
    )
}

/// The value of the metric line that starts with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_describe_the_running_worker() {
    let queue = unique_queue("http");
    let worker = spawn_binary(&queue, 1);
    assert_eq!(worker.get("/healthz").0, 200);
    assert_eq!(worker.get("/readyz").0, 200);
    assert_eq!(worker.get("/nothing").0, 404);
    // The container health check: the same binary asks the listener.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(["healthcheck", "--path", "/readyz"])
        .env("MIDNIT_HTTP_ADDR", worker.http_addr())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    assert_eq!(render(&client, &small_job()).await.status, Status::Ok);
    let bad = body_of(&request(b"not an image".to_vec(), vec![]));
    assert_eq!(
        error_code(&send_body(&client, &bad).await),
        "request.invalid"
    );
    // Counters are updated once the job is acked, just after its reply: wait for them.
    let deadline = Instant::now() + REPLY;
    let text = loop {
        let (status, text) = worker.get("/metrics");
        assert_eq!(status, 200);
        if metric(
            &text,
            "midnit_jobs_total{outcome=\"error\",code=\"request.invalid\"}",
        ) == Some(1.0)
            && metric(&text, "midnit_jobs_in_flight") == Some(0.0)
        {
            break text;
        }
        assert!(Instant::now() < deadline, "counters never settled:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for (series, want) in [
        ("midnit_jobs_total{outcome=\"ok\",code=\"\"}", 1.0),
        (
            "midnit_jobs_total{outcome=\"error\",code=\"request.invalid\"}",
            1.0,
        ),
        ("midnit_jobs_in_flight", 0.0),
        ("midnit_broker_connected", 1.0),
        ("midnit_broker_reconnects_total", 0.0),
        ("midnit_replies_returned_total", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(want), "{series} in:\n{text}");
    }
    for stage in ["queue_wait", "decode", "render", "encode", "reply", "wipe"] {
        let count = format!("midnit_job_stage_duration_seconds_count{{stage=\"{stage}\"}}");
        assert!(
            metric(&text, &count).unwrap_or(0.0) >= 1.0,
            "{count} in:\n{text}"
        );
    }
    assert!(metric(&text, "midnit_wiped_bytes_total").unwrap() > 0.0);
    assert!(text.contains("# TYPE midnit_job_stage_duration_seconds histogram"));
    // Its only network peers: the broker, and whoever scrapes its own listener.
    let http_port: u16 = worker
        .http_addr()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for (local, remote, state) in inet_sockets(worker.pid()) {
        let listening = state == "0A" && local.1 == http_port;
        let to_broker = state == "01" && remote.1 == 5672;
        let scraped = state == "01" && local.1 == http_port;
        assert!(
            listening || to_broker || scraped,
            "unexpected socket {local:?} -> {remote:?} (state {state})"
        );
    }
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_the_worker_is_alive_not_ready_and_retries_quietly() {
    let queue = unique_queue("nobroker");
    let mut worker = spawn_binary_started(
        &queue,
        1,
        &[
            ("MIDNIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
            ("MIDNIT_RECONNECT_INITIAL_MS", "20"),
            ("MIDNIT_RECONNECT_MAX_MS", "100"),
        ],
    );
    assert_eq!(worker.get("/healthz").0, 200);
    assert_eq!(worker.get("/readyz").0, 503);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(["healthcheck", "--path", "/readyz"])
        .env("MIDNIT_HTTP_ADDR", worker.http_addr())
        .output()
        .unwrap();
    assert!(!check.status.success(), "not ready must fail the check");
    // About 25 attempts in two seconds; the log says so at the first and every tenth.
    std::thread::sleep(Duration::from_secs(2));
    let log = worker.log_text();
    let lines = log.matches("broker unreachable; retrying").count();
    assert!((1..=4).contains(&lines), "{lines} lines:\n{log}");
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "it must keep trying"
    );
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success(), "{}", worker.log_text());
}

/// The broker-side id of the worker's connection, by its name (which carries the queue).
fn connection_pid(queue: &str) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("midnit-worker {queue} ")))
        .unwrap_or_else(|| panic!("no connection for {queue}:\n{text}"));
    line.split('\t').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_resumed_within_seconds() {
    let queue = unique_queue("closed");
    let worker = spawn_binary(&queue, 1);
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    assert_eq!(render(&client, &small_job()).await.status, Status::Ok);
    let closed = std::process::Command::new("rabbitmqctl")
        .args([
            "close_connection",
            &connection_pid(&queue),
            "operations test",
        ])
        .status()
        .unwrap();
    assert!(closed.success());
    let at = Instant::now();
    worker.wait_for_log("reconnected to the broker", 1);
    let took = at.elapsed();
    assert_eq!(render(&client, &small_job()).await.status, Status::Ok);
    let (_, text) = worker.get("/metrics");
    assert_eq!(metric(&text, "midnit_broker_reconnects_total"), Some(1.0));
    assert_eq!(worker.get("/readyz").0, 200);
    eprintln!("resumed {took:?} after the broker closed the connection");
    assert_eq!(worker.log_text().matches("connection was lost").count(), 1);
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}

/// Every TCP socket the process `pid` holds: local and remote (address, port) and the kernel's
/// state code ("01" established, "0A" listening).
type Endpoint = (String, u16);

fn inet_sockets(pid: i32) -> Vec<(Endpoint, Endpoint, String)> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.display().to_string();
            Some(l.strip_prefix("socket:[")?.trim_end_matches(']').to_owned())
        })
        .collect();
    let endpoint = |s: &str| {
        let (addr, port) = s.split_once(':').unwrap();
        (addr.to_owned(), u16::from_str_radix(port, 16).unwrap())
    };
    let mut sockets = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if inodes.contains(f[9]) {
                sockets.push((endpoint(f[1]), endpoint(f[2]), f[3].to_owned()));
            }
        }
    }
    assert!(!sockets.is_empty(), "no TCP sockets found for {pid}");
    sockets
}
