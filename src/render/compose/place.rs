//! Photos in boxes: decoding each input once at the smallest scale every placement allows,
//! then crop → fit (contain / cover / fill, by gravity or focal point) → resize → quarter
//! turns → rounded corners and border.
//!
//! Gravity is a fixed compass point and the focal point comes from the request: nothing here
//! looks at what the picture shows.

use super::paint::{ring, rounded_rect};
use super::raster::{premultiply, Raster};
use crate::job::Input;
use crate::job::Limits;
use crate::protocol::JobError;
use crate::recipe::layout::{scale_needed, Placement};
use crate::recipe::{invalid, Area, Fit, Gravity};
use crate::render::color::ColorPlan;
use crate::render::decode::decode_shrunk;
use crate::render::geometry::{self, transposes, Plan};
use crate::render::pixels::Pixels;
use crate::render::resize::resize;
use crate::wipe::Ledger;
use image::metadata::Orientation;
use std::collections::BTreeMap;

/// A decoded input, oriented and in sRGB, possibly shrunk on load.
#[derive(Debug)]
pub struct Source {
    /// Straight-alpha pixels as displayed.
    pub px: Pixels,
    /// The displayed size at full scale (crops are given in these pixels).
    pub full: (u32, u32),
}

/// Decodes every input the recipe places, each once, at the smallest 1/2ⁿ scale that still
/// gives every placement of it at least as many pixels as it covers.
pub fn decode_sources(
    inputs: &[Input],
    placements: &[Placement],
    limits: &Limits,
    ledger: &Ledger,
) -> Result<BTreeMap<String, Source>, JobError> {
    let mut sources = BTreeMap::new();
    for input in inputs {
        let uses: Vec<&Placement> = placements
            .iter()
            .filter(|p| p.input == input.name)
            .collect();
        if uses.is_empty() {
            continue;
        }
        let shrink = |stored: (u32, u32), o: Orientation| {
            let full = if transposes(o) {
                (stored.1, stored.0)
            } else {
                stored
            };
            let need = uses
                .iter()
                .map(|p| scale_needed(p, full))
                .fold(0.0f32, f32::max);
            [8u32, 4, 2]
                .into_iter()
                .find(|&d| need * d as f32 <= 1.0)
                .unwrap_or(1)
        };
        let decoded = decode_shrunk(input, limits, ledger, &shrink)?;
        let color = ColorPlan::new(decoded.icc.clone(), decoded.pixels.layout);
        let stored = decoded.full;
        let orientation = decoded.orientation;
        let srgb = color.apply(decoded.pixels, ledger);
        let px = geometry::orient(srgb, orientation, ledger);
        let full = if transposes(orientation) {
            (stored.1, stored.0)
        } else {
            stored
        };
        sources.insert(input.name.clone(), Source { px, full });
    }
    Ok(sources)
}

/// Offsets of a `inner` span within `outer` for a gravity's horizontal and vertical parts.
fn anchor(g: Gravity, free_x: f32, free_y: f32) -> (f32, f32) {
    use Gravity::*;
    let fx = match g {
        West | Northwest | Southwest => 0.0,
        East | Northeast | Southeast => 1.0,
        _ => 0.5,
    };
    let fy = match g {
        North | Northwest | Northeast => 0.0,
        South | Southwest | Southeast => 1.0,
        _ => 0.5,
    };
    (free_x * fx, free_y * fy)
}

/// A rectangle of the turned picture, mapped back to the unturned one (`w`×`h` unturned).
fn unturn(
    rotate: u32,
    (x, y, rw, rh): (f32, f32, f32, f32),
    w: f32,
    h: f32,
) -> (f32, f32, f32, f32) {
    match rotate {
        90 => (y, h - x - rw, rh, rw),
        180 => (w - x - rw, h - y - rh, rw, rh),
        270 => (w - y - rh, x, rh, rw),
        _ => (x, y, rw, rh),
    }
}

/// Draws one placement into a raster: the picture fitted in its box, turned, rounded and
/// bordered.
pub fn place(p: &Placement, src: &Source, ledger: &Ledger) -> Result<Raster, JobError> {
    let (fw, fh) = (src.full.0 as f32, src.full.1 as f32);
    let crop = p.crop.unwrap_or(Area {
        x: 0.0,
        y: 0.0,
        width: fw,
        height: fh,
    });
    if crop.x + crop.width > fw + 0.5 || crop.y + crop.height > fh + 0.5 {
        return Err(invalid(
            &format!("{}.crop", p.path),
            "reaches outside its input (crops are in the input's displayed pixels)",
        ));
    }
    let turned = p.rotate % 180 == 90;
    let (rw, rh) = if turned {
        (crop.height, crop.width)
    } else {
        (crop.width, crop.height)
    };
    let (bw, bh) = (p.area.width, p.area.height);
    // The window of the turned region that is shown, and the size it is drawn at.
    let (window, content) = match p.fit {
        Fit::Fill => ((0.0, 0.0, rw, rh), (bw, bh)),
        Fit::Contain => {
            let s = (bw / rw).min(bh / rh);
            ((0.0, 0.0, rw, rh), (rw * s, rh * s))
        }
        Fit::Cover => {
            let s = (bw / rw).max(bh / rh);
            let (ww, wh) = (bw / s, bh / s);
            let (left, top) = match p.focal {
                Some([fx, fy]) => (
                    (fx * rw - ww / 2.0).min(rw - ww).max(0.0),
                    (fy * rh - wh / 2.0).min(rh - wh).max(0.0),
                ),
                None => anchor(p.gravity, rw - ww, rh - wh),
            };
            ((left, top, ww, wh), (bw, bh))
        }
    };
    let cw = (content.0.round() as u32).max(1);
    let ch = (content.1.round() as u32).max(1);
    let (ox, oy) = anchor(p.gravity, bw - cw as f32, bh - ch as f32);
    let x = (p.area.x + ox).round() as i32;
    let y = (p.area.y + oy).round() as i32;

    // Back to the unturned region, then to the decoded pixels.
    let (ux, uy, uw, uh) = unturn(p.rotate, window, crop.width, crop.height);
    let k = f64::from(src.px.width) / f64::from(src.full.0);
    let plan = Plan {
        crop: (
            (f64::from(crop.x + ux)) * k,
            (f64::from(crop.y + uy)) * k,
            f64::from(uw) * k,
            f64::from(uh) * k,
        ),
        resized: if turned { (ch, cw) } else { (cw, ch) },
        output: (cw, ch),
        canvas: (cw, ch),
        at: (0, 0),
    };
    let resized = resize(&src.px, &plan, format!("pixels.{}.placed", p.input), ledger)?;
    let orientation = match p.rotate {
        90 => Orientation::Rotate90,
        180 => Orientation::Rotate180,
        270 => Orientation::Rotate270,
        _ => Orientation::NoTransforms,
    };
    let shown = geometry::orient(resized, orientation, ledger);
    let mut raster = premultiply(&shown, x, y, ledger);
    let (w, h) = (cw as usize, ch as usize);
    if p.radius > 0.0 {
        raster.mask(&rounded_rect(w, h, p.radius, 0.0, ledger));
    }
    if let Some(b) = &p.border {
        let outer = rounded_rect(w, h, p.radius, 0.0, ledger);
        let inner = rounded_rect(w, h, p.radius, b.width, ledger);
        raster.fill_coverage(&ring(&outer, &inner, ledger), b.color.premultiplied(1.0));
    }
    Ok(raster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unturning_maps_a_window_back_onto_the_source() {
        // A 40×30 source turned 90° is 30×40; its top-left 10×5 window is the source's
        // bottom-left 5×10 strip.
        assert_eq!(
            unturn(90, (0.0, 0.0, 10.0, 5.0), 40.0, 30.0),
            (0.0, 20.0, 5.0, 10.0)
        );
        assert_eq!(
            unturn(180, (0.0, 0.0, 10.0, 5.0), 40.0, 30.0),
            (30.0, 25.0, 10.0, 5.0)
        );
        assert_eq!(
            unturn(270, (0.0, 0.0, 10.0, 5.0), 40.0, 30.0),
            (35.0, 0.0, 5.0, 10.0)
        );
    }

    #[test]
    fn gravity_anchors_to_the_named_edge() {
        assert_eq!(anchor(Gravity::Northwest, 10.0, 20.0), (0.0, 0.0));
        assert_eq!(anchor(Gravity::South, 10.0, 20.0), (5.0, 20.0));
        assert_eq!(anchor(Gravity::East, 10.0, 20.0), (10.0, 10.0));
    }
}
