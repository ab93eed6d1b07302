//! Resizing with `fast_image_resize` (SIMD convolution, Lanczos3; alpha is premultiplied for
//! the filter and restored after, so edges of transparent areas do not darken).

use super::geometry::Plan;
use super::pixels::Pixels;
use crate::protocol::{ErrorCode, JobError};
use crate::wipe::Ledger;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

/// Crops and resizes `src` as `plan` says, into a new ledgered image named `artifact`.
pub fn resize(
    src: &Pixels,
    plan: &Plan,
    artifact: String,
    ledger: &Ledger,
) -> Result<Pixels, JobError> {
    let (w, h) = plan.resized;
    let mut dst = Pixels::new(w, h, src.layout, artifact, ledger);
    let pixel_type = src.layout.resize_type();
    let fail =
        |e: &dyn std::fmt::Display| JobError::new(ErrorCode::Internal, format!("resize: {e}"));
    let from = ImageRef::new(src.width, src.height, src.buf.as_slice(), pixel_type)
        .map_err(|e| fail(&e))?;
    let mut to =
        Image::from_slice_u8(w, h, dst.buf.as_mut_slice(), pixel_type).map_err(|e| fail(&e))?;
    let (left, top, cw, ch) = plan.crop;
    ledger.visit(crate::recipe::cost::visits::resize(
        (cw.ceil() * ch.ceil()) as u64,
        u64::from(w) * u64::from(h),
    ));
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(left, top, cw, ch);
    Resizer::new()
        .resize(&from, &mut to, &options)
        .map_err(|e| fail(&e))?;
    Ok(dst)
}
