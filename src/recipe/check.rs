//! Holding an untrusted recipe to its limits before anything is drawn.
//!
//! Every number is range-checked with its field path; every input a recipe names must be in
//! the request; and the whole recipe gets its cost [`estimate`](super::cost::estimate): upper
//! bounds on the pixel visits and the memory its drawing takes. A recipe over
//! [`RecipeLimits::max_cost`] canvas-sized passes, or whose drawing would hold more than
//! [`RecipeLimits::max_peak_canvases`] canvases' worth of pixels, is refused, so no recipe
//! renders at a cost far beyond its declared canvas.

use super::cost::{estimate, Shape};
use super::{
    invalid, Area, Canvas, Circle, Discs, Effects, Filter, Grid, Image, Layer, Paint, Recipe, Rect,
    Stop, Text,
};
use crate::config::Limits;
use crate::protocol::JobError;

/// Limits on what one recipe may ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeLimits {
    /// Most canvas pixels: the smaller of `max_output_pixels` and 16 777 216 (4096²).
    pub max_canvas_pixels: u64,
    /// Longest canvas side: `max_output_dimension`.
    pub max_canvas_side: u32,
    /// Most layers in all, counting grid cells and layers inside groups.
    pub max_layers: usize,
    /// Deepest nesting of groups.
    pub max_depth: usize,
    /// Most cells in one grid.
    pub max_grid_cells: usize,
    /// Most characters in one text layer.
    pub max_text_chars: usize,
    /// Most filters in one list.
    pub max_filters: usize,
    /// Largest blur radius (filters, shadows, glows), in pixels.
    pub max_blur: f32,
    /// Most discs in one `bokeh` or `stars` paint.
    pub max_discs: u32,
    /// Most pixel visits, in canvas-sized passes (see [`super::cost`]) of a canvas of at least
    /// one megapixel: a small canvas may still place a photo.
    pub max_cost: f64,
    /// Most pixel memory drawing may hold at once, in canvases (4 bytes a pixel); at least
    /// 64 MiB whatever the canvas.
    pub max_peak_canvases: f64,
}

/// The smallest canvas the visit budget is counted in (1 MP).
const BUDGET_FLOOR_PIXELS: f64 = 1_048_576.0;

impl RecipeLimits {
    /// Most pixel visits drawing a `width`×`height` canvas may take.
    pub fn visit_budget(&self, width: u32, height: u32) -> f64 {
        let canvas = f64::from(width) * f64::from(height);
        self.max_cost * canvas.max(BUDGET_FLOOR_PIXELS)
    }

    /// Most bytes of pixels drawing a `width`×`height` canvas may hold at once.
    pub fn peak_budget(&self, width: u32, height: u32) -> f64 {
        let canvas = f64::from(width) * f64::from(height);
        (self.max_peak_canvases * canvas * 4.0).max(64.0 * 1048576.0)
    }

    /// The limits that go with the worker's `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_canvas_pixels: limits.max_output_pixels.min(1 << 24),
            max_canvas_side: limits.max_output_dimension,
            max_layers: 64,
            max_depth: 4,
            max_grid_cells: 64,
            max_text_chars: 500,
            max_filters: 16,
            max_blur: 200.0,
            max_discs: 2000,
            max_cost: 160.0,
            max_peak_canvases: 24.0,
        }
    }
}

/// Checks `recipe` against `limits`; `inputs` are the request's inputs, by name.
pub fn check(
    recipe: &Recipe,
    inputs: &[(&str, Shape)],
    limits: &RecipeLimits,
) -> Result<(), JobError> {
    let names: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
    let c = Checker {
        limits,
        inputs: &names,
        size: (0.0, 0.0),
    };
    let size = c.canvas(&recipe.canvas)?;
    let c = Checker { size, ..c };
    if let Some(paint) = &recipe.canvas.background {
        c.paint("canvas.background", paint)?;
    }
    let mut count = 0;
    c.layers("layers", &recipe.layers, 1, &mut count)?;
    c.filters("filters", &recipe.filters)?;
    let shape = |name: &str| inputs.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    let spent = estimate(recipe, &shape);
    let (w, h) = (recipe.canvas.width, recipe.canvas.height);
    if spent.visits > limits.visit_budget(w, h) {
        return Err(invalid(
            "layers",
            format!(
                "the recipe would cost more than {:.0} canvas-sized passes \
                 (fewer or smaller layers, effects or filters)",
                limits.max_cost
            ),
        ));
    }
    if spent.peak_bytes as f64 > limits.peak_budget(w, h) {
        return Err(invalid(
            "layers",
            format!(
                "the recipe would hold more than {:.0} canvases of pixels at once \
                 (smaller layers, shadows, glows or blurs)",
                limits.max_peak_canvases
            ),
        ));
    }
    Ok(())
}

struct Checker<'a> {
    limits: &'a RecipeLimits,
    inputs: &'a [&'a str],
    /// Canvas width and height.
    size: (f32, f32),
}

fn range(path: &str, value: f32, lo: f32, hi: f32) -> Result<(), JobError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(invalid(path, format!("must be {lo} to {hi}")))
    }
}

fn count_range(path: &str, n: usize, lo: usize, hi: usize, what: &str) -> Result<(), JobError> {
    if (lo..=hi).contains(&n) {
        Ok(())
    } else {
        Err(invalid(path, format!("needs {lo} to {hi} {what}")))
    }
}

impl Checker<'_> {
    fn canvas(&self, canvas: &Canvas) -> Result<(f32, f32), JobError> {
        let side = self.limits.max_canvas_side;
        for (field, v) in [("width", canvas.width), ("height", canvas.height)] {
            if v == 0 || v > side {
                return Err(invalid(
                    &format!("canvas.{field}"),
                    format!("must be 1 to {side}"),
                ));
            }
        }
        let pixels = u64::from(canvas.width) * u64::from(canvas.height);
        if pixels > self.limits.max_canvas_pixels {
            return Err(invalid(
                "canvas",
                format!(
                    "has more pixels than the limit of {}",
                    self.limits.max_canvas_pixels
                ),
            ));
        }
        Ok((canvas.width as f32, canvas.height as f32))
    }

    fn area(&self, path: &str, a: &Area) -> Result<(), JobError> {
        let (w, h) = self.size;
        range(&format!("{path}.x"), a.x, -w, 2.0 * w)?;
        range(&format!("{path}.y"), a.y, -h, 2.0 * h)?;
        range(&format!("{path}.width"), a.width, 1.0, 2.0 * w)?;
        range(&format!("{path}.height"), a.height, 1.0, 2.0 * h)
    }

    fn input(&self, path: &str, name: &str) -> Result<(), JobError> {
        if self.inputs.contains(&name) {
            Ok(())
        } else {
            Err(invalid(path, "names no input of the request"))
        }
    }

    fn stops(&self, path: &str, stops: &[Stop]) -> Result<(), JobError> {
        count_range(path, stops.len(), 2, 16, "stops")?;
        let mut last = 0.0;
        for (i, s) in stops.iter().enumerate() {
            let p = format!("{path}[{i}].at");
            range(&p, s.at, 0.0, 1.0)?;
            if s.at < last {
                return Err(invalid(&p, "stops must be in increasing `at` order"));
            }
            last = s.at;
        }
        Ok(())
    }

    fn paint(&self, path: &str, paint: &Paint) -> Result<(), JobError> {
        match paint {
            Paint::Solid(_) => Ok(()),
            Paint::Linear(l) => {
                range(&format!("{path}.linear.angle"), l.angle, -360.0, 360.0)?;
                self.stops(&format!("{path}.linear.stops"), &l.stops)
            }
            Paint::Radial(r) => {
                let p = format!("{path}.radial");
                range(&format!("{p}.center[0]"), r.center[0], -1.0, 2.0)?;
                range(&format!("{p}.center[1]"), r.center[1], -1.0, 2.0)?;
                range(&format!("{p}.radius"), r.radius, 0.01, 4.0)?;
                self.stops(&format!("{p}.stops"), &r.stops)
            }
            Paint::Noise(n) => {
                let p = format!("{path}.noise");
                count_range(&format!("{p}.colors"), n.colors.len(), 2, 8, "colours")?;
                range(&format!("{p}.scale"), n.scale, 4.0, 4096.0)?;
                range(&format!("{p}.octaves"), n.octaves as f32, 1.0, 6.0)
            }
            Paint::Bokeh(d) => self.discs(&format!("{path}.bokeh"), d),
            Paint::Stars(d) => self.discs(&format!("{path}.stars"), d),
            Paint::Dots(d) => {
                let p = format!("{path}.dots");
                range(&format!("{p}.spacing"), d.spacing, 4.0, 1024.0)?;
                range(&format!("{p}.radius"), d.radius, 0.5, d.spacing / 2.0)
            }
            Paint::Stripes(s) => {
                let p = format!("{path}.stripes");
                range(&format!("{p}.spacing"), s.spacing, 4.0, 1024.0)?;
                range(&format!("{p}.width"), s.width, 0.5, s.spacing)?;
                range(&format!("{p}.angle"), s.angle, -360.0, 360.0)
            }
        }
    }

    fn discs(&self, path: &str, d: &Discs) -> Result<(), JobError> {
        count_range(&format!("{path}.colors"), d.colors.len(), 1, 8, "colours")?;
        if let Some(n) = d.count {
            let max = self.limits.max_discs;
            range(&format!("{path}.count"), n as f32, 0.0, max as f32)?;
        }
        for (field, v) in [("min_radius", d.min_radius), ("max_radius", d.max_radius)] {
            if let Some(v) = v {
                range(&format!("{path}.{field}"), v, 0.5, 256.0)?;
            }
        }
        if let (Some(lo), Some(hi)) = (d.min_radius, d.max_radius) {
            if lo > hi {
                return Err(invalid(
                    &format!("{path}.min_radius"),
                    "must not be larger than max_radius",
                ));
            }
        }
        if let Some(s) = d.softness {
            range(&format!("{path}.softness"), s, 0.0, 1.0)?;
        }
        Ok(())
    }

    fn layers(
        &self,
        path: &str,
        layers: &[Layer],
        depth: usize,
        count: &mut usize,
    ) -> Result<(), JobError> {
        for (i, layer) in layers.iter().enumerate() {
            let p = format!("{path}[{i}]");
            self.layer(&p, layer, depth, count)?;
            *count += match layer {
                Layer::Grid(g) => g.inputs.len().max(1),
                _ => 1,
            };
            if *count > self.limits.max_layers {
                return Err(invalid(
                    &p,
                    format!(
                        "more than {} layers in all (grid cells and grouped layers count)",
                        self.limits.max_layers
                    ),
                ));
            }
        }
        Ok(())
    }

    fn layer(
        &self,
        path: &str,
        layer: &Layer,
        depth: usize,
        count: &mut usize,
    ) -> Result<(), JobError> {
        match layer {
            Layer::Photo(img) => self.image(&format!("{path}.photo"), img),
            Layer::Sticker(img) => self.image(&format!("{path}.sticker"), img),
            Layer::Text(t) => self.text(&format!("{path}.text"), t),
            Layer::Rect(r) => self.rect(&format!("{path}.rect"), r),
            Layer::Circle(c) => self.circle(&format!("{path}.circle"), c),
            Layer::Grid(g) => self.grid(&format!("{path}.grid"), g),
            Layer::Group(g) => {
                let p = format!("{path}.group");
                if depth >= self.limits.max_depth {
                    return Err(invalid(
                        &p,
                        format!("groups nest at most {} deep", self.limits.max_depth - 1),
                    ));
                }
                self.effects(&p, &g.effects())?;
                self.layers(&format!("{p}.layers"), &g.layers, depth + 1, count)
            }
        }
    }

    fn effects(&self, path: &str, e: &Effects<'_>) -> Result<(), JobError> {
        range(&format!("{path}.opacity"), e.opacity, 0.0, 1.0)?;
        range(&format!("{path}.angle"), e.angle, -45.0, 45.0)?;
        let max_blur = self.limits.max_blur;
        if let Some(s) = e.shadow {
            range(&format!("{path}.shadow.dx"), s.dx, -512.0, 512.0)?;
            range(&format!("{path}.shadow.dy"), s.dy, -512.0, 512.0)?;
            range(&format!("{path}.shadow.blur"), s.blur, 0.0, max_blur)?;
        }
        if let Some(g) = e.glow {
            range(&format!("{path}.glow.blur"), g.blur, 0.0, max_blur)?;
        }
        self.filters(&format!("{path}.filters"), e.filters)
    }

    fn stroke(&self, path: &str, stroke: Option<&super::Stroke>) -> Result<(), JobError> {
        match stroke {
            Some(s) => range(&format!("{path}.width"), s.width, 0.5, 256.0),
            None => Ok(()),
        }
    }

    fn image(&self, path: &str, img: &Image) -> Result<(), JobError> {
        self.input(&format!("{path}.input"), &img.input)?;
        if let Some(a) = &img.area {
            self.area(&format!("{path}.box"), a)?;
        }
        if let Some([x, y]) = img.focal {
            range(&format!("{path}.focal[0]"), x, 0.0, 1.0)?;
            range(&format!("{path}.focal[1]"), y, 0.0, 1.0)?;
        }
        if let Some(c) = &img.crop {
            let p = format!("{path}.crop");
            range(&format!("{p}.x"), c.x, 0.0, 1e6)?;
            range(&format!("{p}.y"), c.y, 0.0, 1e6)?;
            range(&format!("{p}.width"), c.width, 1.0, 1e6)?;
            range(&format!("{p}.height"), c.height, 1.0, 1e6)?;
        }
        if !matches!(img.rotate, 0 | 90 | 180 | 270) {
            return Err(invalid(
                &format!("{path}.rotate"),
                "must be 0, 90, 180 or 270",
            ));
        }
        range(&format!("{path}.radius"), img.radius, 0.0, 4096.0)?;
        self.stroke(&format!("{path}.border"), img.border.as_ref())?;
        self.effects(path, &img.effects())
    }

    fn text(&self, path: &str, t: &Text) -> Result<(), JobError> {
        let chars = t.text.chars().count();
        let max = self.limits.max_text_chars;
        count_range(&format!("{path}.text"), chars, 1, max, "characters")?;
        if t.text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(invalid(
                &format!("{path}.text"),
                "control characters other than \\n are not allowed",
            ));
        }
        self.area(&format!("{path}.box"), &t.area)?;
        range(&format!("{path}.size"), t.size, 4.0, 512.0)?;
        range(&format!("{path}.line_height"), t.line_height, 0.5, 4.0)?;
        let spacing = &format!("{path}.letter_spacing");
        range(spacing, t.letter_spacing, -t.size / 2.0, t.size)?;
        range(&format!("{path}.max_lines"), t.max_lines as f32, 0.0, 100.0)?;
        if let Some(o) = &t.outline {
            range(&format!("{path}.outline.width"), o.width, 0.5, 16.0)?;
        }
        self.effects(path, &t.effects())
    }

    fn rect(&self, path: &str, r: &Rect) -> Result<(), JobError> {
        if let Some(a) = &r.area {
            self.area(&format!("{path}.box"), a)?;
        }
        range(&format!("{path}.radius"), r.radius, 0.0, 4096.0)?;
        if let Some(fill) = &r.fill {
            self.paint(&format!("{path}.fill"), fill)?;
        }
        self.stroke(&format!("{path}.stroke"), r.stroke.as_ref())?;
        self.effects(path, &r.effects())
    }

    fn circle(&self, path: &str, c: &Circle) -> Result<(), JobError> {
        let (w, h) = self.size;
        range(&format!("{path}.center[0]"), c.center[0], -w, 2.0 * w)?;
        range(&format!("{path}.center[1]"), c.center[1], -h, 2.0 * h)?;
        range(&format!("{path}.radius"), c.radius, 0.5, w.max(h))?;
        if let Some(fill) = &c.fill {
            self.paint(&format!("{path}.fill"), fill)?;
        }
        self.stroke(&format!("{path}.stroke"), c.stroke.as_ref())?;
        self.effects(path, &c.effects())
    }

    fn grid(&self, path: &str, g: &Grid) -> Result<(), JobError> {
        let max = self.limits.max_grid_cells;
        count_range(&format!("{path}.inputs"), g.inputs.len(), 1, max, "inputs")?;
        for (i, name) in g.inputs.iter().enumerate() {
            self.input(&format!("{path}.inputs[{i}]"), name)?;
        }
        if g.columns == 0 || g.columns as usize > max {
            return Err(invalid(
                &format!("{path}.columns"),
                format!("must be 1 to {max}"),
            ));
        }
        let needed = g.inputs.len().div_ceil(g.columns as usize);
        let rows = g.rows.map_or(needed, |r| r as usize);
        if rows < needed || rows * g.columns as usize > max {
            return Err(invalid(
                &format!("{path}.rows"),
                format!("must hold every input, in at most {max} cells"),
            ));
        }
        let area = g.area.unwrap_or_else(|| self.whole());
        if let Some(a) = &g.area {
            self.area(&format!("{path}.box"), a)?;
        }
        let (cw, ch) = cell_size(&area, g.columns as usize, rows, g.gap);
        if !g.gap.is_finite() || g.gap < 0.0 || cw < 1.0 || ch < 1.0 {
            return Err(invalid(
                &format!("{path}.gap"),
                "leaves cells smaller than 1x1 pixel",
            ));
        }
        range(&format!("{path}.radius"), g.radius, 0.0, 4096.0)?;
        self.stroke(&format!("{path}.border"), g.border.as_ref())?;
        self.effects(path, &g.effects())
    }

    fn filters(&self, path: &str, filters: &[Filter]) -> Result<(), JobError> {
        let max = self.limits.max_filters;
        count_range(path, filters.len(), 0, max, "filters")?;
        for (i, f) in filters.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let unit = |field: &str, name: &str, v: f32, lo: f32| {
                range(&format!("{p}.{name}.{field}"), v, lo, 1.0)
            };
            match f {
                Filter::Blur { radius } => range(
                    &format!("{p}.blur.radius"),
                    *radius,
                    0.0,
                    self.limits.max_blur,
                )?,
                Filter::Sharpen { amount, radius } => {
                    range(&format!("{p}.sharpen.amount"), *amount, 0.0, 5.0)?;
                    range(&format!("{p}.sharpen.radius"), *radius, 0.5, 50.0)?;
                }
                Filter::Brightness { amount } => unit("amount", "brightness", *amount, -1.0)?,
                Filter::Contrast { amount } => unit("amount", "contrast", *amount, -1.0)?,
                Filter::Saturation { amount } => unit("amount", "saturation", *amount, -1.0)?,
                Filter::Tint { amount, .. } => unit("amount", "tint", *amount, 0.0)?,
                Filter::Duotone { amount, .. } => unit("amount", "duotone", *amount, 0.0)?,
                Filter::Vignette { amount, size, .. } => {
                    unit("amount", "vignette", *amount, 0.0)?;
                    unit("size", "vignette", *size, 0.0)?;
                }
                Filter::Grain { amount, .. } => unit("amount", "grain", *amount, 0.0)?,
            }
        }
        Ok(())
    }

    fn whole(&self) -> Area {
        Area {
            x: 0.0,
            y: 0.0,
            width: self.size.0,
            height: self.size.1,
        }
    }
}

/// The size of one grid cell.
pub(crate) fn cell_size(area: &Area, columns: usize, rows: usize, gap: f32) -> (f32, f32) {
    let w = (area.width - gap * (columns as f32 - 1.0)) / columns as f32;
    let h = (area.height - gap * (rows as f32 - 1.0)) / rows as f32;
    (w, h)
}
