//! The broker restarted (`rabbitmqctl stop_app` / `start_app`) with jobs queued in the durable
//! topology: the workers recover without being restarted and every job is answered.
//!
//! The broker restarted is a RabbitMQ node of this test's own, so the tests running beside it
//! keep their broker.

use crate::harness::*;
use lapin::options::ConfirmSelectOptions;
use midnit_worker::protocol::{decode_reply, Status};
use midnit_worker::tools::samples;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn rabbitmqctl(node: &ExtraNode, args: &[&str]) {
    let out = node.ctl(args);
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn connect(url: &str) -> lapin::Connection {
    let deadline = Instant::now() + REPLY;
    loop {
        match lapin::Connection::connect(url, Default::default()).await {
            Ok(conn) => return conn,
            Err(e) => {
                assert!(Instant::now() < deadline, "broker never came back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_workers_recover_and_every_queued_job_is_answered() {
    const JOBS: usize = 40;
    let node = ExtraNode::start("restart", 5800 + (std::process::id() % 100) as u16, "");
    let url = node.url();
    let queue = unique_queue("restart");
    let replies = format!("{queue}.replies");
    let env = [
        ("MIDNIT_AMQP_URL", url.as_str()),
        ("MIDNIT_TOPOLOGY", "durable"),
        ("MIDNIT_RECONNECT_INITIAL_MS", "100"),
        ("MIDNIT_RECONNECT_MAX_MS", "1000"),
    ];
    let mut workers = [
        spawn_binary_env(&queue, 1, &env),
        spawn_binary_env(&queue, 1, &env),
    ];
    let conn = connect(&url).await;
    let ch = conn.create_channel().await.unwrap();
    declare_quorum_queue(&ch, &replies).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // Jobs heavy enough that most are still queued when the broker stops.
    let body = body_of(&request(
        samples::jpeg(&samples::figure_photo(2400, 1800, 8), 90),
        vec![output("t", "jpeg", Some(256), None)],
    ));
    for i in 0..JOBS {
        let acked = publish_request(&ch, &queue, &format!("job-{i}"), &replies, &body, true).await;
        assert!(acked, "job-{i} was not confirmed");
    }
    let _ = conn.close(200, "restarting the broker".into()).await;

    workers[0].wait_for_log("job done", 2);
    rabbitmqctl(&node, &["stop_app"]);
    std::thread::sleep(Duration::from_secs(1));
    rabbitmqctl(&node, &["start_app"]);
    rabbitmqctl(&node, &["await_startup"]);

    for w in &workers {
        w.wait_for_log("reconnected to the broker", 1);
    }
    let conn = connect(&url).await;
    let ch = conn.create_channel().await.unwrap();
    let mut answered = HashSet::new();
    let deadline = Instant::now() + REPLY * 2;
    while answered.len() < JOBS {
        assert!(
            Instant::now() < deadline,
            "only {} of {JOBS} answered",
            answered.len()
        );
        let opts = lapin::options::BasicGetOptions { no_ack: true };
        match ch.basic_get(replies.as_str().into(), opts).await.unwrap() {
            Some(m) => {
                let reply = decode_reply(&m.delivery.data).unwrap();
                assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
                let id = m.delivery.properties.correlation_id().clone().unwrap();
                answered.insert(id.to_string());
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    for w in &mut workers {
        assert!(w.child.try_wait().unwrap().is_none(), "{}", w.log_text());
    }
    let _ = ch
        .queue_delete(replies.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
    drop(workers);
    // The node, and every queue on it, goes with `node`.
}
