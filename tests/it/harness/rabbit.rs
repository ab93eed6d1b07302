//! The broker side of tests: taking messages off a queue, an extra RabbitMQ node with its own
//! settings, and a reply queue that keeps every reply to count them.

use super::REPLY;
use midnit_worker::protocol::{decode_reply, Reply};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Declares a durable quorum queue: a backend's named reply queue in the durable topology (a
/// direct reply-to requester would lose its replies with its connection), replicated across a
/// cluster's nodes.
pub async fn declare_quorum_queue(ch: &lapin::Channel, name: &str) {
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), durable, args).await.unwrap();
}

/// A consumer on `queue`; with `no_ack` the broker forgets each message as it delivers it.
pub async fn consume(ch: &lapin::Channel, queue: &str, no_ack: bool) -> lapin::Consumer {
    let opts = lapin::options::BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    ch.basic_consume(queue.into(), "".into(), opts, Default::default())
        .await
        .unwrap()
}

/// A delivery's correlation id (empty without one).
pub fn correlation_id(d: &lapin::message::Delivery) -> String {
    d.properties
        .correlation_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Publishes a request `body` to `jobs` with correlation id `id`, replies to `reply_to`
/// (`persistent`: delivery mode 2, as the durable topology's backends publish); whether the
/// broker acked it (always false on a channel not in confirm mode).
pub async fn publish_request(
    ch: &lapin::Channel,
    jobs: &str,
    id: &str,
    reply_to: &str,
    body: &[u8],
    persistent: bool,
) -> bool {
    let props = lapin::BasicProperties::default()
        .with_content_type("application/cbor".into())
        .with_correlation_id(id.into())
        .with_reply_to(reply_to.into())
        .with_delivery_mode(if persistent { 2 } else { 1 });
    ch.basic_publish("".into(), jobs.into(), Default::default(), body, props)
        .await
        .unwrap()
        .await
        .unwrap()
        .is_ack()
}

/// Takes one message from `queue`, waiting until one arrives (bounded).
pub async fn wait_get(ch: &lapin::Channel, queue: &str) -> lapin::message::Delivery {
    let deadline = Instant::now() + REPLY;
    loop {
        let opts = lapin::options::BasicGetOptions { no_ack: true };
        if let Some(m) = ch.basic_get(queue.into(), opts).await.unwrap() {
            return m.delivery;
        }
        assert!(Instant::now() < deadline, "nothing arrived on {queue}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An extra RabbitMQ node on this machine — its own node name, ports, configuration and data
/// directory — stopped and removed when dropped. `extra_conf` is added to its rabbitmq.conf.
pub struct ExtraNode {
    pub name: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl ExtraNode {
    pub fn start(tag: &str, port: u16, extra_conf: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("midnit-rabbit-")
            .tempdir_in("/tmp")
            .unwrap();
        let name = format!("{tag}{}@localhost", std::process::id());
        let conf = dir.path().join("rabbitmq.conf");
        std::fs::write(
            &conf,
            format!("listeners.tcp.local = 127.0.0.1:{port}\n{extra_conf}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        // The broker runs as the rabbitmq user: its directory must be that user's.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status();
        let p = |f: &str| dir.path().join(f);
        let started = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", (port + 20000).to_string())
            .env("RABBITMQ_CONFIG_FILE", p("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", p("mnesia"))
            .env("RABBITMQ_LOG_BASE", p("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", p("pid"))
            .status()
            .expect("rabbitmq-server runs");
        assert!(started.success(), "rabbitmq-server -detached failed");
        let node = Self { name, port, dir };
        // await_startup needs the node registered first: until then it fails at once.
        let deadline = Instant::now() + REPLY;
        loop {
            let up = node.ctl(&["await_startup", "--timeout", "60"]);
            if up.status.success() {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "the extra RabbitMQ node did not start: {}",
                String::from_utf8_lossy(&up.stderr)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("rabbitmqctl")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("rabbitmqctl runs")
    }
}

impl Drop for ExtraNode {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        let _ = self.dir.path();
    }
}

/// Every reply received so far: (correlation id, body).
type Received = Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Replies to a named, exclusive queue, all of them kept: to count how many came per job.
pub struct Replies {
    conn: lapin::Connection,
    ch: lapin::Channel,
    pub queue: String,
    got: Received,
}

impl Replies {
    pub async fn on(url: &str) -> Self {
        use futures_util::StreamExt;
        let conn = lapin::Connection::connect(url, Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let opts = lapin::options::QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare("".into(), opts, Default::default())
            .await
            .unwrap();
        let queue = q.name().to_string();
        let mut consumer = consume(&ch, &queue, true).await;
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                sink.lock().unwrap().push((correlation_id(&d), d.data));
            }
        });
        Self {
            conn,
            ch,
            queue,
            got,
        }
    }

    /// Publishes `body` to `jobs` with correlation id `id`, replies to this queue.
    pub async fn send(&self, jobs: &str, id: &str, body: &[u8]) {
        publish_request(&self.ch, jobs, id, &self.queue, body, false).await;
    }

    /// The first reply for `id` (waiting up to [`REPLY`]).
    pub async fn first(&self, id: &str) -> Reply {
        let deadline = Instant::now() + REPLY;
        loop {
            if let Some((_, body)) = self.got.lock().unwrap().iter().find(|(i, _)| i == id) {
                return decode_reply(body).expect("a valid v1 reply");
            }
            assert!(Instant::now() < deadline, "no reply for {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many replies came for `id`.
    pub fn count(&self, id: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| i == id)
            .count()
    }

    /// The size of the first reply for `id`.
    pub fn size(&self, id: &str) -> usize {
        let got = self.got.lock().unwrap();
        got.iter()
            .find(|(i, _)| i == id)
            .map_or(0, |(_, b)| b.len())
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}
