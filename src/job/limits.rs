//! The limits every job is held to. Each breach is a typed error reply, never a crash.

use serde::Deserialize;
use std::time::Duration;

crate::settings! {
    /// Limits every job is held to (the `[limits]` section). Each breach is a typed error
    /// reply, never a crash.
    #[derive(Eq, Deserialize, serde::Serialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct Limits in "limits" {
        /// Largest request body accepted, in bytes.
        max_body_bytes: usize = 64 << 20, "67108864",
            "largest request body → `request.too_large`";
        /// Most named inputs in one request.
        max_inputs: usize = 16, "16", "most inputs → `limits.inputs`";
        /// Largest single input, in bytes.
        max_input_bytes: usize = 32 << 20, "33554432", "largest input → `input.too_large`";
        /// Most pixels (width × height) of one input, read from its header before decoding.
        max_input_pixels: u64 = 50_000_000, "50000000",
            "most pixels an input header may declare, for its canvas and every frame → `limits.pixels`";
        /// Largest input width or height.
        max_input_dimension: u32 = 20_000, "20000", "largest input side → `limits.pixels`";
        /// Most frames an animated input may declare (only the first is rendered).
        max_frames: u32 = 1_000, "1000", "most frames an animated input may declare → `limits.frames`";
        /// Most outputs one request may ask for.
        max_outputs: usize = 8, "8", "most outputs → `limits.output`";
        /// Largest output width or height.
        max_output_dimension: u32 = 8_192, "8192", "largest output side → `limits.output`";
        /// Most pixels of one output.
        max_output_pixels: u64 = 40_000_000, "40000000", "most output pixels → `limits.output`";
        /// Wall-clock limit of one job's rendering, in seconds.
        max_job_seconds: u64 = 60, "60",
            "wall-clock limit of one render → `job.timeout` (also its CPU-time limit, +1 s, in the isolated executor)";
        /// Most address space one renderer process may use, in bytes (isolated executor; each job
        /// gets less when its inputs are small).
        max_job_memory_bytes: u64 = 4 << 30, "4294967296",
            "address-space limit of one renderer process → `limits.memory`; each job gets 256 MiB plus what its inputs, outputs and recipe need, up to this";
        /// Largest ICC profile an input may carry (decompressed), in bytes.
        max_icc_bytes: u64 = 1 << 20, "1048576",
            "largest ICC profile an input may carry, decompressed → `limits.complexity`";
        /// Most entropy-coded scans a JPEG input may have (progressive JPEGs have about ten).
        max_jpeg_scans: u32 = 100, "100",
            "most scans a JPEG input may have (progressive photos have about ten) → `limits.complexity`";
        /// Most tiles a HEIF/AVIF grid image may declare (a 48 MP iPhone photo has 48).
        max_tiles: u32 = 1_024, "1024",
            "most tiles a HEIC/AVIF grid image may declare → `limits.complexity`";
        /// Accept HEIC inputs (HEVC; its patent licensing is the operator's call).
        accept_heic: bool = true, "true",
            "decode HEIC inputs (HEVC: whether its patent licences apply is the operator's call); off → `input.unsupported_format`";
        /// Accept AVIF inputs.
        accept_avif: bool = true, "true", "decode AVIF inputs; off → `input.unsupported_format`";
        /// Accept JPEG XL inputs.
        accept_jxl: bool = true, "true", "decode JPEG XL inputs; off → `input.unsupported_format`";
        /// Largest reply, in bytes: outputs, receipt and envelope together. Must stay under the
        /// broker's `max_message_size` (RabbitMQ: 128 MiB by default).
        max_reply_bytes: usize = 64 << 20, "67108864",
            "largest reply (outputs, receipt, envelope); keep it under the broker's `max_message_size` → `limits.output`";
        /// Refuse every request that does not name a preset, or adds outputs or a recipe to it.
        presets_only: bool = false, "false",
            "render only the configured `[presets.NAME]`: anything else → `request.preset_required`";
    }
}

impl Limits {
    /// The limits a recipe is held to, for outputs of these limits.
    pub fn recipe(&self) -> crate::recipe::RecipeLimits {
        crate::recipe::RecipeLimits::new(self.max_output_pixels, self.max_output_dimension)
    }

    /// The wall-clock limit as a duration.
    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.max_job_seconds)
    }
}
