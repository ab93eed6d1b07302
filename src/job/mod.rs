//! The **job**: the types every stage shares — what intake produces, the renderer consumes and
//! the reply reports on — and the limits every job is held to. Nothing here does work; each
//! stage imports these, none of them imports a stage.

mod header;
mod limits;

pub use crate::recipe::Fit;
pub use header::{Header, InputFormat};
pub use limits::Limits;

use crate::recipe::Recipe;
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
    /// Baseline JPEG (alpha is flattened onto white).
    Jpeg,
    /// PNG.
    Png,
    /// Lossless WebP.
    WebP,
}

impl OutputFormat {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    /// Whether `data` starts the way an encoding of this format must.
    pub fn matches(self, data: &[u8]) -> bool {
        match self {
            Self::Jpeg => data.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Png => data.starts_with(b"\x89PNG\r\n\x1a\n"),
            Self::WebP => data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
        }
    }

    /// The format with this wire name (case-insensitive; `jpg` is `jpeg`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::WebP),
            _ => None,
        }
    }
}

/// One checked output request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// JPEG quality.
    pub quality: u8,
    /// May the output be larger than the source.
    pub upscale: bool,
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
            de::Error::invalid_value(Unexpected::Other("format"), &"one of `jpeg`, `png`, `webp`")
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
        }
    }
}
