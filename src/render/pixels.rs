//! Decoded pixels owned by the job: 8-bit grey, RGB or RGBA rows in a [`SecretBuf`].

use crate::wipe::{wipe_in_place, Ledger, SecretBuf};
use image::DynamicImage;

/// Pixel layouts the pipeline works in. Every input is normalised to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 8-bit grey.
    L8,
    /// 8-bit RGB.
    Rgb8,
    /// 8-bit RGBA, straight (not premultiplied) alpha.
    Rgba8,
}

impl Layout {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            Self::L8 => 1,
            Self::Rgb8 => 3,
            Self::Rgba8 => 4,
        }
    }

    /// The resizer's pixel type.
    pub fn resize_type(self) -> fast_image_resize::PixelType {
        match self {
            Self::L8 => fast_image_resize::PixelType::U8,
            Self::Rgb8 => fast_image_resize::PixelType::U8x3,
            Self::Rgba8 => fast_image_resize::PixelType::U8x4,
        }
    }

    /// The encoders' colour type.
    pub fn color_type(self) -> image::ExtendedColorType {
        match self {
            Self::L8 => image::ExtendedColorType::L8,
            Self::Rgb8 => image::ExtendedColorType::Rgb8,
            Self::Rgba8 => image::ExtendedColorType::Rgba8,
        }
    }
}

/// An image in memory, wiped when dropped.
#[derive(Debug)]
pub struct Pixels {
    /// Rows, top to bottom, tightly packed.
    pub buf: SecretBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of each pixel.
    pub layout: Layout,
}

impl Pixels {
    /// A zeroed image.
    pub fn new(width: u32, height: u32, layout: Layout, artifact: String, ledger: &Ledger) -> Self {
        ledger.visit(crate::recipe::cost::visits::alloc(
            u64::from(width),
            u64::from(height),
        ));
        let len = width as usize * height as usize * layout.channels();
        Self {
            buf: SecretBuf::new(vec![0; len], artifact, ledger),
            width,
            height,
            layout,
        }
    }

    /// Adopts a decoder's 8-bit buffer (already `width`×`height` of `layout`).
    pub fn from_vec(
        bytes: Vec<u8>,
        width: u32,
        height: u32,
        layout: Layout,
        artifact: String,
        ledger: &Ledger,
    ) -> Self {
        debug_assert_eq!(
            bytes.len(),
            width as usize * height as usize * layout.channels()
        );
        Self {
            buf: SecretBuf::new(bytes, artifact, ledger),
            width,
            height,
            layout,
        }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * self.layout.channels()
    }

    /// Takes a decoder's image: the buffer is adopted without a copy when it is already 8-bit
    /// grey/RGB/RGBA; anything else (16-bit, float, grey+alpha) is converted and the original
    /// buffer wiped.
    pub fn from_dynamic(img: DynamicImage, artifact: String, ledger: &Ledger) -> Self {
        let (width, height) = (img.width(), img.height());
        let color = img.color();
        let layout = if color.has_alpha() {
            Layout::Rgba8
        } else if color.has_color() {
            Layout::Rgb8
        } else {
            Layout::L8
        };
        let bytes = match (layout, img) {
            (Layout::L8, DynamicImage::ImageLuma8(b)) => b.into_raw(),
            (Layout::Rgb8, DynamicImage::ImageRgb8(b)) => b.into_raw(),
            (Layout::Rgba8, DynamicImage::ImageRgba8(b)) => b.into_raw(),
            (layout, mut other) => {
                let converted = match layout {
                    Layout::L8 => other.to_luma8().into_raw(),
                    Layout::Rgb8 => other.to_rgb8().into_raw(),
                    Layout::Rgba8 => other.to_rgba8().into_raw(),
                };
                wipe_in_place(
                    dynamic_bytes_mut(&mut other),
                    format!("{artifact}.raw"),
                    ledger,
                );
                converted
            }
        };
        Self {
            buf: SecretBuf::new(bytes, artifact, ledger),
            width,
            height,
            layout,
        }
    }
}

fn dynamic_bytes_mut(img: &mut DynamicImage) -> &mut [u8] {
    use bytemuck::cast_slice_mut as bytes;
    match img {
        DynamicImage::ImageLuma8(b) => b,
        DynamicImage::ImageLumaA8(b) => b,
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageRgba8(b) => b,
        DynamicImage::ImageLuma16(b) => bytes(b),
        DynamicImage::ImageLumaA16(b) => bytes(b),
        DynamicImage::ImageRgb16(b) => bytes(b),
        DynamicImage::ImageRgba16(b) => bytes(b),
        DynamicImage::ImageRgb32F(b) => bytes(b),
        DynamicImage::ImageRgba32F(b) => bytes(b),
        // DynamicImage is non-exhaustive; a future variant is unknown to us, so report nothing
        // rather than guess (the zeroing allocator still wipes it on free).
        _ => &mut [],
    }
}
