//! The worker's check of a renderer's answer. The renderer is assumed compromised: its answer
//! is used only once it matches the job it was given.

use super::messages::{Answer, ReplyMessage, WipeReport};
use crate::job::{Limits, OutputFormat, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use crate::render::{Rendered, RenderedOutput, StageTimings};
use crate::wipe::{Ledger, SecretBuf};
use serde_bytes::ByteBuf;
use std::time::Duration;

/// Why a renderer's answer was refused.
fn refused(what: &str) -> JobError {
    JobError::new(
        ErrorCode::Internal,
        format!("the renderer's answer does not match its job ({what})"),
    )
}

/// Reads and checks the renderer's answer against the job it was given: the outputs must be
/// exactly the planned ones (names, order, formats), each within the output limits and its
/// box, shaped like its format, and all of them within the reply limit; an error must carry a
/// known code. Anything else is `internal`. The renderer's wipe entries join the job's ledger,
/// marked as the renderer's.
pub fn accept(
    first: &SecretBuf,
    report: &SecretBuf,
    plans: &[OutputPlan],
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Rendered, JobError> {
    if let Ok(report) = crate::wipe::cbor_from_slice::<WipeReport>(report.as_slice()) {
        ledger.record_reported(report.wiped, "renderer");
    }
    let reply: ReplyMessage<ByteBuf> =
        crate::wipe::cbor_from_slice(first.as_slice()).map_err(|_| refused("unreadable"))?;
    let outputs = match reply.answer {
        Answer::Failed { code, message } => {
            let message: String = message
                .chars()
                .take(512)
                .filter(|c| !c.is_control())
                .collect();
            return Err(JobError::new(code, message));
        }
        Answer::Rendered(outputs) => outputs,
    };
    if outputs.len() != plans.len() {
        return Err(refused("output count"));
    }
    let mut total = 0usize;
    let mut rendered = Vec::with_capacity(outputs.len());
    for (o, plan) in outputs.into_iter().zip(plans) {
        let data = SecretBuf::new(o.data.into_vec(), format!("output.{}", plan.name), ledger);
        check_output(
            &o.name,
            o.format,
            (o.width, o.height),
            data.as_slice(),
            plan,
            limits,
        )?;
        // A quality is reported for lossy formats only, never above the plan's; a size target
        // is met.
        let quality_ok = match o.quality {
            None => !plan.format.lossy() || plan.lossless,
            Some(q) => plan.format.lossy() && (1..=plan.quality).contains(&q),
        };
        let size_ok = plan.max_bytes.is_none_or(|max| data.len() <= max as usize);
        if !quality_ok || !size_ok {
            return Err(refused("output quality or size"));
        }
        total = total.saturating_add(data.len());
        rendered.push(RenderedOutput {
            name: plan.name.clone(),
            format: plan.format,
            width: o.width,
            height: o.height,
            quality: o.quality,
            data,
        });
    }
    if total > limits.max_reply_bytes {
        return Err(refused("outputs larger than the reply limit"));
    }
    let [d, c, r, e] = reply.timings.map(|s| {
        Duration::from_secs_f64(if s.is_finite() {
            s.clamp(0.0, 3600.0)
        } else {
            0.0
        })
    });
    Ok(Rendered {
        outputs: rendered,
        timings: StageTimings {
            decode: d,
            compose: c,
            resize: r,
            encode: e,
        },
        renderer_peak_rss: (reply.peak_rss > 0).then_some(reply.peak_rss),
    })
}

fn check_output(
    name: &str,
    format: OutputFormat,
    (w, h): (u32, u32),
    data: &[u8],
    plan: &OutputPlan,
    limits: &Limits,
) -> Result<(), JobError> {
    if name != plan.name || format != plan.format {
        return Err(refused("output name or format"));
    }
    let pad = plan.padding.saturating_mul(2);
    let within_box = plan.width.is_none_or(|bw| w <= bw.saturating_add(pad))
        && plan.height.is_none_or(|bh| h <= bh.saturating_add(pad));
    let within_limits = w >= 1
        && h >= 1
        && w.max(h) <= limits.max_output_dimension
        && u64::from(w) * u64::from(h) <= limits.max_output_pixels;
    if !within_box || !within_limits {
        return Err(refused("output size"));
    }
    if !format.matches(data) {
        return Err(refused("output encoding"));
    }
    Ok(())
}
