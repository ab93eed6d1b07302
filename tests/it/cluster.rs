//! A RabbitMQ cluster that loses nodes, with nothing lost: three real nodes on this machine
//! (`tests/rabbitmq-node.sh`), the durable topology (a quorum queue replicated on all three),
//! two real worker binaries each given every node's URL and starting on different nodes, a
//! backend publishing 500 jobs with confirms and taking replies from a quorum reply queue. Mid
//! run the jobs queue's leader node is killed (SIGKILL) and brought back, then a second node is
//! stopped and restarted. Every job must be answered; duplicates are counted and bounded by
//! what the workers had in flight when their node went.

use crate::harness::*;
use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOBS: usize = 500;
const WORKERS: usize = 2;
const CONCURRENCY: usize = 2;

/// Three clustered RabbitMQ nodes, taken down when dropped.
struct Cluster {
    state: PathBuf,
    _dir: tempfile::TempDir,
    /// Short names (c1, c2, c3), full node names and AMQP URLs.
    nodes: Vec<(String, String, String)>,
}

impl Cluster {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rabbitmq-node.sh")
    }

    fn run(state: &std::path::Path, args: &[&str]) -> String {
        let out = Command::new(Self::script())
            .args(args)
            .env("MIDNIT_RABBIT_STATE", state)
            .env("MIDNIT_RABBIT_TIMEOUT", "120")
            .output()
            .expect("tests/rabbitmq-node.sh runs");
        assert!(
            out.status.success(),
            "rabbitmq-node.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn up() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("midnit-cluster-")
            .tempdir_in("/tmp")
            .unwrap();
        let state = dir.path().join("state");
        // Below Linux's ephemeral ports (32768+), so no outgoing connection holds one; apart
        // from the compose check's (31000+) and the extra nodes' (5700+, 25700+).
        let base = 30000 + (std::process::id() % 40) as u16 * 20;
        let out = Self::run(&state, &["cluster-up", &base.to_string()]);
        let nodes = out
            .lines()
            .filter_map(|l| l.strip_prefix("node "))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w[0].to_owned(), w[1].to_owned(), w[2].to_owned())
            })
            .collect::<Vec<_>>();
        assert_eq!(nodes.len(), 3, "{out}");
        Self {
            state,
            _dir: dir,
            nodes,
        }
    }

    fn ctl(&self, args: &[&str]) -> String {
        Self::run(&self.state, args)
    }

    fn short_of(&self, node: &str) -> String {
        self.nodes
            .iter()
            .find(|(_, name, _)| name == node.trim())
            .map(|(short, _, _)| short.clone())
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    fn url(&self, short: &str) -> String {
        self.nodes
            .iter()
            .find(|(s, _, _)| s == short)
            .unwrap()
            .2
            .clone()
    }

    /// The URL list starting at `first`, then round the cluster.
    fn urls_from(&self, first: usize) -> String {
        (0..3)
            .map(|i| self.nodes[(first + i) % 3].2.clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("cluster-down")
            .env("MIDNIT_RABBIT_STATE", &self.state)
            .output();
    }
}

type Replies = Arc<Mutex<BTreeMap<String, Vec<bool>>>>;

/// The backend: a connection to one node, a quorum reply queue, publishing with confirms.
struct Backend {
    conn: lapin::Connection,
    ch: lapin::Channel,
    reply_queue: String,
    replies: Replies,
}

impl Backend {
    async fn on(url: &str, test: &str) -> Self {
        let conn = lapin::Connection::connect(url, Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        let reply_queue = unique_queue(&format!("{test}.replies"));
        declare_quorum_queue(&ch, &reply_queue).await;
        let consume_ch = conn.create_channel().await.unwrap();
        consume_ch.basic_qos(100, Default::default()).await.unwrap();
        let mut consumer = consume(&consume_ch, &reply_queue, false).await;
        let replies: Replies = Arc::default();
        let sink = replies.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let id = correlation_id(&d);
                let ok = midnit_worker::protocol::decode_reply(&d.data)
                    .is_ok_and(|r| r.status == midnit_worker::protocol::Status::Ok);
                sink.lock().unwrap().entry(id).or_default().push(ok);
                let _ = d.acker.ack(BasicAckOptions::default()).await;
            }
        });
        Self {
            conn,
            ch,
            reply_queue,
            replies,
        }
    }

    async fn publish(&self, jobs: &str, ids: std::ops::Range<usize>) {
        let body = body_of(&tiny_job());
        for i in ids {
            let id = format!("job-{i}");
            let confirm =
                publish_request(&self.ch, jobs, &id, &self.reply_queue, &body, true).await;
            assert!(confirm, "job-{i} was not confirmed by the cluster");
        }
    }

    fn answered(&self) -> usize {
        self.replies.lock().unwrap().len()
    }

    async fn wait_answered(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.answered() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} jobs answered",
                self.answered()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_loses_its_leader_node_and_then_another_loses_no_job() {
    let cluster = Cluster::up();
    let queue = unique_queue("cluster");
    // Each worker is given every node, starting on a different one. A delivery returned by a
    // lost connection counts against the quorum queue's delivery limit: leave room for it.
    let workers: Vec<BinaryWorker> = (0..WORKERS)
        .map(|i| {
            spawn_binary_env(
                &queue,
                CONCURRENCY,
                &[
                    ("MIDNIT_AMQP_URL", cluster.urls_from(i).as_str()),
                    ("MIDNIT_TOPOLOGY", "durable"),
                    ("MIDNIT_DELIVERY_LIMIT", "10"),
                    ("MIDNIT_RECONNECT_INITIAL_MS", "100"),
                    ("MIDNIT_RECONNECT_MAX_MS", "2000"),
                    ("MIDNIT_IDLE_WIPE_SECS", "0"),
                ],
            )
        })
        .collect();
    let leader = cluster.short_of(&cluster.ctl(&["leader", &queue]));
    let others: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .filter(|s| **s != leader)
        .map(|s| s.to_string())
        .collect();
    let (second, backend_node) = (&others[0], &others[1]);
    let backend = Backend::on(&cluster.url(backend_node), "cluster").await;
    eprintln!("leader {leader}, then {second}; the backend is on {backend_node}");

    // A first part, then the leader's node is killed mid-run.
    backend.publish(&queue, 0..200).await;
    backend.wait_answered(60).await;
    eprintln!("{}", cluster.ctl(&["kill", &leader]).trim());
    backend.publish(&queue, 200..350).await;
    backend.wait_answered(250).await;
    let new_leader = cluster.short_of(&cluster.ctl(&["leader", &queue]));
    assert_ne!(new_leader, leader, "a new leader was elected");
    eprintln!("{}", cluster.ctl(&["start", &leader]).trim());
    // Then a second node is stopped (cleanly) while jobs flow, and started again.
    backend.publish(&queue, 350..420).await;
    eprintln!("{}", cluster.ctl(&["stop", second]).trim());
    backend.publish(&queue, 420..JOBS).await;
    backend.wait_answered(450).await;
    eprintln!("{}", cluster.ctl(&["start", second]).trim());
    backend.wait_answered(JOBS).await;
    // Late duplicates have their chance to arrive before they are counted.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let replies = backend.replies.lock().unwrap().clone();
    let missing: Vec<usize> = (0..JOBS)
        .filter(|i| !replies.contains_key(&format!("job-{i}")))
        .collect();
    assert!(missing.is_empty(), "jobs never answered: {missing:?}");
    let failed: Vec<&String> = replies
        .iter()
        .filter(|(_, oks)| !oks.iter().all(|ok| *ok))
        .map(|(id, _)| id)
        .collect();
    assert!(failed.is_empty(), "jobs answered with an error: {failed:?}");
    let total: usize = replies.values().map(Vec::len).sum();
    let duplicates = total - JOBS;
    // A duplicate is a job whose reply was published but whose ack died with its connection:
    // at most what a worker had unacked (its prefetch) on each connection it lost.
    let bound = 2 * WORKERS * CONCURRENCY;
    eprintln!("{JOBS} jobs, {total} replies, {duplicates} duplicates (bound {bound})");
    assert!(duplicates <= bound, "{duplicates} duplicates");
    let reconnects: usize = workers
        .iter()
        .map(|w| w.log_text().matches("reconnected to the broker").count())
        .sum();
    assert!(
        reconnects >= 1,
        "a worker on a lost node reconnected elsewhere"
    );
    for mut worker in workers {
        assert_eq!(worker.get("/readyz").0, 200, "{}", worker.log_text());
        worker.signal(libc::SIGTERM);
        assert!(worker.wait_exit().success(), "{}", worker.log_text());
    }
    let _ = backend.conn.close(200, "done".into()).await;
}
