//! GIF: the block walk — the logical screen, every image descriptor held to it, colour tables
//! and sub-blocks skipped by their lengths.

use super::{le16, Found, Stop, Walk};

/// GIF: the logical screen, then every block — each image descriptor's own size and position
/// is a frame the decoder will allocate for.
pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
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
