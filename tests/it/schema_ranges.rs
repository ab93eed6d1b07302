//! The recipe's JSON Schema (`docs/recipe.schema.json`) carries every fixed range the parser
//! enforces: for each bounded field, its lowest and highest values pass both the schema and
//! the worker's checks, and one step beyond either end fails both. (Ranges that depend on
//! the canvas or on the worker's configuration — a box's position, a circle's largest
//! radius, the canvas side — are stated in the schema's descriptions, not as numbers.)

use midnit_worker::job::Limits;
use serde_json::{json, Value};

/// A recipe that uses every element with a bounded field.
fn base() -> Value {
    let stops = json!([{"at": 0, "color": "#000"}, {"at": 1, "color": "#fff"}]);
    json!({
        "canvas": {"width": 256, "height": 256,
                   "background": {"radial": {"center": [0.5, 0.5], "radius": 1, "stops": stops}}},
        "layers": [
            {"rect": {"box": {"x": 8, "y": 8, "width": 100, "height": 100}, "radius": 4,
                      "fill": {"linear": {"angle": 30, "stops": stops}},
                      "stroke": {"width": 2, "color": "#fff"},
                      "shadow": {"dx": 2, "dy": 2, "blur": 4}, "glow": {"blur": 4},
                      "opacity": 0.5, "angle": 5, "filters": [{"blur": {"radius": 1}}]}},
            {"photo": {"input": "photo", "radius": 4, "rotate": 90, "focal": [0.5, 0.5]}},
            {"text": {"text": "Aurora", "box": {"x": 8, "y": 8, "width": 200, "height": 60},
                      "size": 20, "line_height": 1.2, "max_lines": 2}},
            {"circle": {"center": [128, 128], "radius": 20}},
            {"grid": {"inputs": ["photo"], "columns": 1, "gap": 0, "radius": 2}},
            {"rect": {"fill": {"noise": {"colors": ["#000", "#fff"], "scale": 64, "octaves": 3}}}},
            {"rect": {"fill": {"bokeh": {"colors": ["#fff"], "count": 10, "min_radius": 2,
                                          "max_radius": 8, "softness": 0.5}}}},
            {"rect": {"fill": {"dots": {"color": "#fff", "spacing": 16, "radius": 2}}}},
            {"rect": {"fill": {"stripes": {"color": "#fff", "spacing": 16, "width": 2, "angle": 45}}}}
        ],
        "filters": [
            {"sharpen": {"amount": 1, "radius": 1}}, {"brightness": {"amount": 0}},
            {"contrast": {"amount": 0}}, {"saturation": {"amount": 0}},
            {"tint": {"color": "#f00", "amount": 0.5}},
            {"duotone": {"dark": "#000", "light": "#fff", "amount": 0.5}},
            {"vignette": {"amount": 0.5, "size": 0.5}}, {"grain": {"amount": 0.5}}
        ]
    })
}

/// How a bounded field is varied: a number (the step beyond each end), or the length of a
/// list or text (one element more or fewer, built by `item`).
enum Bound {
    Number(f64, f64, f64),
    Length(usize, usize, fn(usize) -> Value),
}

fn cases() -> Vec<(&'static str, Bound)> {
    use Bound::{Length, Number};
    let stops = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"at": i as f64 / (n.max(2) - 1) as f64, "color": "#000"}))
                .collect(),
        )
    };
    let colors = |n: usize| Value::Array((0..n).map(|_| json!("#000")).collect());
    let text = |n: usize| Value::String("a".repeat(n));
    let inputs = |n: usize| Value::Array((0..n).map(|_| json!("photo")).collect());
    let filters =
        |n: usize| Value::Array((0..n).map(|_| json!({"grain": {"amount": 0.1}})).collect());
    vec![
        ("/layers/0/rect/stroke/width", Number(0.5, 256.0, 0.01)),
        ("/layers/0/rect/shadow/dx", Number(-512.0, 512.0, 0.5)),
        ("/layers/0/rect/shadow/dy", Number(-512.0, 512.0, 0.5)),
        ("/layers/0/rect/shadow/blur", Number(0.0, 200.0, 0.5)),
        ("/layers/0/rect/glow/blur", Number(0.0, 200.0, 0.5)),
        ("/layers/0/rect/opacity", Number(0.0, 1.0, 0.01)),
        ("/layers/0/rect/angle", Number(-45.0, 45.0, 0.5)),
        ("/layers/0/rect/radius", Number(0.0, 4096.0, 0.5)),
        ("/layers/0/rect/filters", Length(0, 16, filters)),
        (
            "/layers/0/rect/filters/0/blur/radius",
            Number(0.0, 200.0, 0.5),
        ),
        (
            "/layers/0/rect/fill/linear/angle",
            Number(-360.0, 360.0, 0.5),
        ),
        ("/layers/0/rect/fill/linear/stops", Length(2, 16, stops)),
        (
            "/layers/0/rect/fill/linear/stops/1/at",
            Number(0.0, 1.0, 0.01),
        ),
        ("/canvas/background/radial/radius", Number(0.01, 4.0, 0.005)),
        ("/layers/1/photo/radius", Number(0.0, 4096.0, 0.5)),
        ("/layers/2/text/text", Length(1, 500, text)),
        ("/layers/2/text/size", Number(4.0, 512.0, 0.5)),
        ("/layers/2/text/line_height", Number(0.5, 4.0, 0.01)),
        ("/layers/2/text/max_lines", Number(0.0, 100.0, 1.0)),
        // A grid's cells count against the 64 layers in all: this one is alone on its canvas.
        ("/layers/0/grid/inputs", Length(1, 64, inputs)),
        ("/layers/4/grid/columns", Number(1.0, 64.0, 1.0)),
        ("/layers/4/grid/radius", Number(0.0, 4096.0, 0.5)),
        ("/layers/5/rect/fill/noise/colors", Length(2, 8, colors)),
        ("/layers/5/rect/fill/noise/scale", Number(4.0, 4096.0, 0.5)),
        ("/layers/5/rect/fill/noise/octaves", Number(1.0, 6.0, 1.0)),
        ("/layers/6/rect/fill/bokeh/colors", Length(1, 8, colors)),
        ("/layers/6/rect/fill/bokeh/count", Number(0.0, 2000.0, 1.0)),
        ("/layers/6/rect/fill/bokeh/softness", Number(0.0, 1.0, 0.01)),
        ("/layers/7/rect/fill/dots/spacing", Number(4.0, 1024.0, 0.5)),
        (
            "/layers/8/rect/fill/stripes/spacing",
            Number(4.0, 1024.0, 0.5),
        ),
        (
            "/layers/8/rect/fill/stripes/angle",
            Number(-360.0, 360.0, 0.5),
        ),
        ("/filters/0/sharpen/amount", Number(0.0, 5.0, 0.01)),
        ("/filters/0/sharpen/radius", Number(0.5, 50.0, 0.01)),
        ("/filters/1/brightness/amount", Number(-1.0, 1.0, 0.01)),
        ("/filters/2/contrast/amount", Number(-1.0, 1.0, 0.01)),
        ("/filters/3/saturation/amount", Number(-1.0, 1.0, 0.01)),
        ("/filters/4/tint/amount", Number(0.0, 1.0, 0.01)),
        ("/filters/5/duotone/amount", Number(0.0, 1.0, 0.01)),
        ("/filters/6/vignette/amount", Number(0.0, 1.0, 0.01)),
        ("/filters/6/vignette/size", Number(0.0, 1.0, 0.01)),
        ("/filters/7/grain/amount", Number(0.0, 1.0, 0.01)),
        ("/filters", Length(0, 16, filters)),
    ]
}

fn with(pointer: &str, value: Value) -> Value {
    let mut recipe = base();
    if pointer.starts_with("/layers/0/grid") {
        recipe["layers"] = json!([{"grid": {"inputs": ["photo"], "columns": 8}}]);
    }
    *recipe
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the base")) = value;
    recipe
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn parser_accepts(recipe: &Value) -> Result<(), String> {
    let value = ciborium::Value::serialized(recipe).unwrap();
    let photo = midnit_worker::recipe::Shape {
        width: 4000,
        height: 3000,
        shrinkable: true,
    };
    midnit_worker::intake::check_recipe(&value, &[("photo", photo)], &Limits::default())
        .map(|_| ())
        .map_err(|e| e.message)
}

#[test]
fn schema_and_parser_agree_on_every_bound_and_one_step_beyond() {
    let schema: Value =
        serde_json::from_str(include_str!("../../docs/recipe.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let schema_accepts = |r: &Value| validator.is_valid(r);
    assert!(schema_accepts(&base()), "the base recipe is valid");
    parser_accepts(&base()).expect("the base recipe is valid");
    let mut disagreements = Vec::new();
    for (pointer, bound) in cases() {
        let (inside, outside): (Vec<Value>, Vec<Value>) = match bound {
            Bound::Number(lo, hi, step) => (
                vec![number(lo), number(hi)],
                vec![number(lo - step), number(hi + step)],
            ),
            Bound::Length(lo, hi, item) => {
                let mut outside = vec![item(hi + 1)];
                if lo > 0 {
                    outside.push(item(lo - 1));
                }
                (vec![item(lo), item(hi)], outside)
            }
        };
        for v in inside {
            let r = with(pointer, v.clone());
            if !schema_accepts(&r) {
                disagreements.push(format!(
                    "{pointer} = {v}: the schema refuses a value in range"
                ));
            }
            if let Err(e) = parser_accepts(&r) {
                disagreements.push(format!(
                    "{pointer} = {v}: the parser refuses a value in range: {e}"
                ));
            }
        }
        for v in outside {
            let r = with(pointer, v.clone());
            let (schema_ok, parser_ok) = (schema_accepts(&r), parser_accepts(&r).is_ok());
            if schema_ok || parser_ok {
                disagreements.push(format!(
                    "{pointer} = {v}: out of range, yet accepted by the {}",
                    if schema_ok { "schema" } else { "parser" }
                ));
            }
        }
    }
    let rotate_ok = |v: i64| {
        (
            schema_accepts(&with("/layers/1/photo/rotate", json!(v))),
            parser_accepts(&with("/layers/1/photo/rotate", json!(v))).is_ok(),
        )
    };
    assert_eq!(rotate_ok(270), (true, true));
    assert_eq!(rotate_ok(45), (false, false));
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
