//! The encoders of JPEG (jpeg-encoder: progressive, optimised Huffman tables, chosen chroma
//! subsampling), lossy WebP (libwebp, C), AVIF (ravif over rav1e), palette PNG (NeuQuant
//! quantisation from `color_quant`, MIT) and ThumbHash placeholders.
//!
//! Each writes into a [`SecretBuf`]; none writes EXIF, XMP or GPS. A lossy encoder is one
//! function of the quality, so [`fit_bytes`] can search for the highest quality under a size.

use crate::job::{Chroma, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::render::pixels::{Layout, Pixels};
use crate::wipe::{Ledger, SecretBuf};

fn failed(plan: &OutputPlan, e: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::Internal,
        format!("encoding output `{}` failed: {e}", plan.name),
    )
}

/// JPEG at `quality`. Grey stays grey; colour is YCbCr with the plan's subsampling.
pub fn jpeg(
    px: &Pixels,
    plan: &OutputPlan,
    quality: u8,
    icc: Option<&[u8]>,
    out: &mut SecretBuf,
) -> Result<(), JobError> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let mut enc = Encoder::new(&mut *out, quality);
    enc.set_progressive(plan.progressive);
    enc.set_optimized_huffman_tables(true);
    enc.set_sampling_factor(match plan.chroma {
        Chroma::C420 => SamplingFactor::R_4_2_0,
        Chroma::C422 => SamplingFactor::R_4_2_2,
        Chroma::C444 => SamplingFactor::R_4_4_4,
    });
    if let Some(profile) = icc {
        enc.add_icc_profile(profile).map_err(|e| failed(plan, e))?;
    }
    let color = match px.layout {
        Layout::L8 => ColorType::Luma,
        Layout::Rgb8 => ColorType::Rgb,
        // Flattened by the caller; never reached with alpha.
        Layout::Rgba8 => ColorType::Rgba,
    };
    let (w, h) = (side(px.width, plan)?, side(px.height, plan)?);
    enc.encode(px.buf.as_slice(), w, h, color)
        .map_err(|e| failed(plan, e))
}

fn side(v: u32, plan: &OutputPlan) -> Result<u16, JobError> {
    u16::try_from(v).map_err(|_| {
        JobError::new(
            ErrorCode::LimitsOutput,
            format!(
                "outputs.{}: JPEG and WebP are at most 65535 wide and high",
                plan.name
            ),
        )
    })
}

/// Lossy WebP at `quality`, by libwebp (C: only where C codecs are allowed). A kept ICC
/// profile goes into an extended (`VP8X`) container.
pub fn webp_lossy(
    px: &Pixels,
    plan: &OutputPlan,
    quality: u8,
    icc: Option<&[u8]>,
    out: &mut SecretBuf,
    ledger: &Ledger,
) -> Result<(), JobError> {
    super::require_c(&format!(
        "outputs.{} (lossy WebP; `lossless: true` is Rust)",
        plan.name
    ))?;
    let expanded;
    let src = if px.layout == Layout::L8 {
        expanded = grey_to_rgb(px, ledger);
        &expanded
    } else {
        px
    };
    side(src.width, plan)?;
    side(src.height, plan)?;
    let (w, h) = (src.width as i32, src.height as i32);
    let stride = src.stride() as i32;
    let mut encoded: *mut u8 = std::ptr::null_mut();
    // SAFETY: the buffer holds `h` rows of `stride` bytes of the stated layout; libwebp
    // allocates the output, which is copied and then released with WebPFree below.
    let len = unsafe {
        match src.layout {
            Layout::Rgba8 => libwebp_sys::WebPEncodeRGBA(
                src.buf.as_slice().as_ptr(),
                w,
                h,
                stride,
                f32::from(quality),
                &mut encoded,
            ),
            _ => libwebp_sys::WebPEncodeRGB(
                src.buf.as_slice().as_ptr(),
                w,
                h,
                stride,
                f32::from(quality),
                &mut encoded,
            ),
        }
    };
    if encoded.is_null() || len == 0 {
        return Err(failed(plan, "libwebp returned nothing"));
    }
    // SAFETY: libwebp returned `len` bytes at `encoded`.
    let bytes = unsafe { std::slice::from_raw_parts(encoded, len) };
    let result = match icc {
        None => {
            put(out, bytes);
            Ok(())
        }
        Some(profile) => with_icc(bytes, profile, src.width, src.height, out)
            .ok_or_else(|| failed(plan, "libwebp wrote an unexpected container")),
    };
    // SAFETY: `encoded` came from libwebp's allocator and is freed once.
    unsafe { libwebp_sys::WebPFree(encoded.cast()) };
    result
}

/// Rewraps a simple WebP file as an extended one carrying `icc`.
fn with_icc(webp: &[u8], icc: &[u8], w: u32, h: u32, out: &mut SecretBuf) -> Option<()> {
    let mut chunks = Vec::new();
    let mut at = 12;
    let mut alpha = false;
    while at + 8 <= webp.len() {
        let id = &webp[at..at + 4];
        let size = u32::from_le_bytes(webp[at + 4..at + 8].try_into().ok()?) as usize;
        let end = at.checked_add(8 + size + (size & 1))?;
        if end > webp.len() {
            return None;
        }
        if id != b"VP8X" {
            alpha |= id == b"ALPH";
            chunks.push(&webp[at..end]);
        }
        at = end;
    }
    let icc_chunk = 8 + icc.len() + (icc.len() & 1);
    let body: usize = 4 + 18 + icc_chunk + chunks.iter().map(|c| c.len()).sum::<usize>();
    let v = out;
    put(v, b"RIFF");
    put(v, &u32::try_from(body).ok()?.to_le_bytes());
    put(v, b"WEBPVP8X");
    put(v, &10u32.to_le_bytes());
    let flags: u8 = 0x20 | if alpha { 0x10 } else { 0 };
    put(v, &[flags, 0, 0, 0]);
    put(v, &(w - 1).to_le_bytes()[..3]);
    put(v, &(h - 1).to_le_bytes()[..3]);
    put(v, b"ICCP");
    put(v, &u32::try_from(icc.len()).ok()?.to_le_bytes());
    put(v, icc);
    if icc.len() & 1 == 1 {
        put(v, &[0]);
    }
    for c in chunks {
        put(v, c);
    }
    Some(())
}

/// Appends to a ledgered buffer (writing to memory cannot fail).
fn put(out: &mut SecretBuf, bytes: &[u8]) {
    let _ = std::io::Write::write_all(out, bytes);
}

fn grey_to_rgb(px: &Pixels, ledger: &Ledger) -> Pixels {
    let artifact = format!("{}.rgb", px.buf.artifact());
    let mut out = Pixels::new(px.width, px.height, Layout::Rgb8, artifact, ledger);
    for (d, &g) in out
        .buf
        .as_mut_slice()
        .chunks_exact_mut(3)
        .zip(px.buf.as_slice())
    {
        d.copy_from_slice(&[g, g, g]);
    }
    out
}

/// AVIF at `quality` and the plan's speed, by ravif (pure Rust), on this thread. The pixels
/// are sRGB by now; ravif writes no ICC profile, so a kept profile is not carried.
pub fn avif(
    px: &Pixels,
    plan: &OutputPlan,
    quality: u8,
    out: &mut SecretBuf,
    ledger: &Ledger,
) -> Result<(), JobError> {
    use ravif::{Encoder, Img, RGB8, RGBA8};
    let enc = Encoder::new()
        .with_quality(f32::from(quality))
        .with_alpha_quality(f32::from(quality))
        .with_speed(plan.speed)
        .with_num_threads(Some(1));
    let (w, h) = (px.width as usize, px.height as usize);
    let encoded = match px.layout {
        Layout::Rgba8 => {
            let pixels: &[RGBA8] = bytemuck::cast_slice(px.buf.as_slice());
            enc.encode_rgba(Img::new(pixels, w, h))
        }
        Layout::Rgb8 => {
            let pixels: &[RGB8] = bytemuck::cast_slice(px.buf.as_slice());
            enc.encode_rgb(Img::new(pixels, w, h))
        }
        Layout::L8 => {
            let rgb = grey_to_rgb(px, ledger);
            let pixels: &[RGB8] = bytemuck::cast_slice(rgb.buf.as_slice());
            enc.encode_rgb(Img::new(pixels, w, h))
        }
    }
    .map_err(|e| failed(plan, e))?;
    let mut file = encoded.avif_file;
    put(out, &file);
    crate::wipe::wipe_bytes(&mut file);
    Ok(())
}

/// PNG with a palette of at most 256 colours (alpha kept in a `tRNS` chunk).
pub fn palette_png(
    px: &Pixels,
    plan: &OutputPlan,
    out: &mut SecretBuf,
    ledger: &Ledger,
) -> Result<(), JobError> {
    let artifact = format!("{}.rgba", px.buf.artifact());
    let mut rgba = Pixels::new(px.width, px.height, Layout::Rgba8, artifact, ledger);
    let src = px.buf.as_slice();
    for (i, d) in rgba.buf.as_mut_slice().chunks_exact_mut(4).enumerate() {
        match px.layout {
            Layout::L8 => d.copy_from_slice(&[src[i], src[i], src[i], 255]),
            Layout::Rgb8 => d.copy_from_slice(&[src[3 * i], src[3 * i + 1], src[3 * i + 2], 255]),
            Layout::Rgba8 => d.copy_from_slice(&src[4 * i..4 * i + 4]),
        }
    }
    let quant = color_quant::NeuQuant::new(10, 256, rgba.buf.as_slice());
    let map = quant.color_map_rgba();
    let colors = map.len() / 4;
    let mut indices = SecretBuf::zeroed(
        px.width as usize * px.height as usize,
        format!("{}.indices", px.buf.artifact()),
        ledger,
    );
    for (d, p) in indices
        .as_mut_slice()
        .iter_mut()
        .zip(rgba.buf.as_slice().chunks_exact(4))
    {
        *d = quant.index_of(p) as u8;
    }
    let rgb: Vec<u8> = map
        .chunks_exact(4)
        .flat_map(|c| [c[0], c[1], c[2]])
        .collect();
    let alpha: Vec<u8> = map.chunks_exact(4).map(|c| c[3]).collect();
    let mut enc = png::Encoder::new(&mut *out, px.width, px.height);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(rgb);
    if alpha.iter().any(|&a| a != 255) {
        enc.set_trns(alpha);
    }
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header().map_err(|e| failed(plan, e))?;
    writer
        .write_image_data(indices.as_slice())
        .map_err(|e| failed(plan, e))?;
    writer.finish().map_err(|e| failed(plan, e))?;
    debug_assert!(colors <= 256);
    Ok(())
}

/// A ThumbHash of pixels already fitted into 100×100.
pub fn thumbhash(
    px: &Pixels,
    plan: &OutputPlan,
    out: &mut SecretBuf,
    ledger: &Ledger,
) -> Result<(), JobError> {
    if px.width > 100 || px.height > 100 {
        return Err(failed(
            plan,
            "a ThumbHash is made from at most 100x100 pixels",
        ));
    }
    let artifact = format!("{}.rgba", px.buf.artifact());
    let mut rgba = Pixels::new(px.width, px.height, Layout::Rgba8, artifact, ledger);
    let src = px.buf.as_slice();
    for (i, d) in rgba.buf.as_mut_slice().chunks_exact_mut(4).enumerate() {
        match px.layout {
            Layout::L8 => d.copy_from_slice(&[src[i], src[i], src[i], 255]),
            Layout::Rgb8 => d.copy_from_slice(&[src[3 * i], src[3 * i + 1], src[3 * i + 2], 255]),
            Layout::Rgba8 => d.copy_from_slice(&src[4 * i..4 * i + 4]),
        }
    }
    let mut hash =
        thumbhash::rgba_to_thumb_hash(px.width as usize, px.height as usize, rgba.buf.as_slice());
    put(out, &hash);
    crate::wipe::wipe_bytes(&mut hash);
    Ok(())
}

/// Encodes with `encode(quality)` at the plan's quality, or — with `max_bytes` — at the
/// highest quality whose encoding fits, found by bisection over 1..=quality in at most 9
/// encodings. Returns the encoding and the quality used; `limits.output` when not even quality
/// 1 fits.
pub fn fit_bytes(
    plan: &OutputPlan,
    mut encode: impl FnMut(u8) -> Result<SecretBuf, JobError>,
) -> Result<(SecretBuf, u8), JobError> {
    let first = encode(plan.quality)?;
    let Some(max) = plan.max_bytes.map(|m| m as usize) else {
        return Ok((first, plan.quality));
    };
    if first.len() <= max {
        return Ok((first, plan.quality));
    }
    drop(first);
    // Invariant: `hi` is known too large; `best` fits, at quality `lo`.
    let (mut lo, mut hi) = (0u8, plan.quality);
    let mut best: Option<(SecretBuf, u8)> = None;
    for _ in 0..7 {
        if hi - lo <= 1 {
            break;
        }
        let q = lo + (hi - lo) / 2;
        let q = q.max(1);
        let encoded = encode(q)?;
        if encoded.len() <= max {
            lo = q;
            best = Some((encoded, q));
        } else {
            hi = q;
        }
    }
    if best.is_none() && lo == 0 && hi > 1 {
        let encoded = encode(1)?;
        if encoded.len() <= max {
            best = Some((encoded, 1));
        }
    }
    best.ok_or_else(|| {
        JobError::new(
            ErrorCode::LimitsOutput,
            format!(
                "outputs.{}.max_bytes: no quality fits; ask for fewer pixels or more bytes",
                plan.name
            ),
        )
    })
}
