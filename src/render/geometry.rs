//! Where the output's pixels come from: the fit arithmetic (contain / cover / fill, no upscaling
//! unless asked) and EXIF orientation.
//!
//! Orientation is applied *after* resizing: the box is worked out in the oriented (displayed)
//! frame, mapped back to the stored frame for the resizer, and the small result is rotated.
//! Rotating a 512-pixel thumbnail costs a fraction of rotating a 12-megapixel photo.

use super::pixels::Pixels;
use crate::job::OutputPlan;
use crate::recipe::Fit;
use crate::wipe::Ledger;
use image::metadata::Orientation;

/// A resize step, in the stored (un-oriented) frame of the source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source crop: left, top, width, height (centred).
    pub crop: (f64, f64, f64, f64),
    /// Size the crop is resized to (stored frame).
    pub resized: (u32, u32),
    /// Final size, as displayed (after orientation).
    pub output: (u32, u32),
}

/// Whether the orientation swaps width and height.
pub fn transposes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Plans one output from a `stored_w`×`stored_h` source shown with `orientation`.
pub fn plan(stored_w: u32, stored_h: u32, orientation: Orientation, out: &OutputPlan) -> Plan {
    let t = transposes(orientation);
    let (sw, sh) = if t {
        (stored_h, stored_w)
    } else {
        (stored_w, stored_h)
    };
    let (crop_w, crop_h, ow, oh) = fit(sw, sh, out);
    let (cw, ch, rw, rh) = if t {
        (crop_h, crop_w, oh, ow)
    } else {
        (crop_w, crop_h, ow, oh)
    };
    let left = (f64::from(stored_w) - cw) / 2.0;
    let top = (f64::from(stored_h) - ch) / 2.0;
    Plan {
        crop: (left, top, cw, ch),
        resized: (rw, rh),
        output: (ow, oh),
    }
}

/// Returns (crop width, crop height, output width, output height) in the displayed frame.
fn fit(sw: u32, sh: u32, out: &OutputPlan) -> (f64, f64, u32, u32) {
    let (fw, fh) = (f64::from(sw), f64::from(sh));
    let cap = |scale: f64| if out.upscale { scale } else { scale.min(1.0) };
    let px = |v: f64| (v.round() as u32).max(1);
    match (out.fit, out.width, out.height) {
        (_, None, None) => (fw, fh, sw, sh),
        (Fit::Fill, w, h) => {
            let w = w.unwrap_or(sw);
            let h = h.unwrap_or(sh);
            let (w, h) = if out.upscale {
                (w, h)
            } else {
                (w.min(sw), h.min(sh))
            };
            (fw, fh, w, h)
        }
        (Fit::Cover, Some(w), Some(h)) => {
            let scale = (f64::from(w) / fw).max(f64::from(h) / fh);
            let (cw, ch) = (
                (f64::from(w) / scale).min(fw),
                (f64::from(h) / scale).min(fh),
            );
            if scale > 1.0 && !out.upscale {
                (cw, ch, px(cw), px(ch))
            } else {
                (cw, ch, w, h)
            }
        }
        // Contain, or cover with only one side given (nothing to crop against).
        (_, w, h) => {
            let sx = w.map_or(f64::INFINITY, |w| f64::from(w) / fw);
            let sy = h.map_or(f64::INFINITY, |h| f64::from(h) / fh);
            let scale = cap(sx.min(sy));
            (fw, fh, px(fw * scale), px(fh * scale))
        }
    }
}

/// Applies an EXIF orientation, returning a new image (the old one is wiped on drop).
pub fn orient(src: Pixels, o: Orientation, ledger: &Ledger) -> Pixels {
    if o == Orientation::NoTransforms {
        return src;
    }
    let (w, h) = (src.width as usize, src.height as usize);
    let (dw, dh) = if transposes(o) { (h, w) } else { (w, h) };
    let c = src.layout.channels();
    let artifact = format!("{}.oriented", src.buf.artifact());
    let mut dst = Pixels::new(dw as u32, dh as u32, src.layout, artifact, ledger);
    ledger.visit((w * h) as u64);
    let from = src.buf.as_slice();
    let to = dst.buf.as_mut_slice();
    for dy in 0..dh {
        for dx in 0..dw {
            let (sx, sy) = source_of(o, dx, dy, w, h);
            let s = (sy * w + sx) * c;
            let d = (dy * dw + dx) * c;
            to[d..d + c].copy_from_slice(&from[s..s + c]);
        }
    }
    dst
}

/// For a destination pixel (dx, dy) of the oriented image, the stored pixel it shows.
fn source_of(o: Orientation, dx: usize, dy: usize, w: usize, h: usize) -> (usize, usize) {
    match o {
        Orientation::NoTransforms => (dx, dy),
        Orientation::FlipHorizontal => (w - 1 - dx, dy),
        Orientation::Rotate180 => (w - 1 - dx, h - 1 - dy),
        Orientation::FlipVertical => (dx, h - 1 - dy),
        Orientation::Rotate90FlipH => (dy, dx),
        Orientation::Rotate90 => (dy, h - 1 - dx),
        Orientation::Rotate270FlipH => (w - 1 - dy, h - 1 - dx),
        Orientation::Rotate270 => (w - 1 - dy, dx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::OutputFormat;
    use crate::render::pixels::Layout;

    fn out(fit: Fit, w: Option<u32>, h: Option<u32>, upscale: bool) -> OutputPlan {
        OutputPlan {
            name: "o".into(),
            format: OutputFormat::Png,
            width: w,
            height: h,
            fit,
            quality: 85,
            upscale,
        }
    }

    #[test]
    fn contain_keeps_the_aspect_ratio_inside_the_box() {
        let p = plan(
            4000,
            3000,
            Orientation::NoTransforms,
            &out(Fit::Contain, Some(512), Some(512), false),
        );
        assert_eq!(p.output, (512, 384));
    }

    #[test]
    fn contain_never_upscales_unless_asked() {
        let small = out(Fit::Contain, Some(512), Some(512), false);
        assert_eq!(
            plan(100, 50, Orientation::NoTransforms, &small).output,
            (100, 50)
        );
        let up = out(Fit::Contain, Some(512), Some(512), true);
        assert_eq!(
            plan(100, 50, Orientation::NoTransforms, &up).output,
            (512, 256)
        );
    }

    #[test]
    fn cover_fills_the_box_and_crops_the_centre() {
        let p = plan(
            4000,
            3000,
            Orientation::NoTransforms,
            &out(Fit::Cover, Some(300), Some(300), false),
        );
        assert_eq!(p.output, (300, 300));
        assert_eq!(p.crop, (500.0, 0.0, 3000.0, 3000.0));
    }

    #[test]
    fn cover_without_upscale_keeps_the_box_shape_at_source_resolution() {
        let p = plan(
            200,
            100,
            Orientation::NoTransforms,
            &out(Fit::Cover, Some(400), Some(400), false),
        );
        assert_eq!(p.output, (100, 100));
    }

    #[test]
    fn fill_stretches_to_the_box() {
        let p = plan(
            4000,
            3000,
            Orientation::NoTransforms,
            &out(Fit::Fill, Some(100), Some(300), false),
        );
        assert_eq!(p.output, (100, 300));
    }

    #[test]
    fn a_rotated_photo_is_planned_in_its_displayed_frame() {
        // Stored landscape 4000x3000, displayed portrait 3000x4000.
        let p = plan(
            4000,
            3000,
            Orientation::Rotate90,
            &out(Fit::Contain, Some(300), Some(400), false),
        );
        assert_eq!(p.output, (300, 400));
        assert_eq!(p.resized, (400, 300));
    }

    #[test]
    fn rotate90_turns_the_left_column_into_the_top_row() {
        let ledger = Ledger::new();
        // 2x1 grey image: [10, 20]
        let mut src = Pixels::new(2, 1, Layout::L8, "t".into(), &ledger);
        src.buf.as_mut_slice().copy_from_slice(&[10, 20]);
        let r = orient(src, Orientation::Rotate90, &ledger);
        assert_eq!((r.width, r.height), (1, 2));
        assert_eq!(r.buf.as_slice(), &[10, 20]);
        let mut src = Pixels::new(2, 1, Layout::L8, "t".into(), &ledger);
        src.buf.as_mut_slice().copy_from_slice(&[10, 20]);
        let r = orient(src, Orientation::Rotate270, &ledger);
        assert_eq!(r.buf.as_slice(), &[20, 10]);
    }
}
