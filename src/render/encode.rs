//! Encoding one output. Encoders write no EXIF, XMP or GPS: only pixels, and an ICC profile
//! when the colour plan keeps one.

use super::codecs::encoders;
use super::pixels::{Layout, Pixels};
use crate::job::{OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::recipe::Color;
use crate::wipe::{Ledger, SecretBuf};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::ImageEncoder;

/// Encodes `pixels` as `plan` asks, into a ledgered buffer named `output.<name>`; returns it
/// and, for a lossy format, the quality used.
pub fn encode(
    pixels: &Pixels,
    plan: &OutputPlan,
    icc: Option<&[u8]>,
    ledger: &Ledger,
) -> Result<(SecretBuf, Option<u8>), JobError> {
    let raw = pixels.buf.len();
    let artifact = format!("output.{}", plan.name);
    let buffer = || SecretBuf::with_capacity(raw / 4 + 4096, artifact.clone(), ledger);
    let lossy = |encode: &dyn Fn(u8, &mut SecretBuf) -> Result<(), JobError>| {
        encoders::fit_bytes(plan, |q| {
            let mut out = buffer();
            encode(q, &mut out)?;
            Ok(out)
        })
        .map(|(out, q)| (out, Some(q)))
    };
    match plan.format {
        OutputFormat::Jpeg => {
            let flat;
            let src = if pixels.layout == Layout::Rgba8 {
                let bg = plan.background.unwrap_or(Color([255, 255, 255, 255]));
                flat = flatten(pixels, bg, ledger);
                &flat
            } else {
                pixels
            };
            lossy(&|q, out| encoders::jpeg(src, plan, q, icc, out))
        }
        OutputFormat::Png if plan.palette => {
            let mut out = buffer();
            encoders::palette_png(pixels, plan, &mut out, ledger)?;
            Ok((out, None))
        }
        OutputFormat::Png => {
            let mut out = buffer();
            let enc = PngEncoder::new_with_quality(
                &mut out,
                CompressionType::Default,
                FilterType::Adaptive,
            );
            write(enc, pixels, icc).map_err(|e| failed(plan, e))?;
            Ok((out, None))
        }
        OutputFormat::WebP if plan.lossless => {
            let mut out = buffer();
            write(WebPEncoder::new_lossless(&mut out), pixels, icc).map_err(|e| failed(plan, e))?;
            Ok((out, None))
        }
        OutputFormat::WebP => {
            lossy(&|q, out| encoders::webp_lossy(pixels, plan, q, icc, out, ledger))
        }
        OutputFormat::Avif => lossy(&|q, out| encoders::avif(pixels, plan, q, out, ledger)),
        OutputFormat::Thumbhash => {
            let mut out = buffer();
            encoders::thumbhash(pixels, plan, &mut out, ledger)?;
            Ok((out, None))
        }
    }
}

fn failed(plan: &OutputPlan, e: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::Internal,
        format!("encoding output `{}` failed: {e}", plan.name),
    )
}

fn write(mut enc: impl ImageEncoder, px: &Pixels, icc: Option<&[u8]>) -> image::ImageResult<()> {
    if let Some(profile) = icc {
        // Every encoder used here supports ICC; if one did not, the error surfaces below rather
        // than the profile silently vanishing.
        enc.set_icc_profile(profile.to_vec())
            .map_err(image::ImageError::Unsupported)?;
    }
    enc.write_image(
        px.buf.as_slice(),
        px.width,
        px.height,
        px.layout.color_type(),
    )
}

/// JPEG has no alpha: composite onto an opaque background.
fn flatten(px: &Pixels, bg: Color, ledger: &Ledger) -> Pixels {
    let artifact = format!("{}.flattened", px.buf.artifact());
    let mut out = Pixels::new(px.width, px.height, Layout::Rgb8, artifact, ledger);
    let src = px.buf.as_slice().chunks_exact(4);
    for (d, s) in out.buf.as_mut_slice().chunks_exact_mut(3).zip(src) {
        let a = u32::from(s[3]);
        for c in 0..3 {
            d[c] = ((u32::from(s[c]) * a + u32::from(bg.0[c]) * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}
