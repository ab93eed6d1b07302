//! The RabbitMQ definitions in `deploy/rabbitmq/` are what the worker declares: imported into
//! the test broker (under a test queue name), a worker of the same topology starts on them —
//! RabbitMQ refuses a re-declaration with other arguments — and renders a job.

use crate::harness::*;
use midnit_worker::app::config::Topology;
use midnit_worker::protocol::Status;

fn import(definitions: &str, queue: &str) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(format!(
        "{}/deploy/rabbitmq/{definitions}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // Rename the queues, exchange and policies (and the policy patterns) for this test.
    let pattern = queue.replace('.', "\\\\.");
    let text = text
        .replace("^midnit\\\\.render", &format!("^{pattern}"))
        .replace("midnit.render", queue)
        .replace("\"midnit-", &format!("\"{queue}-"));
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("rabbitmqctl")
        .arg("import_definitions")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    file
}

fn clear_policies(queue: &str) {
    for policy in ["jobs-bounded", "dead-letters-bounded"] {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["clear_policy", &format!("{queue}-{policy}")])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_starts_on_the_deploy_definitions_of_each_topology() {
    for (file, topology) in [
        ("definitions.transient.json", Topology::Transient),
        ("definitions.durable.json", Topology::Durable),
    ] {
        let queue = unique_queue("definitions");
        let _imported = import(file, &queue);
        // The queues exist before any worker declares them: the worker's declaration must match.
        let conn = lapin::Connection::connect(&amqp_url(), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        for name in [queue.clone(), format!("{queue}.dead")] {
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            ch.queue_declare(name.as_str().into(), passive, Default::default())
                .await
                .unwrap_or_else(|e| panic!("{file} did not declare {name}: {e}"));
        }
        let _ = conn.close(200, "checked".into()).await;
        let w = spawn_worker_with(
            "definitions",
            |c| {
                c.broker.queue = queue.clone();
                c.broker.topology = topology;
            },
            None,
        )
        .await;
        let client = midnit_worker::client::for_worker(&w.config.broker)
            .await
            .unwrap();
        let job = tiny_job();
        assert_eq!(render(&client, &job).await.status, Status::Ok, "{file}");
        client.close().await;
        w.stop().await;
        clear_policies(&queue);
    }
}

/// The container image, proven without a container engine: `deploy/image-check.sh` builds the
/// runtime stage's root filesystem from Debian's packages with debootstrap (cached by the
/// stage's text), installs this binary into it, and runs it as the image would — PID 1 of its
/// own namespaces, uid 10001 with no capabilities, read-only root, a tmpfs at /spill, the
/// image's ENV, ENTRYPOINT and CMD — then sends jobs through the broker, runs the HEALTHCHECK
/// inside, and shows a disk-backed /spill is refused. Each check prints a line; all must pass.
#[test]
fn the_image_runtime_stage_runs_the_worker_read_only_as_its_user_with_a_tmpfs_spill() {
    let script = format!("{}/deploy/image-check.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(script)
        .arg(env!("CARGO_BIN_EXE_midnit-worker"))
        .env("MIDNIT_AMQP_URL", amqp_url())
        .output()
        .expect("deploy/image-check.sh runs");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 failed, 0 skipped"), "{text}");
    for check in ["start", "identity", "job", "read-only", "spill-on-disk"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.split_whitespace().nth(1) == Some(check)),
            "no passing `{check}` check:\n{text}"
        );
    }
}

/// Compose's broker, booted with its exact settings on a RabbitMQ node of the test's own
/// (`tests/rabbitmq-node.sh compose-check`): the rabbitmq.conf files compose mounts, and the
/// definitions its entrypoint script writes from the environment. The workers' user (its
/// password from the environment, as compose passes it) declares, publishes to and reads the
/// jobs queue; guest and a wrong password are refused; the management UI takes only the admin.
#[test]
fn the_compose_broker_creates_the_workers_user_from_the_environment_and_no_guest() {
    let script = format!("{}/tests/rabbitmq-node.sh", env!("CARGO_MANIFEST_DIR"));
    // Below Linux's ephemeral ports (32768+), apart from the cluster test's (30000–30812).
    let base = 31000 + (std::process::id() % 40) as u16 * 30;
    let out = std::process::Command::new(script)
        .args(["compose-check", &base.to_string()])
        .output()
        .expect("tests/rabbitmq-node.sh runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
}
