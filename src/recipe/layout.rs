//! Where a recipe puts its pictures: every placement of every input (grids expanded to one per
//! cell), the cells of a grid, and how much of an input's full scale a placement needs. Pure
//! geometry, shared by the cost model and compose.

use super::{Area, Fit, Gravity, Image, Layer, Recipe, Stroke};

/// One use of an input: the box it fills and how.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Field path, for errors.
    pub path: String,
    /// The input's name.
    pub input: String,
    /// The box.
    pub area: Area,
    /// Fit mode.
    pub fit: Fit,
    /// Anchor.
    pub gravity: Gravity,
    /// Focal point (fractions of the cropped, turned picture).
    pub focal: Option<[f32; 2]>,
    /// Crop in full-scale displayed pixels.
    pub crop: Option<Area>,
    /// Quarter turns clockwise, in degrees.
    pub rotate: u32,
    /// Corner radius.
    pub radius: f32,
    /// Border.
    pub border: Option<Stroke>,
}

/// Where a `photo` (or, with `sticker`, a `sticker`) layer puts its picture.
pub fn image_placement(img: &Image, sticker: bool, canvas: Area, path: String) -> Placement {
    Placement {
        path,
        input: img.input.clone(),
        area: img.area.unwrap_or(canvas),
        fit: img
            .fit
            .unwrap_or(if sticker { Fit::Contain } else { Fit::Cover }),
        gravity: img.gravity,
        focal: img.focal,
        crop: img.crop,
        rotate: img.rotate,
        radius: img.radius,
        border: img.border,
    }
}

/// Every placement of every input in `recipe`.
pub fn placements(recipe: &Recipe, canvas: Area) -> Vec<Placement> {
    let mut out = Vec::new();
    placements_in(&recipe.layers, canvas, "layers", &mut out);
    out
}

/// Every placement of every input in `layers` (grids expand to one per cell).
pub fn placements_in(layers: &[Layer], canvas: Area, path: &str, out: &mut Vec<Placement>) {
    for (i, layer) in layers.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match layer {
            Layer::Photo(img) => {
                out.push(image_placement(img, false, canvas, format!("{p}.photo")))
            }
            Layer::Sticker(img) => {
                out.push(image_placement(img, true, canvas, format!("{p}.sticker")))
            }
            Layer::Grid(g) => {
                for (k, cell) in grid_cells(g, canvas).into_iter().enumerate() {
                    out.push(Placement {
                        path: format!("{p}.grid.inputs[{k}]"),
                        input: g.inputs[k].clone(),
                        area: cell,
                        fit: g.fit,
                        gravity: g.gravity,
                        focal: None,
                        crop: None,
                        rotate: 0,
                        radius: g.radius,
                        border: g.border,
                    });
                }
            }
            Layer::Group(g) => placements_in(&g.layers, canvas, &format!("{p}.group.layers"), out),
            Layer::Text(_) | Layer::Rect(_) | Layer::Circle(_) => {}
        }
    }
}

/// The boxes of a grid's cells, row by row.
pub fn grid_cells(g: &super::Grid, canvas: Area) -> Vec<Area> {
    let area = g.area.unwrap_or(canvas);
    let (cols, rows) = g.shape();
    let (cw, ch) = super::cell_size(&area, cols, rows, g.gap);
    (0..g.inputs.len())
        .map(|k| Area {
            x: area.x + (k % cols) as f32 * (cw + g.gap),
            y: area.y + (k / cols) as f32 * (ch + g.gap),
            width: cw,
            height: ch,
        })
        .collect()
}

/// How much of the source's full scale a placement needs: the box's size over the region's.
pub fn scale_needed(p: &Placement, full: (u32, u32)) -> f32 {
    let (cw, ch) = p
        .crop
        .map_or((full.0 as f32, full.1 as f32), |c| (c.width, c.height));
    let (rw, rh) = if p.rotate % 180 == 90 {
        (ch, cw)
    } else {
        (cw, ch)
    };
    let (sx, sy) = (p.area.width / rw, p.area.height / rh);
    match p.fit {
        Fit::Contain => sx.min(sy),
        Fit::Cover | Fit::Fill => sx.max(sy),
    }
}

/// The canvas as an area.
pub fn whole_area(recipe: &Recipe) -> Area {
    Area {
        x: 0.0,
        y: 0.0,
        width: recipe.canvas.width as f32,
        height: recipe.canvas.height as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_fill_rows_with_gaps() {
        let grid: super::super::Grid = serde_json::from_value(serde_json::json!({
            "inputs": ["a", "b", "c"], "columns": 2, "gap": 10,
            "box": {"x": 0, "y": 0, "width": 210, "height": 110}
        }))
        .unwrap();
        let canvas = Area {
            x: 0.0,
            y: 0.0,
            width: 300.0,
            height: 300.0,
        };
        let cells = grid_cells(&grid, canvas);
        let xywh: Vec<(f32, f32, f32, f32)> = cells
            .iter()
            .map(|c| (c.x, c.y, c.width, c.height))
            .collect();
        assert_eq!(
            xywh,
            vec![
                (0.0, 0.0, 100.0, 50.0),
                (110.0, 0.0, 100.0, 50.0),
                (0.0, 60.0, 100.0, 50.0)
            ]
        );
    }

    #[test]
    fn the_decode_scale_follows_the_largest_placement() {
        let p = |w: f32, fit: Fit, crop: Option<Area>| Placement {
            path: String::new(),
            input: "a".into(),
            area: Area {
                x: 0.0,
                y: 0.0,
                width: w,
                height: w,
            },
            fit,
            gravity: Gravity::Center,
            focal: None,
            crop,
            rotate: 0,
            radius: 0.0,
            border: None,
        };
        // Cover of a 4000×3000 photo in a 600 box: 3000 rows → 600 needs 1/5 of full scale.
        assert!((scale_needed(&p(600.0, Fit::Cover, None), (4000, 3000)) - 0.2).abs() < 1e-6);
        // Contain fits the long side: 4000 → 600.
        assert!((scale_needed(&p(600.0, Fit::Contain, None), (4000, 3000)) - 0.15).abs() < 1e-6);
        // A 1000-pixel crop shown at 600 needs 0.6 of full scale.
        let crop = Area {
            x: 0.0,
            y: 0.0,
            width: 1000.0,
            height: 1000.0,
        };
        assert!((scale_needed(&p(600.0, Fit::Cover, Some(crop)), (4000, 3000)) - 0.6).abs() < 1e-6);
    }
}
