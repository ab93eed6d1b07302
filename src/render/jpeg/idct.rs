//! The scaled inverse DCT and the colour conversion.
//!
//! A block decoded at 1/s scale gives `n = 8/s` samples per axis from its lowest `n`
//! frequencies: the continuous inverse transform evaluated at the centre of each `s`-wide bin,
//! which is what libjpeg's reduced-size transforms compute. Components stored at a lower
//! resolution (chroma in 4:2:0) use a larger `n`, so that every plane comes out at the image's
//! decoded size and no upsampling pass is needed.

/// Zig-zag index → natural (row-major) index.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The highest zig-zag index among the lowest `w`×`h` frequencies.
pub fn max_zigzag(w: usize, h: usize) -> usize {
    let mut max = 0;
    for v in 0..h {
        for u in 0..w {
            max = max.max(UNZIGZAG[v * 8 + u]);
        }
    }
    max
}

/// The basis for an `n`-point output: `basis[x][u]`.
fn basis(n: usize) -> [[f32; 8]; 8] {
    let mut t = [[0f32; 8]; 8];
    for (x, row) in t.iter_mut().enumerate().take(n) {
        for (u, b) in row.iter_mut().enumerate().take(n) {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            let angle = (2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / (2 * n) as f64;
            *b = (0.5 * c * angle.cos()) as f32;
        }
    }
    t
}

/// Natural (row-major) index → zig-zag index.
const UNZIGZAG: [usize; 64] = {
    let mut t = [0usize; 64];
    let mut k = 0;
    while k < 64 {
        t[ZIGZAG[k]] = k;
        k += 1;
    }
    t
};

/// Turns a block's stored coefficients into `w`×`h` samples.
pub struct Idct {
    w: usize,
    h: usize,
    bw: [[f32; 8]; 8],
    bh: [[f32; 8]; 8],
}

/// One block's samples, `out` starting at the block's first sample.
type BlockFn = fn(&Idct, &[i16], &[u16; 64], &mut [u8], usize);

impl Idct {
    /// A transform to `w`×`h` samples per block (each 1, 2, 4 or 8).
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            bw: basis(w),
            bh: basis(h),
        }
    }

    #[cfg(test)]
    /// Writes the samples of the block with coefficients `coef` (zig-zag order, quantised, at
    /// least [`max_zigzag`]`(w, h) + 1` of them) and quantisation table `q` (zig-zag order)
    /// into `out` at `(x0, y0)`, rows `stride` apart.
    pub fn block(
        &self,
        coef: &[i16],
        q: &[u16; 64],
        out: &mut [u8],
        stride: usize,
        x0: usize,
        y0: usize,
    ) {
        (self.kernel())(self, coef, q, &mut out[y0 * stride + x0..], stride);
    }

    /// The transform for this block size, with its loops unrolled.
    pub fn kernel(&self) -> BlockFn {
        macro_rules! pick {
            ($($w:literal x $h:literal),*) => {
                match (self.w, self.h) {
                    $(($w, $h) => Self::sized::<$w, $h>,)*
                    _ => Self::sized::<8, 8>,
                }
            };
        }
        pick!(1 x 1, 1 x 2, 1 x 4, 1 x 8, 2 x 1, 2 x 2, 2 x 4, 2 x 8,
              4 x 1, 4 x 2, 4 x 4, 4 x 8, 8 x 1, 8 x 2, 8 x 4, 8 x 8)
    }

    // Fixed-size loops over W and H unroll; iterators would hide the indices they share.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    fn sized<const W: usize, const H: usize>(
        &self,
        coef: &[i16],
        q: &[u16; 64],
        out: &mut [u8],
        stride: usize,
    ) {
        if W == 1 && H == 1 {
            out[0] = sample(f32::from(coef[0]) * f32::from(q[0]) / 8.0);
            return;
        }
        // Dequantised frequencies of the W×H corner.
        let mut f = [[0f32; W]; H];
        let mut rows = [false; H];
        for v in 0..H {
            for u in 0..W {
                let z = UNZIGZAG[v * 8 + u];
                let c = coef[z];
                if c != 0 {
                    f[v][u] = f32::from(c) * f32::from(q[z]);
                    rows[v] = true;
                }
            }
        }
        // Horizontal pass per frequency row (skipping empty rows), then vertical.
        let mut tmp = [[0f32; W]; H];
        for v in 0..H {
            if !rows[v] {
                continue;
            }
            for x in 0..W {
                let mut acc = 0f32;
                for u in 0..W {
                    acc += self.bw[x][u] * f[v][u];
                }
                tmp[v][x] = acc;
            }
        }
        for y in 0..H {
            let row = &mut out[y * stride..][..W];
            for x in 0..W {
                let mut acc = 0f32;
                for v in 0..H {
                    acc += self.bh[y][v] * tmp[v][x];
                }
                row[x] = sample(acc);
            }
        }
    }
}

#[inline]
fn sample(v: f32) -> u8 {
    (v + 128.5).clamp(0.0, 255.0) as u8
}

/// YCbCr (JFIF, full range) → RGB, row by row: `width`×`height` pixels from planes `stride`
/// wide into `rgb`.
pub fn ycbcr_to_rgb(
    planes: [&[u8]; 3],
    stride: usize,
    width: usize,
    height: usize,
    rgb: &mut [u8],
) {
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for y in 0..height {
        let row = &mut rgb[y * width * 3..][..width * 3];
        let [py, pb, pr] = planes.map(|p| &p[y * stride..][..width]);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let yy = i32::from(py[x]);
            let cb = i32::from(pb[x]) - 128;
            let cr = i32::from(pr[x]) - 128;
            px[0] = clamp(yy + ((91_881 * cr + 32_768) >> 16));
            px[1] = clamp(yy + ((-22_554 * cb - 46_802 * cr + 32_768) >> 16));
            px[2] = clamp(yy + ((116_130 * cb + 32_768) >> 16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_block_gives_its_mean_at_every_scale() {
        let q = [1u16; 64];
        let mut coef = [0i16; 64];
        coef[0] = 8 * 40; // mean 40 above mid-grey
        for n in [1, 2, 4, 8] {
            let mut out = [0u8; 64];
            Idct::new(n, n).block(&coef, &q, &mut out, 8, 0, 0);
            for y in 0..n {
                assert!(out[y * 8..y * 8 + n].iter().all(|&p| p == 168), "n = {n}");
            }
        }
    }

    #[test]
    fn a_horizontal_ramp_keeps_its_direction_when_shrunk() {
        let q = [1u16; 64];
        let mut coef = [0i16; 64];
        coef[0] = 0;
        coef[1] = -100; // the first horizontal frequency, negative: dark left, light right
        let mut out = [0u8; 64];
        Idct::new(2, 2).block(&coef, &q, &mut out, 8, 0, 0);
        assert!(out[0] < out[1] && out[8] < out[9]);
        assert_eq!(out[0], out[8]);
        assert_eq!(max_zigzag(2, 2), 4);
        assert_eq!(max_zigzag(4, 4), 24);
        assert_eq!(max_zigzag(8, 8), 63);
        assert_eq!(max_zigzag(4, 2), 13);
    }
}
