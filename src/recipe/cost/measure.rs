//! The measures compose and the cost model share, so that what is estimated is what is drawn:
//! each element's extent and margins, filter padding, a turned box, and the visit counts of
//! every pass over pixels ([`visits`]).

use crate::recipe::{Area, Circle, Filter, Paint, Rect, Text};

/// The unit costs of compose's passes, shared by the counting code and the estimate.
pub mod visits {
    /// A new raster or plane: its pixels are zeroed and faulted in.
    pub fn alloc(w: u64, h: u64) -> u64 {
        w * h
    }

    /// The three box blurs of a Gaussian of `sigma` over `w`×`h` (running sums; each pass
    /// primes its window once per row or column).
    pub fn blur(w: u64, h: u64, sigma: f32) -> u64 {
        if sigma < 0.25 || w == 0 || h == 0 {
            return 0;
        }
        boxes(sigma)
            .iter()
            .map(|&b| (b as u64 - 1) / 2)
            .filter(|&r| r > 0)
            .map(|r| 3 * w * h + (w + h) * (2 * r + 1))
            .sum::<u64>()
            + w * h
    }

    /// A separable maximum filter of radius `r` (text outlines).
    pub fn dilate(w: u64, h: u64, r: u64) -> u64 {
        2 * w * h * (2 * r + 1)
    }

    /// Resampling a `src` region into `dst` pixels (Lanczos3: the source is read through the
    /// horizontal pass, every destination pixel through the vertical one).
    pub fn resize(src: u64, dst: u64) -> u64 {
        2 * src + 8 * dst
    }

    /// Rotating into `w`×`h` output pixels, four taps each.
    pub fn rotate(w: u64, h: u64) -> u64 {
        4 * w * h
    }

    /// Filling `area` pixels with a paint of this weight (see [`super::paint_weight`]).
    pub fn paint(weight: u64, area: u64) -> u64 {
        weight * area
    }

    /// Widths of the three boxes that approximate a Gaussian of standard deviation `sigma`
    /// (Wells / Kovesi "boxes for Gauss").
    pub fn boxes(sigma: f32) -> [usize; 3] {
        let n = 3.0f32;
        let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
        let mut wl = ideal.floor() as usize;
        if wl.is_multiple_of(2) {
            wl = wl.saturating_sub(1);
        }
        let wl = wl.max(1);
        let wu = wl + 2;
        let wlf = wl as f32;
        let m = ((12.0 * sigma * sigma - n * wlf * wlf - 4.0 * n * wlf - 3.0 * n)
            / (-4.0 * wlf - 4.0))
            .round()
            .clamp(0.0, 3.0) as usize;
        let mut out = [wu; 3];
        for w in out.iter_mut().take(m) {
            *w = wl;
        }
        out
    }
}

/// Visits per pixel of a paint's per-pixel loop (the fill to transparency included).
pub fn paint_weight(paint: &Paint) -> u64 {
    match paint {
        Paint::Solid(_) => 2,
        Paint::Linear(_) | Paint::Radial(_) | Paint::Dots(_) | Paint::Stripes(_) => 2,
        Paint::Noise(n) => 1 + u64::from(n.octaves.clamp(1, 6)),
        Paint::Bokeh(_) | Paint::Stars(_) => 1,
    }
}

/// A raster's place and size on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width (at least 1).
    pub w: u32,
    /// Height (at least 1).
    pub h: u32,
}

/// A rounded pixel count of a positive length, at least 1 (lengths are range-checked, so the
/// cast cannot overflow).
pub(super) fn px(v: f32) -> u32 {
    (v.round().max(0.0) as u32).max(1)
}

/// Where a rect layer's raster goes.
pub fn rect_extent(r: &Rect, whole: Area) -> Extent {
    let a = r.area.unwrap_or(whole);
    Extent {
        x: a.x.round() as i32,
        y: a.y.round() as i32,
        w: px(a.width),
        h: px(a.height),
    }
}

/// Where a circle layer's raster goes.
pub fn circle_extent(c: &Circle) -> Extent {
    let side = (2.0 * c.radius).ceil() as u32 + 3;
    Extent {
        x: (c.center[0] - c.radius).floor() as i32 - 1,
        y: (c.center[1] - c.radius).floor() as i32 - 1,
        w: side,
        h: side,
    }
}

/// The margin a text layer's raster has around its box (room for the outline).
pub fn text_margin(t: &Text) -> u32 {
    t.outline.map_or(0.0, |o| o.width).ceil() as u32 + 2
}

/// Where a text layer's raster goes.
pub fn text_extent(t: &Text) -> Extent {
    let m = text_margin(t);
    Extent {
        x: t.area.x.floor() as i32 - m as i32,
        y: t.area.y.floor() as i32 - m as i32,
        w: (t.area.width.ceil() as u32).max(1) + 2 * m,
        h: (t.area.height.ceil() as u32).max(1) + 2 * m,
    }
}

/// The transparent margin a layer's filters need around it: how far they spread its edge.
pub fn filter_padding(filters: &[Filter]) -> u32 {
    let spread: f32 = filters
        .iter()
        .map(|f| match f {
            Filter::Blur { radius } => 3.0 * radius,
            _ => 0.0,
        })
        .sum();
    spread.ceil() as u32
}

/// The margin of a shadow or glow plane blurred by `sigma`.
pub fn soft_margin(sigma: f32) -> u32 {
    (3.0 * sigma).ceil() as u32 + 2
}

/// The size of a `w`×`h` raster turned by `degrees`.
pub fn rotated(w: u32, h: u32, degrees: f32) -> (u32, u32) {
    let rad = degrees.to_radians();
    let (sin, cos) = (libm::sinf(rad).abs(), libm::cosf(rad).abs());
    let (wf, hf) = (w as f32, h as f32);
    (
        (wf * cos + hf * sin).ceil() as u32 + 2,
        (wf * sin + hf * cos).ceil() as u32 + 2,
    )
}

/// Most pixels one glyph's outline covers at text `size` (Inter's tallest glyphs with
/// accents reach about twice the line height; this bounds them).
pub(super) fn glyph_area(size: f32) -> f64 {
    let side = f64::from(size) * 1.25 * 2.0 + 2.0;
    side * side
}
