//! Checking layers: each kind's fields, their effects, nesting depth and counts.

use super::{cell_size, count_range, range, Checker};

use crate::protocol::JobError;
use crate::recipe::{invalid, Circle, Effects, Grid, Image, Layer, Rect, Text};

impl Checker<'_> {
    pub(super) fn layers(
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

    pub(super) fn layer(
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

    pub(super) fn effects(&self, path: &str, e: &Effects<'_>) -> Result<(), JobError> {
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

    pub(super) fn stroke(
        &self,
        path: &str,
        stroke: Option<&crate::recipe::Stroke>,
    ) -> Result<(), JobError> {
        match stroke {
            Some(s) => range(&format!("{path}.width"), s.width, 0.5, 256.0),
            None => Ok(()),
        }
    }

    pub(super) fn image(&self, path: &str, img: &Image) -> Result<(), JobError> {
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

    pub(super) fn text(&self, path: &str, t: &Text) -> Result<(), JobError> {
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

    pub(super) fn rect(&self, path: &str, r: &Rect) -> Result<(), JobError> {
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

    pub(super) fn circle(&self, path: &str, c: &Circle) -> Result<(), JobError> {
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

    pub(super) fn grid(&self, path: &str, g: &Grid) -> Result<(), JobError> {
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
}
