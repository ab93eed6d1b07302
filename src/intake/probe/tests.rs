use super::*;
use crate::tools::samples::{self, hostile};
use std::io::Cursor;

fn probe(bytes: &[u8]) -> Result<Header, JobError> {
    probe_bytes(bytes, "photo", &Limits::default())
}

fn code(bytes: &[u8]) -> ErrorCode {
    probe(bytes).unwrap_err().code
}

#[test]
fn a_bmp_is_named_as_unsupported_not_undecodable() {
    let err = sniff(b"BM\x00\x00\x00\x00\x00\x00\x00\x00", "photo").unwrap_err();
    assert_eq!(err.code, ErrorCode::InputUnsupportedFormat);
}

#[test]
fn random_text_is_undecodable() {
    let err = sniff(b"hello, this is not an image", "photo").unwrap_err();
    assert_eq!(err.code, ErrorCode::InputUndecodable);
}

#[test]
fn iso_bmff_brands_are_told_apart() {
    let ftyp = |brands: &[u8]| {
        let mut b = vec![0, 0, 0, 8 + brands.len() as u8, b'f', b't', b'y', b'p'];
        b.extend_from_slice(brands);
        b
    };
    let heic = sniff(&ftyp(b"heic\0\0\0\0mif1heic"), "photo").unwrap();
    assert_eq!(heic, InputFormat::Heic);
    let avif = sniff(&ftyp(b"avif\0\0\0\0mif1miaf"), "photo").unwrap();
    assert_eq!(avif, InputFormat::Avif);
    // A camera raw or an MP4 video is an ISO-BMFF file too: known, and not read.
    let err = sniff(&ftyp(b"crx \0\0\0\0isom"), "photo").unwrap_err();
    assert_eq!(err.code, ErrorCode::InputUnsupportedFormat);
    assert!(err.message.contains("ISO-BMFF"), "{}", err.message);
}

#[test]
fn headers_of_every_format_are_read_without_decoding() {
    let rgba = samples::figure_cutout(7, 3, 1);
    let mut png = Vec::new();
    image::RgbImage::new(7, 3)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let jpeg = samples::jpeg(&samples::figure_photo(64, 48, 1), 90);
    for (bytes, format, w, h) in [
        (png, InputFormat::Png, 7, 3),
        (samples::png(&rgba), InputFormat::Png, 7, 3),
        (jpeg, InputFormat::Jpeg, 64, 48),
        (samples::webp(&rgba), InputFormat::WebP, 7, 3),
        (samples::gif(&rgba), InputFormat::Gif, 7, 3),
    ] {
        let h_ = probe(&bytes).unwrap();
        assert_eq!(
            (h_.format, h_.width, h_.height, h_.frames),
            (format, w, h, 1)
        );
        assert_eq!(h_.extent(), (w, h), "{format:?}");
    }
}

#[test]
fn a_cut_off_file_of_any_format_is_undecodable_before_any_decoder_runs() {
    let rgba = samples::figure_cutout(40, 30, 1);
    let jpeg = samples::jpeg(&samples::figure_photo(64, 48, 1), 90);
    for bytes in [
        jpeg,
        samples::png(&rgba),
        samples::webp(&rgba),
        samples::gif(&rgba),
    ] {
        for keep in [bytes.len() / 2, bytes.len() - 3] {
            let cut = hostile::truncated(&bytes, keep);
            assert_eq!(
                code(&cut),
                ErrorCode::InputUndecodable,
                "{keep} of {}",
                bytes.len()
            );
        }
    }
}

#[test]
fn a_jpeg_with_a_trailer_after_its_end_is_whole() {
    let mut trailer = samples::jpeg(&samples::figure_photo(64, 48, 1), 90);
    trailer.extend_from_slice(b"appended maker data");
    assert!(probe(&trailer).is_ok());
}

#[test]
fn jpeg_scans_are_counted_and_capped_before_decoding() {
    let ok = hostile::jpeg_many_scans(64, 64, 12);
    assert_eq!(probe(&ok).unwrap().scans, 12);
    let flood = hostile::jpeg_many_scans(6600, 5000, 2000);
    let e = probe(&flood).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitsComplexity, "{e}");
}

#[test]
fn an_icc_profile_is_measured_with_a_bounded_inflate_and_capped() {
    let small = hostile::png_with_icc(4000);
    assert_eq!(probe(&small).unwrap().icc_bytes, 4000);
    let huge = hostile::png_with_icc(40 << 20);
    assert!(huge.len() < 100_000, "{} bytes", huge.len());
    assert_eq!(code(&huge), ErrorCode::LimitsComplexity);
}

#[test]
fn a_frame_larger_than_its_screen_is_held_to_the_pixel_limits() {
    let gif = hostile::gif_frame_beyond_screen(14_000, 14_000);
    assert!(gif.len() < 100);
    assert_eq!(code(&gif), ErrorCode::LimitsPixels);
    let fits = probe(&hostile::gif_frame_beyond_screen(300, 200)).unwrap();
    assert_eq!((fits.width, fits.height, fits.extent()), (1, 1, (300, 200)));
    let webp = hostile::webp_frame_beyond_canvas(16_000);
    assert_eq!(code(&webp), ErrorCode::LimitsPixels);
}

#[test]
fn frames_are_counted_from_blocks_and_capped() {
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        for _ in 0..3 {
            let frame = image::Frame::new(image::RgbaImage::new(4, 4));
            enc.encode_frame(frame).unwrap();
        }
    }
    assert_eq!(probe(&gif).unwrap().frames, 3);
    assert_eq!(
        code(&hostile::gif_many_frames(1_500)),
        ErrorCode::LimitsFrames
    );
}

#[test]
fn bombs_and_empty_headers_are_refused_by_their_header() {
    assert_eq!(code(&hostile::png_bomb(40_000)), ErrorCode::LimitsPixels);
    assert_eq!(
        code(&hostile::png_header_only(0x7FFF_FFFF, 0x7FFF_FFFF)),
        ErrorCode::LimitsPixels
    );
    assert_eq!(
        code(&hostile::png_header_only(0, 10)),
        ErrorCode::InputUndecodable
    );
    assert_eq!(
        code(&hostile::png_header_only(100, 100)),
        ErrorCode::InputUndecodable
    );
}

#[test]
fn no_probe_error_quotes_the_file() {
    // Every error names the input and the structure, never bytes of the file.
    let canary = b"\xff\xd8\xffCANARY-CANARY-CANARY";
    let e = probe(canary).unwrap_err();
    assert!(!e.message.contains("CANARY"), "{e}");
}
