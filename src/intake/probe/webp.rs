//! WebP: the RIFF walk — the canvas of `VP8X`, the bitstream size of `VP8 `/`VP8L`, every
//! `ANMF` frame held to the canvas — and the ICC chunk's size.

use super::{le16, le24, le32, Found, Stop, Walk};

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
pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
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
