use super::*;

/// Draws a recipe that uses no inputs; returns its straight pixels.
fn draw_json(recipe: serde_json::Value) -> Pixels {
    let recipe = crate::intake::recipe::from_json(recipe).unwrap();
    draw(&recipe, &BTreeMap::new(), &Ledger::default()).unwrap()
}

fn rgb(px: &Pixels, x: u32, y: u32) -> [u8; 3] {
    let c = px.layout.channels();
    let i = (y * px.width + x) as usize * c;
    let b = px.buf.as_slice();
    [b[i], b[i + 1], b[i + 2]]
}

#[test]
fn a_shadow_falls_below_its_layer_and_a_glow_surrounds_it() {
    let px = draw_json(serde_json::json!({
        "canvas": {"width": 200, "height": 200, "background": {"solid": "#ffffff"}},
        "layers": [{"rect": {"box": {"x": 50, "y": 50, "width": 100, "height": 60},
                             "fill": {"solid": "#ff0000"},
                             "shadow": {"dy": 20, "blur": 4, "color": "#000000ff"}}}]
    }));
    assert_eq!(
        rgb(&px, 100, 80),
        [255, 0, 0],
        "the layer is on top of its shadow"
    );
    assert!(
        rgb(&px, 100, 125)[0] < 80,
        "shadow below: {:?}",
        rgb(&px, 100, 125)
    );
    assert_eq!(rgb(&px, 100, 30), [255, 255, 255], "nothing above");

    let glow = draw_json(serde_json::json!({
        "canvas": {"width": 200, "height": 200, "background": {"solid": "#000000"}},
        "layers": [{"circle": {"center": [100, 100], "radius": 30, "fill": {"solid": "#ffffff"},
                               "glow": {"blur": 10, "color": "#0000ffff"}}}]
    }));
    for (x, y) in [(100, 62), (100, 138), (62, 100), (138, 100)] {
        assert!(
            rgb(&glow, x, y)[2] > 40,
            "halo at ({x}, {y}): {:?}",
            rgb(&glow, x, y)
        );
    }
    assert_eq!(rgb(&glow, 5, 5), [0, 0, 0]);
}

#[test]
fn a_group_blends_as_one_and_its_filters_apply_to_the_whole() {
    // Two overlapping opaque squares in a half-transparent group: the overlap is no
    // darker than either, because the group is flattened before it is blended.
    let px = draw_json(serde_json::json!({
        "canvas": {"width": 100, "height": 100, "background": {"solid": "#ffffff"}},
        "layers": [{"group": {"opacity": 0.5, "layers": [
            {"rect": {"box": {"x": 10, "y": 10, "width": 50, "height": 50}, "fill": {"solid": "#000000"}}},
            {"rect": {"box": {"x": 30, "y": 30, "width": 50, "height": 50}, "fill": {"solid": "#000000"}}}
        ]}}]
    }));
    assert_eq!(rgb(&px, 20, 20), rgb(&px, 40, 40));
    assert!(rgb(&px, 40, 40)[0].abs_diff(128) <= 1);
    let blurred = draw_json(serde_json::json!({
        "canvas": {"width": 100, "height": 100, "background": {"solid": "#ffffff"}},
        "layers": [{"group": {"filters": [{"blur": {"radius": 5}}], "layers": [
            {"rect": {"box": {"x": 40, "y": 0, "width": 20, "height": 100}, "fill": {"solid": "#000000"}}}
        ]}}]
    }));
    let edge = rgb(&blurred, 38, 50)[0];
    assert!(edge > 20 && edge < 235, "a soft edge: {edge}");
}

#[test]
fn canvas_filters_run_after_the_layers() {
    let px = draw_json(serde_json::json!({
        "canvas": {"width": 50, "height": 50, "background": {"solid": "#ff0000"}},
        "layers": [{"rect": {"box": {"x": 0, "y": 0, "width": 25, "height": 50}, "fill": {"solid": "#0000ff"}}}],
        "filters": [{"saturation": {"amount": -1}}]
    }));
    let (left, right) = (rgb(&px, 10, 25), rgb(&px, 40, 25));
    assert!(left[0] == left[1] && left[1] == left[2], "{left:?}");
    assert!(right[0] == right[1] && right[1] == right[2], "{right:?}");
}

#[test]
fn a_transparent_canvas_stays_transparent_and_an_opaque_one_becomes_rgb() {
    let clear = draw_json(serde_json::json!({"canvas": {"width": 10, "height": 10}}));
    assert_eq!(clear.layout, crate::render::pixels::Layout::Rgba8);
    assert!(clear.buf.as_slice().iter().all(|&b| b == 0));
    let solid = draw_json(serde_json::json!({
        "canvas": {"width": 10, "height": 10, "background": {"solid": "#102030"}}
    }));
    assert_eq!(solid.layout, crate::render::pixels::Layout::Rgb8);
    assert_eq!(rgb(&solid, 3, 3), [0x10, 0x20, 0x30]);
}

#[test]
fn a_quarter_turn_swaps_the_sides_and_keeps_the_centre() {
    let ledger = Ledger::default();
    let mut r = Raster::new(10, 20, 40, 10, "t", &ledger);
    for p in r.bytes_mut().chunks_exact_mut(4) {
        p.copy_from_slice(&[255, 255, 255, 255]);
    }
    let turned = rotate(&r, 90.0, &ledger);
    assert!(
        turned.width() <= 13 && turned.height() >= 40,
        "{}x{}",
        turned.width(),
        turned.height()
    );
    let centre = |r: &Raster| {
        (
            r.x as f32 + r.width() as f32 / 2.0,
            r.y as f32 + r.height() as f32 / 2.0,
        )
    };
    let (a, b) = (centre(&r), centre(&turned));
    assert!((a.0 - b.0).abs() <= 1.0 && (a.1 - b.1).abs() <= 1.0);
    let ink: u64 = turned
        .bytes()
        .chunks_exact(4)
        .map(|p| u64::from(p[3]))
        .sum();
    let want = 40 * 10 * 255;
    assert!(ink.abs_diff(want) < want / 10, "{ink} vs {want}");
}

#[test]
fn a_small_tilt_keeps_the_ink() {
    let ledger = Ledger::default();
    let mut r = Raster::new(0, 0, 50, 30, "t", &ledger);
    for p in r.bytes_mut().chunks_exact_mut(4) {
        p.copy_from_slice(&[0, 0, 255, 255]);
    }
    let turned = rotate(&r, 7.5, &ledger);
    let ink: u64 = turned
        .bytes()
        .chunks_exact(4)
        .map(|p| u64::from(p[3]))
        .sum();
    let want = 50 * 30 * 255;
    assert!(ink.abs_diff(want) < want / 20, "{ink} vs {want}");
    assert!(turned.width() > 50 && turned.height() > 30);
}
