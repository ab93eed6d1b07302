//! The renderer process: the worker binary run as `midnit-worker __render-child`, once per job.
//!
//! It reads one checked job from stdin (CBOR), renders it with the same pipeline as the
//! in-process executor, writes one reply to stdout (CBOR) and exits, so every byte of pixels
//! dies with the process. Its own buffers are ledgered and wiped like the worker's, and the
//! wipes are reported back to be listed in the job's receipt.
//!
//! The messages carry only what the checked job holds: limits, inputs (bytes, or the path of a
//! spill file the worker owns and wipes) and output plans. Never logged.

use super::sandbox::Sandbox;
use crate::config::Limits;
use crate::intake::{plan_outputs, Input, InputData, Job};
use crate::pipeline::probe::Header;
use crate::pipeline::{render, Rendered, RenderedOutput, StageTimings};
use crate::protocol::{ErrorCode, JobError, OutputSpec};
use crate::recipe::Recipe;
use crate::wipe::{Ledger, SecretBuf, WipeEntry};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// The hidden subcommand that runs a renderer.
pub const CHILD_COMMAND: &str = "__render-child";

#[derive(Serialize)]
struct JobOut<'a> {
    limits: &'a Limits,
    inputs: Vec<InputOut<'a>>,
    outputs: Vec<OutputSpec>,
    recipe: Option<&'a Recipe>,
}

#[derive(Serialize)]
struct InputOut<'a> {
    name: &'a str,
    header: Header,
    bytes: Option<&'a serde_bytes::Bytes>,
    spill_path: Option<&'a std::path::Path>,
}

#[derive(Deserialize)]
struct JobIn {
    limits: Limits,
    inputs: Vec<InputIn>,
    outputs: Vec<OutputSpec>,
    recipe: Option<Recipe>,
}

#[derive(Deserialize)]
struct InputIn {
    name: String,
    header: Header,
    bytes: Option<serde_bytes::ByteBuf>,
    spill_path: Option<PathBuf>,
}

/// The renderer's answer.
#[derive(Serialize, Deserialize)]
pub struct ChildReply<O> {
    /// Rendered outputs (empty on error).
    pub outputs: Vec<O>,
    /// The error code and message, if rendering failed.
    pub error: Option<(String, String)>,
    /// What the renderer wiped.
    pub wiped: Vec<WipeEntry>,
    /// Stage timings in seconds: decode, compose, resize, encode.
    pub timings: [f64; 4],
    /// The renderer's peak resident memory, bytes (VmHWM), read just before it answers.
    #[serde(default)]
    pub peak_rss: u64,
}

/// An output as it crosses the pipe.
#[derive(Serialize, Deserialize)]
pub struct OutputWire<B> {
    name: String,
    format: String,
    width: u32,
    height: u32,
    data: B,
}

/// Writes the job for the renderer into a ledgered buffer.
pub fn encode_job(job: &Job, limits: &Limits) -> SecretBuf {
    let inputs = job
        .inputs
        .iter()
        .map(|i| {
            let (bytes, spill_path) = match &i.data {
                InputData::Memory(b) => (Some(serde_bytes::Bytes::new(b.as_slice())), None),
                InputData::Spilled(f) => (None, Some(f.path())),
                InputData::SpillPath(p) => (None, Some(p.as_path())),
            };
            InputOut {
                name: &i.name,
                header: i.header,
                bytes,
                spill_path,
            }
        })
        .collect();
    let message = JobOut {
        limits,
        inputs,
        outputs: job.outputs.iter().map(|o| o.to_spec()).collect(),
        recipe: job.recipe.as_ref(),
    };
    let size: usize = job
        .inputs
        .iter()
        .map(|i| match &i.data {
            InputData::Memory(b) => b.len() + 256,
            _ => 512,
        })
        .sum();
    let mut buf = SecretBuf::with_capacity(size + 4096, "renderer.request", &job.ledger);
    ciborium::into_writer(&message, &mut buf).expect("writing to memory cannot fail");
    buf
}

fn decode_job(message: &SecretBuf, ledger: &Ledger) -> Result<(Job, Limits), JobError> {
    let JobIn {
        limits,
        inputs,
        outputs,
        recipe,
    } = crate::wipe::cbor_from_slice(message.as_slice())
        .map_err(|e| JobError::new(ErrorCode::Internal, format!("renderer request: {e}")))?;
    let outputs = plan_outputs(&outputs, &limits)?;
    let inputs: Vec<Input> = inputs
        .into_iter()
        .map(|i| {
            let data = match (i.bytes, i.spill_path) {
                (Some(b), _) => InputData::Memory(SecretBuf::new(
                    b.into_vec(),
                    format!("input.{}", i.name),
                    ledger,
                )),
                (None, Some(path)) => InputData::SpillPath(path),
                (None, None) => InputData::Memory(SecretBuf::new(Vec::new(), "input", ledger)),
            };
            Input {
                name: i.name,
                header: i.header,
                data,
            }
        })
        .collect();
    if let Some(recipe) = &recipe {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        crate::recipe::check(recipe, &names, &crate::recipe::RecipeLimits::new(&limits))?;
    }
    let job = Job {
        inputs,
        outputs,
        recipe,
        ledger: ledger.clone(),
    };
    Ok((job, limits))
}

/// The byte a renderer writes once it has limited and confined itself.
pub const READY: u8 = b'R';

/// The flag that tells a pre-started renderer to warm up while it waits for its job.
pub const WARM_FLAG: &str = "--warm";

/// Renders a tiny synthetic photo through the whole pipeline (JPEG and PNG out), so the code
/// pages, lazily built tables and CPU-feature probes of the codecs and the resizer are ready
/// before the real job arrives. No job data is involved.
fn warm_up() {
    let photo = crate::samples::jpeg(&crate::samples::figure_photo(96, 72, 1), 90);
    let mut request = crate::samples::thumbnail_request(photo, "jpeg", 32);
    let mut png = request.outputs[0].clone();
    png.name = "warm".into();
    png.format = "png".into();
    request.outputs.push(png);
    let ledger = Ledger::new();
    let limits = Limits::default();
    let body = SecretBuf::new(
        crate::protocol::encode_request(&request),
        "warm-up",
        &ledger,
    );
    let meta = crate::intake::Meta::default();
    if let Ok(job) = crate::intake::intake(body, &meta, &limits, None, &ledger) {
        let _ = render(&job, &limits);
    }
}

/// The renderer's arguments after [`CHILD_COMMAND`]: the worker's pid, its limits, and
/// whether to warm up.
pub fn child_args(parent: u32, sandbox: Sandbox, warm: bool) -> Vec<String> {
    let mut args = vec![CHILD_COMMAND.to_owned(), parent.to_string()];
    args.extend(sandbox.to_args());
    if warm {
        args.push(WARM_FLAG.to_owned());
    }
    args
}

/// Runs the renderer with the arguments after [`CHILD_COMMAND`]: limits itself, confines
/// itself, writes [`READY`], then stdin → render → stdout (the reply framed by its length as 8
/// bytes, little-endian). The return value is the exit code. With [`WARM_FLAG`], the pipeline is
/// exercised on a synthetic image first (pre-started renderers do this while they wait).
pub fn run_child(args: &[String]) -> i32 {
    let (Some(parent), Some(sandbox)) = (
        args.first().and_then(|p| p.parse().ok()),
        args.get(1)
            .zip(args.get(2))
            .and_then(|(m, c)| Sandbox::from_args(m, c)),
    ) else {
        return 2;
    };
    if sandbox.apply(parent).is_err() {
        return 6;
    }
    // exec reset the dumpable flag the worker set before it: clear it again.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if super::seccomp::confine().is_err() {
        return 5;
    }
    if args.get(3).map(String::as_str) == Some(WARM_FLAG) {
        warm_up();
    }
    // Tell the worker the limits are in place: only now may it lower them for the job.
    let mut out = std::io::stdout().lock();
    if out.write_all(&[READY]).and_then(|()| out.flush()).is_err() {
        return 4;
    }
    drop(out);
    let ledger = Ledger::new();
    // The job comes length-first, so its buffer is allocated once at its exact size (growing
    // it by doubling would briefly hold two copies and raise the peak memory of every job).
    let mut stdin = std::io::stdin().lock();
    let mut length = [0u8; 8];
    if stdin.read_exact(&mut length).is_err() {
        return 3;
    }
    let length = u64::from_le_bytes(length);
    let Ok(capacity) = usize::try_from(length) else {
        return 3;
    };
    let mut message = SecretBuf::with_capacity(capacity, "renderer.request", &ledger);
    let copied = std::io::copy(&mut (&mut stdin).take(length), &mut message);
    drop(stdin);
    if !matches!(copied, Ok(n) if n == length) {
        return 3;
    }
    let parsed = decode_job(&message, &ledger);
    message.wipe();
    let result = parsed.and_then(|(job, limits)| {
        let rendered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(&job, &limits)));
        drop(job);
        rendered.unwrap_or_else(|_| {
            Err(JobError::new(
                ErrorCode::Internal,
                "the renderer crashed on this job",
            ))
        })
    });
    let reply = encode_reply(result, &ledger);
    let mut out = std::io::stdout().lock();
    let length = (reply.len() as u64).to_le_bytes();
    let ok = out
        .write_all(&length)
        .and_then(|()| out.write_all(reply.as_slice()))
        .and_then(|()| out.flush())
        .is_ok();
    drop(reply);
    if ok {
        0
    } else {
        4
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Writes the renderer's reply: outputs copied in and wiped, then the wipe entries.
fn encode_reply(result: Result<Rendered, JobError>, ledger: &Ledger) -> SecretBuf {
    let size: usize = match &result {
        Ok(r) => r.outputs.iter().map(|o| o.data.len() + 128).sum(),
        Err(_) => 0,
    };
    let mut buf = SecretBuf::with_capacity(size + 16 * 1024, "renderer.reply", ledger);
    let (encoded_outputs, error, timings) = match result {
        Ok(rendered) => {
            let mut outs = SecretBuf::with_capacity(size + 1024, "renderer.outputs", ledger);
            let views: Vec<OutputWire<&serde_bytes::Bytes>> = rendered
                .outputs
                .iter()
                .map(|o| OutputWire {
                    name: o.name.clone(),
                    format: o.format.into(),
                    width: o.width,
                    height: o.height,
                    data: serde_bytes::Bytes::new(o.data.as_slice()),
                })
                .collect();
            ciborium::into_writer(&views, &mut outs).expect("memory write");
            drop(views);
            let t = rendered.timings;
            drop(rendered); // outputs and pixels wiped (and ledgered) before the snapshot below
            (
                Some(outs),
                None,
                [
                    secs(t.decode),
                    secs(t.compose),
                    secs(t.resize),
                    secs(t.encode),
                ],
            )
        }
        Err(e) => (
            None,
            Some((e.code.as_str().to_owned(), e.message)),
            [0.0; 4],
        ),
    };
    // A CBOR map of five entries, the outputs spliced in as already-encoded CBOR.
    buf.write_all(&[0xA5]).expect("memory write");
    let put = |buf: &mut SecretBuf, v: &dyn erased::Ser| v.put(buf);
    put(&mut buf, &"outputs");
    match &encoded_outputs {
        Some(outs) => buf.write_all(outs.as_slice()).expect("memory write"),
        None => buf.write_all(&[0x80]).expect("memory write"), // empty array
    }
    drop(encoded_outputs);
    put(&mut buf, &"error");
    put(&mut buf, &error);
    put(&mut buf, &"timings");
    put(&mut buf, &timings);
    put(&mut buf, &"wiped");
    put(&mut buf, &ledger.entries());
    put(&mut buf, &"peak_rss");
    put(&mut buf, &peak_rss());
    buf
}

/// This process's peak resident memory in bytes (VmHWM), 0 if unreadable.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

mod erased {
    use crate::wipe::SecretBuf;

    /// Serialises one CBOR item into a buffer (object-safe helper).
    pub trait Ser {
        fn put(&self, buf: &mut SecretBuf);
    }

    impl<T: serde::Serialize> Ser for T {
        fn put(&self, buf: &mut SecretBuf) {
            ciborium::into_writer(self, buf).expect("memory write");
        }
    }
}

/// Reads the renderer's reply in the worker: outputs become ledgered buffers, the renderer's
/// wipes join the job's ledger.
pub fn decode_reply(bytes: &SecretBuf, ledger: &Ledger) -> Result<Rendered, JobError> {
    let reply: ChildReply<OutputWire<serde_bytes::ByteBuf>> =
        crate::wipe::cbor_from_slice(bytes.as_slice())
            .map_err(|e| JobError::new(ErrorCode::Internal, format!("renderer reply: {e}")))?;
    ledger.record_reported(reply.wiped, "renderer");
    if let Some((code, message)) = reply.error {
        let code = ErrorCode::parse(&code).unwrap_or(ErrorCode::Internal);
        return Err(JobError::new(code, message));
    }
    let outputs = reply
        .outputs
        .into_iter()
        .map(|o| RenderedOutput {
            data: SecretBuf::new(o.data.into_vec(), format!("output.{}", o.name), ledger),
            format: static_format(&o.format),
            name: o.name,
            width: o.width,
            height: o.height,
        })
        .collect();
    let [d, c, r, e] = reply.timings.map(|s| Duration::from_secs_f64(s.max(0.0)));
    Ok(Rendered {
        outputs,
        timings: StageTimings {
            decode: d,
            compose: c,
            resize: r,
            encode: e,
        },
        renderer_peak_rss: (reply.peak_rss > 0).then_some(reply.peak_rss),
    })
}

fn static_format(f: &str) -> &'static str {
    match f {
        "jpeg" => "jpeg",
        "png" => "png",
        _ => "webp",
    }
}
