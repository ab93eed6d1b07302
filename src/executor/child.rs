//! The renderer process: the worker binary run as `midnit-worker __render-child`, once per job.
//!
//! It limits and confines itself, says it is ready, reads one checked job (length-framed CBOR
//! on its stdin, a Unix socket; spill files arrive as read-only descriptors), renders it with
//! the same pipeline as the in-process executor, writes its answer to stdout and exits, so every
//! byte of pixels dies with the process.
//!
//! Both directions are serde types ([`JobMessage`] out, [`ReplyMessage`] and [`WipeReport`]
//! back). The answer comes in two frames: the result, then — once the outputs it carried have
//! been wiped — the renderer's wipe report, so the report lists the outputs' own wipes. The
//! worker treats the answer as hostile and checks it against the job ([`accept`]).

use super::fdpass;
use super::sandbox::Sandbox;
use crate::config::Limits;
use crate::intake::probe::Header;
use crate::intake::{Input, InputData, Job, OutputFormat, OutputPlan};
use crate::pipeline::{render, Rendered, RenderedOutput, StageTimings};
use crate::protocol::{ErrorCode, JobError};
use crate::recipe::Recipe;
use crate::wipe::{Ledger, SecretBuf, WipeEntry};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// The hidden subcommand that runs a renderer.
pub const CHILD_COMMAND: &str = "__render-child";

/// Where an input's bytes come from, as the job crosses the pipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source<B> {
    /// The bytes themselves.
    Bytes(B),
    /// The `n`-th descriptor passed with the job (a spill file, read-only).
    Descriptor(u32),
}

/// One input as it crosses the pipe.
#[derive(Debug, Serialize, Deserialize)]
pub struct InputMessage<N, B> {
    /// Its name.
    pub name: N,
    /// What its header declared (already checked by the worker).
    pub header: Header,
    /// Its bytes.
    pub data: Source<B>,
}

/// The job as it crosses the pipe to the renderer.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobMessage<N, B, O, R> {
    /// The limits the job is held to.
    pub limits: Limits,
    /// The inputs.
    pub inputs: Vec<InputMessage<N, B>>,
    /// The checked output plans.
    pub outputs: O,
    /// The checked recipe.
    pub recipe: Option<R>,
}

/// The job as the worker writes it (borrowing everything).
type JobOut<'a> = JobMessage<&'a str, &'a Bytes, &'a [OutputPlan], &'a Recipe>;
/// The job as the renderer reads it.
type JobIn = JobMessage<String, ByteBuf, Vec<OutputPlan>, Recipe>;

/// One rendered output as it crosses the pipe.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutputMessage<B> {
    /// The output's name.
    pub name: String,
    /// Its format.
    pub format: OutputFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded image.
    pub data: B,
}

/// What the renderer made of its job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<B> {
    /// Every output, in plan order.
    Rendered(Vec<OutputMessage<B>>),
    /// A typed failure.
    Failed {
        /// The code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
}

/// The renderer's first frame: the result and how it went.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplyMessage<B> {
    /// The result.
    pub answer: Answer<B>,
    /// Stage timings in seconds: decode, compose, resize, encode.
    pub timings: [f64; 4],
    /// The renderer's peak resident memory in bytes, read just before it answers.
    pub peak_rss: u64,
}

/// The renderer's second frame: what its own wiping code destroyed.
#[derive(Debug, Serialize, Deserialize)]
pub struct WipeReport {
    /// The entries, at most [`crate::wipe::MAX_ENTRIES`].
    pub wiped: Vec<WipeEntry>,
}

/// A job ready for the renderer: the message and the descriptors that go with it.
pub struct EncodedJob {
    /// The CBOR message.
    pub message: SecretBuf,
    /// Read-only descriptors of the spill files, in the order the message numbers them.
    pub descriptors: Vec<std::fs::File>,
}

/// Writes the job for the renderer into a ledgered buffer, opening each spill file read-only.
pub fn encode_job(job: &Job, limits: &Limits) -> Result<EncodedJob, JobError> {
    let mut descriptors = Vec::new();
    let mut inputs = Vec::with_capacity(job.inputs.len());
    for i in &job.inputs {
        let data = match &i.data {
            InputData::Memory(b) => Source::Bytes(Bytes::new(b.as_slice())),
            InputData::Spilled(f) => {
                let file = f.reader().map_err(|e| {
                    JobError::new(ErrorCode::Internal, format!("opening a spill file: {e}"))
                })?;
                descriptors.push(file);
                Source::Descriptor(descriptors.len() as u32 - 1)
            }
            InputData::Descriptor(_) => {
                return Err(JobError::new(
                    ErrorCode::Internal,
                    "a renderer's own job cannot be handed on",
                ))
            }
        };
        inputs.push(InputMessage {
            name: i.name.as_str(),
            header: i.header,
            data,
        });
    }
    let message: JobOut<'_> = JobMessage {
        limits: limits.clone(),
        inputs,
        outputs: &job.outputs,
        recipe: job.recipe.as_ref(),
    };
    let size: usize = job
        .inputs
        .iter()
        .map(|i| match &i.data {
            InputData::Memory(b) => b.len() + 256,
            _ => 256,
        })
        .sum();
    let mut buf = SecretBuf::with_capacity(size + 16 * 1024, "renderer.request", &job.ledger);
    ciborium::into_writer(&message, &mut buf).expect("writing to memory cannot fail");
    Ok(EncodedJob {
        message: buf,
        descriptors,
    })
}

fn decode_job(
    message: &SecretBuf,
    descriptors: &mut [Option<std::fs::File>],
    ledger: &Ledger,
) -> Result<(Job, Limits), JobError> {
    let internal =
        |what: &str| JobError::new(ErrorCode::Internal, format!("renderer request: {what}"));
    let JobMessage {
        limits,
        inputs,
        outputs,
        recipe,
    }: JobIn =
        crate::wipe::cbor_from_slice(message.as_slice()).map_err(|_| internal("unreadable"))?;
    // The renderer trusts nothing it is handed: the plans and the recipe are checked again.
    let specs: Vec<_> = outputs.iter().map(OutputPlan::to_spec).collect();
    let outputs = crate::intake::plan_outputs(&specs, &limits)?;
    let mut checked = Vec::with_capacity(inputs.len());
    for i in inputs {
        let data = match i.data {
            Source::Bytes(b) => InputData::Memory(SecretBuf::new(
                b.into_vec(),
                format!("input.{}", i.name),
                ledger,
            )),
            Source::Descriptor(n) => {
                let file = descriptors
                    .get_mut(n as usize)
                    .and_then(Option::take)
                    .ok_or_else(|| internal("a spill descriptor is missing"))?;
                InputData::Descriptor(file)
            }
        };
        checked.push(Input {
            name: i.name,
            header: i.header,
            data,
        });
    }
    let job = Job {
        inputs: checked,
        outputs,
        recipe,
        ledger: ledger.clone(),
    };
    if let Some(recipe) = &job.recipe {
        let limits = crate::recipe::RecipeLimits::new(&limits);
        crate::recipe::check(recipe, &job.shapes(), &limits)?;
    }
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

/// How a renderer ends, as its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Answered.
    Answered = 0,
    /// Its arguments were not a renderer's.
    Usage = 2,
    /// Its job did not arrive whole.
    NoJob = 3,
    /// Its answer could not be written.
    NoAnswer = 4,
    /// The system-call filter could not be installed.
    Unconfined = 5,
    /// The kernel limits could not be applied (or the worker is gone).
    Unlimited = 6,
}

/// Limits and confines the calling process as a renderer (also used by the self-test).
pub fn confine_as_renderer(args: &[String]) -> Result<(), Exit> {
    let (Some(parent), Some(sandbox)) = (
        args.first().and_then(|p| p.parse().ok()),
        args.get(1)
            .zip(args.get(2))
            .and_then(|(m, c)| Sandbox::from_args(m, c)),
    ) else {
        return Err(Exit::Usage);
    };
    sandbox.apply(parent).map_err(|_| Exit::Unlimited)?;
    // exec reset the dumpable flag the worker set before it: clear it again.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    super::seccomp::confine().map_err(|_| Exit::Unconfined)
}

/// The renderer's stdin, read with plain `read` calls: never past the job (the byte that
/// carries the spill descriptors follows it, and a buffered read would swallow them).
fn stdin() -> ManuallyDrop<std::fs::File> {
    // SAFETY: fd 0 is open for the whole life of the process; ManuallyDrop never closes it.
    ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) })
}

/// Runs the renderer with the arguments after [`CHILD_COMMAND`]: limits itself, confines
/// itself, writes [`READY`], then stdin → render → stdout (each frame preceded by its length as
/// 8 bytes, little-endian). Returns the exit code. With [`WARM_FLAG`], the pipeline is exercised
/// on a synthetic image first (pre-started renderers do this while they wait).
pub fn run_child(args: &[String]) -> i32 {
    if let Err(exit) = confine_as_renderer(args) {
        return exit as i32;
    }
    if args.get(3).map(String::as_str) == Some(WARM_FLAG) {
        warm_up();
    }
    // Tell the worker the limits are in place: only now may it lower them for the job.
    let mut out = std::io::stdout().lock();
    if out.write_all(&[READY]).and_then(|()| out.flush()).is_err() {
        return Exit::NoAnswer as i32;
    }
    drop(out);
    let ledger = Ledger::new();
    let Some((message, mut descriptors)) = read_job(&ledger) else {
        return Exit::NoJob as i32;
    };
    let parsed = decode_job(&message, &mut descriptors, &ledger);
    message.wipe();
    drop(descriptors);
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
    match answer(result, &ledger) {
        Ok(()) => Exit::Answered as i32,
        Err(_) => Exit::NoAnswer as i32,
    }
}

/// Reads the job: its length, exactly that many bytes into one buffer of that size (growing it
/// by doubling would briefly hold two copies), then the descriptors it refers to.
fn read_job(ledger: &Ledger) -> Option<(SecretBuf, Vec<Option<std::fs::File>>)> {
    let mut input = stdin();
    let mut length = [0u8; 8];
    input.read_exact(&mut length).ok()?;
    let length = usize::try_from(u64::from_le_bytes(length)).ok()?;
    let mut message = SecretBuf::new(vec![0; length], "renderer.request", ledger);
    input.read_exact(message.as_mut_slice()).ok()?;
    let mut count = [0u8; 1];
    input.read_exact(&mut count).ok()?;
    let descriptors = match count[0] {
        0 => Vec::new(),
        n => fdpass::recv(input.as_raw_fd(), usize::from(n))
            .ok()?
            .into_iter()
            .map(|fd| Some(std::fs::File::from(fd)))
            .collect(),
    };
    Some((message, descriptors))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn frame(out: &mut impl Write, body: &SecretBuf) -> std::io::Result<()> {
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(body.as_slice())
}

/// Writes the answer: the result (outputs copied in), then — the outputs now wiped — the
/// renderer's wipe report.
fn answer(result: Result<Rendered, JobError>, ledger: &Ledger) -> std::io::Result<()> {
    let size: usize = match &result {
        Ok(r) => r.outputs.iter().map(|o| o.data.len() + 128).sum(),
        Err(_) => 0,
    };
    let mut first = SecretBuf::with_capacity(size + 4096, "renderer.reply", ledger);
    let (answer, timings) = match &result {
        Ok(rendered) => {
            let outputs = rendered
                .outputs
                .iter()
                .map(|o| OutputMessage {
                    name: o.name.clone(),
                    format: o.format,
                    width: o.width,
                    height: o.height,
                    data: Bytes::new(o.data.as_slice()),
                })
                .collect();
            let t = rendered.timings;
            let timings = [t.decode, t.compose, t.resize, t.encode].map(secs);
            (Answer::Rendered(outputs), timings)
        }
        Err(e) => (
            Answer::Failed {
                code: e.code,
                message: e.message.clone(),
            },
            [0.0; 4],
        ),
    };
    let reply = ReplyMessage {
        answer,
        timings,
        peak_rss: peak_rss(),
    };
    ciborium::into_writer(&reply, &mut first).expect("writing to memory cannot fail");
    drop(reply);
    drop(result); // outputs and pixels wiped (and ledgered) before the report below
    let mut out = std::io::stdout().lock();
    frame(&mut out, &first)?;
    drop(first);
    let mut second = SecretBuf::with_capacity(16 * 1024, "renderer.report", ledger);
    let report = WipeReport {
        wiped: ledger.entries(),
    };
    ciborium::into_writer(&report, &mut second).expect("writing to memory cannot fail");
    frame(&mut out, &second)?;
    out.flush()
}

/// This process's peak resident memory in bytes (`ru_maxrss`), 0 if unknown.
fn peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct we pass; all-zero is a valid initial value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

/// Why a renderer's answer was refused.
fn refused(what: &str) -> JobError {
    JobError::new(
        ErrorCode::Internal,
        format!("the renderer's answer does not match its job ({what})"),
    )
}

/// Reads and checks the renderer's answer against the job it was given: the outputs must be
/// exactly the planned ones (names, order, formats), each within the output limits and its
/// box, shaped like its format, and all of them within the reply limit; an error must carry a
/// known code. Anything else is `internal`. The renderer's wipe entries join the job's ledger,
/// marked as the renderer's.
pub fn accept(
    first: &SecretBuf,
    report: &SecretBuf,
    plans: &[OutputPlan],
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Rendered, JobError> {
    if let Ok(report) = crate::wipe::cbor_from_slice::<WipeReport>(report.as_slice()) {
        ledger.record_reported(report.wiped, "renderer");
    }
    let reply: ReplyMessage<ByteBuf> =
        crate::wipe::cbor_from_slice(first.as_slice()).map_err(|_| refused("unreadable"))?;
    let outputs = match reply.answer {
        Answer::Failed { code, message } => {
            let message: String = message
                .chars()
                .take(512)
                .filter(|c| !c.is_control())
                .collect();
            return Err(JobError::new(code, message));
        }
        Answer::Rendered(outputs) => outputs,
    };
    if outputs.len() != plans.len() {
        return Err(refused("output count"));
    }
    let mut total = 0usize;
    let mut rendered = Vec::with_capacity(outputs.len());
    for (o, plan) in outputs.into_iter().zip(plans) {
        let data = SecretBuf::new(o.data.into_vec(), format!("output.{}", plan.name), ledger);
        check_output(
            &o.name,
            o.format,
            (o.width, o.height),
            data.as_slice(),
            plan,
            limits,
        )?;
        total = total.saturating_add(data.len());
        rendered.push(RenderedOutput {
            name: plan.name.clone(),
            format: plan.format,
            width: o.width,
            height: o.height,
            data,
        });
    }
    if total > limits.max_reply_bytes {
        return Err(refused("outputs larger than the reply limit"));
    }
    let [d, c, r, e] = reply.timings.map(|s| {
        Duration::from_secs_f64(if s.is_finite() {
            s.clamp(0.0, 3600.0)
        } else {
            0.0
        })
    });
    Ok(Rendered {
        outputs: rendered,
        timings: StageTimings {
            decode: d,
            compose: c,
            resize: r,
            encode: e,
        },
        renderer_peak_rss: (reply.peak_rss > 0).then_some(reply.peak_rss),
    })
}

fn check_output(
    name: &str,
    format: OutputFormat,
    (w, h): (u32, u32),
    data: &[u8],
    plan: &OutputPlan,
    limits: &Limits,
) -> Result<(), JobError> {
    if name != plan.name || format != plan.format {
        return Err(refused("output name or format"));
    }
    let within_box = plan.width.is_none_or(|bw| w <= bw) && plan.height.is_none_or(|bh| h <= bh);
    let within_limits = w >= 1
        && h >= 1
        && w.max(h) <= limits.max_output_dimension
        && u64::from(w) * u64::from(h) <= limits.max_output_pixels;
    if !within_box || !within_limits {
        return Err(refused("output size"));
    }
    if !format.matches(data) {
        return Err(refused("output encoding"));
    }
    Ok(())
}

impl OutputPlan {
    /// The request form of this plan (so a plan handed over can be checked again).
    pub fn to_spec(&self) -> crate::protocol::OutputSpec {
        crate::protocol::OutputSpec {
            name: self.name.clone(),
            format: self.format.as_str().into(),
            width: self.width,
            height: self.height,
            fit: Some(self.fit.as_str().into()),
            quality: Some(self.quality),
            upscale: Some(self.upscale),
        }
    }
}
