//! PNG: the chunk walk (IHDR first, every chunk's length checked, APNG frames and their
//! sizes counted) and the ICC profile's inflated size, capped while it inflates.

use super::{be32, Found, Stop, Walk};

/// PNG: IHDR first, then every chunk to IEND (APNG frame controls, the ICC profile).
pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
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
