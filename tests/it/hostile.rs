//! Hostile jobs, as an attacker would send them straight onto the jobs queue: the real worker
//! binary on the real broker answers each exactly once, with its code, never redelivers it,
//! and keeps serving. Then the renderer's confinement tried from inside, renderers that lie,
//! replies too large for the worker's limit and for the broker's, and the idle wipe.

use crate::harness::cbor::{head, text};
use crate::harness::*;
use midnit_worker::protocol::{encode_request, Status};
use midnit_worker::render::executor::messages::{Answer, OutputMessage, ReplyMessage, WipeReport};
use midnit_worker::tools::samples::{self, hostile};
use midnit_worker::wipe::{WipeEntry, WipeMethod};
use std::time::Duration;

const SECRET: &str = "Aurora, 14 Rue des Lilas, Lyon";

/// A request with `inputs` entries `i0`, `i1`, … of empty byte strings: ~15 MB for 1.5 million.
fn empty_inputs_flood(n: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(n as usize * 10);
    head(&mut b, 5, 3);
    text(&mut b, "v");
    b.push(0x01);
    text(&mut b, "outputs");
    b.extend_from_slice(&encode_outputs());
    text(&mut b, "inputs");
    head(&mut b, 5, n);
    for i in 0..n {
        text(&mut b, &format!("i{i}"));
        b.push(0x40);
    }
    b
}

fn encode_outputs() -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&vec![output("t", "png", Some(32), Some(32))], &mut out).unwrap();
    out
}

/// A recipe request whose recipe is `recipe` (any JSON), with one small photo.
fn recipe_request(recipe: serde_json::Value) -> Vec<u8> {
    let photo = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    let mut req = request(photo, vec![output("card", "png", None, None)]);
    req.recipe = Some(ciborium::Value::serialized(&recipe).unwrap());
    encode_request(&req)
}

/// A small request whose one PNG output is large: a canvas of fine noise and grain, which no
/// PNG compresses (about 4 bytes a pixel).
fn noisy_card(side: u32) -> Vec<u8> {
    recipe_request(serde_json::json!({"canvas": {"width": side, "height": side,
        "background": {"noise": {"colors": ["#000", "#f0f", "#0ff", "#fff"], "scale": 4, "octaves": 6}}},
        "filters": [{"grain": {"amount": 1.0}}]}))
}

fn thumb(input: Vec<u8>) -> Vec<u8> {
    body_of(&request(
        input,
        vec![output("t", "png", Some(32), Some(32))],
    ))
}

/// Sends `body` as job `id`, then a good job as a barrier (one renderer, first in first out:
/// had the hostile job been requeued, its second answer would come before the barrier's),
/// and checks the hostile job was answered exactly once.
async fn answered_once(
    replies: &Replies,
    queue: &str,
    id: &str,
    body: &[u8],
) -> midnit_worker::protocol::Reply {
    replies.send(queue, id, body).await;
    let reply = replies.first(id).await;
    let barrier = format!("{id}.after");
    replies.send(queue, &barrier, &body_of(&tiny_job())).await;
    let after = replies.first(&barrier).await;
    assert_eq!(after.status, Status::Ok, "after {id}: {:?}", after.error);
    assert_eq!(replies.count(id), 1, "{id}: answered more than once");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_job_is_answered_once_with_its_code_and_the_worker_keeps_serving() {
    let queue = unique_queue("hostile");
    let mut worker = spawn_binary_env(&queue, 1, &[("MIDNIT_IDLE_WIPE_SECS", "0")]);
    let replies = Replies::on(&amqp_url()).await;
    let blur = serde_json::json!({"blur": {"radius": 200}});
    let speck = serde_json::json!({"canvas": {"width": 10, "height": 10},
        "layers": [{"rect": {"box": {"x": 4, "y": 4, "width": 1, "height": 1},
                             "fill": {"solid": "#fff"}, "filters": vec![blur; 8]}}]});
    let layer_flood = serde_json::json!({"canvas": {"width": 100, "height": 100},
        "layers": vec![serde_json::json!({"rect": {}}); 1_000_000]});
    let long_text = serde_json::json!({"canvas": {"width": 100, "height": 100},
        "layers": [{"text": {"text": "x".repeat(20 << 20),
                             "box": {"x": 0, "y": 0, "width": 100, "height": 100}}}]});
    let secret_size = serde_json::json!({"canvas": {"width": 100, "height": 100},
        "layers": [{"text": {"text": "hi", "size": SECRET,
                             "box": {"x": 0, "y": 0, "width": 100, "height": 100}}}]});
    let mut secret_width = request(
        samples::jpeg(&samples::figure_photo(64, 48, 3), 90),
        vec![output("t", "png", None, None)],
    );
    secret_width.outputs[0].fit = Some(SECRET.into());
    // {"v": 1, "v": 1, ...}: a key given twice.
    let mut twice = body_of(&tiny_job());
    twice[0] += 1;
    twice.extend_from_slice(&[0x61, b'v', 0x01]);
    let mut unknown_key = vec![];
    head(&mut unknown_key, 5, 4);
    unknown_key.extend_from_slice(&body_of(&tiny_job())[1..]);
    text(&mut unknown_key, SECRET);
    unknown_key.push(0x01);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty-inputs-flood",
            empty_inputs_flood(1_500_000),
            "limits.inputs",
        ),
        (
            "icc-inflating",
            thumb(hostile::png_with_icc(40 << 20)),
            "limits.complexity",
        ),
        (
            "scan-flood",
            thumb(hostile::jpeg_many_scans(6600, 5000, 2000)),
            "limits.complexity",
        ),
        (
            "gif-frame-beyond-screen",
            thumb(hostile::gif_frame_beyond_screen(14_000, 14_000)),
            "limits.pixels",
        ),
        (
            "webp-frame-beyond-canvas",
            thumb(hostile::webp_frame_beyond_canvas(16_000)),
            "limits.pixels",
        ),
        ("blurred-speck", recipe_request(speck), "recipe.invalid"),
        ("layer-flood", recipe_request(layer_flood), "recipe.invalid"),
        ("long-text", recipe_request(long_text), "recipe.invalid"),
        (
            "secret-in-a-number",
            recipe_request(secret_size),
            "recipe.invalid",
        ),
        (
            "secret-in-a-field",
            body_of(&secret_width),
            "request.invalid",
        ),
        ("secret-as-a-key", unknown_key, "request.malformed"),
        ("duplicate-key", twice, "request.malformed"),
    ];
    for (id, body, code) in &cases {
        let reply = answered_once(&replies, &queue, id, body).await;
        assert_eq!(error_code(&reply), *code, "{id}: {:?}", reply.error);
        let message = &reply.error.as_ref().unwrap().message;
        assert!(
            !message.contains("Aurora") && !message.contains("Lilas"),
            "{id}: {message}"
        );
        assert!(
            replies.size(id) < 256 * 1024,
            "{id}: a {} byte reply",
            replies.size(id)
        );
    }
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    let log = strip_ansi(&worker.log_text());
    assert!(
        !log.contains("redelivered=true"),
        "a job was redelivered:\n{log}"
    );
    assert!(!log.contains(SECRET), "the log echoes a request value");
    replies.close().await;
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_larger_than_a_reply_may_be_are_answered_limits_output_once_and_small() {
    let queue = unique_queue("bigreply");
    let limit = (2 << 20).to_string();
    let worker = spawn_binary_env(&queue, 1, &[("MIDNIT_MAX_REPLY_BYTES", &limit)]);
    let replies = Replies::on(&amqp_url()).await;
    let body = noisy_card(1400);
    let reply = answered_once(&replies, &queue, "too-big", &body).await;
    assert_eq!(error_code(&reply), "limits.output", "{:?}", reply.error);
    assert!(replies.size("too-big") < 256 * 1024);
    assert!(reply
        .receipt
        .wiped
        .iter()
        .any(|e| e.artifact.starts_with("output.") || e.process.as_deref() == Some("renderer")));
    replies.close().await;
    drop(worker);
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_broker_refuses_is_retried_then_answered_short_and_recorded_never_requeued() {
    // A broker whose max_message_size (4 MiB) is below the worker's reply limit (16 MiB): the
    // broker closes the publishing channel on every try of the 6 MB reply.
    let node = ExtraNode::start(
        "small",
        5700 + (std::process::id() % 100) as u16,
        "max_message_size = 4194304",
    );
    let queue = unique_queue("refused");
    let worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_AMQP_URL", &node.url()),
            ("MIDNIT_MAX_REPLY_BYTES", "16777216"),
        ],
    );
    let replies = Replies::on(&node.url()).await;
    let body = noisy_card(1400);
    assert!(body.len() < 64 * 1024);
    replies.send(&queue, "refused", &body).await;
    let reply = replies.first("refused").await;
    assert_eq!(error_code(&reply), "internal", "{:?}", reply.error);
    assert!(reply.error.as_ref().unwrap().retryable);
    // The channel was reopened: the next job goes through.
    replies.send(&queue, "next", &body_of(&tiny_job())).await;
    assert_eq!(replies.first("next").await.status, Status::Ok);
    assert_eq!(replies.count("refused"), 1);
    let conn = lapin::Connection::connect(&node.url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let dlq = format!("{queue}.dead");
    let record = wait_get(&ch, &dlq).await;
    let record: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
    assert_eq!(record["reason"], "reply_unpublishable");
    assert_eq!(record["correlation_id"], "refused");
    let left = ch
        .basic_get(queue.as_str().into(), Default::default())
        .await
        .unwrap();
    assert!(left.is_none(), "the job was requeued");
    let log = strip_ansi(&worker.log_text());
    assert!(log.contains("reopening"), "{log}");
    assert!(!log.contains("redelivered=true"), "{log}");
    let _ = conn.close(200, "done".into()).await;
    replies.close().await;
    drop(worker);
    drop(node);
}

/// Runs the renderer self-test: limited and confined as a renderer, it tries what a
/// compromised decoder would.
#[test]
fn a_confined_renderer_can_do_nothing_but_render() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("receipt.key");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_midnit-worker"))
        .arg("__renderer-selftest")
        .arg(std::process::id().to_string())
        .args([(1u64 << 30).to_string(), "10".to_string()])
        .arg(&key)
        .arg(other.id().to_string())
        .env_clear()
        .output()
        .unwrap();
    let _ = other.kill();
    let _ = other.wait();
    assert!(out.status.success(), "{out:?}");
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for denied in [
        "open_read",
        "open_create",
        "stat_path",
        "kill_other",
        "kill_parent",
        "tgkill_other",
        "fcntl_setown",
        "mmap_exec",
        "mprotect_exec",
        "execve",
        "ptrace_parent",
        "socket_inet",
        "socket_unix",
        "fork",
        "process_vm_readv",
    ] {
        assert_eq!(results[denied], "EPERM", "{denied}: {results}");
    }
    assert_eq!(results["tgkill_self"], "ok", "{results}");
    assert_eq!(results["thread"], "ok", "{results}");
}

/// A renderer that says it is ready, answers `answer` whatever its job, and drains its input.
fn lying_renderer(
    dir: &std::path::Path,
    name: &str,
    first: &[u8],
    report: &[u8],
) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let answer = dir.join(format!("{name}.bin"));
    let mut framed = Vec::new();
    for frame in [first, report] {
        framed.extend_from_slice(&(frame.len() as u64).to_le_bytes());
        framed.extend_from_slice(frame);
    }
    std::fs::write(&answer, framed).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf R\ncat {}\nexec cat > /dev/null\n",
            answer.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn png_output(name: &str, w: u32, h: u32, data: Vec<u8>) -> OutputMessage<serde_bytes::ByteBuf> {
    OutputMessage {
        name: name.into(),
        format: midnit_worker::job::OutputFormat::Png,
        width: w,
        height: h,
        quality: None,
        data: serde_bytes::ByteBuf::from(data),
    }
}

fn rendered(outputs: Vec<OutputMessage<serde_bytes::ByteBuf>>) -> Vec<u8> {
    cbor(&ReplyMessage {
        answer: Answer::Rendered(outputs),
        timings: [f64::NAN, -1.0, 1e300, 0.0],
        peak_rss: 1,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_whose_answer_does_not_match_its_job_is_refused_and_its_report_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let png = samples::png(&samples::figure_cutout(8, 6, 1));
    let empty = cbor(&WipeReport { wiped: vec![] });
    let entries = |n: usize| WipeReport {
        wiped: (0..n)
            .map(|i| WipeEntry {
                artifact: format!("\u{7}forged.{i}{}", "x".repeat(200)),
                bytes: u64::MAX,
                method: WipeMethod::Zeroize,
                at_ms: 1,
                error: None,
                process: None,
            })
            .collect(),
    };
    // Within the report frame's 1 MiB, and beyond it.
    let flood = cbor(&entries(3_000));
    let oversized = cbor(&entries(100_000));
    let unknown_code = {
        let mut v = cbor(&ReplyMessage::<serde_bytes::ByteBuf> {
            answer: Answer::Failed {
                code: midnit_worker::protocol::ErrorCode::JobTimeout,
                message: "x".into(),
            },
            timings: [0.0; 4],
            peak_rss: 0,
        });
        let at = v.windows(11).position(|w| w == b"job.timeout").unwrap();
        v[at..at + 11].copy_from_slice(b"job.forgery");
        v
    };
    let cases: Vec<(&str, Vec<u8>, &[u8], &str)> = vec![
        (
            "two-outputs",
            rendered(vec![
                png_output("t", 8, 6, png.clone()),
                png_output("u", 8, 6, png.clone()),
            ]),
            &empty,
            "internal",
        ),
        (
            "wrong-name",
            rendered(vec![png_output("x", 8, 6, png.clone())]),
            &empty,
            "internal",
        ),
        (
            "huge-size",
            rendered(vec![png_output("t", 100_000, 6, png.clone())]),
            &empty,
            "internal",
        ),
        (
            "not-a-png",
            rendered(vec![png_output("t", 8, 6, b"GIF89a lies".to_vec())]),
            &empty,
            "internal",
        ),
        ("unknown-code", unknown_code, &empty, "internal"),
        (
            "report-flood",
            rendered(vec![png_output("t", 8, 6, png.clone())]),
            &flood,
            "ok",
        ),
        (
            "report-oversized",
            rendered(vec![png_output("t", 8, 6, png.clone())]),
            &oversized,
            "internal",
        ),
    ];
    for (name, first, report, code) in cases {
        let renderer = lying_renderer(dir.path(), name, &first, report);
        let w =
            spawn_worker_with(name, |c| c.executor.renderer_binary = Some(renderer), None).await;
        let client = w.client().await;
        let reply = render(
            &client,
            &request(
                samples::jpeg(&samples::figure_photo(64, 48, 3), 90),
                vec![output("t", "png", Some(8), None)],
            ),
        )
        .await;
        assert_eq!(error_code(&reply), code, "{name}: {:?}", reply.error);
        let renderer_entries: Vec<_> = reply
            .receipt
            .wiped
            .iter()
            .filter(|e| e.process.as_deref() == Some("renderer"))
            .collect();
        assert!(
            renderer_entries.len() <= midnit_worker::wipe::MAX_ENTRIES,
            "{name}"
        );
        if name == "report-flood" {
            assert_eq!(
                reply.receipt.wiped_bytes,
                u64::MAX,
                "summed without overflow"
            );
            assert!(renderer_entries.iter().all(|e| e.artifact.len() <= 96
                && e.artifact.chars().all(|c| c.is_ascii_graphic() || c == ' ')));
        }
        client.close().await;
        w.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_wipe_waits_for_idle_time_and_a_steady_job_never_loses_its_connection() {
    let w = spawn_worker_with("idle", |c| c.wipe.idle_wipe_secs = 2, None).await;
    let replies = Replies::on(&amqp_url()).await;
    // One job every 0.7 s for 8 s: never 2 s without a job.
    for i in 0..12 {
        let id = format!("steady-{i}");
        replies
            .send(&w.config.broker.queue, &id, &body_of(&tiny_job()))
            .await;
        assert_eq!(replies.first(&id).await.status, Status::Ok);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let stats = w.shared.stats.snapshot();
    assert_eq!(
        stats.idle_wipes, 0,
        "the connection was replaced between steady jobs"
    );
    assert_eq!(stats.reconnects, 0);
    for i in 0..12 {
        assert_eq!(
            replies.count(&format!("steady-{i}")),
            1,
            "job {i} was redelivered"
        );
    }
    // Idle for real: now it is replaced.
    let deadline = std::time::Instant::now() + REPLY;
    while w.shared.stats.snapshot().idle_wipes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never wiped when idle"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replies.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_boxes_never_produced_do_not_raise_the_renderers_memory_limit() {
    use midnit_worker::intake::{intake, Meta};
    use midnit_worker::job::Limits;
    use midnit_worker::render::executor::Isolated;
    use midnit_worker::wipe::{Ledger, SecretBuf};
    let limits = Limits::default();
    let photo = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    // Eight outputs of the largest box on a 64x48 photo: never upscaled, each is 64x48.
    let boxes = (0..8)
        .map(|i| output(&format!("o{i}"), "png", Some(8192), Some(4096)))
        .collect();
    let ledger = Ledger::new();
    let body = SecretBuf::new(body_of(&request(photo, boxes)), "request.body", &ledger);
    let job = intake(body, &Meta::default(), &limits, None, &ledger).unwrap();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_midnit-worker"));
    let executor = Isolated::with_spares(binary, limits.clone(), 1, limits.max_job_memory_bytes, 0);
    let memory = executor.memory_for(&job);
    assert!(memory < 300 << 20, "{memory} bytes for a 64x48 photo");
}
