//! Layers: what a recipe stacks on its canvas — photos, stickers, text, shapes, grids of
//! photos and groups — with their shared placement and effects.

use super::{bounded, defaults};
use super::{Area, Color, Filter, Fit, Gravity, Paint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A line around a shape, photo or text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stroke {
    /// Width in pixels, default 4.
    #[serde(default = "defaults::stroke_width")]
    #[schemars(range(min = 0.5, max = 256.0))]
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
    #[schemars(range(min = -512.0, max = 512.0))]
    pub dx: f32,
    /// Vertical offset in pixels, default 8.
    #[serde(default = "defaults::shadow_dy")]
    #[schemars(range(min = -512.0, max = 512.0))]
    pub dy: f32,
    /// Blur radius in pixels, default 16.
    #[serde(default = "defaults::shadow_blur")]
    #[schemars(range(min = 0.0, max = 200.0))]
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
    #[schemars(range(min = 0.0, max = 200.0))]
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
            #[schemars(range(min = 0.0, max = 1.0))]
            pub opacity: f32,
            /// Free rotation in degrees about the layer's centre, −45 to 45, default 0.
            #[serde(default)]
            #[schemars(range(min = -45.0, max = 45.0))]
            pub angle: f32,
            /// Drop shadow.
            #[serde(default)]
            pub shadow: Option<Shadow>,
            /// Outer glow.
            #[serde(default)]
            pub glow: Option<Glow>,
            /// Filters applied to this layer alone, in order.
            #[serde(default, deserialize_with = "bounded::list::<16, _, _>")]
            #[schemars(length(max = 16))]
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
        #[schemars(extend("enum" = [0, 90, 180, 270]))]
        pub rotate: u32,
        /// Corner radius in pixels.
        #[serde(default)]
        #[schemars(range(min = 0.0, max = 4096.0))]
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
        #[schemars(length(min = 1, max = 500))]
        pub text: String,
        /// Where the text goes.
        #[serde(rename = "box")]
        pub area: Area,
        /// `regular` or `bold`.
        #[serde(default)]
        pub weight: Weight,
        /// Font size in pixels, default 32.
        #[serde(default = "defaults::text_size")]
        #[schemars(range(min = 4.0, max = 512.0))]
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
        #[schemars(range(min = 0.5, max = 4.0))]
        pub line_height: f32,
        /// Extra space between letters in pixels (may be negative), default 0.
        #[serde(default)]
        pub letter_spacing: f32,
        /// Most lines; 0 (default) is as many as fit the box.
        #[serde(default)]
        #[schemars(range(min = 0, max = 100))]
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
        #[schemars(range(min = 0.0, max = 4096.0))]
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
        #[schemars(range(min = 0.5))]
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
        #[schemars(length(min = 1, max = 64))]
        pub inputs: Vec<String>,
        /// The area the grid fills; the whole canvas when absent.
        #[serde(default, rename = "box")]
        pub area: Option<Area>,
        /// Number of columns.
        #[schemars(range(min = 1, max = 64))]
        pub columns: u32,
        /// Number of rows; enough for every input when absent.
        #[serde(default)]
        pub rows: Option<u32>,
        /// Space between cells in pixels.
        #[serde(default)]
        #[schemars(range(min = 0.0))]
        pub gap: f32,
        /// How each photo fills its cell, default `cover`.
        #[serde(default = "defaults::cover")]
        pub fit: Fit,
        /// Anchor in each cell, default `center`.
        #[serde(default)]
        pub gravity: Gravity,
        /// Corner radius of each cell.
        #[serde(default)]
        #[schemars(range(min = 0.0, max = 4096.0))]
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
