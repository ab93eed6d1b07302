//! Rasters: premultiplied 8-bit RGBA pixels placed at a position on the canvas, and the
//! integer arithmetic that blends them. Integer blending gives the same bytes on every machine.

use crate::recipe::cost::visits;
use crate::render::pixels::{Layout, Pixels};
use crate::wipe::{Ledger, SecretBuf};

/// A zeroed `w`×`h` plane of `channels` bytes per pixel (a coverage mask, a blur's scratch,
/// a shadow's alpha): a ledgered buffer, its allocation counted like a raster's.
pub fn plane(w: usize, h: usize, channels: usize, what: &str, ledger: &Ledger) -> SecretBuf {
    ledger.visit(visits::alloc(w as u64, h as u64));
    SecretBuf::zeroed(w * h * channels, what, ledger)
}

/// Premultiplied RGBA pixels with their top-left corner at (`x`, `y`) in canvas pixels.
#[derive(Debug)]
pub struct Raster {
    /// The pixels (layout `Rgba8`, premultiplied alpha).
    pub px: Pixels,
    /// Left edge on the canvas.
    pub x: i32,
    /// Top edge on the canvas.
    pub y: i32,
}

/// `v / 255`, rounded, for `v` up to 255 × 255 + 255.
#[inline]
pub fn div255(v: u32) -> u32 {
    let v = v + 128;
    (v + (v >> 8)) >> 8
}

/// Rounds and clamps a 0–255 float to a byte.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    // `as` saturates; adding 0.5 rounds (values are never negative here after the clamp).
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

impl Raster {
    /// A transparent raster.
    pub fn new(x: i32, y: i32, width: u32, height: u32, what: &str, ledger: &Ledger) -> Self {
        let px = Pixels::new(
            width.max(1),
            height.max(1),
            Layout::Rgba8,
            format!("pixels.{what}"),
            ledger,
        );
        Self { px, x, y }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.px.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.px.height
    }

    /// The pixel bytes.
    pub fn bytes(&self) -> &[u8] {
        self.px.buf.as_slice()
    }

    /// The pixel bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.px.buf.as_mut_slice()
    }

    /// The job's ledger (where this raster's work is counted).
    pub fn ledger(&self) -> &Ledger {
        self.px.buf.ledger()
    }

    fn visit_all(&self) {
        self.ledger()
            .visit(u64::from(self.width()) * u64::from(self.height()));
    }

    /// Draws `src` over this raster, scaled by `opacity` (0–1), where they overlap.
    pub fn draw(&mut self, src: &Raster, opacity: f32) {
        let op = (opacity.clamp(0.0, 1.0) * 255.0 + 0.5) as u32;
        if op == 0 {
            return;
        }
        let (dw, dh) = (self.width() as i32, self.height() as i32);
        let (sw, sh) = (src.width() as i32, src.height() as i32);
        let (ox, oy) = (src.x - self.x, src.y - self.y);
        let x0 = ox.max(0);
        let x1 = (ox + sw).min(dw);
        let y0 = oy.max(0);
        let y1 = (oy + sh).min(dh);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        self.ledger().visit((x1 - x0) as u64 * (y1 - y0) as u64);
        let n = (x1 - x0) as usize * 4;
        let dst_stride = dw as usize * 4;
        let src_stride = sw as usize * 4;
        let from = src.bytes();
        let to = self.bytes_mut();
        for y in y0..y1 {
            let d = y as usize * dst_stride + x0 as usize * 4;
            let s = (y - oy) as usize * src_stride + (x0 - ox) as usize * 4;
            over_row(&mut to[d..d + n], &from[s..s + n], op);
        }
    }

    /// Multiplies every pixel by a coverage value (0–255) from `mask`, one byte per pixel.
    pub fn mask(&mut self, mask: &[u8]) {
        self.visit_all();
        for (px, &m) in self.bytes_mut().chunks_exact_mut(4).zip(mask) {
            if m != 255 {
                let m = u32::from(m);
                for c in px {
                    *c = div255(u32::from(*c) * m) as u8;
                }
            }
        }
    }

    /// Draws a solid `color` (premultiplied 0–255 floats) over this raster through `coverage`.
    pub fn fill_coverage(&mut self, coverage: &[u8], color: [f32; 4]) {
        self.visit_all();
        let c = color.map(to_u8);
        let src = u32::from(c[3]);
        if src == 0 {
            return;
        }
        for (px, &m) in self.bytes_mut().chunks_exact_mut(4).zip(coverage) {
            if m == 0 {
                continue;
            }
            let m = u32::from(m);
            let a = div255(src * m);
            let keep = 255 - a;
            for (i, v) in px.iter_mut().enumerate() {
                let s = div255(u32::from(c[i]) * m);
                *v = (s + div255(u32::from(*v) * keep)).min(255) as u8;
            }
        }
    }

    /// The alpha channel as a plane, with `margin` transparent pixels on every side.
    pub fn alpha_plane(&self, margin: u32) -> (SecretBuf, u32, u32) {
        let (w, h) = (self.width(), self.height());
        let (pw, ph) = (w + 2 * margin, h + 2 * margin);
        let mut out = plane(pw as usize, ph as usize, 1, "pixels.alpha", self.ledger());
        self.visit_all();
        let plane = out.as_mut_slice();
        for (y, row) in self.bytes().chunks_exact(w as usize * 4).enumerate() {
            let start = (y + margin as usize) * pw as usize + margin as usize;
            for (d, px) in plane[start..start + w as usize]
                .iter_mut()
                .zip(row.chunks_exact(4))
            {
                *d = px[3];
            }
        }
        (out, pw, ph)
    }

    /// A copy grown by `margin` transparent pixels on every side (for effects that spread).
    pub fn padded(&self, margin: u32, ledger: &Ledger) -> Raster {
        let m = margin as i32;
        let (w, h) = (self.width(), self.height());
        let mut out = Raster::new(
            self.x - m,
            self.y - m,
            w + 2 * margin,
            h + 2 * margin,
            "layer.padded",
            ledger,
        );
        out.draw(self, 1.0);
        out
    }

    /// Whether every pixel is fully opaque.
    pub fn is_opaque(&self) -> bool {
        self.bytes().chunks_exact(4).all(|p| p[3] == 255)
    }
}

/// One row of source-over: `dst = src·op + dst·(1 − src_alpha·op)`.
#[inline]
fn over_row(dst: &mut [u8], src: &[u8], op: u32) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
        let sa = s[3];
        if sa == 0 {
            continue;
        }
        if sa == 255 && op == 255 {
            d.copy_from_slice(s);
            continue;
        }
        let a = if op == 255 {
            u32::from(sa)
        } else {
            div255(u32::from(sa) * op)
        };
        let keep = 255 - a;
        for i in 0..4 {
            let sc = if op == 255 {
                u32::from(s[i])
            } else {
                div255(u32::from(s[i]) * op)
            };
            d[i] = (sc + div255(u32::from(d[i]) * keep)).min(255) as u8;
        }
    }
}

/// Premultiplied RGBA → straight RGBA, or RGB when fully opaque.
pub fn unpremultiply(raster: Raster, ledger: &Ledger) -> Pixels {
    raster.visit_all();
    raster.visit_all();
    let opaque = raster.is_opaque();
    let (w, h) = (raster.width(), raster.height());
    if opaque {
        let mut out = Pixels::new(w, h, Layout::Rgb8, "pixels.canvas".into(), ledger);
        for (d, s) in out
            .buf
            .as_mut_slice()
            .chunks_exact_mut(3)
            .zip(raster.bytes().chunks_exact(4))
        {
            d.copy_from_slice(&s[..3]);
        }
        return out;
    }
    let mut px = raster.px;
    for p in px.buf.as_mut_slice().chunks_exact_mut(4) {
        let a = u32::from(p[3]);
        if a != 0 && a != 255 {
            for c in &mut p[..3] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    px
}

/// Straight pixels of any layout → a premultiplied raster at (`x`, `y`).
pub fn premultiply(src: &Pixels, x: i32, y: i32, ledger: &Ledger) -> Raster {
    let mut out = Raster::new(x, y, src.width, src.height, "layer.photo", ledger);
    out.visit_all();
    let to = out.bytes_mut();
    let from = src.buf.as_slice();
    match src.layout {
        Layout::L8 => {
            for (d, &v) in to.chunks_exact_mut(4).zip(from) {
                d.copy_from_slice(&[v, v, v, 255]);
            }
        }
        Layout::Rgb8 => {
            for (d, s) in to.chunks_exact_mut(4).zip(from.chunks_exact(3)) {
                d.copy_from_slice(&[s[0], s[1], s[2], 255]);
            }
        }
        Layout::Rgba8 => {
            for (d, s) in to.chunks_exact_mut(4).zip(from.chunks_exact(4)) {
                let a = u32::from(s[3]);
                for i in 0..3 {
                    d[i] = div255(u32::from(s[i]) * a) as u8;
                }
                d[3] = s[3];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(w: u32, h: u32, px: [u8; 4], ledger: &Ledger) -> Raster {
        let mut r = Raster::new(0, 0, w, h, "test", ledger);
        for p in r.bytes_mut().chunks_exact_mut(4) {
            p.copy_from_slice(&px);
        }
        r
    }

    #[test]
    fn div255_rounds_like_the_exact_division() {
        for v in 0..=(255 * 255) {
            assert_eq!(div255(v), (v as f64 / 255.0).round() as u32, "{v}");
        }
    }

    #[test]
    fn half_transparent_red_over_blue_mixes() {
        let ledger = Ledger::default();
        let mut dst = raster(2, 2, [0, 0, 255, 255], &ledger);
        let src = raster(2, 2, [128, 0, 0, 128], &ledger);
        dst.draw(&src, 1.0);
        assert_eq!(&dst.bytes()[..4], &[128, 0, 127, 255]);
    }

    #[test]
    fn drawing_clips_to_the_overlap() {
        let ledger = Ledger::default();
        let mut dst = raster(4, 4, [0, 0, 0, 0], &ledger);
        let mut src = raster(4, 4, [255, 255, 255, 255], &ledger);
        src.x = 3;
        src.y = -3;
        dst.draw(&src, 1.0);
        let opaque: Vec<usize> = dst
            .bytes()
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, p)| p[3] == 255)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(opaque, vec![3]);
    }

    #[test]
    fn premultiplying_and_back_keeps_colours() {
        let ledger = Ledger::default();
        let mut straight = Pixels::new(1, 1, Layout::Rgba8, "t".into(), &ledger);
        straight
            .buf
            .as_mut_slice()
            .copy_from_slice(&[200, 100, 50, 128]);
        let back = unpremultiply(premultiply(&straight, 0, 0, &ledger), &ledger);
        let got = back.buf.as_slice();
        for (g, w) in got.iter().zip([200u8, 100, 50, 128]) {
            assert!(g.abs_diff(w) <= 1, "{got:?}");
        }
    }
}
