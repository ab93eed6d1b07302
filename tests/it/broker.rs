//! The worker through the real RabbitMQ: formats, errors, concurrency, replies, dead letters,
//! spill files and receipts.

use crate::harness::*;
use midnit_worker::client::RawProps;
use midnit_worker::job::Job;
use midnit_worker::job::Limits;
use midnit_worker::protocol::{Status, DIRECT_REPLY_TO};
use midnit_worker::render::executor::InProcess;
use midnit_worker::render::Rendered;
use midnit_worker::tools::samples::{self, hostile};
use midnit_worker::wipe::WipeMethod;
use std::sync::Arc;

fn decode(data: &[u8]) -> image::DynamicImage {
    image::load_from_memory(data).expect("output decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_format_renders_to_every_output_format_from_one_decode() {
    let w = spawn_worker("formats").await;
    let client = w.client().await;
    let sticker = samples::figure_cutout(120, 90, 1);
    let inputs = [
        (
            "jpeg",
            samples::jpeg(&samples::figure_photo(120, 90, 1), 90),
        ),
        ("png", samples::png(&sticker)),
        ("webp", samples::webp(&sticker)),
        ("gif", samples::gif(&sticker)),
    ];
    for (kind, bytes) in inputs {
        let outputs = vec![
            output("a", "jpeg", Some(60), None),
            output("b", "png", Some(60), None),
            output("c", "webp", Some(30), Some(30)),
        ];
        let reply = render(&client, &request(bytes, outputs)).await;
        assert_eq!(reply.status, Status::Ok, "{kind}: {:?}", reply.error);
        let formats: Vec<_> = reply.outputs.iter().map(|o| o.format.as_str()).collect();
        assert_eq!(formats, ["jpeg", "png", "webp"], "{kind}");
        for (out, expect) in reply.outputs.iter().zip([
            image::ImageFormat::Jpeg,
            image::ImageFormat::Png,
            image::ImageFormat::WebP,
        ]) {
            assert_eq!(image::guess_format(&out.data).unwrap(), expect, "{kind}");
            let img = decode(&out.data);
            assert_eq!(
                (img.width(), img.height()),
                (out.width, out.height),
                "{kind}"
            );
        }
        assert_eq!(
            (reply.outputs[0].width, reply.outputs[0].height),
            (60, 45),
            "{kind}"
        );
        assert_eq!(
            (reply.outputs[2].width, reply.outputs[2].height),
            (30, 23),
            "{kind}"
        );
        let decodes = reply
            .receipt
            .wiped
            .iter()
            .filter(|e| e.artifact == "pixels.photo.decoded")
            .count();
        assert_eq!(decodes, 1, "{kind}: one decode for three outputs");
    }
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exif_orientation_is_applied_and_gps_never_reaches_an_output() {
    let w = spawn_worker("exif").await;
    let client = w.client().await;
    // Stored 40x20: left half red, right half blue. Orientation 6 displays it rotated
    // clockwise: 20x40 with red on top.
    let stored = image::RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let input = samples::with_exif(&samples::jpeg(&stored, 95), 6);
    assert!(input
        .windows(samples::GPS_MARKER.len())
        .any(|w| w == samples::GPS_MARKER));
    let outs = vec![
        output("j", "jpeg", None, None),
        output("p", "png", None, None),
        output("w", "webp", None, None),
    ];
    let reply = render(&client, &request(input, outs)).await;
    assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    for out in &reply.outputs {
        assert_eq!((out.width, out.height), (20, 40));
        let img = decode(&out.data).to_rgb8();
        let top = img.get_pixel(10, 5);
        let bottom = img.get_pixel(10, 35);
        assert!(top[0] > 200 && top[2] < 60, "{}: top {top:?}", out.name);
        assert!(
            bottom[2] > 200 && bottom[0] < 60,
            "{}: bottom {bottom:?}",
            out.name
        );
        let data: &[u8] = &out.data;
        assert!(!data
            .windows(samples::GPS_MARKER.len())
            .any(|w| w == samples::GPS_MARKER));
        assert!(
            !data.windows(6).any(|w| w == b"Exif\0\0"),
            "{}: EXIF present",
            out.name
        );
        assert!(
            !data.windows(4).any(|w| w == b"eXIf"),
            "{}: eXIf chunk present",
            out.name
        );
    }
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_code_and_the_worker_keeps_serving() {
    let w = spawn_worker("hostile").await;
    let client = w.client().await;
    let good = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    let png = samples::png(&samples::figure_cutout(64, 48, 3));
    let thumb = || vec![output("t", "png", Some(32), Some(32))];
    let mut v2 = request(good.clone(), thumb());
    v2.v = 2;
    // One more input than the default `max_inputs` (16).
    let mut too_many = request(good.clone(), thumb());
    for i in 0..Limits::default().max_inputs {
        too_many.inputs.insert(
            format!("extra{i}"),
            serde_bytes::ByteBuf::from(good.clone()),
        );
    }
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not CBOR", b"{\"v\":1}".to_vec(), "request.malformed"),
        ("empty body", Vec::new(), "request.malformed"),
        (
            "missing outputs",
            missing_outputs(&good),
            "request.malformed",
        ),
        (
            "unknown version",
            body_of(&v2),
            "request.unsupported_version",
        ),
        (
            "empty input",
            body_of(&request(Vec::new(), thumb())),
            "input.empty",
        ),
        (
            "text input",
            body_of(&request(
                b"hello, I am not a picture at all".to_vec(),
                thumb(),
            )),
            "input.undecodable",
        ),
        (
            "BMP input",
            body_of(&request(b"BM\0\0\0\0\0\0\0\0\x36\0\0\0".to_vec(), thumb())),
            "input.unsupported_format",
        ),
        (
            "truncated JPEG",
            body_of(&request(hostile::truncated(&good, good.len() / 2), thumb())),
            "input.undecodable",
        ),
        (
            "truncated PNG",
            body_of(&request(hostile::truncated(&png, png.len() / 2), thumb())),
            "input.undecodable",
        ),
        (
            "PNG bomb",
            body_of(&request(hostile::png_bomb(40_000), thumb())),
            "limits.pixels",
        ),
        (
            "overflowing dimensions",
            body_of(&request(
                hostile::png_header_only(0x7FFF_FFFF, 0x7FFF_FFFF),
                thumb(),
            )),
            "limits.pixels",
        ),
        (
            "zero-sized",
            body_of(&request(hostile::png_header_only(0, 10), thumb())),
            "input.undecodable",
        ),
        (
            "header without pixels",
            body_of(&request(hostile::png_header_only(100, 100), thumb())),
            "input.undecodable",
        ),
        (
            "too many frames",
            body_of(&request(hostile::gif_many_frames(1_500), thumb())),
            "limits.frames",
        ),
        (
            "output too large",
            body_of(&request(
                good.clone(),
                vec![output("t", "png", Some(100_000), None)],
            )),
            "limits.output",
        ),
        (
            "output pixels over limit",
            body_of(&request(
                good.clone(),
                vec![output("t", "png", Some(8000), Some(8000))],
            )),
            "limits.output",
        ),
        ("too many inputs", body_of(&too_many), "limits.inputs"),
        (
            "unknown output format",
            body_of(&request(
                good.clone(),
                vec![output("t", "tiff", None, None)],
            )),
            "request.invalid",
        ),
        (
            "no outputs",
            body_of(&request(good.clone(), vec![])),
            "request.invalid",
        ),
    ];
    for (label, body, code) in bodies {
        let reply = send_body(&client, &body).await;
        assert_eq!(reply.status, Status::Error, "{label}");
        assert_eq!(error_code(&reply), code, "{label}: {:?}", reply.error);
        assert!(!reply.error.as_ref().unwrap().message.is_empty(), "{label}");
        // Between two hostile requests, a good one is still served.
        let ok = render(&client, &request(good.clone(), thumb())).await;
        assert_eq!(ok.status, Status::Ok, "after {label}");
    }
    client.close().await;
    let shared = w.shared.clone();
    w.stop().await;
    let stats = shared.stats.snapshot();
    assert_eq!(stats.ok, 19);
    assert_eq!(stats.errors.values().sum::<u64>(), 19);
}

fn missing_outputs(input: &[u8]) -> Vec<u8> {
    let mut map = std::collections::BTreeMap::new();
    map.insert("v", ciborium::Value::Integer(1.into()));
    let inputs = vec![(
        ciborium::Value::Text("photo".into()),
        ciborium::Value::Bytes(input.to_vec()),
    )];
    map.insert("inputs", ciborium::Value::Map(inputs));
    let mut body = Vec::new();
    ciborium::into_writer(&map, &mut body).unwrap();
    body
}

fn panicking_render(_: &Job, _: &Limits) -> Result<Rendered, midnit_worker::protocol::JobError> {
    panic!("a decoder bug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_rendering_becomes_an_internal_error_reply() {
    let limits = Limits::default();
    let executor = Arc::new(InProcess::with_render(limits, 2, panicking_render));
    let w = spawn_worker_with("panic", |_| {}, Some(executor)).await;
    let client = w.client().await;
    let good = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    for _ in 0..3 {
        let reply = render(
            &client,
            &request(good.clone(), vec![output("t", "png", None, None)]),
        )
        .await;
        assert_eq!(error_code(&reply), "internal");
        let err = reply.error.unwrap();
        assert!(err.retryable);
        assert!(
            !err.message.contains("decoder bug"),
            "panic text must not leak: {}",
            err.message
        );
    }
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_jobs_in_flight_are_each_answered_once_with_their_own_correlation_id() {
    let w = spawn_worker_with("forty", |c| c.worker.concurrency = 2, None).await;
    let client = Arc::new(w.client().await);
    let photo = samples::jpeg(&samples::figure_photo(400, 300, 9), 85);
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let client = client.clone();
        let req = request(photo.clone(), vec![output("t", "png", Some(50 + i), None)]);
        tasks.push(tokio::spawn(
            async move { (i, render(&client, &req).await) },
        ));
    }
    for task in tasks {
        let (i, reply) = task.await.unwrap();
        assert_eq!(reply.status, Status::Ok, "job {i}: {:?}", reply.error);
        assert_eq!(
            reply.outputs[0].width,
            50 + i,
            "job {i} got another job's reply"
        );
    }
    Arc::try_unwrap(client).ok().unwrap().close().await;
    let shared = w.shared.clone();
    w.stop().await; // drains: every job the worker took is finished
    assert_eq!(
        shared.stats.snapshot().ok,
        40,
        "each job answered exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_a_named_reply_queue_and_a_vanished_one_is_counted_then_acked() {
    let w = spawn_worker("named").await;
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let reply_queue = unique_queue("named-replies");
    let opts = lapin::options::QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(reply_queue.as_str().into(), opts, Default::default())
        .await
        .unwrap();
    let client = w.client().await;
    let good = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    let body = body_of(&request(good, vec![output("t", "png", None, None)]));
    let props = RawProps {
        correlation_id: Some("named-1".into()),
        reply_to: Some(reply_queue.clone()),
        content_type: Some("application/cbor".into()),
        deadline_ms: None,
        epoch: None,
    };
    client.send_raw(&body, &props).await.unwrap();
    let got = wait_get(&ch, &reply_queue).await;
    assert_eq!(
        got.properties.correlation_id().as_ref().unwrap().as_str(),
        "named-1"
    );
    let reply = midnit_worker::protocol::decode_reply(&got.data).unwrap();
    assert_eq!(reply.status, Status::Ok);

    let gone = RawProps {
        reply_to: Some(unique_queue("never-declared")),
        ..props
    };
    client.send_raw(&body, &gone).await.unwrap();
    wait_until(|| w.shared.stats.snapshot().returned == 1).await;
    let jobs = ch
        .queue_declare(
            w.config.broker.queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        jobs.message_count(),
        0,
        "the job was acked, not left on the queue"
    );
    let _ = conn.close(200, "done".into()).await;
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_reply_to_leaves_a_record_without_its_photo_and_no_reply() {
    let w = spawn_worker("deadletter").await;
    let client = w.client().await;
    let good = samples::jpeg(&samples::figure_photo(64, 48, 3), 90);
    let body = body_of(&request(good.clone(), vec![output("t", "png", None, None)]));
    let props = RawProps {
        reply_to: None,
        ..RawProps::request("orphan")
    };
    client.send_raw(&body, &props).await.unwrap();
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let dead = wait_get(&ch, &w.config.broker.dlq()).await;
    let record: serde_json::Value = serde_json::from_slice(&dead.data).expect("a JSON record");
    assert_eq!(record["reason"], "no_reply_to");
    assert_eq!(record["correlation_id"], "orphan");
    assert_eq!(record["body_bytes"], body.len());
    assert!(
        dead.data.len() < 512,
        "a record, not the job: {} bytes",
        dead.data.len()
    );
    assert!(!dead
        .data
        .windows(32)
        .any(|w| good.windows(32).any(|g| g == w)));
    assert_eq!(w.shared.stats.snapshot().rejected, 1);
    // The request itself was acknowledged: nothing is left on the jobs queue.
    let left = ch
        .basic_get(w.config.broker.queue.as_str().into(), Default::default())
        .await
        .unwrap();
    assert!(left.is_none());
    let _ = conn.close(200, "done".into()).await;
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_inputs_are_spilled_then_wiped_and_the_spill_directory_ends_empty() {
    let w = spawn_worker_with("spill", |c| c.wipe.spill_threshold_bytes = 10_000, None).await;
    let client = w.client().await;
    let big = samples::jpeg(&samples::figure_photo(800, 600, 4), 95);
    assert!(big.len() > 10_000);
    for _ in 0..3 {
        let reply = render(
            &client,
            &request(big.clone(), vec![output("t", "jpeg", Some(100), None)]),
        )
        .await;
        assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
        let spill = reply
            .receipt
            .entry("spill.photo")
            .expect("the input was spilled");
        assert_eq!(spill.method, WipeMethod::OverwriteVerifyUnlink);
        assert_eq!(spill.bytes, big.len() as u64);
    }
    assert_eq!(std::fs::read_dir(w.spill_dir()).unwrap().count(), 0);
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_adds_up_to_the_bytes_the_job_held() {
    let w = spawn_worker("receipt").await;
    let client = w.client().await;
    let input = samples::jpeg(&samples::figure_photo(300, 200, 5), 90);
    let req = request(
        input.clone(),
        vec![
            output("small", "png", Some(30), None),
            output("big", "jpeg", Some(150), None),
        ],
    );
    let body_len = body_of(&req).len() as u64;
    let reply = render(&client, &req).await;
    assert_eq!(reply.status, Status::Ok);
    let r = &reply.receipt;
    assert_eq!(r.entry("request.body").unwrap().bytes, body_len);
    assert_eq!(r.entry("input.photo").unwrap().bytes, input.len() as u64);
    // The 150 px output allows shrink-on-load at 1/2: 150x100 decoded.
    assert_eq!(
        r.entry("pixels.photo.decoded").unwrap().bytes,
        150 * 100 * 3
    );
    assert_eq!(r.entry("pixels.small.resized").unwrap().bytes, 30 * 20 * 3);
    assert_eq!(r.entry("pixels.big.resized").unwrap().bytes, 150 * 100 * 3);
    for out in &reply.outputs {
        let entry = r.entry(&format!("output.{}", out.name)).unwrap();
        assert_eq!(entry.bytes, out.data.len() as u64, "{}", out.name);
        assert_eq!(entry.method, WipeMethod::Zeroize);
    }
    assert_eq!(r.wiped_bytes, r.wiped.iter().map(|e| e.bytes).sum::<u64>());
    assert_eq!(r.failures, 0);
    assert!(r.started_at_ms <= r.sealed_at_ms);
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_is_the_clients_default() {
    let w = spawn_worker("direct").await;
    let client = w.client().await;
    let id = client.new_correlation_id();
    let props = RawProps::request(&id);
    assert_eq!(props.reply_to.as_deref(), Some(DIRECT_REPLY_TO));
    let body = body_of(&request(
        samples::jpeg(&samples::figure_photo(64, 48, 3), 90),
        vec![output("t", "webp", None, None)],
    ));
    let rx = client.send_raw(&body, &props).await.unwrap();
    let bytes = midnit_worker::client::Client::await_raw(rx, REPLY)
        .await
        .unwrap();
    assert_eq!(
        midnit_worker::protocol::decode_reply(&bytes)
            .unwrap()
            .status,
        Status::Ok
    );
    client.close().await;
    w.stop().await;
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + REPLY;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_is_answered_expired_without_rendering() {
    let w = spawn_worker("deadline").await;
    let client = w.client().await;
    let body = body_of(&tiny_job());
    let now = midnit_worker::wipe::now_unix_ms();
    for (deadline, expect) in [(now - 1_000, "job.expired"), (now + 600_000, "ok")] {
        let id = client.new_correlation_id();
        let props = RawProps {
            deadline_ms: Some(deadline),
            ..RawProps::request(&id)
        };
        let rx = client.send_raw(&body, &props).await.unwrap();
        let reply = midnit_worker::protocol::decode_reply(
            &midnit_worker::client::Client::await_raw(rx, REPLY)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(error_code(&reply), expect);
        if expect != "ok" {
            assert!(
                reply.receipt.entry("pixels.photo.decoded").is_none(),
                "nothing was decoded"
            );
        }
    }
    client.close().await;
    w.stop().await;
}

fn photo_12mp() -> Vec<u8> {
    samples::jpeg(&samples::figure_photo(4000, 3000, 12), 92)
}

/// Sends `job`, expects `code`, then checks the same worker still renders a small job.
async fn answered_then_still_serving(
    w: TestWorker,
    job: midnit_worker::protocol::Request,
    code: &str,
) {
    let client = w.client().await;
    let reply = render(&client, &job).await;
    assert_eq!(error_code(&reply), code, "{:?}", reply.error);
    let small = request(
        samples::jpeg(&samples::figure_photo(200, 150, 1), 90),
        vec![output("t", "png", None, None)],
    );
    assert_eq!(render(&client, &small).await.status, Status::Ok);
    client.close().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_over_its_memory_limit_is_answered_limits_memory_and_the_worker_goes_on() {
    let w = spawn_worker_with("memory", |c| c.limits.max_job_memory_bytes = 96 << 20, None).await;
    // Full size: no shrink-on-load. The renderer maps ~60 MB of its own (code, the codec
    // libraries) before a job; 36 MB of decoded pixels on top cannot fit, a small job can.
    let big = request(photo_12mp(), vec![output("t", "jpeg", None, None)]);
    answered_then_still_serving(w, big, "limits.memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_past_its_time_limit_is_killed_and_answered_job_timeout() {
    let w = spawn_worker_with("timeout", |c| c.limits.max_job_seconds = 1, None).await;
    let outputs = vec![
        output("a", "png", None, None),
        output("b", "webp", None, None),
    ];
    answered_then_still_serving(w, request(photo_12mp(), outputs), "job.timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_isolated_executor_pixels_live_and_die_in_the_renderer_process() {
    let w = spawn_worker("isolated").await;
    let client = w.client().await;
    let reply = render(
        &client,
        &request(
            samples::jpeg(&samples::figure_photo(300, 200, 5), 90),
            // 200 px wide: too big for shrink-on-load, so the full 300x200 is decoded.
            vec![output("t", "png", Some(200), None)],
        ),
    )
    .await;
    assert_eq!(reply.status, Status::Ok);
    let decoded = reply.receipt.entry("pixels.photo.decoded").unwrap();
    assert_eq!(decoded.process.as_deref(), Some("renderer"));
    assert_eq!(decoded.bytes, 300 * 200 * 3);
    let request_body = reply.receipt.entry("request.body").unwrap();
    assert_eq!(
        request_body.process, None,
        "the delivery body is the worker's"
    );
    client.close().await;
    w.stop().await;
}

/// A stand-in renderer (a shell script) for supervisor tests: what the worker does when its
/// renderer crashes, hangs or talks nonsense.
fn fake_renderer(dir: &std::path::Path, name: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_hanging_or_babbling_renderer_gets_a_typed_error_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Each says it is ready (the byte `R`) like a real renderer, then misbehaves; "mute"
    // never even says it is ready.
    let cases = [
        ("crash", "printf R; kill -SEGV $$", "internal"),
        ("hang", "printf R; exec sleep 600", "job.timeout"),
        (
            "babble",
            "printf R; cat >/dev/null; echo not-a-framed-reply",
            "internal",
        ),
        ("mute", "exec sleep 600", "internal"),
    ];
    let job = tiny_job();
    for (name, script, code) in cases {
        let binary = fake_renderer(dir.path(), name, script);
        let w = spawn_worker_with(
            name,
            |c| {
                c.executor.renderer_binary = Some(binary.clone());
                c.limits.max_job_seconds = 2;
            },
            None,
        )
        .await;
        let client = w.client().await;
        for _ in 0..2 {
            let reply = render(&client, &job).await;
            assert_eq!(error_code(&reply), code, "{name}: {:?}", reply.error);
        }
        client.close().await;
        w.stop().await;
    }
}
