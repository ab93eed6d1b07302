//! Sample and hostile inputs, generated in code: synthetic "figure on a shelf" photos for the
//! demo, tests and benchmarks, and a corpus of hostile files (bombs, truncations, lies in
//! headers). Nothing here is downloaded, and no real photo is ever committed.

pub mod hostile;

use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

/// A tiny deterministic PRNG (xorshift64*), so the same seed gives the same picture.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

/// A synthetic photo: a figure standing on a wooden shelf in front of a soft wall.
pub fn figure_photo(width: u32, height: u32, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let hue = (rng.next_u64() % 3) as usize;
    let dress = [[200u8, 80, 120], [70, 110, 200], [90, 170, 110]][hue];
    let (w, h) = (width as f32, height as f32);
    let shelf = h * 0.72;
    let (cx, head_y, head_r) = (w * 0.5, h * 0.3, h.min(w) * 0.09);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let noise = (rng.byte() % 9) as f32 - 4.0;
        let px = if fy > shelf {
            let grain = ((fy * 0.35 + (fx * 0.02).sin() * 6.0).sin() * 18.0) + noise;
            [150.0 + grain, 100.0 + grain * 0.7, 60.0 + grain * 0.4]
        } else {
            let t = fy / shelf;
            let glow = (1.0 - ((fx - cx).abs() / w)).max(0.0) * 30.0;
            [
                40.0 + 40.0 * t + glow + noise,
                45.0 + 35.0 * t + glow + noise,
                90.0 + 50.0 * t + glow + noise,
            ]
        };
        let d_head = ((fx - cx).powi(2) + (fy - head_y).powi(2)).sqrt();
        let body_top = head_y + head_r;
        let half = (fy - body_top) * 0.45 + head_r * 0.4;
        let px = if d_head < head_r {
            let shade = 1.0 - d_head / head_r * 0.25;
            [240.0 * shade, 205.0 * shade, 180.0 * shade]
        } else if fy > body_top && fy < shelf && (fx - cx).abs() < half {
            let shade = 1.0 - (fx - cx).abs() / half * 0.35;
            dress.map(|c| f32::from(c) * shade + noise)
        } else {
            px
        };
        Rgb(px.map(|c| c.clamp(0.0, 255.0) as u8))
    })
}

/// A varied collector's photo for the recipe examples: a doll with hair and a dress (colours
/// picked by `seed`) on a round stand, on a wooden shelf before a tinted wall. Deterministic.
pub fn collector_photo(width: u32, height: u32, seed: u64) -> RgbImage {
    const WALLS: [[f32; 3]; 4] = [
        [70.0, 80.0, 120.0],
        [110.0, 90.0, 120.0],
        [80.0, 110.0, 110.0],
        [120.0, 105.0, 90.0],
    ];
    const DRESSES: [[f32; 3]; 8] = [
        [200.0, 80.0, 120.0],
        [70.0, 110.0, 200.0],
        [90.0, 170.0, 110.0],
        [230.0, 180.0, 60.0],
        [150.0, 90.0, 200.0],
        [230.0, 120.0, 80.0],
        [60.0, 170.0, 190.0],
        [240.0, 240.0, 235.0],
    ];
    const HAIR: [[f32; 3]; 5] = [
        [40.0, 30.0, 25.0],
        [200.0, 160.0, 90.0],
        [150.0, 60.0, 40.0],
        [230.0, 140.0, 190.0],
        [110.0, 150.0, 230.0],
    ];
    let mut rng = Rng::new(seed ^ 0xC011_EC70);
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let wall = WALLS[pick(&mut rng, WALLS.len())];
    let dress = DRESSES[pick(&mut rng, DRESSES.len())];
    let hair = HAIR[pick(&mut rng, HAIR.len())];
    let (w, h) = (width as f32, height as f32);
    let cx = w * (0.42 + 0.16 * (rng.byte() as f32 / 255.0));
    let shelf = h * 0.78;
    let unit = w.min(h);
    let (head_y, head_r) = (h * 0.3, unit * 0.085);
    let dress_top = head_y + head_r * 0.9;
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let noise = (rng.byte() % 7) as f32 - 3.0;
        let mut px = if fy > shelf {
            let grain = ((fy * 0.3 + (fx * 0.015).sin() * 5.0).sin() * 14.0) + noise;
            let lip = if fy < shelf + h * 0.012 { 25.0 } else { 0.0 };
            [
                165.0 + grain + lip,
                112.0 + grain * 0.7 + lip,
                70.0 + grain * 0.4 + lip,
            ]
        } else {
            let t = fy / shelf;
            let spot = (1.0 - ((fx - cx).powi(2) + (fy - head_y).powi(2)).sqrt() / (unit * 0.9))
                .max(0.0)
                * 45.0;
            wall.map(|c| c * (0.7 + 0.45 * t) + spot + noise)
        };
        let dx = fx - cx;
        // Stand: a flat ellipse on the shelf.
        let stand = (dx / (unit * 0.16)).powi(2) + ((fy - shelf) / (unit * 0.03)).powi(2);
        if stand < 1.0 {
            px = [60.0 + noise, 60.0 + noise, 70.0 + noise];
        }
        // Dress: a flared trapezoid from the shoulders to the stand.
        let half = (fy - dress_top) * 0.42 + head_r * 0.5;
        if fy > dress_top && fy < shelf - unit * 0.01 && dx.abs() < half {
            let shade = 1.0 - dx.abs() / half * 0.35 - ((fy - dress_top) * 0.02).sin().abs() * 0.08;
            px = dress.map(|c| c * shade + noise);
        }
        // Hair behind and around the head, then the face.
        let d_hair = (dx.powi(2) + (fy - head_y + head_r * 0.15).powi(2)).sqrt();
        if d_hair < head_r * 1.3 && fy < head_y + head_r * 1.6 {
            let shine = (1.0 - d_hair / (head_r * 1.3)) * 30.0;
            px = hair.map(|c| c + shine + noise);
        }
        let d_head = (dx.powi(2) + (fy - head_y).powi(2)).sqrt();
        if d_head < head_r {
            let shade = 1.0 - d_head / head_r * 0.2;
            px = [245.0 * shade, 210.0 * shade, 185.0 * shade];
            // Two dark eyes.
            for side in [-1.0f32, 1.0] {
                let e = ((dx - side * head_r * 0.38).powi(2) + (fy - head_y).powi(2)).sqrt();
                if e < head_r * 0.11 {
                    px = [35.0, 30.0, 45.0];
                }
            }
        }
        Rgb(px.map(|c| c.clamp(0.0, 255.0) as u8))
    })
}

/// A figure cut-out with a transparent background (a "sticker").
pub fn figure_cutout(width: u32, height: u32, seed: u64) -> RgbaImage {
    let photo = figure_photo(width, height, seed);
    let (cx, cy) = (width as f32 * 0.5, height as f32 * 0.45);
    let r = width.min(height) as f32 * 0.4;
    RgbaImage::from_fn(width, height, |x, y| {
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let a = ((r - d) * 4.0).clamp(0.0, 255.0) as u8;
        let Rgb([r, g, b]) = *photo.get_pixel(x, y);
        Rgba([r, g, b, a])
    })
}

/// Random pixels: incompressible, so encoded bytes are high-entropy canaries.
pub fn noise(width: u32, height: u32, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    RgbImage::from_fn(width, height, |_, _| {
        Rgb([rng.byte(), rng.byte(), rng.byte()])
    })
}

/// Encodes as JPEG.
pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("in-memory JPEG encoding");
    out
}

/// Encodes any 8-bit image as PNG.
pub fn png<P: image::PixelWithColorType<Subpixel = u8>>(
    img: &image::ImageBuffer<P, Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), P::COLOR_TYPE)
        .expect("in-memory PNG encoding");
    out
}

/// Encodes as a one-frame GIF.
pub fn gif(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.encode_frame(image::Frame::new(img.clone()))
            .expect("in-memory GIF encoding");
    }
    out
}

/// Encodes as lossless WebP.
pub fn webp(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .expect("in-memory WebP encoding");
    out
}

/// A portrait photo stored the way phone cameras store it: pixels in landscape, turned a
/// quarter to the left, with EXIF orientation 6 ("rotate 90° clockwise to display") and a GPS
/// block. Displayed right, it is an upright `width`×`height` figure.
pub fn portrait_as_phones_store_it(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let upright = figure_photo(width, height, seed);
    let stored = image::imageops::rotate270(&upright);
    with_exif(&jpeg(&stored, 90), 6)
}

/// The GPS latitude written by [`with_exif`]: its bytes must never reach an output.
pub const GPS_MARKER: &[u8] = b"MIDNIT-GPS-CANARY";

/// Inserts an EXIF APP1 segment (orientation, a GPS position and a maker note carrying
/// [`GPS_MARKER`]) right after a JPEG's SOI marker.
pub fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let tiff = exif_tiff(orientation);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn exif_tiff(orientation: u16) -> Vec<u8> {
    // Little-endian TIFF: IFD0 at 8 with Orientation, GPS IFD pointer and a MakerNote
    // (undefined bytes) that carries the marker; GPS IFD with latitude ref 'N'.
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    let ifd0_entries = 3u16;
    let ifd0_len = 2 + 12 * ifd0_entries as u32 + 4;
    let gps_at = 8 + ifd0_len;
    let gps_len = 2 + 12 + 4;
    let note_at = gps_at + gps_len;
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    t.extend_from_slice(&ifd0_entries.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, u32::from(orientation));
    entry(&mut t, 0x8825, 4, 1, gps_at);
    entry(&mut t, 0x927C, 7, GPS_MARKER.len() as u32, note_at);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from(b'N'));
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(GPS_MARKER);
    t
}

/// A thumbnail request for `photo`: one output, `format`, bounded by `side`×`side`.
pub fn thumbnail_request(photo: Vec<u8>, format: &str, side: u32) -> crate::protocol::Request {
    crate::protocol::Request {
        preset: None,
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(photo))].into(),
        recipe: None,
        outputs: vec![crate::protocol::OutputSpec {
            name: "thumb".into(),
            format: format.into(),
            width: Some(side),
            height: Some(side),
            quality: Some(85),
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_photo() {
        assert_eq!(figure_photo(64, 48, 7), figure_photo(64, 48, 7));
        assert_ne!(figure_photo(64, 48, 7), figure_photo(64, 48, 8));
    }

    #[test]
    fn a_40000_pixel_bomb_is_a_few_hundred_kilobytes() {
        let bomb = hostile::png_bomb(40_000);
        assert!(bomb.len() < 1_000_000, "{} bytes", bomb.len());
    }
}
