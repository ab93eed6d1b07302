//! Hostile inputs: each is answered with an error code, never a crash or a hang.

/// A real decompression bomb: a `side`×`side` 1-bit PNG of zeros. 40000×40000 is 1.6
/// gigapixels in a few hundred kilobytes.
pub fn png_bomb(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    write_bomb(&mut out, side);
    out
}

fn write_bomb(out: &mut Vec<u8>, side: u32) {
    let mut enc = png::Encoder::new(out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header().expect("PNG header");
    let mut stream = writer.stream_writer().expect("PNG stream");
    let row = vec![0u8; side.div_ceil(8) as usize];
    for _ in 0..side {
        std::io::Write::write_all(&mut stream, &row).expect("PNG row");
    }
    stream.finish().expect("PNG end");
}

/// A PNG whose header claims `width`×`height` but that carries no pixel data at all.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG carrying an ICC profile chunk that inflates to `profile_bytes` bytes (of
/// zeros: a few kilobytes on the wire, tens of megabytes once inflated).
pub fn png_with_icc(profile_bytes: usize) -> Vec<u8> {
    let png = super::png(&super::figure_cutout(16, 12, 1));
    let mut data = b"profile\0\0".to_vec();
    data.extend(miniz_oxide::deflate::compress_to_vec_zlib(
        &vec![0; profile_bytes],
        9,
    ));
    let mut out = png[..33].to_vec();
    chunk(&mut out, b"iCCP", &data);
    out.extend_from_slice(&png[33..]);
    out
}

/// A structurally complete progressive JPEG header of `width`×`height` followed by `scans`
/// tiny scans: the shape of a file whose every scan makes a decoder walk every block.
pub fn jpeg_many_scans(width: u16, height: u16, scans: u32) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let segment = |out: &mut Vec<u8>, marker: u8, data: &[u8]| {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(data);
    };
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1; 64]);
    segment(&mut out, 0xDB, &dqt);
    let [hh, hl] = height.to_be_bytes();
    let [wh, wl] = width.to_be_bytes();
    segment(&mut out, 0xC2, &[8, hh, hl, wh, wl, 1, 1, 0x11, 0]);
    // One DC table with a single 1-bit code for category 0.
    let mut dht = vec![0x00, 1];
    dht.extend_from_slice(&[0; 15]);
    dht.push(0);
    segment(&mut out, 0xC4, &dht);
    for _ in 0..scans {
        segment(&mut out, 0xDA, &[1, 1, 0x00, 0, 0, 0x00]);
        out.extend_from_slice(&[0x00, 0x00]);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A GIF whose logical screen is 1×1 but whose one frame declares `width`×`height`: a small
/// file that a decoder would allocate a huge frame for.
pub fn gif_frame_beyond_screen(width: u16, height: u16) -> Vec<u8> {
    let mut out = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    out.extend_from_slice(&[0x2C, 0, 0, 0, 0]);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
    out
}

/// An animated WebP whose canvas is 1×1 but whose one frame declares `side`×`side`.
pub fn webp_frame_beyond_canvas(side: u32) -> Vec<u8> {
    let le24 = |v: u32| [v as u8, (v >> 8) as u8, (v >> 16) as u8];
    let mut body = b"WEBP".to_vec();
    let riff_chunk = |body: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        body.extend_from_slice(kind);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    };
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend_from_slice(&le24(0));
    vp8x.extend_from_slice(&le24(0));
    riff_chunk(&mut body, b"VP8X", &vp8x);
    riff_chunk(&mut body, b"ANIM", &[0, 0, 0, 0, 0, 0]);
    let mut frame = Vec::new();
    frame.extend_from_slice(&le24(0));
    frame.extend_from_slice(&le24(0));
    frame.extend_from_slice(&le24(side - 1));
    frame.extend_from_slice(&le24(side - 1));
    frame.extend_from_slice(&[0, 0, 0, 0]);
    riff_chunk(&mut body, b"ANMF", &frame);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The first `keep` bytes of `bytes` (a truncated download).
pub fn truncated(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

/// A GIF that declares `frames` one-pixel frames.
pub fn gif_many_frames(frames: u32) -> Vec<u8> {
    let mut out = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    for _ in 0..frames {
        out.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    out.push(0x3B);
    out
}
