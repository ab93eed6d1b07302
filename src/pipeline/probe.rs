//! Reading what an input *claims* to be — format, dimensions, frame count — from its header,
//! without decoding a single pixel. Intake checks limits against this before any decoder runs.

use crate::protocol::{ErrorCode, JobError};
use std::io::{BufRead, Cursor, Read, Seek};

/// Formats this worker decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The format, from magic bytes.
    pub format: InputFormat,
    /// Declared width.
    pub width: u32,
    /// Declared height.
    pub height: u32,
    /// Declared frame count (1 for still images).
    pub frames: u32,
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
    let other = image::guess_format(head).ok().map(|f| format!("{f:?}"));
    let isobmff = head.get(4..8) == Some(b"ftyp");
    match (other, isobmff) {
        (Some(f), _) => JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!("input `{name}` is {f}; supported: JPEG, PNG, WebP, GIF"),
        ),
        (None, true) => JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!(
                "input `{name}` is an ISO-BMFF image (HEIC/AVIF); supported: JPEG, PNG, WebP, GIF"
            ),
        ),
        (None, false) => JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}` is not a recognised image (unknown signature)"),
        ),
    }
}

/// Reads the header of an input held in memory.
pub fn probe_bytes(bytes: &[u8], name: &str) -> Result<Header, JobError> {
    let format = sniff(bytes, name)?;
    let (width, height) = dimensions(Cursor::new(bytes), format, name)?;
    let frames = frame_count(bytes, format).map_err(|why| truncated(name, why))?;
    if format == InputFormat::Jpeg && !jpeg_is_complete(bytes) {
        // JPEG decoders fill a cut-off scan with grey and carry on; a download cut short must
        // be reported, not rendered half grey.
        return Err(truncated(
            name,
            "JPEG ends before its end-of-image marker (truncated)",
        ));
    }
    Ok(Header {
        format,
        width,
        height,
        frames,
    })
}

fn dimensions<R: BufRead + Seek>(
    reader: R,
    format: InputFormat,
    name: &str,
) -> Result<(u32, u32), JobError> {
    let (w, h) = image::ImageReader::with_format(reader, format.image_format())
        .into_dimensions()
        .map_err(|e| {
            // A header whose numbers alone exceed the codec's own memory limit is a bomb.
            let code = match e {
                image::ImageError::Limits(_) => ErrorCode::LimitsPixels,
                _ => ErrorCode::InputUndecodable,
            };
            JobError::new(
                code,
                format!("input `{name}`: unreadable {format:?} header ({e})"),
            )
        })?;
    if w == 0 || h == 0 {
        return Err(JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}` declares a zero-sized image ({w}x{h})"),
        ));
    }
    Ok((w, h))
}

fn truncated(name: &str, why: &str) -> JobError {
    JobError::new(
        ErrorCode::InputUndecodable,
        format!("input `{name}`: {why}"),
    )
}

/// Counts frames by walking the container's blocks (no decompression).
fn frame_count(bytes: &[u8], format: InputFormat) -> Result<u32, &'static str> {
    match format {
        InputFormat::Jpeg => Ok(1),
        InputFormat::Png => png_frames(bytes),
        InputFormat::WebP => webp_frames(bytes),
        InputFormat::Gif => gif_frames(bytes),
    }
}

/// Whether the JPEG's image data is followed by an EOI marker. Entropy-coded data never holds
/// `FF D9` (0xFF bytes are stuffed as `FF 00`), so the first EOI after the first start-of-scan
/// ends the primary image; data appended after it (MPF previews, maker trailers) is allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        at += 2 + len;
        if marker == 0xDA {
            return at <= bytes.len() && bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
    }
    false
}

fn png_frames(bytes: &[u8]) -> Result<u32, &'static str> {
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        match kind {
            b"acTL" if at + 12 <= bytes.len() => {
                return Ok(u32::from_be_bytes(
                    bytes[at + 8..at + 12].try_into().unwrap(),
                ));
            }
            b"IDAT" | b"IEND" => return Ok(1),
            _ => {}
        }
        at = at
            .checked_add(12 + len)
            .ok_or("PNG chunk length overflows")?;
    }
    Ok(1)
}

fn webp_frames(bytes: &[u8]) -> Result<u32, &'static str> {
    let mut at = 12;
    let mut frames = 0u32;
    let mut animated = false;
    while at + 8 <= bytes.len() {
        let kind = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        match kind {
            b"ANIM" => animated = true,
            b"ANMF" => frames = frames.saturating_add(1),
            _ => {}
        }
        at = at
            .checked_add(8 + len + (len & 1))
            .ok_or("WebP chunk length overflows")?;
    }
    Ok(if animated { frames.max(1) } else { 1 })
}

fn gif_frames(bytes: &[u8]) -> Result<u32, &'static str> {
    let mut r = Cursor::new(bytes);
    let mut screen = [0u8; 13];
    r.read_exact(&mut screen)
        .map_err(|_| "truncated GIF header")?;
    if screen[10] & 0x80 != 0 {
        skip(&mut r, 3 << ((screen[10] & 7) + 1))?;
    }
    let mut frames = 0u32;
    loop {
        match byte(&mut r) {
            Ok(0x2C) => {
                let mut desc = [0u8; 9];
                r.read_exact(&mut desc).map_err(|_| "truncated GIF frame")?;
                if desc[8] & 0x80 != 0 {
                    skip(&mut r, 3 << ((desc[8] & 7) + 1))?;
                }
                byte(&mut r)?; // LZW minimum code size
                skip_sub_blocks(&mut r)?;
                frames = frames.saturating_add(1);
            }
            Ok(0x21) => {
                byte(&mut r)?; // extension label
                skip_sub_blocks(&mut r)?;
            }
            // The trailer, or a file cut short after at least the header: count what was seen.
            Ok(0x3B) | Err(_) => return Ok(frames.max(1)),
            Ok(_) => return Err("corrupt GIF block"),
        }
    }
}

fn byte(r: &mut Cursor<&[u8]>) -> Result<u8, &'static str> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(|_| "truncated GIF")?;
    Ok(b[0])
}

fn skip(r: &mut Cursor<&[u8]>, n: u64) -> Result<(), &'static str> {
    let to = r.position() + n;
    if to > r.get_ref().len() as u64 {
        return Err("truncated GIF");
    }
    r.set_position(to);
    Ok(())
}

fn skip_sub_blocks(r: &mut Cursor<&[u8]>) -> Result<(), &'static str> {
    loop {
        let len = byte(r)?;
        if len == 0 {
            return Ok(());
        }
        skip(r, u64::from(len))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bmp_is_named_as_unsupported_not_undecodable() {
        let err = sniff(b"BM\x00\x00\x00\x00\x00\x00\x00\x00", "photo").unwrap_err();
        assert_eq!(err.code, ErrorCode::InputUnsupportedFormat);
    }

    #[test]
    fn random_text_is_undecodable() {
        let err = sniff(b"hello, this is not an image", "photo").unwrap_err();
        assert_eq!(err.code, ErrorCode::InputUndecodable);
    }

    #[test]
    fn a_heic_file_is_unsupported() {
        let err = sniff(b"\0\0\0\x18ftypheic\0\0\0\0", "photo").unwrap_err();
        assert_eq!(err.code, ErrorCode::InputUnsupportedFormat);
    }

    #[test]
    fn a_png_header_is_read_without_decoding() {
        let mut png = Vec::new();
        image::RgbImage::new(7, 3)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let h = probe_bytes(&png, "p").unwrap();
        assert_eq!(
            (h.format, h.width, h.height, h.frames),
            (InputFormat::Png, 7, 3, 1)
        );
    }

    #[test]
    fn a_jpeg_cut_short_is_reported_and_a_whole_one_is_not() {
        let whole = crate::samples::jpeg(&crate::samples::figure_photo(64, 48, 1), 90);
        assert!(jpeg_is_complete(&whole));
        assert!(!jpeg_is_complete(&whole[..whole.len() - 40]));
        let mut trailer = whole.clone();
        trailer.extend_from_slice(b"appended maker data");
        assert!(jpeg_is_complete(&trailer));
    }

    #[test]
    fn gif_frames_are_counted_from_blocks() {
        let mut gif = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
            for _ in 0..3 {
                let frame = image::Frame::new(image::RgbaImage::new(4, 4));
                enc.encode_frame(frame).unwrap();
            }
        }
        assert_eq!(gif_frames(&gif), Ok(3));
    }
}
