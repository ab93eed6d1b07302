//! The **recipe language**: what a generation job draws, as typed data.
//!
//! A recipe is a canvas (size and background paint), a stack of layers drawn bottom to top
//! (photos, stickers, text, shapes, grids of photos, nested groups), and filters over the whole
//! canvas. Every struct refuses unknown fields and every enum is externally tagged
//! (`{"text": {...}}`), so a mistake is reported with its exact field path, e.g.
//! `layers[3].text.size`. Reading a recipe from CBOR or JSON is intake's job
//! (`intake::recipe`); [`check`] holds it to the limits in [`RecipeLimits`], [`layout`] says
//! where its layers go, [`cost`] bounds its work and memory before anything is drawn, and the
//! compose step of `render` draws it.
//!
//! The types: [`Recipe`] and its [`Canvas`] here; [`Paint`]s in `paint.rs`, [`Layer`]s in
//! `layers.rs`, [`Filter`]s in `filter.rs`.
//!
//! The JSON Schema in `docs/recipe.schema.json` is generated from these types
//! (`midnit-worker recipe-schema`), so the documentation cannot drift from the parser.

mod bounded;
mod check;
mod color;
pub mod cost;
pub mod layout;

mod filter;
mod layers;
mod paint;

pub use filter::Filter;
pub use layers::*;
pub use paint::*;

pub(crate) use check::cell_size;
pub use check::{check, RecipeLimits};
pub use color::Color;
pub use cost::{estimate, Estimate, Shape};
pub(crate) use layout::{grid_cells, placements, scale_needed, whole_area, Placement};

use crate::protocol::{ErrorCode, JobError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A generation recipe: the `recipe` field of a v1 request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The canvas to draw on.
    pub canvas: Canvas,
    /// Seed of every procedural element that does not give its own: the same seed gives the
    /// same picture.
    #[serde(default)]
    pub seed: u64,
    /// Layers, drawn bottom to top.
    #[serde(default, deserialize_with = "bounded::layers")]
    pub layers: Vec<Layer>,
    /// Filters applied to the whole canvas after the layers, in order.
    #[serde(default, deserialize_with = "bounded::list::<16, _, _>")]
    #[schemars(length(max = 16))]
    pub filters: Vec<Filter>,
}

/// The canvas: size in pixels and what is under every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canvas {
    /// Width in pixels: at most the worker's `max_output_dimension` (8192 by default), and
    /// width × height at most the smaller of `max_output_pixels` and 16 777 216.
    #[schemars(range(min = 1))]
    pub width: u32,
    /// Height in pixels (the same limits).
    #[schemars(range(min = 1))]
    pub height: u32,
    /// Background paint; transparent when absent (JPEG outputs flatten onto white).
    #[serde(default)]
    pub background: Option<Paint>,
}

/// A rectangle in canvas pixels (the `box` of a layer).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// How a picture fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// The whole picture, inside the box (letterboxed by transparency).
    Contain,
    /// The whole box, cropped to its aspect ratio around the gravity or focal point.
    Cover,
    /// Stretched to the box.
    Fill,
}

impl Fit {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contain => "contain",
            Self::Cover => "cover",
            Self::Fill => "fill",
        }
    }

    /// The fit with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Contain, Self::Cover, Self::Fill]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// Where a picture sits in its box (`contain`), or which part is kept (`cover`). Fixed
/// compass points: never chosen by looking at the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gravity {
    /// The middle.
    #[default]
    Center,
    /// Top edge.
    North,
    /// Bottom edge.
    South,
    /// Right edge.
    East,
    /// Left edge.
    West,
    /// Top right.
    Northeast,
    /// Top left.
    Northwest,
    /// Bottom right.
    Southeast,
    /// Bottom left.
    Southwest,
}

impl Gravity {
    /// Every gravity, in wire order.
    pub const ALL: [Gravity; 9] = [
        Self::Center,
        Self::North,
        Self::South,
        Self::East,
        Self::West,
        Self::Northeast,
        Self::Northwest,
        Self::Southeast,
        Self::Southwest,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::North => "north",
            Self::South => "south",
            Self::East => "east",
            Self::West => "west",
            Self::Northeast => "northeast",
            Self::Northwest => "northwest",
            Self::Southeast => "southeast",
            Self::Southwest => "southwest",
        }
    }

    /// The gravity with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }

    /// Where along each axis the gravity anchors: 0 (left/top), 0.5 or 1 (right/bottom).
    pub fn fractions(self) -> (f64, f64) {
        use Gravity::*;
        let fx = match self {
            West | Northwest | Southwest => 0.0,
            East | Northeast | Southeast => 1.0,
            _ => 0.5,
        };
        let fy = match self {
            North | Northwest | Northeast => 0.0,
            South | Southwest | Southeast => 1.0,
            _ => 0.5,
        };
        (fx, fy)
    }
}

/// Default values, as functions for serde.
mod defaults {
    use super::{Color, Fit};
    pub fn one() -> f32 {
        1.0
    }
    pub fn half() -> f32 {
        0.5
    }
    pub fn grain() -> f32 {
        0.1
    }
    pub fn angle_down() -> f32 {
        180.0
    }
    pub fn middle() -> [f32; 2] {
        [0.5, 0.5]
    }
    pub fn radial_radius() -> f32 {
        0.75
    }
    pub fn noise_scale() -> f32 {
        240.0
    }
    pub fn octaves() -> u32 {
        4
    }
    pub fn pattern_spacing() -> f32 {
        32.0
    }
    pub fn dot_radius() -> f32 {
        4.0
    }
    pub fn stripe_width() -> f32 {
        8.0
    }
    pub fn stripe_angle() -> f32 {
        45.0
    }
    pub fn stroke_width() -> f32 {
        4.0
    }
    pub fn shadow_dy() -> f32 {
        8.0
    }
    pub fn shadow_blur() -> f32 {
        16.0
    }
    pub fn glow_blur() -> f32 {
        24.0
    }
    pub fn text_size() -> f32 {
        32.0
    }
    pub fn line_height() -> f32 {
        1.25
    }
    pub fn cover() -> Fit {
        Fit::Cover
    }
    pub fn white() -> Color {
        Color([255, 255, 255, 255])
    }
    pub fn black() -> Color {
        Color([0, 0, 0, 255])
    }
    pub fn shadow_color() -> Color {
        Color([0, 0, 0, 0x99])
    }
    pub fn glow_color() -> Color {
        Color([0x9f, 0xb8, 0xff, 0xcc])
    }
}

/// A `recipe.invalid` error about the field at `path`.
pub fn invalid(path: &str, message: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::RecipeInvalid,
        format!("recipe.{path}: {message}"),
    )
}

/// The JSON Schema of a recipe, as published in `docs/recipe.schema.json`.
pub fn schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Recipe)).expect("a schema is plain JSON");
    if let Some(map) = schema.as_object_mut() {
        map.insert(
            "$id".into(),
            "https://midnit.app/schemas/recipe-v1.json".into(),
        );
    }
    schema
}
