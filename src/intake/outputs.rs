//! The `outputs` field: parsed straight into checked types, then planned against the limits.

use super::fields::{typed, FieldError, Kind};
use crate::job::Limits;
use crate::job::{Chroma, OutputFormat, OutputPlan, OUTPUT_FORMATS};
use crate::protocol::{ErrorCode, JobError, OutputSpec};
use crate::recipe::Fit;
use crate::recipe::{Color, Gravity};
use serde::de::{self, Deserializer, Unexpected};
use serde::Deserialize;

/// Longest output name.
pub const MAX_NAME: usize = 64;

/// One output as the request states it, each field already held to its type's rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputField {
    name: Name,
    format: OutputFormat,
    #[serde(default)]
    width: Option<Side>,
    #[serde(default)]
    height: Option<Side>,
    #[serde(default)]
    fit: Option<Fit>,
    #[serde(default)]
    quality: Option<Quality>,
    #[serde(default)]
    upscale: Option<bool>,
    #[serde(default)]
    lossless: Option<bool>,
    #[serde(default)]
    speed: Option<Speed>,
    #[serde(default)]
    progressive: Option<bool>,
    #[serde(default)]
    chroma: Option<Chroma>,
    #[serde(default)]
    max_bytes: Option<MaxBytes>,
    #[serde(default)]
    palette: Option<bool>,
    #[serde(default)]
    gravity: Option<Gravity>,
    #[serde(default)]
    focal: Option<Focal>,
    #[serde(default)]
    background: Option<Color>,
    #[serde(default)]
    padding: Option<Padding>,
}

/// AVIF encoder speed, 1–10.
#[derive(Debug, Clone, Copy)]
struct Speed(u8);

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(s) if (1..=10).contains(&s) => Ok(Self(s)),
            _ => Err(refuse("speed", "an integer 1-10")),
        }
    }
}

/// A size target: at least a few hundred bytes, at most 4 GiB.
#[derive(Debug, Clone, Copy)]
struct MaxBytes(u32);

impl<'de> Deserialize<'de> for MaxBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(b) if b >= MIN_MAX_BYTES => Ok(Self(b)),
            _ => Err(refuse("max_bytes", "an integer from 256 to 4294967295")),
        }
    }
}

/// Smallest `max_bytes` accepted (below it no image format has room for pixels).
pub const MIN_MAX_BYTES: u32 = 256;

/// Most padding on a side.
pub const MAX_PADDING: u32 = 4096;

/// Padding in pixels, 0–4096.
#[derive(Debug, Clone, Copy)]
struct Padding(u32);

impl<'de> Deserialize<'de> for Padding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(p) if p <= MAX_PADDING => Ok(Self(p)),
            _ => Err(refuse("padding", "an integer from 0 to 4096")),
        }
    }
}

/// A focal point: two finite fractions 0–1.
#[derive(Debug, Clone, Copy)]
struct Focal([f32; 2]);

impl<'de> Deserialize<'de> for Focal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <[f64; 2]>::deserialize(d)?;
        if v.iter().all(|f| (0.0..=1.0).contains(f)) {
            Ok(Self([v[0] as f32, v[1] as f32]))
        } else {
            Err(refuse("focal", "two numbers from 0 to 1, [x, y]"))
        }
    }
}

fn refuse<E: de::Error>(what: &'static str, expected: &'static str) -> E {
    E::invalid_value(Unexpected::Other(what), &expected)
}

/// An output name: 1–64 of `A-Z a-z 0-9 - _ .`.
#[derive(Debug)]
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= MAX_NAME
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(refuse("name", "1-64 characters of A-Z a-z 0-9 - _ ."))
        }
    }
}

/// A width or height of at least 1 (the upper bound is the operator's limit, checked later).
#[derive(Debug, Clone, Copy)]
struct Side(u32);

impl<'de> Deserialize<'de> for Side {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u32::try_from(v) {
            Ok(v) if v >= 1 => Ok(Self(v)),
            _ => Err(refuse("side", "an integer from 1 to 4294967295")),
        }
    }
}

/// Lossy quality, 1–100.
#[derive(Debug, Clone, Copy)]
struct Quality(u8);

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(q) if (1..=100).contains(&q) => Ok(Self(q)),
            _ => Err(refuse("quality", "an integer 1-100")),
        }
    }
}

fn field_error(e: FieldError) -> JobError {
    let code = match e.kind {
        Kind::Malformed => ErrorCode::RequestMalformed,
        Kind::Invalid => ErrorCode::RequestInvalid,
    };
    JobError::new(code, e.to_string())
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::new(ErrorCode::RequestInvalid, message)
}

fn over(code: ErrorCode, message: String) -> JobError {
    JobError::new(code, message)
}

/// Parses the `outputs` item of a request and plans every output.
pub fn parse_outputs(item: &[u8], limits: &Limits) -> Result<Vec<OutputPlan>, JobError> {
    plan_outputs(&read_specs(item, limits)?, limits)
}

/// Reads the `outputs` item into specs, each field held to its type's rules, the count to the
/// limit before a single output is read.
pub fn read_specs(item: &[u8], limits: &Limits) -> Result<Vec<OutputSpec>, JobError> {
    // The count first, from the array's header, so a flood of outputs is never parsed.
    let mut c = super::cbor::Cursor::new(item);
    if let Ok(super::cbor::Head::Array(Some(n))) = c.head() {
        if n > limits.max_outputs as u64 {
            return Err(too_many(limits));
        }
    }
    let fields: Vec<OutputField> = typed(item, "outputs").map_err(field_error)?;
    if fields.len() > limits.max_outputs {
        return Err(too_many(limits));
    }
    Ok(fields
        .into_iter()
        .map(|f| OutputSpec {
            name: f.name.0,
            format: f.format.as_str().into(),
            width: f.width.map(|s| s.0),
            height: f.height.map(|s| s.0),
            fit: f.fit.map(|f| f.as_str().into()),
            quality: f.quality.map(|q| q.0),
            upscale: f.upscale,
            lossless: f.lossless,
            speed: f.speed.map(|v| v.0),
            progressive: f.progressive,
            chroma: f.chroma.map(|c| c.as_str().into()),
            max_bytes: f.max_bytes.map(|v| v.0),
            palette: f.palette,
            gravity: f.gravity.map(|g| g.as_str().into()),
            focal: f.focal.map(|v| v.0),
            background: f.background.map(|c| c.to_hex()),
            padding: f.padding.map(|v| v.0),
        })
        .collect())
}

fn too_many(limits: &Limits) -> JobError {
    over(
        ErrorCode::LimitsOutput,
        format!(
            "outputs: more than the limit of {} outputs (max_outputs)",
            limits.max_outputs
        ),
    )
}

/// Checks requested outputs and turns them into plans (for requests built in code, and the
/// renderer, which re-checks what it is handed).
pub fn plan_outputs(specs: &[OutputSpec], limits: &Limits) -> Result<Vec<OutputPlan>, JobError> {
    if specs.is_empty() {
        return Err(invalid("outputs: empty; ask for at least one output"));
    }
    if specs.len() > limits.max_outputs {
        return Err(too_many(limits));
    }
    let mut plans: Vec<OutputPlan> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let plan = plan_output(i, spec, limits)?;
        if plans.iter().any(|p| p.name == plan.name) {
            return Err(invalid(format!(
                "outputs[{i}].name: already used by another output"
            )));
        }
        plans.push(plan);
    }
    Ok(plans)
}

fn plan_output(i: usize, spec: &OutputSpec, limits: &Limits) -> Result<OutputPlan, JobError> {
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= MAX_NAME
        && spec
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(invalid(format!(
            "outputs[{i}].name: expected 1-64 characters of A-Z a-z 0-9 - _ ."
        )));
    }
    let format = OutputFormat::parse(&spec.format).ok_or_else(|| {
        invalid(format!(
            "outputs[{i}].format: unknown variant, expected one of {OUTPUT_FORMATS}"
        ))
    })?;
    let fit = match spec.fit.as_deref() {
        None => Fit::Contain,
        Some(f) => Fit::parse(f).ok_or_else(|| {
            invalid(format!(
                "outputs[{i}].fit: unknown variant, expected one of `contain`, `cover`, `fill`"
            ))
        })?,
    };
    let quality = spec.quality.unwrap_or(format.default_quality());
    if !(1..=100).contains(&quality) {
        return Err(invalid(format!(
            "outputs[{i}].quality: expected an integer 1-100"
        )));
    }
    let options = options(i, spec, format)?;
    let (width, height) = if format == OutputFormat::Thumbhash {
        thumbhash_box(i, spec)?
    } else {
        (spec.width, spec.height)
    };
    check_output_size(i, width, height, limits)?;
    Ok(OutputPlan {
        name: spec.name.clone(),
        format,
        width,
        height,
        fit,
        quality,
        upscale: spec.upscale.unwrap_or(false),
        ..options
    })
}

/// The format-specific and framing options, each checked against the format it applies to.
fn options(i: usize, spec: &OutputSpec, format: OutputFormat) -> Result<OutputPlan, JobError> {
    let only = |field: &str, formats: &str| {
        invalid(format!(
            "outputs[{i}].{field}: applies to {formats} outputs only"
        ))
    };
    let is = |f: OutputFormat| format == f;
    if spec.lossless.is_some() && !is(OutputFormat::WebP) {
        return Err(only("lossless", "`webp`"));
    }
    if spec.speed.is_some() && !is(OutputFormat::Avif) {
        return Err(only("speed", "`avif`"));
    }
    if (spec.progressive.is_some() || spec.chroma.is_some()) && !is(OutputFormat::Jpeg) {
        let field = if spec.progressive.is_some() {
            "progressive"
        } else {
            "chroma"
        };
        return Err(only(field, "`jpeg`"));
    }
    if spec.palette.is_some() && !is(OutputFormat::Png) {
        return Err(only("palette", "`png`"));
    }
    let lossless = spec.lossless.unwrap_or(false);
    if spec.max_bytes.is_some() && (!format.lossy() || lossless) {
        return Err(only(
            "max_bytes",
            "lossy (`jpeg`, `webp` without `lossless`, `avif`)",
        ));
    }
    if (spec.padding.unwrap_or(0) > 0 || spec.background.is_some()) && is(OutputFormat::Thumbhash) {
        return Err(only("padding", "image"));
    }
    let speed = spec.speed.unwrap_or(DEFAULT_AVIF_SPEED);
    if !(1..=10).contains(&speed) {
        return Err(invalid(format!(
            "outputs[{i}].speed: expected an integer 1-10"
        )));
    }
    let chroma = match spec.chroma.as_deref() {
        None => Chroma::default(),
        Some(c) => Chroma::parse(c).ok_or_else(|| {
            invalid(format!(
                "outputs[{i}].chroma: unknown variant, expected one of `420`, `422`, `444`"
            ))
        })?,
    };
    let gravity = match spec.gravity.as_deref() {
        None => Gravity::Center,
        Some(g) => Gravity::parse(g).ok_or_else(|| {
            invalid(format!(
                "outputs[{i}].gravity: unknown variant, expected a compass point or `center`"
            ))
        })?,
    };
    if let Some(f) = spec.focal {
        if !f.iter().all(|v| (0.0..=1.0).contains(v)) {
            return Err(invalid(format!(
                "outputs[{i}].focal: expected two numbers from 0 to 1, [x, y]"
            )));
        }
    }
    let background = match spec.background.as_deref() {
        None => None,
        Some(c) => Some(Color::parse(c).ok_or_else(|| {
            invalid(format!(
                "outputs[{i}].background: expected a colour #rgb, #rgba, #rrggbb or #rrggbbaa"
            ))
        })?),
    };
    let padding = spec.padding.unwrap_or(0);
    if padding > MAX_PADDING {
        return Err(invalid(format!(
            "outputs[{i}].padding: expected an integer from 0 to {MAX_PADDING}"
        )));
    }
    if spec.max_bytes.is_some_and(|b| b < MIN_MAX_BYTES) {
        return Err(invalid(format!(
            "outputs[{i}].max_bytes: expected an integer from {MIN_MAX_BYTES} to 4294967295"
        )));
    }
    Ok(OutputPlan {
        name: String::new(),
        format,
        width: None,
        height: None,
        fit: Fit::Contain,
        quality: 0,
        upscale: false,
        lossless,
        speed,
        progressive: spec.progressive.unwrap_or(true),
        chroma,
        max_bytes: spec.max_bytes,
        palette: spec.palette.unwrap_or(false),
        gravity,
        focal: spec.focal,
        background,
        padding,
    })
}

/// Default AVIF encoder speed: fast enough for a worker, still well compressed.
pub const DEFAULT_AVIF_SPEED: u8 = 8;

/// Largest side a ThumbHash is made from.
pub const THUMBHASH_SIDE: u32 = 100;

/// A ThumbHash is made from the picture fitted into at most 100×100.
fn thumbhash_box(i: usize, spec: &OutputSpec) -> Result<(Option<u32>, Option<u32>), JobError> {
    for (field, v) in [("width", spec.width), ("height", spec.height)] {
        if v.is_some_and(|v| v > THUMBHASH_SIDE) {
            return Err(invalid(format!(
                "outputs[{i}].{field}: a `thumbhash` is made from at most {THUMBHASH_SIDE} pixels a side"
            )));
        }
    }
    Ok((
        Some(spec.width.unwrap_or(THUMBHASH_SIDE)),
        Some(spec.height.unwrap_or(THUMBHASH_SIDE)),
    ))
}

fn check_output_size(
    i: usize,
    width: Option<u32>,
    height: Option<u32>,
    limits: &Limits,
) -> Result<(), JobError> {
    for (field, v) in [("width", width), ("height", height)] {
        match v {
            Some(0) => {
                return Err(invalid(format!(
                    "outputs[{i}].{field}: expected an integer from 1 to 4294967295"
                )))
            }
            Some(v) if v > limits.max_output_dimension => {
                return Err(over(
                    ErrorCode::LimitsOutput,
                    format!(
                        "outputs[{i}].{field}: over the limit of {} (max_output_dimension)",
                        limits.max_output_dimension
                    ),
                ))
            }
            _ => {}
        }
    }
    if let (Some(w), Some(h)) = (width, height) {
        if u64::from(w) * u64::from(h) > limits.max_output_pixels {
            return Err(over(
                ErrorCode::LimitsOutput,
                format!(
                    "outputs[{i}]: more pixels than the limit of {} (max_output_pixels)",
                    limits.max_output_pixels
                ),
            ));
        }
    }
    Ok(())
}
