//! Reading what an input *claims* to be — format, dimensions of the image and of every frame,
//! frame count, ICC profile size, JPEG scans — from its container, without decoding a pixel,
//! and holding each claim to the limits as soon as it is read.
//!
//! The walk is the worker's own and strict: no codec library runs here, so no library default
//! (a 512 MiB inflate limit for PNG text chunks, say) can be reached. Work is linear in the
//! file's size; the only decompression is of a PNG's ICC profile, capped at `max_icc_bytes`.
//! A file whose structure is cut short is `input.undecodable` here, before any decoder runs.

use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};

pub use crate::job::{Header, InputFormat};

mod gif;
mod isobmff;
mod jpeg;
mod jxl;
mod png;
mod webp;

/// Identifies the format from magic bytes: ours, a known but unsupported one, or none.
pub fn sniff(head: &[u8], name: &str) -> Result<InputFormat, JobError> {
    let format = match head {
        [0xFF, 0xD8, 0xFF, ..] => InputFormat::Jpeg,
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => InputFormat::Png,
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => InputFormat::Gif,
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => InputFormat::WebP,
        [0xFF, 0x0A, ..] | [0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', ..] => InputFormat::Jxl,
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => match isobmff::brand_format(head) {
            Some(format) => format,
            None => return Err(unknown_format(head, name)),
        },
        _ => return Err(unknown_format(head, name)),
    };
    Ok(format)
}

fn unknown_format(head: &[u8], name: &str) -> JobError {
    let known = match head {
        [b'B', b'M', ..] => Some("BMP"),
        [b'I', b'I', 0x2A, 0, ..] | [b'M', b'M', 0, 0x2A, ..] => Some("TIFF"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Some("this ISO-BMFF brand"),
        [0, 0, 1, 0, ..] => Some("ICO"),
        [b'8', b'B', b'P', b'S', ..] => Some("PSD"),
        [0x76, 0x2F, 0x31, 0x01, ..] => Some("OpenEXR"),
        [b'q', b'o', b'i', b'f', ..] => Some("QOI"),
        _ => None,
    };
    match known {
        Some(kind) => JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!("inputs.{name}: {kind} is not supported; {SUPPORTED}"),
        ),
        None => JobError::new(
            ErrorCode::InputUndecodable,
            format!("inputs.{name}: not a recognised image (unknown signature)"),
        ),
    }
}

/// The formats read, for error messages.
const SUPPORTED: &str = "supported: JPEG, PNG, WebP, GIF, HEIC, AVIF, JPEG XL";

/// What the walk of one container found.
struct Found {
    width: u32,
    height: u32,
    frames: u32,
    extent: (u32, u32),
    icc_bytes: u64,
    scans: u32,
}

impl Found {
    fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            frames: 1,
            extent: (0, 0),
            icc_bytes: 0,
            scans: 1,
        }
    }
}

/// Why a walk stopped: a broken structure, or a limit reached on the way.
enum Stop {
    Broken(&'static str),
    Limit(JobError),
}

impl From<&'static str> for Stop {
    fn from(why: &'static str) -> Self {
        Self::Broken(why)
    }
}

/// The limits the walk applies as it reads.
struct Walk<'a> {
    limits: &'a Limits,
    name: &'a str,
}

impl Walk<'_> {
    /// A canvas, frame or bitstream of `w`×`h`: within the pixel limits?
    fn area(&self, w: u64, h: u64) -> Result<(u32, u32), Stop> {
        let l = self.limits;
        let side = u64::from(l.max_input_dimension);
        if w > side || h > side || w.saturating_mul(h) > l.max_input_pixels {
            return Err(Stop::Limit(JobError::new(
                ErrorCode::LimitsPixels,
                format!(
                    "inputs.{}: declares more pixels than allowed; limits are {} pixels \
                     (max_input_pixels) and {} per side (max_input_dimension), every frame \
                     included",
                    self.name, l.max_input_pixels, l.max_input_dimension
                ),
            )));
        }
        Ok((w as u32, h as u32))
    }

    fn frames(&self, n: u64) -> Result<(), Stop> {
        if n > u64::from(self.limits.max_frames) {
            return Err(Stop::Limit(JobError::new(
                ErrorCode::LimitsFrames,
                format!(
                    "inputs.{}: declares more frames than allowed; the limit is {} (max_frames)",
                    self.name, self.limits.max_frames
                ),
            )));
        }
        Ok(())
    }

    fn icc(&self, bytes: u64) -> Result<(), Stop> {
        if bytes > self.limits.max_icc_bytes {
            return Err(Stop::Limit(JobError::new(
                ErrorCode::LimitsComplexity,
                format!(
                    "inputs.{}: its ICC profile is larger than allowed; the limit is {} bytes \
                     (max_icc_bytes)",
                    self.name, self.limits.max_icc_bytes
                ),
            )));
        }
        Ok(())
    }

    fn scans(&self, n: u32) -> Result<(), Stop> {
        if n > self.limits.max_jpeg_scans {
            return Err(Stop::Limit(JobError::new(
                ErrorCode::LimitsComplexity,
                format!(
                    "inputs.{}: has more JPEG scans than allowed; the limit is {} \
                     (max_jpeg_scans)",
                    self.name, self.limits.max_jpeg_scans
                ),
            )));
        }
        Ok(())
    }

    /// A frame whose right and bottom edges are at `right`, `bottom`.
    fn reach(&self, found: &mut Found, right: u64, bottom: u64) -> Result<(), Stop> {
        let (r, b) = self.area(right, bottom)?;
        found.extent = (found.extent.0.max(r), found.extent.1.max(b));
        let (w, h) = (
            found.width.max(found.extent.0),
            found.height.max(found.extent.1),
        );
        self.area(u64::from(w), u64::from(h)).map(drop)
    }
}

/// Reads the header of an input held in memory and holds every claim to `limits`.
pub fn probe_bytes(bytes: &[u8], name: &str, limits: &Limits) -> Result<Header, JobError> {
    let mut format = sniff(bytes, name)?;
    switched_on(format, name, limits)?;
    let walk = Walk { limits, name };
    let found = match format {
        InputFormat::Png => png::probe(bytes, &walk),
        InputFormat::Jpeg => jpeg::probe(bytes, &walk),
        InputFormat::WebP => webp::probe(bytes, &walk),
        InputFormat::Gif => gif::probe(bytes, &walk),
        InputFormat::Jxl => jxl::probe(bytes, &walk),
        InputFormat::Heic | InputFormat::Avif => {
            isobmff::probe(bytes, &walk).map(|(found, codec)| {
                format = codec;
                found
            })
        }
    };
    let found = found.map_err(|stop| match stop {
        Stop::Limit(e) => e,
        Stop::Broken(why) => {
            JobError::new(ErrorCode::InputUndecodable, format!("inputs.{name}: {why}"))
        }
    })?;
    // A `mif1` file names its codec only in its items: check the switch again.
    switched_on(format, name, limits)?;
    Ok(Header {
        format,
        width: found.width,
        height: found.height,
        frames: found.frames,
        extent: found.extent,
        icc_bytes: found.icc_bytes,
        scans: found.scans,
    })
}

/// Refuses a format the operator switched off (`accept_heic`, `accept_avif`, `accept_jxl`).
fn switched_on(format: InputFormat, name: &str, limits: &Limits) -> Result<(), JobError> {
    let (on, setting) = match format {
        InputFormat::Heic => (limits.accept_heic, "accept_heic"),
        InputFormat::Avif => (limits.accept_avif, "accept_avif"),
        InputFormat::Jxl => (limits.accept_jxl, "accept_jxl"),
        _ => return Ok(()),
    };
    if on {
        return Ok(());
    }
    Err(JobError::new(
        ErrorCode::InputUnsupportedFormat,
        format!(
            "inputs.{name}: {} is switched off on this worker ({setting})",
            format.label()
        ),
    ))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le24(b: &[u8], at: usize) -> u64 {
    u64::from(b[at]) | u64::from(b[at + 1]) << 8 | u64::from(b[at + 2]) << 16
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests;
