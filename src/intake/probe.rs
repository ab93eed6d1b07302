//! Reading what an input *claims* to be — format, dimensions of the image and of every frame,
//! frame count, ICC profile size, JPEG scans — from its container, without decoding a pixel,
//! and holding each claim to the limits as soon as it is read.
//!
//! The walk is the worker's own and strict: no codec library runs here, so no library default
//! (a 512 MiB inflate limit for PNG text chunks, say) can be reached. Work is linear in the
//! file's size; the only decompression is of a PNG's ICC profile, capped at `max_icc_bytes`.
//! A file whose structure is cut short is `input.undecodable` here, before any decoder runs.

use crate::config::Limits;
use crate::protocol::{ErrorCode, JobError};
use serde::{Deserialize, Serialize};

/// Formats this worker decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputFormat {
    /// JPEG (baseline and progressive; grey, YCbCr, CMYK).
    Jpeg,
    /// PNG (including 16-bit, palette, grey, alpha; APNG renders its default image).
    Png,
    /// WebP (lossy and lossless; animated renders its first frame).
    WebP,
    /// GIF (first frame).
    Gif,
}

impl InputFormat {
    /// The `image` crate's format.
    pub fn image_format(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::WebP => image::ImageFormat::WebP,
            Self::Gif => image::ImageFormat::Gif,
        }
    }
}

/// What an input's header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format, from magic bytes.
    pub format: InputFormat,
    /// Declared width of the image (the canvas, for animations).
    pub width: u32,
    /// Declared height.
    pub height: u32,
    /// Declared frame count (1 for still images).
    pub frames: u32,
    /// The farthest right and bottom edges any frame or bitstream reaches; a decoder may
    /// allocate this much even when the canvas is smaller.
    pub extent: (u32, u32),
    /// Bytes of the embedded ICC profile (decompressed), 0 when there is none.
    pub icc_bytes: u64,
    /// Entropy-coded scans (JPEG; 1 for other formats).
    pub scans: u32,
}

impl Header {
    /// The largest width and height a decoder may work at: the canvas or any frame beyond it.
    pub fn extent(&self) -> (u32, u32) {
        (
            self.width.max(self.extent.0),
            self.height.max(self.extent.1),
        )
    }
}

/// Identifies the format from magic bytes: ours, a known but unsupported one, or none.
pub fn sniff(head: &[u8], name: &str) -> Result<InputFormat, JobError> {
    let format = match head {
        [0xFF, 0xD8, 0xFF, ..] => InputFormat::Jpeg,
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => InputFormat::Png,
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => InputFormat::Gif,
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => InputFormat::WebP,
        _ => return Err(unknown_format(head, name)),
    };
    Ok(format)
}

fn unknown_format(head: &[u8], name: &str) -> JobError {
    let known = match head {
        [b'B', b'M', ..] => Some("BMP"),
        [b'I', b'I', 0x2A, 0, ..] | [b'M', b'M', 0, 0x2A, ..] => Some("TIFF"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Some("an ISO-BMFF image (HEIC/AVIF)"),
        [0xFF, 0x0A, ..] | [0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', ..] => Some("JPEG XL"),
        [0, 0, 1, 0, ..] => Some("ICO"),
        [b'8', b'B', b'P', b'S', ..] => Some("PSD"),
        [0x76, 0x2F, 0x31, 0x01, ..] => Some("OpenEXR"),
        [b'q', b'o', b'i', b'f', ..] => Some("QOI"),
        _ => None,
    };
    match known {
        Some(kind) => JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!("inputs.{name}: {kind} is not supported; supported: JPEG, PNG, WebP, GIF"),
        ),
        None => JobError::new(
            ErrorCode::InputUndecodable,
            format!("inputs.{name}: not a recognised image (unknown signature)"),
        ),
    }
}

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
    let format = sniff(bytes, name)?;
    let walk = Walk { limits, name };
    let found = match format {
        InputFormat::Png => png(bytes, &walk),
        InputFormat::Jpeg => jpeg(bytes, &walk),
        InputFormat::WebP => webp(bytes, &walk),
        InputFormat::Gif => gif(bytes, &walk),
    };
    let found = found.map_err(|stop| match stop {
        Stop::Limit(e) => e,
        Stop::Broken(why) => {
            JobError::new(ErrorCode::InputUndecodable, format!("inputs.{name}: {why}"))
        }
    })?;
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

/// PNG: IHDR first, then every chunk to IEND (APNG frame controls, the ICC profile).
fn png(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
    const TRUNCATED: &str = "the PNG ends before its last chunk (truncated)";
    if b.len() < 33 || &b[12..16] != b"IHDR" || be32(b, 8) != 13 {
        return Err(Stop::Broken("the PNG does not start with its header chunk"));
    }
    let (w, h) = (be32(b, 16), be32(b, 20));
    if w == 0 || h == 0 || w > 0x7fff_ffff || h > 0x7fff_ffff {
        return Err(Stop::Broken(
            "the PNG declares a zero-sized or invalid image",
        ));
    }
    let (depth, color) = (b[24], b[25]);
    let valid = match color {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => false,
    };
    if !valid || b[26] != 0 || b[27] != 0 || b[28] > 1 {
        return Err(Stop::Broken("the PNG header is invalid"));
    }
    walk.area(u64::from(w), u64::from(h))?;
    let mut found = Found::new(w, h);
    let (mut at, mut image_data, mut controls, mut animation) = (33usize, false, 0u64, None);
    loop {
        if at + 12 > b.len() {
            return Err(Stop::Broken(TRUNCATED));
        }
        let len = be32(b, at) as usize;
        let kind = &b[at + 4..at + 8];
        let data = at + 8;
        let end = data.checked_add(len).and_then(|e| e.checked_add(4));
        let end = end
            .filter(|&e| e <= b.len())
            .ok_or(Stop::Broken(TRUNCATED))?;
        let chunk = &b[data..data + len];
        match kind {
            b"IEND" => break,
            b"IDAT" => image_data = true,
            b"iCCP" => found.icc_bytes = png_icc(chunk, walk)?,
            b"acTL" if len >= 8 => {
                let frames = u64::from(be32(chunk, 0));
                walk.frames(frames)?;
                animation = Some(frames);
            }
            b"fcTL" if len >= 26 => {
                controls += 1;
                walk.frames(controls)?;
                let (fw, fh) = (u64::from(be32(chunk, 4)), u64::from(be32(chunk, 8)));
                let (x, y) = (u64::from(be32(chunk, 12)), u64::from(be32(chunk, 16)));
                walk.reach(&mut found, x + fw, y + fh)?;
            }
            _ => {}
        }
        at = end;
    }
    if !image_data {
        return Err(Stop::Broken("the PNG has no image data"));
    }
    match animation {
        Some(0) => return Err(Stop::Broken("the APNG declares no frames")),
        Some(n) => found.frames = n as u32,
        None => {}
    }
    Ok(found)
}

/// The decompressed size of a PNG `iCCP` chunk (name, NUL, method, zlib stream), inflating at
/// most one byte past the limit.
fn png_icc(chunk: &[u8], walk: &Walk<'_>) -> Result<u64, Stop> {
    let Some(nul) = chunk.iter().take(80).position(|&c| c == 0) else {
        return Err(Stop::Broken("the PNG's ICC profile chunk is malformed"));
    };
    let stream = chunk.get(nul + 2..).unwrap_or_default();
    let cap = usize::try_from(walk.limits.max_icc_bytes.saturating_add(1)).unwrap_or(usize::MAX);
    match miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(stream, cap) {
        Ok(mut profile) => {
            let n = profile.len() as u64;
            crate::wipe::wipe_bytes(&mut profile);
            walk.icc(n)?;
            Ok(n)
        }
        Err(mut e) if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
            crate::wipe::wipe_bytes(&mut e.output);
            walk.icc(cap as u64).map(|()| cap as u64)
        }
        Err(mut e) => {
            // A profile that does not inflate is ignored by the decoder (no colour conversion);
            // it is not copied anywhere.
            crate::wipe::wipe_bytes(&mut e.output);
            Ok(0)
        }
    }
}

/// JPEG: every marker segment to EOI — the frame header, ICC chunks, and each scan (its
/// entropy-coded data skipped to the next marker).
fn jpeg(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
    const TRUNCATED: &str = "the JPEG ends before its end-of-image marker (truncated)";
    let mut at = 2;
    let (mut frame, mut scans, mut icc) = (None::<Found>, 0u32, 0u64);
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if at >= b.len() || b[at] != 0xFF {
            return Err(Stop::Broken(if at >= b.len() {
                TRUNCATED
            } else {
                "the JPEG has a corrupt marker"
            }));
        }
        while at < b.len() && b[at] == 0xFF {
            at += 1;
        }
        let marker = *b.get(at).ok_or(Stop::Broken(TRUNCATED))?;
        at += 1;
        match marker {
            0xD9 => break,
            0xD8 => return Err(Stop::Broken("the JPEG has a second start-of-image marker")),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if at + 2 > b.len() {
            return Err(Stop::Broken(TRUNCATED));
        }
        let len = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
        if len < 2 || at + len > b.len() {
            return Err(Stop::Broken(TRUNCATED));
        }
        let seg = &b[at + 2..at + len];
        at += len;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if frame.is_some() {
                    return Err(Stop::Broken("the JPEG has two frame headers"));
                }
                if seg.len() < 6 {
                    return Err(Stop::Broken("the JPEG frame header is malformed"));
                }
                let h = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
                let w = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
                if w == 0 || h == 0 {
                    return Err(Stop::Broken("the JPEG declares a zero-sized image"));
                }
                walk.area(u64::from(w), u64::from(h))?;
                frame = Some(Found::new(w, h));
            }
            0xE2 if seg.starts_with(b"ICC_PROFILE\0") => {
                icc += seg.len().saturating_sub(14) as u64;
                walk.icc(icc)?;
            }
            0xDA => {
                if frame.is_none() {
                    return Err(Stop::Broken("the JPEG has a scan before its frame header"));
                }
                scans += 1;
                walk.scans(scans)?;
                at = skip_entropy(b, at).ok_or(Stop::Broken(TRUNCATED))?;
            }
            _ => {}
        }
    }
    let mut found = frame.ok_or(Stop::Broken("the JPEG has no frame header"))?;
    if scans == 0 {
        return Err(Stop::Broken("the JPEG has no image data"));
    }
    found.scans = scans;
    found.icc_bytes = icc;
    Ok(found)
}

/// The offset of the marker ending the entropy-coded data that starts at `at`: the first 0xFF
/// not followed by a stuffed zero or a restart marker.
fn skip_entropy(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += b.get(at..)?.iter().position(|&c| c == 0xFF)?;
        match b.get(at + 1)? {
            0x00 | 0xD0..=0xD7 | 0xFF => at += 1,
            _ => return Some(at),
        }
    }
}

/// The width and height of a VP8 or VP8L bitstream chunk.
fn webp_bitstream(kind: &[u8], data: &[u8]) -> Result<Option<(u64, u64)>, Stop> {
    const BAD: &str = "the WebP bitstream header is malformed";
    match kind {
        b"VP8 " => {
            if data.len() < 10 || data[3..6] != [0x9d, 0x01, 0x2a] {
                return Err(Stop::Broken(BAD));
            }
            Ok(Some((
                u64::from(le16(data, 6) & 0x3fff),
                u64::from(le16(data, 8) & 0x3fff),
            )))
        }
        b"VP8L" => {
            if data.len() < 5 || data[0] != 0x2f {
                return Err(Stop::Broken(BAD));
            }
            let bits = le32(data, 1);
            Ok(Some((
                u64::from(bits & 0x3fff) + 1,
                u64::from((bits >> 14) & 0x3fff) + 1,
            )))
        }
        _ => Ok(None),
    }
}

/// WebP: the RIFF chunks — the canvas (VP8X) or the lone bitstream, the ICC profile, and every
/// animation frame with the bitstream inside it.
fn webp(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
    const TRUNCATED: &str = "the WebP ends inside a chunk (truncated)";
    let riff = le32(b, 4) as usize;
    let end = riff
        .checked_add(8)
        .filter(|&e| e <= b.len())
        .ok_or(Stop::Broken(TRUNCATED))?;
    let (mut at, mut found, mut frames, mut animated) = (12usize, None::<Found>, 0u64, false);
    while at + 8 <= end {
        let kind = &b[at..at + 4];
        let len = le32(b, at + 4) as usize;
        let data_end = (at + 8).checked_add(len).filter(|&e| e <= end);
        let data = &b[at + 8..data_end.ok_or(Stop::Broken(TRUNCATED))?];
        match kind {
            b"VP8X" if found.is_none() => {
                if data.len() < 10 {
                    return Err(Stop::Broken("the WebP canvas header is malformed"));
                }
                let (w, h) = walk.area(le24(data, 4) + 1, le24(data, 7) + 1)?;
                found = Some(Found::new(w, h));
            }
            b"ICCP" => walk.icc(data.len() as u64)?,
            b"ANIM" => animated = true,
            b"ANMF" => {
                frames += 1;
                walk.frames(frames)?;
                if data.len() < 16 {
                    return Err(Stop::Broken("the WebP animation frame is malformed"));
                }
                let f = found
                    .as_mut()
                    .ok_or(Stop::Broken("a WebP frame comes before its canvas"))?;
                let (x, y) = (le24(data, 0) * 2, le24(data, 3) * 2);
                walk.reach(f, x + le24(data, 6) + 1, y + le24(data, 9) + 1)?;
                // The frame's own chunks (ALPH, VP8, VP8L): the bitstream's size counts too.
                let mut sub = 16;
                while sub + 8 <= data.len() {
                    let sub_len = le32(data, sub + 4) as usize;
                    let sub_end = (sub + 8).checked_add(sub_len).filter(|&e| e <= data.len());
                    let sub_data = &data[sub + 8..sub_end.ok_or(Stop::Broken(TRUNCATED))?];
                    if let Some((w, h)) = webp_bitstream(&data[sub..sub + 4], sub_data)? {
                        walk.reach(f, x + w, y + h)?;
                    }
                    sub = sub + 8 + sub_len + (sub_len & 1);
                }
            }
            kind => {
                if let Some((w, h)) = webp_bitstream(kind, data)? {
                    match found.as_mut() {
                        Some(f) => walk.reach(f, w, h)?,
                        None => {
                            let (w, h) = walk.area(w, h)?;
                            found = Some(Found::new(w, h));
                        }
                    }
                }
            }
        }
        at = at + 8 + len + (len & 1);
    }
    let mut found = found.ok_or(Stop::Broken("the WebP has no image"))?;
    if found.width == 0 || found.height == 0 {
        return Err(Stop::Broken("the WebP declares a zero-sized image"));
    }
    if animated {
        found.frames = frames.max(1) as u32;
    }
    Ok(found)
}

/// GIF: the logical screen, then every block — each image descriptor's own size and position
/// is a frame the decoder will allocate for.
fn gif(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
    const TRUNCATED: &str = "the GIF ends inside a block (truncated)";
    if b.len() < 13 {
        return Err(Stop::Broken("the GIF header is truncated"));
    }
    let (w, h) = (le16(b, 6), le16(b, 8));
    let mut found = Found::new(w, h);
    let mut at = 13 + color_table(b[10]);
    let mut frames = 0u64;
    // Cut short after complete frames, the decoder renders the first one: the walk stops at
    // the end of the bytes as at the trailer.
    while let Some(&block) = b.get(at) {
        at += 1;
        match block {
            0x2C => {
                let desc = b.get(at..at + 9).ok_or(Stop::Broken(TRUNCATED))?;
                let (x, y) = (u64::from(le16(desc, 0)), u64::from(le16(desc, 2)));
                let (fw, fh) = (u64::from(le16(desc, 4)), u64::from(le16(desc, 6)));
                frames += 1;
                walk.frames(frames)?;
                walk.reach(&mut found, x + fw, y + fh)?;
                at += 9 + color_table(desc[8]);
                let code_size = *b.get(at).ok_or(Stop::Broken(TRUNCATED))?;
                if !(1..=11).contains(&code_size) {
                    return Err(Stop::Broken("the GIF has an invalid LZW code size"));
                }
                at = sub_blocks(b, at + 1).ok_or(Stop::Broken(TRUNCATED))?;
            }
            0x21 => at = sub_blocks(b, at + 1).ok_or(Stop::Broken(TRUNCATED))?,
            0x3B => break,
            _ => return Err(Stop::Broken("the GIF has a corrupt block")),
        }
    }
    if frames == 0 {
        return Err(Stop::Broken("the GIF has no image"));
    }
    let (ew, eh) = found.extent;
    if found.width == 0 || found.height == 0 {
        // A zero logical screen: decoders use the frames' own size.
        found.width = found.width.max(ew);
        found.height = found.height.max(eh);
    }
    if found.width == 0 || found.height == 0 {
        return Err(Stop::Broken("the GIF declares a zero-sized image"));
    }
    found.frames = frames as u32;
    Ok(found)
}

/// Bytes of a colour table announced by a GIF flags byte.
fn color_table(flags: u8) -> usize {
    if flags & 0x80 != 0 {
        3 << ((flags & 7) + 1)
    } else {
        0
    }
}

/// The offset after a chain of GIF sub-blocks starting at `at` (the terminator included).
fn sub_blocks(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*b.get(at)?);
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
        if at > b.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests;
