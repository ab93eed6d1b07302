//! Holding an untrusted recipe to its limits before anything is drawn.
//!
//! Every number is range-checked with its field path; every input a recipe names must be in
//! the request; and the whole recipe gets its cost [`estimate`](super::cost::estimate): upper
//! bounds on the pixel visits and the memory its drawing takes. A recipe over
//! [`RecipeLimits::max_cost`] canvas-sized passes, or whose drawing would hold more than
//! [`RecipeLimits::max_peak_canvases`] canvases' worth of pixels, is refused, so no recipe
//! renders at a cost far beyond its declared canvas.

mod layers;
mod paints;

use super::cost::{estimate, Shape};
use super::{invalid, Area, Canvas, Recipe};
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

    /// The limits for a worker whose outputs may have at most `max_output_pixels` pixels and
    /// `max_output_dimension` per side.
    pub fn new(max_output_pixels: u64, max_output_dimension: u32) -> Self {
        Self {
            max_canvas_pixels: max_output_pixels.min(1 << 24),
            max_canvas_side: max_output_dimension,
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
