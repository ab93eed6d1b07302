//! The **job**: the types every stage shares — what intake produces, the renderer consumes and
//! the reply reports on — and the limits every job is held to. Nothing here does work; each
//! stage imports these, none of them imports a stage.

mod header;
mod limits;

pub use crate::recipe::Fit;
pub use header::{Header, InputFormat};
pub use limits::Limits;

use crate::recipe::{Color, Gravity, Recipe};
use crate::wipe::{Ledger, SecretBuf, SpillFile};
use serde::de::{self, Deserializer, Unexpected};
use serde::{Deserialize, Serialize};

/// A parsed, checked job, ready for the pipeline.
#[derive(Debug)]
pub struct Job {
    /// Named inputs, in name order.
    pub inputs: Vec<Input>,
    /// Requested outputs, in request order.
    pub outputs: Vec<OutputPlan>,
    /// The generation recipe, checked; `None` for a thumbnail/convert job.
    pub recipe: Option<Recipe>,
    /// The job's wipe ledger.
    pub ledger: Ledger,
}

impl Job {
    /// What the recipe cost model knows of each input: its stored size, and whether it can
    /// be decoded at a reduced scale.
    pub fn shapes(&self) -> Vec<(&str, crate::recipe::Shape)> {
        self.inputs
            .iter()
            .map(|i| (i.name.as_str(), shape(&i.header)))
            .collect()
    }
}

/// The cost model's view of an input's header.
pub fn shape(h: &Header) -> crate::recipe::Shape {
    let (width, height) = h.extent();
    crate::recipe::Shape {
        width,
        height,
        shrinkable: h.format == InputFormat::Jpeg,
    }
}

/// One source image.
#[derive(Debug)]
pub struct Input {
    /// Its name in the request.
    pub name: String,
    /// What its header declares.
    pub header: Header,
    /// Its encoded bytes.
    pub data: InputData,
}

/// Where an input's encoded bytes are.
pub enum InputData {
    /// In memory.
    Memory(SecretBuf),
    /// In a spill file (large inputs).
    Spilled(SpillFile),
    /// In a spill file owned (and wiped) by another process — the worker, seen from its
    /// renderer — reached through a read-only descriptor the worker passed over.
    Descriptor(std::fs::File, crate::wipe::SpillKey),
}

impl std::fmt::Debug for InputData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
            Self::Spilled(s) => write!(f, "Spilled({} bytes)", s.len()),
            Self::Descriptor(..) => f.write_str("Descriptor"),
        }
    }
}

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// JPEG: progressive by default, optimised Huffman tables (alpha is flattened onto the
    /// background, white by default).
    Jpeg,
    /// PNG (truecolour, or a palette of at most 256 colours).
    Png,
    /// WebP: lossy by default, lossless on request.
    WebP,
    /// AVIF (AV1 still image).
    Avif,
    /// A ThumbHash placeholder: a few dozen bytes the app renders as a blurred preview.
    Thumbhash,
}

/// Every output format, in the order the docs list them.
pub const OUTPUT_FORMATS: &str = "`jpeg`, `png`, `webp`, `avif`, `thumbhash`";

impl OutputFormat {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Avif => "avif",
            Self::Thumbhash => "thumbhash",
        }
    }

    /// Whether `data` starts the way an encoding of this format must.
    pub fn matches(self, data: &[u8]) -> bool {
        match self {
            Self::Jpeg => data.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Png => data.starts_with(b"\x89PNG\r\n\x1a\n"),
            Self::WebP => data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
            Self::Avif => data.len() >= 12 && &data[4..8] == b"ftyp" && &data[8..12] == b"avif",
            // A ThumbHash is at least its 5-byte header and at most a few dozen bytes.
            Self::Thumbhash => (5..=64).contains(&data.len()),
        }
    }

    /// The format with this wire name (case-insensitive; `jpg` is `jpeg`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::WebP),
            "avif" => Some(Self::Avif),
            "thumbhash" => Some(Self::Thumbhash),
            _ => None,
        }
    }

    /// The quality used when a request names none.
    pub fn default_quality(self) -> u8 {
        match self {
            Self::Jpeg => 85,
            Self::WebP => 80,
            Self::Avif => 65,
            Self::Png | Self::Thumbhash => 100,
        }
    }

    /// Whether the format has a lossy quality a `max_bytes` search can lower.
    pub fn lossy(self) -> bool {
        matches!(self, Self::Jpeg | Self::WebP | Self::Avif)
    }
}

/// Chroma subsampling of a JPEG output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Chroma {
    /// Colour at half resolution both ways: the default, right for photos.
    #[default]
    #[serde(rename = "420")]
    C420,
    /// Colour at half resolution horizontally.
    #[serde(rename = "422")]
    C422,
    /// Colour at full resolution: for text, line art and graphics.
    #[serde(rename = "444")]
    C444,
}

impl Chroma {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::C420 => "420",
            Self::C422 => "422",
            Self::C444 => "444",
        }
    }

    /// The subsampling with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::C420, Self::C422, Self::C444]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// One checked output request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPlan {
    /// Output name.
    pub name: String,
    /// Encoding.
    pub format: OutputFormat,
    /// Bounding width.
    pub width: Option<u32>,
    /// Bounding height.
    pub height: Option<u32>,
    /// Fit mode.
    pub fit: Fit,
    /// Lossy quality (JPEG, lossy WebP, AVIF): the request's, or the format's default.
    pub quality: u8,
    /// May the output be larger than the source.
    pub upscale: bool,
    /// WebP: lossless instead of lossy.
    pub lossless: bool,
    /// AVIF: encoder speed, 1 (slowest, smallest) to 10.
    pub speed: u8,
    /// JPEG: progressive scans.
    pub progressive: bool,
    /// JPEG: chroma subsampling.
    pub chroma: Chroma,
    /// Largest encoding wanted, in bytes: the quality is lowered (a bounded search) to fit.
    pub max_bytes: Option<u32>,
    /// PNG: quantised to a palette of at most 256 colours.
    pub palette: bool,
    /// Which part a `cover` crop keeps, and where a letterboxed picture sits.
    pub gravity: Gravity,
    /// Focal point of a `cover` crop (fractions of the picture as shown); overrides gravity.
    pub focal: Option<[f32; 2]>,
    /// Colour behind the picture: letterboxing (`contain` with both sides), padding, and what
    /// transparency is flattened onto for JPEG.
    pub background: Option<Color>,
    /// Pixels of background added on every side.
    pub padding: u32,
}

impl Serialize for OutputFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OutputFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            de::Error::invalid_value(
                Unexpected::Other("format"),
                &"one of `jpeg`, `png`, `webp`, `avif`, `thumbhash`",
            )
        })
    }
}

impl OutputPlan {
    /// The request form of this plan (so a plan handed over can be checked again).
    pub fn to_spec(&self) -> crate::protocol::OutputSpec {
        crate::protocol::OutputSpec {
            name: self.name.clone(),
            format: self.format.as_str().into(),
            width: self.width,
            height: self.height,
            fit: Some(self.fit.as_str().into()),
            quality: Some(self.quality),
            upscale: Some(self.upscale),
            // Format-specific options only where they apply (they are refused elsewhere).
            lossless: (self.format == OutputFormat::WebP).then_some(self.lossless),
            speed: (self.format == OutputFormat::Avif).then_some(self.speed),
            progressive: (self.format == OutputFormat::Jpeg).then_some(self.progressive),
            chroma: (self.format == OutputFormat::Jpeg).then(|| self.chroma.as_str().into()),
            max_bytes: self.max_bytes,
            palette: (self.format == OutputFormat::Png).then_some(self.palette),
            gravity: Some(self.gravity.as_str().into()),
            focal: self.focal,
            background: self.background.map(|c| c.to_hex()),
            padding: Some(self.padding),
        }
    }
}
