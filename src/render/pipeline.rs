//! The **pipeline**: decode → compose (recipes) → resize → encode, as one pure
//! function.
//!
//! [`render`] does no I/O beyond reading a job's own spill file and touches no globals, so an
//! executor can run it in-process or in a child process alike. Every buffer it creates is a
//! ledgered [`crate::wipe::SecretBuf`], so the job's receipt lists what it held.

use super::color::ColorPlan;
use super::decode::Decoded;
use super::{compose, decode, encode, geometry, resize};
use crate::job::Limits;
use crate::job::{Job, OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::SecretBuf;
use std::time::{Duration, Instant};

/// One rendered output.
#[derive(Debug)]
pub struct RenderedOutput {
    /// The requested output's name.
    pub name: String,
    /// Its format.
    pub format: OutputFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The quality used, for a lossy format.
    pub quality: Option<u8>,
    /// The encoded image.
    pub data: SecretBuf,
}

/// Time spent in each stage of one render.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Decoding inputs.
    pub decode: Duration,
    /// Drawing a recipe's canvas (zero for a thumbnail/convert job).
    pub compose: Duration,
    /// Resizing, orienting and colour-converting.
    pub resize: Duration,
    /// Encoding outputs.
    pub encode: Duration,
}

/// The result of a render.
#[derive(Debug)]
pub struct Rendered {
    /// Outputs in request order.
    pub outputs: Vec<RenderedOutput>,
    /// Where the time went.
    pub timings: StageTimings,
    /// The renderer process's peak resident memory (VmHWM), when rendered in one.
    pub renderer_peak_rss: Option<u64>,
}

/// Renders a job: a recipe's canvas, or for a thumbnail/convert job the single input decoded
/// once, sized and encoded to every requested output.
pub fn render(job: &Job, limits: &Limits) -> Result<Rendered, JobError> {
    if let Some(recipe) = &job.recipe {
        return render_recipe(job, recipe, limits);
    }
    let input = job
        .inputs
        .first()
        .ok_or_else(|| JobError::new(ErrorCode::RequestInvalid, "a job needs one input"))?;
    let mut timings = StageTimings::default();
    let started = Instant::now();
    let decoded = decode::decode(input, limits, &job.ledger, &job.outputs)?;
    let color = ColorPlan::new(decoded.icc.clone(), decoded.pixels.layout);
    timings.decode = started.elapsed();
    let outputs = render_outputs(&decoded, &color, job, limits, &mut timings)?;
    check_reply_size(&outputs, limits)?;
    Ok(Rendered {
        outputs,
        timings,
        renderer_peak_rss: None,
    })
}

/// Room a reply needs besides its outputs' bytes: the envelope, the receipt twice (as it is and
/// inside its attestation) and the signature.
pub const REPLY_RESERVE: usize = 2 * crate::wipe::RECEIPT_MAX_BYTES + 64 * 1024;

/// The outputs together must fit in one reply: answered `limits.output` here, before they are
/// copied anywhere.
fn check_reply_size(outputs: &[RenderedOutput], limits: &Limits) -> Result<(), JobError> {
    let total: usize = outputs.iter().map(|o| o.data.len() + 128).sum();
    if total.saturating_add(REPLY_RESERVE) > limits.max_reply_bytes {
        return Err(JobError::new(
            ErrorCode::LimitsOutput,
            format!(
                "outputs: together larger than a reply may be ({} bytes, max_reply_bytes)",
                limits.max_reply_bytes
            ),
        ));
    }
    Ok(())
}

/// How many pixels the job's outputs will really have, all together (for memory limits): from
/// the input's declared size for a thumbnail, the canvas for a recipe, in whichever
/// orientation gives more.
pub fn output_pixels(job: &Job) -> u64 {
    let source = match (&job.recipe, job.inputs.first()) {
        (Some(r), _) => (r.canvas.width, r.canvas.height),
        (None, Some(i)) => (i.header.width, i.header.height),
        (None, None) => return 0,
    };
    let area = |o: image::metadata::Orientation, plan: &OutputPlan| {
        let (w, h) = geometry::plan(source.0, source.1, o, plan).canvas;
        u64::from(w) * u64::from(h)
    };
    job.outputs
        .iter()
        .map(|plan| {
            area(image::metadata::Orientation::NoTransforms, plan)
                .max(area(image::metadata::Orientation::Rotate90, plan))
        })
        .sum()
}

fn render_recipe(
    job: &Job,
    recipe: &crate::recipe::Recipe,
    limits: &Limits,
) -> Result<Rendered, JobError> {
    let composed = compose::compose(job, recipe, limits)?;
    let mut timings = StageTimings {
        decode: composed.decode,
        compose: composed.compose,
        ..StageTimings::default()
    };
    let full = (composed.pixels.width, composed.pixels.height);
    let canvas = Decoded {
        pixels: composed.pixels,
        full,
        orientation: image::metadata::Orientation::NoTransforms,
        icc: None,
    };
    let outputs = render_outputs(&canvas, &ColorPlan::Srgb, job, limits, &mut timings)?;
    check_reply_size(&outputs, limits)?;
    Ok(Rendered {
        outputs,
        timings,
        renderer_peak_rss: None,
    })
}

fn render_outputs(
    source: &Decoded,
    color: &ColorPlan,
    job: &Job,
    limits: &Limits,
    timings: &mut StageTimings,
) -> Result<Vec<RenderedOutput>, JobError> {
    job.outputs
        .iter()
        .map(|plan| render_output(source, color, plan, job, limits, timings))
        .collect()
}

fn render_output(
    decoded: &Decoded,
    color: &ColorPlan,
    plan: &OutputPlan,
    job: &Job,
    limits: &Limits,
    timings: &mut StageTimings,
) -> Result<RenderedOutput, JobError> {
    let started = Instant::now();
    let src = &decoded.pixels;
    // Planned at full scale, so the output's size never depends on shrink-on-load; the crop is
    // then mapped onto the pixels actually decoded.
    let (fw, fh) = decoded.full;
    let mut geometry = geometry::plan(fw, fh, decoded.orientation, plan);
    if (src.width, src.height) != (fw, fh) {
        let (sx, sy) = (
            f64::from(src.width) / f64::from(fw),
            f64::from(src.height) / f64::from(fh),
        );
        let (l, t, w, h) = geometry.crop;
        geometry.crop = (l * sx, t * sy, w * sx, h * sy);
    }
    check_output(plan, geometry.canvas, limits)?;
    let artifact = format!("pixels.{}.resized", plan.name);
    let resized = resize::resize(src, &geometry, artifact, &job.ledger)?;
    let oriented = geometry::orient(resized, decoded.orientation, &job.ledger);
    let srgb = color.apply(oriented, &job.ledger);
    let framed = geometry::frame_pixels(srgb, plan, &geometry, &job.ledger);
    let resized_at = Instant::now();
    timings.resize += resized_at - started;
    let (data, quality) = encode::encode(&framed, plan, color.kept_profile(), &job.ledger)?;
    timings.encode += resized_at.elapsed();
    Ok(RenderedOutput {
        name: plan.name.clone(),
        format: plan.format,
        width: framed.width,
        height: framed.height,
        quality,
        data,
    })
}

/// The output's real size is known only now (it depends on the source): check it.
fn check_output(plan: &OutputPlan, (w, h): (u32, u32), limits: &Limits) -> Result<(), JobError> {
    let side = w.max(h);
    let pixels = u64::from(w) * u64::from(h);
    if side > limits.max_output_dimension || pixels > limits.max_output_pixels {
        return Err(JobError::new(
            ErrorCode::LimitsOutput,
            format!(
                "outputs.{}: would be larger than allowed; limits are {} per side \
                 (max_output_dimension) and {} pixels (max_output_pixels)",
                plan.name, limits.max_output_dimension, limits.max_output_pixels
            ),
        ));
    }
    Ok(())
}
