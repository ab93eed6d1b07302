//! Colours in recipes: `#rgb`, `#rgba`, `#rrggbb` or `#rrggbbaa` (sRGB, straight alpha).

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// An sRGB colour with straight (not premultiplied) alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub [u8; 4]);

impl Color {
    /// Fully transparent black.
    pub const TRANSPARENT: Color = Color([0, 0, 0, 0]);

    /// Parses a hex colour.
    pub fn parse(text: &str) -> Option<Color> {
        let hex = text.strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let nibble = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok();
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        match hex.len() {
            3 | 4 => {
                let mut c = [255; 4];
                for (i, v) in c.iter_mut().enumerate().take(hex.len()) {
                    *v = nibble(i)? * 17;
                }
                Some(Color(c))
            }
            6 | 8 => {
                let mut c = [255; 4];
                for (i, v) in c.iter_mut().enumerate().take(hex.len() / 2) {
                    *v = byte(2 * i)?;
                }
                Some(Color(c))
            }
            _ => None,
        }
    }

    /// The colour as `#rrggbbaa`.
    pub fn to_hex(self) -> String {
        let [r, g, b, a] = self.0;
        format!("#{r:02x}{g:02x}{b:02x}{a:02x}")
    }

    /// The colour premultiplied by its alpha and by `opacity` (0–1), as 0–255 floats.
    pub fn premultiplied(self, opacity: f32) -> [f32; 4] {
        let a = f32::from(self.0[3]) / 255.0 * opacity;
        [
            f32::from(self.0[0]) * a,
            f32::from(self.0[1]) * a,
            f32::from(self.0[2]) * a,
            a * 255.0,
        ]
    }
}

impl Serialize for Color {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        Color::parse(&text).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other("colour"),
                &"a colour: #rgb, #rgba, #rrggbb or #rrggbbaa",
            )
        })
    }
}

impl JsonSchema for Color {
    fn schema_name() -> Cow<'static, str> {
        "Color".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "sRGB colour: #rgb, #rgba, #rrggbb or #rrggbbaa",
            "type": "string",
            "pattern": "^#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hex_form_parses() {
        assert_eq!(Color::parse("#fff"), Some(Color([255, 255, 255, 255])));
        assert_eq!(Color::parse("#0008"), Some(Color([0, 0, 0, 0x88])));
        assert_eq!(
            Color::parse("#0b1026"),
            Some(Color([0x0b, 0x10, 0x26, 255]))
        );
        assert_eq!(
            Color::parse("#0B102680"),
            Some(Color([0x0b, 0x10, 0x26, 0x80]))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "fff", "#ff", "#fffff", "#ggg", "#+ff", "", "#", "#ééé", "#0b10261",
        ] {
            assert_eq!(Color::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_colour_survives_serde() {
        let c = Color([1, 2, 3, 4]);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"#01020304\"");
        assert_eq!(serde_json::from_str::<Color>(&json).unwrap(), c);
    }
}
