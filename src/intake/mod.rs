//! Stage 1 — **intake**: a delivery's properties and CBOR body become a typed [`Job`].
//!
//! Every limit that can be checked without decoding is checked here: body bytes, number and size
//! of inputs, declared output sizes, and each input's format, dimensions and frame count read
//! from its header. A request that fails here never reaches a decoder.
//!
//! Intake is bounded by the body's size in time and memory: the envelope is read in place
//! ([`envelope`]), inputs are counted before any is touched and each is probed where it lies in
//! the body, then copied once at its exact size into a [`SecretBuf`] (or straight into a spill
//! file); `outputs` and `recipe` are deserialised straight into their types ([`fields`]), with
//! every list bounded while it is read. Peak memory: the body, the copies of its inputs (never
//! more than the body) and a constant — at most twice the body plus a constant. No generic
//! value tree is ever built. The body is wiped when intake returns, whatever happens.

pub mod cbor;
pub mod de;
pub mod envelope;
pub mod fields;
mod outputs;
pub mod presets;
pub mod probe;
pub mod recipe;

pub use outputs::{parse_outputs, plan_outputs, read_specs};
pub use presets::{Preset, Presets};

use crate::job::Limits;
use crate::job::{shape, Header, Input, InputData, Job};
use crate::protocol::{ErrorCode, JobError, CONTENT_TYPE};
use crate::recipe::Recipe;
use crate::wipe::{Ledger, SecretBuf, SpillDir};
use probe::probe_bytes;

/// What intake needs besides the body and the limits: the message's properties and the
/// operator's presets.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The AMQP `content_type` property, if set.
    pub content_type: Option<String>,
    /// The presets a request may name (checked at start).
    pub presets: std::sync::Arc<Presets>,
}

/// Where large inputs go.
#[derive(Debug, Clone)]
pub struct Spill<'a> {
    /// The private spill directory.
    pub dir: &'a SpillDir,
    /// Inputs larger than this many bytes are spilled.
    pub threshold: usize,
}

/// A limit breach: what the request has, and the limit it breaks.
fn over_limit(code: ErrorCode, what: String, limit: impl std::fmt::Display) -> JobError {
    JobError::new(code, format!("{what}; the limit is {limit}"))
}

fn malformed(message: impl Into<String>) -> JobError {
    JobError::new(ErrorCode::RequestMalformed, message)
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::new(ErrorCode::RequestInvalid, message)
}

/// Parses and checks a request body. The body is wiped before this returns, whatever happens.
pub fn intake(
    body: SecretBuf,
    meta: &Meta,
    limits: &Limits,
    spill: Option<Spill<'_>>,
    ledger: &Ledger,
) -> Result<Job, JobError> {
    let job = check_envelope(&body, meta, limits)
        .and_then(|()| read_job(body.as_slice(), &meta.presets, limits, spill, ledger));
    body.wipe();
    job
}

fn read_job(
    body: &[u8],
    presets: &Presets,
    limits: &Limits,
    spill: Option<Spill<'_>>,
    ledger: &Ledger,
) -> Result<Job, JobError> {
    let envelope = envelope::read(body, limits.max_inputs)?;
    // An explicit null is the same as no recipe.
    let recipe_item = envelope.recipe.filter(|item| *item != [0xf6]);
    let (outputs, recipe_item) =
        presets.apply(envelope.preset, envelope.outputs, recipe_item, limits)?;
    let recipe = match recipe_item {
        Some(item) => Some(crate::intake::recipe::parse_cbor(item)?),
        _ if envelope.inputs.len() != 1 => {
            return Err(invalid(
                "inputs: a request without a recipe takes exactly one input",
            ))
        }
        _ => None,
    };
    // Every input is probed where it lies in the body before any is copied, so a request that
    // fails here leaves nothing to wipe but the body.
    let mut headers = Vec::with_capacity(envelope.inputs.len());
    for (name, range) in &envelope.inputs {
        headers.push(check_input(name, &body[range.clone()], limits)?);
    }
    if let Some(recipe) = &recipe {
        let shapes: Vec<_> = envelope
            .inputs
            .iter()
            .zip(&headers)
            .map(|((n, _), h)| (n.as_str(), shape(h)))
            .collect();
        crate::recipe::check(recipe, &shapes, &limits.recipe())?;
    }
    let mut inputs = Vec::with_capacity(envelope.inputs.len());
    for ((name, range), header) in envelope.inputs.into_iter().zip(headers) {
        let data = secure(&name, &body[range], spill.as_ref(), ledger)?;
        inputs.push(Input { name, header, data });
    }
    Ok(Job {
        inputs,
        outputs,
        recipe,
        ledger: ledger.clone(),
    })
}

/// Copies one input out of the body: into a spill file when large, else into its own buffer.
fn secure(
    name: &str,
    bytes: &[u8],
    spill: Option<&Spill<'_>>,
    ledger: &Ledger,
) -> Result<InputData, JobError> {
    match spill {
        Some(s) if bytes.len() > s.threshold => s
            .dir
            .spill(bytes, &format!("spill.{name}"), ledger)
            .map(InputData::Spilled)
            .map_err(|e| {
                JobError::new(
                    ErrorCode::Internal,
                    format!("spilling an input failed: {e}"),
                )
            }),
        _ => Ok(InputData::Memory(SecretBuf::new(
            bytes.to_vec(),
            format!("input.{name}"),
            ledger,
        ))),
    }
}

/// Reads a recipe given as a CBOR value (tools and tests) and holds it to the limits, its
/// inputs given by name and shape.
pub fn check_recipe(
    value: &ciborium::Value,
    inputs: &[(&str, crate::recipe::Shape)],
    limits: &Limits,
) -> Result<Recipe, JobError> {
    let mut item = Vec::new();
    ciborium::into_writer(value, &mut item).map_err(|_| malformed("recipe: not encodable"))?;
    let recipe = crate::intake::recipe::parse_cbor(&item)?;
    crate::recipe::check(&recipe, inputs, &limits.recipe())?;
    Ok(recipe)
}

fn check_envelope(body: &SecretBuf, meta: &Meta, limits: &Limits) -> Result<(), JobError> {
    if let Some(ct) = meta.content_type.as_deref() {
        if !ct.eq_ignore_ascii_case(CONTENT_TYPE) {
            return Err(malformed(format!(
                "content_type: expected `{CONTENT_TYPE}`"
            )));
        }
    }
    if body.len() > limits.max_body_bytes {
        return Err(JobError::new(
            ErrorCode::RequestTooLarge,
            format!(
                "the body is larger than the limit of {} bytes (max_body_bytes)",
                limits.max_body_bytes
            ),
        ));
    }
    if body.is_empty() {
        return Err(malformed("the body is empty"));
    }
    Ok(())
}

fn check_input(name: &str, bytes: &[u8], limits: &Limits) -> Result<Header, JobError> {
    if bytes.is_empty() {
        return Err(JobError::new(
            ErrorCode::InputEmpty,
            format!("inputs.{name}: empty"),
        ));
    }
    if bytes.len() > limits.max_input_bytes {
        return Err(over_limit(
            ErrorCode::InputTooLarge,
            format!("inputs.{name}: larger than allowed"),
            format!("{} bytes (max_input_bytes)", limits.max_input_bytes),
        ));
    }
    // The probe holds every claim of the header (pixels of every frame, frames, ICC profile,
    // scans) to the limits as it reads it.
    probe_bytes(bytes, name, limits)
}
