//! `demo`: a worker and a handful of sample jobs, end to end, with a line per job.
//!
//! With RabbitMQ reachable at the configured URL, the demo runs a real worker on a private
//! queue and sends the jobs through the broker with the [`crate::client`]. Without one it says
//! so and runs the same worker loop over the in-process queue ([`crate::app::memqueue`]).

use crate::app::config::Config;
use crate::app::memqueue::mem_queue;
use crate::app::worker::Worker;
use crate::client::Client;
use crate::protocol::{decode_reply, encode_request, OutputSpec, Reply, Request, Status};
use crate::tools::request_file::write_outputs;
use crate::tools::samples::{self, hostile};

use anyhow::Context;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// One sample job.
pub struct DemoJob {
    /// What it shows.
    pub label: &'static str,
    /// The request.
    pub request: Request,
}

fn out(name: &str, format: &str, w: u32, h: u32, fit: &str) -> OutputSpec {
    OutputSpec {
        name: name.into(),
        format: format.into(),
        width: Some(w),
        height: Some(h),
        fit: Some(fit.into()),
        ..OutputSpec::default()
    }
}

fn job(label: &'static str, input: Vec<u8>, outputs: Vec<OutputSpec>) -> DemoJob {
    let inputs = [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into();
    DemoJob {
        label,
        request: Request {
            preset: None,
            v: 1,
            inputs,
            recipe: None,
            outputs,
        },
    }
}

/// The documented showcase card recipe, drawn from a 12 MP photo at full size (1080×1350).
fn showcase_card() -> DemoJob {
    let photo = samples::jpeg(&samples::collector_photo(4000, 3000, 1), 90);
    DemoJob {
        label: "12 MP JPEG -> showcase card (recipe)",
        request: crate::tools::gallery::showcase_request(photo),
    }
}

/// The demo's jobs, generated in code.
pub fn jobs() -> Vec<DemoJob> {
    let photo = samples::jpeg(&samples::figure_photo(4000, 3000, 1), 90);
    let portrait = samples::portrait_as_phones_store_it(1200, 1600, 2);
    let sticker = samples::figure_cutout(800, 800, 3);
    vec![
        showcase_card(),
        job(
            "12 MP JPEG -> JPEG + WebP thumbnails",
            photo.clone(),
            vec![
                out("thumb", "jpeg", 512, 512, "contain"),
                out("square", "webp", 256, 256, "cover"),
            ],
        ),
        job(
            "phone portrait (EXIF rotate, GPS) -> avatar",
            portrait,
            vec![out("avatar", "jpeg", 400, 400, "cover")],
        ),
        job(
            "PNG sticker with alpha -> PNG + JPEG",
            samples::png(&sticker),
            vec![
                out("sticker", "png", 300, 300, "contain"),
                out("flat", "jpeg", 300, 300, "contain"),
            ],
        ),
        job(
            "GIF -> PNG",
            samples::gif(&samples::figure_cutout(300, 300, 4)),
            vec![out("gif-to-png", "png", 200, 200, "contain")],
        ),
        job(
            "decompression bomb (40000x40000 PNG)",
            hostile::png_bomb(40_000),
            vec![out("never", "png", 100, 100, "contain")],
        ),
        job(
            "truncated JPEG",
            hostile::truncated(&photo, photo.len() / 3),
            vec![out("never", "jpeg", 100, 100, "contain")],
        ),
    ]
}

/// Runs the demo, writing outputs under `out_dir`.
pub async fn run(mut config: Config, out_dir: &Path) -> anyhow::Result<()> {
    println!("generating sample jobs ...");
    let jobs = jobs();
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        crate::app::broker::connect(&config.broker, "midnit-demo-probe"),
    )
    .await;
    match reachable {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "probe".into()).await;
            config.broker.queue = format!("midnit.demo.{}", std::process::id());
            println!(
                "RabbitMQ at {}: running a worker on queue {}",
                config.broker.amqp_url.redacted(),
                config.broker.queue
            );
            run_on_broker(config, &jobs, out_dir).await
        }
        _ => {
            println!(
                "RabbitMQ not reachable at {}: running the same worker over an in-process queue",
                config.broker.amqp_url.redacted()
            );
            run_in_process(config, &jobs, out_dir).await
        }
    }
}

async fn run_on_broker(config: Config, jobs: &[DemoJob], out_dir: &Path) -> anyhow::Result<()> {
    let worker = Worker::start(config.clone()).await?;
    let keys = worker.handling().processor.keys.clone();
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let client = crate::client::for_worker(&config.broker).await?;
    for job in jobs {
        let started = Instant::now();
        let reply = client.reply(&job.request, REPLY_TIMEOUT).await?;
        report(job, &reply, started.elapsed(), out_dir)?;
    }
    match keys {
        Some(keys) => sealed_job(&client, &keys, &jobs[1], out_dir).await?,
        None => println!("sealed jobs are off (`sealed = \"off\"`): no sealed job shown"),
    }
    client.close().await;
    stop.cancel();
    running.await??;
    crate::app::broker::delete_topology(&config.broker, "midnit-demo-cleanup").await?;
    Ok(())
}

/// The thumbnail job again, sealed (contract v2) to the worker's epoch key from its signed
/// directory, with what the broker carried: ciphertext, checked to hold no piece of the photo.
async fn sealed_job(
    client: &Client,
    keys: &crate::keys::Keyring,
    job: &DemoJob,
    out_dir: &Path,
) -> anyhow::Result<()> {
    use midnit_client::sealed::{is_sealed_reply, SealedCall};
    let now = crate::wipe::now_unix_ms();
    let directory = midnit_client::KeyDirectory::verify(
        &keys.directory(now),
        &keys.directory_public_key(),
        now,
    )?;
    let body = encode_request(&job.request);
    let call = SealedCall::new(&directory, &body, now)?;
    let started = Instant::now();
    let props = crate::client::RawProps {
        content_type: Some(crate::protocol::SEALED_CONTENT_TYPE.into()),
        epoch: Some(call.epoch),
        ..crate::client::RawProps::request(&client.new_correlation_id())
    };
    let rx = client.send_raw(&call.sealed, &props).await?;
    let raw = Client::await_raw(rx, REPLY_TIMEOUT).await?;
    anyhow::ensure!(
        is_sealed_reply(&raw),
        "the sealed job's reply is not sealed"
    );
    let reply = decode_reply(&call.open(&raw)?)?;
    let sealed_job = DemoJob {
        label: "the same photo, sealed (contract v2)",
        request: job.request.clone(),
    };
    let dir = out_dir.join("sealed");
    report(&sealed_job, &reply, started.elapsed(), &dir)?;
    let photo = job
        .request
        .inputs
        .values()
        .next()
        .map(|b| b.as_slice())
        .unwrap_or(&[]);
    let leaked = |carried: &[u8]| {
        let pieces: std::collections::HashSet<&[u8]> = photo.chunks_exact(32).collect();
        carried.windows(32).filter(|w| pieces.contains(w)).count()
    };
    let output: Vec<u8> = reply.outputs.iter().flat_map(|o| o.data.to_vec()).collect();
    let in_reply = {
        let pieces: std::collections::HashSet<&[u8]> = output.chunks_exact(32).collect();
        raw.windows(32).filter(|w| pieces.contains(w)).count()
    };
    println!(
        "    the broker carried {} bytes of ciphertext out and {} back: {} of the photo's and {} of the outputs' 32-byte pieces in them",
        call.sealed.len(),
        raw.len(),
        leaked(&call.sealed),
        in_reply
    );
    if let Some(f) = &reply.receipt.sealed {
        let minutes = f
            .key_erased_by_ms
            .saturating_sub(crate::wipe::now_unix_ms())
            / 60_000;
        println!(
            "    sealed to epoch {}; its key is erased within {minutes} min (at {} ms after the Unix epoch), after which no copy of the request opens",
            f.epoch, f.key_erased_by_ms
        );
    }
    Ok(())
}

async fn run_in_process(config: Config, jobs: &[DemoJob], out_dir: &Path) -> anyhow::Result<()> {
    let executor = crate::app::worker::executor_for(
        &config.executor,
        &config.limits,
        config.worker.concurrency,
    )?;
    // The same worker as on the broker, consuming the in-process queue instead.
    let worker = Worker::prepare(config, executor)?;
    let (queue, source) = mem_queue(16);
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run_on(source, stop.clone()));
    for (i, job) in jobs.iter().enumerate() {
        let started = Instant::now();
        let rx = queue
            .submit(encode_request(&job.request), &format!("demo-{i}"))
            .await;
        let bytes = Client::await_raw(rx, REPLY_TIMEOUT).await?;
        let reply = decode_reply(&bytes).context("decoding the reply")?;
        report(job, &reply, started.elapsed(), out_dir)?;
    }
    stop.cancel();
    running.await??;
    Ok(())
}

fn report(job: &DemoJob, reply: &Reply, took: Duration, out_dir: &Path) -> anyhow::Result<()> {
    let detail = match (&reply.status, &reply.error) {
        (Status::Ok, _) => {
            write_outputs(reply, out_dir)?;
            reply
                .outputs
                .iter()
                .map(|o| {
                    format!(
                        "{}.{} {}x{} {}",
                        o.name,
                        o.format,
                        o.width,
                        o.height,
                        kb(o.data.len() as u64)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        (Status::Error, Some(e)) => format!("{}: {}", e.code, e.message),
        (Status::Error, None) => "error without a body".into(),
    };
    let status = if reply.status == Status::Ok {
        "ok"
    } else {
        "error"
    };
    println!(
        "{status:>5}  {:<45} {:>6.0} ms  wiped {:>9}  -> {detail}",
        job.label,
        took.as_secs_f64() * 1e3,
        kb(reply.receipt.wiped_bytes),
    );
    Ok(())
}

fn kb(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}
