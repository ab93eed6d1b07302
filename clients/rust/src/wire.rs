//! The wire contract, version 1: what a backend sends and what it gets back.
//!
//! `docs/PROTOCOL.md` in the worker's repository describes the same contract in prose and
//! `docs/contract/midnit.cddl` as CDDL (RFC 8610); the worker builds its replies from these
//! types, so the two sides cannot drift apart.

use crate::receipt::Receipt;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// The only content type of requests and replies.
pub const CONTENT_TYPE: &str = "application/cbor";
/// The content type of a sealed (v2) request, and of the sealed reply that answers it.
pub const SEALED_CONTENT_TYPE: &str = "application/vnd.midnit.sealed+cbor";
/// The contract version of a request's body (sealed or not, the opened body is v1).
pub const VERSION: u32 = 1;
/// Optional request header of a sealed request: its epoch (integer), for routing and logs.
/// The epoch that counts is the one inside the sealed envelope, bound by the encryption.
pub const EPOCH_HEADER: &str = "x-midnit-epoch";
/// The direct reply-to pseudo queue: replies to it are never stored on the broker.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Optional header: the job's deadline, in milliseconds since the Unix epoch. A job picked up
/// after it is answered `job.expired` without being rendered.
pub const DEADLINE_HEADER: &str = "x-midnit-deadline-ms";

/// Optional request header: when the requester published the job, in ms since the Unix epoch
/// (integer). Used only for the queue-wait metric.
pub const SENT_HEADER: &str = "x-midnit-sent-ms";

/// A render request (the CBOR body of a job message).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Contract version; must be 1.
    pub v: u32,
    /// Named source images, as encoded bytes (JPEG, PNG, WebP, GIF, HEIC, AVIF or JPEG XL).
    pub inputs: BTreeMap<String, ByteBuf>,
    /// The generation recipe; absent for a thumbnail/convert job of the single input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<ciborium::Value>,
    /// What to produce: one rendered image per entry (after the preset's, if one is named;
    /// empty with a preset adds nothing to it).
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// The name of an operator-defined preset (outputs, maybe a recipe) to render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// One requested output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Name of the output, unique in the request; echoed in the reply.
    pub name: String,
    /// `jpeg`, `png`, `webp`, `avif` or `thumbhash`.
    pub format: String,
    /// Bounding width in pixels (absent: from height and aspect ratio, or the source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Bounding height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `contain` (default), `cover` or `fill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<String>,
    /// Lossy quality 1–100 (JPEG, lossy WebP, AVIF; defaults 85, 80, 65).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Allow the output to be larger than the source (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale: Option<bool>,
    /// WebP: lossless instead of lossy (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossless: Option<bool>,
    /// AVIF: encoder speed 1 (slowest, smallest) to 10 (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<u8>,
    /// JPEG: progressive scans (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressive: Option<bool>,
    /// JPEG: chroma subsampling, `420` (default, photos), `422` or `444` (text, graphics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroma: Option<String>,
    /// JPEG, lossy WebP, AVIF: largest encoding wanted, in bytes; the quality is lowered to
    /// fit and the reply says which was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
    /// PNG: quantise to a palette of at most 256 colours (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub palette: Option<bool>,
    /// Which part a `cover` crop keeps and where a letterboxed picture sits: `center`
    /// (default), `north`, `south`, `east`, `west`, `northeast`, `northwest`, `southeast`,
    /// `southwest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gravity: Option<String>,
    /// Focal point `[x, y]` of a `cover` crop, fractions 0–1 of the picture as shown;
    /// overrides `gravity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal: Option<[f32; 2]>,
    /// Background `#rgb[a]`/`#rrggbb[aa]`: with `contain` and both sides the output is the
    /// whole box, letterboxed in this colour; also fills `padding` and is what JPEG flattens
    /// transparency onto (default white there, transparent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Pixels of background added on every side (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<u32>,
}

impl Request {
    /// A v1 request for `outputs` of `inputs` (name → encoded image), without a recipe.
    pub fn new<N: Into<String>>(
        inputs: impl IntoIterator<Item = (N, Vec<u8>)>,
        outputs: Vec<OutputSpec>,
    ) -> Self {
        Self {
            v: VERSION,
            inputs: inputs
                .into_iter()
                .map(|(name, bytes)| (name.into(), ByteBuf::from(bytes)))
                .collect(),
            recipe: None,
            outputs,
            preset: None,
        }
    }

    /// A request for the operator's preset `name` (its outputs, and its recipe if it has one).
    pub fn preset<N: Into<String>>(
        name: impl Into<String>,
        inputs: impl IntoIterator<Item = (N, Vec<u8>)>,
    ) -> Self {
        Self {
            preset: Some(name.into()),
            ..Self::new(inputs, Vec::new())
        }
    }

    /// A thumbnail or conversion of one photo, which the request names `photo`.
    pub fn thumbnail(photo: Vec<u8>, output: OutputSpec) -> Self {
        Self::new([("photo", photo)], vec![output])
    }

    /// The request with a recipe (anything that serialises to the recipe's shape, e.g. a
    /// `serde_json::Value` read from a recipe file).
    pub fn with_recipe(mut self, recipe: &impl Serialize) -> Result<Self, ciborium::value::Error> {
        self.recipe = Some(ciborium::Value::serialized(recipe)?);
        Ok(self)
    }
}

impl OutputSpec {
    /// An output named `name` in `format` (`jpeg`, `png` or `webp`), the source's size.
    pub fn new(name: impl Into<String>, format: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            format: format.into(),
            ..Self::default()
        }
    }

    /// Bounded to `width` pixels.
    pub fn width(mut self, width: u32) -> Self {
        self.width = Some(width);
        self
    }

    /// Bounded to `height` pixels.
    pub fn height(mut self, height: u32) -> Self {
        self.height = Some(height);
        self
    }

    /// Fitted into the box by `fit`: `contain`, `cover` or `fill`.
    pub fn fit(mut self, fit: impl Into<String>) -> Self {
        self.fit = Some(fit.into());
        self
    }

    /// Lossy quality 1–100.
    pub fn quality(mut self, quality: u8) -> Self {
        self.quality = Some(quality);
        self
    }

    /// No larger than `bytes` (the quality is lowered to fit).
    pub fn max_bytes(mut self, bytes: u32) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// A `cover` crop keeps the part named by `gravity`; a letterboxed picture sits there.
    pub fn gravity(mut self, gravity: impl Into<String>) -> Self {
        self.gravity = Some(gravity.into());
        self
    }

    /// A `cover` crop centred as near `[x, y]` (fractions of the picture) as it can be.
    pub fn focal(mut self, x: f32, y: f32) -> Self {
        self.focal = Some([x, y]);
        self
    }

    /// Letterboxed and padded in `color` (`#rrggbb` or `#rrggbbaa`).
    pub fn background(mut self, color: impl Into<String>) -> Self {
        self.background = Some(color.into());
        self
    }

    /// `pixels` of background on every side.
    pub fn padding(mut self, pixels: u32) -> Self {
        self.padding = Some(pixels);
        self
    }
}

/// A reply: exactly one per delivered request with a usable `reply_to`. Unknown fields are
/// ignored: v1 may add fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Contract version (1).
    pub v: u32,
    /// `ok` or `error`.
    pub status: Status,
    /// The rendered images (status `ok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputData>,
    /// What went wrong (status `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// What the worker wiped for this job before sealing the reply.
    pub receipt: Receipt,
    /// A tagged COSE_Sign1 message (EdDSA) attesting the status or error code, the request's
    /// and every output's SHA-256, the correlation id and the receipt (see docs/PROTOCOL.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<ByteBuf>,
}

/// Outcome of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Rendered; `outputs` holds the images.
    Ok,
    /// Not rendered; `error` says why.
    Error,
}

/// One rendered image in a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputData {
    /// The requested output's name.
    pub name: String,
    /// Its format.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The quality the encoder used (lossy formats): the requested one, or lower where
    /// `max_bytes` asked for a smaller file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// The encoded image.
    pub data: ByteBuf,
}

/// The error of a failed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable dotted code, e.g. `input.undecodable`.
    pub code: String,
    /// What went wrong, for a backend developer. Never contains payload bytes.
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

/// Every error code of contract v1. Codes are stable: new ones may be added, none changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not a CBOR map of the v1 shape (or a property is wrong).
    RequestMalformed,
    /// `v` is not a version this worker speaks.
    RequestUnsupportedVersion,
    /// The body is larger than `max_body_bytes`.
    RequestTooLarge,
    /// Well-formed but meaningless: no outputs, duplicate names, bad quality, unknown format …
    RequestInvalid,
    /// The worker renders only its presets (`presets_only`) and the request names none, or
    /// adds outputs or a recipe to one.
    RequestPresetRequired,
    /// The worker takes only sealed (v2) requests (`sealed = "required"`).
    RequestSealedRequired,
    /// The sealed request names an epoch whose key this worker does not hold (erased after
    /// its grace period, or not yet known): fetch the key directory again and reseal.
    RequestReseal,
    /// This sealed request was already answered (replays are refused within an epoch).
    RequestReplayed,
    /// An input has no bytes.
    InputEmpty,
    /// An input is larger than `max_input_bytes`.
    InputTooLarge,
    /// An input is an image format this worker does not read (TIFF, BMP, HEIC …).
    InputUnsupportedFormat,
    /// An input is not a readable image (not an image, truncated, corrupt, zero-sized).
    InputUndecodable,
    /// More inputs than `max_inputs`.
    LimitsInputs,
    /// An input declares more pixels or a larger side than allowed (decompression bombs).
    LimitsPixels,
    /// An animated input declares more frames than `max_frames`.
    LimitsFrames,
    /// An output is larger than allowed, or there are too many outputs.
    LimitsOutput,
    /// Rendering needed more memory than the job's memory limit allows.
    LimitsMemory,
    /// An input's structure costs more than allowed before a pixel is decoded: an ICC profile
    /// over `max_icc_bytes`, more JPEG scans than `max_jpeg_scans`.
    LimitsComplexity,
    /// The recipe is invalid.
    RecipeInvalid,
    /// The job's deadline passed before it was picked up.
    JobExpired,
    /// Rendering took longer than `max_job_seconds`.
    JobTimeout,
    /// The worker failed (a bug, a crash in a decoder). Retry may succeed on another worker.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 22] = [
        Self::RequestMalformed,
        Self::RequestUnsupportedVersion,
        Self::RequestTooLarge,
        Self::RequestInvalid,
        Self::RequestPresetRequired,
        Self::RequestSealedRequired,
        Self::RequestReseal,
        Self::RequestReplayed,
        Self::InputEmpty,
        Self::InputTooLarge,
        Self::InputUnsupportedFormat,
        Self::InputUndecodable,
        Self::LimitsInputs,
        Self::LimitsPixels,
        Self::LimitsFrames,
        Self::LimitsOutput,
        Self::LimitsMemory,
        Self::LimitsComplexity,
        Self::RecipeInvalid,
        Self::JobExpired,
        Self::JobTimeout,
        Self::Internal,
    ];

    /// The dotted wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestMalformed => "request.malformed",
            Self::RequestUnsupportedVersion => "request.unsupported_version",
            Self::RequestTooLarge => "request.too_large",
            Self::RequestInvalid => "request.invalid",
            Self::RequestPresetRequired => "request.preset_required",
            Self::RequestSealedRequired => "request.sealed_required",
            Self::RequestReseal => "request.reseal",
            Self::RequestReplayed => "request.replayed",
            Self::InputEmpty => "input.empty",
            Self::InputTooLarge => "input.too_large",
            Self::InputUnsupportedFormat => "input.unsupported_format",
            Self::InputUndecodable => "input.undecodable",
            Self::LimitsInputs => "limits.inputs",
            Self::LimitsPixels => "limits.pixels",
            Self::LimitsFrames => "limits.frames",
            Self::LimitsOutput => "limits.output",
            Self::LimitsMemory => "limits.memory",
            Self::LimitsComplexity => "limits.complexity",
            Self::RecipeInvalid => "recipe.invalid",
            Self::JobExpired => "job.expired",
            Self::JobTimeout => "job.timeout",
            Self::Internal => "internal",
        }
    }

    /// The code with this wire form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether sending the request again may succeed: worker-side failures, and a sealed
    /// request for an epoch the worker no longer holds (sealed again, to the current key).
    pub fn retryable(self) -> bool {
        matches!(self, Self::Internal | Self::RequestReseal)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Other("code"), &"an error code")
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encodes a request as a CBOR body.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut body = Vec::new();
    ciborium::into_writer(request, &mut body).expect("writing to a Vec cannot fail");
    body
}

/// Decodes a reply body.
pub fn decode_reply(body: &[u8]) -> Result<Reply, ciborium::de::Error<std::io::Error>> {
    ciborium::from_reader(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_dotted_lowercase_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(s
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'));
            assert!(seen.insert(s), "{s} twice");
        }
    }

    #[test]
    fn a_request_survives_a_cbor_round_trip() {
        let request = Request {
            preset: None,
            v: 1,
            inputs: [("photo".to_string(), ByteBuf::from(vec![1, 2, 3]))].into(),
            recipe: None,
            outputs: vec![OutputSpec {
                name: "thumb".into(),
                format: "jpeg".into(),
                width: Some(64),
                ..OutputSpec::default()
            }],
        };
        let back: Request = ciborium::from_reader(&encode_request(&request)[..]).unwrap();
        assert_eq!(back.inputs["photo"].as_ref(), &[1, 2, 3]);
        assert_eq!(back.outputs, request.outputs);
    }
}
