//! Decoding one input into [`Pixels`], with the decoder held to the job's limits.

use super::cmyk;
use super::pixels::Pixels;
use super::probe::InputFormat;
use crate::config::Limits;
use crate::intake::{Input, InputData};
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::Ledger;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};
use std::io::{BufRead, BufReader, Cursor, Read, Seek};

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
    let name = &input.name;
    let fail = |e: ImageError| decode_error(name, e);
    let mut reader = ImageReader::with_format(open(input)?, input.header.format.image_format());
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(fail)?;
    // Metadata problems are not fatal: a broken EXIF block means "no rotation".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    if input.header.format == InputFormat::Jpeg {
        if let Some(profile) = icc.as_deref().and_then(cmyk::cmyk_profile) {
            drop(decoder);
            if let Some(pixels) = cmyk::decode(open(input)?, &profile, name, limits, ledger)? {
                // Converted through its profile: the pixels are sRGB now.
                let icc = None;
                return Ok(Decoded {
                    pixels,
                    orientation,
                    icc,
                });
            }
            return decode_plain(input, limits, ledger, orientation, None);
        }
    }
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    let pixels = Pixels::from_dynamic(image, format!("pixels.{name}.decoded"), ledger);
    Ok(Decoded {
        pixels,
        orientation,
        icc,
    })
}

/// A JPEG whose CMYK profile turned out not to describe it: decode it as usual, without the
/// profile.
fn decode_plain(
    input: &Input,
    limits: &Limits,
    ledger: &Ledger,
    orientation: Orientation,
    icc: Option<Vec<u8>>,
) -> Result<Decoded, JobError> {
    let mut reader = ImageReader::with_format(open(input)?, input.header.format.image_format());
    reader.limits(decoder_limits(limits));
    let image = reader.decode().map_err(|e| decode_error(&input.name, e))?;
    let pixels = Pixels::from_dynamic(image, format!("pixels.{}.decoded", input.name), ledger);
    Ok(Decoded {
        pixels,
        orientation,
        icc,
    })
}

/// A reader over an input's bytes, wherever they are.
enum InputReader<'a> {
    Memory(Cursor<&'a [u8]>),
    Spilled(BufReader<std::fs::File>),
}

fn open(input: &Input) -> Result<InputReader<'_>, JobError> {
    Ok(match &input.data {
        InputData::Memory(buf) => InputReader::Memory(Cursor::new(buf.as_slice())),
        InputData::Spilled(file) => {
            let f = file.reader().map_err(|e| {
                JobError::new(ErrorCode::Internal, format!("reading spill file: {e}"))
            })?;
            InputReader::Spilled(BufReader::new(f))
        }
        InputData::SpillPath(path) => {
            let f = std::fs::File::open(path).map_err(|e| {
                JobError::new(ErrorCode::Internal, format!("reading spill file: {e}"))
            })?;
            InputReader::Spilled(BufReader::new(f))
        }
    })
}

impl Read for InputReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Memory(r) => r.read(buf),
            Self::Spilled(r) => r.read(buf),
        }
    }
}

impl BufRead for InputReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Self::Memory(r) => r.fill_buf(),
            Self::Spilled(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            Self::Memory(r) => r.consume(n),
            Self::Spilled(r) => r.consume(n),
        }
    }
}

impl Seek for InputReader<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        match self {
            Self::Memory(r) => r.seek(pos),
            Self::Spilled(r) => r.seek(pos),
        }
    }
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
