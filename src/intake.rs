//! Stage 1 — **intake**: a delivery's properties and CBOR body become a typed [`Job`].
//!
//! Every limit that can be checked without decoding is checked here: body bytes, number and size
//! of inputs, declared output sizes, and each input's format, dimensions and frame count read
//! from its header. A request that fails here never reaches a decoder.
//!
//! The body is wiped as soon as it is parsed; the parsed inputs move straight into
//! [`SecretBuf`]s (or spill files), so every copy is in the job's ledger.

use crate::config::Limits;
use crate::pipeline::probe::{probe_bytes, Header};
use crate::protocol::{ErrorCode, JobError, OutputSpec, Request, CONTENT_TYPE, VERSION};
use crate::recipe::{Recipe, RecipeLimits};
use crate::wipe::{Ledger, SecretBuf, SpillDir, SpillFile};
use serde::Deserialize;

/// What intake needs to know about the message besides its body.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The AMQP `content_type` property, if set.
    pub content_type: Option<String>,
}

/// Where large inputs go.
#[derive(Debug, Clone)]
pub struct Spill<'a> {
    /// The private spill directory.
    pub dir: &'a SpillDir,
    /// Inputs larger than this many bytes are spilled.
    pub threshold: usize,
}

/// A parsed, checked job, ready for the pipeline.
#[derive(Debug)]
pub struct Job {
    /// Named inputs, in name order.
    pub inputs: Vec<Input>,
    /// Requested outputs, in request order.
    pub outputs: Vec<OutputPlan>,
    /// The generation recipe, checked; `None` for a thumbnail/convert job.
    pub recipe: Option<Recipe>,
    /// The job's wipe ledger.
    pub ledger: Ledger,
}

/// One source image.
#[derive(Debug)]
pub struct Input {
    /// Its name in the request.
    pub name: String,
    /// What its header declares.
    pub header: Header,
    /// Its encoded bytes.
    pub data: InputData,
}

/// Where an input's encoded bytes are.
pub enum InputData {
    /// In memory.
    Memory(SecretBuf),
    /// In a spill file (large inputs).
    Spilled(SpillFile),
    /// In a spill file owned (and wiped) by another process: the worker, seen from its
    /// renderer child.
    SpillPath(std::path::PathBuf),
}

impl std::fmt::Debug for InputData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
            Self::Spilled(s) => write!(f, "Spilled({} bytes)", s.len()),
            Self::SpillPath(_) => f.write_str("SpillPath"),
        }
    }
}

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Baseline JPEG (alpha is flattened onto white).
    Jpeg,
    /// PNG.
    Png,
    /// Lossless WebP.
    WebP,
}

impl OutputFormat {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }
}

/// How the image is fitted into the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Scale to fit inside the box, keeping the aspect ratio.
    Contain,
    /// Scale to cover the box, keeping the aspect ratio, and crop the overflow (centred).
    Cover,
    /// Stretch to the box exactly.
    Fill,
}

/// One checked output request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// Output name.
    pub name: String,
    /// Encoding.
    pub format: OutputFormat,
    /// Bounding width.
    pub width: Option<u32>,
    /// Bounding height.
    pub height: Option<u32>,
    /// Fit mode.
    pub fit: Fit,
    /// JPEG quality.
    pub quality: u8,
    /// May the output be larger than the source.
    pub upscale: bool,
}

impl OutputPlan {
    /// The request form of this plan (to hand a checked job to another process).
    pub fn to_spec(&self) -> OutputSpec {
        let fit = match self.fit {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
        };
        OutputSpec {
            name: self.name.clone(),
            format: self.format.as_str().into(),
            width: self.width,
            height: self.height,
            fit: Some(fit.into()),
            quality: Some(self.quality),
            upscale: Some(self.upscale),
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<ciborium::Value>,
}

/// A limit breach: what the request has, and the limit it breaks.
fn over_limit(code: ErrorCode, what: String, limit: impl std::fmt::Display) -> JobError {
    JobError::new(code, format!("{what}, the limit is {limit}"))
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
    check_envelope(&body, meta, limits)?;
    let request = parse(&body);
    body.wipe();
    let (inputs, spec_outputs, recipe) = secure_inputs(request?, ledger)?;
    if inputs.len() > limits.max_inputs {
        return Err(over_limit(
            ErrorCode::LimitsInputs,
            format!("{} inputs", inputs.len()),
            limits.max_inputs,
        ));
    }
    let outputs = plan_outputs(&spec_outputs, limits)?;
    let recipe = match recipe {
        Some(value) => {
            let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            Some(check_recipe(&value, &names, limits)?)
        }
        None if inputs.len() != 1 => {
            return Err(invalid(format!(
                "a request without a recipe takes exactly one input, got {}",
                inputs.len()
            )))
        }
        None => None,
    };
    let inputs = check_inputs(inputs, limits, spill, ledger)?;
    Ok(Job {
        inputs,
        outputs,
        recipe,
        ledger: ledger.clone(),
    })
}

/// Reads a request's recipe and holds it to the limits.
pub fn check_recipe(
    value: &ciborium::Value,
    inputs: &[&str],
    limits: &Limits,
) -> Result<Recipe, JobError> {
    let recipe = crate::recipe::parse(value)?;
    crate::recipe::check(&recipe, inputs, &RecipeLimits::new(limits))?;
    Ok(recipe)
}

fn check_envelope(body: &SecretBuf, meta: &Meta, limits: &Limits) -> Result<(), JobError> {
    if let Some(ct) = meta.content_type.as_deref() {
        if !ct.eq_ignore_ascii_case(CONTENT_TYPE) {
            return Err(malformed(format!(
                "content_type is `{ct}`, expected `{CONTENT_TYPE}`"
            )));
        }
    }
    if body.len() > limits.max_body_bytes {
        return Err(over_limit(
            ErrorCode::RequestTooLarge,
            format!("body is {} bytes", body.len()),
            limits.max_body_bytes,
        ));
    }
    if body.is_empty() {
        return Err(malformed("body is empty"));
    }
    Ok(())
}

/// Parses the body in one pass; only a body that is not a valid v1 request is looked at a
/// second time, to tell another contract version from a malformed request.
fn parse(body: &SecretBuf) -> Result<Request, JobError> {
    let error = match crate::wipe::cbor_from_slice::<Request>(body.as_slice()) {
        Ok(request) if request.v == VERSION => return Ok(request),
        Ok(request) => return Err(unsupported(i128::from(request.v))),
        Err(e) => e,
    };
    let probe: VersionProbe = crate::wipe::cbor_from_slice(body.as_slice())
        .map_err(|e| malformed(format!("body is not a CBOR map: {}", describe(&e))))?;
    match probe.v {
        None => Err(malformed("missing field `v`")),
        Some(ciborium::Value::Integer(v)) if i128::from(v) != i128::from(VERSION) => {
            Err(unsupported(i128::from(v)))
        }
        Some(ciborium::Value::Integer(_)) => Err(malformed(describe(&error))),
        Some(_) => Err(malformed("field `v` must be an integer")),
    }
}

fn unsupported(v: i128) -> JobError {
    JobError::new(
        ErrorCode::RequestUnsupportedVersion,
        format!("contract version {v} is not supported; this worker speaks v{VERSION}"),
    )
}

fn describe(e: &ciborium::de::Error<std::io::Error>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "body ends too early".into(),
        ciborium::de::Error::Syntax(at) => format!("invalid CBOR at byte {at}"),
        ciborium::de::Error::Semantic(_, msg) => msg.clone(),
        ciborium::de::Error::RecursionLimitExceeded => "nesting too deep".into(),
    }
}

type Secured = (
    Vec<(String, SecretBuf)>,
    Vec<OutputSpec>,
    Option<ciborium::Value>,
);

/// Moves every input into a ledgered buffer before anything else can fail.
fn secure_inputs(request: Request, ledger: &Ledger) -> Result<Secured, JobError> {
    let inputs = request
        .inputs
        .into_iter()
        .map(|(name, bytes)| {
            let buf = SecretBuf::new(bytes.into_vec(), format!("input.{name}"), ledger);
            (name, buf)
        })
        .collect();
    Ok((inputs, request.outputs, request.recipe))
}

fn check_inputs(
    inputs: Vec<(String, SecretBuf)>,
    limits: &Limits,
    spill: Option<Spill<'_>>,
    ledger: &Ledger,
) -> Result<Vec<Input>, JobError> {
    let mut checked = Vec::with_capacity(inputs.len());
    for (name, bytes) in inputs {
        let header = check_input(&name, &bytes, limits)?;
        let data = match &spill {
            Some(s) if bytes.len() > s.threshold => {
                let file = s
                    .dir
                    .spill(bytes.as_slice(), &format!("spill.{name}"), ledger)
                    .map_err(|e| {
                        JobError::new(ErrorCode::Internal, format!("spilling input failed: {e}"))
                    })?;
                bytes.wipe();
                InputData::Spilled(file)
            }
            _ => InputData::Memory(bytes),
        };
        checked.push(Input { name, header, data });
    }
    Ok(checked)
}

fn check_input(name: &str, bytes: &SecretBuf, limits: &Limits) -> Result<Header, JobError> {
    if bytes.is_empty() {
        return Err(JobError::new(
            ErrorCode::InputEmpty,
            format!("input `{name}` is empty"),
        ));
    }
    if bytes.len() > limits.max_input_bytes {
        return Err(over_limit(
            ErrorCode::InputTooLarge,
            format!("input `{name}` is {} bytes", bytes.len()),
            limits.max_input_bytes,
        ));
    }
    let header = probe_bytes(bytes.as_slice(), name)?;
    check_header(name, &header, limits)?;
    Ok(header)
}

/// Limits on what a header declares: decompression bombs stop here.
pub fn check_header(name: &str, h: &Header, limits: &Limits) -> Result<(), JobError> {
    let pixels = u64::from(h.width) * u64::from(h.height);
    // 16 bytes per pixel is the widest decoded form (RGBA, 32-bit float channels).
    let fits_memory = pixels
        .checked_mul(16)
        .is_some_and(|b| b <= isize::MAX as u64);
    let side = h.width.max(h.height);
    if side > limits.max_input_dimension || pixels > limits.max_input_pixels || !fits_memory {
        return Err(JobError::new(
            ErrorCode::LimitsPixels,
            format!(
                "input `{name}` is {}x{} ({pixels} pixels); limits are {} pixels and {} per side",
                h.width, h.height, limits.max_input_pixels, limits.max_input_dimension
            ),
        ));
    }
    if h.frames > limits.max_frames {
        return Err(over_limit(
            ErrorCode::LimitsFrames,
            format!("input `{name}` declares {} frames", h.frames),
            limits.max_frames,
        ));
    }
    Ok(())
}

/// Checks the requested outputs and turns them into plans.
pub fn plan_outputs(specs: &[OutputSpec], limits: &Limits) -> Result<Vec<OutputPlan>, JobError> {
    if specs.is_empty() {
        return Err(invalid("`outputs` is empty: ask for at least one output"));
    }
    if specs.len() > limits.max_outputs {
        return Err(over_limit(
            ErrorCode::LimitsOutput,
            format!("{} outputs", specs.len()),
            limits.max_outputs,
        ));
    }
    let mut plans: Vec<OutputPlan> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let plan = plan_output(i, spec, limits)?;
        if plans.iter().any(|p| p.name == plan.name) {
            return Err(invalid(format!(
                "outputs[{i}].name `{}` is used twice",
                plan.name
            )));
        }
        plans.push(plan);
    }
    Ok(plans)
}

fn plan_output(i: usize, spec: &OutputSpec, limits: &Limits) -> Result<OutputPlan, JobError> {
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err(invalid(format!(
            "outputs[{i}].name must be 1-64 characters of A-Z a-z 0-9 - _ ."
        )));
    }
    let format = match spec.format.to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" => OutputFormat::Jpeg,
        "png" => OutputFormat::Png,
        "webp" => OutputFormat::WebP,
        other => {
            return Err(invalid(format!(
                "outputs[{i}].format `{other}` is not supported (jpeg, png, webp)"
            )))
        }
    };
    let fit = match spec.fit.as_deref().unwrap_or("contain") {
        "contain" => Fit::Contain,
        "cover" => Fit::Cover,
        "fill" => Fit::Fill,
        other => {
            return Err(invalid(format!(
                "outputs[{i}].fit `{other}` is not one of contain, cover, fill"
            )))
        }
    };
    let quality = spec.quality.unwrap_or(85);
    if !(1..=100).contains(&quality) {
        return Err(invalid(format!("outputs[{i}].quality must be 1-100")));
    }
    check_output_size(i, spec.width, spec.height, limits)?;
    Ok(OutputPlan {
        name: spec.name.clone(),
        format,
        width: spec.width,
        height: spec.height,
        fit,
        quality,
        upscale: spec.upscale.unwrap_or(false),
    })
}

fn check_output_size(
    i: usize,
    width: Option<u32>,
    height: Option<u32>,
    limits: &Limits,
) -> Result<(), JobError> {
    for (field, v) in [("width", width), ("height", height)] {
        match v {
            Some(0) => return Err(invalid(format!("outputs[{i}].{field} must be at least 1"))),
            Some(v) if v > limits.max_output_dimension => {
                return Err(over_limit(
                    ErrorCode::LimitsOutput,
                    format!("outputs[{i}].{field} is {v}"),
                    limits.max_output_dimension,
                ))
            }
            _ => {}
        }
    }
    if let (Some(w), Some(h)) = (width, height) {
        let pixels = u64::from(w) * u64::from(h);
        if pixels > limits.max_output_pixels {
            return Err(over_limit(
                ErrorCode::LimitsOutput,
                format!("outputs[{i}] is {w}x{h} ({pixels} pixels)"),
                limits.max_output_pixels,
            ));
        }
    }
    Ok(())
}
