//! Colour and pixel formats through intake + the pipeline (in-process, no broker): CMYK,
//! 16-bit, grey, palette and grey+alpha inputs render right; ICC profiles are converted or kept.

use image::{ImageEncoder, Rgb};
use midnit_worker::intake::{intake, Meta};
use midnit_worker::job::Limits;
use midnit_worker::protocol::{encode_request, JobError, OutputSpec, Request};
use midnit_worker::render::{render, Rendered};
use midnit_worker::tools::samples;
use midnit_worker::wipe::{Ledger, SecretBuf};

fn run(input: Vec<u8>, format: &str) -> Result<Rendered, JobError> {
    let req = Request {
        preset: None,
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into(),
        recipe: None,
        outputs: vec![OutputSpec {
            name: "o".into(),
            format: format.into(),
            // In this process (no single-use renderer) WebP is the Rust lossless encoder.
            lossless: (format == "webp").then_some(true),
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
    let out = run(midnit_worker::tools::samples::png(&grey), "jpeg").unwrap();
    assert!(close(center_rgb(&out), [90, 90, 90], 3));

    let la = image::GrayAlphaImage::from_pixel(8, 8, image::LumaA([0, 0]));
    let out = run(midnit_worker::tools::samples::png(&la), "jpeg").unwrap();
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
fn a_profile_the_converter_cannot_read_is_kept_not_dropped() {
    let unknown = b"a profile from an ICC version the converter cannot parse".to_vec();
    for format in ["png", "jpeg", "webp"] {
        let out = run(png_with_profile([200, 60, 40], unknown.clone()), format).unwrap();
        let bytes = out.outputs[0].data.as_slice();
        let decoded = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .unwrap();
        let mut decoder = decoded.into_decoder().unwrap();
        use image::ImageDecoder;
        let kept = decoder.icc_profile().unwrap();
        assert_eq!(kept.as_deref(), Some(&unknown[..]), "{format}");
    }
}

/// A synthetic CMYK profile whose colours have nothing to do with the naive formula: each
/// corner of the ink cube gets its own colour, so the result shows both that the profile was
/// used and that ink amounts (not inverted values) were fed to it.
fn odd_cmyk_profile() -> Vec<u8> {
    use moxcms::{
        ColorProfile, DataColorSpace, LutDataType, LutStore, LutType, LutWarehouse, Matrix3d,
        ProfileClass,
    };
    let identity: Vec<u8> = (0..=255).collect();
    let lut = LutDataType {
        num_input_channels: 4,
        num_output_channels: 3,
        num_clut_grid_points: 2,
        matrix: Matrix3d::IDENTITY,
        num_input_table_entries: 256,
        num_output_table_entries: 256,
        input_table: LutStore::Store8(identity.repeat(4)),
        clut_table: LutStore::Store8(
            (0..16u8)
                .flat_map(|i| [40 + i * 12, 255 - i * 15, i * 16])
                .collect(),
        ),
        output_table: LutStore::Store8(identity.repeat(3)),
        lut_type: LutType::Lut8,
    };
    let srgb = ColorProfile::new_srgb();
    let mut profile = ColorProfile::default();
    profile.color_space = DataColorSpace::Cmyk;
    profile.pcs = DataColorSpace::Lab;
    profile.profile_class = ProfileClass::OutputDevice;
    profile.white_point = srgb.white_point;
    profile.media_white_point = srgb.media_white_point;
    profile.lut_a_to_b_perceptual = Some(LutWarehouse::Lut(lut));
    profile.encode().unwrap()
}

#[test]
fn a_cmyk_jpeg_with_a_cmyk_profile_is_converted_through_that_profile() {
    let cmyk: Vec<u8> = [0u8, 255, 255, 0].repeat(16 * 16); // red ink, by the naive formula
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 95);
    let icc = odd_cmyk_profile();
    enc.add_icc_profile(&icc).unwrap();
    enc.encode(&cmyk, 16, 16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let out = run(jpeg, "png").unwrap();
    let px = center_rgb(&out);
    let through_profile = |ink: [u8; 4]| {
        let profile = moxcms::ColorProfile::new_from_slice(&icc).unwrap();
        let srgb = moxcms::ColorProfile::new_srgb();
        let t = profile
            .create_transform_8bit(
                moxcms::Layout::Rgba,
                &srgb,
                moxcms::Layout::Rgb,
                Default::default(),
            )
            .unwrap();
        let mut rgb = [0u8; 3];
        t.transform(&ink, &mut rgb).unwrap();
        rgb
    };
    let expected = through_profile([0, 255, 255, 0]);
    let inverted = through_profile([255, 0, 0, 255]);
    assert!(
        !close(expected, inverted, 20),
        "the test profile must tell the two apart"
    );
    assert!(
        close(px, expected, 4),
        "through the profile: got {px:?}, want {expected:?}"
    );
    assert!(!close(px, [255, 0, 0], 40), "not the naive red: {px:?}");
    let has_iccp = out.outputs[0]
        .data
        .as_slice()
        .windows(4)
        .any(|w| w == b"iCCP");
    assert!(!has_iccp, "a CMYK profile never lands on an RGB output");
}

fn run_with(input: Vec<u8>, limits: &Limits, recipe: bool) -> Result<Rendered, JobError> {
    let req = Request {
        preset: None,
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(input))].into(),
        recipe: recipe.then(|| ciborium::Value::Map(vec![])),
        outputs: vec![OutputSpec {
            name: "o".into(),
            format: "png".into(),
            width: Some(16),
            ..Default::default()
        }],
    };
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&req), "request.body", &ledger);
    let job = intake(body, &Meta::default(), limits, None, &ledger)?;
    render(&job, limits)
}

#[test]
fn size_limits_on_the_body_and_each_input_are_enforced_before_decoding() {
    let photo = midnit_worker::tools::samples::jpeg(
        &midnit_worker::tools::samples::figure_photo(64, 48, 1),
        90,
    );
    let small_body = Limits {
        max_body_bytes: 1_000,
        ..Limits::default()
    };
    let err = run_with(photo.clone(), &small_body, false).unwrap_err();
    assert_eq!(err.code.as_str(), "request.too_large");
    let small_input = Limits {
        max_input_bytes: 1_000,
        ..Limits::default()
    };
    let err = run_with(photo.clone(), &small_input, false).unwrap_err();
    assert_eq!(err.code.as_str(), "input.too_large");
    let err = run_with(photo, &Limits::default(), true).unwrap_err();
    assert_eq!(err.code.as_str(), "recipe.invalid");
}

#[test]
fn twelve_hundred_corrupted_inputs_get_typed_errors_and_never_panic() {
    use midnit_worker::tools::samples::{figure_cutout, figure_photo, gif, jpeg, png, webp, Rng};
    let seeds = [
        jpeg(&figure_photo(48, 32, 1), 85),
        png(&figure_cutout(32, 32, 2)),
        webp(&figure_cutout(32, 32, 3)),
        gif(&figure_cutout(32, 32, 4)),
    ];
    let mut rng = Rng::new(42);
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in &seeds {
        for _ in 0..300 {
            let mut bytes = seed.clone();
            for _ in 0..1 + rng.next_u64() % 8 {
                let at = (rng.next_u64() as usize) % bytes.len();
                bytes[at] = rng.byte();
            }
            if rng.next_u64().is_multiple_of(4) {
                let keep = (rng.next_u64() as usize) % bytes.len();
                bytes.truncate(keep.max(1));
            }
            let outcome = match run_with(bytes, &Limits::default(), false) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.code.as_str().to_string(),
            };
            *outcomes.entry(outcome).or_insert(0) += 1;
        }
    }
    assert!(!outcomes.contains_key("internal"), "{outcomes:?}");
    assert!(
        outcomes.len() > 1,
        "mutations should produce errors too: {outcomes:?}"
    );
}

fn render_outputs(input: &[u8], outputs: Vec<OutputSpec>) -> Rendered {
    let req = Request {
        preset: None,
        v: 1,
        inputs: [(
            "photo".to_string(),
            serde_bytes::ByteBuf::from(input.to_vec()),
        )]
        .into(),
        recipe: None,
        outputs,
    };
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&req), "request.body", &ledger);
    let job = intake(body, &Meta::default(), &Limits::default(), None, &ledger).unwrap();
    render(&job, &Limits::default()).unwrap()
}

fn thumb(name: &str, fit: &str, w: u32, h: u32) -> OutputSpec {
    OutputSpec {
        name: name.into(),
        format: "png".into(),
        width: Some(w),
        height: Some(h),
        fit: Some(fit.into()),
        ..Default::default()
    }
}

#[test]
fn shrink_on_load_gives_the_same_sizes_and_nearly_the_same_pixels_as_a_full_decode() {
    // A 2400x1800 photo, shown rotated (EXIF 6), to small thumbnails: decoded at 1/4 scale.
    let photo = samples::with_exif(
        &samples::jpeg(&samples::figure_photo(2400, 1800, 17), 90),
        6,
    );
    let small = vec![
        thumb("contain", "contain", 300, 300),
        thumb("cover", "cover", 256, 200),
    ];
    let shrunk = render_outputs(&photo, small.clone());
    // The same outputs next to a full-size one: the job must decode at full scale.
    let mut with_full = small;
    with_full.push(OutputSpec {
        name: "full".into(),
        format: "jpeg".into(),
        ..Default::default()
    });
    let full = render_outputs(&photo, with_full);
    for i in 0..2 {
        let a = image::load_from_memory(shrunk.outputs[i].data.as_slice())
            .unwrap()
            .to_rgb8();
        let b = image::load_from_memory(full.outputs[i].data.as_slice())
            .unwrap()
            .to_rgb8();
        assert_eq!(a.dimensions(), b.dimensions(), "output {i}");
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        let mean = diff as f64 / a.as_raw().len() as f64;
        // DCT-domain scaling then Lanczos against Lanczos from full size: differences are
        // small resampling noise, not a different picture.
        assert!(mean < 2.5, "output {i}: mean difference {mean:.2}/255");
    }
    assert_eq!(
        shrunk.outputs[0].width, 225,
        "contain 1800x2400 (rotated) into 300x300"
    );
    assert_eq!(shrunk.outputs[0].height, 300);
}
