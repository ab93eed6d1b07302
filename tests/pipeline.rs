//! Colour and pixel formats through intake + the pipeline (in-process, no broker): CMYK,
//! 16-bit, grey, palette and grey+alpha inputs render right; ICC profiles are converted or kept.

use image::{ImageEncoder, Rgb};
use midnit_worker::config::Limits;
use midnit_worker::intake::{intake, Meta};
use midnit_worker::pipeline::{render, Rendered};
use midnit_worker::protocol::{encode_request, JobError, OutputSpec, Request};
use midnit_worker::wipe::{Ledger, SecretBuf};

fn run(input: Vec<u8>, format: &str) -> Result<Rendered, JobError> {
    let req = Request {
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into(),
        recipe: None,
        outputs: vec![OutputSpec {
            name: "o".into(),
            format: format.into(),
            ..Default::default()
        }],
    };
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&req), "request.body", &ledger);
    let job = intake(body, &Meta::default(), &Limits::default(), None, &ledger)?;
    render(&job, &Limits::default())
}

fn center_rgb(r: &Rendered) -> [u8; 3] {
    let img = image::load_from_memory(r.outputs[0].data.as_slice())
        .unwrap()
        .to_rgb8();
    img.get_pixel(img.width() / 2, img.height() / 2).0
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(&x, y)| (i32::from(x) - i32::from(y)).abs() <= tol)
}

#[test]
fn a_cmyk_jpeg_renders_in_its_colours() {
    // Pure magenta+yellow ink is red.
    let cmyk: Vec<u8> = [0u8, 255, 255, 0].repeat(16 * 16);
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&cmyk, 16, 16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let out = center_rgb(&run(jpeg, "png").unwrap());
    assert!(out[0] > 200 && out[1] < 60 && out[2] < 60, "{out:?}");
}

#[test]
fn sixteen_bit_grey_palette_and_grey_alpha_pngs_render_right() {
    let rgb16 = image::ImageBuffer::from_pixel(8, 8, Rgb([65535u16, 32768, 0]));
    let mut png16 = Vec::new();
    image::DynamicImage::ImageRgb16(rgb16)
        .write_to(
            &mut std::io::Cursor::new(&mut png16),
            image::ImageFormat::Png,
        )
        .unwrap();
    assert!(close(
        center_rgb(&run(png16, "png").unwrap()),
        [255, 128, 0],
        1
    ));

    let grey = image::GrayImage::from_pixel(8, 8, image::Luma([90]));
    let out = run(midnit_worker::samples::png(&grey), "jpeg").unwrap();
    assert!(close(center_rgb(&out), [90, 90, 90], 3));

    let la = image::GrayAlphaImage::from_pixel(8, 8, image::LumaA([0, 0]));
    let out = run(midnit_worker::samples::png(&la), "jpeg").unwrap();
    assert!(
        close(center_rgb(&out), [255, 255, 255], 2),
        "transparent flattens onto white"
    );

    let mut palette = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut palette, 8, 8);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![0, 0, 0, 20, 200, 60]);
        enc.write_header()
            .unwrap()
            .write_image_data(&[1; 64])
            .unwrap();
    }
    assert!(close(
        center_rgb(&run(palette, "png").unwrap()),
        [20, 200, 60],
        0
    ));
}

fn png_with_profile(rgb: [u8; 3], icc: Vec<u8>) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, Rgb(rgb));
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_icc_profile(icc).unwrap();
    enc.write_image(img.as_raw(), 8, 8, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn a_display_p3_photo_is_converted_to_srgb() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let out = run(png_with_profile([200, 60, 40], p3), "png").unwrap();
    let px = center_rgb(&out);
    // P3 red is more saturated than sRGB red: converted, red rises and green falls.
    assert!(px[0] > 210 && px[1] < 60, "{px:?}");
    let has_iccp = out.outputs[0]
        .data
        .as_slice()
        .windows(4)
        .any(|w| w == b"iCCP");
    assert!(!has_iccp, "converted output is plain sRGB");
}

#[test]
fn a_profile_that_cannot_be_converted_is_kept_not_dropped() {
    // A grey profile on RGB pixels does not describe them: it cannot be converted, so it is
    // embedded unchanged.
    let grey = moxcms::ColorProfile::new_gray_with_gamma(2.2)
        .encode()
        .unwrap();
    for format in ["png", "jpeg", "webp"] {
        let out = run(png_with_profile([200, 60, 40], grey.clone()), format).unwrap();
        let decoded = image::ImageReader::new(std::io::Cursor::new(out.outputs[0].data.as_slice()))
            .with_guessed_format()
            .unwrap();
        let mut decoder = decoded.into_decoder().unwrap();
        use image::ImageDecoder;
        assert_eq!(
            decoder.icc_profile().unwrap().as_deref(),
            Some(&grey[..]),
            "{format}"
        );
    }
}
