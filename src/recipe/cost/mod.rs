//! The recipe **cost model**: how many pixel visits and bytes drawing a recipe takes, computed
//! before anything is drawn, from the same geometry compose uses.
//!
//! Compose counts what it really does on the job's [`crate::wipe::Ledger`] (every pixel
//! buffer is a metered `SecretBuf`; every pass over pixels counts its visits with the
//! functions in [`visits`]). [`estimate`] predicts the same quantities as upper bounds:
//! each layer's raster at its largest (a photo fills at most its box), grown by its filters'
//! padding, turned, with its halo and shadow planes, and the resampling of each placed photo
//! at the scale it will be decoded. A test draws every element kind and adversarial mixes and
//! checks counted ≤ estimated, so the limits on the estimate are limits on the work.

use super::{Area, Discs, Effects, Filter, Grid, Image, Layer, Paint, Recipe, Text};

mod measure;

pub use measure::{
    circle_extent, filter_padding, paint_weight, rect_extent, rotated, soft_margin, text_extent,
    text_margin, visits, Extent,
};
use measure::{glyph_area, px};

/// Upper bounds on what drawing a recipe costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    /// Pixel visits.
    pub visits: f64,
    /// Bytes of pixel buffers held at once (decoded inputs not included).
    pub peak_bytes: u64,
    /// Bytes of pixel buffers allocated in all.
    pub allocated_bytes: f64,
}

/// What the estimate knows of an input: its stored size, and whether it can be decoded at a
/// reduced scale (JPEG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Stored width.
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// Decodable at 1/2, 1/4 or 1/8 scale.
    pub shrinkable: bool,
}

/// A running total: visits, bytes allocated, and the most bytes held beyond what was live
/// before (every allocation of a layer counted as live until the layer is drawn: an upper
/// bound of its real peak).
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    visits: f64,
    allocated: f64,
    peak: f64,
}

impl Cost {
    fn visit(&mut self, v: u64) {
        self.visits += v as f64;
    }

    /// A `w`×`h` buffer of `bytes_per_px`, zeroed when allocated.
    fn buffer(&mut self, w: u64, h: u64, bytes_per_px: u64) {
        let bytes = (w * h * bytes_per_px) as f64;
        self.allocated += bytes;
        self.peak += bytes;
        self.visit(visits::alloc(w, h));
    }

    /// Adds a nested cost whose own peak happens while `held` more bytes are live.
    fn nested(&mut self, inner: Cost, held: f64) {
        self.visits += inner.visits;
        self.allocated += inner.allocated;
        self.peak = self.peak.max(held + inner.peak);
    }
}

/// Estimates the cost of drawing `recipe`; `shapes` gives each input's stored size.
pub fn estimate(recipe: &Recipe, shapes: &dyn Fn(&str) -> Option<Shape>) -> Estimate {
    let (w, h) = (
        u64::from(recipe.canvas.width),
        u64::from(recipe.canvas.height),
    );
    let whole = super::whole_area(recipe);
    let canvas_bytes = (w * h * 4) as f64;
    let mut total = Cost::default();
    total.buffer(w, h, 4);
    if let Some(p) = &recipe.canvas.background {
        total.nested(paint_cost(p, w, h), canvas_bytes);
    }
    let placements = super::placements(recipe, whole);
    let scale = |name: &str| decode_scale(name, &placements, shapes);
    let layers = layers_cost(&recipe.layers, whole, (w, h), &scale, shapes);
    total.nested(layers, canvas_bytes);
    total.nested(filters_cost(&recipe.filters, w, h), canvas_bytes);
    // Back to straight alpha: an RGB copy when opaque, in place otherwise.
    let mut out = Cost::default();
    out.visit(2 * w * h);
    out.buffer(w, h, 3);
    total.nested(out, canvas_bytes);
    Estimate {
        visits: total.visits,
        peak_bytes: total.peak.ceil() as u64,
        allocated_bytes: total.allocated,
    }
}

/// The decoded size of input `name`: at the smallest 1/2ⁿ scale every placement of it allows
/// in either orientation (EXIF orientation is only known once decoded), full size otherwise.
fn decode_scale(
    name: &str,
    placements: &[super::Placement],
    shapes: &dyn Fn(&str) -> Option<Shape>,
) -> (u64, u64) {
    let Some(s) = shapes(name) else {
        return (0, 0);
    };
    let (sw, sh) = (u64::from(s.width), u64::from(s.height));
    if !s.shrinkable {
        return (sw, sh);
    }
    let need = placements
        .iter()
        .filter(|p| p.input == name)
        .flat_map(|p| {
            [(s.width, s.height), (s.height, s.width)].map(|full| super::scale_needed(p, full))
        })
        .fold(0.0f32, f32::max);
    let d = [8u64, 4, 2]
        .into_iter()
        .find(|&d| need * d as f32 <= 1.0)
        .unwrap_or(1);
    (sw.div_ceil(d), sh.div_ceil(d))
}

type Scale<'a> = &'a dyn Fn(&str) -> (u64, u64);

fn layers_cost(
    layers: &[Layer],
    whole: Area,
    canvas: (u64, u64),
    scale: Scale<'_>,
    shapes: &dyn Fn(&str) -> Option<Shape>,
) -> Cost {
    let mut total = Cost::default();
    for layer in layers {
        let c = layer_cost(layer, whole, canvas, scale, shapes);
        total.nested(c, 0.0);
    }
    total
}

fn layer_cost(
    layer: &Layer,
    whole: Area,
    canvas: (u64, u64),
    scale: Scale<'_>,
    shapes: &dyn Fn(&str) -> Option<Shape>,
) -> Cost {
    match layer {
        Layer::Photo(img) | Layer::Sticker(img) => {
            let area = img.area.unwrap_or(whole);
            let (mut c, w, h) = place_cost(img_placed(img, area), scale(&img.input));
            c.nested(
                finish_cost(w, h, &img.effects(), canvas),
                (w * h * 4) as f64,
            );
            c
        }
        Layer::Text(t) => {
            let (mut c, w, h) = text_cost(t);
            c.nested(finish_cost(w, h, &t.effects(), canvas), (w * h * 4) as f64);
            c
        }
        Layer::Rect(r) => {
            let e = rect_extent(r, whole);
            let (mut c, w, h) = shape_cost(e, r.fill.as_ref(), r.stroke.is_some());
            c.nested(finish_cost(w, h, &r.effects(), canvas), (w * h * 4) as f64);
            c
        }
        Layer::Circle(ci) => {
            let e = circle_extent(ci);
            let (mut c, w, h) = shape_cost(e, ci.fill.as_ref(), ci.stroke.is_some());
            c.nested(finish_cost(w, h, &ci.effects(), canvas), (w * h * 4) as f64);
            c
        }
        Layer::Grid(g) => grid_cost(g, whole, canvas, scale),
        Layer::Group(g) => {
            let (w, h) = canvas;
            let mut c = Cost::default();
            c.buffer(w, h, 4);
            let held = (w * h * 4) as f64;
            c.nested(layers_cost(&g.layers, whole, canvas, scale, shapes), held);
            c.nested(finish_cost(w, h, &g.effects(), canvas), held);
            c
        }
    }
}

/// What a placed picture's drawing needs: its box, and whether it is rounded or bordered.
struct Placed {
    area: Area,
    rounded: bool,
    bordered: bool,
    turned: bool,
}

fn img_placed(img: &Image, area: Area) -> Placed {
    Placed {
        area,
        rounded: img.radius > 0.0,
        bordered: img.border.is_some(),
        turned: img.rotate != 0,
    }
}

/// A picture resampled into its box: at most the box's size (contain shrinks one side).
fn place_cost(p: Placed, decoded: (u64, u64)) -> (Cost, u64, u64) {
    let (w, h) = (u64::from(px(p.area.width)), u64::from(px(p.area.height)));
    let mut c = Cost::default();
    // The resized picture (RGBA at most), its resampler's own rows, and the turned copy.
    c.buffer(w, h, 4);
    c.visit(visits::resize(decoded.0 * decoded.1, w * h));
    let scratch = (w.max(h) * decoded.1.max(decoded.0) * 16) as f64;
    c.peak += scratch;
    if p.turned {
        c.buffer(w, h, 4);
        c.visit(w * h);
    }
    // Premultiplied into a raster.
    c.buffer(w, h, 4);
    c.visit(w * h);
    if p.rounded {
        c.buffer(w, h, 1);
        c.visit(2 * w * h);
    }
    if p.bordered {
        c.buffer(w, h, 1);
        c.buffer(w, h, 1);
        c.buffer(w, h, 1);
        c.visit(4 * w * h);
    }
    (c, w, h)
}

fn text_cost(t: &Text) -> (Cost, u64, u64) {
    let e = text_extent(t);
    let (w, h) = (u64::from(e.w), u64::from(e.h));
    let mut c = Cost::default();
    c.buffer(w, h, 1);
    let glyphs = t.text.chars().count() as f64 + 1.0;
    c.visits += glyphs * glyph_area(t.size);
    c.buffer(w, h, 4);
    if let Some(o) = &t.outline {
        let r = o.width.ceil() as u64;
        c.buffer(w, h, 1);
        c.buffer(w, h, 1);
        c.visit(visits::dilate(w, h, r));
        c.buffer(w, h, 1);
        c.visit(visits::blur(w, h, 0.6));
        c.visit(w * h);
    }
    c.visit(w * h);
    (c, w, h)
}

/// A rect or circle: its raster, the coverage of its outline, the fill and the stroke.
fn shape_cost(e: Extent, fill: Option<&Paint>, stroked: bool) -> (Cost, u64, u64) {
    let (w, h) = (u64::from(e.w), u64::from(e.h));
    let mut c = Cost::default();
    c.buffer(w, h, 4);
    c.buffer(w, h, 1);
    c.visit(w * h);
    if let Some(p) = fill {
        c.nested(paint_cost(p, w, h), 0.0);
        c.visit(w * h);
    }
    if stroked {
        c.buffer(w, h, 1);
        c.buffer(w, h, 1);
        c.visit(3 * w * h);
    }
    (c, w, h)
}

fn grid_cost(g: &Grid, whole: Area, canvas: (u64, u64), scale: Scale<'_>) -> Cost {
    let mut total = Cost::default();
    for (k, cell) in super::grid_cells(g, whole).into_iter().enumerate() {
        let placed = Placed {
            area: cell,
            rounded: g.radius > 0.0,
            bordered: g.border.is_some(),
            turned: false,
        };
        let (mut c, w, h) = place_cost(placed, scale(&g.inputs[k]));
        c.nested(finish_cost(w, h, &g.effects(), canvas), (w * h * 4) as f64);
        total.nested(c, 0.0);
    }
    total
}

fn paint_cost(p: &Paint, w: u64, h: u64) -> Cost {
    let mut c = Cost::default();
    c.visit(visits::paint(paint_weight(p), w * h));
    if let Paint::Bokeh(d) | Paint::Stars(d) = p {
        c.visits += discs_visits(d, p, w * h);
    }
    c
}

/// Every disc's bounding box, clipped to the raster; stars draw a halo three times their size.
fn discs_visits(d: &Discs, kind: &Paint, area: u64) -> f64 {
    let (count, _, hi, _) = super::disc_defaults(d, kind);
    let boxed = |r: f32| {
        let side = f64::from(2.0 * r + 3.0);
        (side * side).min(area as f64)
    };
    let per = match kind {
        Paint::Stars(_) => boxed(3.0 * hi) + boxed(hi),
        _ => boxed(hi),
    };
    f64::from(count) * per
}

fn filters_cost(filters: &[Filter], w: u64, h: u64) -> Cost {
    let mut c = Cost::default();
    for f in filters {
        match f {
            Filter::Blur { radius } => {
                let mut step = Cost::default();
                step.buffer(w, h, 4);
                step.visit(visits::blur(w, h, *radius));
                c.nested(step, 0.0);
            }
            Filter::Sharpen { radius, .. } => {
                let mut step = Cost::default();
                step.buffer(w, h, 4);
                step.visit(w * h);
                step.buffer(w, h, 4);
                step.visit(visits::blur(w, h, *radius));
                step.visit(w * h);
                c.nested(step, 0.0);
            }
            _ => c.visit(w * h),
        }
    }
    c
}

/// Filters, rotation, glow and shadow of a `w`×`h` raster, and its blend onto the canvas.
fn finish_cost(w: u64, h: u64, e: &Effects<'_>, canvas: (u64, u64)) -> Cost {
    let mut c = Cost::default();
    let (mut w, mut h) = (w, h);
    if !e.filters.is_empty() {
        let m = u64::from(filter_padding(e.filters));
        if m > 0 {
            c.buffer(w + 2 * m, h + 2 * m, 4);
            c.visit(w * h);
            (w, h) = (w + 2 * m, h + 2 * m);
        }
        // The padded raster stays live while its filters run.
        c.nested(filters_cost(e.filters, w, h), c.peak);
    }
    if e.angle != 0.0 {
        let (rw, rh) = rotated(w as u32, h as u32, e.angle);
        let (rw, rh) = (u64::from(rw), u64::from(rh));
        c.buffer(rw, rh, 4);
        c.visit(visits::rotate(rw, rh));
        (w, h) = (rw, rh);
    }
    let (cw, ch) = canvas;
    for sigma in [e.glow.map(|g| g.blur), e.shadow.map(|s| s.blur)]
        .into_iter()
        .flatten()
    {
        let m = u64::from(soft_margin(sigma));
        let (pw, ph) = (w + 2 * m, h + 2 * m);
        c.buffer(pw, ph, 1);
        c.visit(w * h);
        c.buffer(pw, ph, 1);
        c.visit(visits::blur(pw, ph, sigma));
        c.buffer(pw, ph, 4);
        c.visit(pw * ph);
        c.visit((pw * ph).min(cw * ch));
    }
    c.visit((w * h).min(cw * ch));
    c
}
