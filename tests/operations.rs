//! What an operator sees and relies on, with the real binary and the real broker: health,
//! readiness and metrics over HTTP; a worker that waits for an unreachable broker without a
//! tight loop; a connection closed by the broker resumed within seconds.

mod common;

use common::*;
use midnit_worker::client::Client;
use midnit_worker::protocol::Status;
use midnit_worker::samples;
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
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    assert_eq!(render(&client, &small_job()).await.status, Status::Ok);
    let bad = body_of(&request(b"not an image".to_vec(), vec![]));
    assert_eq!(
        error_code(&send_body(&client, &bad).await),
        "request.invalid"
    );
    let (status, text) = worker.get("/metrics");
    assert_eq!(status, 200);
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
