//! Encoding one output. Encoders write no EXIF, XMP or GPS: only pixels, and an ICC profile
//! when the colour plan keeps one.

use super::pixels::{Layout, Pixels};
use crate::job::{OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{Ledger, SecretBuf};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::ImageEncoder;

/// Encodes `pixels` as `plan` asks, into a ledgered buffer named `output.<name>`.
pub fn encode(
    pixels: &Pixels,
    plan: &OutputPlan,
    icc: Option<&[u8]>,
    ledger: &Ledger,
) -> Result<SecretBuf, JobError> {
    let raw = pixels.buf.len();
    let mut out = SecretBuf::with_capacity(raw / 4 + 4096, format!("output.{}", plan.name), ledger);
    let result = match plan.format {
        OutputFormat::Jpeg => {
            let flat;
            let src = if pixels.layout == Layout::Rgba8 {
                flat = flatten_on_white(pixels, ledger);
                &flat
            } else {
                pixels
            };
            write(
                JpegEncoder::new_with_quality(&mut out, plan.quality),
                src,
                icc,
            )
        }
        OutputFormat::Png => {
            let enc = PngEncoder::new_with_quality(
                &mut out,
                CompressionType::Default,
                FilterType::Adaptive,
            );
            write(enc, pixels, icc)
        }
        OutputFormat::WebP => write(WebPEncoder::new_lossless(&mut out), pixels, icc),
    };
    result.map_err(|e| {
        JobError::new(
            ErrorCode::Internal,
            format!("encoding output `{}` failed: {e}", plan.name),
        )
    })?;
    Ok(out)
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

/// JPEG has no alpha: composite onto white.
fn flatten_on_white(px: &Pixels, ledger: &Ledger) -> Pixels {
    let artifact = format!("{}.flattened", px.buf.artifact());
    let mut out = Pixels::new(px.width, px.height, Layout::Rgb8, artifact, ledger);
    let src = px.buf.as_slice().chunks_exact(4);
    for (d, s) in out.buf.as_mut_slice().chunks_exact_mut(3).zip(src) {
        let a = u32::from(s[3]);
        for c in 0..3 {
            d[c] = ((u32::from(s[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}
