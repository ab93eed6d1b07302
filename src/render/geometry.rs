//! Where the output's pixels come from: the fit arithmetic (contain / cover / fill, no upscaling
//! unless asked) and EXIF orientation.
//!
//! Orientation is applied *after* resizing: the box is worked out in the oriented (displayed)
//! frame, mapped back to the stored frame for the resizer, and the small result is rotated.
//! Rotating a 512-pixel thumbnail costs a fraction of rotating a 12-megapixel photo.

use super::pixels::{Layout, Pixels};
use crate::job::OutputPlan;
use crate::recipe::Fit;
use crate::wipe::Ledger;
use image::metadata::Orientation;

/// A resize step, in the stored (un-oriented) frame of the source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source crop: left, top, width, height (placed by the output's gravity or focal point).
    pub crop: (f64, f64, f64, f64),
    /// Size the crop is resized to (stored frame).
    pub resized: (u32, u32),
    /// The picture's size, as displayed (after orientation).
    pub output: (u32, u32),
    /// The final image: the picture on a background of this size (as displayed) …
    pub canvas: (u32, u32),
    /// … with its top-left corner here. Equal to `output` and `(0, 0)` when nothing frames it.
    pub at: (u32, u32),
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
    // The crop's corner in the displayed frame: at the focal point, or the gravity's edge.
    let (free_x, free_y) = (f64::from(sw) - crop_w, f64::from(sh) - crop_h);
    let (left_d, top_d) = match out.focal {
        Some([fx, fy]) => (
            (f64::from(fx) * f64::from(sw) - crop_w / 2.0).clamp(0.0, free_x.max(0.0)),
            (f64::from(fy) * f64::from(sh) - crop_h / 2.0).clamp(0.0, free_y.max(0.0)),
        ),
        None => {
            let (gx, gy) = out.gravity.fractions();
            (free_x * gx, free_y * gy)
        }
    };
    let crop = unorient(
        orientation,
        (left_d, top_d, crop_w, crop_h),
        f64::from(stored_w),
        f64::from(stored_h),
    );
    let (rw, rh) = if t { (oh, ow) } else { (ow, oh) };
    let (canvas, at) = frame(out, (ow, oh));
    Plan {
        crop,
        resized: (rw, rh),
        output: (ow, oh),
        canvas,
        at,
    }
}

/// The canvas around a `w`×`h` picture: the whole box when a background letterboxes a
/// `contain` fit, plus padding on every side; the picture placed by gravity.
fn frame(out: &OutputPlan, (w, h): (u32, u32)) -> ((u32, u32), (u32, u32)) {
    let boxed = match (out.background, out.fit, out.width, out.height) {
        (Some(_), Fit::Contain, Some(bw), Some(bh)) => (bw.max(w), bh.max(h)),
        _ => (w, h),
    };
    let (gx, gy) = out.gravity.fractions();
    let place = |free: u32, g: f64| (f64::from(free) * g).round() as u32;
    let p = out.padding;
    let at = (p + place(boxed.0 - w, gx), p + place(boxed.1 - h, gy));
    let canvas = (
        boxed.0.saturating_add(p.saturating_mul(2)),
        boxed.1.saturating_add(p.saturating_mul(2)),
    );
    (canvas, at)
}

/// A rectangle of the displayed picture, mapped back onto the stored one (`w`×`h` stored).
fn unorient(
    o: Orientation,
    (x, y, rw, rh): (f64, f64, f64, f64),
    w: f64,
    h: f64,
) -> (f64, f64, f64, f64) {
    // Each displayed corner's stored position; the rectangle spans them.
    let point = |dx: f64, dy: f64| match o {
        Orientation::NoTransforms => (dx, dy),
        Orientation::Rotate90 => (dy, h - dx),
        Orientation::Rotate180 => (w - dx, h - dy),
        Orientation::Rotate270 => (w - dy, dx),
        Orientation::FlipHorizontal => (w - dx, dy),
        Orientation::FlipVertical => (dx, h - dy),
        Orientation::Rotate90FlipH => (dy, dx),
        Orientation::Rotate270FlipH => (w - dy, h - dx),
    };
    let (ax, ay) = point(x, y);
    let (bx, by) = point(x + rw, y + rh);
    (ax.min(bx), ay.min(by), (ax - bx).abs(), (ay - by).abs())
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

/// Puts the picture on its canvas (background and padding), when the plan frames it. A
/// transparent background (the default) keeps or adds an alpha channel; an opaque one gives
/// an opaque canvas.
pub fn frame_pixels(src: Pixels, out: &OutputPlan, plan: &Plan, ledger: &Ledger) -> Pixels {
    if plan.canvas == (src.width, src.height) && plan.at == (0, 0) {
        return src;
    }
    let bg = out
        .background
        .unwrap_or(crate::recipe::Color::TRANSPARENT)
        .0;
    let opaque = bg[3] == 255;
    let layout = if opaque && src.layout != Layout::Rgba8 {
        Layout::Rgb8
    } else {
        Layout::Rgba8
    };
    let c = layout.channels();
    let (cw, ch) = (plan.canvas.0 as usize, plan.canvas.1 as usize);
    let artifact = format!("{}.framed", src.buf.artifact());
    let mut dst = Pixels::new(cw as u32, ch as u32, layout, artifact, ledger);
    for px in dst.buf.as_mut_slice().chunks_exact_mut(c) {
        px.copy_from_slice(&bg[..c]);
    }
    let (w, h) = (src.width as usize, src.height as usize);
    let (ax, ay) = (plan.at.0 as usize, plan.at.1 as usize);
    let sc = src.layout.channels();
    let from = src.buf.as_slice();
    let to = dst.buf.as_mut_slice();
    for y in 0..h.min(ch.saturating_sub(ay)) {
        for x in 0..w.min(cw.saturating_sub(ax)) {
            let s = &from[(y * w + x) * sc..(y * w + x + 1) * sc];
            let rgba = match sc {
                1 => [s[0], s[0], s[0], 255],
                3 => [s[0], s[1], s[2], 255],
                _ => [s[0], s[1], s[2], s[3]],
            };
            let d = &mut to[((ay + y) * cw + ax + x) * c..((ay + y) * cw + ax + x + 1) * c];
            over(d, rgba);
        }
    }
    dst
}

/// `src` (straight alpha) over the pixel `d` (RGB or straight-alpha RGBA).
fn over(d: &mut [u8], src: [u8; 4]) {
    let sa = u32::from(src[3]);
    if sa == 255 {
        d.copy_from_slice(&src[..d.len()]);
        return;
    }
    let da = if d.len() == 4 { u32::from(d[3]) } else { 255 };
    // out_a = sa + da (1 - sa), in 0..=255 fixed point.
    let oa = sa * 255 + da * (255 - sa);
    if oa == 0 {
        d.fill(0);
        return;
    }
    for i in 0..3 {
        let v = u32::from(src[i]) * sa * 255 + u32::from(d[i]) * da * (255 - sa);
        d[i] = ((v + oa / 2) / oa) as u8;
    }
    if d.len() == 4 {
        d[3] = ((oa + 127) / 255) as u8;
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
        framed(fit, w, h, upscale, |_| {})
    }

    fn framed(
        fit: Fit,
        w: Option<u32>,
        h: Option<u32>,
        upscale: bool,
        more: impl FnOnce(&mut crate::protocol::OutputSpec),
    ) -> OutputPlan {
        let mut spec = crate::protocol::OutputSpec {
            name: "o".into(),
            format: OutputFormat::Png.as_str().into(),
            width: w,
            height: h,
            fit: Some(fit.as_str().into()),
            upscale: Some(upscale),
            ..Default::default()
        };
        more(&mut spec);
        crate::intake::plan_outputs(&[spec], &crate::job::Limits::default())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn gravity_and_focal_place_the_cover_crop() {
        let none = Orientation::NoTransforms;
        // 400x200 → 100x100 cover: a 200x200 crop, 200 px free horizontally.
        let at = |more: fn(&mut crate::protocol::OutputSpec)| {
            plan(
                400,
                200,
                none,
                &framed(Fit::Cover, Some(100), Some(100), false, more),
            )
            .crop
        };
        assert_eq!(at(|_| {}), (100.0, 0.0, 200.0, 200.0));
        assert_eq!(
            at(|s| s.gravity = Some("west".into())),
            (0.0, 0.0, 200.0, 200.0)
        );
        assert_eq!(
            at(|s| s.gravity = Some("east".into())),
            (200.0, 0.0, 200.0, 200.0)
        );
        // Centred on x = 0.375 × 400 = 150: left edge 50. Near an edge, clamped inside.
        assert_eq!(
            at(|s| s.focal = Some([0.375, 0.5])),
            (50.0, 0.0, 200.0, 200.0)
        );
        assert_eq!(
            at(|s| s.focal = Some([0.95, 0.5])),
            (200.0, 0.0, 200.0, 200.0)
        );
        // Shown rotated 90° clockwise (stored 200x400 becomes 400x200 on screen): the
        // displayed west edge is the stored bottom.
        let p = plan(
            200,
            400,
            Orientation::Rotate90,
            &framed(Fit::Cover, Some(100), Some(100), false, |s| {
                s.gravity = Some("west".into())
            }),
        );
        assert_eq!(p.crop, (0.0, 200.0, 200.0, 200.0));
    }

    #[test]
    fn a_background_letterboxes_to_the_box_and_padding_surrounds_it() {
        let none = Orientation::NoTransforms;
        let p = plan(
            400,
            200,
            none,
            &framed(Fit::Contain, Some(100), Some(100), false, |s| {
                s.background = Some("#00ff00".into());
                s.padding = Some(4);
            }),
        );
        assert_eq!(p.output, (100, 50));
        assert_eq!(p.canvas, (108, 108));
        assert_eq!(p.at, (4, 29));
        // South: the picture sits at the bottom of the box.
        let p = plan(
            400,
            200,
            none,
            &framed(Fit::Contain, Some(100), Some(100), false, |s| {
                s.background = Some("#fff".into());
                s.gravity = Some("south".into());
            }),
        );
        assert_eq!((p.canvas, p.at), ((100, 100), (0, 50)));
        // Without a background nothing is framed.
        let p = plan(
            400,
            200,
            none,
            &out(Fit::Contain, Some(100), Some(100), false),
        );
        assert_eq!((p.canvas, p.at), ((100, 50), (0, 0)));
    }

    #[test]
    fn framing_composites_the_picture_over_the_background() {
        let ledger = Ledger::new();
        let plan_ = framed(Fit::Contain, Some(4), Some(4), false, |s| {
            s.background = Some("#ff0000".into());
            s.padding = Some(1);
        });
        let mut src = Pixels::new(4, 2, Layout::Rgba8, "t".into(), &ledger);
        for p in src.buf.as_mut_slice().chunks_exact_mut(4) {
            p.copy_from_slice(&[0, 0, 255, 128]);
        }
        let g = plan(4, 2, Orientation::NoTransforms, &plan_);
        let out = frame_pixels(src, &plan_, &g, &ledger);
        assert_eq!((out.width, out.height, out.layout), (6, 6, Layout::Rgba8));
        let px =
            |x: usize, y: usize| out.buf.as_slice()[(y * 6 + x) * 4..(y * 6 + x) * 4 + 4].to_vec();
        assert_eq!(px(0, 0), vec![255, 0, 0, 255]);
        // Half-transparent blue over opaque red: an even mix, opaque.
        assert_eq!(px(2, 2), vec![127, 0, 128, 255]);
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
