//! The three client packages (Rust `clients/rust`, Python `clients/python`, TypeScript
//! `clients/typescript`) against the real worker binary on the real broker: every conformance
//! vector (`docs/contract/vectors.json`: a thumbnail, a recipe, presets, every error class),
//! 50 jobs in flight, a worker killed mid-job, no reply, sealed jobs (contract v2) to a
//! worker that takes nothing else, and every reply's attestation checked against the pinned
//! key. The Python and TypeScript suites run as separate processes, as a
//! backend would; they need `pip install ./clients/python` and `npm ci && npm run build` in
//! `clients/typescript` (`.ci/run` does both).

use crate::harness::*;
use crate::vectors::{PATH as VECTORS, SEED};
use base64::Engine as _;
use midnit_worker::client::{Client, Options, RenderError};
use midnit_worker::protocol::{OutputSpec, Request};
use midnit_worker::wipe::{hex, ReceiptSigner};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The workers the vectors run against, and what a client suite needs to know of them.
struct Contract {
    _dir: tempfile::TempDir,
    default: BinaryWorker,
    presets_only: BinaryWorker,
    sealed: BinaryWorker,
    queues: (String, String, String),
    directory_key: [u8; 32],
    key_file: PathBuf,
    slow_body: PathBuf,
    public_key: [u8; 32],
}

impl Contract {
    fn start(test: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("receipt.key");
        std::fs::write(&key_file, hex(&SEED)).unwrap();
        let slow_body = dir.path().join("slow.cbor");
        std::fs::write(&slow_body, body_of(&slow_job())).unwrap();
        let config = format!("{ROOT}/docs/contract/worker.toml");
        let key = key_file.to_str().unwrap();
        let env = [
            ("MIDNIT_CONFIG", config.as_str()),
            ("MIDNIT_RECEIPT_KEY_FILE", key),
        ];
        let queues = (
            unique_queue(test),
            unique_queue(&format!("{test}.presets_only")),
            unique_queue(&format!("{test}.sealed")),
        );
        let default = spawn_binary_env(&queues.0, 2, &env);
        let only_env = [env[0], env[1], ("MIDNIT_PRESETS_ONLY", "true")];
        let presets_only = spawn_binary_env(&queues.1, 1, &only_env);
        // A worker taking only sealed requests, with a fleet key state made by `keys init`.
        let (state, directory_key) = crate::sealed_jobs::keys_init(dir.path(), 3600);
        let state = state.display().to_string();
        let sealed_env = [
            env[0],
            env[1],
            ("MIDNIT_SEALED", "required"),
            ("MIDNIT_KEY_STATE_FILE", state.as_str()),
        ];
        let sealed = spawn_binary_env(&queues.2, 1, &sealed_env);
        Self {
            _dir: dir,
            default,
            presets_only,
            sealed,
            directory_key,
            queues,
            key_file,
            slow_body,
            public_key: ReceiptSigner::from_seed(&SEED).public_key(),
        }
    }

    /// Stops the workers and removes their queues.
    async fn stop(self) {
        drop((self.default, self.presets_only, self.sealed));
        tokio::time::sleep(Duration::from_millis(100)).await;
        delete_queue(&self.queues.0).await;
        delete_queue(&self.queues.1).await;
        delete_queue(&self.queues.2).await;
    }

    /// The environment a client suite reads.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CONTRACT_URL", amqp_url()),
            ("CONTRACT_QUEUE", self.queues.0.clone()),
            ("CONTRACT_QUEUE_PRESETS_ONLY", self.queues.1.clone()),
            ("CONTRACT_PUBLIC_KEY", hex(&self.public_key)),
            ("CONTRACT_VECTORS", VECTORS.into()),
            (
                "CONTRACT_WORKER",
                env!("CARGO_BIN_EXE_midnit-worker").into(),
            ),
            ("CONTRACT_KEY_FILE", self.key_file.display().to_string()),
            ("CONTRACT_SLOW_BODY", self.slow_body.display().to_string()),
            ("CONTRACT_QUEUE_SEALED", self.queues.2.clone()),
            (
                "CONTRACT_KEYS_URL",
                format!("http://{}/keys", self.sealed.http_addr()),
            ),
            ("CONTRACT_DIRECTORY_KEY", hex(&self.directory_key)),
        ]
    }

    /// Runs a client's suite as its own process and fails with its output unless it passes.
    async fn run_suite(&self, what: &str, program: &str, args: &[&str], dir: &Path, ran: &str) {
        let mut command = std::process::Command::new(program);
        command.args(args).current_dir(dir);
        for (k, v) in self.env() {
            command.env(k, v);
        }
        // The suite starts workers of its own; settings of the test's own environment are
        // not theirs.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MIDNIT_")) {
            command.env_remove(k);
        }
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: {program} does not run: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "the {what} client's suite failed:\n{text}"
        );
        let skipped = text
            .lines()
            .any(|l| l.contains("skipped") && l.trim() != "# skipped 0");
        assert!(!skipped, "the {what} suite skipped tests:\n{text}");
        assert!(
            text.contains(ran),
            "the {what} suite did not run all its tests:\n{text}"
        );
    }
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap()
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_passes_the_contract_suite_against_the_real_worker() {
    let c = Contract::start("clients.python");
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import midnit_client, sys; sys.exit('/clients/python/src/' in midnit_client.__file__)",
        ])
        .current_dir("/")
        .status()
        .expect("python3 runs");
    assert!(
        check.success(),
        "the package is installed: pip install ./clients/python"
    );
    let tests = format!("{ROOT}/clients/python/tests");
    c.run_suite(
        "Python",
        "python3",
        &["-m", "unittest", "discover", "-v", "-s", &tests],
        Path::new("/"),
        "Ran 7 tests",
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_passes_the_contract_suite_against_the_real_worker() {
    let c = Contract::start("clients.typescript");
    let dir = PathBuf::from(format!("{ROOT}/clients/typescript"));
    assert!(
        dir.join("dist/index.js").exists(),
        "the package is built: cd clients/typescript && npm ci && npm run build"
    );
    c.run_suite("TypeScript", "node", &["--test", "test/"], &dir, "# pass 7")
        .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_passes_every_conformance_vector_against_the_real_worker() {
    let c = Contract::start("clients.rust");
    let connect = |queue: &str| {
        let queue = queue.to_owned();
        let key = c.public_key;
        async move {
            Client::connect(&amqp_url(), &queue)
                .await
                .unwrap()
                .with_pinned_key(key)
        }
    };
    let default = connect(&c.queues.0).await;
    let only = connect(&c.queues.1).await;
    let v = vectors();
    // The offline vector: the exact signed bytes, and the facts.
    let a = &v["attestation"];
    let cose = unhex(a["attestation"].as_str().unwrap());
    let facts = midnit_worker::wipe::verify(&cose, &c.public_key).unwrap();
    assert_eq!(facts.correlation_id.as_deref(), Some("job-1"));
    assert_eq!(
        serde_json::to_value(&facts.receipt).unwrap(),
        a["facts"]["receipt"]
    );
    for job in v["jobs"].as_array().unwrap() {
        let name = job["name"].as_str().unwrap();
        let client = if job["queue"] == "presets_only" {
            &only
        } else {
            &default
        };
        let deadline = if job["deadline"] == "past" {
            0
        } else {
            midnit_worker::wipe::now_unix_ms() + 60_000
        };
        let id = client.new_correlation_id();
        let body = b64(&job["body"]);
        let props = midnit_worker::client::RawProps {
            deadline_ms: Some(deadline),
            ..midnit_worker::client::RawProps::request(&id)
        };
        let rx = client.send_raw(&body, &props).await.unwrap();
        let bytes = Client::await_raw(rx, REPLY).await.expect(name);
        let reply = midnit_worker::protocol::decode_reply(&bytes).unwrap();
        // The machine-readable contract describes what really crosses the wire.
        let cddl = |rule: &str, bytes: &[u8]| {
            crate::contract::validate(rule, bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        cddl("reply", &bytes);
        cddl("cose-sign1", reply.attestation.as_ref().expect("attested"));
        if job["expect"]["status"] == "ok" {
            cddl("request", &body);
        }
        reply
            .verify(&c.public_key, Some(&id), &body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expect = &job["expect"];
        assert_eq!(
            expect["status"],
            serde_json::to_value(reply.status).unwrap(),
            "{name}: {:?}",
            reply.error
        );
        if let Some(error) = &reply.error {
            assert_eq!(error.code, expect["code"].as_str().unwrap(), "{name}");
            assert_eq!(
                error.retryable,
                expect["retryable"].as_bool().unwrap(),
                "{name}"
            );
            let prefix = expect["message_prefix"].as_str().unwrap();
            assert!(
                error.message.starts_with(prefix),
                "{name}: {}",
                error.message
            );
        } else {
            let shapes: Vec<Value> = reply
                .outputs
                .iter()
                .map(|o| serde_json::json!({"name": o.name, "format": o.format, "width": o.width, "height": o.height}))
                .collect();
            assert_eq!(Value::from(shapes), expect["outputs"], "{name}");
        }
    }
    // The typed call: outputs, or the typed error of the code.
    let photo = samples_photo(&v);
    let request = Request::thumbnail(photo.clone(), OutputSpec::new("thumb", "jpeg").width(32));
    let done = default.render(&request, &Options::default()).await.unwrap();
    assert_eq!((done.outputs[0].width, done.outputs[0].height), (32, 24));
    assert!(done.attested.is_some());
    let avatar = Request::preset("avatar", [("photo", photo.clone())]);
    let done = default.render(&avatar, &Options::default()).await.unwrap();
    assert_eq!(done.output("avatar").map(|o| o.width), Some(32));
    let bad = Request::thumbnail(photo.clone(), OutputSpec::new("thumb", "jpeg").width(9000));
    match default.render(&bad, &Options::default()).await {
        Err(e @ RenderError::Job { .. }) => {
            assert_eq!(
                e.code(),
                Some(midnit_worker::protocol::ErrorCode::LimitsOutput)
            );
            assert!(!e.retryable());
        }
        other => panic!("expected limits.output, got {other:?}"),
    }
    // 50 in flight on one client.
    let client = std::sync::Arc::new(default);
    let mut calls = Vec::new();
    for _ in 0..50 {
        let (client, request) = (client.clone(), request.clone());
        calls.push(tokio::spawn(async move {
            client.render(&request, &Options::default()).await
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().outputs[0].width, 32);
    }
    c.stop().await;
}

fn samples_photo(v: &Value) -> Vec<u8> {
    let thumbnail = &v["jobs"][0];
    assert_eq!(thumbnail["name"], "thumbnail");
    let request: Request = ciborium::from_reader(b64(&thumbnail["body"]).as_slice()).unwrap();
    request.inputs["photo"].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_outlives_a_killed_worker_and_reports_no_reply_as_retryable() {
    let queue = unique_queue("clients.rust.kill");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("receipt.key");
    std::fs::write(&key_file, hex(&SEED)).unwrap();
    let env = [("MIDNIT_RECEIPT_KEY_FILE", key_file.to_str().unwrap())];
    let mut victim = spawn_binary_env(&queue, 1, &env);
    let key = ReceiptSigner::from_seed(&SEED).public_key();
    let client = std::sync::Arc::new(
        Client::connect(&amqp_url(), &queue)
            .await
            .unwrap()
            .with_pinned_key(key),
    );
    let options = Options {
        timeout: Duration::from_secs(300),
        ..Options::default()
    };
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.render(&slow_job(), &options).await })
    };
    victim.wait_for_log("job received", 1);
    victim.signal(libc::SIGKILL);
    victim.wait_exit();
    assert!(
        !victim.log_text().contains("job done"),
        "the job finished before the kill"
    );
    let rescuer = spawn_binary_env(&queue, 1, &env);
    let done = call
        .await
        .unwrap()
        .expect("nothing lost: another worker answers");
    assert_eq!(
        (done.outputs[0].width, done.outputs[0].height),
        (4000, 3000)
    );
    assert!(done.attested.is_some());
    rescuer.wait_for_log("job done", 1);
    // Nobody consumes this queue: no reply, retried, then reported as retryable.
    let nobody = Client::connect(&amqp_url(), &unique_queue("clients.rust.nobody"))
        .await
        .unwrap();
    let quick = Options {
        timeout: Duration::from_millis(500),
        retries: 2,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    match nobody.render(&tiny_job(), &quick).await {
        Err(e @ RenderError::NoReply(_)) => assert!(e.retryable()),
        other => panic!("expected no reply, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "three attempts of 0.5 s"
    );
    drop(rescuer);
    delete_queue(&queue).await;
}
