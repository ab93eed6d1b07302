//! JPEG XL inputs, decoded by jxl-oxide (pure Rust, so allowed in every executor).
//!
//! The decoder runs without a thread pool and under an allocation budget; the first keyframe
//! is rendered (an animation's first frame), converted to sRGB by the decoder's colour
//! management (moxcms), with the codestream's orientation applied by the decoder.

use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::render::decode::Decoded;
use crate::render::pixels::{Layout, Pixels};
use crate::wipe::Ledger;
use image::metadata::Orientation;
use jxl_oxide::{AllocTracker, EnumColourEncoding, JxlImage, JxlThreadPool, PixelFormat};

fn walk_frames(limits: &Limits) -> usize {
    limits.max_frames as usize
}

/// Decodes the first keyframe of the JPEG XL file in `bytes`.
pub fn decode(
    bytes: &[u8],
    name: &str,
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Decoded, JobError> {
    let corrupt = |e: Box<dyn std::error::Error + Send + Sync>| {
        let e = e.to_string();
        let code = if e.contains("allocation") || e.contains("limit") {
            ErrorCode::LimitsMemory
        } else {
            ErrorCode::InputUndecodable
        };
        // The decoder's messages name the bitstream structure that failed, never pixel data.
        let what: String = e.chars().take(200).collect();
        JobError::new(code, format!("input `{name}` could not be decoded: {what}"))
    };
    // Float planes: 4 bytes per sample, up to 4 channels, plus the decoder's scratch.
    let budget = limits.max_input_pixels.saturating_mul(32) + (64 << 20);
    let tracker = AllocTracker::with_limit(usize::try_from(budget).unwrap_or(usize::MAX));
    let mut image = JxlImage::builder()
        .pool(JxlThreadPool::none())
        .alloc_tracker(tracker)
        .read(bytes)
        .map_err(corrupt)?;
    if image.num_loaded_frames() > walk_frames(limits) {
        return Err(JobError::new(
            ErrorCode::LimitsFrames,
            format!(
                "inputs.{name}: declares more frames than allowed; the limit is {} (max_frames)",
                limits.max_frames
            ),
        ));
    }
    image.set_cms(jxl_oxide::Moxcms);
    let (w, h) = (image.width(), image.height());
    if u64::from(w) * u64::from(h) > limits.max_input_pixels
        || w.max(h) > limits.max_input_dimension
    {
        return Err(JobError::new(
            ErrorCode::LimitsPixels,
            format!("inputs.{name}: declares more pixels than allowed (max_input_pixels)"),
        ));
    }
    let format = image.pixel_format();
    if matches!(format, PixelFormat::Cmyk | PixelFormat::Cmyka) {
        return Err(JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!("input `{name}`: CMYK JPEG XL is not supported"),
        ));
    }
    let grey = format.is_grayscale();
    let alpha = format.has_alpha();
    let intent = jxl_oxide::RenderingIntent::Relative;
    image.request_color_encoding(if grey {
        EnumColourEncoding::gray_srgb(intent)
    } else {
        EnumColourEncoding::srgb(intent)
    });
    if image.num_loaded_keyframes() == 0 {
        return Err(JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}` is truncated: no complete frame"),
        ));
    }
    let render = image.render_frame(0).map_err(corrupt)?;
    let fb = render.image_all_channels();
    let (fw, fh, channels) = (fb.width(), fb.height(), fb.channels());
    let layout = match (grey, alpha) {
        (true, false) => Layout::L8,
        (false, false) => Layout::Rgb8,
        _ => Layout::Rgba8,
    };
    let want = match (grey, alpha) {
        (true, false) => 1,
        (true, true) => 2,
        (false, false) => 3,
        (false, true) => 4,
    };
    if channels < want || fw == 0 || fh == 0 {
        return Err(JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}`: the decoder returned no usable image"),
        ));
    }
    let (ow, oh) = (fw as u32, fh as u32);
    let mut out = Pixels::new(ow, oh, layout, format!("pixels.{name}.decoded"), ledger);
    let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    let src = fb.buf();
    let dst = out.buf.as_mut_slice();
    for (i, px) in src.chunks_exact(channels).enumerate() {
        match (grey, alpha) {
            (true, false) => dst[i] = q(px[0]),
            (true, true) => {
                let g = q(px[0]);
                dst[i * 4..i * 4 + 4].copy_from_slice(&[g, g, g, q(px[1])]);
            }
            (false, false) => {
                dst[i * 3..i * 3 + 3].copy_from_slice(&[q(px[0]), q(px[1]), q(px[2])])
            }
            (false, true) => {
                dst[i * 4..i * 4 + 4].copy_from_slice(&[q(px[0]), q(px[1]), q(px[2]), q(px[3])])
            }
        }
    }
    drop(fb);
    drop(render);
    Ok(Decoded {
        pixels: out,
        full: (ow, oh),
        orientation: Orientation::NoTransforms,
        icc: None,
    })
}
