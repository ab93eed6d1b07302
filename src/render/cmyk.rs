//! CMYK JPEGs that carry a CMYK ICC profile (print workflows, Photoshop exports).
//!
//! A decoder's own CMYK → RGB conversion ignores the profile, and a CMYK profile cannot be
//! embedded in an RGB output. So such files are decoded to raw ink values and converted to
//! sRGB through their own profile. Without a profile, the decoder's conversion is used.

use super::pixels::{Layout, Pixels};
use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{Ledger, SecretBuf};
use moxcms::{ColorProfile, DataColorSpace, TransformOptions};
use std::io::{BufRead, Seek};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// The profile, if it is a CMYK profile.
pub fn cmyk_profile(icc: &[u8]) -> Option<ColorProfile> {
    ColorProfile::new_from_slice(icc)
        .ok()
        .filter(|p| p.color_space == DataColorSpace::Cmyk)
}

/// Decodes a CMYK JPEG and converts it to sRGB through `profile`. Returns `Ok(None)` when the
/// file is not CMYK after all (the profile then does not describe it).
pub fn decode<R: BufRead + Seek>(
    reader: R,
    profile: &ColorProfile,
    name: &str,
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Option<Pixels>, JobError> {
    let fail = |e: &dyn std::fmt::Display| {
        JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}` is corrupt: {e}"),
        )
    };
    let side = limits.max_input_dimension as usize;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::CMYK)
        .set_max_width(side)
        .set_max_height(side);
    let mut decoder = JpegDecoder::new_with_options(reader, options);
    decoder.decode_headers().map_err(|e| fail(&e))?;
    if !matches!(
        decoder.input_colorspace(),
        Some(ColorSpace::CMYK | ColorSpace::YCCK)
    ) {
        return Ok(None);
    }
    let info = decoder.info().ok_or_else(|| fail(&"no frame header"))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let len = decoder
        .output_buffer_size()
        .ok_or_else(|| fail(&"size overflows"))?;
    let mut ink = SecretBuf::new(vec![0; len], format!("pixels.{name}.cmyk"), ledger);
    decoder
        .decode_into(ink.as_mut_slice())
        .map_err(|e| fail(&e))?;
    // JPEG stores CMYK inverted (Adobe convention: 255 = no ink); profiles expect ink amounts.
    for b in ink.as_mut_slice() {
        *b = 255 - *b;
    }
    let srgb = ColorProfile::new_srgb();
    let transform = profile
        .create_transform_8bit(
            moxcms::Layout::Rgba,
            &srgb,
            moxcms::Layout::Rgb,
            TransformOptions::default(),
        )
        .map_err(|e| {
            JobError::new(
                ErrorCode::InputUnsupportedFormat,
                format!("input `{name}`: its CMYK profile cannot be applied ({e})"),
            )
        })?;
    let mut rgb = Pixels::new(w, h, Layout::Rgb8, format!("pixels.{name}.decoded"), ledger);
    transform
        .transform(ink.as_slice(), rgb.buf.as_mut_slice())
        .map_err(|e| JobError::new(ErrorCode::Internal, format!("CMYK conversion: {e}")))?;
    Ok(Some(rgb))
}
