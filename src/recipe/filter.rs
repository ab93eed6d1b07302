//! Filters: what is applied over a whole canvas (or a group) once its layers are drawn.

use super::{defaults, Color};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A filter over a layer or the whole canvas. Amounts are fractions: 0 changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Filter {
    /// Gaussian blur (three box blurs: the cost does not grow with the radius).
    Blur {
        /// Standard deviation in pixels, up to 200.
        #[schemars(range(min = 0.0, max = 200.0))]
        radius: f32,
    },
    /// Unsharp mask.
    Sharpen {
        /// Strength, 0–5, default 1.
        #[serde(default = "defaults::one")]
        #[schemars(range(min = 0.0, max = 5.0))]
        amount: f32,
        /// Radius of the detail sharpened, in pixels, default 1.
        #[serde(default = "defaults::one")]
        #[schemars(range(min = 0.5, max = 50.0))]
        radius: f32,
    },
    /// Lighter (positive) or darker (negative), −1 to 1.
    Brightness {
        /// Amount.
        #[schemars(range(min = -1.0, max = 1.0))]
        amount: f32,
    },
    /// More (positive) or less (negative) contrast, −1 to 1.
    Contrast {
        /// Amount.
        #[schemars(range(min = -1.0, max = 1.0))]
        amount: f32,
    },
    /// More vivid (positive) or greyer (negative; −1 is greyscale), −1 to 1.
    Saturation {
        /// Amount.
        #[schemars(range(min = -1.0, max = 1.0))]
        amount: f32,
    },
    /// Colours the picture, keeping its light and shade.
    Tint {
        /// The tint colour.
        color: Color,
        /// Strength 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        #[schemars(range(min = 0.0, max = 1.0))]
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
        #[schemars(range(min = 0.0, max = 1.0))]
        amount: f32,
    },
    /// Darkens (or colours) the edges.
    Vignette {
        /// Strength 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        #[schemars(range(min = 0.0, max = 1.0))]
        amount: f32,
        /// Size of the untouched centre, 0–1, default 0.5.
        #[serde(default = "defaults::half")]
        #[schemars(range(min = 0.0, max = 1.0))]
        size: f32,
        /// Edge colour, default black.
        #[serde(default = "defaults::black")]
        color: Color,
    },
    /// Seeded film grain.
    Grain {
        /// Strength 0–1, default 0.1.
        #[serde(default = "defaults::grain")]
        #[schemars(range(min = 0.0, max = 1.0))]
        amount: f32,
        /// Seed; default derived from the recipe's seed and the element's position.
        #[serde(default)]
        seed: Option<u64>,
    },
}
