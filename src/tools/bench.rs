//! `midnit-worker bench`: a load generator. It starts a worker (this binary, `serve`, with the
//! given configuration, on a queue of its own), drives it through the real broker with a job
//! mix at each requested concurrency (jobs in flight from the client, closed loop), and reports
//! per level: jobs/s, latency p50/p95/p99 from publish to reply, CPU seconds per job (the
//! worker and its renderers, from `/proc`), and the worker's peak RSS. Writes `bench.json`
//! and `bench.svg` (throughput and latency against concurrency) to the output directory.

use crate::app::config::Config;
use crate::client::{Client, RawProps};
use crate::protocol::{decode_reply, encode_request, OutputSpec, Request, Status};
use crate::reply::process::{Delivery, Processor};
use crate::tools::samples;
use anyhow::Context;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod report;

pub use report::{chart, print};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Client-side jobs in flight, one level after another.
    pub concurrency: Vec<usize>,
    /// Jobs per level.
    pub jobs: usize,
    /// Size of the generated photos (the default is 12 MP).
    pub photo: (u32, u32),
    /// Where `bench.json` and `bench.svg` go.
    pub out: PathBuf,
    /// Which jobs.
    pub mix: Mix,
}

/// Job mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Round robin: three 12 MP JPEG → 512 px thumbnails, a PNG 1200×900 → JPEG conversion and
    /// a 1080×1350 showcase card drawn by a recipe from a 12 MP JPEG.
    Standard,
    /// One small job only — a 1280×960 JPEG of about 200 KB to a 256 px JPEG — to measure
    /// what the broker and isolation add to a job.
    Small,
}

/// One concurrency level's result.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Jobs in flight.
    pub concurrency: usize,
    /// Jobs answered.
    pub jobs: usize,
    /// Jobs answered `ok`.
    pub ok: usize,
    /// Jobs per second of wall-clock time.
    pub jobs_per_sec: f64,
    /// Latency percentiles from publish to reply, in ms.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// CPU seconds (user + system) of the worker and its renderers per job.
    pub cpu_sec_per_job: f64,
    /// Peak resident memory of the worker process (VmHWM), MiB.
    pub worker_peak_rss_mib: f64,
    /// Highest peak resident memory (VmHWM) a renderer reported for a job of this level, MiB
    /// (0 with the in-process executor).
    pub renderer_peak_rss_mib: f64,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The job mix.
    pub mix: Vec<String>,
    /// Worker concurrency (its renderers).
    pub worker_concurrency: usize,
    /// Executor of the worker.
    pub executor: String,
    /// One entry per level.
    pub levels: Vec<Level>,
    /// With the small mix: the job's median render time in this process, with no broker and
    /// no renderer process (intake, rendering, sealing, wiping), in ms. Latency minus this is what the
    /// broker and the executor add.
    pub kernel_p50_ms: Option<f64>,
}

/// Median time of the whole way of `body` in this process (intake, rendering in process,
/// sealing and wiping: [`Processor::process_one`], as the worker runs it), over `runs` runs,
/// in ms.
async fn kernel_p50_ms(body: &[u8], config: &Config, runs: usize) -> f64 {
    let processor = Processor::local(&config.limits, &config.presets);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let sealed = processor
            .process_one(Delivery::local(body.to_vec(), "bench"))
            .await;
        assert!(sealed.code.is_none(), "the bench job renders");
        drop(sealed);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct MixJob {
    label: String,
    body: Vec<u8>,
}

fn mix(kind: Mix, photo: (u32, u32)) -> Vec<MixJob> {
    if kind == Mix::Small {
        let jpeg = samples::jpeg(&samples::figure_photo(1280, 960, 9), 90);
        return vec![MixJob {
            label: format!("JPEG 1280x960 ({} KB) -> 256 JPEG", jpeg.len() / 1000),
            body: encode_request(&samples::thumbnail_request(jpeg, "jpeg", 256)),
        }];
    }
    let thumb = |seed| {
        let jpeg = samples::jpeg(&samples::figure_photo(photo.0, photo.1, seed), 90);
        samples::thumbnail_request(jpeg, "jpeg", 512)
    };
    let png_conversion = {
        let png = samples::png(&samples::figure_photo(1200, 900, 7));
        Request {
            preset: None,
            v: 1,
            inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(png))].into(),
            recipe: None,
            outputs: vec![OutputSpec {
                name: "converted".into(),
                format: "jpeg".into(),
                quality: Some(85),
                ..Default::default()
            }],
        }
    };
    let mut jobs: Vec<MixJob> = (0..3)
        .map(|seed| MixJob {
            label: format!("thumbnail {}x{} JPEG -> 512 JPEG", photo.0, photo.1),
            body: encode_request(&thumb(40 + seed)),
        })
        .collect();
    jobs.push(MixJob {
        label: "PNG 1200x900 -> JPEG".into(),
        body: encode_request(&png_conversion),
    });
    let card_photo = samples::jpeg(&samples::collector_photo(photo.0, photo.1, 3), 90);
    jobs.push(MixJob {
        label: format!("showcase card 1080x1350 from {}x{} JPEG", photo.0, photo.1),
        body: encode_request(&crate::tools::gallery::showcase_request(card_photo)),
    });
    jobs
}

/// CPU seconds of `pid` and its reaped children, and its VmHWM in KiB.
fn cpu_and_peak(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime, stime, cutime, cstime are fields 14-17 (1-based); here offset by the 2 skipped.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (tick(11) + tick(12) + tick(13) + tick(14)) / hz;
    (cpu, status_kib(pid, "VmHWM:"))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest `renderer_peak_rss_kib` the worker logged after byte `from` of its log, and
/// the log's length now.
fn renderer_peak_kib(log: &Path, from: usize) -> (u64, usize) {
    let text = std::fs::read(log).unwrap_or_default();
    let new = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
    let peak = new
        .split("renderer_peak_rss_kib=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0);
    (peak, text.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A worker child process on its own queue, killed when dropped.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start_worker(config: &Config, log: &Path) -> anyhow::Result<WorkerProcess> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let child = Command::new(exe)
        .arg("serve")
        .env("MIDNIT_AMQP_URL", config.broker.amqp_url.expose())
        .env("MIDNIT_QUEUE", &config.broker.queue)
        .env("MIDNIT_CONCURRENCY", config.worker.concurrency.to_string())
        .env("MIDNIT_EXECUTOR", executor_name(config))
        .env("MIDNIT_HTTP_ADDR", "")
        .env("MIDNIT_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting the worker")?;
    Ok(WorkerProcess(child))
}

fn executor_name(config: &Config) -> &'static str {
    match config.executor.executor {
        crate::app::config::ExecutorKind::Isolated => "isolated",
        crate::app::config::ExecutorKind::InProcess => "in_process",
    }
}

/// Runs the plan against a worker started with `config` (its queue is replaced by a fresh one).
pub async fn run(mut config: Config, plan: &Plan) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&plan.out)?;
    config.broker.queue = format!("midnit.bench.{}", std::process::id());
    eprintln!("generating the job mix ...");
    let jobs = mix(plan.mix, plan.photo);
    // Declare the topology first, so no job is published before its queue exists.
    let conn = crate::app::broker::connect(&config.broker, "midnit-bench").await?;
    crate::app::broker::declare_topology(&conn.create_channel().await?, &config.broker).await?;
    let _ = conn.close(200, "declared".into()).await;
    let worker = start_worker(&config, &plan.out.join("worker.log"))?;
    let client = crate::client::for_worker(&config.broker).await?;
    // Warm up: the worker is consuming once it answers.
    let warm = client
        .send_raw(&jobs[0].body, &RawProps::request("warm-up"))
        .await?;
    Client::await_raw(warm, Duration::from_secs(120))
        .await
        .context("the worker did not answer a first job")?;
    let log = plan.out.join("worker.log");
    let mut levels = Vec::new();
    let (_, mut seen) = renderer_peak_kib(&log, 0);
    for &concurrency in &plan.concurrency {
        let mut result = level(&client, &jobs, concurrency, plan.jobs, worker.0.id()).await?;
        let (peak, now) = renderer_peak_kib(&log, seen);
        seen = now;
        result.renderer_peak_rss_mib = peak as f64 / 1024.0;
        levels.push(result);
    }
    client.close().await;
    drop(worker);
    let kernel = match plan.mix {
        Mix::Small => Some(kernel_p50_ms(&jobs[0].body, &config, 101).await),
        _ => None,
    };
    let report = Report {
        mix: jobs.iter().map(|j| j.label.clone()).collect(),
        worker_concurrency: config.worker.concurrency,
        executor: executor_name(&config).into(),
        levels,
        kernel_p50_ms: kernel,
    };
    std::fs::write(
        plan.out.join("bench.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    std::fs::write(plan.out.join("bench.svg"), chart(&report))?;
    crate::app::broker::delete_topology(&config.broker, "midnit-bench-cleanup").await?;
    Ok(report)
}

async fn level(
    client: &Client,
    jobs: &[MixJob],
    concurrency: usize,
    total: usize,
    worker: u32,
) -> anyhow::Result<Level> {
    let (cpu_before, _) = cpu_and_peak(worker);
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut latencies = Vec::with_capacity(total);
    let (mut sent, mut ok) = (0, 0);
    while latencies.len() < total {
        while in_flight.len() < concurrency && sent < total {
            let job = &jobs[sent % jobs.len()];
            let id = client.new_correlation_id();
            let rx = client.send_raw(&job.body, &RawProps::request(&id)).await?;
            in_flight.push_back((Instant::now(), rx));
            sent += 1;
        }
        let (at, rx) = in_flight.pop_front().expect("jobs in flight");
        let bytes = Client::await_raw(rx, Duration::from_secs(300)).await?;
        latencies.push(at.elapsed().as_secs_f64() * 1e3);
        if decode_reply(&bytes).is_ok_and(|r| r.status == Status::Ok) {
            ok += 1;
        }
        progress(concurrency, latencies.len(), total);
    }
    let wall = started.elapsed().as_secs_f64();
    // Let the last renderers be reaped, so their CPU is counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cpu_after, peak) = cpu_and_peak(worker);
    eprintln!();
    latencies.sort_by(f64::total_cmp);
    Ok(Level {
        concurrency,
        jobs: total,
        ok,
        jobs_per_sec: total as f64 / wall,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        cpu_sec_per_job: (cpu_after - cpu_before) / total as f64,
        worker_peak_rss_mib: peak as f64 / 1024.0,
        renderer_peak_rss_mib: 0.0,
    })
}

fn progress(concurrency: usize, done: usize, total: usize) {
    let width = 30;
    let filled = done * width / total.max(1);
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\rconcurrency {concurrency:>3} [{bar}] {done}/{total}");
    let _ = err.flush();
}

#[cfg(test)]
mod tests;
