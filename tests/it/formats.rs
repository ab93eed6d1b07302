//! The formats phones send and feeds want, against the real worker on the real broker: HEIC,
//! AVIF and JPEG XL inputs made by the reference encoders (`heif-enc`, `avifenc`, `cjxl`) and
//! compared with the reference decoders' pixels (`heif-convert`, `avifdec`, `djxl`); rotated,
//! grid, 10-bit, alpha and animated variants; the new outputs (lossy WebP, AVIF, progressive
//! JPEG, palette PNG, ThumbHash) decoded by independent decoders (`dwebp`, `avifdec`, Pillow)
//! and compared by size and pixels; framing; the in-process executor's refusal of C codecs;
//! and hostile containers.

use crate::harness::*;
use crate::heif_file as heif;
use image::{DynamicImage, RgbImage, RgbaImage};
use midnit_worker::job::Limits;
use midnit_worker::protocol::{ErrorCode, OutputSpec, Reply, Status};
use midnit_worker::tools::samples;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a codec tool; the tools come from Debian's packages (`.ci/run` installs them).
fn tool(cmd: &str, args: &[&str]) {
    run_tool(cmd, args);
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn save(dir: &Path, name: &str, img: &DynamicImage) -> PathBuf {
    let p = path(dir, name);
    img.save(&p).unwrap();
    p
}

/// Encodes `src` with `cmd args… src out` (or `-o out` for heif-enc) and returns the file.
fn encode(dir: &Path, src: &Path, out: &str, cmd: &str, args: &[&str]) -> Vec<u8> {
    let o = path(dir, out);
    let mut all: Vec<&str> = args.to_vec();
    if cmd == "heif-enc" {
        all.extend(["-o", s(&o), s(src)]);
    } else {
        all.extend([s(src), s(&o)]);
    }
    tool(cmd, &all);
    std::fs::read(o).unwrap()
}

/// What the reference decoder makes of `file`, as RGBA.
fn reference(dir: &Path, file: &[u8], ext: &str) -> RgbaImage {
    let input = path(dir, &format!("ref-in.{ext}"));
    let out = path(dir, "ref-out.png");
    std::fs::write(&input, file).unwrap();
    let _ = std::fs::remove_file(&out);
    let cmd = match ext {
        "heic" => "heif-convert",
        "avif" => "avifdec",
        "jxl" => "djxl",
        "webp" => "dwebp",
        _ => unreachable!(),
    };
    if cmd == "dwebp" {
        tool(cmd, &[s(&input), "-o", s(&out)]);
    } else {
        tool(cmd, &[s(&input), s(&out)]);
    }
    image::open(&out).unwrap().to_rgba8()
}

/// Mean absolute difference per channel (colour channels only, or with alpha).
fn mean_diff(a: &RgbaImage, b: &RgbaImage, alpha: bool) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let n = if alpha { 4 } else { 3 };
    let total: u64 = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| {
            (0..n)
                .map(|c| u64::from(p.0[c].abs_diff(q.0[c])))
                .sum::<u64>()
        })
        .sum();
    total as f64 / (a.width() * a.height() * n as u32) as f64
}

/// One output of a reply: name, width, height, quality, bytes.
type Out = (String, u32, u32, Option<u8>, Vec<u8>);

/// One decoding case: what it is, the file, the reference decoder's extension, the size.
type Case<'a> = (&'a str, Vec<u8>, &'a str, (u32, u32));

fn ok_outputs(reply: &Reply) -> Vec<Out> {
    assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    reply
        .outputs
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                o.width,
                o.height,
                o.quality,
                o.data.to_vec(),
            )
        })
        .collect()
}

/// Renders `file` at full size to PNG and returns the pixels.
async fn render_png(client: &midnit_worker::client::Client, file: Vec<u8>) -> RgbaImage {
    let reply = render(
        client,
        &request(file, vec![output("full", "png", None, None)]),
    )
    .await;
    let outputs = ok_outputs(&reply);
    image::load_from_memory(&outputs[0].4).unwrap().to_rgba8()
}

fn photo(w: u32, h: u32, seed: u64) -> DynamicImage {
    DynamicImage::ImageRgb8(samples::figure_photo(w, h, seed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heic_avif_and_jpeg_xl_decode_as_their_reference_decoders_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let worker = spawn_worker("formats-decode").await;
    let client = worker.client().await;
    let src = photo(96, 64, 1);
    let src_png = save(d, "src.png", &src);
    let src_rgba = src.to_rgba8();
    // 16-bit source for the 10-bit files.
    let deep = DynamicImage::ImageRgb16(src.to_rgb16());
    let deep_png = save(d, "deep.png", &deep);
    let cutout = DynamicImage::ImageRgba8(samples::figure_cutout(96, 64, 2));
    let cutout_png = save(d, "cutout.png", &cutout);
    let square = photo(128, 128, 3);
    let square_png = save(d, "square.png", &square);

    let heic = encode(d, &src_png, "a.heic", "heif-enc", &["-q", "90"]);
    let heic10 = encode(
        d,
        &deep_png,
        "b.heic",
        "heif-enc",
        &["-q", "90", "-b", "10"],
    );
    let heic_alpha = encode(d, &cutout_png, "c.heic", "heif-enc", &["-q", "90"]);
    // A rotated HEIC (irot: a quarter turn anticlockwise) around heif-enc's coded image.
    let heic_rotated = heif::rotated(&heif::read_primary(&heic), 1);
    // A 2x2 grid of 64x64 tiles, each coded by heif-enc, declaring a 120x100 output.
    let tiles: Vec<heif::Coded> = (0..4)
        .map(|i| {
            let tile = square.crop_imm((i % 2) * 64, (i / 2) * 64, 64, 64);
            let p = save(d, &format!("tile{i}.png"), &tile);
            heif::read_primary(&encode(
                d,
                &p,
                &format!("tile{i}.heic"),
                "heif-enc",
                &["-q", "90"],
            ))
        })
        .collect();
    let heic_grid = heif::grid(&tiles, 2, 2, (120, 100));
    let avif = encode(
        d,
        &src_png,
        "a.avif",
        "avifenc",
        &["-s", "8", "--min", "0", "--max", "8"],
    );
    let avif10 = encode(
        d,
        &deep_png,
        "b.avif",
        "avifenc",
        &["-s", "8", "--min", "0", "--max", "8", "-d", "10"],
    );
    let avif_grid = encode(
        d,
        &square_png,
        "c.avif",
        "avifenc",
        &["-s", "8", "-g", "2x2"],
    );
    let avif_rotated = encode(
        d,
        &src_png,
        "d.avif",
        "avifenc",
        &["-s", "8", "--irot", "1"],
    );
    let jxl = encode(d, &src_png, "a.jxl", "cjxl", &["-d", "1"]);
    let jxl_lossless = encode(d, &src_png, "b.jxl", "cjxl", &["-d", "0"]);

    let cases: Vec<Case> = vec![
        ("heic", heic, "heic", (96, 64)),
        ("heic 10-bit", heic10, "heic", (96, 64)),
        ("heic alpha", heic_alpha, "heic", (96, 64)),
        ("heic rotated", heic_rotated, "heic", (64, 96)),
        ("heic grid", heic_grid, "heic", (120, 100)),
        ("avif", avif, "avif", (96, 64)),
        ("avif 10-bit", avif10, "avif", (96, 64)),
        ("avif grid", avif_grid, "avif", (128, 128)),
        ("avif rotated", avif_rotated, "avif", (64, 96)),
        ("jxl", jxl, "jxl", (96, 64)),
        ("jxl lossless", jxl_lossless.clone(), "jxl", (96, 64)),
    ];
    for (what, file, ext, size) in cases {
        eprintln!("case: {what}");
        let ours = render_png(&client, file.clone()).await;
        assert_eq!(ours.dimensions(), size, "{what}: size");
        let mut theirs = reference(d, &file, ext);
        if what == "avif rotated" {
            // avifdec writes the stored image; irot 1 is a quarter turn anticlockwise.
            theirs = DynamicImage::ImageRgba8(theirs).rotate270().to_rgba8();
        }
        let diff = mean_diff(&ours, &theirs, true);
        // The same picture as the reference decoder's, within rounding of the colour
        // conversion (8-bit reference output of a 10-bit file, say).
        assert!(
            diff <= 1.5,
            "{what}: mean difference {diff:.2} from {ext}'s decoder"
        );
        // And it is the source picture (rotated ones are checked against the reference only).
        if size == (96, 64) && !what.contains("alpha") {
            let d = mean_diff(&ours, &src_rgba, false);
            assert!(d < 8.0, "{what}: mean difference {d:.2} from the source");
        }
        if what == "heic alpha" {
            let a = mean_diff(&ours, &cutout.to_rgba8(), true);
            assert!(ours.pixels().any(|p| p.0[3] == 0), "{what}: alpha lost");
            assert!(a < 8.0, "{what}: mean difference {a:.2} from the source");
        }
    }
    // Lossless JPEG XL is exact.
    assert_eq!(render_png(&client, jxl_lossless).await, src_rgba);
    // The rotated HEIC is the source turned once, anticlockwise, and nothing more (no EXIF
    // orientation on top of irot).
    let turned = DynamicImage::ImageRgba8(src_rgba.clone())
        .rotate270()
        .to_rgba8();
    let heic_turned = render_png(
        &client,
        heif::rotated(
            &heif::read_primary(&std::fs::read(path(d, "a.heic")).unwrap()),
            1,
        ),
    )
    .await;
    assert!(mean_diff(&heic_turned, &turned, false) < 8.0);
    client.close().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animated_avif_renders_its_first_frame_and_its_frames_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frames: Vec<PathBuf> = [[200u8, 30, 30], [30, 200, 30], [30, 30, 200]]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            save(
                d,
                &format!("f{i}.png"),
                &DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 48, image::Rgb(*c))),
            )
        })
        .collect();
    let out = path(d, "anim.avif");
    tool(
        "avifenc",
        &[
            "-s",
            "10",
            s(&frames[0]),
            s(&frames[1]),
            s(&frames[2]),
            s(&out),
        ],
    );
    let anim = std::fs::read(&out).unwrap();
    let header =
        midnit_worker::intake::probe::probe_bytes(&anim, "photo", &Limits::default()).unwrap();
    assert_eq!(header.frames, 3);
    let worker = spawn_worker_with("formats-anim", |c| c.limits.max_frames = 2, None).await;
    let client = worker.client().await;
    let reply = render(
        &client,
        &request(anim.clone(), vec![output("t", "png", None, None)]),
    )
    .await;
    assert_eq!(error_code(&reply), "limits.frames");
    client.close().await;
    worker.stop().await;
    let worker = spawn_worker("formats-anim-ok").await;
    let client = worker.client().await;
    let first = render_png(&client, anim).await;
    let p = first.get_pixel(32, 24).0;
    assert!(
        p[0] > 150 && p[1] < 80 && p[2] < 80,
        "first frame is red: {p:?}"
    );
    client.close().await;
    worker.stop().await;
}

/// Pillow's view of a JPEG: (progressive, subsampling code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0).
fn pillow_jpeg(file: &Path) -> (bool, i32) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; from PIL import Image, JpegImagePlugin as J; im = Image.open(sys.argv[1]); \
             print(int(bool(im.info.get('progressive'))), J.get_sampling(im))",
            s(file),
        ])
        .output()
        .expect("python3 with Pillow (installed by .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace();
    (
        it.next().unwrap() == "1",
        it.next().unwrap().parse().unwrap(),
    )
}

/// Pillow's view of a PNG: (mode, colours used).
fn pillow_png(file: &Path) -> (String, usize) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; from PIL import Image; im = Image.open(sys.argv[1]); \
             print(im.mode, len(im.getcolors(100000) or []))",
            s(file),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().into(),
        it.next().unwrap().parse().unwrap(),
    )
}

fn spec(name: &str, format: &str, w: u32, more: impl FnOnce(&mut OutputSpec)) -> OutputSpec {
    let mut o = output(name, format, Some(w), None);
    more(&mut o);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_outputs_decode_in_independent_decoders_and_match_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let worker = spawn_worker("formats-out").await;
    let client = worker.client().await;
    let jpeg = samples::jpeg(&samples::figure_photo(1200, 900, 5), 92);
    let outputs = vec![
        spec("ref", "png", 400, |_| {}),
        spec("webp", "webp", 400, |_| {}),
        spec("webp-lossless", "webp", 400, |o| o.lossless = Some(true)),
        spec("avif", "avif", 400, |_| {}),
        spec("jpeg", "jpeg", 400, |_| {}),
        spec("jpeg444", "jpeg", 400, |o| {
            o.chroma = Some("444".into());
            o.progressive = Some(false);
        }),
        spec("palette", "png", 400, |o| o.palette = Some(true)),
        OutputSpec::new("hash", "thumbhash"),
    ];
    let reply = render(&client, &request(jpeg, outputs)).await;
    let out = ok_outputs(&reply);
    let get = |n: &str| out.iter().find(|o| o.0 == n).unwrap().clone();
    let ours = image::load_from_memory(&get("ref").4).unwrap().to_rgba8();
    assert_eq!(ours.dimensions(), (400, 300));
    let file = |name: &str, ext: &str| {
        let p = path(d, &format!("{name}.{ext}"));
        std::fs::write(&p, get(name).4).unwrap();
        p
    };
    // Lossy WebP, by dwebp: same size, close to the lossless rendering, much smaller.
    let (_, w, h, q, webp) = get("webp");
    assert_eq!(((w, h), q), ((400, 300), Some(80)));
    let decoded = reference(d, &webp, "webp");
    assert!(mean_diff(&decoded, &ours, false) < 4.0);
    assert!(
        webp.len() * 3 < get("webp-lossless").4.len(),
        "lossy is much smaller"
    );
    assert_eq!(get("webp-lossless").3, None);
    assert_eq!(
        reference(d, &get("webp-lossless").4, "webp"),
        ours,
        "lossless is exact"
    );
    // AVIF, by avifdec.
    let (_, w, h, q, avif) = get("avif");
    assert_eq!(((w, h), q), ((400, 300), Some(65)));
    let decoded = reference(d, &avif, "avif");
    assert!(mean_diff(&decoded, &ours, false) < 4.0);
    // JPEG: progressive with 4:2:0 by default; baseline 4:4:4 on request (Pillow reads both).
    assert_eq!(pillow_jpeg(&file("jpeg", "jpg")), (true, 2));
    assert_eq!(pillow_jpeg(&file("jpeg444", "jpg")), (false, 0));
    for name in ["jpeg", "jpeg444"] {
        let decoded = image::load_from_memory(&get(name).4).unwrap().to_rgba8();
        assert!(mean_diff(&decoded, &ours, false) < 4.0, "{name}");
    }
    // Palette PNG: mode P in Pillow, at most 256 colours, close to the picture.
    let (mode, colours) = pillow_png(&file("palette", "png"));
    assert_eq!(mode, "P");
    assert!((2..=256).contains(&colours), "{colours} colours");
    let decoded = image::load_from_memory(&get("palette").4)
        .unwrap()
        .to_rgba8();
    assert!(mean_diff(&decoded, &ours, false) < 6.0);
    // ThumbHash: a few dozen bytes whose average colour is the picture's, and whose aspect
    // ratio is the picture's.
    let (_, w, h, _, hash) = get("hash");
    assert_eq!((w, h), (100, 75));
    assert!((5..=40).contains(&hash.len()), "{} bytes", hash.len());
    let (r, g, b, _) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
    let avg = |c: usize| {
        ours.pixels().map(|p| f64::from(p.0[c])).sum::<f64>() / f64::from(400 * 300) / 255.0
    };
    for (got, c) in [(r, 0), (g, 1), (b, 2)] {
        assert!(
            (f64::from(got) - avg(c)).abs() < 0.08,
            "channel {c}: {got} vs {}",
            avg(c)
        );
    }
    let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
    assert!((ratio - 4.0 / 3.0).abs() < 0.15, "aspect {ratio}");
    client.close().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_lowers_the_quality_until_the_output_fits() {
    let worker = spawn_worker("formats-max-bytes").await;
    let client = worker.client().await;
    let photo = samples::jpeg(&samples::figure_photo(1600, 1200, 6), 95);
    let outputs = vec![
        spec("free", "jpeg", 800, |_| {}),
        spec("jpeg", "jpeg", 800, |o| o.max_bytes = Some(20_000)),
        spec("webp", "webp", 800, |o| o.max_bytes = Some(6_000)),
        spec("avif", "avif", 800, |o| {
            o.max_bytes = Some(3_000);
            o.speed = Some(10);
        }),
    ];
    let reply = render(&client, &request(photo.clone(), outputs)).await;
    let out = ok_outputs(&reply);
    let free = out[0].4.len();
    assert!(
        free > 20_000,
        "the test needs a photo larger than the target: {free}"
    );
    for (o, (max, default)) in out[1..]
        .iter()
        .zip([(20_000, 85), (6_000, 80), (3_000, 65)])
    {
        let q = o.3.unwrap();
        assert!(o.4.len() <= max, "{}: {} > {max}", o.0, o.4.len());
        assert!(q < default, "{}: quality {q} lowered from {default}", o.0);
        image::load_from_memory(&o.4).unwrap_or_else(|e| {
            // AVIF is not read by the image crate here: avifdec checks it below.
            assert_eq!(o.0, "avif", "{e}");
            DynamicImage::new_rgb8(1, 1)
        });
    }
    // A target no quality reaches: typed, and names the field.
    let reply = render(
        &client,
        &request(
            photo,
            vec![spec("tiny", "jpeg", 1600, |o| o.max_bytes = Some(300))],
        ),
    )
    .await;
    assert_eq!(error_code(&reply), "limits.output");
    assert!(reply.error.unwrap().message.contains("max_bytes"));
    client.close().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_take_gravity_a_focal_point_a_background_and_padding() {
    let worker = spawn_worker("formats-frame").await;
    let client = worker.client().await;
    // Top half red, bottom half blue.
    let img = RgbImage::from_fn(100, 200, |_, y| {
        if y < 100 {
            image::Rgb([230, 20, 20])
        } else {
            image::Rgb([20, 20, 230])
        }
    });
    let photo = samples::png(&img);
    let cover = |name: &str, more: fn(&mut OutputSpec)| {
        let mut o = output(name, "png", Some(50), Some(50));
        o.fit = Some("cover".into());
        more(&mut o);
        o
    };
    let outputs = vec![
        cover("north", |o| o.gravity = Some("north".into())),
        cover("south", |o| o.gravity = Some("south".into())),
        cover("focal", |o| o.focal = Some([0.5, 0.9])),
        {
            let mut o = output("boxed", "png", Some(80), Some(80));
            o.background = Some("#00ff00".into());
            o.padding = Some(4);
            o
        },
    ];
    let reply = render(&client, &request(photo, outputs)).await;
    let out = ok_outputs(&reply);
    let img = |i: usize| image::load_from_memory(&out[i].4).unwrap().to_rgba8();
    let centre = |i: usize| img(i).get_pixel(25, 25).0;
    assert!(
        centre(0)[0] > 200 && centre(0)[2] < 50,
        "north keeps the top"
    );
    assert!(
        centre(1)[2] > 200 && centre(1)[0] < 50,
        "south keeps the bottom"
    );
    assert!(
        centre(2)[2] > 200,
        "a focal point low in the picture keeps the bottom"
    );
    let boxed = img(3);
    assert_eq!(boxed.dimensions(), (88, 88));
    assert_eq!(boxed.get_pixel(0, 0).0, [0, 255, 0, 255], "padding");
    assert_eq!(
        boxed.get_pixel(10, 44).0,
        [0, 255, 0, 255],
        "letterbox beside the picture"
    );
    assert!(
        boxed.get_pixel(44, 20).0[0] > 200,
        "the picture in the middle"
    );
    client.close().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_executor_refuses_c_codecs_and_keeps_the_rust_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = save(d, "src.png", &photo(96, 64, 7));
    let heic = encode(d, &src, "a.heic", "heif-enc", &["-q", "80"]);
    let jxl = encode(d, &src, "a.jxl", "cjxl", &["-d", "1"]);
    let worker = spawn_worker_with(
        "formats-in-process",
        |c| c.executor.executor = midnit_worker::app::config::ExecutorKind::InProcess,
        None,
    )
    .await;
    let client = worker.client().await;
    let reply = render(
        &client,
        &request(heic, vec![output("t", "png", None, None)]),
    )
    .await;
    assert_eq!(error_code(&reply), "input.unsupported_format");
    let message = reply.error.unwrap().message;
    assert!(
        message.contains("inputs.photo") && message.contains("isolated"),
        "{message}"
    );
    let jpeg = samples::jpeg(&samples::figure_photo(96, 64, 8), 90);
    let reply = render(
        &client,
        &request(jpeg.clone(), vec![output("w", "webp", None, None)]),
    )
    .await;
    assert_eq!(error_code(&reply), "input.unsupported_format");
    assert!(reply.error.unwrap().message.contains("outputs.w"));
    // Pure-Rust codecs render in-process.
    let rust = vec![
        spec("avif", "avif", 64, |_| {}),
        spec("webp", "webp", 64, |o| o.lossless = Some(true)),
        spec("jpeg", "jpeg", 64, |_| {}),
        OutputSpec::new("hash", "thumbhash"),
    ];
    assert_eq!(
        ok_outputs(&render(&client, &request(jxl, rust.clone())).await).len(),
        4
    );
    assert_eq!(
        ok_outputs(&render(&client, &request(jpeg, rust)).await).len(),
        4
    );
    client.close().await;
    worker.stop().await;
}

/// The hostile variants of each container, with the code each must get.
// Each variant is built beside its own setup: one `vec![]` would separate them.
#[allow(clippy::vec_init_then_push)]
fn hostile_containers(d: &Path) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let src = save(d, "h.png", &photo(64, 64, 9));
    let heic = encode(d, &src, "h.heic", "heif-enc", &["-q", "50"]);
    let coded = heif::read_primary(&heic);
    let tiles = vec![coded.clone(); 4];
    let mut huge = coded.clone();
    huge.size = (100_000, 100_000);
    let mut out = Vec::new();
    out.push((
        "huge ispe",
        heif::write(&[heif::image_item(1, &huge, vec![])], 1, &[]),
        "limits.pixels",
    ));
    out.push((
        "grid larger than its tiles",
        heif::grid(&tiles, 2, 2, (400, 400)),
        "input.undecodable",
    ));
    out.push((
        "grid naming fewer tiles than its layout",
        heif::grid_with(&tiles, 2, 2, (128, 128), &[2, 3, 4], heif::ispe(128, 128)),
        "input.undecodable",
    ));
    out.push((
        "grid of 40x40 tiles",
        heif::grid_with(
            &tiles[..1],
            40,
            40,
            (2560, 2560),
            &[2; 1600],
            heif::ispe(2560, 2560),
        ),
        "limits.complexity",
    ));
    out.push((
        "grid naming a tile that does not exist",
        heif::grid_with(
            &tiles,
            2,
            2,
            (128, 128),
            &[2, 3, 4, 99],
            heif::ispe(128, 128),
        ),
        "input.undecodable",
    ));
    let whole = heif::write(&[heif::image_item(1, &coded, vec![])], 1, &[]);
    out.push((
        "truncated inside the image data",
        whole[..whole.len() - 40].to_vec(),
        "input.undecodable",
    ));
    let mut no_meta = whole.clone();
    let meta_at = no_meta.windows(4).position(|w| w == b"meta").unwrap();
    no_meta[meta_at..meta_at + 4].copy_from_slice(b"free");
    out.push(("no meta box", no_meta, "input.undecodable"));
    let mut no_ispe = coded.clone();
    no_ispe.size = (0, 0);
    out.push((
        "zero ispe",
        heif::write(&[heif::image_item(1, &no_ispe, vec![])], 1, &[]),
        "input.undecodable",
    ));
    // Coded data that is not HEVC at all, in a well-formed container: the decoder's error.
    let mut garbage = coded.clone();
    garbage.data = vec![0x55; garbage.data.len()];
    out.push((
        "garbage bitstream",
        heif::write(&[heif::image_item(1, &garbage, vec![])], 1, &[]),
        "input.undecodable",
    ));
    let avif = encode(d, &src, "h.avif", "avifenc", &["-s", "10"]);
    out.push((
        "truncated AVIF",
        avif[..avif.len() / 2].to_vec(),
        "input.undecodable",
    ));
    let jxl = encode(d, &src, "h.jxl", "cjxl", &["-d", "1"]);
    out.push((
        "truncated JPEG XL",
        jxl[..jxl.len() / 2].to_vec(),
        "input.undecodable",
    ));
    // A JPEG XL whose SizeHeader declares 2^30 x 2^30 pixels.
    out.push((
        "huge JPEG XL",
        vec![
            0xFF, 0x0A, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
        ],
        "limits.pixels",
    ));
    out
}

#[test]
fn hostile_containers_are_refused_by_the_probe_before_any_decoder() {
    let dir = tempfile::tempdir().unwrap();
    for (what, file, code) in hostile_containers(dir.path()) {
        let limits = Limits::default();
        match midnit_worker::intake::probe::probe_bytes(&file, "photo", &limits) {
            Err(e) => {
                // Only what the structure says: the decoder's bitstream errors come later.
                assert_eq!(e.code.as_str(), code, "{what}: {}", e.message);
                assert!(e.message.contains("inputs.photo"), "{what}: {}", e.message);
            }
            Ok(_) => assert!(
                matches!(
                    what,
                    "garbage bitstream" | "truncated AVIF" | "truncated JPEG XL"
                ),
                "{what}: passed the probe"
            ),
        }
    }
    // Formats switched off by configuration.
    let heic = std::fs::read(dir.path().join("h.heic")).unwrap();
    let off = Limits {
        accept_heic: false,
        ..Limits::default()
    };
    let e = midnit_worker::intake::probe::probe_bytes(&heic, "photo", &off).unwrap_err();
    assert_eq!(e.code, ErrorCode::InputUnsupportedFormat);
    assert!(e.message.contains("accept_heic"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_containers_get_typed_errors_from_the_worker_and_it_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker("formats-hostile").await;
    let client = worker.client().await;
    for (what, file, code) in hostile_containers(dir.path()) {
        let reply = render(
            &client,
            &request(file, vec![output("t", "png", Some(32), None)]),
        )
        .await;
        assert_eq!(error_code(&reply), code, "{what}: {:?}", reply.error);
    }
    let heic = std::fs::read(dir.path().join("h.heic")).unwrap();
    let reply = render(
        &client,
        &request(heic, vec![output("t", "png", Some(32), None)]),
    )
    .await;
    assert_eq!(ok_outputs(&reply)[0].1, 32);
    client.close().await;
    worker.stop().await;
}

/// libheif (and the HEVC and AV1 libraries behind it) costs a process about 4 ms of CPU to
/// load, so only the renderer of a HEIC or AVIF job loads it: neither the worker nor its
/// pre-started renderers map it. (That a HEIC job's renderer does is what the HEIC tests
/// above and the memory scan's HEIC job prove by decoding.)
#[test]
fn only_a_heic_or_avif_job_s_renderer_loads_libheif() {
    let worker = spawn_binary(&unique_queue("no-libheif"), 2);
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let renderers = worker.wait_for_children("two pre-started renderers", |c| c.len() >= 2);
    // A renderer maps its libraries when it starts; once it has warmed up its maps are final.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for pid in renderers {
        let m = maps(pid);
        assert!(m.contains("midnit-worker"), "renderer {pid} is running");
        assert!(
            !m.contains("libheif"),
            "pre-started renderer {pid} mapped libheif"
        );
    }
    assert!(!maps(worker.pid() as u32).contains("libheif"));
}
