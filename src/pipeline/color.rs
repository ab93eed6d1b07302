//! Colour: outputs are sRGB. An input with an embedded ICC profile is converted to sRGB; a
//! profile that cannot be converted (unparseable, or a kind the converter does not handle) is
//! embedded in the outputs instead. A profile is never silently dropped.

use super::pixels::{Layout, Pixels};
use crate::wipe::Ledger;
use moxcms::{ColorProfile, DataColorSpace, TransformExecutor, TransformOptions};
use std::sync::Arc;

type Transform = Arc<dyn TransformExecutor<u8> + Send + Sync>;

/// What to do about colour for one decoded input.
pub enum ColorPlan {
    /// No profile: the pixels are taken to be sRGB already.
    Srgb,
    /// Convert each output's pixels to sRGB with this transform.
    Convert(Transform),
    /// Embed this profile in every output unchanged.
    Keep(Vec<u8>),
}

impl std::fmt::Debug for ColorPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Srgb => f.write_str("Srgb"),
            Self::Convert(_) => f.write_str("Convert(to sRGB)"),
            Self::Keep(p) => write!(f, "Keep({} byte profile)", p.len()),
        }
    }
}

impl ColorPlan {
    /// Decides from the embedded profile (if any) and the decoded layout.
    pub fn new(icc: Option<Vec<u8>>, layout: Layout) -> Self {
        let Some(icc) = icc else { return Self::Srgb };
        match transform_to_srgb(&icc, layout) {
            Some(t) => Self::Convert(t),
            None => Self::Keep(icc),
        }
    }

    /// The profile to embed in outputs, if the plan keeps one.
    pub fn kept_profile(&self) -> Option<&[u8]> {
        match self {
            Self::Keep(p) => Some(p),
            _ => None,
        }
    }

    /// Converts `pixels` to sRGB if the plan says so (the input buffer is wiped on drop).
    pub fn apply(&self, pixels: Pixels, ledger: &Ledger) -> Pixels {
        let Self::Convert(t) = self else {
            return pixels;
        };
        let artifact = format!("{}.srgb", pixels.buf.artifact());
        let mut out = Pixels::new(pixels.width, pixels.height, pixels.layout, artifact, ledger);
        match t.transform(pixels.buf.as_slice(), out.buf.as_mut_slice()) {
            Ok(()) => out,
            // The transform was built for this layout; a failure here would be a converter bug.
            // Keep the unconverted pixels rather than fail the job.
            Err(_) => pixels,
        }
    }
}

fn transform_to_srgb(icc: &[u8], layout: Layout) -> Option<Transform> {
    let src = ColorProfile::new_from_slice(icc).ok()?;
    let moxcms_layout = match (layout, src.color_space) {
        (Layout::Rgb8, DataColorSpace::Rgb) => moxcms::Layout::Rgb,
        (Layout::Rgba8, DataColorSpace::Rgb) => moxcms::Layout::Rgba,
        // Grey profiles, and profiles that do not describe these pixels, are kept.
        _ => return None,
    };
    let srgb = ColorProfile::new_srgb();
    let t = src
        .create_transform_8bit(
            moxcms_layout,
            &srgb,
            moxcms_layout,
            TransformOptions::default(),
        )
        .ok()?;
    Some(t)
}
