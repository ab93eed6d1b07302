//! Paints: what fills a canvas, a shape or a sticker — a colour, gradients, noise, bokeh and
//! stars, dots, stripes.

use super::Color;
use super::{bounded, defaults};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What fills an area: a colour, a gradient, or a seeded procedural pattern. Patterns are
/// drawn on transparency, so they stack over another paint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Paint {
    /// One colour.
    Solid(Color),
    /// A linear gradient.
    Linear(Linear),
    /// A radial gradient.
    Radial(Radial),
    /// Soft value noise (clouds, mist) shaded through a list of colours.
    Noise(Noise),
    /// Soft out-of-focus discs.
    Bokeh(Discs),
    /// Small sharp points with a faint halo.
    Stars(Discs),
    /// A grid of dots.
    Dots(Dots),
    /// Parallel stripes.
    Stripes(Stripes),
}

/// A gradient colour stop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// Position along the gradient, 0–1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub at: f32,
    /// Colour at that position.
    pub color: Color,
}

/// A linear gradient across the painted area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Linear {
    /// Direction in degrees, CSS style: 0 runs bottom to top, 90 left to right, 180 (default)
    /// top to bottom.
    #[serde(default = "defaults::angle_down")]
    #[schemars(range(min = -360.0, max = 360.0))]
    pub angle: f32,
    /// 2–16 stops in increasing `at` order.
    #[serde(deserialize_with = "bounded::list::<16, _, _>")]
    #[schemars(length(min = 2, max = 16))]
    pub stops: Vec<Stop>,
}

/// A radial gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Radial {
    /// Centre as fractions of the painted area, default `[0.5, 0.5]`.
    #[serde(default = "defaults::middle")]
    pub center: [f32; 2],
    /// Radius as a fraction of the area's longer side, default 0.75.
    #[serde(default = "defaults::radial_radius")]
    #[schemars(range(min = 0.01, max = 4.0))]
    pub radius: f32,
    /// 2–16 stops in increasing `at` order (0 at the centre).
    #[serde(deserialize_with = "bounded::list::<16, _, _>")]
    #[schemars(length(min = 2, max = 16))]
    pub stops: Vec<Stop>,
}

/// Seeded value noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// 2–8 colours the noise value runs through, low to high.
    #[serde(deserialize_with = "bounded::list::<8, _, _>")]
    #[schemars(length(min = 2, max = 8))]
    pub colors: Vec<Color>,
    /// Size of the largest blotches in pixels, default 240.
    #[serde(default = "defaults::noise_scale")]
    #[schemars(range(min = 4.0, max = 4096.0))]
    pub scale: f32,
    /// Octaves of detail, 1–6, default 4.
    #[serde(default = "defaults::octaves")]
    #[schemars(range(min = 1, max = 6))]
    pub octaves: u32,
    /// Seed; default derived from the recipe's seed and the element's position.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Seeded discs: `bokeh` (large, soft) or `stars` (small, sharp). Unset fields take the
/// kind's defaults, listed in `docs/RECIPES.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discs {
    /// 1–8 colours, picked at random per disc.
    #[serde(deserialize_with = "bounded::list::<8, _, _>")]
    #[schemars(length(min = 1, max = 8))]
    pub colors: Vec<Color>,
    /// Number of discs, at most 2000.
    #[serde(default)]
    #[schemars(range(min = 0, max = 2000))]
    pub count: Option<u32>,
    /// Smallest radius in pixels.
    #[serde(default)]
    #[schemars(range(min = 0.5, max = 256.0))]
    pub min_radius: Option<f32>,
    /// Largest radius in pixels.
    #[serde(default)]
    #[schemars(range(min = 0.5, max = 256.0))]
    pub max_radius: Option<f32>,
    /// Edge softness, 0 (hard) – 1 (fades from the centre).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub softness: Option<f32>,
    /// Seed; default derived from the recipe's seed and the element's position.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A grid of dots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dots {
    /// Dot colour.
    pub color: Color,
    /// Distance between dot centres in pixels, default 32.
    #[serde(default = "defaults::pattern_spacing")]
    #[schemars(range(min = 4.0, max = 1024.0))]
    pub spacing: f32,
    /// Dot radius in pixels, default 4.
    #[serde(default = "defaults::dot_radius")]
    #[schemars(range(min = 0.5))]
    pub radius: f32,
}

/// Parallel stripes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stripes {
    /// Stripe colour.
    pub color: Color,
    /// Distance between stripe starts in pixels, default 32.
    #[serde(default = "defaults::pattern_spacing")]
    #[schemars(range(min = 4.0, max = 1024.0))]
    pub spacing: f32,
    /// Stripe width in pixels, default 8.
    #[serde(default = "defaults::stripe_width")]
    #[schemars(range(min = 0.5))]
    pub width: f32,
    /// Angle in degrees, default 45.
    #[serde(default = "defaults::stripe_angle")]
    #[schemars(range(min = -360.0, max = 360.0))]
    pub angle: f32,
}

/// A `bokeh` or `stars` paint's count, smallest and largest radius and softness, with the
/// kind's defaults filled in.
pub fn disc_defaults(d: &Discs, kind: &Paint) -> (u32, f32, f32, f32) {
    let (count, lo, hi, soft) = match kind {
        Paint::Stars(_) => (300, 0.6, 2.2, 0.35),
        _ => (40, 12.0, 48.0, 0.6),
    };
    let hi = d.max_radius.unwrap_or(hi);
    let lo = d.min_radius.unwrap_or(lo).min(hi);
    (d.count.unwrap_or(count), lo, hi, d.softness.unwrap_or(soft))
}
