//! What crosses the renderer's pipes, both ways, as serde types: the job ([`JobMessage`], with
//! spill files as descriptors passed beside it) and the answer in two frames ([`ReplyMessage`],
//! then [`WipeReport`], sent once the outputs it carried are wiped).

use crate::job::{Header, InputData, Job, Limits, OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::recipe::Recipe;
use crate::wipe::{SecretBuf, WipeEntry};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};

/// Where an input's bytes come from, as the job crosses the pipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source<B> {
    /// The bytes themselves.
    Bytes(B),
    /// The `n`-th descriptor passed with the job (a spill file's ciphertext, read-only), and
    /// the file's key.
    Descriptor(u32, B),
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
pub(super) type JobOut<'a> = JobMessage<&'a str, &'a Bytes, &'a [OutputPlan], &'a Recipe>;
/// The job as the renderer reads it.
pub(super) type JobIn = JobMessage<String, ByteBuf, Vec<OutputPlan>, Recipe>;

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
    /// The quality used (lossy formats).
    #[serde(default)]
    pub quality: Option<u8>,
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
    // First the spill files' descriptors and keys, then the messages that name them.
    let mut descriptors = Vec::new();
    let mut keys: Vec<Option<crate::wipe::SpillKey>> = Vec::with_capacity(job.inputs.len());
    for i in &job.inputs {
        keys.push(match &i.data {
            InputData::Spilled(f) => {
                let (file, key) = f.descriptor().map_err(|e| {
                    JobError::new(ErrorCode::Internal, format!("opening a spill file: {e}"))
                })?;
                descriptors.push(file);
                Some(key)
            }
            _ => None,
        });
    }
    let mut inputs = Vec::with_capacity(job.inputs.len());
    let mut n = 0;
    for (i, key) in job.inputs.iter().zip(&keys) {
        let data = match (&i.data, key) {
            (InputData::Memory(b), _) => Source::Bytes(Bytes::new(b.as_slice())),
            (InputData::Spilled(_), Some(key)) => {
                n += 1;
                Source::Descriptor(n - 1, Bytes::new(key.as_slice()))
            }
            _ => {
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

/// The byte a renderer writes once it has limited and confined itself.
pub const READY: u8 = b'R';
