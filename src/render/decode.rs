//! Decoding one input into [`Pixels`], with the decoder held to the job's limits.

use super::pixels::Pixels;
use super::{cmyk, geometry};
use crate::job::InputFormat;
use crate::job::Limits;
use crate::job::{Input, InputData, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::{Ledger, SecretBuf};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};
use std::io::{BufRead, BufReader, Cursor, Read, Seek};

/// A decoded input and what its file said about how to show it.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels as stored (orientation not yet applied), possibly shrunk on load.
    pub pixels: Pixels,
    /// The stored size at full scale: outputs are planned against it, so their sizes do not
    /// depend on how the input was decoded.
    pub full: (u32, u32),
    /// EXIF orientation to apply (applied after resizing, where it is cheap).
    pub orientation: Orientation,
    /// The embedded ICC profile, if any.
    pub icc: Option<Vec<u8>>,
}

/// Decodes `input` (its first frame, for animations). A JPEG is decoded at 1/2, 1/4 or 1/8
/// scale in the DCT domain (shrink-on-load, [`super::jpeg`]) when every output in `outputs` still gets at least
/// as many source pixels as it has.
pub fn decode(
    input: &Input,
    limits: &Limits,
    ledger: &Ledger,
    outputs: &[OutputPlan],
) -> Result<Decoded, JobError> {
    decode_shrunk(input, limits, ledger, &|full, orientation| {
        shrink_factor(full, orientation, outputs)
    })
}

/// Decodes `input`; `shrink` says, from the stored full size and the orientation, by which of
/// 1, 2, 4 or 8 a JPEG may be shrunk on load.
pub fn decode_shrunk(
    input: &Input,
    limits: &Limits,
    ledger: &Ledger,
    shrink: &dyn Fn((u32, u32), Orientation) -> u32,
) -> Result<Decoded, JobError> {
    let name = &input.name;
    let fail = |e: ImageError| decode_error(name, e);
    let Some(format) = input.header.format.image_format() else {
        return decode_other(input, limits, ledger);
    };
    let mut reader = ImageReader::with_format(open(input)?, format);
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(fail)?;
    // Metadata problems are not fatal: a broken EXIF block means "no rotation".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let full = decoder.dimensions();
    if input.header.format == InputFormat::Jpeg {
        let cmyk_profile = icc.as_deref().and_then(cmyk::cmyk_profile);
        let shrink = shrink(full, orientation);
        let decoded = |pixels, icc| Decoded {
            pixels,
            full,
            orientation,
            icc,
        };
        if cmyk_profile.is_none() && shrink > 1 {
            drop(decoder);
            if let Some(pixels) = decode_scaled(input, shrink, limits, ledger) {
                return Ok(decoded(pixels, icc));
            }
            return decode_plain(input, limits, ledger, orientation, icc);
        }
        if let Some(profile) = cmyk_profile {
            drop(decoder);
            if let Some(pixels) = cmyk::decode(open(input)?, &profile, name, limits, ledger)? {
                // Converted through its profile: the pixels are sRGB now.
                return Ok(decoded(pixels, None));
            }
            return decode_plain(input, limits, ledger, orientation, None);
        }
    }
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    let pixels = Pixels::from_dynamic(image, format!("pixels.{name}.decoded"), ledger);
    Ok(Decoded {
        pixels,
        full,
        orientation,
        icc,
    })
}

/// The largest of 1, 2, 4, 8 by which a `full` image can shrink while every output's crop
/// keeps at least as many pixels as the output has, on both axes.
pub fn shrink_factor(full: (u32, u32), orientation: Orientation, outputs: &[OutputPlan]) -> u32 {
    let mut room = f64::INFINITY;
    for out in outputs {
        let p = geometry::plan(full.0, full.1, orientation, out);
        let (cw, ch) = (p.crop.2, p.crop.3);
        let (rw, rh) = (f64::from(p.resized.0), f64::from(p.resized.1));
        room = room.min(cw / rw).min(ch / rh);
    }
    [8, 4, 2]
        .into_iter()
        .find(|&d| f64::from(d) <= room)
        .unwrap_or(1)
}

/// Decodes a JPEG at 1/`shrink` scale with the shrink-on-load decoder ([`super::jpeg`]).
/// `None` when that decoder will not (CMYK, arithmetic coding, a damaged file): the caller
/// decodes at full scale instead, and any real error is reported from there.
fn decode_scaled(input: &Input, shrink: u32, limits: &Limits, ledger: &Ledger) -> Option<Pixels> {
    let budget = limits.max_input_pixels.saturating_mul(4) + (64 << 20);
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    let artifact = format!("pixels.{}", input.name);
    let decoded = with_whole(input, ledger, |data| {
        super::jpeg::decode(data, shrink, budget, &artifact, ledger)
    })
    .ok()?;
    match decoded {
        Ok(scaled) => Some(scaled.pixels),
        Err(why) => {
            tracing::debug!(input = %input.name, %why, "decoding at full scale instead");
            None
        }
    }
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
    let format = input.header.format.image_format().ok_or_else(|| {
        JobError::new(
            ErrorCode::Internal,
            "decode_plain is for the image crate's formats",
        )
    })?;
    let mut reader = ImageReader::with_format(open(input)?, format);
    reader.limits(decoder_limits(limits));
    let image = reader.decode().map_err(|e| decode_error(&input.name, e))?;
    let full = (image.width(), image.height());
    let pixels = Pixels::from_dynamic(image, format!("pixels.{}.decoded", input.name), ledger);
    Ok(Decoded {
        pixels,
        full,
        orientation,
        icc,
    })
}

/// HEIC, AVIF and JPEG XL: decoders that want the whole file in memory.
fn decode_other(input: &Input, limits: &Limits, ledger: &Ledger) -> Result<Decoded, JobError> {
    let name = &input.name;
    if input.header.format.needs_c() {
        // Refused before the file is even read, in a process where C codecs may not run.
        super::codecs::require_c(&format!("inputs.{name} ({})", input.header.format.label()))?;
    }
    with_whole(input, ledger, |data| match input.header.format {
        InputFormat::Jxl => super::codecs::jxl::decode(data, name, limits, ledger),
        _ => super::codecs::heif::decode(data, name, limits, ledger),
    })?
}

/// Calls `f` with the input's whole file as one slice: its own buffer, or the spill file read
/// back into a buffer that is wiped when `f` returns (for decoders that want the whole file).
fn with_whole<T>(
    input: &Input,
    ledger: &Ledger,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, JobError> {
    if let InputData::Memory(buf) = &input.data {
        return Ok(f(buf.as_slice()));
    }
    let mut buf = SecretBuf::with_capacity(0, format!("input.{}.read", input.name), ledger);
    std::io::copy(&mut open(input)?, &mut buf)
        .map_err(|e| JobError::new(ErrorCode::Internal, format!("reading spill file: {e}")))?;
    Ok(f(buf.as_slice()))
}

/// A reader over an input's bytes, wherever they are.
enum InputReader<'a> {
    Memory(Cursor<&'a [u8]>),
    Spilled(BufReader<crate::wipe::SpillReader>),
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
        InputData::Descriptor(file, key) => {
            // A duplicate of the descriptor, rewound and decrypted with the file's key.
            let f = file
                .try_clone()
                .and_then(|f| crate::wipe::SpillReader::new(f, key))
                .map_err(|e| {
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

    // Decoders read a byte or two at a time through `read_exact`; forwarding it keeps the
    // inner reader's own implementation (std's default loops over `read`).
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Self::Memory(r) => r.read_exact(buf),
            Self::Spilled(r) => r.read_exact(buf),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OutputSpec;

    fn out(w: Option<u32>, h: Option<u32>, fit: &str) -> OutputPlan {
        let spec = OutputSpec {
            name: "o".into(),
            format: "jpeg".into(),
            width: w,
            height: h,
            fit: Some(fit.into()),
            ..Default::default()
        };
        crate::intake::plan_outputs(&[spec], &Limits::default())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn the_shrink_keeps_every_output_at_least_as_sharp_as_its_size() {
        let none = Orientation::NoTransforms;
        let full = (4000, 3000);
        // 4000 → 512: 1/4 (1000 px) still covers it, 1/8 (500 px) would not.
        assert_eq!(
            shrink_factor(full, none, &[out(Some(512), Some(512), "contain")]),
            4
        );
        // Cover crops a 3000x3000 square to 512: 1/4 again.
        assert_eq!(
            shrink_factor(full, none, &[out(Some(512), Some(512), "cover")]),
            4
        );
        // A tiny avatar: 1/8.
        assert_eq!(
            shrink_factor(full, none, &[out(Some(64), Some(64), "cover")]),
            8
        );
        // The most demanding output decides; a full-size one means no shrink.
        let both = [
            out(Some(64), None, "contain"),
            out(Some(1600), None, "contain"),
        ];
        assert_eq!(shrink_factor(full, none, &both), 2);
        assert_eq!(shrink_factor(full, none, &[out(None, None, "contain")]), 1);
        // Rotated: a 3000-wide display box for a 4000x3000 stored image shown upright.
        let r = Orientation::Rotate90;
        assert_eq!(
            shrink_factor(full, r, &[out(Some(1500), None, "contain")]),
            2
        );
    }
}
