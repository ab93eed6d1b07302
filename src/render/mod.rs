//! Stage 2 — **render**: what is drawn ([`render()`], the pure pipeline: decode → compose a
//! recipe → resize → orient → colour → encode) and where it runs ([`executor`]: a single-use,
//! confined renderer process per job by default, or the worker's own threads).

pub mod cmyk;
pub mod codecs;
pub mod color;
pub mod compose;
pub mod decode;
pub mod encode;
pub mod executor;
pub mod geometry;
pub mod jpeg;
mod pipeline;
pub mod pixels;
pub mod resize;

pub use pipeline::{output_pixels, render, Rendered, RenderedOutput, StageTimings, REPLY_RESERVE};
