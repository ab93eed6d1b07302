//! Recipes: the documented examples against their committed renders (golden images), the
//! JSON Schema, determinism, every limit and malformed recipe, and every example through the
//! real broker and the real worker binary.

use crate::harness::{amqp_url, delete_queue, spawn_binary, unique_queue, REPLY};
use midnit_worker::app::config::Config;
use midnit_worker::client::Client;
use midnit_worker::job::Limits;
use midnit_worker::protocol::{ErrorCode, Reply, Status};
use midnit_worker::tools::gallery;
use midnit_worker::tools::request_file;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn examples_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(gallery::DIR);
    gallery::ensure_photos(&dir).expect("sample photos are written");
    dir
}

fn examples() -> Vec<PathBuf> {
    let files = gallery::requests(&examples_dir()).unwrap();
    assert!(files.len() >= 8, "recipe examples: {}", files.len());
    files
}

async fn render(request: &Path) -> Reply {
    gallery::render(&Config::default(), request)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

// ---------------------------------------------------------------------------------------------
// Golden images
// ---------------------------------------------------------------------------------------------

/// Largest per-channel difference allowed between a render and its reference.
///
/// On one machine a recipe renders to the same bytes every time (see the determinism tests),
/// so a drift is a change of code. The references are decoded and compared pixel by pixel
/// rather than byte by byte so that an invisible difference — the resizer's SIMD path on
/// another CPU, or a codec release that rounds one DCT coefficient differently, each moving a
/// few pixels by a level or two — does not fail, while anything a person could see does: a
/// layer moved by one pixel changes edge pixels by 50 or more, a missing glyph by 200, and a
/// colour shifted by 1% over an area moves the mean past the second bound.
const MAX_CHANNEL_DIFF: u8 = 8;
/// Largest mean absolute difference per channel.
const MAX_MEAN_DIFF: f64 = 0.35;

fn diff_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("golden-diff")
}

/// Compares two encoded images; on drift writes the render and an amplified diff image and
/// returns a message naming them.
fn compare(name: &str, actual: &[u8], reference: &[u8]) -> Result<(), String> {
    let a = image::load_from_memory(actual).unwrap().to_rgba8();
    let r = image::load_from_memory(reference).unwrap().to_rgba8();
    let (max, mean) = if a.dimensions() == r.dimensions() {
        let diffs: Vec<u8> = a
            .as_raw()
            .iter()
            .zip(r.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .collect();
        let sum: u64 = diffs.iter().map(|&d| u64::from(d)).sum();
        let max = diffs.iter().copied().max().unwrap_or(0);
        (max, sum as f64 / diffs.len() as f64)
    } else {
        (255, 255.0)
    };
    if max <= MAX_CHANNEL_DIFF && mean <= MAX_MEAN_DIFF {
        return Ok(());
    }
    let dir = diff_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let actual_path = dir.join(name);
    std::fs::write(&actual_path, actual).unwrap();
    let diff_path = dir.join(format!("{name}.diff.png"));
    if a.dimensions() == r.dimensions() {
        let diff = image::RgbaImage::from_fn(a.width(), a.height(), |x, y| {
            let (p, q) = (a.get_pixel(x, y).0, r.get_pixel(x, y).0);
            let d = |i: usize| p[i].abs_diff(q[i]).saturating_mul(16);
            image::Rgba([d(0), d(1), d(2), 255])
        });
        diff.save(&diff_path).unwrap();
    }
    Err(format!(
        "{name}: {}x{} vs reference {}x{}, max channel diff {max}, mean {mean:.3} \
         (limits {MAX_CHANNEL_DIFF}, {MAX_MEAN_DIFF}); render at {}, diff ×16 at {}. \
         If the change is intended: cargo run --release -- gallery",
        a.width(),
        a.height(),
        r.width(),
        r.height(),
        actual_path.display(),
        diff_path.display()
    ))
}

#[tokio::test]
async fn every_example_matches_its_committed_render() {
    let out = examples_dir().join("out");
    let mut failures = Vec::new();
    let mut compared = 0;
    for request in examples() {
        let reply = render(&request).await;
        for o in &reply.outputs {
            let file = gallery::output_file(&request, &o.name, &o.format);
            let reference = std::fs::read(out.join(&file)).unwrap_or_else(|e| {
                panic!("reference {file}: {e} (cargo run --release -- gallery)")
            });
            if let Err(e) = compare(&file, &o.data, &reference) {
                failures.push(e);
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 10, "outputs compared: {compared}");
}

#[test]
fn the_golden_comparison_catches_a_one_pixel_shift_and_a_faint_tint() {
    let reference = std::fs::read(examples_dir().join("out/showcase-card-card.jpg")).unwrap();
    let img = image::load_from_memory(&reference).unwrap().to_rgb8();
    let encode = |img: &image::RgbImage| midnit_worker::tools::samples::png(img);
    assert!(compare("same.png", &encode(&img), &encode(&img)).is_ok());
    let shifted = image::RgbImage::from_fn(img.width(), img.height(), |x, y| {
        *img.get_pixel(x.saturating_sub(1), y)
    });
    let err = compare("shifted.png", &encode(&shifted), &encode(&img)).unwrap_err();
    assert!(err.contains("diff ×16"), "{err}");
    assert!(diff_dir().join("shifted.png.diff.png").exists());
    let mut tinted = img.clone();
    for p in tinted.pixels_mut() {
        p.0[2] = p.0[2].saturating_add(3);
    }
    assert!(compare("tinted.png", &encode(&tinted), &encode(&img)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_request_renders_the_same_bytes_twice() {
    for request in examples() {
        let (a, b) = (render(&request).await, render(&request).await);
        for (x, y) in a.outputs.iter().zip(&b.outputs) {
            assert!(x.data == y.data, "{} {}", request.display(), x.name);
        }
    }
}

#[test]
fn renders_on_one_thread_and_on_four_at_once_are_identical() {
    // The compose stage runs on its calling thread; JPEG decoding uses worker threads of its
    // own. Rendering alone, then four at once on four threads (so every decoder thread and the
    // allocator are contended), must give the same bytes.
    let requests: Vec<PathBuf> = examples()
        .into_iter()
        .filter(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap();
            ["showcase-card", "shelf-3x3", "wallpaper", "filter-showcase"].contains(&name)
        })
        .collect();
    assert_eq!(requests.len(), 4);
    let run = |p: PathBuf| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let reply = rt.block_on(render(&p));
            reply
                .outputs
                .into_iter()
                .map(|o| o.data.into_vec())
                .collect::<Vec<_>>()
        })
    };
    let alone: Vec<_> = requests
        .iter()
        .map(|p| run(p.clone()).join().unwrap())
        .collect();
    let together: Vec<_> = requests.iter().map(|p| run(p.clone())).collect();
    for ((p, a), t) in requests.iter().zip(alone).zip(together) {
        assert!(a == t.join().unwrap(), "{}", p.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

fn published_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipe.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn recipe_of(request: &Path) -> Value {
    let text = std::fs::read_to_string(request).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["recipe"].clone()
}

#[test]
fn the_published_schema_is_the_one_the_parser_is_built_from() {
    assert_eq!(
        published_schema(),
        midnit_worker::recipe::schema(),
        "docs/recipe.schema.json is stale: cargo run --release -- recipe-schema > docs/recipe.schema.json"
    );
}

#[test]
fn every_example_is_valid_against_the_schema_and_broken_ones_are_not() {
    let validator = jsonschema::validator_for(&published_schema()).unwrap();
    for request in examples() {
        let recipe = recipe_of(&request);
        let errors: Vec<String> = validator
            .iter_errors(&recipe)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", request.display());
    }
    let card = recipe_of(&examples_dir().join("showcase-card.json"));
    for (pointer, value) in [
        ("/layers/2/text/sizee", json!(40)),
        ("/layers/0/hexagon", json!({})),
        ("/canvas/background/linear/stops/0/color", json!("blue")),
        ("/layers/2/text/size", json!("big")),
        ("/canvas/width", json!(0)),
    ] {
        let broken = with(&card, pointer, value);
        assert!(!validator.is_valid(&broken), "schema accepts {pointer}");
    }
}

#[test]
fn the_recipe_language_has_no_analysis_operation() {
    // Privacy promise: a recipe can only draw. Nothing in its language detects, recognises,
    // classifies or measures what a photo shows, so nothing can send such a result back.
    let schema = serde_json::to_string(&published_schema())
        .unwrap()
        .to_lowercase();
    for word in [
        "face",
        "detect",
        "recogni",
        "saliency",
        "salient",
        "smart",
        "skin",
        "embedding",
        "feature",
        "classif",
        "landmark",
        "identify",
        "analy",
    ] {
        assert!(
            !schema.contains(word),
            "the recipe schema mentions `{word}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Limits and malformed recipes
// ---------------------------------------------------------------------------------------------

/// `base` with the value at a JSON pointer set (creating the last key if needed).
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut v = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        other => panic!("{parent} is {other}"),
    }
    v
}

fn check(recipe: &Value) -> Result<(), midnit_worker::protocol::JobError> {
    let value = ciborium::Value::serialized(recipe).unwrap();
    midnit_worker::intake::check_recipe(&value, &[("photo", PHOTO)], &Limits::default()).map(|_| ())
}

/// The shape the checks assume for every input: a 12 MP JPEG.
const PHOTO: midnit_worker::recipe::Shape = midnit_worker::recipe::Shape {
    width: 4000,
    height: 3000,
    shrinkable: true,
};

fn layer_stack(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|_| json!({"rect": {"fill": {"solid": "#fff"}}}))
            .collect(),
    )
}

fn nested_groups(depth: usize) -> Value {
    let mut layer = json!({"rect": {}});
    for _ in 0..depth {
        layer = json!({"group": {"layers": [layer]}});
    }
    json!([layer])
}

#[test]
fn every_limit_and_malformed_field_is_refused_with_its_path() {
    let card = recipe_of(&examples_dir().join("showcase-card.json"));
    check(&card).expect("the example itself is valid");
    let long_text = "é".repeat(501);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/canvas/width", json!(0), "recipe.canvas.width:"),
        ("/canvas/width", json!(9000), "recipe.canvas.width:"),
        (
            "/canvas",
            json!({"width": 8000, "height": 8000}),
            "recipe.canvas:",
        ),
        ("/canvas/height", json!(-3), "recipe.canvas.height:"),
        ("/bogus", json!(1), "unknown field `bogus`"),
        (
            "/layers/2/text/size",
            json!(900),
            "recipe.layers[2].text.size:",
        ),
        (
            "/layers/2/text/size",
            json!("big"),
            "recipe.layers[2].text.size:",
        ),
        (
            "/layers/2/text/sizee",
            json!(40),
            "recipe.layers[2].text.sizee:",
        ),
        (
            "/layers/2/text/text",
            json!(long_text),
            "recipe.layers[2].text.text:",
        ),
        (
            "/layers/2/text/text",
            json!("a\u{7}b"),
            "recipe.layers[2].text.text:",
        ),
        (
            "/layers/2/text/line_height",
            json!(9),
            "recipe.layers[2].text.line_height:",
        ),
        (
            "/layers/2/text/outline",
            json!({"width": 40}),
            "recipe.layers[2].text.outline.width:",
        ),
        (
            "/layers/1/photo/input",
            json!("nope"),
            "recipe.layers[1].photo.input:",
        ),
        (
            "/layers/1/photo/rotate",
            json!(45),
            "recipe.layers[1].photo.rotate:",
        ),
        (
            "/layers/1/photo/angle",
            json!(90),
            "recipe.layers[1].photo.angle:",
        ),
        (
            "/layers/1/photo/opacity",
            json!(2),
            "recipe.layers[1].photo.opacity:",
        ),
        (
            "/layers/1/photo/fit",
            json!("squash"),
            "recipe.layers[1].photo.fit:",
        ),
        (
            "/layers/1/photo/gravity",
            json!("up"),
            "recipe.layers[1].photo.gravity:",
        ),
        (
            "/layers/1/photo/focal",
            json!([2, 0]),
            "recipe.layers[1].photo.focal[0]:",
        ),
        (
            "/layers/1/photo/box/width",
            json!(-5),
            "recipe.layers[1].photo.box.width:",
        ),
        (
            "/layers/1/photo/box/x",
            json!(99999),
            "recipe.layers[1].photo.box.x:",
        ),
        (
            "/layers/1/photo/shadow/blur",
            json!(1000),
            "recipe.layers[1].photo.shadow.blur:",
        ),
        (
            "/layers/1/photo/glow/blur",
            json!(-1),
            "recipe.layers[1].photo.glow.blur:",
        ),
        (
            "/layers/1/photo/border/width",
            json!(0),
            "recipe.layers[1].photo.border.width:",
        ),
        (
            "/layers/1/photo/crop",
            json!({"x": -1, "y": 0, "width": 5, "height": 5}),
            "recipe.layers[1].photo.crop.x:",
        ),
        (
            "/layers/1/photo/filters",
            json!([{"blur": {"radius": 500}}]),
            "recipe.layers[1].photo.filters[0].blur.radius:",
        ),
        (
            "/layers/1/photo/filters",
            json!([{"sharpen": {"amount": 9}}]),
            "recipe.layers[1].photo.filters[0].sharpen.amount:",
        ),
        (
            "/layers/1/photo/filters",
            json!([{"contrast": {"amount": -2}}]),
            "recipe.layers[1].photo.filters[0].contrast.amount:",
        ),
        (
            "/layers/1/photo/filters",
            json!([{"posterize": {}}]),
            "recipe.layers[1].photo.filters[0]:",
        ),
        (
            "/filters",
            json!(vec![json!({"brightness": {"amount": 0.1}}); 17]),
            "recipe.filters:",
        ),
        ("/layers/0", json!({"hexagon": {}}), "recipe.layers[0]:"),
        (
            "/layers/0",
            json!({"circle": {"center": [10, 10], "radius": 0}}),
            "recipe.layers[0].circle.radius:",
        ),
        (
            "/layers/0",
            json!({"rect": {"fill": {"bokeh": {"colors": ["#fff"], "count": 5000}}}}),
            "recipe.layers[0].rect.fill.bokeh.count:",
        ),
        (
            "/layers/0",
            json!({"rect": {"fill": {"bokeh": {"colors": []}}}}),
            "recipe.layers[0].rect.fill.bokeh.colors:",
        ),
        (
            "/layers/0",
            json!({"rect": {"fill": {"noise": {"colors": ["#000", "#fff"], "octaves": 9}}}}),
            "recipe.layers[0].rect.fill.noise.octaves:",
        ),
        (
            "/layers/0",
            json!({"rect": {"fill": {"dots": {"color": "#fff", "spacing": 1}}}}),
            "recipe.layers[0].rect.fill.dots.spacing:",
        ),
        (
            "/layers/0",
            json!({"grid": {"inputs": vec!["photo"; 65], "columns": 8}}),
            "recipe.layers[0].grid.inputs:",
        ),
        (
            "/layers/0",
            json!({"grid": {"inputs": ["photo", "photo", "photo"], "columns": 1, "rows": 2}}),
            "recipe.layers[0].grid.rows:",
        ),
        (
            "/layers/0",
            json!({"grid": {"inputs": ["photo"], "columns": 0}}),
            "recipe.layers[0].grid.columns:",
        ),
        (
            "/layers/0",
            json!({"grid": {"inputs": ["photo", "photo"], "columns": 2, "gap": 5000}}),
            "recipe.layers[0].grid.gap:",
        ),
        (
            "/layers/0",
            json!({"grid": {"inputs": ["other"], "columns": 1}}),
            "recipe.layers[0].grid.inputs[0]:",
        ),
        (
            "/canvas/background",
            json!({"linear": {"stops": [{"at": 0, "color": "#000"}]}}),
            "recipe.canvas.background.linear.stops:",
        ),
        (
            "/canvas/background",
            json!({"linear": {"stops": [{"at": 0.8, "color": "#000"}, {"at": 0.2, "color": "#fff"}]}}),
            "recipe.canvas.background.linear.stops[1].at:",
        ),
        (
            "/canvas/background",
            json!({"linear": {"stops": [{"at": 0, "color": "#12"}, {"at": 1, "color": "#fff"}]}}),
            "recipe.canvas.background.linear.stops[0].color:",
        ),
        (
            "/canvas/background",
            json!({"radial": {"radius": 0, "stops": []}}),
            "recipe.canvas.background.radial.radius:",
        ),
        ("/layers", layer_stack(65), "recipe.layers[64]:"),
        ("/layers", nested_groups(5), ".group:"),
        (
            "/layers",
            json!(vec![
                json!({"rect": {"glow": {"blur": 200}, "shadow": {"blur": 200}}});
                4
            ]),
            "would cost",
        ),
    ];
    for (pointer, value, want) in cases {
        let broken = with(&card, pointer, value);
        let err = check(&broken).expect_err(pointer);
        assert_eq!(err.code, ErrorCode::RecipeInvalid, "{pointer}: {err}");
        assert!(
            err.message.contains(want),
            "{pointer}: wanted `{want}` in: {}",
            err.message
        );
    }
    assert!(check(&with(&card, "/layers", nested_groups(3))).is_ok());
    let not_a_map = check(&json!(5)).unwrap_err();
    assert_eq!(not_a_map.code, ErrorCode::RecipeInvalid);
    assert!(
        not_a_map.message.starts_with("recipe:"),
        "{}",
        not_a_map.message
    );
}

#[tokio::test]
async fn a_crop_outside_the_photo_is_refused_when_the_photo_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let photo = midnit_worker::tools::samples::jpeg(
        &midnit_worker::tools::samples::collector_photo(200, 250, 1),
        85,
    );
    std::fs::write(dir.path().join("p.jpg"), photo).unwrap();
    let request = json!({
        "v": 1,
        "inputs": {"photo": "p.jpg"},
        "recipe": {
            "canvas": {"width": 100, "height": 100},
            "layers": [{"photo": {"input": "photo", "crop": {"x": 150, "y": 0, "width": 100, "height": 100}}}]
        },
        "outputs": [{"name": "o", "format": "png"}]
    });
    let path = dir.path().join("r.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let out = dir.path().join("out");
    let reply = midnit_worker::tools::cli::render(&Config::default(), &path, &out)
        .await
        .unwrap();
    let error = reply.error.expect("an error");
    assert_eq!(error.code, "recipe.invalid");
    assert!(
        error.message.starts_with("recipe.layers[0].photo.crop:"),
        "{}",
        error.message
    );
}

// ---------------------------------------------------------------------------------------------
// Through the broker
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_goes_through_the_broker_and_the_isolated_renderer() {
    let queue = unique_queue("recipes");
    let mut worker = spawn_binary(&queue, 2);
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    for path in examples() {
        let request = request_file::load(&path).unwrap();
        let reply = client.reply(&request, REPLY).await.expect("a reply");
        assert_eq!(
            reply.status,
            Status::Ok,
            "{}: {:?}",
            path.display(),
            reply.error
        );
        // The renderer process draws exactly what the in-process pipeline draws.
        let local = render(&path).await;
        assert_eq!(reply.outputs.len(), local.outputs.len());
        for (remote, here) in reply.outputs.iter().zip(&local.outputs) {
            assert!(
                remote.data == here.data,
                "{}: {}",
                path.display(),
                remote.name
            );
        }
    }
    let broken = {
        let mut request = request_file::load(&examples_dir().join("avatar.json")).unwrap();
        let mut recipe = recipe_of(&examples_dir().join("avatar.json"));
        recipe["layers"][1]["photo"]["radius"] = json!(-4);
        request.recipe = Some(ciborium::Value::serialized(&recipe).unwrap());
        request
    };
    let reply = client.reply(&broken, REPLY).await.expect("a reply");
    let error = reply.error.expect("refused");
    assert_eq!(error.code, "recipe.invalid");
    assert!(
        error.message.starts_with("recipe.layers[1].photo.radius:"),
        "{}",
        error.message
    );
    assert!(!error.retryable);
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    delete_queue(&queue).await;
}

#[test]
fn every_example_costs_well_under_the_limit() {
    let limits = Limits::default().recipe();
    for request in examples() {
        let recipe = midnit_worker::intake::recipe::from_json(recipe_of(&request)).unwrap();
        let spent = midnit_worker::recipe::estimate(&recipe, &|_| Some(PHOTO));
        let (w, h) = (recipe.canvas.width, recipe.canvas.height);
        let cost = spent.visits / limits.visit_budget(w, h);
        let peak = spent.peak_bytes as f64 / limits.peak_budget(w, h);
        println!(
            "{}: {:.0}% of the visit budget, {:.0}% of the memory budget",
            request.file_stem().unwrap().to_string_lossy(),
            cost * 100.0,
            peak * 100.0
        );
        assert!(cost > 0.0 && cost < 0.5, "{}: {cost}", request.display());
        assert!(peak < 0.5, "{}: {peak}", request.display());
    }
}
