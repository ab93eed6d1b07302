//! Decoding one input into [`Pixels`], with the decoder held to the job's limits.

use super::pixels::Pixels;
use crate::config::Limits;
use crate::intake::{Input, InputData};
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::Ledger;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};
use std::io::{BufRead, BufReader, Cursor, Seek};

/// A decoded input and what its file said about how to show it.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels as stored (orientation not yet applied).
    pub pixels: Pixels,
    /// EXIF orientation to apply (applied after resizing, where it is cheap).
    pub orientation: Orientation,
    /// The embedded ICC profile, if any.
    pub icc: Option<Vec<u8>>,
}

/// Decodes `input` (its first frame, for animations).
pub fn decode(input: &Input, limits: &Limits, ledger: &Ledger) -> Result<Decoded, JobError> {
    match &input.data {
        InputData::Memory(buf) => decode_from(Cursor::new(buf.as_slice()), input, limits, ledger),
        InputData::Spilled(file) => {
            let reader = file.reader().map_err(|e| {
                JobError::new(ErrorCode::Internal, format!("reading spill file: {e}"))
            })?;
            decode_from(BufReader::new(reader), input, limits, ledger)
        }
    }
}

fn decode_from<R: BufRead + Seek>(
    reader: R,
    input: &Input,
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Decoded, JobError> {
    let name = &input.name;
    let fail = |e: ImageError| decode_error(name, e);
    let mut reader = ImageReader::with_format(reader, input.header.format.image_format());
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(fail)?;
    // Metadata problems are not fatal: a broken EXIF block means "no rotation".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    let pixels = Pixels::from_dynamic(image, format!("pixels.{name}.decoded"), ledger);
    Ok(Decoded {
        pixels,
        orientation,
        icc,
    })
}

/// The decoder's own guard rails, a second line behind intake's header checks.
fn decoder_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_input_dimension);
    l.max_image_height = Some(limits.max_input_dimension);
    // Widest decoded form is 16 bytes a pixel, plus room for decoder scratch.
    l.max_alloc = Some(limits.max_input_pixels.saturating_mul(16) + (64 << 20));
    l
}

fn decode_error(name: &str, e: ImageError) -> JobError {
    let (code, what) = match &e {
        ImageError::Limits(_) => (ErrorCode::LimitsPixels, "exceeds the decoder's limits"),
        ImageError::Unsupported(_) => (
            ErrorCode::InputUnsupportedFormat,
            "uses an unsupported feature",
        ),
        ImageError::IoError(_) => (ErrorCode::InputUndecodable, "is truncated"),
        ImageError::Decoding(_) | ImageError::Parameter(_) => {
            (ErrorCode::InputUndecodable, "is corrupt")
        }
        _ => (ErrorCode::Internal, "could not be decoded"),
    };
    // The codec's message names the structure that failed, never pixel data.
    JobError::new(code, format!("input `{name}` {what}: {e}"))
}
