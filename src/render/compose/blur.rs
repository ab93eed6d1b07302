//! Gaussian blur as three box blurs (Wells / Kovesi "boxes for Gauss"): each pass is a running
//! sum, so the cost per pixel does not depend on the radius. Integer sums, fixed order: the
//! same bytes on every machine.

use crate::recipe::cost::visits;
use crate::wipe::{Ledger, SecretBuf};

/// Blurs an interleaved image of `channels` bytes per pixel in place. Edges repeat the
/// outermost pixel (pad with transparency first to let a layer's edge soften).
/// The scratch plane is a ledgered buffer, and the passes' pixel visits are counted.
pub fn blur(
    buf: &mut [u8],
    width: usize,
    height: usize,
    channels: usize,
    sigma: f32,
    ledger: &Ledger,
) {
    if sigma < 0.25 || width == 0 || height == 0 {
        return;
    }
    let mut tmp = super::raster::plane(width, height, channels, "pixels.blur", ledger);
    for w in visits::boxes(sigma) {
        let r = (w - 1) / 2;
        if r == 0 {
            continue;
        }
        horizontal(buf, tmp.as_mut_slice(), width, height, channels, r);
        vertical(tmp.as_slice(), buf, width, height, channels, r);
    }
    ledger.visit(visits::blur(width as u64, height as u64, sigma));
    SecretBuf::wipe(tmp);
}

/// `(sum + d/2) / d` by a 32-bit reciprocal: exact enough, and integer.
#[inline]
fn scaled(sum: u32, inv: u64) -> u8 {
    ((u64::from(sum) * inv + (1 << 31)) >> 32).min(255) as u8
}

fn reciprocal(r: usize) -> u64 {
    (1u64 << 32) / (2 * r as u64 + 1)
}

fn horizontal(src: &[u8], dst: &mut [u8], w: usize, h: usize, ch: usize, r: usize) {
    let inv = reciprocal(r);
    let at = |row: &[u8], x: isize, c: usize| -> u32 {
        let x = x.clamp(0, w as isize - 1) as usize;
        u32::from(row[x * ch + c])
    };
    for y in 0..h {
        let row = &src[y * w * ch..(y + 1) * w * ch];
        let out = &mut dst[y * w * ch..(y + 1) * w * ch];
        for c in 0..ch {
            let mut sum: u32 = (-(r as isize)..=r as isize).map(|i| at(row, i, c)).sum();
            for x in 0..w {
                out[x * ch + c] = scaled(sum, inv);
                let add = at(row, x as isize + r as isize + 1, c);
                let sub = at(row, x as isize - r as isize, c);
                sum = sum + add - sub;
            }
        }
    }
}

fn vertical(src: &[u8], dst: &mut [u8], w: usize, h: usize, ch: usize, r: usize) {
    let inv = reciprocal(r);
    let stride = w * ch;
    let row = |y: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        &src[y * stride..(y + 1) * stride]
    };
    let mut sums = vec![0u32; stride];
    for i in -(r as isize)..=r as isize {
        for (s, &v) in sums.iter_mut().zip(row(i)) {
            *s += u32::from(v);
        }
    }
    for y in 0..h {
        let out = &mut dst[y * stride..(y + 1) * stride];
        for (o, &s) in out.iter_mut().zip(&sums) {
            *o = scaled(s, inv);
        }
        let add = row(y as isize + r as isize + 1);
        let sub = row(y as isize - r as isize);
        for ((s, &a), &b) in sums.iter_mut().zip(add).zip(sub) {
            *s = *s + u32::from(a) - u32::from(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boxes_match_the_requested_spread() {
        // Odd integer box widths cannot hit a small σ exactly; from σ 2.5 they are within 10%.
        for (sigma, tolerance) in [
            (1.0f32, 0.2),
            (2.5, 0.1),
            (8.0, 0.1),
            (40.0, 0.1),
            (200.0, 0.1),
        ] {
            // Variance of a box of width w is (w² − 1) / 12; three boxes add up.
            let var: f32 = visits::boxes(sigma)
                .iter()
                .map(|&w| ((w * w) as f32 - 1.0) / 12.0)
                .sum();
            let got = var.sqrt();
            assert!((got - sigma).abs() / sigma < tolerance, "σ {sigma} → {got}");
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_a_point_spreads_symmetrically() {
        let mut flat = vec![77u8; 20 * 10 * 4];
        blur(&mut flat, 20, 10, 4, 3.0, &Ledger::default());
        assert!(flat.iter().all(|&v| v == 77));

        let (w, h) = (41, 41);
        let mut plane = vec![0u8; w * h];
        for y in 15..26 {
            for x in 15..26 {
                plane[y * w + x] = 255;
            }
        }
        blur(&mut plane, w, h, 1, 2.0, &Ledger::default());
        assert_eq!(plane[20 * w + 14], plane[20 * w + 26], "left and right");
        assert_eq!(plane[14 * w + 20], plane[26 * w + 20], "top and bottom");
        assert!(plane[20 * w + 20] > 200 && plane[20 * w + 10] < plane[20 * w + 14]);
    }

    #[test]
    fn a_large_radius_costs_no_more_passes_than_a_small_one() {
        assert_eq!(visits::boxes(200.0).len(), visits::boxes(1.0).len());
        let mut plane = vec![0u8; 300 * 10];
        plane[150] = 255;
        blur(&mut plane, 300, 10, 1, 200.0, &Ledger::default());
    }
}
