//! The harness every test shares: a real RabbitMQ, a unique queue per test, workers
//! in-process ([`spawn_worker`]) or as the real binary ([`binary`]), requests, CBOR helpers.

mod binary;
pub mod cbor;
mod http;
mod rabbit;

pub use binary::*;
pub use http::*;
pub use rabbit::*;

use midnit_worker::app::config::{BrokerSettings, Config};
use midnit_worker::app::worker::{Drained, Handling, ServeError, Worker};
use midnit_worker::client::{Client, RawProps};
use midnit_worker::protocol::{decode_reply, encode_request, OutputSpec, Reply, Request};
use midnit_worker::render::executor::Executor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The bytes of a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).expect("hex digits"))
        .collect()
}

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

/// Settings of a test's broker: the local RabbitMQ and a queue of its own.
pub fn broker_settings(test: &str) -> BrokerSettings {
    BrokerSettings {
        amqp_url: midnit_worker::app::config::SecretUrl::new(amqp_url()),
        queue: unique_queue(test),
        ..BrokerSettings::default()
    }
}

pub fn config(test: &str, spill: &Path) -> Config {
    let mut config = Config {
        broker: broker_settings(test),
        ..Config::default()
    };
    config.worker.concurrency = 2;
    config.worker.drain_timeout_secs = 60;
    config.wipe.spill_dir = spill.join("spill");
    config.executor.renderer_binary = Some(env!("CARGO_BIN_EXE_midnit-worker").into());
    config
}

/// A worker running inside the test process, on the real broker.
pub struct TestWorker {
    pub config: Config,
    pub shared: Arc<Handling>,
    stop: CancellationToken,
    handle: JoinHandle<Result<Drained, ServeError>>,
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
    let shared = worker.handling();
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
        Client::connect(&amqp_url(), &self.config.broker.queue)
            .await
            .unwrap()
    }

    pub fn spill_dir(&self) -> PathBuf {
        self.config.wipe.spill_dir.clone()
    }

    /// Stops the worker, then deletes its queues.
    pub async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().expect("clean drain");
        delete_topology(&self.config.broker).await;
    }
}

pub async fn delete_topology(config: &BrokerSettings) {
    let _ = midnit_worker::app::broker::delete_topology(config, "test-cleanup").await;
}

/// Deletes the topology of a worker that consumed `queue` with the default names.
pub async fn delete_queue(queue: &str) {
    let c = BrokerSettings {
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
        preset: None,
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into(),
        recipe: None,
        outputs,
    }
}

/// A job that takes seconds: a 12 MP photo to full-size PNG and WebP.
pub fn slow_job() -> Request {
    let photo = midnit_worker::tools::samples::with_exif(
        &midnit_worker::tools::samples::jpeg(
            &midnit_worker::tools::samples::figure_photo(4000, 3000, 11),
            95,
        ),
        1,
    );
    request(
        photo,
        vec![
            output("full", "png", None, None),
            output("fullw", "webp", None, None),
        ],
    )
}

/// A small job that renders in a few milliseconds: a 64×48 photo to PNG.
pub fn tiny_job() -> Request {
    request(
        midnit_worker::tools::samples::jpeg(
            &midnit_worker::tools::samples::figure_photo(64, 48, 3),
            90,
        ),
        vec![output("t", "png", None, None)],
    )
}

pub async fn render(client: &Client, req: &Request) -> Reply {
    client.reply(req, REPLY).await.expect("a reply")
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

/// Runs a tool from Debian's packages (`.ci/run` installs them) and returns its stdout;
/// panics with its stderr if it fails.
pub fn run_tool(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (installed by .ci/run from Debian's packages)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
