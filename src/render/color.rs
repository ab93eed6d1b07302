//! Colour: outputs are sRGB. An input with an embedded ICC profile is converted to sRGB; a
//! profile the converter cannot read or apply is embedded in the outputs unchanged, so viewers
//! still see the colours it describes. A grey profile on grey pixels is kept as it is. A
//! profile that cannot describe the decoded pixels at all (a grey profile on colour pixels) is
//! malformed and not applied. CMYK profiles are applied while decoding ([`super::cmyk`]).

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
        let Ok(profile) = ColorProfile::new_from_slice(&icc) else {
            return Self::Keep(icc);
        };
        let moxcms_layout = match (layout, profile.color_space) {
            (Layout::Rgb8, DataColorSpace::Rgb) => moxcms::Layout::Rgb,
            (Layout::Rgba8, DataColorSpace::Rgb) => moxcms::Layout::Rgba,
            (Layout::L8, DataColorSpace::Gray) => return Self::Keep(icc),
            _ => {
                tracing::info!("embedded ICC profile does not describe the pixels; not applied");
                return Self::Srgb;
            }
        };
        let srgb = ColorProfile::new_srgb();
        let options = TransformOptions::default();
        match profile.create_transform_8bit(moxcms_layout, &srgb, moxcms_layout, options) {
            Ok(t) => Self::Convert(t),
            Err(_) => Self::Keep(icc),
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
