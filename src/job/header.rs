//! What an input's container declares, as the probe read it.

use serde::{Deserialize, Serialize};

/// Formats this worker decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputFormat {
    /// JPEG (baseline and progressive; grey, YCbCr, CMYK).
    Jpeg,
    /// PNG (including 16-bit, palette, grey, alpha; APNG renders its default image).
    Png,
    /// WebP (lossy and lossless; animated renders its first frame).
    WebP,
    /// GIF (first frame).
    Gif,
    /// HEIF with HEVC coding (HEIC): still images, grids, alpha, 10-bit. Decoded by libheif
    /// (C), so only in a single-use renderer.
    Heic,
    /// AVIF (HEIF with AV1 coding); a sequence renders its primary image. Decoded by libheif
    /// (C), so only in a single-use renderer.
    Avif,
    /// JPEG XL (first keyframe), decoded by jxl-oxide.
    Jxl,
}

impl InputFormat {
    /// The `image` crate's format, for the formats it decodes.
    pub fn image_format(self) -> Option<image::ImageFormat> {
        match self {
            Self::Jpeg => Some(image::ImageFormat::Jpeg),
            Self::Png => Some(image::ImageFormat::Png),
            Self::WebP => Some(image::ImageFormat::WebP),
            Self::Gif => Some(image::ImageFormat::Gif),
            Self::Heic | Self::Avif | Self::Jxl => None,
        }
    }

    /// The name people know the format by.
    pub fn label(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
            Self::Gif => "GIF",
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
            Self::Jxl => "JPEG XL",
        }
    }

    /// Whether its decoder is a C library (allowed only in a single-use process).
    pub fn needs_c(self) -> bool {
        matches!(self, Self::Heic | Self::Avif)
    }
}

/// What an input's header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format, from magic bytes.
    pub format: InputFormat,
    /// Declared width of the image (the canvas, for animations).
    pub width: u32,
    /// Declared height.
    pub height: u32,
    /// Declared frame count (1 for still images).
    pub frames: u32,
    /// The farthest right and bottom edges any frame or bitstream reaches; a decoder may
    /// allocate this much even when the canvas is smaller.
    pub extent: (u32, u32),
    /// Bytes of the embedded ICC profile (decompressed), 0 when there is none.
    pub icc_bytes: u64,
    /// Entropy-coded scans (JPEG; 1 for other formats).
    pub scans: u32,
}

impl Header {
    /// The largest width and height a decoder may work at: the canvas or any frame beyond it.
    pub fn extent(&self) -> (u32, u32) {
        (
            self.width.max(self.extent.0),
            self.height.max(self.extent.1),
        )
    }
}
