//! The shrink-on-load JPEG decoder against independent decoders. Files are made by libjpeg's
//! `cjpeg` (baseline, optimised, progressive with successive approximation, restart markers,
//! 4:2:0 / 4:2:2 / 4:4:0 / 4:4:4, grey, RGB) and by the jpeg-encoder crate (a spectral-only
//! progressive script, CMYK). Each is decoded at 1/2, 1/4 and 1/8 and compared with
//!
//! - libjpeg's own scaled decode (`djpeg -scale 1/s`): same size, mean difference ≤ 1.5/255;
//! - the full-scale decode (zune-jpeg, via the image crate) averaged down by `s`: same size,
//!   mean difference ≤ 3/255 (a scaled transform samples each bin's centre; averaging is a
//!   slightly different low-pass, so this bound is looser).
//!
//! It also checks which scans a progressive file skips, that unsupported files are refused
//! (not misread), and that damaged files never panic it.

use crate::harness::run_tool;
use image::RgbImage;
use midnit_worker::render::decode::{decode_shrunk, Decoded};
use midnit_worker::render::jpeg::{self, Refusal};
use midnit_worker::render::pixels::Layout;
use midnit_worker::tools::samples;
use midnit_worker::wipe::Ledger;
use std::path::Path;

const BUDGET: usize = 1 << 30;

fn photo(w: u32, h: u32) -> RgbImage {
    samples::figure_photo(w, h, 7)
}

/// `cjpeg` with `args` over `img`.
fn cjpeg(dir: &Path, img: &RgbImage, args: &[&str]) -> Vec<u8> {
    let ppm = dir.join("in.ppm");
    let mut raw = format!("P6\n{} {}\n255\n", img.width(), img.height()).into_bytes();
    raw.extend_from_slice(img.as_raw());
    std::fs::write(&ppm, raw).unwrap();
    let mut all = vec!["-quality", "90"];
    all.extend_from_slice(args);
    all.push(ppm.to_str().unwrap());
    run_tool("cjpeg", &all)
}

/// Interleaved 8-bit samples, RGB or grey, with their channel count.
struct Plain {
    w: usize,
    h: usize,
    channels: usize,
    px: Vec<u8>,
}

fn ours(file: &[u8], s: u32) -> (Plain, jpeg::Stats) {
    let scaled = jpeg::decode(file, s, BUDGET, "test", &Ledger::new()).unwrap();
    let p = &scaled.pixels;
    let plain = Plain {
        w: p.width as usize,
        h: p.height as usize,
        channels: p.layout.channels(),
        px: p.buf.as_slice().to_vec(),
    };
    (plain, scaled.stats)
}

/// libjpeg's decode at 1/`s` (PPM or PGM on stdout).
fn djpeg(dir: &Path, file: &[u8], s: u32) -> Plain {
    let f = dir.join("in.jpg");
    std::fs::write(&f, file).unwrap();
    let scale = format!("1/{s}");
    let out = run_tool("djpeg", &["-scale", &scale, f.to_str().unwrap()]);
    parse_pnm(&out)
}

/// A binary PPM (P6) or PGM (P5) with maxval 255, as djpeg writes them.
fn parse_pnm(data: &[u8]) -> Plain {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&data[start..at]).unwrap().to_string());
    }
    let channels = match fields[0].as_str() {
        "P6" => 3,
        "P5" => 1,
        other => panic!("djpeg wrote {other}"),
    };
    assert_eq!(fields[3], "255");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let px = data[at + 1..].to_vec();
    assert_eq!(px.len(), w * h * channels);
    Plain { w, h, channels, px }
}

/// The full-scale decode, averaged over `s`×`s` bins (partial bins at the edges).
fn full_averaged(file: &[u8], s: u32, channels: usize) -> Plain {
    let img = image::load_from_memory(file).unwrap();
    let (fw, fh) = (img.width() as usize, img.height() as usize);
    let full = if channels == 1 {
        img.to_luma8().into_raw()
    } else {
        img.to_rgb8().into_raw()
    };
    let s = s as usize;
    let (w, h) = (fw.div_ceil(s), fh.div_ceil(s));
    let mut px = vec![0u8; w * h * channels];
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                let (mut sum, mut n) = (0u32, 0u32);
                for yy in y * s..((y + 1) * s).min(fh) {
                    for xx in x * s..((x + 1) * s).min(fw) {
                        sum += u32::from(full[(yy * fw + xx) * channels + c]);
                        n += 1;
                    }
                }
                px[(y * w + x) * channels + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    Plain { w, h, channels, px }
}

fn mean_diff(a: &Plain, b: &Plain) -> f64 {
    assert_eq!(
        (a.w, a.h, a.channels),
        (b.w, b.h, b.channels),
        "sizes and layouts"
    );
    let sum: u64 =
        a.px.iter()
            .zip(&b.px)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
    sum as f64 / a.px.len() as f64
}

/// Every scale of `file` against libjpeg's scaled decode and the averaged full decode.
fn check(dir: &Path, label: &str, file: &[u8], scales: &[u32]) -> Vec<jpeg::Stats> {
    let mut stats = Vec::new();
    for &s in scales {
        let (got, st) = ours(file, s);
        let lib = djpeg(dir, file, s);
        let avg = full_averaged(file, s, got.channels);
        let (d_lib, d_avg) = (mean_diff(&got, &lib), mean_diff(&got, &avg));
        eprintln!("{label} 1/{s}: vs djpeg {d_lib:.3}, vs averaged full decode {d_avg:.3}, {st:?}");
        assert!(
            d_lib <= 1.5,
            "{label} at 1/{s}: {d_lib:.3}/255 from libjpeg's scaled decode"
        );
        assert!(
            d_avg <= 3.0,
            "{label} at 1/{s}: {d_avg:.3}/255 from the full decode"
        );
        stats.push(st);
    }
    stats
}

#[test]
fn every_layout_cjpeg_writes_decodes_like_libjpeg_at_every_scale() {
    let dir = tempfile::tempdir().unwrap();
    // Odd sizes: partial MCUs on both edges.
    let img = photo(1203, 803);
    let cases: &[(&str, &[&str])] = &[
        ("baseline 4:2:0", &["-sample", "2x2"]),
        ("baseline 4:2:2", &["-sample", "2x1"]),
        ("baseline 4:4:0", &["-sample", "1x2"]),
        ("baseline 4:4:4", &["-sample", "1x1"]),
        ("optimised Huffman", &["-optimize"]),
        ("restart every 2 rows", &["-restart", "2"]),
        ("restart every 7 MCUs", &["-restart", "7B"]),
        ("progressive 4:2:0", &["-progressive"]),
        ("progressive 4:4:4", &["-progressive", "-sample", "1x1"]),
        (
            "progressive 4:2:0, restarts",
            &["-progressive", "-restart", "5B"],
        ),
        ("grey", &["-grayscale"]),
        (
            "grey progressive",
            &["-grayscale", "-progressive", "-restart", "3B"],
        ),
        ("RGB", &["-rgb"]),
    ];
    for (label, args) in cases {
        let file = cjpeg(dir.path(), &img, args);
        let stats = check(dir.path(), label, &file, &[2, 4, 8]);
        let progressive = args.contains(&"-progressive");
        assert!(
            stats.iter().all(|s| s.progressive == progressive),
            "{label}"
        );
        if progressive {
            // libjpeg's script refines bands 1-63, so 1/2 and 1/4 need all of them. At 1/8 a
            // full-resolution component needs only its DC: every AC scan but those of 4:2:0
            // chroma (twice the samples per block) is skipped, leaving the two DC scans and,
            // in 4:2:0, chroma's four.
            let eighth = stats[2];
            let kept = if label.contains("4:2:0") { 2 + 4 } else { 2 };
            assert!(eighth.scans >= 6, "{label}: {eighth:?}");
            assert_eq!(eighth.skipped, eighth.scans - kept, "{label}: {eighth:?}");
            assert!(
                stats[..2].iter().all(|s| s.skipped == 0),
                "{label}: {stats:?}"
            );
        } else {
            assert!(stats.iter().all(|s| s.skipped == 0), "{label}");
        }
    }
}

#[test]
fn a_spectral_only_progressive_file_is_read_only_as_far_as_the_scale_needs() {
    use jpeg_encoder::{ColorType, Encoder};
    let dir = tempfile::tempdir().unwrap();
    let img = photo(900, 601);
    let mut file = Vec::new();
    let mut enc = Encoder::new(&mut file, 90);
    enc.set_progressive(true);
    enc.encode(img.as_raw(), 900, 601, ColorType::Rgb).unwrap();
    let stats = check(dir.path(), "jpeg-encoder progressive", &file, &[2, 4, 8]);
    let (half, quarter, eighth) = (stats[0], stats[1], stats[2]);
    assert!(quarter.skipped > half.skipped, "{stats:?}");
    assert!(eighth.skipped > quarter.skipped, "{stats:?}");
}

#[test]
fn what_the_decoder_does_not_handle_is_refused_and_still_decodes_through_the_pipeline() {
    use jpeg_encoder::{ColorType, Encoder};
    use midnit_worker::intake::{intake, Meta};
    use midnit_worker::job::Limits;
    use midnit_worker::protocol::encode_request;
    use midnit_worker::wipe::SecretBuf;
    let dir = tempfile::tempdir().unwrap();
    let img = photo(640, 480);
    // CMYK (no profile), arithmetic coding, 4:1:1 at 1/2 (chroma would need 16 samples).
    let mut cmyk = Vec::new();
    let ink: Vec<u8> = img
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    Encoder::new(&mut cmyk, 90)
        .encode(&ink, 640, 480, ColorType::Cmyk)
        .unwrap();
    let arith = cjpeg(dir.path(), &img, &["-arithmetic"]);
    let h411 = cjpeg(dir.path(), &img, &["-sample", "4x1"]);
    for (label, file, s) in [
        ("CMYK", &cmyk, 4),
        ("arithmetic", &arith, 4),
        ("4:1:1", &h411, 2),
    ] {
        let refused = jpeg::decode(file, s, BUDGET, "t", &Ledger::new()).unwrap_err();
        assert!(
            matches!(refused, Refusal::Unsupported(_)),
            "{label}: {refused:?}"
        );
    }
    // 4:1:1 still decodes here at 1/4 (its chroma block gives 8 samples).
    check(dir.path(), "4:1:1", &h411, &[4, 8]);
    // Through the pipeline's decode, CMYK falls back to a full decode of the right size.
    let limits = Limits::default();
    let ledger = Ledger::new();
    let request = samples::thumbnail_request(cmyk.clone(), "jpeg", 160);
    let body = SecretBuf::new(encode_request(&request), "request.body", &ledger);
    let job = intake(body, &Meta::default(), &limits, None, &ledger).unwrap();
    let d: Decoded = decode_shrunk(&job.inputs[0], &limits, &ledger, &|_, _| 4).unwrap();
    assert_eq!((d.pixels.width, d.pixels.height), (640, 480));
    assert_eq!(d.pixels.layout, Layout::Rgb8);
}

#[test]
fn damaged_files_are_refused_or_decoded_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let img = photo(203, 151);
    let files = [
        cjpeg(dir.path(), &img, &["-restart", "1B"]),
        cjpeg(dir.path(), &img, &["-progressive", "-restart", "2B"]),
        cjpeg(dir.path(), &img, &["-grayscale", "-progressive"]),
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let (mut ok, mut refused) = (0, 0);
    for file in &files {
        // Every truncation point in steps, and random byte changes.
        for cut in (0..file.len()).step_by(97) {
            assert!(jpeg::decode(&file[..cut], 4, BUDGET, "t", &Ledger::new()).is_err());
            refused += 1;
        }
        for _ in 0..150 {
            let mut bad = file.clone();
            for _ in 0..1 + next(4) {
                let at = next(bad.len());
                bad[at] = next(256) as u8;
            }
            for s in [2, 4, 8] {
                match jpeg::decode(&bad, s, BUDGET, "t", &Ledger::new()) {
                    Ok(d) => {
                        // Whatever it decoded has the size its (possibly changed) header says.
                        assert!(d.pixels.width > 0 && d.pixels.height > 0);
                        ok += 1;
                    }
                    Err(_) => refused += 1,
                }
            }
        }
    }
    eprintln!("damaged files: {ok} decoded, {refused} refused");
    assert!(refused > 0 && ok > 0);
}
