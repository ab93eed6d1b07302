//! Test harness: real RabbitMQ, a unique queue per test, workers in-process or as the real
//! binary.
#![allow(dead_code)]

use midnit_worker::client::{Client, RawProps};
use midnit_worker::config::Config;
use midnit_worker::executor::Executor;
use midnit_worker::protocol::{decode_reply, encode_request, OutputSpec, Reply, Request};
use midnit_worker::serve::{ServeError, Worker};
use midnit_worker::worker::Shared;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound on any single reply; never a performance assertion.
pub const REPLY: Duration = Duration::from_secs(90);

pub fn amqp_url() -> String {
    std::env::var("MIDNIT_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn unique_queue(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test.{test}.{}.{nanos}", std::process::id())
}

pub fn config(test: &str, spill: &Path) -> Config {
    Config {
        amqp_url: midnit_worker::config::SecretUrl::new(amqp_url()),
        queue: unique_queue(test),
        concurrency: 2,
        spill_dir: spill.join("spill"),
        drain_timeout_secs: 60,
        renderer_binary: Some(env!("CARGO_BIN_EXE_midnit-worker").into()),
        ..Config::default()
    }
}

/// A worker running inside the test process, on the real broker.
pub struct TestWorker {
    pub config: Config,
    pub shared: Arc<Shared>,
    stop: CancellationToken,
    handle: JoinHandle<Result<midnit_worker::worker::Drained, ServeError>>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_worker(test: &str) -> TestWorker {
    spawn_worker_with(test, |_| {}, None).await
}

pub async fn spawn_worker_with(
    test: &str,
    tweak: impl FnOnce(&mut Config),
    executor: Option<Arc<dyn Executor>>,
) -> TestWorker {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(test, dir.path());
    tweak(&mut config);
    let worker = match executor {
        Some(e) => Worker::start_with(config.clone(), e).await,
        None => Worker::start(config.clone()).await,
    }
    .expect("worker starts against the local RabbitMQ");
    let shared = worker.shared();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    TestWorker {
        config,
        shared,
        stop,
        handle,
        _dir: dir,
    }
}

impl TestWorker {
    pub async fn client(&self) -> Client {
        Client::connect(&amqp_url(), &self.config.queue)
            .await
            .unwrap()
    }

    pub fn spill_dir(&self) -> PathBuf {
        self.config.spill_dir.clone()
    }

    /// Stops the worker, then deletes its queues.
    pub async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().expect("clean drain");
        delete_topology(&self.config).await;
    }
}

pub async fn delete_topology(config: &Config) {
    let _ = midnit_worker::broker::delete_topology(config, "test-cleanup").await;
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

/// Deletes the topology of a worker that consumed `queue` with the default names.
pub async fn delete_queue(queue: &str) {
    let c = Config {
        queue: queue.into(),
        ..Default::default()
    };
    delete_topology(&c).await;
}

pub fn output(name: &str, format: &str, w: Option<u32>, h: Option<u32>) -> OutputSpec {
    OutputSpec {
        name: name.into(),
        format: format.into(),
        width: w,
        height: h,
        ..OutputSpec::default()
    }
}

pub fn request(input: Vec<u8>, outputs: Vec<OutputSpec>) -> Request {
    Request {
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into(),
        recipe: None,
        outputs,
    }
}

/// A small job that renders in a few milliseconds: a 64×48 photo to PNG.
pub fn tiny_job() -> Request {
    request(
        midnit_worker::samples::jpeg(&midnit_worker::samples::figure_photo(64, 48, 3), 90),
        vec![output("t", "png", None, None)],
    )
}

pub async fn render(client: &Client, req: &Request) -> Reply {
    client.render(req, REPLY).await.expect("a reply")
}

/// Sends a raw body with well-formed properties and returns the decoded reply.
pub async fn send_body(client: &Client, body: &[u8]) -> Reply {
    let id = client.new_correlation_id();
    let rx = client
        .send_raw(body, &RawProps::request(&id))
        .await
        .unwrap();
    let bytes = Client::await_raw(rx, REPLY).await.expect("a reply");
    decode_reply(&bytes).expect("a valid v1 reply")
}

pub fn body_of(req: &Request) -> Vec<u8> {
    encode_request(req)
}

pub fn error_code(reply: &Reply) -> String {
    reply
        .error
        .as_ref()
        .map(|e| e.code.clone())
        .unwrap_or_else(|| "ok".into())
}

/// The real worker binary as a child process, its stderr going to a file.
pub struct BinaryWorker {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn spawn_binary(queue: &str, concurrency: usize) -> BinaryWorker {
    spawn_binary_env(queue, concurrency, &[])
}

/// The real worker binary with extra `MIDNIT_*` settings (`env` wins over the defaults here),
/// once it is consuming.
pub fn spawn_binary_env(queue: &str, concurrency: usize, env: &[(&str, &str)]) -> BinaryWorker {
    let worker = spawn_binary_started(queue, concurrency, env);
    worker.wait_for_log("consuming", 1);
    worker
}

/// The real worker binary, as soon as it runs (it may not have reached the broker).
pub fn spawn_binary_started(queue: &str, concurrency: usize, env: &[(&str, &str)]) -> BinaryWorker {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("serve")
        .env("MIDNIT_AMQP_URL", amqp_url())
        .env("MIDNIT_QUEUE", queue)
        .env("MIDNIT_CONCURRENCY", concurrency.to_string())
        .env("MIDNIT_SPILL_DIR", dir.path().join("spill"))
        .env("MIDNIT_LOG", "info")
        .env("MIDNIT_HTTP_ADDR", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the worker binary starts");
    BinaryWorker {
        child,
        log,
        _dir: dir,
    }
}

impl BinaryWorker {
    pub fn spill_dir(&self) -> PathBuf {
        self._dir.path().join("spill")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The address of its health and metrics listener, from its log.
    pub fn http_addr(&self) -> String {
        self.wait_for_log("health and metrics", 1);
        let log = strip_ansi(&self.log_text());
        let line = log
            .lines()
            .find(|l| l.contains("health and metrics"))
            .unwrap();
        let addr = line.split("addr=").nth(1).unwrap();
        addr.split_whitespace().next().unwrap().to_owned()
    }

    /// `GET path` on its health and metrics listener: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.http_addr(), path)
    }

    /// The worker's live child processes (its renderers).
    pub fn children(&self) -> Vec<u32> {
        let mut children = Vec::new();
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
        for task in tasks.filter_map(Result::ok) {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        children.sort_unstable();
        children
    }

    /// Waits until the worker's children satisfy `ok` (bounded, never a perf check).
    pub fn wait_for_children(&self, what: &str, ok: impl Fn(&[u32]) -> bool) -> Vec<u32> {
        let deadline = Instant::now() + REPLY;
        loop {
            let children = self.children();
            if ok(&children) {
                return children;
            }
            assert!(Instant::now() < deadline, "{what}: children {children:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until `needle` appears `count` times in the log (bounded, never a perf check).
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + REPLY;
        while self.log_text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` x{count} in:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + REPLY;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BinaryWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log text without terminal colour codes.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A minimal HTTP/1.1 GET: status code and body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the listener accepts");
    stream.set_read_timeout(Some(REPLY)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
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
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let id = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                sink.lock().unwrap().push((id, d.data));
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
        let props = lapin::BasicProperties::default()
            .with_content_type("application/cbor".into())
            .with_correlation_id(id.into())
            .with_reply_to(self.queue.as_str().into());
        self.ch
            .basic_publish("".into(), jobs.into(), Default::default(), body, props)
            .await
            .unwrap()
            .await
            .unwrap();
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
