//! The real binary as a child process: graceful shutdown, a second signal, and SIGKILL in the
//! middle of a job — nothing is lost, and logs never carry payload bytes.

use crate::harness::*;
use midnit_worker::client::Client;
use midnit_worker::protocol::Status;
use midnit_worker::tools::samples;
use std::time::Duration;

/// A job that takes a while: a 12 MP photo to full-size PNG and lossless WebP.
fn assert_no_payload_in(log: &str) {
    assert!(
        !log.contains(std::str::from_utf8(samples::GPS_MARKER).unwrap()),
        "payload marker in logs"
    );
    // lapin's Debug output of a body is a decimal list; a JPEG body starts 255, 216, 255.
    assert!(!log.contains("255, 216, 255"), "a JPEG body was logged");
    assert!(!log.contains("data: ["), "a message body was logged");
}

async fn client_for(queue: &str) -> Client {
    Client::connect(&amqp_url(), queue).await.unwrap()
}

/// A worker binary with one slow job in flight; the receiver gets that job's reply.
async fn slow_job_in_flight(
    queue: &str,
) -> (
    BinaryWorker,
    Client,
    tokio::sync::oneshot::Receiver<Vec<u8>>,
) {
    let worker = spawn_binary(queue, 1);
    let client = client_for(queue).await;
    let id = client.new_correlation_id();
    let props = midnit_worker::client::RawProps::request(&id);
    let rx = client
        .send_raw(&body_of(&slow_job()), &props)
        .await
        .unwrap();
    worker.wait_for_log("job received", 1);
    (worker, client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_jobs_in_flight_replies_to_all_and_exits_zero() {
    let queue = unique_queue("sigterm");
    let mut worker = spawn_binary(&queue, 2);
    let client = std::sync::Arc::new(client_for(&queue).await);
    let mut replies = Vec::new();
    for _ in 0..2 {
        let client = client.clone();
        replies.push(tokio::spawn(async move {
            client.reply(&slow_job(), REPLY).await
        }));
    }
    worker.wait_for_log("job received", 2);
    worker.signal(libc::SIGTERM);
    for reply in replies {
        let reply = reply.await.unwrap().expect("a reply despite the shutdown");
        assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    }
    let status = worker.wait_exit();
    assert_eq!(status.code(), Some(0), "log:\n{}", worker.log_text());
    let log = worker.log_text();
    assert!(log.contains("all in-flight jobs answered"), "{log}");
    assert_no_payload_in(&log);
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_job_is_answered_by_another_worker() {
    let queue = unique_queue("twosignals");
    let (mut first, _client, rx) = slow_job_in_flight(&queue).await;
    first.signal(libc::SIGTERM);
    first.wait_for_log("signal received", 1);
    first.signal(libc::SIGTERM);
    let status = first.wait_exit();
    assert_eq!(status.code(), Some(130), "log:\n{}", first.log_text());
    assert!(
        !first.log_text().contains("job done"),
        "the job should have been cut short"
    );
    let second = spawn_binary(&queue, 1);
    let reply = Client::await_raw(rx, REPLY)
        .await
        .expect("the second worker answers");
    let reply = midnit_worker::protocol::decode_reply(&reply).unwrap();
    assert_eq!(reply.status, Status::Ok);
    assert!(
        second.log_text().contains("redelivered=true"),
        "{}",
        second.log_text()
    );
    drop(second);
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing_a_second_worker_answers() {
    let queue = unique_queue("sigkill");
    let (mut first, _client, rx) = slow_job_in_flight(&queue).await;
    first.signal(libc::SIGKILL);
    let status = first.wait_exit();
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(
        !first.log_text().contains("job done"),
        "the job finished before the kill"
    );
    let second = spawn_binary(&queue, 1);
    let reply = Client::await_raw(rx, REPLY)
        .await
        .expect("nothing lost: the job is answered");
    let reply = midnit_worker::protocol::decode_reply(&reply).unwrap();
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(
        (reply.outputs[0].width, reply.outputs[0].height),
        (4000, 3000)
    );
    second.wait_for_log("job done", 1);
    assert_no_payload_in(&second.log_text());
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_sends_a_request_file_and_writes_the_outputs_and_receipt() {
    let w = spawn_worker("submit").await;
    let out = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/multi-size.json");
    let (queue, dir) = (w.config.broker.queue.clone(), out.path().to_owned());
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
            .args(["submit", example, "--out"])
            .arg(&dir)
            .env("MIDNIT_AMQP_URL", amqp_url())
            .env("MIDNIT_QUEUE", queue)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(summary["status"], "ok");
    assert!(summary["receipt"]["wiped_bytes"].as_u64().unwrap() > 0);
    for file in ["large.jpg", "card.webp", "icon.png"] {
        let bytes = std::fs::read(out.path().join(file)).unwrap();
        image::load_from_memory(&bytes).unwrap();
    }
    // The printed receipt is signed by the worker's key, and an edited one is refused.
    let key = w.shared.processor.signer.as_ref().unwrap().public_key_hex();
    let printed = out.path().join("receipt.json");
    std::fs::write(&printed, &result.stdout).unwrap();
    let verify = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
            .args(["verify-receipt", "--public-key", &key])
            .arg(file)
            .output()
            .unwrap()
    };
    let good = verify(&printed);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains(&key));
    let mut edited = summary.clone();
    let bytes = edited["receipt"]["wiped_bytes"].as_u64().unwrap();
    edited["receipt"]["wiped_bytes"] = (bytes + 1).into();
    let forged = out.path().join("forged.json");
    std::fs::write(&forged, serde_json::to_vec(&edited).unwrap()).unwrap();
    assert!(
        !verify(&forged).status.success(),
        "an edited receipt must not verify"
    );
    // Another key is refused, and so is an output file changed after the reply.
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(["verify-receipt", "--public-key", &"ab".repeat(32)])
        .arg(&printed)
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "a receipt must not verify with another key"
    );
    let unpinned = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(["verify-receipt"])
        .arg(&printed)
        .env_remove("MIDNIT_RECEIPT_PUBLIC_KEY")
        .output()
        .unwrap();
    assert!(
        !unpinned.status.success(),
        "verification needs a pinned key"
    );
    std::fs::write(out.path().join("icon.png"), b"not the attested bytes").unwrap();
    assert!(
        !verify(&printed).status.success(),
        "a changed output file must not verify"
    );
    w.stop().await;
}

/// Runs the binary with `args --out OUT` against `amqp_url` until it exits; asserts that it
/// succeeded and returns its standard output.
fn run_to_end(args: &[&str], out: &std::path::Path, amqp_url: &str) -> String {
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .args(args)
        .arg("--out")
        .arg(out)
        .env("MIDNIT_AMQP_URL", amqp_url)
        .env("MIDNIT_SPILL_DIR", out.join("spill"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout
}

#[test]
fn the_demo_runs_with_no_broker_over_the_in_process_queue() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_to_end(&["demo"], out.path(), "amqp://guest:guest@127.0.0.1:1/%2f");
    assert!(stdout.contains("in-process queue"), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" ms  wiped"))
        .collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.trim_start().starts_with("ok"))
            .count(),
        5,
        "{stdout}"
    );
    assert!(
        stdout.contains("limits.pixels") && stdout.contains("input.undecodable"),
        "{stdout}"
    );
    assert!(out.path().join("thumb.jpg").exists());
    assert!(
        out.path().join("card.jpg").exists(),
        "the showcase card recipe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_with_core_dumps_disabled() {
    let queue = unique_queue("nocore");
    let worker = spawn_binary(&queue, 1);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", worker.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    drop(worker);
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_started_renderer_waits_through_idle_time_and_serves_exactly_one_job() {
    let queue = unique_queue("prestart");
    let worker = spawn_binary(&queue, 1);
    let first = worker.wait_for_children("one renderer pre-started", |c| c.len() == 1);
    // Longer than Tokio keeps an idle blocking thread (10 s): a renderer's parent-death signal
    // is tied to the thread that started it, so it must not be one of those.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        worker.children(),
        first,
        "the pre-started renderer died while waiting"
    );
    let client = client_for(&queue).await;
    let job = request(
        samples::jpeg(&samples::figure_photo(320, 240, 5), 90),
        vec![output("t", "png", Some(64), None)],
    );
    assert_eq!(render(&client, &job).await.status, Status::Ok);
    // The renderer that served the job is gone; a fresh one waits for the next.
    let next = worker.wait_for_children("a fresh renderer replaces the used one", |c| {
        c.len() == 1 && c != first.as_slice()
    });
    assert_eq!(render(&client, &job).await.status, Status::Ok);
    worker.wait_for_children("single use again", |c| {
        c.len() == 1 && c != next.as_slice() && c != first.as_slice()
    });
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}

#[test]
fn the_load_generator_drives_a_worker_and_writes_its_report_and_chart() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_to_end(
        &[
            "bench",
            "--in-flight",
            "1,2",
            "--jobs",
            "6",
            "--photo",
            "640x480",
        ],
        out.path(),
        &amqp_url(),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("bench.json")).unwrap()).unwrap();
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, in_flight) in levels.iter().zip([1, 2]) {
        assert_eq!(level["concurrency"], in_flight);
        assert_eq!(level["ok"], 6, "{level}");
        assert!(level["jobs_per_sec"].as_f64().unwrap() > 0.0);
        assert!(level["p99_ms"].as_f64().unwrap() >= level["p50_ms"].as_f64().unwrap());
        assert!(level["cpu_sec_per_job"].as_f64().unwrap() > 0.0, "{level}");
        assert!(level["worker_peak_rss_mib"].as_f64().unwrap() > 1.0);
        // Reported by the renderers themselves (VmHWM), through the worker's log.
        assert!(
            level["renderer_peak_rss_mib"].as_f64().unwrap() > 1.0,
            "{level}"
        );
    }
    let svg = std::fs::read_to_string(out.path().join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    assert!(stdout.contains("jobs/s"), "{stdout}");
}

#[test]
fn a_bad_preset_stops_the_worker_at_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.toml");
    let bad = "[presets.avatar]\noutputs = [{ name = \"a\", format = \"gif\" }]\n";
    std::fs::write(&file, bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("serve")
        .env("MIDNIT_CONFIG", &file)
        .env("MIDNIT_QUEUE", unique_queue("bad-preset"))
        .env("MIDNIT_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the worker started with a bad preset"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("presets.avatar: outputs[0].format"),
        "{stderr}"
    );
}
