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
//! worker treats the answer as hostile and checks it against the job ([`super::accept`]).

use super::fdpass;
use super::messages::{
    Answer, JobIn, JobMessage, OutputMessage, ReplyMessage, Source, WipeReport, READY,
};
use super::sandbox::Sandbox;
use crate::job::{Input, InputData, Job, Limits, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::render::{render, Rendered};
use crate::wipe::{Ledger, SecretBuf};
use serde_bytes::Bytes;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// The hidden subcommand that runs a renderer.
pub const CHILD_COMMAND: &str = "__render-child";

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
            Source::Descriptor(n, key) => {
                let file = descriptors
                    .get_mut(n as usize)
                    .and_then(Option::take)
                    .ok_or_else(|| internal("a spill descriptor is missing"))?;
                let key: [u8; 32] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("a spill key is not 32 bytes"))?;
                InputData::Descriptor(file, zeroize::Zeroizing::new(key))
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
        let limits = limits.recipe();
        crate::recipe::check(recipe, &job.shapes(), &limits)?;
    }
    Ok((job, limits))
}

/// The flag that tells a pre-started renderer to warm up while it waits for its job.
pub const WARM_FLAG: &str = "--warm";

/// The flag that tells a renderer to load libheif before it is confined: given only to the
/// renderers of jobs with a HEIC or AVIF input, so that no other renderer pays for loading it.
pub const HEIF_FLAG: &str = "--heif";

/// Renders a tiny synthetic photo through the whole pipeline (JPEG and PNG out), so the code
/// pages, lazily built tables and CPU-feature probes of the codecs and the resizer are ready
/// before the real job arrives. No job data is involved.
fn warm_up() {
    // A 96x72 gradient with texture, as a JPEG: enough for every stage to do real work.
    let image = image::RgbImage::from_fn(96, 72, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x ^ y) * 5) as u8])
    });
    let mut photo = Vec::new();
    let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut photo, 90).encode(
        image.as_raw(),
        96,
        72,
        image::ExtendedColorType::Rgb8,
    );
    if encoded.is_err() {
        return;
    }
    let output = |name: &str, format: &str| crate::protocol::OutputSpec {
        name: name.into(),
        format: format.into(),
        width: Some(32),
        height: Some(32),
        ..Default::default()
    };
    let request = crate::protocol::Request {
        preset: None,
        v: crate::protocol::VERSION,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(photo))].into(),
        recipe: None,
        outputs: vec![output("warm-jpeg", "jpeg"), output("warm-png", "png")],
    };
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
pub fn child_args(parent: u32, sandbox: Sandbox, warm: bool, heif: bool) -> Vec<String> {
    let mut args = vec![CHILD_COMMAND.to_owned(), parent.to_string()];
    args.extend(sandbox.to_args());
    if warm {
        args.push(WARM_FLAG.to_owned());
    }
    if heif {
        args.push(HEIF_FLAG.to_owned());
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
    // Single-use: the C codecs may run here, libheif loaded (if this job needs it) before the
    // filter, which allows no `open`, is in place. A failure to load is reported by the decode.
    crate::render::codecs::allow_c_codecs();
    if args.iter().any(|a| a == HEIF_FLAG) {
        let _ = crate::render::codecs::heif::load();
    }
    // exec reset the dumpable flag the worker set before it: clear it again.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    super::seccomp::confine().map_err(|_| Exit::Unconfined)?;
    crate::render::codecs::heif::seal();
    Ok(())
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
    if args.iter().any(|a| a == WARM_FLAG) {
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
                    quality: o.quality,
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
