//! The **recipe language**: what a generation job draws, as typed data.
//!
//! A recipe is a canvas (size and background paint), a stack of layers drawn bottom to top
//! (photos, stickers, text, shapes, grids of photos, nested groups), and filters over the whole
//! canvas. Every struct refuses unknown fields and every enum is externally tagged
//! (`{"text": {...}}`), so a mistake is reported with its exact field path, e.g.
//! `layers[3].text.size`. [`parse`] turns the request's `recipe` value into a [`Recipe`] and
//! [`check`] holds it to the limits in [`RecipeLimits`]; the renderer is
//! [`crate::pipeline::compose`].
//!
//! The JSON Schema in `docs/recipe.schema.json` is generated from these types
//! (`midnit-worker recipe-schema`), so the documentation cannot drift from the parser.

mod bounded;
mod check;
mod color;
pub mod cost;
pub mod layout;

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
    pub filters: Vec<Filter>,
}

/// The canvas: size in pixels and what is under every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canvas {
    /// Width in pixels.
    #[schemars(range(min = 1))]
    pub width: u32,
    /// Height in pixels.
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
    pub angle: f32,
    /// 2–16 stops in increasing `at` order.
    #[serde(deserialize_with = "bounded::list::<16, _, _>")]
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
    pub radius: f32,
    /// 2–16 stops in increasing `at` order (0 at the centre).
    #[serde(deserialize_with = "bounded::list::<16, _, _>")]
    pub stops: Vec<Stop>,
}

/// Seeded value noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// 2–8 colours the noise value runs through, low to high.
    #[serde(deserialize_with = "bounded::list::<8, _, _>")]
    pub colors: Vec<Color>,
    /// Size of the largest blotches in pixels, default 240.
    #[serde(default = "defaults::noise_scale")]
    pub scale: f32,
    /// Octaves of detail, 1–6, default 4.
    #[serde(default = "defaults::octaves")]
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
    pub colors: Vec<Color>,
    /// Number of discs, at most 2000.
    #[serde(default)]
    pub count: Option<u32>,
    /// Smallest radius in pixels.
    #[serde(default)]
    pub min_radius: Option<f32>,
    /// Largest radius in pixels.
    #[serde(default)]
    pub max_radius: Option<f32>,
    /// Edge softness, 0 (hard) – 1 (fades from the centre).
    #[serde(default)]
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
    pub spacing: f32,
    /// Dot radius in pixels, default 4.
    #[serde(default = "defaults::dot_radius")]
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
    pub spacing: f32,
    /// Stripe width in pixels, default 8.
    #[serde(default = "defaults::stripe_width")]
    pub width: f32,
    /// Angle in degrees, default 45.
    #[serde(default = "defaults::stripe_angle")]
    pub angle: f32,
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

/// A line around a shape, photo or text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stroke {
    /// Width in pixels, default 4.
    #[serde(default = "defaults::stroke_width")]
    pub width: f32,
    /// Colour, default white.
    #[serde(default = "defaults::white")]
    pub color: Color,
}

/// A soft drop shadow under a layer, cast from its alpha.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// Horizontal offset in pixels, default 0.
    #[serde(default)]
    pub dx: f32,
    /// Vertical offset in pixels, default 8.
    #[serde(default = "defaults::shadow_dy")]
    pub dy: f32,
    /// Blur radius in pixels, default 16.
    #[serde(default = "defaults::shadow_blur")]
    pub blur: f32,
    /// Colour (its alpha is the shadow's strength), default `#00000099`.
    #[serde(default = "defaults::shadow_color")]
    pub color: Color,
}

/// A soft halo around a layer, in its shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Glow {
    /// Blur radius in pixels, default 24.
    #[serde(default = "defaults::glow_blur")]
    pub blur: f32,
    /// Colour, default `#9fb8ffcc` (the app's midnight glow).
    #[serde(default = "defaults::glow_color")]
    pub color: Color,
}

/// Adds the fields every layer has — opacity, free rotation, shadow, glow, filters — to a
/// layer struct. (Listed in each struct rather than flattened: serde cannot refuse unknown
/// fields through a flattened struct.)
macro_rules! layer {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Opacity 0–1, default 1.
            #[serde(default = "defaults::one")]
            pub opacity: f32,
            /// Free rotation in degrees about the layer's centre, −45 to 45, default 0.
            #[serde(default)]
            pub angle: f32,
            /// Drop shadow.
            #[serde(default)]
            pub shadow: Option<Shadow>,
            /// Outer glow.
            #[serde(default)]
            pub glow: Option<Glow>,
            /// Filters applied to this layer alone, in order.
            #[serde(default, deserialize_with = "bounded::list::<16, _, _>")]
            pub filters: Vec<Filter>,
        }

        impl $name {
            /// The effects shared by every layer.
            pub fn effects(&self) -> Effects<'_> {
                Effects {
                    opacity: self.opacity,
                    angle: self.angle,
                    shadow: self.shadow.as_ref(),
                    glow: self.glow.as_ref(),
                    filters: &self.filters,
                }
            }
        }
    };
}

/// The effects every layer has, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Effects<'a> {
    /// Opacity 0–1.
    pub opacity: f32,
    /// Free rotation in degrees.
    pub angle: f32,
    /// Drop shadow.
    pub shadow: Option<&'a Shadow>,
    /// Outer glow.
    pub glow: Option<&'a Glow>,
    /// Layer filters.
    pub filters: &'a [Filter],
}

/// One layer of the canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// A named input placed in a box; `fit` defaults to `cover`.
    Photo(Image),
    /// A named input (usually with alpha) used as a sticker or frame overlay; `fit` defaults
    /// to `contain` and `box` to the whole canvas.
    Sticker(Image),
    /// Text in a box.
    Text(Text),
    /// A rectangle or rounded rectangle.
    Rect(Rect),
    /// A circle.
    Circle(Circle),
    /// Photos in rows and columns (a shelf collage).
    Grid(Grid),
    /// Layers drawn together, then filtered and blended as one.
    Group(Group),
}

layer! {
    /// A photo or sticker.
    pub struct Image {
        /// Name of the input to draw.
        pub input: String,
        /// Where to draw it; the whole canvas when absent.
        #[serde(default, rename = "box")]
        pub area: Option<Area>,
        /// `contain`, `cover` or `fill`; default `cover` for a photo, `contain` for a sticker.
        #[serde(default)]
        pub fit: Option<Fit>,
        /// Anchor for `contain` and `cover`, default `center`.
        #[serde(default)]
        pub gravity: Gravity,
        /// A point of the (cropped) picture, as fractions `[x, y]`, that `cover` keeps as
        /// close to the box's centre as the picture allows. Overrides `gravity`.
        #[serde(default)]
        pub focal: Option<[f32; 2]>,
        /// A part of the picture to use, in its pixels as displayed (after EXIF orientation).
        #[serde(default)]
        pub crop: Option<Area>,
        /// Turns the picture by 0, 90, 180 or 270 degrees clockwise before fitting.
        #[serde(default)]
        pub rotate: u32,
        /// Corner radius in pixels.
        #[serde(default)]
        pub radius: f32,
        /// A border drawn inside the picture's edge.
        #[serde(default)]
        pub border: Option<Stroke>,
    }
}

/// Font weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// Inter Regular.
    #[default]
    Regular,
    /// Inter Bold.
    Bold,
}

/// Horizontal text alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    /// Flush left.
    #[default]
    Left,
    /// Centred.
    Center,
    /// Flush right.
    Right,
}

/// Vertical text alignment in the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VAlign {
    /// From the top.
    #[default]
    Top,
    /// Centred.
    Middle,
    /// Against the bottom.
    Bottom,
}

layer! {
    /// Text wrapped in a box; what does not fit ends in an ellipsis.
    pub struct Text {
        /// The text; `\n` breaks a line.
        #[serde(deserialize_with = "bounded::text")]
        pub text: String,
        /// Where the text goes.
        #[serde(rename = "box")]
        pub area: Area,
        /// `regular` or `bold`.
        #[serde(default)]
        pub weight: Weight,
        /// Font size in pixels, default 32.
        #[serde(default = "defaults::text_size")]
        pub size: f32,
        /// Colour, default white.
        #[serde(default = "defaults::white")]
        pub color: Color,
        /// `left`, `center` or `right`.
        #[serde(default)]
        pub align: Align,
        /// `top`, `middle` or `bottom`.
        #[serde(default)]
        pub valign: VAlign,
        /// Line height as a multiple of the size, default 1.25.
        #[serde(default = "defaults::line_height")]
        pub line_height: f32,
        /// Extra space between letters in pixels (may be negative), default 0.
        #[serde(default)]
        pub letter_spacing: f32,
        /// Most lines; 0 (default) is as many as fit the box.
        #[serde(default)]
        pub max_lines: u32,
        /// An outline around the letters, for legibility on photos.
        #[serde(default)]
        pub outline: Option<Stroke>,
    }
}

layer! {
    /// A rectangle, rounded when `radius` is set.
    pub struct Rect {
        /// Where; the whole canvas when absent.
        #[serde(default, rename = "box")]
        pub area: Option<Area>,
        /// Corner radius in pixels.
        #[serde(default)]
        pub radius: f32,
        /// Fill paint; none when absent.
        #[serde(default)]
        pub fill: Option<Paint>,
        /// Outline, drawn inside the edge.
        #[serde(default)]
        pub stroke: Option<Stroke>,
    }
}

layer! {
    /// A circle.
    pub struct Circle {
        /// Centre in canvas pixels.
        pub center: [f32; 2],
        /// Radius in pixels.
        pub radius: f32,
        /// Fill paint; none when absent.
        #[serde(default)]
        pub fill: Option<Paint>,
        /// Outline, drawn inside the edge.
        #[serde(default)]
        pub stroke: Option<Stroke>,
    }
}

layer! {
    /// Photos laid out in rows and columns. The effects apply to each cell.
    pub struct Grid {
        /// Input names, filled row by row.
        #[serde(deserialize_with = "bounded::cells")]
        pub inputs: Vec<String>,
        /// The area the grid fills; the whole canvas when absent.
        #[serde(default, rename = "box")]
        pub area: Option<Area>,
        /// Number of columns.
        pub columns: u32,
        /// Number of rows; enough for every input when absent.
        #[serde(default)]
        pub rows: Option<u32>,
        /// Space between cells in pixels.
        #[serde(default)]
        pub gap: f32,
        /// How each photo fills its cell, default `cover`.
        #[serde(default = "defaults::cover")]
        pub fit: Fit,
        /// Anchor in each cell, default `center`.
        #[serde(default)]
        pub gravity: Gravity,
        /// Corner radius of each cell.
        #[serde(default)]
        pub radius: f32,
        /// Border of each cell.
        #[serde(default)]
        pub border: Option<Stroke>,
    }
}

layer! {
    /// Layers drawn onto their own transparent canvas, then filtered and blended as one.
    pub struct Group {
        /// The group's layers, bottom to top.
        #[serde(deserialize_with = "bounded::layers")]
        pub layers: Vec<Layer>,
    }
}

/// A filter over a layer or the whole canvas. Amounts are fractions: 0 changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Filter {
    /// Gaussian blur (three box blurs: the cost does not grow with the radius).
    Blur {
        /// Standard deviation in pixels, up to 200.
        radius: f32,
    },
    /// Unsharp mask.
    Sharpen {
        /// Strength, 0–5, default 1.
        #[serde(default = "defaults::one")]
        amount: f32,
        /// Radius of the detail sharpened, in pixels, default 1.
        #[serde(default = "defaults::one")]
        radius: f32,
    },
    /// Lighter (positive) or darker (negative), −1 to 1.
    Brightness {
        /// Amount.
        amount: f32,
    },
    /// More (positive) or less (negative) contrast, −1 to 1.
    Contrast {
        /// Amount.
        amount: f32,
    },
    /// More vivid (positive) or greyer (negative; −1 is greyscale), −1 to 1.
    Saturation {
        /// Amount.
        amount: f32,
    },
    /// Colours the picture, keeping its light and shade.
    Tint {
        /// The tint colour.
        color: Color,
        /// Strength 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        amount: f32,
    },
    /// Maps shadows to one colour and highlights to another.
    Duotone {
        /// Colour of black.
        dark: Color,
        /// Colour of white.
        light: Color,
        /// Strength 0–1, default 1.
        #[serde(default = "defaults::one")]
        amount: f32,
    },
    /// Darkens (or colours) the edges.
    Vignette {
        /// Strength 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        amount: f32,
        /// Size of the untouched centre, 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        size: f32,
        /// Edge colour, default black.
        #[serde(default = "defaults::black")]
        color: Color,
    },
    /// Seeded film grain.
    Grain {
        /// Strength 0–1, default 0.1.
        #[serde(default = "defaults::grain")]
        amount: f32,
        /// Seed; default derived from the recipe's seed and the element's position.
        #[serde(default)]
        seed: Option<u64>,
    },
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

impl Grid {
    /// Columns and rows (enough rows for every input when `rows` is absent), each at least 1.
    pub fn shape(&self) -> (usize, usize) {
        let cols = self.columns.max(1) as usize;
        let rows = self
            .rows
            .map_or(self.inputs.len().div_ceil(cols), |r| r as usize);
        (cols, rows.max(1))
    }
}

/// A `recipe.invalid` error about the field at `path`.
pub fn invalid(path: &str, message: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::RecipeInvalid,
        format!("recipe.{path}: {message}"),
    )
}

fn field_error(e: crate::intake::fields::FieldError) -> JobError {
    JobError::new(ErrorCode::RecipeInvalid, e.to_string())
}

/// Reads a request's `recipe` item (CBOR), every list bounded as it is read. Errors name the
/// offending field's path and what was expected there, never the value.
pub fn parse_cbor(item: &[u8]) -> Result<Recipe, JobError> {
    crate::intake::fields::typed(item, "recipe").map_err(field_error)
}

/// Reads a recipe from JSON (request files and tools), with the same bounds and errors.
pub fn from_json(json: serde_json::Value) -> Result<Recipe, JobError> {
    crate::intake::fields::typed_json(json, "recipe").map_err(field_error)
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
