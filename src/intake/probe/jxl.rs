//! JPEG XL: the codestream's `SizeHeader` and the orientation in its `ImageMetadata`, from a
//! bare codestream (`FF 0A`) or the container's `jxlc` / first `jxlp` box. The frame count is
//! not in the headers: the decoder's header pass counts frames (held to `max_frames`) before
//! any pixel is decoded.

use super::{be32, Found, Stop, Walk};

const TRUNCATED: &str = "the JPEG XL header is cut short (truncated)";

/// Reads bits least-significant first, as JPEG XL stores them.
struct Bits<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn u(&mut self, n: u32) -> Result<u64, Stop> {
        let mut v = 0u64;
        for i in 0..n {
            let byte = *self.b.get(self.at / 8).ok_or(Stop::Broken(TRUNCATED))?;
            v |= u64::from((byte >> (self.at % 8)) & 1) << i;
            self.at += 1;
        }
        Ok(v)
    }

    fn bool(&mut self) -> Result<bool, Stop> {
        Ok(self.u(1)? == 1)
    }

    /// A side of the SizeHeader: `U32(Bits(9)+1, Bits(13)+1, Bits(18)+1, Bits(30)+1)`.
    fn side(&mut self) -> Result<u64, Stop> {
        let bits = [9, 13, 18, 30][self.u(2)? as usize];
        Ok(self.u(bits)? + 1)
    }
}

/// The codestream inside a bare file or a container.
fn codestream(b: &[u8]) -> Result<&[u8], Stop> {
    if b.starts_with(&[0xFF, 0x0A]) {
        return Ok(&b[2..]);
    }
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let size = be32(b, at) as usize;
        let kind = &b[at + 4..at + 8];
        let (header, size) = match size {
            0 => (8, b.len() - at),
            1 => {
                if at + 16 > b.len() {
                    return Err(Stop::Broken(TRUNCATED));
                }
                let large = u64::from(be32(b, at + 8)) << 32 | u64::from(be32(b, at + 12));
                (
                    16,
                    usize::try_from(large).map_err(|_| Stop::Broken(TRUNCATED))?,
                )
            }
            s => (8, s),
        };
        if size < header || at + size > b.len() {
            return Err(Stop::Broken(
                "the JPEG XL container ends inside a box (truncated)",
            ));
        }
        let body = &b[at + header..at + size];
        match kind {
            b"jxlc" => return strip_signature(body),
            // Partial codestreams: a 4-byte index, then the bytes; the first holds the headers.
            b"jxlp" if body.len() >= 4 => return strip_signature(&body[4..]),
            _ => {}
        }
        at += size;
    }
    Err(Stop::Broken("the JPEG XL container holds no codestream"))
}

fn strip_signature(s: &[u8]) -> Result<&[u8], Stop> {
    s.strip_prefix(&[0xFF, 0x0A])
        .ok_or(Stop::Broken("the JPEG XL codestream has no signature"))
}

pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
    let mut r = Bits {
        b: codestream(b)?,
        at: 0,
    };
    let small = r.bool()?;
    let height = if small { (r.u(5)? + 1) * 8 } else { r.side()? };
    let ratio = r.u(3)?;
    let width = match ratio {
        0 if small => (r.u(5)? + 1) * 8,
        0 => r.side()?,
        1 => height,
        2 => height * 12 / 10,
        3 => height * 4 / 3,
        4 => height * 3 / 2,
        5 => height * 16 / 9,
        6 => height * 5 / 4,
        _ => height * 2,
    };
    // ImageMetadata: all_default, then extra_fields, whose first field is the orientation.
    let mut orientation = 1;
    if !r.bool()? && r.bool()? {
        orientation = r.u(3)? + 1;
    }
    let (w, h) = if orientation > 4 {
        (height, width)
    } else {
        (width, height)
    };
    let (w, h) = walk.area(w, h)?;
    Ok(Found::new(w, h))
}
