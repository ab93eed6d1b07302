//! Faults with real processes on the real broker: workers killed and stopped while jobs are in
//! flight lose nothing; a long run of jobs leaves the worker's memory, file descriptors and
//! threads flat.

use crate::harness::*;
use midnit_worker::client::{Client, RawProps};
use midnit_worker::protocol::{decode_reply, Request, Status};
use midnit_worker::tools::samples;
use std::collections::HashMap;
use std::time::Duration;

fn job(side: u32, seed: u64) -> Request {
    request(
        samples::jpeg(&samples::figure_photo(side, side * 3 / 4, seed), 90),
        vec![output("t", "jpeg", Some(256), None)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_one_stopped_mid_run_every_one_of_200_jobs_is_answered() {
    let queue = unique_queue("three");
    let mut workers: Vec<BinaryWorker> = (0..3).map(|_| spawn_binary(&queue, 2)).collect();
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    let body = body_of(&job(1600, 21));
    let mut pending = Vec::new();
    for i in 0..200 {
        let id = format!("job-{i}");
        let rx = client
            .send_raw(&body, &RawProps::request(&id))
            .await
            .unwrap();
        pending.push((id, rx));
    }
    let mut answered: HashMap<String, Status> = HashMap::new();
    for (n, (id, rx)) in pending.into_iter().enumerate() {
        if n == 40 {
            // Jobs are in flight on every worker now: kill one outright…
            workers[0].signal(libc::SIGKILL);
        }
        if n == 80 {
            // …and stop another gracefully.
            workers[1].signal(libc::SIGTERM);
        }
        let bytes = Client::await_raw(rx, REPLY)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let reply = decode_reply(&bytes).unwrap();
        answered.insert(id, reply.status);
    }
    assert_eq!(answered.len(), 200);
    assert!(answered.values().all(|s| *s == Status::Ok), "{answered:?}");
    assert!(
        workers[1].wait_exit().success(),
        "the stopped worker drains and exits 0:\n{}",
        workers[1].log_text()
    );
    assert!(workers[2].child.try_wait().unwrap().is_none());
    // The killed worker's unacked jobs were redelivered and answered by the others.
    let redelivered = workers[2].log_text().matches("redelivered=true").count()
        + workers[1].log_text().matches("redelivered=true").count();
    eprintln!("{redelivered} redelivered jobs answered by the surviving workers");
    client.close().await;
    drop(workers);
    delete_queue(&queue).await;
}

/// VmRSS (KiB) and thread count of `pid`, and how many file descriptors it holds.
fn sample(pid: i32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (field("VmRSS:"), field("Threads:"), fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_jobs_leave_memory_descriptors_and_threads_flat() {
    const JOBS: usize = 5_000;
    const WINDOW: usize = 8;
    let queue = unique_queue("soak");
    let worker = spawn_binary(&queue, 2);
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    let body = body_of(&job(160, 3));
    let mut curve = Vec::new();
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..JOBS {
        let id = client.new_correlation_id();
        let rx = client
            .send_raw(&body, &RawProps::request(&id))
            .await
            .unwrap();
        in_flight.push_back(rx);
        if in_flight.len() >= WINDOW {
            let bytes = Client::await_raw(in_flight.pop_front().unwrap(), REPLY)
                .await
                .unwrap();
            assert_eq!(decode_reply(&bytes).unwrap().status, Status::Ok, "job {i}");
        }
        if (i + 1) % 500 == 0 {
            // Sample at rest, so samples compare: nothing in flight, spare renderers ready.
            for rx in in_flight.drain(..) {
                let bytes = Client::await_raw(rx, REPLY).await.unwrap();
                assert_eq!(decode_reply(&bytes).unwrap().status, Status::Ok);
            }
            // Past the blocking pool's one-second keep-alive: its idle threads have ended.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            curve.push((i + 1, sample(worker.pid())));
        }
    }
    eprintln!("jobs\tRSS KiB\tthreads\tfds");
    for (i, (rss, threads, fds)) in &curve {
        eprintln!("{i}\t{rss}\t{threads}\t{fds}");
    }
    // After warm-up (the first 1,000 jobs), RSS at rest stays within 10 % + 4 MiB of its level
    // then.
    let settled = curve.iter().find(|(i, _)| *i >= 1000).unwrap().1 .0;
    let peak_after = curve
        .iter()
        .filter(|(i, _)| *i >= 1000)
        .map(|(_, s)| s.0)
        .max()
        .unwrap();
    assert!(
        peak_after <= settled + settled / 10 + 4096,
        "RSS grew from {settled} KiB to {peak_after} KiB: {curve:?}"
    );
    // At rest the worker holds the same descriptors (broker socket, spare renderers' pipes,
    // the HTTP listener …) and threads. Runtime pieces set up lazily can add a few once, in the
    // first half; from the middle on nothing may grow.
    let (_, (_, threads_mid, fds_mid)) = *curve.iter().find(|(i, _)| *i >= JOBS / 2).unwrap();
    for (i, (_, threads, fds)) in curve.iter().filter(|(i, _)| *i >= JOBS / 2) {
        assert!(*fds <= fds_mid + 1, "file descriptors at {i}: {curve:?}");
        assert!(*threads <= threads_mid + 2, "threads at {i}: {curve:?}");
    }
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}
