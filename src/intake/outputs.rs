//! The `outputs` field: parsed straight into checked types, then planned against the limits.

use super::fields::{typed, FieldError, Kind};
use crate::job::Limits;
use crate::job::{OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError, OutputSpec};
use crate::recipe::Fit;
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
            "outputs[{i}].format: unknown variant, expected one of `jpeg`, `png`, `webp`"
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
    let quality = spec.quality.unwrap_or(85);
    if !(1..=100).contains(&quality) {
        return Err(invalid(format!(
            "outputs[{i}].quality: expected an integer 1-100"
        )));
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
