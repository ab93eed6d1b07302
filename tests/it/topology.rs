//! The two topologies against the real broker: what each declares, and a poison message (one
//! that kills its renderer every time) ending in the dead-letter queue after the delivery limit,
//! answered once with an error — never an endless redelivery loop.

use crate::harness::*;
use midnit_worker::app::config::Topology;
use midnit_worker::protocol::Status;

/// `rabbitmqctl list_queues` for one queue: its type and arguments.
fn queue_info(queue: &str) -> serde_json::Value {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "--quiet",
            "--formatter",
            "json",
            "name",
            "type",
            "durable",
            "arguments",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .find(|q| q["name"] == queue)
        .unwrap_or_else(|| panic!("{queue} not declared"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_topology_declares_its_queue_kind_and_a_dead_letter_queue_with_a_ttl() {
    for (topology, kind) in [
        (Topology::Transient, "classic"),
        (Topology::Durable, "quorum"),
    ] {
        let w = spawn_worker_with(
            "topology",
            |c| {
                c.broker.topology = topology;
                c.broker.delivery_limit = 4;
                c.broker.dead_letter_ttl_secs = 60;
            },
            None,
        )
        .await;
        let jobs = queue_info(&w.config.broker.queue);
        assert_eq!(jobs["type"], kind, "{jobs}");
        let args = jobs["arguments"].to_string();
        // No dead-letter exchange: what the broker itself would dead-letter holds a photo.
        assert!(!args.contains("x-dead-letter-exchange"), "{args}");
        assert_eq!(
            args.contains("x-delivery-limit"),
            topology == Topology::Durable,
            "{args}"
        );
        let dead = queue_info(&w.config.broker.dlq());
        assert!(dead["arguments"].to_string().contains("60000"), "{dead}");
        // A job goes through either way; the durable client publishes persistent with confirms.
        let client = midnit_worker::client::for_worker(&w.config.broker)
            .await
            .unwrap();
        let job = tiny_job();
        assert_eq!(render(&client, &job).await.status, Status::Ok);
        client.close().await;
        w.stop().await;
    }
}

/// A renderer that says it is ready, then dies on every job.
fn crashing_renderer(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("crash");
    std::fs::write(&path, "#!/bin/sh\nprintf R\nkill -SEGV $$\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_retried_to_the_delivery_limit_then_answered_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let renderer = crashing_renderer(dir.path());
    // Durable counts deliveries (x-delivery-count); transient can only tell a redelivery.
    for (topology, limit, attempts) in [(Topology::Durable, 3, 3), (Topology::Transient, 3, 2)] {
        let w = spawn_worker_with(
            "poison",
            |c| {
                c.broker.topology = topology;
                c.broker.delivery_limit = limit;
                c.executor.renderer_binary = Some(renderer.clone());
            },
            None,
        )
        .await;
        let client = midnit_worker::client::for_worker(&w.config.broker)
            .await
            .unwrap();
        let job = tiny_job();
        let reply = render(&client, &job).await;
        assert_eq!(error_code(&reply), "internal", "{topology:?}");
        // The reply goes out before the message is dead-lettered.
        let deadline = std::time::Instant::now() + REPLY;
        while w.shared.stats.snapshot().rejected == 0 {
            assert!(std::time::Instant::now() < deadline, "never dead-lettered");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let stats = w.shared.stats.snapshot();
        assert_eq!(stats.crash_requeues, attempts - 1, "{topology:?}");
        assert_eq!(stats.rejected, 1, "{topology:?}: dead-lettered once");
        let conn = lapin::Connection::connect(&amqp_url(), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let dead = wait_get(&ch, &w.config.broker.dlq()).await;
        let record: serde_json::Value = serde_json::from_slice(&dead.data).expect("a record");
        assert_eq!(record["reason"], "renderer_crashed", "{topology:?}");
        assert_eq!(record["code"], "internal");
        assert_eq!(record["attempt"], attempts, "{topology:?}");
        let photo = &job.inputs["photo"];
        assert!(
            !dead
                .data
                .windows(16)
                .any(|w| photo.windows(16).any(|p| p == w)),
            "the record holds no piece of the photo"
        );
        // Nothing is left to loop on: the jobs queue is empty and no second reply comes.
        let again = ch
            .basic_get(w.config.broker.queue.as_str().into(), Default::default())
            .await
            .unwrap();
        assert!(again.is_none(), "{topology:?}: the job is still queued");
        let _ = conn.close(200, "done".into()).await;
        client.close().await;
        w.stop().await;
    }
}
