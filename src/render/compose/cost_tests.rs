//! The cost model against what compose really does: every element kind, and adversarial
//! mixes, drawn with a fresh ledger whose meter counts every pixel buffer and pixel visit;
//! the estimate must bound all three figures.

use super::place::Source;
use super::*;
use crate::recipe::{estimate, Shape};
use crate::render::pixels::Pixels;
use serde_json::json;

fn source(w: u32, h: u32, alpha: bool) -> Source {
    let ledger = Ledger::new();
    let px = if alpha {
        let img = crate::tools::samples::figure_cutout(w, h, 3);
        Pixels::from_dynamic(image::DynamicImage::ImageRgba8(img), "t".into(), &ledger)
    } else {
        let img = crate::tools::samples::figure_photo(w, h, 3);
        Pixels::from_dynamic(image::DynamicImage::ImageRgb8(img), "t".into(), &ledger)
    };
    Source { px, full: (w, h) }
}

/// Draws `recipe` (inputs `photo` 640×480 and `logo` 200×200 with alpha) and checks the
/// estimate bounds what the meter counted.
fn bounded(label: &str, recipe: serde_json::Value) {
    let recipe =
        crate::intake::recipe::from_json(recipe).unwrap_or_else(|e| panic!("{label}: {e}"));
    let sources: BTreeMap<String, Source> = [
        ("photo".to_string(), source(640, 480, false)),
        ("logo".to_string(), source(200, 200, true)),
    ]
    .into();
    let shape = |name: &str| {
        sources.get(name).map(|s| Shape {
            width: s.full.0,
            height: s.full.1,
            shrinkable: false,
        })
    };
    let est = estimate(&recipe, &shape);
    let ledger = Ledger::new();
    let drawn = draw(&recipe, &sources, &ledger).unwrap_or_else(|e| panic!("{label}: {e}"));
    drop(drawn);
    let m = ledger.metered();
    println!(
        "{label}: visits {:.2}, peak {:.2}, allocated {:.2} of the estimate",
        m.visits as f64 / est.visits,
        m.peak_bytes as f64 / est.peak_bytes as f64,
        m.allocated_bytes as f64 / est.allocated_bytes
    );
    assert!(m.visits > 0, "{label}: nothing counted");
    assert!(
        m.visits as f64 <= est.visits,
        "{label}: {} visits counted, {} estimated",
        m.visits,
        est.visits
    );
    assert!(
        m.peak_bytes <= est.peak_bytes,
        "{label}: peak {} bytes counted, {} estimated",
        m.peak_bytes,
        est.peak_bytes
    );
    assert!(
        m.allocated_bytes as f64 <= est.allocated_bytes,
        "{label}: {} bytes allocated, {} estimated",
        m.allocated_bytes,
        est.allocated_bytes
    );
}

fn canvas(layers: serde_json::Value) -> serde_json::Value {
    json!({"canvas": {"width": 300, "height": 200, "background": {"solid": "#102030"}},
           "seed": 7, "layers": layers})
}

fn paints() -> Vec<serde_json::Value> {
    vec![
        json!({"solid": "#ff000080"}),
        json!({"linear": {"angle": 30, "stops": [{"at": 0, "color": "#000"}, {"at": 1, "color": "#fff"}]}}),
        json!({"radial": {"stops": [{"at": 0, "color": "#000"}, {"at": 1, "color": "#fff"}]}}),
        json!({"noise": {"colors": ["#000", "#fff"], "octaves": 6, "scale": 8}}),
        json!({"bokeh": {"colors": ["#fff"], "count": 60, "max_radius": 40}}),
        json!({"stars": {"colors": ["#fff"], "count": 80, "min_radius": 2, "max_radius": 12}}),
        json!({"dots": {"color": "#fff", "spacing": 10, "radius": 3}}),
        json!({"stripes": {"color": "#fff", "spacing": 12, "width": 4, "angle": 20}}),
    ]
}

fn filters() -> serde_json::Value {
    json!([{"blur": {"radius": 6}}, {"sharpen": {"amount": 2, "radius": 2}},
           {"brightness": {"amount": 0.2}}, {"contrast": {"amount": 0.2}},
           {"saturation": {"amount": -0.5}}, {"tint": {"color": "#f80"}},
           {"duotone": {"dark": "#000", "light": "#fff"}}, {"vignette": {}}, {"grain": {}}])
}

#[test]
fn every_paint_costs_what_it_is_charged() {
    for (i, p) in paints().into_iter().enumerate() {
        bounded(
            &format!("background {i}"),
            json!({"canvas": {"width": 320, "height": 240, "background": p}}),
        );
        bounded(
            &format!("rect fill {i}"),
            canvas(
                json!([{"rect": {"box": {"x": 20, "y": 10, "width": 200, "height": 150},
                                    "radius": 30, "fill": p, "stroke": {"width": 5}}}]),
            ),
        );
        bounded(
            &format!("circle fill {i}"),
            canvas(
                json!([{"circle": {"center": [150, 100], "radius": 80, "fill": p,
                                      "stroke": {"width": 6}}}]),
            ),
        );
    }
}

#[test]
fn photos_stickers_and_grids_cost_what_they_are_charged() {
    for fit in ["contain", "cover", "fill"] {
        bounded(
            &format!("photo {fit}"),
            canvas(
                json!([{"photo": {"input": "photo", "fit": fit, "radius": 12,
                                     "border": {"width": 3},
                                     "box": {"x": 10, "y": 10, "width": 250, "height": 170}}}]),
            ),
        );
    }
    bounded(
        "photo crop, quarter turn, focal",
        canvas(
            json!([{"photo": {"input": "photo", "rotate": 90, "focal": [0.2, 0.8],
                                 "crop": {"x": 100, "y": 50, "width": 300, "height": 300}}}]),
        ),
    );
    bounded(
        "sticker",
        canvas(
            json!([{"sticker": {"input": "logo", "box": {"x": -50, "y": -50, "width": 400, "height": 300}}}]),
        ),
    );
    bounded(
        "grid",
        canvas(
            json!([{"grid": {"inputs": ["photo", "logo", "photo", "photo", "logo"],
                                "columns": 3, "gap": 4, "radius": 6, "border": {"width": 2},
                                "shadow": {"blur": 5}, "angle": 5}}]),
        ),
    );
}

#[test]
fn text_costs_what_it_is_charged() {
    let long = "Aurora on the shelf, ".repeat(20);
    for (label, t) in [
        (
            "plain",
            json!({"text": "Aurora", "box": {"x": 10, "y": 10, "width": 280, "height": 60}}),
        ),
        (
            "outlined",
            json!({"text": "Aurora ★", "size": 48, "outline": {"width": 6},
                            "box": {"x": 10, "y": 10, "width": 280, "height": 90}}),
        ),
        (
            "long, tight",
            json!({"text": long, "size": 14, "letter_spacing": -7,
                               "box": {"x": 0, "y": 0, "width": 300, "height": 200}}),
        ),
        (
            "huge",
            json!({"text": "Wé", "size": 512, "weight": "bold",
                        "box": {"x": -100, "y": -100, "width": 500, "height": 400}}),
        ),
    ] {
        bounded(&format!("text {label}"), canvas(json!([{"text": t}])));
    }
}

#[test]
fn effects_and_filters_on_every_kind_cost_what_they_are_charged() {
    let effects = json!({"opacity": 0.8, "angle": 30, "shadow": {"blur": 12, "dx": 5, "dy": 9},
                         "glow": {"blur": 20}, "filters": filters()});
    let kinds = [
        json!({"rect": {"box": {"x": 50, "y": 40, "width": 120, "height": 80}, "fill": {"solid": "#f00"}}}),
        json!({"circle": {"center": [100, 100], "radius": 40, "fill": {"solid": "#0f0"}}}),
        json!({"text": {"text": "Glow", "size": 40, "box": {"x": 20, "y": 20, "width": 200, "height": 60}}}),
        json!({"photo": {"input": "photo", "box": {"x": 20, "y": 20, "width": 160, "height": 120}}}),
        json!({"sticker": {"input": "logo", "box": {"x": 150, "y": 50, "width": 100, "height": 100}}}),
        json!({"grid": {"inputs": ["photo", "logo"], "columns": 2, "box": {"x": 0, "y": 0, "width": 300, "height": 100}}}),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        let mut layer = kind;
        let body = layer.as_object_mut().unwrap().values_mut().next().unwrap();
        for (k, v) in effects.as_object().unwrap() {
            body[k] = v.clone();
        }
        bounded(&format!("effects on kind {i}"), canvas(json!([layer])));
    }
    let mut whole = canvas(json!([{"rect": {"fill": {"solid": "#fff"}}}]));
    whole["filters"] = filters();
    bounded("canvas filters", whole);
}

#[test]
fn adversarial_mixes_cost_what_they_are_charged() {
    // A one-pixel shape blurred again and again: the padding grows with every blur.
    bounded(
        "blurred speck",
        json!({"canvas": {"width": 10, "height": 10},
               "layers": [{"rect": {"box": {"x": 4, "y": 4, "width": 1, "height": 1},
                                    "fill": {"solid": "#fff"},
                                    "filters": [{"blur": {"radius": 20}}, {"blur": {"radius": 20}},
                                                {"blur": {"radius": 20}}, {"blur": {"radius": 20}}],
                                    "angle": 45, "shadow": {"blur": 30}, "glow": {"blur": 30}}}]}),
    );
    // Boxes far outside the canvas, star halos, nested groups with filters.
    bounded(
        "offscreen boxes and halos",
        json!({"canvas": {"width": 200, "height": 150,
                          "background": {"stars": {"colors": ["#fff"], "count": 300, "max_radius": 20}}},
               "layers": [{"rect": {"box": {"x": -200, "y": -150, "width": 400, "height": 300},
                                    "fill": {"noise": {"colors": ["#000", "#fff"]}}, "angle": -45}},
                          {"photo": {"input": "photo", "box": {"x": 300, "y": 200, "width": 400, "height": 300}}}]}),
    );
    bounded(
        "nested groups",
        json!({"canvas": {"width": 200, "height": 150},
               "layers": [{"group": {"filters": [{"blur": {"radius": 3}}], "angle": 10, "glow": {"blur": 8},
                   "layers": [{"group": {"shadow": {"blur": 4}, "layers": [
                       {"group": {"opacity": 0.5, "layers": [
                           {"photo": {"input": "photo"}},
                           {"text": {"text": "deep", "box": {"x": 0, "y": 0, "width": 200, "height": 50}}}]}}]}}]}}]}),
    );
}

#[test]
fn the_attacks_on_the_old_cost_bound_are_refused_before_drawing() {
    let limits = crate::job::Limits::default().recipe();
    let photo = Shape {
        width: 640,
        height: 480,
        shrinkable: false,
    };
    // Eight blurs of radius 200 on a one-pixel rect in a 10x10 canvas: a 600-byte request
    // that used to cost 35 CPU-seconds and 730 MB.
    let blur = json!({"blur": {"radius": 200}});
    let speck = json!({"canvas": {"width": 10, "height": 10},
        "layers": [{"rect": {"box": {"x": 4, "y": 4, "width": 1, "height": 1}, "fill": {"solid": "#fff"},
                             "filters": vec![blur; 8]}}]});
    // Big stars on the largest canvas: each one's halo is three times its size.
    let stars = json!({"canvas": {"width": 4096, "height": 4096,
        "background": {"stars": {"colors": ["#fff"], "count": 2000, "min_radius": 200, "max_radius": 256}}}});
    for (label, r) in [("speck", speck), ("stars", stars)] {
        let recipe = crate::intake::recipe::from_json(r).unwrap();
        let e = crate::recipe::check(&recipe, &[("photo", photo)], &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::RecipeInvalid, "{label}");
        assert!(e.message.contains("would"), "{label}: {e}");
    }
}
