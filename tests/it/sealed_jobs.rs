//! Sealed jobs (contract v2) end to end, on the real broker: a request sealed to the fleet's
//! epoch key is rendered and answered with a reply only its reply key opens; plaintext is
//! refused where sealing is required; replays are refused; a copy of a sealed request
//! captured from the durable queue opens until its epoch's key is erased and never after; the
//! worker's memory holds no erased key and no older chain value; the broker's memory and
//! disk hold no piece of a sealed job's photo, pixels or outputs (while the same scan finds
//! them for plaintext jobs); a relay that forwards sealed bytes never holds the photo.

use crate::harness::*;
use crate::memscan::{
    add_outputs, canary_jobs_shaped, files_under, keep_outputs, scan_process, Canaries, Shape,
};
use midnit_client::sealed::{open_request, EpochChain, SealedCall};
use midnit_client::{KeyDirectory, Options, RenderError};
use midnit_worker::client::{Client, RawProps};
use midnit_worker::keys::{KeyState, SealedMode};
use midnit_worker::protocol::{decode_reply, encode_request, Reply, Status, SEALED_CONTENT_TYPE};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_midnit-worker");

/// Sizes no other test's canary jobs use, so no other job shares their headers.
const SHAPE: Shape = Shape {
    png: (336, 232),
    jpeg: (208, 184),
    small: 184,
    card: 152,
};

/// `midnit-worker keys init`: the state file and the directory key it prints.
pub(crate) fn keys_init(dir: &Path, epoch_secs: u64) -> (PathBuf, [u8; 32]) {
    let path = dir.join("state.json");
    let out = Command::new(BIN)
        .args(["keys", "init", "--state"])
        .arg(&path)
        .args(["--epoch-secs", &epoch_secs.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text
        .split("pin it in the app): ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    (path, midnit_client::parse_hex(&hex).unwrap())
}

fn now_ms() -> u64 {
    midnit_worker::wipe::now_unix_ms()
}

/// A worker in this process taking only sealed requests, its key directory and the pinned keys.
async fn sealed_worker(test: &str, mode: SealedMode) -> (TestWorker, KeyDirectory, [u8; 32]) {
    let dir = tempfile::tempdir().unwrap();
    let (state, pinned) = keys_init(dir.path(), 3600);
    let w = spawn_worker_with(
        test,
        |c| {
            c.keys.key_state_file = Some(state.clone());
            c.keys.sealed = mode;
        },
        None,
    )
    .await;
    // The state file is read at start; the directory is what `GET /keys` serves.
    drop(dir);
    let keys = w.shared.processor.keys.as_ref().expect("a keyring");
    let directory = KeyDirectory::verify(&keys.directory(now_ms()), &pinned, now_ms()).unwrap();
    let receipt_key = w.shared.processor.signer.as_ref().unwrap().public_key();
    (w, directory, receipt_key)
}

async fn send_sealed(client: &Client, call: &SealedCall, id: &str) -> Vec<u8> {
    let props = RawProps {
        content_type: Some(SEALED_CONTENT_TYPE.into()),
        epoch: Some(call.epoch),
        ..RawProps::request(id)
    };
    let rx = client.send_raw(&call.sealed, &props).await.unwrap();
    Client::await_raw(rx, REPLY).await.unwrap()
}

fn code_of(raw: &[u8]) -> (String, bool) {
    let reply = decode_reply(raw).expect("a plaintext error reply");
    assert_eq!(reply.status, Status::Error);
    assert!(reply.outputs.is_empty());
    let e = reply.error.unwrap();
    (e.code, e.retryable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_job_renders_and_its_reply_opens_only_with_its_own_reply_key() {
    let (w, directory, receipt_key) = sealed_worker("sealed-render", SealedMode::Required).await;
    let client = w
        .client()
        .await
        .with_pinned_key(receipt_key)
        .with_directory(directory.clone());
    let samples = midnit_worker::tools::samples::figure_photo(320, 240, 7);
    let photo = midnit_worker::tools::samples::jpeg(&samples, 90);
    let request = request(photo, vec![output("thumb", "jpeg", Some(96), None)]);
    let rendered = client.render(&request, &Options::default()).await.unwrap();
    let thumb = rendered.output("thumb").unwrap();
    assert_eq!(thumb.width, 96);
    image::load_from_memory(&thumb.data).expect("a real JPEG");
    // The receipt, inside the sealed reply, names the epoch and when its key is erased.
    let facts = rendered.receipt.sealed.as_ref().expect("sealed facts");
    let (epoch, _) = directory.key_for(now_ms()).unwrap();
    assert_eq!(facts.epoch, epoch);
    assert_eq!(facts.request_sha256.len(), 32);
    let window = directory.keys.iter().find(|k| k.epoch == epoch).unwrap();
    assert_eq!(
        facts.key_erased_by_ms,
        window.not_after_ms + w.config.keys.epoch_grace_secs * 1000
    );
    assert!(rendered.attested.is_some(), "attested by the pinned key");
    assert!(rendered.receipt.entry("request.sealed").is_some());
    assert!(rendered.receipt.entry("request.body").is_some());

    // What travels back is ciphertext: another call's reply keys do not open it; its own do.
    let body = encode_request(&request);
    let call = SealedCall::new(&directory, &body, now_ms()).unwrap();
    let raw = send_sealed(&client, &call, "sealed-raw-1").await;
    assert!(midnit_client::sealed::is_sealed_reply(&raw));
    let stranger = SealedCall::new(&directory, &body, now_ms()).unwrap();
    assert!(stranger.open(&raw).is_err());
    let reply: Reply = decode_reply(&call.open(&raw).unwrap()).unwrap();
    assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    let facts = reply.receipt.sealed.unwrap();
    assert_eq!(
        facts.request_sha256.as_slice(),
        midnit_worker::wipe::sha256(&call.sealed)
    );

    // The same sealed bytes again: a replay, refused (in plaintext: nothing to seal it to
    // that the sender proved it holds).
    let again = send_sealed(&client, &call, "sealed-raw-2").await;
    assert_eq!(code_of(&again), ("request.replayed".into(), false));

    // A plaintext request is refused where sealing is required.
    let plain = w.client().await;
    let e = plain
        .render(&request, &Options::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(midnit_client::ErrorCode::RequestSealedRequired)
    );
    assert!(!e.retryable());
    // A request sealed to an epoch the worker does not hold: `request.reseal`, retryable.
    let mut far = EpochChain::new(0, [1; 32]);
    for _ in 0..3 {
        far.advance();
    }
    let future = midnit_client::sealed::seal_request(
        epoch + 50,
        &far.keys().public_key(),
        &body,
        &midnit_client::sealed::ReplyKeys::generate(),
    )
    .unwrap();
    let props = RawProps {
        content_type: Some(SEALED_CONTENT_TYPE.into()),
        ..RawProps::request("sealed-far")
    };
    let rx = client.send_raw(&future, &props).await.unwrap();
    let raw = Client::await_raw(rx, REPLY).await.unwrap();
    assert_eq!(code_of(&raw), ("request.reseal".into(), true));
    client.close().await;
    plain.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_sealing_off_refuses_sealed_requests_and_optional_takes_both() {
    let (w, directory, _) = sealed_worker("sealed-optional", SealedMode::Optional).await;
    let request = tiny_job();
    let sealed_client = w.client().await.with_directory(directory.clone());
    assert!(sealed_client
        .render(&request, &Options::default())
        .await
        .is_ok());
    let plain = w.client().await;
    assert!(plain.render(&request, &Options::default()).await.is_ok());
    sealed_client.close().await;
    plain.close().await;
    w.stop().await;

    let off = spawn_worker_with("sealed-off", |c| c.keys.sealed = SealedMode::Off, None).await;
    assert!(off.shared.processor.keys.is_none(), "no keys held when off");
    let client = off.client().await.with_directory(directory);
    let e = client
        .render(&request, &Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RenderError::Job { code, .. } if code == "request.unsupported_version"),
        "{e}"
    );
    client.close().await;
    off.stop().await;
}

/// The keys (private halves) and chain values of epochs `0..=last` of the state `chain`.
fn epoch_secrets(first: &EpochChain, last: u64) -> Vec<([u8; 32], [u8; 32])> {
    let mut c = EpochChain::new(first.epoch(), *first.chain());
    let mut out = Vec::new();
    while c.epoch() <= last {
        out.push((*c.keys().private_key(), *c.chain()));
        c.advance();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_sealed_request_opens_until_its_epoch_key_is_erased_and_never_after() {
    let dir = tempfile::tempdir().unwrap();
    let epoch_secs = 4;
    let (state_path, pinned) = keys_init(dir.path(), epoch_secs);
    // What the stored state holds at the start — kept by the test only, to know every key.
    let initial = KeyState::read(&state_path).unwrap();
    let first = initial.chain();
    let queue = unique_queue("sealed-capture");
    let state = state_path.to_str().unwrap();
    let env = [
        ("MIDNIT_TOPOLOGY", "durable"),
        ("MIDNIT_SEALED", "required"),
        ("MIDNIT_KEY_STATE_FILE", state),
        ("MIDNIT_EPOCH_GRACE_SECS", "1"),
        ("MIDNIT_KEY_FOLLOW_SECS", "1"),
    ];
    // A first worker declares the durable queue and serves the directory, then stops.
    let mut first_worker = spawn_binary_env(&queue, 1, &env);
    let (status, bytes) =
        midnit_worker::app::http::get(&first_worker.http_addr(), "/keys").unwrap();
    assert_eq!(status, 200);
    first_worker.signal(libc::SIGTERM);
    assert!(first_worker.wait_exit().success());
    let directory = KeyDirectory::verify(&bytes, &pinned, now_ms()).unwrap();
    let body = encode_request(&tiny_job());
    let call = SealedCall::new(&directory, &body, now_ms()).unwrap();
    let epoch = call.epoch;

    // The sealed request waits in the durable queue; a copy is taken from it (as anyone
    // reading the broker's disk or memory could) and the message put back.
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let client = Client::on(conn, &queue, true).await.unwrap();
    let props = RawProps {
        content_type: Some(SEALED_CONTENT_TYPE.into()),
        epoch: Some(epoch),
        ..RawProps::request("captured-1")
    };
    let rx = client.send_raw(&call.sealed, &props).await.unwrap();
    let ch = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap()
        .create_channel()
        .await
        .unwrap();
    let got = ch
        .basic_get(
            queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
        .expect("the job is in the durable queue");
    let captured = got.delivery.data.clone();
    assert_eq!(
        captured, call.sealed,
        "the broker holds the sealed bytes, nothing else"
    );
    got.delivery
        .nack(lapin::options::BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let worker = spawn_binary_env(&queue, 1, &env);

    // Before the key is erased the worker opens it.
    let raw = Client::await_raw(rx, REPLY).await.unwrap();
    let reply = decode_reply(&call.open(&raw).unwrap()).unwrap();
    assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    let erased_by = reply.receipt.sealed.unwrap().key_erased_by_ms;

    // After the epoch and its grace period, the key is gone: the captured copy is answered
    // `request.reseal` (retryable: seal again to the current key).
    worker.wait_for_log("the past epoch's private key is erased", 1);
    assert!(now_ms() >= erased_by);
    let (_, metrics) = worker.get("/metrics");
    let erasures = metrics
        .lines()
        .find(|l| l.starts_with("midnit_key_erasures_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .expect("the erasure counter");
    assert!(erasures >= 1.0, "{metrics}");
    assert!(metrics.contains("midnit_key_epoch "), "{metrics}");
    let rx = client
        .send_raw(
            &captured,
            &RawProps {
                correlation_id: Some("captured-2".into()),
                ..props.clone()
            },
        )
        .await
        .unwrap();
    let raw = Client::await_raw(rx, REPLY).await.unwrap();
    assert_eq!(code_of(&raw), ("request.reseal".into(), true));

    // The stored state, moved forward by `keys rotate`, opens nothing of that epoch either:
    // every key it can derive is of a later epoch.
    let out = Command::new(BIN)
        .args(["keys", "rotate", "--state", state])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stored = KeyState::read(&state_path).unwrap();
    assert!(stored.epoch > epoch, "rotated past the captured epoch");
    let mut c = stored.chain();
    for _ in 0..4 {
        assert!(open_request(&c.keys(), &captured).is_err());
        c.advance();
    }

    // Two epochs on, the worker's memory holds no erased key and no older chain value; the
    // current key is there (the scan can see keys).
    let origin = initial.origin_ms;
    let start = |e: u64| origin + e * epoch_secs * 1000;
    let target = epoch + 2;
    while now_ms() < start(target) + 1500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let current = (now_ms() - origin) / (epoch_secs * 1000);
    worker.signal(libc::SIGSTOP);
    let secrets = epoch_secrets(&first, current + 1);
    let mut erased = Canaries::default();
    for (e, (private, chain)) in secrets.iter().enumerate() {
        let e = e as u64;
        if e + 2 <= current {
            erased.add("erased private key", private);
        }
        if e < current {
            erased.add("older chain value", chain);
        }
    }
    let mut held = Canaries::default();
    held.add("current private key", &secrets[current as usize].0);
    let (found, regions, scanned) = scan_process(worker.pid(), &erased);
    let (control, _, _) = scan_process(worker.pid(), &held);
    worker.signal(libc::SIGCONT);
    assert!(scanned > 1 << 20);
    assert!(
        found.is_empty(),
        "erased key material in the worker's memory: {found:?}\n{}",
        regions.join("\n")
    );
    assert_eq!(
        control.get("current private key"),
        Some(&1),
        "the current key is held once, in the key page"
    );
    let mut in_log = HashMap::new();
    erased.find(worker.log_text().as_bytes(), &mut in_log);
    held.find(worker.log_text().as_bytes(), &mut in_log);
    assert!(in_log.is_empty());
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}

/// Every beam.smp process (the RabbitMQ node) scanned, and every file of its data directory.
fn scan_broker(
    canaries: &Canaries,
) -> (HashMap<&'static str, usize>, HashMap<&'static str, usize>) {
    let mut where_found = Vec::new();
    // The node at 5672 (other tests start extra nodes of their own, which come and go).
    let pidfile = std::fs::read_dir("/var/lib/rabbitmq/mnesia")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pid"))
        .expect("the RabbitMQ node's pid file");
    let pids: Vec<i32> = vec![std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()];
    assert!(!pids.is_empty(), "the RabbitMQ node runs here");
    let mut memory = HashMap::new();
    for pid in pids {
        let (hits, regions, scanned) = scan_process(pid, canaries);
        assert!(
            scanned > 16 << 20,
            "the node's memory was read ({scanned} bytes)"
        );
        where_found.extend(regions);
        for (what, n) in hits {
            *memory.entry(what).or_default() += n;
        }
    }
    let mut disk = HashMap::new();
    let mut dirs = vec![PathBuf::from("/var/lib/rabbitmq")];
    while let Some(d) = dirs.pop() {
        for path in files_under(&d) {
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let mut here = HashMap::new();
                canaries.find(&bytes, &mut here);
                if !here.is_empty() {
                    where_found.push(format!(
                        "{} -> {here:?} at {:?}",
                        path.display(),
                        canaries.spans(&bytes)
                    ));
                }
                for (what, n) in here {
                    *disk.entry(what).or_default() += n;
                }
            }
        }
    }
    if !where_found.is_empty() {
        eprintln!("found on the broker:\n{}", where_found.join("\n"));
    }
    (memory, disk)
}

/// What any canary job of the same shapes shares (headers, encoder tables, the deflate
/// header of random pixels): the inputs and outputs of the canary jobs of three other seeds,
/// rendered here. Those windows are no job's data, and other tests' jobs of the same shapes
/// leave them in the broker too.
async fn shared_structure(seed: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 1..=3u64 {
        let other = seed ^ (0xffff * k);
        for req in canary_jobs_shaped(other, &SHAPE).requests {
            out.extend(req.inputs.values().map(|b| b.to_vec()));
        }
        out.extend(reference_outputs(other).await);
    }
    out
}

/// Forgets what `files` share with the files of `structure` from their start (headers) plus
/// eight bytes: a window that reaches fewer than eight bytes past a shared header matches
/// another job's file of the same shape one time in 2^(8·k), which the broker, holding many,
/// would show.
fn forget_headers(canaries: &mut Canaries, files: &[Vec<u8>], structure: &[Vec<u8>]) {
    for f in files {
        for r in structure {
            let common = f.iter().zip(r).take_while(|(a, b)| a == b).count();
            if common > 0 {
                canaries.forget(&f[..f.len().min(common + 8 + 31)]);
            }
        }
    }
}

/// Leaves out of the search what the canary jobs of `seed` share with any job of their shape:
/// windows the reference jobs hold too, and windows that reach just past a shared header.
async fn forget_shared(
    canaries: &mut Canaries,
    requests: &[midnit_worker::protocol::Request],
    outputs: &[Vec<u8>],
    seed: u64,
) {
    let structure = shared_structure(seed).await;
    for other in &structure {
        canaries.forget(other);
    }
    let mut files: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| r.inputs.values().map(|b| b.to_vec()))
        .collect();
    files.extend(outputs.iter().cloned());
    forget_headers(canaries, &files, &structure);
}

/// The outputs of the canary jobs of `seed`, rendered here.
async fn reference_outputs(seed: u64) -> Vec<Vec<u8>> {
    let processor =
        midnit_worker::reply::process::Processor::local(&Default::default(), &Default::default());
    let mut outputs = Vec::new();
    for req in canary_jobs_shaped(seed, &SHAPE).requests {
        let delivery = midnit_worker::reply::process::Delivery::local(encode_request(&req), "ref");
        let sealed = processor.process_one(delivery).await;
        let reply = decode_reply(sealed.body.as_slice()).unwrap();
        outputs.extend(reply.outputs.into_iter().map(|o| o.data.into_vec()));
    }
    outputs
}

/// Runs the canary jobs through a worker binary on `topology`, sealed or not, stops the
/// worker, and scans the broker.
async fn jobs_then_scan_broker(
    test: &str,
    topology: &str,
    sealed: bool,
    seed: u64,
) -> (HashMap<&'static str, usize>, HashMap<&'static str, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let (state, pinned) = keys_init(dir.path(), 3600);
    let queue = unique_queue(test);
    let worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_TOPOLOGY", topology),
            ("MIDNIT_SEALED", "optional"),
            ("MIDNIT_KEY_STATE_FILE", state.to_str().unwrap()),
        ],
    );
    let jobs = canary_jobs_shaped(seed, &SHAPE);
    let mut canaries = jobs.canaries;
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let mut client = Client::on(conn, &queue, topology == "durable")
        .await
        .unwrap();
    if sealed {
        let bytes = midnit_worker::app::http::get(&worker.http_addr(), "/keys")
            .unwrap()
            .1;
        client = client.with_directory(KeyDirectory::verify(&bytes, &pinned, now_ms()).unwrap());
    }
    let mut outputs = Vec::new();
    for req in &jobs.requests {
        let rendered = client.render(req, &Options::default()).await.unwrap();
        let reply = Reply {
            v: 1,
            status: Status::Ok,
            outputs: rendered.outputs.clone(),
            error: None,
            receipt: rendered.receipt.clone(),
            attestation: None,
        };
        keep_outputs(&mut outputs, &reply);
    }
    add_outputs(&mut canaries, &outputs);
    forget_shared(&mut canaries, &jobs.requests, &outputs, seed).await;
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
    // The node settles (queue deleted, segments written) before it is read.
    std::thread::sleep(Duration::from_secs(2));
    scan_broker(&canaries)
}

async fn broker_scan(topology: &str, base: u64) {
    let test = format!("broker-scan-{topology}");
    // Seeds of this run only: the node outlives test runs, and what an earlier run's control
    // left in it must not match this run's canaries.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = (nanos << 20) | base;
    let (memory, disk) = jobs_then_scan_broker(&test, topology, true, seed).await;
    assert!(
        memory.is_empty() && disk.is_empty(),
        "pieces of sealed jobs on the broker ({topology}): memory {memory:?}, disk {disk:?}"
    );
    // The control: the same jobs in plaintext, and the same scan finds them.
    let (memory, disk) = jobs_then_scan_broker(&test, topology, false, seed + 0x100).await;
    let found: usize = memory.values().chain(disk.values()).sum();
    eprintln!("plaintext control ({topology}): memory {memory:?}, disk {disk:?}");
    assert!(
        found > 0,
        "the scan finds nothing of plaintext jobs either ({topology}): it would not catch a leak"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_holds_no_piece_of_a_sealed_job_transient() {
    broker_scan("transient", 0x1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_holds_no_piece_of_a_sealed_job_durable() {
    broker_scan("durable", 0x2000).await;
}

/// A backend that only relays: it takes a request body as a device sent it (a file standing
/// for the HTTP request), publishes it as it is, and writes the reply body back (standing for
/// the HTTP response). It then waits, holding everything it handled, to be scanned.
const RELAY: &str = r#"
import pathlib, sys, time, pika
url, queue, content_type, request, reply = sys.argv[1:]
body = pathlib.Path(request).read_bytes()
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
got = []
channel.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, b: got.append(b), auto_ack=True)
channel.basic_publish("", queue, body, pika.BasicProperties(
    content_type=content_type, correlation_id="relay-1", reply_to="amq.rabbitmq.reply-to"))
give_up = time.monotonic() + 60
while not got and time.monotonic() < give_up:
    connection.process_data_events(time_limit=0.05)
pathlib.Path(reply).write_bytes(got[0])
print("relayed", flush=True)
time.sleep(600)
"#;

/// Relays the canary jobs of `seed` through a Python backend process, sealed by the "device"
/// (this test) or not, and scans the relay's memory.
async fn relay_and_scan(
    queue: &str,
    directory: &KeyDirectory,
    sealed: bool,
    seed: u64,
) -> HashMap<&'static str, usize> {
    let jobs = canary_jobs_shaped(seed, &SHAPE);
    let mut canaries = jobs.canaries;
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    let mut relays = Vec::new();
    for (i, req) in jobs.requests.iter().enumerate() {
        let body = encode_request(req);
        let call = SealedCall::new(directory, &body, now_ms()).unwrap();
        let (wire, content_type) = if sealed {
            (call.sealed.clone(), SEALED_CONTENT_TYPE)
        } else {
            (body.clone(), "application/cbor")
        };
        let request = dir.path().join(format!("request-{i}"));
        let reply = dir.path().join(format!("reply-{i}"));
        std::fs::write(&request, &wire).unwrap();
        let mut relay = Command::new("python3")
            .args(["-c", RELAY, &amqp_url(), queue, content_type])
            .arg(&request)
            .arg(&reply)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with pika runs the relay");
        let mut line = String::new();
        let out = relay.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        assert_eq!(line.trim(), "relayed");
        let raw = std::fs::read(&reply).unwrap();
        let plain = if sealed {
            call.open(&raw).unwrap()
        } else {
            raw
        };
        let reply: Reply = decode_reply(&plain).unwrap();
        keep_outputs(&mut outputs, &reply);
        relays.push(relay);
    }
    add_outputs(&mut canaries, &outputs);
    forget_shared(&mut canaries, &jobs.requests, &outputs, seed).await;
    let mut found = HashMap::new();
    for mut relay in relays {
        let (hits, _, scanned) = scan_process(relay.id() as i32, &canaries);
        assert!(scanned > 1 << 20);
        for (what, n) in hits {
            *found.entry(what).or_default() += n;
        }
        let _ = relay.kill();
        let _ = relay.wait();
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_relays_sealed_jobs_never_holds_the_photo_or_the_outputs() {
    let (w, directory, _) = sealed_worker("sealed-relay", SealedMode::Optional).await;
    let queue = w.config.broker.queue.clone();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let seed = (nanos << 20) | 0x3000;
    let sealed = relay_and_scan(&queue, &directory, true, seed).await;
    assert!(
        sealed.is_empty(),
        "the relay held pieces of sealed jobs: {sealed:?}"
    );
    // The control: the same relay given plaintext jobs holds their bytes, and the scan sees it.
    let plain = relay_and_scan(&queue, &directory, false, seed + 0x100).await;
    eprintln!("plaintext relay control: {plain:?}");
    assert!(plain.contains_key("input.png") || plain.contains_key("input.jpeg"));
    assert!(plain.contains_key("output"));
    w.stop().await;
}

#[test]
fn keys_init_keeps_a_given_directory_key_and_rotate_overwrites_the_stored_chain() {
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("directory.key");
    std::fs::write(&seed_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let state = dir.path().join("state.json");
    let keys = |args: &[&str]| {
        let out = Command::new(BIN).arg("keys").args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let s = state.to_str().unwrap();
    let k = seed_file.to_str().unwrap();
    let init = [
        "init",
        "--state",
        s,
        "--epoch-secs",
        "2",
        "--directory-key-file",
        k,
    ];
    let (ok, text) = keys(&init);
    assert!(ok, "{text}");
    let expected = midnit_worker::wipe::ReceiptSigner::from_seed(&[0xab; 32]).public_key();
    assert!(text.contains(&midnit_client::hex(&expected)), "{text}");
    let first = KeyState::read(&state).unwrap();
    // Once made, a state is kept (`--if-missing`) or refused, never silently replaced.
    let (ok, text) = keys(&["init", "--state", s]);
    assert!(!ok && text.contains("exists"), "{text}");
    let (ok, text) = keys(&["init", "--state", s, "--if-missing"]);
    assert!(ok && text.contains("kept the existing"), "{text}");
    assert_eq!(*KeyState::read(&state).unwrap().chain, *first.chain);
    // Two seconds on, rotate moves the stored copy to epoch 1: the old chain value is gone
    // from the file, and what is stored derives epoch 1's key, not epoch 0's.
    std::thread::sleep(Duration::from_millis(2100));
    let (ok, text) = keys(&["rotate", "--state", s]);
    assert!(ok && text.contains("epoch 0 -> "), "{text}");
    let stored = std::fs::read_to_string(&state).unwrap();
    assert!(!stored.contains(&midnit_client::hex(first.chain.as_ref())));
    let rotated = KeyState::read(&state).unwrap();
    assert!(rotated.epoch >= 1);
    assert_eq!(rotated.directory_public_key(), expected);
    let mut forward = first.chain();
    forward.advance();
    let later = EpochChain::new(rotated.epoch, *rotated.chain);
    assert_ne!(later.keys().public_key(), first.chain().keys().public_key());
    while forward.epoch() < rotated.epoch {
        forward.advance();
    }
    assert_eq!(forward.chain(), later.chain());
    // `keys directory` writes what `GET /keys` serves, verified by the pinned key.
    let out = dir.path().join("directory.cbor");
    let (ok, text) = keys(&["directory", "--state", s, "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let d = KeyDirectory::verify(&std::fs::read(&out).unwrap(), &expected, now_ms()).unwrap();
    assert_eq!(d.keys.len(), 2);
}

#[test]
fn submit_sealed_seals_to_the_workers_directory_and_its_receipt_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (state, pinned) = keys_init(dir.path(), 3600);
    let seed = dir.path().join("receipt.key");
    std::fs::write(&seed, "cd".repeat(32)).unwrap();
    let queue = unique_queue("sealed-submit");
    let worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_SEALED", "required"),
            ("MIDNIT_KEY_STATE_FILE", state.to_str().unwrap()),
            ("MIDNIT_RECEIPT_KEY_FILE", seed.to_str().unwrap()),
        ],
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/multi-size.json");
    let submit = |extra: &[&str], out: &Path| {
        Command::new(BIN)
            .args(["submit", example, "--out"])
            .arg(out)
            .args(extra)
            .env("MIDNIT_AMQP_URL", amqp_url())
            .env("MIDNIT_QUEUE", &queue)
            .env("MIDNIT_HTTP_ADDR", worker.http_addr())
            .output()
            .unwrap()
    };
    let out = dir.path().join("out");
    let sealed = submit(
        &["--sealed", "--directory-key", &midnit_client::hex(&pinned)],
        &out,
    );
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&sealed.stdout).unwrap();
    assert_eq!(printed["status"], "ok", "{printed}");
    assert!(printed["receipt"]["sealed"]["epoch"].is_u64(), "{printed}");
    image::load_from_memory(&std::fs::read(out.join("large.jpg")).unwrap()).unwrap();
    let file = dir.path().join("reply.json");
    std::fs::write(&file, &sealed.stdout).unwrap();
    let key = midnit_worker::wipe::ReceiptSigner::from_seed(&[0xcd; 32]).public_key_hex();
    let verified = Command::new(BIN)
        .args(["verify-receipt", "--public-key", &key])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // Another pinned key: the directory is refused before anything is sent.
    let forged = submit(&["--sealed", "--directory-key", &"11".repeat(32)], &out);
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("not signed by the pinned"));
    // Plaintext to a worker that takes only sealed jobs.
    let plain = submit(&[], &out);
    let printed: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(
        printed["error"]["code"], "request.sealed_required",
        "{printed}"
    );
    drop(worker);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(delete_queue(&queue));
}
