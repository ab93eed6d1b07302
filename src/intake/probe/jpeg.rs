//! JPEG: the marker walk — the frame header's size, every scan counted, ICC chunks summed —
//! skipping entropy-coded data byte by byte.

use super::{Found, Stop, Walk};

/// JPEG: every marker segment to EOI — the frame header, ICC chunks, and each scan (its
/// entropy-coded data skipped to the next marker).
pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<Found, Stop> {
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
