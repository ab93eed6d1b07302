use super::*;
use crate::recipe::{Linear, Noise};
use crate::wipe::Ledger;

fn canvas(w: u32, h: u32) -> Raster {
    Raster::new(0, 0, w, h, "test", &Ledger::default())
}

fn px(r: &Raster, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * r.width() + x) * 4) as usize;
    r.bytes()[i..i + 4].try_into().unwrap()
}

#[test]
fn a_vertical_gradient_runs_from_its_first_stop_to_its_last() {
    let mut r = canvas(8, 100);
    let stops = vec![
        Stop {
            at: 0.0,
            color: Color([0, 0, 0, 255]),
        },
        Stop {
            at: 1.0,
            color: Color([255, 255, 255, 255]),
        },
    ];
    fill(
        &mut r,
        &Paint::Linear(Linear {
            angle: 180.0,
            stops,
        }),
        0,
    );
    assert!(px(&r, 0, 0)[0] <= 3 && px(&r, 0, 99)[0] >= 252);
    assert!(px(&r, 0, 50)[0].abs_diff(128) <= 4);
    assert_eq!(px(&r, 0, 10)[3], 255);
}

#[test]
fn noise_depends_on_its_seed_and_nothing_else() {
    let paint = Paint::Noise(Noise {
        colors: vec![Color([0, 0, 0, 255]), Color([255, 255, 255, 255])],
        scale: 16.0,
        octaves: 3,
        seed: None,
    });
    let (mut a, mut b, mut c) = (canvas(64, 64), canvas(64, 64), canvas(64, 64));
    fill(&mut a, &paint, 7);
    fill(&mut b, &paint, 7);
    fill(&mut c, &paint, 8);
    assert_eq!(a.bytes(), b.bytes());
    assert_ne!(a.bytes(), c.bytes());
}

#[test]
fn stars_scatter_points_on_transparency() {
    let paint = Paint::Stars(Discs {
        colors: vec![Color([255, 255, 255, 255])],
        count: Some(50),
        min_radius: None,
        max_radius: None,
        softness: None,
        seed: Some(3),
    });
    let mut r = canvas(200, 200);
    fill(&mut r, &paint, 0);
    let lit = r.bytes().chunks_exact(4).filter(|p| p[3] > 128).count();
    let clear = r.bytes().chunks_exact(4).filter(|p| p[3] == 0).count();
    assert!(lit >= 20 && clear > 30_000, "lit {lit} clear {clear}");
}

#[test]
fn dots_and_stripes_repeat_at_their_spacing() {
    let mut r = canvas(64, 64);
    let dots = Paint::Dots(crate::recipe::Dots {
        color: Color([255, 255, 255, 255]),
        spacing: 16.0,
        radius: 3.0,
    });
    fill(&mut r, &dots, 0);
    assert_eq!(
        px(&r, 8, 8)[3],
        255,
        "a dot in the middle of the first cell"
    );
    assert_eq!(px(&r, 24, 40)[3], 255, "and of another");
    assert_eq!(px(&r, 0, 0)[3], 0, "clear between dots");
    let mut s = canvas(64, 64);
    let stripes = Paint::Stripes(crate::recipe::Stripes {
        color: Color([255, 255, 255, 255]),
        spacing: 16.0,
        width: 4.0,
        angle: 0.0,
    });
    fill(&mut s, &stripes, 0);
    for y in [0, 30, 63] {
        assert_eq!(px(&s, 1, y)[3], 255);
        assert_eq!(px(&s, 10, y)[3], 0);
        assert_eq!(px(&s, 17, y)[3], 255);
    }
}

#[test]
fn a_rounded_rect_is_clear_in_its_corners_and_solid_inside() {
    let ledger = Ledger::default();
    let m = rounded_rect(100, 60, 20.0, 0.0, &ledger);
    assert_eq!(m[0], 0);
    assert_eq!(m[30 * 100 + 50], 255);
    assert_eq!(m[30 * 100], 255, "the middle of the left edge is inside");
    let inner = rounded_rect(100, 60, 20.0, 4.0, &ledger);
    let border = ring(&m, &inner, &ledger);
    assert_eq!(border[30 * 100 + 1], 255);
    assert_eq!(border[30 * 100 + 50], 0);
}

#[test]
fn a_circle_covers_its_disc() {
    let m = circle((21, 21), (10.5, 10.5), 10.0, 0.0, &Ledger::default());
    assert_eq!(m[10 * 21 + 10], 255);
    assert_eq!(m[0], 0);
}
