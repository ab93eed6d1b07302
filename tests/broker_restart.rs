//! The broker restarted (`rabbitmqctl stop_app` / `start_app`) with jobs queued in the durable
//! topology: the workers recover without being restarted and every job is answered.
//!
//! Its own test binary, because it stops the broker every other test talks to (cargo runs test
//! binaries one after another).

mod common;

use common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use midnit_worker::protocol::{decode_reply, Status, CONTENT_TYPE};
use midnit_worker::samples;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

async fn connect() -> lapin::Connection {
    let deadline = Instant::now() + REPLY;
    loop {
        match lapin::Connection::connect(&amqp_url(), Default::default()).await {
            Ok(conn) => return conn,
            Err(e) => {
                assert!(Instant::now() < deadline, "broker never came back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A durable named reply queue: the backend's side of the durable topology (a direct reply-to
/// requester would lose its replies with its connection).
async fn declare_reply_queue(ch: &lapin::Channel, name: &str) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), durable, args).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_workers_recover_and_every_queued_job_is_answered() {
    const JOBS: usize = 40;
    let queue = unique_queue("restart");
    let replies = format!("{queue}.replies");
    let env = [
        ("MIDNIT_TOPOLOGY", "durable"),
        ("MIDNIT_RECONNECT_INITIAL_MS", "100"),
        ("MIDNIT_RECONNECT_MAX_MS", "1000"),
    ];
    let mut workers = [
        spawn_binary_env(&queue, 1, &env),
        spawn_binary_env(&queue, 1, &env),
    ];
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare_reply_queue(&ch, &replies).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // Jobs heavy enough that most are still queued when the broker stops.
    let body = body_of(&request(
        samples::jpeg(&samples::figure_photo(2400, 1800, 8), 90),
        vec![output("t", "jpeg", Some(256), None)],
    ));
    for i in 0..JOBS {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(CONTENT_TYPE.into())
            .with_correlation_id(format!("job-{i}").into())
            .with_reply_to(replies.as_str().into());
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let _ = conn.close(200, "restarting the broker".into()).await;

    workers[0].wait_for_log("job done", 2);
    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(Duration::from_secs(1));
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    for w in &workers {
        w.wait_for_log("reconnected to the broker", 1);
    }
    let conn = connect().await;
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
    delete_queue(&queue).await;
}
