//! Paints (solid, gradients, noise, discs, patterns) and anti-aliased shape coverage.
//!
//! Every procedural paint draws from a seeded SplitMix64 stream or an integer hash of its
//! seed and pixel position, and uses only `+ − × ÷`, `sqrt` and the pure-Rust `libm`
//! functions: the same recipe gives the same bytes on every machine. Gradients are dithered
//! with a 4×4 Bayer matrix, so deep midnight blues do not band.

use super::raster::{plane, to_u8, Raster};
use crate::recipe::cost::{paint_weight, visits};
use crate::recipe::{disc_defaults, Color, Discs, Paint, Stop};
use crate::wipe::{Ledger, SecretBuf};

/// SplitMix64: a tiny, well-known, seedable generator.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// SplitMix64's finaliser: a good 64-bit integer hash.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a seed and a lattice point, as a float in [0, 1).
pub fn hash2(seed: u64, x: i64, y: i64) -> f32 {
    let h = mix(seed ^ mix((x as u64).wrapping_mul(0x9E37_79B9) ^ (y as u64) << 32));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

const BAYER: [[f32; 4]; 4] = [
    [0.0, 8.0, 2.0, 10.0],
    [12.0, 4.0, 14.0, 6.0],
    [3.0, 11.0, 1.0, 9.0],
    [15.0, 7.0, 13.0, 5.0],
];

/// Dither offset in (−0.5, 0.5) for pixel (x, y).
#[inline]
fn dither(x: usize, y: usize) -> f32 {
    (BAYER[y & 3][x & 3] + 0.5) / 16.0 - 0.5
}

/// Writes a premultiplied 0–255 float colour to a pixel, dithered, keeping colour ≤ alpha.
#[inline]
fn put(px: &mut [u8], c: [f32; 4], x: usize, y: usize) {
    let d = dither(x, y);
    let a = to_u8(c[3] + d);
    for i in 0..3 {
        px[i] = to_u8(c[i] + d).min(a);
    }
    px[3] = a;
}

/// Colour of a list of stops at `t` (premultiplied interpolation, like CSS).
fn at_stops(stops: &[(f32, [f32; 4])], t: f32) -> [f32; 4] {
    let first = stops[0];
    if t <= first.0 {
        return first.1;
    }
    for pair in stops.windows(2) {
        let ((t0, c0), (t1, c1)) = (pair[0], pair[1]);
        if t <= t1 {
            let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
            let mut out = [0.0; 4];
            for i in 0..4 {
                out[i] = c0[i] + (c1[i] - c0[i]) * f;
            }
            return out;
        }
    }
    stops[stops.len() - 1].1
}

fn premultiplied_stops(stops: &[Stop]) -> Vec<(f32, [f32; 4])> {
    stops
        .iter()
        .map(|s| (s.at, s.color.premultiplied(1.0)))
        .collect()
}

fn even_stops(colors: &[Color]) -> Vec<(f32, [f32; 4])> {
    let n = (colors.len().max(2) - 1) as f32;
    colors
        .iter()
        .enumerate()
        .map(|(i, c)| (i as f32 / n, c.premultiplied(1.0)))
        .collect()
}

/// Fills the whole raster with `paint` (replacing what was there). The paint's geometry is
/// relative to the raster: a gradient spans it, a pattern starts at its corner.
pub fn fill(r: &mut Raster, paint: &Paint, seed: u64) {
    let (w, h) = (r.width() as usize, r.height() as usize);
    r.ledger()
        .visit(visits::paint(paint_weight(paint), (w * h) as u64));
    let (wf, hf) = (w as f32, h as f32);
    let px = r.bytes_mut();
    px.fill(0);
    match paint {
        Paint::Solid(c) => {
            let c = c.premultiplied(1.0).map(to_u8);
            for p in px.chunks_exact_mut(4) {
                p.copy_from_slice(&[c[0].min(c[3]), c[1].min(c[3]), c[2].min(c[3]), c[3]]);
            }
        }
        Paint::Linear(l) => {
            let stops = premultiplied_stops(&l.stops);
            let rad = l.angle.to_radians();
            let (dx, dy) = (libm::sinf(rad), -libm::cosf(rad));
            let len = (wf * dx).abs() + (hf * dy).abs();
            let len = if len > 0.0 { len } else { 1.0 };
            for (i, p) in px.chunks_exact_mut(4).enumerate() {
                let (x, y) = (i % w, i / w);
                let (fx, fy) = (x as f32 + 0.5 - wf / 2.0, y as f32 + 0.5 - hf / 2.0);
                let t = (fx * dx + fy * dy) / len + 0.5;
                put(p, at_stops(&stops, t), x, y);
            }
        }
        Paint::Radial(rg) => {
            let stops = premultiplied_stops(&rg.stops);
            let (cx, cy) = (rg.center[0] * wf, rg.center[1] * hf);
            let radius = (rg.radius * wf.max(hf)).max(1.0);
            for (i, p) in px.chunks_exact_mut(4).enumerate() {
                let (x, y) = (i % w, i / w);
                let (fx, fy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let t = (fx * fx + fy * fy).sqrt() / radius;
                put(p, at_stops(&stops, t), x, y);
            }
        }
        Paint::Noise(n) => {
            let stops = even_stops(&n.colors);
            let seed = n.seed.unwrap_or(seed);
            let octaves = n.octaves.clamp(1, 6);
            for (i, p) in px.chunks_exact_mut(4).enumerate() {
                let (x, y) = (i % w, i / w);
                let v = fbm(seed, x as f32 / n.scale, y as f32 / n.scale, octaves);
                let t = ((v - 0.5) * 1.8 + 0.5).clamp(0.0, 1.0);
                put(p, at_stops(&stops, t), x, y);
            }
        }
        Paint::Bokeh(d) | Paint::Stars(d) => discs(r, d, paint, seed),
        Paint::Dots(d) => {
            let c = d.color.premultiplied(1.0);
            let s = d.spacing;
            for (i, p) in px.chunks_exact_mut(4).enumerate() {
                let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
                let (lx, ly) = (x.rem_euclid(s) - s / 2.0, y.rem_euclid(s) - s / 2.0);
                let cov = (d.radius - (lx * lx + ly * ly).sqrt() + 0.5).clamp(0.0, 1.0);
                if cov > 0.0 {
                    put(p, c.map(|v| v * cov), i % w, i / w);
                }
            }
        }
        Paint::Stripes(st) => {
            let c = st.color.premultiplied(1.0);
            let rad = st.angle.to_radians();
            let (cs, sn) = (libm::cosf(rad), libm::sinf(rad));
            for (i, p) in px.chunks_exact_mut(4).enumerate() {
                let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
                let u = (x * cs + y * sn).rem_euclid(st.spacing);
                let cov = ((u + 0.5).min(st.width - u + 0.5)).clamp(0.0, 1.0);
                if cov > 0.0 {
                    put(p, c.map(|v| v * cov), i % w, i / w);
                }
            }
        }
    }
}

/// Smooth value noise: bilinear between hashed lattice values with a smoothstep.
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (ix, iy) = (x0 as i64, y0 as i64);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let a = hash2(seed, ix, iy);
    let b = hash2(seed, ix + 1, iy);
    let c = hash2(seed, ix, iy + 1);
    let d = hash2(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal sum of `octaves` noises, each twice as fine and half as strong, in [0, 1]. Each
/// octave's lattice is turned (by about 34°) and shifted against the last, which hides the
/// square grid that plain value noise shows.
fn fbm(seed: u64, x: f32, y: f32, octaves: u32) -> f32 {
    const COS: f32 = 0.825_335_6;
    const SIN: f32 = 0.564_642_5;
    let (mut sum, mut weight, mut total) = (0.0, 1.0, 0.0);
    let (mut x, mut y) = (x, y);
    for o in 0..octaves {
        sum += value_noise(mix(seed.wrapping_add(u64::from(o))), x, y) * weight;
        total += weight;
        weight *= 0.5;
        (x, y) = (
            2.0 * (x * COS - y * SIN) + 17.3,
            2.0 * (x * SIN + y * COS) + 5.9,
        );
    }
    sum / total
}

fn discs(r: &mut Raster, d: &Discs, kind: &Paint, seed: u64) {
    let (count, lo, hi, softness) = disc_defaults(d, kind);
    let stars = matches!(kind, Paint::Stars(_));
    let mut rng = Rng::new(d.seed.unwrap_or(seed));
    let (w, h) = (r.width() as f32, r.height() as f32);
    for _ in 0..count {
        let (x, y) = (rng.unit() * w, rng.unit() * h);
        let radius = lo + (hi - lo) * rng.unit();
        let color = d.colors[(rng.next_u64() % d.colors.len() as u64) as usize];
        let strength = if stars {
            0.55 + 0.45 * rng.unit()
        } else {
            0.25 + 0.55 * rng.unit()
        };
        if stars {
            // A faint halo three times the star's size, then the sharp point.
            disc(
                r,
                x,
                y,
                radius * 3.0,
                1.0,
                color.premultiplied(strength * 0.18),
            );
        }
        disc(r, x, y, radius, softness, color.premultiplied(strength));
    }
}

/// Draws one soft disc over the raster.
fn disc(r: &mut Raster, cx: f32, cy: f32, radius: f32, softness: f32, c: [f32; 4]) {
    let (w, h) = (r.width() as i64, r.height() as i64);
    let x0 = ((cx - radius).floor() as i64).max(0);
    let x1 = ((cx + radius).ceil() as i64).min(w - 1);
    let y0 = ((cy - radius).floor() as i64).max(0);
    let y1 = ((cy + radius).ceil() as i64).min(h - 1);
    let edge = (radius * softness).max(0.75);
    if x1 >= x0 && y1 >= y0 {
        r.ledger().visit(((x1 - x0 + 1) * (y1 - y0 + 1)) as u64);
    }
    let px = r.bytes_mut();
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (fx, fy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let t = ((radius - (fx * fx + fy * fy).sqrt()) / edge).clamp(0.0, 1.0);
            if t <= 0.0 {
                continue;
            }
            let cov = t * t * (3.0 - 2.0 * t);
            let i = (y * w + x) as usize * 4;
            let p = &mut px[i..i + 4];
            let keep = 1.0 - c[3] * cov / 255.0;
            for k in 0..4 {
                p[k] = to_u8(c[k] * cov + f32::from(p[k]) * keep);
            }
        }
    }
}

/// Coverage (0–255) of a rounded rectangle filling a `w`×`h` plane, inset by `inset` pixels,
/// with corner radius `radius` (shrunk by the inset). Signed distance, one pixel of
/// anti-aliasing.
pub fn rounded_rect(w: usize, h: usize, radius: f32, inset: f32, ledger: &Ledger) -> SecretBuf {
    let (hw, hh) = (w as f32 / 2.0 - inset, h as f32 / 2.0 - inset);
    let r = (radius - inset).clamp(0.0, hw.min(hh).max(0.0));
    let mut out = plane(w, h, 1, "pixels.mask", ledger);
    ledger.visit((w * h) as u64);
    for (i, o) in out.as_mut_slice().iter_mut().enumerate() {
        let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
        let qx = (x - w as f32 / 2.0).abs() - (hw - r);
        let qy = (y - h as f32 / 2.0).abs() - (hh - r);
        let outside = (qx.max(0.0) * qx.max(0.0) + qy.max(0.0) * qy.max(0.0)).sqrt();
        let d = outside + qx.max(qy).min(0.0) - r;
        *o = to_u8((0.5 - d).clamp(0.0, 1.0) * 255.0);
    }
    out
}

/// Coverage of a circle of `radius` inset by `inset`, centred in a `w`×`h` plane at
/// (`cx`, `cy`).
pub fn circle(
    (w, h): (usize, usize),
    (cx, cy): (f32, f32),
    radius: f32,
    inset: f32,
    ledger: &Ledger,
) -> SecretBuf {
    let r = radius - inset;
    let mut out = plane(w, h, 1, "pixels.mask", ledger);
    ledger.visit((w * h) as u64);
    for (i, o) in out.as_mut_slice().iter_mut().enumerate() {
        let (x, y) = ((i % w) as f32 + 0.5 - cx, (i / w) as f32 + 0.5 - cy);
        let d = (x * x + y * y).sqrt() - r;
        *o = to_u8((0.5 - d).clamp(0.0, 1.0) * 255.0);
    }
    out
}

/// `outer` minus `inner`: the ring between two coverages (a stroke drawn inside an edge).
pub fn ring(outer: &SecretBuf, inner: &SecretBuf, ledger: &Ledger) -> SecretBuf {
    let mut out = plane(outer.len(), 1, 1, "pixels.mask", ledger);
    ledger.visit(outer.len() as u64);
    for ((d, &o), &i) in out
        .as_mut_slice()
        .iter_mut()
        .zip(outer.as_slice())
        .zip(inner.as_slice())
    {
        *d = o.saturating_sub(i);
    }
    out
}

#[cfg(test)]
mod tests;
