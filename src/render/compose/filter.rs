//! Filters over a raster: blur, sharpen, and per-pixel colour adjustments.
//!
//! Colour filters work on straight (un-premultiplied) colour with plain float arithmetic, pixel
//! by pixel in a fixed order; the result does not depend on threads or CPU features.

use super::blur::blur;
use super::paint::hash2;
use super::raster::{to_u8, Raster};
use crate::recipe::{Color, Filter};

/// Luma weights (Rec. 709) of straight 0–1 colour.
fn luma(c: [f32; 3]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

/// Applies `filters` in order. `seed` seeds grain that does not give its own.
pub fn apply(r: &mut Raster, filters: &[Filter], seed: u64) {
    for (i, f) in filters.iter().enumerate() {
        apply_one(r, f, seed.wrapping_add(i as u64));
    }
}

fn apply_one(r: &mut Raster, f: &Filter, seed: u64) {
    let (w, h) = (r.width() as usize, r.height() as usize);
    let ledger = r.ledger().clone();
    match *f {
        Filter::Blur { radius } => blur(r.bytes_mut(), w, h, 4, radius, &ledger),
        Filter::Sharpen { amount, radius } => {
            let mut soft = super::raster::plane(w, h, 4, "pixels.sharpen", &ledger);
            soft.copy_from_slice(r.bytes());
            ledger.visit((w * h) as u64);
            blur(&mut soft, w, h, 4, radius, &ledger);
            ledger.visit((w * h) as u64);
            for (p, s) in r.bytes_mut().chunks_exact_mut(4).zip(soft.chunks_exact(4)) {
                for i in 0..3 {
                    let v = f32::from(p[i]);
                    p[i] = to_u8(v + amount * (v - f32::from(s[i]))).min(p[3]);
                }
            }
        }
        Filter::Brightness { amount } => map(r, |c, _, _| c.map(|v| v * (1.0 + amount))),
        Filter::Contrast { amount } => {
            map(r, |c, _, _| c.map(|v| (v - 0.5) * (1.0 + amount) + 0.5))
        }
        Filter::Saturation { amount } => map(r, |c, _, _| {
            let l = luma(c);
            c.map(|v| l + (v - l) * (1.0 + amount))
        }),
        Filter::Tint { color, amount } => {
            let t = unit(color);
            map(r, |c, _, _| {
                let l = luma(c);
                let mut out = c;
                for i in 0..3 {
                    out[i] = c[i] + (t[i] * l * 1.5 - c[i]) * amount;
                }
                out
            })
        }
        Filter::Duotone {
            dark,
            light,
            amount,
        } => {
            let (d, l) = (unit(dark), unit(light));
            map(r, |c, _, _| {
                let y = luma(c);
                let mut out = c;
                for i in 0..3 {
                    let tone = d[i] + (l[i] - d[i]) * y;
                    out[i] = c[i] + (tone - c[i]) * amount;
                }
                out
            })
        }
        Filter::Vignette {
            amount,
            size,
            color,
        } => {
            let v = unit(color);
            let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
            let corner = (cx * cx + cy * cy).sqrt().max(1.0);
            map(r, |c, x, y| {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let d = (dx * dx + dy * dy).sqrt() / corner;
                let t = ((d - size) / (1.0 - size).max(0.001)).clamp(0.0, 1.0);
                let k = t * t * (3.0 - 2.0 * t) * amount;
                let mut out = c;
                for i in 0..3 {
                    out[i] = c[i] + (v[i] - c[i]) * k;
                }
                out
            })
        }
        Filter::Grain { amount, seed: own } => {
            let seed = own.unwrap_or(seed);
            map(r, |c, x, y| {
                let n = (hash2(seed, x as i64, y as i64) - 0.5) * amount * 0.5;
                c.map(|v| v + n)
            })
        }
    }
}

fn unit(c: Color) -> [f32; 3] {
    [0, 1, 2].map(|i| f32::from(c.0[i]) / 255.0)
}

/// Runs `op` on every visible pixel's straight colour (0–1), keeping alpha.
fn map(r: &mut Raster, op: impl Fn([f32; 3], usize, usize) -> [f32; 3]) {
    let w = r.width() as usize;
    r.ledger()
        .visit(u64::from(r.width()) * u64::from(r.height()));
    for (i, p) in r.bytes_mut().chunks_exact_mut(4).enumerate() {
        let a = p[3];
        if a == 0 {
            continue;
        }
        let af = f32::from(a);
        let straight = [0, 1, 2].map(|k| f32::from(p[k]) / af);
        let out = op(straight, i % w, i / w);
        for k in 0..3 {
            p[k] = to_u8(out[k].clamp(0.0, 1.0) * af);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wipe::Ledger;

    fn solid(c: [u8; 4]) -> Raster {
        let mut r = Raster::new(0, 0, 16, 16, "test", &Ledger::default());
        for p in r.bytes_mut().chunks_exact_mut(4) {
            p.copy_from_slice(&c);
        }
        r
    }

    fn first(r: &Raster) -> [u8; 4] {
        r.bytes()[..4].try_into().unwrap()
    }

    fn run(c: [u8; 4], f: Filter) -> [u8; 4] {
        let mut r = solid(c);
        apply(&mut r, &[f], 1);
        first(&r)
    }

    #[test]
    fn brightness_contrast_and_saturation_move_colours_the_right_way() {
        let grey = [100, 100, 100, 255];
        assert!(run(grey, Filter::Brightness { amount: 0.5 })[0] > 140);
        assert!(run(grey, Filter::Brightness { amount: -0.5 })[0] < 60);
        assert!(run(grey, Filter::Contrast { amount: 0.5 })[0] < 100);
        assert!(run([200, 200, 200, 255], Filter::Contrast { amount: 0.5 })[0] > 200);
        let grey_red = run([200, 50, 50, 255], Filter::Saturation { amount: -1.0 });
        assert!(grey_red[0].abs_diff(grey_red[1]) <= 1, "{grey_red:?}");
        assert_eq!(run(grey, Filter::Saturation { amount: 0.0 }), grey);
    }

    #[test]
    fn duotone_maps_black_and_white_to_its_colours() {
        let duotone = Filter::Duotone {
            dark: Color([10, 20, 80, 255]),
            light: Color([250, 220, 180, 255]),
            amount: 1.0,
        };
        assert_eq!(run([0, 0, 0, 255], duotone.clone()), [10, 20, 80, 255]);
        assert_eq!(run([255, 255, 255, 255], duotone), [250, 220, 180, 255]);
    }

    #[test]
    fn a_vignette_darkens_corners_and_spares_the_centre() {
        let mut r = solid([200, 200, 200, 255]);
        let v = Filter::Vignette {
            amount: 1.0,
            size: 0.3,
            color: Color([0, 0, 0, 255]),
        };
        apply(&mut r, &[v], 0);
        let centre = r.bytes()[(8 * 16 + 8) * 4];
        assert!(
            first(&r)[0] < 60 && centre == 200,
            "{} {centre}",
            first(&r)[0]
        );
    }

    #[test]
    fn grain_is_seeded() {
        let g = |seed| Filter::Grain {
            amount: 0.3,
            seed: Some(seed),
        };
        let (mut a, mut b, mut c) = (solid([128; 4]), solid([128; 4]), solid([128; 4]));
        apply(&mut a, &[g(1)], 0);
        apply(&mut b, &[g(1)], 0);
        apply(&mut c, &[g(2)], 0);
        assert_eq!(a.bytes(), b.bytes());
        assert_ne!(a.bytes(), c.bytes());
        assert_ne!(a.bytes(), solid([128; 4]).bytes());
    }

    #[test]
    fn transparent_pixels_stay_transparent_and_colour_never_exceeds_alpha() {
        for f in [
            Filter::Brightness { amount: 1.0 },
            Filter::Sharpen {
                amount: 5.0,
                radius: 2.0,
            },
            Filter::Tint {
                color: Color([255, 0, 0, 255]),
                amount: 1.0,
            },
        ] {
            let mut r = solid([60, 60, 60, 100]);
            r.bytes_mut()[..4].copy_from_slice(&[0, 0, 0, 0]);
            apply(&mut r, &[f], 0);
            for p in r.bytes().chunks_exact(4) {
                assert!(p[..3].iter().all(|&c| c <= p[3]), "{p:?}");
            }
        }
        let mut clear = solid([0, 0, 0, 0]);
        apply(&mut clear, &[Filter::Brightness { amount: 1.0 }], 0);
        assert!(clear.bytes().iter().all(|&b| b == 0));
    }
}
